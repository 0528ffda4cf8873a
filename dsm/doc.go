// Package dsm is the job's shared memory: one region, the same size and
// offsets on every rank, whose pages move between ranks on page faults and
// are kept sequentially consistent per page (single writer, multiple
// readers, invalidation based, the page's home rank p % size serialising
// requests for it; the protocol is internal/coherence).
//
// Usage (the Memory comes from rank.World.Memory):
//
//	m := w.Memory()
//	v := dsm.Slice[float64](m, 0, n)   // plain loads and stores (userfaultfd backend)
//	a, err := dsm.Alloc[float64](m, n) // or let a bump allocator place it
//	m.AddInt64(off, 1)                 // accessors: every backend
//	mu := m.Mutex(3)                   // a job-wide lock, FIFO at rank 3 % size
//	mu.Lock(); v[0]++; mu.Unlock()
//	st := m.Stats()                    // faults, pages and bytes moved, invalidations
//	m.ResetStats()                     // zero them, to measure one phase
//
// Two fault backends: userfaultfd (default; faults served by a page server
// process, the same binary re-executed) makes plain loads, stores and
// sync/atomic on Bytes() transparent; mprotect + SIGSEGV
// (DSMEXEC_FAULT=sigsegv, or where userfaultfd is not permitted) serves
// only the accessor methods, which turn the fault into a recovered panic,
// fetch the page and retry.
//
// Alloc hands the region out from the top down, page-aligned, the same
// offsets on every rank that makes the same calls in the same order; the
// bytes below its lowest allocation are free for data placed at fixed
// offsets. AllocDigest summarises the sequence of calls so that the rank
// layer can detect ranks that allocated differently.
//
// The region is at most MaxRegion (16 TiB) bytes: the protocol names a
// page with 32 bits.
package dsm
