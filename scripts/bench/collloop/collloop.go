// Package collloop is the timing loop the bench programs share for a
// collective call: a few untimed calls first, then a barrier, then the
// timed ones.
package collloop

import (
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

// Time makes iters timed calls of call, after min(iters/10+1, 20) untimed
// ones (call sees i < 0 for those), with a barrier between, so that every
// rank starts its clock together. It returns the time of the timed calls,
// or the first error.
func Time(w *rank.World, iters int, call func(i int) error) (time.Duration, error) {
	warm := min(iters/10+1, 20)
	var start time.Time
	for i := -warm; i < iters; i++ {
		if i == 0 {
			if err := w.Barrier(); err != nil {
				return 0, err
			}
			start = time.Now()
		}
		if err := call(i); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
