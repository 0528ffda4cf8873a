package tracefmt

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
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
	Streams    []*trace.Stream
	Base       []int64 // per stream: absolute ns of its time 0 on the reference clock
	Slices     []Slice
	TrackNames map[trackKey]string
	Counters   []CounterSample
	Instants   []Instant
	Min, Max   int64 // absolute ns of the first and last event
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
	tl := &Timeline{Streams: streams, TrackNames: map[trackKey]string{}, Min: 1<<63 - 1, Max: -1 << 63}
	see := func(t int64) {
		tl.Min = min(tl.Min, t)
		tl.Max = max(tl.Max, t)
	}
	for si, s := range streams {
		off, ok := opt.Offsets[s.Rank]
		if !ok {
			for _, e := range s.Events {
				if e.Op == trace.OpClock {
					off = e.Offset
				}
			}
		}
		base := s.Start.UnixNano() - int64(off)
		tl.Base = append(tl.Base, base)
		var last int64 = base
		open := map[uint32][]int{} // track -> indexes of open slices in tl.Slices
		explicitSent := false
		for _, e := range s.Events {
			if e.Op == trace.OpCounter && e.Counter == trace.CounterBytesSent {
				explicitSent = true
			}
		}
		var sent int64
		for _, e := range s.Events {
			at := base + int64(e.Time)
			switch e.Op {
			case trace.OpTrack:
				tl.TrackNames[trackKey{si, e.Track}] = e.Name
				continue
			case trace.OpClock:
				continue
			}
			see(at)
			last = max(last, at)
			switch e.Op {
			case trace.OpBegin:
				tl.Slices = append(tl.Slices, Slice{Rank: s.Rank, Stream: si, Track: e.Track, Kind: e.Kind, Start: at, End: at, Begin: e.Args})
				open[e.Track] = append(open[e.Track], len(tl.Slices)-1)
			case trace.OpEnd:
				st := open[e.Track]
				if len(st) == 0 {
					continue // its begin was in a piece that was lost
				}
				i := st[len(st)-1]
				open[e.Track] = st[:len(st)-1]
				sl := &tl.Slices[i]
				sl.End = max(at, sl.Start)
				sl.Res = e.Args
				if !explicitSent && (sl.Kind == trace.KindSend || sl.Kind == trace.KindSendrecv) && sl.Begin.Bytes > 0 {
					sent += sl.Begin.Bytes
					tl.Counters = append(tl.Counters, CounterSample{si, trace.CounterBytesSent.String(), sl.End, sent})
				}
			case trace.OpComplete:
				end := at + int64(e.Dur)
				see(end)
				last = max(last, end)
				tl.Slices = append(tl.Slices, Slice{Rank: s.Rank, Stream: si, Track: e.Track, Kind: e.Kind, Start: at, End: end, Begin: e.Args, Res: e.Args})
			case trace.OpCounter:
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
		// Slices still open when the stream ended: the rank died, was cut,
		// or filled its buffer inside them. Show them up to its last event.
		for _, st := range open {
			for _, i := range st {
				tl.Slices[i].End = max(last, tl.Slices[i].Start)
				tl.Slices[i].Unfinished = true
			}
		}
	}
	if tl.Min > tl.Max {
		tl.Min, tl.Max = 0, 0
	}
	return tl
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
	perTid := map[[2]int][]event{} // (pid, tid) -> events
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
			perTid[key] = append(perTid[key], event{
				Name: sl.Kind.String(), Cat: sl.Kind.Category().String(), Ph: "X",
				Ts: us(sl.Start - t0), Dur: us(sl.End - sl.Start), Pid: Pid(s.Rank), Tid: tid,
				Args: sliceArgs(sl),
			})
		}
		for _, in := range tl.Instants {
			if in.Process || (trackKey{in.Stream, in.Track}) != k {
				continue
			}
			key := [2]int{Pid(s.Rank), laneTid[0]}
			perTid[key] = append(perTid[key], event{Name: in.Name, Ph: "i", S: "t", Ts: us(in.At - t0), Pid: Pid(s.Rank), Tid: laneTid[0]})
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
		perTid[sk] = append(perTid[sk], event{Name: "message", Cat: "flow", Ph: "s", ID: n + 1, Ts: us(mid(s) - t0), Pid: sk[0], Tid: sk[1]})
		perTid[rk] = append(perTid[rk], event{Name: "message", Cat: "flow", Ph: "f", Bp: "e", ID: n + 1, Ts: us(mid(r) - t0), Pid: rk[0], Tid: rk[1]})
	}

	for _, key := range tidOrder {
		evs := perTid[key]
		sort.SliceStable(evs, func(i, j int) bool { return tsLess(evs[i].Ts, evs[j].Ts) })
		events = append(events, evs...)
	}

	// Counters and process-wide instants, per stream in time order.
	cs := append([]CounterSample(nil), tl.Counters...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].At < cs[j].At })
	for _, c := range cs {
		events = append(events, event{Name: c.Name, Ph: "C", Ts: us(c.At - t0), Pid: Pid(tl.Streams[c.Stream].Rank), Args: map[string]any{"value": c.Value}})
	}
	for _, in := range tl.Instants {
		if in.Process {
			events = append(events, event{Name: in.Name, Ph: "i", S: "p", Ts: us(in.At - t0), Pid: Pid(tl.Streams[in.Stream].Rank)})
		}
	}

	bw.WriteString("{\"displayTimeUnit\":\"ns\",\"otherData\":")
	od := map[string]any{"producer": "dsmexec", "clocks": tl.clockNotes()}
	b, _ := json.Marshal(od)
	bw.Write(b)
	bw.WriteString(",\"traceEvents\":[\n")
	for i := range events {
		b, err := json.Marshal(&events[i])
		if err != nil {
			return fmt.Errorf("tracefmt: %w", err)
		}
		if i > 0 {
			bw.WriteString(",\n")
		}
		bw.Write(b)
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

func (tl *Timeline) clockNotes() []string {
	var notes []string
	for _, s := range tl.Streams {
		for _, e := range s.Events {
			if e.Op == trace.OpClock {
				notes = append(notes, fmt.Sprintf("rank %d (%s): offset %v ± %v", s.Rank, s.Role, e.Offset, e.Bound))
			}
		}
		if s.Truncated {
			notes = append(notes, fmt.Sprintf("rank %d (%s): trace cut short", s.Rank, s.Role))
		}
	}
	return notes
}

func isProbe(k trace.Kind) bool { return k == trace.KindProbe || k == trace.KindIprobe }

func mid(s *Slice) int64 { return s.Start + (s.End-s.Start)/2 }

func tsLess(a, b json.Number) bool {
	x, _ := a.Float64()
	y, _ := b.Float64()
	return x < y
}

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
	case trace.KindBarrier, trace.KindFinalize:
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
// (a rank that died) merges as far as it goes; notes lists them.
func MergeFiles(out string, paths []string) (notes []string, err error) {
	var streams []*trace.Stream
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("tracefmt: %w", err)
		}
		s, err := trace.Decode(b)
		if err != nil {
			return nil, fmt.Errorf("tracefmt: %s: %w", p, err)
		}
		if s.Truncated {
			notes = append(notes, fmt.Sprintf("%s: rank %d's trace is cut short; merged as far as it goes", p, s.Rank))
		}
		if s.Full {
			notes = append(notes, fmt.Sprintf("%s: rank %d's trace reached its limit", p, s.Rank))
		}
		streams = append(streams, s)
	}
	f, err := os.Create(out)
	if err != nil {
		return nil, fmt.Errorf("tracefmt: %w", err)
	}
	if err := Merge(f, streams, Options{}); err != nil {
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
