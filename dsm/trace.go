package dsm

import (
	"encoding/json"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/internal/coherence"
	"github.com/dsmexec/dsmexec/internal/dsmhook"
	"github.com/dsmexec/dsmexec/internal/falseshare"
	"github.com/dsmexec/dsmexec/internal/trace"
)

// What the memory records for mpirun -trace and -report-html
// (docs/TRACING.md): lock waits on the rank's recorder; per page, the
// faults, pages moved in, invalidations and write grants, the byte ranges
// this rank wrote (a copy of the page when write access is granted,
// compared with the page when the access is revoked: one page copy per
// write grant, nothing on the writes themselves), and every fault as a
// slice. The driver keeps these only when DSMEXEC_TRACE is set (the page
// server inherits the environment); rank fetches them at Finalize.

// EnvReport (DSMEXEC_DSM_REPORT=1, set by mpirun -summary) turns the
// per-page counts and written ranges on without a trace.
const EnvReport = "DSMEXEC_DSM_REPORT"

// maxFaultRecs bounds the fault slices kept (about 40 bytes each).
const maxFaultRecs = 1 << 20

// maxRangesPerPage bounds the written ranges kept per page.
const maxRangesPerPage = 16

func init() {
	dsmhook.SetTrace = func(m any, rec *trace.Recorder) { m.(*Memory).trace.rec.Store(rec) }
	dsmhook.Report = func(m any) *dsmhook.PageReport { return m.(*Memory).pageReport() }
	dsmhook.WatchLocks = func(m any, f func(int) func()) { m.(*Memory).trace.watch.Store(&f) }
	dsmhook.LockTimes = func(m any) (wait, hold time.Duration) {
		t := &m.(*Memory).trace
		return time.Duration(t.lockWait.Load()), time.Duration(t.lockHold.Load())
	}
}

// memTrace is the Memory's part: the rank's recorder and lock times.
type memTrace struct {
	rec      atomic.Pointer[trace.Recorder]
	watch    atomic.Pointer[func(id int) func()] // the rank's deadlock state (dsmhook.WatchLocks)
	lockWait atomic.Int64                        // ns waited in Mutex.Lock
	lockHold atomic.Int64                        // ns between Lock returning and Unlock
	heldMu   sync.Mutex
	heldAt   map[int]time.Time // lock id -> when Lock returned
}

// lockBegin is called at the start of Mutex.Lock; the func it returns at
// its end.
func (m *Memory) lockBegin(id int) func() {
	t := &m.trace
	start := time.Now()
	sp := t.rec.Load().Begin(trace.KindLock, trace.Args{Lock: id})
	var watched func()
	if f := t.watch.Load(); f != nil {
		watched = (*f)(id)
	}
	return func() {
		now := time.Now()
		if watched != nil {
			watched()
		}
		sp.End(trace.Args{})
		t.lockWait.Add(int64(now.Sub(start)))
		t.heldMu.Lock()
		if t.heldAt == nil {
			t.heldAt = map[int]time.Time{}
		}
		t.heldAt[id] = now
		t.heldMu.Unlock()
	}
}

// unlocked is called by Mutex.Unlock.
func (m *Memory) unlocked(id int) {
	t := &m.trace
	t.heldMu.Lock()
	at, ok := t.heldAt[id]
	delete(t.heldAt, id)
	t.heldMu.Unlock()
	if ok {
		now := time.Now()
		t.lockHold.Add(int64(now.Sub(at)))
		t.rec.Load().Complete(0, trace.KindHold, at, now, trace.Args{Lock: id})
	}
}

// pageReport fetches the driver's report (from the page server with the
// userfaultfd backend); nil when there is none.
func (m *Memory) pageReport() *dsmhook.PageReport {
	r, ok := m.impl.(interface{ pageReport() *dsmhook.PageReport })
	if !ok {
		return nil
	}
	rep := r.pageReport()
	if rep != nil {
		rep.PageSize, rep.Pages = m.pageSize, len(m.data)/m.pageSize
	}
	return rep
}

// reportJSON is the page server's answer to ctlReport.
func (d *driver) reportJSON() []byte {
	d.mu.Lock()
	r := d.rep.snapshotLocked()
	d.mu.Unlock()
	if r == nil {
		return nil
	}
	b, _ := json.Marshal(r)
	return b
}

// pageRec is the driver's recording; nil when off. Its methods need the
// driver's mutex.
type pageRec struct {
	d       *driver
	pages   map[coherence.Page]*dsmhook.PageCount
	twins   map[coherence.Page][]byte
	writes  map[coherence.Page][]falseshare.Range
	faults  []dsmhook.FaultRec
	dropped int
	present map[coherence.Page]bool // pages held (tracing)
	held    []dsmhook.Held
	src     int  // the rank the frame being stepped came from
	slices  bool // record every fault (tracing)
}

func newPageRec(d *driver) *pageRec {
	if os.Getenv(trace.EnvTrace) == "" && os.Getenv(EnvReport) == "" {
		return nil
	}
	return &pageRec{d: d, pages: map[coherence.Page]*dsmhook.PageCount{}, twins: map[coherence.Page][]byte{},
		writes: map[coherence.Page][]falseshare.Range{}, present: map[coherence.Page]bool{}, src: -1, slices: os.Getenv(trace.EnvTrace) != ""}
}

func (r *pageRec) count(p coherence.Page) *dsmhook.PageCount {
	c := r.pages[p]
	if c == nil {
		c = &dsmhook.PageCount{Page: int64(p)}
		r.pages[p] = c
	}
	return c
}

// fault: a fault on p that needs the protocol (once per fetch).
func (r *pageRec) fault(p coherence.Page) {
	if r != nil {
		r.count(p).Faults++
	}
}

// source: the frame being stepped came from rank src (-1: none).
func (r *pageRec) source(src int) {
	if r != nil {
		r.src = src
	}
}

// filled: page p was installed (data from r.src unless zero).
func (r *pageRec) filled(p coherence.Page, zero, write bool) {
	if r == nil {
		return
	}
	c := r.count(p)
	if !zero {
		c.Moves++
	}
	if !r.present[p] {
		r.present[p] = true
		r.heldChanged()
	}
	if write {
		r.granted(p)
	}
}

// granted: this rank got write access to p: keep a copy to compare with
// at the revocation.
func (r *pageRec) granted(p coherence.Page) {
	if r == nil {
		return
	}
	r.count(p).Grants++
	tw := r.twins[p]
	if tw == nil {
		tw = make([]byte, r.d.ps)
	}
	if r.d.ops.Read(int(p), tw) == nil {
		r.twins[p] = tw
	}
}

// revoked: this rank's write access to p ends (to = None: dropped, an
// invalidation; else downgraded to read).
func (r *pageRec) revoked(p coherence.Page, from, to coherence.Access) {
	if r == nil {
		return
	}
	if to == coherence.None {
		r.count(p).Invalidations++
		if r.present[p] {
			delete(r.present, p)
			r.heldChanged()
		}
	}
	tw := r.twins[p]
	if from != coherence.Write || tw == nil {
		return
	}
	delete(r.twins, p)
	cur := make([]byte, r.d.ps)
	if r.d.ops.Read(int(p), cur) != nil {
		return
	}
	if rs := falseshare.Diff(tw, cur, maxRangesPerPage); len(rs) > 0 {
		r.writes[p] = bound(falseshare.Merge(append(r.writes[p], rs...)))
	}
}

// resolved: the fault on p that began at start is served.
func (r *pageRec) resolved(p coherence.Page, start time.Time, write bool) {
	if r == nil || !r.slices {
		return
	}
	if len(r.faults) >= maxFaultRecs {
		r.dropped++
		return
	}
	r.faults = append(r.faults, dsmhook.FaultRec{Page: int64(p), Write: write, Start: start.UnixNano(), End: time.Now().UnixNano(), From: r.src})
}

func (r *pageRec) snapshot() *dsmhook.PageReport {
	if r == nil {
		return nil
	}
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	return r.snapshotLocked()
}

func (r *pageRec) snapshotLocked() *dsmhook.PageReport {
	if r == nil {
		return nil
	}
	out := &dsmhook.PageReport{Faults: append([]dsmhook.FaultRec(nil), r.faults...), FaultsDropped: r.dropped, Held: append([]dsmhook.Held(nil), r.held...)}
	for p, c := range r.pages {
		pc := *c
		pc.Written = append([]falseshare.Range(nil), r.writes[p]...)
		out.Counts = append(out.Counts, pc)
	}
	// Pages still held for writing: compare now.
	for p, tw := range r.twins {
		cur := make([]byte, r.d.ps)
		if r.d.ops.Read(int(p), cur) != nil {
			continue
		}
		rs := bound(falseshare.Merge(append(append([]falseshare.Range(nil), r.writes[p]...), falseshare.Diff(tw, cur, maxRangesPerPage)...)))
		for i := range out.Counts {
			if out.Counts[i].Page == int64(p) {
				out.Counts[i].Written = rs
			}
		}
	}
	return out
}

// bound joins the closest of sorted, disjoint ranges until at most
// maxRangesPerPage are left.
func bound(rs []falseshare.Range) []falseshare.Range {
	for len(rs) > maxRangesPerPage {
		best := 0
		for i := 1; i+1 < len(rs); i++ {
			if rs[i+1].Off-rs[i].End() < rs[best+1].Off-rs[best].End() {
				best = i
			}
		}
		rs[best] = falseshare.Range{Off: rs[best].Off, Len: rs[best+1].End() - rs[best].Off}
		rs = append(rs[:best+1], rs[best+2:]...)
	}
	return rs
}

// heldChanged samples the number of pages held (tracing only; bounded
// like the fault slices).
func (r *pageRec) heldChanged() {
	if !r.slices || len(r.held) >= maxFaultRecs {
		return
	}
	r.held = append(r.held, dsmhook.Held{At: time.Now().UnixNano(), Pages: int64(len(r.present))})
}
