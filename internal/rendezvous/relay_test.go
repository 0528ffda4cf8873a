package rendezvous

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A host's ranks join through a relay and the rest directly: everyone gets
// the same table, the relay sends one batch of joins up and gets the table
// once, and cells, Where, Abort and the master's close go through it.
func TestRelay(t *testing.T) {
	const n = 4
	tok := []byte("tok")
	aborted := make(chan [2]int, 1)
	warnings := make(chan string, 16)
	m, err := Listen("127.0.0.1:0", Config{Size: n, Token: tok, Timeout: 20 * time.Second,
		OnAbort: func(rank, code int) { aborted <- [2]int{rank, code} },
		Warnf: func(format string, args ...any) {
			select {
			case warnings <- fmt.Sprintf(format, args...):
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())

	// The relay's link to the master, as an agent's SSH channel would be:
	// frames each way in order, counted.
	var ups, downs, joinBatches, tables atomic.Int32
	var relay *Relay
	down := make(chan RelayFrame, 64)
	port := m.Relay("h1", func(f RelayFrame) error {
		downs.Add(1)
		if f.Type == TypeTable {
			tables.Add(1)
		}
		down <- f
		return nil
	})
	relay, err = ListenRelay("127.0.0.1:0", RelayConfig{Size: n, Token: tok, Ranks: []int{1, 2, 3}, Linger: time.Minute,
		Up: func(f RelayFrame) error {
			ups.Add(1)
			if f.Type == TypeJoins {
				joinBatches.Add(1)
			}
			port.Deliver(f)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	go relay.Serve()
	go func() {
		for f := range down {
			relay.Deliver(f)
		}
	}()
	defer func() { m.Close(); relay.Close(); relay.Wait(); close(down) }()

	// A rank of another host is refused by the relay.
	if c, err := Dial(context.Background(), relay.Addr(), tok, 0); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := c.Join(ctx, JoinInfo{}); err == nil {
			t.Error("relay accepted rank 0, which is not on its host")
		}
		cancel()
		c.Close()
	}
	// The relay's refusal reaches mpirun's warnings, naming the host.
	select {
	case w := <-warnings:
		if !strings.Contains(w, "rank 0 does not run on this host") || !strings.HasSuffix(w, "(on h1)") {
			t.Errorf("warning %q", w)
		}
	case <-time.After(10 * time.Second):
		t.Error("the relay's refusal of rank 0 never reached the master's warnings")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tables0 := make([]Table, n)
	clients := make([]*Client, n)
	lostAt := make([]chan int, n)
	for r := range lostAt {
		lostAt[r] = make(chan int, n)
	}
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := relay.Addr()
			if r == 0 {
				addr = m.Addr()
			}
			c, err := Dial(ctx, addr, tok, r)
			if err != nil {
				t.Error(err)
				return
			}
			c.Where = func() string { return fmt.Sprintf("Recv(rank %d)", r) }
			c.OnLost = func(rank int, msg string) { lostAt[r] <- rank }
			clients[r] = c
			tables0[r], err = c.Join(ctx, JoinInfo{Endpoints: []string{fmt.Sprintf("a%d", r)}, Host: "h", Pid: 100 + r})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for r := 0; r < n; r++ {
		for q := 0; q < n; q++ {
			if got := tables0[r].Endpoints[q]; len(got) != 1 || got[0] != fmt.Sprintf("a%d", q) {
				t.Fatalf("rank %d table[%d] = %v", r, q, got)
			}
		}
	}
	if joinBatches.Load() != 1 || tables.Load() != 1 {
		t.Errorf("%d join batches and %d tables crossed the link, want 1 and 1", joinBatches.Load(), tables.Load())
	}
	clients[2].Cell("iters", "42")
	m.Where(ctx)
	if err := clients[3].Abort(5); err != nil {
		t.Errorf("Abort through the relay: %v", err)
	}
	if got := <-aborted; got != [2]int{3, 5} {
		t.Errorf("OnAbort(%v), want rank 3 code 5", got)
	}
	reps := m.Reports()
	if reps[2].Values["iters"] != "42" || reps[2].Pid != 102 {
		t.Errorf("rank 2 report %+v", reps[2])
	}
	for r := 0; r < n; r++ {
		if want := fmt.Sprintf("Recv(rank %d)", r); reps[r].Where != want {
			t.Errorf("rank %d where %q, want %q", r, reps[r].Where, want)
		}
	}
	// A rank that says goodbye is not lost; one whose connection ends
	// without it is, through the relay (1) or directly (0); the others
	// hear it.
	clients[2].Bye()
	clients[2].Close()
	clients[1].Close()
	for _, r := range []int{0, 3} {
		select {
		case got := <-lostAt[r]:
			if got != 1 {
				t.Errorf("rank %d heard rank %d lost, want 1", r, got)
			}
		case <-ctx.Done():
			t.Fatalf("rank %d did not hear that rank 1 is lost", r)
		}
	}
	clients[0].Close()
	select {
	case got := <-lostAt[3]:
		if got != 0 {
			t.Errorf("rank 3 heard rank %d lost, want 0", got)
		}
	case <-ctx.Done():
		t.Fatal("rank 3 did not hear that rank 0 is lost")
	}
	// The master's close reaches the relayed ranks.
	m.Close()
	for _, r := range []int{3} {
		select {
		case <-clients[r].Lost():
		case <-ctx.Done():
			t.Fatalf("rank %d did not learn that the master closed", r)
		}
	}
	for r := range lostAt {
		for len(lostAt[r]) > 0 {
			if got := <-lostAt[r]; got == 2 {
				t.Errorf("rank %d heard rank 2 lost, which said goodbye", r)
			}
		}
	}
	t.Logf("%d frames up, %d down", ups.Load(), downs.Load())
}

// A rank that never joins does not hold back the others' joins beyond the
// linger time: the master's timeout then names only that rank.
func TestRelayLinger(t *testing.T) {
	tok := []byte("tok")
	m, err := Listen("127.0.0.1:0", Config{Size: 3, Token: tok, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())
	defer m.Close()
	var port *Port
	relay, err := ListenRelay("127.0.0.1:0", RelayConfig{Size: 3, Token: tok, Ranks: []int{0, 1, 2}, Linger: 10 * time.Millisecond,
		Up: func(f RelayFrame) error { port.Deliver(f); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	port = m.Relay("h1", func(f RelayFrame) error { relay.Deliver(f); return nil })
	go relay.Serve()
	defer func() { relay.Close(); relay.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for r := 0; r < 2; r++ {
		c, err := Dial(ctx, relay.Addr(), tok, r)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go c.Join(ctx, JoinInfo{Endpoints: []string{"x"}})
	}
	select {
	case err := <-m.Err():
		if want := "rank 2 never reported"; !strings.Contains(err.Error(), want) {
			t.Errorf("timeout: %v, want %q", err, want)
		}
	case <-ctx.Done():
		t.Fatal("no timeout")
	}
}
