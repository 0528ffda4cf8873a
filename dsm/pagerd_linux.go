package dsm

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/dsmexec/dsmexec/internal/mesh"
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

// typeBye on wire.ChanControl of the memory mesh: the sender is closing
// normally (the same frame internal/mesh sends).
const typeBye = wire.TypeMeshBye

// Defaults of the page server's spinning (see pager.loop).
const (
	defaultSpin     = 200 * time.Microsecond // after any event
	defaultBusySpin = 2 * time.Millisecond   // while a fault or lock of this rank waits
)

// connectBody is the CONNECT request: every rank's pager address and the
// rendezvous deadline, from which the page server derives how long it
// tries to connect to a peer before it declares the peer lost.
type connectBody struct {
	Addrs    []string
	Deadline int64 // Unix nanoseconds
}

// pagerMain is the page server process. It returns the exit status.
func pagerMain() int {
	// Signals for the rank's process group (Ctrl-C, mpirun's SIGTERM) are
	// for the application: the pager must keep serving until its rank has
	// exited, and exits when the control socket closes. SIGKILL still ends it.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	setName(pagerName)
	// Two Ps: the loop runs on this goroutine, which init runs locked to
	// the main thread and which keeps its P while it parks in epoll_wait
	// (a raw system call); the other P runs the goroutines that make the
	// memory mesh's connections on demand (handshakes, dial retries) at
	// once, instead of after sysmon's 10 ms preemption of the loop.
	runtime.GOMAXPROCS(2)
	if err := unix.SetNonblock(fdControl, true); err != nil {
		fmt.Fprintf(os.Stderr, "dsm pager: control socket: %v\n", err)
		return 1
	}
	ctl := newRawConn(fdControl, -1, nil)
	f, err := ctl.readFrameWait(4096)
	if err != nil || f.Type != ctlConfig {
		if err == io.EOF {
			return 0 // the application went away
		}
		fmt.Fprintf(os.Stderr, "dsm pager: no configuration (%v)\n", err)
		return 1
	}
	var cfg pagerConfig
	if err := json.Unmarshal(f.Body, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "dsm pager: bad configuration: %v\n", err)
		return 1
	}
	p := &pager{cfg: cfg, ctl: ctl}
	return p.run()
}

// setName names the calling thread; called from the package's init, where
// the main goroutine is locked to the main thread, it names the process
// (/proc/PID/comm, what ps -e, pgrep and ss show) instead of "exe".
func setName(name string) {
	b := append([]byte(name), 0)
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
	runtime.KeepAlive(b)
}

// pager is the page server: one loop, on one thread, over the userfaultfd,
// the control socket and the memory-mesh sockets, all non-blocking and
// outside the Go netpoller. It is also the driver's transport.
type pager struct {
	cfg   pagerConfig
	ctl   *rawConn
	u     *uffd.FD
	d     *driver
	ep    int
	peers []*rawConn // by rank; nil until this rank needs that peer or it connects
	lost  []bool
	msgs  []uffd.Msg
	evs   []unix.EpollEvent
	maxIn int // largest frame body a peer may send
	net   memNet

	spin, busySpin time.Duration
	yield          bool

	closing       bool
	closeID       uint32
	closeDeadline time.Time

	fatal sync.Once

	host *hostSide // one page server for every rank of the host (pagerhost_linux.go); nil: this rank's own
}

// Epoll tags (EpollEvent.Fd): which source an event is from.
const (
	tagControl = 0
	tagUffd    = 1
	tagWake    = 2 // the eventfd of the connecting goroutines
	tagPeer0   = 3 // + rank
)

// tracef traces a memory-mesh event (DSMEXEC_DSM_TRACE).
func (p *pager) tracef(format string, args ...any) {
	if p.d != nil {
		p.d.tracef(format, args...)
	} else if p.host != nil && p.host.trace {
		p.logf("dsm trace: host page server %s "+format, append([]any{time.Now().Format("15:04:05.000000")}, args...)...)
	}
}

func (p *pager) logf(format string, args ...any) {
	if p.host != nil {
		p.host.log(fmt.Sprintf(format, args...))
		return
	}
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// die reports an error the application cannot survive: the application
// prints it and exits; if it cannot (all its threads stuck in faults), it
// is killed.
func (p *pager) die(err error) {
	p.fatal.Do(func() {
		p.ctl.queue(wire.ChanControl, ctlFatal, p.cfg.Rank, encodeFatal(err))
		if p.ctl.flushWait(1000) != nil {
			p.logf("%v", err)
		}
		go func() {
			time.Sleep(2 * time.Second) // grace for the application to exit by itself
			p.logf("%v", err)
			syscall.Kill(os.Getppid(), syscall.SIGKILL)
			os.Exit(1)
		}()
	})
}

func (p *pager) reply(id uint32, err error, body []byte) {
	replyFrame(p.ctl, p.cfg.Rank, id, err, body)
}

// replyFrame queues a REPLY on a rank's control socket ctl: status 0, or
// 1 with the error's text, or 2 when a lost rank caused it.
func replyFrame(ctl *rawConn, src int, id uint32, err error, body []byte) {
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:], id)
	if err != nil {
		hdr[4] = 1
		body = []byte(err.Error())
		if lost := lostPeer(err); lost >= 0 {
			hdr[4] = 2
			body = encodeFatal(err)
		}
	}
	ctl.queue(wire.ChanControl, ctlReply, src, hdr[:], body)
}

// serveRequest carries out a rank's LOCK, UNLOCK, STATS, RESETSTATS or
// REPORT on its driver d, replying on ctl; it returns the call id of a
// CLOSE, which the caller handles (ok false: not a CLOSE).
func serveRequest(d *driver, ctl *rawConn, src int, f wire.Frame) (closeID uint32, ok bool) {
	if len(f.Body) < 8 {
		return 0, false
	}
	id := binary.BigEndian.Uint32(f.Body)
	arg := binary.BigEndian.Uint32(f.Body[4:])
	switch f.Type {
	case ctlLock:
		d.lockAsync(arg, func(err error) { replyFrame(ctl, src, id, err, nil) })
	case ctlUnlock:
		d.unlock(arg)
		if id != 0 {
			replyFrame(ctl, src, id, nil, nil)
		}
	case ctlStats:
		b, _ := json.Marshal(d.snapshot())
		replyFrame(ctl, src, id, nil, b)
	case ctlReset:
		d.resetStats()
		replyFrame(ctl, src, id, nil, nil)
	case ctlReport:
		replyFrame(ctl, src, id, nil, d.reportJSON())
	case ctlClose:
		return id, true
	}
	return 0, false
}

func (p *pager) run() int {
	cfg := p.cfg
	token, err := hex.DecodeString(cfg.Token)
	if err != nil {
		p.logf("dsm pager: bad token")
		return 1
	}
	u, err := uffd.FromFileUnpolled(os.NewFile(fdUffd, "userfaultfd"))
	if err != nil {
		p.logf("dsm pager: rank %d: %v", cfg.Rank, err)
		return 1
	}
	p.u = u
	memfd := os.NewFile(fdMemfd, "region")
	ops := pagemem.NewUffdOps(memfd, u, cfg.Base, cfg.Length, cfg.PageSize)
	p.d = newDriver(cfg.Rank, cfg.Size, cfg.PageSize, ops, true, p.die, p.logf)
	p.d.tr = p
	p.maxIn = msgLen + cfg.PageSize
	ln, err := listen(cfg.IP)
	if err != nil {
		p.logf("dsm pager: rank %d: %v", cfg.Rank, err)
		return 1
	}
	p.ctl.queue(wire.ChanControl, ctlListen, cfg.Rank, []byte(ln.Addr().String()))
	if p.ctl.flushWait(30000) != nil {
		return 1
	}
	f, err := p.ctl.readFrameWait(wire.MaxBody)
	if err != nil {
		return 0 // the application went away before connecting
	}
	if f.Type != ctlConnect {
		p.logf("dsm pager: rank %d: control frame %d before connect", cfg.Rank, f.Type)
		return 1
	}
	var cb connectBody
	if err := json.Unmarshal(f.Body, &cb); err != nil || len(cb.Addrs) != cfg.Size {
		p.logf("dsm pager: rank %d: bad connect request (%v)", cfg.Rank, err)
		return 1
	}
	p.configureSpin(cb.Addrs)
	if err := p.setupEpoll(); err != nil {
		p.reply(0, fmt.Errorf("dsm: rank %d: page server: %w", cfg.Rank, err), nil)
		p.ctl.flushWait(1000)
		return 1
	}
	// The memory mesh is made on demand: nothing is dialled here.
	p.startNet(ln, cb.Addrs, token, time.Until(time.Unix(0, cb.Deadline)))
	p.reply(0, nil, nil)
	if p.ctl.flushWait(30000) != nil {
		return 0
	}
	return p.loop()
}

// configureSpin chooses how long the loop spins before it parks: it spins
// only when this host has no more ranks than CPUs (ranks whose memory
// listens on this rank's address count as local), so that a spinning page
// server never takes the CPU a rank needs. DSMEXEC_SPIN overrides the
// window after activity (0 disables spinning); on an oversubscribed host
// an explicit window spins with sched_yield between polls. For
// measurements only (not an interface): DSMEXEC_PAGER_BUSYSPIN sets the
// window while this rank waits, DSMEXEC_PAGER_YIELD=1 spins (yielding)
// whatever the host's load.
func (p *pager) configureSpin(addrs []string) {
	local := mesh.RanksOnHost(addrs, p.cfg.Rank)
	p.spin, p.busySpin = defaultSpin, defaultBusySpin
	over := local > runtime.NumCPU()
	if over {
		p.spin, p.busySpin = 0, 0
	}
	if s := os.Getenv("DSMEXEC_SPIN"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			if n, err2 := strconv.Atoi(s); err2 == nil {
				d, err = time.Duration(n)*time.Microsecond, nil
			}
		}
		if err == nil && d >= 0 {
			p.spin, p.busySpin, p.yield = d, max(d, p.busySpin), over
			if d == 0 {
				p.busySpin = 0
			}
		}
	}
	if s := os.Getenv("DSMEXEC_PAGER_BUSYSPIN"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			p.busySpin = d
		}
	}
	if s := os.Getenv("DSMEXEC_PAGER_YIELD"); s != "" {
		p.yield = s == "1"
	}
}

// detach takes the socket out of Go's hands: a duplicate descriptor
// (non-blocking, like the original) that the netpoller does not watch.
func detach(c interface {
	syscall.Conn
	Close() error
}) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	c.Close()
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// loop serves until CLOSE or until the rank goes away. It waits in
// epoll_wait; after any event it keeps polling without blocking (timeout 0)
// for p.spin, and for p.busySpin while this rank waits for a fault or a
// lock, so that the answer is picked up without a wake-up of this thread;
// then it parks. Idle, it costs nothing.
func (p *pager) loop() int {
	last := time.Now()
	timeout := 0
	for {
		n, err := p.wait(timeout)
		if err != nil && err != unix.EINTR {
			p.die(fmt.Errorf("dsm: rank %d: page server: epoll_wait: %w", p.cfg.Rank, err))
			return 1
		}
		for _, ev := range p.evs[:max(n, 0)] {
			switch tag := int(ev.Fd); tag {
			case tagControl:
				if code, exit := p.onControl(); exit {
					return code
				}
			case tagUffd:
				p.onFaults()
			case tagWake:
				p.onHandoffs()
			default:
				p.onPeer(tag-tagPeer0, ev.Events)
			}
		}
		p.flushPeers()
		if left, err := p.ctl.flush(); err != nil {
			return 0 // the rank is gone
		} else if left != p.ctl.pollOut {
			p.watchOut(p.ctl, tagControl, left)
		}
		now := time.Now()
		if p.closing && (p.closed() || now.After(p.closeDeadline)) {
			p.reply(p.closeID, nil, nil)
			p.ctl.flushWait(1000)
			return 0
		}
		if n > 0 {
			last = now
		}
		idle := now.Sub(last)
		switch {
		case (idle < p.spin || (idle < p.busySpin && p.d.busy())) && p.roomToSpin():
			if p.yield {
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			timeout = 0
		case p.closing:
			timeout = int(time.Until(p.closeDeadline)/time.Millisecond) + 1
		default:
			timeout = -1
		}
		if p.net.yielded > 0 {
			timeout = p.checkYielded(now, timeout)
		}
	}
}

// roomToSpin reports whether the loop may spin now (see hostHasRoom).
func (p *pager) roomToSpin() bool {
	return p.yield || hostHasRoom() // yield: asked for explicitly, on an oversubscribed host
}

// wait is epoll_wait, as a raw system call even when it blocks: the
// runtime does not see this thread enter a system call, so sysmon neither
// takes its P away after 20 µs nor keeps waking up every 20 µs afterwards
// (it did, thousands of times a second, with entersyscall). The loop's
// goroutine is the only one that needs the P; the rest (the die timer,
// the garbage collector) get it when sysmon preempts the loop, at most
// every 10 ms: the signal interrupts epoll_wait (EINTR) and the loop
// yields at its next function call.
func (p *pager) wait(timeout int) (int, error) {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.ep), uintptr(unsafe.Pointer(&p.evs[0])), uintptr(len(p.evs)), uintptr(timeout), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// onControl handles the application's requests. It returns exit when the
// page server must end (the rank went away).
func (p *pager) onControl() (code int, exit bool) {
	if _, err := p.ctl.fill(); err != nil {
		return 0, true
	}
	for {
		f, ok, err := p.ctl.next(64)
		if err != nil {
			p.logf("dsm pager: rank %d: control socket: %v", p.cfg.Rank, err)
			return 1, true
		}
		if !ok {
			return 0, false
		}
		if id, ok := serveRequest(p.d, p.ctl, p.cfg.Rank, f); ok {
			p.beginClose(id)
		}
	}
}

// onFaults hands every pending userfaultfd fault to the driver.
func (p *pager) onFaults() {
	for {
		n, err := p.u.TryReadMsgs(p.msgs)
		if err != nil {
			p.die(fmt.Errorf("dsm: rank %d: reading page faults: %w", p.cfg.Rank, err))
			return
		}
		if n == 0 {
			return
		}
		for _, m := range p.msgs[:n] {
			if m.Event != uffd.EventPagefault {
				p.die(fmt.Errorf("dsm: rank %d: unexpected userfaultfd event %#x", p.cfg.Rank, m.Event))
				return
			}
			if m.Address < uint64(p.cfg.Base) || m.Address-uint64(p.cfg.Base) >= uint64(p.cfg.Length) {
				p.die(fmt.Errorf("dsm: rank %d: fault at %#x outside the region at %#x", p.cfg.Rank, m.Address, p.cfg.Base))
				return
			}
			p.d.fault(int((m.Address-uint64(p.cfg.Base))/uint64(p.cfg.PageSize)), m.IsWrite())
		}
		if n < len(p.msgs) {
			return
		}
	}
}

// onPeer reads what rank j sent and hands every whole frame to the driver.
func (p *pager) onPeer(j int, events uint32) {
	if j < 0 || j >= len(p.peers) {
		return
	}
	c := p.peers[j]
	if c == nil || c.closed || c.state != peerUp {
		return
	}
	if events&unix.EPOLLOUT != 0 {
		p.flushPeer(c)
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	_, rerr := c.fill()
	p.parsePeer(c)
	if rerr != nil && !c.closed {
		if c.bye || p.closing {
			p.drop(c)
			return
		}
		if rerr == io.EOF {
			rerr = fmt.Errorf("connection closed by rank %d", j)
		} else {
			rerr = fmt.Errorf("read from rank %d: %w", j, rerr)
		}
		p.peerLost(j, rerr)
	}
}

// parsePeer hands every whole frame buffered from c to the driver.
func (p *pager) parsePeer(c *rawConn) {
	if p.host != nil {
		p.parseHostPeer(c)
		return
	}
	j := c.rank
	for !c.closed {
		f, ok, err := c.next(p.maxIn)
		if err != nil {
			p.peerLost(j, fmt.Errorf("bad frame from rank %d: %w", j, err))
			return
		}
		if !ok {
			break
		}
		switch {
		case f.Channel == wire.ChanDSM:
			f.Source = j // the connection, not the header, says who sent it
			p.d.deliver(f)
		case f.Channel == wire.ChanControl && f.Type == typeBye:
			c.bye = true
		default:
			p.logf("memory of rank %d: ignoring a %s frame from rank %d", p.cfg.Rank, f.Channel, j)
		}
	}
}

// peerLost closes rank j's connection (or forgets the one being made)
// and fails what depended on it.
func (p *pager) peerLost(j int, err error) {
	c := p.peers[j]
	if c != nil {
		if c.state == peerYielded {
			p.net.yielded--
		}
		p.drop(c)
		c.state = peerGone
		c.out = nil
	}
	if p.host != nil {
		if !p.closing {
			p.host.hostLost(j, err)
		}
		return
	}
	if p.closing || p.lost[j] {
		return
	}
	p.lost[j] = true
	p.tracef("lost rank %d: %v", j, err)
	p.d.peerLost(j)
}

func (p *pager) drop(c *rawConn) {
	if c.closed || c.fd < 0 {
		return
	}
	unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	c.close()
}

// send implements transport: the frame is queued and written at the end
// of the loop iteration (flushPeers), after every local action of the
// batch, in order. The first frame for a rank this page server has no
// connection with starts one (connectTo); frames queue until it is up.
func (p *pager) send(to int, typ uint8, hdr, data []byte) error {
	if to < 0 || to >= len(p.peers) || to == p.cfg.Rank {
		return fmt.Errorf("no peer %d", to)
	}
	c := p.peer(to)
	if c.closed || c.wrShut || c.state == peerGone {
		return nil // lost (already reported) or closing
	}
	c.queue(wire.ChanDSM, typ, p.cfg.Rank, hdr, data)
	if c.state == peerIdle {
		p.connectTo(c)
	}
	return nil
}

// close implements transport; the loop closes with beginClose instead.
func (p *pager) close() {}

func (p *pager) flushPeers() {
	for _, c := range p.net.conns {
		if c.state == peerUp && !c.closed && (len(c.out) > 0 || c.pollOut || (p.closing && !c.wrShut)) {
			p.flushPeer(c)
		}
	}
}

func (p *pager) flushPeer(c *rawConn) {
	left, err := c.flush()
	if err != nil {
		p.peerLost(c.rank, fmt.Errorf("write to rank %d: %w", c.rank, err))
		return
	}
	if left != c.pollOut {
		p.watchOut(c, tagPeer0+c.rank, left)
	}
	if !left && p.closing && !c.wrShut {
		c.wrShut = true
		unix.Shutdown(c.fd, unix.SHUT_WR)
	}
}

func (p *pager) watchOut(c *rawConn, tag int, on bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(tag)}
	if on {
		ev.Events |= unix.EPOLLOUT
	}
	unix.EpollCtl(p.ep, unix.EPOLL_CTL_MOD, c.fd, &ev)
	c.pollOut = on
}

// beginClose says goodbye to every connected peer (a connection still
// being made says it once it is up); the loop replies to CLOSE when every
// peer has closed its side too, or after 5 s.
func (p *pager) beginClose(id uint32) {
	if p.closing {
		return
	}
	p.closing, p.closeID, p.closeDeadline = true, id, time.Now().Add(5*time.Second)
	for _, c := range p.net.conns {
		if c.state == peerUp && !c.closed {
			c.queue(wire.ChanControl, typeBye, p.cfg.Rank)
		}
	}
}

// closed reports whether every peer connection has ended and none is
// being made.
func (p *pager) closed() bool {
	for _, c := range p.net.conns {
		switch c.state {
		case peerDialing, peerYielded:
			return false
		case peerUp:
			if !c.closed {
				return false
			}
		}
	}
	return true
}
