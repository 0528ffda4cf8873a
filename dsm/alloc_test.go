package dsm

import (
	"fmt"
	"os"
	"testing"
	"unsafe"
)

func local(t *testing.T, bytes int64) *Memory {
	t.Helper()
	m, err := newMemory(config{Rank: 0, Size: 1, Bytes: bytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func offset[T any](m *Memory, v []T) int {
	return int(uintptr(unsafe.Pointer(&v[0])) - uintptr(unsafe.Pointer(&m.Bytes()[0])))
}

type cell struct {
	X, Y float64
	N    int32
}

// TestAllocDeterministic: the same calls give the same offsets on every
// rank, page-aligned, from the top of the region down.
func TestAllocDeterministic(t *testing.T) {
	ps := os.Getpagesize()
	var offs [2][]int
	var digests [2]uint64
	for r := range 2 {
		m := local(t, int64(64*ps))
		a, err := Alloc[float64](m, 1000)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Alloc[cell](m, 3)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Alloc[byte](m, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != 1000 || len(b) != 3 || len(c) != 1 {
			t.Fatalf("lengths %d %d %d", len(a), len(b), len(c))
		}
		offs[r] = []int{offset(m, a), offset(m, b), offset(m, c)}
		digests[r] = m.AllocDigest()
		for i, o := range offs[r] {
			if o%ps != 0 {
				t.Errorf("allocation %d at %d: not page-aligned", i, o)
			}
		}
		if end := offs[r][0] + 8000; end > m.Len() || m.Len()-end >= ps {
			t.Errorf("first allocation [%d, %d) is not at the top of a %d-byte region", offs[r][0], end, m.Len())
		}
		if !(offs[r][2] < offs[r][1] && offs[r][1] < offs[r][0]) {
			t.Errorf("offsets %v do not go down", offs[r])
		}
		if got := m.Allocated(); got != m.Len()-offs[r][2] {
			t.Errorf("Allocated = %d, want %d", got, m.Len()-offs[r][2])
		}
		a[999] = 1 // the memory is usable
		c[0] = 2
	}
	if fmt.Sprint(offs[0]) != fmt.Sprint(offs[1]) || digests[0] != digests[1] || digests[0] == 0 {
		t.Fatalf("two ranks: offsets %v and %v, digests %#x and %#x", offs[0], offs[1], digests[0], digests[1])
	}
}

// TestAllocDigest: a different order, type or count changes the digest.
func TestAllocDigest(t *testing.T) {
	seqs := map[string]func(m *Memory){
		"f64 1000, i32 10": func(m *Memory) { Alloc[float64](m, 1000); Alloc[int32](m, 10) },
		"i32 10, f64 1000": func(m *Memory) { Alloc[int32](m, 10); Alloc[float64](m, 1000) },
		"f64 1000, i32 11": func(m *Memory) { Alloc[float64](m, 1000); Alloc[int32](m, 11) },
		"f64 1000, u32 10": func(m *Memory) { Alloc[float64](m, 1000); Alloc[uint32](m, 10) },
		"f64 1000":         func(m *Memory) { Alloc[float64](m, 1000) },
	}
	seen := map[uint64]string{}
	for name, f := range seqs {
		m := local(t, 1<<20)
		f(m)
		d := m.AllocDigest()
		if other, ok := seen[d]; ok {
			t.Errorf("%q and %q have the same digest %#x", name, other, d)
		}
		seen[d] = name
	}
}

// TestAllocFull: a region too small is an error naming the sizes, and a
// failed call allocates nothing.
func TestAllocFull(t *testing.T) {
	if os.Getpagesize() != 4096 {
		t.Skip("the message below is for 4 KiB pages")
	}
	m := local(t, 65536)
	if _, err := Alloc[byte](m, 65536-12288); err != nil {
		t.Fatal(err)
	}
	_, err := Alloc[float64](m, 80000)
	want := "dsm: Alloc of 80000 float64 (640000 bytes) does not fit: 12288 of 65536 bytes left"
	if err == nil || err.Error() != want {
		t.Fatalf("Alloc = %v, want %q", err, want)
	}
	v, err := Alloc[int64](m, 12288/8)
	if err != nil || offset(m, v) != 0 {
		t.Fatalf("the rest: %v at %d", err, offset(m, v))
	}
	if _, err := Alloc[byte](m, 1); err == nil {
		t.Fatal("Alloc in a full region succeeded")
	}
	if _, err := Alloc[byte](m, -1); err == nil {
		t.Fatal("Alloc of -1 succeeded")
	}
	if _, err := Alloc[int64](m, 1<<62); err == nil {
		t.Fatal("Alloc of 2^62 int64 (overflowing) succeeded")
	}
	if v, err := Alloc[byte](m, 0); err != nil || len(v) != 0 {
		t.Fatalf("Alloc of 0 = %v, %v", v, err)
	}
}
