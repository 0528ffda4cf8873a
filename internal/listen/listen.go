package listen

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Defaults for a zero Config field.
const (
	DefaultMaxPending        = 128
	DefaultMaxPendingPerHost = 32
	DefaultHandshakeTimeout  = 10 * time.Second
)

// Accept back-off after an error: the first pause, and the longest.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Causes of refusals, as the Limiter counts them.
const (
	CauseHostLimit  = "too many unauthenticated connections from one address"
	CauseTotalLimit = "too many unauthenticated connections"
	CauseTimeout    = "no authentication within the handshake time"
)

// Config configures a Server.
type Config struct {
	// Name starts every warning ("master", "rank 3", "page server 2").
	Name string
	// MaxPending bounds unauthenticated connections in all;
	// MaxPendingPerHost those from one source IP address. 0 means the
	// default; a listener that expects n ranks should allow at least n.
	MaxPending, MaxPendingPerHost int
	// HandshakeTimeout is the time a connection has to authenticate.
	HandshakeTimeout time.Duration
	// Warnf receives the (rate-limited) warnings; nil drops them.
	Warnf func(format string, args ...any)
	// Interval is the Limiter's period; 0 means one second.
	Interval time.Duration
}

// Server is a hardened accept loop on one listener.
type Server struct {
	ln   net.Listener
	cfg  Config
	warn *Limiter
	done chan struct{} // closed by Close

	mu      sync.Mutex
	pending *list.List // of *Gate, oldest first
	perHost map[string]int
	closed  bool
	wg      sync.WaitGroup // Serve and the handlers
	serving bool
}

// Gate is a connection's standing with its Server.
type Gate struct {
	s       *Server
	c       net.Conn
	host    string
	elem    *list.Element // in s.pending; nil once out of it
	timer   *time.Timer
	dropped bool // closed by the Server: timeout, eviction or Close
}

// New returns a Server for ln; Serve starts it.
func New(ln net.Listener, cfg Config) *Server {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxPendingPerHost <= 0 {
		cfg.MaxPendingPerHost = DefaultMaxPendingPerHost
	}
	if cfg.MaxPendingPerHost > cfg.MaxPending {
		cfg.MaxPendingPerHost = cfg.MaxPending
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Name == "" {
		cfg.Name = "listener"
	}
	return &Server{
		ln:      ln,
		cfg:     cfg,
		warn:    NewLimiter(cfg.Warnf, cfg.Interval),
		done:    make(chan struct{}),
		pending: list.New(),
		perHost: map[string]int{},
	}
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections until Close and hands each to handle in a
// goroutine of its own. It returns nil after Close; it never returns
// because of an accept error. handle owns the connection (it closes it).
func (s *Server) Serve(handle func(net.Conn, *Gate)) error {
	s.mu.Lock()
	if s.closed || s.serving {
		s.mu.Unlock()
		return errors.New("listen: Serve called twice or after Close")
	}
	s.serving = true
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	var delay time.Duration
	pause := time.NewTimer(time.Hour)
	pause.Stop()
	defer pause.Stop()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				// Closed under us by its owner: nothing more will come.
				s.warn.Warn("closed", "%s: listener %s closed: %v", s.cfg.Name, s.ln.Addr(), err)
				return nil
			}
			if delay == 0 {
				delay = minBackoff
			} else if delay *= 2; delay > maxBackoff {
				delay = maxBackoff
			}
			s.warn.Warn("accept: "+errnoText(err), "%s: accept on %s: %v; retrying in %v", s.cfg.Name, s.ln.Addr(), err, delay)
			pause.Reset(delay)
			select {
			case <-pause.C:
			case <-s.done:
				return nil
			}
			continue
		}
		delay = 0
		g, ok := s.admit(c)
		if !ok {
			c.Close()
			return nil
		}
		go func() {
			defer s.wg.Done()
			defer g.release()
			handle(c, g)
		}()
	}
}

// errnoText names the errno under an accept error, so that all EMFILEs are
// one cause whatever the address in the message.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return fmt.Sprintf("%T", err)
}

func hostOf(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String()
	case *net.UDPAddr:
		return a.IP.String()
	case nil:
		return ""
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// admit registers c as unauthenticated, making room first by dropping the
// oldest unauthenticated connection of its host, or overall.
func (s *Server) admit(c net.Conn) (*Gate, bool) {
	g := &Gate{s: s, c: c, host: hostOf(c.RemoteAddr())}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false
	}
	var victims []*Gate
	var causes []string
	if s.perHost[g.host] >= s.cfg.MaxPendingPerHost {
		for e := s.pending.Front(); e != nil; e = e.Next() {
			if o := e.Value.(*Gate); o.host == g.host {
				s.dropLocked(o)
				victims, causes = append(victims, o), append(causes, CauseHostLimit)
				break
			}
		}
	}
	if s.pending.Len() >= s.cfg.MaxPending {
		o := s.pending.Front().Value.(*Gate)
		s.dropLocked(o)
		victims, causes = append(victims, o), append(causes, CauseTotalLimit)
	}
	g.elem = s.pending.PushBack(g)
	s.perHost[g.host]++
	g.timer = time.AfterFunc(s.cfg.HandshakeTimeout, g.expire)
	s.wg.Add(1)
	s.mu.Unlock()
	for i, o := range victims {
		o.c.Close()
		s.warn.Warn(causes[i], "%s: dropped an unauthenticated connection from %s (%s)", s.cfg.Name, o.c.RemoteAddr(), causes[i])
	}
	return g, true
}

// dropLocked takes g out of the pending list and marks it dropped; the
// caller closes its connection outside the lock.
func (s *Server) dropLocked(g *Gate) {
	if g.elem == nil {
		return
	}
	s.pending.Remove(g.elem)
	g.elem = nil
	if s.perHost[g.host]--; s.perHost[g.host] == 0 {
		delete(s.perHost, g.host)
	}
	g.dropped = true
	if g.timer != nil {
		g.timer.Stop()
	}
}

func (g *Gate) expire() {
	s := g.s
	s.mu.Lock()
	pending := g.elem != nil
	if pending {
		s.dropLocked(g)
	}
	s.mu.Unlock()
	if pending {
		g.c.Close()
		s.warn.Warn(CauseTimeout, "%s: dropped a connection from %s: %s (%v)", s.cfg.Name, g.c.RemoteAddr(), CauseTimeout, s.cfg.HandshakeTimeout)
	}
}

// Authenticated tells the Server the peer proved itself: the connection
// no longer counts against the bounds and is no longer timed. It returns
// false if the Server already closed the connection (timeout, eviction or
// Close); the handler should then return.
func (g *Gate) Authenticated() bool {
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.dropped {
		return false
	}
	if g.elem != nil {
		s.pending.Remove(g.elem)
		g.elem = nil
		if s.perHost[g.host]--; s.perHost[g.host] == 0 {
			delete(s.perHost, g.host)
		}
		g.timer.Stop()
	}
	return true
}

// Refuse reports that the handler refused the connection (failed
// handshake) with a rate-limited warning of the given cause. Nothing is
// written if the Server dropped the connection itself (it said why).
func (g *Gate) Refuse(cause string, err error) {
	s := g.s
	s.mu.Lock()
	dropped := g.dropped
	s.mu.Unlock()
	if dropped {
		return
	}
	s.warn.Warn(cause, "%s: refused a connection from %s: %v", s.cfg.Name, g.c.RemoteAddr(), err)
}

// release runs when the handler returns.
func (g *Gate) release() {
	s := g.s
	s.mu.Lock()
	if g.elem != nil {
		s.dropLocked(g)
		g.dropped = false // not the Server's doing
	}
	s.mu.Unlock()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Pending returns the number of unauthenticated connections.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending.Len()
}

// Close closes the listener and every unauthenticated connection, and
// writes the warnings still held back. Authenticated connections are the
// handlers'. Safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	var victims []*Gate
	for e := s.pending.Front(); e != nil; e = e.Next() {
		victims = append(victims, e.Value.(*Gate))
	}
	for _, g := range victims {
		s.dropLocked(g)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	for _, g := range victims {
		g.c.Close()
	}
	s.warn.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Wait waits until Serve and every handler it started have returned. Call
// it after Close, once the authenticated connections are closed too.
func (s *Server) Wait() { s.wg.Wait() }
