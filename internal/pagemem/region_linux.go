//go:build linux

package pagemem

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/dsmexec/dsmexec/internal/uffd"
	"golang.org/x/sys/unix"
)

// UffdFeatures are the userfaultfd features the uffd backend needs:
// missing faults on shmem (Linux 4.11) and write protection on shmem
// (Linux 5.19). The kernel treats them as availability bits (registering
// works whether or not they were requested); requesting them makes a
// kernel that lacks one fail the handshake with EINVAL, early and clearly.
const UffdFeatures = uffd.FeatureMissingShmem | uffd.FeatureWPHugetlbfsShmem

// Region is a memfd-backed shared region and the application's view of it.
type Region struct {
	memfd    *os.File
	mem      []byte
	pageSize int

	closeOnce sync.Once
	closeErr  error
}

// NewRegion creates a memfd of size bytes, rounded up to the page size, and
// maps it MAP_SHARED|MAP_NORESERVE, readable and writable, as the
// application view. Nothing is allocated until a page is filled: the file
// is sparse and never-touched pages cost no memory.
func NewRegion(size int) (*Region, error) {
	ps := os.Getpagesize()
	if size <= 0 {
		return nil, fmt.Errorf("pagemem: region size %d is not positive", size)
	}
	size = (size + ps - 1) / ps * ps
	fd, err := unix.MemfdCreate("dsmexec-region", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("pagemem: create region: %w", os.NewSyscallError("memfd_create", err))
	}
	memfd := os.NewFile(uintptr(fd), "memfd:dsmexec-region")
	if err := memfd.Truncate(int64(size)); err != nil {
		memfd.Close()
		return nil, fmt.Errorf("pagemem: size region to %d bytes: %w", size, err)
	}
	mem, err := mapShared(memfd, size)
	if err != nil {
		memfd.Close()
		return nil, err
	}
	return &Region{memfd: memfd, mem: mem, pageSize: ps}, nil
}

func mapShared(memfd *os.File, size int) ([]byte, error) {
	mem, err := unix.Mmap(int(memfd.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("pagemem: map %d bytes: %w", size, os.NewSyscallError("mmap", err))
	}
	return mem, nil
}

// Bytes returns the application view. Accessing it after Close crashes.
func (r *Region) Bytes() []byte { return r.mem }

// Base returns the address of the application view.
func (r *Region) Base() uintptr { return uintptr(unsafe.Pointer(&r.mem[0])) }

// Size returns the size in bytes, a multiple of the page size.
func (r *Region) Size() int { return len(r.mem) }

// PageSize returns the page size (os.Getpagesize).
func (r *Region) PageSize() int { return r.pageSize }

// Pages returns the number of pages.
func (r *Region) Pages() int { return len(r.mem) / r.pageSize }

// File returns the memfd, to hand to a pager process.
func (r *Region) File() *os.File { return r.memfd }

// PageOf returns the page holding addr, and false if addr is outside the
// application view.
func (r *Region) PageOf(addr uintptr) (int, bool) {
	base := r.Base()
	if addr < base || addr-base >= uintptr(len(r.mem)) {
		return 0, false
	}
	return int((addr - base) / uintptr(r.pageSize)), true
}

// RegisterUffd creates a userfaultfd for this process (falling back to
// UFFD_USER_MODE_ONLY when unprivileged), negotiates UffdFeatures and
// registers the application view for missing and write-protect faults.
// The caller hands the descriptor to the pager (exec.Cmd.ExtraFiles) and
// then closes its own copy, so that the kernel releases every waiting
// thread if the pager dies instead of leaving them blocked forever.
func (r *Region) RegisterUffd() (*uffd.FD, error) {
	u, err := uffd.New(false)
	if err != nil {
		return nil, fmt.Errorf("pagemem: %w", err)
	}
	if _, err := u.API(UffdFeatures); err != nil {
		u.Close()
		return nil, fmt.Errorf("pagemem: %w", err)
	}
	ioctls, err := u.Register(r.Base(), uintptr(len(r.mem)), uffd.ModeMissing|uffd.ModeWP)
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("pagemem: %w", err)
	}
	if need := uffd.IoctlCopy | uffd.IoctlWake | uffd.IoctlWriteProtect; ioctls&need != need {
		u.Close()
		return nil, fmt.Errorf("pagemem: registered region allows ioctls %#x, need %#x", ioctls, need)
	}
	return u, nil
}

// Close unmaps the application view and closes the memfd. Closing twice
// returns the first result.
func (r *Region) Close() error {
	r.closeOnce.Do(func() {
		if err := unix.Munmap(r.mem); err != nil {
			r.closeErr = fmt.Errorf("pagemem: unmap region: %w", os.NewSyscallError("munmap", err))
		}
		if err := r.memfd.Close(); err != nil && r.closeErr == nil {
			r.closeErr = fmt.Errorf("pagemem: close region: %w", err)
		}
	})
	return r.closeErr
}

// punchHole discards [off, off+length) of memfd: it reads as zeros
// and, in a missing-registered mapping, fault again on next access.
func punchHole(memfd *os.File, off, length int64) error {
	if err := unix.Fallocate(int(memfd.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length); err != nil {
		return os.NewSyscallError("fallocate", err)
	}
	return nil
}
