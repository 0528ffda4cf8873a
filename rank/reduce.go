package rank

import (
	"fmt"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// Reduce combines every rank's v element-wise with op; the result is
// returned on root, nil elsewhere. All ranks must pass the same length.
func Reduce[T Number](c Communicator, root int, v []T, op Op) ([]T, error) {
	return run(c, func() string { return fmt.Sprintf("Reduce(root %d, %v)", root, op) },
		func(t collective.Transport) ([]T, error) { return collective.Reduce(t, root, v, collective.Op(op)) })
}

// Allreduce is Reduce with the result on every rank.
func Allreduce[T Number](c Communicator, v []T, op Op) ([]T, error) {
	return run(c, func() string { return fmt.Sprintf("Allreduce(%v)", op) },
		func(t collective.Transport) ([]T, error) { return collective.Allreduce(t, v, collective.Op(op)) })
}

// Scan returns on rank r the element-wise combination with op of the v of
// ranks 0..r (an inclusive prefix, MPI_Scan). All ranks pass the same
// length.
func Scan[T Number](c Communicator, v []T, op Op) ([]T, error) {
	return run(c, func() string { return fmt.Sprintf("Scan(%v)", op) },
		func(t collective.Transport) ([]T, error) { return collective.Scan(t, v, collective.Op(op)) })
}

// Exscan is the exclusive Scan (MPI_Exscan): rank r gets the combination
// of ranks 0..r-1, rank 0 gets nil.
func Exscan[T Number](c Communicator, v []T, op Op) ([]T, error) {
	return run(c, func() string { return fmt.Sprintf("Exscan(%v)", op) },
		func(t collective.Transport) ([]T, error) { return collective.Exscan(t, v, collective.Op(op)) })
}

// ReduceScatter combines every rank's v element-wise with op and gives
// rank r block r of the result (MPI_Reduce_scatter_block): len(v) must be
// divisible by Size(), and each block is len(v)/Size() elements.
func ReduceScatter[T Number](c Communicator, v []T, op Op) ([]T, error) {
	return run(c, func() string { return fmt.Sprintf("ReduceScatter(%v)", op) },
		func(t collective.Transport) ([]T, error) { return collective.ReduceScatter(t, v, collective.Op(op)) })
}

// Loc is an element of ReduceLoc's result: the minimum or maximum value
// and the rank that holds it (MPI's MINLOC and MAXLOC).
type Loc[T Number] struct {
	Value T
	Rank  int
}

func locs[T Number](vals []T, ranks []int) []Loc[T] {
	if vals == nil {
		return nil
	}
	out := make([]Loc[T], len(vals))
	for i := range out {
		out[i] = Loc[T]{vals[i], ranks[i]}
	}
	return out
}

// ReduceLoc finds, element by element, the minimum (op Min) or maximum
// (op Max) of the ranks' v and the rank holding it; the lowest rank wins
// ties. The result is returned on root, nil elsewhere.
func ReduceLoc[T Number](c Communicator, root int, v []T, op Op) ([]Loc[T], error) {
	return run(c, func() string { return fmt.Sprintf("ReduceLoc(root %d, %v)", root, op) },
		func(t collective.Transport) ([]Loc[T], error) {
			vals, ranks, err := collective.ReduceLoc(t, root, v, collective.Op(op))
			return locs(vals, ranks), err
		})
}

// AllreduceLoc is ReduceLoc with the result on every rank.
func AllreduceLoc[T Number](c Communicator, v []T, op Op) ([]Loc[T], error) {
	return run(c, func() string { return fmt.Sprintf("AllreduceLoc(%v)", op) },
		func(t collective.Transport) ([]Loc[T], error) {
			vals, ranks, err := collective.AllreduceLoc(t, v, collective.Op(op))
			return locs(vals, ranks), err
		})
}

// funcCombiner applies f element-wise to two encoded vectors: lo[i] =
// f(lo[i], hi[i]).
func funcCombiner[T any](f func(a, b T) T) collective.Combiner {
	return func(lo, hi []byte) {
		a, err1 := Decode[T](lo)
		b, err2 := Decode[T](hi)
		if err1 != nil || err2 != nil || len(a) != len(b) {
			panic(fmt.Sprintf("rank: ReduceFunc: combining %d and %d bytes of %T", len(lo), len(hi), *new(T)))
		}
		for i := range a {
			a[i] = f(a[i], b[i])
		}
		copy(lo, Encode(a))
	}
}

// ReduceFunc combines every rank's v element-wise with f and returns the
// result on root, nil elsewhere. f must be associative; it is applied in
// rank order (f(a, b) with a from lower ranks), so it need not be
// commutative. T is any fixed-size type Encode accepts; all ranks pass the
// same length.
func ReduceFunc[T any](c Communicator, root int, v []T, f func(a, b T) T) ([]T, error) {
	if _, err := elemSize[T]("ReduceFunc"); err != nil {
		return nil, err
	}
	return run(c, rooted("ReduceFunc", root), func(t collective.Transport) ([]T, error) {
		b, err := collective.ReduceFunc(t, collective.KindReduceFunc, root, Encode(v), funcCombiner(f))
		if b == nil || err != nil {
			return nil, err
		}
		return Decode[T](b)
	})
}

// AllreduceFunc is ReduceFunc with the result on every rank: the same
// result everywhere, since every rank combines the same operands in the
// same order.
func AllreduceFunc[T any](c Communicator, v []T, f func(a, b T) T) ([]T, error) {
	if _, err := elemSize[T]("AllreduceFunc"); err != nil {
		return nil, err
	}
	return run(c, named("AllreduceFunc"), func(t collective.Transport) ([]T, error) {
		b, err := collective.AllreduceFunc(t, collective.KindAllreduceFunc, Encode(v), funcCombiner(f))
		if err != nil {
			return nil, err
		}
		return Decode[T](b)
	})
}
