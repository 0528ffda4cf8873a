package rank

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/internal/dsmhook"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
	"github.com/dsmexec/dsmexec/internal/trace"
)

// tracer records this rank's calls for mpirun -trace, -report-html and
// DSMEXEC_TRACE (docs/TRACING.md). A nil *tracer is off: every method
// starts with a nil check and returns a zero trace.Span, whose End does
// nothing, so a call site costs a predictable branch and no allocation.
//
// Flow ids (the arrows from a send to the receive that took it) need no
// bytes on the wire: messages from one rank to another with one context
// and tag are received in the order they were sent (MPI's non-overtaking
// rule), so the k-th such message sent and the k-th received are the same
// one. Both ends count per (peer, context, tag) and record the same id, a
// hash of (sender, receiver, context, tag, k). Two cases can swap the
// arrows of two such identical messages (never draw one to a wrong
// peer or tag): two goroutines sending them at once, and receive
// requests of one (source, tag) waited for in another order than posted.
type tracer struct {
	rec  *trace.Recorder
	rank int

	sent []flowCounts // messages sent, per world rank sent to
	got  []flowCounts // messages received, per world rank received from

	init     trace.Span    // Init, from the recorder's start to its end
	file     *os.File      // DSMEXEC_TRACE=FILE: the stream goes there
	stop     chan struct{} // ends the pump
	done     <-chan error  // the pump's result
	stopOnce sync.Once

	pagesDone atomic.Bool // the page server's faults are recorded (recordPages)
}

// flowCounts counts the messages of one peer per (context, tag). The
// counter of the last pair used is found without a lock (a ping-pong
// uses one pair over and over); the others in a map.
type flowCounts struct {
	last atomic.Pointer[flowCount]
	mu   sync.Mutex
	m    map[flowKey]*flowCount
}

type flowKey struct {
	ctx uint32
	tag int
}

type flowCount struct {
	flowKey
	n atomic.Uint64
}

// count is the counter of (ctx, tag).
func (f *flowCounts) count(ctx uint32, tag int) *flowCount {
	if c := f.last.Load(); c != nil && c.ctx == ctx && c.tag == tag {
		return c
	}
	k := flowKey{ctx, tag}
	f.mu.Lock()
	c := f.m[k]
	if c == nil {
		if f.m == nil {
			f.m = map[flowKey]*flowCount{}
		}
		c = &flowCount{flowKey: k}
		f.m[k] = c
	}
	f.mu.Unlock()
	f.last.Store(c)
	return c
}

// newTracer makes the tracer of world rank `rank` of a world of size.
func newTracer(rec *trace.Recorder, rank, size int) *tracer {
	return &tracer{rec: rec, rank: rank, sent: make([]flowCounts, size), got: make([]flowCounts, size), stop: make(chan struct{})}
}

// off says whether t records nothing: t is nil (tracing off), or the
// program was built with the tag dsmexec_notrace, which compiles every
// call site's tracing away (the baseline of make bench's "tracing off"
// row).
func (t *tracer) off() bool { return !traceBuilt || t == nil }

// flowID is the id both ends of a message compute (never 0).
func flowID(src, dst int, ctx uint32, tag int, k uint64) uint64 {
	h := uint64(14695981039346656037)
	for _, v := range [5]uint64{uint64(src), uint64(dst), uint64(ctx), uint64(tag), k} {
		h ^= v
		h *= 1099511628211
		h ^= h >> 29
	}
	return h | 1
}

// sendFlow numbers a message about to be sent to world rank to.
func (t *tracer) sendFlow(to int, ctx uint32, tag int) uint64 {
	if to < 0 || to >= len(t.sent) {
		return 0
	}
	return flowID(t.rank, to, ctx, tag, t.sent[to].count(ctx, tag).n.Add(1))
}

// recvFlow numbers a message received from world rank from; peek leaves
// the count (Probe: the next receive takes the same message).
func (t *tracer) recvFlow(from int, ctx uint32, tag int, peek bool) uint64 {
	if from < 0 || from >= len(t.got) {
		return 0
	}
	c := t.got[from].count(ctx, tag)
	var n uint64
	if peek {
		n = c.n.Load() + 1
	} else {
		n = c.n.Add(1)
	}
	return flowID(from, t.rank, ctx, tag, n)
}

// send begins a Send (or Sendrecv) slice; to is a communicator rank.
func (t *tracer) send(k trace.Kind, g *group, to, tag, n int) trace.Span {
	if t.off() || to == ProcNull {
		return trace.Span{}
	}
	wr := g.worldRank(to)
	return t.rec.Begin(k, trace.Args{Peer: wr, Tag: tag, Bytes: int64(n), Comm: int(g.p2p), Flow: t.sendFlow(wr, g.p2p, tag)})
}

// recv begins a receive-like slice (Recv, Probe, Wait).
func (t *tracer) recv(k trace.Kind, g *group, from, tag int) trace.Span {
	if t.off() {
		return trace.Span{}
	}
	if from >= 0 {
		from = g.worldRank(from)
	}
	return t.rec.Begin(k, trace.Args{Peer: from, Tag: tag, Comm: int(g.p2p)})
}

// recvEnd ends a receive-like slice with what it took (st in the
// communicator's ranks); peek for probes.
func (t *tracer) recvEnd(sp trace.Span, g *group, st Status, err error, peek bool) {
	if t.off() {
		return
	}
	if err != nil || st.Source < 0 {
		sp.End(trace.Args{Peer: -1, Tag: -1})
		return
	}
	src := g.worldRank(st.Source)
	sp.End(trace.Args{Peer: src, Tag: st.Tag, Bytes: int64(st.Count), Flow: t.recvFlow(src, g.p2p, st.Tag, peek)})
}

// collKinds maps a collective's call name (up to "(") to its kind.
var collKinds = map[string]trace.Kind{
	"Barrier": trace.KindBarrier, "Finalize": trace.KindFinalize,
	"Bcast": trace.KindBcast, "BcastSlice": trace.KindBcast,
	"Gather": trace.KindGather, "GatherSlice": trace.KindGather,
	"Allgather": trace.KindAllgather, "AllgatherSlice": trace.KindAllgather,
	"Scatter": trace.KindScatter, "ScatterSlice": trace.KindScatter,
	"Reduce": trace.KindReduce, "ReduceLoc": trace.KindReduce, "ReduceFunc": trace.KindReduce,
	"ReduceScatter": trace.KindReduce,
	"Allreduce":     trace.KindAllreduce, "AllreduceLoc": trace.KindAllreduce, "AllreduceFunc": trace.KindAllreduce,
	"Alltoall": trace.KindAlltoall, "AlltoallSlice": trace.KindAlltoall,
	"Scan": trace.KindScan, "Exscan": trace.KindScan,
}

// traceColl begins a collective's slice on c (nil when c does not trace;
// else the func that ends it); call is its description
// ("Bcast(root 2)"), formatted only when tracing. The slice's bytes are
// what this rank sent during it.
func traceColl(c Communicator, call func() string) func() {
	var g *group
	switch x := c.(type) {
	case *World:
		g = x.group
	case *Comm:
		g = x.group
	}
	if g == nil || g.w.tr.off() {
		return nil
	}
	t := g.w.tr
	name := call()
	root := 0
	if i := strings.IndexByte(name, '('); i >= 0 {
		if rest, ok := strings.CutPrefix(name[i+1:], "root "); ok {
			if j := strings.IndexAny(rest, ",)"); j > 0 {
				root, _ = strconv.Atoi(rest[:j])
			}
		}
		name = name[:i]
	}
	k, ok := collKinds[name]
	if !ok {
		k = trace.KindAllreduce
	}
	before := t.sentBytes(g.w)
	sp := t.rec.Begin(k, trace.Args{Peer: root, Comm: int(g.collCtx)})
	return func() { sp.End(trace.Args{Bytes: t.sentBytes(g.w) - before}) }
}

// sentBytes is everything this rank has sent so far.
func (t *tracer) sentBytes(w *World) int64 {
	var n uint64
	for i := range w.e.ctr.peers {
		n += w.e.ctr.peers[i].sentBytes.Load()
	}
	return int64(n)
}

// lost records that a peer was lost.
func (t *tracer) lost(peer int) {
	if !t.off() {
		t.rec.Instant(fmt.Sprintf("lost rank %d", peer))
	}
}

// startTrace makes the recorder DSMEXEC_TRACE asks for and starts
// shipping it: to mpirun (ship, nil when there is none) or to the file.
func (w *World) startTrace(getenv func(string) string, ship func([]byte) error) error {
	rec, file, err := trace.FromEnv(getenv, trace.Config{
		Rank: w.rank, Size: w.size, Host: w.host, PID: os.Getpid(),
		Warn: func(m string) { fmt.Fprintln(os.Stderr, "rank: warning: "+m) },
	})
	if err != nil {
		return fmt.Errorf("rank %d: %w", w.rank, err)
	}
	if rec == nil {
		return nil
	}
	if !traceBuilt {
		fmt.Fprintf(os.Stderr, "rank %d: warning: %s is set but this program was built with the tag dsmexec_notrace; not tracing\n", w.rank, trace.EnvTrace)
		return nil
	}
	t := newTracer(rec, w.rank, w.size)
	if file != "" {
		f, err := os.Create(file)
		if err != nil {
			return fmt.Errorf("rank %d: DSMEXEC_TRACE: %w", w.rank, err)
		}
		t.file = f
		ship = func(b []byte) error { _, err := f.Write(b); return err }
	}
	if ship == nil {
		fmt.Fprintf(os.Stderr, "rank %d: warning: DSMEXEC_TRACE=%s but no mpirun to ship the trace to; not tracing\n", w.rank, trace.ToMaster)
		return nil
	}
	t.done = rec.Pump(200*time.Millisecond, ship, t.stop)
	t.init = rec.Begin(trace.KindInit, trace.Args{})
	w.tr = t
	return nil
}

// setClock records this rank's clock offset measured against the
// reference (mpirun's clock, or rank 0's under PMI).
func (t *tracer) setClock(samples []trace.ClockSample) {
	if t.off() {
		return
	}
	off, bound, err := trace.Offset(samples)
	if err != nil {
		return
	}
	t.rec.SetClock(-off, bound)
}

// ctxClock is the context of the clock exchange under PMI: no
// communicator has it (their contexts stay below math.MaxUint32, see
// Split).
const ctxClock = math.MaxUint32

// clockSamples is the number of exchanges of the clock measurement.
const clockSamples = 8

// alignClock measures this rank's clock against rank 0's over the mesh,
// NTP style, when it traces: under PMI (Hydra, Slurm) there is no mpirun
// whose clock the ranks measure against, and ranks on several hosts have
// their own clocks. Each rank makes clockSamples exchanges with rank 0
// (8 bytes out: T0; 24 back: T0, T1, T2; UnixNano), and records the
// offset of the one with the shortest round trip and its bound in its
// stream (trace.Offset): mpirun -merge-traces applies them. Rank 0
// records offset 0. The messages go on their own context, inside Init,
// before the program can receive anything; they are counted in the
// message counters like others. Every rank of the job calls it when
// DSMEXEC_TRACE is set; a failure costs the alignment only (a warning).
func (w *World) alignClock() {
	t := w.tr
	if t.off() {
		return
	}
	if w.rank == 0 {
		t.rec.SetClock(0, 0)
	}
	if w.size < 2 {
		return
	}
	warn := func(err error) {
		fmt.Fprintf(os.Stderr, "rank %d: warning: trace clock not aligned with rank 0's: %v\n", w.rank, err)
	}
	g := w.group
	if w.rank == 0 {
		for range clockSamples * (w.size - 1) {
			_, b, st, err := w.e.recv(g, ctxClock, AnySource, 0, nil, false)
			t1 := time.Now().UnixNano()
			if err != nil {
				warn(err)
				return
			}
			if len(b) != 8 || st.Source <= 0 {
				warn(fmt.Errorf("a clock request of %d bytes from rank %d", len(b), st.Source))
				continue
			}
			reply := binary.LittleEndian.AppendUint64(append(make([]byte, 0, 24), b...), uint64(t1))
			reply = binary.LittleEndian.AppendUint64(reply, uint64(time.Now().UnixNano()))
			if err := w.e.send(ctxClock, st.Source, 0, reply); err != nil {
				warn(err)
				return
			}
		}
		return
	}
	samples := make([]trace.ClockSample, 0, clockSamples)
	for range clockSamples {
		t0 := time.Now().UnixNano()
		if err := w.e.send(ctxClock, 0, 0, binary.LittleEndian.AppendUint64(nil, uint64(t0))); err != nil {
			warn(err)
			return
		}
		_, b, _, err := w.e.recv(g, ctxClock, 0, 0, nil, false)
		t3 := time.Now().UnixNano()
		if err != nil {
			warn(err)
			return
		}
		if len(b) != 24 || int64(binary.LittleEndian.Uint64(b)) != t0 {
			warn(fmt.Errorf("a clock reply of %d bytes that does not answer the request", len(b)))
			return
		}
		samples = append(samples, trace.ClockSample{T0: t0, T1: int64(binary.LittleEndian.Uint64(b[8:])), T2: int64(binary.LittleEndian.Uint64(b[16:])), T3: t3})
	}
	t.setClock(samples)
}

// stopTrace ships what is left (Finalize, before the connection to mpirun
// closes; or a rank about to exit). It waits at most a few seconds.
func (t *tracer) stopTrace() {
	if t.off() {
		return
	}
	first := false
	t.stopOnce.Do(func() { close(t.stop); first = true })
	if !first {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case err := <-t.done:
		if err != nil {
			fmt.Fprintf(os.Stderr, "rank %d: warning: shipping the trace: %v\n", t.rank, err)
		}
	case <-ctx.Done():
	}
	if t.file != nil {
		t.file.Close()
	}
}

// sendrecv begins a Sendrecv slice: the send's peer, bytes and flow at
// the begin, the receive's at the end (recvEnd).
func (t *tracer) sendrecv(g *group, to, tag, n, from, recvTag int) trace.Span {
	if t.off() {
		return trace.Span{}
	}
	a := trace.Args{Peer: -1, Tag: recvTag, Bytes: int64(n), Comm: int(g.p2p)}
	if to != ProcNull {
		a.Peer = g.worldRank(to)
		a.Flow = t.sendFlow(a.Peer, g.p2p, tag)
	}
	return t.rec.Begin(trace.KindSendrecv, a)
}

// iprobe: an Iprobe is recorded only when it found a message (a polling
// loop would fill the trace with empty ones).
func (t *tracer) iprobe(g *group, from, tag int) time.Time {
	if t.off() {
		return time.Time{}
	}
	return time.Now()
}

func (t *tracer) iprobeEnd(start time.Time, g *group, st Status, ok bool) {
	if t.off() || !ok || st.Source < 0 {
		return
	}
	src := g.worldRank(st.Source)
	t.rec.Complete(0, trace.KindIprobe, start, time.Now(), trace.Args{Peer: src, Tag: st.Tag, Bytes: int64(st.Count), Comm: int(g.p2p), Flow: t.recvFlow(src, g.p2p, st.Tag, true)})
}

// tracer is the tracer of the world a request belongs to (nil for
// requests made complete: sends, ProcNull).
func (r *Request) tracer() *tracer {
	if !traceBuilt || r == nil || r.g == nil {
		return nil
	}
	return r.g.w.tr
}

// wait begins a Wait (or Waitany: r nil) slice.
func (t *tracer) wait(r *Request) trace.Span {
	if t.off() {
		return trace.Span{}
	}
	if r == nil || r.e == nil || r.g == nil { // Waitany, a send (complete at post), a null request
		return t.rec.Begin(trace.KindWait, trace.Args{Peer: -1, Tag: -1})
	}
	from := r.from
	if from >= 0 {
		from = r.g.worldRank(from)
	}
	return t.rec.Begin(trace.KindWait, trace.Args{Peer: from, Tag: r.tag, Comm: int(r.g.p2p)})
}

// waitEnd ends a Wait slice; r is the request it returned (nil: none).
func (t *tracer) waitEnd(sp trace.Span, r *Request) {
	if t.off() {
		return
	}
	sp.End(t.took(r))
}

// test records a Test that found r complete, from start to now.
func (t *tracer) test(r *Request, start time.Time) {
	if t.off() {
		return
	}
	t.rec.Complete(0, trace.KindTest, start, time.Now(), t.took(r))
}

// took is the result of a call that gave the receive request r's message
// to the program: its source, tag, bytes and flow, the first time only
// (a second Wait of r returns the same at once but takes nothing).
func (t *tracer) took(r *Request) trace.Args {
	if r == nil || r.traced || r.e == nil || r.g == nil || r.err != nil || r.st.Source < 0 {
		return trace.Args{Peer: -1, Tag: -1}
	}
	r.traced = true
	src := r.g.worldRank(r.st.Source)
	return trace.Args{Peer: src, Tag: r.st.Tag, Bytes: int64(r.st.Count), Flow: t.recvFlow(src, r.g.p2p, r.st.Tag, false)}
}

// now is time.Now when t is on (a call's start), else the zero time.
func (t *tracer) now() time.Time {
	if t.off() {
		return time.Time{}
	}
	return time.Now()
}

// startTraceMpirun starts tracing under mpirun (after the table came):
// pieces go to mpirun on the rendezvous connection, the clock is measured
// against mpirun's (8 samples, the one with the shortest round trip).
func (w *World) startTraceMpirun(master *rendezvous.Client) error {
	if err := w.startTrace(os.Getenv, func(b []byte) error { return master.Trace(0, b) }); err != nil || w.tr == nil {
		return err
	}
	w.tr.setMem(w.mem)
	raw, err := master.Clock(8, 2*time.Second)
	if err != nil && len(raw) == 0 {
		fmt.Fprintf(os.Stderr, "rank %d: warning: trace clock not aligned: %v\n", w.rank, err)
		return nil
	}
	samples := make([]trace.ClockSample, len(raw))
	for i, s := range raw {
		samples[i] = trace.ClockSample{T0: s[0], T1: s[1], T2: s[2], T3: s[3]}
	}
	w.tr.setClock(samples)
	return nil
}

// setMem connects the shared memory to the rank: its lock waits are
// reported to the deadlock detector (always) and recorded (when
// tracing).
func (w *World) setMem(m *dsm.Memory) {
	if m != nil && dsmhook.WatchLocks != nil {
		dsmhook.WatchLocks(m, w.lockWait)
	}
	w.tr.setMem(m)
}

// setMem gives the shared memory the recorder (lock waits).
func (t *tracer) setMem(m *dsm.Memory) {
	if !t.off() && m != nil && dsmhook.SetTrace != nil {
		dsmhook.SetTrace(m, t.rec)
	}
}

// shipPages records the memory's faults as slices of a "page faults"
// track and ships its page report to mpirun (role 2 of the TRACE frames:
// JSON, for -report-html's heat map and false-sharing table). Finalize
// calls it while the memory still runs.
func (t *tracer) shipPages(m *dsm.Memory, master *rendezvous.Client) {
	if m == nil || dsmhook.Report == nil {
		return
	}
	rep := dsmhook.Report(m)
	if rep == nil {
		return
	}
	t.recordPages(rep)
	rep.Held = nil
	rep.Faults = nil
	if master != nil {
		b, err := json.Marshal(rep)
		if err == nil {
			master.Trace(rolePages, b)
		}
	}
}

// recordPages records a page report's faults as slices of a "page
// faults" track and its pages-held samples, once (Finalize, or a rank
// about to exit on a failure).
func (t *tracer) recordPages(rep *dsmhook.PageReport) {
	if t.off() || rep == nil || !t.pagesDone.CompareAndSwap(false, true) {
		return
	}
	if len(rep.Faults) > 0 {
		track := t.rec.NewTrack("page faults")
		for _, f := range rep.Faults {
			acc := trace.AccessRead
			if f.Write {
				acc = trace.AccessWrite
			}
			t.rec.Complete(track, trace.KindFault, time.Unix(0, f.Start), time.Unix(0, f.End), trace.Args{Page: f.Page, Access: acc, From: f.From})
		}
	}
	for _, h := range rep.Held {
		t.rec.CountAt(trace.CounterPagesHeld, h.Pages, time.Unix(0, h.At))
	}
	if rep.FaultsDropped > 0 {
		t.rec.Instant(fmt.Sprintf("%d page faults not recorded (over the bound)", rep.FaultsDropped))
	}
}

// stopTraceExit is stopTrace for a rank about to exit on a failure: it
// first records the faults its page server recorded so far (they are
// otherwise fetched at Finalize), waiting at most a second for them (the
// page server may be what failed), so that the dying rank's trace keeps
// them.
func (t *tracer) stopTraceExit(m *dsm.Memory) {
	if !t.off() && m != nil && dsmhook.Report != nil {
		got := make(chan *dsmhook.PageReport, 1)
		go func() { got <- dsmhook.Report(m) }()
		select {
		case rep := <-got:
			t.recordPages(rep)
		case <-time.After(time.Second):
		}
	}
	t.stopTrace()
}

// rolePages is the TRACE frame role of a rank's page report (JSON).
const rolePages = 2

// initDone ends the Init slice (the world is formed).
func (t *tracer) initDone() {
	if !t.off() {
		t.init.End(trace.Args{})
	}
}
