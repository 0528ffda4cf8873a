package dsm

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/uffd"
	"github.com/dsmexec/dsmexec/internal/uffdtest"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// helperEnv selects a helper mode of this test binary (see TestMain).
const helperEnv = "DSMEXEC_DSM_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "connect-forever":
		os.Exit(helperConnectForever())
	case "pair-idle":
		os.Exit(helperPairIdle())
	case "start-only":
		os.Exit(helperStartOnly())
	case "host-rank":
		os.Exit(helperHostRank())
	case "fault-on-gone":
		os.Exit(helperFaultOnGone())
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// newTestToken is a job token of its own for each test's ranks: ranks
// with one token share a host page server.
func newTestToken() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// addr0Env gives the helpers rank 0's memory endpoint.
const addr0Env = "DSMEXEC_DSM_TEST_ADDR0"

// helperConnectForever is rank 1 of 2 whose rank 0 never answers (its
// address is a listener nobody accepts on): a fault on a page homed at
// rank 0 leaves the page server connecting, until its budget (a minute).
func helperConnectForever() int {
	m, err := newMemory(config{Rank: 1, Size: 2, Bytes: 1 << 20, Token: newTestToken(), IP: "127.0.0.1", Backend: "uffd"})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("ENDPOINT", m.endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = m.connect(ctx, []string{os.Getenv(addr0Env), m.endpoint()})
	fmt.Println("CONNECT", err)
	go m.LoadInt64(0) // page 0: homed at rank 0
	time.Sleep(time.Hour)
	return 0
}

// helperFaultOnGone is rank 1 of 2 whose rank 0's page server is gone
// (nothing listens at its address): a fault on a page homed there must
// end this rank, naming rank 0.
func helperFaultOnGone() int {
	m, err := newMemory(config{Rank: 1, Size: 2, Bytes: 1 << 20, Token: newTestToken(), IP: "127.0.0.1", Backend: os.Getenv("DSMEXEC_FAULT")})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = m.connect(ctx, []string{os.Getenv(addr0Env), m.endpoint()})
	fmt.Println("CONNECT", err)
	if err != nil {
		return 1
	}
	fmt.Println("READ", m.LoadInt64(0)) // page 0: homed at rank 0
	return 0
}

// helperPairIdle is ranks 0 and 1 in one process, connected and idle
// until stdin closes.
func helperPairIdle() int {
	var ms [2]*Memory
	tok := newTestToken()
	for r := range ms {
		m, err := newMemory(config{Rank: r, Size: 2, Bytes: 1 << 20, Token: tok, IP: "127.0.0.1", Backend: "uffd"})
		if err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
		ms[r] = m
	}
	addrs := []string{ms[0].endpoint(), ms[1].endpoint()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for _, m := range ms {
		go func() { errs <- m.connect(ctx, addrs) }()
	}
	for range ms {
		if err := <-errs; err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
	}
	ms[0].StoreInt64(0, 5)
	fmt.Println("READY", ms[1].LoadInt64(0))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// startHelper starts this test binary as the helper process of the given
// mode (helperEnv); setup wires its stderr or stdin. It returns the command
// and a scanner of its stdout; the process is killed when the test ends.
func startHelper(t *testing.T, mode string, setup func(*exec.Cmd)) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	setup(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, bufio.NewScanner(stdout)
}

// children lists the processes whose parent is ppid, with their comm.
func children(ppid int) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if pp, _ := strconv.Atoi(f[1]); pp == ppid {
			out[pid] = s[strings.IndexByte(s, '(')+1 : i]
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// TestPagerExitsWhenRankDiesWhileConnecting kills a rank while its page
// server connects (on demand, for a fault) to a peer that never answers:
// the page server must be gone within 1 s (it used to wait for its
// one-minute connect deadline, holding its listening port). It also checks
// the page server's name.
func TestPagerExitsWhenRankDiesWhileConnecting(t *testing.T) {
	uffdtest.Need(t)
	for _, mode := range []string{"rank", "host"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv(pagersEnv, mode)
			testPagerExitsWhenRankDies(t, mode)
		})
	}
}

func testPagerExitsWhenRankDies(t *testing.T, mode string) {
	mute, err := net.Listen("tcp", "127.0.0.1:0") // accepts nothing: handshakes hang
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	cmd, sc := startHelper(t, "connect-forever", func(cmd *exec.Cmd) {
		cmd.Stderr = os.Stderr
		cmd.Env = append(cmd.Env, addr0Env+"="+mute.Addr().String())
	})
	if !sc.Scan() {
		t.Fatalf("helper printed nothing: %v", sc.Err())
	}
	line := sc.Text()
	ep, ok := strings.CutPrefix(line, "ENDPOINT ")
	if !ok {
		t.Fatalf("helper: %s", line)
	}
	var pager int
	for pid, comm := range children(cmd.Process.Pid) {
		if comm != pagerName {
			t.Errorf("child %d of the rank is named %q, want %q", pid, comm, pagerName)
		}
		pager = pid
	}
	if pager == 0 {
		t.Fatal("no page server process found")
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pager)); strings.TrimSpace(string(b)) != pagerName {
		t.Errorf("/proc/%d/comm = %q, want %q", pager, b, pagerName)
	}
	want := pagerName + "\x00rank\x001"
	if mode == "host" {
		want = pagerName + "\x00host\x00"
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pager)); !strings.HasPrefix(string(b), want) {
		t.Errorf("/proc/%d/cmdline = %q, want %q", pager, b, want)
	}
	if !sc.Scan() || sc.Text() != "CONNECT <nil>" {
		t.Fatalf("helper: %q %v", sc.Text(), sc.Err())
	}
	// The page server answers handshakes at any time: a challenge
	// (refused, with the wrong token) proves it is there.
	c, err := net.Dial("tcp", ep)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = auth.Dial(c, bufio.NewReader(c), []byte("wrong token"), 0, 1, time.Now().Add(30*time.Second))
	if !errors.Is(err, auth.ErrDenied) {
		t.Fatalf("handshake with the connecting page server: %v, want a challenge that fails to verify", err)
	}
	// Its dial to rank 0 is under way once that listener has a connection
	// waiting (the fault is served by a dial of the page server).
	waitBacklog(t, mute.(*net.TCPListener))
	cmd.Process.Kill()
	cmd.Wait()
	start := time.Now()
	for alive(pager) {
		// It goes within milliseconds (logged below); the bound is
		// generous so that a loaded CI machine does not fail it.
		if time.Since(start) > 3*time.Second {
			t.Fatalf("page server %d still running 3 s after its rank was killed while connecting", pager)
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, not synchronisation
	}
	t.Logf("page server gone %v after its rank", time.Since(start))
}

// waitBacklog waits until ln has a connection waiting to be accepted,
// without accepting it: it looks for an established socket in
// /proc/net/tcp whose local port is ln's, other than ln itself.
func waitBacklog(t *testing.T, ln *net.TCPListener) {
	t.Helper()
	port := ln.Addr().(*net.TCPAddr).Port
	want := fmt.Sprintf(":%04X ", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/net/tcp")
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			// sl local remote st ...: 01 is ESTABLISHED
			if len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "01" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection to %v within 20 s", ln.Addr())
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, not synchronisation
	}
}

// TestFaultOnGonePeer: a rank faults on a page whose home's page server is
// gone before any connection to it existed (nothing listens at its
// address): the rank exits 1 at once with an error naming that rank, the
// way a lost connection is reported.
func TestFaultOnGonePeer(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) { testFaultOnGonePeer(t, b) })
	}
}

func testFaultOnGonePeer(t *testing.T, backend string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	var stderr strings.Builder
	cmd, sc := startHelper(t, "fault-on-gone", func(cmd *exec.Cmd) {
		cmd.Stderr = &stderr
		cmd.Env = append(cmd.Env, addr0Env+"="+gone, "DSMEXEC_FAULT="+backend)
	})
	if !sc.Scan() || sc.Text() != "CONNECT <nil>" {
		t.Fatalf("helper: %q %v", sc.Text(), sc.Err())
	}
	exited := make(chan error, 1)
	go func() {
		for sc.Scan() {
			t.Logf("helper: %s", sc.Text())
		}
		exited <- cmd.Wait()
	}()
	start := time.Now()
	select {
	case err := <-exited:
		msg := stderr.String()
		if err == nil || !strings.Contains(msg, "rank 0") || !strings.Contains(msg, "page 0") {
			t.Fatalf("rank exited with %v, stderr:\n%s; want a failure naming rank 0 and page 0", err, msg)
		}
		t.Logf("rank exited %v after connecting: %s", time.Since(start), strings.TrimSpace(msg))
	case <-time.After(20 * time.Second):
		t.Fatalf("the rank still runs 20 s after faulting on a page of a gone rank; stderr:\n%s", stderr.String())
	}
}

// pair makes a two-rank region in this process: two Memories, each with
// its page server, connected to each other.
func pair(t *testing.T, bytes int64, backend string) [2]*Memory {
	t.Helper()
	return pairWith(t, bytes, backend, nil)
}

// pairWith is pair, calling before (if not nil) with the memories before
// they connect.
func pairWith(t *testing.T, bytes int64, backend string, before func([2]*Memory)) [2]*Memory {
	t.Helper()
	var ms [2]*Memory
	tok := newTestToken()
	for r := range ms {
		m, err := newMemory(config{Rank: r, Size: 2, Bytes: bytes, Token: tok, IP: "127.0.0.1", Backend: backend})
		if err != nil {
			t.Fatal(err)
		}
		ms[r] = m
	}
	if before != nil {
		before(ms)
	}
	addrs := []string{ms[0].endpoint(), ms[1].endpoint()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = ms[r].connect(ctx, addrs) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Add(1)
			go func() { defer wg.Done(); m.Close() }()
		}
		wg.Wait()
	})
	return ms
}

func backends(t *testing.T) []string {
	bs := []string{"sigsegv"}
	if u, err := uffd.New(true); err == nil {
		u.Close()
		bs = append(bs, "uffd")
	}
	return bs
}

// TestResetStats: counters count from the last ResetStats.
func TestResetStats(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			ms := pair(t, 1<<20, b)
			ps := ms[0].PageSize()
			ms[0].StoreInt64(0, 7)
			ms[0].StoreInt64(2*ps, 9) // page 2: homed at rank 0
			if v := ms[1].LoadInt64(0); v != 7 {
				t.Fatalf("rank 1 read %d, want 7", v)
			}
			if st := ms[1].Stats(); st.ReadFaults == 0 || st.PagesIn == 0 {
				t.Fatalf("no fault counted before the reset: %+v", st)
			}
			ms[1].ResetStats()
			if st := ms[1].Stats(); st != (Stats{}) {
				t.Fatalf("Stats after ResetStats = %+v, want zeros", st)
			}
			if v := ms[1].LoadInt64(2 * ps); v != 9 {
				t.Fatalf("rank 1 read %d, want 9", v)
			}
			if st := ms[1].Stats(); st.ReadFaults != 1 || st.PagesIn != 1 {
				t.Fatalf("after one more fault: %+v, want 1 read fault and 1 page in", st)
			}
		})
	}
}

// TestRegionCap: the protocol names pages with 32 bits; a larger region is
// refused before anything starts (it used to be accepted up to 64 TiB, and
// pages 2^32 and up aliased lower pages).
func TestRegionCap(t *testing.T) {
	if int64(os.Getpagesize())*maxPages < MaxRegion {
		t.Fatalf("MaxRegion %d names more than %d pages of %d bytes", MaxRegion, int64(maxPages), os.Getpagesize())
	}
	for _, size := range []int{1, 2} {
		_, err := newMemory(config{Rank: 0, Size: size, Bytes: MaxRegion + 1, Token: newTestToken(), IP: "127.0.0.1"})
		if err == nil || !strings.Contains(err.Error(), "maximum") {
			t.Errorf("New(size %d, MaxRegion+1 bytes) = %v, want an error naming the maximum", size, err)
		}
	}
}

// cpuTicks is utime+stime of pid, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	u, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return u + st
}

// TestIdlePagerCostsNothing: page servers with no faults to serve use less
// than 5% of a core over a second (they park in epoll_wait; they spin only
// for a moment after activity).
func TestIdlePagerCostsNothing(t *testing.T) {
	uffdtest.Need(t)
	for _, mode := range []string{"rank", "host"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv(pagersEnv, mode)
			testIdlePager(t)
		})
	}
}

func testIdlePager(t *testing.T) {
	ms := pair(t, 1<<20, "uffd")
	ms[0].StoreInt64(0, 1)
	if ms[1].LoadInt64(0) != 1 { // some activity first: then idle
		t.Fatal("wrong value")
	}
	pagers := []int{pagerPid(t, ms[0])}
	if p := pagerPid(t, ms[1]); p != pagers[0] {
		pagers = append(pagers, p)
	}
	if want := map[string]int{"rank": 2, "host": 1}[os.Getenv(pagersEnv)]; len(pagers) != want {
		t.Fatalf("found page servers %v, want %d", pagers, want)
	}
	before := make([]int, len(pagers))
	for i, pid := range pagers {
		before[i] = cpuTicks(t, pid)
	}
	start := time.Now()
	time.Sleep(time.Second) // the measurement window, not synchronisation
	el := time.Since(start)
	const hz = 100 // USER_HZ on Linux
	for i, pid := range pagers {
		used := time.Duration(cpuTicks(t, pid)-before[i]) * time.Second / hz
		t.Logf("page server %d: %v of CPU in %v", pid, used, el)
		if used > el/20 {
			t.Errorf("idle page server %d used %v of CPU in %v (over 5%%)", pid, used, el)
		}
	}
}

// TestMutexCounter: goroutine g of each of two ranks increments counter g
// under lock g (a rank asks for one lock once at a time), while another
// asks for Stats: the totals are exact and no call waits for a reply that
// another caller read.
func TestMutexCounter(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			ms := pair(t, 1<<20, b)
			const goroutines, iters = 3, 200
			var wg sync.WaitGroup
			for r, m := range ms {
				for g := range goroutines {
					wg.Add(1)
					go func() {
						defer wg.Done()
						mu, off := m.Mutex(g), 8*g
						for range iters {
							mu.Lock()
							m.StoreInt64(off, m.LoadInt64(off)+1)
							mu.Unlock()
							if g == 0 && r == 0 {
								m.Stats()
							}
						}
					}()
				}
			}
			wg.Wait()
			for g := range goroutines {
				if got, want := ms[1].LoadInt64(8*g), int64(2*iters); got != want {
					t.Errorf("counter %d = %d, want %d", g, got, want)
				}
			}
		})
	}
}

// TestRankExitsWhenPagerDies: killing a page server ends its rank at once
// (its memory can no longer be trusted), saying so; the other page server
// then goes too.
func TestRankExitsWhenPagerDies(t *testing.T) {
	uffdtest.Need(t)
	for _, mode := range []string{"rank", "host"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv(pagersEnv, mode)
			testRankExitsWhenPagerDies(t, mode)
		})
	}
}

func testRankExitsWhenPagerDies(t *testing.T, mode string) {
	var stderr strings.Builder
	var stdin io.WriteCloser
	cmd, sc := startHelper(t, "pair-idle", func(cmd *exec.Cmd) {
		cmd.Stderr = &stderr
		stdin, _ = cmd.StdinPipe()
	})
	defer stdin.Close()
	if !sc.Scan() || sc.Text() != "READY 5" {
		t.Fatalf("helper: %q %v", sc.Text(), sc.Err())
	}
	var pagers []int
	for pid, comm := range children(cmd.Process.Pid) {
		if comm == pagerName {
			pagers = append(pagers, pid)
		}
	}
	if want := map[string]int{"rank": 2, "host": 1}[mode]; len(pagers) != want {
		t.Fatalf("page servers %v, want %d", pagers, want)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	start := time.Now()
	syscall.Kill(pagers[0], syscall.SIGKILL)
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(stderr.String(), "page server exited unexpectedly") {
			t.Fatalf("rank exited with %v, stderr:\n%s", err, stderr.String())
		}
		t.Logf("rank exited %v after its page server was killed: %s", time.Since(start), strings.TrimSpace(stderr.String()))
	case <-time.After(10 * time.Second):
		t.Fatal("the rank still runs 10 s after its page server was killed")
	}
	for len(pagers) > 1 && alive(pagers[1]) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("page server %d outlived its rank by 5 s", pagers[1])
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, not synchronisation
	}
}

// TestStrangersAtThePageServer: connections to a page server's memory
// endpoint that are not its peers (garbage, a wrong token, a rank that may
// not dial it, a silent one), made while it connects, are refused and do
// not stop the real mesh.
func TestStrangersAtThePageServer(t *testing.T) {
	uffdtest.Need(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	ms := pairWith(t, 1<<20, "uffd", func(ms [2]*Memory) {
		ep := ms[1].endpoint() // rank 1 accepts rank 0 only
		dial := func() net.Conn {
			c, err := net.Dial("tcp", ep)
			if err != nil {
				t.Error(err)
				return nil
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			return c
		}
		dial() // silent
		if c := dial(); c != nil {
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		}
		// Handshakes get answers only once the page server connects:
		// in the background.
		wg.Add(2)
		go func() {
			defer wg.Done()
			if c := dial(); c != nil {
				if err := auth.Dial(c, bufio.NewReader(c), []byte("wrong token"), 0, 1, time.Now().Add(20*time.Second)); !errors.Is(err, auth.ErrDenied) {
					t.Errorf("handshake with a wrong token: %v, want ErrDenied", err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			if c := dial(); c != nil {
				r := bufio.NewReader(c)
				to := 1 // rank 1's own page server...
				if pagersPerHost() {
					to = 0 // ...or the one of its host, named by its lowest rank
				}
				if err := auth.Dial(c, r, ms[1].cfg.Token, 1, to, time.Now().Add(20*time.Second)); err != nil {
					t.Errorf("handshake as rank 1: %v", err)
					return
				}
				// The identity is checked after the proof: the refusal
				// follows it.
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				// (Or a reset: once connected, the page server closes
				// every connection that has not proved itself.)
				if _, err := wire.ReadFrame(r, 1024); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("after the handshake as rank 1: %v, want a REJECT, EOF or a reset", err)
				}
			}
		}()
	})
	ms[0].StoreInt64(0, 42)
	if v := ms[1].LoadInt64(0); v != 42 {
		t.Fatalf("read %d, want 42", v)
	}
	wg.Wait()
}

// TestFaultsInFlight: goroutines of one rank fault on many pages at once
// (several faults in flight in its page server), reading and writing
// pages that move between the ranks; every value is right.
func TestFaultsInFlight(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			ms := pair(t, 1<<20, b)
			ps := ms[0].PageSize()
			const pages, goroutines = 64, 8
			for p := range pages {
				ms[0].StoreInt64(p*ps, int64(p+1))
			}
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for p := g; p < pages; p += goroutines {
						if v := ms[1].LoadInt64(p * ps); v != int64(p+1) {
							t.Errorf("page %d: read %d, want %d", p, v, p+1)
						}
						ms[1].AddInt64(p*ps+8, 1) // and take it over for writing
					}
				}()
			}
			wg.Wait()
			for p := range pages {
				if v := ms[0].LoadInt64(p*ps + 8); v != 1 {
					t.Errorf("page %d: rank 0 reads %d after rank 1's add, want 1", p, v)
				}
			}
		})
	}
}
