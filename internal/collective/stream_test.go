package collective

import (
	"fmt"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/transporttest"
)

// timedOnly hides the transport's RecvIntoWithin: a Sequenced transport
// over it has lazy hellos and receives every message into a new slice.
type timedOnly struct {
	Transport
	e *transporttest.MemEnd
}

func (t timedOnly) RecvWithin(from int, d time.Duration) ([]byte, bool, error) {
	return t.e.RecvWithin(from, d)
}

var (
	_ IntoReceiver  = (*transporttest.MemEnd)(nil)
	_ TimedReceiver = timedOnly{}
)

// Streams of many segments: the reductions, their mismatches (ranks that
// disagree on the length and so on the number of segments) and the calls
// after them, with segments of a few elements, over a transport that
// receives into the caller's buffers and over one that does not.
func TestStreams(t *testing.T) {
	defer func(s int) { segBytes = s }(segBytes)
	for _, seg := range []int{40, 4096} {
		segBytes = seg
		t.Run(fmt.Sprintf("seg=%d", seg), func(t *testing.T) {
			t.Run("reduce", func(t *testing.T) {
				for _, n := range []int{2, 3, 4, 5} {
					checkReduce[float64](t, memWorld(t, n, n%2 == 0, true))
					checkReduce[int16](t, memWorld(t, n, false, true))
				}
			})
			t.Run("no-into", func(t *testing.T) {
				for _, n := range []int{2, 3, 4} {
					m := transporttest.NewMemNet(n, true, uint64(n))
					t.Cleanup(m.Close)
					w := testWorld{abort: m.Close}
					for _, e := range m.Ends() {
						w.ends = append(w.ends, Sequenced(timedOnly{e, e}))
					}
					if _, ok := w.ends[0].(*sequenced).into.(IntoReceiver); ok {
						t.Fatal("the transport receives into buffers")
					}
					checkReduce[float32](t, w)
				}
			})
			if seg > 40 {
				t.Run("mismatch", TestReduceMismatch)
			}
		})
	}
}
