package rank

import (
	"fmt"
	"testing"

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
