//go:build linux

package pagemem

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

var pageSize = os.Getpagesize()

func memfdBlocks(t *testing.T, f *os.File) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

func TestRegionSparse(t *testing.T) {
	const size = 1 << 30
	r, err := NewRegion(size)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != size || len(r.Bytes()) != size || r.Pages() != size/pageSize || r.PageSize() != pageSize {
		t.Fatalf("size %d len %d pages %d page size %d", r.Size(), len(r.Bytes()), r.Pages(), r.PageSize())
	}
	if b := memfdBlocks(t, r.File()); b != 0 {
		t.Fatalf("fresh 1 GiB region uses %d blocks", b)
	}
	base := r.Base()
	for _, tc := range []struct {
		addr uintptr
		page int
		ok   bool
	}{
		{base, 0, true},
		{base + uintptr(pageSize) - 1, 0, true},
		{base + uintptr(pageSize), 1, true},
		{base + size - 1, size/pageSize - 1, true},
		{base + size, 0, false},
		{base - 1, 0, false},
	} {
		if p, ok := r.PageOf(tc.addr); p != tc.page || ok != tc.ok {
			t.Errorf("PageOf(base%+d) = %d, %v; want %d, %v", int(tc.addr-base), p, ok, tc.page, tc.ok)
		}
	}
	r.Bytes()[size-1] = 1
	if b := memfdBlocks(t, r.File()); b == 0 || b*512 > 1<<20 {
		t.Fatalf("one touched page uses %d blocks", b)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestRegionRoundsUp(t *testing.T) {
	r, err := NewRegion(pageSize + 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != 2*pageSize {
		t.Fatalf("size %d, want %d", r.Size(), 2*pageSize)
	}
	if _, err := NewRegion(0); err == nil {
		t.Fatal("NewRegion(0) succeeded")
	}
}
