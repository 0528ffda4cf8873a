package transporttest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TCPMesh is a full mesh of n ranks over loopback TCP: one connection per
// pair, frames of a 4-byte little-endian length then the payload, and a
// reader goroutine per connection end that queues frames for Recv, as the
// rank package's mesh does.
type TCPMesh struct {
	Ends []*TCPEnd
	wg   sync.WaitGroup
}

const maxFrame = 64 << 20

type TCPEnd struct {
	rank, size int
	conns      []net.Conn
	wmu        []sync.Mutex
	in         []*frameQueue
}

type frameQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	frames [][]byte
	err    error
}

func NewTCPMesh(tb testing.TB, n int) *TCPMesh {
	tb.Helper()
	m := &TCPMesh{Ends: make([]*TCPEnd, n)}
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("listen on loopback: %v", err)
		}
		lns[i] = ln
		e := &TCPEnd{rank: i, size: n, conns: make([]net.Conn, n), wmu: make([]sync.Mutex, n), in: make([]*frameQueue, n)}
		for j := range e.in {
			e.in[j] = &frameQueue{}
			e.in[j].cond = sync.NewCond(&e.in[j].mu)
		}
		m.Ends[i] = e
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	// Rank j accepts one connection from every i < j; the dialler
	// introduces itself with its rank.
	errc := make(chan error, n)
	for j := range n {
		go func() {
			for range j {
				c, err := lns[j].Accept()
				if err != nil {
					errc <- fmt.Errorf("accept on rank %d: %w", j, err)
					return
				}
				c.SetDeadline(deadline)
				var id [4]byte
				if _, err := io.ReadFull(c, id[:]); err != nil {
					errc <- fmt.Errorf("read hello on rank %d: %w", j, err)
					return
				}
				i := int(binary.LittleEndian.Uint32(id[:]))
				if i >= j || m.Ends[j].conns[i] != nil {
					errc <- fmt.Errorf("rank %d: unexpected hello from %d", j, i)
					return
				}
				c.SetDeadline(time.Time{})
				m.Ends[j].conns[i] = c
			}
			errc <- nil
		}()
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			c, err := net.DialTimeout("tcp", lns[j].Addr().String(), 10*time.Second)
			if err != nil {
				tb.Fatalf("dial rank %d: %v", j, err)
			}
			var id [4]byte
			binary.LittleEndian.PutUint32(id[:], uint32(i))
			if _, err := c.Write(id[:]); err != nil {
				tb.Fatalf("write hello to rank %d: %v", j, err)
			}
			m.Ends[i].conns[j] = c
		}
	}
	for range n {
		if err := <-errc; err != nil {
			tb.Fatal(err)
		}
	}
	for _, e := range m.Ends {
		for p, c := range e.conns {
			if c != nil {
				m.wg.Add(1)
				go func() {
					defer m.wg.Done()
					e.read(p, c)
				}()
			}
		}
	}
	tb.Cleanup(m.Close)
	return m
}

func (e *TCPEnd) read(peer int, c net.Conn) {
	q := e.in[peer]
	var hdr [4]byte
	var err error
	for {
		if _, err = io.ReadFull(c, hdr[:]); err != nil {
			break
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n > maxFrame {
			err = fmt.Errorf("frame of %d bytes", n)
			break
		}
		b := make([]byte, n)
		if _, err = io.ReadFull(c, b); err != nil {
			break
		}
		q.mu.Lock()
		q.frames = append(q.frames, b)
		q.mu.Unlock()
		q.cond.Broadcast()
	}
	q.mu.Lock()
	q.err = fmt.Errorf("tcp: connection to rank %d: %w", peer, err)
	q.mu.Unlock()
	q.cond.Broadcast()
}

// kill closes every connection of rank r, as if its process died.
func (m *TCPMesh) Kill(r int) {
	for _, c := range m.Ends[r].conns {
		if c != nil {
			c.Close()
		}
	}
}

func (m *TCPMesh) Close() {
	for _, e := range m.Ends {
		for _, c := range e.conns {
			if c != nil {
				c.Close()
			}
		}
	}
	m.wg.Wait()
}

func (e *TCPEnd) Rank() int { return e.rank }
func (e *TCPEnd) Size() int { return e.size }

func (e *TCPEnd) Send(to int, msg []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(msg)))
	bufs := net.Buffers{hdr[:], msg}
	e.wmu[to].Lock()
	defer e.wmu[to].Unlock()
	if _, err := bufs.WriteTo(e.conns[to]); err != nil {
		return fmt.Errorf("tcp: send to rank %d: %w", to, err)
	}
	return nil
}

func (e *TCPEnd) Recv(from int) ([]byte, error) {
	q := e.in[from]
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.frames) == 0 && q.err == nil {
		q.cond.Wait()
	}
	if len(q.frames) > 0 {
		b := q.frames[0]
		q.frames = q.frames[1:]
		return b, nil
	}
	if errors.Is(q.err, io.EOF) || errors.Is(q.err, net.ErrClosed) {
		return nil, fmt.Errorf("tcp: receive from rank %d: peer lost: %w", from, q.err)
	}
	return nil, fmt.Errorf("tcp: receive from rank %d: %w", from, q.err)
}
