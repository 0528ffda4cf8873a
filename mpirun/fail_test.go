package main

import (
	"regexp"
	"strings"
	"testing"
)

// A rank that fails because it lost a peer is not blamed over that peer,
// even when it is reaped first (issue 14 #7).
func TestBlameTheLostPeer(t *testing.T) {
	r := runMpirun(t, "", "-np", "4", rdvprog, "blame", t.TempDir())
	if r.status != 137 {
		t.Errorf("status %d, want 137; stderr:\n%s", r.status, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^mpirun: rank 1 \(pid \d+\) killed by signal SIGKILL$`).MatchString(r.stderr) {
		t.Errorf("rank 1 not blamed:\n%s", r.stderr)
	}
	if strings.Count(r.stderr, "mpirun: rank") != 1 {
		t.Errorf("not exactly one rank blamed:\n%s", r.stderr)
	}
}

// Abort's code wins over the failure it causes in another rank, reaped
// first (issue 9 #7).
func TestAbort(t *testing.T) {
	r := runMpirun(t, "", "-np", "3", "-grace", "300ms", rdvprog, "abort", t.TempDir())
	if r.status != 3 {
		t.Errorf("status %d, want 3; stderr:\n%s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, "mpirun: rank 1 called Abort(3)\n") {
		t.Errorf("no abort message:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "exited with status") {
		t.Errorf("a rank's exit blamed over the Abort:\n%s", r.stderr)
	}
}
