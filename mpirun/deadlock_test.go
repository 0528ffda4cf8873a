package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The deadlock detector against real jobs: testdata/dlprog's modes.

var (
	dlprogOnce sync.Once
	dlprog     string
	dlprogErr  error
)

// buildDlprog builds testdata/dlprog once.
func buildDlprog(t *testing.T) string {
	t.Helper()
	dlprogOnce.Do(func() {
		p := filepath.Join(binDir, "dlprog")
		if b, err := exec.Command("go", "build", "-o", p, "./testdata/dlprog").CombinedOutput(); err != nil {
			dlprogErr = fmt.Errorf("go build ./testdata/dlprog: %v\n%s", err, b)
			return
		}
		dlprog = p
	})
	if dlprogErr != nil {
		t.Fatal(dlprogErr)
	}
	return dlprog
}

// TestDeadlockNamed: each deadlock is found, named in words, the stacks
// printed, the job ended with status 3 and no process left.
func TestDeadlockNamed(t *testing.T) {
	prog := buildDlprog(t)
	cases := []struct {
		mode string
		np   int
		want string
	}{
		{"recv2", 2, "mpirun: deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 0, tag 0); nobody can send"},
		{"cycle3", 3, "mpirun: deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 2, tag 0), rank 2 waits in Recv(from 0, tag 0); nobody can send"},
		{"barrier", 3, "mpirun: deadlock: rank 0 waits in Recv(from 1, tag 5), rank 1 waits in Barrier (rank 0 has not arrived), rank 2 waits in Barrier (rank 0 has not arrived); nobody can send"},
		{"missing", 2, "mpirun: deadlock: rank 0 waits in Finalize (rank 1 has not arrived), rank 1 waits in Recv(from 0, tag 0); nobody can send"},
		{"lock", 2, "mpirun: deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Lock(0); nobody can send or unlock"},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			x, marker := newMarker()
			args := append([]string{"-np", fmt.Sprint(c.np), "-deadlock-after", "500ms"}, x...)
			r := runMpirun(t, "", append(args, prog, c.mode)...)
			t.Logf("%s took %v", c.mode, r.elapsed)
			if r.status != 3 {
				t.Fatalf("status %d, want 3; stderr:\n%s", r.status, r.stderr)
			}
			if !strings.Contains(r.stderr, c.want+"\n") {
				t.Fatalf("want the line\n%s\nstderr:\n%s", c.want, r.stderr)
			}
			if strings.Count(r.stderr, "mpirun: deadlock: ") != 1 {
				t.Errorf("the deadlock is named more than once:\n%s", r.stderr)
			}
			for rk := 0; rk < c.np; rk++ {
				if !strings.Contains(r.stderr, fmt.Sprintf("mpirun: deadlock stacks of rank %d (pid ", rk)) {
					t.Errorf("no stacks of rank %d:\n%s", rk, r.stderr)
				}
			}
			if !strings.Contains(r.stderr, "main.main()") || !strings.Contains(r.stderr, "rank.(*") {
				t.Errorf("the stacks do not show the program's frames and the dsmexec call:\n%s", r.stderr)
			}
			if strings.Contains(r.stderr, "runtime.gopark") {
				t.Errorf("the stacks are not trimmed:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, "mpirun: error: job deadlocked") {
				t.Errorf("no closing error line:\n%s", r.stderr)
			}
			if left := jobProcs(marker); len(left) > 0 {
				t.Errorf("processes of the job still run after mpirun ended: %v", left)
			}
		})
	}
}

// TestDeadlockNoFalsePositive: jobs where ranks wait far longer than
// -deadlock-after while another computes (in its main goroutine, or in a
// goroutine of its own while every main goroutine waits in Recv, or waits
// for a timer there) finish.
func TestDeadlockNoFalsePositive(t *testing.T) {
	prog := buildDlprog(t)
	for _, mode := range []string{"compute", "helper", "timer"} {
		for _, np := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s-np%d", mode, np), func(t *testing.T) {
				t.Parallel()
				r := runMpirun(t, "", "-np", fmt.Sprint(np), "-deadlock-after", "200ms", prog, mode, "1500ms")
				if r.status != 0 || strings.Contains(r.stderr, "deadlock") {
					t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
				}
				if n := strings.Count(r.stdout, ": done"); n != np {
					t.Errorf("%d ranks done, want %d:\n%s", n, np, r.stdout)
				}
			})
		}
	}
}

// TestDeadlockOff: -deadlock-after 0 leaves a deadlocked job to -timeout,
// which prints the stacks too.
func TestDeadlockOff(t *testing.T) {
	prog := buildDlprog(t)
	r := runMpirun(t, "", "-np", "2", "-deadlock-after", "0", "-timeout", "2s", prog, "recv2")
	if r.status != 124 {
		t.Fatalf("status %d, want 124; stderr:\n%s", r.status, r.stderr)
	}
	if strings.Contains(r.stderr, "mpirun: deadlock:") {
		t.Errorf("the detector ran with -deadlock-after 0:\n%s", r.stderr)
	}
	for rk := 0; rk < 2; rk++ {
		if !strings.Contains(r.stderr, fmt.Sprintf("mpirun: timeout stacks of rank %d (pid ", rk)) {
			t.Errorf("no stacks of rank %d on -timeout:\n%s", rk, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "main.main()") {
		t.Errorf("the stacks do not show the program's frames:\n%s", r.stderr)
	}
}

// TestDeadlockOutputDir: with -output-dir the stacks go to
// DIR/rank.N.stacks.
func TestDeadlockOutputDir(t *testing.T) {
	prog := buildDlprog(t)
	dir := t.TempDir()
	r := runMpirun(t, "", "-np", "2", "-deadlock-after", "300ms", "-output-dir", dir, prog, "recv2")
	if r.status != 3 {
		t.Fatalf("status %d, want 3; stderr:\n%s", r.status, r.stderr)
	}
	if strings.Contains(r.stderr, "main.main()") {
		t.Errorf("stacks on stderr with -output-dir:\n%s", r.stderr)
	}
	for rk := 0; rk < 2; rk++ {
		name := filepath.Join(dir, fmt.Sprintf("rank.%d.stacks", rk))
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v; stderr:\n%s", err, r.stderr)
		}
		if !strings.Contains(string(b), "main.main()") || !strings.Contains(string(b), "Recv") {
			t.Errorf("%s:\n%s", name, b)
		}
		if !strings.Contains(r.stderr, name) {
			t.Errorf("mpirun does not say where the stacks are:\n%s", r.stderr)
		}
	}
}

// TestDeadlockFlag: a negative -deadlock-after is a usage error.
func TestDeadlockFlag(t *testing.T) {
	r := runMpirun(t, "", "-np", "1", "-deadlock-after", "-1s", rankprog, "sleep")
	if r.status != 2 || !strings.Contains(r.stderr, "-deadlock-after") {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
}

// TestSSHDeadlock: the question and the answers travel through the
// hosts' agents.
func TestSSHDeadlock(t *testing.T) {
	prog := buildDlprog(t)
	st := sharedSSH(t)
	r := st.run(t, "", "-host", "node1:1,node2:1", "-deadlock-after", "500ms", prog, "recv2")
	if r.status != 3 {
		t.Fatalf("status %d, want 3; stderr:\n%s", r.status, r.stderr)
	}
	want := "mpirun: deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 0, tag 0); nobody can send"
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("want %q; stderr:\n%s", want, r.stderr)
	}
	if !strings.Contains(r.stderr, "deadlock stacks of rank 1 on node2 (pid ") || !strings.Contains(r.stderr, "main.main()") {
		t.Errorf("no stacks from node2:\n%s", r.stderr)
	}
}
