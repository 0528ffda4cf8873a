package main

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// envLines parses rankprog env output tagged [rank N@host]: rank → name →
// "value" or "unset"; hostOf gets each rank's tag host.
func envLines(t *testing.T, stdout string) (vals map[int]map[string]string, hostOf map[int]string) {
	t.Helper()
	rx := regexp.MustCompile(`^\[rank (\d+)@([^\]]+)\] ([A-Za-z_]\w*)(?:=(.*)| unset)$`)
	vals, hostOf = map[int]map[string]string{}, map[int]string{}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		m := rx.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line not tagged with rank and host: %q", l)
		}
		r, _ := strconv.Atoi(m[1])
		if h, ok := hostOf[r]; ok && h != m[2] {
			t.Fatalf("rank %d tagged with %s and %s", r, h, m[2])
		}
		hostOf[r] = m[2]
		if vals[r] == nil {
			vals[r] = map[string]string{}
		}
		v := m[4]
		if strings.HasSuffix(l, " unset") && m[4] == "" {
			v = "unset"
		}
		vals[r][m[3]] = v
	}
	return vals, hostOf
}

// TestSSHLaunch: ranks on two SSH hosts get the launch environment on top
// of the remote login environment, their output is tagged with their host,
// mpirun and the program are copied into each host's cache once, and the
// second run copies nothing.
func TestSSHLaunch(t *testing.T) {
	st := newSSHSetup(t, 2)
	m := st.machineFile(t, "# two hosts, two slots each", "node1 slots=2", "node2:2")
	x, marker := newMarker()
	args := append([]string{"-v", "-machinefile", m, "-x", "FROM_X=yes"}, x...)
	args = append(args, rankprog, "env", "DSMEXEC_RANK", "DSMEXEC_SIZE", "DSMEXEC_HOST", "DSMEXEC_MASTER", "DSMEXEC_TOKEN", "HOME", "SSH_TEST_HOST", "FROM_X", "INHERITED")
	env := append(st.env(), "INHERITED=yes")
	r := runMpirunEnv(t, env, "", args...)
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	vals, hostOf := envLines(t, r.stdout)
	if len(vals) != 4 {
		t.Fatalf("%d ranks answered, want 4 (one per slot); stdout:\n%s", len(vals), r.stdout)
	}
	// Each host's ranks rendezvous with their agent (the relay), which
	// listens on the host's address on the way to mpirun (127.0.0.1 here).
	for _, rk := range []int{0, 2} {
		if m := vals[rk]["DSMEXEC_MASTER"]; !regexp.MustCompile(`^127\.0\.0\.1:\d+$`).MatchString(m) {
			t.Errorf("rank %d: DSMEXEC_MASTER=%q, want its agent's relay on the address the hosts reach mpirun by (127.0.0.1 here)", rk, m)
		}
	}
	if vals[0]["DSMEXEC_MASTER"] == vals[2]["DSMEXEC_MASTER"] {
		t.Errorf("node1 and node2 ranks share DSMEXEC_MASTER %s, want each host's agent", vals[0]["DSMEXEC_MASTER"])
	}
	for rk := range 4 {
		s := st.servers[rk/2]
		want := map[string]string{
			"DSMEXEC_RANK":   strconv.Itoa(rk),
			"DSMEXEC_SIZE":   "4",
			"DSMEXEC_HOST":   s.name,
			"DSMEXEC_MASTER": vals[rk/2*2]["DSMEXEC_MASTER"],
			"DSMEXEC_TOKEN":  vals[0]["DSMEXEC_TOKEN"],
			"HOME":           s.home, // the agent's (login) environment
			"SSH_TEST_HOST":  s.name,
			"FROM_X":         "yes",
			"INHERITED":      "unset", // mpirun's own environment stays here
		}
		if hostOf[rk] != s.name {
			t.Errorf("rank %d tagged @%s, want @%s", rk, hostOf[rk], s.name)
		}
		for k, w := range want {
			if g := vals[rk][k]; g != w {
				t.Errorf("rank %d: %s=%q, want %q", rk, k, g, w)
			}
		}
	}
	for _, w := range []string{"(launcher ssh)", "ranks 0-1 on node1, ranks 2-3 on node2"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("-v lacks %q:\n%s", w, r.stderr)
		}
	}
	progSum, selfSum := fileSum(t, rankprog), fileSum(t, mpirun)
	for _, s := range st.servers {
		for _, f := range []struct{ name, sum string }{{"mpirun", selfSum}, {"rankprog", progSum}} {
			p := filepath.Join(s.home, ".cache", "dsmexec", f.sum, f.name)
			if !strings.Contains(r.stderr, fmt.Sprintf("mpirun: %s: copied %s (", s.name, f.name)) || !strings.Contains(r.stderr, p) {
				t.Errorf("-v does not say %s was copied to %s:%s\n%s", f.name, s.name, p, r.stderr)
			}
			if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o700 || fileSum(t, p) != f.sum {
				t.Errorf("%s in the cache of %s: %v", f.name, s.name, err)
			}
		}
	}
	waitGone(t, marker)

	// Second run: everything is in the caches.
	r = runMpirunEnv(t, env, "", args...)
	if r.status != 0 {
		t.Fatalf("second run: status %d; stderr:\n%s", r.status, r.stderr)
	}
	if strings.Contains(r.stderr, "copied") {
		t.Errorf("second run copied again:\n%s", r.stderr)
	}
	for _, s := range st.servers {
		for _, name := range []string{"mpirun", "rankprog"} {
			if !strings.Contains(r.stderr, fmt.Sprintf("mpirun: %s: %s found in the cache at ", s.name, name)) {
				t.Errorf("second run: -v does not say %s was found in the cache of %s:\n%s", name, s.name, r.stderr)
			}
		}
	}

	// -no-copy: the program is run at its path (the "hosts" share this
	// machine's files); only the agent comes from the cache.
	r = runMpirunEnv(t, env, "", append([]string{"-no-copy"}, args...)...)
	if r.status != 0 || !strings.Contains(r.stderr, "node1: -no-copy: running "+rankprog+" as it is there") || strings.Contains(r.stderr, "rankprog found") {
		t.Errorf("-no-copy: status %d; stderr:\n%s", r.status, r.stderr)
	}
	waitGone(t, marker)
}

// TestSSHExitStatus: a remote rank's exit status and resource usage come
// back through the agent into the failure handling and -summary.
func TestSSHExitStatus(t *testing.T) {
	st := sharedSSH(t)
	m := st.machineFile(t, "node1 slots=2", "node2")
	x, marker := newMarker()
	r := st.run(t, "", append(append([]string{"-np", "3", "-machinefile", m, "-report-format", "json"}, x...), rankprog, "exit", "3", "2")...)
	if r.status != 3 {
		t.Errorf("status %d, want 3; stderr:\n%s", r.status, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^mpirun: rank 2 \(pid \d+ on node2\) exited with status 3$`).MatchString(r.stderr) {
		t.Errorf("stderr lacks the failing rank:\n%s", r.stderr)
	}
	i := strings.Index(r.stderr, "{\n")
	if i < 0 {
		t.Fatalf("no JSON in:\n%s", r.stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(r.stderr[i:]), &s); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stderr[i:])
	}
	if len(s.Ranks) != 3 {
		t.Fatalf("ranks %+v", s.Ranks)
	}
	for rk, row := range s.Ranks {
		wantHost, wantStatus := "node1", 143 // stopped by mpirun's SIGTERM
		if rk == 2 {
			wantHost, wantStatus = "node2", 3
		}
		if row.Host != wantHost || row.Status != wantStatus || row.Pid <= 0 || row.MaxRSSBytes <= 0 || row.WallSeconds <= 0 {
			t.Errorf("rank %d row %+v, want host %s status %d", rk, row, wantHost, wantStatus)
		}
	}
	waitGone(t, marker)
}

// TestSSHOutputAndStdin: remote lines arrive whole and in order per rank,
// tagged with the host; standard input reaches a remote rank 0.
func TestSSHOutputAndStdin(t *testing.T) {
	st := sharedSSH(t)
	m := st.machineFile(t, "node1", "node2")
	const n = 200
	r := st.run(t, "", "-np", "2", "-machinefile", m, rankprog, "lines", strconv.Itoa(n))
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	lineRx := regexp.MustCompile(`^\[rank (\d)@node(\d)\] rank (\d) line (\d+) (x*)$`)
	next := make([]int, 2)
	ends := 0
	for _, l := range strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n") {
		if l == "[rank 0@node1] rank 0 end" || l == "[rank 1@node2] rank 1 end" {
			ends++
			continue
		}
		mm := lineRx.FindStringSubmatch(l)
		if mm == nil {
			t.Fatalf("line not whole or not tagged: %.200q", l)
		}
		rk, _ := strconv.Atoi(mm[1])
		i, _ := strconv.Atoi(mm[4])
		if mm[1] != mm[3] || mm[2] != strconv.Itoa(rk+1) || i != next[rk] || len(mm[5]) != pad(rk, i) {
			t.Fatalf("rank %d: got %.100q, want line %d with %d x", rk, l, next[rk], pad(rk, next[rk]))
		}
		next[rk]++
	}
	if next[0] != n || next[1] != n || ends != 2 {
		t.Errorf("lines per rank %v, end lines %d", next, ends)
	}

	r = st.run(t, "hello\nworld\n", "-np", "2", "-machinefile", m, rankprog, "cat")
	if r.status != 0 {
		t.Fatalf("cat: status %d; stderr:\n%s", r.status, r.stderr)
	}
	var got0, got1 []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		switch {
		case strings.HasPrefix(l, "[rank 0@node1] "):
			got0 = append(got0, strings.TrimPrefix(l, "[rank 0@node1] "))
		case strings.HasPrefix(l, "[rank 1@node2] "):
			got1 = append(got1, strings.TrimPrefix(l, "[rank 1@node2] "))
		default:
			t.Errorf("line %q", l)
		}
	}
	if strings.Join(got0, "|") != "in: hello|in: world|eof" || strings.Join(got1, "|") != "eof" {
		t.Errorf("rank 0 read %q, rank 1 %q", got0, got1)
	}
}

// TestSSHConnectErrors: every way of failing to reach a host is a clear
// error naming it, with a hint, and no rank starts anywhere.
func TestSSHConnectErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, st *sshSetup) []string // returns extra machine-file lines
		msg   string                                    // regexp over the error line
		hint  string
	}{
		{"unknown host", func(t *testing.T, st *sshSetup) []string {
			st.write(t, ".ssh/known_hosts", st.servers[0].knownHostsLine()+"\n")
			return nil
		}, `node2: connect to tester@127\.0\.0\.1:\d+: host \[127\.0\.0\.1\]:\d+ is not in .*known_hosts \(it offered ssh-ed25519 SHA256:`, "ssh-keyscan -p"},
		{"changed host key", func(t *testing.T, st *sshSetup) []string {
			other := newSSHServer(t, "other")
			line := strings.Replace(other.knownHostsLine(), strconv.Itoa(other.port), strconv.Itoa(st.servers[1].port), 1)
			st.write(t, ".ssh/known_hosts", st.servers[0].knownHostsLine()+"\n"+line+"\n")
			return nil
		}, `node2: connect to tester@127\.0\.0\.1:\d+: WARNING: THE HOST KEY OF \[127\.0\.0\.1\]:\d+ HAS CHANGED`, "ssh-keygen -R"},
		{"auth failed", func(t *testing.T, st *sshSetup) []string {
			st.servers[1].Authorize()
			return nil
		}, `node2: connect to tester@127\.0\.0\.1:\d+: the host accepted none of the 1 keys offered`, "ssh-copy-id"},
		{"refused", func(t *testing.T, st *sshSetup) []string {
			st.servers[1].close()
			return nil
		}, `node2: connect to tester@127\.0\.0\.1:\d+: connection to 127\.0\.0\.1:\d+ refused`, "is sshd running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newSSHSetup(t, 2)
			tt.setup(t, st)
			m := st.machineFile(t, "node1", "node2")
			touched := filepath.Join(t.TempDir(), "touched")
			r := st.run(t, "", "-np", "2", "-machinefile", m, rankprog, "touch", touched)
			if r.status != 1 {
				t.Errorf("status %d, want 1", r.status)
			}
			if !regexp.MustCompile(`(?m)^mpirun: error: ` + tt.msg).MatchString(r.stderr) {
				t.Errorf("stderr lacks an error matching %s:\n%s", tt.msg, r.stderr)
			}
			if !regexp.MustCompile(`(?m)^mpirun: hint: .*` + regexp.QuoteMeta(tt.hint)).MatchString(r.stderr) {
				t.Errorf("stderr lacks a hint with %q:\n%s", tt.hint, r.stderr)
			}
			if strings.Count(r.stderr, "mpirun: error:") != 1 || strings.Contains(r.stderr, "node1") {
				t.Errorf("node1 is fine; only node2 should be blamed:\n%s", r.stderr)
			}
			if m, _ := filepath.Glob(touched + ".*"); len(m) > 0 || r.stdout != "" {
				t.Errorf("a rank ran: %v %q", m, r.stdout)
			}
		})
	}
}

// TestSSHAcceptNew: -ssh-accept-new adds an unknown host's key, as
// OpenSSH's accept-new does, and the job runs.
func TestSSHAcceptNew(t *testing.T) {
	st := newSSHSetup(t, 2)
	st.write(t, ".ssh/known_hosts", st.servers[0].knownHostsLine()+"\n")
	m := st.machineFile(t, "node1", "node2")
	r := st.run(t, "", "-ssh-accept-new", "-np", "2", "-machinefile", m, rankprog, "exit-code", "0")
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("mpirun: note: added the host key of [127.0.0.1]:%d (ssh-ed25519 SHA256:", st.servers[1].port)) {
		t.Errorf("no note about the added key:\n%s", r.stderr)
	}
	if kh := st.read(t, ".ssh/known_hosts"); !strings.Contains(kh, st.servers[1].knownHostsLine()+"\n") {
		t.Errorf("known_hosts lacks node2's key:\n%s", kh)
	}
}

// TestSSHWrongArch: a program built for another architecture is refused
// before anything is copied, naming both architectures.
func TestSSHWrongArch(t *testing.T) {
	st := newSSHSetup(t, 1)
	other, otherName := elf.EM_AARCH64, "arm64"
	if runtime.GOARCH == "arm64" {
		other, otherName = elf.EM_X86_64, "amd64"
	}
	prog := fakeELF(t, other)
	r := st.run(t, "", "-host", "node1", prog)
	if r.status != 1 {
		t.Errorf("status %d, want 1", r.status)
	}
	if !regexp.MustCompile(`(?m)^mpirun: error: ` + regexp.QuoteMeta(prog) + ` is a ` + otherName + ` program, but node1 is a \S+ machine: it cannot run there$`).MatchString(r.stderr) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if !regexp.MustCompile(`(?m)^mpirun: hint: build it for that host with GOOS=linux GOARCH=`).MatchString(r.stderr) {
		t.Errorf("stderr lacks the build hint:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(st.servers[0].home, ".cache")); err == nil {
		t.Errorf("something was copied to node1")
	}
}

// TestSSHLostHost: a host whose connection drops mid-job ends the job, and
// mpirun says which host was lost; nothing of the job keeps running.
func TestSSHLostHost(t *testing.T) {
	st := newSSHSetup(t, 2)
	m := st.machineFile(t, "node1", "node2")
	x, marker := newMarker()
	s := st.start(t, append(append([]string{"-np", "2", "-machinefile", m}, x...), rankprog, "sleep")...)
	s.waitLines(t, `^\[rank \d@node\d\] ready \d$`, 2)
	if n := len(jobProcs(marker)); n != 2 {
		t.Fatalf("%d ranks running, want 2", n)
	}
	st.servers[1].close() // node2 goes away
	if status := s.wait(t); status != 1 {
		t.Errorf("status %d, want 1", status)
	}
	stderr := s.stderr.String()
	if !strings.Contains(stderr, "mpirun: error: lost host node2 (rank 1): the connection to it dropped\n") ||
		!strings.Contains(stderr, "mpirun: hint: check that node2 is up and reachable") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "lost host node1") {
		t.Errorf("node1 reported lost:\n%s", stderr)
	}
	waitGone(t, marker)
}

// TestSSHInterrupt: Ctrl-C reaches the remote ranks through their agents.
func TestSSHInterrupt(t *testing.T) {
	st := sharedSSH(t)
	m := st.machineFile(t, "node1", "node2")
	x, marker := newMarker()
	s := st.start(t, append(append([]string{"-np", "4", "-machinefile", m}, x...), rankprog, "sleep")...)
	s.waitLines(t, `^\[rank \d@node\d\] ready \d$`, 4)
	s.cmd.Process.Signal(syscall.SIGINT)
	if status := s.wait(t); status != 130 {
		t.Errorf("status %d, want 130; stderr:\n%s", status, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "mpirun: SIGINT: stopping 4 ranks") {
		t.Errorf("stderr:\n%s", s.stderr)
	}
	waitGone(t, marker)
}

// TestSSHMixed: this machine's entry is forked, the other goes over SSH;
// the forked rank reaches mpirun's master, the other its agent's relay, on
// the same address.
func TestSSHMixed(t *testing.T) {
	st := sharedSSH(t)
	m := st.machineFile(t, "localhost", "node1")
	r := st.run(t, "", "-np", "2", "-v", "-machinefile", m, rankprog, "env", "DSMEXEC_HOST", "DSMEXEC_MASTER", "SSH_TEST_HOST")
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	vals, hostOf := envLines(t, r.stdout)
	if hostOf[0] != "localhost" || hostOf[1] != "node1" || vals[0]["SSH_TEST_HOST"] != "unset" || vals[1]["SSH_TEST_HOST"] != "node1" {
		t.Errorf("rank 0 should be forked here, rank 1 run on node1: %v %v", hostOf, vals)
	}
	h0, p0, _ := net.SplitHostPort(vals[0]["DSMEXEC_MASTER"])
	h1, p1, _ := net.SplitHostPort(vals[1]["DSMEXEC_MASTER"])
	if h0 == "" || h0 != h1 || p0 == p1 || vals[0]["DSMEXEC_HOST"] != "localhost" || vals[1]["DSMEXEC_HOST"] != "node1" {
		t.Errorf("environment %v", vals)
	}
	if !strings.Contains(r.stderr, "(launcher local+ssh)") {
		t.Errorf("-v:\n%s", r.stderr)
	}
}

// TestSSHHello runs a real dsmexec program (rank.Init: rendezvous, mesh,
// shared memory) on two SSH hosts given with -host.
func TestSSHHello(t *testing.T) {
	hello := filepath.Join(binDir, "hello")
	if b, err := exec.Command("go", "build", "-o", hello, "../examples/hello").CombinedOutput(); err != nil {
		t.Skipf("examples/hello does not build (another package may be mid-change): %v\n%s", err, b)
	}
	st := sharedSSH(t)
	r := st.run(t, "", "-host", "node1:2,node2:2", "-summary", hello)
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	seen := map[int]bool{}
	rx := regexp.MustCompile(`^\[rank (\d)@(node\d)\] hello from rank (\d) of 4 on (node\d) `)
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		m := rx.FindStringSubmatch(l)
		if m == nil || m[1] != m[3] || m[2] != m[4] {
			t.Errorf("line %q", l)
			continue
		}
		rk, _ := strconv.Atoi(m[1])
		if want := fmt.Sprintf("node%d", rk/2+1); m[2] != want {
			t.Errorf("rank %d on %s, want %s", rk, m[2], want)
		}
		seen[rk] = true
	}
	if len(seen) != 4 {
		t.Errorf("ranks seen %v; stdout:\n%s", seen, r.stdout)
	}
}

// TestSSHMPMD: an MPMD job over SSH; both programs are copied, the working
// directory applies on the hosts too.
func TestSSHMPMD(t *testing.T) {
	st := sharedSSH(t)
	w := worker(t)
	wdir := t.TempDir() // the test's hosts share this machine's file system
	r := st.run(t, "", "-host", "node1:2,node2:3", "-wdir", wdir, "-np", "1", "-x", "ROLE=master", rankprog, "whoami", "m1",
		":", "-np", "4", "-x", "ROLE=worker", w, "whoami", "w1", "w 2")
	if r.status != 0 {
		t.Fatalf("status %d; stderr:\n%s", r.status, r.stderr)
	}
	checkMPMD(t, r.stdout)
	if strings.Count(r.stdout, " dir="+wdir+" ") != 5 {
		t.Errorf("-wdir not applied on the hosts:\n%s", r.stdout)
	}
	for _, want := range []string{"[rank 0@node1]", "[rank 1@node1]", "[rank 2@node2]", "[rank 4@node2]"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %s:\n%s", want, r.stdout)
		}
	}
}

// TestSSHAbortAndBlame: Abort and the blame rule work for remote ranks: the
// Abort and the failure reports come over the master connection, the exits
// through the hosts' agents.
func TestSSHAbortAndBlame(t *testing.T) {
	st := sharedSSH(t)
	r := st.run(t, "", "-host", "node1:1,node2:2", "-grace", "300ms", rdvprog, "abort", t.TempDir())
	if r.status != 3 || !strings.Contains(r.stderr, "mpirun: rank 1 called Abort(3)\n") {
		t.Errorf("abort: status %d, stderr:\n%s", r.status, r.stderr)
	}
	r = st.run(t, "", "-host", "node1:2,node2:2", rdvprog, "blame", t.TempDir())
	if r.status != 137 || !regexp.MustCompile(`(?m)^mpirun: rank 1 \(pid \d+ on node1\) killed by signal SIGKILL$`).MatchString(r.stderr) {
		t.Errorf("blame: status %d, stderr:\n%s", r.status, r.stderr)
	}
}

// TestSSHRelayFDs: with each host's agent relaying the rendezvous, mpirun
// holds one socket per host (its SSH connection) and its master's
// listener, however many ranks each host runs.
func TestSSHRelayFDs(t *testing.T) {
	st := sharedSSH(t)
	const hosts, perHost = 2, 6
	m := st.machineFile(t, fmt.Sprintf("node1 slots=%d", perHost), fmt.Sprintf("node2 slots=%d", perHost))
	x, marker := newMarker()
	s := st.start(t, append(append([]string{"-np", strconv.Itoa(hosts * perHost), "-machinefile", m}, x...), rdvprog, "hold", "-")...)
	s.waitLines(t, `holding \d+$`, hosts*perHost)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	sockets := 0
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.cmd.Process.Pid, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
			sockets++
		}
	}
	t.Logf("mpirun holds %d sockets (%d descriptors) for %d hosts × %d ranks", sockets, len(ents), hosts, perHost)
	if sockets > hosts+2 {
		t.Errorf("mpirun holds %d sockets for %d hosts of %d ranks; want at most %d (one SSH connection per host, the master's listener, one spare)", sockets, hosts, perHost, hosts+2)
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	s.wait(t)
	waitGone(t, marker)
}
