package rank

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// Large reductions over the whole engine (localWorlds): their segments
// are received into the collective's own buffers (RecvIntoWithin), and a
// rank whose vector is longer than the others' (its segments do not fit
// where they are received: truncated) makes every rank fail with
// ErrMismatch, after which the next call works.
func TestLargeReductionsEngine(t *testing.T) {
	const elems = 1<<17 + 3 // 1 MiB and a bit of float64: streams of many segments
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			ws := localWorlds(t, n, 20*time.Microsecond, 1<<30)
			each(t, ws, func(w *World) error {
				r := w.Rank()
				for i := range 3 {
					v := make([]float64, elems)
					for j := range v {
						v[j] = float64(r*7 + j + i)
					}
					sum, err := Allreduce(w, v, Sum)
					if err != nil {
						return fmt.Errorf("allreduce %d: %w", i, err)
					}
					red, err := Reduce(w, i%n, v, Max)
					if err != nil {
						return fmt.Errorf("reduce %d: %w", i, err)
					}
					for _, j := range []int{0, 1, elems / 3, elems/2 - 1, elems / 2, elems - 1} {
						if want := float64(7*n*(n-1)/2 + n*(j+i)); sum[j] != want {
							return fmt.Errorf("allreduce %d: element %d is %g, want %g", i, j, sum[j], want)
						}
						if r == i%n {
							if want := float64((n-1)*7 + j + i); red[j] != want {
								return fmt.Errorf("reduce %d: element %d is %g, want %g", i, j, red[j], want)
							}
						}
					}
				}
				// Rank n-1's vector is longer: every rank fails, the streams stay in step.
				v := make([]int32, 1<<16+map[bool]int{false: 0, true: 1000}[r == n-1])
				if _, err := Allreduce(w, v, Sum); !errors.Is(err, collective.ErrMismatch) {
					return fmt.Errorf("allreduce of different lengths: got %v, want ErrMismatch", err)
				}
				got, err := Allreduce(w, []int{r}, Sum)
				if err != nil || got[0] != n*(n-1)/2 {
					return fmt.Errorf("allreduce after the mismatch: %v %v", got, err)
				}
				return nil
			})
		})
	}
}
