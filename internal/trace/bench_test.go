package trace

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

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

// BenchmarkOn: a traced Send's calls (NewFlow, Begin, End) with the
// recorder's pump running, as in a rank. Besides ns/op (wall clock, noisy
// on a loaded machine) it reports thread-ns/op: the CPU time of the
// recording thread only (getrusage RUSAGE_THREAD), which is what the
// traced call costs the caller.
func BenchmarkOn(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := New(Config{Rank: 0, Size: 2, Limit: 1 << 40})
	stop := make(chan struct{})
	done := r.Pump(200*time.Millisecond, func([]byte) error { return nil }, stop)
	s := 0
	b.ResetTimer()
	t0 := threadCPU()
	for i := 0; i < b.N; i++ {
		id := r.NewFlow()
		sp := r.Begin(KindSend, Args{Peer: 1, Tag: i, Bytes: 8, Flow: id})
		s += work(i)
		sp.End(Args{})
	}
	b.ReportMetric(float64(threadCPU()-t0)/float64(b.N), "thread-ns/op")
	sink = s
	b.StopTimer()
	close(stop)
	<-done
}

// threadCPU is the calling thread's CPU time (user + system) in ns.
func threadCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkGoroutineTrack(b *testing.B) {
	s := uint32(0)
	for i := 0; i < b.N; i++ {
		s += goroutineTrack()
	}
	sink = int(s)
}
