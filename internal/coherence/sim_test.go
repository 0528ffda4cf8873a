package coherence

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

// The simulation: a random world of 2..6 ranks, a few pages and locks, and a
// seeded scheduler that interleaves application faults, message deliveries
// on random links (FIFO per link, arbitrary order across links), retries of
// resolved faults, lock and unlock calls, and, with loss, rank deaths and
// the survivors learning of them at random moments. The cluster checks the
// invariants after every event; at the end everything is drained and every
// request must have completed (or, with loss, failed naming a lost rank).
//
// DSMEXEC_SIM_SEEDS=n runs n seeds per test; DSMEXEC_SIM_SEED=s replays one.

const defaultSeeds = 2000

func simSeeds(t *testing.T) (first, count uint64) {
	if s := os.Getenv("DSMEXEC_SIM_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DSMEXEC_SIM_SEED=%q: %v", s, err)
		}
		return v, 1
	}
	count = defaultSeeds
	if s := os.Getenv("DSMEXEC_SIM_SEEDS"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v == 0 {
			t.Fatalf("DSMEXEC_SIM_SEEDS=%q: want a positive count", s)
		}
		count = v
	}
	return 1, count
}

func TestSim(t *testing.T) { runSims(t, false) }

func TestSimPeerLoss(t *testing.T) { runSims(t, true) }

func runSims(t *testing.T, loss bool) {
	first, count := simSeeds(t)
	name := "TestSim"
	if loss {
		name = "TestSimPeerLoss"
	}
	var stats simStats
	for seed := first; seed < first+count; seed++ {
		c, err := simulate(seed, loss, &stats)
		if err != nil {
			t.Fatalf("seed %d: %v\n\ntrace (a script: save it under testdata/ to keep it as a scenario):\n%s\nreplay: DSMEXEC_SIM_SEED=%d go test -run '^%s$' ./internal/coherence",
				seed, err, c.script(), seed, name)
		}
	}
	t.Logf("%d seeds: %d events, %d faults, %d failed, %d lock grants, %d kills",
		count, stats.events, stats.faults, stats.failed, stats.grants, stats.kills)
	if stats.faults == 0 || stats.grants == 0 || loss && (stats.kills == 0 || stats.failed == 0) {
		t.Fatalf("the simulation exercised too little: %+v", stats)
	}
}

type simStats struct {
	events, faults, failed, grants, kills int
}

// simulate runs one seed and returns the cluster (for its trace) and the
// first violation.
func simulate(seed uint64, loss bool, stats *simStats) (*cluster, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := 2 + rng.IntN(5)
	npages := 1 + rng.IntN(2*n)
	nlocks := 1 + rng.IntN(3)
	steps := 50 + rng.IntN(250)
	c := newCluster(n, true)

	kills := map[int]bool{}
	if loss {
		kills[rng.IntN(steps)] = true
		if n >= 4 && rng.IntN(3) == 0 {
			kills[rng.IntN(steps)] = true
		}
	}
	alive := func() []int {
		var rs []int
		for r := range n {
			if !c.dead[r] {
				rs = append(rs, r)
			}
		}
		return rs
	}
	var runBuf []*op
	runnable := func() []*op {
		os := runBuf[:0]
		defer func() { runBuf = os }()
		for _, o := range c.active {
			if o.state == opRunnable {
				os = append(os, o)
			}
		}
		return os
	}

	do := func(e event) error {
		stats.events++
		switch e.kind {
		case evFault:
			stats.faults++
		case evKill:
			stats.kills++
		}
		return c.do(e)
	}

	for step := range steps {
		if kills[step] && len(alive()) > 1 {
			rs := alive()
			if err := do(event{kind: evKill, a: rs[rng.IntN(len(rs))]}); err != nil {
				return c, err
			}
			continue
		}
		links, run, told := c.deliverable(), runnable(), c.pendingLost()
		// Weights: fault 4, deliver 6, retry 3, lock/unlock 1, lost 1.
		w := [5]int{4, 0, 0, 1, 0}
		if len(links) > 0 {
			w[1] = 6
		}
		if len(run) > 0 {
			w[2] = 3
		}
		if len(told) > 0 {
			w[4] = 1
		}
		x := rng.IntN(w[0] + w[1] + w[2] + w[3] + w[4])
		var e event
		switch {
		case x < w[0]:
			rs := alive()
			e = event{kind: evFault, a: rs[rng.IntN(len(rs))], page: Page(rng.IntN(npages)), write: rng.IntN(2) == 0}
		case x < w[0]+w[1]:
			l := links[rng.IntN(len(links))]
			e = event{kind: evDeliver, a: l[0], b: l[1]}
		case x < w[0]+w[1]+w[2]:
			o := run[rng.IntN(len(run))]
			e = event{kind: evRetry, a: o.rank, page: o.page}
		case x < w[0]+w[1]+w[2]+w[3]:
			rs := alive()
			r, id := rs[rng.IntN(len(rs))], uint32(rng.IntN(nlocks))
			switch c.lockState(r, id).state {
			case "held":
				e = event{kind: evUnlock, a: r, lock: id}
			case "waiting":
				continue
			default:
				e = event{kind: evLock, a: r, lock: id}
			}
		default:
			l := told[rng.IntN(len(told))]
			e = event{kind: evLost, a: l[0], b: l[1]}
		}
		if err := do(e); err != nil {
			return c, err
		}
	}

	// Drain: retries first (so that a resolved fault completes before its
	// page can move away again), then messages, unlocks and loss reports in
	// random order.
	for i := 0; ; i++ {
		if i > 100000 {
			return c, fmt.Errorf("drain did not quiesce after %d events", i)
		}
		if run := runnable(); len(run) > 0 {
			o := run[rng.IntN(len(run))]
			if err := do(event{kind: evRetry, a: o.rank, page: o.page}); err != nil {
				return c, err
			}
			continue
		}
		var evs []event
		for _, l := range c.deliverable() {
			evs = append(evs, event{kind: evDeliver, a: l[0], b: l[1]})
		}
		for _, l := range c.pendingLost() {
			evs = append(evs, event{kind: evLost, a: l[0], b: l[1]})
		}
		for _, r := range alive() {
			for id := range uint32(nlocks) {
				if l := c.lockSt[r][id]; l != nil && l.state == "held" {
					evs = append(evs, event{kind: evUnlock, a: r, lock: id})
				}
			}
		}
		if len(evs) == 0 {
			break
		}
		if err := do(evs[rng.IntN(len(evs))]); err != nil {
			return c, err
		}
	}
	for _, g := range c.grants {
		stats.grants += len(g)
	}
	for r := range n {
		for _, l := range c.lockSt[r] {
			if l.state == "failed" {
				stats.failed++
			}
		}
	}
	stats.failed += c.failedOps
	return c, c.final()
}
