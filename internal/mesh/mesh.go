package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/listen"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// typeBye on wire.ChanControl: the sender is closing normally.
const typeBye = wire.TypeMeshBye

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("mesh: closed")

// Config describes this rank's place in the mesh.
type Config struct {
	Rank     int
	Addrs    []string // listening address of every rank, indexed by rank
	Token    []byte
	Listener net.Listener // this rank's listener (its address is Addrs[Rank])
	// Handler receives every message from a peer, on that peer's reader
	// goroutine. It must not block for long.
	Handler func(f wire.Frame)
	// OnLost is called once per peer whose connection broke before Close
	// without the peer saying goodbye.
	OnLost func(peer int, err error)
	// OnBye is called when a peer closes its mesh normally (Close); no more
	// messages come from it. May be nil.
	OnBye func(peer int)
	// Logf reports rejected strangers and similar; may be nil.
	Logf func(format string, args ...any)
	// Name is used in messages, e.g. "rank" or "pager".
	Name string
}

// Mesh is an established mesh.
type Mesh struct {
	cfg   Config
	peers []*peer

	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

type peer struct {
	rank int
	conn *net.TCPConn
	r    *bufio.Reader
	w    *wire.Writer
	eof  chan struct{} // closed when the reader goroutine ends
}

const handshakeTimeout = 10 * time.Second

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func (c *Config) name() string {
	if c.Name == "" {
		return "rank"
	}
	return c.Name
}

// Conn is one authenticated connection of an established mesh, handed
// to a caller that reads and writes it itself (Establish).
type Conn struct {
	Rank int          // the peer's rank
	TCP  *net.TCPConn // TCP_NODELAY set
	// Buffered holds bytes the handshake's reader took from the
	// connection past the handshake: the start of the peer's stream.
	Buffered []byte
	// Data is set by OnDemandConfig.Setup for Ready (the rank's ring).
	Data any
}

// Establish builds the mesh's connections and hands them over: the result
// is indexed by rank, nil at cfg.Rank. Handler, OnLost and OnBye are not
// used; the caller reads the connections (package rank's engine does).
// The listener is closed when Establish returns.
func Establish(ctx context.Context, cfg Config) ([]*Conn, error) {
	peers, err := establish(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	conns := make([]*Conn, len(peers))
	for i, p := range peers {
		if p == nil {
			continue
		}
		c := &Conn{Rank: p.rank, TCP: p.conn}
		if n := p.r.Buffered(); n > 0 {
			b, _ := p.r.Peek(n)
			c.Buffered = append([]byte(nil), b...)
		}
		conns[i] = c
	}
	return conns, nil
}

// Connect establishes the mesh. It returns when this rank is connected to
// every other rank, or with an error naming the rank it could not reach.
// The listener is closed when Connect returns.
func Connect(ctx context.Context, cfg Config) (*Mesh, error) {
	peers, err := establish(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	m := &Mesh{cfg: cfg, peers: peers, closing: make(chan struct{})}
	for _, p := range m.peers {
		if p == nil {
			continue
		}
		p.w = wire.NewWriter(p.conn, cfg.Rank)
		p.eof = make(chan struct{})
		m.wg.Add(1)
		go m.read(p)
	}
	return m, nil
}

// establish connects to every other rank and authenticates each
// connection; the result is indexed by rank, nil at cfg.Rank.
func establish(ctx context.Context, cfgp *Config) ([]*peer, error) {
	cfg := *cfgp
	n := len(cfg.Addrs)
	m := &Mesh{cfg: cfg, peers: make([]*peer, n), closing: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var mu sync.Mutex
	got := make(chan *peer, n)
	errc := make(chan error, n)

	// Accept from every lower rank on a hardened accept loop (package
	// listen: it survives EMFILE, bounds and times out unauthenticated
	// connections). Strangers (garbage, wrong token, duplicates) are
	// logged and dropped; they never stop the mesh.
	lower := cfg.Rank
	srv := listen.New(cfg.Listener, listen.Config{
		Name:              fmt.Sprintf("mesh: %s %d", cfg.name(), cfg.Rank),
		MaxPending:        2*n + 64,
		MaxPendingPerHost: n + 16,
		HandshakeTimeout:  handshakeTimeout,
		Warnf:             cfg.Logf,
	})
	defer srv.Close() // the listener and every unauthenticated connection
	go srv.Serve(func(c net.Conn, g *listen.Gate) {
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			return
		}
		r := bufio.NewReaderSize(tc, 64<<10)
		var placed = -1
		from, err := auth.Accept(tc, r, cfg.Token, cfg.Rank, time.Now().Add(handshakeTimeout), func(from int) error {
			mu.Lock()
			defer mu.Unlock()
			if from < 0 || from >= lower {
				return fmt.Errorf("mesh: %s %d does not accept connections from %d", cfg.name(), cfg.Rank, from)
			}
			if m.peers[from] != nil {
				return fmt.Errorf("mesh: %s %d is already connected", cfg.name(), from)
			}
			m.peers[from] = &peer{} // placeholder: refuse duplicates
			placed = from
			return nil
		})
		if err != nil {
			g.Refuse("authentication failed", err)
			tc.Close()
			return
		}
		if !g.Authenticated() {
			// Dropped meanwhile (handshake timeout, eviction, Close): let
			// the rank connect again.
			mu.Lock()
			if placed >= 0 && m.peers[placed] != nil && m.peers[placed].conn == nil {
				m.peers[placed] = nil
			}
			mu.Unlock()
			tc.Close()
			return
		}
		tc.SetNoDelay(true)
		got <- &peer{rank: from, conn: tc, r: r}
	})
	// Dial every higher rank.
	for j := cfg.Rank + 1; j < n; j++ {
		go func(j int) {
			p, err := dial(ctx, &cfg, j)
			if err != nil {
				errc <- err
				return
			}
			got <- p
		}(j)
	}
	for k := 0; k < n-1; k++ {
		select {
		case p := <-got:
			mu.Lock()
			m.peers[p.rank] = p
			mu.Unlock()
		case err := <-errc:
			mu.Lock()
			m.closeConns()
			mu.Unlock()
			return nil, err
		case <-ctx.Done():
			mu.Lock()
			m.closeConns()
			missing := []int{}
			for j, p := range m.peers {
				if j != cfg.Rank && (p == nil || p.conn == nil) {
					missing = append(missing, j)
				}
			}
			mu.Unlock()
			return nil, fmt.Errorf("mesh: %s %d: no connection from %ss %v: %w", cfg.name(), cfg.Rank, cfg.name(), missing, ctx.Err())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return m.peers, nil
}

func dial(ctx context.Context, cfg *Config, j int) (*peer, error) {
	tc, err := DialRetry(ctx, cfg.Addrs[j])
	if err != nil {
		return nil, fmt.Errorf("mesh: dial %s %d at %s: %w", cfg.name(), j, cfg.Addrs[j], err)
	}
	r := bufio.NewReaderSize(tc, 64<<10)
	if err := auth.Dial(tc, r, cfg.Token, cfg.Rank, j, time.Now().Add(handshakeTimeout)); err != nil {
		tc.Close()
		return nil, fmt.Errorf("mesh: authenticate with %s %d at %s: %w", cfg.name(), j, cfg.Addrs[j], err)
	}
	return &peer{rank: j, conn: tc, r: r}, nil
}

// DialRetry connects to addr over TCP with Nagle off. The peer reported its
// address, so it is already listening: only a few transient failures are
// retried (5 tries, 20 ms more pause after each), and the last error is
// returned as it came. The page servers of package dsm dial with it too.
func DialRetry(ctx context.Context, addr string) (*net.TCPConn, error) {
	var d net.Dialer
	var last error
	for try := 0; try < 5; try++ {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			select {
			case <-time.After(time.Duration(try+1) * 20 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		tc := c.(*net.TCPConn)
		tc.SetNoDelay(true)
		return tc, nil
	}
	return nil, last
}

func (m *Mesh) read(p *peer) {
	defer m.wg.Done()
	defer close(p.eof)
	bye := false
	for {
		f, err := wire.ReadMessage(p.r)
		if err != nil {
			if bye && err == io.EOF {
				return
			}
			select {
			case <-m.closing:
				return
			default:
			}
			if err == io.EOF {
				err = fmt.Errorf("connection closed by %s %d", m.cfg.name(), p.rank)
			} else {
				err = fmt.Errorf("read from %s %d: %w", m.cfg.name(), p.rank, err)
			}
			if m.cfg.OnLost != nil {
				m.cfg.OnLost(p.rank, err)
			}
			return
		}
		f.Source = p.rank // the connection, not the header, says who sent it
		if f.Channel == wire.ChanControl && f.Type == typeBye {
			bye = true
			if m.cfg.OnBye != nil {
				m.cfg.OnBye(p.rank)
			}
			continue
		}
		m.cfg.Handler(f)
	}
}

// Size is the number of ranks.
func (m *Mesh) Size() int { return len(m.peers) }

// Rank is this rank.
func (m *Mesh) Rank() int { return m.cfg.Rank }

// Send writes one frame to rank `to`; parts are concatenated as its body.
func (m *Mesh) Send(to int, ch wire.Channel, typ uint8, parts ...[]byte) error {
	p, err := m.peer(to)
	if err != nil {
		return err
	}
	if err := p.w.Write(ch, typ, 0, parts...); err != nil {
		return m.sendErr(to, err)
	}
	return nil
}

// SendMessage writes prefix+body as one message of any size (fragmented).
func (m *Mesh) SendMessage(to int, ch wire.Channel, typ uint8, prefix, body []byte) error {
	p, err := m.peer(to)
	if err != nil {
		return err
	}
	if err := p.w.WriteMessage(ch, typ, prefix, body); err != nil {
		return m.sendErr(to, err)
	}
	return nil
}

func (m *Mesh) peer(to int) (*peer, error) {
	if to < 0 || to >= len(m.peers) || to == m.cfg.Rank {
		return nil, fmt.Errorf("mesh: no peer %d (size %d, self %d)", to, len(m.peers), m.cfg.Rank)
	}
	select {
	case <-m.closing:
		return nil, ErrClosed
	default:
	}
	return m.peers[to], nil
}

func (m *Mesh) sendErr(to int, err error) error {
	select {
	case <-m.closing:
		return ErrClosed
	default:
	}
	return fmt.Errorf("mesh: send to %s %d: %w", m.cfg.name(), to, err)
}

func (m *Mesh) closeConns() {
	for _, p := range m.peers {
		if p != nil && p.conn != nil {
			p.conn.Close()
		}
	}
}

// Close shuts the mesh down gracefully: it half-closes every connection,
// waits up to timeout for each peer to do the same (so no data in flight is
// lost to a reset), then closes. Safe to call twice.
func (m *Mesh) Close(timeout time.Duration) {
	m.once.Do(func() {
		for _, p := range m.peers {
			if p != nil && p.w != nil {
				p.w.Write(wire.ChanControl, typeBye, 0)
			}
		}
		close(m.closing)
		for _, p := range m.peers {
			if p != nil && p.conn != nil {
				p.conn.CloseWrite()
			}
		}
		deadline := time.After(timeout)
	wait:
		for _, p := range m.peers {
			if p == nil || p.eof == nil {
				continue
			}
			select {
			case <-p.eof:
			case <-deadline:
				break wait
			}
		}
		m.closeConns()
		m.wg.Wait()
	})
}

// RanksOnHost counts the ranks whose address in addrs has the same host as
// rank self's: the ranks on this host (rank's mesh and dsm's page servers
// use it to tell whether the host is oversubscribed).
func RanksOnHost(addrs []string, self int) int {
	host, _, _ := net.SplitHostPort(addrs[self])
	n := 0
	for _, a := range addrs {
		if h, _, _ := net.SplitHostPort(a); h == host {
			n++
		}
	}
	return n
}
