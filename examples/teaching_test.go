package examples_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// teachingSizes are the world sizes every message-passing example runs at:
// one rank, powers of two and not.
var teachingSizes = []int{1, 2, 3, 4, 7}

var teachingExamples = []job{
	{prog: "ring", want: "ring: token "},
	{prog: "pi", want: "pi: integral within 1e-9 and montecarlo within"},
	{prog: "oddeven", args: []string{"-n", "300"}, want: "sorted, a permutation of the input"},
	{prog: "matmul-msg", args: []string{"-n", "48"}, want: "): correct"},
	{prog: "heat", args: []string{"-n", "24", "-tol", "0.05"}, want: "equals the serial result bit for bit"},
	{prog: "randomwalk", args: []string{"-walkers", "500", "-cells", "70", "-steps", "60"}, want: "none lost or duplicated"},
	{prog: "deadlock", args: []string{"-fix"}, want: "no deadlock"},
	{prog: "nbring", want: "of Isend, Irecv and Waitall: correct"},
	{prog: "probe", want: "received whole into a buffer of its probed size: correct"},
	{prog: "grid", want: "every row and column sum correct"},
	{prog: "scan", want: "in rank order by Scan and Exscan: correct"},
	{prog: "minloc", want: "both locations equal a serial search, ties to the lowest rank: correct"},
	{prog: "failure", args: []string{"-lose", "-return"}, want: "results, sum"},
	{prog: "alloc", args: []string{"-n", "20000"}, want: "equals the serial result"},
}

// perRank is, for the examples whose every rank prints a line, what that
// line contains: the test counts them.
var perRank = map[string]string{
	"deadlock": "no deadlock",
	"nbring":   "got every rank's greeting",
	"grid":     "grid: rank ",
	"scan":     " items: positions ",
}

// sharedMemory are the examples of the table that use plain loads and
// stores of shared memory: they need the userfaultfd backend.
var sharedMemory = map[string]bool{"alloc": true}

// line returns the first output line that contains prefix, without the
// [rank N] tag, or fails the test.
func line(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, prefix); i >= 0 {
			return l[i:]
		}
	}
	t.Fatalf("no line with %q in:\n%s", prefix, out)
	return ""
}

// TestTeachingExamples runs every message-passing example of the tutorial
// at 1, 2, 3, 4 and 7 ranks and checks its self-check line.
func TestTeachingExamples(t *testing.T) {
	for _, ex := range teachingExamples {
		for _, np := range teachingSizes {
			j := ex
			j.np = np
			t.Run(fmt.Sprintf("%s/np%d", ex.prog, np), func(t *testing.T) {
				if sharedMemory[ex.prog] {
					needUffd(t)
					j.env = []string{"DSMEXEC_FAULT=uffd"}
				}
				out := run(t, j)
				if want, ok := perRank[ex.prog]; ok {
					if c := strings.Count(out, want); c != np {
						t.Fatalf("%d ranks printed %q, want %d:\n%s", c, want, np, out)
					}
				}
			})
		}
	}
}

// TestPiDeterministic: the same -np and flags give the same output line, so
// runs under different launchers can be compared.
func TestPiDeterministic(t *testing.T) {
	j := job{np: 3, prog: "pi", args: []string{"-samples", "20000"}, want: "correct"}
	first := line(t, run(t, j), "pi: integral ")
	second := line(t, run(t, j), "pi: integral ")
	if first != second {
		t.Fatalf("two runs differ:\n%s\n%s", first, second)
	}
	if !strings.Contains(first, "montecarlo") || !strings.Contains(first, "with 20000 samples") {
		t.Fatalf("unexpected line %q", first)
	}
}

// TestMatmulMsgChecksum: the message-passing product has the shared-memory
// product's checksum.
func TestMatmulMsgChecksum(t *testing.T) {
	re := regexp.MustCompile(`checksum \S+ \(serial \S+\): correct`)
	shared := re.FindString(run(t, job{np: 2, prog: "matmul", args: []string{"-n", "40"}, want: "correct"}))
	if shared == "" {
		t.Fatal("matmul printed no checksum")
	}
	for _, np := range []int{1, 3} {
		msg := re.FindString(run(t, job{np: np, prog: "matmul-msg", args: []string{"-n", "40"}, want: "correct"}))
		if msg != shared {
			t.Fatalf("matmul-msg -np %d: %q, matmul: %q", np, msg, shared)
		}
	}
}

// TestRandomWalkIndependentOfSize: every walker carries its own generator,
// so where the walkers end up does not depend on the number of ranks.
func TestRandomWalkIndependentOfSize(t *testing.T) {
	var want string
	for _, np := range []int{1, 2, 5} {
		out := run(t, job{np: np, prog: "randomwalk", args: []string{"-walkers", "300", "-cells", "50"}, want: "correct"})
		got := line(t, out, "randomwalk: all ")
		if want == "" {
			want = got
		} else if got != want {
			t.Fatalf("-np %d: %q, -np 1: %q", np, got, want)
		}
	}
}

// TestMatmulMsgReportsBytes: matmul-msg adds its message bytes to the
// report table.
func TestMatmulMsgReportsBytes(t *testing.T) {
	out := run(t, job{np: 2, prog: "matmul-msg", args: []string{"-n", "32"}, want: "correct"}, "-report-format=csv")
	if !strings.Contains(out, "msg bytes in/out") {
		t.Fatalf("no msg bytes in/out column:\n%s", out)
	}
	// Rank 1 gets its 16 rows of A (4 KiB) and all of B (8 KiB) and sends
	// back its 16 rows of C (4 KiB); rank 0 the other way round.
	for _, want := range []string{"4.0KiB/12.0KiB", "12.0KiB/4.0KiB"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no rank reports %s:\n%s", want, out)
		}
	}
}

// TestDeadlockDetected: the deadlock example hangs; mpirun's deadlock
// detector names every rank's wait and ends the job with status 3.
func TestDeadlockDetected(t *testing.T) {
	for _, np := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("np%d", np), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "mpirun"), "-np", fmt.Sprint(np), "-deadlock-after", "1s",
				filepath.Join(bin, "deadlock"))
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("mpirun did not end the deadlocked job within 60s:\n%s", out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Fatalf("want exit status 3, got %v:\n%s", err, out)
			}
			var waits []string
			for r := 0; r < np; r++ {
				partner := r ^ 1
				if partner >= np {
					partner = r
				}
				waits = append(waits, fmt.Sprintf("rank %d waits in Recv(from %d, tag 0)", r, partner))
			}
			want := "mpirun: deadlock: " + strings.Join(waits, ", ") + "; nobody can send"
			if !strings.Contains(string(out), want) {
				t.Fatalf("want %q:\n%s", want, out)
			}
		})
	}
}

// TestDeadlockTimeout: with the deadlock detector off, mpirun -timeout
// ends the deadlock example and exits non-zero.
func TestDeadlockTimeout(t *testing.T) {
	for _, np := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("np%d", np), func(t *testing.T) {
			t.Parallel() // each waits out its timeout
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, filepath.Join(bin, "mpirun"), "-np", fmt.Sprint(np), "-deadlock-after", "0", "-timeout", "3s",
				filepath.Join(bin, "deadlock"))
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("mpirun -timeout 3s did not end the job within 60s:\n%s", out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit status, got %v:\n%s", err, out)
			}
			if strings.Contains(string(out), "no deadlock") {
				t.Fatalf("a rank got through the exchange:\n%s", out)
			}
			if !strings.Contains(string(out), "timed out") {
				t.Fatalf("mpirun does not say the job timed out:\n%s", out)
			}
			// Every rank's wait is named: its partner (rank^1, or
			// itself for the odd one out), tag 0.
			for r := 0; r < np; r++ {
				partner := r ^ 1
				if partner >= np {
					partner = r
				}
				re := regexp.MustCompile(fmt.Sprintf(`mpirun: rank %d \(pid \d+\) was waiting in Recv\(from %d, tag 0\)`, r, partner))
				if !re.Match(out) {
					t.Fatalf("mpirun does not say where rank %d waits:\n%s", r, out)
				}
			}
		})
	}
}
