package pagemem

import "errors"

// ErrNotSupported is returned on platforms without memfd, mmap and
// userfaultfd.
var ErrNotSupported = errors.New("pagemem: not supported on this platform")

// PageOps changes what the application can do with one page of a region.
// A fault backend implements it; the DSM driver calls it from a single
// goroutine. Page numbers count from the start of the region.
type PageOps interface {
	// Fill installs data (exactly one page; nil means zeros) as the
	// contents of a page that is not accessible, read-only or writable,
	// and wakes the threads waiting for it. Filling a page that is already
	// installed (a second fault for the same page raced with the first
	// install) leaves its contents and protection alone and only wakes.
	Fill(p int, data []byte, writable bool) error
	// Protect allows (writable) or forbids writes to an installed page;
	// allowing also wakes the threads waiting on the page.
	Protect(p int, writable bool) error
	// Drop revokes all access and discards the contents; the next access
	// faults as missing. Threads already waiting on p keep waiting until
	// the next Fill, Protect(p, true) or Wake of p.
	Drop(p int) error
	// Read copies the current contents of the page into buf[:pageSize];
	// it never faults and never allocates memory for a page that was
	// never filled (it reads zeros).
	Read(p int, buf []byte) error
	// Wake wakes the threads waiting on p: use it when a fault arrives for
	// a page that is already accessible enough.
	Wake(p int) error
}

// Fault is one page fault reported to the pager.
type Fault struct {
	Page  int
	Write bool // the access was a write
	WP    bool // the page was present but write-protected (else: missing)
}
