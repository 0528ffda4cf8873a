package rank

import (
	"fmt"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// The typed calls against the byte path for the same bytes, over loopback
// TCP (internal/transporttest): the goal is typed ≤ 1.1× bytes. Compare
// the pairs typed=… / bytes=… of one size and N.
func BenchmarkTypedVsBytes(b *testing.B) {
	for _, n := range []int{2, 8} {
		for _, size := range []int{8, 64 << 10, 1 << 20} {
			v := make([]float64, size/8)
			for i := range v {
				v[i] = float64(i)
			}
			raw := Encode(v)
			bench := func(name string, body func(c Communicator) error) {
				b.Run(fmt.Sprintf("%s/%dB/N=%d", name, size, n), func(b *testing.B) {
					b.SetBytes(int64(size))
					b.ResetTimer()
					for r, err := range fakeWorld(b, n, true, func(c Communicator) error {
						for range b.N {
							if err := body(c); err != nil {
								return err
							}
						}
						return nil
					}) {
						if err != nil {
							b.Fatalf("rank %d: %v", r, err)
						}
					}
				})
			}
			bench("Bcast/typed", func(c Communicator) error { _, err := BcastSlice(c, 0, v); return err })
			bench("Bcast/bytes", func(c Communicator) error { _, err := c.Bcast(0, raw); return err })
			// Allreduce has no byte version: the typed call through the
			// rank layer against the collective package's own (same
			// algorithm, no Communicator, no error wrapping).
			bench("Allreduce/typed", func(c Communicator) error { _, err := Allreduce(c, v, Sum); return err })
			bench("Allreduce/direct", func(c Communicator) error {
				t, _, _ := c.coll(nil)
				_, err := collective.Allreduce(t, v, collective.Sum)
				return err
			})
			if size > 64<<10 {
				continue // N copies of 1 MiB per call: too slow for a loaded machine
			}
			bench("Allgather/typed", func(c Communicator) error { _, err := AllgatherSlice(c, v); return err })
			bench("Allgather/bytes", func(c Communicator) error { _, err := c.Allgather(raw); return err })
		}
	}
}

// BenchmarkWorldColl times collectives over the whole engine in one
// process (localWorlds: socketpairs, or rings with -ring), next to a
// ping-pong of 8 B (one-way = half of its time) on the same worlds: the
// collective layer's own cost is what a call takes beyond its messages.
// Its allocations per call are its garbage (-benchmem, whole world).
func BenchmarkWorldColl(b *testing.B) {
	v1 := []float64{1}
	big := make([]float64, 1<<17)
	for i := range big {
		big[i] = float64(i)
	}
	cases := []struct {
		name string
		f    func(w *World) error
	}{
		{"PingPong8", func(w *World) error {
			if w.Rank() > 1 {
				return nil
			}
			var buf [8]byte
			if w.Rank() == 0 {
				if err := w.Send(1, 1, buf[:]); err != nil {
					return err
				}
				_, _, err := w.RecvInto(1, 1, buf[:])
				return err
			}
			if _, _, err := w.RecvInto(0, 1, buf[:]); err != nil {
				return err
			}
			return w.Send(0, 1, buf[:])
		}},
		{"Barrier", func(w *World) error { return w.Barrier() }},
		{"Allreduce8", func(w *World) error { _, err := Allreduce(w, v1, Sum); return err }},
		{"Allreduce1M", func(w *World) error { _, err := Allreduce(w, big, Sum); return err }},
	}
	for _, ring := range []int{0, 2 << 20} {
		for _, n := range []int{2, 4} {
			for _, c := range cases {
				name := fmt.Sprintf("%s/N=%d", c.name, n)
				if ring > 0 {
					name = "ring/" + name
				}
				b.Run(name, func(b *testing.B) {
					localRing = ring
					ws := localWorlds(b, n, 50*time.Microsecond, 1<<30)
					localRing = 0
					b.ReportAllocs()
					b.ResetTimer()
					each(b, ws, func(w *World) error {
						for range b.N {
							if err := c.f(w); err != nil {
								return err
							}
						}
						return nil
					})
				})
			}
		}
	}
}
