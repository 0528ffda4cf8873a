// Package examples_test runs the example programs as real jobs: the built
// mpirun starts real rank processes whose shared memory moves on real page
// faults.
package examples_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/uffd"
)

var bin string // folder with mpirun and the examples

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dsmexec-examples-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the unprivileged test runs these as nobody
	bin = dir
	code := func() int {
		defer os.RemoveAll(dir)
		targets := []string{"../mpirun"}
		ents, _ := os.ReadDir(".")
		for _, e := range ents {
			if e.IsDir() {
				targets = append(targets, "./"+e.Name())
			}
		}
		for _, t := range targets {
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(t)), t).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", t, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// reps is how often each shared-memory example runs per size: 20 in CI
// (DSMEXEC_EXAMPLE_REPS), fewer by default to keep `go test` quick.
func reps(t *testing.T, def int) int {
	if s := os.Getenv("DSMEXEC_EXAMPLE_REPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("DSMEXEC_EXAMPLE_REPS=%q", s)
		}
		return n
	}
	return def
}

type job struct {
	np   int
	prog string
	args []string
	env  []string
	want string // substring every successful run prints
}

func run(t *testing.T, j job, mpirunArgs ...string) string {
	t.Helper()
	args := append([]string{"-np", strconv.Itoa(j.np), "-timeout", "60s"}, mpirunArgs...)
	args = append(args, filepath.Join(bin, j.prog))
	args = append(args, j.args...)
	cmd := exec.Command(filepath.Join(bin, "mpirun"), args...)
	cmd.Env = append(os.Environ(), j.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun -np %d %s %v: %v\n%s", j.np, j.prog, j.args, err, out)
	}
	if !strings.Contains(string(out), j.want) {
		t.Fatalf("mpirun -np %d %s: output lacks %q:\n%s", j.np, j.prog, j.want, out)
	}
	return string(out)
}

var sharedExamples = []job{
	{prog: "double_touch", want: "integer value"},
	{prog: "counter", args: []string{"-n", "200"}, want: "counter: locked"},
	{prog: "matmul", args: []string{"-n", "48"}, want: "correct"},
	{prog: "jacobi", args: []string{"-n", "40", "-iters", "10"}, want: "equals the serial result"},
}

// needUffd skips where the kernel or a seccomp profile forbids
// userfaultfd (the sigsegv backend's tests still run there).
func needUffd(t *testing.T) {
	t.Helper()
	u, err := uffd.New(true)
	if err != nil {
		t.Skipf("userfaultfd is not permitted here (%v): the uffd backend cannot run", err)
	}
	u.Close()
}

// TestSharedMemoryExamples runs every shared-memory example with 2, 3 and 4
// ranks on the userfaultfd backend.
func TestSharedMemoryExamples(t *testing.T) {
	needUffd(t)
	n := reps(t, 2)
	for _, ex := range sharedExamples {
		for _, np := range []int{2, 3, 4} {
			j := ex
			j.np = np
			j.env = []string{"DSMEXEC_FAULT=uffd"}
			t.Run(fmt.Sprintf("%s/np%d", ex.prog, np), func(t *testing.T) {
				for i := 0; i < n; i++ {
					out := run(t, j)
					if ex.prog == "double_touch" {
						want := fmt.Sprintf("integer value: %d", np*(np+1)/2)
						if c := strings.Count(out, want); c != np {
							t.Fatalf("%d ranks printed %q, want %d:\n%s", c, want, np, out)
						}
					}
				}
			})
		}
	}
}

// TestSigsegvBackend: the accessor version of counter, and the protocol,
// on the mprotect/SIGSEGV backend.
func TestSigsegvBackend(t *testing.T) {
	for _, np := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("np%d", np), func(t *testing.T) {
			out := run(t, job{np: np, prog: "counter", args: []string{"-n", "200", "-accessors"},
				env: []string{"DSMEXEC_FAULT=sigsegv"}, want: "counter: locked"}, "-v")
			if !strings.Contains(out, "backend: sigsegv") {
				t.Fatalf("not the sigsegv backend:\n%s", out)
			}
		})
	}
}

// TestContendedCounter: 4 ranks × 2,000 lock-protected and 2,000 atomic
// increments on one page, exact totals, repeated.
func TestContendedCounter(t *testing.T) {
	needUffd(t)
	if testing.Short() {
		t.Skip("-short")
	}
	n := reps(t, 2)
	if n > 10 {
		n = 10
	}
	for i := 0; i < n; i++ {
		start := time.Now()
		run(t, job{np: 4, prog: "counter", args: []string{"-n", "2000"}, want: "locked 8000, atomic 8000"})
		t.Logf("run %d: %v", i, time.Since(start))
	}
}

// TestUnprivileged runs an example as nobody: userfaultfd then works in
// user-mode-only mode.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to the unprivileged user nobody (setpriv)")
	}
	needUffd(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed (util-linux)")
	}
	args := []string{"--reuid=65534", "--regid=65534", "--clear-groups", filepath.Join(bin, "mpirun"),
		"-np", "3", "-v", "-timeout", "60s", filepath.Join(bin, "double_touch")}
	cmd := exec.Command(setpriv, args...)
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "integer value: 6") || !strings.Contains(string(out), "user-mode only") {
		t.Fatalf("as nobody, want the value 6 on the user-mode-only uffd backend:\n%s", out)
	}
}
