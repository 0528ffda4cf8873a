//go:build linux

package pagemem

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ProtectOps implements PageOps in-process for the mprotect + SIGSEGV
// backend. The application view's protections follow the page states
// (PROT_NONE, PROT_READ, PROT_READ|PROT_WRITE); a second MAP_SHARED
// mapping of the memfd, the service view, is always readable and writable
// and is the only one the driver touches, so the driver never faults.
// Application code reaches the view through Access and retries after the
// driver made the page accessible.
type ProtectOps struct {
	r   *Region
	svc []byte

	closeOnce sync.Once
	closeErr  error
}

var _ PageOps = (*ProtectOps)(nil)

// NewProtectOps maps the service view of r and makes every page of the
// application view inaccessible (the state after NewRegion in the uffd
// backend too: nothing installed).
func NewProtectOps(r *Region) (*ProtectOps, error) {
	svc, err := mapShared(r.memfd, len(r.mem))
	if err != nil {
		return nil, err
	}
	if err := unix.Mprotect(r.mem, unix.PROT_NONE); err != nil {
		unix.Munmap(svc)
		return nil, fmt.Errorf("pagemem: protect region: %w", os.NewSyscallError("mprotect", err))
	}
	return &ProtectOps{r: r, svc: svc}, nil
}

// Service returns the always-accessible service view.
func (o *ProtectOps) Service() []byte { return o.svc }

func (o *ProtectOps) page(op string, p int) (app, svc []byte, err error) {
	if p < 0 || p >= o.r.Pages() {
		return nil, nil, fmt.Errorf("pagemem: %s page %d: out of range [0, %d)", op, p, o.r.Pages())
	}
	ps := o.r.pageSize
	return o.r.mem[p*ps : (p+1)*ps], o.svc[p*ps : (p+1)*ps], nil
}

func mprotect(op string, p int, b []byte, prot int) error {
	if err := unix.Mprotect(b, prot); err != nil {
		return fmt.Errorf("pagemem: %s page %d: %w", op, p, os.NewSyscallError("mprotect", err))
	}
	return nil
}

func prot(writable bool) int {
	if writable {
		return unix.PROT_READ | unix.PROT_WRITE
	}
	return unix.PROT_READ
}

// Fill implements PageOps: the data is written through the service view
// before the application view is opened, so the application never sees a
// partial page. Unlike the uffd backend it overwrites an installed page.
func (o *ProtectOps) Fill(p int, data []byte, writable bool) error {
	app, svc, err := o.page("fill", p)
	if err != nil {
		return err
	}
	switch {
	case data == nil:
		clear(svc)
	case len(data) != len(svc):
		return fmt.Errorf("pagemem: fill page %d: %d bytes of data, want %d", p, len(data), len(svc))
	default:
		copy(svc, data)
	}
	return mprotect("fill", p, app, prot(writable))
}

// Protect implements PageOps.
func (o *ProtectOps) Protect(p int, writable bool) error {
	app, _, err := o.page("protect", p)
	if err != nil {
		return err
	}
	return mprotect("protect", p, app, prot(writable))
}

// Drop implements PageOps: PROT_NONE, then a punched hole to give the
// memory back.
func (o *ProtectOps) Drop(p int) error {
	app, _, err := o.page("drop", p)
	if err != nil {
		return err
	}
	if err := mprotect("drop", p, app, unix.PROT_NONE); err != nil {
		return err
	}
	ps := int64(o.r.pageSize)
	if err := punchHole(o.r.memfd, int64(p)*ps, ps); err != nil {
		return fmt.Errorf("pagemem: drop page %d: %w", p, err)
	}
	return nil
}

// Read implements PageOps with pread on the memfd: reading a hole through
// a shmem mapping would allocate a page, pread returns zeros.
func (o *ProtectOps) Read(p int, buf []byte) error {
	_, svc, err := o.page("read", p)
	if err != nil {
		return err
	}
	if len(buf) < len(svc) {
		return fmt.Errorf("pagemem: read page %d: buffer of %d bytes, want %d", p, len(buf), len(svc))
	}
	if _, err := o.r.memfd.ReadAt(buf[:len(svc)], int64(p)*int64(len(svc))); err != nil {
		return fmt.Errorf("pagemem: read page %d: %w", p, err)
	}
	return nil
}

// Wake implements PageOps; nothing waits in the kernel in this backend
// (the accessor that faulted waits for the driver), so it only checks p.
func (o *ProtectOps) Wake(p int) error {
	_, _, err := o.page("wake", p)
	return err
}

// Close unmaps the service view (not the region). Closing twice returns
// the first result.
func (o *ProtectOps) Close() error {
	o.closeOnce.Do(func() {
		if err := unix.Munmap(o.svc); err != nil {
			o.closeErr = fmt.Errorf("pagemem: unmap service view: %w", os.NewSyscallError("munmap", err))
		}
	})
	return o.closeErr
}
