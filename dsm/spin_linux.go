package dsm

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// host is what the spinning decisions know about this host's CPUs.
var host struct {
	mu      sync.Mutex
	once    sync.Once
	fd      int // /proc/loadavg, or -1
	cpus    int
	checked time.Time
	room    bool
}

// hostHasRoom reports whether a CPU is free for spinning: the host's count
// of running and runnable threads (the caller included) is at most its CPU
// count plus one. The one is the thread a spinner is about to serve: with
// two ranks on two CPUs, both page servers spinning and the faulting
// thread just woken make three, and that is the case spinning is for. It
// looks at most every 5 ms. A spinning thread that loses its CPU
// to another one waits behind it for its next turn, where a sleeping one
// woken by the kernel would have run at once: on a busy host (other jobs,
// or more ranks than CPUs) spinning makes waits longer, not shorter.
func hostHasRoom() bool {
	host.once.Do(func() {
		host.cpus = runtime.NumCPU()
		host.fd = -1
		if fd, err := unix.Open("/proc/loadavg", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			host.fd = fd
		}
	})
	if host.fd < 0 {
		return true
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	now := time.Now()
	if now.Sub(host.checked) < 5*time.Millisecond {
		return host.room
	}
	host.checked = now
	host.room = true
	var b [128]byte
	n, err := unix.Pread(host.fd, b[:], 0)
	if err != nil {
		return true
	}
	// "0.50 0.40 0.30 3/456 789": the fourth field is running/total.
	f := strings.Fields(string(b[:n]))
	if len(f) < 4 {
		return true
	}
	run, _, _ := strings.Cut(f[3], "/")
	if r, err := strconv.Atoi(run); err == nil {
		host.room = r <= host.cpus+1
	}
	return host.room
}
