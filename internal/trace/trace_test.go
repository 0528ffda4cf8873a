package trace

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	r := New(Config{Rank: 2, Size: 4, Host: "h1", PID: 99})
	id := r.NewFlow()
	if id == 0 || id>>40 != 3 {
		t.Fatalf("flow id %#x: want rank+1 in the top bits", id)
	}
	sp := r.Begin(KindSend, Args{Peer: 1, Tag: 7, Bytes: 8, Flow: id})
	sp.End(Args{})
	sp = r.Begin(KindRecv, Args{Peer: -1, Tag: -1})
	sp.End(Args{Peer: 3, Tag: 5, Bytes: 1 << 40, Flow: 77})
	pt := r.NewTrack("page server")
	t0 := time.Now()
	r.Complete(pt, KindFault, t0, t0.Add(5*time.Microsecond), Args{Page: 12345, Access: AccessWrite, From: -1})
	r.Count(CounterPagesHeld, 17)
	r.Add(CounterBytesSent, 8)
	r.Add(CounterBytesSent, 8)
	r.SetClock(-3*time.Millisecond, 40*time.Microsecond)
	r.Instant("lost rank 1")

	s, err := Decode(r.Drain())
	if err != nil {
		t.Fatal(err)
	}
	if s.Rank != 2 || s.Size != 4 || s.Host != "h1" || s.PID != 99 || s.Role != "rank" || s.Truncated || s.Full {
		t.Fatalf("header: %+v", s)
	}
	var ops []Op
	for _, e := range s.Events {
		ops = append(ops, e.Op)
	}
	want := []Op{OpTrack, OpBegin, OpEnd, OpBegin, OpEnd, OpTrack, OpComplete, OpCounter, OpCounter, OpCounter, OpClock, OpInstant}
	if len(ops) != len(want) {
		t.Fatalf("ops %v, want %v", ops, want)
	}
	for i := range ops {
		if ops[i] != want[i] {
			t.Fatalf("ops %v, want %v", ops, want)
		}
	}
	ev := s.Events
	if ev[1].Kind != KindSend || ev[1].Args != (Args{Peer: 1, Tag: 7, Bytes: 8, Flow: id}) {
		t.Errorf("send begin: %+v", ev[1])
	}
	if ev[4].Kind != KindRecv || ev[4].Args != (Args{Peer: 3, Tag: 5, Bytes: 1 << 40, Flow: 77}) {
		t.Errorf("recv end: %+v", ev[4])
	}
	if ev[3].Args.Peer != -1 || ev[3].Args.Tag != -1 {
		t.Errorf("recv begin: %+v", ev[3])
	}
	if ev[1].Track != ev[0].Track || ev[0].Name == "" {
		t.Errorf("track record %+v for %+v", ev[0], ev[1])
	}
	if ev[6].Track != pt || ev[5].Name != "page server" || ev[6].Dur != 5*time.Microsecond || ev[6].Args.Page != 12345 || ev[6].Args.Access != AccessWrite || ev[6].Args.From != -1 {
		t.Errorf("fault: %+v (track %+v)", ev[6], ev[5])
	}
	if ev[9].Counter != CounterBytesSent || ev[9].Value != 16 {
		t.Errorf("counter: %+v", ev[9])
	}
	if ev[10].Offset != -3*time.Millisecond || ev[10].Bound != 40*time.Microsecond {
		t.Errorf("clock: %+v", ev[10])
	}
	if ev[11].Name != "lost rank 1" {
		t.Errorf("instant: %+v", ev[11])
	}
	for i := 2; i < len(ev); i++ {
		if ev[i].Op == OpBegin || ev[i].Op == OpEnd {
			if ev[i].Time < ev[i-1].Time {
				t.Errorf("event %d at %v before event %d at %v", i, ev[i].Time, i-1, ev[i-1].Time)
			}
		}
	}
}

// Every prefix of a stream decodes: to the records before the cut.
func TestTruncatedDecodes(t *testing.T) {
	r := New(Config{Rank: 1, Size: 2, Host: "h"})
	for i := 0; i < 50; i++ {
		sp := r.Begin(KindRecv, Args{Peer: 0, Tag: i})
		sp.End(Args{Bytes: int64(i * 1000), Flow: uint64(i) << 30})
	}
	b := r.Drain()
	whole, err := Decode(b)
	if err != nil || whole.Truncated {
		t.Fatal(err, whole.Truncated)
	}
	hdr := len(appendHeader(nil, header{Rank: 1, Size: 2, Host: "h", Role: "rank", Start: time.Unix(0, whole.Start.UnixNano())}))
	for cut := 0; cut < len(b); cut++ {
		s, err := Decode(b[:cut])
		if cut < hdr {
			if err == nil {
				t.Fatalf("cut %d inside the header decoded", cut)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d of %d: %v", cut, len(b), err)
		}
		if len(s.Events) > len(whole.Events) {
			t.Fatalf("cut at %d: more events than the whole", cut)
		}
		for i, e := range s.Events {
			if e != whole.Events[i] {
				t.Fatalf("cut at %d: event %d = %+v, want %+v", cut, i, e, whole.Events[i])
			}
		}
	}
}

func TestDrainPiecesConcatenate(t *testing.T) {
	r := New(Config{Rank: 0, Size: 1})
	var all []byte
	for i := 0; i < 5000; i++ {
		r.Begin(KindBarrier, Args{}).End(Args{})
		if i%777 == 0 {
			all = append(all, r.Drain()...)
		}
	}
	all = append(all, r.Drain()...)
	if int64(len(all)) != r.Total() {
		t.Fatalf("drained %d bytes, recorded %d", len(all), r.Total())
	}
	s, err := Decode(all)
	if err != nil || s.Truncated {
		t.Fatal(err)
	}
	if n := len(s.Events); n != 10001 { // a track record and 5000 begin/end pairs
		t.Fatalf("%d events", n)
	}
}

func TestLimit(t *testing.T) {
	var mu sync.Mutex
	var warnings []string
	const limit = 200 << 10
	r := New(Config{Rank: 3, Size: 4, Limit: limit, Warn: func(m string) {
		mu.Lock()
		warnings = append(warnings, m)
		mu.Unlock()
	}})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				r.Begin(KindSend, Args{Peer: 1, Tag: i, Bytes: 8, Flow: r.NewFlow()}).End(Args{})
				r.Count(CounterPagesHeld, int64(i))
			}
		}()
	}
	wg.Wait()
	if r.On() {
		t.Fatal("recorder still on past its limit")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "rank 3") || !strings.Contains(warnings[0], "-trace-limit") {
		t.Fatalf("warnings: %q", warnings)
	}
	if tot := r.Total(); tot > limit {
		t.Fatalf("recorded %d bytes past the limit %d", tot, limit)
	}
	b := r.Drain()
	if len(b) > limit {
		t.Fatalf("buffer %d bytes", len(b))
	}
	s, err := Decode(b)
	if err != nil || !s.Full || s.Truncated {
		t.Fatalf("decode: %v full=%v truncated=%v", err, s.Full, s.Truncated)
	}
	if last := s.Events[len(s.Events)-1]; last.Op != OpFull {
		t.Fatalf("last event %+v, want OpFull", last)
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	if r.On() || r.NewFlow() != 0 || r.Drain() != nil || r.Total() != 0 || r.NewTrack("x") != 0 {
		t.Fatal("nil recorder does something")
	}
	r.Begin(KindSend, Args{}).End(Args{})
	r.BeginOn(5, KindFault, Args{}).End(Args{})
	r.Complete(0, KindFault, time.Now(), time.Now(), Args{})
	r.Count(CounterPagesHeld, 1)
	r.Add(CounterBytesSent, 1)
	r.SetClock(1, 1)
	r.Instant("x")
}

func TestDecodeErrors(t *testing.T) {
	if _, err := Decode([]byte("hello world, not a trace")); !errors.Is(err, ErrNotTrace) {
		t.Fatalf("err %v", err)
	}
	r := New(Config{})
	b := r.Drain()
	bad := append(append([]byte(nil), b...), 0xEE)
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "unknown record type") {
		t.Fatalf("err %v", err)
	}
}

func TestGoroutineTracks(t *testing.T) {
	r := New(Config{})
	r.Begin(KindSend, Args{}).End(Args{})
	done := make(chan struct{})
	go func() {
		r.Begin(KindRecv, Args{}).End(Args{})
		close(done)
	}()
	<-done
	s, err := Decode(r.Drain())
	if err != nil {
		t.Fatal(err)
	}
	tracks := map[uint32]string{}
	for _, e := range s.Events {
		if e.Op == OpTrack {
			tracks[e.Track] = e.Name
		}
	}
	if len(tracks) != 2 {
		t.Fatalf("tracks %v, want two goroutines", tracks)
	}
	for _, e := range s.Events {
		if e.Op == OpBegin {
			if _, ok := tracks[e.Track]; !ok {
				t.Fatalf("event on unnamed track %d", e.Track)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	r := New(Config{Rank: 1, Size: 2, Host: "x"})
	r.Begin(KindSend, Args{Peer: 1, Bytes: 3, Flow: 9}).End(Args{})
	r.Count(CounterPagesHeld, 3)
	f.Add(r.Drain())
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err == nil && s == nil {
			t.Fatal("nil stream without error")
		}
		if err == nil && !bytes.HasPrefix(b, []byte(Magic)) {
			t.Fatal("decoded without magic")
		}
	})
}

func TestFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	rec, file, err := FromEnv(env(nil), Config{Rank: 1})
	if rec != nil || file != "" || err != nil {
		t.Fatalf("unset: %v %q %v", rec, file, err)
	}
	rec, file, err = FromEnv(env(map[string]string{EnvTrace: ToMaster, EnvTraceLimit: "4096"}), Config{Rank: 1})
	if rec == nil || file != "" || err != nil || rec.limit != 4096 {
		t.Fatalf("mpirun: %v %q %v", rec, file, err)
	}
	rec, file, err = FromEnv(env(map[string]string{EnvTrace: "/tmp/job-%r.trace"}), Config{Rank: 3, Role: "pager"})
	if rec == nil || file != "/tmp/job-3.trace.pager" || err != nil {
		t.Fatalf("file: %v %q %v", rec, file, err)
	}
	if _, _, err = FromEnv(env(map[string]string{EnvTrace: "x", EnvTraceLimit: "lots"}), Config{}); err == nil || !strings.Contains(err.Error(), EnvTraceLimit) {
		t.Fatalf("bad limit: %v", err)
	}
}

func TestPump(t *testing.T) {
	r := New(Config{Rank: 0, Size: 1})
	var mu sync.Mutex
	var got []byte
	stop := make(chan struct{})
	done := r.Pump(time.Millisecond, func(b []byte) error {
		mu.Lock()
		got = append(got, b...)
		mu.Unlock()
		return nil
	}, stop)
	for i := 0; i < 1000; i++ {
		r.Begin(KindSend, Args{Peer: 1, Bytes: int64(i)}).End(Args{})
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s, err := Decode(got)
	if err != nil || s.Truncated || len(s.Events) != 2001 {
		t.Fatalf("decode: %v, %d events", err, len(s.Events))
	}

	// A failing write stops the pump with its error.
	r2 := New(Config{})
	stop2 := make(chan struct{})
	defer close(stop2)
	boom := errors.New("boom")
	if err := <-r2.Pump(time.Millisecond, func([]byte) error { return boom }, stop2); err != boom {
		t.Fatalf("err %v", err)
	}
	var nilRec *Recorder
	if _, ok := <-nilRec.Pump(time.Millisecond, nil, nil); ok {
		t.Fatal("nil recorder pumps")
	}
}

// Live goroutines never share a track, whatever their stacks' addresses.
func TestTracksOfLiveGoroutines(t *testing.T) {
	r := New(Config{})
	const n = 64
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	start := make(chan struct{})
	for g := 0; g < n; g++ {
		go func() {
			defer done.Done()
			id := int(goroutineTrack())
			ready.Done()
			<-start
			for i := 0; i < 600; i++ {
				r.Begin(KindSend, Args{Tag: id}).End(Args{})
			}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	s, err := Decode(r.Drain())
	if err != nil {
		t.Fatal(err)
	}
	// The cache by stack address may put a goroutine's slices on another
	// one's track after the runtime moved a stack (growth, or a shrink at
	// a GC) onto memory the other had used, until the entry's next check
	// (verifyEvery uses): documented at callerTrack. So a few slices may
	// be misplaced, never many, and every goroutine's own track has most
	// of its slices.
	wrong, begins := 0, 0
	own := map[int]int{}
	for _, e := range s.Events {
		if e.Op != OpBegin {
			continue
		}
		begins++
		if int(e.Track) != e.Args.Tag {
			wrong++
			t.Logf("goroutine %d recorded on track %d", e.Args.Tag, e.Track)
			continue
		}
		own[e.Args.Tag]++
	}
	if begins != n*600 {
		t.Fatalf("%d slices begun, want %d", begins, n*600)
	}
	if wrong > begins/20 {
		t.Errorf("%d of %d slices on another goroutine's track", wrong, begins)
	}
	if len(own) != n {
		t.Errorf("%d goroutines have slices on their own track, want %d", len(own), n)
	}
	for id, c := range own {
		if c < 300 {
			t.Errorf("goroutine %d: only %d of its 600 slices on its own track", id, c)
		}
	}
}
