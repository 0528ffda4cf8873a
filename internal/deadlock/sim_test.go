package deadlock

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A simulation of correct (deadlock-free) jobs with long compute phases
// and slow networks: snapshots taken at random moments must never be
// called deadlocked.

const tick = 100 * time.Millisecond

type simOp struct {
	kind    int // opCompute, opSend, opRecv, opBarrier
	d       int // compute ticks
	peer    int // send: to; recv: from (or AnySource)
	tag     int
	started bool
}

const (
	opCompute = iota
	opSend
	opRecv
	opBarrier
)

type simMsg struct {
	from, to, tag int
	arrive        int
}

type simRank struct {
	ops     []simOp
	pc      int
	until   int // compute end
	since   int // blocked since
	blocked bool
	seq     int // barrier number it is in
	entered int
	box     []simMsg
}

// program builds a random correct SPMD program: rounds of compute, eager
// sends, receives of exactly the messages sent to the rank in the round
// (all by source, or all AnySource: mixing could steal a message), and
// sometimes a barrier.
func program(rng *rand.Rand, n int) [][]simOp {
	ops := make([][]simOp, n)
	rounds := 2 + rng.IntN(6)
	for round := 0; round < rounds; round++ {
		from := make([][]int, n)
		for r := 0; r < n; r++ {
			d := rng.IntN(30)
			if rng.IntN(4) == 0 {
				d = 40 + rng.IntN(120) // a long compute phase, longer than D
			}
			ops[r] = append(ops[r], simOp{kind: opCompute, d: d})
			for k := rng.IntN(4); k > 0; k-- {
				to := rng.IntN(n - 1)
				if to >= r {
					to++
				}
				ops[r] = append(ops[r], simOp{kind: opSend, peer: to, tag: round})
				from[to] = append(from[to], r)
			}
		}
		for r := 0; r < n; r++ {
			anySrc := rng.IntN(2) == 0
			rng.Shuffle(len(from[r]), func(i, j int) { from[r][i], from[r][j] = from[r][j], from[r][i] })
			for _, s := range from[r] {
				if anySrc {
					s = AnySource
				}
				ops[r] = append(ops[r], simOp{kind: opRecv, peer: s, tag: round})
			}
		}
		if rng.IntN(2) == 0 {
			for r := 0; r < n; r++ {
				ops[r] = append(ops[r], simOp{kind: opBarrier})
			}
		}
	}
	return ops
}

func TestNoFalsePositives(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 99))
	const jobs = 300
	after := 20 * tick
	snapshots, hard := 0, 0
	for job := 0; job < jobs; job++ {
		n := 2 + rng.IntN(7)
		prog := program(rng, n)
		ranks := make([]simRank, n)
		for r := range ranks {
			ranks[r].ops = prog[r]
		}
		var net []simMsg
		allIn := map[int]int{} // barrier seq -> tick everyone had entered
		lat := func() int { return 1 + rng.IntN(60) }
		finished := 0
		for now := 0; finished < n; now++ {
			if now > 100000 {
				t.Fatalf("job %d: the simulation did not finish (a bug in the generator)", job)
			}
			// Deliver.
			rest := net[:0]
			for _, m := range net {
				if m.arrive <= now {
					ranks[m.to].box = append(ranks[m.to].box, m)
				} else {
					rest = append(rest, m)
				}
			}
			net = rest
			// Run every rank until it blocks or computes.
			finished = 0
			for _, r := range rng.Perm(n) {
				rk := &ranks[r]
			run:
				for rk.pc < len(rk.ops) {
					op := &rk.ops[rk.pc]
					switch op.kind {
					case opCompute:
						if !op.started {
							op.started = true
							rk.until = now + op.d
						}
						if now < rk.until {
							break run
						}
					case opSend:
						net = append(net, simMsg{r, op.peer, op.tag, now + lat()})
					case opRecv:
						got := -1
						for i, m := range rk.box {
							if (op.peer == AnySource || m.from == op.peer) && m.tag == op.tag {
								got = i
								break
							}
						}
						if got < 0 {
							if !rk.blocked {
								rk.blocked, rk.since = true, now
							}
							break run
						}
						rk.box = append(rk.box[:got], rk.box[got+1:]...)
					case opBarrier:
						if !op.started {
							op.started = true
							rk.entered++
							rk.seq = rk.entered
							rk.blocked, rk.since = true, now
							all := true
							for q := range ranks {
								if ranks[q].entered < rk.seq {
									all = false
								}
							}
							if all {
								allIn[rk.seq] = now
							}
							op.d = lat() // this rank's release latency
						}
						at, ok := allIn[rk.seq]
						if !ok || now < at+op.d {
							break run
						}
					}
					rk.blocked = false
					rk.pc++
				}
				if rk.pc == len(rk.ops) {
					finished++
				}
			}
			if rng.IntN(5) != 0 {
				continue
			}
			// Snapshot.
			s := Snapshot{Now: t0.Add(time.Duration(now) * tick), Ranks: make([]Rank, n)}
			allBlocked := true
			for r := range ranks {
				rk := &ranks[r]
				st := &s.Ranks[r]
				st.Entered = map[int]int{0: rk.entered}
				switch {
				case rk.pc == len(rk.ops):
					st.State = Finished
				case rk.blocked:
					st.State = Blocked
					st.Since = t0.Add(time.Duration(rk.since) * tick)
					op := rk.ops[rk.pc]
					if op.kind == opRecv {
						st.Call = Call{Name: "Recv", Recvs: []Match{{From: op.peer, Tag: op.tag}}}
					} else {
						st.Call = Call{Name: "Barrier", Seq: rk.seq, Root: -1}
					}
					if now-rk.since < int(after/tick) {
						allBlocked = false
					}
				default:
					st.State = Computing
					allBlocked = false
				}
			}
			// In flight: on the network and queued, by pair with the tag
			// known or not, or one by one.
			tagged := rng.IntN(2) == 0
			pairs := map[[3]int]int{}
			add := func(m simMsg) {
				tag := m.tag
				if !tagged {
					tag = AnyTag
				}
				pairs[[3]int{m.from, m.to, tag}]++
			}
			for _, m := range net {
				add(m)
			}
			for r := range ranks {
				for _, m := range ranks[r].box {
					add(m)
				}
			}
			for k, c := range pairs {
				s.InFlight = append(s.InFlight, InFlight{From: k[0], To: k[1], Tag: k[2], N: c})
			}
			snapshots++
			if allBlocked && finished < n {
				hard++
			}
			if v := Check(s, after); v.Deadlocked {
				t.Fatalf("job %d tick %d: false deadlock: %s\nsnapshot %+v", job, now, v.Text, s)
			}
		}
	}
	t.Logf("%d jobs, %d snapshots, %d with every live rank blocked for >= D", jobs, snapshots, hard)
	if hard < 100 {
		t.Fatalf("only %d snapshots had every live rank blocked for >= D: the test does not test much", hard)
	}
}
