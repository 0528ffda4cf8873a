//go:build linux

package pagemem

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	pmPresent = 1 << 63
	pmUffdWP  = 1 << 57
)

// pagemap returns this process's /proc/self/pagemap entry for addr.
func pagemap(t *testing.T, addr uintptr) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Skipf("pagemap unavailable: %v", err)
	}
	defer f.Close()
	var e [8]byte
	if _, err := f.ReadAt(e[:], int64(addr/uintptr(pageSize))*8); err != nil {
		t.Fatal(err)
	}
	return binary.NativeEndian.Uint64(e[:])
}

func wantStats(t *testing.T, p *pagerProc, page int, check func(s pageStats) bool, what string) {
	t.Helper()
	if s := p.stats(page); !check(s) {
		t.Fatalf("page %d: %s; stats %+v", page, what, s)
	}
}

// TestUffdCycle walks one page through every transition of the uffd
// backend, across the two processes.
func TestUffdCycle(t *testing.T) {
	r, p := startPager(t, 8)
	b := r.Bytes()

	// A missing read fault is filled read-only with the pager's data.
	p.do("set 0 171")
	var v0, vLast byte
	p.within("read missing page", func() { v0, vLast = b[0], b[pageSize-1] })
	if v0 != 171 || vLast != 171 {
		t.Fatalf("read %d %d, want 171", v0, vLast)
	}
	wantStats(t, p, 0, func(s pageStats) bool { return s.missing == 1 && s.wp == 0 }, "want one missing fault")

	// A write to the read-only page raises a write-protect fault.
	p.within("write read-only page", func() { b[10] = 1 })
	wantStats(t, p, 0, func(s pageStats) bool { return s.missing == 1 && s.wp == 1 }, "want a wp fault")

	// The pager write-protects and reads the application's latest write.
	p.do("protect 0 0")
	if got := p.read(0); got[10] != 1 || got[0] != 171 {
		t.Fatalf("pager read %d %d, want 1 171", got[10], got[0])
	}
	p.within("write re-protected page", func() { b[11] = 2 })
	wantStats(t, p, 0, func(s pageStats) bool { return s.wp == 2 }, "want a second wp fault")
	p.do("protect 0 0")
	if got := p.read(0); got[11] != 2 {
		t.Fatalf("pager read %d, want 2", got[11])
	}

	// Dropping the (write-protected) page: the next access is a missing
	// fault again (the uffd-wp pte marker left by the zap does not turn it
	// into a wp fault) and sees the newly installed data.
	p.do("set 0 205")
	p.do("drop 0")
	if e := pagemap(t, r.Base()); e&pmPresent != 0 || e&pmUffdWP == 0 {
		t.Fatalf("dropped write-protected page: pagemap %#x, want a uffd-wp marker (bit 57) and not present", e)
	}
	p.within("read dropped page", func() { v0 = b[10] })
	if v0 != 205 {
		t.Fatalf("read %d after drop, want 205", v0)
	}
	wantStats(t, p, 0, func(s pageStats) bool { return s.missing == 2 && s.wp == 2 }, "want a second missing fault")

	// Dropping a writable page, then writing: missing write fault.
	p.within("write", func() { b[12] = 3 })
	p.do("set 0 0")
	p.do("drop 0")
	p.within("write dropped page", func() { b[13] = 4 })
	wantStats(t, p, 0, func(s pageStats) bool { return s.missing == 3 && s.wp == 3 }, "want missing fault after drop")
	p.do("protect 0 0")
	if got := p.read(0); got[13] != 4 || got[12] != 0 || got[0] != 0 {
		t.Fatalf("page after drop+write: %d %d %d, want 4 0 0", got[13], got[12], got[0])
	}

	// Dropping a write-protected page, then writing: a missing write fault,
	// and the page installed writable takes no wp fault.
	p.do("protect 0 0")
	p.do("drop 0")
	p.within("write dropped wp page", func() { b[14] = 6 })
	wantStats(t, p, 0, func(s pageStats) bool { return s.missing == 4 && s.wp == 3 }, "want a missing write fault only")

	// Write-protecting a page that was never filled leaves a marker on an
	// empty pte: the access is still a missing fault.
	p.do("protect 1 0")
	p.within("write protected hole", func() { b[pageSize+5] = 5 })
	wantStats(t, p, 1, func(s pageStats) bool { return s.missing == 1 && s.wp == 0 }, "want a missing fault only")
	if got := p.read(1); got[5] != 5 {
		t.Fatalf("page 1 byte 5 = %d, want 5", got[5])
	}

	// Reading a hole from the pager returns zeros and allocates nothing.
	before := memfdBlocks(t, r.File())
	if got := p.read(7); !bytes.Equal(got, make([]byte, pageSize)) {
		t.Fatal("hole reads non-zero")
	}
	if after := memfdBlocks(t, r.File()); after != before {
		t.Fatalf("reading a hole allocated: %d -> %d blocks", before, after)
	}
}

// TestUffdSyscall shows what a system call touching a missing page does:
// with a full userfaultfd (root, or CAP_SYS_PTRACE) the kernel's access is
// served like any other; with UFFD_USER_MODE_ONLY it fails with EFAULT and
// the pager never hears of it.
func TestUffdSyscall(t *testing.T) {
	r, p := startPager(t, 2)
	b := r.Bytes()
	p.do("set 0 66")
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	zero, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()

	var n int
	p.within("write(2) from missing page", func() { n, err = unix.Write(fds[1], b[:100]) })
	var n2 int
	var err2 error
	p.within("read(2) into missing page", func() { n2, err2 = unix.Read(int(zero.Fd()), b[pageSize:pageSize+100]) })
	if p.userMode {
		if !errors.Is(err, unix.EFAULT) || !errors.Is(err2, unix.EFAULT) {
			t.Fatalf("user-mode-only: write(2) = %d, %v; read(2) = %d, %v; want EFAULT", n, err, n2, err2)
		}
		wantStats(t, p, 0, func(s pageStats) bool { return s.total == 0 }, "kernel access reached the pager")
		t.Logf("UFFD_USER_MODE_ONLY: write(2) and read(2) on a missing page fail with %v", err)
		// A user-mode access gets the page; then the system call works.
		var v byte
		p.within("user read", func() { v = b[0] })
		if v != 66 {
			t.Fatalf("read %d, want 66", v)
		}
		n, err = unix.Write(fds[1], b[:100])
	} else if err2 != nil || n2 != 100 {
		t.Fatalf("read(2) into missing page = %d, %v", n2, err2)
	}
	if err != nil || n != 100 {
		t.Fatalf("write(2) from page = %d, %v", n, err)
	}
	got := make([]byte, 100)
	if _, err := unix.Read(fds[0], got); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{66}, 100)) {
		t.Fatalf("pipe carried %v, %v", got[:8], err)
	}
}

// coalesce holds the faults on a page until at least two messages for it
// arrived, then lets the pager serve them in order: the first installs the
// page, the others must find it installed (EEXIST) and only wake.
func coalesce(t *testing.T, r *Region, p *pagerProc, page, readers int) {
	b := r.Bytes()
	p.do("set %d 99", page)
	p.do("hold %d", page)
	existsBefore := p.do("exists")
	got := make([]byte, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() { got[i] = b[page*pageSize+i*64] })
	}
	p.do("wait %d 2", page)
	p.do("release %d", page)
	p.within("coalesced readers", wg.Wait)
	for i, v := range got {
		if v != 99 {
			t.Fatalf("reader %d read %d, want 99", i, v)
		}
	}
	if existsAfter := p.do("exists"); existsAfter == existsBefore {
		t.Fatalf("no fill found its page installed (exists %s)", existsAfter)
	}
	wantStats(t, p, page, func(s pageStats) bool { return s.missing == 1 && s.dup >= 1 }, "want one fill and a duplicate")
}

func TestUffdConcurrent(t *testing.T) {
	const pages, workers, rounds = 8, 32, 20
	r, p := startPager(t, pages+1)
	coalesce(t, r, p, pages, 6)

	// Many goroutines, reads and writes, several per page.
	b := r.Bytes()
	slot := func(w int) *uint64 {
		return (*uint64)(unsafe.Pointer(&b[(w%pages)*pageSize+(w/pages)*8]))
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Go(func() {
			var sink uint64
			for i := range rounds {
				sink += *slot((w + i) % workers) // someone else's slot: read faults
				*slot(w) = uint64(w*1000 + i)
				if got := *slot(w); got != uint64(w*1000+i) {
					errs <- "lost own write"
					return
				}
			}
			_ = sink
		})
	}
	p.within("concurrent workers", wg.Wait)
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for pg := range pages {
		p.do("protect %d 0", pg)
		page := p.read(pg)
		for w := pg; w < workers; w += pages {
			off := (w / pages) * 8
			if got := binary.NativeEndian.Uint64(page[off:]); got != uint64(w*1000+rounds-1) {
				t.Fatalf("worker %d slot = %d, want %d", w, got, w*1000+rounds-1)
			}
		}
	}
}

func TestUffdAtomic(t *testing.T) {
	r, p := startPager(t, 2)
	b := r.Bytes()
	ctr := (*int64)(unsafe.Pointer(&b[128]))
	var v int64
	p.within("read", func() { v = atomic.LoadInt64(ctr) }) // installs page 0 read-only
	if v != 0 {
		t.Fatalf("counter %d", v)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				atomic.AddInt64(ctr, 1)
			}
		})
	}
	p.within("atomic adds on a write-protected page", wg.Wait)
	if got := atomic.LoadInt64(ctr); got != 8000 {
		t.Fatalf("counter = %d, want 8000", got)
	}
	wantStats(t, p, 0, func(s pageStats) bool { return s.missing == 1 && s.wp >= 1 }, "want a wp fault")

	// Compare-and-swap on a missing page: a missing write fault.
	ctr1 := (*int64)(unsafe.Pointer(&b[pageSize+8]))
	var swapped bool
	p.within("cas on missing page", func() { swapped = atomic.CompareAndSwapInt64(ctr1, 0, 7) })
	if !swapped || atomic.LoadInt64(ctr1) != 7 {
		t.Fatalf("cas swapped=%v value=%d", swapped, atomic.LoadInt64(ctr1))
	}
}

// TestUffdCopy: copy() runs runtime.memmove, which the runtime cannot
// preempt; its faults are served like any other.
func TestUffdCopy(t *testing.T) {
	r, p := startPager(t, 4)
	b := r.Bytes()
	src := bytes.Repeat([]byte("0123456789abcdef"), pageSize*3/2/16)
	p.within("copy into missing pages", func() { copy(b[pageSize/2:], src) })
	p.do("set 2 21")
	p.do("set 3 31")
	dst := make([]byte, 2*pageSize)
	p.within("copy out of missing pages", func() { copy(dst, b[2*pageSize:]) })
	if !bytes.Equal(b[pageSize/2:pageSize/2+len(src)], src) {
		t.Fatal("copied-in data differs")
	}
	if dst[0] != 21 || dst[pageSize-1] != 21 || dst[pageSize] != 31 || dst[2*pageSize-1] != 31 {
		t.Fatal("copied-out data differs")
	}
	p.do("protect 0 0")
	p.do("protect 1 0")
	if got0, got1 := p.read(0), p.read(1); !bytes.Equal(append(got0[pageSize/2:], got1...)[:len(src)], src) {
		t.Fatal("pager reads different data than copied in")
	}
}

// TestUffdGOMAXPROCS1 runs faulting goroutines (in copy, in atomics and
// in plain loads) against a concurrent GC with a single P. The pager is
// another process, so nothing here waits for a goroutine of this one.
func TestUffdGOMAXPROCS1(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const workers, rounds = 4, 10
	r, p := startPager(t, workers+2)
	b := r.Bytes()
	stop := make(chan struct{})
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	}()
	defer func() {
		close(stop)
		<-gcDone
	}()
	for round := range rounds {
		p.do("dropall")
		for w := range workers {
			p.do("set %d %d", w, round*10+w+1)
		}
		src := bytes.Repeat([]byte{byte(round)}, pageSize)
		dsts := make([][]byte, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				dsts[w] = make([]byte, pageSize)
				copy(dsts[w], b[w*pageSize:])                                // missing read fault in memmove
				atomic.AddInt64((*int64)(unsafe.Pointer(&b[w*pageSize])), 1) // wp fault
				copy(b[workers*pageSize:], src)                              // shared missing write fault
			})
		}
		p.within("round", wg.Wait)
		for w := range workers {
			want := byte(round*10 + w + 1)
			if dsts[w][0] != want || dsts[w][pageSize-1] != want {
				t.Fatalf("round %d worker %d read %d, want %d", round, w, dsts[w][0], want)
			}
			if got := *(*int64)(unsafe.Pointer(&b[w*pageSize])); got != int64(binary.NativeEndian.Uint64(bytes.Repeat([]byte{want}, 8)))+1 {
				t.Fatalf("round %d worker %d atomic result %#x", round, w, got)
			}
		}
		if !bytes.Equal(b[workers*pageSize:(workers+1)*pageSize], src) {
			t.Fatalf("round %d shared page differs", round)
		}
	}
	coalesce(t, r, p, workers+1, 3)
}

// TestUffdPagerDeath: when the pager dies, the kernel releases the
// faulting threads (the application closed its own copy of the
// userfaultfd) and the region becomes plain shared memory.
func TestUffdPagerDeath(t *testing.T) {
	r, p := startPager(t, 1)
	b := r.Bytes()
	p.do("set 0 5")
	p.do("hold 0")
	var v byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		v = b[0]
	}()
	p.do("wait 0 1")
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.within("released reader", func() { <-done })
	if v != 0 {
		t.Fatalf("read %d from released page, want 0 (the memfd's hole)", v)
	}
	p.tb = &quietTB{TB: t} // the pager's exit status is the point here
}

type quietTB struct{ testing.TB }

func (q *quietTB) Errorf(string, ...any) {}

// TestUffdUnprivileged re-runs the uffd tests as nobody, where
// vm.unprivileged_userfaultfd=0 forces UFFD_USER_MODE_ONLY.
func TestUffdUnprivileged(t *testing.T) {
	if os.Getenv(userModeEnv) != "" {
		t.Skip("already the unprivileged run")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot switch to an unprivileged user (the other TestUffd tests already run as this user)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed: cannot drop privileges")
	}
	if v, err := os.ReadFile("/proc/sys/vm/unprivileged_userfaultfd"); err != nil || strings.TrimSpace(string(v)) != "0" {
		t.Skipf("vm.unprivileged_userfaultfd is %q (%v), not 0: unprivileged users get full userfaultfds", v, err)
	}
	// The test binary lives in a root-only build directory: copy it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(filepath.Dir(dir)); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm()&0o001 == 0 {
			t.Skipf("%s is not searchable by other users: set TMPDIR to a world-searchable directory", d)
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	bin := filepath.Join(dir, "pagemem.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []string{"TestUffdCycle", "TestUffdSyscall", "TestUffdConcurrent", "TestUffdAtomic", "TestUffdCopy", "TestUffdGOMAXPROCS1"}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin,
		"-test.run=^("+strings.Join(tests, "|")+")$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), userModeEnv+"=1")
	if _, ok := os.LookupEnv("GORACE"); !ok {
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged run: %v\n%s", err, out)
	}
	for _, name := range tests {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("unprivileged run did not pass %s:\n%s", name, out)
		}
	}
	t.Logf("unprivileged run:\n%s", out)
	if !strings.Contains(string(out), "UFFD_USER_MODE_ONLY: write(2) and read(2) on a missing page fail with") {
		t.Errorf("unprivileged run did not take the EFAULT path:\n%s", out)
	}
}
