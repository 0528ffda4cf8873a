package dsm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	acceptloop "github.com/dsmexec/dsmexec/internal/listen"
	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// lazyMesh is the memory mesh of the in-process (sigsegv) backend, on
// demand like the page server's (memnet_linux.go: the same dials, verdicts
// and rule for simultaneous dials), but with goroutines: the driver sends
// under its mutex, a reader goroutine per connection delivers, and the
// goroutines that make connections attach them. Lock order: the driver's
// mutex, then mu; mu is never held while calling the driver.
type lazyMesh struct {
	md  memDialer
	d   *driver
	srv *acceptloop.Server

	mu      sync.Mutex
	peers   []*lazyPeer
	dials   int
	queue   []int
	closing bool
	readers sync.WaitGroup
}

type lazyPeer struct {
	rank   int
	state  peerState
	conn   net.Conn
	w      *wire.Writer
	out    [][]byte // frames queued until the connection is up
	since  time.Time
	cancel func() // stops the dial running for this peer
	bye    bool   // the peer said goodbye: its EOF is normal
}

// connectLazy starts the sigsegv backend's memory mesh: accepting at
// once, dialling on demand.
func (d *driver) connectLazy(ln net.Listener, addrs []string, token []byte, deadline time.Time) error {
	n := len(addrs)
	m := &lazyMesh{d: d, peers: make([]*lazyPeer, n)}
	m.md = newMemDialer(d.rank, addrs, token, time.Until(deadline), d.logf, m.handle)
	m.srv = acceptloop.New(ln, acceptloop.Config{
		Name:              fmt.Sprintf("memory of rank %d", d.rank),
		MaxPending:        min(2*n, 1024) + 64,
		MaxPendingPerHost: min(n, 512) + 16,
		HandshakeTimeout:  m.md.attempt,
		Warnf:             d.logf,
	})
	go m.srv.Serve(m.md.acceptOne)
	d.mu.Lock()
	d.tr = m
	d.mu.Unlock()
	return nil
}

func (m *lazyMesh) peer(j int) *lazyPeer {
	p := m.peers[j]
	if p == nil {
		p = &lazyPeer{rank: j}
		m.peers[j] = p
	}
	return p
}

// send implements transport (called under the driver's mutex).
func (m *lazyMesh) send(to int, typ uint8, hdr, data []byte) error {
	if to < 0 || to >= len(m.peers) || to == m.md.self {
		return fmt.Errorf("no peer %d", to)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peer(to)
	switch p.state {
	case peerGone:
		return nil // lost: already reported
	case peerUp:
		if p.conn == nil {
			return nil // closed
		}
		if err := p.w.Write(wire.ChanDSM, typ, 0, hdr, data); err != nil {
			// Its reader reports the loss.
			return fmt.Errorf("write to rank %d: %w", to, err)
		}
		return nil
	}
	h := wire.MakeHeader(wire.ChanDSM, typ, 0, m.md.self, len(hdr)+len(data))
	f := append(append(h[:], hdr...), data...)
	p.out = append(p.out, f)
	if p.state == peerIdle {
		p.state, p.since = peerDialing, time.Now()
		if m.dials < maxDials {
			m.startDial(p)
		} else {
			m.queue = append(m.queue, to)
		}
	}
	return nil
}

// startDial runs a dial for p (under mu).
func (m *lazyMesh) startDial(p *lazyPeer) {
	m.dials++
	j, deadline := p.rank, p.since.Add(m.md.budget)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { m.handle(m.md.dial(ctx, j, deadline)) }()
}

// handle takes a connection or a dial's end from a goroutine.
func (m *lazyMesh) handle(h handoff) {
	var lost error
	m.mu.Lock()
	p := m.peer(h.rank)
	if h.incoming {
		dc := decide(p.state, m.md.self, h.rank)
		if dc != takeIt {
			fd := h.fd
			writeFD(fd, refusal(dc, m.md.self, h.rank))
			closeFD(fd)
		} else {
			if p.cancel != nil {
				p.cancel() // a dial of ours loses
			}
			m.attach(p, h, accepted(m.md.self))
		}
		m.mu.Unlock()
		return
	}
	m.dials--
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
	for len(m.queue) > 0 && m.dials < maxDials {
		q := m.peers[m.queue[0]]
		m.queue = m.queue[1:]
		if q.state == peerDialing {
			q.since = time.Now()
			m.startDial(q)
		}
	}
	switch {
	case p.state != peerDialing:
		if h.fd >= 0 {
			closeFD(h.fd)
		}
	case h.err != nil:
		p.state, p.out, lost = peerGone, nil, h.err
	case h.yield:
		p.state = peerYielded
		j, since := p.rank, p.since
		time.AfterFunc(time.Until(since.Add(m.md.budget)), func() {
			m.mu.Lock()
			q := m.peers[j]
			late := q.state == peerYielded
			if late {
				q.state, q.out = peerGone, nil
			}
			m.mu.Unlock()
			if late {
				m.lost(j, fmt.Errorf("dsm: memory of rank %d: rank %d said it would connect (simultaneous dials) but did not within %v", m.md.self, j, m.md.budget))
			}
		})
	default:
		m.attach(p, h, nil)
	}
	m.mu.Unlock()
	if lost != nil {
		m.lost(h.rank, lost)
	}
}

// attach makes h's descriptor p's connection (under mu): first the
// verdict (when accepting), then what was queued, then a reader.
func (m *lazyMesh) attach(p *lazyPeer, h handoff, verdict []byte) {
	f := os.NewFile(uintptr(h.fd), "memory mesh")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		p.state, p.out = peerGone, nil
		go m.lost(p.rank, fmt.Errorf("dsm: memory of rank %d: connection with rank %d: %w", m.md.self, p.rank, err))
		return
	}
	p.conn, p.w, p.state = c, wire.NewWriter(c, m.md.self), peerUp
	var buf bytes.Buffer
	buf.Write(verdict)
	for _, f := range p.out {
		buf.Write(f)
	}
	if m.closing {
		h := wire.MakeHeader(wire.ChanControl, typeBye, 0, m.md.self, 0)
		buf.Write(h[:])
	}
	p.out = nil
	if buf.Len() > 0 {
		c.SetWriteDeadline(time.Now().Add(m.md.budget))
		_, err = c.Write(buf.Bytes())
		c.SetWriteDeadline(time.Time{})
	}
	if m.closing {
		// Closing: close() may already wait for the readers, so no new
		// one starts; what was queued went out, then the BYE.
		c.Close()
		p.conn, p.state = nil, peerGone
		return
	}
	m.readers.Add(1)
	go m.read(p, c, io.MultiReader(bytes.NewReader(h.left), c))
	if err != nil {
		c.Close() // the reader reports it
	}
}

// read delivers rank p's frames to the driver until the connection ends.
func (m *lazyMesh) read(p *lazyPeer, c net.Conn, src io.Reader) {
	defer m.readers.Done()
	r := bufio.NewReaderSize(src, 64<<10)
	for {
		f, err := wire.ReadFrame(r, msgLen+m.d.ps)
		if err != nil {
			m.mu.Lock()
			normal := p.bye || m.closing
			p.state = peerGone
			if p.conn != nil {
				p.conn.Close()
				p.conn = nil
			}
			m.mu.Unlock()
			if !normal {
				if err == io.EOF {
					err = fmt.Errorf("connection closed by rank %d", p.rank)
				}
				m.lost(p.rank, fmt.Errorf("dsm: memory of rank %d: rank %d: %w", m.md.self, p.rank, err))
			}
			return
		}
		switch {
		case f.Channel == wire.ChanDSM:
			f.Source = p.rank
			m.d.deliver(f)
		case f.Channel == wire.ChanControl && f.Type == typeBye:
			m.mu.Lock()
			p.bye = true
			m.mu.Unlock()
		default:
			m.d.logf("memory of rank %d: ignoring a %s frame from rank %d", m.md.self, f.Channel, p.rank)
		}
	}
}

// lost reports rank j lost to the driver (without mu).
func (m *lazyMesh) lost(j int, err error) {
	m.mu.Lock()
	closing := m.closing
	m.mu.Unlock()
	if closing {
		return
	}
	m.d.logf("%v", err)
	m.d.peerLost(j)
}

// close implements transport: BYE to every connected peer, then wait
// (at most 5 s) for their EOF.
func (m *lazyMesh) close() {
	m.mu.Lock()
	m.closing = true
	for _, p := range m.peers {
		if p != nil && p.state == peerUp && p.conn != nil {
			p.w.Write(wire.ChanControl, typeBye, 0)
			p.conn.(*net.TCPConn).CloseWrite()
		}
	}
	m.mu.Unlock()
	m.srv.Close()
	done := make(chan struct{})
	go func() { m.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	m.mu.Lock()
	for _, p := range m.peers {
		if p != nil && p.conn != nil {
			p.conn.Close()
			p.conn = nil
		}
	}
	m.mu.Unlock()
}

// writeFD writes b to a new socket's descriptor (a few bytes: they fit).
func writeFD(fd int, b []byte) { unix.Write(fd, b) }

func closeFD(fd int) { unix.Close(fd) }
