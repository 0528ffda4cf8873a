package tracefmt

import (
	"bytes"
	"testing"

	"github.com/dsmexec/dsmexec/internal/trace"
)

// Whatever a stream holds, if it decodes, it merges into a valid trace.
func FuzzMerge(f *testing.F) {
	for _, b := range ringJob(f, 2, 2) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := trace.Decode(b)
		if err != nil {
			return
		}
		other := trace.New(trace.Config{Rank: 1, Size: 2})
		other.Begin(trace.KindRecv, trace.Args{}).End(trace.Args{Flow: 1<<40 | 1})
		o, _ := trace.Decode(other.Drain())
		var buf bytes.Buffer
		if err := Merge(&buf, []*trace.Stream{s, o}, Options{}); err != nil {
			t.Fatal(err)
		}
		if err := Validate(buf.Bytes()); err != nil {
			t.Fatalf("%v\n%s", err, head(buf.String()))
		}
	})
}
