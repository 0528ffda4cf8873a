package rank

import (
	"sync/atomic"
	"time"
)

// Request is a non-blocking send or receive (Isend, Irecv). Wait or Test
// it; a nil *Request is skipped by Waitall and Waitany, like
// MPI_REQUEST_NULL.
type Request struct {
	e *engine
	g *group // translates the source to a communicator rank

	ctx     uint32
	from    int // world rank or AnySource
	tag     int
	into    []byte // RecvInto's buffer
	hasInto bool

	pseq         uint64 // posting order
	pnext, pprev *Request
	plist        *rlist

	done     atomic.Bool
	st       Status
	n        int
	buf      []byte
	err      error
	w        *waiter // who to wake on completion (under engine.mu)
	returned bool    // Waitany returned it already
	traced   bool    // its message was recorded as taken (trace.go)
	wt       waiter
	pooled   bool
}

func (r *Request) commRank(src int) int {
	if r.g == nil {
		return src
	}
	return r.g.commRank(src)
}

// doneRequest is a request already complete.
func doneRequest(st Status, buf []byte, err error) *Request {
	r := &Request{st: st, buf: buf, err: err}
	r.done.Store(true)
	return r
}

// Wait blocks until the request is complete and returns its status (a
// send's status is empty). Waiting again returns the same at once.
func (r *Request) Wait() (Status, error) {
	if r == nil {
		return Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	if t := r.tracer(); t != nil {
		sp := t.wait(r)
		defer func() { t.waitEnd(sp, r) }()
	}
	if !r.done.Load() {
		e := r.e
		e.mu.Lock()
		r.wt.req = r
		if r.wt.ch == nil {
			r.wt.ch = make(chan struct{}, 1)
		}
		r.w = &r.wt
		e.mu.Unlock()
		var gen uint64
		if r.g != nil {
			gen = r.g.w.enterRecv(r.g, callWait, r.g.commRank(r.from), r.tag)
		}
		e.block(&r.wt)
		if r.g != nil {
			r.g.w.leave(gen)
		}
	}
	return r.st, r.fatal()
}

// fatal passes the request's error through the world's error mode.
func (r *Request) fatal() error {
	if r.err == nil || r.g == nil {
		return r.err
	}
	return r.g.w.check(waitName, r.err)
}

func waitName() string { return "Wait" }

// Test reports whether the request is complete, without blocking (it
// makes progress on the connections if no other goroutine is).
func (r *Request) Test() (bool, Status, error) {
	if r == nil {
		return true, Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	start := r.tracer().now()
	if !r.done.Load() {
		r.e.tryProgress()
		if !r.done.Load() {
			return false, Status{}, nil
		}
	}
	r.tracer().test(r, start)
	return true, r.st, r.fatal()
}

// Status is the status of a completed request (zero before).
func (r *Request) Status() Status {
	if r == nil || !r.done.Load() {
		return Status{}
	}
	return r.st
}

// Bytes is the message a completed receive request got (nil before, and
// for sends).
func (r *Request) Bytes() []byte {
	if r == nil || !r.done.Load() {
		return nil
	}
	return r.buf
}

// Waitall waits for every request and returns the first error (every
// request is waited for even after an error). nil entries are skipped.
func Waitall(reqs ...*Request) error {
	var first error
	for _, r := range reqs {
		if r == nil {
			continue
		}
		if _, err := r.Wait(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Waitany waits until one of the requests not yet returned by an earlier
// Waitany is complete and returns its index and status; index -1 when no
// such request is left (all nil or returned). Requests complete in any
// order; among several complete ones the lowest index is returned.
func Waitany(reqs ...*Request) (int, Status, error) {
	var t *tracer
	for _, r := range reqs {
		if t = r.tracer(); t != nil {
			break
		}
	}
	if t == nil {
		return waitany(reqs)
	}
	sp := t.wait(nil)
	i, st, err := waitany(reqs)
	if i >= 0 {
		t.waitEnd(sp, reqs[i])
	} else {
		t.waitEnd(sp, nil)
	}
	return i, st, err
}

func waitany(reqs []*Request) (int, Status, error) {
	var e *engine
	var g *group
	var first *Request
	pending := false
	for i, r := range reqs {
		if r == nil || r.returned {
			continue
		}
		if r.done.Load() {
			r.returned = true
			return i, r.st, r.fatal()
		}
		pending = true
		if r.e != nil {
			e = r.e
		}
		if first == nil {
			first, g = r, r.g
		}
	}
	if !pending {
		return -1, Status{}, nil
	}
	w := newWaiter()
	w.cond = func() bool {
		for _, r := range reqs {
			if r != nil && !r.returned && r.done.Load() {
				return true
			}
		}
		return false
	}
	e.mu.Lock()
	for _, r := range reqs {
		if r != nil && !r.returned && !r.done.Load() {
			r.w = w
		}
	}
	e.mu.Unlock()
	var gen uint64
	if g != nil {
		g.w.recvRec.reqs.Store(&reqs)
		gen = g.w.enterRecv(g, callWaitany, g.commRank(first.from), first.tag)
	}
	e.block(w)
	if g != nil {
		g.w.leave(gen)
	}
	e.mu.Lock()
	for _, r := range reqs {
		if r != nil && r.w == w {
			r.w = nil
		}
	}
	e.mu.Unlock()
	for i, r := range reqs {
		if r != nil && !r.returned && r.done.Load() {
			r.returned = true
			return i, r.st, r.fatal()
		}
	}
	return -1, Status{}, nil // unreachable: block returns once one is done
}

// getReqLocked returns a pooled request for a blocking receive.
func (e *engine) getReqLocked() *Request {
	if k := len(e.freeReqs); k > 0 {
		r := e.freeReqs[k-1]
		e.freeReqs = e.freeReqs[:k-1]
		return r
	}
	r := &Request{e: e, pooled: true}
	r.wt.ch = make(chan struct{}, 1)
	return r
}

func (e *engine) putReqLocked(r *Request) {
	ch := r.wt.ch
	*r = Request{e: e, pooled: true}
	r.wt.ch = ch
	if len(e.freeReqs) < 64 {
		e.freeReqs = append(e.freeReqs, r)
	}
}

// irecv posts a receive and returns its request.
func (e *engine) irecv(g *group, ctx uint32, from, tag int) *Request {
	r := &Request{e: e, g: g, ctx: ctx, from: from, tag: tag}
	r.wt.ch = make(chan struct{}, 1)
	e.mu.Lock()
	e.postLocked(r)
	e.demandLocked(from)
	e.mu.Unlock()
	return r
}

// recv is a blocking receive: into buf (hasInto) or a new slice. It
// allocates nothing of its own when the message fits buf.
func (e *engine) recv(g *group, ctx uint32, from, tag int, buf []byte, hasInto bool) (int, []byte, Status, error) {
	e.mu.Lock()
	r := e.getReqLocked()
	r.g, r.ctx, r.from, r.tag, r.into, r.hasInto = g, ctx, from, tag, buf, hasInto
	r.wt.req = r
	r.w = &r.wt
	e.postLocked(r)
	e.demandLocked(from)
	if !r.done.Load() && e.closed == nil && e.canDriveLocked() {
		// The usual case, without block's round of the lock: become the
		// driver at once, and drop the role in the lock that ends the call.
		e.driver = &r.wt
		e.mu.Unlock()
		e.drive(&r.wt)
		e.mu.Lock()
		e.dropDriverLocked()
	}
	if !r.done.Load() {
		e.mu.Unlock()
		e.block(&r.wt)
		e.mu.Lock()
	} else {
		e.handoffLocked()
		select { // (block drains it too)
		case <-r.wt.ch:
		default:
		}
	}
	n, b, st, err := r.n, r.buf, r.st, r.err
	e.putReqLocked(r)
	e.mu.Unlock()
	return n, b, st, err
}

// probe finds the earliest matching message without taking it; with
// wait, it blocks until there is one.
func (e *engine) probe(g *group, ctx uint32, from, tag int, wait bool) (Status, bool, error) {
	var st Status
	var found bool
	var err error
	look := func() bool {
		if m := e.q.findUnexpected(ctx, from, tag); m != nil {
			st, found = Status{Source: g.commRank(m.src), Tag: m.tag, Count: m.total}, true
			return true
		}
		if e.closed != nil {
			err = e.closed
			return true
		}
		if derr := e.downFor(ctx, from); derr != nil {
			err = derr
			return true
		}
		return false
	}
	e.mu.Lock()
	if look() {
		e.mu.Unlock()
		return st, found, err
	}
	if !wait {
		e.mu.Unlock()
		e.tryProgress()
		e.mu.Lock()
		look()
		e.mu.Unlock()
		return st, found, err
	}
	w := newWaiter()
	w.cond = look
	e.blockListed(&e.probers, w)
	e.mu.Unlock()
	return st, found, err
}

// send sends one message to world rank `to` on ctx.
func (e *engine) send(ctx uint32, to, tag int, b []byte) error {
	e.ctr.sent(to, len(b))
	if to == e.rank {
		e.ctr.arrived(to, len(b))
		e.sendSelf(ctx, tag, b)
		return nil
	}
	// The usual case without the engine's lock: a link that is up.
	// (Whether it goes down just after the look or just before makes no
	// difference: a write to a peer that is gone fails or is lost, as
	// with the lock.)
	if l := e.out[to].Load(); l != nil && !l.gone.Load() && !e.stop.Load() {
		if err := l.send(ctx, tag, b); err != nil {
			return e.sendFailed(l, to, err)
		}
		return nil
	}
	e.mu.Lock()
	if e.closed != nil {
		e.mu.Unlock()
		return e.closed
	}
	l := e.links[to]
	if l == nil {
		var err error
		if l, err = e.linkLocked(to); err != nil {
			e.mu.Unlock()
			return err
		}
	}
	if l.down != nil {
		err := l.down
		e.mu.Unlock()
		return err
	}
	e.mu.Unlock()
	if err := l.send(ctx, tag, b); err != nil {
		return e.sendFailed(l, to, err)
	}
	return nil
}

// sendFailed is the error of a send to `to` whose write on l failed.
func (e *engine) sendFailed(l *link, to int, err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed != nil {
		return e.closed
	}
	if l.down != nil {
		return l.down
	}
	return &PeerError{Rank: to, Err: err}
}

// sendSelf delivers a message from this rank to itself: to a posted
// receive, else kept as unexpected (self messages are always buffered).
func (e *engine) sendSelf(ctx uint32, tag int, b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.newMsgLocked()
	m.ctx, m.src, m.tag, m.total = ctx, e.rank, tag, len(b)
	e.q.seq++
	m.seq = e.q.seq
	if r := e.q.findPosted(ctx, e.rank, tag); r != nil {
		e.q.unpost(r)
		m.req, m.direct = r, true
		var dst []byte
		if r.hasInto {
			copy(r.into, b)
			dst = r.into
		} else {
			dst = append([]byte{}, b...)
		}
		e.completeLocked(m, dst)
		return
	}
	buf, ok := e.getBufLocked(len(b))
	if !ok {
		buf = make([]byte, len(b))
	}
	copy(buf, b)
	m.buf, m.pooled, m.complete, m.counted = buf, ok, true, true
	e.unexpBytes += int64(len(b))
	e.q.file(m)
	for _, w := range e.probers {
		e.wakeLocked(w)
	}
}

// background watches the links while no goroutine waits: a lost peer or
// a BYE is seen within bgPeriod, and queued data is taken in.
func (e *engine) background() {
	defer close(e.bgDone)
	t := time.NewTicker(bgPeriod)
	defer t.Stop()
	for {
		select {
		case <-e.bgStop:
			return
		case <-t.C:
			e.checkStalled()
			e.tryProgress()
		}
	}
}

const bgPeriod = 200 * time.Millisecond
