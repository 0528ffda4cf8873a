//go:build linux && (amd64 || arm64)

package uffd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestStructSizes(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"uffdio_api", unsafe.Sizeof(uffdioAPI{}), 24},
		{"uffdio_range", unsafe.Sizeof(uffdioRange{}), 16},
		{"uffdio_register", unsafe.Sizeof(uffdioRegister{}), 32},
		{"uffdio_copy", unsafe.Sizeof(uffdioCopy{}), 40},
		{"uffdio_writeprotect", unsafe.Sizeof(uffdioWriteprotect{}), 24},
		{"uffd_msg", unsafe.Sizeof(uffdMsg{}), 32},
		{"uffd_msg.arg.pagefault.flags offset", unsafe.Offsetof(uffdMsg{}.Flags), 8},
		{"uffd_msg.arg.pagefault.address offset", unsafe.Offsetof(uffdMsg{}.Address), 16},
		{"uffd_msg.arg.pagefault.feat.ptid offset", unsafe.Offsetof(uffdMsg{}.Ptid), 24},
		{"uffdio_copy.copy offset", unsafe.Offsetof(uffdioCopy{}.Copy), 32},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// The values printed by a C program including <linux/userfaultfd.h>.
func TestIoctlNumbers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"UFFDIO_API", ioctlAPI, 0xc018aa3f},
		{"UFFDIO_REGISTER", ioctlRegister, 0xc020aa00},
		{"UFFDIO_UNREGISTER", ioctlUnregister, 0x8010aa01},
		{"UFFDIO_WAKE", ioctlWake, 0x8010aa02},
		{"UFFDIO_COPY", ioctlCopy, 0xc028aa03},
		{"UFFDIO_WRITEPROTECT", ioctlWriteProtect, 0xc018aa06},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}

// TestMsgDecode feeds a hand-built 32-byte uffd_msg through the raw layout.
func TestMsgDecode(t *testing.T) {
	var b [32]byte
	b[0] = EventPagefault
	binary.LittleEndian.PutUint64(b[8:], FlagWrite|FlagWP)
	binary.LittleEndian.PutUint64(b[16:], 0x7f0000123000)
	binary.LittleEndian.PutUint32(b[24:], 4242)
	m := (*uffdMsg)(unsafe.Pointer(&b[0]))
	if m.Event != EventPagefault || m.Flags != FlagWrite|FlagWP || m.Address != 0x7f0000123000 || m.Ptid != 4242 {
		t.Fatalf("decoded %+v", *m)
	}
	msg := Msg{Event: m.Event, Flags: m.Flags, Address: m.Address}
	if !msg.IsWrite() || !msg.IsWP() {
		t.Fatalf("IsWrite/IsWP false for %+v", msg)
	}
	if (Msg{Flags: 0}).IsWrite() || (Msg{Flags: FlagWrite}).IsWP() {
		t.Fatal("flags misreported")
	}
}

const testFeatures = FeatureMissingShmem | FeatureWPHugetlbfsShmem

// shmemRange creates a registered MAP_SHARED memfd mapping of n pages.
func shmemRange(t *testing.T, n int) (*FD, *os.File, []byte) {
	t.Helper()
	ps := os.Getpagesize()
	fd, err := unix.MemfdCreate("uffd-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	mf := os.NewFile(uintptr(fd), "memfd")
	t.Cleanup(func() { mf.Close() })
	if err := mf.Truncate(int64(n * ps)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, n*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	u, err := New(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	if _, err := u.API(testFeatures); err != nil {
		t.Fatal(err)
	}
	ioctls, err := u.Register(uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), ModeMissing|ModeWP)
	if err != nil {
		t.Fatal(err)
	}
	if want := IoctlCopy | IoctlWake | IoctlWriteProtect; ioctls&want != want {
		t.Fatalf("register ioctls %#x lack %#x", ioctls, want)
	}
	return u, mf, mem
}

func TestFeatures(t *testing.T) {
	f, err := Features()
	if err != nil {
		t.Fatal(err)
	}
	for _, need := range []uint64{FeatureMissingShmem, FeatureWPHugetlbfsShmem, FeaturePagefaultFlagWP} {
		if f&need == 0 {
			t.Errorf("kernel features %#x lack %#x", f, need)
		}
	}
}

// The shmem features are availability bits: the kernel reports them from
// API(0), and registering shmem for write protection does not depend on
// having requested FeatureWPHugetlbfsShmem (requesting it only makes a
// kernel without it, before 5.19, fail the handshake early).
func TestShmemFeaturesAreReported(t *testing.T) {
	ps := os.Getpagesize()
	fd, err := unix.MemfdCreate("uffd-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(ps)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(fd, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	u, err := New(true)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	got, err := u.API(0)
	if err != nil {
		t.Fatal(err)
	}
	if need := FeatureMissingShmem | FeatureWPHugetlbfsShmem; got&need != need {
		t.Fatalf("API(0) reports features %#x, lacking %#x", got, need&^got)
	}
	addr := uintptr(unsafe.Pointer(&mem[0]))
	ioctls, err := u.Register(addr, uintptr(ps), ModeMissing|ModeWP)
	if err != nil {
		t.Fatalf("register shmem for missing and wp faults: %v", err)
	}
	if ioctls&IoctlWriteProtect == 0 {
		t.Fatalf("register ioctls %#x lack UFFDIO_WRITEPROTECT", ioctls)
	}
}

func TestAPIOnce(t *testing.T) {
	u, err := New(true)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.API(testFeatures); err != nil {
		t.Fatal(err)
	}
	if _, err := u.API(testFeatures); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("second API = %v, want EINVAL", err)
	}
}

// pagemapUffdWP reports the uffd-wp bit (57) of the page at addr.
func pagemapUffdWP(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Skipf("pagemap unavailable: %v", err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], int64(addr/uintptr(os.Getpagesize())*8)); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:])&(1<<57) != 0
}

// TestCopyWriteProtectWithoutFaults installs pages no thread waits for and
// checks contents, EEXIST and the uffd-wp bit.
func TestCopyWriteProtectWithoutFaults(t *testing.T) {
	u, _, mem := shmemRange(t, 2)
	ps := os.Getpagesize()
	base := uintptr(unsafe.Pointer(&mem[0]))
	page := bytes.Repeat([]byte{0xA5}, ps)
	if err := u.Copy(base, page, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mem[:ps], page) {
		t.Fatal("installed page differs")
	}
	if !pagemapUffdWP(t, base) {
		t.Fatal("page copied with wp has no uffd-wp bit")
	}
	if err := u.Copy(base, page, false); !errors.Is(err, ErrExist) || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second copy = %v, want ErrExist", err)
	}
	if err := u.WriteProtect(base, uintptr(ps), false); err != nil {
		t.Fatal(err)
	}
	if pagemapUffdWP(t, base) {
		t.Fatal("uffd-wp bit still set after unprotect")
	}
	mem[0] = 1 // writable now: must not fault
	if err := u.Wake(base, uintptr(2*ps)); err != nil {
		t.Fatal(err)
	}
	if err := u.Copy(base+uintptr(ps), page[:ps-1], false); err == nil {
		t.Fatal("copy of a partial page succeeded")
	}
}

// pipeTouch makes the kernel access b inside write(2) (reading b) or
// read(2) from /dev/zero (writing b) on another goroutine: a fault raised
// by a system call parks a thread in the kernel, never a Go P, so serving
// it from this process is safe.
func pipeTouch(t *testing.T, b []byte, write bool) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	if write {
		z, err := os.Open("/dev/zero")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer z.Close()
			_, err := unix.Read(int(z.Fd()), b)
			done <- err
		}()
		return done
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer unix.Close(p[0])
		defer unix.Close(p[1])
		_, err := unix.Write(p[1], b)
		done <- err
	}()
	return done
}

func readOne(t *testing.T, u *FD) Msg {
	t.Helper()
	if err := u.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	msgs := make([]Msg, 4)
	n, err := u.ReadMsgs(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 || msgs[0].Event != EventPagefault {
		t.Fatalf("read %d messages: %+v", n, msgs[:n])
	}
	return msgs[0]
}

func TestKernelFaultsServed(t *testing.T) {
	u, _, mem := shmemRange(t, 2)
	if u.UserModeOnly() {
		t.Skip("user-mode-only descriptor: faults inside system calls fail with EFAULT instead")
	}
	ps := os.Getpagesize()
	base := uintptr(unsafe.Pointer(&mem[0]))

	// Missing read fault from write(2).
	done := pipeTouch(t, mem[:100], false)
	m := readOne(t, u)
	if m.Address != uint64(base) || m.IsWrite() || m.IsWP() {
		t.Fatalf("missing read fault = %+v, want address %#x, no flags", m, base)
	}
	if err := u.Copy(base, bytes.Repeat([]byte{7}, ps), true); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write(2) from served page: %v", err)
	}

	// WP fault from read(2) into the write-protected page.
	done = pipeTouch(t, mem[:100], true)
	m = readOne(t, u)
	if m.Address != uint64(base) || !m.IsWrite() || !m.IsWP() {
		t.Fatalf("wp fault = %+v, want write|wp at %#x", m, base)
	}
	if err := u.WriteProtect(base, uintptr(ps), false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("read(2) into unprotected page: %v", err)
	}
	if mem[0] != 0 || mem[100] != 7 {
		t.Fatalf("page bytes %d %d, want 0 7", mem[0], mem[100])
	}

	// Missing write fault on the second page.
	done = pipeTouch(t, mem[ps:ps+1], true)
	m = readOne(t, u)
	if m.Address != uint64(base)+uint64(ps) || !m.IsWrite() || m.IsWP() {
		t.Fatalf("missing write fault = %+v", m)
	}
	if err := u.Copy(base+uintptr(ps), make([]byte, ps), false); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReadMsgsUnblocks(t *testing.T) {
	for _, how := range []string{"deadline", "close"} {
		t.Run(how, func(t *testing.T) {
			u, err := New(true)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if _, err := u.API(0); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := u.ReadMsgs(make([]Msg, 1))
				errc <- err
			}()
			var want error
			switch how {
			case "deadline":
				want = os.ErrDeadlineExceeded
				// The reader may or may not be parked yet; either way the
				// deadline applies to it.
				if err := u.SetReadDeadline(time.Now()); err != nil {
					t.Fatal(err)
				}
			case "close":
				want = ErrClosed
				if err := u.Close(); err != nil {
					t.Fatal(err)
				}
				if err := u.Close(); err != nil {
					t.Fatalf("second close: %v", err)
				}
			}
			if err := <-errc; !errors.Is(err, want) {
				t.Fatalf("ReadMsgs = %v, want %v", err, want)
			}
		})
	}
}

func TestFromFile(t *testing.T) {
	u, err := New(false) // blocking, as os/exec would leave it
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.API(testFeatures); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FcntlInt(u.File().Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	v, err := FromFile(os.NewFile(uintptr(fd), "inherited"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatalf("FromFile left the original descriptor open: %v", err)
	}
	// Non-blocking now: a deadline wakes the reader.
	if err := v.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.ReadMsgs(make([]Msg, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadMsgs = %v, want deadline exceeded", err)
	}

	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromFile(f); err == nil {
		t.Fatal("FromFile accepted /dev/null")
	}
}

// TestFromFileUnpolled: an adopted descriptor outside the netpoller reads
// no message without blocking, has a descriptor for epoll, and reports a
// fault to TryReadMsgs.
func TestFromFileUnpolled(t *testing.T) {
	u, err := New(false)
	if err != nil {
		t.Skipf("userfaultfd not permitted: %v", err)
	}
	if _, err := u.API(0); err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	// A shared memfd mapping, as the page servers use (on Linux 6.18 a
	// read of a private anonymous page registered for missing faults was
	// seen to complete without a message, and this test hung).
	mfd, err := unix.MemfdCreate("uffd-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mfd)
	if err := unix.Ftruncate(mfd, int64(ps)); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(mfd, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	base := uintptr(unsafe.Pointer(&mem[0]))
	if _, err := u.Register(base, uintptr(ps), ModeMissing); err != nil {
		t.Fatal(err)
	}
	dup, err := unix.Dup(rawFd(t, u))
	if err != nil {
		t.Fatal(err)
	}
	v, err := FromFileUnpolled(os.NewFile(uintptr(dup), "userfaultfd"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	u.Close()
	if v.Fd() < 0 {
		t.Fatal("no descriptor")
	}
	msgs := make([]Msg, 4)
	if n, err := v.TryReadMsgs(msgs); n != 0 || err != nil {
		t.Fatalf("TryReadMsgs with nothing pending = %d, %v", n, err)
	}
	done := make(chan byte, 1)
	go func() { done <- mem[10] }()
	for {
		pfd := []unix.PollFd{{Fd: int32(v.Fd()), Events: unix.POLLIN}}
		if _, err := unix.Poll(pfd, 100); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
		n, err := v.TryReadMsgs(msgs)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			if msgs[0].Event != EventPagefault || msgs[0].Address != uint64(base) {
				t.Fatalf("message %+v, want a fault at %#x", msgs[0], base)
			}
			break
		}
		select {
		case b := <-done:
			// Seen on a Firecracker guest's Linux 6.18.44: a load from a
			// goroutine completed without a fault message (the page
			// servers' own tests, which fault the same way through real
			// ranks, pass there). Say so instead of waiting forever.
			t.Skipf("the load of a registered missing page returned %d without a fault message on this kernel", b)
		default:
		}
	}
	page := make([]byte, ps)
	page[10] = 7
	if err := v.Copy(base, page, false); err != nil {
		t.Fatal(err)
	}
	if b := <-done; b != 7 {
		t.Fatalf("read %d, want 7", b)
	}
}

func rawFd(t *testing.T, u *FD) int {
	t.Helper()
	rc, err := u.File().SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	rc.Control(func(s uintptr) { fd = int(s) })
	return fd
}
