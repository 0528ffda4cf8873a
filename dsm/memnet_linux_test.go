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

	"github.com/dsmexec/dsmexec/internal/uffdtest"
)

// group makes an n-rank region in this process: n Memories, each with its
// page server, connected (CONNECT: on demand, nothing is dialled yet).
func group(t *testing.T, n int, bytes int64, backend string) []*Memory {
	t.Helper()
	ms := make([]*Memory, n)
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, m := range ms {
			if m != nil {
				wg.Add(1)
				go func() { defer wg.Done(); m.Close() }()
			}
		}
		wg.Wait()
	})
	for r := range ms {
		m, err := newMemory(config{Rank: r, Size: n, Bytes: bytes, Token: testToken, IP: "127.0.0.1", Backend: backend})
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
func pagerPid(t *testing.T, m *Memory) int {
	t.Helper()
	u, ok := m.impl.(*uffdImpl)
	if !ok {
		t.Fatalf("backend %s has no page server", m.Backend())
	}
	return u.cmd.Process.Pid
}

// tcpConns counts the established TCP connections pid holds, from its
// descriptors and /proc/net/tcp{,6}.
func tcpConns(t *testing.T, pid int) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(b), "\n") {
			// sl local remote st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(line)
			if len(fs) > 9 && fs[3] == "01" && inodes[fs[9]] {
				n++
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

// TestMemoryMeshOnDemand: no page server connects to another before it
// needs to; ranks that touch only their own pages and their right
// neighbour's make 2 connections each (a ring), whatever the number of
// ranks, and the page servers' descriptors do not grow with it.
func TestMemoryMeshOnDemand(t *testing.T) {
	uffdtest.Need(t)
	const n = 8
	ms := group(t, n, 1<<20, "uffd")
	ps := ms[0].PageSize()
	pids := make([]int, n)
	for r, m := range ms {
		pids[r] = pagerPid(t, m)
		if c := tcpConns(t, pids[r]); c != 0 {
			t.Errorf("rank %d's page server has %d connections after connect, want 0", r, c)
		}
	}
	// Page r is homed at rank r (p % n): each rank writes its own page.
	for r, m := range ms {
		m.StoreInt64(r*ps, int64(100+r))
	}
	for r := range ms {
		if c := tcpConns(t, pids[r]); c != 0 {
			t.Errorf("rank %d's page server has %d connections after writing its own page, want 0", r, c)
		}
	}
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
	for r := range ms {
		c := tcpConns(t, pids[r])
		t.Logf("rank %d's page server: %d memory connections, %d descriptors", r, c, fdCount(t, pids[r]))
		if r == 0 && testing.Verbose() {
			ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pids[r]))
			for _, e := range ents {
				l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pids[r], e.Name()))
				t.Logf("  fd %s -> %s", e.Name(), l)
			}
		}
		if c != 2 {
			t.Errorf("rank %d's page server has %d connections after reading its neighbour's page, want 2 (left and right neighbour)", r, c)
		}
	}
}

// TestSimultaneousDials: every rank faults at once on pages homed at every
// other rank, writing its own word of each: the page servers dial each
// other simultaneously; exactly one connection per pair survives, and no
// update is lost or applied twice.
func TestSimultaneousDials(t *testing.T) {
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
			if b != "uffd" {
				return
			}
			// The losing dials are closed right after their verdict: allow
			// them a moment to go.
			deadline := time.Now().Add(5 * time.Second)
			for r, m := range ms {
				pid := pagerPid(t, m)
				for {
					c := tcpConns(t, pid)
					if c == n-1 {
						break
					}
					if c < n-1 || time.Now().After(deadline) {
						t.Fatalf("rank %d's page server has %d connections, want %d (one per peer)", r, c, n-1)
					}
					time.Sleep(5 * time.Millisecond) // polling /proc, not synchronisation
				}
			}
		})
	}
}
