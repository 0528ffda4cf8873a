package collective

import (
	"fmt"
	"testing"
	"time"
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

// echo is rank 0 of 2 whose peer answers every message at once with the
// same bytes (which a barrier and an Allreduce accept): a transport that
// costs nothing, so that BenchmarkOverhead times the collective layer
// alone. It receives into the caller's buffer like the rank engine.
type echo struct{ last []byte }

func (e *echo) Rank() int { return 0 }
func (e *echo) Size() int { return 2 }
func (e *echo) Send(to int, msg []byte) error {
	e.last = append(e.last[:0], msg...)
	return nil
}
func (e *echo) Recv(from int) ([]byte, error) { return append([]byte(nil), e.last...), nil }
func (e *echo) RecvWithin(from int, d time.Duration) ([]byte, bool, error) {
	if d == 0 {
		return nil, false, nil
	}
	b, err := e.Recv(from)
	return b, true, err
}
func (e *echo) RecvIntoWithin(from int, buf []byte, d time.Duration) (int, bool, error) {
	return copy(buf, e.last), true, nil
}

// BenchmarkOverhead is the CPU time and garbage of a Barrier and of an
// 8-byte Allreduce at N=2 outside the transport (see echo).
func BenchmarkOverhead(b *testing.B) {
	t := Sequenced(&echo{})
	b.Run("Barrier", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := Barrier(t); err != nil {
				b.Fatal(err)
			}
		}
	})
	v := []float64{1}
	b.Run("Allreduce8", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := Allreduce(t, v, Sum); err != nil {
				b.Fatal(err)
			}
		}
	})
}
