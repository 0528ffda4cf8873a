package rendezvous

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestState: the master asks, the ranks answer with their State func; a
// rank without one answers empty; a silent rank is missing when the
// context ends.
func TestState(t *testing.T) {
	const n = 3
	tok := []byte("tok")
	m, err := Listen("127.0.0.1:0", Config{Size: n, Token: tok, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	release := make(chan struct{})
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
			switch r {
			case 0:
				c.State = func(q []byte) []byte { return fmt.Appendf(nil, "rank 0 heard %s", q) }
			case 2:
				c.State = func(q []byte) []byte { <-release; return nil } // silent until released
			}
			clients[r] = c
			if _, err := c.Join(ctx, JoinInfo{Endpoints: []string{"a", "b"}}); err != nil {
				t.Error(err)
			}
		}(r)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	defer func() {
		close(release)
		for _, c := range clients {
			c.Close()
		}
	}()
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	got := m.State(qctx, []int{0, 1, 2, 0}, []byte("q1"))
	qcancel()
	if string(got[0]) != "rank 0 heard q1" {
		t.Errorf("rank 0 answered %q", got[0])
	}
	if b, ok := got[1]; !ok || len(b) != 0 {
		t.Errorf("rank 1 (no State func) answered %q, %v; want an empty answer", b, ok)
	}
	if _, ok := got[2]; ok || len(got) != 2 {
		t.Errorf("answers %v; rank 2 is silent", got)
	}
	// Only the ranks asked are waited for.
	got = m.State(ctx, []int{0}, []byte("q2"))
	if len(got) != 1 || string(got[0]) != "rank 0 heard q2" {
		t.Errorf("answers %v", got)
	}
}
