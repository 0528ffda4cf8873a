package dsm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/coherence"
	"github.com/dsmexec/dsmexec/internal/pagemem"
)

// newShared prepares a multi-rank region with the backend asked for by
// cfg.Backend or DSMEXEC_FAULT, else userfaultfd, falling back to
// mprotect/SIGSEGV where userfaultfd is not permitted.
func newShared(m *Memory, n int64) (*Memory, error) {
	want := m.cfg.Backend
	if want == "" {
		want = os.Getenv("DSMEXEC_FAULT")
	}
	region, err := pagemem.NewRegion(int(n))
	if err != nil {
		return nil, fmt.Errorf("dsm: rank %d: create a %d-byte region: %w", m.cfg.Rank, n, err)
	}
	m.data = region.Bytes()
	switch want {
	case "", "uffd":
		err = newUffd(m, region)
		if err == nil {
			return m, nil
		}
		if want == "uffd" || !fallbackOK(err) {
			region.Close()
			return nil, err
		}
		m.logf("rank %d: userfaultfd is not available (%v); using the mprotect/SIGSEGV backend: only the accessor methods are coherent", m.cfg.Rank, err)
		fallthrough
	case "sigsegv":
		if err := newSigsegv(m, region); err != nil {
			region.Close()
			return nil, err
		}
		return m, nil
	}
	region.Close()
	return nil, fmt.Errorf("dsm: DSMEXEC_FAULT=%q: want uffd or sigsegv", want)
}

// fallbackOK says whether a userfaultfd failure means "not permitted or
// not supported here" (fall back) rather than a real error.
func fallbackOK(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOSYS) ||
		errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EACCES) || errors.Is(err, errNoUffd)
}

var errNoUffd = errors.New("dsm: userfaultfd unavailable")

func (m *Memory) logf(format string, args ...any) {
	if m.cfg.Logf != nil {
		m.cfg.Logf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func listen(ip string) (net.Listener, error) {
	if ip == "" {
		ip = "127.0.0.1"
	}
	return net.Listen("tcp", net.JoinHostPort(ip, "0"))
}

// sigsegvImpl runs the protocol in this process; faults are caught by the
// accessor methods.
type sigsegvImpl struct {
	m      *Memory
	region *pagemem.Region
	ops    *pagemem.ProtectOps
	ln     net.Listener
	d      *driver
}

func newSigsegv(m *Memory, region *pagemem.Region) error {
	ops, err := pagemem.NewProtectOps(region)
	if err != nil {
		return fmt.Errorf("dsm: rank %d: %w", m.cfg.Rank, err)
	}
	ln, err := listen(m.cfg.IP)
	if err != nil {
		ops.Close()
		return fmt.Errorf("dsm: rank %d: %w", m.cfg.Rank, err)
	}
	s := &sigsegvImpl{m: m, region: region, ops: ops, ln: ln}
	s.d = newDriver(m.cfg.Rank, m.cfg.Size, m.pageSize, ops, false, func(err error) { fatal(err) }, m.logf)
	m.impl = s
	m.backend = "sigsegv"
	return nil
}

func (s *sigsegvImpl) endpoint() string { return s.ln.Addr().String() }

func (s *sigsegvImpl) connect(addrs []string, deadline time.Time) error {
	return s.d.connectLazy(s.ln, addrs, s.m.cfg.Token, deadline)
}

// run implements faulter: catch a fault in fn, fetch the page, retry.
func (s *sigsegvImpl) run(off, n int, write bool, fn func()) {
	if raceEnabled {
		s.runHeld(off, n, write, fn)
		return
	}
	for {
		addr, faulted := pagemem.Access(fn)
		if !faulted {
			return
		}
		p, ok := s.region.PageOf(addr)
		if !ok {
			panic(fmt.Sprintf("dsm: memory fault at %#x, outside the shared region", addr))
		}
		if err := s.d.fetch(p, write); err != nil {
			fatal(err)
		}
	}
}

// runHeld is run for race-detector builds, where sync/atomic operations
// run inside the detector's C code and a fault there cannot become a Go
// panic: it makes every page of [off, off+n) accessible first and holds the
// driver, which alone changes protections, while fn runs.
func (s *sigsegvImpl) runHeld(off, n int, write bool, fn func()) {
	need := coherence.Read
	if write {
		need = coherence.Write
	}
	first, last := off/s.m.pageSize, (off+max(n, 1)-1)/s.m.pageSize
	for {
		s.d.mu.Lock()
		missing := -1
		for p := first; p <= last; p++ {
			if s.d.node.Access(coherence.Page(p)) < need {
				missing = p
				break
			}
		}
		if missing < 0 {
			fn()
			s.d.mu.Unlock()
			return
		}
		s.d.mu.Unlock()
		if err := s.d.fetch(missing, write); err != nil {
			fatal(err)
		}
	}
}

func (s *sigsegvImpl) lock(id int) error   { return s.d.lock(uint32(id)) }
func (s *sigsegvImpl) unlock(id int) error { s.d.unlock(uint32(id)); return nil }
func (s *sigsegvImpl) stats() Stats        { return s.d.snapshot() }
func (s *sigsegvImpl) resetStats()         { s.d.resetStats() }

func (s *sigsegvImpl) close() error {
	s.d.close()
	s.ln.Close()
	err1 := s.ops.Close()
	err2 := s.region.Close()
	return errors.Join(err1, err2)
}
