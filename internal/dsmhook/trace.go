package dsmhook

import (
	"time"

	"github.com/dsmexec/dsmexec/internal/falseshare"
	"github.com/dsmexec/dsmexec/internal/trace"
)

// Tracing (mpirun -trace, -report-html; docs/TRACING.md). Set by package
// dsm's init; the any values are *dsm.Memory.
var (
	// SetTrace gives the memory the rank's recorder (lock waits).
	SetTrace func(m any, rec *trace.Recorder)
	// Report is the memory's page report (nil when it records none:
	// DSMEXEC_TRACE unset, or a singleton).
	Report func(m any) *PageReport
	// LockTimes is the time this rank waited in Mutex.Lock and held locks.
	LockTimes func(m any) (wait, hold time.Duration)
	// WatchLocks gives the memory a func it calls when a goroutine
	// starts waiting in Mutex.Lock (id: the lock); the func it returns
	// is called when the wait ends. The rank reports the wait to mpirun's
	// deadlock detector.
	WatchLocks func(m any, f func(id int) (end func()))
)

// PageReport is what one rank's memory recorded, shipped to mpirun at
// Finalize (JSON).
type PageReport struct {
	PageSize      int         `json:"page_size"`
	Pages         int         `json:"pages"`  // pages in the region
	Counts        []PageCount `json:"counts"` // pages with something to count
	Faults        []FaultRec  `json:"faults,omitempty"`
	Held          []Held      `json:"held,omitempty"`           // pages held, after each change
	FaultsDropped int         `json:"faults_dropped,omitempty"` // past the bound
}

// PageCount is one rank's traffic on one page.
type PageCount struct {
	Page          int64              `json:"page"`
	Faults        int64              `json:"faults"`        // faults that needed the protocol
	Moves         int64              `json:"moves"`         // copies received
	Invalidations int64              `json:"invalidations"` // copies dropped
	Grants        int64              `json:"grants"`        // write access granted (ownership changes to this rank)
	Written       []falseshare.Range `json:"written,omitempty"`
}

// FaultRec is one fault: page, access, when (UnixNano on the rank's
// host), the rank the page came from (-1: no data moved).
type FaultRec struct {
	Page       int64 `json:"page"`
	Write      bool  `json:"write"`
	Start, End int64
	From       int `json:"from"`
}

// Held is how many pages the rank held a copy of from time At (UnixNano).
type Held struct {
	At    int64 `json:"at"`
	Pages int64 `json:"pages"`
}
