package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
)

func TestRendezvous(t *testing.T) {
	const n = 4
	tok := []byte("tok")
	var logs strings.Builder
	var logMu sync.Mutex
	m, err := Listen("127.0.0.1:0", Config{Size: n, Token: tok, Timeout: 20 * time.Second, Logf: func(f string, a ...any) {
		logMu.Lock()
		fmt.Fprintf(&logs, f+"\n", a...)
		logMu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())
	defer m.Close()

	// Strangers first: garbage, and a wrong token. Neither may disturb the job.
	g, _ := net.Dial("tcp", m.Addr())
	g.Write([]byte("hello?\n"))
	defer g.Close()
	if _, err := Dial(context.Background(), m.Addr(), []byte("wrong"), 0); !errors.Is(err, auth.ErrDenied) {
		t.Fatalf("wrong token: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tables := make([]Table, n)
	clients := make([]*Client, n)
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			c, err := Dial(ctx, m.Addr(), tok, r)
			if err != nil {
				t.Error(err)
				return
			}
			clients[r] = c
			tables[r], err = c.Join(ctx, JoinInfo{Endpoints: []string{fmt.Sprintf("a%d", r), fmt.Sprintf("b%d", r)}, Host: "h", Pid: 100 + r})
			if err != nil {
				t.Error(err)
			}
		}(r)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for r := 0; r < n; r++ {
		for q := 0; q < n; q++ {
			if got := tables[r].Endpoints[q]; len(got) != 2 || got[0] != fmt.Sprintf("a%d", q) {
				t.Fatalf("rank %d table[%d] = %v", r, q, got)
			}
		}
	}
	clients[2].Cell("iters", "42")
	clients[2].Stats(Stats{Backend: "uffd", DSM: map[string]string{"faults": "3"}})
	clients[2].Bye()
	clients[2].Close()
	// A closed client's frames have all been read once its connection ended.
	for _, c := range clients {
		if c != clients[2] {
			c.Close()
		}
	}
	// Changed says when a rank finalized or its connection ended: rank 2
	// with its BYE, the others without.
	limit := time.After(10 * time.Second)
	for {
		changed := m.Changed()
		reps := m.Reports()
		done := true
		for r, rep := range reps {
			done = done && rep.Ended && rep.Finalized == (r == 2)
		}
		if done {
			if rep := reps[2]; rep.Values["iters"] != "42" || rep.Stats.Backend != "uffd" || rep.Pid != 102 {
				t.Fatalf("report = %+v", rep)
			}
			break
		}
		select {
		case <-changed:
		case <-limit:
			t.Fatalf("after 10 s: reports %+v", reps)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "refused a connection") {
		t.Fatalf("strangers not logged:\n%s", logs.String())
	}
}

func TestTimeoutNamesMissingRanks(t *testing.T) {
	m, err := Listen("127.0.0.1:0", Config{Size: 3, Token: []byte("t"), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())
	defer m.Close()
	c, err := Dial(context.Background(), m.Addr(), []byte("t"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Join(context.Background(), JoinInfo{Endpoints: []string{"x"}})
	select {
	case err := <-m.Err():
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "ranks 0, 2 never reported") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no timeout error")
	}
}

// Abort and Failed reach mpirun before they return: the rank exits only
// after mpirun has heard why.
func TestAbortAndFailed(t *testing.T) {
	type heard struct{ rank, a, b int }
	got := make(chan heard, 2)
	var msg string
	m, err := Listen("127.0.0.1:0", Config{Size: 1, Token: []byte("t"), Timeout: 20 * time.Second,
		OnAbort:  func(rank, code int) { got <- heard{rank, code, 0} },
		OnFailed: func(rank, peer int, m string) { msg = m; got <- heard{rank, peer, 1} },
	})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, m.Addr(), []byte("t"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Failed(3, "x"); err == nil || !strings.Contains(err.Error(), "not joined") {
		t.Fatalf("Failed before Join: %v", err)
	}
	if _, err := c.Join(ctx, JoinInfo{Endpoints: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Failed(2, "lost rank 2"); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h != (heard{0, 2, 1}) || msg != "lost rank 2" {
			t.Fatalf("heard %+v %q", h, msg)
		}
	default:
		t.Fatal("Failed returned before mpirun heard it")
	}
	if err := c.Abort(7); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h != (heard{0, 7, 0}) {
			t.Fatalf("heard %+v", h)
		}
	default:
		t.Fatal("Abort returned before mpirun heard it")
	}
}
