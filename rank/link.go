package rank

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/internal/shm"
	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// link is the connection to one peer: a byte stream of wire frames read by
// the driver (pump) and written by senders under wmu. The stream is a TCP
// socket's fd, taken out of the Go runtime so that only the engine's epoll
// set watches it, or, between ranks on one host, a pair of shared-memory
// rings (ring.go) polled every round, the socket then carrying only
// doorbells and the peer's EOF. rd and writeAll are the only calls on the
// stream.
type link struct {
	e    *engine
	peer int
	fd   int

	// Read side: the driver only (or under e.mu where noted).
	rbuf       []byte
	rpos, rend int
	inBody     bool // reading the body of a frame
	fragLeft   int  // body bytes of the current frame still to read
	more       bool // the current user frame has FlagMore
	inMsg      bool // between a user message's first frame and its last
	cur        *msg // the message being read
	dst        []byte
	got        int  // payload bytes of cur read so far
	alloc      bool // dst must be allocated (outside e.mu)
	bye        bool // the peer said BYE
	nread      uint // reads that returned bytes (the driver)
	stalled    bool // under e.mu
	peerClosed bool // under e.mu: seen closed while stalled
	down       error
	gone       atomic.Bool // down is set (read by senders without the lock)
	inSet      bool        // in the epoll set (under e.mu)
	rdErr      error

	// Write side.
	wmu      sync.Mutex
	wbuf     []byte
	writable bool    // under e.mu: EPOLLOUT seen
	wantOut  bool    // under e.mu
	writer   *waiter // the sender waiting for EPOLLOUT

	// Shared-memory ring (ring.go); nil: the stream is the socket. With a
	// ring the socket carries only doorbells and says when the peer is
	// gone (EOF).
	seg      *shm.Segment
	rr       *shm.Reader
	rw       *shm.Writer
	chunk    int         // the most one TryWrite publishes
	wiov     [4][]byte   // under wmu
	tbuf     [1024]byte  // doorbell bytes read from the socket (driver)
	tn       int         //
	tcpEOF   bool        // driver: the socket said EOF
	ringWant atomic.Bool // a sender waits for room in the ring
	sleeping bool        // driver: PrepareSleep done for this park
	waiting  bool        // driver: PrepareWait done for this park
	dmu      sync.Mutex  // doorbell writes on the socket
	pend     [wire.HeaderSize]byte
	npend    int
}

const (
	inEvents  = unix.EPOLLIN | unix.EPOLLRDHUP
	outEvent  = unix.EPOLLOUT
	rbufSize  = 64 << 10
	directMin = 4 << 10          // a fragment rest this big is read straight into its destination
	typeBye   = wire.TypeMeshBye // wire.ChanControl BYE (as internal/mesh)
)

// newLink takes the connection's socket out of the Go runtime: a duplicate
// of its fd, non-blocking, and the net.Conn closed. buffered is what the
// handshake read past its end.
func newLink(e *engine, peer int, tc *net.TCPConn, buffered []byte) (*link, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) {
		fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("rank: dup the connection to rank %d: %w", peer, derr)
	}
	tc.Close()
	return newLinkFd(e, peer, fd, buffered)
}

// newLinkFd makes a link of a stream socket's fd (tests use socketpairs).
func newLinkFd(e *engine, peer, fd int, buffered []byte) (*link, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	l := &link{e: e, peer: peer, fd: fd, rbuf: make([]byte, rbufSize)}
	l.rend = copy(l.rbuf, buffered)
	return l, nil
}

// interestLocked sets the link's events in the epoll set from its state.
func (e *engine) interestLocked(l *link) {
	var ev uint32
	if !l.stalled && l.down == nil {
		ev = inEvents
	}
	if l.wantOut && l.down == nil && l.rw == nil { // (a ring's room is polled)
		ev |= outEvent
	}
	in, err := e.poller.set(l.fd, int32(l.peer), ev, l.inSet)
	if err == nil {
		l.inSet = in
	}
}

// rd reads from the stream without blocking: n > 0, or 0 with err
// (errAgain: nothing there now; io.EOF: the peer closed).
func (l *link) rd(p []byte) (int, error) {
	if l.rr != nil {
		return l.rdRing(p)
	}
	for {
		n, err := rawRead(l.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, errAgain
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		l.nread++
		return n, nil
	}
}

var errAgain = fmt.Errorf("rank: would block")

// pump reads and handles everything the link has now (the driver only).
func (l *link) pump() {
	if l.down != nil {
		return
	}
	if err := l.pumpErr(); err != nil {
		l.lost(err)
		return
	}
	if l.rr != nil && l.rr.OwnWriterNeedsDoorbell() {
		l.doorbell() // the peer's sender waits for the room just made
	}
}

func (l *link) pumpErr() error {
	// After a short read the stream has nothing more now: do not ask
	// again (a system call that says EAGAIN). Epoll is level-triggered and
	// rings are polled every round, so what comes later is seen.
	short := false
	for {
		if l.stalled {
			return nil
		}
		if l.inBody {
			if l.fragLeft == 0 {
				if err := l.endFrame(); err != nil {
					return err
				}
				continue
			}
			if l.alloc {
				l.dst = make([]byte, l.cur.total)
				l.alloc = false
				if !l.cur.direct {
					l.cur.buf = l.dst
				}
			}
			if avail := l.rend - l.rpos; avail > 0 {
				k := min(avail, l.fragLeft)
				l.sink(l.rbuf[l.rpos : l.rpos+k])
				l.rpos += k
				l.fragLeft -= k
				continue
			}
			if l.fragLeft >= directMin && l.got < len(l.dst) {
				n := min(l.fragLeft, len(l.dst)-l.got)
				if short {
					return nil
				}
				k, err := l.rd(l.dst[l.got : l.got+n])
				if err == errAgain {
					return nil
				}
				if err != nil {
					return err
				}
				short = k < n
				l.got += k
				l.fragLeft -= k
				continue
			}
		} else if avail := l.rend - l.rpos; avail >= wire.HeaderSize {
			done, err := l.header()
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		// Read more into rbuf.
		if l.rpos == l.rend {
			l.rpos, l.rend = 0, 0
		} else if l.rend == len(l.rbuf) {
			copy(l.rbuf, l.rbuf[l.rpos:l.rend])
			l.rend -= l.rpos
			l.rpos = 0
		}
		if short {
			return nil
		}
		k, err := l.rd(l.rbuf[l.rend:])
		if err == errAgain {
			return nil
		}
		short = k < len(l.rbuf)-l.rend
		if err != nil {
			if err == io.EOF {
				if l.bye && !l.inMsg && !l.inBody && l.rpos == l.rend {
					return errBye
				}
				return fmt.Errorf("connection closed by rank %d", l.peer)
			}
			return fmt.Errorf("read from rank %d: %w", l.peer, err)
		}
		l.rend += k
	}
}

var errBye = fmt.Errorf("bye")

// sink takes payload bytes of the current message.
func (l *link) sink(b []byte) {
	if l.got < len(l.dst) {
		copy(l.dst[l.got:], b)
	}
	l.got += len(b)
}

// header handles the frame header (and user prefix) at rpos, if all of it
// is buffered; done says it was consumed.
func (l *link) header() (done bool, err error) {
	var h wire.Header
	copy(h[:], l.rbuf[l.rpos:])
	if err := h.Check(wire.MaxBody); err != nil {
		return false, fmt.Errorf("from rank %d: %w", l.peer, err)
	}
	switch {
	case h.Channel() == wire.ChanControl && h.Type() == typeBye && h.Len() == 0:
		l.rpos += wire.HeaderSize
		l.bye = true
		return true, nil
	case h.Channel() != wire.ChanUser || h.Type() != wire.TypeUserMessage:
		return false, fmt.Errorf("rank %d sent an unexpected frame (%s)", l.peer, h.String())
	}
	more := h.Flags()&wire.FlagMore != 0
	if l.inMsg {
		if l.got+h.Len() > l.cur.total {
			return false, fmt.Errorf("rank %d sent %d bytes for a message of %d", l.peer, l.got+h.Len(), l.cur.total)
		}
		l.rpos += wire.HeaderSize
		l.inBody, l.fragLeft, l.more = true, h.Len(), more
		return true, nil
	}
	if l.rend-l.rpos < wire.HeaderSize+wire.UserPrefixSize {
		return false, nil
	}
	if h.Len() < wire.UserPrefixSize {
		return false, fmt.Errorf("rank %d sent a user frame of %d bytes", l.peer, h.Len())
	}
	ctx, tag, total, err := wire.ParseUserPrefix(l.rbuf[l.rpos+wire.HeaderSize:])
	if err != nil {
		return false, fmt.Errorf("from rank %d: %w", l.peer, err)
	}
	body := h.Len() - wire.UserPrefixSize
	if body > int(total) || !more && body != int(total) {
		return false, fmt.Errorf("rank %d sent a first fragment of %d bytes for a message of %d", l.peer, body, total)
	}
	l.rpos += wire.HeaderSize + wire.UserPrefixSize
	e := l.e
	e.mu.Lock()
	m := e.newMsgLocked()
	m.ctx, m.src, m.tag, m.total = ctx, l.peer, int(tag), int(total)
	dst, alloc, stall := e.arriveLocked(m)
	if !more && !stall && l.rend-l.rpos >= body {
		// The whole message is buffered (a small one, usually): match,
		// copy and complete it in this one turn of the lock.
		if alloc {
			dst = make([]byte, m.total)
			if !m.direct {
				m.buf = dst
			}
		}
		copy(dst, l.rbuf[l.rpos:l.rpos+body])
		e.completeLocked(m, dst)
		e.mu.Unlock()
		l.rpos += body
		return true, nil
	}
	l.cur, l.dst, l.alloc, l.got = m, dst, alloc, 0
	l.inMsg, l.inBody, l.fragLeft, l.more = true, true, body, more
	if stall {
		l.stalled = true
		e.stalled = append(e.stalled, l)
		e.interestLocked(l)
	}
	e.mu.Unlock()
	return true, nil
}

// endFrame: the current frame's body is all read.
func (l *link) endFrame() error {
	l.inBody = false
	if l.more {
		return nil
	}
	m := l.cur
	if l.got != m.total {
		return fmt.Errorf("rank %d sent %d bytes for a message of %d", l.peer, l.got, m.total)
	}
	l.inMsg = false
	e := l.e
	e.mu.Lock()
	e.completeLocked(m, l.dst)
	e.mu.Unlock()
	l.cur, l.dst = nil, nil
	return nil
}

// lost takes the link down (the driver, after a read error or EOF).
func (l *link) lost(err error) {
	e := l.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if l.down != nil {
		return
	}
	hard := err != errBye
	if !hard {
		err = errPeerFinalized
	}
	pe := &PeerError{Rank: l.peer, Err: err}
	l.down = pe
	l.gone.Store(true)
	e.interestLocked(l)
	if m := l.cur; m != nil && l.inMsg {
		if m.req != nil {
			e.failLocked(m.req, pe)
		}
		if m.filed {
			e.q.unfile(m)
		}
		if m.counted {
			e.freedLocked(m.total)
		}
		for i, x := range e.stalled {
			if x == l {
				e.stalled = append(e.stalled[:i], e.stalled[i+1:]...)
				break
			}
		}
		l.cur, l.dst, l.inMsg = nil, nil, false
	}
	e.wakeLocked(l.writer)
	e.peerDownLocked(l.peer, pe, hard)
}

// send writes one user message (the caller holds no engine lock).
func (l *link) send(ctx uint32, tag int, b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	total := len(b)
	if total+wire.UserPrefixSize <= smallMessage {
		n := wire.HeaderSize + wire.UserPrefixSize + total
		if cap(l.wbuf) < n {
			l.wbuf = make([]byte, n)
		}
		buf := l.wbuf[:n]
		h := wire.MakeHeader(wire.ChanUser, wire.TypeUserMessage, 0, l.e.rank, wire.UserPrefixSize+total)
		copy(buf, h[:])
		wire.PutUserPrefix(buf[wire.HeaderSize:], ctx, int64(tag), int64(total))
		copy(buf[wire.HeaderSize+wire.UserPrefixSize:], b)
		return l.writeAll([][]byte{buf})
	}
	var hb [wire.HeaderSize + wire.UserPrefixSize]byte
	first := true
	for first || len(b) > 0 {
		room := wire.MaxBody
		if first {
			room -= wire.UserPrefixSize
		}
		k := min(room, len(b))
		flags := uint8(0)
		if k < len(b) {
			flags = wire.FlagMore
		}
		var iov [][]byte
		if first {
			h := wire.MakeHeader(wire.ChanUser, wire.TypeUserMessage, flags, l.e.rank, wire.UserPrefixSize+k)
			copy(hb[:], h[:])
			wire.PutUserPrefix(hb[wire.HeaderSize:], ctx, int64(tag), int64(total))
			iov = [][]byte{hb[:], b[:k]}
		} else {
			h := wire.MakeHeader(wire.ChanUser, wire.TypeUserMessage, flags, l.e.rank, k)
			copy(hb[:], h[:])
			iov = [][]byte{hb[:wire.HeaderSize], b[:k]}
		}
		if err := l.writeAll(iov); err != nil {
			return err
		}
		b = b[k:]
		first = false
	}
	return nil
}

// smallMessage is the size up to which a message is copied behind its
// header and written with one write; larger ones go out with writev.
const smallMessage = 16 << 10

// sendBye writes the control frame saying this rank is closing.
func (l *link) sendBye() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	h := wire.MakeHeader(wire.ChanControl, typeBye, 0, l.e.rank, 0)
	return l.writeAll([][]byte{h[:]})
}

// writeAll writes iov completely; while the socket is full the sender
// waits for it as any waiter does: driving progress if nobody else does,
// so two ranks sending to each other never deadlock.
func (l *link) writeAll(iov [][]byte) error {
	if l.rw != nil {
		return l.writeRing(iov)
	}
	for len(iov) > 0 {
		var n int
		var err error
		if len(iov) == 1 {
			n, err = rawWrite(l.fd, iov[0])
		} else {
			n, err = unix.Writev(l.fd, iov)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := l.waitWritable(); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("write to rank %d: %w", l.peer, err)
		}
		iov = advanceIov(iov, n)
	}
	return nil
}

func (l *link) waitWritable() error {
	e := l.e
	e.mu.Lock()
	if err := l.armWriterLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	e.interestLocked(l)
	e.mu.Unlock()
	e.block(l.writer)
	return nil
}

// advanceIov drops the first n written bytes from iov, and any empty
// slices that then lead it.
func advanceIov(iov [][]byte, n int) [][]byte {
	for n > 0 && len(iov) > 0 {
		if n >= len(iov[0]) {
			n -= len(iov[0])
			iov = iov[1:]
		} else {
			iov[0] = iov[0][n:]
			n = 0
		}
	}
	for len(iov) > 0 && len(iov[0]) == 0 {
		iov = iov[1:]
	}
	return iov
}

// armWriterLocked, with e.mu held, returns the error that ends a wait for
// room to write (link down, engine closed), or else arms l.writer so that
// the caller can block on it once it asked the driver to watch for room.
func (l *link) armWriterLocked() error {
	e := l.e
	if l.down != nil {
		return l.down
	}
	if e.closed != nil {
		return e.closed
	}
	if l.writer == nil {
		l.writer = newWaiter()
		l.writer.cond = func() bool { return l.writable || l.down != nil || e.closed != nil }
	}
	l.writable = false
	l.wantOut = true
	return nil
}

// Connections on demand. Under mpirun (and PMI) the application mesh is a
// mesh.Lazy: a send to a peer without a link waits for one (linkLocked),
// a receive posted from a specific higher peer starts one (demandLocked),
// and a connection made from either side becomes a link here (addLink). A
// peer that cannot be reached, or that mpirun reports lost before any
// connection to it exists, is down (peerFailed).
//
// e.links is written under e.mu only by the driver or while there is
// none, so that the driver may read it without the lock: a new link waits
// in e.pend until the driver's next round (it is kicked) or until the
// driver role is dropped.

// addLink hands the engine the link of a new connection.
func (e *engine) addLink(l *link) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pend = append(e.pend, l)
	if e.driver == nil {
		e.installPendingLocked()
		return
	}
	e.pendWant.Store(true)
	e.nudgeLocked()
}

// installPendingLocked puts the pending links in the engine (e.mu held,
// by the driver or with no driver); it reports whether there were any.
func (e *engine) installPendingLocked() bool {
	if len(e.pend) == 0 {
		return false
	}
	ls := e.pend
	e.pend = nil
	e.pendWant.Store(false)
	for _, l := range ls {
		if e.closed != nil || e.links[l.peer] != nil || e.poller == nil {
			unix.Close(l.fd)
			if l.seg != nil {
				l.seg.Close()
			}
			continue
		}
		e.links[l.peer] = l
		e.out[l.peer].Store(l)
		if l.rr != nil {
			e.rings = append(e.rings, l)
		} else {
			e.nSock++
		}
		e.interestLocked(l)
		if l.rend > 0 || l.tn > 0 {
			e.scheduleResumeLocked(l) // bytes the setup read past its end
		}
	}
	e.wakeConnLocked()
	return true
}

// settleLinks installs the pending links (Finalize, after the mesh
// closed and before the BYEs go to every link): at once if nobody drives,
// else it waits for the driver (kicked by addLink) to do it.
func (e *engine) settleLinks() {
	e.mu.Lock()
	if e.driver == nil {
		e.installPendingLocked()
	}
	if len(e.pend) == 0 || e.poller == nil {
		e.mu.Unlock()
		return
	}
	w := newWaiter()
	w.cond = func() bool { return len(e.pend) == 0 || e.closed != nil }
	w.deadline = time.Now().Add(5 * time.Second)
	e.blockListed(&e.connWait, w)
	e.mu.Unlock()
}

// blockListed blocks w while it is in *list (where those who change what
// w waits for find it to wake it), then takes it out. e.mu is held on
// entry and on return, released while blocked.
func (e *engine) blockListed(list *[]*waiter, w *waiter) {
	*list = append(*list, w)
	e.mu.Unlock()
	e.block(w)
	e.mu.Lock()
	for i, x := range *list {
		if x == w {
			*list = append((*list)[:i], (*list)[i+1:]...)
			break
		}
	}
}

func (e *engine) wakeConnLocked() {
	for _, w := range e.connWait {
		e.wakeLocked(w)
	}
}

// peerFailed records that no connection to peer can be made (mpirun says
// it is lost, or it could not be reached in time): what needs it fails
// with a *PeerError. A peer with a link is left to the link, which says
// itself when the peer is gone, after what it sent before.
func (e *engine) peerFailed(peer int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.links[peer] != nil {
		return
	}
	for _, l := range e.pend {
		if l.peer == peer {
			return
		}
	}
	e.peerDownLocked(peer, &PeerError{Rank: peer, Err: err}, true)
	e.wakeConnLocked()
}

// linkLocked returns the link to peer `to`, waiting (and driving progress
// meanwhile, like any waiter) for the connection to be made if there is
// none yet. e.mu is held on entry and on return.
func (e *engine) linkLocked(to int) (*link, error) {
	for {
		if e.closed != nil {
			return nil, e.closed
		}
		if l := e.links[to]; l != nil {
			return l, nil
		}
		if err := e.down[to]; err != nil {
			return nil, err
		}
		if e.want == nil {
			return nil, &PeerError{Rank: to, Err: errNoLink}
		}
		e.want(to)
		w := newWaiter()
		w.cond = func() bool { return e.links[to] != nil || e.down[to] != nil || e.closed != nil }
		e.blockListed(&e.connWait, w)
	}
}

var errNoLink = errors.New("no connection to it")

// demandLocked starts the connection to `from` for a receive posted from
// it, when this rank is the lower of the two (whose dial wins a crossing
// anyway); a higher rank waits for the sender's connection. (A sender
// always connects: linkLocked.)
func (e *engine) demandLocked(from int) {
	if from > e.rank && from < e.size && e.want != nil && e.links[from] == nil && e.down[from] == nil {
		e.want(from)
	}
}
