package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

// Real rank programs (examples), built once when a test needs them.
var (
	exampleOnce sync.Once
	exampleErr  error
)

func example(t *testing.T, name string) string {
	t.Helper()
	exampleOnce.Do(func() {
		for _, n := range []string{"ring", "counter", "jacobi", "failure"} {
			if b, err := exec.Command("go", "build", "-o", filepath.Join(binDir, n), "../examples/"+n).CombinedOutput(); err != nil {
				exampleErr = &buildError{n, err, string(b)}
				return
			}
		}
	})
	if exampleErr != nil {
		t.Fatal(exampleErr)
	}
	return filepath.Join(binDir, name)
}

type buildError struct {
	pkg string
	err error
	out string
}

func (e *buildError) Error() string {
	return "go build examples/" + e.pkg + ": " + e.err.Error() + "\n" + e.out
}

// TestMessageCounts: -report-format json carries each rank's messages
// and bytes sent and received and the matrix; the table shows them.
func TestMessageCounts(t *testing.T) {
	ring := example(t, "ring")
	r := runMpirun(t, "", "-np", "4", "-report-format", "json", ring)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(r.stderr[indexJSON(r.stderr):]), &s); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stderr)
	}
	if len(s.Messages) != 4 || len(s.Bytes) != 4 {
		t.Fatalf("matrix %v, bytes %v", s.Messages, s.Bytes)
	}
	for i, row := range s.Ranks {
		var sent, recv uint64
		for j := range 4 {
			sent += s.Messages[i][j]
			recv += s.Messages[j][i]
		}
		// The ring's 10 laps: at least 10 messages to the next rank.
		if next := (i + 1) % 4; s.Messages[i][next] < 10 || s.Bytes[i][next] < 80 {
			t.Errorf("rank %d sent %d messages (%d bytes) to rank %d, want at least 10 (80 bytes)", i, s.Messages[i][next], s.Bytes[i][next], next)
		}
		if row.MsgsSent != sent || row.MsgsReceived != recv || row.BytesSent == 0 || row.BytesReceived == 0 {
			t.Errorf("rank %d: sent %d received %d, the matrix says %d and %d", i, row.MsgsSent, row.MsgsReceived, sent, recv)
		}
	}
}

// indexJSON is where the JSON object starts in out (after the ranks'
// output).
func indexJSON(out string) int {
	for i := 0; i+1 < len(out); i++ {
		if out[i] == '{' && (i == 0 || out[i-1] == '\n') {
			return i
		}
	}
	return 0
}

// TestTraceJob: -trace of a real 4-rank job is trace-event JSON the
// viewers open (tracefmt.Validate, and checked again here on its own):
// required fields per phase, every flow has both ends, timestamps
// monotonic per track; one process per rank named "rank N@localhost"; a
// Send and a Recv slice per message of the ring, each send's flow
// arriving at the next rank's receive.
func TestTraceJob(t *testing.T) {
	ring := example(t, "ring")
	out := filepath.Join(t.TempDir(), "ring.json")
	r := runMpirun(t, "", "-np", "4", "-trace", out, ring)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	b := readTrace(t, out, 4)
	var doc struct {
		TraceEvents []traceEvent `json:"traceEvents"`
	}
	json.Unmarshal(b, &doc)
	sends, recvs := map[int]int{}, map[int]int{}
	slices := map[[2]int][]traceEvent{}
	for _, e := range doc.TraceEvents {
		if e.Ph != "X" {
			continue
		}
		slices[[2]int{e.Pid, e.Tid}] = append(slices[[2]int{e.Pid, e.Tid}], e)
		switch e.Name {
		case "Send":
			sends[e.Pid-1]++
			if to, _ := e.Args["to"].(float64); int(to) != (e.Pid)%4 {
				t.Errorf("rank %d sent to %v", e.Pid-1, e.Args["to"])
			}
		case "Recv":
			recvs[e.Pid-1]++
		}
	}
	for rk := range 4 {
		if sends[rk] != 10 || recvs[rk] != 10 {
			t.Errorf("rank %d: %d Send and %d Recv slices, want 10 each (10 laps)", rk, sends[rk], recvs[rk])
		}
	}
	// Every flow goes from a Send of rank i to a Recv of rank i+1.
	flows := map[float64][2]traceEvent{}
	for _, e := range doc.TraceEvents {
		switch e.Ph {
		case "s":
			f := flows[e.ID]
			f[0] = e
			flows[e.ID] = f
		case "f":
			f := flows[e.ID]
			f[1] = e
			flows[e.ID] = f
		}
	}
	if len(flows) != 40 {
		t.Errorf("%d flows, want 40 (a message per hop)", len(flows))
	}
	for id, f := range flows {
		if f[1].Pid-1 != (f[0].Pid)%4 {
			t.Errorf("flow %v from rank %d to rank %d", id, f[0].Pid-1, f[1].Pid-1)
		}
		if enclosing(slices[[2]int{f[0].Pid, f[0].Tid}], f[0].Ts) != "Send" || enclosing(slices[[2]int{f[1].Pid, f[1].Tid}], f[1].Ts) != "Recv" {
			t.Errorf("flow %v does not go from a Send to a Recv", id)
		}
	}
}

type traceEvent struct {
	Name string         `json:"name"`
	Ph   string         `json:"ph"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Ts   float64        `json:"ts"`
	Dur  float64        `json:"dur"`
	ID   float64        `json:"id"`
	Args map[string]any `json:"args"`
}

func enclosing(sl []traceEvent, ts float64) string {
	for _, s := range sl {
		if s.Ts <= ts && ts <= s.Ts+s.Dur {
			return s.Name
		}
	}
	return ""
}

// checkTraceEvents checks b against the trace-event format on its own
// (not with tracefmt.Validate): the fields every phase needs, flows with
// both ends, timestamps monotonic per track, a named process per rank.
// readTrace reads the merged trace at out and checks it is valid
// trace-event JSON; with ranks > 0, also checkTraceEvents.
func readTrace(t *testing.T, out string, ranks int) []byte {
	t.Helper()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := tracefmt.Validate(b); err != nil {
		t.Fatalf("Validate %s: %v", out, err)
	}
	if ranks > 0 {
		checkTraceEvents(t, b, ranks)
	}
	return b
}

func checkTraceEvents(t *testing.T, b []byte, ranks int) {
	t.Helper()
	var doc struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	need := map[string][]string{
		"X": {"name", "ph", "pid", "tid", "ts", "dur"},
		"s": {"name", "ph", "pid", "tid", "ts", "id", "cat"},
		"f": {"name", "ph", "pid", "tid", "ts", "id", "cat"},
		"C": {"name", "ph", "pid", "ts", "args"},
		"M": {"name", "ph", "pid", "args"},
		"i": {"name", "ph", "pid", "ts"},
	}
	last := map[string]float64{}
	ends := map[float64]int{}
	names := map[float64]string{}
	for i, e := range doc.TraceEvents {
		ph, _ := e["ph"].(string)
		fields, ok := need[ph]
		if !ok {
			t.Errorf("event %d: phase %q", i, ph)
			continue
		}
		for _, f := range fields {
			if _, ok := e[f]; !ok {
				t.Errorf("event %d (%s): no %q", i, ph, f)
			}
		}
		if ph == "M" {
			if e["name"] == "process_name" {
				a, _ := e["args"].(map[string]any)
				names[e["pid"].(float64)], _ = a["name"].(string)
			}
			continue
		}
		ts, _ := e["ts"].(float64)
		track := fmt.Sprint(e["pid"], "/", e["tid"])
		if ph == "C" {
			track = fmt.Sprint(e["pid"], "/C/", e["name"])
		}
		if ts < last[track] {
			t.Errorf("event %d: ts %v before %v on track %s", i, ts, last[track], track)
		}
		last[track] = ts
		switch ph {
		case "s":
			ends[e["id"].(float64)] |= 1
		case "f":
			ends[e["id"].(float64)] |= 2
		}
	}
	for id, v := range ends {
		if v != 3 {
			t.Errorf("flow %v has one end only", id)
		}
	}
	for r := range ranks {
		if n := names[float64(r+1)]; !strings.HasPrefix(n, fmt.Sprintf("rank %d@", r)) {
			t.Errorf("process %d is named %q", r+1, n)
		}
	}
}

// TestTraceBadPath: an unwritable -trace or -report-html path is an
// error before any rank starts.
func TestTraceBadPath(t *testing.T) {
	for _, flag := range []string{"-trace", "-report-html"} {
		r := runMpirun(t, "", "-np", "2", flag, "/nonexistent/dir/x.json", rankprog, "exit-code", "0")
		if r.status == 0 || !strings.Contains(r.stderr, "mpirun: error: "+flag+" /nonexistent/dir/x.json: no such file or directory") || strings.Contains(r.stderr, "[rank") {
			t.Errorf("%s: status %d, stderr:\n%s", flag, r.status, r.stderr)
		}
	}
}

// TestTraceDeadRank: a job whose rank dies still leaves a valid trace,
// with what every rank recorded until then.
func TestTraceDeadRank(t *testing.T) {
	failure := example(t, "failure")
	out := filepath.Join(t.TempDir(), "f.json")
	r := runMpirun(t, "", "-np", "3", "-trace", out, failure, "-lose")
	if r.status == 0 {
		t.Fatalf("status 0, want a failure: %s", r.stderr)
	}
	b := readTrace(t, out, 0)
	// Rank 0 failed and shipped what it had before exiting; the others
	// are stopped by mpirun and ship what their last 200 ms tick sent.
	checkTraceEvents(t, b, 1)
	if !strings.Contains(r.stderr, "mpirun: warning: rank") {
		t.Errorf("no warning about the rank's trace:\n%s", r.stderr)
	}
	t.Logf("%s", r.stderr)
}

// TestTraceAbortKeepsFaults: a rank that fails (Abort) records the page
// faults its page server recorded before its trace's last piece leaves
// (they are otherwise fetched at Finalize).
func TestTraceAbortKeepsFaults(t *testing.T) {
	prog := filepath.Join(binDir, "fsprog")
	if b, err := exec.Command("go", "build", "-o", prog, "./testdata/fsprog").CombinedOutput(); err != nil {
		t.Fatalf("build fsprog: %v\n%s", err, b)
	}
	out := filepath.Join(t.TempDir(), "a.json")
	r := runMpirun(t, "", "-np", "2", "-trace", out, prog, "20", "abort")
	if r.status == 0 {
		t.Fatalf("status 0, want the abort's: %s", r.stderr)
	}
	b := readTrace(t, out, 0)
	var doc struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	faults := 0
	for _, e := range doc.TraceEvents {
		if e["ph"] == "X" && e["name"] == "Fault" && e["pid"] == float64(1) { // pid = rank + 1
			faults++
		}
	}
	if faults == 0 {
		t.Errorf("rank 0 aborted after 20 rounds of write faults, and its trace has no Fault slice; stderr:\n%s", r.stderr)
	}
	t.Logf("rank 0: %d fault slices", faults)
}

// TestFalseSharingSummary: ranks that write disjoint bytes of one page
// that changes owner more than 100 times get the false-sharing line in
// -summary, and the finding in -report-format json.
func TestFalseSharingSummary(t *testing.T) {
	prog := filepath.Join(binDir, "fsprog")
	if b, err := exec.Command("go", "build", "-o", prog, "./testdata/fsprog").CombinedOutput(); err != nil {
		t.Fatalf("build fsprog: %v\n%s", err, b)
	}
	r := runMpirun(t, "", "-np", "2", "-summary", prog, "150")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	// The ranges are the bytes that changed: the low ones of each int64.
	if !strings.Contains(r.stderr, "false sharing: page 0 changed owner") || !strings.Contains(r.stderr, "(rank 0 bytes 0") || !strings.Contains(r.stderr, "; rank 1 bytes 8") {
		t.Errorf("no false-sharing line for page 0 with rank 0 at bytes 0-... and rank 1 at 8-...:\n%s", r.stderr)
	}
	js := filepath.Join(t.TempDir(), "r.json")
	r = runMpirun(t, "", "-np", "2", "-report-format", "json", "-report-file", js, prog, "150")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	b, _ := os.ReadFile(js)
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.FalseSharing) == 0 || !s.FalseSharing[0].FalseSharing || s.FalseSharing[0].Page != 0 || s.FalseSharing[0].Changes < 100 {
		t.Errorf("json false_sharing %+v", s.FalseSharing)
	}
}

// TestSSHTrace: on SSH hosts the ranks' streams come through the hosts'
// agents; the trace is whole and names the hosts.
func TestSSHTrace(t *testing.T) {
	ring := example(t, "ring")
	st := sharedSSH(t)
	out := filepath.Join(t.TempDir(), "ring.json")
	r := st.run(t, "", "-host", "node1:2,node2:2", "-trace", out, ring)
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	b := readTrace(t, out, 4)
	for _, want := range []string{`"rank 0@node1"`, `"rank 3@node2"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("trace lacks the process %s", want)
		}
	}
	if n := strings.Count(string(b), `"ph":"s"`); n != 40 {
		t.Errorf("%d flows, want 40", n)
	}
}

// TestTraceFileMerge: DSMEXEC_TRACE=FILE (as under Hydra or Slurm) makes
// a rank write its own stream; mpirun -merge-traces makes the trace.
func TestTraceFileMerge(t *testing.T) {
	ring := example(t, "ring")
	dir := t.TempDir()
	cmd := exec.Command(ring)
	cmd.Env = append(os.Environ(), "DSMEXEC_TRACE="+filepath.Join(dir, "t"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("singleton ring: %v\n%s", err, b)
	}
	out := filepath.Join(dir, "merged.json")
	r := runMpirun(t, "", "-merge-traces", out, filepath.Join(dir, "t.0"))
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	readTrace(t, out, 1)
	if r := runMpirun(t, "", "-merge-traces", out); r.status == 0 || !strings.Contains(r.stderr, "mpirun: error: -merge-traces needs") {
		t.Errorf("-merge-traces without inputs: status %d, %s", r.status, r.stderr)
	}
}
