package uffd

import "errors"

var (
	// ErrNotSupported is returned on platforms without userfaultfd support.
	ErrNotSupported = errors.New("uffd: userfaultfd not supported on this platform")
	// ErrExist is returned by Copy when the destination page is already
	// populated (EEXIST): another install won the race, so the fault is
	// served. Copy does not wake waiters in that case; call Wake.
	ErrExist = errors.New("uffd: page already populated")
	// ErrClosed is returned by operations on a closed FD.
	ErrClosed = errors.New("uffd: descriptor closed")
)

// Register modes (UFFDIO_REGISTER_MODE_*).
const (
	ModeMissing uint64 = 1 << 0
	ModeWP      uint64 = 1 << 1
	ModeMinor   uint64 = 1 << 2
)

// API features (UFFD_FEATURE_*), requested with FD.API.
const (
	FeaturePagefaultFlagWP  uint64 = 1 << 0
	FeatureEventFork        uint64 = 1 << 1
	FeatureEventRemap       uint64 = 1 << 2
	FeatureEventRemove      uint64 = 1 << 3
	FeatureMissingHugetlbfs uint64 = 1 << 4
	FeatureMissingShmem     uint64 = 1 << 5
	FeatureEventUnmap       uint64 = 1 << 6
	FeatureSigbus           uint64 = 1 << 7
	FeatureThreadID         uint64 = 1 << 8
	FeatureMinorHugetlbfs   uint64 = 1 << 9
	FeatureMinorShmem       uint64 = 1 << 10
	FeatureExactAddress     uint64 = 1 << 11
	FeatureWPHugetlbfsShmem uint64 = 1 << 12
	FeatureWPUnpopulated    uint64 = 1 << 13
	FeaturePoison           uint64 = 1 << 14
	FeatureWPAsync          uint64 = 1 << 15
	FeatureMove             uint64 = 1 << 16
)

// Bits of the ioctl mask returned by Register (1 << _UFFDIO_*): the range
// operations the kernel allows on the registered range.
const (
	IoctlWake         uint64 = 1 << 0x02
	IoctlCopy         uint64 = 1 << 0x03
	IoctlZeropage     uint64 = 1 << 0x04
	IoctlWriteProtect uint64 = 1 << 0x06
	IoctlContinue     uint64 = 1 << 0x07
)

// Message events (UFFD_EVENT_*).
const (
	EventPagefault uint8 = 0x12
	EventFork      uint8 = 0x13
	EventRemap     uint8 = 0x14
	EventRemove    uint8 = 0x15
	EventUnmap     uint8 = 0x16
)

// Page-fault flags (UFFD_PAGEFAULT_FLAG_*).
const (
	FlagWrite uint64 = 1 << 0
	FlagWP    uint64 = 1 << 1
	FlagMinor uint64 = 1 << 2
)

// Msg is a decoded uffd_msg. For EventPagefault, Flags and Address come
// from the pagefault member of the union; Address is page-aligned unless
// FeatureExactAddress was negotiated.
type Msg struct {
	Event   uint8
	Flags   uint64
	Address uint64
}

// IsWrite reports whether the fault was a write access.
func (m Msg) IsWrite() bool { return m.Flags&FlagWrite != 0 }

// IsWP reports whether the fault was caused by write protection on a
// present page (as opposed to a missing page).
func (m Msg) IsWP() bool { return m.Flags&FlagWP != 0 }
