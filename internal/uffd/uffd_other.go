//go:build !linux || !(amd64 || arm64)

package uffd

import (
	"os"
	"time"
)

// FD is a userfaultfd descriptor; on this platform none can be created.
type FD struct{}

// New returns ErrNotSupported on this platform.
func New(nonblock bool) (*FD, error) { return nil, ErrNotSupported }

// FromFile returns ErrNotSupported on this platform.
func FromFile(f *os.File) (*FD, error) { return nil, ErrNotSupported }

// Features returns ErrNotSupported on this platform.
func Features() (uint64, error) { return 0, ErrNotSupported }

func (u *FD) UserModeOnly() bool                  { return false }
func (u *FD) File() *os.File                      { return nil }
func (u *FD) SetReadDeadline(t time.Time) error   { return ErrNotSupported }
func (u *FD) Close() error                        { return ErrNotSupported }
func (u *FD) API(features uint64) (uint64, error) { return 0, ErrNotSupported }
func (u *FD) Register(addr, length uintptr, mode uint64) (uint64, error) {
	return 0, ErrNotSupported
}
func (u *FD) Unregister(addr, length uintptr) error            { return ErrNotSupported }
func (u *FD) Copy(dst uintptr, src []byte, wp bool) error      { return ErrNotSupported }
func (u *FD) WriteProtect(addr, length uintptr, wp bool) error { return ErrNotSupported }
func (u *FD) Wake(addr, length uintptr) error                  { return ErrNotSupported }
func (u *FD) ReadMsgs(buf []Msg) (int, error)                  { return 0, ErrNotSupported }
func FromFileUnpolled(f *os.File) (*FD, error)                 { return nil, ErrNotSupported }
func (u *FD) Fd() int                                          { return -1 }
func (u *FD) TryReadMsgs(buf []Msg) (int, error)               { return 0, ErrNotSupported }
