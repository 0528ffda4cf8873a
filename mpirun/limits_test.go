package main

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A job that needs more open files per process than the hard limit is
// refused before any rank starts, with the numbers and what to change;
// not left to time out half-connected.
func TestFileLimitRefused(t *testing.T) {
	marker, env := newMarker()
	args := append([]string{"-c", `ulimit -n 64 && exec "$@"`, "sh", mpirun, "-np", "100"}, marker...)
	r := runSh(t, append(args, rankprog, "sleep")...)
	t.Logf("refused in %v", r.elapsed)
	if r.status != 1 {
		t.Errorf("status %d, want 1; stderr:\n%s", r.status, r.stderr)
	}
	want := "mpirun: error: 100 ranks need ~130 open files per process (mpirun itself ~326), the hard limit here is 64\n" +
		"mpirun: hint: raise it with ulimit -Hn (as root) or /etc/security/limits.conf\n"
	if r.stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
	if pids := jobProcs(env); len(pids) > 0 {
		t.Errorf("ranks were started: %v", pids)
	}
}

// The ranks inherit mpirun's soft limit raised to the hard one (Go raises
// its own at startup but would give children the original).
func TestFileLimitInherited(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Max < 200 {
		t.Skipf("hard limit %d", rl.Max)
	}
	r := runSh(t, "-c", `ulimit -Sn 100 && exec "$@"`, "sh", mpirun, "-np", "1", "/bin/sh", "-c", "ulimit -Sn")
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	want := strconv.FormatUint(rl.Max, 10)
	if rl.Max == ^uint64(0) {
		want = "unlimited"
	}
	if got := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.stdout), "[rank 0]")); got != want {
		t.Errorf("the rank's soft limit is %q, want the hard limit %s", got, want)
	}
}

// runSh runs /bin/sh with args (which exec mpirun), like runMpirun.
func runSh(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("sh %q did not end within a minute; stderr:\n%s", args, r.stderr)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run sh: %v", err)
	}
	r.status = cmd.ProcessState.ExitCode()
	return r
}
