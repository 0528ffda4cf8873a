package rank

import (
	"fmt"
	"testing"
	"time"
)

// TestCounters: sent and arrived per peer count point-to-point (also to
// self, also unexpected: never received) and collective traffic.
func TestCounters(t *testing.T) {
	for _, ring := range []int{0, 64 << 10} {
		localRing = ring
		ws := localWorlds(t, 3, 0, 1<<30)
		localRing = 0
		if err := ws[0].Send(1, 5, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		if _, err := ws[1].Recv(0, 5); err != nil {
			t.Fatal(err)
		}
		if err := ws[0].Send(0, 1, make([]byte, 7)); err != nil { // to self
			t.Fatal(err)
		}
		// Unexpected, never received: arrives all the same (a barrier
		// after it, on the same link, proves it was read).
		if err := ws[2].Send(1, 9, make([]byte, 3)); err != nil {
			t.Fatal(err)
		}
		each(t, ws, func(w *World) error { return w.Barrier() })
		// The barrier's messages count: every pair that exchanged them
		// agrees on both sides, once what is still on its way (a
		// collective's hello, sent when a step waited 2 ms) has been read
		// by the engines' background watchers: bounded, 5 s.
		var bad []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			bad = bad[:0]
			for i, w := range ws {
				for j, v := range ws {
					s, a := w.e.ctr.snapshot()[j], v.e.ctr.snapshot()[i]
					if s.SentMsgs != a.ArrivedMsgs || s.SentBytes != a.ArrivedBytes {
						bad = append(bad, fmt.Sprintf("ring %d: %d->%d sent %+v, arrived %+v", ring, i, j, s, a))
					}
				}
			}
			if len(bad) == 0 || time.Now().After(deadline) {
				break
			}
		}
		for _, b := range bad {
			t.Error(b)
		}
		c0, c1, c2 := ws[0].e.ctr.snapshot(), ws[1].e.ctr.snapshot(), ws[2].e.ctr.snapshot()
		if c0[1].SentMsgs < 2 || c0[1].SentBytes < 100 || c1[0].ArrivedMsgs != c0[1].SentMsgs || c1[0].ArrivedBytes != c0[1].SentBytes {
			t.Errorf("ring %d: 0->1 sent %+v, arrived at 1 %+v", ring, c0[1], c1[0])
		}
		if c0[0].SentMsgs != 1 || c0[0].SentBytes != 7 || c0[0].ArrivedMsgs != 1 || c0[0].ArrivedBytes != 7 {
			t.Errorf("ring %d: self %+v", ring, c0[0])
		}
		if c1[2].ArrivedMsgs != c2[1].SentMsgs || c2[1].SentMsgs < 1 || c2[1].SentBytes < 3 {
			t.Errorf("ring %d: 2->1 sent %+v, arrived %+v", ring, c2[1], c1[2])
		}
	}
}

// TestCountersNoAlloc: counting allocates nothing.
func TestCountersNoAlloc(t *testing.T) {
	c := newCounters(4)
	if n := testing.AllocsPerRun(1000, func() { c.sent(2, 8); c.arrived(3, 8) }); n != 0 {
		t.Fatalf("%v allocations per count", n)
	}
	c.sent(-1, 1) // out of range: ignored
	c.arrived(4, 1)
}
