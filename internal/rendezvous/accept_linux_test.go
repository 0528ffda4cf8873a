package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The master keeps accepting after the process ran out of descriptors
// (EMFILE), as when another local user holds thousands of connections to
// it: the rank that connected meanwhile joins once descriptors are free.
// The real limit is lowered in a child process (this test run again).
func TestMasterSurvivesEMFILE(t *testing.T) {
	if os.Getenv("RENDEZVOUS_EMFILE_CHILD") == "1" {
		emfileChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMasterSurvivesEMFILE$", "-test.v", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), "RENDEZVOUS_EMFILE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestMasterSurvivesEMFILE") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func emfileChild(t *testing.T) {
	tok := []byte("tok")
	warns := make(chan string, 64)
	m, err := Listen("127.0.0.1:0", Config{Size: 1, Token: tok, Timeout: time.Minute,
		Warnf: func(f string, a ...any) {
			select {
			case warns <- fmt.Sprintf(f, a...):
			default:
			}
			t.Logf(f, a...)
		}})
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- m.Serve(context.Background()) }()
	defer m.Close()

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	var fill []*os.File
	for len(fill) < 300 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		fill = append(fill, f)
	}
	if len(fill) == 300 {
		t.Fatal("no EMFILE after 300 files")
	}
	fill[len(fill)-1].Close() // one descriptor free: the rank's socket takes it
	fill = fill[:len(fill)-1]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	joined := make(chan error, 1)
	go func() {
		c, err := Dial(ctx, m.Addr(), tok, 0)
		if err != nil {
			joined <- err
			return
		}
		defer c.Close()
		_, err = c.Join(ctx, JoinInfo{Endpoints: []string{"x"}})
		joined <- err
	}()
	// The master's accept now fails with EMFILE: it must say so and go on.
	select {
	case w := <-warns:
		if !strings.Contains(w, "accept on") {
			t.Fatalf("first warning %q, want the accept error", w)
		}
	case err := <-serveErr:
		t.Fatalf("the master's accept loop ended: %v", err)
	case err := <-joined:
		t.Fatalf("the rank joined (%v) while the master had no descriptor", err)
	case <-ctx.Done():
		t.Fatal("no accept error reported")
	}
	for _, f := range fill[len(fill)-16:] {
		f.Close()
	}
	select {
	case err := <-joined:
		if err != nil {
			t.Fatalf("rank 0 could not join after descriptors were freed: %v", err)
		}
	case err := <-serveErr:
		t.Fatalf("the master's accept loop ended: %v", err)
	}
	for _, f := range fill[:len(fill)-16] {
		f.Close()
	}
}

// More idle strangers than the master holds unauthenticated do not keep
// the ranks out: the oldest strangers are dropped, the ranks join.
func TestStrangersDoNotStarveRanks(t *testing.T) {
	const n = 3
	tok := []byte("tok")
	var mu sync.Mutex
	var warned []string
	m, err := Listen("127.0.0.1:0", Config{Size: n, Token: tok, Timeout: time.Minute, Warnf: func(f string, a ...any) {
		mu.Lock()
		warned = append(warned, fmt.Sprintf(f, a...))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())
	defer m.Close()
	for range 3 * (n + 16) {
		c, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, n)
	for r := range n {
		go func() {
			c, err := Dial(ctx, m.Addr(), tok, r)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_, err = c.Join(ctx, JoinInfo{Endpoints: []string{"x"}})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(warned) == 0 || len(warned) > 10 || !strings.Contains(strings.Join(warned, "|"), "dropped an unauthenticated connection") {
		t.Errorf("warnings %q: want a few rate-limited lines (not one per each of the 38 dropped strangers)", warned)
	}
}
