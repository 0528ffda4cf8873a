//go:build linux

package pagemem

import (
	"bytes"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

func newProtect(t *testing.T, pages int) (*Region, *ProtectOps) {
	t.Helper()
	r, err := NewRegion(pages * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	o, err := NewProtectOps(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return r, o
}

func fill(b byte) []byte { return bytes.Repeat([]byte{b}, pageSize) }

func TestAccessReadNone(t *testing.T) {
	r, o := newProtect(t, 4)
	b := r.Bytes()
	var got byte
	read := func() { got = b[2*pageSize+123] }
	addr, faulted := Access(read)
	if !faulted || addr != r.Base()+2*uintptr(pageSize)+123 {
		t.Fatalf("Access = %#x, %v; want fault at %#x", addr, faulted, r.Base()+2*uintptr(pageSize)+123)
	}
	if p, ok := r.PageOf(addr); !ok || p != 2 {
		t.Fatalf("PageOf(%#x) = %d, %v", addr, p, ok)
	}
	if err := o.Fill(2, fill(0x42), false); err != nil {
		t.Fatal(err)
	}
	if _, faulted := Access(read); faulted || got != 0x42 {
		t.Fatalf("retry: faulted %v, got %#x", faulted, got)
	}
	// Read-only now: a write faults at its own address, then succeeds.
	write := func() { b[2*pageSize+7] = 9 }
	if addr, faulted := Access(write); !faulted || addr != r.Base()+2*uintptr(pageSize)+7 {
		t.Fatalf("write to read-only page: %#x, %v", addr, faulted)
	}
	if err := o.Protect(2, true); err != nil {
		t.Fatal(err)
	}
	if _, faulted := Access(write); faulted {
		t.Fatal("write to writable page faulted")
	}
	buf := make([]byte, pageSize)
	if err := o.Read(2, buf); err != nil {
		t.Fatal(err)
	}
	if buf[7] != 9 || buf[8] != 0x42 {
		t.Fatalf("Read sees %#x %#x, want 9 0x42", buf[7], buf[8])
	}
	if err := o.Drop(2); err != nil {
		t.Fatal(err)
	}
	if _, faulted := Access(read); !faulted {
		t.Fatal("read of dropped page did not fault")
	}
	if err := o.Read(2, buf); err != nil || buf[7] != 0 {
		t.Fatalf("dropped page reads %v %#x, want zeros", err, buf[7])
	}
	if debug.SetPanicOnFault(false) {
		t.Fatal("Access left SetPanicOnFault on")
	}
}

// TestAccessCopy checks that faults inside runtime.memmove (copy) become
// recoverable panics, reading from and writing to protected pages, and a
// copy that spans pages.
func TestAccessCopy(t *testing.T) {
	r, o := newProtect(t, 4)
	b := r.Bytes()
	src := fill(0x77)
	src = append(src, src[:pageSize/2]...) // 1.5 pages
	dst := make([]byte, len(src))
	base := r.Base()
	inPage := func(addr uintptr, p int) bool {
		q, ok := r.PageOf(addr)
		return ok && q == p
	}

	copyIn := func() { copy(b[pageSize/2:], src) } // pages 0 and 1
	var faults []int
	for range 5 {
		addr, faulted := Access(copyIn)
		if !faulted {
			break
		}
		p, ok := r.PageOf(addr)
		if !ok {
			t.Fatalf("fault at %#x outside region %#x", addr, base)
		}
		faults = append(faults, p)
		if err := o.Fill(p, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	if len(faults) != 2 || faults[0] != 0 || faults[1] != 1 {
		t.Fatalf("copy into protected pages faulted on pages %v, want [0 1]", faults)
	}
	if !bytes.Equal(b[pageSize/2:pageSize/2+len(src)], src) {
		t.Fatal("copied data differs")
	}

	// memmove may touch the end of a range first: accept the faults in
	// any order, each page once.
	copyOut := func() { copy(dst, b[2*pageSize:]) }
	seen := map[int]bool{}
	for range 5 {
		addr, faulted := Access(copyOut)
		if !faulted {
			break
		}
		p, ok := r.PageOf(addr)
		if !ok || p < 2 || seen[p] {
			t.Fatalf("copy out faulted at %#x (page %d, %v), seen %v", addr, p, ok, seen)
		}
		seen[p] = true
		if err := o.Fill(p, fill(byte(p)), false); err != nil {
			t.Fatal(err)
		}
	}
	if !seen[2] || !seen[3] {
		t.Fatalf("copy out faulted on %v, want pages 2 and 3", seen)
	}
	if dst[0] != 2 || dst[pageSize] != 3 {
		t.Fatalf("copied out %d %d", dst[0], dst[pageSize])
	}
	// bytes.Equal runs the assembly memequal: recoverable too.
	if err := o.Drop(3); err != nil {
		t.Fatal(err)
	}
	if addr, faulted := Access(func() { _ = bytes.Equal(dst, b[2*pageSize:2*pageSize+len(dst)]) }); !faulted || !inPage(addr, 3) {
		t.Fatalf("bytes.Equal on dropped page: %#x %v", addr, faulted)
	}
}

func TestAccessAtomic(t *testing.T) {
	r, o := newProtect(t, 2)
	p := (*int64)(unsafe.Pointer(&r.Bytes()[pageSize+64]))
	add := func(n int64) {
		for {
			addr, faulted := Access(func() { atomic.AddInt64(p, n) })
			if !faulted {
				return
			}
			if uintptr(unsafe.Pointer(p)) != addr {
				t.Errorf("atomic fault at %#x, want %p", addr, p)
				return
			}
			if err := o.Protect(1, true); err != nil {
				t.Error(err)
				return
			}
		}
	}
	// PROT_NONE: the first attempt faults.
	if addr, faulted := Access(func() { atomic.AddInt64(p, 1) }); !faulted || addr != uintptr(unsafe.Pointer(p)) {
		t.Fatalf("atomic on PROT_NONE: %#x %v", addr, faulted)
	}
	if !raceEnabled {
		// Under the race detector an atomic store to a read-only page is
		// made by the C race runtime and crashes the process: see Access.
		if err := o.Fill(1, nil, false); err != nil {
			t.Fatal(err)
		}
		if addr, faulted := Access(func() { atomic.AddInt64(p, 1) }); !faulted || addr != uintptr(unsafe.Pointer(p)) {
			t.Fatalf("atomic on PROT_READ: %#x %v", addr, faulted)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				add(1)
			}
		})
	}
	wg.Wait()
	if got := atomic.LoadInt64(p); got != 800 {
		t.Fatalf("counter = %d, want 800", got)
	}
}

func TestAccessRepanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func()
		want string
	}{
		{"plain", func() { panic("boom") }, "boom"},
		{"nil", func() {
			var p *int
			_ = *p
		}, "nil pointer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(toString(r), tc.want) {
					t.Fatalf("recovered %v, want %q", r, tc.want)
				}
				if debug.SetPanicOnFault(false) {
					t.Fatal("SetPanicOnFault left on after re-panic")
				}
			}()
			Access(tc.fn)
		})
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case error:
		return v.Error()
	case string:
		return v
	}
	return ""
}

func TestProtectOpsErrors(t *testing.T) {
	_, o := newProtect(t, 2)
	if err := o.Fill(2, nil, true); err == nil {
		t.Error("fill out of range succeeded")
	}
	if err := o.Fill(0, []byte{1}, true); err == nil {
		t.Error("fill with short data succeeded")
	}
	if err := o.Read(0, make([]byte, 1)); err == nil {
		t.Error("read into short buffer succeeded")
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
