package dsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// group makes an n-rank region in this process: n Memories, each with its
// page server, connected (CONNECT: on demand, nothing is dialled yet).
func group(t testing.TB, n int, bytes int64, backend string) []*Memory {
	t.Helper()
	ms := make([]*Memory, n)
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for r, m := range ms {
			if m != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := m.Close(); err != nil {
						t.Errorf("rank %d: Close: %v", r, err)
					}
				}()
			}
		}
		wg.Wait()
	})
	tok := newTestToken()
	for r := range ms {
		m, err := newMemory(config{Rank: r, Size: n, Bytes: bytes, Token: tok, IP: "127.0.0.1", Backend: backend})
		if err != nil {
			t.Fatal(err)
		}
		ms[r] = m
	}
	addrs := make([]string, n)
	for r, m := range ms {
		addrs[r] = m.endpoint()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for r := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = ms[r].connect(ctx, addrs) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return ms
}

// pagerPid is the page server process of m (userfaultfd backend).
func pagerPid(t testing.TB, m *Memory) int {
	t.Helper()
	u, ok := m.impl.(*uffdImpl)
	if !ok {
		t.Fatalf("backend %s has no page server", m.Backend())
	}
	return u.pid
}

// tcpConns counts the established TCP connections each of pids holds,
// from their descriptors and one read of /proc/net/tcp{,6} (which is
// slow on a machine with many sockets).
func tcpConns(t *testing.T, pids ...int) []int {
	t.Helper()
	owner := map[string]int{} // socket inode -> index in pids
	for i, pid := range pids {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			l, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") {
				owner[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = i
			}
		}
	}
	n := make([]int, len(pids))
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			// sl local remote st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(line)
			if len(fs) > 9 && fs[3] == "01" {
				if i, ok := owner[fs[9]]; ok {
					n[i]++
				}
			}
		}
	}
	return n
}

// fdCount is the number of open descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// memConns counts every rank's memory-mesh connections: its page
// server's established TCP connections (userfaultfd), or the peers its
// in-process mesh has up (sigsegv).
func memConns(t *testing.T, ms []*Memory) []int {
	t.Helper()
	out := make([]int, len(ms))
	var pids []int
	for r, m := range ms {
		switch impl := m.impl.(type) {
		case *uffdImpl:
			pids = append(pids, impl.pid)
		case *sigsegvImpl:
			lm := impl.d.tr.(*lazyMesh)
			lm.mu.Lock()
			for _, p := range lm.peers {
				if p != nil && p.state == peerUp && p.conn != nil {
					out[r]++
				}
			}
			lm.mu.Unlock()
		default:
			t.Fatalf("backend %s has no memory mesh", m.Backend())
		}
	}
	if len(pids) > 0 {
		if len(pids) != len(ms) {
			t.Fatal("mixed backends")
		}
		return tcpConns(t, pids...)
	}
	return out
}

// TestMemoryMeshOnDemand: no rank's memory connects to another before it
// needs to; ranks that touch only their own pages and their right
// neighbour's make 2 connections each (a ring), whatever the number of
// ranks, and the page servers' descriptors do not grow with it.
func TestMemoryMeshOnDemand(t *testing.T) {
	t.Setenv(pagersEnv, "rank") // the mesh between page servers: one per rank here
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			const n = 8
			start := time.Now()
			ms := group(t, n, 1<<20, b)
			t.Logf("%d ranks started in %v", n, time.Since(start))
			ps := ms[0].PageSize()
			for r, c := range memConns(t, ms) {
				if c != 0 {
					t.Errorf("rank %d has %d memory connections after connect, want 0", r, c)
				}
			}
			// Page r is homed at rank r (p % n): each rank writes its own page.
			for r, m := range ms {
				m.StoreInt64(r*ps, int64(100+r))
			}
			for r, c := range memConns(t, ms) {
				if c != 0 {
					t.Errorf("rank %d has %d memory connections after writing its own page, want 0", r, c)
				}
			}
			start = time.Now()
			var wg sync.WaitGroup
			for r, m := range ms {
				wg.Add(1)
				go func() {
					defer wg.Done()
					next := (r + 1) % n
					if v := m.LoadInt64(next * ps); v != int64(100+next) {
						t.Errorf("rank %d read %d on page %d, want %d", r, v, next, 100+next)
					}
				}()
			}
			wg.Wait()
			t.Logf("the ring of reads (8 connections made) took %v", time.Since(start))
			for r, c := range memConns(t, ms) {
				if b == "uffd" {
					pid := pagerPid(t, ms[r])
					t.Logf("rank %d's page server: %d memory connections, %d descriptors", r, c, fdCount(t, pid))
				}
				if c != 2 {
					t.Errorf("rank %d has %d memory connections after reading its neighbour's page, want 2 (left and right neighbour)", r, c)
				}
			}
		})
	}
}

// TestSimultaneousDials: every rank faults at once on pages homed at every
// other rank, writing its own word of each: the page servers dial each
// other simultaneously; exactly one connection per pair survives, and no
// update is lost or applied twice.
func TestSimultaneousDials(t *testing.T) {
	t.Setenv(pagersEnv, "rank") // the mesh between page servers: one per rank here
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			const n, rounds = 6, 3
			ms := group(t, n, 1<<20, b)
			ps := ms[0].PageSize()
			start := make(chan struct{})
			var wg sync.WaitGroup
			for r, m := range ms {
				for k := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						for range rounds {
							m.AddInt64(k*ps+8*r, 1)
						}
					}()
				}
			}
			close(start)
			wg.Wait()
			for r, m := range ms {
				for k := range n {
					for w := range n {
						if v := m.LoadInt64(k*ps + 8*w); v != rounds {
							t.Errorf("rank %d reads word %d of page %d = %d, want %d", r, w, k, v, rounds)
						}
					}
				}
			}
			// The losing dials are closed right after their verdict: allow
			// them a moment to go.
			deadline := time.Now().Add(5 * time.Second)
		poll:
			for {
				cs := memConns(t, ms)
				for r, c := range cs {
					if c < n-1 || (c > n-1 && time.Now().After(deadline)) {
						t.Fatalf("rank %d has %d memory connections, want %d (one per peer)", r, c, n-1)
					}
					if c > n-1 {
						time.Sleep(5 * time.Millisecond) // polling /proc, not synchronisation
						continue poll
					}
				}
				break
			}
		})
	}
}

// TestDecide: the rule for an incoming connection keeps the lower rank's
// dial when both dial, and never takes a second connection.
func TestDecide(t *testing.T) {
	for _, c := range []struct {
		st      peerState
		self, j int
		want    decision
	}{
		{peerIdle, 1, 2, takeIt},
		{peerIdle, 2, 1, takeIt},
		{peerDialing, 1, 2, mineWins}, // lower rank: its own dial wins
		{peerDialing, 2, 1, takeIt},   // higher rank: the lower one's dial wins
		{peerYielded, 2, 1, takeIt},   // the dial it was told to wait for
		{peerUp, 1, 2, refuseUp},
		{peerUp, 2, 1, refuseUp},
		{peerGone, 2, 1, refuseGone},
	} {
		if got := decide(c.st, c.self, c.j); got != c.want {
			t.Errorf("decide(state %d, self %d, from %d) = %d, want %d", c.st, c.self, c.j, got, c.want)
		}
	}
}

// TestDialQueue: one rank faults at once on pages homed at more ranks than
// it may dial at a time (maxDials): the dials past the cap wait for a
// slot, and every fault is served.
func TestDialQueue(t *testing.T) {
	t.Setenv(pagersEnv, "rank") // the mesh between page servers: one per rank here
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			const n = maxDials + 4
			ms := group(t, n, 1<<20, b)
			ps := ms[0].PageSize()
			for r, m := range ms {
				m.StoreInt64(r*ps, int64(1000+r)) // page r, homed at rank r
			}
			var wg sync.WaitGroup
			for k := 1; k < n; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if v := ms[0].LoadInt64(k * ps); v != int64(1000+k) {
						t.Errorf("rank 0 read %d on page %d, want %d", v, k, 1000+k)
					}
				}()
			}
			wg.Wait()
			if c := memConns(t, ms)[0]; c != n-1 {
				t.Errorf("rank 0 has %d memory connections, want %d", c, n-1)
			}
		})
	}
}
