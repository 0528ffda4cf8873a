package tracefmt

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/trace"
)

type msg struct {
	from, tag int
	flow      uint64
	n         int
}

// ringJob runs a traced ring of n ranks for rounds rounds in goroutines,
// channels standing in for the network, and returns every rank's stream
// and one page server stream for rank 1 with overlapping faults.
func ringJob(t testing.TB, n, rounds int) [][]byte {
	recs := make([]*trace.Recorder, n)
	inbox := make([]chan msg, n)
	for r := range recs {
		recs[r] = trace.New(trace.Config{Rank: r, Size: n, Host: "h" + string(rune('a'+r%2)), PID: 100 + r})
		inbox[r] = make(chan msg, rounds*2)
		// Pretend the rank's clock is off by r ms, and measured so.
		recs[r].SetClock(time.Duration(r)*time.Millisecond, 20*time.Microsecond)
	}
	var wg sync.WaitGroup
	for r := 0; r < n; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := recs[r]
			for i := 0; i < rounds; i++ {
				to := (r + 1) % n
				id := rec.NewFlow()
				sp := rec.Begin(trace.KindSend, trace.Args{Peer: to, Tag: i, Bytes: 8, Flow: id})
				inbox[to] <- msg{r, i, id, 8}
				sp.End(trace.Args{})
				sp = rec.Begin(trace.KindRecv, trace.Args{Peer: -1, Tag: i})
				m := <-inbox[r]
				sp.End(trace.Args{Peer: m.from, Tag: m.tag, Bytes: int64(m.n), Flow: m.flow})
				rec.Begin(trace.KindBarrier, trace.Args{}).End(trace.Args{})
				rec.Count(trace.CounterPagesHeld, int64(i))
			}
		}()
	}
	wg.Wait()
	out := make([][]byte, 0, n+1)
	for _, rec := range recs {
		out = append(out, rec.Drain())
	}
	pager := trace.New(trace.Config{Rank: 1, Size: n, Host: "hb", Role: "pager"})
	track := pager.NewTrack("page faults")
	t0 := time.Now()
	for p := 0; p < 5; p++ {
		// Overlapping, not nested: they need lanes.
		s := t0.Add(time.Duration(p) * 10 * time.Microsecond)
		pager.Complete(track, trace.KindFault, s, s.Add(25*time.Microsecond), trace.Args{Page: int64(p), Access: trace.AccessWrite, From: 0})
	}
	out = append(out, pager.Drain())
	return out
}

func decodeAll(t testing.TB, bs [][]byte) []*trace.Stream {
	var ss []*trace.Stream
	for _, b := range bs {
		s, err := trace.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	return ss
}

type doc struct {
	TraceEvents []struct {
		Name string         `json:"name"`
		Ph   string         `json:"ph"`
		Pid  int            `json:"pid"`
		Tid  int            `json:"tid"`
		Ts   float64        `json:"ts"`
		ID   int            `json:"id"`
		Args map[string]any `json:"args"`
	} `json:"traceEvents"`
}

func TestMergeRing(t *testing.T) {
	const n, rounds = 4, 30
	var buf bytes.Buffer
	if err := Merge(&buf, decodeAll(t, ringJob(t, n, rounds)), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Validate(buf.Bytes()); err != nil {
		t.Fatalf("%v\n%s", err, head(buf.String()))
	}
	var d doc
	if err := json.Unmarshal(buf.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	count := map[string]int{}
	threads := map[string]bool{}
	for _, e := range d.TraceEvents {
		switch {
		case e.Ph == "M" && e.Name == "process_name":
			names[e.Pid] = e.Args["name"].(string)
		case e.Ph == "M" && e.Name == "thread_name":
			threads[e.Args["name"].(string)] = true
		case e.Ph == "X":
			count[e.Name]++
			if e.Name == "Send" && e.Args["to"] == nil {
				t.Errorf("Send without args: %+v", e)
			}
			if e.Name == "Fault" && e.Args["served from"] != "rank 0" {
				t.Errorf("Fault args: %+v", e.Args)
			}
		default:
			count[e.Ph]++
		}
	}
	for r := 0; r < n; r++ {
		want := "rank " + string(rune('0'+r)) + "@h" + string(rune('a'+r%2))
		if names[Pid(r)] != want {
			t.Errorf("process %d named %q, want %q", Pid(r), names[Pid(r)], want)
		}
	}
	if count["Send"] != n*rounds || count["Recv"] != n*rounds || count["Barrier"] != n*rounds || count["Fault"] != 5 {
		t.Errorf("slices: %v", count)
	}
	if count["s"] != n*rounds || count["f"] != n*rounds {
		t.Errorf("flows: %d starts, %d ends, want %d", count["s"], count["f"], n*rounds)
	}
	if count["C"] != 2*n*rounds { // pages held + bytes sent (derived)
		t.Errorf("%d counter events", count["C"])
	}
	if !threads["pager: page faults"] || !threads["pager: page faults (2)"] {
		t.Errorf("overlapping faults not spread over lanes: threads %v", threads)
	}
}

// The clock offsets are applied: a rank whose clock runs 1 s ahead (and
// says so) lines up with the others.
func TestMergeAlignsClocks(t *testing.T) {
	mk := func(rank int, skew time.Duration) *trace.Stream {
		return &trace.Stream{Rank: rank, Size: 2, Host: "h", Role: "rank", Start: time.Unix(1000, 0).Add(skew), Events: []trace.Event{
			{Op: trace.OpClock, Offset: skew},
			{Op: trace.OpTrack, Track: 1, Name: "main"},
			{Op: trace.OpBegin, Track: 1, Time: 10 * time.Microsecond, Kind: trace.KindBarrier},
			{Op: trace.OpEnd, Track: 1, Time: 20 * time.Microsecond, Kind: trace.KindBarrier},
		}}
	}
	var buf bytes.Buffer
	if err := Merge(&buf, []*trace.Stream{mk(0, 0), mk(1, time.Second)}, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Validate(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	var d doc
	json.Unmarshal(buf.Bytes(), &d)
	var ts []float64
	for _, e := range d.TraceEvents {
		if e.Ph == "X" {
			ts = append(ts, e.Ts)
		}
	}
	if len(ts) != 2 || ts[0] != 0 || ts[1] != 0 {
		t.Fatalf("barrier starts %v, want both at 0", ts)
	}
	// An explicit offset overrides the recorded one.
	buf.Reset()
	Merge(&buf, []*trace.Stream{mk(0, 0), mk(1, time.Second)}, Options{Offsets: map[int]time.Duration{1: 0}})
	d = doc{}
	json.Unmarshal(buf.Bytes(), &d)
	ts = ts[:0]
	for _, e := range d.TraceEvents {
		if e.Ph == "X" {
			ts = append(ts, e.Ts)
		}
	}
	if len(ts) != 2 || ts[1]-ts[0] != 1e6 {
		t.Fatalf("barrier starts %v, want 1 s apart", ts)
	}
}

// A rank that died mid-stream: every cut still merges into a valid trace,
// its open slices marked unfinished, flows to the lost part dropped.
func TestMergeTruncated(t *testing.T) {
	bs := ringJob(t, 3, 10)
	whole := bs[1]
	for _, cut := range []int{len(whole) / 3, len(whole) / 2, len(whole) - 1} {
		bs[1] = whole[:cut]
		ss := decodeAll(t, bs)
		if !ss[1].Truncated && cut != len(whole) {
			// A cut exactly between two records is a whole, shorter stream.
			t.Logf("cut %d fell between records", cut)
		}
		var buf bytes.Buffer
		if err := Merge(&buf, ss, Options{}); err != nil {
			t.Fatal(err)
		}
		if err := Validate(buf.Bytes()); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
	}
}

func TestMergeFiles(t *testing.T) {
	dir := t.TempDir()
	pattern := filepath.Join(dir, "job-%r.trace")
	var paths []string
	for i, b := range ringJob(t, 2, 5) {
		rank, role := i, "rank"
		if i == 2 {
			rank, role = 1, "pager"
		}
		p := FileName(pattern, rank, role)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// The second rank died: its file is cut.
	b, _ := os.ReadFile(paths[1])
	os.WriteFile(paths[1], b[:len(b)-3], 0o644)
	out := filepath.Join(dir, "job.json")
	notes, err := MergeFiles(out, paths)
	if err != nil {
		t.Fatal(err)
	}
	// Each rank's clock offset, then the cut stream.
	if len(notes) != 3 || !strings.Contains(notes[0], "rank 0 (rank): offset 0s ± 20µs") || !strings.Contains(notes[1], "rank 1 (rank): offset 1ms") ||
		!strings.Contains(notes[2], "rank 1") || !strings.Contains(notes[2], "cut short") {
		t.Errorf("notes %q", notes)
	}
	j, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(j); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(paths[0], []byte("garbage"), 0o644)
	if _, err := MergeFiles(out, paths); err == nil || !strings.Contains(err.Error(), paths[0]) {
		t.Fatalf("err %v, want one naming %s", err, paths[0])
	}
}

func TestFileName(t *testing.T) {
	for _, tt := range []struct {
		pat, role string
		rank      int
		want      string
	}{
		{"t.trace", "rank", 3, "t.trace.3"},
		{"out/%r.bin", "", 12, "out/12.bin"},
		{"a%rb%r", "pager", 1, "a1b1.pager"},
		{"100%", "rank", 2, "100%.2"},
	} {
		if got := FileName(tt.pat, tt.rank, tt.role); got != tt.want {
			t.Errorf("FileName(%q, %d, %q) = %q, want %q", tt.pat, tt.rank, tt.role, got, tt.want)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	pn := `{"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":"rank 0"}}`
	tests := []struct {
		name, doc, want string
	}{
		{"not json", `{`, "not trace-event JSON"},
		{"no ph", `[{"pid":1}]`, "no ph"},
		{"X without dur", `[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":1}]`, "dur"},
		{"X negative dur", `[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":-1}]`, "dur"},
		{"backwards", `[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":5,"dur":1},{"ph":"X","name":"b","pid":1,"tid":1,"ts":4,"dur":1}]`, "before"},
		{"overlap", `[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":5},{"ph":"X","name":"b","pid":1,"tid":1,"ts":3,"dur":5}]`, "without nesting"},
		{"flow start only", `[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":5},{"ph":"s","name":"m","id":1,"pid":1,"tid":1,"ts":2}]`, "1 starts and 0 ends"},
		{"flow twice", `[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":5},{"ph":"s","name":"m","id":1,"pid":1,"tid":1,"ts":2},{"ph":"s","name":"m","id":1,"pid":1,"tid":1,"ts":3},{"ph":"f","bp":"e","name":"m","id":1,"pid":1,"tid":1,"ts":4}]`, "2 starts"},
		{"flow outside slices", `[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":5},{"ph":"s","name":"m","id":1,"pid":1,"tid":1,"ts":2},{"ph":"f","bp":"e","name":"m","id":1,"pid":1,"tid":1,"ts":9}]`, "ends outside"},
		{"counter not a number", `[` + pn + `,{"ph":"C","name":"c","pid":1,"ts":1,"args":{"v":"x"}}]`, "not a number"},
		{"unnamed process", `[{"ph":"X","name":"a","pid":7,"tid":1,"ts":1,"dur":1}]`, "pid 7 has events but no process_name"},
		{"thread_name without name", `[{"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{}}]`, "args.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	ok := `{"traceEvents":[` + pn + `,{"ph":"X","name":"a","pid":1,"tid":1,"ts":1,"dur":5},{"ph":"s","name":"m","id":1,"pid":1,"tid":1,"ts":2},{"ph":"X","name":"b","pid":1,"tid":1,"ts":7,"dur":1},{"ph":"f","bp":"e","name":"m","id":1,"pid":1,"tid":1,"ts":7.5}]}`
	if err := Validate([]byte(ok)); err != nil {
		t.Fatal(err)
	}
}

func head(s string) string {
	if len(s) > 3000 {
		return s[:3000]
	}
	return s
}

// A probe that saw the message before the receive took it: the flow ends
// at the receive.
func TestFlowEndsAtReceiveNotProbe(t *testing.T) {
	a := trace.New(trace.Config{Rank: 0, Size: 2})
	b := trace.New(trace.Config{Rank: 1, Size: 2})
	id := a.NewFlow()
	a.Begin(trace.KindSend, trace.Args{Peer: 1, Bytes: 4, Flow: id}).End(trace.Args{})
	b.Begin(trace.KindProbe, trace.Args{Peer: 0}).End(trace.Args{Peer: 0, Bytes: 4, Flow: id})
	b.Begin(trace.KindRecv, trace.Args{Peer: 0}).End(trace.Args{Peer: 0, Bytes: 4, Flow: id})
	tl := Build(decodeAll(t, [][]byte{a.Drain(), b.Drain()}), Options{})
	var buf bytes.Buffer
	if err := tl.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := Validate(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	var d doc
	json.Unmarshal(buf.Bytes(), &d)
	var recvTs, recvDur, fTs float64
	for _, e := range d.TraceEvents {
		if e.Ph == "X" && e.Name == "Recv" {
			recvTs = e.Ts
		}
		if e.Ph == "f" {
			fTs = e.Ts
		}
	}
	for _, s := range tl.Slices {
		if s.Kind == trace.KindRecv {
			recvDur = float64(s.End-s.Start) / 1000
		}
	}
	if fTs < recvTs || fTs > recvTs+recvDur+0.001 {
		t.Fatalf("flow ends at %v, the Recv is [%v, %v]", fTs, recvTs, recvTs+recvDur)
	}
}

// BuildBytes, which does not keep the decoded events, writes the same
// document as Build.
func TestBuildBytesSameAsBuild(t *testing.T) {
	bs := ringJob(t, 3, 8)
	bs[2] = bs[2][:len(bs[2])-2] // one cut stream
	var a, b bytes.Buffer
	if err := Build(decodeAll(t, bs), Options{}).Write(&a); err != nil {
		t.Fatal(err)
	}
	tl, err := BuildBytes(bs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("BuildBytes differs from Build:\n%s\n---\n%s", head(a.String()), head(b.String()))
	}
	if _, err := BuildBytes([][]byte{bs[0], []byte("nope")}, Options{}); err == nil || !strings.Contains(err.Error(), "stream 1") {
		t.Fatalf("err %v", err)
	}
}
