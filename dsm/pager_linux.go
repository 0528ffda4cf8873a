package dsm

import (
	"bufio"
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
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/pagemem"
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
	ctlConfig  uint8 = 40
	ctlConnect uint8 = 41
	ctlLock    uint8 = 42
	ctlUnlock  uint8 = 43
	ctlStats   uint8 = 44
	ctlClose   uint8 = 45
	ctlReset   uint8 = 46
	ctlListen  uint8 = 50
	ctlReply   uint8 = 51
	ctlFatal   uint8 = 52
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
	if os.Getenv(pagerEnv) == "1" {
		os.Exit(pagerMain())
	}
}

// uffdImpl is the application's side of the userfaultfd backend.
type uffdImpl struct {
	m      *Memory
	region *pagemem.Region
	cmd    *exec.Cmd
	conn   net.Conn
	r      *bufio.Reader
	w      *wire.Writer
	ep     string
	mode   string

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
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		u.Close()
		return fmt.Errorf("dsm: rank %d: socketpair: %w", m.cfg.Rank, err)
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
	// Our copies: the pager holds the userfaultfd now, so if it dies the
	// kernel releases blocked threads instead of leaving them forever.
	u.Close()
	pagerEnd.Close()
	if err != nil {
		appEnd.Close()
		return fmt.Errorf("dsm: rank %d: start the page server: %w", m.cfg.Rank, err)
	}
	conn, err := net.FileConn(appEnd)
	appEnd.Close()
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("dsm: rank %d: pager control: %w", m.cfg.Rank, err)
	}
	p := &uffdImpl{m: m, region: region, cmd: cmd, conn: conn, r: bufio.NewReader(conn), w: wire.NewWriter(conn, m.cfg.Rank),
		calls: map[uint32]chan reply{}, exited: make(chan struct{}), mode: mode}
	go func() { cmd.Wait(); close(p.exited) }()
	cfg, _ := json.Marshal(pagerConfig{Rank: m.cfg.Rank, Size: m.cfg.Size, Token: hex.EncodeToString(m.cfg.Token), IP: m.cfg.IP,
		Base: region.Base(), Length: region.Size(), PageSize: m.pageSize})
	if err := p.w.Write(wire.ChanControl, ctlConfig, 0, cfg); err != nil {
		p.kill()
		return fmt.Errorf("dsm: rank %d: configure the page server: %w", m.cfg.Rank, err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := wire.ReadFrame(p.r, 4096)
	conn.SetReadDeadline(time.Time{})
	if err != nil || f.Type != ctlListen {
		p.kill()
		return fmt.Errorf("dsm: rank %d: the page server did not start (%v)", m.cfg.Rank, err)
	}
	p.ep = string(f.Body)
	m.impl = p
	m.backend = mode
	addFaultProcs()
	return nil
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
	p.cmd.Process.Kill()
	<-p.exited
	p.conn.Close()
}

func (p *uffdImpl) endpoint() string { return p.ep }

func (p *uffdImpl) connect(addrs []string, deadline time.Time) error {
	body, _ := json.Marshal(connectBody{Addrs: addrs, Deadline: deadline.UnixNano()})
	if err := p.w.Write(wire.ChanControl, ctlConnect, 0, body); err != nil {
		return fmt.Errorf("dsm: rank %d: page server: %w", p.m.cfg.Rank, err)
	}
	p.conn.SetReadDeadline(deadline.Add(5 * time.Second)) // the pager's own deadline comes first
	f, err := wire.ReadFrame(p.r, wire.MaxBody)
	p.conn.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("dsm: rank %d: page server connecting to its peers: %w", p.m.cfg.Rank, err)
	}
	if f.Type != ctlReply || len(f.Body) < 5 {
		return fmt.Errorf("dsm: rank %d: page server sent frame type %d while connecting", p.m.cfg.Rank, f.Type)
	}
	if f.Body[4] != 0 {
		return errors.New(string(f.Body[5:]))
	}
	go p.read()
	return nil
}

// read dispatches the pager's replies; a FATAL or a vanished pager ends
// the process, since its shared memory can no longer be trusted.
func (p *uffdImpl) read() {
	for {
		f, err := wire.ReadFrame(p.r, wire.MaxBody)
		if err != nil {
			p.mu.Lock()
			closing := p.closing
			p.mu.Unlock()
			if closing {
				p.failCalls(ErrClosed)
				return
			}
			fatal(fmt.Errorf("dsm: rank %d: the page server exited unexpectedly (%v)", p.m.cfg.Rank, err))
			return
		}
		switch f.Type {
		case ctlFatal:
			fatal(errors.New(string(f.Body)))
		case ctlReply:
			if len(f.Body) < 5 {
				continue
			}
			id := binary.BigEndian.Uint32(f.Body)
			r := reply{body: f.Body[5:]}
			if f.Body[4] != 0 {
				r.err = errors.New(string(f.Body[5:]))
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
}

func (p *uffdImpl) failCalls(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, ch := range p.calls {
		ch <- reply{err: err}
		delete(p.calls, id)
	}
}

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
	r := <-ch
	return r.body, r.err
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
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.conn.Close()
	return errors.Join(err, p.region.Close())
}
