package dsm

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/internal/coherence"
	"github.com/dsmexec/dsmexec/internal/mesh"
	"github.com/dsmexec/dsmexec/internal/pagemem"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// driver carries out the coherence protocol for one rank: it feeds
// application faults, peer messages and lock calls to the pure state machine
// (coherence.Node) and performs what Ready lists, in order, with the page
// operations of the fault backend and the memory's own mesh.
//
// Every event is handled under one mutex, on the goroutine that brought it
// (a mesh reader, the fault reader, a Lock caller): the machine sees one
// event at a time, as with a single driver goroutine, without a hand-off
// between goroutines on the fault path. Sends happen under the mutex too,
// which keeps the per-link order the protocol relies on.
type driver struct {
	mu    sync.Mutex
	node  *coherence.Node
	ops   pagemem.PageOps
	tr    transport // the memory's connections to the other ranks
	rank  int
	ps    int
	bufs  [][]byte // page buffers for the batch being sent
	nbuf  int
	out   []outMsg
	data  []byte                  // contents carried by the message being stepped
	wake  bool                    // ops need an explicit wake on Resolve (userfaultfd)
	woken map[coherence.Page]bool // pages installed or upgraded in this batch: their waiters are awake
	stats Stats

	pending map[coherence.Page]time.Time // first fault time, per page being fetched
	waiters map[coherence.Page][]chan error
	locks   map[uint32]func(error) // pending Lock calls: called once, under mu

	// fatal is called (without the mutex) when the protocol cannot go on:
	// a page whose home or owner was lost, a failing page operation.
	fatal func(error)
	logf  func(format string, args ...any)
	trace bool // DSMEXEC_DSM_TRACE: log every event and action

	rep *pageRec // mpirun -trace, -report-html: per-page counts, faults (trace.go)
}

func newDriver(rank, size, pageSize int, ops pagemem.PageOps, wake bool, fatal func(error), logf func(string, ...any)) *driver {
	d := &driver{
		node:    coherence.NewNode(rank, size),
		ops:     ops,
		rank:    rank,
		ps:      pageSize,
		wake:    wake,
		pending: map[coherence.Page]time.Time{},
		woken:   map[coherence.Page]bool{},
		waiters: map[coherence.Page][]chan error{},
		locks:   map[uint32]func(error){},
		fatal:   fatal,
		logf:    logf,
		trace:   os.Getenv("DSMEXEC_DSM_TRACE") != "",
	}
	d.rep = newPageRec(d)
	return d
}

// tracef logs protocol events to stderr when DSMEXEC_DSM_TRACE is set: a
// debugging aid (it slows every fault down).
func (d *driver) tracef(format string, args ...any) {
	if d.trace {
		d.logf("dsm trace: rank %d %s "+format, append([]any{d.rank, time.Now().Format("15:04:05.000000")}, args...)...)
	}
}

// pageBuf returns a page buffer for the current batch; buffers are reused
// from batch to batch (a batch sends at most a few pages).
func (d *driver) pageBuf() []byte {
	if d.nbuf == len(d.bufs) {
		d.bufs = append(d.bufs, make([]byte, d.ps))
	}
	b := d.bufs[d.nbuf]
	d.nbuf++
	return b
}

// transport carries the driver's messages to the other ranks.
type transport interface {
	// send writes one DSM frame, body hdr+data, to rank `to`, or queues it
	// to be written in order; data may be reused once send returns.
	send(to int, typ uint8, hdr, data []byte) error
	// close says goodbye to every peer and waits (bounded) for theirs.
	close()
}

// meshTransport is the in-process (sigsegv) backend's transport: the
// mesh's reader goroutines call the driver.
type meshTransport struct{ m *mesh.Mesh }

func (t meshTransport) send(to int, typ uint8, hdr, data []byte) error {
	return t.m.Send(to, wire.ChanDSM, typ, hdr, data)
}

func (t meshTransport) close() { t.m.Close(5 * time.Second) }

// connect builds the memory's mesh. Messages that arrive before Connect
// returns wait for the mutex, so the driver never runs without its mesh.
func (d *driver) connect(ln net.Listener, addrs []string, token []byte, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	m, err := mesh.Connect(ctx, mesh.Config{
		Rank:     d.rank,
		Addrs:    addrs,
		Token:    token,
		Listener: ln,
		Handler:  d.deliver,
		OnLost:   func(peer int, err error) { d.peerLost(peer) },
		Logf:     d.logf,
		Name:     "memory of rank",
	})
	if err != nil {
		return err
	}
	d.tr = meshTransport{m}
	return nil
}

// fault is an application fault on page p.
func (d *driver) fault(p int, write bool) {
	d.mu.Lock()
	d.faultLocked(coherence.Page(p), write)
	errs := d.run()
	d.mu.Unlock()
	d.fail(errs)
}

func (d *driver) faultLocked(p coherence.Page, write bool) {
	need := coherence.Read
	if write {
		need = coherence.Write
	}
	if d.node.Access(p) < need {
		if _, ok := d.pending[p]; !ok {
			d.pending[p] = time.Now()
			d.rep.fault(p)
			if write {
				d.stats.WriteFaults++
			} else {
				d.stats.ReadFaults++
			}
		}
	}
	if d.trace {
		d.tracef("fault p%d write=%v access=%s", p, write, d.node.Access(p))
	}
	d.node.Fault(p, write)
}

// fetch makes page p accessible and waits for it (sigsegv backend).
func (d *driver) fetch(p int, write bool) error {
	ch := make(chan error, 1)
	d.mu.Lock()
	pg := coherence.Page(p)
	d.waiters[pg] = append(d.waiters[pg], ch)
	d.faultLocked(pg, write)
	errs := d.run()
	d.mu.Unlock()
	d.fail(errs)
	return <-ch
}

// deliver handles a frame from the memory's mesh.
func (d *driver) deliver(f wire.Frame) {
	if f.Channel != wire.ChanDSM {
		d.logf("memory of rank %d: ignoring a %s frame from rank %d", d.rank, f.Channel, f.Source)
		return
	}
	m, data, err := decodeMsg(f.Type, f.Body, f.Source, d.rank, d.ps)
	if err != nil {
		d.fail([]error{err})
		return
	}
	d.mu.Lock()
	if d.trace {
		d.tracef("recv %s", m)
	}
	d.data = data
	d.rep.source(f.Source)
	d.node.Step(m)
	errs := d.run()
	d.rep.source(-1)
	d.data = nil
	d.mu.Unlock()
	d.fail(errs)
}

func (d *driver) peerLost(peer int) {
	d.mu.Lock()
	d.node.PeerLost(peer)
	errs := d.run()
	d.mu.Unlock()
	d.fail(errs)
}

func (d *driver) lock(id uint32) error {
	ch := make(chan error, 1)
	d.lockAsync(id, func(err error) { ch <- err })
	return <-ch
}

// lockAsync asks for lock id; done is called (under the driver's mutex,
// so it must not call the driver) when the lock is granted or has failed.
func (d *driver) lockAsync(id uint32, done func(error)) {
	d.mu.Lock()
	if d.locks[id] != nil {
		d.mu.Unlock()
		panic(fmt.Sprintf("dsm: rank %d asked for lock %d twice", d.rank, id))
	}
	d.locks[id] = done
	d.node.Lock(id)
	errs := d.run()
	d.mu.Unlock()
	d.fail(errs)
}

// busy reports whether this rank waits for the protocol: a fault being
// fetched or a lock asked for.
func (d *driver) busy() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending) > 0 || len(d.locks) > 0
}

func (d *driver) unlock(id uint32) {
	d.mu.Lock()
	d.node.Unlock(id)
	errs := d.run()
	d.mu.Unlock()
	d.fail(errs)
}

func (d *driver) snapshot() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// resetStats zeroes the counters. A fault in flight at the reset adds its
// time when it ends but is not counted again.
func (d *driver) resetStats() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats = Stats{}
}

func (d *driver) fail(errs []error) {
	for _, err := range errs {
		if d.fatal != nil {
			d.fatal(err)
		}
	}
}

// run performs the actions the machine asks for. Local actions (fill,
// protect, wake) happen in list order; a Send captures the page contents at
// its place in the list, but every message of a batch goes out only after
// all the batch's local actions. That matters for FWD(write) at the old
// owner, [Protect(W->R), Send(PAGE data), Protect(R->None)]: sent at its
// place, the PAGE could reach the new owner, and the new owner write, while
// this rank could still read its old copy. It returns the errors that must
// end the process (reported after unlocking).
func (d *driver) run() []error {
	var errs []error
	for {
		acts := d.node.Ready()
		if len(acts) == 0 {
			return errs
		}
		d.out, d.nbuf = d.out[:0], 0
		clear(d.woken)
		for _, a := range acts {
			if err := d.do(a); err != nil {
				errs = append(errs, err)
			}
		}
		for i := range d.out {
			o := &d.out[i]
			if err := d.tr.send(o.to, o.typ, o.hdr[:], o.data); err != nil {
				// The reader of that connection reports the loss; the
				// machine then fails what depended on it.
				d.logf("memory of rank %d: send %s to rank %d: %v", d.rank, coherence.MsgType(o.typ), o.to, err)
			}
			o.data = nil
		}
	}
}

// outMsg is a message of the current batch, encoded, waiting to be sent.
type outMsg struct {
	to   int
	typ  uint8
	hdr  [msgLen]byte
	data []byte
}

func (d *driver) do(a coherence.Action) error {
	if d.trace {
		d.tracef("do %s", a)
	}
	switch a := a.(type) {
	case coherence.Send:
		o := outMsg{to: a.Msg.To, typ: uint8(a.Msg.Type)}
		encodeMsg(&o.hdr, &a.Msg)
		if a.Msg.WithData {
			o.data = d.pageBuf()
			if err := d.ops.Read(int(a.Msg.Page), o.data); err != nil {
				return fmt.Errorf("dsm: rank %d: read page %d to send it: %w", d.rank, a.Msg.Page, err)
			}
			d.stats.PagesOut++
			d.stats.BytesOut += uint64(d.ps)
		}
		d.out = append(d.out, o)
	case coherence.Fill:
		var data []byte
		if !a.Zero {
			if len(d.data) != d.ps {
				panic(fmt.Sprintf("dsm: rank %d: fill of page %d without page contents (have %d bytes)", d.rank, a.Page, len(d.data)))
			}
			data = d.data
			d.stats.BytesIn += uint64(d.ps)
		}
		d.stats.PagesIn++
		if err := d.ops.Fill(int(a.Page), data, a.Access == coherence.Write); err != nil {
			return fmt.Errorf("dsm: rank %d: install page %d: %w", d.rank, a.Page, err)
		}
		d.rep.filled(a.Page, a.Zero, a.Access == coherence.Write)
		d.woken[a.Page] = true
	case coherence.Protect:
		d.rep.revoked(a.Page, a.From, a.To)
		var err error
		switch {
		case a.To == coherence.None:
			err = d.ops.Drop(int(a.Page))
			d.stats.Invalidations++
		case a.To == coherence.Write:
			err = d.ops.Protect(int(a.Page), true)
			d.rep.granted(a.Page)
			d.woken[a.Page] = true
		default:
			err = d.ops.Protect(int(a.Page), false)
		}
		if err != nil {
			return fmt.Errorf("dsm: rank %d: change page %d from %s to %s: %w", d.rank, a.Page, a.From, a.To, err)
		}
	case coherence.Resolve:
		// Fill and Protect(->Write) wake the page's waiters themselves;
		// a fault on a page that was already accessible needs a wake.
		if d.wake && !d.woken[a.Page] {
			if err := d.ops.Wake(int(a.Page)); err != nil {
				return fmt.Errorf("dsm: rank %d: wake faults on page %d: %w", d.rank, a.Page, err)
			}
		}
		if t, ok := d.pending[a.Page]; ok {
			d.rep.resolved(a.Page, t, d.node.Access(a.Page) == coherence.Write)
			el := time.Since(t)
			d.stats.FaultTime += el
			d.stats.MaxFaultTime = max(d.stats.MaxFaultTime, el)
			delete(d.pending, a.Page)
		}
		for _, ch := range d.waiters[a.Page] {
			ch <- nil
		}
		delete(d.waiters, a.Page)
	case coherence.Fail:
		delete(d.pending, a.Page)
		err := fmt.Errorf("dsm: rank %d: fault on page %d (offset %#x) cannot be served: %w", d.rank, a.Page, int64(a.Page)*int64(d.ps), a.Err)
		ws := d.waiters[a.Page]
		delete(d.waiters, a.Page)
		if len(ws) == 0 {
			return err
		}
		for _, ch := range ws {
			ch <- err
		}
	case coherence.Granted:
		if done := d.locks[a.Lock]; done != nil {
			delete(d.locks, a.Lock)
			done(nil)
		}
	case coherence.LockFailed:
		if done := d.locks[a.Lock]; done != nil {
			delete(d.locks, a.Lock)
			done(a.Err)
		}
	default:
		panic(fmt.Sprintf("dsm: unknown action %T", a))
	}
	return nil
}

// close shuts the transport down gracefully.
func (d *driver) close() {
	d.mu.Lock()
	tr := d.tr
	d.mu.Unlock()
	if tr != nil {
		tr.close()
	}
}
