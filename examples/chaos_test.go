package examples_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dsmexec/dsmexec/internal/uffd"
)

// The chaos test (issue 14): jobs of counter and jacobi on both fault
// backends, each with one process SIGKILLed at a random moment — a rank, a
// rank's page server (dsmexec-pager), or mpirun itself during the run — and
// mpirun SIGKILLed during setup, before every rank joined. Every job must
// end within chaosBound of the kill, blaming the killed rank with its
// signal status, and leave no process behind.
//
//	DSMEXEC_CHAOS_RUNS   runs with a random kill (default 6; CI 30), plus
//	                     RUNS/2 (at least 2) kills of mpirun during setup
//	                     and RUNS/6 (at least 1) as the last rank joined
//	DSMEXEC_CHAOS_SEED   replay the random choices of an earlier run
//	DSMEXEC_CHAOS_BOUND  the hang bound (default 2s)
//	DSMEXEC_CHAOS_V      run every job with mpirun -v (each exit is shown)
//	DSMEXEC_CHAOS_TARGET only this target in the random runs: rank, pager
//	                     or mpirun (rank where the backend has no pager)
//
// Every process of a job carries DSMEXEC_CHAOS_JOB=<pid>-<seed>-<run>. in its
// environment (mpirun passes its environment to the ranks, a rank to its
// page server): the leftover scans of /proc look for that.

const chaosMarker = "DSMEXEC_CHAOS_JOB"

// Kill targets.
const (
	targetRank        = "rank"
	targetPager       = "pager"
	targetMpirun      = "mpirun"       // during the run
	targetMpirunSetup = "mpirun-setup" // before every rank joined
)

type chaosProg struct {
	name    string
	args    []string
	backend string // DSMEXEC_FAULT
	want    string // printed by a successful run
}

// Sizes that take roughly 0.1-1 s on a 2-core machine, so that most kills
// (0-600 ms after the target appears) land mid-run; the rest are "late".
var chaosProgs = []chaosProg{
	{"counter", []string{"-n", "600"}, "uffd", "counter: locked"},
	{"counter", []string{"-n", "600", "-accessors"}, "sigsegv", "counter: locked"},
	{"jacobi", []string{"-n", "200", "-iters", "600"}, "uffd", "equals the serial result"},
}

// chaosRun is one job and its kill, all chosen up front from the seed.
type chaosRun struct {
	n      int
	prog   chaosProg
	np     int
	target string
	victim int           // the rank killed, or whose page server is
	delay  time.Duration // from the target's appearance to the kill
	// mpirun-setup: kill after the trigger'th of mpirun's "master
	// listening", "started rank" and "rank joined" lines (0: the first).
	trigger int
}

func (r chaosRun) String() string {
	s := fmt.Sprintf("%02d-%s-%s-np%d-%s", r.n, r.prog.name, r.prog.backend, r.np, r.target)
	if r.target == targetRank || r.target == targetPager {
		s += strconv.Itoa(r.victim)
	}
	return s
}

// chaosResult is what happened to one job.
type chaosResult struct {
	run     chaosRun
	outcome string        // see the outcome* constants
	exit    time.Duration // from the kill to mpirun's exit
	gone    time.Duration // from the kill to the last process of the job gone
	status  string        // mpirun's exit status
}

const (
	outcomeKilled   = "killed"   // the kill landed; the job ended as required
	outcomeLate     = "late"     // the target had exited already; the job succeeded
	outcomeSetup    = "setup"    // mpirun killed before every rank joined
	outcomeJoined   = "joined"   // an mpirun-setup kill that came after every rank joined
	outcomeFailed   = "FAILED"   // an assertion failed (see the test's errors)
	outcomeSurvived = "survived" // a pager kill after which the job still succeeded
)

func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: not an integer", name, s)
	}
	return n
}

// setupLimit bounds the wait for a job's target to appear.
const setupLimit = 30 * time.Second

func chaosBound(t *testing.T) time.Duration {
	s := os.Getenv("DSMEXEC_CHAOS_BOUND")
	if s == "" {
		return 2 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("DSMEXEC_CHAOS_BOUND=%q: not a positive duration", s)
	}
	return d
}

// TestChaos kills processes of running jobs at random moments.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	seed := envInt(t, "DSMEXEC_CHAOS_SEED", time.Now().UnixNano())
	runs := int(envInt(t, "DSMEXEC_CHAOS_RUNS", 6))
	setups := max(2, runs/2) // about 2/3 land before the last join
	meshes := max(1, runs/6)
	bound := chaosBound(t)
	t.Logf("seed %d (replay with DSMEXEC_CHAOS_SEED=%d); %d runs with a random kill, %d kills of mpirun during setup and %d as the last rank joined; bound %v",
		seed, seed, runs, setups, meshes, bound)
	defer func() {
		if t.Failed() {
			t.Logf("replay with DSMEXEC_CHAOS_SEED=%d DSMEXEC_CHAOS_RUNS=%d", seed, runs)
		}
	}()

	progs := chaosProgs
	if !uffdPermitted() {
		t.Logf("userfaultfd is not permitted here: only the sigsegv backend runs, and no page server exists to kill")
		progs = nil
		for _, p := range chaosProgs {
			if p.backend == "sigsegv" {
				progs = append(progs, p)
			}
		}
	}
	rng := rand.New(rand.NewSource(seed))
	var plan []chaosRun
	for i := 0; i < runs; i++ {
		r := chaosRun{n: i, prog: progs[rng.Intn(len(progs))], np: 2 + rng.Intn(3)}
		targets := []string{targetRank, targetRank, targetMpirun}
		if r.prog.backend == "uffd" {
			targets = append(targets, targetPager, targetPager)
		}
		if only := os.Getenv("DSMEXEC_CHAOS_TARGET"); only != "" {
			targets = slices.DeleteFunc(targets, func(tg string) bool { return tg != only })
			if len(targets) == 0 {
				targets = []string{targetRank} // no page server on sigsegv
			}
		}
		r.target = targets[rng.Intn(len(targets))]
		r.victim = rng.Intn(r.np)
		r.delay = time.Duration(rng.Int63n(int64(600 * time.Millisecond)))
		plan = append(plan, r)
	}
	for i := 0; i < setups+meshes; i++ {
		r := chaosRun{n: runs + i, prog: progs[rng.Intn(len(progs))], np: 2 + rng.Intn(3), target: targetMpirunSetup}
		// Lines: "master listening", np × "started rank", np × "joined".
		r.trigger = rng.Intn(2 * r.np) // before the last rank joined
		if i >= setups {
			r.trigger = 2 * r.np // every rank joined: the meshes connect
		}
		r.delay = time.Duration(rng.Int63n(int64(3 * time.Millisecond)))
		plan = append(plan, r)
	}

	prefix := fmt.Sprintf("%d-%d-", os.Getpid(), seed) // a run's marker: prefix, run, "."
	defer func() {
		// No process of any job of this test is left.
		if left := scanProcs(prefix); len(left) > 0 {
			t.Errorf("processes of the test's jobs left at the end: %s", describeProcs(left))
			killProcs(left)
		}
	}()
	var results []chaosResult
	for _, r := range plan {
		t.Run(r.String(), func(t *testing.T) {
			res := &chaosResult{run: r}
			defer func() {
				if t.Failed() {
					res.outcome = outcomeFailed
				}
				t.Logf("%s: delay %v: %s, exit %v after the kill, gone %v after it; mpirun %s",
					r, r.delay.Round(time.Millisecond), res.outcome, res.exit.Round(time.Millisecond), res.gone.Round(time.Millisecond), res.status)
				results = append(results, *res)
			}()
			chaosJob(t, r, fmt.Sprintf("%s%d.", prefix, r.n), bound, res)
		})
	}
	t.Log(chaosSummary(results))
}

// chaosSummary: counts by target and outcome, and the distribution of the
// times from a kill that landed to mpirun's exit and to the job's last
// process gone.
func chaosSummary(results []chaosResult) string {
	var b strings.Builder
	counts := map[string]map[string]int{}
	var exits, gones []time.Duration
	for _, r := range results {
		if counts[r.run.target] == nil {
			counts[r.run.target] = map[string]int{}
		}
		counts[r.run.target][r.outcome]++
		if r.outcome == outcomeKilled || r.outcome == outcomeSetup || r.outcome == outcomeJoined || r.outcome == outcomeSurvived {
			exits = append(exits, r.exit)
			gones = append(gones, r.gone)
		}
	}
	fmt.Fprintf(&b, "chaos summary: %d jobs\n", len(results))
	for _, tg := range []string{targetRank, targetPager, targetMpirun, targetMpirunSetup} {
		var parts []string
		n := 0
		for _, o := range []string{outcomeKilled, outcomeSetup, outcomeJoined, outcomeLate, outcomeSurvived, outcomeFailed} {
			if c := counts[tg][o]; c > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", o, c))
				n += c
			}
		}
		if n > 0 {
			fmt.Fprintf(&b, "  kill %-12s %3d: %s\n", tg, n, strings.Join(parts, ", "))
		}
	}
	dist := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))].Round(time.Millisecond) }
		fmt.Fprintf(&b, "  kill → %s (%d landed kills): min %v, median %v, p90 %v, max %v\n",
			name, len(ds), q(0), q(0.5), q(0.9), q(1))
	}
	dist("mpirun exit", exits)
	dist("last process gone", gones)
	return b.String()
}

// chaosJob runs one job and kills its target.
func chaosJob(t *testing.T, r chaosRun, marker string, bound time.Duration, res *chaosResult) {
	args := []string{"-np", strconv.Itoa(r.np), "-timeout", "60s"}
	if r.target == targetMpirunSetup || os.Getenv("DSMEXEC_CHAOS_V") != "" {
		args = append(args, "-v") // the setup progress is the trigger
	}
	args = append(args, filepath.Join(bin, r.prog.name))
	args = append(args, r.prog.args...)
	cmd := exec.Command(filepath.Join(bin, "mpirun"), args...)
	cmd.Env = append(os.Environ(), "DSMEXEC_FAULT="+r.prog.backend, chaosMarker+"="+marker)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	mpirun := cmd.Process.Pid
	out := newLineLog(pr)
	exited := make(chan struct{})
	var exitAt time.Time
	go func() {
		cmd.Wait()
		exitAt = time.Now()
		close(exited)
	}()
	// Whatever happens, nothing of the job outlives this function.
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		if left := scanProcs(marker); len(left) > 0 {
			killProcs(left)
		}
	}()
	fail := func(format string, a ...any) {
		t.Helper()
		t.Errorf("%s\nmpirun's output:\n%s", fmt.Sprintf(format, a...), out.String())
	}

	// endedFirst: the job ended before its target was seen (a fast run on
	// an idle machine): fine if it succeeded and left nothing.
	endedFirst := func(what string) {
		t.Helper()
		select {
		case <-exited:
		default:
			fail("hang: no %s within %v of the start (mpirun still runs; its processes: %s)", what, setupLimit, describeProcs(scanProcs(marker)))
			return
		}
		res.status = cmd.ProcessState.String()
		out.waitEOF(time.Now().Add(bound))
		if !cmd.ProcessState.Success() || !strings.Contains(out.String(), r.prog.want) {
			fail("mpirun exited (%v) before %s", cmd.ProcessState, what)
			return
		}
		res.outcome = outcomeLate
		if left := waitGone(marker, time.Now().Add(bound)); len(left) > 0 {
			fail("%d processes of the job left %v after mpirun exited: %s", len(left), bound, describeProcs(left))
		}
	}

	// The target appears, or the setup line comes, within setupLimit.
	quit := make(chan struct{})
	go func() {
		select {
		case <-exited:
		case <-time.After(setupLimit):
		}
		close(quit)
	}()

	// Find the target; kill it after the delay.
	var killAt time.Time
	landed := true
	rankPid := 0 // of the victim
	switch r.target {
	case targetRank, targetPager:
		p, ok := waitProc(func(ps []procInfo) *procInfo { return findRank(ps, mpirun, r.victim) }, marker, quit)
		if !ok {
			endedFirst(fmt.Sprintf("rank %d appeared", r.victim))
			return
		}
		rankPid = p.pid
		if r.target == targetPager {
			rank := p
			if p, ok = waitProc(func(ps []procInfo) *procInfo { return findPager(ps, rank.pid) }, marker, quit); !ok {
				endedFirst(fmt.Sprintf("rank %d (pid %d) started its page server", r.victim, rank.pid))
				return
			}
		}
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil {
			fail("pidfd_open %d: %v", p.pid, err)
			return
		}
		defer unix.Close(fd)
		// fd is this process until the end: a reused pid is not killed.
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.pid)); strings.TrimSpace(string(comm)) != p.comm {
			fail("pid %d is no longer %s", p.pid, p.comm)
			return
		}
		select {
		case <-time.After(r.delay):
		case <-exited:
		}
		killAt = time.Now()
		if st := procState(p.pid); st == "" || st == "Z" || st == "X" {
			landed = false // exited already
		} else if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
			landed = false // ESRCH: exited and reaped
		}
	case targetMpirun:
		// Mid-run: once every rank runs.
		_, ok := waitProc(func(ps []procInfo) *procInfo {
			n := 0
			for i := 0; i < r.np; i++ {
				if findRank(ps, mpirun, i) != nil {
					n++
				}
			}
			if n == r.np {
				return &procInfo{}
			}
			return nil
		}, marker, quit)
		if !ok {
			endedFirst(fmt.Sprintf("all %d ranks appeared", r.np))
			return
		}
		select {
		case <-time.After(r.delay):
		case <-exited:
		}
		killAt = time.Now()
		cmd.Process.Kill() // our child: its pid is ours until Wait reaps it
	case targetMpirunSetup:
		trig := regexp.MustCompile(`^mpirun: (master listening on|started rank \d+ |master: rank \d+ joined from )`)
		seen := 0
		if !out.waitLine(quit, func(l string) bool {
			if trig.MatchString(l) {
				seen++
			}
			return seen > r.trigger
		}) {
			endedFirst(fmt.Sprintf("setup line %d", r.trigger+1))
			return
		}
		time.Sleep(r.delay) // a few ms: not synchronisation, a random moment
		killAt = time.Now()
		cmd.Process.Kill()
	}

	// mpirun exits within the bound.
	select {
	case <-exited:
	case <-time.After(time.Until(killAt.Add(bound))):
		fail("hang: mpirun (pid %d) still runs %v after the kill of %s; its processes: %s",
			mpirun, bound, r, describeProcs(scanProcs(marker)))
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			fail("mpirun still runs 30 s later: killing it")
			return
		}
	}
	res.exit = exitAt.Sub(killAt)
	defer func() {
		if res.exit > bound/4 {
			t.Logf("slow exit (%v after the kill); mpirun's output:\n%s", res.exit, out.String())
		}
	}()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	res.status = cmd.ProcessState.String()

	// Every process of the job is gone within the bound of the kill (of
	// mpirun's exit, if that took longer and was reported above).
	from := killAt
	if exitAt.Sub(killAt) > bound {
		from = exitAt
	}
	left := waitGone(marker, from.Add(bound))
	res.gone = time.Since(killAt)
	if len(left) > 0 {
		fail("%d processes of the job left %v after the kill of %s: %s", len(left), bound, r, describeProcs(left))
		// How long they stay, bounded: the report says it.
		left = waitGone(marker, time.Now().Add(3*time.Second))
		if len(left) > 0 {
			t.Errorf("still there 3 s later; killing them: %s", describeProcs(left))
			killProcs(left)
		}
		res.gone = time.Since(killAt)
	}
	// mpirun's output ends when it and every rank are gone.
	if !out.waitEOF(time.Now().Add(bound)) {
		fail("mpirun's output is still open %v after every process of the job is gone", bound)
	}

	// The outcome.
	output := out.String()
	success := ws.Exited() && ws.ExitStatus() == 0 && strings.Contains(output, r.prog.want)
	// The cause mpirun gives is its last "mpirun: rank N (pid P) how" line
	// (with -v, one per exit comes before it).
	var cause struct {
		rank, pid int
		how       string
	}
	cause.rank = -1
	if m := regexp.MustCompile(`(?m)^mpirun: rank (\d+) \(pid (\d+)\) (.*)$`).FindAllStringSubmatch(output, -1); len(m) > 0 {
		last := m[len(m)-1]
		cause.rank, _ = strconv.Atoi(last[1])
		cause.pid, _ = strconv.Atoi(last[2])
		cause.how = last[3]
	}
	blames := cause.rank == r.victim && cause.pid == rankPid
	if r.target == targetPager && hostPagers {
		// The host's page server serves every rank here: the job may
		// name any of them.
		blames = cause.rank >= 0 && cause.rank < r.np
	}
	switch r.target {
	case targetRank:
		switch {
		case !landed && success:
			res.outcome = outcomeLate
		case ws.Exited() && ws.ExitStatus() == 137 && blames && cause.how == "killed by signal SIGKILL":
			res.outcome = outcomeKilled
		case success:
			// The kernel kept the exit status of a rank that was
			// exiting already when SIGKILL came.
			res.outcome = outcomeLate
		default:
			fail("killed rank %d (pid %d): want mpirun to exit 137 with \"mpirun: rank %d (pid %d) killed by signal SIGKILL\"; it %v", r.victim, rankPid, r.victim, rankPid, cmd.ProcessState)
		}
	case targetPager:
		switch {
		case !landed && success:
			res.outcome = outcomeLate
		case success:
			res.outcome = outcomeSurvived
		case ws.Exited() && ws.ExitStatus() != 0 && blames:
			res.outcome = outcomeKilled
		default:
			fail("killed rank %d's page server: want the job to fail naming rank %d (pid %d); mpirun %v", r.victim, r.victim, rankPid, cmd.ProcessState)
		}
	case targetMpirun, targetMpirunSetup:
		switch {
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
			res.outcome = outcomeKilled
			if r.target == targetMpirunSetup {
				res.outcome = outcomeSetup
				if strings.Count(output, " joined from ") == r.np {
					res.outcome = outcomeJoined
				}
			}
		case success && r.target == targetMpirun:
			res.outcome = outcomeLate
		default:
			fail("killed mpirun: want it dead by SIGKILL; it %v", cmd.ProcessState)
		}
	}
}

// lineLog collects mpirun's output lines.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on every line
	eof   chan struct{}
}

func newLineLog(r *os.File) *lineLog {
	l := &lineLog{more: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		defer close(l.eof)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.more)
			l.more = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + "\n"
}

// waitLine feeds every line to match until it returns true (true), or the
// output ends or exited is closed first (false).
func (l *lineLog) waitLine(exited <-chan struct{}, match func(string) bool) bool {
	next := 0
	for {
		l.mu.Lock()
		lines, more := l.lines[next:], l.more
		next = len(l.lines)
		l.mu.Unlock()
		for _, line := range lines {
			if match(line) {
				return true
			}
		}
		select {
		case <-more:
		case <-l.eof:
			l.mu.Lock()
			rest := l.lines[next:]
			l.mu.Unlock()
			return slices.ContainsFunc(rest, match)
		case <-exited:
			return false
		}
	}
}

func (l *lineLog) waitEOF(deadline time.Time) bool {
	select {
	case <-l.eof:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}

// procInfo is a process of a job, from /proc.
type procInfo struct {
	pid, ppid int
	comm      string
	state     string
	rank      string // DSMEXEC_RANK, "" for mpirun
}

// scanProcs lists the live processes whose environment has
// DSMEXEC_CHAOS_JOB starting with marker (zombies have no environment
// left: an exited process is not counted).
func scanProcs(marker string) []procInfo {
	ents, _ := os.ReadDir("/proc")
	var ps []procInfo
	want := []byte(chaosMarker + "=" + marker)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !hasEnvPrefix(env, want) {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		p, ok := parseStat(string(stat))
		if !ok || p.state == "Z" || p.state == "X" {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, "DSMEXEC_RANK="); ok {
				p.rank = v
			}
		}
		ps = append(ps, p)
	}
	return ps
}

func hasEnvPrefix(env, kv []byte) bool {
	for _, e := range strings.Split(string(env), "\x00") {
		if strings.HasPrefix(e, string(kv)) {
			return true
		}
	}
	return false
}

// parseStat reads pid, comm, state and ppid from /proc/PID/stat; comm is
// in parentheses and may hold anything, so the fields after it are found
// from the last ')'.
func parseStat(s string) (procInfo, bool) {
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procInfo{}, false
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 2 {
		return procInfo{}, false
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(s[:open]))
	ppid, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return procInfo{}, false
	}
	return procInfo{pid: pid, ppid: ppid, comm: s[open+1 : closing], state: f[0]}, true
}

func procState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	p, _ := parseStat(string(stat))
	return p.state
}

func findRank(ps []procInfo, mpirun, rank int) *procInfo {
	for i := range ps {
		if ps[i].ppid == mpirun && ps[i].rank == strconv.Itoa(rank) {
			return &ps[i]
		}
	}
	return nil
}

// hostPagers: one page server per host (DSMEXEC_PAGERS, default host),
// started by whichever rank of the host came first and serving them all.
var hostPagers = os.Getenv("DSMEXEC_PAGERS") != "rank"

func findPager(ps []procInfo, rank int) *procInfo {
	for i := range ps {
		if (ps[i].ppid == rank || hostPagers) && ps[i].comm == "dsmexec-pager" {
			return &ps[i]
		}
	}
	return nil
}

// waitProc polls /proc every few milliseconds until find finds a process
// of the job, or exited is closed.
func waitProc(find func([]procInfo) *procInfo, marker string, exited <-chan struct{}) (procInfo, bool) {
	tick := time.NewTicker(3 * time.Millisecond)
	defer tick.Stop()
	for {
		if p := find(scanProcs(marker)); p != nil {
			return *p, true
		}
		select {
		case <-exited:
			return procInfo{}, false
		case <-tick.C:
		}
	}
}

// waitGone polls /proc until no process of the job is left, or the
// deadline, and returns what is left.
func waitGone(marker string, deadline time.Time) []procInfo {
	for {
		left := scanProcs(marker)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func describeProcs(ps []procInfo) string {
	if len(ps) == 0 {
		return "none"
	}
	var parts []string
	for _, p := range ps {
		s := fmt.Sprintf("pid %d %s (state %s, parent %d", p.pid, p.comm, p.state, p.ppid)
		if p.rank != "" {
			s += ", DSMEXEC_RANK=" + p.rank
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, "; ")
}

func killProcs(ps []procInfo) {
	for _, p := range ps {
		fd, err := unix.PidfdOpen(p.pid, 0)
		if err != nil {
			continue
		}
		// Still the process found (its pid not reused meanwhile)?
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.pid)); strings.TrimSpace(string(comm)) == p.comm {
			if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				fmt.Fprintf(os.Stderr, "chaos: kill pid %d: %v\n", p.pid, err)
			}
		}
		unix.Close(fd)
	}
}

// uffdPermitted: whether this kernel (and seccomp profile) lets the uffd
// backend run.
func uffdPermitted() bool {
	u, err := uffd.New(true)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// TestChaosChecks: the chaos test's own leftover check can fail — the
// /proc scan finds a marked process (and no longer once it is gone).
func TestChaosChecks(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	marker := fmt.Sprintf("%d-selftest.", os.Getpid())
	cmd := exec.Command(sleep, "60")
	cmd.Env = append(os.Environ(), chaosMarker+"="+marker, "DSMEXEC_RANK=7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ps := scanProcs(marker)
	if len(ps) != 1 || ps[0].pid != cmd.Process.Pid || ps[0].rank != "7" || ps[0].ppid != os.Getpid() || ps[0].comm != "sleep" {
		t.Errorf("scan for the marked sleep (pid %d): %s", cmd.Process.Pid, describeProcs(ps))
	}
	if other := scanProcs(marker[:len(marker)-1] + "x"); len(other) != 0 {
		t.Errorf("a scan for another marker found %s", describeProcs(other))
	}
	killProcs(ps)
	cmd.Wait()
	if left := scanProcs(marker); len(left) != 0 {
		t.Errorf("killed and reaped, still found: %s", describeProcs(left))
	}
}
