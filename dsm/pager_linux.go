package dsm

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/mesh"
	"github.com/dsmexec/dsmexec/internal/pagemem"
	"github.com/dsmexec/dsmexec/internal/uffd"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// The userfaultfd backend serves faults from a separate process, the pager
// (this same binary, re-executed with DSMEXEC_PAGER=1). A thread blocked in
// a userfaultfd fault keeps its Go scheduler P and cannot be stopped for a
// garbage collection while it sits in runtime code such as memmove; if the
// goroutines serving faults lived in the same process, a collection during
// a fault would deadlock it, and with few Ps they would wait for sysmon's
// 10 ms preemption. The pager has its own runtime, so neither can happen.
//
// Control protocol on a socketpair, wire frames on ChanControl:
//
//	app -> pager  CONFIG   pagerConfig (JSON)
//	pager -> app  LISTEN   the pager's mesh address
//	app -> pager  CONNECT  every rank's pager address (JSON)
//	app -> pager  LOCK, UNLOCK, STATS, RESETSTATS, CLOSE   id u32 (+ lock id u32)
//	pager -> app  REPLY    id u32, status u8 (0 ok, 1 error), payload
//	pager -> app  FATAL    text: the application must exit with it
const (
	ctlConfig  = wire.TypePagerConfig
	ctlConnect = wire.TypePagerConnect
	ctlLock    = wire.TypePagerLock
	ctlUnlock  = wire.TypePagerUnlock
	ctlStats   = wire.TypePagerStats
	ctlClose   = wire.TypePagerClose
	ctlReset   = wire.TypePagerReset
	ctlReport  = wire.TypePagerReport
	ctlListen  = wire.TypePagerListen
	ctlReply   = wire.TypePagerReply
	ctlFatal   = wire.TypePagerFatal
	ctlLog     = wire.TypePagerLog
)

// pagerEnv marks the re-executed pager process.
const pagerEnv = "DSMEXEC_PAGER"

// pagerName is the page server's process name (comm and argv[0]).
const pagerName = "dsmexec-pager"

type pagerConfig struct {
	Rank, Size int
	Token      string // hex
	IP         string
	Base       uintptr
	Length     int
	PageSize   int
}

func init() {
	switch os.Getenv(pagerEnv) {
	case "1":
		os.Exit(pagerMain())
	case "host":
		os.Exit(hostPagerMain())
	}
}

// uffdImpl is the application's side of the userfaultfd backend.
//
// Replies from the pager are read by the goroutine that waits for one
// (Lock, Stats, ...), not handed over by a reader goroutine: it polls the
// socket for a moment (spinning only while a CPU is free) before it parks
// in the netpoller, and files the replies meant for other callers. While
// nobody waits, a background reader holds the socket so that a FATAL is
// seen at once; a caller takes the socket from it by interrupting its read.
type uffdImpl struct {
	m      *Memory
	region *pagemem.Region
	cmd    *exec.Cmd
	conn   net.Conn
	rc     syscall.RawConn
	in     *rawConn // parse buffer; fd set by the reader holding token
	w      *wire.Writer
	ep     string
	mode   string
	pid    int // the page server's process

	noSpin bool          // this host has more ranks than CPUs
	token  chan struct{} // held (sent into) by whoever reads the socket
	want   atomic.Int32  // callers waiting for the token
	resume chan struct{} // the background reader may take the token again

	mu      sync.Mutex
	nextID  uint32
	calls   map[uint32]chan reply
	closing bool
	exited  chan struct{}
}

type reply struct {
	err  error
	body []byte
}

func newUffd(m *Memory, region *pagemem.Region) error {
	u, err := region.RegisterUffd()
	if err != nil {
		return fmt.Errorf("dsm: rank %d: set up userfaultfd: %w", m.cfg.Rank, err)
	}
	mode := "uffd"
	if u.UserModeOnly() {
		mode = "uffd (user-mode only)"
	}
	var p *uffdImpl
	if pagersPerHost() {
		p, err = joinHostPager(m, region, u)
	} else {
		p, err = startRankPager(m, region, u)
	}
	// Our copy: the page server holds the userfaultfd now, so if it dies
	// the kernel releases blocked threads instead of leaving them forever.
	u.Close()
	if err != nil {
		return err
	}
	p.mode = mode
	m.impl = p
	m.backend = mode
	addFaultProcs()
	return nil
}

func newUffdImpl(m *Memory, region *pagemem.Region, conn net.Conn, left []byte) (*uffdImpl, error) {
	rc, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return nil, err
	}
	return &uffdImpl{m: m, region: region, conn: conn, rc: rc, in: newRawConn(-1, -1, left), w: wire.NewWriter(conn, m.cfg.Rank),
		token: make(chan struct{}, 1), resume: make(chan struct{}, 1),
		calls: map[uint32]chan reply{}, exited: make(chan struct{})}, nil
}

// startRankPager starts this rank's own page server (DSMEXEC_PAGERS=rank).
func startRankPager(m *Memory, region *pagemem.Region, u *uffd.FD) (*uffdImpl, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dsm: rank %d: socketpair: %w", m.cfg.Rank, err)
	}
	appEnd := os.NewFile(uintptr(fds[0]), "pager-control")
	pagerEnd := os.NewFile(uintptr(fds[1]), "pager-control")
	cmd := exec.Command("/proc/self/exe")
	// ps shows "dsmexec-pager rank 3"; the pager names its thread (comm,
	// which pgrep and ss show) "dsmexec-pager" itself.
	cmd.Args = []string{pagerName, "rank", strconv.Itoa(m.cfg.Rank)}
	cmd.Env = append(os.Environ(), pagerEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{region.File(), u.File(), pagerEnd}
	// No Pdeathsig: it fires when the forking *thread* exits, which Go may
	// do. The pager exits when its control socket closes instead, which
	// the kernel does when this process dies, however it dies.
	err = cmd.Start()
	pagerEnd.Close()
	if err != nil {
		appEnd.Close()
		return nil, fmt.Errorf("dsm: rank %d: start the page server: %w", m.cfg.Rank, err)
	}
	conn, err := net.FileConn(appEnd)
	appEnd.Close()
	var p *uffdImpl
	if err == nil {
		p, err = newUffdImpl(m, region, conn, nil)
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("dsm: rank %d: pager control: %w", m.cfg.Rank, err)
	}
	p.cmd, p.pid = cmd, cmd.Process.Pid
	go func() { cmd.Wait(); close(p.exited) }()
	cfg, _ := json.Marshal(pagerConfig{Rank: m.cfg.Rank, Size: m.cfg.Size, Token: hex.EncodeToString(m.cfg.Token), IP: m.cfg.IP,
		Base: region.Base(), Length: region.Size(), PageSize: m.pageSize})
	if err := p.w.Write(wire.ChanControl, ctlConfig, 0, cfg); err != nil {
		p.kill()
		return nil, fmt.Errorf("dsm: rank %d: configure the page server: %w", m.cfg.Rank, err)
	}
	f, err := p.readFrame(time.Now().Add(30 * time.Second))
	if err != nil || f.Type != ctlListen {
		p.kill()
		return nil, fmt.Errorf("dsm: rank %d: the page server did not start (%v)", m.cfg.Rank, err)
	}
	p.ep = string(f.Body)
	return p, nil
}

// addFaultProcs raises GOMAXPROCS by DSMEXEC_FAULT_PROCS (default 4). A
// goroutine blocked in a userfaultfd fault keeps its P, like one running
// on the CPU: with as many goroutines faulting as there are Ps, runnable
// goroutines wait for the scheduler's 10 ms preemption, and a fault that
// straddles it appears to take 10-20 ms (measured with 4 goroutines at
// GOMAXPROCS=2). Extra Ps play the part of the P hand-off Go does for a
// blocking system call; they cost nothing while no goroutine is blocked.
func addFaultProcs() {
	extra := 4
	if s := os.Getenv("DSMEXEC_FAULT_PROCS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			extra = n
		}
	}
	if extra > 0 {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + extra)
	}
}

func (p *uffdImpl) kill() {
	if p.cmd != nil {
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.conn.Close()
}

func (p *uffdImpl) endpoint() string { return p.ep }

func (p *uffdImpl) connect(addrs []string, deadline time.Time) error {
	// More ranks on this host than CPUs: a waiting caller never spins.
	p.noSpin = mesh.RanksOnHost(addrs, p.m.cfg.Rank) > runtime.NumCPU()
	body, _ := json.Marshal(connectBody{Addrs: addrs, Deadline: deadline.UnixNano()})
	if err := p.w.Write(wire.ChanControl, ctlConnect, 0, body); err != nil {
		return fmt.Errorf("dsm: rank %d: page server: %w", p.m.cfg.Rank, err)
	}
	f, err := p.readFrame(deadline.Add(5 * time.Second)) // the pager's own deadline comes first
	for err == nil && f.Type == ctlLog {
		p.m.logf("%s", f.Body)
		f, err = p.readFrame(deadline.Add(5 * time.Second))
	}
	if err != nil {
		return fmt.Errorf("dsm: rank %d: page server connecting to its peers: %w", p.m.cfg.Rank, err)
	}
	if f.Type != ctlReply || len(f.Body) < 5 {
		return fmt.Errorf("dsm: rank %d: page server sent frame type %d while connecting", p.m.cfg.Rank, f.Type)
	}
	if f.Body[4] != 0 {
		return replyErr(f.Body[4], f.Body[5:])
	}
	go p.background()
	return nil
}

// readFrame reads one frame before the replies are dispatched (setup).
func (p *uffdImpl) readFrame(deadline time.Time) (wire.Frame, error) {
	p.conn.SetReadDeadline(deadline)
	defer p.conn.SetReadDeadline(time.Time{})
	for {
		if f, ok, err := p.in.next(wire.MaxBody); err != nil || ok {
			// A copy: the buffer moves on with the next read.
			f.Body = append([]byte(nil), f.Body...)
			return f, err
		}
		var n int
		var rerr error
		err := p.rc.Read(func(fd uintptr) bool {
			p.in.fd = int(fd)
			n, rerr = p.in.fill()
			return n > 0 || rerr != nil
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return wire.Frame{}, err
		}
	}
}

// background holds the socket while no caller waits for a reply, so that
// a FATAL or the pager's end is seen at once.
func (p *uffdImpl) background() {
	for {
		p.token <- struct{}{}
		// Clear a caller's interruption before looking at want: a caller
		// that comes after the look interrupts the read below.
		p.conn.SetReadDeadline(time.Time{})
		if p.want.Load() > 0 {
			<-p.token
			<-p.resume
			continue
		}
		err := p.readUntil(nil, false)
		<-p.token
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			p.readFailed(err)
			return
		}
		<-p.resume // a caller took over; it says when it is done
	}
}

// readFailed handles the end of the control socket.
func (p *uffdImpl) readFailed(err error) {
	p.mu.Lock()
	closing := p.closing
	p.mu.Unlock()
	if closing {
		p.failCalls(ErrClosed)
		return
	}
	fatal(fmt.Errorf("dsm: rank %d: the page server exited unexpectedly (%v)", p.m.cfg.Rank, err))
}

// readUntil reads and dispatches frames, holding the token, until ch has
// a reply (ch nil: until interrupted by a deadline or an error). With
// spin it first polls without parking for a moment.
func (p *uffdImpl) readUntil(ch chan reply, spin bool) error {
	var until time.Time
	if spin && appSpin > 0 && !p.noSpin && hostHasRoom() {
		until = time.Now().Add(appSpin)
	}
	for {
		for {
			f, ok, err := p.in.next(wire.MaxBody)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			p.dispatch(f)
		}
		if ch != nil && len(ch) > 0 {
			return nil
		}
		park := until.IsZero() || time.Now().After(until)
		var n int
		var rerr error
		err := p.rc.Read(func(fd uintptr) bool {
			p.in.fd = int(fd)
			n, rerr = p.in.fill()
			return !park || n > 0 || rerr != nil
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return err
		}
	}
}

// dispatch handles one frame from the pager; a FATAL ends the process,
// since its shared memory can no longer be trusted.
func (p *uffdImpl) dispatch(f wire.Frame) {
	switch f.Type {
	case ctlFatal:
		fatalLost(decodeFatal(f.Body))
	case ctlLog:
		p.m.logf("%s", f.Body)
	case ctlReply:
		if len(f.Body) < 5 {
			return
		}
		id := binary.BigEndian.Uint32(f.Body)
		r := reply{body: append([]byte(nil), f.Body[5:]...)}
		if f.Body[4] != 0 {
			r.err = replyErr(f.Body[4], f.Body[5:])
		}
		p.mu.Lock()
		ch := p.calls[id]
		delete(p.calls, id)
		p.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

func (p *uffdImpl) failCalls(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, ch := range p.calls {
		ch <- reply{err: err}
		delete(p.calls, id)
	}
}

// appSpin is how long a caller polls for its reply before it parks
// (DSMEXEC_SPIN=0: not at all).
var appSpin = func() time.Duration {
	if s := os.Getenv("DSMEXEC_SPIN"); s == "0" || s == "0s" {
		return 0
	}
	return 50 * time.Microsecond
}()

func (p *uffdImpl) call(typ uint8, arg uint32) ([]byte, error) {
	ch := make(chan reply, 1)
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	// After CLOSE the pager exits: its end of the socket closing is then
	// expected, not a failure.
	p.closing = typ == ctlClose
	p.nextID++
	id := p.nextID
	p.calls[id] = ch
	p.mu.Unlock()
	var b [8]byte
	binary.BigEndian.PutUint32(b[:], id)
	binary.BigEndian.PutUint32(b[4:], arg)
	if err := p.w.Write(wire.ChanControl, typ, 0, b[:]); err != nil {
		return nil, fmt.Errorf("dsm: rank %d: page server: %w", p.m.cfg.Rank, err)
	}
	// Take the socket from the background reader (interrupt its park) or
	// from another caller, or get the reply someone else read for us.
	p.want.Add(1)
	p.conn.SetReadDeadline(time.Unix(1, 0))
	for {
		select {
		case r := <-ch:
			p.release()
			return r.body, r.err
		case p.token <- struct{}{}:
		}
		p.conn.SetReadDeadline(time.Time{})
		err := p.readUntil(ch, true)
		<-p.token
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			p.release()
			p.readFailed(err)
			r := <-ch
			return r.body, r.err
		}
		select {
		case r := <-ch:
			p.release()
			return r.body, r.err
		default:
			// Interrupted by another caller's deadline: try again.
		}
	}
}

// release ends a caller's wait: the last one lets the background reader
// read again.
func (p *uffdImpl) release() {
	if p.want.Add(-1) == 0 {
		select {
		case p.resume <- struct{}{}:
		default:
		}
	}
}

func (p *uffdImpl) lock(id int) error {
	_, err := p.call(ctlLock, uint32(id))
	return err
}

// unlock does not wait for the pager: UNLOCK cannot fail there, and the
// control stream keeps it before any later request of this rank.
func (p *uffdImpl) unlock(id int) error {
	var b [8]byte
	binary.BigEndian.PutUint32(b[4:], uint32(id)) // call id 0: no reply
	if err := p.w.Write(wire.ChanControl, ctlUnlock, 0, b[:]); err != nil {
		return fmt.Errorf("dsm: rank %d: page server: %w", p.m.cfg.Rank, err)
	}
	return nil
}

func (p *uffdImpl) stats() Stats {
	b, err := p.call(ctlStats, 0)
	var s Stats
	if err == nil {
		json.Unmarshal(b, &s)
	}
	return s
}

func (p *uffdImpl) resetStats() {
	p.call(ctlReset, 0)
}

func (p *uffdImpl) close() error {
	_, err := p.call(ctlClose, 0)
	if p.cmd != nil {
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	p.conn.Close()
	return errors.Join(err, p.region.Close())
}
