//go:build linux && (amd64 || arm64)

package uffd

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel structures from include/uapi/linux/userfaultfd.h, copied by hand.
// Their sizes are checked by TestStructSizes.

type uffdioAPI struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

type uffdioRange struct {
	Start uint64
	Len   uint64
}

type uffdioRegister struct {
	Range  uffdioRange
	Mode   uint64
	Ioctls uint64
}

type uffdioCopy struct {
	Dst  uint64
	Src  uint64
	Len  uint64
	Mode uint64
	Copy int64 // bytes copied, or a negated errno
}

type uffdioWriteprotect struct {
	Range uffdioRange
	Mode  uint64
}

// uffdMsg is struct uffd_msg (__packed, 32 bytes) with the pagefault member
// of its union spelled out; the other members overlay the same 24 bytes.
type uffdMsg struct {
	Event     uint8
	Reserved1 uint8
	Reserved2 uint16
	Reserved3 uint32
	Flags     uint64 // arg.pagefault.flags
	Address   uint64 // arg.pagefault.address
	Ptid      uint32 // arg.pagefault.feat.ptid
	_         uint32
}

const (
	uffdAPI          = 0xAA
	uffdUserModeOnly = 1 // UFFD_USER_MODE_ONLY, a userfaultfd(2) flag

	// The *_MODE_DONTWAKE bits (1<<0 for COPY, 1<<1 for WRITEPROTECT) are
	// never used: every install or unprotect wakes the waiters.
	copyModeWP = 1 << 1 // UFFDIO_COPY_MODE_WP
	wpModeWP   = 1 << 0 // UFFDIO_WRITEPROTECT_MODE_WP
)

// The generic _IOC encoding (x86, arm64): dir<<30 | size<<16 | type<<8 | nr.
const (
	iocWrite = 1
	iocRead  = 2

	uffdioType = 0xAA

	ioctlAPI          = (iocRead|iocWrite)<<30 | unsafe.Sizeof(uffdioAPI{})<<16 | uffdioType<<8 | 0x3F
	ioctlRegister     = (iocRead|iocWrite)<<30 | unsafe.Sizeof(uffdioRegister{})<<16 | uffdioType<<8 | 0x00
	ioctlUnregister   = iocRead<<30 | unsafe.Sizeof(uffdioRange{})<<16 | uffdioType<<8 | 0x01
	ioctlWake         = iocRead<<30 | unsafe.Sizeof(uffdioRange{})<<16 | uffdioType<<8 | 0x02
	ioctlCopy         = (iocRead|iocWrite)<<30 | unsafe.Sizeof(uffdioCopy{})<<16 | uffdioType<<8 | 0x03
	ioctlWriteProtect = (iocRead|iocWrite)<<30 | unsafe.Sizeof(uffdioWriteprotect{})<<16 | uffdioType<<8 | 0x06
)

// maxEAGAIN bounds the retries of an ioctl the kernel asks to repeat
// (EAGAIN while the address space is changing, or a partial copy).
const maxEAGAIN = 1000

const msgBatch = 64

// FD is a userfaultfd descriptor. Its methods are safe for concurrent use,
// except that API must complete before the others are used.
type FD struct {
	// file is swapped once, by API on a non-blocking FD: the descriptor
	// joins the netpoller only after the handshake, because an
	// uninitialised userfaultfd polls as EPOLLERR and the runtime would
	// remember that error.
	file         atomic.Pointer[conn]
	nonblock     bool
	userModeOnly bool

	fmu       sync.Mutex // serialises the swap in API with Close
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool // set before the file is closed, to name the error

	mu  sync.Mutex // serialises ReadMsgs and guards raw
	raw []uffdMsg

	fd int // FromFileUnpolled: the raw descriptor; 0 otherwise (see Fd)
}

type conn struct {
	f        *os.File
	rc       syscall.RawConn
	nonblock bool // O_NONBLOCK set and registered with the netpoller
}

func userfaultfd(flags int) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// New creates a userfaultfd covering the calling process (O_CLOEXEC).
// With nonblock, API switches it to O_NONBLOCK and registers it with the
// netpoller, so that ReadMsgs parks a goroutine rather than a thread.
//
// New first asks for a descriptor that also handles faults raised by the
// kernel (e.g. inside read(2)); when that is refused with
// EPERM (vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE) it retries
// with UFFD_USER_MODE_ONLY, which UserModeOnly then reports. Under that
// mode a system call touching a missing or write-protected page fails with
// EFAULT instead of waiting for the fault to be served.
func New(nonblock bool) (*FD, error) {
	// The descriptor stays blocking (and out of the netpoller) until API.
	flags := unix.O_CLOEXEC
	userModeOnly := false
	fd, err := userfaultfd(flags)
	if err == unix.EPERM {
		userModeOnly = true
		fd, err = userfaultfd(flags | uffdUserModeOnly)
	}
	if err != nil {
		serr := os.NewSyscallError("userfaultfd", err)
		if err == unix.ENOSYS {
			return nil, fmt.Errorf("%w: %w", ErrNotSupported, serr)
		}
		return nil, fmt.Errorf("uffd: create: %w", serr)
	}
	c, err := newConn(fd, "userfaultfd", false)
	if err != nil {
		return nil, err
	}
	u := &FD{nonblock: nonblock, userModeOnly: userModeOnly, raw: make([]uffdMsg, msgBatch)}
	u.file.Store(c)
	return u, nil
}

// FromFile adopts a userfaultfd inherited from the process that created it
// (for example as exec.Cmd.ExtraFiles[i] in a pager). The API handshake
// must already have been done by the creator. FromFile takes ownership of
// f: it duplicates the descriptor, puts it in non-blocking mode (os/exec
// hands inherited files over in blocking mode) so that ReadMsgs parks in
// the netpoller, and closes f.
func FromFile(f *os.File) (*FD, error) {
	nfd, name, err := adoptDup(f)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("uffd: adopt %s: %w", name, os.NewSyscallError("fcntl", err))
	}
	c, err := newConn(nfd, name, true)
	if err != nil {
		return nil, err
	}
	u := &FD{nonblock: true, raw: make([]uffdMsg, msgBatch)}
	u.file.Store(c)
	return u, nil
}

// adoptDup duplicates f's descriptor (close-on-exec), closes f, and checks
// that the duplicate is a userfaultfd. It returns the new descriptor and
// f's name for error messages; on error nothing is left open but f.
func adoptDup(f *os.File) (nfd int, name string, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, "", fmt.Errorf("uffd: adopt %s: %w", f.Name(), err)
	}
	nfd = -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, "", fmt.Errorf("uffd: adopt %s: %w", f.Name(), err)
	}
	if derr != nil {
		return -1, "", fmt.Errorf("uffd: adopt %s: %w", f.Name(), os.NewSyscallError("fcntl", derr))
	}
	name = f.Name()
	f.Close()
	if target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(nfd)); err == nil && !strings.Contains(target, "userfaultfd") {
		unix.Close(nfd)
		return -1, "", fmt.Errorf("uffd: adopt %s: descriptor is %q, not a userfaultfd", name, target)
	}
	return nfd, name, nil
}

// newConn wraps fd; os.NewFile registers it with the netpoller when it is
// in non-blocking mode.
func newConn(fd int, name string, nonblock bool) (*conn, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("uffd: wrap descriptor: %w", err)
	}
	return &conn{f: f, rc: rc, nonblock: nonblock}, nil
}

// Features reports the features the running kernel offers to this process,
// probing with a throw-away descriptor (UFFDIO_API can be done only once
// per descriptor).
func Features() (uint64, error) {
	u, err := New(false)
	if err != nil {
		return 0, err
	}
	defer u.Close()
	return u.API(0)
}

// ioctl is the single entry point to ioctl(2) on the descriptor. arg must
// stay alive until it returns; callers follow it with runtime.KeepAlive.
func (u *FD) ioctl(name string, req uintptr, arg unsafe.Pointer) error {
	var errno syscall.Errno
	if err := u.file.Load().rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		if u.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("uffd: %s: %w", name, err)
	}
	if errno != 0 {
		return os.NewSyscallError("ioctl "+name, errno)
	}
	return nil
}

// UserModeOnly reports whether New had to fall back to UFFD_USER_MODE_ONLY.
// It is false for descriptors adopted with FromFile.
func (u *FD) UserModeOnly() bool { return u.userModeOnly }

// File returns the underlying file, for handing to another process.
// Passing it to os/exec (or calling its Fd method) switches the shared
// file description to blocking mode; the receiver's FromFile switches it
// back. Doing so again after that would make the receiver's ReadMsgs fail
// ("not pollable": a blocking userfaultfd polls as EPOLLERR), so hand the
// file over once and then close this FD.
func (u *FD) File() *os.File { return u.file.Load().f }

// SetReadDeadline bounds a blocked or future ReadMsgs on a non-blocking
// descriptor; a past time wakes a blocked reader with os.ErrDeadlineExceeded.
func (u *FD) SetReadDeadline(t time.Time) error {
	if err := u.file.Load().f.SetReadDeadline(t); err != nil {
		return fmt.Errorf("uffd: set read deadline: %w", err)
	}
	return nil
}

// Close closes the descriptor; a ReadMsgs blocked in the netpoller returns
// ErrClosed. Closing twice returns the first result. Registered ranges stay
// served until every copy of the descriptor (including one inherited by
// another process) is closed; then the kernel wakes all faulting threads
// and the ranges behave as ordinary memory.
func (u *FD) Close() error {
	u.fmu.Lock()
	defer u.fmu.Unlock()
	u.closeOnce.Do(func() {
		u.closed.Store(true)
		if err := u.file.Load().f.Close(); err != nil {
			u.closeErr = fmt.Errorf("uffd: close: %w", err)
		}
	})
	return u.closeErr
}

// API performs the UFFDIO_API handshake requesting features and returns
// the features the kernel supports. It fails with EINVAL if a requested
// feature is not available or the handshake was already done.
func (u *FD) API(features uint64) (uint64, error) {
	arg := uffdioAPI{API: uffdAPI, Features: features}
	err := u.ioctl("UFFDIO_API", ioctlAPI, unsafe.Pointer(&arg))
	runtime.KeepAlive(&arg)
	if err != nil {
		return 0, fmt.Errorf("uffd: api handshake (features %#x): %w", features, err)
	}
	if u.nonblock {
		if err := u.joinPoller(); err != nil {
			return 0, err
		}
	}
	return arg.Features, nil
}

// joinPoller replaces the blocking file by a non-blocking duplicate that
// the netpoller watches.
func (u *FD) joinPoller() error {
	u.fmu.Lock()
	defer u.fmu.Unlock()
	if u.closed.Load() {
		return ErrClosed
	}
	old := u.file.Load()
	nfd := -1
	var derr error
	if err := old.rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if derr == nil {
			derr = unix.SetNonblock(nfd, true)
		}
	}); err != nil {
		return fmt.Errorf("uffd: switch to non-blocking: %w", err)
	}
	if derr != nil {
		if nfd >= 0 {
			unix.Close(nfd)
		}
		return fmt.Errorf("uffd: switch to non-blocking: %w", os.NewSyscallError("fcntl", derr))
	}
	c, err := newConn(nfd, old.f.Name(), true)
	if err != nil {
		return err
	}
	u.file.Store(c)
	old.f.Close()
	return nil
}

// Register registers [addr, addr+length) for the given modes
// (ModeMissing, ModeWP) and returns the mask of range ioctls the kernel
// allows there (IoctlCopy, IoctlWriteProtect, ...).
func (u *FD) Register(addr, length uintptr, mode uint64) (uint64, error) {
	arg := uffdioRegister{Range: uffdioRange{Start: uint64(addr), Len: uint64(length)}, Mode: mode}
	err := u.ioctl("UFFDIO_REGISTER", ioctlRegister, unsafe.Pointer(&arg))
	runtime.KeepAlive(&arg)
	if err != nil {
		return 0, fmt.Errorf("uffd: register %#x+%#x mode %#x: %w", addr, length, mode, err)
	}
	return arg.Ioctls, nil
}

// Unregister removes [addr, addr+length) from the descriptor.
func (u *FD) Unregister(addr, length uintptr) error {
	arg := uffdioRange{Start: uint64(addr), Len: uint64(length)}
	err := u.ioctl("UFFDIO_UNREGISTER", ioctlUnregister, unsafe.Pointer(&arg))
	runtime.KeepAlive(&arg)
	if err != nil {
		return fmt.Errorf("uffd: unregister %#x+%#x: %w", addr, length, err)
	}
	return nil
}

// Copy atomically installs src (a whole number of pages, read from the
// calling process) at dst in the registered process and wakes the threads
// waiting on that range. With wp the installed pages are write-protected,
// so a later write raises a WP fault. If a page is already populated Copy
// returns an error matching ErrExist and wakes nobody.
func (u *FD) Copy(dst uintptr, src []byte, wp bool) error {
	if len(src) == 0 {
		return nil
	}
	var mode uint64
	if wp {
		mode |= copyModeWP
	}
	done := 0
	for try := 0; ; try++ {
		arg := uffdioCopy{
			Dst:  uint64(dst) + uint64(done),
			Src:  uint64(uintptr(unsafe.Pointer(&src[done]))),
			Len:  uint64(len(src) - done),
			Mode: mode,
		}
		err := u.ioctl("UFFDIO_COPY", ioctlCopy, unsafe.Pointer(&arg))
		runtime.KeepAlive(&arg)
		runtime.KeepAlive(src)
		if err == nil {
			return nil
		}
		switch {
		case errors.Is(err, unix.EEXIST):
			return fmt.Errorf("%w: copy to %#x: %w", ErrExist, dst, err)
		case errors.Is(err, unix.EAGAIN) && try < maxEAGAIN:
			if arg.Copy > 0 {
				done += int(arg.Copy)
			}
			runtime.Gosched()
			continue
		}
		return fmt.Errorf("uffd: copy %d bytes to %#x: %w", len(src), dst, err)
	}
}

// WriteProtect sets (wp) or clears write protection on [addr, addr+length).
// Clearing also wakes the threads waiting on the range. Protecting a page
// that is not populated leaves a marker, so its next access still raises a
// missing fault.
func (u *FD) WriteProtect(addr, length uintptr, wp bool) error {
	var mode uint64
	if wp {
		mode |= wpModeWP
	}
	for try := 0; ; try++ {
		arg := uffdioWriteprotect{Range: uffdioRange{Start: uint64(addr), Len: uint64(length)}, Mode: mode}
		err := u.ioctl("UFFDIO_WRITEPROTECT", ioctlWriteProtect, unsafe.Pointer(&arg))
		runtime.KeepAlive(&arg)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EAGAIN) && try < maxEAGAIN {
			runtime.Gosched()
			continue
		}
		return fmt.Errorf("uffd: write-protect(%v) %#x+%#x: %w", wp, addr, length, err)
	}
}

// Wake wakes the threads waiting on faults in [addr, addr+length) without
// changing any page; they retry the access (and fault again if the page is
// still not accessible).
func (u *FD) Wake(addr, length uintptr) error {
	arg := uffdioRange{Start: uint64(addr), Len: uint64(length)}
	err := u.ioctl("UFFDIO_WAKE", ioctlWake, unsafe.Pointer(&arg))
	runtime.KeepAlive(&arg)
	if err != nil {
		return fmt.Errorf("uffd: wake %#x+%#x: %w", addr, length, err)
	}
	return nil
}

// ReadMsgs reads pending messages into buf and returns how many it read.
// On a non-blocking descriptor it parks the goroutine in the netpoller until
// at least one message is pending, the read deadline passes
// (os.ErrDeadlineExceeded) or the descriptor is closed (ErrClosed); on a
// blocking one it blocks its thread in read(2).
func (u *FD) ReadMsgs(buf []Msg) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	raw := u.raw[:min(len(buf), len(u.raw))]
	b := unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), len(raw)*int(unsafe.Sizeof(raw[0])))
	var n int
	var rerr error
	c := u.file.Load()
	err := c.rc.Read(func(fd uintptr) bool {
		n, rerr = readEINTR(int(fd), b)
		return !(c.nonblock && rerr == unix.EAGAIN)
	})
	runtime.KeepAlive(raw)
	return u.readDone(raw, n, err, rerr, buf)
}

// FromFileUnpolled adopts an inherited userfaultfd like FromFile, but keeps
// it out of the Go netpoller: the descriptor is non-blocking, and the
// caller waits for it with its own epoll (Fd) and reads with TryReadMsgs.
// A descriptor in the netpoller would also wake the runtime's poller
// thread on every fault, one thread wake too many for a page server that
// runs a loop of its own. ReadMsgs on such an FD returns EAGAIN at once
// instead of waiting.
func FromFileUnpolled(f *os.File) (*FD, error) {
	nfd, name, err := adoptDup(f)
	if err != nil {
		return nil, err
	}
	// Wrapped while blocking, so os.NewFile does not register it with the
	// netpoller; then switched to non-blocking behind its back.
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("uffd: adopt %s: %w", name, os.NewSyscallError("fcntl", err))
	}
	c, err := newConn(nfd, name, false)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		c.f.Close()
		return nil, fmt.Errorf("uffd: adopt %s: %w", name, os.NewSyscallError("fcntl", err))
	}
	u := &FD{raw: make([]uffdMsg, msgBatch), fd: nfd}
	u.file.Store(c)
	return u, nil
}

// Fd is the descriptor of an FD made by FromFileUnpolled (for epoll), or
// -1 for other FDs.
func (u *FD) Fd() int {
	if u.fd == 0 {
		return -1
	}
	return u.fd
}

// TryReadMsgs reads the pending messages into buf without waiting: it
// returns 0 and no error when none is pending.
func (u *FD) TryReadMsgs(buf []Msg) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	raw := u.raw[:min(len(buf), len(u.raw))]
	b := unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), len(raw)*int(unsafe.Sizeof(raw[0])))
	var n int
	var rerr error
	err := u.file.Load().rc.Control(func(fd uintptr) {
		n, rerr = readEINTR(int(fd), b)
	})
	runtime.KeepAlive(raw)
	if err == nil && rerr == unix.EAGAIN {
		return 0, nil
	}
	return u.readDone(raw, n, err, rerr, buf)
}

// readEINTR reads fd into b, again when a signal interrupted the read.
func readEINTR(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Read(fd, b)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// readDone finishes a read of n bytes of messages into raw: err is the
// error of the raw connection's Read or Control, rerr that of read(2).
// It copies the messages into buf and returns how many there were.
func (u *FD) readDone(raw []uffdMsg, n int, err, rerr error, buf []Msg) (int, error) {
	if err != nil {
		if u.closed.Load() {
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("uffd: read messages: %w", err)
	}
	if rerr != nil {
		return 0, fmt.Errorf("uffd: read messages: %w", os.NewSyscallError("read", rerr))
	}
	size := int(unsafe.Sizeof(raw[0]))
	if n%size != 0 {
		panic(fmt.Sprintf("uffd: read returned %d bytes, not a multiple of the %d-byte uffd_msg", n, size))
	}
	for i := range n / size {
		m := &raw[i]
		buf[i] = Msg{Event: m.Event, Flags: m.Flags, Address: m.Address}
	}
	return n / size, nil
}
