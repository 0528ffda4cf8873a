package rank

import (
	"fmt"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// Number is the element type of Reduce and Allreduce.
type Number = collective.Number

// Op combines values in Reduce and Allreduce.
type Op = collective.Op

// The reduction operations.
const (
	Sum  = collective.Sum
	Prod = collective.Prod
	Min  = collective.Min
	Max  = collective.Max
)

// Collective calls are matched by order: every rank must make the same
// sequence of collective calls (as in MPI). They travel on a channel of
// their own, so user tags never collide with them. An error (a bad root,
// mismatched lengths, a lost rank) is returned on every rank.

// Bcast sends root's b to every rank and returns it (root gets b back).
func (w *World) Bcast(root int, b []byte) ([]byte, error) {
	t, done, err := w.coll(func() string { return fmt.Sprintf("Bcast(root %d)", root) })
	if err != nil {
		return nil, err
	}
	defer done()
	return collective.Bcast(t, root, b)
}

// Gather collects every rank's b at root, indexed by rank; nil on non-roots.
func (w *World) Gather(root int, b []byte) ([][]byte, error) {
	t, done, err := w.coll(func() string { return fmt.Sprintf("Gather(root %d)", root) })
	if err != nil {
		return nil, err
	}
	defer done()
	return collective.Gather(t, root, b)
}

// Allgather gives every rank every rank's b, indexed by rank.
func (w *World) Allgather(b []byte) ([][]byte, error) {
	t, done, err := w.coll(func() string { return "Allgather" })
	if err != nil {
		return nil, err
	}
	defer done()
	return collective.Allgather(t, b)
}

// Scatter sends parts[r] from root to rank r; parts is read on root only
// and must have Size() elements.
func (w *World) Scatter(root int, parts [][]byte) ([]byte, error) {
	t, done, err := w.coll(func() string { return fmt.Sprintf("Scatter(root %d)", root) })
	if err != nil {
		return nil, err
	}
	defer done()
	return collective.Scatter(t, root, parts)
}

// Reduce combines every rank's v element-wise with op; the result is
// returned on root, nil elsewhere. All ranks must pass the same length.
func Reduce[T Number](w Communicator, root int, v []T, op Op) ([]T, error) {
	t, done, err := w.coll(func() string { return fmt.Sprintf("Reduce(root %d, %s)", root, op) })
	if err != nil {
		return nil, err
	}
	defer done()
	return collective.Reduce(t, root, v, op)
}

// Allreduce is Reduce with the result on every rank.
func Allreduce[T Number](w Communicator, v []T, op Op) ([]T, error) {
	t, done, err := w.coll(func() string { return fmt.Sprintf("Allreduce(%s)", op) })
	if err != nil {
		return nil, err
	}
	defer done()
	return collective.Allreduce(t, v, op)
}
