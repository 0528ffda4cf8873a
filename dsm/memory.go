package dsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/dsmexec/dsmexec/internal/dsmhook"
	"github.com/dsmexec/dsmexec/internal/units"
)

// config describes the region a rank joins (rank fills it in, through
// internal/dsmhook).
type config = dsmhook.Config

func init() {
	dsmhook.New = func(cfg dsmhook.Config) (any, error) { return newMemory(cfg) }
	dsmhook.Endpoint = func(m any) string { return m.(*Memory).endpoint() }
	dsmhook.Connect = func(m any, ctx context.Context, addrs []string) error {
		return m.(*Memory).connect(ctx, addrs)
	}
}

// MaxRegion is the largest shared region, in bytes: 16 TiB. The coherence
// protocol names a page with 32 bits on the wire, which is 2^32 pages of
// 4 KiB; the region is refused when larger (mpirun refuses it before starting
// anything), rather than letting pages 2^32 and up alias lower ones.
const MaxRegion = units.MaxRegion

// maxPages is how many pages the protocol can name.
const maxPages = 1 << 32

// Errors.
var (
	ErrClosed = errors.New("dsm: memory is closed")
	ErrRange  = errors.New("dsm: offset out of range")
)

// Memory is the job's shared region as this rank sees it.
type Memory struct {
	cfg      config
	pageSize int
	data     []byte // the application's view
	backend  string

	impl impl

	mutexMu sync.Mutex
	mutexes map[int]*Mutex

	// Alloc's bump pointer (offset of the lowest allocation) and the
	// digest of the calls so far.
	allocMu    sync.Mutex
	allocInit  bool
	allocTop   int64
	allocSum   uint64
	allocCalls int

	closeOnce sync.Once
	closeErr  error

	trace memTrace // lock times, the rank's recorder (trace.go)
}

// impl is what a backend provides behind Memory.
type impl interface {
	endpoint() string
	connect(addrs []string, deadline time.Time) error
	lock(id int) error
	unlock(id int) error
	stats() Stats
	resetStats()
	close() error
}

// PageSize is the region's page size (the OS page size).
func (m *Memory) PageSize() int { return m.pageSize }

// Len is the region's size in bytes.
func (m *Memory) Len() int { return len(m.data) }

// Home is the rank that serves as directory for page p: p % size.
func (m *Memory) Home(page int) int { return page % m.cfg.Size }

// Bytes is the whole region. The same offset names the same shared byte on
// every rank. Plain loads and stores on it are coherent with the userfaultfd
// backend; with the sigsegv backend use the accessor methods.
func (m *Memory) Bytes() []byte { return m.data }

// Backend names the fault backend: "uffd", "sigsegv" or "local".
func (m *Memory) Backend() string { return m.backend }

// endpoint is the address this rank's memory service listens on.
func (m *Memory) endpoint() string {
	if m.impl == nil {
		return ""
	}
	return m.impl.endpoint()
}

// Slice is a typed view of n elements of type T at byte offset off.
func Slice[T any](m *Memory, off, n int) []T {
	var z T
	sz := int(unsafe.Sizeof(z))
	if off < 0 || n < 0 || off+n*sz > len(m.data) {
		panic(fmt.Sprintf("dsm: Slice(off=%d, n=%d) of %d-byte elements outside a %d-byte region", off, n, sz, len(m.data)))
	}
	if n == 0 {
		return nil
	}
	if al := int(unsafe.Alignof(z)); off%al != 0 {
		panic(fmt.Sprintf("dsm: Slice offset %d is not aligned to %d", off, al))
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&m.data[off])), n)
}
