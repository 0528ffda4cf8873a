package rank

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller is one epoll set holding every peer's socket (level-triggered)
// and an eventfd for kicks. The driver asks it without blocking while it
// spins, and parks on it through the Go netpoller: the epoll fd is itself
// pollable, so the parked goroutine is woken by the same thread that sees
// the event, with no thread of our own blocked in a syscall.
type poller struct {
	epfd int
	evfd int
	file *os.File
	rc   syscall.RawConn
	ev   []unix.EpollEvent
	dl   time.Time // the read deadline set on file

	// The function the netpoller calls, made once (no allocation per
	// park), and its results.
	readFn func(fd uintptr) bool
	n      int
	werr   error
}

const kickData = -1 // EpollEvent.Fd of the eventfd

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("rank: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("rank: epoll fd non-blocking: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("rank: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: kickData}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("rank: epoll add eventfd: %w", err)
	}
	p := &poller{epfd: epfd, evfd: evfd, ev: make([]unix.EpollEvent, 64)}
	p.readFn = func(fd uintptr) bool {
		p.n, p.werr = unix.EpollWait(int(fd), p.ev, 0)
		if p.werr == unix.EINTR {
			p.n, p.werr = 0, nil
		}
		return p.n > 0 || p.werr != nil
	}
	p.file = os.NewFile(uintptr(epfd), "rank-epoll")
	if p.rc, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		unix.Close(evfd)
		return nil, fmt.Errorf("rank: epoll fd: %w", err)
	}
	return p, nil
}

// set makes the interest in fd (tagged data) events; 0 removes it.
// inSet says whether fd is in the set now; it returns the new state.
func (p *poller) set(fd int, data int32, events uint32, inSet bool) (bool, error) {
	switch {
	case events == 0 && inSet:
		return false, unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	case events == 0:
		return false, nil
	case inSet:
		return true, unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: events, Fd: data})
	}
	return true, unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: data})
}

// wait returns the ready events: at once (park false), or parked until
// one is ready or the deadline (zero: none) passes.
func (p *poller) wait(park bool, deadline time.Time) ([]unix.EpollEvent, error) {
	if !park {
		n, err := unix.EpollWait(p.epfd, p.ev, 0)
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
	err := p.rc.Read(p.readFn)
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
	unix.Write(p.evfd, one[:])
}

// drainKick resets the eventfd.
func (p *poller) drainKick() {
	var b [8]byte
	unix.Read(p.evfd, b[:])
}

func (p *poller) close() {
	p.file.Close()
	unix.Close(p.evfd)
}
