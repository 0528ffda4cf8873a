package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/limits"
	"github.com/dsmexec/dsmexec/internal/listen"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// typeOK on wire.ChanControl: the acceptor took the connection (sent right
// after the handshake; a REJECT there says why not).
const typeOK = wire.TypeMeshOK

// OnDemandConfig describes this rank's place in a mesh whose connections
// are made when first needed (Lazy).
type OnDemandConfig struct {
	Rank     int
	Addrs    []string // listening address of every rank, indexed by rank
	Token    []byte
	Listener net.Listener // this rank's listener; it stays open until Close
	// Timeout bounds the making of one connection: a peer that is not
	// known to be lost is dialled again (with backoff) until Timeout has
	// passed since the first try. 0: 30 s. One attempt's handshake has
	// Timeout/3, between 2 s and 20 s.
	Timeout time.Duration
	// MaxDials caps the dial attempts in flight at once (0: 16).
	MaxDials int
	// Setup, if set, runs on every new connection on both sides before
	// Ready, on the goroutine that made it (the rank sets up its
	// shared-memory rings there); it may read c.Buffered and must leave
	// in it what it read past its end. An error fails the peer.
	Setup func(c *Conn, deadline time.Time) error
	// Ready takes over a new connection (exactly one per pair: the
	// crossing of two dials is resolved before either side calls Ready).
	Ready func(c *Conn)
	// Failed says no connection to peer can be made: it is known lost
	// (Lost) or the Timeout passed. Called once per peer, never after
	// Ready for that peer.
	Failed func(peer int, err error)
	// Refusals is how many refused connection attempts (RST: nothing
	// listens at the address) end the dial loop before Timeout (0: 4).
	// Every rank listens before its address is published, so refusals
	// mean its listener is gone: the rank has exited (or the host rejects
	// the port). Under Hydra or Slurm, which report no lost rank, this is
	// how a peer that died before anyone connected to it is found.
	Refusals int
	Logf     func(format string, args ...any)
	Name     string // "rank" by default
}

// Lazy is a mesh whose connections are made on first use, as Open MPI's
// btl/tcp does: Want(j) starts a connection to j unless one exists or is
// being made; connections from peers are accepted at any time until
// Close. Of two ranks that dial each other at once, the lower rank's dial
// wins: the lower refuses the higher's connection while its own dial is
// in flight, the higher always accepts the lower's. A connection is used
// only after the acceptor confirmed it (MESH OK after the handshake), so
// both sides agree on the one connection of the pair before a byte of
// user data travels on it.
type Lazy struct {
	cfg     OnDemandConfig
	attempt time.Duration
	srv     *listen.Server
	sem     chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex
	st     []pstate
	wanted []bool
	lost   []error     // mpirun says the peer is gone (Lost)
	kick   []chan bool // wakes a dial loop that backs off
	conns  int         // connections handed to Ready
	dials  int         // dial attempts made
	closed bool
	wg     sync.WaitGroup
}

type pstate uint8

const (
	stNone      pstate = iota
	stDialing          // a dial loop runs
	stAccepting        // an incoming connection passed its check; being finished
	stUp               // handed to Ready
	stFailed           // handed to Failed
)

// errCrossing refuses the higher rank's dial while the lower's is in flight.
var errCrossing = errors.New("crossing dial: the lower rank's dial wins")

// OnDemand starts accepting on cfg.Listener and returns the mesh; no
// connection is made until Want.
func OnDemand(cfg OnDemandConfig) *Lazy {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxDials <= 0 {
		cfg.MaxDials = 16
	}
	if cfg.Refusals <= 0 {
		cfg.Refusals = 4
	}
	n := len(cfg.Addrs)
	m := &Lazy{
		cfg:     cfg,
		attempt: min(max(cfg.Timeout/3, 2*time.Second), 20*time.Second),
		sem:     make(chan struct{}, cfg.MaxDials),
		st:      make([]pstate, n),
		wanted:  make([]bool, n),
		lost:    make([]error, n),
		kick:    make([]chan bool, n),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	c := Config{Name: cfg.Name}
	m.srv = listen.New(cfg.Listener, listen.Config{
		Name:              fmt.Sprintf("mesh: %s %d", c.name(), cfg.Rank),
		MaxPending:        2*min(n, 256) + 64,
		MaxPendingPerHost: min(n, 256) + 16,
		HandshakeTimeout:  m.attempt,
		Warnf:             cfg.Logf,
	})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.srv.Serve(m.accept)
	}()
	return m
}

func (m *Lazy) name() string {
	if m.cfg.Name == "" {
		return "rank"
	}
	return m.cfg.Name
}

func (m *Lazy) logf(format string, args ...any) {
	if m.cfg.Logf != nil {
		m.cfg.Logf(format, args...)
	}
}

// Want starts making the connection to peer, if none exists or is being
// made. It never blocks; the result comes through Ready or Failed.
func (m *Lazy) Want(peer int) {
	if peer < 0 || peer >= len(m.st) || peer == m.cfg.Rank {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wanted[peer] = true
	if m.st[peer] != stNone || m.closed {
		return
	}
	m.startDialLocked(peer)
}

// kickLocked wakes peer's dial loop out of its backoff.
func (m *Lazy) kickLocked(peer int) {
	if k := m.kick[peer]; k != nil {
		select {
		case k <- true:
		default:
		}
	}
}

func (m *Lazy) startDialLocked(peer int) {
	m.st[peer] = stDialing
	m.kick[peer] = make(chan bool, 1)
	m.wg.Add(1)
	go m.dialLoop(peer)
}

// Lost records that peer is gone (mpirun says so): a peer with no
// connection and none being made fails at once, a dial in progress fails
// at its next failed attempt; a connection already made or being
// accepted says itself when it ends (so nothing the peer sent is lost).
func (m *Lazy) Lost(peer int, why error) {
	if peer < 0 || peer >= len(m.st) || peer == m.cfg.Rank {
		return
	}
	m.mu.Lock()
	if m.lost[peer] != nil {
		m.mu.Unlock()
		return
	}
	m.lost[peer] = why
	fail := m.st[peer] == stNone && !m.closed
	if fail {
		m.st[peer] = stFailed
	}
	m.kickLocked(peer)
	m.mu.Unlock()
	if fail && m.cfg.Failed != nil {
		m.cfg.Failed(peer, why)
	}
}

// Conns is the number of connections made so far (both directions).
func (m *Lazy) Conns() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns
}

// Dials is the number of dial attempts made so far.
func (m *Lazy) Dials() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dials
}

// Close stops accepting, stops the dial loops and waits until every
// connection being made was handed over (Ready) or dropped. Connections
// already handed over are the caller's.
func (m *Lazy) Close() {
	m.mu.Lock()
	m.closed = true
	for p := range m.kick {
		m.kickLocked(p)
	}
	m.mu.Unlock()
	m.cancel()
	m.srv.Close()
	m.srv.Wait() // every handler (accept) has returned
	m.wg.Wait()
}

// dialLoop makes the connection to peer: attempts with backoff until one
// is confirmed, the peer's own dial wins (we are the higher rank), the
// peer is known lost, or the timeout passes.
func (m *Lazy) dialLoop(peer int) {
	defer m.wg.Done()
	start := time.Now()
	deadline := start.Add(m.cfg.Timeout)
	backoff := 5 * time.Millisecond
	causes := map[string]int{}
	tries, refused := 0, 0
	var last error
	for {
		m.mu.Lock()
		st, lost, closed, kick := m.st[peer], m.lost[peer], m.closed, m.kick[peer]
		m.mu.Unlock()
		switch {
		case closed || st == stUp || st == stFailed:
			return
		case st == stAccepting:
			// The peer's dial is being finished; if it falls through the
			// state returns to stDialing and this loop dials again.
		case lost != nil:
			m.fail(peer, lost)
			return
		case !time.Now().Before(deadline):
			m.fail(peer, m.giveUp(peer, time.Since(start), tries, causes, last))
			return
		default:
			tries++
			c, err := m.dialOnce(peer, deadline)
			if err == nil {
				m.mu.Lock()
				ok := m.st[peer] == stDialing && !m.closed
				if ok {
					m.st[peer] = stAccepting // ours: finished below
				}
				m.mu.Unlock()
				if !ok {
					// Cannot happen while the peer follows the protocol
					// (it confirmed ours, so it dials us no more); drop it.
					c.TCP.Close()
					continue
				}
				m.finish(c, true)
				return
			}
			last = err
			causes[cause(err)]++
			if errors.Is(err, auth.ErrDenied) && !isReject(err) {
				m.fail(peer, err) // the address answers with another token
				return
			}
			if limits.IsEMFILE(err) {
				// Out of descriptors: waiting does not free any here.
				m.fail(peer, fmt.Errorf("mesh: %s %d: connect to %s %d at %s: %w (%s)",
					m.name(), m.cfg.Rank, m.name(), peer, m.cfg.Addrs[peer], err, limits.Explain(err)))
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				if refused++; refused >= m.cfg.Refusals {
					m.fail(peer, fmt.Errorf("mesh: %s %d: %s %d at %s refused %d connections in %v: nothing listens there any more (it has exited, or its host rejects the port)",
						m.name(), m.cfg.Rank, m.name(), peer, m.cfg.Addrs[peer], refused, time.Since(start).Round(time.Millisecond)))
					return
				}
			}
			if isCrossing(err) {
				// The lower rank dials us: its connection comes (a kick),
				// unless its dial fails, then we try again.
				t := time.NewTimer(m.attempt)
				select {
				case <-t.C:
				case <-kick:
				}
				t.Stop()
				continue
			}
		}
		t := time.NewTimer(jitter(backoff))
		select {
		case <-t.C:
		case <-kick:
		}
		t.Stop()
		backoff = min(2*backoff, time.Second)
	}
}

// dialOnce makes one attempt: TCP, the handshake, then the acceptor's
// verdict (MESH OK or REJECT). The handshake has one attempt's time; the
// verdict, once the proof is sent, is awaited until deadline, so that a
// connection the acceptor took is not dropped by this side's impatience.
func (m *Lazy) dialOnce(peer int, deadline time.Time) (*Conn, error) {
	select {
	case m.sem <- struct{}{}:
	case <-m.ctx.Done():
		return nil, m.ctx.Err()
	}
	defer func() { <-m.sem }()
	m.mu.Lock()
	m.dials++
	m.mu.Unlock()
	addr := m.cfg.Addrs[peer]
	ctx, cancel := context.WithTimeout(m.ctx, m.attempt)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := nc.(*net.TCPConn)
	tc.SetNoDelay(true)
	stop := context.AfterFunc(m.ctx, func() { tc.SetDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReaderSize(tc, 4<<10)
	if err := auth.Dial(tc, r, m.cfg.Token, m.cfg.Rank, peer, time.Now().Add(m.attempt)); err != nil {
		tc.Close()
		return nil, err
	}
	tc.SetReadDeadline(deadline)
	f, err := wire.ReadFrame(r, 4096)
	tc.SetReadDeadline(time.Time{})
	if err == nil && m.ctx.Err() != nil {
		err = m.ctx.Err()
	}
	switch {
	case err != nil:
		tc.Close()
		return nil, err
	case f.Channel == wire.ChanControl && f.Type == auth.TypeReject:
		tc.Close()
		return nil, &rejectError{why: string(f.Body)}
	case f.Channel != wire.ChanControl || f.Type != typeOK:
		tc.Close()
		return nil, fmt.Errorf("%s %d sent frame type %d after the handshake, want MESH OK", m.name(), peer, f.Type)
	}
	c := &Conn{Rank: peer, TCP: tc}
	if n := r.Buffered(); n > 0 {
		b, _ := r.Peek(n)
		c.Buffered = append([]byte(nil), b...)
	}
	return c, nil
}

// rejectError is the acceptor's refusal after the handshake.
type rejectError struct{ why string }

func (e *rejectError) Error() string { return "refused: " + e.why }
func (e *rejectError) Unwrap() error { return auth.ErrDenied }

func isReject(err error) bool {
	var re *rejectError
	return errors.As(err, &re)
}

func isCrossing(err error) bool {
	var re *rejectError
	return errors.As(err, &re) && re.why == errCrossing.Error()
}

// cause names an attempt's failure for the summary: the last words of its
// error ("connection refused", "i/o timeout", the acceptor's reason).
func cause(err error) string {
	var re *rejectError
	if errors.As(err, &re) {
		return "refused (" + re.why + ")"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// giveUp is the error of a dial loop that ran out of time: one line naming
// the peer and its address, with the attempts counted by cause.
func (m *Lazy) giveUp(peer int, took time.Duration, tries int, causes map[string]int, last error) error {
	var parts []string
	for c, k := range causes {
		parts = append(parts, fmt.Sprintf("%d× %s", k, c))
	}
	sort.Strings(parts)
	return fmt.Errorf("mesh: %s %d: no connection to %s %d at %s within %v (%d attempts: %s; last: %v)",
		m.name(), m.cfg.Rank, m.name(), peer, m.cfg.Addrs[peer], took.Round(time.Millisecond), tries, strings.Join(parts, ", "), last)
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// fail reports peer as unreachable, once.
func (m *Lazy) fail(peer int, err error) {
	m.mu.Lock()
	if m.st[peer] == stFailed || m.st[peer] == stUp || m.closed {
		m.mu.Unlock()
		return
	}
	m.st[peer] = stFailed
	m.mu.Unlock()
	if m.cfg.Failed != nil {
		m.cfg.Failed(peer, err)
	}
}

// accept handles one incoming connection.
func (m *Lazy) accept(nc net.Conn, g *listen.Gate) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return
	}
	r := bufio.NewReaderSize(tc, 4<<10)
	placed, prev := -1, stNone
	var normal bool // a refusal of the protocol (crossing, duplicate): not logged
	from, err := auth.Accept(tc, r, m.cfg.Token, m.cfg.Rank, time.Now().Add(m.attempt), func(from int) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		if from < 0 || from >= len(m.st) || from == m.cfg.Rank {
			return fmt.Errorf("mesh: %s %d: no %s %d in a job of %d", m.name(), m.cfg.Rank, m.name(), from, len(m.st))
		}
		if m.closed {
			normal = true
			return fmt.Errorf("mesh: %s %d is closing", m.name(), m.cfg.Rank)
		}
		switch m.st[from] {
		case stNone:
		case stDialing:
			if m.cfg.Rank < from {
				normal = true
				return errCrossing
			}
		case stFailed:
			normal = true
			return fmt.Errorf("mesh: %s %d gave up on %s %d", m.name(), m.cfg.Rank, m.name(), from)
		default:
			normal = true
			return fmt.Errorf("mesh: %s %d already has a connection to %d", m.name(), m.cfg.Rank, from)
		}
		placed, prev = from, m.st[from]
		m.st[from] = stAccepting
		m.kickLocked(from)
		return nil
	})
	if err != nil {
		tc.Close()
		if !normal {
			g.Refuse("authentication failed", err)
		}
		m.revert(placed, prev)
		return
	}
	if !g.Authenticated() {
		tc.Close() // dropped meanwhile (handshake timeout, Close)
		m.revert(placed, prev)
		return
	}
	tc.SetWriteDeadline(time.Now().Add(m.attempt))
	h := wire.MakeHeader(wire.ChanControl, typeOK, 0, m.cfg.Rank, 0)
	_, err = tc.Write(h[:])
	tc.SetWriteDeadline(time.Time{})
	if err != nil {
		tc.Close()
		m.revert(placed, prev)
		return
	}
	c := &Conn{Rank: from, TCP: tc}
	if n := r.Buffered(); n > 0 {
		b, _ := r.Peek(n)
		c.Buffered = append([]byte(nil), b...)
	}
	m.finish(c, false)
}

// revert undoes an accept that fell through: the peer dials again, or,
// if this side wants it and dials no more, this side dials.
func (m *Lazy) revert(peer int, prev pstate) {
	if peer < 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st[peer] != stAccepting {
		return
	}
	m.st[peer] = prev
	m.kickLocked(peer)
	switch {
	case m.closed:
	case prev == stNone && m.lost[peer] != nil:
		m.st[peer] = stFailed
		if m.cfg.Failed != nil {
			go m.cfg.Failed(peer, m.lost[peer])
		}
	case prev == stNone && m.wanted[peer]:
		m.startDialLocked(peer)
	}
}

// finish runs Setup on a confirmed connection and hands it to Ready.
func (m *Lazy) finish(c *Conn, dialed bool) {
	if m.cfg.Setup != nil {
		c.TCP.SetDeadline(time.Now().Add(m.cfg.Timeout))
		err := m.cfg.Setup(c, time.Now().Add(m.cfg.Timeout))
		c.TCP.SetDeadline(time.Time{})
		if err != nil {
			c.TCP.Close()
			m.mu.Lock()
			m.st[c.Rank] = stFailed
			m.kickLocked(c.Rank)
			m.mu.Unlock()
			if m.cfg.Failed != nil {
				m.cfg.Failed(c.Rank, fmt.Errorf("mesh: %s %d: set up the connection to %s %d at %s: %w", m.name(), m.cfg.Rank, m.name(), c.Rank, m.cfg.Addrs[c.Rank], err))
			}
			return
		}
	}
	m.mu.Lock()
	m.st[c.Rank] = stUp
	m.conns++
	m.kickLocked(c.Rank)
	m.mu.Unlock()
	m.cfg.Ready(c)
}
