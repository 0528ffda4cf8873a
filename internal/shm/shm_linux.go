//go:build linux && (amd64 || arm64)

package shm

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dir is where segments live; a variable for the fallback test.
var dir = "/dev/shm"

const namePrefix = "dsmexec-"

// Create makes a new segment with two rings of ringSize bytes each (0:
// DefaultRingSize; else a power of two of at least a page) as a file
// /dev/shm/dsmexec-<32 random hex digits>, created exclusively, mode 0600,
// its pages allocated at once so that a full /dev/shm fails here and not
// later with SIGBUS. The caller is side A. It sends the returned name to
// the peer over an authenticated channel; after the peer opened it either
// side calls Unlink. An error wrapping ErrUnavailable means shared memory
// cannot be used on this host: stay on TCP.
func Create(ringSize int) (*Segment, string, error) {
	if ringSize == 0 {
		ringSize = DefaultRingSize
	}
	page := os.Getpagesize()
	ctl := ctlSizeFor(page)
	if err := checkRingSize(uint64(ringSize), page); err != nil {
		return nil, "", fmt.Errorf("shm: create: %w", err)
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, "", fmt.Errorf("shm: create: random name: %w", err)
	}
	name := namePrefix + hex.EncodeToString(rnd[:])
	path := filepath.Join(dir, name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("%w: create %s: %w", ErrUnavailable, path, err)
	}
	defer unix.Close(fd)
	fail := func(what string, err error) (*Segment, string, error) {
		_ = unix.Unlink(path)
		return nil, "", fmt.Errorf("%w: %s %s: %w", ErrUnavailable, what, path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail("stat", err)
	}
	if int(st.Uid) != os.Geteuid() {
		return fail("check owner of", fmt.Errorf("owned by uid %d, not %d", st.Uid, os.Geteuid()))
	}
	if err := unix.Fchmod(fd, 0o600); err != nil { // umask could have cleared bits; never added any
		return fail("chmod", err)
	}
	size := int64(ctl) + 2*int64(ringSize)
	if err := unix.Fallocate(fd, 0, 0, size); err != nil {
		return fail("allocate", err)
	}
	s := &Segment{name: name}
	if err := s.mapFile(fd, ctl, ringSize, SideA); err != nil {
		return fail("map", err)
	}
	putHeader(s.ctl, ctl, ringSize)
	return s, name, nil
}

// Open opens the segment the peer created and sent the name of, as side B.
// It refuses (ErrBadSegment) a name that is not one Create makes, a file
// that is not a regular file owned by this user with mode 0600, and a
// header of another magic, version or size.
func Open(name string) (*Segment, error) {
	if !validName(name) {
		return nil, fmt.Errorf("%w: name %q", ErrBadSegment, name)
	}
	path := filepath.Join(dir, name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrBadSegment, path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: %s is not a regular file (mode %#o)", ErrBadSegment, path, st.Mode)
	}
	if int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not %d", ErrBadSegment, path, st.Uid, os.Geteuid())
	}
	if st.Mode&0o7777 != 0o600 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want 0600", ErrBadSegment, path, st.Mode&0o7777)
	}
	page := os.Getpagesize()
	ctl := ctlSizeFor(page)
	var hb [headerLen]byte
	if n, err := unix.Pread(fd, hb[:], 0); err != nil || n != headerLen {
		return nil, fmt.Errorf("%w: read header of %s: %d bytes, %v", ErrBadSegment, path, n, err)
	}
	h, err := parseHeader(hb[:], ctl, st.Size)
	if err != nil {
		return nil, fmt.Errorf("shm: open %s: %w", path, err)
	}
	s := &Segment{name: name}
	if err := s.mapFile(fd, h.ctlSize, h.ringSize, SideB); err != nil {
		return nil, fmt.Errorf("shm: map %s: %w", path, err)
	}
	// The header may have changed since it was read: check the mapped copy.
	if _, err := parseHeader(s.ctl[:headerLen], ctl, st.Size); err != nil || binaryRingSize(s.ctl) != h.ringSize {
		s.unmap()
		return nil, fmt.Errorf("shm: open %s: header changed under us: %w", path, ErrBadSegment)
	}
	return s, nil
}

func binaryRingSize(ctl []byte) int { return int(*word64(ctl, offRingSize)) }

func validName(name string) bool {
	hexPart, ok := strings.CutPrefix(name, namePrefix)
	if !ok || len(hexPart) != 32 {
		return false
	}
	for _, c := range hexPart {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// mapFile maps the file as [ctl][ring0][ring0 again][ring1][ring1 again]:
// each ring is mapped twice back to back so that any run of up to
// ringSize bytes starting inside the first copy is contiguous.
func (s *Segment) mapFile(fd, ctl, ringSize int, side Side) error {
	total := uintptr(ctl) + 4*uintptr(ringSize)
	base, err := unix.MmapPtr(-1, 0, nil, total, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return fmt.Errorf("reserve %d bytes: %w", total, err)
	}
	place := func(vaddr uintptr, fileOff int64, length int) error {
		_, err := unix.MmapPtr(fd, fileOff, unsafe.Add(base, vaddr), uintptr(length),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED)
		return err
	}
	if err := place(0, 0, ctl); err != nil {
		_ = unix.MunmapPtr(base, total)
		return err
	}
	for i := 0; i < 2; i++ {
		v := uintptr(ctl) + uintptr(i)*2*uintptr(ringSize)
		f := int64(ctl) + int64(i)*int64(ringSize)
		if err := place(v, f, ringSize); err != nil {
			_ = unix.MunmapPtr(base, total)
			return err
		}
		if err := place(v+uintptr(ringSize), f, ringSize); err != nil {
			_ = unix.MunmapPtr(base, total)
			return err
		}
	}
	s.attach(unsafe.Slice((*byte)(base), total), ctl, ringSize, side)
	return nil
}

func (s *Segment) unmap() {
	if s.mem != nil {
		_ = unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(s.mem)), uintptr(len(s.mem)))
		s.mem, s.ctl = nil, nil
	}
}

// Unlink removes the segment's name from /dev/shm; the memory lives on
// while either side has it mapped. Call it once both sides opened (either
// side; a second call is a no-op), or after a failed setup so that nothing
// is left behind.
func (s *Segment) Unlink() error {
	err := unix.Unlink(filepath.Join(dir, s.name))
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("shm: unlink %s: %w", s.name, err)
	}
	return nil
}

// Close marks this end closed (the peer's writer then gets ErrPeerClosed
// and its reader io.EOF after the last byte), wakes every waiter on the
// segment on both sides, waits for this process's calls in progress to
// return (within ~20 ms) and unmaps. Slices from Peek are invalid after
// it. A second Close is a no-op. It does not unlink, and it cannot wake a
// peer reader parked outside the ring (on its socket): the engine's close
// of the TCP connection does that.
func (s *Segment) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.markClosed()
	s.w.mu.Lock()
	s.r.mu.Lock()
	s.unmap()
	s.r.mu.Unlock()
	s.w.mu.Unlock()
	return nil
}

const (
	futexOpWait = 0 // FUTEX_WAIT, not FUTEX_PRIVATE: the word is shared between processes
	futexOpWake = 1 // FUTEX_WAKE
)

// futexWait sleeps while *addr == val, at most d. Spurious returns are
// fine: every caller re-checks.
func futexWait(addr *uint32, val uint32, d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexOpWait, uintptr(val),
		uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// futexWake wakes every waiter on addr (there is at most one per word).
func futexWake(addr *uint32) {
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexOpWake, 1<<30, 0, 0, 0)
}

// osYield gives the CPU to another runnable thread on it, such as the peer
// when both share one CPU; while the peer runs elsewhere it costs one
// cheap system call.
func osYield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
