package trace_test

import (
	"fmt"
	"time"

	"github.com/dsmexec/dsmexec/internal/trace"
)

func Example() {
	rec := trace.New(trace.Config{Rank: 0, Size: 2, Host: "h1"})

	id := rec.NewFlow()
	sp := rec.Begin(trace.KindSend, trace.Args{Peer: 1, Tag: 0, Bytes: 8, Flow: id})
	sp.End(trace.Args{})

	s, err := trace.Decode(rec.Drain())
	if err != nil {
		panic(err)
	}
	for _, e := range s.Events {
		if e.Op == trace.OpBegin {
			fmt.Printf("rank %d@%s: %s to %d, %d bytes\n", s.Rank, s.Host, e.Kind, e.Args.Peer, e.Args.Bytes)
		}
	}

	var off *trace.Recorder // tracing off: every call is a no-op
	off.Begin(trace.KindSend, trace.Args{}).End(trace.Args{})
	fmt.Println(off.On())
	// Output:
	// rank 0@h1: Send to 1, 8 bytes
	// false
}

func ExampleOffset() {
	ms := int64(time.Millisecond)
	// The peer's clock is 5 ms ahead; 100 µs each way on the network.
	samples := []trace.ClockSample{
		{T0: 0, T1: 5*ms + ms/10, T2: 5*ms + ms/10, T3: ms / 5},
		{T0: 10 * ms, T1: 15*ms + 3*ms, T2: 15*ms + 3*ms, T3: 14 * ms}, // a slow one
	}
	off, bound, _ := trace.Offset(samples)
	fmt.Println(off, "±", bound)
	// Output: 5ms ± 100µs
}
