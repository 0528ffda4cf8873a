package remote

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dsmexec/dsmexec/internal/proc"
	"golang.org/x/sys/unix"
)

// startTestAgent installs this test binary on the host through SFTP and
// starts it there as an agent (TestMain runs RunAgent when testAgentEnv is
// set; the variable travels on the command line, not as an SSH env request).
func startTestAgent(t *testing.T, h *Host) (*Agent, chan proc.Line, chan proc.Exit) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CheckRunnable(testContext(t), self); err != nil {
		t.Fatal(err)
	}
	path, _, err := h.Install(testContext(t), self, "remote.test")
	if err != nil {
		t.Fatal(err)
	}
	lines, exits := make(chan proc.Line), make(chan proc.Exit)
	a, err := h.StartAgent(testContext(t), []string{"env", testAgentEnv + "=1", path, "-test.run=^$"}, lines, exits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, lines, exits
}

func TestAgentOverSSH(t *testing.T) {
	ts, _, h := dialTest(t)
	a, lines, exits := startTestAgent(t, h)
	if a.Hello().Pid == os.Getpid() || a.Hello().Pid == 0 {
		t.Errorf("hello %+v: the agent should be another process", a.Hello())
	}
	script := `echo "rank $DSMEXEC_RANK in $PWD"; echo "to stderr" >&2; exit $DSMEXEC_RANK`
	for r := 0; r < 2; r++ {
		spec := shRank(r, script, "DSMEXEC_RANK="+strconv.Itoa(r))
		if err := a.Start(spec); err != nil {
			t.Fatal(err)
		}
	}
	res := collect(t, lines, exits, 2, nil)
	for r := 0; r < 2; r++ {
		got := res.lines[r]
		sortStreams(got)
		want := []string{"stderr: to stderr", fmt.Sprintf("stdout: rank %d in %s", r, ts.home)}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("rank %d lines %q, want %q", r, got, want)
		}
		if e := res.exits[r]; e.Code != r || e.Err != nil || e.Pid == 0 {
			t.Errorf("rank %d exit %+v", r, e)
		}
	}
	if err := a.CloseInput(); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Errorf("agent: %v (stderr %q)", err, a.Stderr())
	}
}

// TestAgentOverSSHConnectionDrop: when the SSH connection dies, mpirun's
// side reports the rank as lost and the remote side kills it.
func TestAgentOverSSHConnectionDrop(t *testing.T) {
	_, _, h := dialTest(t)
	a, lines, exits := startTestAgent(t, h)
	// exec keeps the pid: the line is the pid of the process to watch.
	if err := a.Start(shRank(0, `echo $$; exec sleep 60`)); err != nil {
		t.Fatal(err)
	}
	var l proc.Line
	select {
	case l = <-lines:
	case e := <-exits:
		t.Fatalf("rank exited early: %+v", e)
	}
	pid, err := strconv.Atoi(string(l.Text))
	if err != nil {
		t.Fatalf("line %q: %v", l.Text, err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)

	h.Client().Close() // the network goes away
	e := <-exits
	if !errors.Is(e.Err, ErrAgentGone) || e.Rank != 0 {
		t.Errorf("exit %+v (%v), want ErrAgentGone", e, e.Err)
	}
	<-a.Done()
	if err := a.Wait(); err == nil {
		t.Error("Wait after a dropped connection returned nil")
	}
	// The agent sees its stdin close and kills the rank.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(pfd, 30_000)
	if err != nil || n != 1 {
		t.Fatalf("rank pid %d still running after the connection dropped (poll %d, %v)", pid, n, err)
	}
}

func TestStartAgentFailure(t *testing.T) {
	_, _, h := dialTest(t)
	_, err := h.StartAgent(testContext(t), []string{"/nonexistent/agent"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/agent") || !strings.Contains(err.Error(), "its stderr") {
		t.Errorf("err %v, want the shell's complaint", err)
	}
	// A login script that prints: the client shows what came instead.
	_, err = h.StartAgent(testContext(t), []string{"echo", "Welcome!"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), `"Welcome!\n"`) {
		t.Errorf("err %v, want the banner quoted", err)
	}
}

// TestAgentProcessSurvivesBrokenStdout: an agent process whose stdout
// breaks (mpirun gone) is not killed by SIGPIPE: it still stops its ranks
// gently when its stdin closes, and exits cleanly.
func TestAgentProcessSurvivesBrokenStdout(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), testAgentEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines, exits := make(chan proc.Line), make(chan proc.Exit, 1)
	c, err := NewClient("child", stdout, stdin, lines, exits)
	if err != nil {
		t.Fatal(err)
	}
	// The rank writes a line every few milliseconds: its workload, which
	// makes the agent write after its stdout broke.
	if err := c.Start(shRank(0, `echo $$; while :; do echo tick; sleep 0.005; done`)); err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string((<-lines).Text))
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	stdout.Close() // mpirun stops reading: the agent's next write fails
	go func() {
		for range lines { // until the client notices its closed pipe
		}
	}()
	<-c.Done()
	stdin.Close()
	err = cmd.Wait()
	if err != nil {
		t.Errorf("agent process: %v, want a clean exit", err)
	}
	close(lines)
	n, perr := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 30_000)
	if perr != nil || n != 1 {
		t.Fatalf("rank %d still running", pid)
	}
}

// tamper replaces the file at p by other bytes of the same size, as
// another user or a broken disk could.
func tamper(t *testing.T, p string, from, to string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if from != "" {
		if len(from) != len(to) || !strings.Contains(string(b), from) {
			t.Fatalf("tamper %s: %q not found or not the size of %q", p, from, to)
		}
		b = []byte(strings.Replace(string(b), from, to, 1))
	} else {
		b[len(b)/2] ^= 0xff
	}
	if err := os.WriteFile(p, b, 0o700); err != nil {
		t.Fatal(err)
	}
}

// A cached agent replaced by a file of the same size is refused before it
// runs: mpirun reads it back and checks its hash.
func TestTamperedAgentRefused(t *testing.T) {
	ts, ch, h := dialTest(t)
	a, _, _ := startTestAgent(t, h)
	a.CloseInput()
	a.Wait()
	self, _ := os.Executable()
	cached, _, err := h.Install(testContext(t), self, "remote.test")
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, cached, "", "")

	h2, err := Dial(testContext(t), ts.target(), ch.options())
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	p, copied, err := h2.Install(testContext(t), self, "remote.test")
	if err != nil || copied || p != cached {
		t.Fatalf("Install = %q, %v, %v; want the cached %q", p, copied, err, cached)
	}
	a2, err := h2.StartAgent(testContext(t), []string{"env", testAgentEnv + "=1", p, "-test.run=^$"}, make(chan proc.Line), make(chan proc.Exit))
	if err == nil {
		a2.Close()
		t.Fatal("a tampered agent was started")
	}
	if !strings.Contains(err.Error(), "changed after it was copied") || !strings.Contains(err.Error(), cached) {
		t.Errorf("StartAgent: %v, want an error naming %s as changed", err, cached)
	}
}

// A cached program replaced by a file of the same size is not executed:
// the agent hashes it first and the rank fails with an error saying so.
func TestTamperedProgramRefused(t *testing.T) {
	ts, ch, h := dialTest(t)
	app := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(app, []byte("#!/bin/sh\necho good\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cached, _, err := h.Install(testContext(t), app, "app")
	if err != nil {
		t.Fatal(err)
	}
	tamper(t, cached, "echo good", "echo evil")

	h2, err := Dial(testContext(t), ts.target(), ch.options())
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	a, lines, exits := startTestAgent(t, h2)
	p, copied, err := h2.Install(testContext(t), app, "app")
	if err != nil || copied || p != cached {
		t.Fatalf("Install = %q, %v, %v; want the cached %q", p, copied, err, cached)
	}
	if err := a.Start(RankSpec{Rank: 0, Path: p}); err != nil {
		t.Fatal(err)
	}
	res := collect(t, lines, exits, 1, nil)
	if len(res.lines[0]) != 0 {
		t.Errorf("the tampered program ran: %q", res.lines[0])
	}
	if e := res.exits[0]; e.Err == nil || !strings.Contains(e.Err.Error(), "changed after mpirun copied it") || e.Pid != 0 {
		t.Errorf("exit %+v, want a refusal", e)
	}
	// The genuine program runs.
	os.WriteFile(cached, []byte("#!/bin/sh\necho good\n"), 0o700)
	if err := a.Start(RankSpec{Rank: 1, Path: p}); err != nil {
		t.Fatal(err)
	}
	res = collect(t, lines, exits, 1, nil)
	if got := strings.Join(res.lines[1], "|"); got != "stdout: good" || res.exits[1].Failed() {
		t.Errorf("genuine program: lines %q exit %+v", got, res.exits[1])
	}
}
