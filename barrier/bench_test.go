package barrier_test

import (
	"fmt"
	"github.com/dsmexec/dsmexec/internal/transporttest"
	"testing"

	"github.com/dsmexec/dsmexec/barrier"
)

func benchBarrier(b *testing.B, ends []barrier.Transport, abort func(), alg algorithm) {
	n := len(ends)
	bs := make([]barrier.Barrier, n)
	for r := range n {
		bs[r] = alg.make(ends[r])
	}
	b.ResetTimer()
	errs := runRanks(b, n, abort, func(r int) error {
		for range b.N {
			if err := bs[r].Wait(); err != nil {
				return err
			}
		}
		return nil
	})
	for r, err := range errs {
		if err != nil {
			b.Fatalf("rank %d: %v", r, err)
		}
	}
}

// BenchmarkBarrier reports the time of one barrier across all ranks.
func BenchmarkBarrier(b *testing.B) {
	for _, n := range []int{2, 4, 8} {
		for _, alg := range algorithms(n)[:2] {
			b.Run(fmt.Sprintf("mem/%s/N=%d", alg.name, n), func(b *testing.B) {
				m := transporttest.NewMemNet(n, false, 0)
				defer m.Close()
				benchBarrier(b, memEnds(m), m.Close, alg)
			})
			b.Run(fmt.Sprintf("tcp/%s/N=%d", alg.name, n), func(b *testing.B) {
				m := transporttest.NewTCPMesh(b, n)
				var ends []barrier.Transport
				for _, e := range m.Ends {
					ends = append(ends, e)
				}
				benchBarrier(b, ends, m.Close, alg)
			})
		}
	}
}
