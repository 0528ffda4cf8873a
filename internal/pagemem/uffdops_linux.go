//go:build linux

package pagemem

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/internal/uffd"
)

// UffdOps implements PageOps in the pager process for a region registered
// with userfaultfd by the application process. It never maps the region:
// it installs pages with UFFDIO_COPY into the application's address
// space, changes write protection with UFFDIO_WRITEPROTECT, reads
// contents with pread on the memfd and drops pages by punching holes in
// the memfd.
type UffdOps struct {
	memfd    *os.File
	u        *uffd.FD
	base     uintptr
	pages    int
	pageSize int
	zero     []byte

	exists atomic.Uint64 // Fills that found the page installed (EEXIST)
}

var _ PageOps = (*UffdOps)(nil)

// NewUffdOps returns the page operations for a region of size bytes at
// base in the application process, backed by memfd and registered with u.
// It does not take ownership of memfd or u.
func NewUffdOps(memfd *os.File, u *uffd.FD, base uintptr, size, pageSize int) *UffdOps {
	if pageSize <= 0 || size%pageSize != 0 || base%uintptr(pageSize) != 0 {
		panic(fmt.Sprintf("pagemem: NewUffdOps: base %#x size %d not aligned to page size %d", base, size, pageSize))
	}
	return &UffdOps{memfd: memfd, u: u, base: base, pages: size / pageSize, pageSize: pageSize, zero: make([]byte, pageSize)}
}

func (o *UffdOps) addr(op string, p int) (uintptr, error) {
	if p < 0 || p >= o.pages {
		return 0, fmt.Errorf("pagemem: %s page %d: out of range [0, %d)", op, p, o.pages)
	}
	return o.base + uintptr(p)*uintptr(o.pageSize), nil
}

// Fill implements PageOps. Zeros are copied from a zero buffer too:
// UFFDIO_ZEROPAGE (which shmem accepts on Linux 6.18) has no
// write-protect mode, and protecting after installing would leave a window
// in which the application could write a page meant to be read-only.
func (o *UffdOps) Fill(p int, data []byte, writable bool) error {
	a, err := o.addr("fill", p)
	if err != nil {
		return err
	}
	if data == nil {
		data = o.zero
	}
	if len(data) != o.pageSize {
		return fmt.Errorf("pagemem: fill page %d: %d bytes of data, want %d", p, len(data), o.pageSize)
	}
	err = o.u.Copy(a, data, !writable)
	if errors.Is(err, uffd.ErrExist) {
		// Already installed: COPY woke nobody, and a thread may be waiting
		// on a message for this page that the caller is now answering.
		o.exists.Add(1)
		err = o.u.Wake(a, uintptr(o.pageSize))
	}
	if err != nil {
		return fmt.Errorf("pagemem: fill page %d: %w", p, err)
	}
	return nil
}

// Protect implements PageOps.
func (o *UffdOps) Protect(p int, writable bool) error {
	a, err := o.addr("protect", p)
	if err != nil {
		return err
	}
	if err := o.u.WriteProtect(a, uintptr(o.pageSize), !writable); err != nil {
		return fmt.Errorf("pagemem: protect page %d: %w", p, err)
	}
	return nil
}

// Drop implements PageOps by punching a hole in the memfd, which unmaps
// the page from the application; a write-protected page leaves a uffd-wp
// marker, and the next access to either still raises a missing fault.
func (o *UffdOps) Drop(p int) error {
	if _, err := o.addr("drop", p); err != nil {
		return err
	}
	if err := punchHole(o.memfd, int64(p)*int64(o.pageSize), int64(o.pageSize)); err != nil {
		return fmt.Errorf("pagemem: drop page %d: %w", p, err)
	}
	return nil
}

// Read implements PageOps with pread on the memfd; a hole reads as zeros
// without allocating.
func (o *UffdOps) Read(p int, buf []byte) error {
	if _, err := o.addr("read", p); err != nil {
		return err
	}
	if len(buf) < o.pageSize {
		return fmt.Errorf("pagemem: read page %d: buffer of %d bytes, want %d", p, len(buf), o.pageSize)
	}
	if _, err := o.memfd.ReadAt(buf[:o.pageSize], int64(p)*int64(o.pageSize)); err != nil {
		return fmt.Errorf("pagemem: read page %d: %w", p, err)
	}
	return nil
}

// Wake implements PageOps.
func (o *UffdOps) Wake(p int) error {
	a, err := o.addr("wake", p)
	if err != nil {
		return err
	}
	if err := o.u.Wake(a, uintptr(o.pageSize)); err != nil {
		return fmt.Errorf("pagemem: wake page %d: %w", p, err)
	}
	return nil
}

// ReadFaults reads fault messages from u (which must be non-blocking, as
// uffd.FromFile makes it, or cancelling ctx cannot interrupt the wait) and
// sends one Fault per message to out until ctx
// is done or reading fails; it returns ctx.Err() or the read error and
// does not close out. base and pageSize describe the registered region.
// Several messages for the same page are normal: every faulting thread
// sends one, and a thread interrupted by a signal (Go's preemption
// signal, for one) faults, and sends, again.
func ReadFaults(ctx context.Context, u *uffd.FD, base uintptr, pageSize int, handle func(Fault)) error {
	if err := u.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("pagemem: read faults: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { u.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	msgs := make([]uffd.Msg, 64)
	for {
		n, err := u.ReadMsgs(msgs)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pagemem: read faults: %w", err)
		}
		for _, m := range msgs[:n] {
			if m.Event != uffd.EventPagefault {
				return fmt.Errorf("pagemem: read faults: unexpected userfaultfd event %#x", m.Event)
			}
			if m.Address < uint64(base) {
				panic(fmt.Sprintf("pagemem: fault at %#x below the region at %#x", m.Address, base))
			}
			handle(Fault{Page: int((m.Address - uint64(base)) / uint64(pageSize)), Write: m.IsWrite(), WP: m.IsWP()})
		}
	}
}
