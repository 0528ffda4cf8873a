package dsm

import (
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"unsafe"
)

// The accessor methods work on every backend. With userfaultfd they are
// plain memory operations (faults are served transparently). With the
// mprotect/SIGSEGV backend a fault inside them becomes a recoverable panic:
// they fetch the page and retry.

// faulter is implemented by backends whose faults must be caught in Go.
type faulter interface {
	// run calls fn, which touches n bytes at off, and when it faults on a
	// page of the region, makes the page accessible (write: for writing)
	// and calls fn again.
	run(off, n int, write bool, fn func())
}

func (m *Memory) do(off, n int, write bool, fn func()) {
	if f, ok := m.impl.(faulter); ok {
		f.run(off, n, write, fn)
		return
	}
	fn()
}

func (m *Memory) check(off int64, n int) error {
	if off < 0 || off > int64(len(m.data)) || int64(n) > int64(len(m.data))-off {
		return fmt.Errorf("%w: %d bytes at %d in a %d-byte region", ErrRange, n, off, len(m.data))
	}
	return nil
}

func (m *Memory) word(off int) unsafe.Pointer {
	if err := m.check(int64(off), 8); err != nil {
		panic(err)
	}
	if off%8 != 0 {
		panic(fmt.Sprintf("dsm: offset %d of a 64-bit word is not 8-aligned", off))
	}
	return unsafe.Pointer(&m.data[off])
}

// ReadAt copies len(p) bytes at off into p (io.ReaderAt).
func (m *Memory) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.data)) && len(p) > 0 {
		return 0, io.EOF
	}
	n := len(p)
	var err error
	if off < 0 || int64(n) > int64(len(m.data))-off {
		if err = m.check(off, 0); err != nil {
			return 0, err
		}
		n, err = int(int64(len(m.data))-off), io.EOF
	}
	m.do(int(off), n, false, func() { copy(p[:n], m.data[off:]) })
	return n, err
}

// WriteAt copies p into the region at off (io.WriterAt).
func (m *Memory) WriteAt(p []byte, off int64) (int, error) {
	if err := m.check(off, len(p)); err != nil {
		return 0, err
	}
	m.do(int(off), len(p), true, func() { copy(m.data[off:], p) })
	return len(p), nil
}

// LoadInt64 atomically loads the 8-aligned int64 at byte offset off.
func (m *Memory) LoadInt64(off int) (v int64) {
	ptr := (*int64)(m.word(off))
	m.do(off, 8, false, func() { v = atomic.LoadInt64(ptr) })
	return v
}

// StoreInt64 atomically stores v at byte offset off.
func (m *Memory) StoreInt64(off int, v int64) {
	ptr := (*int64)(m.word(off))
	m.do(off, 8, true, func() { atomic.StoreInt64(ptr, v) })
}

// AddInt64 atomically adds delta to the int64 at off and returns the new value.
func (m *Memory) AddInt64(off int, delta int64) (v int64) {
	ptr := (*int64)(m.word(off))
	m.do(off, 8, true, func() { v = atomic.AddInt64(ptr, delta) })
	return v
}

// CompareAndSwapInt64 is atomic.CompareAndSwapInt64 on the word at off.
func (m *Memory) CompareAndSwapInt64(off int, old, new int64) (swapped bool) {
	ptr := (*int64)(m.word(off))
	m.do(off, 8, true, func() { swapped = atomic.CompareAndSwapInt64(ptr, old, new) })
	return swapped
}

// LoadFloat64 atomically loads the float64 at off.
func (m *Memory) LoadFloat64(off int) float64 {
	return math.Float64frombits(uint64(m.LoadInt64(off)))
}

// StoreFloat64 atomically stores v at off.
func (m *Memory) StoreFloat64(off int, v float64) {
	m.StoreInt64(off, int64(math.Float64bits(v)))
}
