package trace

import "testing"

// The cost of tracing when it is off: a call site on a nil recorder,
// against the same loop without it. Compare ns/op of BenchmarkOff and
// BenchmarkEmptyLoop; docs/TRACING.md has the numbers.

var sink int

//go:noinline
func work(i int) int { return i*7 + 1 }

func BenchmarkEmptyLoop(b *testing.B) {
	s := 0
	for i := 0; i < b.N; i++ {
		s += work(i)
	}
	sink = s
}

func BenchmarkOff(b *testing.B) {
	var r *Recorder
	s := 0
	for i := 0; i < b.N; i++ {
		id := r.NewFlow()
		sp := r.Begin(KindSend, Args{Peer: 1, Tag: i, Bytes: 8, Flow: id})
		s += work(i)
		sp.End(Args{})
	}
	sink = s
}

func BenchmarkOn(b *testing.B) {
	r := New(Config{Rank: 0, Size: 2, Limit: 1 << 40})
	s := 0
	for i := 0; i < b.N; i++ {
		id := r.NewFlow()
		sp := r.Begin(KindSend, Args{Peer: 1, Tag: i, Bytes: 8, Flow: id})
		s += work(i)
		sp.End(Args{})
		if i%100000 == 0 {
			r.Drain()
		}
	}
	sink = s
}

func BenchmarkGoroutineTrack(b *testing.B) {
	s := uint32(0)
	for i := 0; i < b.N; i++ {
		s += goroutineTrack()
	}
	sink = int(s)
}
