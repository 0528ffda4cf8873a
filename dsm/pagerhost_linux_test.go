package dsm

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/uffdtest"
)

// The helper of TestHostPagerLostRank: rank hostRankEnv of 2, with the
// token in hostTokenEnv, in its own process.
const (
	hostRankEnv  = "DSMEXEC_DSM_TEST_RANK"
	hostTokenEnv = "DSMEXEC_DSM_TEST_TOKEN"
)

// helperHostRank joins the host page server as one rank of two (both
// ranks' endpoint is the server's, so it needs no exchange), writes its
// own page and prints READY; rank 0 then reads rank 1's page when told
// (a line on stdin).
func helperHostRank() int {
	rank, _ := strconv.Atoi(os.Getenv(hostRankEnv))
	tok, _ := hex.DecodeString(os.Getenv(hostTokenEnv))
	m, err := newMemory(config{Rank: rank, Size: 2, Bytes: 1 << 20, Token: tok, IP: "127.0.0.1", Backend: "uffd"})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	ep := m.endpoint()
	fmt.Println("ENDPOINT", ep, m.impl.(*uffdImpl).pid)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.connect(ctx, []string{ep, ep}); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	ps := m.PageSize()
	m.StoreInt64(rank*ps, int64(rank+1)) // page rank, homed here
	fmt.Println("READY")
	bufio.NewReader(os.Stdin).ReadString('\n')
	fmt.Println("READ", m.LoadInt64((1-rank)*ps))
	return 0
}

type hostRankProc struct {
	cmd   *exec.Cmd
	sc    *bufio.Scanner
	stdin io.WriteCloser
	errf  *os.File // stderr: a file, which the page server (a child that may outlive this rank) shares
	ep    string
	pager int
}

func (h *hostRankProc) stderr() string {
	b, _ := os.ReadFile(h.errf.Name())
	return string(b)
}

func startHostRank(t *testing.T, rank int, tok []byte) *hostRankProc {
	t.Helper()
	h := &hostRankProc{}
	var err error
	if h.errf, err = os.CreateTemp(t.TempDir(), "stderr"); err != nil {
		t.Fatal(err)
	}
	h.cmd, h.sc = startHelper(t, "host-rank", func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, hostRankEnv+"="+strconv.Itoa(rank), hostTokenEnv+"="+hex.EncodeToString(tok), pagersEnv+"=host")
		cmd.Stderr = h.errf
		h.stdin, _ = cmd.StdinPipe()
	})
	if !h.sc.Scan() {
		t.Fatalf("rank %d printed nothing: %v %s", rank, h.sc.Err(), h.stderr())
	}
	f := strings.Fields(h.sc.Text())
	if len(f) != 3 || f[0] != "ENDPOINT" {
		t.Fatalf("rank %d: %q", rank, h.sc.Text())
	}
	h.ep = f[1]
	if h.pager, err = strconv.Atoi(f[2]); err != nil {
		t.Fatal(err)
	}
	if !h.sc.Scan() || h.sc.Text() != "READY" {
		t.Fatalf("rank %d: %q %v %s", rank, h.sc.Text(), h.sc.Err(), h.stderr())
	}
	return h
}

// TestHostPagerShared: the ranks of a job on one host share one page
// server (a process named dsmexec-pager, argv "dsmexec-pager host"), and
// faults between them make no memory-mesh (TCP) connection.
func TestHostPagerShared(t *testing.T) {
	uffdtest.Need(t)
	t.Setenv(pagersEnv, "host")
	const n = 4
	ms := group(t, n, 1<<20, "uffd")
	pid := pagerPid(t, ms[0])
	for r, m := range ms {
		if p := pagerPid(t, m); p != pid {
			t.Fatalf("rank %d's page server is %d, rank 0's %d", r, p, pid)
		}
		if m.endpoint() != ms[0].endpoint() {
			t.Errorf("rank %d's endpoint %s, rank 0's %s", r, m.endpoint(), ms[0].endpoint())
		}
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(b)) != pagerName {
		t.Errorf("/proc/%d/comm = %q, want %q", pid, b, pagerName)
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); string(b) != pagerName+"\x00host\x00" {
		t.Errorf("/proc/%d/cmdline = %q, want %q", pid, b, pagerName+" host")
	}
	ps := ms[0].PageSize()
	for r, m := range ms { // every page written by its home, then by the next rank, read by all
		m.StoreInt64(r*ps, int64(r+1))
	}
	for r, m := range ms {
		next := (r + 1) % n
		m.AddInt64(next*ps, 10)
		m.Mutex(0).Lock()
		m.AddInt64(8, 1)
		m.Mutex(0).Unlock()
	}
	for _, m := range ms {
		for p := range n {
			if v := m.LoadInt64(p * ps); v != int64(p+11) {
				t.Errorf("page %d reads %d, want %d", p, v, p+11)
			}
		}
		if v := m.LoadInt64(8); v != n {
			t.Errorf("counter reads %d, want %d", v, n)
		}
	}
	if c := tcpConns(t, pid)[0]; c != 0 {
		t.Errorf("the host page server holds %d TCP connections, want 0 (all its ranks are local)", c)
	}
	var faults uint64
	for _, m := range ms {
		s := m.Stats()
		faults += s.ReadFaults + s.WriteFaults
	}
	if faults == 0 {
		t.Error("no faults counted")
	}
}

// TestHostPagerTwoJobs: two jobs on one host have a page server each.
func TestHostPagerTwoJobs(t *testing.T) {
	uffdtest.Need(t)
	t.Setenv(pagersEnv, "host")
	a := group(t, 2, 1<<20, "uffd")
	b := group(t, 2, 1<<20, "uffd")
	if pa, pb := pagerPid(t, a[0]), pagerPid(t, b[0]); pa == pb {
		t.Fatalf("two jobs share page server %d", pa)
	}
	a[0].StoreInt64(0, 1)
	b[0].StoreInt64(0, 2)
	if a[1].LoadInt64(0) != 1 || b[1].LoadInt64(0) != 2 {
		t.Fatal("the jobs' memories are mixed up")
	}
}

// TestHostPagerStranger: a process at the job's Unix socket that does not
// prove the token is refused, and the server goes on serving.
func TestHostPagerStranger(t *testing.T) {
	uffdtest.Need(t)
	t.Setenv(pagersEnv, "host")
	ms := group(t, 2, 1<<20, "uffd")
	addr := &net.UnixAddr{Name: hostSocketName(ms[0].cfg.Token), Net: "unix"}
	for _, tok := range [][]byte{[]byte("wrong token"), newTestToken()} {
		c, err := net.DialUnix("unix", nil, addr)
		if err != nil {
			t.Fatal(err)
		}
		err = auth.Dial(c, bufio.NewReader(c), tok, 5, hostPagerID, time.Now().Add(20*time.Second))
		c.Close()
		if !errors.Is(err, auth.ErrDenied) {
			t.Errorf("handshake with a wrong token: %v, want ErrDenied", err)
		}
	}
	// Garbage, then silence.
	if c, err := net.DialUnix("unix", nil, addr); err == nil {
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		defer c.Close()
	}
	ms[0].StoreInt64(0, 42)
	if v := ms[1].LoadInt64(0); v != 42 {
		t.Fatalf("read %d, want 42", v)
	}
}

// TestHostPagerLostRank: two ranks in two processes share a host page
// server; rank 1 is killed; rank 0's fault on rank 1's page ends rank 0
// with an error naming rank 1, and then the server exits.
func TestHostPagerLostRank(t *testing.T) {
	uffdtest.Need(t)
	tok := newTestToken()
	r1 := startHostRank(t, 1, tok)
	r0 := startHostRank(t, 0, tok)
	if r0.ep != r1.ep || r0.pager != r1.pager {
		t.Fatalf("ranks 0 and 1 have page servers %d at %s and %d at %s, want one", r0.pager, r0.ep, r1.pager, r1.ep)
	}
	r1.cmd.Process.Kill()
	r1.cmd.Wait()
	exited := make(chan error, 1)
	go func() { exited <- r0.cmd.Wait() }()
	io.WriteString(r0.stdin, "go\n")
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(r0.stderr(), "rank 1") {
			t.Fatalf("rank 0 exited with %v, stderr:\n%s", err, r0.stderr())
		}
		t.Logf("rank 0: %s", strings.TrimSpace(r0.stderr()))
	case <-time.After(20 * time.Second):
		t.Fatal("rank 0 still runs 20 s after rank 1 was killed and it faulted on its page")
	}
	start := time.Now()
	for alive(r0.pager) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("host page server %d outlived its ranks by 5 s", r0.pager)
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, not synchronisation
	}
}

// BenchmarkLocalReadFault: read faults of one rank on pages another rank
// of the same host wrote, with a page server per host and per rank; it
// reports the context switches per fault of the ranks' process and the
// page servers (2 with one per host: the faulting thread and the server;
// 4 or more with one per rank).
//
//	go test -run '^$' -bench LocalReadFault ./dsm
func BenchmarkLocalReadFault(b *testing.B) {
	uffdtest.Need(b)
	for _, mode := range []string{"host", "rank"} {
		b.Run(mode, func(b *testing.B) {
			b.Setenv(pagersEnv, mode)
			ms := group(b, 2, int64(2*(b.N+1))*int64(os.Getpagesize()), "uffd")
			ps := ms[0].PageSize()
			for k := range b.N {
				ms[0].StoreInt64(2*k*ps, int64(k+1)) // page 2k: homed at rank 0
			}
			pids := []int{os.Getpid(), pagerPid(b, ms[0])}
			if p := pagerPid(b, ms[1]); p != pids[1] {
				pids = append(pids, p)
			}
			cs0 := contextSwitches(pids)
			b.ResetTimer()
			for k := range b.N {
				if ms[1].LoadInt64(2*k*ps) != int64(k+1) {
					b.Fatal("wrong value")
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(contextSwitches(pids)-cs0)/float64(b.N), "cs/fault")
		})
	}
}

// contextSwitches sums the context switches of every thread of pids.
func contextSwitches(pids []int) int {
	n := 0
	for _, pid := range pids {
		ts, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		for _, f := range ts {
			b, _ := os.ReadFile(f)
			for _, l := range strings.Split(string(b), "\n") {
				k, v, _ := strings.Cut(l, ":")
				if k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches" {
					c, _ := strconv.Atoi(strings.TrimSpace(v))
					n += c
				}
			}
		}
	}
	return n
}

// helperStartOnly starts the host page server, prints its pid and exits
// without joining it.
func helperStartOnly() int {
	tok, _ := hex.DecodeString(os.Getenv(hostTokenEnv))
	m := &Memory{cfg: config{Rank: 0, Size: 2, Token: tok, IP: "127.0.0.1"}}
	pid, err := startHostPager(m, &net.UnixAddr{Name: hostSocketName(tok), Net: "unix"})
	if err != nil || pid == 0 {
		fmt.Println("ERROR", pid, err)
		return 1
	}
	fmt.Println("PAGER", pid)
	return 0
}

// TestHostPagerStarterGone: a host page server whose starting rank ends
// before any rank joined exits (it does not wait for its idle bound).
func TestHostPagerStarterGone(t *testing.T) {
	uffdtest.Need(t)
	tok := newTestToken()
	cmd, sc := startHelper(t, "start-only", func(cmd *exec.Cmd) {
		cmd.Env = append(cmd.Env, hostTokenEnv+"="+hex.EncodeToString(tok))
	})
	if !sc.Scan() {
		t.Fatalf("helper printed nothing: %v", sc.Err())
	}
	s, ok := strings.CutPrefix(sc.Text(), "PAGER ")
	pid, err := strconv.Atoi(s)
	if !ok || err != nil {
		t.Fatalf("helper: %q", sc.Text())
	}
	cmd.Wait()
	start := time.Now()
	for alive(pid) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("host page server %d still runs 5 s after the rank that started it ended", pid)
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, not synchronisation
	}
	t.Logf("page server gone %v after its starter", time.Since(start))
}
