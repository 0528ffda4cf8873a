package launch

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Job is one mpirun job's state. Step it with events; carry out the actions
// it returns, in order.
type Job struct {
	cfg   Config
	ranks []rank
	next  int  // next rank to start
	wait  bool // a StartRank is outstanding

	cause    *cause
	stopping bool // SIGTERM sent (or about to be)
	killed   bool // SIGKILL sent
	armed    map[Timer]bool
	settled  bool  // the settle window expired: blame what is known
	failures []int // ranks in the order they first failed or said they fail
	joined   int
	// timeoutSet: the timeout was armed (once, after the last start).
	timeoutSet bool

	lostOrder []string         // hosts lost, in order
	lostRanks map[string][]int // host → its lost ranks

	closing bool // Close sent
	status  int  // exit status, once closed
	done    bool // Exit sent

	acts []Action // of the current Step
}

type rank struct {
	started, exited, outClosed bool
	joined                     bool
	pid                        int
	ex                         Exited
	signalled                  bool // got SIGTERM or SIGKILL from the job
	failing                    bool // reported a Failure
	lostPeer                   int
	failMsg                    string
}

func (r *rank) done() bool { return r.exited && r.outClosed }

// cause is why the job ends; the first one wins (see stop), except that an
// Abort replaces a rank failure.
type cause struct {
	status     int
	msg, hint  string // printed after the job, "mpirun: " prepended
	rankFailed bool   // a rank failed: lost hosts are printed as the likelier cause
	abort      bool
}

// New returns the machine of a job; step it with Begin.
func New(cfg Config) *Job {
	j := &Job{cfg: cfg, ranks: make([]rank, cfg.Size), armed: map[Timer]bool{}, lostRanks: map[string][]int{}}
	for i := range j.ranks {
		j.ranks[i].lostPeer = -1
	}
	return j
}

// Done reports whether the job has exited.
func (j *Job) Done() bool { return j.done }

// Step applies one event and returns the actions to carry out.
func (j *Job) Step(ev Event) []Action {
	j.acts = nil
	if j.done {
		return nil
	}
	switch ev := ev.(type) {
	case Begin:
		j.startNext()
	case Started:
		j.onStarted(ev)
	case StartFailed:
		j.onStartFailed(ev)
	case Joined:
		if r := j.rank(ev.Rank); r != nil && !r.joined {
			r.joined = true
			j.joined++
			if r.pid == 0 {
				r.pid = ev.Pid // a remote rank's pid is known once it joins
			}
		}
	case Failure:
		j.onFailure(ev)
	case Aborted:
		j.onAbort(ev)
	case Exited:
		j.onExited(ev)
	case OutputClosed:
		if r := j.rank(ev.Rank); r != nil {
			r.outClosed = true
		}
	case Signal:
		j.onSignal(ev.Sig)
	case Fired:
		j.onFired(ev.Timer)
	case RendezvousFailed:
		j.onRendezvousFailed(ev)
	case Deadlocked:
		j.onDeadlocked(ev)
	case Closed:
		j.onClosed(ev)
	case ReportWritten:
		if ev.Err != "" {
			j.print("mpirun: error: write the summary: " + ev.Err)
			if j.status == 0 {
				j.status = 1
			}
		}
		j.exit()
	}
	j.maybeClose()
	return j.acts
}

func (j *Job) rank(r int) *rank {
	if r < 0 || r >= len(j.ranks) {
		return nil
	}
	return &j.ranks[r]
}

func (j *Job) emit(a Action)      { j.acts = append(j.acts, a) }
func (j *Job) print(text string)  { j.emit(Print{Text: text}) }
func (j *Job) vprint(text string) { j.emit(Print{Text: text, Verbose: true}) }

func (j *Job) arm(t Timer, d time.Duration) {
	j.armed[t] = true
	j.emit(Arm{Timer: t, After: d})
}

func (j *Job) disarm(t Timer) {
	if j.armed[t] {
		delete(j.armed, t)
		j.emit(Disarm{Timer: t})
	}
}

// who names a rank for messages: "rank 3 (pid 42)", "rank 3 (pid 42 on h2)",
// "rank 3 (on h2)" while its pid is not known.
func (j *Job) who(r int) string {
	if j.ranks[r].pid == 0 {
		if j.cfg.MultiHost {
			return fmt.Sprintf("rank %d (on %s)", r, j.cfg.Hosts[r])
		}
		return fmt.Sprintf("rank %d", r)
	}
	if j.cfg.MultiHost {
		return fmt.Sprintf("rank %d (pid %d on %s)", r, j.ranks[r].pid, j.cfg.Hosts[r])
	}
	return fmt.Sprintf("rank %d (pid %d)", r, j.ranks[r].pid)
}

func (j *Job) host(r int) string {
	if r < len(j.cfg.Hosts) {
		return j.cfg.Hosts[r]
	}
	return "?"
}

// live returns the started ranks that have not exited.
func (j *Job) live() []int {
	var l []int
	for i, r := range j.ranks {
		if r.started && !r.exited {
			l = append(l, i)
		}
	}
	return l
}

func (j *Job) startNext() {
	if j.stopping {
		return
	}
	if j.next >= len(j.ranks) {
		// Every rank started: the timeout runs from now.
		if j.cfg.Timeout > 0 && !j.timeoutSet {
			j.timeoutSet = true
			j.arm(TimerTimeout, j.cfg.Timeout)
		}
		return
	}
	j.wait = true
	j.emit(StartRank{Rank: j.next})
	j.next++
}

func (j *Job) onStarted(ev Started) {
	r := j.rank(ev.Rank)
	if r == nil || r.started {
		return
	}
	r.started, r.pid = true, ev.Pid
	j.wait = false
	if j.stopping {
		// Stopped while it was being started: it gets what the others got.
		sig := SIGTERM
		if j.killed {
			sig = SIGKILL
		}
		j.kill([]int{ev.Rank}, sig)
		return
	}
	j.startNext()
}

func (j *Job) onStartFailed(ev StartFailed) {
	r := j.rank(ev.Rank)
	if r == nil || r.started {
		return
	}
	j.wait = false
	r.exited, r.outClosed = true, true
	j.stop(&cause{status: 1, msg: fmt.Sprintf("error: start rank %d on %s: %s", ev.Rank, j.host(ev.Rank), ev.Err)})
}

func (j *Job) kill(ranks []int, sig Sig) {
	if len(ranks) == 0 {
		return
	}
	for _, r := range ranks {
		j.ranks[r].signalled = true
	}
	j.emit(Kill{Ranks: ranks, Sig: sig})
}

// stop records why the job ends (the first cause wins) and sends SIGTERM to
// every running rank, SIGKILL after the grace period.
func (j *Job) stop(c *cause) {
	if j.cause == nil {
		j.cause = c
	}
	if j.stopping {
		return
	}
	j.stopping = true
	j.disarm(TimerTimeout)
	j.disarm(TimerSettle)
	live := j.live()
	if len(live) == 0 {
		return
	}
	j.vprint(fmt.Sprintf("mpirun: stopping: SIGTERM to %d rank%s", len(live), plural(len(live))))
	j.kill(live, SIGTERM)
	j.arm(TimerGrace, j.cfg.Grace)
}

func (j *Job) onSignal(sig Sig) {
	if j.closing {
		return // the driver no longer catches signals
	}
	if j.stopping {
		j.print(fmt.Sprintf("mpirun: %s again: killing the ranks", sig))
		j.killed = true
		j.disarm(TimerGrace)
		j.kill(j.live(), SIGKILL)
		return
	}
	n := len(j.live())
	j.print(fmt.Sprintf("mpirun: %s: stopping %d rank%s (SIGTERM, then SIGKILL after %v)", sig, n, plural(n), j.cfg.Grace))
	j.blame(true) // a failure that came first is still the cause
	j.stop(&cause{status: 128 + int(sig)})
}

func (j *Job) onFired(t Timer) {
	if !j.armed[t] {
		return // stopped meanwhile
	}
	delete(j.armed, t)
	switch t {
	case TimerGrace:
		j.vprint(fmt.Sprintf("mpirun: grace of %v over: sending SIGKILL", j.cfg.Grace))
		j.killed = true
		j.kill(j.live(), SIGKILL)
	case TimerSettle:
		j.settled = true
		j.blame(true)
	case TimerTimeout:
		j.onTimeout()
	}
}

func (j *Job) onTimeout() {
	j.blame(true)
	live := j.live()
	still := make([]string, len(live))
	who := make([]string, len(live))
	for i, r := range live {
		still[i] = fmt.Sprint(r)
		who[i] = j.who(r)
	}
	j.emit(AskWhere{Ranks: live, Who: who})
	j.stop(&cause{
		status: 124,
		msg:    fmt.Sprintf("error: job timed out after %v; rank%s %s still running", j.cfg.Timeout, plural(len(live)), strings.Join(still, ", ")),
		hint:   "raise -timeout if the job needs longer, or find out where those ranks wait",
	})
}

func (j *Job) onDeadlocked(ev Deadlocked) {
	if j.stopping || j.closing {
		return
	}
	j.blame(true) // a failure that came first is still the cause
	if j.cause != nil {
		return
	}
	live := j.live()
	who := make([]string, len(live))
	for i, r := range live {
		who[i] = j.who(r)
	}
	j.emit(TellDeadlock{Text: ev.Text, Ranks: live, Who: who})
	j.stop(&cause{
		status: StatusDeadlock,
		msg:    fmt.Sprintf("error: job deadlocked: every running rank waited for another for %v; stopped it", ev.After),
		hint:   "the stacks above show where each rank waits; -deadlock-after 0 turns the detector off",
	})
}

func (j *Job) onRendezvousFailed(ev RendezvousFailed) {
	if max(ev.Joined, j.joined) == 0 {
		// A program that does not use dsmexec (hostname, a script) never
		// reports: that is not an error.
		j.vprint(fmt.Sprintf("mpirun: no rank reported to the master within %v; treating the program as one that does not use dsmexec", j.cfg.RendezvousTimeout))
		return
	}
	j.blame(true)
	j.stop(&cause{
		status: 1,
		msg:    "error: " + ev.Err,
		hint:   fmt.Sprintf("those ranks did not call rank.Init or cannot reach the master at %s; raise -rendezvous-timeout if they start slowly", j.cfg.MasterAddr),
	})
}

func (j *Job) onAbort(ev Aborted) {
	if j.rank(ev.Rank) == nil {
		return
	}
	code := ev.Code & 0xff
	if code == 0 {
		code = 1
	}
	c := &cause{status: code, msg: fmt.Sprintf("rank %d called Abort(%d)", ev.Rank, ev.Code), abort: true}
	if j.cause == nil || j.cause.rankFailed {
		// The failures an Abort causes in the other ranks may be reaped
		// first: the Abort still wins over them.
		j.cause = c
	}
	j.stop(c)
}

func (j *Job) onFailure(ev Failure) {
	r := j.rank(ev.Rank)
	if r == nil || r.failing || r.exited {
		return
	}
	r.failing, r.lostPeer, r.failMsg = true, ev.LostPeer, ev.Msg
	if ev.LostPeer != AnyPeer && (j.rank(ev.LostPeer) == nil || ev.LostPeer == ev.Rank) {
		r.lostPeer = -1
	}
	j.addFailure(ev.Rank)
	if ev.Msg != "" {
		j.vprint(fmt.Sprintf("mpirun: rank %d fails: %s", ev.Rank, ev.Msg))
	}
}

func (j *Job) addFailure(r int) {
	if !slices.Contains(j.failures, r) {
		j.failures = append(j.failures, r)
	}
}

func (j *Job) onExited(ev Exited) {
	r := j.rank(ev.Rank)
	if r == nil || r.exited {
		return
	}
	r.exited, r.ex = true, ev
	if ev.Pid != 0 {
		r.pid = ev.Pid
	}
	if !r.started { // a remote start reported as an exit
		r.started = true
	}
	switch {
	case ev.Lost:
		j.vprint(fmt.Sprintf("mpirun: rank %d on %s: %s", ev.Rank, j.host(ev.Rank), ev.How))
		h := j.host(ev.Rank)
		if _, ok := j.lostRanks[h]; !ok {
			j.lostOrder = append(j.lostOrder, h)
		}
		j.lostRanks[h] = append(j.lostRanks[h], ev.Rank)
		j.addFailure(ev.Rank)
		j.blame(false)
	case ev.StartErr != "":
		j.vprint(fmt.Sprintf("mpirun: rank %d on %s could not be started: %s", ev.Rank, j.host(ev.Rank), ev.StartErr))
		j.blame(true)
		j.stop(&cause{status: 1, msg: fmt.Sprintf("error: could not start rank %d on %s: %s", ev.Rank, j.host(ev.Rank), ev.StartErr)})
	default:
		j.vprint(fmt.Sprintf("mpirun: %s %s", j.who(ev.Rank), ev.How))
		if ev.Failed {
			j.addFailure(ev.Rank)
		}
		j.blame(false)
	}
}

// failed: the rank ended badly (or its host was lost).
func (r *rank) failed() bool { return r.exited && (r.ex.Failed || r.ex.Lost) }

// blame decides which failure ends the job, if one did: the first failure
// in time, following "lost peer P" to P's failure. final: decide with what
// is known now (the settle window is over, or the job stops anyway).
func (j *Job) blame(final bool) {
	if j.cause != nil {
		return
	}
	final = final || j.settled
	// Failures that say they are another rank's doing (AnyPeer) are
	// blamed only when no other failure turns up within the window.
	secondary := false
	for _, f := range j.failures {
		if j.ranks[f].lostPeer == AnyPeer {
			secondary = true
			continue
		}
		r, decided := j.resolve(f, final, 0)
		switch {
		case decided && r >= 0:
			j.stop(j.failureCause(r))
			return
		case !decided:
			if !j.armed[TimerSettle] {
				j.arm(TimerSettle, j.cfg.Settle)
			}
			return
		}
		// r < 0: a rank that said it fails but has not exited, after
		// the window: the next failure decides.
	}
	if !secondary {
		return
	}
	if !final {
		if !j.armed[TimerSettle] {
			j.arm(TimerSettle, j.cfg.Settle)
		}
		return
	}
	for _, f := range j.failures {
		if j.ranks[f].lostPeer == AnyPeer {
			if r, _ := j.resolve(f, true, 0); r >= 0 {
				j.stop(j.failureCause(r))
				return
			}
		}
	}
}

// resolve returns the rank to blame for failure f: f itself, or the peer
// whose loss it reported if that peer failed. decided is false while a rank
// that matters has not exited (and final is false); r is -1 if f itself has
// not failed after all.
func (j *Job) resolve(f int, final bool, depth int) (r int, decided bool) {
	rf := &j.ranks[f]
	if p := rf.lostPeer; p >= 0 && depth < len(j.ranks) {
		rp := &j.ranks[p]
		switch {
		case rp.failed():
			if r, ok := j.resolve(p, final, depth+1); ok && r >= 0 {
				return r, true
			} else if !ok {
				return -1, false
			}
		case !rp.exited && rp.started && !final:
			return -1, false
		}
	}
	if !rf.exited {
		if !final {
			return -1, false
		}
		return -1, true
	}
	if !rf.failed() {
		return -1, true
	}
	return f, true
}

func (j *Job) failureCause(r int) *cause {
	rr := &j.ranks[r]
	if rr.ex.Lost {
		return &cause{status: 1} // the lost hosts are printed at the end
	}
	return &cause{status: rr.ex.Status, msg: j.who(r) + " " + rr.ex.How, rankFailed: true}
}

// maybeClose sends Close once every started rank is gone and nothing more
// will be started.
func (j *Job) maybeClose() {
	if j.closing || j.wait || !j.stopping && j.next < len(j.ranks) {
		return
	}
	for _, r := range j.ranks {
		if r.started && !r.done() {
			return
		}
	}
	if j.cause == nil && len(j.failures) > 0 {
		j.blame(true)
	}
	j.closing = true
	for _, t := range []Timer{TimerTimeout, TimerGrace, TimerSettle} {
		j.disarm(t)
	}
	j.emit(Close{})
}

func (j *Job) onClosed(ev Closed) {
	if !j.closing || j.done {
		return
	}
	status := 0
	c := j.cause
	for _, h := range j.lostOrder {
		why := ev.Lost[h]
		if why.Why == "" {
			why.Why = "the connection to it dropped"
		}
		j.print(fmt.Sprintf("mpirun: error: lost host %s (%s): %s", h, rankList(j.lostRanks[h]), why.Why))
		if why.Hint != "" {
			j.print("mpirun: hint: " + why.Hint)
		}
		if c == nil || c.rankFailed {
			status = 1
		}
	}
	if c != nil {
		if status == 0 {
			status = c.status
		}
		if c.msg != "" {
			j.print("mpirun: " + c.msg)
		}
		if c.hint != "" {
			j.print("mpirun: hint: " + c.hint)
		}
	}
	if ev.Backend != "" {
		j.vprint("mpirun: DSM fault backend: " + ev.Backend)
	}
	j.status = status
	if j.cfg.Summary || ev.Reported && !j.cfg.SummaryOff {
		j.emit(WriteReport{})
		return
	}
	j.exit()
}

func (j *Job) exit() {
	j.done = true
	j.emit(Exit{Code: j.status})
}

// rankList formats ranks as "rank 3" or "ranks 0, 4, 8" (sorted).
func rankList(ranks []int) string {
	ranks = slices.Sorted(slices.Values(ranks))
	if len(ranks) == 1 {
		return fmt.Sprintf("rank %d", ranks[0])
	}
	s := make([]string, len(ranks))
	for i, r := range ranks {
		s[i] = fmt.Sprint(r)
	}
	return "ranks " + strings.Join(s, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
