//go:build !linux

package pagemem

import (
	"context"
	"os"

	"github.com/dsmexec/dsmexec/internal/uffd"
)

// UffdFeatures are the userfaultfd features the uffd backend negotiates.
const UffdFeatures = uffd.FeatureMissingShmem | uffd.FeatureWPHugetlbfsShmem

// Region is a shared region; none can be created on this platform.
type Region struct{}

// NewRegion returns ErrNotSupported on this platform.
func NewRegion(size int) (*Region, error) { return nil, ErrNotSupported }

func (r *Region) Bytes() []byte                   { return nil }
func (r *Region) Base() uintptr                   { return 0 }
func (r *Region) Size() int                       { return 0 }
func (r *Region) PageSize() int                   { return os.Getpagesize() }
func (r *Region) Pages() int                      { return 0 }
func (r *Region) File() *os.File                  { return nil }
func (r *Region) PageOf(addr uintptr) (int, bool) { return 0, false }
func (r *Region) RegisterUffd() (*uffd.FD, error) { return nil, ErrNotSupported }
func (r *Region) Close() error                    { return ErrNotSupported }

// UffdOps implements PageOps with userfaultfd; not on this platform.
type UffdOps struct{}

var _ PageOps = (*UffdOps)(nil)

// NewUffdOps returns operations that all fail with ErrNotSupported.
func NewUffdOps(memfd *os.File, u *uffd.FD, base uintptr, size, pageSize int) *UffdOps {
	return &UffdOps{}
}

func (o *UffdOps) Fill(p int, data []byte, writable bool) error { return ErrNotSupported }
func (o *UffdOps) Protect(p int, writable bool) error           { return ErrNotSupported }
func (o *UffdOps) Drop(p int) error                             { return ErrNotSupported }
func (o *UffdOps) Read(p int, buf []byte) error                 { return ErrNotSupported }
func (o *UffdOps) Wake(p int) error                             { return ErrNotSupported }

// ReadFaults returns ErrNotSupported on this platform.
func ReadFaults(ctx context.Context, u *uffd.FD, base uintptr, pageSize int, handle func(Fault)) error {
	return ErrNotSupported
}

// ProtectOps implements PageOps with mprotect; not on this platform.
type ProtectOps struct{}

var _ PageOps = (*ProtectOps)(nil)

// NewProtectOps returns ErrNotSupported on this platform.
func NewProtectOps(r *Region) (*ProtectOps, error) { return nil, ErrNotSupported }

func (o *ProtectOps) Service() []byte                              { return nil }
func (o *ProtectOps) Fill(p int, data []byte, writable bool) error { return ErrNotSupported }
func (o *ProtectOps) Protect(p int, writable bool) error           { return ErrNotSupported }
func (o *ProtectOps) Drop(p int) error                             { return ErrNotSupported }
func (o *ProtectOps) Read(p int, buf []byte) error                 { return ErrNotSupported }
func (o *ProtectOps) Wake(p int) error                             { return ErrNotSupported }
func (o *ProtectOps) Close() error                                 { return ErrNotSupported }
