package collective

import (
	"fmt"
	"testing"
)

// BenchmarkAllreduce times one float64 Sum Allreduce across all ranks, over
// the in-memory fake and over loopback TCP.
func BenchmarkAllreduce(b *testing.B) {
	for _, size := range []int{8, 1 << 20} {
		for _, n := range []int{2, 4, 8} {
			for _, net := range []string{"mem", "tcp"} {
				b.Run(fmt.Sprintf("%s/%dB/N=%d", net, size, n), func(b *testing.B) {
					var w testWorld
					if net == "mem" {
						w = memWorld(b, n, false, true)
					} else {
						w, _ = tcpWorld(b, n)
					}
					in := make([]float64, size/8)
					for i := range in {
						in[i] = float64(i)
					}
					b.SetBytes(int64(size))
					b.ResetTimer()
					w.mustRun(b, func(r int, tr Transport) error {
						for range b.N {
							if _, err := Allreduce(tr, in, Sum); err != nil {
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

// BenchmarkBarrier times Barrier (with its hello to rank-1) over loopback
// TCP; barrier.BenchmarkBarrier/tcp/dissemination is the same algorithm
// without call names, numbers or hellos.
func BenchmarkBarrier(b *testing.B) {
	for _, n := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("tcp/N=%d", n), func(b *testing.B) {
			w, _ := tcpWorld(b, n)
			for r := range w.ends {
				w.ends[r] = Sequenced(w.ends[r])
			}
			b.ResetTimer()
			w.mustRun(b, func(r int, tr Transport) error {
				for range b.N {
					if err := Barrier(tr); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}
