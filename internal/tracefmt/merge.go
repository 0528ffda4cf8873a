package tracefmt

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/trace"
)

// Options adjust a merge.
type Options struct {
	// Offsets overrides, per rank, the clock offset a stream recorded
	// (trace.Recorder.SetClock): the rank's clock minus the reference.
	Offsets map[int]time.Duration
}

// Slice is a finished (or, when the stream ended first, unfinished) slice
// of one stream, on the absolute reference clock (ns since the Unix epoch).
type Slice struct {
	Rank       int
	Stream     int    // index of the stream in the merge's input
	Track      uint32 // the recorder's track id
	Kind       trace.Kind
	Start, End int64
	Begin, Res trace.Args // arguments at the start, results at the end
	Unfinished bool       // the stream ended (died, cut, full) inside it
}

// sliceKey identifies a track of a stream.
type trackKey struct {
	stream int
	track  uint32
}

// Timeline is the merged content of the streams, before it is written.
type Timeline struct {
	Streams    []*trace.Stream // the streams' headers (their Events may be empty)
	Base       []int64         // per stream: absolute ns of its time 0 on the reference clock
	Slices     []Slice
	TrackNames map[trackKey]string
	Counters   []CounterSample
	Instants   []Instant
	Notes      []string // per stream: its clock offset, whether it was cut
	Min, Max   int64    // absolute ns of the first and last event
}

// CounterSample is a counter value from time At (absolute ns).
type CounterSample struct {
	Stream int
	Name   string
	At     int64
	Value  int64
}

// Instant is a point event.
type Instant struct {
	Stream  int
	Track   uint32
	At      int64
	Name    string
	Process bool // for the whole process (the limit was reached)
}

// Build pairs begins with ends, aligns the clocks and collects counters.
func Build(streams []*trace.Stream, opt Options) *Timeline {
	tl := newTimeline()
	for _, s := range streams {
		st := tl.begin(s)
		for i := range s.Events {
			st.event(&s.Events[i])
		}
		st.finish(opt)
	}
	return tl.done()
}

// BuildBytes is Build of encoded streams (trace.Decode's input), decoding
// them one at a time without keeping their events: for large traces it
// needs a third of Build's memory. A stream that does not decode is an
// error naming its index.
func BuildBytes(bufs [][]byte, opt Options) (*Timeline, error) {
	tl := newTimeline()
	for i, b := range bufs {
		var st *streamState
		hdr, err := trace.Scan(b, func(s *trace.Stream, e *trace.Event) {
			if st == nil {
				st = tl.begin(s)
			}
			st.event(e)
		})
		if err != nil {
			return nil, fmt.Errorf("tracefmt: stream %d: %w", i, err)
		}
		if st == nil {
			st = tl.begin(hdr)
		}
		// Truncated and Full are known only at the end.
		st.s.Truncated, st.s.Full = hdr.Truncated, hdr.Full
		st.finish(opt)
	}
	return tl.done(), nil
}

func newTimeline() *Timeline {
	return &Timeline{TrackNames: map[trackKey]string{}, Min: 1<<63 - 1, Max: -1 << 63}
}

func (tl *Timeline) done() *Timeline {
	if tl.Min > tl.Max {
		tl.Min, tl.Max = 0, 0
	}
	return tl
}

// streamState is a stream being built; its times are relative to the
// stream's start until finish adds the base.
type streamState struct {
	tl                      *Timeline
	s                       *trace.Stream
	si                      int
	slice0, counter0, inst0 int
	open                    map[uint32][]int
	last                    int64
	off, bound              time.Duration
	clock, explicitSent     bool
	derived                 []CounterSample
	sent                    int64
}

func (tl *Timeline) begin(s *trace.Stream) *streamState {
	hdr := *s
	hdr.Events = nil
	tl.Streams = append(tl.Streams, &hdr)
	return &streamState{tl: tl, s: &hdr, si: len(tl.Streams) - 1,
		slice0: len(tl.Slices), counter0: len(tl.Counters), inst0: len(tl.Instants),
		open: map[uint32][]int{}}
}

func (st *streamState) event(e *trace.Event) {
	tl, si := st.tl, st.si
	at := int64(e.Time)
	switch e.Op {
	case trace.OpTrack:
		tl.TrackNames[trackKey{si, e.Track}] = e.Name
		return
	case trace.OpClock:
		st.off, st.bound, st.clock = e.Offset, e.Bound, true
		return
	}
	st.last = max(st.last, at)
	switch e.Op {
	case trace.OpBegin:
		tl.Slices = append(tl.Slices, Slice{Rank: st.s.Rank, Stream: si, Track: e.Track, Kind: e.Kind, Start: at, End: at, Begin: e.Args})
		st.open[e.Track] = append(st.open[e.Track], len(tl.Slices)-1)
	case trace.OpEnd:
		stk := st.open[e.Track]
		if len(stk) == 0 {
			return // its begin was in a piece that was lost
		}
		i := stk[len(stk)-1]
		st.open[e.Track] = stk[:len(stk)-1]
		sl := &tl.Slices[i]
		sl.End = max(at, sl.Start)
		sl.Res = e.Args
		if (sl.Kind == trace.KindSend || sl.Kind == trace.KindSendrecv) && sl.Begin.Bytes > 0 {
			st.sent += sl.Begin.Bytes
			st.derived = append(st.derived, CounterSample{si, trace.CounterBytesSent.String(), sl.End, st.sent})
		}
	case trace.OpComplete:
		end := at + int64(e.Dur)
		if end < at {
			end = at // a duration past the end of time
		}
		st.last = max(st.last, end)
		tl.Slices = append(tl.Slices, Slice{Rank: st.s.Rank, Stream: si, Track: e.Track, Kind: e.Kind, Start: at, End: end, Begin: e.Args, Res: e.Args})
	case trace.OpCounter:
		if e.Counter == trace.CounterBytesSent {
			st.explicitSent = true
		}
		tl.Counters = append(tl.Counters, CounterSample{si, e.Counter.String(), at, e.Value})
	case trace.OpInstant:
		name := e.Name
		if name == "" {
			name = "(unnamed event)"
		}
		tl.Instants = append(tl.Instants, Instant{Stream: si, Track: e.Track, At: at, Name: name})
	case trace.OpFull:
		tl.Instants = append(tl.Instants, Instant{Stream: si, At: at, Name: "trace limit reached: recording stopped", Process: true})
	}
}

// finish closes the slices still open when the stream ended (the rank
// died, was cut, or filled its buffer inside them: they last until its
// last event), and moves the stream's times onto the reference clock.
func (st *streamState) finish(opt Options) {
	tl, s := st.tl, st.s
	off := st.off
	if o, ok := opt.Offsets[s.Rank]; ok {
		off = o
	}
	base := s.Start.UnixNano() - int64(off)
	tl.Base = append(tl.Base, base)
	for _, stk := range st.open {
		for _, i := range stk {
			tl.Slices[i].End = max(st.last, tl.Slices[i].Start)
			tl.Slices[i].Unfinished = true
		}
	}
	if !st.explicitSent {
		tl.Counters = append(tl.Counters, st.derived...)
	}
	see := func(t int64) {
		tl.Min = min(tl.Min, t)
		tl.Max = max(tl.Max, t)
	}
	for i := st.slice0; i < len(tl.Slices); i++ {
		tl.Slices[i].Start += base
		tl.Slices[i].End += base
		see(tl.Slices[i].Start)
		see(tl.Slices[i].End)
	}
	for i := st.counter0; i < len(tl.Counters); i++ {
		tl.Counters[i].At += base
		see(tl.Counters[i].At)
	}
	for i := st.inst0; i < len(tl.Instants); i++ {
		tl.Instants[i].At += base
		see(tl.Instants[i].At)
	}
	if st.clock {
		tl.Notes = append(tl.Notes, fmt.Sprintf("rank %d (%s): offset %v ± %v", s.Rank, s.Role, st.off, st.bound))
	}
	if s.Truncated {
		tl.Notes = append(tl.Notes, fmt.Sprintf("rank %d (%s): trace cut short", s.Rank, s.Role))
	}
}

// event is one trace-event JSON object.
type event struct {
	Name string         `json:"name,omitempty"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   json.Number    `json:"ts,omitempty"`
	Dur  json.Number    `json:"dur,omitempty"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	ID   int            `json:"id,omitempty"`
	Bp   string         `json:"bp,omitempty"`
	S    string         `json:"s,omitempty"`
	Args map[string]any `json:"args,omitempty"`
}

// us formats ns as microseconds with ns precision, exactly.
func us(ns int64) json.Number {
	neg := ""
	if ns < 0 {
		neg, ns = "-", -ns
	}
	return json.Number(neg + strconv.FormatInt(ns/1000, 10) + "." + fmt.Sprintf("%03d", ns%1000))
}

// Pid is the trace-event process id of a rank (pid 0 is treated as the
// idle process by some viewers).
func Pid(rank int) int { return rank + 1 }

// Write writes the timeline as trace-event JSON: one process per rank
// named "rank N@host", a thread per track (goroutine, page server),
// complete ("X") events, flow events from each send to the receive that
// matched it, counters ("C"), instants.
func (tl *Timeline) Write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	t0 := tl.Min
	var events []event
	// Processes.
	type proc struct {
		host string
		tids map[trackKey][]int // lanes
		next int
	}
	procs := map[int]*proc{}
	var ranks []int
	for _, s := range tl.Streams {
		if procs[s.Rank] == nil {
			procs[s.Rank] = &proc{host: s.Host, tids: map[trackKey][]int{}, next: 1}
			ranks = append(ranks, s.Rank)
		}
	}
	sort.Ints(ranks)
	for _, r := range ranks {
		name := fmt.Sprintf("rank %d", r)
		if h := procs[r].host; h != "" {
			name += "@" + h
		}
		events = append(events,
			event{Name: "process_name", Ph: "M", Pid: Pid(r), Args: map[string]any{"name": name}},
			event{Name: "process_sort_index", Ph: "M", Pid: Pid(r), Args: map[string]any{"sort_index": r}})
	}

	// Lanes: slices of one track that do not nest (the page server's
	// faults overlap) are spread over extra threads so each nests.
	type placed struct {
		sl  *Slice
		tid int
	}
	byTrack := map[trackKey][]*Slice{}
	var keys []trackKey
	for i := range tl.Slices {
		sl := &tl.Slices[i]
		k := trackKey{sl.Stream, sl.Track}
		if byTrack[k] == nil {
			keys = append(keys, k)
		}
		byTrack[k] = append(byTrack[k], sl)
	}
	for _, in := range tl.Instants {
		k := trackKey{in.Stream, in.Track}
		if !in.Process && byTrack[k] == nil {
			keys = append(keys, k)
			byTrack[k] = []*Slice{}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].stream != keys[j].stream {
			return keys[i].stream < keys[j].stream
		}
		return keys[i].track < keys[j].track
	})
	sliceTid := map[*Slice]int{}
	// item is an event of a thread, made into JSON only as it is written.
	type item struct {
		ts   int64
		ph   byte // 'X', 's', 'f', 'i'
		sl   *Slice
		id   int
		name string
	}
	perTid := map[[2]int][]item{} // (pid, tid) -> its events
	var tidOrder [][2]int
	for _, k := range keys {
		s := tl.Streams[k.stream]
		p := procs[s.Rank]
		sls := byTrack[k]
		sort.SliceStable(sls, func(i, j int) bool {
			if sls[i].Start != sls[j].Start {
				return sls[i].Start < sls[j].Start
			}
			return sls[i].End > sls[j].End
		})
		var lanes [][]*Slice // stacks of open slices
		var laneTid []int
		name := tl.TrackNames[k]
		if name == "" {
			name = fmt.Sprintf("track %d", k.track)
		}
		if s.Role != "" && s.Role != "rank" {
			name = s.Role + ": " + name
		}
		newLane := func() int {
			tid := p.next
			p.next++
			lanes = append(lanes, nil)
			laneTid = append(laneTid, tid)
			n := name
			if len(lanes) > 1 {
				n = fmt.Sprintf("%s (%d)", name, len(lanes))
			}
			events = append(events,
				event{Name: "thread_name", Ph: "M", Pid: Pid(s.Rank), Tid: tid, Args: map[string]any{"name": n}},
				event{Name: "thread_sort_index", Ph: "M", Pid: Pid(s.Rank), Tid: tid, Args: map[string]any{"sort_index": tid}})
			tidOrder = append(tidOrder, [2]int{Pid(s.Rank), tid})
			return len(lanes) - 1
		}
		newLane()
		for _, sl := range sls {
			lane := -1
			for li := range lanes {
				st := lanes[li]
				for len(st) > 0 && st[len(st)-1].End <= sl.Start {
					st = st[:len(st)-1]
				}
				lanes[li] = st
				if len(st) == 0 || st[len(st)-1].End >= sl.End {
					lane = li
					break
				}
			}
			if lane < 0 {
				lane = newLane()
			}
			lanes[lane] = append(lanes[lane], sl)
			tid := laneTid[lane]
			sliceTid[sl] = tid
			key := [2]int{Pid(s.Rank), tid}
			perTid[key] = append(perTid[key], item{ts: sl.Start, ph: 'X', sl: sl})
		}
		for _, in := range tl.Instants {
			if in.Process || (trackKey{in.Stream, in.Track}) != k {
				continue
			}
			key := [2]int{Pid(s.Rank), laneTid[0]}
			perTid[key] = append(perTid[key], item{ts: in.At, ph: 'i', name: in.Name})
		}
	}

	// Flows: from the send that carried an id to the receive that matched
	// it; ids seen at only one end (the other rank's trace was cut, the
	// message was never received) draw nothing.
	sends := map[uint64]*Slice{}
	recvs := map[uint64]*Slice{}
	for i := range tl.Slices {
		sl := &tl.Slices[i]
		if (sl.Kind == trace.KindSend || sl.Kind == trace.KindSendrecv) && sl.Begin.Flow != 0 {
			sends[sl.Begin.Flow] = sl
		}
		if sl.Res.Flow != 0 && sl.Kind != trace.KindSend && !sl.Unfinished {
			// The receive that took the message wins over probes that
			// only looked at it.
			if old, dup := recvs[sl.Res.Flow]; !dup || isProbe(old.Kind) && !isProbe(sl.Kind) {
				recvs[sl.Res.Flow] = sl
			}
		}
	}
	var ids []uint64
	for id := range sends {
		if recvs[id] != nil {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for n, id := range ids {
		s, r := sends[id], recvs[id]
		sk := [2]int{Pid(s.Rank), sliceTid[s]}
		rk := [2]int{Pid(r.Rank), sliceTid[r]}
		// Each end sits inside its slice, so it binds to it ("s" binds to
		// the enclosing slice; "f" with bp "e" too).
		perTid[sk] = append(perTid[sk], item{ts: mid(s), ph: 's', id: n + 1})
		perTid[rk] = append(perTid[rk], item{ts: mid(r), ph: 'f', id: n + 1})
	}

	bw.WriteString("{\"displayTimeUnit\":\"ns\",\"otherData\":")
	od := map[string]any{"producer": "dsmexec", "clocks": tl.Notes}
	b, _ := json.Marshal(od)
	bw.Write(b)
	bw.WriteString(",\"traceEvents\":[\n")
	first := true
	emit := func(e *event) error {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("tracefmt: %w", err)
		}
		if !first {
			bw.WriteString(",\n")
		}
		first = false
		_, err = bw.Write(b)
		return err
	}
	for i := range events {
		if err := emit(&events[i]); err != nil {
			return err
		}
	}
	for _, key := range tidOrder {
		its := perTid[key]
		sort.SliceStable(its, func(i, j int) bool { return its[i].ts < its[j].ts })
		for _, it := range its {
			e := event{Ts: us(it.ts - t0), Pid: key[0], Tid: key[1]}
			switch it.ph {
			case 'X':
				sl := it.sl
				e.Name, e.Cat, e.Ph = sl.Kind.String(), sl.Kind.Category().String(), "X"
				e.Dur, e.Args = us(sl.End-sl.Start), sliceArgs(sl)
			case 's':
				e.Name, e.Cat, e.Ph, e.ID = "message", "flow", "s", it.id
			case 'f':
				e.Name, e.Cat, e.Ph, e.ID, e.Bp = "message", "flow", "f", it.id, "e"
			case 'i':
				e.Name, e.Ph, e.S = it.name, "i", "t"
			}
			if err := emit(&e); err != nil {
				return err
			}
		}
		perTid[key] = nil
	}

	// Counters and process-wide instants, in time order.
	cs := append([]CounterSample(nil), tl.Counters...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].At < cs[j].At })
	for _, c := range cs {
		if err := emit(&event{Name: c.Name, Ph: "C", Ts: us(c.At - t0), Pid: Pid(tl.Streams[c.Stream].Rank), Args: map[string]any{"value": c.Value}}); err != nil {
			return err
		}
	}
	for _, in := range tl.Instants {
		if in.Process {
			if err := emit(&event{Name: in.Name, Ph: "i", S: "p", Ts: us(in.At - t0), Pid: Pid(tl.Streams[in.Stream].Rank)}); err != nil {
				return err
			}
		}
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

func isProbe(k trace.Kind) bool { return k == trace.KindProbe || k == trace.KindIprobe }

func mid(s *Slice) int64 { return s.Start + (s.End-s.Start)/2 }

func anyName(v int) any {
	if v == -1 {
		return "any"
	}
	return v
}

// sliceArgs are the arguments shown for a slice, by kind.
func sliceArgs(sl *Slice) map[string]any {
	a := map[string]any{}
	b, r := sl.Begin, sl.Res
	switch sl.Kind {
	case trace.KindSend:
		a["to"], a["tag"], a["bytes"] = b.Peer, b.Tag, b.Bytes
	case trace.KindRecv, trace.KindProbe, trace.KindIprobe, trace.KindWait, trace.KindTest, trace.KindSendrecv:
		a["from"], a["tag"] = anyName(b.Peer), anyName(b.Tag)
		if !sl.Unfinished {
			a["source"], a["matched tag"], a["bytes"] = r.Peer, r.Tag, r.Bytes
		}
		if sl.Kind == trace.KindSendrecv {
			a["to"], a["sent bytes"] = b.Peer, b.Bytes
		}
	case trace.KindFault:
		a["page"], a["access"] = b.Page, b.Access.String()
		switch {
		case r.From >= 0:
			a["served from"] = fmt.Sprintf("rank %d", r.From)
		default:
			a["served from"] = "local (upgrade or zero page)"
		}
	case trace.KindLock, trace.KindHold:
		a["lock"] = b.Lock
	case trace.KindBarrier, trace.KindFinalize, trace.KindInit:
	default: // collectives
		a["root"], a["bytes"] = b.Peer, max(b.Bytes, r.Bytes)
	}
	if b.Comm != 0 {
		a["comm"] = b.Comm
	}
	if sl.Unfinished {
		a["unfinished"] = true
	}
	return a
}

// Merge writes the streams as one trace-event JSON document.
func Merge(w io.Writer, streams []*trace.Stream, opt Options) error {
	return Build(streams, opt).Write(w)
}

// MergeFiles merges DSMEXEC_TRACE files (one stream each, any order) into
// one trace-event JSON file at out: mpirun -merge-traces. A file cut short
// (a rank that died) merges as far as it goes; notes lists them, and each
// stream's clock offset ("rank 1 (rank): offset 3µs ± 40µs").
func MergeFiles(out string, paths []string) (notes []string, err error) {
	var bufs [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("tracefmt: %w", err)
		}
		bufs = append(bufs, b)
	}
	var tl *Timeline
	tl, err = BuildBytes(bufs, Options{})
	if err != nil {
		// Name the file rather than the stream's index.
		for i, b := range bufs {
			if _, derr := trace.Scan(b, func(*trace.Stream, *trace.Event) {}); derr != nil {
				return nil, fmt.Errorf("tracefmt: %s: %w", paths[i], derr)
			}
		}
		return nil, err
	}
	// Each stream's clock offset (measured at Init, applied above), so
	// that whoever merges sees how well the ranks' times line up.
	for _, n := range tl.Notes {
		if strings.Contains(n, ": offset ") {
			notes = append(notes, n)
		}
	}
	for i, s := range tl.Streams {
		if s.Truncated {
			notes = append(notes, fmt.Sprintf("%s: rank %d's trace is cut short; merged as far as it goes", paths[i], s.Rank))
		}
		if s.Full {
			notes = append(notes, fmt.Sprintf("%s: rank %d's trace reached its limit", paths[i], s.Rank))
		}
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, fmt.Errorf("tracefmt: %w", err)
	}
	if err := tl.Write(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("tracefmt: write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("tracefmt: write %s: %w", out, err)
	}
	return notes, nil
}

// FileName is trace.FileName: the DSMEXEC_TRACE file of one rank's stream.
func FileName(pattern string, rank int, role string) string {
	return trace.FileName(pattern, rank, role)
}
