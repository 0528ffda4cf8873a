package dsm

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	acceptloop "github.com/dsmexec/dsmexec/internal/listen"
	"github.com/dsmexec/dsmexec/internal/uffd"
	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// The memory mesh on demand. A page server connects to another only when
// its driver first sends that rank a frame (a fault whose home is there, a
// forward, an invalidation, a lock): the frame is queued on the peer's
// rawConn and a dial starts. Connections are accepted at any time. The
// handshakes run in goroutines (on the process's second P), which hand the
// finished connection to the loop through an eventfd; the loop alone
// touches the peer table and the driver.
//
// Simultaneous dials: after the handshake the acceptor sends a VERDICT
// frame, and the dialer sends nothing before it. An acceptor that is
// itself dialling the dialer (or waits to) keeps the lower rank's dial:
// the higher rank accepts the lower one's connection and forgets its own
// dial; the lower rank answers the higher one's dial with VERDICT 1
// ("mine wins"), and the higher rank then waits for that connection. The
// frames queued for a peer wait in its rawConn, not in a connection, so
// neither side loses or reorders any whatever connection wins.

// peerState is where a memory-mesh peer's connection is.
type peerState uint8

const (
	peerIdle    peerState = iota // no connection, none being made
	peerDialing                  // a dial is running or waits for a slot
	peerYielded                  // our dial lost to the peer's: waiting for it
	peerUp                       // connected (fd valid until closed)
	peerGone                     // lost: frames for it are dropped
)

// Verdicts (VERDICT frame body).
const (
	verdictAccept  = 0
	verdictMineWin = 1
)

// maxDials bounds the dials a page server runs at once; more wait.
const maxDials = 8

// memNet is the pager's side of the memory mesh: the peers it has, the
// dials running and the connections handed over by the goroutines.
type memNet struct {
	memDialer
	srv *acceptloop.Server

	conns   []*rawConn // every peer ever asked for or connected, in that order
	dials   int        // dial goroutines running
	queue   []int      // ranks waiting for a dial slot
	yielded int        // peers in peerYielded

	wake int // eventfd: handoffs are waiting

	mu       sync.Mutex
	handoffs []handoff
}

// memDialer makes memory-mesh connections: dials with retries and
// verdict, and the acceptor's handshake; post receives each result. Both
// the page server's loop and the in-process (sigsegv) mesh use it.
type memDialer struct {
	self    int
	addrs   []string
	token   []byte
	budget  time.Duration // to connect to one peer, across retries
	attempt time.Duration // one attempt's handshake deadline
	logf    func(format string, args ...any)
	post    func(handoff)
}

// handoff is a connection (or a dial's end) from a goroutine to the loop.
type handoff struct {
	rank     int
	fd       int // -1: none
	left     []byte
	incoming bool        // accepted, waiting for the loop's verdict
	local    *localHello // a rank of this host joining the host's page server
	yield    bool        // dialled: the peer's own dial wins
	err      error       // dialled: failed for good
}

// connectBudget derives how long a page server keeps trying to connect to
// one peer from the rendezvous deadline's time left at CONNECT (which is
// about -rendezvous-timeout): at least 10 s; each attempt's handshake has
// a third of it (at least 2 s), retried with backoff.
func connectBudget(left time.Duration) (budget, attempt time.Duration) {
	budget = max(left, 10*time.Second)
	attempt = max(budget/3, 2*time.Second)
	return budget, attempt
}

// setupEpoll makes the loop's epoll set: control socket, userfaultfd and
// the eventfd of the connecting goroutines. Peer sockets join it as they
// connect.
func (p *pager) setupEpoll() error {
	if err := p.newEpoll(); err != nil {
		return err
	}
	for _, s := range []struct{ fd, tag int }{{p.ctl.fd, tagControl}, {p.u.Fd(), tagUffd}} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(s.tag)}
		if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			return os.NewSyscallError("epoll_ctl", err)
		}
	}
	return nil
}

// newEpoll makes the loop's epoll set with the eventfd of the connecting
// goroutines in it, and the loop's buffers.
func (p *pager) newEpoll() error {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return os.NewSyscallError("epoll_create1", err)
	}
	p.ep = ep
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return os.NewSyscallError("eventfd", err)
	}
	p.net.wake = wake
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: tagWake}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	p.msgs = make([]uffd.Msg, 64)
	p.evs = make([]unix.EpollEvent, 64)
	return nil
}

// startNet starts accepting memory-mesh connections; left is the time
// left of the rendezvous deadline.
func (p *pager) startNet(ln net.Listener, addrs []string, token []byte, left time.Duration) {
	n, self := len(addrs), p.cfg.Rank
	p.peers = make([]*rawConn, n)
	p.lost = make([]bool, n)
	p.net.memDialer = newMemDialer(self, addrs, token, left, p.logf, p.post)
	// The hardened accept loop (package listen) survives EMFILE, bounds
	// and times out unauthenticated connections and rate-limits its
	// warnings (one line per cause): strangers never stop it.
	p.net.srv = acceptloop.New(ln, acceptloop.Config{
		Name:              fmt.Sprintf("memory of rank %d", self),
		MaxPending:        min(2*n, 1024) + 64,
		MaxPendingPerHost: min(n, 512) + 16,
		HandshakeTimeout:  p.net.attempt,
		Warnf:             p.logf,
	})
	go p.net.srv.Serve(p.net.acceptOne)
}

func newMemDialer(self int, addrs []string, token []byte, left time.Duration, logf func(string, ...any), post func(handoff)) memDialer {
	md := memDialer{self: self, addrs: addrs, token: token, logf: logf, post: post}
	md.budget, md.attempt = connectBudget(left)
	return md
}

// post hands h to the loop.
func (p *pager) post(h handoff) {
	p.net.mu.Lock()
	p.net.handoffs = append(p.net.handoffs, h)
	p.net.mu.Unlock()
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(p.net.wake, one[:])
}

// acceptOne runs the handshake of an incoming connection (a goroutine of
// the accept loop) and hands it to the loop for its verdict.
func (p *memDialer) acceptOne(c net.Conn, g *acceptloop.Gate) {
	self, n := p.self, len(p.addrs)
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return
	}
	r := bufio.NewReaderSize(tc, 512)
	from, err := auth.Accept(tc, r, p.token, self, time.Now().Add(p.attempt), func(from int) error {
		if from < 0 || from >= n || from == self {
			return fmt.Errorf("dsm: memory of rank %d does not accept connections from rank %d", self, from)
		}
		return nil
	})
	if err != nil {
		g.Refuse("authentication failed", err)
		tc.Close()
		return
	}
	if !g.Authenticated() {
		tc.Close() // dropped meanwhile (handshake timeout, eviction, Close)
		return
	}
	tc.SetNoDelay(true)
	left, _ := r.Peek(r.Buffered())
	left = append([]byte(nil), left...)
	fd, err := detach(tc)
	if err != nil {
		p.logf("dsm: memory of rank %d: connection from rank %d: %v", self, from, err)
		return
	}
	p.post(handoff{rank: from, fd: fd, left: left, incoming: true})
}

// peer returns rank j's entry, making it on first use.
func (p *pager) peer(j int) *rawConn {
	c := p.peers[j]
	if c == nil {
		c = &rawConn{fd: -1, rank: j}
		p.peers[j] = c
		p.net.conns = append(p.net.conns, c)
	}
	return c
}

// connectTo starts connecting to c's rank: at once if fewer than maxDials
// dials run, else when one ends.
func (p *pager) connectTo(c *rawConn) {
	c.state, c.since = peerDialing, time.Now()
	if p.net.dials >= maxDials {
		p.net.queue = append(p.net.queue, c.rank)
		return
	}
	p.startDial(c)
}

func (p *pager) startDial(c *rawConn) {
	p.net.dials++
	j, deadline := c.rank, c.since.Add(p.net.budget)
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { p.post(p.net.dial(ctx, j, deadline)) }()
}

// dialEnded frees a dial slot and gives it to the next waiting rank.
func (p *pager) dialEnded() {
	p.net.dials--
	for len(p.net.queue) > 0 && p.net.dials < maxDials {
		j := p.net.queue[0]
		p.net.queue = p.net.queue[1:]
		if c := p.peers[j]; c.state == peerDialing {
			// The budget counts from now: the time spent waiting for a
			// slot is this host's, not the peer's.
			c.since = time.Now()
			p.startDial(c)
		}
	}
}

// dial connects to rank j's memory (a goroutine): attempts with a
// handshake deadline each, backoff between them, until deadline. A
// refused connection after the rendezvous means the page server is gone
// (its listener was open before it joined): it is retried twice only.
func (p *memDialer) dial(ctx context.Context, j int, deadline time.Time) handoff {
	self, addr := p.self, p.addrs[j]
	backoff := 20 * time.Millisecond
	refused := 0
	var last error
	for {
		if ctx.Err() != nil {
			return handoff{rank: j, fd: -1, err: ctx.Err()} // not needed any more
		}
		now := time.Now()
		if !now.Before(deadline) {
			if last == nil {
				last = os.ErrDeadlineExceeded
			}
			return handoff{rank: j, fd: -1, err: fmt.Errorf("dsm: memory of rank %d: no connection with rank %d at %s within %v: %w", self, j, addr, p.budget, last)}
		}
		ad := now.Add(p.attempt)
		if deadline.Before(ad) {
			ad = deadline
		}
		h, err := p.dialOnce(ctx, j, addr, ad)
		if err == nil {
			return h
		}
		last = err
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			if refused++; refused >= 3 {
				return handoff{rank: j, fd: -1, err: fmt.Errorf("dsm: memory of rank %d: rank %d's page server at %s refuses connections (it is gone): %w", self, j, addr, err)}
			}
		case errors.Is(err, auth.ErrDenied):
			return handoff{rank: j, fd: -1, err: fmt.Errorf("dsm: memory of rank %d: rank %d at %s: %w", self, j, addr, err)}
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		if t := time.Until(deadline); sleep > t {
			sleep = t
		}
		select {
		case <-time.After(max(sleep, 0)):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, time.Second)
	}
}

// dialOnce is one attempt: connect, handshake, verdict.
func (p *memDialer) dialOnce(ctx context.Context, j int, addr string, deadline time.Time) (handoff, error) {
	self := p.self
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return handoff{}, err
	}
	tc := c.(*net.TCPConn)
	tc.SetNoDelay(true)
	r := bufio.NewReaderSize(tc, 64<<10)
	if err := auth.Dial(tc, r, p.token, self, j, deadline); err != nil {
		tc.Close()
		return handoff{}, fmt.Errorf("authenticate: %w", err)
	}
	tc.SetReadDeadline(deadline)
	f, err := wire.ReadFrame(r, 1024)
	tc.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		tc.Close()
		return handoff{}, fmt.Errorf("waiting for the verdict: %w", err)
	case f.Channel == wire.ChanControl && f.Type == wire.TypeReject:
		tc.Close()
		return handoff{}, fmt.Errorf("refused: %s", f.Body)
	case f.Channel != wire.ChanControl || f.Type != wire.TypeMemVerdict || len(f.Body) != 1 || f.Body[0] > verdictMineWin:
		tc.Close()
		return handoff{}, fmt.Errorf("got a %s frame of type %d instead of the verdict", f.Channel, f.Type)
	case f.Body[0] == verdictMineWin:
		tc.Close()
		return handoff{rank: j, fd: -1, yield: true}, nil
	}
	left, _ := r.Peek(r.Buffered()) // what the acceptor sent right after the verdict
	left = append([]byte(nil), left...)
	fd, err := detach(tc)
	if err != nil {
		return handoff{}, err
	}
	return handoff{rank: j, fd: fd, left: left}, nil
}

// onHandoffs takes what the goroutines finished.
func (p *pager) onHandoffs() {
	var b [8]byte
	unix.Read(p.net.wake, b[:])
	p.net.mu.Lock()
	hs := p.net.handoffs
	p.net.handoffs = nil
	p.net.mu.Unlock()
	for _, h := range hs {
		if h.local != nil {
			p.addLocal(h)
			continue
		}
		if h.incoming {
			p.onIncoming(h)
		} else {
			p.onDialed(h)
		}
	}
}

// What to do with an authenticated incoming connection.
type decision uint8

const (
	takeIt     decision = iota // accept: VERDICT 0, it is the pair's connection
	mineWins                   // VERDICT 1: our own dial to the dialer is kept
	refuseUp                   // REJECT: we have a connection with the dialer
	refuseGone                 // REJECT: we declared the dialer lost
)

// decide is the rule for an incoming connection from rank j when this
// rank's entry for j is in state st: on simultaneous dials the lower
// rank's dial is kept.
func decide(st peerState, self, j int) decision {
	switch st {
	case peerUp:
		return refuseUp
	case peerGone:
		return refuseGone
	case peerDialing:
		if self < j {
			return mineWins
		}
	}
	return takeIt
}

// refusal is the frame that answers an incoming connection that is not
// taken (decision other than takeIt).
func refusal(dc decision, self, j int) []byte {
	var body []byte
	typ := wire.TypeReject
	switch dc {
	case mineWins:
		typ, body = wire.TypeMemVerdict, []byte{verdictMineWin}
	case refuseUp:
		body = fmt.Appendf(nil, "dsm: memory of rank %d is already connected with rank %d", self, j)
	default:
		body = fmt.Appendf(nil, "dsm: memory of rank %d: rank %d was lost", self, j)
	}
	h := wire.MakeHeader(wire.ChanControl, typ, 0, self, len(body))
	return append(h[:], body...)
}

// accepted is the VERDICT frame that accepts a connection.
func accepted(self int) []byte {
	h := wire.MakeHeader(wire.ChanControl, wire.TypeMemVerdict, 0, self, 1)
	return append(h[:], verdictAccept)
}

// onIncoming decides on an authenticated connection from rank h.rank.
func (p *pager) onIncoming(h handoff) {
	self, j := p.cfg.Rank, h.rank
	if p.host != nil && !p.host.acceptsHost(j) {
		unix.Write(h.fd, refusal(refuseGone, self, j))
		unix.Close(h.fd)
		return
	}
	c := p.peer(j)
	dc := decide(c.state, self, j)
	if dc != takeIt {
		if dc == mineWins {
			p.tracef("memory mesh: rank %d dialled while this rank dials it: this rank's dial wins", j)
		}
		unix.Write(h.fd, refusal(dc, self, j)) // a few bytes on a new socket: they fit
		unix.Close(h.fd)
		return
	}
	if c.state == peerYielded {
		p.net.yielded--
	}
	// A dial of ours still running loses: its end finds the peer up and
	// is dropped.
	c.out = append(accepted(self), c.out...)
	p.attach(c, h.fd, h.left)
}

// onDialed takes the end of a dial.
func (p *pager) onDialed(h handoff) {
	p.dialEnded()
	c := p.peers[h.rank]
	if c.cancel != nil {
		c.cancel()
		c.cancel = nil
	}
	if c.state != peerDialing {
		// Up through the peer's dial meanwhile, or lost: not needed.
		if h.fd >= 0 {
			unix.Close(h.fd)
		}
		return
	}
	switch {
	case h.err != nil:
		if !p.closing {
			p.logf("%v", h.err)
		}
		p.peerLost(h.rank, h.err)
	case h.yield:
		p.tracef("memory mesh: rank %d's dial wins over this rank's; waiting for it", h.rank)
		c.state, c.until = peerYielded, c.since.Add(p.net.budget)
		p.net.yielded++
	default:
		p.attach(c, h.fd, h.left)
	}
}

// attach makes c's connection fd, with what its handshake read ahead.
func (p *pager) attach(c *rawConn, fd int, left []byte) {
	c.fd, c.state = fd, peerUp
	c.in = make([]byte, max(64<<10, 2*len(left)))
	c.r, c.w = 0, copy(c.in, left)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(tagPeer0 + c.rank)}
	if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.peerLost(c.rank, fmt.Errorf("dsm: memory of rank %d: watch the connection with rank %d: %w", p.cfg.Rank, c.rank, os.NewSyscallError("epoll_ctl", err)))
		return
	}
	if p.host != nil {
		p.host.announce(c)
	} else if p.closing {
		c.queue(wire.ChanControl, typeBye, p.cfg.Rank)
	}
	p.tracef("memory mesh: connected with rank %d", c.rank)
	p.parsePeer(c)
	if !c.closed {
		p.flushPeer(c)
	}
}

// checkYielded declares lost the peers whose own dial did not come in
// time, and returns the loop's epoll timeout shortened to the next such
// deadline.
func (p *pager) checkYielded(now time.Time, timeout int) int {
	for _, c := range p.net.conns {
		if c.state != peerYielded {
			continue
		}
		if !now.Before(c.until) {
			p.peerLost(c.rank, fmt.Errorf("dsm: memory of rank %d: rank %d said it would connect (simultaneous dials) but did not within %v", p.cfg.Rank, c.rank, p.net.budget))
			continue
		}
		ms := int(c.until.Sub(now)/time.Millisecond) + 1
		if timeout < 0 || ms < timeout {
			timeout = ms
		}
	}
	return timeout
}
