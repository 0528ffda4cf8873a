package dsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/pagemem"
	"github.com/dsmexec/dsmexec/internal/uffd"
	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// One page server per host (DSMEXEC_PAGERS=host, the default). The ranks
// of a job on one host meet at an abstract Unix socket named after a hash
// of the job token (hostSocketName); the first rank to bind it starts the
// server (this binary, re-executed with DSMEXEC_PAGER=host, in its own
// session) and hands it the listener. Every rank then connects, proves the
// token (internal/auth, the server being hostPagerID) and hands over its
// memfd and userfaultfd with its CONFIG (SCM_RIGHTS); the server checks
// the peer's uid, registers the rank and answers with its memory-mesh
// endpoint, which the rank puts in its JOIN: ranks with the same endpoint
// in the table share a server.
//
// The server runs the pager's one loop over every local rank's control
// socket and userfaultfd and the memory-mesh connections, one
// coherence.Node (driver) per local rank. Messages between two local
// ranks' drivers are delivered in the loop (inproc), without a socket.
// Between hosts there is one memory-mesh connection per pair of hosts, the
// host being named in the handshake by its lowest rank (its leader); a DSM
// frame carries its source rank in the header and its destination rank in
// the first 4 bytes of the body. BYE (source: a rank) says that rank left
// normally; LOST (body: a rank) that it did not. A closed host connection
// loses every rank of that host that did not say BYE.
//
// The server exits when every local rank that registered has gone (CLOSE
// or its control socket closed) and the table says no other will come, or
// when nobody registers within hostIdle (or the rank that started it
// ends before any rank registered).

// hostPagerID is the host page server's identity in the handshake.
const hostPagerID = -2

// pagersEnv selects where page servers run: "host" (default) or "rank".
const pagersEnv = "DSMEXEC_PAGERS"

// hostIdle bounds how long a host page server waits for its first rank.
const hostIdle = 30 * time.Second

// TypeMemLost on wire.ChanControl of the memory mesh between host page
// servers: body u32, a rank of the sender's host that was lost.
const typeMemLost = wire.TypeMemLost

// Epoll tags of local ranks (EpollEvent.Pad; Fd is the rank).
const (
	padCtl  = 1
	padUffd = 2
)

func pagersPerHost() bool { return os.Getenv(pagersEnv) != "rank" }

// hostSocketName is the abstract Unix socket of the job's page server on
// this host (per network namespace): a hash of the token, never the token.
func hostSocketName(token []byte) string {
	h := sha256.Sum256(append([]byte("dsmexec host page server\x00"), token...))
	return "@dsmexec-pager-" + hex.EncodeToString(h[:12])
}

// hostConfig is what the starting rank tells the host page server (on a
// pipe, fd 4; fd 3 is the Unix listener, fd 5 the memory mesh's TCP
// listener, made by that rank so that it sees the errors).
type hostConfig struct {
	Token   string // hex
	IP      string
	Starter int // the starting rank's pid: the server's parent until it ends
}

// localHello is a rank's registration, from the goroutine that ran its
// handshake to the loop.
type localHello struct {
	cfg   pagerConfig
	memfd *os.File
	ufd   *os.File
	pid   int
}

// localRank is a rank of this host served by the host page server.
type localRank struct {
	rank  int
	size  int
	cfg   pagerConfig
	ctl   *rawConn
	u     *uffd.FD
	memfd *os.File
	d     *driver
	pid   int

	closed bool        // said CLOSE: leaving normally
	gone   atomic.Bool // its control socket closed
	fatal  sync.Once
}

// inMsg is a message between two local ranks' drivers.
type inMsg struct {
	from, to int
	typ      uint8
	body     []byte
}

// hostSide is the state of a host page server beyond the pager's.
type hostSide struct {
	p        *pager
	token    []byte
	ul       *net.UnixListener
	tcp      net.Listener
	endpoint string
	trace    bool
	started  time.Time
	ppid     int // the rank that started it (until it joins, its end ends the server)

	locals     map[int]*localRank
	order      []*localRank
	registered int
	live       int
	exiting    bool

	netUp    bool
	addrs    []string
	leaderOf []int // rank -> lowest rank with the same endpoint
	bye      []bool
	lost     map[int]bool

	inproc []inMsg

	logMu   sync.Mutex
	logs    []string
	logsN   atomic.Int32
	logWake bool // the loop is asked to pass logs on
}

// log passes a line to a rank of this host, which prints it: the server
// has no output of its own (it must not hold a rank's stderr, which
// mpirun reads to its end, beyond that rank's life). Safe from any
// goroutine.
func (h *hostSide) log(line string) {
	h.logMu.Lock()
	if len(h.logs) < 1000 {
		h.logs = append(h.logs, line)
	}
	h.logMu.Unlock()
	h.logsN.Store(1)
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(h.p.net.wake, one[:])
}

// passLogs queues the waiting log lines on a rank's control socket (the
// first that has not left); with none, they are dropped.
func (h *hostSide) passLogs() {
	if h.logsN.Load() == 0 {
		return
	}
	h.logMu.Lock()
	logs := h.logs
	h.logs = nil
	h.logsN.Store(0)
	h.logMu.Unlock()
	for _, l := range h.order {
		if !l.closed && !l.gone.Load() {
			for _, s := range logs {
				l.ctl.queue(wire.ChanControl, ctlLog, l.rank, []byte(s))
			}
			return
		}
	}
}

// hostPagerMain is the host page server process.
func hostPagerMain() int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	setName(pagerName)
	runtime.GOMAXPROCS(2)
	var hc hostConfig
	if err := json.NewDecoder(os.NewFile(4, "config")).Decode(&hc); err != nil {
		return 1 // no output to say it on (see log)
	}
	token, err := hex.DecodeString(hc.Token)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dsm host page server: bad token\n")
		return 1
	}
	lf := os.NewFile(3, "listener")
	l, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dsm host page server: listener: %v\n", err)
		return 1
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	tf := os.NewFile(5, "memory listener")
	tcp, err := net.FileListener(tf)
	tf.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dsm host page server: memory listener: %v\n", err)
		return 1
	}
	p := &pager{cfg: pagerConfig{Rank: -1, Token: hc.Token, IP: hc.IP}}
	h := &hostSide{p: p, token: token, ul: ul, tcp: tcp, endpoint: tcp.Addr().String(),
		trace: os.Getenv("DSMEXEC_DSM_TRACE") != "", started: time.Now(), ppid: hc.Starter,
		locals: map[int]*localRank{}, lost: map[int]bool{}}
	p.host = h
	p.spin, p.busySpin = defaultSpin, defaultBusySpin
	if err := p.newEpoll(); err != nil {
		p.logf("dsm host page server: %v", err)
		return 1
	}
	go h.acceptLocals()
	return h.loop()
}

// acceptLocals accepts the ranks of this host (a goroutine).
func (h *hostSide) acceptLocals() {
	for {
		c, err := h.ul.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: try again
			continue
		}
		go h.hello(c)
	}
}

// peerCred is the credentials of the process at the other end of c.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return nil, err
	}
	return cred, cerr
}

// hello registers a rank (a goroutine): uid, token, LISTEN, CONFIG with
// the descriptors; the loop takes it from there (addLocal).
func (h *hostSide) hello(c *net.UnixConn) {
	deadline := time.Now().Add(10 * time.Second)
	c.SetDeadline(deadline)
	cred, err := peerCred(c)
	if err != nil || int(cred.Uid) != os.Getuid() {
		c.Close() // another user: not even a handshake
		return
	}
	r := bufio.NewReaderSize(c, 512)
	from, err := auth.Accept(c, r, h.token, hostPagerID, deadline, func(from int) error {
		if from < 0 {
			return fmt.Errorf("dsm: the host page server serves ranks, not %d", from)
		}
		return nil
	})
	if err != nil {
		c.Close()
		return
	}
	w := wire.NewWriter(c, 0)
	if err := w.Write(wire.ChanControl, ctlListen, 0, fmt.Appendf(nil, "%s %d", h.endpoint, os.Getpid())); err != nil || r.Buffered() > 0 {
		c.Close()
		return
	}
	f, fds, err := readFrameFDs(c)
	if err != nil || f.Type != ctlConfig || len(fds) != 2 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		if err == nil {
			err = fmt.Errorf("frame type %d with %d descriptors", f.Type, len(fds))
		}
		h.p.logf("dsm host page server: rank %d: bad configuration: %v", from, err)
		c.Close()
		return
	}
	unix.SetNonblock(fds[1], false) // kept out of the netpoller (uffd.FromFileUnpolled)
	memfd, ufd := os.NewFile(uintptr(fds[0]), "region"), os.NewFile(uintptr(fds[1]), "userfaultfd")
	var cfg pagerConfig
	if err := json.Unmarshal(f.Body, &cfg); err != nil || cfg.Rank != from {
		h.p.logf("dsm host page server: rank %d: bad configuration (%v)", from, err)
		memfd.Close()
		ufd.Close()
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	fd, err := detach(c)
	if err != nil {
		memfd.Close()
		ufd.Close()
		return
	}
	h.p.post(handoff{rank: from, fd: fd, local: &localHello{cfg: cfg, memfd: memfd, ufd: ufd, pid: int(cred.Pid)}})
}

// readFrameFDs reads one frame and the descriptors sent with it.
func readFrameFDs(c *net.UnixConn) (wire.Frame, []int, error) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	var fds []int
	got := 0
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf[got:], oob)
		if oobn > 0 {
			if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
				for _, m := range msgs {
					if fs, err := unix.ParseUnixRights(&m); err == nil {
						fds = append(fds, fs...)
					}
				}
			}
		}
		got += n
		if got >= wire.HeaderSize {
			var hd wire.Header
			copy(hd[:], buf)
			if err := hd.Check(len(buf) - wire.HeaderSize); err != nil {
				return wire.Frame{}, fds, err
			}
			if got >= wire.HeaderSize+hd.Len() {
				return wire.Frame{Channel: hd.Channel(), Type: hd.Type(), Source: hd.Source(), Body: buf[wire.HeaderSize : wire.HeaderSize+hd.Len()]}, fds, nil
			}
		}
		if err != nil {
			return wire.Frame{}, fds, err
		}
		if n == 0 {
			return wire.Frame{}, fds, io.ErrUnexpectedEOF
		}
	}
}

// addLocal registers a rank handed over by hello.
func (p *pager) addLocal(hf handoff) {
	h, lh := p.host, hf.local
	cfg := lh.cfg
	fail := func(err error) {
		ctl := newRawConn(hf.fd, -1, nil)
		replyFrame(ctl, cfg.Rank, 0, err, nil)
		ctl.flushWait(1000)
		ctl.close()
		lh.memfd.Close()
		lh.ufd.Close()
	}
	switch {
	case h.exiting:
		fail(errors.New("dsm: the host page server is exiting"))
		return
	case h.locals[cfg.Rank] != nil:
		fail(fmt.Errorf("dsm: rank %d has already joined this host's page server", cfg.Rank))
		return
	case cfg.Size < 1 || cfg.Rank >= cfg.Size || cfg.PageSize <= 0:
		fail(fmt.Errorf("dsm: bad configuration for rank %d", cfg.Rank))
		return
	case p.cfg.Size != 0 && (cfg.Size != p.cfg.Size || cfg.PageSize != p.cfg.PageSize):
		fail(fmt.Errorf("dsm: rank %d: %d ranks with %d-byte pages, but this host's page server serves %d ranks with %d-byte pages", cfg.Rank, cfg.Size, cfg.PageSize, p.cfg.Size, p.cfg.PageSize))
		return
	}
	u, err := uffd.FromFileUnpolled(lh.ufd)
	if err != nil {
		fail(fmt.Errorf("dsm: rank %d: %w", cfg.Rank, err))
		return
	}
	p.cfg.Size, p.cfg.PageSize = cfg.Size, cfg.PageSize
	p.maxIn = 4 + msgLen + cfg.PageSize
	l := &localRank{rank: cfg.Rank, size: cfg.Size, cfg: cfg, ctl: newRawConn(hf.fd, -1, nil), u: u, memfd: lh.memfd, pid: lh.pid}
	ops := pagemem.NewUffdOps(lh.memfd, u, cfg.Base, cfg.Length, cfg.PageSize)
	l.d = newDriver(cfg.Rank, cfg.Size, cfg.PageSize, ops, true, func(err error) { h.die(l, err) }, p.logf)
	l.d.tr = localTransport{h, cfg.Rank}
	for _, s := range []struct{ fd, pad int }{{l.ctl.fd, padCtl}, {u.Fd(), padUffd}} {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(cfg.Rank), Pad: int32(s.pad)}
		if err := unix.EpollCtl(p.ep, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			u.Close()
			fail(fmt.Errorf("dsm: rank %d: %w", cfg.Rank, os.NewSyscallError("epoll_ctl", err)))
			return
		}
	}
	h.locals[cfg.Rank] = l
	h.order = append(h.order, l)
	h.registered++
	h.live++
	replyFrame(l.ctl, cfg.Rank, 0, nil, nil)
}

// localTransport is a local rank's driver's transport.
type localTransport struct {
	h    *hostSide
	from int
}

func (t localTransport) send(to int, typ uint8, hdr, data []byte) error {
	return t.h.send(t.from, to, typ, hdr, data)
}

func (t localTransport) close() {}

// send routes a message of rank from's driver: to a local rank's driver
// (queued, delivered by runInproc in this loop iteration) or over the
// connection with the host of rank to.
func (h *hostSide) send(from, to int, typ uint8, hdr, data []byte) error {
	if l := h.locals[to]; l != nil {
		if l.closed || l.gone.Load() {
			return nil
		}
		b := make([]byte, len(hdr)+len(data))
		copy(b[copy(b, hdr):], data)
		h.inproc = append(h.inproc, inMsg{from: from, to: to, typ: typ, body: b})
		return nil
	}
	if !h.netUp || to < 0 || to >= len(h.leaderOf) || to == from {
		return fmt.Errorf("no peer %d", to)
	}
	if h.lost[to] {
		return nil
	}
	p := h.p
	c := p.peer(h.leaderOf[to])
	if c.closed || c.wrShut || c.state == peerGone {
		return nil
	}
	var dst [4]byte
	binary.BigEndian.PutUint32(dst[:], uint32(to))
	c.queue(wire.ChanDSM, typ, from, dst[:], hdr, data)
	if c.state == peerIdle {
		p.connectTo(c)
	}
	return nil
}

// runInproc delivers the messages between local ranks, including those
// the deliveries produce.
func (h *hostSide) runInproc() {
	for i := 0; i < len(h.inproc); i++ {
		m := h.inproc[i]
		h.inproc[i].body = nil
		if l := h.locals[m.to]; l != nil && !l.closed && !l.gone.Load() {
			l.d.deliver(wire.Frame{Channel: wire.ChanDSM, Type: m.typ, Source: m.from, Body: m.body})
		}
	}
	h.inproc = h.inproc[:0]
}

// die reports an error rank l cannot survive (see pager.die).
func (h *hostSide) die(l *localRank, err error) {
	l.fatal.Do(func() {
		if l.gone.Load() {
			return
		}
		l.ctl.queue(wire.ChanControl, ctlFatal, l.rank, encodeFatal(err))
		if l.ctl.flushWait(1000) != nil {
			h.p.logf("%v", err)
		}
		go func() {
			time.Sleep(2 * time.Second) // grace for the rank to exit by itself
			if !l.gone.Load() && l.pid > 0 {
				h.p.logf("%v", err)
				syscall.Kill(l.pid, syscall.SIGKILL)
			}
		}()
	})
}

// loop is the host page server's loop (see pager.loop).
func (h *hostSide) loop() int {
	p := h.p
	last := time.Now()
	timeout := 0
	for {
		n, err := p.wait(timeout)
		if err != nil && err != unix.EINTR {
			for _, l := range h.order {
				h.die(l, fmt.Errorf("dsm: rank %d: host page server: epoll_wait: %w", l.rank, err))
			}
			return 1
		}
		for _, ev := range p.evs[:max(n, 0)] {
			switch ev.Pad {
			case padCtl:
				if l := h.locals[int(ev.Fd)]; l != nil && !l.gone.Load() {
					h.onControl(l)
				}
			case padUffd:
				if l := h.locals[int(ev.Fd)]; l != nil && !l.gone.Load() {
					h.onFaults(l)
				}
			default:
				switch tag := int(ev.Fd); tag {
				case tagWake:
					p.onHandoffs()
				default:
					p.onPeer(tag-tagPeer0, ev.Events)
				}
			}
			h.runInproc()
		}
		p.flushPeers()
		h.passLogs()
		for _, l := range h.order {
			if l.gone.Load() || (len(l.ctl.out) == 0 && !l.ctl.pollOut) {
				continue
			}
			if left, err := l.ctl.flush(); err != nil {
				h.gone(l)
				continue
			} else if left != l.ctl.pollOut {
				ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(l.rank), Pad: padCtl}
				if left {
					ev.Events |= unix.EPOLLOUT
				}
				unix.EpollCtl(p.ep, unix.EPOLL_CTL_MOD, l.ctl.fd, &ev)
				l.ctl.pollOut = left
			}
		}
		h.runInproc() // what a lost rank's PeerLost produced
		now := time.Now()
		if !h.exiting && h.registered > 0 && h.live == 0 && h.allCame() {
			h.beginExit()
		}
		if h.exiting && (h.closed() || now.After(p.closeDeadline)) {
			return 0
		}
		if h.registered == 0 && (now.Sub(h.started) > hostIdle || os.Getppid() != h.ppid) {
			return 0 // nobody came, or the rank that started it is gone before joining
		}
		if n > 0 {
			last = now
		}
		idle := now.Sub(last)
		switch {
		case (idle < p.spin || (idle < p.busySpin && h.busy())) && p.roomToSpin():
			if p.yield {
				unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			}
			timeout = 0
		case h.exiting:
			timeout = int(time.Until(p.closeDeadline)/time.Millisecond) + 1
		case h.registered == 0:
			timeout = 20 // watching the parent
		default:
			timeout = -1
		}
		if p.net.yielded > 0 {
			timeout = p.checkYielded(now, timeout)
		}
	}
}

// busy reports whether a local rank waits for a fault or a lock.
func (h *hostSide) busy() bool {
	for _, l := range h.order {
		if !l.closed && !l.gone.Load() && l.d.busy() {
			return true
		}
	}
	return false
}

// allCame reports whether every rank the table places on this host has
// registered (true while no table is known: a rank that registered is in
// the table, and none can join after it).
func (h *hostSide) allCame() bool {
	if !h.netUp {
		return true
	}
	for r, a := range h.addrs {
		if a == h.endpoint && h.locals[r] == nil {
			return false
		}
	}
	return true
}

// beginExit stops accepting ranks, and closes the connections with the
// other hosts once what is queued for them is written.
func (h *hostSide) beginExit() {
	p := h.p
	h.exiting = true
	h.ul.Close()
	p.closing, p.closeDeadline = true, time.Now().Add(5*time.Second)
	for _, c := range p.net.conns {
		if c.cancel != nil {
			c.cancel()
			c.cancel = nil
		}
	}
}

// closed reports whether every host connection has ended.
func (h *hostSide) closed() bool {
	for _, c := range h.p.net.conns {
		if c.state == peerUp && !c.closed {
			return false
		}
	}
	return true
}

// onControl handles rank l's requests (see pager.onControl).
func (h *hostSide) onControl(l *localRank) {
	p := h.p
	if _, err := l.ctl.fill(); err != nil {
		h.gone(l)
		return
	}
	for {
		f, ok, err := l.ctl.next(wire.MaxBody)
		if err != nil {
			p.logf("dsm host page server: rank %d: control socket: %v", l.rank, err)
			h.gone(l)
			return
		}
		if !ok {
			return
		}
		if f.Type == ctlConnect {
			replyFrame(l.ctl, l.rank, 0, h.connect(l, f.Body), nil)
			continue
		}
		if id, ok := serveRequest(l.d, l.ctl, l.rank, f); ok {
			if !l.closed {
				l.closed = true
				for _, c := range p.net.conns {
					if c.state != peerGone && !c.closed && !c.wrShut {
						c.queue(wire.ChanControl, typeBye, l.rank)
					}
				}
			}
			replyFrame(l.ctl, l.rank, id, nil, nil)
		}
	}
}

// connect takes the table from a rank's CONNECT: the first starts the
// memory mesh, the others must bring the same table.
func (h *hostSide) connect(l *localRank, body []byte) error {
	p := h.p
	var cb connectBody
	if err := json.Unmarshal(body, &cb); err != nil || len(cb.Addrs) != l.size {
		return fmt.Errorf("dsm: rank %d: bad connect request (%v)", l.rank, err)
	}
	if cb.Addrs[l.rank] != h.endpoint {
		return fmt.Errorf("dsm: rank %d: the table gives its memory endpoint as %s, but its page server is at %s", l.rank, cb.Addrs[l.rank], h.endpoint)
	}
	if h.netUp {
		for r, a := range cb.Addrs {
			if a != h.addrs[r] {
				return fmt.Errorf("dsm: rank %d: its table differs from the one this host's page server has (rank %d)", l.rank, r)
			}
		}
		return nil
	}
	n := len(cb.Addrs)
	h.addrs = cb.Addrs
	h.leaderOf = make([]int, n)
	h.bye = make([]bool, n)
	first := map[string]int{}
	for r, a := range cb.Addrs {
		if f, ok := first[a]; ok {
			h.leaderOf[r] = f
		} else {
			first[a], h.leaderOf[r] = r, r
		}
	}
	p.cfg.Rank = h.leaderOf[l.rank]
	p.configureSpin(cb.Addrs)
	p.startNet(h.tcp, cb.Addrs, h.token, time.Until(time.Unix(0, cb.Deadline)))
	h.netUp = true
	return nil
}

// acceptsHost reports whether rank j may dial this server: the leader of
// another host in the table.
func (h *hostSide) acceptsHost(j int) bool {
	return h.netUp && !h.exiting && j >= 0 && j < len(h.leaderOf) && h.leaderOf[j] == j && h.addrs[j] != h.endpoint
}

// onFaults hands rank l's pending userfaultfd faults to its driver.
func (h *hostSide) onFaults(l *localRank) {
	for {
		n, err := l.u.TryReadMsgs(h.p.msgs)
		if err != nil {
			h.die(l, fmt.Errorf("dsm: rank %d: reading page faults: %w", l.rank, err))
			return
		}
		if n == 0 {
			return
		}
		for _, m := range h.p.msgs[:n] {
			if m.Event != uffd.EventPagefault {
				h.die(l, fmt.Errorf("dsm: rank %d: unexpected userfaultfd event %#x", l.rank, m.Event))
				return
			}
			if m.Address < uint64(l.cfg.Base) || m.Address-uint64(l.cfg.Base) >= uint64(l.cfg.Length) {
				h.die(l, fmt.Errorf("dsm: rank %d: fault at %#x outside the region at %#x", l.rank, m.Address, l.cfg.Base))
				return
			}
			l.d.fault(int((m.Address-uint64(l.cfg.Base))/uint64(l.cfg.PageSize)), m.IsWrite())
		}
		if n < len(h.p.msgs) {
			return
		}
	}
}

// gone ends rank l's registration: its control socket closed. Without a
// CLOSE before, the rank is lost.
func (h *hostSide) gone(l *localRank) {
	if l.gone.Load() {
		return
	}
	p := h.p
	unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, l.ctl.fd, nil)
	unix.EpollCtl(p.ep, unix.EPOLL_CTL_DEL, l.u.Fd(), nil)
	l.gone.Store(true)
	l.ctl.close()
	l.u.Close()
	l.memfd.Close()
	h.live--
	if !l.closed {
		h.rankLost(l.rank, fmt.Errorf("rank %d's process ended", l.rank))
	}
}

// rankLost fails, in every local rank's driver, what depended on rank r,
// and tells the other hosts if r was local.
func (h *hostSide) rankLost(r int, err error) {
	if h.lost[r] {
		return
	}
	h.lost[r] = true
	h.p.tracef("lost rank %d: %v", r, err)
	for _, l := range h.order {
		if l.rank != r && !l.closed && !l.gone.Load() {
			l.d.peerLost(r)
		}
	}
	if l := h.locals[r]; l != nil {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(r))
		for _, c := range h.p.net.conns {
			if c.state != peerGone && !c.closed && !c.wrShut {
				c.queue(wire.ChanControl, typeMemLost, h.p.cfg.Rank, b[:])
			}
		}
	}
}

// hostLost handles the end of the connection with the host whose leader
// is j: every rank of it that did not say BYE is lost.
func (h *hostSide) hostLost(j int, err error) {
	for r, lj := range h.leaderOf {
		if lj == j && !h.bye[r] {
			h.rankLost(r, err)
		}
	}
}

// announce queues, on a new host connection, what happened to this
// host's ranks before it was up.
func (h *hostSide) announce(c *rawConn) {
	var b [4]byte
	for _, l := range h.order {
		switch {
		case h.lost[l.rank]:
			binary.BigEndian.PutUint32(b[:], uint32(l.rank))
			c.queue(wire.ChanControl, typeMemLost, h.p.cfg.Rank, b[:])
		case l.closed:
			c.queue(wire.ChanControl, typeBye, l.rank)
		}
	}
}

// parseHostPeer handles what another host's page server sent.
func (p *pager) parseHostPeer(c *rawConn) {
	h, j := p.host, c.rank
	bad := func(err error) {
		p.peerLost(j, fmt.Errorf("bad frame from the page server of rank %d's host: %w", j, err))
	}
	for !c.closed {
		f, ok, err := c.next(p.maxIn)
		if err != nil {
			bad(err)
			return
		}
		if !ok {
			return
		}
		ofHost := func(r int) bool { return r >= 0 && r < len(h.leaderOf) && h.leaderOf[r] == j }
		switch {
		case f.Channel == wire.ChanDSM:
			if len(f.Body) < 4 || !ofHost(f.Source) {
				bad(fmt.Errorf("DSM frame of type %d from rank %d", f.Type, f.Source))
				return
			}
			to := int(binary.BigEndian.Uint32(f.Body))
			l := h.locals[to]
			if l == nil {
				bad(fmt.Errorf("DSM frame for rank %d, not served here", to))
				return
			}
			if h.lost[to] {
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], uint32(to))
				c.queue(wire.ChanControl, typeMemLost, p.cfg.Rank, b[:])
				continue
			}
			if l.closed || l.gone.Load() {
				continue
			}
			f.Body = f.Body[4:]
			l.d.deliver(f)
		case f.Channel == wire.ChanControl && f.Type == typeBye && ofHost(f.Source):
			h.bye[f.Source] = true
		case f.Channel == wire.ChanControl && f.Type == typeMemLost && len(f.Body) == 4:
			r := int(binary.BigEndian.Uint32(f.Body))
			if !ofHost(r) {
				bad(fmt.Errorf("LOST of rank %d", r))
				return
			}
			h.rankLost(r, fmt.Errorf("rank %d was lost (its host's page server says so)", r))
		default:
			p.logf("dsm host page server: ignoring a %s frame of type %d from rank %d's host", f.Channel, f.Type, j)
		}
	}
}
