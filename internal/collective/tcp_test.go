package collective

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Every collective over real loopback sockets, with a world size that is
// not a power of two and vectors on both sides of the Rabenseifner
// threshold.
func TestLoopback(t *testing.T) {
	for _, n := range []int{2, 5} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			w, _ := tcpWorld(t, n)
			for r := range w.ends {
				w.ends[r] = Sequenced(w.ends[r])
			}
			checkReduce[float64](t, w)
			root := n - 1
			w.mustRun(t, func(r int, tr Transport) error {
				want := pattern(7, 100_000)
				got, err := Bcast(tr, root, want)
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("got %s", describe(got))
				}
				if err != nil {
					return fmt.Errorf("bcast: %w", err)
				}
				all, err := Allgather(tr, pattern(r, partLen(r, 100)))
				for i := 0; err == nil && i < n; i++ {
					if !bytes.Equal(all[i], pattern(i, partLen(i, 100))) {
						err = fmt.Errorf("entry %d wrong", i)
					}
				}
				if err != nil {
					return fmt.Errorf("allgather: %w", err)
				}
				g, err := Gather(tr, root, pattern(r, partLen(r, 100)))
				if err == nil && r == root && !slicesEqual(g, all) {
					err = fmt.Errorf("gathered blocks differ from allgathered ones")
				}
				if err != nil {
					return fmt.Errorf("gather: %w", err)
				}
				s, err := Scatter(tr, root, g)
				if err == nil && !bytes.Equal(s, all[r]) {
					err = fmt.Errorf("got %s", describe(s))
				}
				if err != nil {
					return fmt.Errorf("scatter: %w", err)
				}
				return nil
			})
		})
	}
}

func slicesEqual(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// A process that dies (its connections close) fails the collective on
// every other rank, naming it.
func TestLoopbackDeadRank(t *testing.T) {
	const n, dead = 4, 2
	for _, size := range []int{1, rabenseifnerMin / 8} {
		w, m := tcpWorld(t, n)
		m.Kill(dead)
		errs := w.run(t, func(r int, tr Transport) error {
			if r == dead {
				return nil
			}
			_, err := Allreduce(tr, make([]float64, size), Sum)
			return err
		})
		for r, err := range errs {
			if r != dead && (!errors.Is(err, ErrTransport) || !strings.Contains(err.Error(), fmt.Sprintf("rank %d ", dead))) {
				t.Errorf("size %d, rank %d: got %v, want ErrTransport naming rank %d", size, r, err, dead)
			}
		}
	}
}
