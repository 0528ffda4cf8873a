package main

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/dsmexec/dsmexec/internal/limits"
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
	j := limits.Job{Size: 100, DSM: true, Mesh: limits.CurrentMesh, MemMesh: limits.CurrentMemMesh, Pagers: limits.CurrentPagers}
	// "(mpirun itself ~326)" when mpirun needs more than a rank process.
	want := "mpirun: error: " + limits.Check(100, j.ProcessFDs(), limits.MpirunFDs(100, 0, 0), "", 64).Error() + "\n" +
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
	return runCmd(t, "sh", "/bin/sh", nil, args...)
}

// The formulas of internal/limits hold for a real job: after rank.Init and
// a barrier, no rank and no page server holds more than the formula says
// (without its slack, plus 2). A change that adds descriptors per
// process must update internal/limits; one that removes some (connections
// on demand, one page server per host) should lower it.
func TestFileFormulas(t *testing.T) {
	const n = 12
	for _, c := range []struct {
		name string
		args []string
		job  limits.Job
	}{
		{"userfaultfd", nil, limits.Job{Size: n, DSM: true, Mesh: limits.CurrentMesh, MemMesh: limits.CurrentMemMesh, Pagers: limits.CurrentPagers}},
		{"sigsegv", []string{"-x", "DSMEXEC_FAULT=sigsegv"}, limits.Job{Size: n, DSM: true, SIGSEGV: true, Mesh: limits.CurrentMesh, MemMesh: limits.CurrentMemMesh, Pagers: limits.CurrentPagers}},
		{"no region", []string{"-dsm-size", "0"}, limits.Job{Size: n, Mesh: limits.CurrentMesh, MemMesh: limits.CurrentMemMesh, Pagers: limits.CurrentPagers}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{"-np", strconv.Itoa(n)}, c.args...), fdprog)
			r := runMpirun(t, "", args...)
			if r.status != 0 {
				t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
			}
			re := regexp.MustCompile(`(?m)^\[rank (\d+)\] fds rank=(\d+) pager=(-?\d+)$`)
			ms := re.FindAllStringSubmatch(r.stdout, -1)
			if len(ms) != n {
				t.Fatalf("%d ranks counted, want %d; stdout:\n%s", len(ms), n, r.stdout)
			}
			maxRank, maxPager := 0, -1
			for _, m := range ms {
				rk, _ := strconv.Atoi(m[2])
				pg, _ := strconv.Atoi(m[3])
				maxRank, maxPager = max(maxRank, rk), max(maxPager, pg)
			}
			wantRank, wantPager := c.job.RankFDs()-limits.Slack, max(c.job.PagerFDs()-limits.Slack, 0)
			t.Logf("N=%d: rank %d fds (formula %d), page server %d (formula %d)", n, maxRank, wantRank, maxPager, wantPager)
			if maxRank > wantRank+2 {
				t.Errorf("a rank holds %d descriptors, internal/limits says %d: update its formula", maxRank, wantRank)
			}
			if c.job.PagerFDs() == 0 {
				if maxPager != -1 {
					t.Errorf("a rank has a child process with %d descriptors; the formula says no page server", maxPager)
				}
			} else if maxPager > wantPager+2 || maxPager < 0 {
				t.Errorf("a page server holds %d descriptors, internal/limits says %d: update its formula", maxPager, wantPager)
			}
		})
	}
}
