//go:build linux

package proc_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/proc"
)

// run starts sh -c script as rank 7 and collects its lines until Wait.
func run(t *testing.T, spec proc.Spec) ([]proc.Line, proc.Exit) {
	t.Helper()
	lines := make(chan proc.Line, 64)
	p, err := proc.Start(spec, lines)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	var got []proc.Line
	exitc := make(chan proc.Exit, 1)
	go func() { exitc <- p.Wait(); close(lines) }()
	for l := range lines {
		got = append(got, l)
	}
	return got, <-exitc
}

func sh(script string) proc.Spec {
	return proc.Spec{Rank: 7, Path: "/bin/sh", Args: []string{"-c", script}}
}

func stream(ls []proc.Line, s proc.Stream) []proc.Line {
	var out []proc.Line
	for _, l := range ls {
		if l.Stream == s {
			out = append(out, l)
		}
	}
	return out
}

func TestLines(t *testing.T) {
	ls, e := run(t, sh(`printf 'a\n\nb\nlast'; printf 'e1\ne2\n' >&2`))
	if e.Failed() {
		t.Fatalf("exit: %v", e)
	}
	type want struct {
		text    string
		partial bool
	}
	check := func(s proc.Stream, ws []want) {
		got := stream(ls, s)
		if len(got) != len(ws) {
			t.Fatalf("%v: got %d lines %+v, want %d", s, len(got), got, len(ws))
		}
		for i, w := range ws {
			if string(got[i].Text) != w.text || got[i].Partial != w.partial || got[i].Rank != 7 {
				t.Errorf("%v line %d = %+v, want %q partial=%v rank 7", s, i, got[i], w.text, w.partial)
			}
		}
	}
	check(proc.Stdout, []want{{"a", false}, {"", false}, {"b", false}, {"last", true}})
	check(proc.Stderr, []want{{"e1", false}, {"e2", false}})
}

func TestLongLines(t *testing.T) {
	const M = proc.MaxLine
	n := 2*M + M/2
	script := fmt.Sprintf(`head -c %d /dev/zero | tr '\0' x; echo; head -c %d /dev/zero | tr '\0' y; echo; head -c %d /dev/zero | tr '\0' z`, n, M, M+1)
	ls, e := run(t, sh(script))
	if e.Failed() {
		t.Fatalf("exit: %v", e)
	}
	want := []struct {
		c             byte
		n             int
		partial, more bool
	}{
		{'x', M, true, true}, {'x', M, true, true}, {'x', M / 2, false, false},
		{'y', M, false, false},
		{'z', M, true, true}, {'z', 1, true, false},
	}
	if len(ls) != len(want) {
		t.Fatalf("got %d lines, want %d", len(ls), len(want))
	}
	var rebuilt bytes.Buffer
	for i, w := range want {
		l := ls[i]
		if len(l.Text) != w.n || l.Partial != w.partial || l.More != w.more || bytes.Count(l.Text, []byte{w.c}) != w.n {
			t.Errorf("line %d: %d bytes partial=%v more=%v, want %d %q partial=%v more=%v", i, len(l.Text), l.Partial, l.More, w.n, w.c, w.partial, w.more)
		}
		rebuilt.Write(l.Text)
		if !l.Partial {
			rebuilt.WriteByte('\n')
		}
	}
	if rebuilt.Len() != n+1+M+1+M+1 {
		t.Errorf("rebuilt stream is %d bytes", rebuilt.Len())
	}
}

func TestManyLinesInOrder(t *testing.T) {
	ls, e := run(t, sh(`i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done`))
	if e.Failed() {
		t.Fatalf("exit: %v", e)
	}
	if len(ls) != 3000 {
		t.Fatalf("got %d lines", len(ls))
	}
	for i, l := range ls {
		if string(l.Text) != "line "+strconv.Itoa(i) || l.Partial {
			t.Fatalf("line %d = %q partial=%v", i, l.Text, l.Partial)
		}
	}
}

func TestExit(t *testing.T) {
	tests := []struct {
		script string
		code   int
		sig    syscall.Signal
		status int
		str    string
	}{
		{"exit 0", 0, 0, 0, "exited with status 0"},
		{"exit 3", 3, 0, 3, "exited with status 3"},
		{"kill -KILL $$", -1, syscall.SIGKILL, 137, "killed by signal SIGKILL"},
		{"kill -TERM $$", -1, syscall.SIGTERM, 143, "killed by signal SIGTERM"},
	}
	for _, tt := range tests {
		_, e := run(t, sh(tt.script))
		if e.Code != tt.code || e.Signal != tt.sig || e.Status() != tt.status || e.String() != tt.str || e.Err != nil {
			t.Errorf("%q: got %+v (%v), want code %d signal %v status %d", tt.script, e, e, tt.code, tt.sig, tt.status)
		}
		if e.Failed() != (tt.status != 0) {
			t.Errorf("%q: Failed() = %v", tt.script, e.Failed())
		}
		if e.Rank != 7 || e.Pid <= 0 || e.Wall <= 0 || e.MaxRSS <= 0 {
			t.Errorf("%q: rank/pid/wall/rss not filled in: %+v", tt.script, e)
		}
	}
}

func TestEnvDirStdin(t *testing.T) {
	dir := t.TempDir()
	spec := sh(`echo "$FOO"; pwd; cat`)
	spec.Env = []string{"FOO=bar", "PATH=/usr/bin:/bin"}
	spec.Dir = dir
	spec.Stdin = strings.NewReader("in1\nin2\n")
	ls, e := run(t, spec)
	if e.Failed() {
		t.Fatalf("exit: %v", e)
	}
	var got []string
	for _, l := range ls {
		got = append(got, string(l.Text))
	}
	want := []string{"bar", dir, "in1", "in2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}

	// nil Stdin is /dev/null: cat ends at once.
	ls, e = run(t, sh(`cat; echo done`))
	if e.Failed() || len(ls) != 1 || string(ls[0].Text) != "done" {
		t.Errorf("nil stdin: %v %+v", e, ls)
	}

	// An *os.File is handed over as it is.
	f, err := os.CreateTemp(dir, "in")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("from file\n")
	f.Seek(0, 0)
	spec = sh(`cat`)
	spec.Stdin = f
	ls, e = run(t, spec)
	f.Close()
	if e.Failed() || len(ls) != 1 || string(ls[0].Text) != "from file" {
		t.Errorf("file stdin: %v %+v", e, ls)
	}
}

func TestStartError(t *testing.T) {
	_, err := proc.Start(proc.Spec{Rank: 2, Path: "/nonexistent/prog"}, nil)
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "rank 2") {
		t.Errorf("Start of a missing program: %v", err)
	}
}

// gone polls until pid no longer runs (missing or a zombie), with a deadline.
func gone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// pid (comm) S ...: the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("pid %d still runs", pid)
}

func TestSignalReachesGroup(t *testing.T) {
	lines := make(chan proc.Line, 16)
	p, err := proc.Start(sh(`sleep 100 & echo $!; wait`), lines)
	if err != nil {
		t.Fatal(err)
	}
	l := <-lines
	child, err := strconv.Atoi(string(l.Text))
	if err != nil {
		t.Fatalf("child pid line %q", l.Text)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	go func() {
		for range lines {
		}
	}()
	e := p.Wait()
	close(lines)
	if e.Signal != syscall.SIGTERM {
		t.Errorf("exit %v, want SIGTERM", e)
	}
	gone(t, child)
	if err := p.Signal(syscall.SIGTERM); err != os.ErrProcessDone {
		t.Errorf("Signal after Wait = %v, want os.ErrProcessDone", err)
	}
}

func TestLeftoversKilled(t *testing.T) {
	// One background child keeps the pipes open, one closed them: both
	// must be gone when Wait returns, and the rank's status is its own.
	ls, e := run(t, sh(`sleep 100 >/dev/null 2>&1 </dev/null & echo $!; sleep 100 & echo $!; exit 5`))
	if e.Code != 5 {
		t.Errorf("exit %v, want status 5", e)
	}
	if len(ls) != 2 {
		t.Fatalf("lines %+v", ls)
	}
	for _, l := range ls {
		pid, err := strconv.Atoi(string(l.Text))
		if err != nil {
			t.Fatalf("pid line %q", l.Text)
		}
		gone(t, pid)
	}
}

func TestStartFromDyingThread(t *testing.T) {
	// A caller whose OS thread ends right after Start (a locked goroutine
	// that returns) must not take the child with it: the fork happens on
	// proc's own thread, so the parent-death signal does not fire.
	lines := make(chan proc.Line, 4)
	startc := make(chan *proc.Process, 1)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	tid := onDyingThread(t, func() {
		spec := sh(`read x; echo "alive $x"`)
		spec.Stdin = inR
		p, err := proc.Start(spec, lines)
		if err != nil {
			t.Error(err)
		}
		startc <- p
	})
	p := <-startc
	inR.Close()
	if p == nil {
		return
	}
	// Wait (bounded) until the caller's thread is really gone.
	task := "/proc/self/task/" + strconv.Itoa(tid)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(task); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Skipf("thread %d did not end; cannot test", tid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	inW.WriteString("yes\n")
	exitc := make(chan proc.Exit, 1)
	go func() { exitc <- p.Wait(); close(lines) }()
	var got []string
	for l := range lines {
		got = append(got, string(l.Text))
	}
	if e := <-exitc; e.Failed() || len(got) != 1 || got[0] != "alive yes" {
		t.Fatalf("child %v, output %q, after its starter's thread ended", e, got)
	}
}

func ExampleStart() {
	lines := make(chan proc.Line, 16)
	p, err := proc.Start(proc.Spec{Rank: 0, Path: "/bin/echo", Args: []string{"hello"}}, lines)
	if err != nil {
		fmt.Println(err)
		return
	}
	exitc := make(chan proc.Exit, 1)
	go func() { exitc <- p.Wait(); close(lines) }()
	for l := range lines {
		fmt.Printf("[rank %d] %s\n", l.Rank, l.Text)
	}
	fmt.Println((<-exitc).String())
	// Output:
	// [rank 0] hello
	// exited with status 0
}
