package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// Options users bring from Open MPI and MPICH (issue 11), each run through
// the real binary.

func TestNoArguments(t *testing.T) {
	r := runMpirun(t, "")
	if r.status != 2 || !strings.HasPrefix(r.stderr, "usage: mpirun") || !strings.Contains(r.stderr, "mpirun -h") || r.stdout != "" {
		t.Errorf("status %d, stderr:\n%s", r.status, r.stderr)
	}
	if strings.Count(r.stderr, "\n") > 6 {
		t.Errorf("not a short usage:\n%s", r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := runMpirun(t, "", "--version")
	if r.status != 0 || !strings.HasPrefix(r.stdout, "mpirun (dsmexec) ") || !strings.Contains(r.stdout, runtime.Version()) {
		t.Errorf("status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
}

func TestForeignOptions(t *testing.T) {
	for _, tt := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--map-by", "node"}, "--map-by is an Open MPI option dsmexec does not have"},
		{[]string{"--bind-to", "core"}, "--bind-to is an Open MPI option dsmexec does not have"},
		{[]string{"--mca", "btl", "tcp,self"}, "--mca is an Open MPI option dsmexec does not have"},
		{[]string{"-bind-to=core"}, "-bind-to=core is an Open MPI option dsmexec does not have"},
		{[]string{"-np", "2", "-binding", "rr"}, "-binding is an MPICH option dsmexec does not have"},
	} {
		r := runMpirun(t, "", append(tt.args, rankprog, "env")...)
		if r.status != 2 || firstLine(r.stderr) != "mpirun: error: "+tt.msg || !regexp.MustCompile(`(?m)^mpirun: hint: \S`).MatchString(r.stderr) {
			t.Errorf("%q: status %d, stderr:\n%s", tt.args, r.status, r.stderr)
		}
	}
}

// sizes runs rankprog env with args and returns DSMEXEC_SIZE of every rank.
func sizes(t *testing.T, args ...string) []string {
	t.Helper()
	r := runMpirun(t, "", append(args, rankprog, "env", "DSMEXEC_SIZE")...)
	if r.status != 0 {
		t.Fatalf("%q: status %d, stderr:\n%s", args, r.status, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	sort.Strings(lines)
	return lines
}

func TestHostOptions(t *testing.T) {
	m := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(m, []byte("localhost slots=3\n"), 0o644)
	for _, tt := range []struct {
		args []string
		n    int
	}{
		{[]string{"-f", m}, 3},
		{[]string{"-hosts", "localhost:2"}, 2},
		{[]string{"-H", "localhost:4"}, 4},
		{[]string{"-ppn", "3"}, 3},
		{[]string{"-N", "2", "-H", "localhost"}, 2},
		{[]string{"--npernode", "2", "-f", m}, 2},
		{[]string{"-n", "5", "-ppn", "5"}, 5},
	} {
		got := sizes(t, tt.args...)
		if len(got) != tt.n || got[0] != fmt.Sprintf("[rank 0] DSMEXEC_SIZE=%d", tt.n) {
			t.Errorf("%q: %q, want %d ranks", tt.args, got, tt.n)
		}
	}
}

func TestPrependRank(t *testing.T) {
	for _, f := range []string{"-l", "-prepend-rank", "--prepend-rank"} {
		got := sizes(t, f, "-np", "2")
		if strings.Join(got, "|") != "[rank 0] DSMEXEC_SIZE=2|[rank 1] DSMEXEC_SIZE=2" {
			t.Errorf("%s: %q", f, got)
		}
	}
}

func TestGenv(t *testing.T) {
	r := runMpirun(t, "", "-np", "2", "-genv", "GENV_A", "one two", "--genv", "GENV_B=x=y", rankprog, "env", "GENV_A", "GENV_B")
	if r.status != 0 {
		t.Fatalf("status %d, stderr:\n%s", r.status, r.stderr)
	}
	for _, want := range []string{"[rank 0] GENV_A=one two", "[rank 1] GENV_A=one two", "[rank 0] GENV_B=x=y", "[rank 1] GENV_B=x=y"} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestOversubscribe(t *testing.T) {
	r := runMpirun(t, "", "-np", "3", "-host", "localhost:1", rankprog, "env")
	if r.status != 0 || !strings.Contains(r.stderr, "mpirun: warning: ") || !strings.Contains(r.stderr, "--oversubscribe") {
		t.Errorf("no oversubscription warning: status %d, stderr:\n%s", r.status, r.stderr)
	}
	r = runMpirun(t, "", "-np", "3", "-host", "localhost:1", "--oversubscribe", rankprog, "env")
	if r.status != 0 || r.stderr != "" {
		t.Errorf("--oversubscribe: status %d, stderr:\n%s", r.status, r.stderr)
	}
}

func TestWdir(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	for _, w := range []string{"-wdir", "--wdir"} {
		r := runMpirun(t, "", "-np", "2", w, dir, rankprog, "whoami")
		if r.status != 0 || strings.Count(r.stdout, " dir="+dir+" ") != 2 {
			t.Errorf("%s: status %d, stdout:\n%s\nstderr:\n%s", w, r.status, r.stdout, r.stderr)
		}
	}
	r := runMpirun(t, "", "-wdir", filepath.Join(dir, "none"), rankprog, "whoami")
	if r.status != 1 || !strings.Contains(r.stderr, "-wdir "+filepath.Join(dir, "none")+": not a directory") {
		t.Errorf("missing -wdir: status %d, stderr:\n%s", r.status, r.stderr)
	}
}

func TestTimestampOutput(t *testing.T) {
	r := runMpirun(t, "", "-np", "2", "--timestamp-output", rankprog, "lines", "5")
	if r.status != 0 {
		t.Fatalf("status %d, stderr:\n%s", r.status, r.stderr)
	}
	rx := regexp.MustCompile(`^\[rank [01]\] \[\+\d+\.\d{3}s\] rank [01] (line|end)`)
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !rx.MatchString(l) {
			t.Fatalf("line %.80q", l)
		}
	}
}

func TestTimeoutSeconds(t *testing.T) {
	r := runMpirun(t, "", "--timeout", "1", rankprog, "sleep")
	if r.status != 124 || !strings.Contains(r.stderr, "job timed out after 1s") {
		t.Errorf("status %d, stderr:\n%s", r.status, r.stderr)
	}
}

// worker is rankprog under another name, for MPMD jobs.
func worker(t *testing.T) string {
	t.Helper()
	w := filepath.Join(t.TempDir(), "worker")
	b, err := os.ReadFile(rankprog)
	if err != nil {
		t.Fatal(err)
	}
	// Different bytes (trailing data an ELF loader ignores): another
	// program for the hosts' caches too.
	if err := os.WriteFile(w, append(b, "worker"...), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// checkMPMD checks rankprog whoami/env output of an MPMD job: rank 0 runs
// rankprog with master's arguments, ranks 1-4 the worker.
func checkMPMD(t *testing.T, stdout string) {
	t.Helper()
	rx := regexp.MustCompile(`^\[rank (\d)(?:@[^\]]+)?\] (.*)$`)
	got := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		m := rx.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q", l)
		}
		got[m[1]] = append(got[m[1]], m[2])
	}
	if len(got) != 5 {
		t.Fatalf("ranks %v", got)
	}
	for r, lines := range got {
		prog, args, role := "rankprog", "m1", "master"
		if r != "0" {
			prog, args, role = "worker", "w1,w 2", "worker"
		}
		want := fmt.Sprintf("prog=%s dir=", prog)
		if len(lines) != 1 || !strings.HasPrefix(lines[0], want) || !strings.HasSuffix(lines[0], " args="+args+" ROLE="+role+" SIZE=5") {
			t.Errorf("rank %s: %q, want %s ... args=%s ROLE=%s SIZE=5", r, lines, want, args, role)
		}
	}
}

func TestMPMD(t *testing.T) {
	w := worker(t)
	r := runMpirun(t, "", "-np", "1", "-x", "ROLE=master", rankprog, "whoami", "m1", ":", "-np", "4", "-x", "ROLE=worker", w, "whoami", "w1", "w 2")
	if r.status != 0 {
		t.Fatalf("status %d, stderr:\n%s", r.status, r.stderr)
	}
	checkMPMD(t, r.stdout)
	r = runMpirun(t, "", "-np", "1", rankprog, "whoami", ":", "-grace", "1s", w)
	if r.status != 2 || !strings.Contains(r.stderr, "-grace in part 2") {
		t.Errorf("a job option in part 2: status %d, stderr:\n%s", r.status, r.stderr)
	}
	r = runMpirun(t, "", "-np", "1", rankprog, "whoami", ":", "-np", "2")
	if r.status != 2 || !strings.Contains(r.stderr, "no program in part 2") {
		t.Errorf("a part without a program: status %d, stderr:\n%s", r.status, r.stderr)
	}
}
