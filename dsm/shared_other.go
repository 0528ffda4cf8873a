//go:build !linux

package dsm

import "errors"

// ErrNotSupported: shared memory across ranks needs Linux.
var ErrNotSupported = errors.New("dsm: shared memory across ranks needs Linux (mpirun -dsm-size 0 runs without it)")

func newShared(m *Memory, n int64) (*Memory, error) { return nil, ErrNotSupported }
