package dsm

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"unsafe"
)

// Alloc returns n elements of type T in the shared region, page-aligned:
// a bump allocator that hands out the region from its top down. It sends
// no message: every rank that calls Alloc in the same order with the same
// types and counts gets the same offsets, so the slices name the same
// shared memory everywhere (call it on every rank, like a collective).
// Space below the lowest allocation is never touched by Alloc, so programs
// that place data at fixed offsets from 0 keep working beside it.
//
// Each allocation starts on its own page, so two arrays never share a page
// (no false sharing between them). The memory is zero only if nothing wrote
// there before. There is no Free. A region too small is an error naming the
// sizes; a different sequence of calls on different ranks changes
// AllocDigest, which the rank layer compares at the next Barrier.
func Alloc[T any](m *Memory, n int) ([]T, error) {
	var z T
	size := int64(unsafe.Sizeof(z))
	name := reflect.TypeFor[T]().String()
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	m.allocRecord(name, size, n)
	if n < 0 {
		return nil, fmt.Errorf("dsm: Alloc of %d %s: negative count", n, name)
	}
	if !m.allocInit {
		m.allocTop, m.allocInit = int64(len(m.data)), true
	}
	bytes := size * int64(n)
	if size != 0 && bytes/size != int64(n) || bytes > m.allocTop {
		return nil, fmt.Errorf("dsm: Alloc of %d %s (%d bytes) does not fit: %d of %d bytes left", n, name, bytes, m.allocTop, len(m.data))
	}
	if n == 0 || bytes == 0 {
		return make([]T, n), nil // no shared bytes to name
	}
	off := (m.allocTop - bytes) / int64(m.pageSize) * int64(m.pageSize)
	m.allocTop = off
	return unsafe.Slice((*T)(unsafe.Pointer(&m.data[off])), n), nil
}

// AllocDigest is a 64-bit digest of this rank's sequence of Alloc calls
// (element type, element size and count of each, in order, failed calls
// included). It is for the rank layer, which compares it between ranks at
// a Barrier to report ranks that allocated in a different order instead of
// letting them corrupt each other's arrays.
func (m *Memory) AllocDigest() uint64 {
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	if m.allocCalls == 0 {
		return 0
	}
	return m.allocSum
}

// Allocated is the number of bytes at the top of the region that Alloc has
// handed out (including the padding to page boundaries).
func (m *Memory) Allocated() int {
	m.allocMu.Lock()
	defer m.allocMu.Unlock()
	if !m.allocInit {
		return 0
	}
	return len(m.data) - int(m.allocTop)
}

// allocRecord folds one call into the digest (FNV-1a, 64 bits).
func (m *Memory) allocRecord(name string, size int64, n int) {
	const offset, prime = 14695981039346656037, 1099511628211
	if m.allocCalls == 0 {
		m.allocSum = offset
	}
	m.allocCalls++
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	binary.LittleEndian.PutUint64(b[8:], uint64(n))
	h := m.allocSum
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * prime
	}
	h = (h ^ 0xff) * prime // separates the name from the numbers
	for _, c := range b {
		h = (h ^ uint64(c)) * prime
	}
	m.allocSum = h
}
