package tracefmt_test

import (
	"bytes"
	"fmt"

	"github.com/dsmexec/dsmexec/internal/trace"
	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

func Example() {
	var streams []*trace.Stream
	recs := []*trace.Recorder{trace.New(trace.Config{Rank: 0, Size: 2, Host: "h1"}), trace.New(trace.Config{Rank: 1, Size: 2, Host: "h2"})}
	id := recs[0].NewFlow()
	recs[0].Begin(trace.KindSend, trace.Args{Peer: 1, Bytes: 8, Flow: id}).End(trace.Args{})
	sp := recs[1].Begin(trace.KindRecv, trace.Args{Peer: 0})
	sp.End(trace.Args{Peer: 0, Bytes: 8, Flow: id})
	for _, r := range recs {
		s, _ := trace.Decode(r.Drain())
		streams = append(streams, s)
	}
	var out bytes.Buffer
	if err := tracefmt.Merge(&out, streams, tracefmt.Options{}); err != nil {
		panic(err)
	}
	fmt.Println(tracefmt.Validate(out.Bytes()))
	fmt.Println(bytes.Contains(out.Bytes(), []byte(`"name":"rank 1@h2"`)), bytes.Count(out.Bytes(), []byte(`"ph":"s"`)))
	// Output:
	// <nil>
	// true 1
}
