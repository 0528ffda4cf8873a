package rank

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/internal/mesh"
	"github.com/dsmexec/dsmexec/internal/shm"
	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// Control frames of the application mesh for the shared-memory transport
// (internal/wire/spec.md).
const (
	typeDoorbell  = wire.TypeDoorbell  // empty: look at the ring (data, or room to write)
	typeRingOffer = wire.TypeRingOffer // lower → higher rank: JSON ringOffer
	typeRingReply = wire.TypeRingReply // higher → lower: empty = the ring is in use; else why not (text)
)

// ringOffer is the body of a RING OFFER frame.
type ringOffer struct {
	BootID string `json:"boot_id"`
	Host   string `json:"host"`
	Name   string `json:"name,omitempty"` // the segment; "" = stay on TCP
	Why    string `json:"why,omitempty"`  // why there is no segment
}

// Ring sizes: each pair on a host has a segment of two rings. A host's
// rings together stay under ringBudget where possible: the ring size is
// the largest power of two with n·(n−1)·size ≤ ringBudget for n ranks on
// the host, between minRingSize and maxRingSize (ENGINE.md).
const (
	ringBudget  = 64 << 20
	maxRingSize = 2 << 20 // a 1 MiB message fits: the sender does not wait for the reader
	minRingSize = 64 << 10
)

// ringSizeFor is the ring size for n ranks on one host.
func ringSizeFor(n int) int {
	s := maxRingSize
	for s > minRingSize && n*(n-1)*s > ringBudget {
		s /= 2
	}
	return s
}

// bootID identifies this boot of this machine ("" if unknown).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ringEnv is what decides whether pairs use rings: DSMEXEC_TRANSPORT
// ("", "auto", "shm": rings where possible; "tcp": never) and, for tests
// only, DSMEXEC_TEST_TCP_PAIRS ("0-2,1-3": these pairs stay on TCP).
type ringEnv struct {
	off      string // why rings are off for every pair ("" = on)
	tcpPairs map[[2]int]bool
}

func readRingEnv(getenv func(string) string) (ringEnv, error) {
	var re ringEnv
	switch t := getenv("DSMEXEC_TRANSPORT"); t {
	case "", "auto", "shm":
	case "tcp":
		re.off = "DSMEXEC_TRANSPORT=tcp"
	default:
		return re, fmt.Errorf("rank: DSMEXEC_TRANSPORT=%q: want tcp or auto", t)
	}
	if s := getenv("DSMEXEC_TEST_TCP_PAIRS"); s != "" {
		re.tcpPairs = map[[2]int]bool{}
		for _, p := range strings.Split(s, ",") {
			var a, b int
			if _, err := fmt.Sscanf(p, "%d-%d", &a, &b); err != nil {
				return re, fmt.Errorf("rank: DSMEXEC_TEST_TCP_PAIRS=%q: want pairs such as 0-2,1-3", s)
			}
			re.tcpPairs[[2]int{min(a, b), max(a, b)}] = true
		}
	}
	return re, nil
}

// prefixed reads what the handshake buffered, then the connection.
type prefixed struct {
	pre []byte
	c   net.Conn
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.c.Read(b)
}

// readControl reads exactly one control frame of type typ (nothing past
// it, so the rest stays for the link).
func readControl(r io.Reader, peer int, typ uint8) ([]byte, error) {
	var h wire.Header
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("read from rank %d: %w", peer, err)
	}
	if err := h.Check(4096); err != nil {
		return nil, fmt.Errorf("from rank %d: %w", peer, err)
	}
	if h.Channel() != wire.ChanControl || h.Type() != typ {
		return nil, fmt.Errorf("rank %d sent %s, want control type %d", peer, h.String(), typ)
	}
	body := make([]byte, h.Len())
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read from rank %d: %w", peer, err)
	}
	return body, nil
}

func writeControl(c net.Conn, me int, typ uint8, body []byte) error {
	h := wire.MakeHeader(wire.ChanControl, typ, 0, me, len(body))
	_, err := c.Write(append(h[:], body...))
	return err
}

// ringPlan is what a rank knows about rings before any connection: which
// peers share its host, the ring size, the boot id and whether rings are
// off.
type ringPlan struct {
	me   int
	host string
	same []bool
	size int
	boot string
	off  string // why rings are off for every pair ("" = on)
	env  ringEnv
}

func newRingPlan(me int, host string, addrs []string, re ringEnv) *ringPlan {
	p := &ringPlan{me: me, host: host, same: make([]bool, len(addrs)), env: re, off: re.off}
	myHost, _, _ := net.SplitHostPort(addrs[me])
	local := 0
	for j, a := range addrs {
		if h, _, _ := net.SplitHostPort(a); h == myHost {
			local++
			p.same[j] = j != me
		}
	}
	p.size = ringSizeFor(local)
	if local >= 2 {
		p.boot = bootID()
		if p.off == "" && p.boot == "" {
			p.off = "no /proc/sys/kernel/random/boot_id"
		}
	}
	return p
}

// setupRings runs setupRing with every peer whose connection is in conns,
// all at once (each pair's exchange is independent). It returns the
// segments by rank (nil: the pair stays on TCP).
func setupRings(ctx context.Context, me int, host string, addrs []string, conns []*mesh.Conn, re ringEnv) ([]*shm.Segment, error) {
	p := newRingPlan(me, host, addrs, re)
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	segs := make([]*shm.Segment, len(addrs))
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for j, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			segs[j], errs[j] = p.setup(c, dl)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, s := range segs {
			if s != nil {
				s.Close()
			}
		}
		return nil, err
	}
	return segs, nil
}

// setup offers or takes a shared-memory segment on c, a new connection to
// a peer, before any user traffic: when the peer's mesh address has this
// rank's host, the lower rank of the pair creates a segment and sends RING
// OFFER, the higher checks boot_id and host name, opens and unlinks it and
// answers RING REPLY. It returns the segment (nil: the pair stays on TCP)
// and leaves in c.Buffered what the peer sent past the setup. Only a
// broken connection is an error. It runs on the goroutine that made the
// connection (mesh.Lazy's Setup), so pairs never wait for each other.
func (p *ringPlan) setup(c *mesh.Conn, dl time.Time) (seg *shm.Segment, err error) {
	j, me := c.Rank, p.me
	if !p.same[j] {
		return nil, nil
	}
	c.TCP.SetDeadline(dl)
	rd := &prefixed{pre: c.Buffered, c: c.TCP}
	defer func() {
		c.TCP.SetDeadline(time.Time{})
		c.Buffered = rd.pre
		if err != nil && seg != nil {
			seg.Unlink()
			seg.Close()
			seg = nil
		}
	}()
	if me < j {
		o := ringOffer{BootID: p.boot, Host: p.host}
		switch {
		case p.off != "":
			o.Why = p.off
		case p.env.tcpPairs[[2]int{me, j}]:
			o.Why = "DSMEXEC_TEST_TCP_PAIRS"
		default:
			s, name, err := shm.Create(p.size)
			if err != nil {
				o.Why = err.Error()
			} else {
				seg, o.Name = s, name
			}
		}
		body, _ := json.Marshal(o)
		if err := writeControl(c.TCP, me, typeRingOffer, body); err != nil {
			return seg, fmt.Errorf("offer a ring to rank %d: %w", j, err)
		}
		body, err := readControl(rd, j, typeRingReply)
		if err != nil {
			return seg, err
		}
		if len(body) > 0 {
			verbosef("rank %d: rank %d stays on TCP: %s", me, j, body)
		}
		if seg != nil {
			seg.Unlink()
			if len(body) > 0 {
				seg.Close()
				seg = nil
			}
		}
	} else {
		body, err := readControl(rd, j, typeRingOffer)
		if err != nil {
			return nil, err
		}
		var o ringOffer
		why := ""
		switch {
		case json.Unmarshal(body, &o) != nil:
			why = "bad offer"
		case o.Name == "":
			why = fmt.Sprintf("rank %d: %s", j, o.Why)
		case p.off != "":
			why = fmt.Sprintf("rank %d: %s", me, p.off)
		case o.BootID != p.boot || o.Host != p.host:
			why = fmt.Sprintf("another machine (host %q boot %s, here %q boot %s)", o.Host, o.BootID, p.host, p.boot)
		default:
			s, err := shm.Open(o.Name)
			if err != nil {
				why = err.Error()
			} else {
				s.Unlink()
				seg = s
			}
		}
		if why != "" {
			verbosef("rank %d: rank %d stays on TCP: %s", me, j, why)
		}
		if err := writeControl(c.TCP, me, typeRingReply, []byte(why)); err != nil {
			return seg, fmt.Errorf("answer rank %d's ring: %w", j, err)
		}
	}
	if seg != nil {
		verbosef("rank %d: rank %d over shared memory (rings of %d KiB)", me, j, seg.RingSize()>>10)
	}
	return seg, nil
}

// attachRing makes l's stream the segment's rings; the socket then only
// carries doorbells and says when the peer is gone.
func (l *link) attachRing(s *shm.Segment) {
	l.seg = s
	l.rr = s.Reader()
	l.rw = s.Writer()
	l.chunk = min(64<<10, s.RingSize()/4)
	// What the handshake buffered from the socket are doorbells.
	l.tn = copy(l.tbuf[:], l.rbuf[l.rpos:l.rend])
	l.rpos, l.rend = 0, 0
}

// rdRing reads the ring: n > 0, errAgain, or io.EOF once the socket said
// the peer is gone (or it closed the segment) and the ring is empty.
func (l *link) rdRing(p []byte) (int, error) {
	n, err := l.rr.OwnTryRead(p) // (the driver; segments close after the last one)
	switch {
	case n > 0:
		return n, nil
	case err == io.EOF || err == nil && l.tcpEOF:
		return 0, io.EOF
	case err != nil:
		return 0, fmt.Errorf("shared-memory ring: %w", err)
	}
	return 0, errAgain
}

// pumpDoorbells reads the socket of a ring link (the driver only): it
// holds nothing but doorbell frames, which are dropped; EOF sets tcpEOF
// (the ring is then drained to its end by pump).
func (l *link) pumpDoorbells() error {
	for !l.tcpEOF {
		n, err := rawRead(l.fd, l.tbuf[l.tn:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil
		case err != nil:
			return fmt.Errorf("read from rank %d: %w", l.peer, err)
		case n == 0:
			l.tcpEOF = true // (a partial doorbell left at the end is only a hint)
			return nil
		}
		l.tn += n
		short := n < len(l.tbuf)-(l.tn-n)
		k := 0
		for ; l.tn-k >= wire.HeaderSize; k += wire.HeaderSize {
			var h wire.Header
			copy(h[:], l.tbuf[k:])
			if h.Check(0) != nil || h.Channel() != wire.ChanControl || h.Type() != typeDoorbell || h.Len() != 0 {
				return fmt.Errorf("rank %d sent an unexpected frame (%s) on the socket beside its ring", l.peer, h.String())
			}
		}
		l.tn = copy(l.tbuf[:], l.tbuf[k:l.tn])
		if short {
			return nil // nothing more now (epoll is level-triggered)
		}
	}
	return nil
}

// doorbell wakes the peer parked on its sockets: an empty control frame.
// A doorbell the socket cannot take now is not needed: the peer has unread
// bytes there, which wake it anyway; only a partly written one is kept and
// finished first next time (frames must stay whole).
func (l *link) doorbell() {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if l.npend > 0 {
		k, err := rawWrite(l.fd, l.pend[:l.npend])
		if err == nil && k > 0 {
			l.npend = copy(l.pend[:], l.pend[k:l.npend])
		}
		return
	}
	h := wire.MakeHeader(wire.ChanControl, typeDoorbell, 0, l.e.rank, 0)
	k, err := rawWrite(l.fd, h[:])
	if err == nil && k < len(h) {
		l.npend = copy(l.pend[:], h[k:])
	}
}

// flushDoorbell finishes a partly written doorbell before the socket is
// shut (bounded: the peer reads its socket while it lives).
func (l *link) flushDoorbell() {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	deadline := time.Now().Add(time.Second)
	for l.npend > 0 && time.Now().Before(deadline) {
		k, err := rawWrite(l.fd, l.pend[:l.npend])
		if err == nil && k > 0 {
			l.npend = copy(l.pend[:], l.pend[k:l.npend])
			continue
		}
		if err != unix.EAGAIN && err != unix.EINTR {
			return
		}
		fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLOUT}}
		unix.Poll(fds, 100)
	}
}

// writeRing writes iov completely into the ring, in pieces of at most
// l.chunk so the reader drains while this copies; a doorbell follows any
// piece the parked reader must see. While the ring is full the sender
// waits as on a full socket: driving progress if nobody else does.
func (l *link) writeRing(iov [][]byte) error {
	for len(iov) > 0 {
		part := l.wiov[:0]
		left := l.chunk
		for _, b := range iov {
			if left == 0 {
				break
			}
			k := min(len(b), left)
			part = append(part, b[:k])
			left -= k
		}
		n, bell, err := l.rw.TryWriteBell(part)
		clear(part)
		if err != nil {
			return fmt.Errorf("write to rank %d: %w", l.peer, err)
		}
		if n == 0 {
			if err := l.waitRing(); err != nil {
				return err
			}
			continue
		}
		if bell {
			l.doorbell()
		}
		iov = advanceIov(iov, n)
	}
	return nil
}

// waitRing blocks until the driver saw room in the ring (or the link or
// engine went down).
func (l *link) waitRing() error {
	e := l.e
	e.mu.Lock()
	if err := l.armWriterLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	l.ringWant.Store(true)
	e.nudgeLocked() // a parked driver did not ask this ring for a doorbell
	e.mu.Unlock()
	e.block(l.writer)
	return nil
}

// pollRings is the driver's look at every ring, without a system call:
// data to read, room for a waiting sender.
func (e *engine) pollRings() bool {
	did := false
	for _, l := range e.rings {
		if l.down != nil {
			continue
		}
		if l.ringWant.Load() {
			if n, err := l.rw.Writable(); n > 0 || err != nil {
				l.ringWant.Store(false)
				e.mu.Lock()
				l.wantOut = false
				l.writable = true
				e.wakeLocked(l.writer)
				e.mu.Unlock()
				did = true
			}
		}
		if l.stalled || l.rr.Empty() {
			continue
		}
		// Not empty: bytes, the peer's close or a bad index, which pump
		// reads (Readable would say the same under the reader's lock).
		l.pump()
		did = true
	}
	return did
}

// prepareRings tells every ring's peer that the driver is about to park
// (so its next write rings a doorbell, as does the reader making room for
// a waiting sender), then looks once more: true means something is there
// and the driver must not park. cancelRings undoes it after.
func (e *engine) prepareRings() bool {
	for _, l := range e.rings {
		if l.down != nil {
			continue
		}
		if !l.stalled {
			l.rr.PrepareSleep()
			l.sleeping = true
		}
		if l.ringWant.Load() {
			l.rw.PrepareWait()
			l.waiting = true
		}
	}
	for _, l := range e.rings {
		if l.sleeping {
			if n, err := l.rr.Readable(); n > 0 || err != nil {
				return true
			}
		}
		if l.waiting {
			if n, err := l.rw.Writable(); n > 0 || err != nil {
				return true
			}
		}
	}
	return false
}

func (e *engine) cancelRings() {
	for _, l := range e.rings {
		if l.sleeping {
			l.rr.CancelSleep()
			l.sleeping = false
		}
		if l.waiting {
			l.rw.CancelWait()
			l.waiting = false
		}
	}
}
