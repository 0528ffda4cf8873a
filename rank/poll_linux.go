package rank

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// poller is one epoll set holding every peer's socket (level-triggered)
// and an eventfd for kicks. The driver asks it without blocking while it
// spins, and parks on it through the Go netpoller.
//
// Two epoll fds: sock holds the sockets and the eventfd and is never seen
// by the Go runtime; park is an os.File (so the netpoller watches it) that
// holds sock only while the driver is parked. Were sock itself in the
// netpoller, every message arriving while the driver spins would wake an
// idle runtime thread blocked in the netpoller, on the CPU the sending peer
// needs (measured: more context switches with spinning than without).
type poller struct {
	sock int // the sockets and the eventfd
	evfd int
	park int // holds sock while parked; watched by the netpoller
	file *os.File
	rc   syscall.RawConn
	ev   []unix.EpollEvent
	dl   time.Time // the read deadline set on file

	// The function the netpoller calls, made once (no allocation per
	// park), and its results.
	readFn func(fd uintptr) bool
	n      int
	werr   error

	// blocking parks in epoll_wait on the driver's thread instead of the
	// netpoller (DSMEXEC_PARK=syscall; for measurements).
	blocking bool
}

const kickData = -1 // EpollEvent.Fd of the eventfd

func newPoller() (p *poller, err error) {
	p = &poller{sock: -1, evfd: -1, park: -1, ev: make([]unix.EpollEvent, 64)}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.sock, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("rank: epoll_create1: %w", err)
	}
	if p.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("rank: eventfd: %w", err)
	}
	if err = unix.EpollCtl(p.sock, unix.EPOLL_CTL_ADD, p.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: kickData}); err != nil {
		return nil, fmt.Errorf("rank: epoll add eventfd: %w", err)
	}
	if p.park, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("rank: epoll_create1: %w", err)
	}
	if err = unix.SetNonblock(p.park, true); err != nil {
		return nil, fmt.Errorf("rank: epoll fd non-blocking: %w", err)
	}
	p.file = os.NewFile(uintptr(p.park), "rank-epoll")
	if p.rc, err = p.file.SyscallConn(); err != nil {
		return nil, fmt.Errorf("rank: epoll fd: %w", err)
	}
	p.readFn = func(uintptr) bool {
		p.n, p.werr = epollNow(p.sock, p.ev)
		if p.werr == unix.EINTR {
			p.n, p.werr = 0, nil
		}
		return p.n > 0 || p.werr != nil
	}
	return p, nil
}

// set makes the interest in fd (tagged data) events; 0 removes it.
// inSet says whether fd is in the set now; it returns the new state.
func (p *poller) set(fd int, data int32, events uint32, inSet bool) (bool, error) {
	switch {
	case events == 0 && inSet:
		return false, unix.EpollCtl(p.sock, unix.EPOLL_CTL_DEL, fd, nil)
	case events == 0:
		return false, nil
	case inSet:
		return true, unix.EpollCtl(p.sock, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: events, Fd: data})
	}
	return true, unix.EpollCtl(p.sock, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: data})
}

// wait returns the ready events: at once (park false), or parked until
// one is ready or the deadline (zero: none) passes.
func (p *poller) wait(park bool, deadline time.Time) ([]unix.EpollEvent, error) {
	if !park {
		n, err := epollNow(p.sock, p.ev)
		if err != nil {
			if err == unix.EINTR {
				return nil, nil
			}
			return nil, err
		}
		return p.ev[:n], nil
	}
	if p.blocking {
		ms := -1
		if !deadline.IsZero() {
			ms = max(0, int(time.Until(deadline).Milliseconds())+1)
		}
		n, err := unix.EpollWait(p.sock, p.ev, ms)
		if err != nil {
			if err == unix.EINTR {
				return nil, nil
			}
			return nil, err
		}
		return p.ev[:n], nil
	}
	if !deadline.Equal(p.dl) {
		p.file.SetReadDeadline(deadline)
		p.dl = deadline
	}
	// Adding sock makes park readable at once if sock has events already.
	if err := unix.EpollCtl(p.park, unix.EPOLL_CTL_ADD, p.sock, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		return nil, fmt.Errorf("rank: epoll add for parking: %w", err)
	}
	err := p.rc.Read(p.readFn)
	unix.EpollCtl(p.park, unix.EPOLL_CTL_DEL, p.sock, nil)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, nil
		}
		return nil, err
	}
	if p.werr != nil {
		return nil, p.werr
	}
	return p.ev[:p.n], nil
}

// kick makes a parked wait return.
func (p *poller) kick() {
	var one = [8]byte{1}
	rawWrite(p.evfd, one[:])
}

// drainKick resets the eventfd.
func (p *poller) drainKick() {
	var b [8]byte
	rawRead(p.evfd, b[:])
}

func (p *poller) close() {
	if p.file != nil {
		p.file.Close()
	} else if p.park >= 0 {
		unix.Close(p.park)
	}
	if p.sock >= 0 {
		unix.Close(p.sock)
	}
	if p.evfd >= 0 {
		unix.Close(p.evfd)
	}
}

// System calls that never block (non-blocking fds, a zero timeout) and
// copy little are made raw: without the runtime's entersyscall and
// exitsyscall (~0.1 µs each here), and so that the runtime never sees the
// driver's P in a system call, which sysmon would hand to another thread
// (a thread wake-up, on a CPU the peer needs) when the call is
// descheduled on a loaded machine. Larger copies go through the normal
// calls (rawMax).
const rawMax = 64 << 10

// epollNow is epoll_wait with a zero timeout.
func epollNow(epfd int, evs []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawRead is read(2) on a non-blocking fd.
func rawRead(fd int, p []byte) (int, error) {
	if len(p) > rawMax {
		return unix.Read(fd, p)
	}
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawWrite is write(2) on a non-blocking fd.
func rawWrite(fd int, p []byte) (int, error) {
	if len(p) > rawMax {
		return unix.Write(fd, p)
	}
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
