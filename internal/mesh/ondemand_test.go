package mesh

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lazyCluster is n Lazy meshes in this process; every connection handed
// over is recorded by (rank, peer).
type lazyCluster struct {
	ms     []*Lazy
	mu     sync.Mutex
	conns  map[[2]int][]*Conn
	failed map[[2]int]error
	ready  chan [2]int
	fail   chan [2]int
}

func newLazyCluster(t *testing.T, n int, timeout time.Duration, setup func(c *Conn, dl time.Time) error) *lazyCluster {
	t.Helper()
	lns, addrs := listeners(t, n)
	lc := &lazyCluster{conns: map[[2]int][]*Conn{}, failed: map[[2]int]error{},
		ready: make(chan [2]int, n*n), fail: make(chan [2]int, n*n)}
	tok := []byte("lazy-token")
	for r := 0; r < n; r++ {
		r := r
		lg := &logBuf{}
		lc.ms = append(lc.ms, OnDemand(OnDemandConfig{
			Rank: r, Addrs: addrs, Token: tok, Listener: lns[r], Timeout: timeout, Setup: setup,
			Ready: func(c *Conn) {
				lc.mu.Lock()
				lc.conns[[2]int{r, c.Rank}] = append(lc.conns[[2]int{r, c.Rank}], c)
				lc.mu.Unlock()
				lc.ready <- [2]int{r, c.Rank}
			},
			Failed: func(peer int, err error) {
				lc.mu.Lock()
				lc.failed[[2]int{r, peer}] = err
				lc.mu.Unlock()
				lc.fail <- [2]int{r, peer}
			},
			Logf: lg.logf,
		}))
	}
	t.Cleanup(func() {
		for _, m := range lc.ms {
			m.Close()
		}
		lc.mu.Lock()
		for _, cs := range lc.conns {
			for _, c := range cs {
				c.TCP.Close()
			}
		}
		lc.mu.Unlock()
	})
	return lc
}

func (lc *lazyCluster) waitReady(t *testing.T, k int) {
	t.Helper()
	for i := 0; i < k; i++ {
		select {
		case <-lc.ready:
		case p := <-lc.fail:
			t.Fatalf("rank %d: peer %d failed: %v", p[0], p[1], lc.failed[p])
		case <-time.After(30 * time.Second):
			t.Fatalf("hung: %d of %d connections", i, k)
		}
	}
}

// TestLazyCrossingDials: every rank wants every other at once, many times
// over: each pair ends with exactly one connection, the same one on both
// sides, and bytes written on it arrive in order.
func TestLazyCrossingDials(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	for round := 0; round < rounds; round++ {
		n := 5
		lc := newLazyCluster(t, n, 10*time.Second, nil)
		var wg sync.WaitGroup
		for r := 0; r < n; r++ {
			for p := 0; p < n; p++ {
				wg.Add(1)
				go func(r, p int) { defer wg.Done(); lc.ms[r].Want(p) }(r, p)
			}
		}
		wg.Wait()
		lc.waitReady(t, n*(n-1))
		lc.mu.Lock()
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				a, b := lc.conns[[2]int{i, j}], lc.conns[[2]int{j, i}]
				if len(a) != 1 || len(b) != 1 {
					t.Fatalf("round %d: pair %d-%d has %d and %d connections", round, i, j, len(a), len(b))
				}
				if a[0].TCP.LocalAddr().String() != b[0].TCP.RemoteAddr().String() {
					t.Fatalf("round %d: pair %d-%d uses two connections: %v-%v and %v-%v", round, i, j,
						a[0].TCP.LocalAddr(), a[0].TCP.RemoteAddr(), b[0].TCP.LocalAddr(), b[0].TCP.RemoteAddr())
				}
			}
		}
		lc.mu.Unlock()
		// Order: 1000 numbered lines each way on every pair.
		var errs sync.Map
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if i == j {
					continue
				}
				c := lc.conns[[2]int{i, j}][0]
				wg.Add(2)
				go func() {
					defer wg.Done()
					var sb strings.Builder
					for k := 0; k < 1000; k++ {
						fmt.Fprintf(&sb, "%d\n", k)
					}
					c.TCP.Write([]byte(sb.String()))
				}()
				go func(i, j int) {
					defer wg.Done()
					want := 0
					var got []byte
					got = append(got, c.Buffered...)
					buf := make([]byte, 4096)
					c.TCP.SetReadDeadline(time.Now().Add(20 * time.Second))
					for want < 1000 {
						for {
							k := strings.IndexByte(string(got), '\n')
							if k < 0 {
								break
							}
							if string(got[:k]) != fmt.Sprint(want) {
								errs.Store([2]int{i, j}, fmt.Errorf("got %q, want %d", got[:k], want))
								return
							}
							want++
							got = got[k+1:]
						}
						if want == 1000 {
							break
						}
						nr, err := c.TCP.Read(buf)
						if err != nil {
							errs.Store([2]int{i, j}, err)
							return
						}
						got = append(got, buf[:nr]...)
					}
				}(i, j)
			}
		}
		wg.Wait()
		errs.Range(func(k, v any) bool {
			t.Errorf("round %d: %v: %v", round, k, v)
			return true
		})
		for _, m := range lc.ms {
			if m.Conns() != n-1 {
				t.Fatalf("round %d: a rank counts %d connections, want %d", round, m.Conns(), n-1)
			}
		}
	}
}

// TestLazyOnlyWanted: a ring job connects only neighbours.
func TestLazyOnlyWanted(t *testing.T) {
	n := 16
	lc := newLazyCluster(t, n, 10*time.Second, nil)
	for r := 0; r < n; r++ {
		lc.ms[r].Want((r + 1) % n)
	}
	lc.waitReady(t, 2*n)
	for r, m := range lc.ms {
		if m.Conns() != 2 {
			t.Errorf("rank %d has %d connections, want 2", r, m.Conns())
		}
	}
}

// TestLazyLostPeer: a peer that is known lost fails at once; one that is
// not listening any more fails after a few refusals, long before the
// timeout, with one line naming it.
func TestLazyLostPeer(t *testing.T) {
	lns, addrs := listeners(t, 3)
	lns[2].Close() // rank 2 never listens
	failed := make(chan error, 4)
	m := OnDemand(OnDemandConfig{Rank: 0, Addrs: addrs, Token: []byte("t"), Listener: lns[0], Timeout: 10 * time.Minute,
		Ready:  func(c *Conn) { t.Errorf("connected to %d", c.Rank) },
		Failed: func(peer int, err error) { failed <- fmt.Errorf("peer %d: %w", peer, err) }})
	defer m.Close()
	defer lns[1].Close()
	lost := errors.New("mpirun says so")
	m.Lost(1, lost)
	select {
	case err := <-failed:
		if !errors.Is(err, lost) || !strings.Contains(err.Error(), "peer 1") {
			t.Fatalf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a lost peer did not fail")
	}
	m.Want(2)
	select {
	case err := <-failed:
		if !strings.Contains(err.Error(), "rank 2 at "+addrs[2]) || !strings.Contains(err.Error(), "refused 4 connections") {
			t.Fatalf("got %v", err)
		}
		t.Log(err)
	case <-time.After(20 * time.Second):
		t.Fatal("an unreachable peer did not fail")
	}
}

// TestLazyLostWhileDialing: a dial loop retrying a peer stops once the
// peer is known lost.
func TestLazyLostWhileDialing(t *testing.T) {
	lns, addrs := listeners(t, 2)
	lns[1].Close()
	failed := make(chan error, 1)
	m := OnDemand(OnDemandConfig{Rank: 0, Addrs: addrs, Token: []byte("t"), Listener: lns[0], Timeout: time.Minute, Refusals: 1 << 20,
		Ready:  func(c *Conn) {},
		Failed: func(peer int, err error) { failed <- err }})
	defer m.Close()
	m.Want(1)
	for end := time.Now().Add(10 * time.Second); m.Dials() < 2; {
		if time.Now().After(end) {
			t.Fatal("no second dial")
		}
		time.Sleep(time.Millisecond) // polls a condition
	}
	lost := errors.New("gone")
	m.Lost(1, lost)
	select {
	case err := <-failed:
		if !errors.Is(err, lost) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dial loop went on")
	}
}

// TestLazySetup: Setup runs on both sides before Ready and may exchange
// bytes; what it leaves unread is the stream's start.
func TestLazySetup(t *testing.T) {
	setup := func(c *Conn, dl time.Time) error {
		if _, err := c.TCP.Write([]byte("hi")); err != nil {
			return err
		}
		b := make([]byte, 2)
		n := copy(b, c.Buffered)
		c.Buffered = c.Buffered[n:]
		if _, err := io.ReadFull(c.TCP, b[n:]); err != nil {
			return err
		}
		if string(b) != "hi" {
			return fmt.Errorf("got %q", b)
		}
		return nil
	}
	lc := newLazyCluster(t, 2, 10*time.Second, setup)
	lc.ms[0].Want(1)
	lc.ms[1].Want(0)
	lc.waitReady(t, 2)
}

// TestLazyStranger: a connection without the token is refused and does
// not count.
func TestLazyStranger(t *testing.T) {
	lc := newLazyCluster(t, 2, 10*time.Second, nil)
	c, err := net.Dial("tcp", lc.ms[0].cfg.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(c)
	c.Close()
	lc.ms[1].Want(0)
	lc.waitReady(t, 2)
	if lc.ms[0].Conns() != 1 {
		t.Fatalf("%d connections", lc.ms[0].Conns())
	}
}
