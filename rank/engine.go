package rank

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// engine is the one matching engine of a rank: point-to-point, requests,
// collectives and communicators all post receives and file messages here.
// Progress is made by whichever goroutine waits (the driver); see
// ENGINE.md.
type engine struct {
	rank, size int

	mu      sync.Mutex
	q       matcher
	links   []*link                // by world rank; nil for this rank
	out     []atomic.Pointer[link] // links as senders see them without the lock (set with links)
	down    []error                // by world rank: non-nil once nothing more comes from it
	hard    []bool                 // down because lost (not a normal finalize)
	members map[uint32][]bool
	closed  error

	// Unexpected-message memory.
	unexpBytes int64
	limit      int64
	stalled    []*link // links stopped at a message that does not fit

	// The driver role.
	driver     *waiter
	queue      []*waiter
	probers    []*waiter
	closeWait  chan struct{}
	pollWaiter waiter // the driver of tryProgress
	parked     atomic.Bool
	stop       atomic.Bool // closed is set: the driver stops (read without the lock)
	resumeWant atomic.Bool
	toResume   []*link

	direct    *link         // the driver's: the socket link its receive waits on, read directly while spinning
	rings     []*link       // the links over shared memory, polled every round
	nSock     int           // links over a socket only
	rounds    uint          // rounds with rings
	quick     bool          // the driver's spinning round: with rings only, epoll is skipped in most
	poller    *poller       // nil in a world without peers
	spin      time.Duration // the longest spin (DSMEXEC_SPIN)
	oversub   bool          // more ranks than CPUs on this host: spin yielding the CPU
	spinCur   time.Duration // the current window (adaptive)
	spinProbe int

	freeReqs []*Request
	freeMsgs []*msg
	bufs     [nbufClass][][]byte

	bgStop chan struct{}
	bgDone chan struct{}

	// Connections on demand (link.go): want starts one to a peer (nil: the
	// links are all given at start); new links wait in pend until the
	// driver (or, with none, the installer) puts them in.
	want     func(peer int)
	pend     []*link
	pendWant atomic.Bool
	connWait []*waiter // senders waiting for a link

	ctr counters // messages per peer (counters.go)
}

// waiter is a goroutine blocked in the engine: until ready() says so, it
// either drives progress or sleeps on ch.
type waiter struct {
	ch       chan struct{}
	req      *Request    // ready when req is done, or
	cond     func() bool // ready when cond says so (needs engine.mu)
	queued   bool
	deadline time.Time
}

func newWaiter() *waiter { return &waiter{ch: make(chan struct{}, 1)} }

func (w *waiter) ready() bool {
	if w.req != nil {
		return w.req.done.Load()
	}
	return w.cond()
}

func (w *waiter) expired() bool {
	return !w.deadline.IsZero() && !time.Now().Before(w.deadline)
}

func (w *waiter) expiredAt(now time.Time) bool {
	return !w.deadline.IsZero() && !now.Before(w.deadline)
}

func newEngine(rank, size int) *engine {
	return &engine{
		rank: rank, size: size,
		q:       newMatcher(),
		links:   make([]*link, size),
		out:     make([]atomic.Pointer[link], size),
		down:    make([]error, size),
		hard:    make([]bool, size),
		members: map[uint32][]bool{},
		limit:   defaultUnexpectedLimit,
		ctr:     newCounters(size),
	}
}

// register records which world ranks belong to a context (for failing
// AnySource receives when a member is lost).
func (e *engine) register(ctx uint32, worldRanks []int) {
	m := make([]bool, e.size)
	for _, r := range worldRanks {
		m[r] = true
	}
	e.mu.Lock()
	e.members[ctx] = m
	e.mu.Unlock()
}

func (e *engine) unregister(ctx uint32) {
	e.mu.Lock()
	delete(e.members, ctx)
	e.mu.Unlock()
}

func (e *engine) isMember(ctx uint32, r int) bool {
	m, ok := e.members[ctx]
	return !ok || m[r]
}

// wakeLocked makes w look again: the driver is kicked out of its park,
// any other waiter gets a token on its channel.
func (e *engine) wakeLocked(w *waiter) {
	if w == nil {
		return
	}
	if w == e.driver {
		e.nudgeLocked()
		return
	}
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// nudgeLocked kicks a parked driver (it looks at its waiter and at the
// resume list again).
func (e *engine) nudgeLocked() {
	if e.driver != nil && e.parked.Load() && e.poller != nil {
		e.poller.kick()
	}
}

// handoffLocked gives the free driver role to the first queued waiter.
func (e *engine) handoffLocked() {
	if e.driver != nil || len(e.queue) == 0 {
		return
	}
	w := e.queue[0]
	copy(e.queue, e.queue[1:])
	e.queue = e.queue[:len(e.queue)-1]
	w.queued = false
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (e *engine) dequeueLocked(w *waiter) {
	if !w.queued {
		return
	}
	for i, x := range e.queue {
		if x == w {
			copy(e.queue[i:], e.queue[i+1:])
			e.queue = e.queue[:len(e.queue)-1]
			break
		}
	}
	w.queued = false
}

// block returns once w is ready (or its deadline passed). Meanwhile the
// caller drives progress if nobody else does, else sleeps until the
// driver completes its request or hands it the role.
func (e *engine) block(w *waiter) {
	e.mu.Lock()
	for !w.ready() && !w.expired() && e.closed == nil {
		if e.canDriveLocked() {
			e.driver = w
			e.mu.Unlock()
			e.drive(w)
			e.mu.Lock()
			e.dropDriverLocked()
			continue
		}
		w.queued = true
		e.queue = append(e.queue, w)
		e.mu.Unlock()
		if w.deadline.IsZero() {
			<-w.ch
		} else {
			t := time.NewTimer(time.Until(w.deadline))
			select {
			case <-w.ch:
			case <-t.C:
			}
			t.Stop()
		}
		e.mu.Lock()
		e.dequeueLocked(w)
	}
	e.handoffLocked()
	e.mu.Unlock()
	select { // a stale token must not wake the next use
	case <-w.ch:
	default:
	}
}

// drive makes progress until w is ready: it reads the links itself,
// spinning after the last progress, then parks on the epoll set.
//
// The spin adapts like an adaptive mutex: data that arrives while
// spinning doubles the next window (up to e.spin), a window that ends in
// parking halves it, and at zero every 16th wait probes with a quarter of
// e.spin. A window in which the thread was preempted (the CPU is
// contended: spinning takes it from someone, maybe the peer) counts as a
// miss, and one that also ended in parking stops spinning. On a loaded
// machine spinning so dies out. Preemption is seen without a system call:
// the clock, read every few empty rounds, moved more than preemptGap
// between two reads, so the thread was off the CPU meanwhile (a few empty
// rounds take a few µs at most).
func (e *engine) drive(w *waiter) {
	spin := e.nextSpin()
	spinning := spin > 0
	preempted := false
	// The clock is read once every clockEvery empty rounds (time.Now costs
	// 100-200 ns on these VMs, as much as a round over the rings), and
	// once when the window starts: not after a round that made progress,
	// which usually ends the wait.
	clockEvery := 16
	if e.nSock > 0 {
		clockEvery = 2 // a round over sockets is an epoll_wait: µs
	}
	e.direct = e.directFor(w)
	defer func() { e.direct = nil }()
	var last, spinEnd time.Time
	fresh := true // the window starts at the next empty round
	idle := 0     // empty rounds since the clock was read
	for {
		if w.req != nil {
			// Without the lock: done and stop are atomics, and closeWait
			// is only set after closed (stop).
			if w.req.done.Load() || e.stop.Load() {
				return
			}
		} else {
			e.mu.Lock()
			ok := w.ready() || e.closeWait != nil || e.closed != nil
			e.mu.Unlock()
			if ok {
				return
			}
		}
		e.quick = true
		did := e.progress(false, time.Time{})
		e.quick = false
		if did {
			if spinning {
				if preempted {
					e.spinMiss() // the CPU was contended: spinning took it from someone
				} else {
					e.spinHit()
				}
				spinning = false
			}
			spin = e.spinCur
			fresh = true
			preempted = false
			continue
		}
		if spin > 0 {
			if fresh {
				last = time.Now()
				spinEnd = last.Add(spin)
				fresh, idle = false, 0
				if w.expiredAt(last) {
					return
				}
				continue
			}
			if idle++; idle < clockEvery {
				e.yieldIfOversub()
				continue
			}
			idle = 0
			now := time.Now()
			if now.Sub(last) > preemptGap && !e.oversub {
				preempted = true
			}
			last = now
			if w.expiredAt(now) {
				return
			}
			if now.Before(spinEnd) {
				e.yieldIfOversub()
				continue
			}
		}
		if spinning {
			if preempted {
				e.spinCur = 0
			} else {
				e.spinMiss()
			}
			spinning = false
		}
		e.parked.Store(true)
		e.mu.Lock()
		ok := w.ready() || w.expired() || e.closeWait != nil || e.closed != nil
		e.mu.Unlock()
		if !ok {
			e.progress(true, w.deadline)
		}
		e.parked.Store(false)
		if ok || w.expired() {
			return
		}
		spin = e.spinCur
		fresh = true
		preempted = false
	}
}

// directFor is the socket link a receive from one source reads while the
// driver spins (nil: none): one read that finds the message instead of an
// epoll_wait that says it is there and the read after it.
func (e *engine) directFor(w *waiter) *link {
	if w.req == nil || w.req.from < 0 || w.req.from >= len(e.links) {
		return nil
	}
	if l := e.links[w.req.from]; l != nil && l.rr == nil {
		return l
	}
	return nil
}

// directEvery: while the driver reads one socket directly, the epoll set
// (the other links, kicks, room to write) is asked every directEvery-th
// round.
const directEvery = 8

// yieldIfOversub lets a runnable process on this CPU (perhaps the peer
// this rank waits for) run first, on a host with more ranks than CPUs.
func (e *engine) yieldIfOversub() {
	if e.oversub {
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// preemptGap is the longest an empty round of the driver takes while its
// thread keeps the CPU (a few µs with epoll_wait); a longer one means the
// thread was descheduled.
const preemptGap = 50 * time.Microsecond

// The adaptive spin window (the driver only; the role passes under e.mu).
func (e *engine) nextSpin() time.Duration {
	if e.spin == 0 {
		return 0
	}
	if e.spinCur == 0 {
		e.spinProbe++
		if e.spinProbe%16 == 0 {
			return e.spin / 4
		}
	}
	return e.spinCur
}

// spinHit: data came while spinning. The window doubles, to at least an
// eighth of the longest: from a probe (the window at 0) a window of 1 µs
// is shorter than the peer's turnaround in a ping-pong (a receive and a
// send, 2-3 µs), so it missed and fell back to 0 again and again, and
// every wait parked.
func (e *engine) spinHit() {
	e.spinCur = min(e.spin, max(2*e.spinCur, e.spin/8))
}

func (e *engine) spinMiss() {
	e.spinCur /= 2
	if e.spinCur < time.Microsecond {
		e.spinCur = 0
	}
}

// tryProgress makes one non-blocking round of progress if nobody else is
// driving (Test, Iprobe).
func (e *engine) tryProgress() {
	e.mu.Lock()
	if e.driver != nil || e.closeWait != nil || e.poller == nil {
		e.mu.Unlock()
		return
	}
	e.driver = &e.pollWaiter
	e.mu.Unlock()
	e.progress(false, time.Time{})
	e.mu.Lock()
	e.dropDriverLocked()
	e.handoffLocked()
	e.mu.Unlock()
}

// dropDriverLocked ends the caller's turn as the driver: the links that
// came meanwhile go in, and a shutdown waiting for the role is told.
func (e *engine) dropDriverLocked() {
	e.driver = nil
	e.installPendingLocked()
	if e.closeWait != nil {
		close(e.closeWait)
		e.closeWait = nil
	}
}

// canDriveLocked says whether a waiter may take the free driver role.
func (e *engine) canDriveLocked() bool {
	return e.driver == nil && e.closeWait == nil && e.poller != nil
}

// progress is one round of the driver: resume stalled links if asked,
// then read every ready link. It reports whether anything happened.
func (e *engine) progress(park bool, deadline time.Time) bool {
	did := false
	if e.pendWant.Load() {
		e.mu.Lock()
		did = e.installPendingLocked()
		e.mu.Unlock()
	}
	if e.resumeWant.Load() {
		did = e.resume() || did
	}
	prepared := false
	if len(e.rings) > 0 {
		if e.pollRings() {
			did = true
		}
		if park && !did {
			prepared = true
			if e.prepareRings() {
				did = true
			}
		}
		// With rings only, the sockets carry doorbells (not needed while
		// not parked) and EOF: look at them every 32nd round.
		e.rounds++
		if e.quick && e.nSock == 0 && e.rounds%32 != 0 {
			return did
		}
	}
	if l := e.direct; l != nil && e.quick {
		e.rounds++
		if e.rounds%directEvery != 0 {
			if l.down == nil && !l.stalled {
				n := l.nread
				l.pump()
				did = did || l.nread != n || l.down != nil
			}
			return did
		}
	}
	evs, err := e.poller.wait(park && !did, deadline)
	if prepared {
		e.cancelRings()
	}
	if err != nil {
		return did
	}
	for _, ev := range evs {
		if ev.Fd == kickData {
			e.poller.drainKick()
			did = true
			continue
		}
		l := e.links[ev.Fd]
		if l == nil {
			continue
		}
		if ev.Events&outEvent != 0 {
			e.mu.Lock()
			if l.wantOut {
				l.wantOut = false
				l.writable = true
				e.interestLocked(l)
				e.wakeLocked(l.writer)
			}
			e.mu.Unlock()
			did = true
		}
		if ev.Events&^outEvent != 0 {
			if l.rr != nil {
				if err := l.pumpDoorbells(); err != nil {
					l.lost(err)
				}
			}
			l.pump()
			did = true
		}
	}
	return did
}

// resume restarts the links the resume list names (the driver only).
func (e *engine) resume() bool {
	e.mu.Lock()
	ls := e.toResume
	e.toResume = nil
	e.resumeWant.Store(false)
	var run []*link
	for _, l := range ls {
		if l.down != nil {
			continue
		}
		if !l.stalled || e.unstallLocked(l) {
			run = append(run, l) // unstalled, or with bytes buffered at start
		}
	}
	e.mu.Unlock()
	for _, l := range run {
		l.pump()
	}
	return len(run) > 0
}

// checkStalled looks at the stalled links (out of the epoll set): one whose
// peer closed its side is resumed, so a lost peer is seen even there.
func (e *engine) checkStalled() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.stalled {
		if l.peerClosed {
			continue
		}
		fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
			l.peerClosed = true
			e.scheduleResumeLocked(l)
		}
	}
}

// scheduleResumeLocked asks the driver to look at a stalled link again.
func (e *engine) scheduleResumeLocked(l *link) {
	for _, x := range e.toResume {
		if x == l {
			return
		}
	}
	e.toResume = append(e.toResume, l)
	e.resumeWant.Store(true)
	e.nudgeLocked()
}

// freedLocked returns n bytes of unexpected memory and restarts the
// stalled links.
func (e *engine) freedLocked(n int) {
	e.unexpBytes -= int64(n)
	if len(e.stalled) > 0 {
		for _, l := range e.stalled {
			e.scheduleResumeLocked(l)
		}
	}
}

// Buffers for unexpected messages: pooled in power-of-two classes from 64
// bytes to 64 KiB; larger ones are allocated exactly.
const (
	minBufShift = 6
	nbufClass   = 11
	maxPooled   = 1 << (minBufShift + nbufClass - 1)
	maxPerClass = 64
)

func bufClass(n int) int {
	c := 0
	for 1<<(minBufShift+c) < n {
		c++
	}
	return c
}

func (e *engine) getBufLocked(n int) ([]byte, bool) {
	if n > maxPooled {
		return nil, false
	}
	c := bufClass(n)
	if k := len(e.bufs[c]); k > 0 {
		b := e.bufs[c][k-1]
		e.bufs[c] = e.bufs[c][:k-1]
		return b[:n], true
	}
	return make([]byte, n, 1<<(minBufShift+c)), true
}

func (e *engine) putBufLocked(b []byte) {
	c := bufClass(cap(b))
	if 1<<(minBufShift+c) != cap(b) || len(e.bufs[c]) >= maxPerClass {
		return
	}
	e.bufs[c] = append(e.bufs[c], b[:0])
}

func (e *engine) newMsgLocked() *msg {
	if k := len(e.freeMsgs); k > 0 {
		m := e.freeMsgs[k-1]
		e.freeMsgs = e.freeMsgs[:k-1]
		return m
	}
	return &msg{}
}

func (e *engine) freeMsgLocked(m *msg) {
	*m = msg{}
	if len(e.freeMsgs) < 1024 {
		e.freeMsgs = append(e.freeMsgs, m)
	}
}

// arriveLocked handles a message header: it goes to the earliest posted
// receive that matches, else it is filed as unexpected. It returns where
// the payload goes: dst (possibly shorter than total: truncation; nil: no
// room yet), and whether the link must stall.
func (e *engine) arriveLocked(m *msg) (dst []byte, alloc, stall bool) {
	e.q.seq++
	m.seq = e.q.seq
	e.ctr.arrived(m.src, m.total)
	if r := e.q.findPosted(m.ctx, m.src, m.tag); r != nil {
		e.q.unpost(r)
		m.req = r
		m.direct = true
		if r.hasInto {
			return r.into, false, false
		}
		return nil, m.total > 0, false
	}
	e.q.file(m)
	for _, w := range e.probers {
		e.wakeLocked(w)
	}
	if m.total > 0 && e.unexpBytes+int64(m.total) > e.limit {
		m.stalled = true
		return nil, false, true
	}
	e.unexpBytes += int64(m.total)
	m.counted = true
	if b, ok := e.getBufLocked(m.total); ok {
		m.buf, m.pooled = b, true
		return b, false, false
	}
	return nil, true, false
}

// unstallLocked lets a stalled link go on, if its message now has a
// receive or fits the memory bound.
func (e *engine) unstallLocked(l *link) bool {
	m := l.cur
	switch {
	case m.req != nil:
		if m.req.hasInto {
			l.dst = m.req.into
		} else {
			l.dst = make([]byte, m.total)
		}
	case e.unexpBytes+int64(m.total) <= e.limit || l.peerClosed:
		// (A peer that closed can have sent only what the kernel holds:
		// reading it is bounded, and its loss is then seen.)
		e.unexpBytes += int64(m.total)
		m.counted = true
		if b, ok := e.getBufLocked(m.total); ok {
			m.buf, m.pooled = b, true
		} else {
			m.buf = make([]byte, m.total)
		}
		l.dst = m.buf
	default:
		return false
	}
	m.stalled = false
	l.stalled = false
	for i, x := range e.stalled {
		if x == l {
			e.stalled = append(e.stalled[:i], e.stalled[i+1:]...)
			break
		}
	}
	e.interestLocked(l)
	return true
}

// completeLocked: the whole payload of m has arrived (into dst).
func (e *engine) completeLocked(m *msg, dst []byte) {
	if m.direct {
		r := m.req
		e.finishDirectLocked(r, m, dst)
		e.freeMsgLocked(m)
		return
	}
	if m.buf == nil && m.total > 0 {
		m.buf = dst
	}
	m.complete = true
	if m.req != nil {
		e.deliverLocked(m.req, m)
	}
}

// finishDirectLocked completes r whose payload went straight to dst.
func (e *engine) finishDirectLocked(r *Request, m *msg, dst []byte) {
	n := m.total
	if r.hasInto {
		if n > len(r.into) {
			r.err = truncated(r, m.total, len(r.into))
			n = len(r.into)
		}
		r.n = n
	} else {
		r.buf = dst[:m.total:m.total]
		if r.buf == nil {
			r.buf = []byte{}
		}
		r.n = m.total
	}
	e.doneLocked(r, m.src, m.tag, m.total)
}

// deliverLocked gives the complete unexpected message m to r.
func (e *engine) deliverLocked(r *Request, m *msg) {
	e.q.unfile(m)
	if r.hasInto {
		n := copy(r.into, m.buf[:m.total])
		if m.total > len(r.into) {
			r.err = truncated(r, m.total, len(r.into))
		}
		r.n = n
		if m.pooled {
			e.putBufLocked(m.buf)
		}
	} else {
		r.buf = m.buf[:m.total:m.total]
		if r.buf == nil {
			r.buf = []byte{}
		}
		r.n = m.total
	}
	if m.counted {
		e.freedLocked(m.total)
	}
	e.doneLocked(r, m.src, m.tag, m.total)
	e.freeMsgLocked(m)
}

func (e *engine) doneLocked(r *Request, src, tag, count int) {
	r.st = Status{Source: r.commRank(src), Tag: tag, Count: count}
	r.done.Store(true)
	e.wakeLocked(r.w)
}

func (e *engine) failLocked(r *Request, err error) {
	r.err = err
	r.st = Status{Source: -1, Tag: -1}
	r.done.Store(true)
	e.wakeLocked(r.w)
}

// postLocked posts receive r: it takes the earliest matching unexpected
// message, or waits on the posted lists.
func (e *engine) postLocked(r *Request) {
	if e.closed != nil {
		e.failLocked(r, e.closed)
		return
	}
	if m := e.q.findUnexpected(r.ctx, r.from, r.tag); m != nil {
		e.q.unfile(m)
		switch {
		case m.complete:
			e.deliverLocked(r, m)
		case m.stalled:
			m.req = r
			m.direct = true
			e.scheduleResumeLocked(e.links[m.src])
		default:
			m.req = r // delivered when the rest arrives
		}
		return
	}
	if err := e.downFor(r.ctx, r.from); err != nil {
		e.failLocked(r, err)
		return
	}
	e.q.post(r)
}

// downFor is the error a receive from `from` (or AnySource) in ctx gets
// now, if no message can come any more.
func (e *engine) downFor(ctx uint32, from int) error {
	if from >= 0 {
		return e.down[from]
	}
	var bye error
	alive := false
	peers := false
	for p, err := range e.down {
		if p == e.rank || !e.isMember(ctx, p) {
			continue
		}
		peers = true
		if err == nil {
			alive = true
		} else if e.hard[p] {
			return err
		} else {
			bye = err
		}
	}
	if !alive && peers {
		return bye // every other member finalized
	}
	return nil
}

// peerDownLocked records that nothing more comes from peer and fails what
// waited for it.
func (e *engine) peerDownLocked(peer int, err error, hard bool) {
	if e.down[peer] != nil {
		return
	}
	e.down[peer] = err
	e.hard[peer] = hard
	var fail []*Request
	for _, r := range e.q.postedAll() {
		if r.from == peer || r.from == AnySource && e.downFor(r.ctx, AnySource) != nil {
			fail = append(fail, r)
		}
	}
	for _, r := range fail {
		e.q.unpost(r)
		e.failLocked(r, err)
	}
	for _, w := range e.probers {
		e.wakeLocked(w)
	}
	e.nudgeLocked()
}

func truncated(r *Request, total, room int) error {
	return fmt.Errorf("%w: a message of %d bytes does not fit the buffer of %d bytes", ErrTruncate, total, room)
}

// ErrTruncate is returned by RecvInto (and a receive request with a
// buffer) when the message is longer than the buffer, like MPI_ERR_TRUNCATE;
// the buffer holds the message's first bytes.
var ErrTruncate = errors.New("rank: message truncated")

// start takes over the mesh's connections: links in the epoll set, the
// background watcher running.
func (e *engine) start(links []*link, spin time.Duration, limit int64) error {
	p, err := newPoller()
	if err != nil {
		return err
	}
	e.poller = p
	p.blocking = os.Getenv("DSMEXEC_PARK") == "syscall"
	// DSMEXEC_OVERSUB, a switch for measurements and tests: "park" does
	// not spin at all on an oversubscribed host, "yield" spins as on one
	// whatever the count of ranks.
	switch os.Getenv("DSMEXEC_OVERSUB") {
	case "park":
		if e.oversub {
			spin = 0
		}
	case "yield":
		e.oversub = true
	}
	e.spin, e.spinCur = spin, spin
	e.limit = limit
	e.mu.Lock()
	for _, l := range links {
		if l == nil {
			continue
		}
		e.links[l.peer] = l
		e.out[l.peer].Store(l)
		if l.rr != nil {
			e.rings = append(e.rings, l)
		} else {
			e.nSock++
		}
		e.interestLocked(l)
		if l.rend > 0 {
			e.toResume = append(e.toResume, l)
		}
	}
	if len(e.toResume) > 0 {
		e.resumeWant.Store(true)
	}
	e.mu.Unlock()
	e.bgStop = make(chan struct{})
	e.bgDone = make(chan struct{})
	go e.background()
	return nil
}

// shutdown says BYE to every peer, takes in what they still send until
// each has closed too (or timeout), then fails whatever still waits and
// closes the connections.
func (e *engine) shutdown(timeout time.Duration) {
	if e.poller != nil {
		for _, l := range e.links {
			if l == nil {
				continue
			}
			e.mu.Lock()
			down := l.down != nil && l.down.(*PeerError).Err != errPeerFinalized
			e.mu.Unlock()
			if !down {
				l.sendBye()
			}
			if l.rr != nil {
				l.flushDoorbell()
			}
			unix.Shutdown(l.fd, unix.SHUT_WR)
		}
		w := newWaiter()
		w.cond = func() bool {
			for _, l := range e.links {
				if l != nil && l.down == nil {
					return false
				}
			}
			return true
		}
		w.deadline = time.Now().Add(timeout)
		e.block(w)
		close(e.bgStop)
		<-e.bgDone
	}
	e.mu.Lock()
	if e.closed == nil {
		e.closed = ErrFinalized
		e.stop.Store(true)
	}
	fail := e.q.postedAll()
	for _, r := range fail {
		e.q.unpost(r)
		e.failLocked(r, e.closed)
	}
	for _, w := range e.probers {
		e.wakeLocked(w)
	}
	for _, l := range e.links {
		if l != nil {
			e.wakeLocked(l.writer)
		}
	}
	for _, w := range e.queue {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	if e.driver != nil {
		ch := make(chan struct{})
		e.closeWait = ch
		e.nudgeLocked()
		e.mu.Unlock()
		<-ch
		e.mu.Lock()
	}
	e.driver = &waiter{} // nobody drives any more
	e.mu.Unlock()
	if e.poller != nil {
		for _, l := range e.links {
			if l != nil {
				unix.Close(l.fd)
				if l.seg != nil {
					l.seg.Close()
				}
			}
		}
		e.poller.close()
	}
}

// recvWithin is recv into a new slice that gives up after d: ok false and
// no message taken if none arrived by then. With d 0 it takes only a
// complete message already filed, without driving progress. A receive
// whose message started arriving before the time ran out waits for the
// rest.
func (e *engine) recvWithin(ctx uint32, from, tag int, d time.Duration) ([]byte, bool, error) {
	b, _, ok, err := e.recvWithinInto(ctx, from, tag, nil, false, d)
	return b, ok, err
}

// recvWithinInto is recvWithin that, with hasInto, receives into buf like
// RecvInto: n is the message's length (ErrTruncate when it exceeds buf).
func (e *engine) recvWithinInto(ctx uint32, from, tag int, buf []byte, hasInto bool, d time.Duration) ([]byte, int, bool, error) {
	e.mu.Lock()
	if d <= 0 {
		m := e.q.findUnexpected(ctx, from, tag)
		if m == nil || !m.complete {
			e.mu.Unlock()
			return nil, 0, false, nil
		}
	}
	r := e.getReqLocked()
	r.ctx, r.from, r.tag, r.into, r.hasInto = ctx, from, tag, buf, hasInto
	r.wt.req = r
	r.w = &r.wt
	e.postLocked(r)
	e.mu.Unlock()
	if !r.done.Load() {
		r.wt.deadline = time.Now().Add(d)
		e.block(&r.wt)
		r.wt.deadline = time.Time{}
	}
	e.mu.Lock()
	if !r.done.Load() && r.plist != nil {
		e.q.unpost(r)
		e.putReqLocked(r)
		e.mu.Unlock()
		return nil, 0, false, nil
	}
	e.mu.Unlock()
	if !r.done.Load() {
		e.block(&r.wt) // matched: the payload is on its way
	}
	b, n, err := r.buf, r.st.Count, r.err
	e.mu.Lock()
	e.putReqLocked(r)
	e.mu.Unlock()
	return b, n, err == nil || errors.Is(err, ErrTruncate), err
}

// RecvWithin makes the collective transport a collective.TimedReceiver, so
// that collectives say their mismatch hellos only after waiting.
func (t *collTransport) RecvWithin(from int, d time.Duration) ([]byte, bool, error) {
	return t.g.e.recvWithin(t.g.collCtx, t.g.worldRank(from), t.tag, d)
}
