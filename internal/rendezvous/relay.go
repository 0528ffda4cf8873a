package rendezvous

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/listen"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// Frames only between a relay and the master.
const (
	// TypeJoins: relay -> master: the joins of some of a host's ranks in
	// one batch, JSON []JoinInfo.
	TypeJoins = wire.TypeJoins
	// TypeWarn: relay -> master: a warning (text), such as a refused
	// stranger, for mpirun to print as its own.
	TypeWarn = wire.TypeWarn
)

// RelayFrame is one rendezvous frame between the master and a relay,
// carried by the caller (mpirun's SSH channel to the host's agent). Rank
// is the rank it is from or for; -1 for the relay as a whole: TypeJoins
// (relay -> master), TypeTable (master -> relay: for every rank of the
// relay), TypeBye (master -> relay: the master closed; close the ranks'
// connections).
type RelayFrame struct {
	Rank int
	Type uint8
	Body []byte
}

// Port is the master's end of one relay: a host's agent that accepts the
// host's ranks the way the master does and forwards what they say.
type Port struct {
	m    *Master
	name string
	out  func(RelayFrame) error
	mu   sync.Mutex // serialises out
}

// Relay attaches a relay named name (its host, for messages); send
// carries frames to it. Frames from it go to the Port's Deliver.
func (m *Master) Relay(name string, send func(RelayFrame) error) *Port {
	p := &Port{m: m, name: name, out: send}
	m.mu.Lock()
	m.ports = append(m.ports, p)
	m.mu.Unlock()
	return p
}

func (p *Port) send(f RelayFrame) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out(f)
}

// relayed is a rank that reached the master through a relay.
type relayed struct {
	p    *Port
	rank int
}

func (r relayed) write(typ uint8, body ...[]byte) error {
	var b []byte
	for _, x := range body {
		b = append(b, x...)
	}
	return r.p.send(RelayFrame{Rank: r.rank, Type: typ, Body: b})
}
func (r relayed) close()      {}
func (r relayed) port() *Port { return r.p }

// Deliver hands the master a frame from the relay. It never waits for
// OnAbort and OnFailed (which run on their own goroutine; the rank is
// answered once they return), so the caller's stream keeps flowing; other
// frames of one rank are recorded in order.
func (p *Port) Deliver(f RelayFrame) {
	m := p.m
	if f.Type == TypeWarn {
		m.warnf("%s (on %s)", f.Body, p.name)
		return
	}
	if f.Type == TypeJoins {
		var joins []JoinInfo
		if err := json.Unmarshal(f.Body, &joins); err != nil {
			m.warnf("master: %s sent bad joins: %v", p.name, err)
			return
		}
		for _, j := range joins {
			if j.Rank < 0 || j.Rank >= m.cfg.Size {
				m.warnf("master: %s sent a join of rank %d, out of range (size %d)", p.name, j.Rank, m.cfg.Size)
				continue
			}
			m.join(j, relayed{p: p, rank: j.Rank}, "the agent on "+p.name)
		}
		return
	}
	if f.Rank < 0 || f.Rank >= m.cfg.Size {
		m.warnf("master: %s sent frame type %d for rank %d, out of range", p.name, f.Type, f.Rank)
		return
	}
	m.mu.Lock()
	mem := m.conns[f.Rank]
	m.mu.Unlock()
	if r, ok := mem.(relayed); !ok || r.p != p {
		m.warnf("master: %s sent frame type %d for rank %d, which did not join through it", p.name, f.Type, f.Rank)
		return
	}
	if f.Type == TypeAbort || f.Type == TypeFailed {
		go m.handle(f.Rank, f.Type, f.Body)
		return
	}
	if f.Type == TypeLost {
		m.ended(f.Rank)
		go m.gone(f.Rank, "its connection to the agent on "+p.name+" closed without a goodbye")
		return
	}
	m.handle(f.Rank, f.Type, f.Body)
}

// RelayConfig configures a relay.
type RelayConfig struct {
	Size  int
	Token []byte
	// Ranks are the ranks that will join here; others are refused.
	Ranks []int
	// Up carries frames to the master. It may block (back-pressure).
	Up func(RelayFrame) error
	// Linger bounds how long a join waits for the host's other ranks
	// before a batch goes up without them (0: 500 ms).
	Linger time.Duration
	Logf   func(format string, args ...any)
	// Warnf gets refused connections (rate-limited) and bad joins; nil:
	// they go up to the master as TypeWarn, which prints them.
	Warnf func(format string, args ...any)
}

// A Relay accepts the ranks of one host as the master would (same
// handshake, same frames: the ranks cannot tell), sends their joins up in
// one batch, hands each the table when it comes down once, and relays
// everything else both ways.
type Relay struct {
	cfg    RelayConfig
	ln     net.Listener
	srv    *listen.Server
	expect map[int]bool

	mu      sync.Mutex
	conns   map[int]*memberConn
	pending []JoinInfo
	joined  int
	linger  *time.Timer
	table   []byte // once it came
	closed  bool
	upMu    sync.Mutex // serialises Up
	stopped bool       // under upMu: Wait returned, Up is never called again
}

// ListenRelay opens a relay on addr (host:port; port 0 picks one).
func ListenRelay(addr string, cfg RelayConfig) (*Relay, error) {
	if cfg.Linger == 0 {
		cfg.Linger = 500 * time.Millisecond
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: relay: listen on %s: %w", addr, err)
	}
	r := &Relay{cfg: cfg, ln: ln, expect: map[int]bool{}, conns: map[int]*memberConn{}}
	for _, k := range cfg.Ranks {
		r.expect[k] = true
	}
	n := len(cfg.Ranks)
	r.srv = listen.New(ln, listen.Config{
		Name:              "relay",
		MaxPending:        2*n + 64,
		MaxPendingPerHost: n + 16,
		HandshakeTimeout:  handshakeTimeout,
		Warnf:             r.warnf,
	})
	return r, nil
}

// Addr is the relay's host:port, the ranks' DSMEXEC_MASTER.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

func (r *Relay) logf(format string, args ...any) {
	if r.cfg.Logf != nil {
		r.cfg.Logf(format, args...)
	}
}

func (r *Relay) warnf(format string, args ...any) {
	if r.cfg.Warnf != nil {
		r.cfg.Warnf(format, args...)
		return
	}
	r.up(RelayFrame{Rank: -1, Type: TypeWarn, Body: fmt.Appendf(nil, format, args...)})
}

// Serve accepts ranks until Close.
func (r *Relay) Serve() error { return r.srv.Serve(r.member) }

func (r *Relay) up(f RelayFrame) {
	r.upMu.Lock()
	defer r.upMu.Unlock()
	if r.stopped {
		return
	}
	if err := r.cfg.Up(f); err != nil {
		r.logf("relay: to the master: %v", err)
	}
}

func (r *Relay) member(c net.Conn, g *listen.Gate) {
	defer c.Close()
	rank, j, br, ok := acceptJoin(c, g, r.cfg.Token, func(from int) error {
		if !r.expect[from] {
			return fmt.Errorf("rendezvous: relay: rank %d does not run on this host", from)
		}
		return nil
	}, "relay", r.warnf)
	if !ok {
		return
	}
	mc := &memberConn{c: c, w: wire.NewWriter(c, auth.Master)}
	r.mu.Lock()
	if r.closed || r.conns[rank] != nil {
		r.mu.Unlock()
		r.warnf("relay: rank %d joined twice; second connection from %s refused", rank, c.RemoteAddr())
		return
	}
	r.conns[rank] = mc
	r.joined++
	r.pending = append(r.pending, j)
	var batch []JoinInfo
	if r.joined == len(r.expect) {
		batch = r.takeLocked()
	} else if r.linger == nil {
		r.linger = time.AfterFunc(r.cfg.Linger, r.flush)
	}
	r.mu.Unlock()
	r.logf("relay: rank %d joined from %s (pid %d)", rank, c.RemoteAddr(), j.Pid)
	if batch != nil {
		r.sendJoins(batch)
	}
	bye := false
	readFrames(br, rank, "relay", r.logf, func(f wire.Frame) {
		if f.Type == TypeBye {
			bye = true
		}
		r.up(RelayFrame{Rank: rank, Type: f.Type, Body: f.Body})
	})
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if !bye && !closed {
		r.up(RelayFrame{Rank: rank, Type: TypeLost}) // the master tells the others
	}
}

// takeLocked takes the pending joins and stops the linger timer.
func (r *Relay) takeLocked() []JoinInfo {
	b := r.pending
	r.pending = nil
	if r.linger != nil {
		r.linger.Stop()
		r.linger = nil
	}
	return b
}

// flush sends the pending joins once the linger time has passed.
func (r *Relay) flush() {
	r.mu.Lock()
	b := r.takeLocked()
	r.mu.Unlock()
	if len(b) > 0 {
		r.sendJoins(b)
	}
}

func (r *Relay) sendJoins(b []JoinInfo) {
	body, _ := json.Marshal(b)
	r.up(RelayFrame{Rank: -1, Type: TypeJoins, Body: body})
}

// Deliver hands the relay a frame from the master.
func (r *Relay) Deliver(f RelayFrame) {
	switch {
	case f.Rank == -1 && f.Type == TypeTable:
		r.mu.Lock()
		r.table = f.Body
		conns := make(map[int]*memberConn, len(r.conns))
		for k, c := range r.conns {
			conns[k] = c
		}
		r.mu.Unlock()
		for k, c := range conns {
			if err := c.write(TypeTable, f.Body); err != nil {
				r.logf("relay: send table to rank %d: %v", k, err)
			}
		}
	case f.Rank == -1 && f.Type == TypeBye:
		r.closeConns()
	case f.Rank == -1 && f.Type == TypeLost:
		r.mu.Lock()
		conns := make([]*memberConn, 0, len(r.conns))
		if r.table != nil {
			for _, c := range r.conns {
				conns = append(conns, c)
			}
		}
		r.mu.Unlock()
		for _, c := range conns {
			c.write(TypeLost, f.Body)
		}
	case f.Rank >= 0:
		r.mu.Lock()
		c := r.conns[f.Rank]
		r.mu.Unlock()
		if c == nil {
			r.logf("relay: frame type %d for rank %d, which has not joined here", f.Type, f.Rank)
			return
		}
		c.write(f.Type, f.Body)
	}
}

func (r *Relay) closeConns() {
	r.mu.Lock()
	r.closed = true
	for _, c := range r.conns {
		c.close()
	}
	r.mu.Unlock()
}

// Close stops accepting and closes every rank's connection (the ranks then
// learn the launcher is gone). It does not wait: see Wait.
func (r *Relay) Close() {
	r.mu.Lock()
	if r.linger != nil {
		r.linger.Stop()
		r.linger = nil
	}
	r.mu.Unlock()
	r.closeConns()
	r.srv.Close()
}

// Wait waits, after Close, until no goroutine of the relay calls Up.
func (r *Relay) Wait() {
	r.srv.Wait()
	r.upMu.Lock()
	r.stopped = true // a linger timer that fired during Close sends nothing
	r.upMu.Unlock()
}
