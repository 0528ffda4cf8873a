// Package dsmhook is how package rank creates and connects the shared
// region without package dsm exporting that plumbing to programs: dsm fills
// in the functions at init, rank calls them. Programs get their region from
// rank.Init (w.Memory()); nothing here is for them.
package dsmhook

import "context"

// Config describes the region a rank joins.
type Config struct {
	Rank, Size int
	Bytes      int64  // region size; rounded up to whole pages
	Token      []byte // job secret, for the memory's own connections
	IP         string // address to listen on for peers
	Backend    string // "uffd", "sigsegv" or "" (DSMEXEC_FAULT, then the best available)
	Logf       func(format string, args ...any)
}

// Set by package dsm's init. The any values are *dsm.Memory.
var (
	// New creates this rank's view of the region (and, with Size > 1, its
	// fault backend and a listener for peers).
	New func(cfg Config) (any, error)
	// Endpoint is the address the region's memory service listens on.
	Endpoint func(m any) string
	// Connect joins the other ranks' memory services, given every rank's
	// Endpoint; it returns when this rank serves and can fault.
	Connect func(m any, ctx context.Context, addrs []string) error
)

// Fatal, set by rank, is called by dsm just before it ends the process
// because the shared memory cannot be served: lost is the rank whose loss
// caused it (-1: none), msg the error; rank tells mpirun, so that the lost
// rank is blamed rather than this one.
var Fatal func(lost int, msg string)
