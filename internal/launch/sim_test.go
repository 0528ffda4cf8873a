package launch

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The simulation runs jobs against a random world: ranks fail on their own,
// ranks fail because they lost a failed peer (saying so first), ranks call
// Abort, hosts are lost, mpirun is signalled, timers fire, and exits are
// reaped in any order. It checks after every run:
//   - mpirun exits (within a bounded number of events);
//   - its status is that of the first cause in time (an Abort wins over
//     rank failures; a lost host makes a rank failure status 1);
//   - every rank still running when the job began to stop was signalled.
//
// A failure counts from when mpirun first hears of it (its exit, or the
// exit of a rank that reported losing it). Modelling assumptions: the settle
// window (a real 500 ms) is long enough for the exit of a rank that has
// already died to be reaped, so the settle timer fires only when no such
// exit is pending; and signals to mpirun and the timeout do not fall inside
// that window (they then blame what is known, which need not be the first
// failure in time).

func TestSimulation(t *testing.T) {
	for seed := uint64(1); seed <= 3000; seed++ {
		if err := simulate(seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

type simRank struct {
	started, dead, delivered, signalled bool
	pending                             []Event // to deliver, in order
	termIgnored                         bool
	// why it died: "normal", "killed" (by the job), "fail" (on its own),
	// "lost", "abort", or "caused" (it lost peer)
	why         string
	status      int
	peer        int
	deliveredAt int // events when its exit was delivered
}

type sim struct {
	rng    *rand.Rand
	j      *Job
	ranks  []simRank
	armed  map[Timer]bool
	trace  []string
	start  int  // rank being started, -1 if none
	closed bool // Close seen, not answered yet
	ending bool // Close seen
	report bool // WriteReport seen
	exit   int  // -1 until Exit
	// first cause in time, as the world saw it
	firstKind   string // "fail", "lost", "signal", "timeout", "rdv", "start", ""
	firstStatus int
	abortCode   int // first Abort's status, 0 if none
	anyLost     bool
	stopAt      int // events when the first Kill was seen, -1 if none
	events      int
}

func simulate(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	n := 1 + rng.IntN(5)
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%d", i%2)
	}
	cfg := Config{Size: n, Hosts: hosts, MultiHost: true, Grace: time.Second, Settle: DefaultSettle, Summary: rng.IntN(2) == 0}
	if rng.IntN(2) == 0 {
		cfg.Timeout = time.Minute
	}
	s := &sim{rng: rng, j: New(cfg), ranks: make([]simRank, n), armed: map[Timer]bool{}, start: -1, exit: -1, stopAt: -1}
	s.step(Begin{})
	for s.exit < 0 {
		if s.events > 2000 {
			return s.fail("mpirun did not exit")
		}
		if !s.world(s.events > 300) {
			return s.fail("stuck: nothing can happen and mpirun has not exited")
		}
	}
	return s.check()
}

func (s *sim) fail(msg string) error {
	return fmt.Errorf("%s\ntrace:\n%s", msg, strings.Join(s.trace, "\n"))
}

func (s *sim) check() error {
	want := s.firstStatus
	switch {
	case s.abortCode != 0 && (s.firstKind == "fail" || s.firstKind == "abort"):
		want = s.abortCode
	case s.anyLost && (s.firstKind == "fail" || s.firstKind == "lost"):
		want = 1
	}
	for r, rk := range s.ranks {
		if s.stopAt >= 0 && rk.started && !rk.signalled && rk.deliveredAt > s.stopAt {
			return s.fail(fmt.Sprintf("rank %d was running when the job stopped and was never signalled", r))
		}
	}
	if s.exit != want {
		return s.fail(fmt.Sprintf("exit %d, want %d (first cause %q)", s.exit, want, s.firstKind))
	}
	return nil
}

// cause records the first cause in time.
func (s *sim) cause(kind string, status int) {
	if s.firstKind == "" && s.exit < 0 {
		s.firstKind, s.firstStatus = kind, status
	}
}

func (s *sim) step(ev Event) {
	s.events++
	s.trace = append(s.trace, fmt.Sprintf("%T%+v", ev, ev))
	for _, a := range s.j.Step(ev) {
		s.trace = append(s.trace, "  "+formatAction(a))
		s.act(a)
	}
}

func (s *sim) act(a Action) {
	switch a := a.(type) {
	case StartRank:
		s.start = a.Rank
	case Kill:
		if s.stopAt < 0 {
			s.stopAt = s.events
		}
		for _, r := range a.Ranks {
			s.ranks[r].signalled = true
			if a.Sig == SIGTERM && s.ranks[r].termIgnored {
				continue
			}
			s.die(r, "killed", Exited{Rank: r, Status: 128 + int(a.Sig), Failed: true, How: "killed by signal " + a.Sig.String()})
		}
	case Arm:
		s.armed[a.Timer] = true
	case Disarm:
		delete(s.armed, a.Timer)
	case Close:
		s.closed, s.ending = true, true
	case WriteReport:
		s.report = true
	case Exit:
		s.exit = a.Code
		for r, rk := range s.ranks {
			if rk.started && !rk.delivered {
				panic(fmt.Sprintf("exit while rank %d runs", r))
			}
		}
	}
}

// die makes rank r's process end; its exit is reaped later.
func (s *sim) die(r int, why string, ex Exited) {
	rk := &s.ranks[r]
	if rk.dead || !rk.started {
		return
	}
	rk.dead, rk.why, rk.status = true, why, ex.Status
	rk.pending = append(rk.pending, ex, OutputClosed{Rank: r})
}

// root returns the kind and status of the failure that explains rank r's.
func (s *sim) root(r int) (string, int) {
	for range s.ranks {
		rk := &s.ranks[r]
		if rk.why != "caused" {
			return rk.why, rk.status
		}
		if p := &s.ranks[rk.peer]; p.why == "normal" {
			return "fail", rk.status
		}
		r = rk.peer
	}
	return "fail", 1
}

// heard records what mpirun learns from ev, for the expected status.
func (s *sim) heard(ev Event) {
	switch ev := ev.(type) {
	case Exited:
		kind, status := s.root(ev.Rank)
		switch kind {
		case "fail", "lost":
			s.cause(kind, status)
		}
	case Aborted:
		s.cause("abort", ev.Code)
		if s.abortCode == 0 {
			s.abortCode = ev.Code
		}
	}
}

// quiet: no rank died unheard and no settle window is open.
func (s *sim) quiet() bool {
	for _, rk := range s.ranks {
		if len(rk.pending) > 0 {
			return false
		}
	}
	return !s.armed[TimerSettle]
}

// world makes one thing happen; calm: only what follows from the past
// (starts, reaping, timers, answers), plus ranks finishing normally.
func (s *sim) world(calm bool) bool {
	var moves []func()
	add := func(f func()) { moves = append(moves, f) }
	if s.start >= 0 {
		r := s.start
		add(func() {
			s.start = -1
			if !calm && s.rng.IntN(20) == 0 {
				s.cause("start", 1)
				s.step(StartFailed{Rank: r, Err: "no such file"})
				return
			}
			s.ranks[r].started = true
			s.ranks[r].termIgnored = s.rng.IntN(4) == 0
			s.step(Started{Rank: r, Pid: 100 + r})
		})
	}
	pendingExit := false
	for r := range s.ranks {
		rk := &s.ranks[r]
		if len(rk.pending) > 0 {
			pendingExit = true
			add(func() {
				ev := rk.pending[0]
				rk.pending = rk.pending[1:]
				if _, ok := ev.(OutputClosed); ok {
					rk.delivered = true
				}
				if _, ok := ev.(Exited); ok {
					rk.deliveredAt = s.events + 1
				}
				s.heard(ev)
				s.step(ev)
			})
		}
		if rk.started && !rk.dead {
			add(func() { s.die(r, "normal", Exited{Rank: r, Status: 0, How: "exited with status 0"}) })
			if !calm {
				s.chaos(r, add)
			}
		}
	}
	for t := range s.armed {
		if t == TimerSettle && pendingExit || t == TimerTimeout && !s.quiet() {
			continue
		}
		add(func() {
			delete(s.armed, t)
			if t == TimerTimeout {
				s.cause("timeout", 124)
			}
			s.step(Fired{Timer: t})
		})
	}
	if s.closed {
		add(func() {
			s.closed = false
			s.step(Closed{Lost: map[string]Reason{}})
		})
	}
	if s.report {
		add(func() { s.report = false; s.step(ReportWritten{}) })
	}
	if !calm && !s.ending && s.quiet() && s.rng.IntN(30) == 0 {
		add(func() {
			sig := []Sig{SIGINT, SIGTERM, SIGHUP}[s.rng.IntN(3)]
			s.cause("signal", 128+int(sig))
			s.step(Signal{Sig: sig})
		})
	}
	if len(moves) == 0 {
		return false
	}
	moves[s.rng.IntN(len(moves))]()
	return true
}

// chaos adds the ways a running rank r can fail.
func (s *sim) chaos(r int, add func(func())) {
	rk := &s.ranks[r]
	if s.rng.IntN(8) != 0 {
		return
	}
	add(func() { s.die(r, "fail", Exited{Rank: r, Status: 3, Failed: true, How: "exited with status 3"}) })
	add(func() { s.die(r, "fail", Exited{Rank: r, Status: 137, Failed: true, How: "killed by signal SIGKILL"}) })
	add(func() { // its host is lost
		s.anyLost = true
		rk.dead, rk.why, rk.status = true, "lost", 1
		rk.pending = append(rk.pending, Exited{Rank: r, Lost: true, How: "agent gone"}, OutputClosed{Rank: r})
	})
	add(func() {
		code := 1 + s.rng.IntN(5)
		rk.pending = append(rk.pending, Aborted{Rank: r, Code: code})
		s.die(r, "abort", Exited{Rank: r, Status: code, Failed: true, How: fmt.Sprintf("exited with status %d", code)})
	})
	for p := range s.ranks { // loses a peer that died, and says so
		if pk := &s.ranks[p]; p != r && pk.dead && pk.why != "killed" {
			add(func() {
				rk.pending = append(rk.pending, Failure{Rank: r, LostPeer: p, Msg: fmt.Sprintf("lost rank %d", p)})
				s.die(r, "caused", Exited{Rank: r, Status: 1, Failed: true, How: "exited with status 1"})
				rk.peer = p
			})
			break
		}
	}
}
