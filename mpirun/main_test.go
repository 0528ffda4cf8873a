package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/proc"
)

// The tests run the real binaries: mpirun and testdata/rankprog, built once
// into a temporary directory.
var (
	binDir   string
	mpirun   string
	rankprog string
	rdvprog  string
	fdprog   string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mpirun-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	mpirun = filepath.Join(dir, "mpirun")
	rankprog = filepath.Join(dir, "rankprog")
	rdvprog = filepath.Join(dir, "rdvprog")
	fdprog = filepath.Join(dir, "fdprog")
	build := func(out, pkg string, race bool) {
		args := []string{"build", "-o", out}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	if raceEnabled && os.Getenv("GORACE") == "" {
		// A race-enabled binary sleeps a second at exit by default: every
		// mpirun and every agent would.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	build(mpirun, ".", raceEnabled)
	build(rankprog, "./testdata/rankprog", false)
	build(rdvprog, "./testdata/rdvprog", false)
	build(fdprog, "./testdata/fdprog", false)
	code := m.Run()
	sharedEnv.cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	status         int // exit status; -1 if mpirun was killed by a signal
	elapsed        time.Duration
}

// runMpirun runs mpirun with args and stdin to completion (at most a minute).
func runMpirun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runMpirunEnv(t, nil, stdin, args...)
}

// runMpirunEnv is runMpirun with the environment env (nil: the test's).
func runMpirunEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	return runCmd(t, "mpirun", mpirun, func(cmd *exec.Cmd) {
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
	}, args...)
}

// runCmd runs the program at path (what, in failures) with args, within a
// minute; setup, if not nil, sets the command's environment or input.
func runCmd(t *testing.T, what, path string, setup func(*exec.Cmd), args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	if setup != nil {
		setup(cmd)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not end within a minute; stderr:\n%s", what, args, r.stderr)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run %s: %v", what, err)
	}
	r.status = cmd.ProcessState.ExitCode()
	return r
}

var markerSeq atomic.Int64

// newMarker returns -x arguments that put a unique variable in every rank's
// environment, and the variable, to find the job's processes in /proc.
func newMarker() (args []string, env string) {
	env = fmt.Sprintf("MPIRUN_TEST_MARKER=%d-%d-%d", os.Getpid(), time.Now().UnixNano(), markerSeq.Add(1))
	return []string{"-x", env}, env
}

// jobProcs lists the live processes (not zombies) whose environment holds env.
func jobProcs(env string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	want := []byte(env)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !hasEnvEntry(b, want) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && (st[i+2] == 'Z' || st[i+2] == 'X') {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

func hasEnvEntry(environ, entry []byte) bool {
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if bytes.Equal(kv, entry) {
			return true
		}
	}
	return false
}

// started is an mpirun running in the background.
type started struct {
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	stderr *syncBuffer
	done   chan struct{}
	cancel context.CancelFunc
}

func start(t *testing.T, args ...string) *started {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with the environment env (nil: the test's).
func startEnv(t *testing.T, env []string, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, mpirun, args...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, stdout: bufio.NewScanner(out), stderr: &syncBuffer{}, done: make(chan struct{}), cancel: cancel}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	go func() {
		// Wait closes the stdout pipe once mpirun has exited; the tests
		// read stdout only while mpirun runs, or until that close.
		cmd.Wait()
		close(s.done)
	}()
	return s
}

// waitLines reads stdout until n lines matched re (bounded by the minute
// of the command's context: mpirun is killed and stdout ends then).
func (s *started) waitLines(t *testing.T, re string, n int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	for n > 0 && s.stdout.Scan() {
		if rx.MatchString(s.stdout.Text()) {
			n--
		}
	}
	if n > 0 {
		t.Fatalf("stdout ended with %d lines matching %q still missing", n, re)
	}
}

// wait drains stdout and returns mpirun's exit status.
func (s *started) wait(t *testing.T) int {
	t.Helper()
	for s.stdout.Scan() {
	}
	<-s.done
	return s.cmd.ProcessState.ExitCode()
}

func lineRe(rank string) string { return `^\[rank ` + rank + `\] ready ` }

// pad must match testdata/rankprog.
func pad(r, i int) int {
	switch {
	case i%97 == 0:
		return 200_000 + r
	case i%13 == 0:
		return 5000
	default:
		return (i * (r + 1)) % 120
	}
}

func TestTaggedLines(t *testing.T) {
	const ranks, n = 4, 1000
	r := runMpirun(t, "", "-np", strconv.Itoa(ranks), rankprog, "lines", strconv.Itoa(n))
	if r.status != 0 {
		t.Fatalf("status %d, stderr:\n%s", r.status, r.stderr)
	}
	lineRx := regexp.MustCompile(`^\[rank (\d+)\] rank (\d+) line (\d+) (x*)$`)
	endRx := regexp.MustCompile(`^\[rank (\d+)\] rank (\d+) end$`)
	next := make([]int, ranks)
	ended := make([]bool, ranks)
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if m := endRx.FindStringSubmatch(l); m != nil {
			tr, _ := strconv.Atoi(m[1])
			if m[1] != m[2] || ended[tr] || next[tr] != n {
				t.Fatalf("bad end line %q (rank %d at line %d)", l, tr, next[tr])
			}
			ended[tr] = true
			continue
		}
		m := lineRx.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line not whole or not tagged: %.200q", l)
		}
		tr, _ := strconv.Atoi(m[1])
		i, _ := strconv.Atoi(m[3])
		if m[1] != m[2] || i != next[tr] || len(m[4]) != pad(tr, i) {
			t.Fatalf("rank %d: got %.100q (%d x), want line %d with %d x", tr, l, len(m[4]), next[tr], pad(tr, next[tr]))
		}
		next[tr]++
	}
	for rk := range ranks {
		if next[rk] != n || !ended[rk] {
			t.Errorf("rank %d: %d lines, end line seen %v", rk, next[rk], ended[rk])
		}
	}
	// stderr: the ranks' error lines, whole and tagged, nothing else.
	errs := 0
	for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		var tr, rr, i int
		if _, err := fmt.Sscanf(l, "[rank %d] rank %d err %d", &tr, &rr, &i); err != nil || tr != rr || i%100 != 0 {
			t.Errorf("stderr line %q", l)
		}
		errs++
	}
	if errs != ranks*n/100 {
		t.Errorf("%d stderr lines, want %d", errs, ranks*n/100)
	}
}

func TestUntaggedLines(t *testing.T) {
	r := runMpirun(t, "", "-np", "2", "-tag-output=false", rankprog, "lines", "30")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	next := map[int]int{}
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if strings.HasPrefix(l, "[") {
			t.Fatalf("tagged line %.80q", l)
		}
		var rk, i int
		if _, err := fmt.Sscanf(l, "rank %d line %d", &rk, &i); err == nil {
			if i != next[rk] {
				t.Fatalf("rank %d: line %d after %d", rk, i, next[rk])
			}
			next[rk]++
		} else if l != "rank 0 end" && l != "rank 1 end" {
			t.Fatalf("bad line %.80q", l)
		}
	}
	if next[0] != 30 || next[1] != 30 {
		t.Errorf("lines per rank: %v", next)
	}
}

func TestOutputDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	const n = 120
	r := runMpirun(t, "", "-np", "2", "-output-dir", dir, rankprog, "lines", strconv.Itoa(n))
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	for rk := range 2 {
		var want, wantErr strings.Builder
		for i := range n {
			fmt.Fprintf(&want, "rank %d line %d %s\n", rk, i, strings.Repeat("x", pad(rk, i)))
			if i%100 == 0 {
				fmt.Fprintf(&wantErr, "rank %d err %d\n", rk, i)
			}
		}
		fmt.Fprintf(&want, "rank %d end", rk)
		got, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("rank.%d.out", rk)))
		if err != nil || string(got) != want.String() {
			t.Errorf("rank.%d.out: %d bytes, %v; want the %d bytes rank %d wrote", rk, len(got), err, want.Len(), rk)
		}
		got, err = os.ReadFile(filepath.Join(dir, fmt.Sprintf("rank.%d.err", rk)))
		if err != nil || string(got) != wantErr.String() {
			t.Errorf("rank.%d.err = %q, %v; want %q", rk, got, err, wantErr.String())
		}
	}
	if !strings.Contains(r.stdout, "[rank 1] rank 1 end\n") {
		t.Errorf("terminal output lacks the partial last line")
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		status int
		msg    string // regexp over stderr; "" means no mpirun line at all
	}{
		{"all zero", []string{"-np", "4", rankprog, "exit-code", "0"}, 0, ""},
		{"rank exits 3", []string{"-np", "3", rankprog, "exit", "3", "1"}, 3,
			`(?m)^mpirun: rank 1 \(pid \d+\) exited with status 3$`},
		{"rank killed", []string{"-np", "3", rankprog, "killself", "2"}, 137,
			`(?m)^mpirun: rank 2 \(pid \d+\) killed by signal SIGKILL$`},
		{"others ignore SIGTERM", []string{"-np", "3", "-grace", "200ms", "-x", "RANKPROG_IGNORE_TERM=1", rankprog, "exit", "5", "0"}, 5,
			`(?m)^mpirun: rank 0 \(pid \d+\) exited with status 5$`},
		{"every rank exits 7", []string{"-np", "2", rankprog, "exit-code", "7"}, 7,
			`(?m)^mpirun: rank [01] \(pid \d+\) exited with status 7$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runMpirun(t, "", tt.args...)
			if r.status != tt.status {
				t.Errorf("status %d, want %d; stderr:\n%s", r.status, tt.status, r.stderr)
			}
			if tt.msg == "" {
				if strings.Contains(r.stderr, "mpirun:") {
					t.Errorf("unexpected mpirun message:\n%s", r.stderr)
				}
			} else if !regexp.MustCompile(tt.msg).MatchString(r.stderr) {
				t.Errorf("stderr lacks %s:\n%s", tt.msg, r.stderr)
			}
			if strings.Count(r.stderr, "mpirun: rank") > 1 {
				t.Errorf("more than one rank blamed:\n%s", r.stderr)
			}
			// The other ranks sleep ten minutes: ending at all means
			// mpirun stopped them rather than waiting.
			t.Logf("mpirun took %v", r.elapsed)
		})
	}
}

func TestSignals(t *testing.T) {
	tests := []struct {
		sig    syscall.Signal
		status int
		args   []string
	}{
		{syscall.SIGINT, 130, []string{rankprog, "spawn"}}, // grandchildren in the ranks' groups
		{syscall.SIGTERM, 143, []string{rankprog, "sleep"}},
		{syscall.SIGHUP, 129, []string{"-grace", "200ms", rankprog, "sleep-ignore-term"}}, // needs SIGKILL
	}
	for _, tt := range tests {
		t.Run(proc.SignalName(tt.sig), func(t *testing.T) {
			x, env := newMarker()
			s := start(t, append(append([]string{"-np", "3"}, x...), tt.args...)...)
			want := 3
			if tt.args[1] == "spawn" {
				want = 6 // each rank and its grandchild
			}
			s.waitLines(t, `^\[rank \d\] ready \d$`, want)
			if got := jobProcs(env); len(got) != want {
				t.Fatalf("found %d processes of the job, want %d", len(got), want)
			}
			s.cmd.Process.Signal(tt.sig)
			if st := s.wait(t); st != tt.status {
				t.Errorf("status %d, want %d; stderr:\n%s", st, tt.status, s.stderr)
			}
			if left := jobProcs(env); len(left) > 0 {
				t.Errorf("processes of the job outlived mpirun: %v", left)
			}
			if !strings.Contains(s.stderr.String(), "mpirun: "+proc.SignalName(tt.sig)+": stopping 3 ranks") {
				t.Errorf("stderr:\n%s", s.stderr)
			}
		})
	}
}

func TestSecondInterruptKills(t *testing.T) {
	x, env := newMarker()
	s := start(t, append(append([]string{"-np", "2", "-grace", "10m"}, x...), rankprog, "sleep-ignore-term")...)
	s.waitLines(t, lineRe(`\d`), 2)
	s.cmd.Process.Signal(syscall.SIGINT)
	// Wait until mpirun has handled the first one (bounded by the test's minute).
	for !strings.Contains(s.stderr.String(), "stopping 2 ranks") {
		select {
		case <-s.done:
			t.Fatalf("mpirun ended after one SIGINT; stderr:\n%s", s.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	if st := s.wait(t); st != 130 {
		t.Errorf("status %d, want 130; stderr:\n%s", st, s.stderr)
	}
	if left := jobProcs(env); len(left) > 0 {
		t.Errorf("processes of the job outlived mpirun: %v", left)
	}
}

func TestMpirunKilled(t *testing.T) {
	x, env := newMarker()
	s := start(t, append(append([]string{"-np", "3"}, x...), rankprog, "sleep")...)
	s.waitLines(t, lineRe(`\d`), 3)
	if n := len(jobProcs(env)); n != 3 {
		t.Fatalf("%d ranks running, want 3", n)
	}
	s.cmd.Process.Kill()
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := jobProcs(env)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ranks %v still run 2 s after mpirun was killed", left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	local := filepath.Join(dir, "localprog")
	os.WriteFile(local, []byte("#!/bin/sh\n"), 0o755)
	afile := filepath.Join(dir, "afile")
	os.WriteFile(afile, nil, 0o644)
	badHosts := filepath.Join(dir, "badhosts")
	os.WriteFile(badHosts, []byte("# comment\nlocalhost\nlocalhost slots=x\n"), 0o644)
	fullHosts := filepath.Join(dir, "fullhosts")
	os.WriteFile(fullHosts, []byte("localhost max_slots=2\n"), 0o644)
	touched := filepath.Join(dir, "touched")
	touch := []string{rankprog, "touch", touched}
	tests := []struct {
		name   string
		args   []string
		status int
		msg    string
		hint   string
	}{
		{"np 0", append([]string{"-np", "0"}, touch...), 2, "-np 0", "at least one rank"},
		{"np negative", append([]string{"-n", "-2"}, touch...), 2, "-np -2", "at least one rank"},
		{"np not a number", append([]string{"-np", "four"}, touch...), 2, `invalid value "four" for flag -np`, "mpirun -h"},
		{"no program", []string{"-np", "2"}, 2, "no program given", "mpirun -np 4 ./hello"},
		{"unknown flag", append([]string{"-np", "2", "-bogus"}, touch...), 2, "flag provided but not defined: -bogus", "mpirun -h"},
		{"missing", []string{"-np", "2", filepath.Join(dir, "nothere")}, 1, "not found", "check the path"},
		{"not in PATH", []string{"-np", "2", "no-such-program-mpirun-test"}, 1, `"no-such-program-mpirun-test" not found in PATH`, "check the spelling"},
		{"here but no ./", []string{"-np", "2", "localprog"}, 1, "not found in PATH", "write ./localprog"},
		{"not executable", []string{"-np", "2", noexec}, 1, "is not executable", "chmod +x"},
		{"directory", []string{"-np", "2", dir}, 1, "is a directory", ""},
		{"bad dsm size", append([]string{"-np", "2", "-dsm-size", "12X"}, touch...), 2, "-dsm-size", ""},
		{"negative dsm size", append([]string{"-dsm-size", "-1"}, touch...), 2, "-dsm-size", ""},
		{"bad format", append([]string{"-report-format", "xml"}, touch...), 2, `unknown report format "xml"`, "table, csv or json"},
		{"reserved -x", append([]string{"-x", "DSMEXEC_RANK=3"}, touch...), 2, "DSMEXEC_RANK is set by mpirun", ""},
		{"bad -x", append([]string{"-x", "=v"}, touch...), 2, `"=v" is not a NAME`, ""},
		{"empty machine file", append([]string{"-machinefile", afile}, touch...), 1, afile + ": no hosts", "one host per line"},
		{"machine file line", append([]string{"-machinefile", badHosts}, touch...), 1, badHosts + `:3: bad slots value "x"`, "one host per line"},
		{"machine file missing", append([]string{"-machinefile", filepath.Join(dir, "nohosts")}, touch...), 1, "cannot read machine file " + filepath.Join(dir, "nohosts") + ": no such file", ""},
		{"machine file full", append([]string{"-np", "3", "-machinefile", fullHosts}, touch...), 1, "not enough slots", "max_slots"},
		{"bad -host", append([]string{"-host", "a,,b"}, touch...), 2, "-host item 2: empty host name", "comma-separated"},
		{"both host lists", append([]string{"-host", "a", "-machinefile", fullHosts}, touch...), 2, "-machinefile and -host both given", ""},
		{"output dir", append([]string{"-output-dir", filepath.Join(afile, "sub")}, touch...), 1, "output:", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, mpirun, tt.args...)
			cmd.Dir = dir
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			cmd.Run()
			stderr := errb.String()
			if st := cmd.ProcessState.ExitCode(); st != tt.status {
				t.Errorf("status %d, want %d", st, tt.status)
			}
			if !strings.HasPrefix(stderr, "mpirun: error: ") || !strings.Contains(firstLine(stderr), tt.msg) {
				t.Errorf("stderr %q, want an error line with %q", stderr, tt.msg)
			}
			if tt.hint != "" && !regexp.MustCompile(`(?m)^mpirun: hint: .*`+regexp.QuoteMeta(tt.hint)).MatchString(stderr) {
				t.Errorf("stderr %q, want a hint with %q", stderr, tt.hint)
			}
			if out.Len() > 0 {
				t.Errorf("stdout %q", out.String())
			}
			if m, _ := filepath.Glob(touched + ".*"); len(m) > 0 {
				t.Errorf("a rank ran: %v", m)
			}
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func TestHelp(t *testing.T) {
	r := runMpirun(t, "", "-h")
	if r.status != 0 || !strings.Contains(r.stdout, "usage: mpirun [options] program [args...]") || !strings.Contains(r.stdout, "mpirun -np 4 ./pi") {
		t.Errorf("status %d, stdout:\n%s", r.status, r.stdout)
	}
}

func TestEnvironment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, "-np", "2", "-dsm-size", "3MiB",
		"-x", "FOO=bar=baz", "-x", "FWD", "-x", "UNSET_IN_MPIRUN", "-x", "OVERRIDE=new",
		rankprog, "env", "DSMEXEC_RANK", "DSMEXEC_SIZE", "DSMEXEC_MASTER", "DSMEXEC_TOKEN", "DSMEXEC_HOST", "DSMEXEC_DSM_SIZE",
		"FOO", "FWD", "UNSET_IN_MPIRUN", "OVERRIDE", "INHERITED")
	cmd.Env = append(os.Environ(), "FWD=forwarded", "OVERRIDE=old", "INHERITED=yes", "DSMEXEC_RANK=99", "DSMEXEC_TOKEN=stale")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "mpirun: warning: -x UNSET_IN_MPIRUN: UNSET_IN_MPIRUN is not set") {
		t.Errorf("no warning for the unset -x variable: %q", errb.String())
	}
	got := map[string]string{} // "rank/NAME" -> value line
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rk int
		var rest string
		if _, err := fmt.Sscanf(l, "[rank %d]", &rk); err != nil {
			t.Fatalf("line %q", l)
		}
		_, rest, _ = strings.Cut(l, "] ")
		name, _, _ := strings.Cut(rest, "=")
		name, _, _ = strings.Cut(name, " ")
		got[fmt.Sprintf("%d/%s", rk, name)] = rest
	}
	for rk := range 2 {
		want := map[string]string{
			"DSMEXEC_RANK":     fmt.Sprintf("DSMEXEC_RANK=%d", rk),
			"DSMEXEC_SIZE":     "DSMEXEC_SIZE=2",
			"DSMEXEC_HOST":     "DSMEXEC_HOST=localhost",
			"DSMEXEC_DSM_SIZE": "DSMEXEC_DSM_SIZE=3145728",
			"FOO":              "FOO=bar=baz",
			"FWD":              "FWD=forwarded",
			"UNSET_IN_MPIRUN":  "UNSET_IN_MPIRUN unset",
			"OVERRIDE":         "OVERRIDE=new",
			"INHERITED":        "INHERITED=yes",
		}
		for name, w := range want {
			if g := got[fmt.Sprintf("%d/%s", rk, name)]; g != w {
				t.Errorf("rank %d: %q, want %q", rk, g, w)
			}
		}
		if !regexp.MustCompile(`^DSMEXEC_MASTER=127\.0\.0\.1:\d+$`).MatchString(got[fmt.Sprintf("%d/DSMEXEC_MASTER", rk)]) {
			t.Errorf("rank %d: %q", rk, got[fmt.Sprintf("%d/DSMEXEC_MASTER", rk)])
		}
		if !regexp.MustCompile(`^DSMEXEC_TOKEN=[0-9a-f]{64}$`).MatchString(got[fmt.Sprintf("%d/DSMEXEC_TOKEN", rk)]) {
			t.Errorf("rank %d: %q", rk, got[fmt.Sprintf("%d/DSMEXEC_TOKEN", rk)])
		}
	}
	if got["0/DSMEXEC_TOKEN"] != got["1/DSMEXEC_TOKEN"] || got["0/DSMEXEC_MASTER"] != got["1/DSMEXEC_MASTER"] {
		t.Errorf("ranks disagree on the token or master: %q", got)
	}
}

func TestTimeout(t *testing.T) {
	x, env := newMarker()
	r := runMpirun(t, "", append(append([]string{"-np", "2", "-timeout", "300ms"}, x...), rankprog, "sleep")...)
	if r.status != 124 {
		t.Errorf("status %d, want 124", r.status)
	}
	if !strings.Contains(r.stderr, "mpirun: error: job timed out after 300ms; ranks 0, 1 still running\n") ||
		!strings.Contains(r.stderr, "mpirun: hint: raise -timeout") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if left := jobProcs(env); len(left) > 0 {
		t.Errorf("processes of the job outlived mpirun: %v", left)
	}
}

func TestStdinToRankZero(t *testing.T) {
	r := runMpirun(t, "hello\nworld\n", "-np", "3", rankprog, "cat")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	per := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		tag, text, _ := strings.Cut(l, " ")
		tag2, text2, _ := strings.Cut(text, " ")
		per[tag+" "+tag2] = append(per[tag+" "+tag2], text2)
	}
	want := map[string]string{
		"[rank 0]": "in: hello|in: world|eof",
		"[rank 1]": "eof",
		"[rank 2]": "eof",
	}
	for tag, w := range want {
		if g := strings.Join(per[tag], "|"); g != w {
			t.Errorf("%s: %q, want %q", tag, g, w)
		}
	}
}

func TestSummary(t *testing.T) {
	// A table on stderr after everything else.
	r := runMpirun(t, "", "-np", "2", "-summary", rankprog, "exit-code", "0")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	for _, w := range []string{"RANK", "HOST", "PID", "EXIT", "WALL", "CPU", "MAX RSS"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("table lacks %s:\n%s", w, r.stderr)
		}
	}
	rowRx := regexp.MustCompile(`(?m)^│\s+(\d)\s+│\s+localhost\s+│\s+(\d+)\s+│\s+0\s+│\s+\S+\s+│\s+\S+\s+│\s+[\d.]+ [KMG]iB\s+│$`)
	if m := rowRx.FindAllStringSubmatch(r.stderr, -1); len(m) != 2 || m[0][1] != "0" || m[1][1] != "1" {
		t.Errorf("rows %q in:\n%s", m, r.stderr)
	}

	// CSV to a file, with a failed job.
	file := filepath.Join(t.TempDir(), "report.csv")
	r = runMpirun(t, "", "-np", "2", "-report-format=csv", "-report-file", file, rankprog, "exit", "3", "1")
	if r.status != 3 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 3 {
		t.Fatalf("csv: %v, %q", err, recs)
	}
	head := strings.Join(recs[0][:11], ",")
	if head != "rank,host,pid,exit_code,signal,status,wall_seconds,user_seconds,sys_seconds,max_rss_bytes,backend" {
		t.Errorf("csv header %q", head)
	}
	if rec := recs[2]; rec[0] != "1" || rec[1] != "localhost" || rec[3] != "3" || rec[4] != "" || rec[5] != "3" {
		t.Errorf("rank 1 row %q", rec)
	}
	if rec := recs[1]; rec[0] != "0" || rec[3] != "-1" || rec[4] != "SIGTERM" || rec[5] != "143" {
		t.Errorf("rank 0 row (stopped by mpirun) %q", rec)
	}
	if pid, err := strconv.Atoi(recs[1][2]); err != nil || pid <= 0 {
		t.Errorf("pid %q", recs[1][2])
	}

	// JSON.
	r = runMpirun(t, "", "-np", "2", "-report-format", "json", rankprog, "exit-code", "0")
	var s summary
	if err := json.Unmarshal([]byte(r.stderr), &s); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stderr)
	}
	if len(s.Ranks) != 2 || s.Ranks[1].Rank != 1 || !s.Ranks[1].Started || s.Ranks[1].Pid <= 0 || s.Ranks[1].MaxRSSBytes <= 0 || s.Ranks[1].WallSeconds <= 0 {
		t.Errorf("json ranks %+v", s.Ranks)
	}
}

func TestVerbose(t *testing.T) {
	r := runMpirun(t, "", "-v", "-np", "2", rankprog, "env", "DSMEXEC_TOKEN")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	m := regexp.MustCompile(`\[rank 0\] DSMEXEC_TOKEN=([0-9a-f]{64})`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout %q", r.stdout)
	}
	token := m[1]
	for _, w := range []string{
		"mpirun: placement: ranks 0-1 on localhost (launcher local)",
		"mpirun: master listening on 127.0.0.1:",
		"job token " + token[:4] + "…",
		"mpirun: started rank 1 on localhost, pid ",
	} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("-v output lacks %q:\n%s", w, r.stderr)
		}
	}
	if strings.Contains(r.stderr, token[:8]) {
		t.Errorf("-v shows the token:\n%s", r.stderr)
	}
}

// syncBuffer is a bytes.Buffer that a test may read while exec writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRendezvousReports(t *testing.T) {
	r := runMpirun(t, "", "-np", "3", "-v", "-report-format=json", rdvprog)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, "mpirun: DSM fault backend: testbackend\n") {
		t.Errorf("-v does not name the backend:\n%s", r.stderr)
	}
	// The JSON report is the last thing on stderr.
	i := strings.Index(r.stderr, "{\n")
	if i < 0 {
		t.Fatalf("no JSON in:\n%s", r.stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(r.stderr[i:]), &s); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stderr[i:])
	}
	if strings.Join(s.DSMColumns, ",") != "faults,bytes_in,zero,mean_seconds" || strings.Join(s.Columns, ",") != "answer,time,only_one" {
		t.Errorf("columns %q %q", s.DSMColumns, s.Columns)
	}
	for rk, row := range s.Ranks {
		// Raw numbers: JSON numbers decode as float64 into any.
		if row.Backend != "testbackend" || row.DSM["faults"] != float64(10*rk) || row.DSM["bytes_in"] != float64(4096) || row.Values["answer"] != float64(40+rk) || row.Values["time"] != 0.000395 {
			t.Errorf("rank %d: %+v", rk, row)
		}
	}
	if s.Ranks[1].Values["only_one"] != "yes" || s.Ranks[0].Values["only_one"] != nil {
		t.Errorf("only_one: %q %q", s.Ranks[0].Values, s.Ranks[1].Values)
	}
}

func TestRendezvousTimeout(t *testing.T) {
	x, env := newMarker()
	r := runMpirun(t, "", append(append([]string{"-np", "3", "-rendezvous-timeout", "300ms"}, x...), rdvprog, "join-only", "1")...)
	if r.status != 1 {
		t.Errorf("status %d, want 1", r.status)
	}
	if !strings.Contains(r.stderr, "mpirun: error: rendezvous: timed out: ranks 0, 2 never reported to the master within 300ms\n") ||
		!strings.Contains(r.stderr, "mpirun: hint: ") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if left := jobProcs(env); len(left) > 0 {
		t.Errorf("processes of the job outlived mpirun: %v", left)
	}
}

// A program that never talks to the master (not a dsmexec program) is not
// stopped by the rendezvous timeout.
func TestNoRendezvousIsFine(t *testing.T) {
	r := runMpirun(t, "", "-np", "2", "-v", "-rendezvous-timeout", "50ms", "-timeout", "500ms", rankprog, "sleep")
	if r.status != 124 {
		t.Errorf("status %d, want 124 (the -timeout, not the rendezvous)", r.status)
	}
	if !strings.Contains(r.stderr, "mpirun: no rank reported to the master within 50ms; treating the program as one that does not use dsmexec") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// Options stop at the program name: what follows belongs to the program.
func TestProgramArgsPassThrough(t *testing.T) {
	r := runMpirun(t, "", "-np", "1", "--", rankprog, "env", "-np", "-v", "--x")
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	if want := "[rank 0] -np unset\n[rank 0] -v unset\n[rank 0] --x unset\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}
