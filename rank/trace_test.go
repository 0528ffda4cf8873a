package rank

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/trace"
	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

// tracing turns recording on for local test worlds.
func tracing(ws []*World) {
	for _, w := range ws {
		w.tr = newTracer(trace.New(trace.Config{Rank: w.rank, Size: w.size, Host: "localhost"}), w.rank, w.size)
	}
}

// TestTraceCalls: every traced call makes a slice, and every message a
// program received has its flow from the send (blocking and requests,
// Sendrecv, AnySource, a Probe before the Recv); the merge validates.
func TestTraceCalls(t *testing.T) {
	ws := localWorlds(t, 3, 0, 1<<30)
	tracing(ws)
	each(t, ws, func(w *World) error {
		switch w.Rank() {
		case 0:
			for i := range 3 {
				if err := w.Send(1, 7, []byte{byte(i)}); err != nil {
					return err
				}
			}
			r := w.Isend(2, 1, []byte("x"))
			if _, err := r.Wait(); err != nil {
				return err
			}
			if _, _, err := w.Sendrecv(2, 3, []byte("a"), 2, 3); err != nil {
				return err
			}
		case 1:
			if _, err := w.Probe(0, 7); err != nil {
				return err
			}
			for range 2 {
				if _, err := w.Recv(AnySource, AnyTag); err != nil {
					return err
				}
			}
			r := w.Irecv(0, 7)
			if _, err := r.Wait(); err != nil {
				return err
			}
			if _, err := r.Wait(); err != nil { // again: takes nothing more
				return err
			}
		case 2:
			r := w.Irecv(0, 1)
			if err := Waitall(r); err != nil {
				return err
			}
			if _, _, err := w.Sendrecv(0, 3, []byte("b"), 0, 3); err != nil {
				return err
			}
		}
		if _, err := w.Bcast(0, []byte("bc")); err != nil {
			return err
		}
		return w.Barrier()
	})
	var bufs [][]byte
	for _, w := range ws {
		bufs = append(bufs, w.tr.rec.Drain())
	}
	tl, err := tracefmt.BuildBytes(bufs, tracefmt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tl.Write(&out); err != nil {
		t.Fatal(err)
	}
	if err := tracefmt.Validate(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	kinds := map[[2]int]int{}
	sends, recvs := map[uint64]tracefmt.Slice{}, map[uint64]tracefmt.Slice{}
	for _, s := range tl.Slices {
		kinds[[2]int{s.Rank, int(s.Kind)}]++
		if (s.Kind == trace.KindSend || s.Kind == trace.KindSendrecv) && s.Begin.Flow != 0 {
			sends[s.Begin.Flow] = s
		}
		if s.Kind != trace.KindSend && s.Kind != trace.KindProbe && s.Res.Flow != 0 {
			if _, dup := recvs[s.Res.Flow]; dup {
				t.Errorf("flow %x received twice: %+v", s.Res.Flow, s)
			}
			recvs[s.Res.Flow] = s
		}
	}
	for _, want := range []struct{ rank, kind, n int }{
		{0, int(trace.KindSend), 4}, {0, int(trace.KindSendrecv), 1}, {0, int(trace.KindWait), 1},
		{1, int(trace.KindProbe), 1}, {1, int(trace.KindRecv), 2}, {1, int(trace.KindWait), 2},
		{2, int(trace.KindWait), 1}, {2, int(trace.KindSendrecv), 1},
		{0, int(trace.KindBcast), 1}, {1, int(trace.KindBcast), 1}, {2, int(trace.KindBarrier), 1},
	} {
		if got := kinds[[2]int{want.rank, want.kind}]; got != want.n {
			t.Errorf("rank %d: %d %v slices, want %d", want.rank, got, trace.Kind(want.kind), want.n)
		}
	}
	if len(sends) != 6 || len(recvs) != 6 {
		t.Errorf("%d sends and %d receives with flows, want 6 each", len(sends), len(recvs))
	}
	for id, s := range sends {
		r, ok := recvs[id]
		if !ok {
			t.Errorf("the send %+v was not received", s)
			continue
		}
		if r.Rank != s.Begin.Peer || r.Res.Peer != s.Rank || r.Res.Tag != s.Begin.Tag && s.Kind == trace.KindSend {
			t.Errorf("send %+v matched receive %+v", s, r)
		}
	}
}

// TestTraceOffAllocs: with tracing off, a traced call site allocates
// nothing and records nothing.
func TestTraceOffAllocs(t *testing.T) {
	var tr *tracer
	g := &group{}
	n := testing.AllocsPerRun(1000, func() {
		tr.send(trace.KindSend, g, 1, 0, 8).End(trace.Args{})
		sp := tr.recv(trace.KindRecv, g, 1, 0)
		tr.recvEnd(sp, g, Status{Source: 1}, nil, false)
	})
	if n != 0 {
		t.Fatalf("%v allocations per call with tracing off", n)
	}
}

// BenchmarkTracedPingPong: the 8 B ping-pong of BenchmarkPingPong between
// two in-process worlds on shared-memory rings and on sockets, untraced
// and traced (each world's recorder drained by its pump, as in a job).
// Compare on/off of one transport in one run (-count interleaves them).
func BenchmarkTracedPingPong(b *testing.B) {
	for _, ring := range []int{64 << 10, 0} {
		for _, on := range []bool{false, true} {
			name := "socket"
			if ring > 0 {
				name = "ring"
			}
			if on {
				name += "/on"
			} else {
				name += "/off"
			}
			b.Run(name, func(b *testing.B) {
				localRing = ring
				defer func() { localRing = 0 }()
				ws := localWorlds(b, 2, 50*time.Microsecond, 1<<30)
				if on {
					tracing(ws)
					for _, w := range ws {
						stop := make(chan struct{})
						done := w.tr.rec.Pump(200*time.Millisecond, func([]byte) error { return nil }, stop)
						defer func() { close(stop); <-done }()
					}
				}
				pingPong(b, ws, 8)
			})
		}
	}
}

// TestAlignClock: under PMI each traced rank measures its clock against
// rank 0's over the mesh and records the offset and its bound (rank 0:
// zero). In one process every clock is the same, so the true offset is 0
// and must lie within the bound; no clock message is left for the
// program, and the streams merge with the offsets in the notes.
func TestAlignClock(t *testing.T) {
	ws := localWorlds(t, 4, 0, 1<<30)
	tracing(ws)
	each(t, ws, func(w *World) error {
		w.alignClock()
		if _, ok, err := w.Iprobe(AnySource, AnyTag); ok || err != nil {
			return fmt.Errorf("rank %d: a message after the clock exchange (err %v)", w.rank, err)
		}
		return w.Barrier()
	})
	var bufs [][]byte
	for _, w := range ws {
		b := w.tr.rec.Drain()
		bufs = append(bufs, b)
		s, err := trace.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		var clocks []trace.Event
		for _, e := range s.Events {
			if e.Op == trace.OpClock {
				clocks = append(clocks, e)
			}
		}
		if len(clocks) != 1 {
			t.Fatalf("rank %d: %d clock records, want 1", w.rank, len(clocks))
		}
		c := clocks[0]
		switch {
		case w.rank == 0 && (c.Offset != 0 || c.Bound != 0):
			t.Errorf("rank 0: offset %v ± %v, want 0 ± 0", c.Offset, c.Bound)
		case w.rank > 0 && (c.Bound <= 0 || c.Offset > c.Bound || -c.Offset > c.Bound):
			t.Errorf("rank %d: offset %v ± %v does not hold the true offset 0", w.rank, c.Offset, c.Bound)
		}
		t.Logf("rank %d: offset %v ± %v", w.rank, c.Offset, c.Bound)
	}
	tl, err := tracefmt.BuildBytes(bufs, tracefmt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(tl.Notes, "\n"), "offset"); n != 4 {
		t.Errorf("notes %q: want the 4 ranks' offsets", tl.Notes)
	}
}
