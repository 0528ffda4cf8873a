package rank

import (
	"fmt"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// The typed collectives move []T for any T that Encode accepts, in the
// same messages as their byte versions.

// BcastSlice sends root's v to every rank and returns a copy of it on every
// rank (root included). v is read on root only.
func BcastSlice[T any](c Communicator, root int, v []T) ([]T, error) {
	if _, err := elemSize[T]("BcastSlice"); err != nil {
		return nil, err
	}
	var b []byte
	if c.Rank() == root {
		b = encodeView(v)
	}
	return run(c, rooted("BcastSlice", root), func(t collective.Transport) ([]T, error) {
		got, err := collective.BcastAs(t, collective.KindBcastSlice, root, b)
		if err != nil {
			return nil, err
		}
		return decodeOwned[T](got)
	})
}

// ScatterSlice cuts root's v into Size() equal consecutive blocks and gives
// block r to rank r. len(v) must be divisible by Size(); if it is not,
// every rank returns an error. v is read on root only.
func ScatterSlice[T any](c Communicator, root int, v []T) ([]T, error) {
	size, err := elemSize[T]("ScatterSlice")
	if err != nil {
		return nil, err
	}
	var parts [][]byte
	var bad string
	if c.Rank() == root {
		if n := c.Size(); len(v)%n != 0 {
			bad = fmt.Sprintf("length %d not divisible by %d ranks", len(v), n)
		} else {
			b, nb := encodeView(v), len(v)/n*size
			for r := range n {
				parts = append(parts, b[r*nb:(r+1)*nb:(r+1)*nb])
			}
		}
	}
	return run(c, rooted("ScatterSlice", root), func(t collective.Transport) ([]T, error) {
		got, err := collective.ScatterAs(t, collective.KindScatterSlice, root, parts, bad)
		if err != nil {
			return nil, err
		}
		return decodeOwned[T](got)
	})
}

// GatherSlice collects every rank's v on root, concatenated in rank order;
// the blocks may differ in length (like MPI_Gatherv). Non-roots get nil.
func GatherSlice[T any](c Communicator, root int, v []T) ([]T, error) {
	if _, err := elemSize[T]("GatherSlice"); err != nil {
		return nil, err
	}
	return run(c, rooted("GatherSlice", root), func(t collective.Transport) ([]T, error) {
		blocks, err := collective.GatherAs(t, collective.KindGatherSlice, root, encodeView(v))
		if blocks == nil || err != nil {
			return nil, err
		}
		return decodeAll[T](blocks)
	})
}

// AllgatherSlice is GatherSlice with the result on every rank.
func AllgatherSlice[T any](c Communicator, v []T) ([]T, error) {
	if _, err := elemSize[T]("AllgatherSlice"); err != nil {
		return nil, err
	}
	return run(c, named("AllgatherSlice"), func(t collective.Transport) ([]T, error) {
		blocks, err := collective.AllgatherAs(t, collective.KindAllgatherSlice, encodeView(v))
		if err != nil {
			return nil, err
		}
		return decodeAll[T](blocks)
	})
}

// AlltoallSlice cuts v into Size() equal consecutive blocks and sends
// block i to rank i; the result holds, in rank order, the block every rank
// sent this one. len(v) must be divisible by Size() on every rank; a rank
// where it is not makes the call fail on every rank. The ranks' blocks may
// differ in length.
func AlltoallSlice[T any](c Communicator, v []T) ([]T, error) {
	size, err := elemSize[T]("AlltoallSlice")
	if err != nil {
		return nil, err
	}
	n := c.Size()
	var parts [][]byte
	var bad string
	if len(v)%n != 0 {
		bad = fmt.Sprintf("length %d not divisible by %d ranks", len(v), n)
	} else {
		b, nb := encodeView(v), len(v)/n*size
		for r := range n {
			parts = append(parts, b[r*nb:(r+1)*nb:(r+1)*nb])
		}
	}
	return run(c, named("AlltoallSlice"), func(t collective.Transport) ([]T, error) {
		blocks, err := collective.AlltoallAs(t, collective.KindAlltoallSlice, parts, bad)
		if err != nil {
			return nil, err
		}
		return decodeAll[T](blocks)
	})
}
