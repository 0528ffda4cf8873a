package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/proc"
)

// agentPair is a Client connected to RunAgent through pipes.
type agentPair struct {
	c        *Client
	toAgent  *io.PipeWriter // raw access, for malformed frames
	lines    chan proc.Line
	exits    chan proc.Exit
	agentErr chan error
}

func startAgentPair(t *testing.T) *agentPair {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &agentPair{toAgent: inW, lines: make(chan proc.Line), exits: make(chan proc.Exit), agentErr: make(chan error, 1)}
	go func() {
		err := RunAgent(inR, outW)
		outW.Close() // the agent process ends: its stdout closes
		inR.Close()
		p.agentErr <- err
	}()
	c, err := NewClient("h1", outR, inW, p.lines, p.exits)
	if err != nil {
		t.Fatal(err)
	}
	p.c = c
	t.Cleanup(func() { c.Close(); outR.Close() })
	return p
}

// result is what a job's ranks produced.
type result struct {
	lines map[int][]string // "stdout: text" per rank
	exits map[int]proc.Exit
}

// collect receives until n exits have arrived, checking that no rank has a
// line after its exit. onLine, if set, sees every line as it comes.
func collect(t *testing.T, lines <-chan proc.Line, exits <-chan proc.Exit, n int, onLine func(proc.Line)) result {
	t.Helper()
	r := result{lines: map[int][]string{}, exits: map[int]proc.Exit{}}
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for len(r.exits) < n {
		select {
		case l := <-lines:
			if _, done := r.exits[l.Rank]; done {
				t.Errorf("rank %d: line %q after its exit", l.Rank, l.Text)
			}
			s := fmt.Sprintf("%s: %s", l.Stream, l.Text)
			if l.Partial {
				s += " (partial)"
			}
			r.lines[l.Rank] = append(r.lines[l.Rank], s)
			if onLine != nil {
				onLine(l)
			}
		case e := <-exits:
			if _, dup := r.exits[e.Rank]; dup {
				t.Errorf("rank %d: second exit %+v", e.Rank, e)
			}
			r.exits[e.Rank] = e
		case <-timeout.C:
			t.Fatalf("timed out with %d of %d exits: %+v", len(r.exits), n, r)
		}
	}
	return r
}

func shRank(rank int, script string, env ...string) RankSpec {
	return RankSpec{Rank: rank, Path: "/bin/sh", Args: []string{"-c", script}, Env: env}
}

func TestAgentRunsRanks(t *testing.T) {
	p := startAgentPair(t)
	if h := p.c.Hello(); h.Version != AgentVersion || h.Pid != os.Getpid() || h.GOARCH == "" {
		t.Errorf("hello %+v", h)
	}
	dir := t.TempDir()
	script := `echo "out $DSMEXEC_RANK $X"; echo err >&2; printf 'no newline'; exit $((2 + DSMEXEC_RANK))`
	for r := 0; r < 2; r++ {
		spec := shRank(r, script, fmt.Sprintf("DSMEXEC_RANK=%d", r), "X=from-mpirun")
		spec.Dir = dir
		if err := p.c.Start(spec); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.c.Start(shRank(0, "true")); err == nil {
		t.Error("starting rank 0 twice succeeded")
	}
	res := collect(t, p.lines, p.exits, 2, nil)
	for r := 0; r < 2; r++ {
		got := res.lines[r]
		sortStreams(got)
		want := []string{"stderr: err", fmt.Sprintf("stdout: out %d from-mpirun", r), "stdout: no newline (partial)"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("rank %d lines %q, want %q", r, got, want)
		}
		e := res.exits[r]
		if e.Code != 2+r || e.Signal != 0 || e.Err != nil || e.Pid <= 0 || e.Wall <= 0 {
			t.Errorf("rank %d exit %+v", r, e)
		}
	}
	if err := p.c.CloseInput(); err != nil {
		t.Fatal(err)
	}
	<-p.c.Done()
	if err := p.c.Err(); err != nil {
		t.Errorf("client: %v", err)
	}
	if err := <-p.agentErr; err != nil {
		t.Errorf("agent: %v", err)
	}
}

// sortStreams orders stderr lines before stdout ones, keeping each
// stream's order (the two pipes are read independently).
func sortStreams(l []string) {
	var a, b []string
	for _, s := range l {
		if strings.HasPrefix(s, "stderr") {
			a = append(a, s)
		} else {
			b = append(b, s)
		}
	}
	copy(l, append(a, b...))
}

func TestAgentStdin(t *testing.T) {
	p := startAgentPair(t)
	spec := RankSpec{Rank: 0, Path: "/bin/cat", Stdin: true}
	if err := p.c.Start(spec); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Start(RankSpec{Rank: 1, Path: "/bin/cat"}); err != nil { // stdin is /dev/null
		t.Fatal(err)
	}
	w := p.c.Stdin(0)
	big := strings.Repeat("y", 3*stdinChunk+5) // several Stdin frames
	if _, err := io.WriteString(w, "a\n"+big+"\nb"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Error("write after close succeeded")
	}
	res := collect(t, p.lines, p.exits, 2, nil)
	want := []string{"stdout: a", "stdout: " + big, "stdout: b (partial)"}
	if strings.Join(res.lines[0], "|") != strings.Join(want, "|") {
		t.Errorf("rank 0 lines: got %d lines, want %d", len(res.lines[0]), len(want))
	}
	if len(res.lines[1]) != 0 || res.exits[0].Code != 0 || res.exits[1].Code != 0 {
		t.Errorf("rank 1 lines %q, exits %+v", res.lines[1], res.exits)
	}
}

func TestAgentSignal(t *testing.T) {
	p := startAgentPair(t)
	for r := 0; r < 2; r++ {
		if err := p.c.Start(RankSpec{Rank: r, Path: "/bin/sleep", Args: []string{"60"}}); err != nil {
			t.Fatal(err)
		}
	}
	// The agent handles frames in order: both ranks exist when it sees this.
	if err := p.c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := collect(t, p.lines, p.exits, 2, nil)
	for r, e := range res.exits {
		if e.Signal != syscall.SIGTERM || e.Code != -1 {
			t.Errorf("rank %d exit %+v, want killed by SIGTERM", r, e)
		}
	}
}

func TestAgentStopsRanksWhenInputCloses(t *testing.T) {
	defer func(g time.Duration) { AgentGrace = g }(AgentGrace)
	AgentGrace = 100 * time.Millisecond
	p := startAgentPair(t)
	if err := p.c.Start(RankSpec{Rank: 0, Path: "/bin/sleep", Args: []string{"60"}}); err != nil {
		t.Fatal(err)
	}
	// Rank 1 ignores SIGTERM (and so does its sleep): it needs the SIGKILL.
	if err := p.c.Start(shRank(1, `trap "" TERM; echo ready; sleep 60`)); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		<-ready
		p.c.CloseInput()
	}()
	res := collect(t, p.lines, p.exits, 2, func(l proc.Line) {
		if l.Rank == 1 && string(l.Text) == "ready" {
			close(ready)
		}
	})
	if e := res.exits[0]; e.Signal != syscall.SIGTERM {
		t.Errorf("rank 0 exit %+v, want SIGTERM", e)
	}
	if e := res.exits[1]; e.Signal != syscall.SIGKILL {
		t.Errorf("rank 1 exit %+v, want SIGKILL", e)
	}
	if err := <-p.agentErr; err != nil {
		t.Errorf("agent: %v", err)
	}
	<-p.c.Done()
	if err := p.c.Err(); err != nil {
		t.Errorf("client: %v", err)
	}
	if err := p.c.Start(RankSpec{Rank: 5, Path: "/bin/true"}); err == nil {
		t.Error("Start after CloseInput succeeded")
	}
}

func TestAgentStartFailure(t *testing.T) {
	p := startAgentPair(t)
	if err := p.c.Start(RankSpec{Rank: 3, Path: "/nonexistent/prog"}); err != nil {
		t.Fatal(err)
	}
	res := collect(t, p.lines, p.exits, 1, nil)
	e := res.exits[3]
	var ae *AgentError
	if !errors.As(e.Err, &ae) || ae.Host != "h1" || !strings.Contains(e.Err.Error(), "no such file") || e.Pid != 0 || e.Code != -1 {
		t.Errorf("exit %+v (err %v)", e, e.Err)
	}
	p.c.CloseInput()
	<-p.c.Done()
	if err := p.c.Err(); err != nil {
		t.Errorf("client: %v", err)
	}
}

func TestAgentBadFrame(t *testing.T) {
	p := startAgentPair(t)
	if err := p.c.Start(RankSpec{Rank: 0, Path: "/bin/sleep", Args: []string{"60"}}); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(p.toAgent, 0x7f, []byte{1}); err != nil {
		t.Fatal(err)
	}
	res := collect(t, p.lines, p.exits, 1, nil)
	if e := res.exits[0]; e.Signal != syscall.SIGTERM {
		t.Errorf("rank 0 exit %+v, want stopped by SIGTERM", e)
	}
	<-p.c.Done()
	var ae *AgentError
	if err := p.c.Err(); !errors.As(err, &ae) || !strings.Contains(err.Error(), "unknown frame type 0x7f") {
		t.Errorf("client err %v, want the agent's error", err)
	}
	if err := <-p.agentErr; !errors.Is(err, ErrBadFrame) {
		t.Errorf("agent err %v, want ErrBadFrame", err)
	}
}

// fakeAgent writes raw bytes as an agent would, for client-side tests.
func fakeAgent(t *testing.T, frames ...[]byte) (io.Reader, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	for _, f := range frames {
		out.Write(f)
	}
	return &out, new(bytes.Buffer)
}

func rawFrame(typ byte, payload []byte) []byte {
	var b bytes.Buffer
	writeFrame(&b, typ, payload)
	return b.Bytes()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func TestClientHello(t *testing.T) {
	hello := rawFrame(frameHello, encodeHello(Hello{Version: AgentVersion, Pid: 1}))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"banner", []byte("Welcome to node1!\n"), `it sent "Welcome to node1!\n": is a login script (~/.bashrc, ~/.profile) printing text`},
		{"empty", nil, "remote: agent on h1: no Hello: EOF"},
		{"not hello", rawFrame(frameStarted, encodeStarted(Started{1, 1})), "frame type 0x81 before Hello"},
		{"version", rawFrame(frameHello, encodeHello(Hello{Version: 99})), "speaks protocol version 99, this mpirun speaks " + strconv.Itoa(AgentVersion)},
	}
	for _, tt := range tests {
		r, w := fakeAgent(t, tt.in)
		_, err := NewClient("h1", r, nopCloser{w}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want %q", tt.name, err, tt.want)
		}
	}
	r, w := fakeAgent(t, hello)
	c, err := NewClient("h1", r, nopCloser{w}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if c.Err() != nil {
		t.Errorf("clean end: %v", c.Err())
	}
}

func TestClientLostAgent(t *testing.T) {
	// The agent reports rank 0's start and a line, then the stream breaks.
	inR, inW := io.Pipe()
	lines, exits := make(chan proc.Line), make(chan proc.Exit)
	go func() {
		inW.Write(rawFrame(frameHello, encodeHello(Hello{Version: AgentVersion})))
	}()
	var sent bytes.Buffer
	c, err := NewClient("h1", inR, nopCloser{&sent}, lines, exits)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 2; r++ {
		if err := c.Start(RankSpec{Rank: r, Path: "/x"}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		inW.Write(rawFrame(frameStarted, encodeStarted(Started{Rank: 0, Pid: 77})))
		inW.Write(rawFrame(frameLine, encodeLine(proc.Line{Rank: 0, Stream: proc.Stdout, Text: []byte("hi")})))
		inW.Write(rawFrame(frameExit, encodeExit(proc.Exit{Rank: 1, Pid: 78, Code: 0})))
		inW.CloseWithError(io.ErrUnexpectedEOF) // the connection drops
	}()
	res := collect(t, lines, exits, 2, nil)
	if got := res.lines[0]; len(got) != 1 || got[0] != "stdout: hi" {
		t.Errorf("lines %q", got)
	}
	e := res.exits[0]
	if !errors.Is(e.Err, ErrAgentGone) || e.Pid != 77 || !strings.Contains(e.Err.Error(), "h1") || !strings.Contains(e.Err.Error(), "rank 0") {
		t.Errorf("lost rank exit %+v (%v)", e, e.Err)
	}
	if res.exits[1].Err != nil {
		t.Errorf("reported rank exit %+v", res.exits[1])
	}
	<-c.Done()
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("client err %v", err)
	}
	// Two Start frames went out.
	n := 0
	for {
		f, err := readFrame(&sent, MaxFrame)
		if err != nil {
			break
		}
		if f.typ == frameStart {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d Start frames sent, want 2", n)
	}
	if err := c.Start(RankSpec{Rank: 9, Path: "/x"}); !errors.Is(err, ErrAgentGone) {
		t.Errorf("Start after the end: %v", err)
	}
}

func TestClientRejectsUnexpectedFrames(t *testing.T) {
	hello := rawFrame(frameHello, encodeHello(Hello{Version: AgentVersion}))
	line := rawFrame(frameLine, encodeLine(proc.Line{Rank: 4, Stream: proc.Stdout}))
	r, w := fakeAgent(t, hello, line)
	c, err := NewClient("h1", r, nopCloser{w}, make(chan proc.Line, 1), make(chan proc.Exit, 1))
	if err != nil {
		t.Fatal(err)
	}
	<-c.Done()
	if err := c.Err(); !errors.Is(err, ErrBadFrame) || !strings.Contains(err.Error(), "rank 4") {
		t.Errorf("err %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2", "C=3"}, []string{"B=x", "D=4"})
	if strings.Join(got, " ") != "A=1 C=3 B=x D=4" {
		t.Errorf("mergeEnv = %q", got)
	}
}

// TestAgentPingsKeepItAlive: while pings flow, a rank outlives the idle time
// many times over.
func TestAgentPingsKeepItAlive(t *testing.T) {
	p := startAgentPair(t)
	p.c.StartPings(10*time.Millisecond, 500*time.Millisecond)
	if err := p.c.Start(shRank(0, `sleep 2; echo done`)); err != nil {
		t.Fatal(err)
	}
	res := collect(t, p.lines, p.exits, 1, nil)
	if e := res.exits[0]; e.Code != 0 || e.Signal != 0 || e.Err != nil || strings.Join(res.lines[0], "|") != "stdout: done" {
		t.Errorf("exit %+v, lines %q", e, res.lines[0])
	}
	p.c.CloseInput()
	if err := <-p.agentErr; err != nil {
		t.Errorf("agent: %v", err)
	}
}
