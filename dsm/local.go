package dsm

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// newMemory creates this rank's view of the region. With Size 1 it is
// plain local memory; otherwise it prepares the fault backend and a
// listener for peers (endpoint), and connect joins the other ranks.
func newMemory(cfg config) (*Memory, error) {
	ps := os.Getpagesize()
	if cfg.Bytes < 0 {
		return nil, fmt.Errorf("dsm: region size %d: must not be negative", cfg.Bytes)
	}
	if cfg.Bytes > MaxRegion {
		return nil, fmt.Errorf("dsm: region size %d bytes is over the maximum of %d bytes (16 TiB): the protocol numbers pages with 32 bits", cfg.Bytes, MaxRegion)
	}
	n := (cfg.Bytes + int64(ps) - 1) / int64(ps) * int64(ps)
	if n/int64(ps) > maxPages {
		return nil, fmt.Errorf("dsm: region of %d pages of %d bytes is over the %d pages the protocol can name", n/int64(ps), ps, int64(maxPages))
	}
	m := &Memory{cfg: cfg, pageSize: ps, mutexes: map[int]*Mutex{}}
	if n == 0 {
		// No shared region (mpirun -dsm-size 0): messages only, no page
		// server. Mutex still works, as a lock local to this rank only.
		m.backend = "none"
		m.impl = &localImpl{locks: map[int]*sync.Mutex{}}
		return m, nil
	}
	if cfg.Size == 1 {
		data, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("dsm: map %d bytes: %w", n, err)
		}
		m.data = data
		m.backend = "local"
		m.impl = &localImpl{data: data, locks: map[int]*sync.Mutex{}}
		return m, nil
	}
	return newShared(m, n)
}

// connect joins the other ranks' memory services, given every rank's
// endpoint. It returns when this rank serves and can fault.
func (m *Memory) connect(ctx context.Context, addrs []string) error {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(time.Minute)
	}
	return m.impl.connect(addrs, d)
}

// Stats returns this rank's counters.
func (m *Memory) Stats() Stats { return m.impl.stats() }

// ResetStats zeroes this rank's counters, so that a program can measure
// one phase: call it (on every rank, typically after a Barrier) before the
// phase and read Stats after it. The summary mpirun prints at the end
// shows the counters since the last reset.
func (m *Memory) ResetStats() { m.impl.resetStats() }

// Close stops serving and unmaps the region. Finalize calls it after a
// barrier, so no rank needs a page from this one any more.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		m.closeErr = m.impl.close()
	})
	return m.closeErr
}

// localImpl is the singleton world's memory.
type localImpl struct {
	data  []byte
	mu    sync.Mutex
	locks map[int]*sync.Mutex
}

func (l *localImpl) endpoint() string                  { return "" }
func (l *localImpl) connect([]string, time.Time) error { return nil }
func (l *localImpl) stats() Stats                      { return Stats{} }
func (l *localImpl) resetStats()                       {}
func (l *localImpl) close() error {
	if l.data == nil {
		return nil
	}
	return unix.Munmap(l.data)
}
func (l *localImpl) lock(id int) error   { l.get(id).Lock(); return nil }
func (l *localImpl) unlock(id int) error { l.get(id).Unlock(); return nil }
func (l *localImpl) get(id int) *sync.Mutex {
	l.mu.Lock()
	defer l.mu.Unlock()
	mu := l.locks[id]
	if mu == nil {
		mu = new(sync.Mutex)
		l.locks[id] = mu
	}
	return mu
}
