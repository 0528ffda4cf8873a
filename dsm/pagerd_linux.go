package dsm

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/dsmexec/dsmexec/internal/pagemem"
	"github.com/dsmexec/dsmexec/internal/uffd"
	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// Inherited descriptors of the pager (exec.Cmd.ExtraFiles order).
const (
	fdMemfd   = 3
	fdUffd    = 4
	fdControl = 5
)

// pagerMain is the page server process. It returns the exit status.
func pagerMain() int {
	// Signals for the rank's process group (Ctrl-C, mpirun's SIGTERM) are
	// for the application: the pager must keep serving until its rank has
	// exited, and exits when the control socket closes. SIGKILL still ends it.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	setName(pagerName)
	// One P: the driver handles one event at a time anyway, and with more
	// Ps a hand-off between goroutines wakes spinning threads that compete
	// with the ranks for the CPUs.
	runtime.GOMAXPROCS(1)
	ctl, err := net.FileConn(os.NewFile(fdControl, "control"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "dsm pager: control socket: %v\n", err)
		return 1
	}
	r := bufio.NewReader(ctl)
	f, err := wire.ReadFrame(r, 4096)
	if err != nil || f.Type != ctlConfig {
		fmt.Fprintf(os.Stderr, "dsm pager: no configuration (%v)\n", err)
		return 1
	}
	var cfg pagerConfig
	if err := json.Unmarshal(f.Body, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "dsm pager: bad configuration: %v\n", err)
		return 1
	}
	ps := &pagerState{cfg: cfg, ctl: ctl, w: wire.NewWriter(ctl, cfg.Rank)}
	return ps.run(r)
}

type ctlFrame struct {
	f   wire.Frame
	err error
}

// setName names the calling thread; called from the package's init, where
// the main goroutine is locked to the main thread, it names the process
// (/proc/PID/comm, what ps -e, pgrep and ss show) instead of "exe".
func setName(name string) {
	b := append([]byte(name), 0)
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	runtime.KeepAlive(b)
}

type pagerState struct {
	cfg   pagerConfig
	ctl   net.Conn
	w     *wire.Writer
	d     *driver
	fatal sync.Once
}

func (s *pagerState) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// die reports an error the application cannot survive: the application
// prints it and exits; if it cannot (all its threads stuck in faults), it
// is killed.
func (s *pagerState) die(err error) {
	s.fatal.Do(func() {
		if s.w.Write(wire.ChanControl, ctlFatal, 0, []byte(err.Error())) != nil {
			s.logf("%v", err)
		}
		go func() {
			time.Sleep(2 * time.Second) // grace for the application to exit by itself
			s.logf("%v", err)
			syscall.Kill(os.Getppid(), syscall.SIGKILL)
			os.Exit(1)
		}()
	})
}

func (s *pagerState) run(r *bufio.Reader) int {
	cfg := s.cfg
	token, err := hex.DecodeString(cfg.Token)
	if err != nil {
		s.logf("dsm pager: bad token")
		return 1
	}
	u, err := uffd.FromFile(os.NewFile(fdUffd, "userfaultfd"))
	if err != nil {
		s.logf("dsm pager: rank %d: %v", cfg.Rank, err)
		return 1
	}
	memfd := os.NewFile(fdMemfd, "region")
	ops := pagemem.NewUffdOps(memfd, u, cfg.Base, cfg.Length, cfg.PageSize)
	s.d = newDriver(cfg.Rank, cfg.Size, cfg.PageSize, ops, true, s.die, s.logf)
	ln, err := listen(cfg.IP)
	if err != nil {
		s.logf("dsm pager: rank %d: %v", cfg.Rank, err)
		return 1
	}
	if err := s.w.Write(wire.ChanControl, ctlListen, 0, []byte(ln.Addr().String())); err != nil {
		return 1
	}
	f, err := wire.ReadFrame(r, wire.MaxBody)
	if err != nil {
		return 0 // the application went away before connecting
	}
	if f.Type != ctlConnect {
		s.logf("dsm pager: rank %d: control frame %d before connect", cfg.Rank, f.Type)
		return 1
	}
	var addrs []string
	json.Unmarshal(f.Body, &addrs)
	// From here on the control socket is read by one goroutine, so that
	// its end (the rank died, in any phase) is seen at once, also while
	// connecting to the peers: the pager never outlives its rank.
	frames := make(chan ctlFrame, 16)
	go func() {
		for {
			f, err := wire.ReadFrame(r, 64)
			frames <- ctlFrame{f, err}
			if err != nil {
				return
			}
		}
	}()
	connected := make(chan error, 1)
	go func() { connected <- s.d.connect(ln, addrs, token, time.Now().Add(60*time.Second)) }()
	select {
	case err := <-connected:
		if err != nil {
			s.reply(0, err, nil)
			return 1
		}
	case cf := <-frames:
		if cf.err == nil {
			s.logf("dsm pager: rank %d: control frame %d while connecting", cfg.Rank, cf.f.Type)
			return 1
		}
		return 0 // the application went away while connecting
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.serveFaults(ctx, u)
	s.reply(0, nil, nil)

	// Requests from the application, until CLOSE or until it goes away.
	for {
		cf := <-frames
		f, err := cf.f, cf.err
		if err != nil {
			return 0
		}
		if len(f.Body) < 8 {
			continue
		}
		id := binary.BigEndian.Uint32(f.Body)
		arg := binary.BigEndian.Uint32(f.Body[4:])
		switch f.Type {
		case ctlLock:
			go func() { s.reply(id, s.d.lock(arg), nil) }()
		case ctlUnlock:
			s.d.unlock(arg)
			s.reply(id, nil, nil)
		case ctlReset:
			s.d.resetStats()
			s.reply(id, nil, nil)
		case ctlStats:
			b, _ := json.Marshal(s.d.snapshot())
			s.reply(id, nil, b)
		case ctlClose:
			s.d.close()
			s.reply(id, nil, nil)
			return 0
		}
	}
}

func (s *pagerState) reply(id uint32, err error, body []byte) {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:], id)
	if err != nil {
		hdr[4] = 1
		body = []byte(err.Error())
	}
	s.w.Write(wire.ChanControl, ctlReply, 0, hdr[:], body)
}

// serveFaults hands every userfaultfd fault to the driver, on the reading
// goroutine itself: a hand-off to another goroutine costs microseconds on
// every fault.
func (s *pagerState) serveFaults(ctx context.Context, u *uffd.FD) {
	err := pagemem.ReadFaults(ctx, u, s.cfg.Base, s.cfg.PageSize, func(f pagemem.Fault) {
		s.d.fault(f.Page, f.Write)
	})
	if err != nil && ctx.Err() == nil {
		s.die(fmt.Errorf("dsm: rank %d: reading page faults: %w", s.cfg.Rank, err))
	}
}
