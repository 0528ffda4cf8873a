package tracefmt

import (
	"io"
	"runtime"
	"testing"

	"github.com/dsmexec/dsmexec/internal/trace"
)

// bigStreams: two ranks, n messages each way.
func bigStreams(n int) [][]byte {
	a := trace.New(trace.Config{Rank: 0, Size: 2})
	b := trace.New(trace.Config{Rank: 1, Size: 2})
	for i := 0; i < n; i++ {
		id := a.NewFlow()
		a.Begin(trace.KindSend, trace.Args{Peer: 1, Tag: 1, Bytes: 8, Flow: id}).End(trace.Args{})
		b.Begin(trace.KindRecv, trace.Args{Peer: 0, Tag: 1}).End(trace.Args{Peer: 0, Tag: 1, Bytes: 8, Flow: id})
	}
	return [][]byte{a.Drain(), b.Drain()}
}

// BenchmarkMergeBytes reports the peak heap of a merge per encoded byte
// (docs/TRACING.md).
func BenchmarkMergeBytes(b *testing.B) {
	bs := bigStreams(100000)
	enc := len(bs[0]) + len(bs[1])
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		tl, err := BuildBytes(bs, Options{})
		if err != nil {
			b.Fatal(err)
		}
		var mid runtime.MemStats
		runtime.ReadMemStats(&mid)
		if err := tl.Write(io.Discard); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(mid.HeapAlloc-before.HeapAlloc)/float64(enc), "heap/encoded-byte")
	}
}
