package mesh

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/wire"
)

type cluster struct {
	meshes []*Mesh
	inbox  []chan wire.Frame
	lost   []chan int
	logs   []*logBuf
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func listeners(t *testing.T, n int) ([]net.Listener, []string) {
	t.Helper()
	lns := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], addrs[i] = ln, ln.Addr().String()
	}
	return lns, addrs
}

func build(t *testing.T, n int, token []byte, before func(addrs []string)) *cluster {
	t.Helper()
	lns, addrs := listeners(t, n)
	if before != nil {
		before(addrs)
	}
	c := &cluster{meshes: make([]*Mesh, n), inbox: make([]chan wire.Frame, n), lost: make([]chan int, n), logs: make([]*logBuf, n)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		c.inbox[i] = make(chan wire.Frame, 1000)
		c.lost[i] = make(chan int, n)
		c.logs[i] = &logBuf{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.meshes[i], errs[i] = Connect(ctx, Config{
				Rank: i, Addrs: addrs, Token: token, Listener: lns[i],
				Handler: func(f wire.Frame) { c.inbox[i] <- f },
				OnLost:  func(p int, err error) { c.lost[i] <- p },
				Logf:    c.logs[i].logf,
			})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", i, err)
		}
	}
	return c
}

func (c *cluster) close() {
	var wg sync.WaitGroup
	for _, m := range c.meshes {
		wg.Add(1)
		go func(m *Mesh) { defer wg.Done(); m.Close(5 * time.Second) }(m)
	}
	wg.Wait()
}

func TestAllPairs(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := build(t, n, []byte("secret"), nil)
			defer c.close()
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					if i != j {
						if err := c.meshes[i].Send(j, wire.ChanUser, 7, []byte(fmt.Sprintf("%d->%d", i, j))); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			for j := 0; j < n; j++ {
				seen := map[int]bool{}
				for k := 0; k < n-1; k++ {
					f := <-c.inbox[j]
					if want := fmt.Sprintf("%d->%d", f.Source, j); string(f.Body) != want || f.Type != 7 {
						t.Fatalf("rank %d got %q from %d, want %q", j, f.Body, f.Source, want)
					}
					seen[f.Source] = true
				}
				if len(seen) != n-1 {
					t.Fatalf("rank %d heard from %v", j, seen)
				}
			}
		})
	}
}

func TestBigMessage(t *testing.T) {
	c := build(t, 2, []byte("k"), nil)
	defer c.close()
	body := bytes.Repeat([]byte("0123456789"), 4<<20) // 40 MiB: fragmented
	if err := c.meshes[0].SendMessage(1, wire.ChanUser, 1, []byte{1, 2}, body); err != nil {
		t.Fatal(err)
	}
	f := <-c.inbox[1]
	if len(f.Body) != len(body)+2 || !bytes.Equal(f.Body[2:], body) {
		t.Fatalf("got %d bytes", len(f.Body))
	}
}

// A stranger with garbage, and one with the wrong token, connect to rank 1's
// port while the mesh forms: both are refused and logged, the mesh forms.
func TestStrangersRefused(t *testing.T) {
	var garbage, wrong net.Conn
	c := build(t, 3, []byte("right"), func(addrs []string) {
		var err error
		garbage, err = net.Dial("tcp", addrs[2])
		if err != nil {
			t.Fatal(err)
		}
		garbage.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		wrong, err = net.Dial("tcp", addrs[2])
		if err != nil {
			t.Fatal(err)
		}
		go auth.Dial(wrong, bufioReader(wrong), []byte("wrong"), 0, 2, time.Now().Add(5*time.Second))
	})
	defer c.close()
	defer garbage.Close()
	defer wrong.Close()
	if err := c.meshes[0].Send(2, wire.ChanUser, 1, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if f := <-c.inbox[2]; string(f.Body) != "ok" {
		t.Fatalf("got %q", f.Body)
	}
}

func TestLostPeer(t *testing.T) {
	c := build(t, 3, []byte("k"), nil)
	c.meshes[1].closeConns() // rank 1 dies abruptly
	for _, i := range []int{0, 2} {
		select {
		case p := <-c.lost[i]:
			if p != 1 {
				t.Fatalf("rank %d lost %d, want 1", i, p)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("rank %d never noticed rank 1 was lost", i)
		}
	}
	err := c.meshes[0].Send(2, wire.ChanUser, 1, []byte("still"))
	if err != nil {
		t.Fatal(err)
	}
	c.close()
}

func TestGracefulCloseIsNotLoss(t *testing.T) {
	c := build(t, 3, []byte("k"), nil)
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			if i != j {
				c.meshes[i].Send(j, wire.ChanUser, 1, []byte("last"))
			}
		}
	}
	c.close()
	for i := 0; i < 3; i++ {
		if len(c.inbox[i]) != 2 {
			t.Errorf("rank %d got %d last messages, want 2", i, len(c.inbox[i]))
		}
		select {
		case p := <-c.lost[i]:
			t.Errorf("rank %d reported rank %d lost on a graceful close", i, p)
		default:
		}
	}
	if err := c.meshes[0].Send(1, wire.ChanUser, 1, nil); err != ErrClosed {
		t.Fatalf("send after close: %v", err)
	}
}

// Strangers holding many idle connections to rank 2's port (more than
// the accept loop lets one host keep unauthenticated) do not keep the
// real ranks out: the oldest idle ones are closed to make room.
func TestIdleStrangersEvicted(t *testing.T) {
	var idle []net.Conn
	c := build(t, 3, []byte("right"), func(addrs []string) {
		for i := 0; i < 3+16+5; i++ {
			s, err := net.Dial("tcp", addrs[2])
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, s)
		}
	})
	defer c.close()
	defer func() {
		for _, s := range idle {
			s.Close()
		}
	}()
	if err := c.meshes[0].Send(2, wire.ChanUser, 1, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if f := <-c.inbox[2]; string(f.Body) != "ok" {
		t.Fatalf("got %q", f.Body)
	}
}

func TestRanksOnHost(t *testing.T) {
	if n := RanksOnHost([]string{"127.0.0.1:1", "10.0.0.2:5", "127.0.0.1:7"}, 2); n != 2 {
		t.Errorf("RanksOnHost = %d, want 2", n)
	}
}
