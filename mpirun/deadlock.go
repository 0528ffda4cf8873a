package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/internal/deadlock"
	"github.com/dsmexec/dsmexec/internal/launch"
	"github.com/dsmexec/dsmexec/internal/proc"
)

// The deadlock detector (-deadlock-after D): every D/2 it asks the running
// ranks what they do (STATE, see internal/deadlock's Question and Report),
// builds a snapshot of the job and checks it. Two deadlocked verdicts in a
// row, with every rank in the same call and the same message counts both
// times (nothing happened in between), stop the job: mpirun names the
// wait-for cycle, prints the ranks' stacks and exits 3.

// detector is the state of the deadlock detector of one job.
type detector struct {
	d      *driver
	after  time.Duration
	exited []atomic.Bool // set by the driver when a rank's process ended
	round  uint64
	last   []*deadlock.Report // each rank's last answer
	prev   []*deadlock.Report // the previous round's answers, when it was a deadlock
	text   string             // the previous round's verdict
}

// startDetector starts the deadlock detector once every rank has the
// connection table; it ends with the job.
func (d *driver) startDetector() {
	n := d.cfg.np
	dt := &detector{d: d, after: d.cfg.deadlockAfter, exited: make([]atomic.Bool, n), last: make([]*deadlock.Report, n)}
	d.detector = dt
	if dt.after <= 0 {
		return
	}
	go dt.run()
}

// noteExit tells the detector that rank's process ended.
func (d *driver) noteExit(rank int) {
	if d.detector != nil && rank >= 0 && rank < len(d.detector.exited) {
		d.detector.exited[rank].Store(true)
	}
}

func (dt *detector) run() {
	d := dt.d
	select {
	case <-d.master.Ready():
	case <-d.quit:
		return
	}
	t := time.NewTicker(dt.after / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-d.quit:
			return
		}
		if v, ok := dt.poll(); ok {
			// The machine prints it and the stacks (TellDeadlock), unless
			// the job is ending anyway.
			d.send(launch.Deadlocked{Text: v.Text, After: dt.after})
			return
		}
	}
}

// poll asks the ranks and checks the snapshot; ok is true on the second
// deadlocked verdict in a row with nothing changed in between.
func (dt *detector) poll() (deadlock.Verdict, bool) {
	d := dt.d
	n := d.cfg.np
	finished := make([]bool, n)
	for r, rep := range d.master.Reports() {
		finished[r] = rep.Finalized || dt.exited[r].Load()
	}
	var live []int
	for r := range finished {
		if !finished[r] {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return deadlock.Verdict{}, false
	}
	dt.round++
	q, _ := json.Marshal(deadlock.Question{Round: dt.round, AfterNS: int64(dt.after)})
	ctx, cancel := context.WithTimeout(context.Background(), max(dt.after/2, 100*time.Millisecond))
	answers := d.master.State(ctx, live, q)
	cancel()
	now := time.Now()
	reports := make([]*deadlock.Report, n)
	for r, b := range answers {
		var rep deadlock.Report
		if json.Unmarshal(b, &rep) != nil || rep.Round != dt.round || r < 0 || r >= n {
			continue
		}
		reports[r] = &rep
		dt.last[r] = &rep
	}
	// A rank that ended while it was asked is finished, not silent.
	for r := range finished {
		if !finished[r] && reports[r] == nil && dt.exited[r].Load() {
			finished[r] = true
		}
	}
	s, ok := deadlock.Build(now, reports, dt.last, finished)
	if !ok {
		dt.prev = nil
		return deadlock.Verdict{}, false
	}
	v := deadlock.Check(s, dt.after)
	if !v.Deadlocked {
		dt.prev = nil
		return v, false
	}
	same := dt.prev != nil && dt.text == v.Text
	for r := 0; same && r < n; r++ {
		same = reports[r].Same(dt.prev[r])
	}
	if same {
		return v, true
	}
	dt.prev, dt.text = reports, v.Text
	return v, false
}

// printStacks asks the ranks for their goroutine stacks (the program's
// goroutines, trimmed to its frames and the dsmexec calls they are in)
// and prints them on mpirun's stderr, or with -output-dir writes
// DIR/rank.N.stacks and says so. why is "deadlock" or "timeout".
func (d *driver) printStacks(ranks []int, why string) {
	if len(ranks) == 0 {
		return
	}
	q, _ := json.Marshal(deadlock.Question{Round: 0, AfterNS: -1, Stacks: true})
	ctx, cancel := context.WithTimeout(context.Background(), stacksWait)
	answers := d.master.State(ctx, ranks, q)
	cancel()
	reps := d.master.Reports()
	var files []string
	for _, r := range ranks {
		var rep deadlock.Report
		b, ok := answers[r]
		if !ok || json.Unmarshal(b, &rep) != nil {
			d.out.Printf(proc.Stderr, "mpirun: %s: %s sent no stacks", why, d.rankName(r, reps[r].Host, reps[r].Pid))
			continue
		}
		stacks := strings.TrimRight(rep.Stacks, "\n")
		if stacks == "" {
			stacks = "(no goroutine of the program)"
		}
		head := fmt.Sprintf("%s stacks of %s:", why, d.rankName(r, reps[r].Host, reps[r].Pid))
		if d.cfg.outputDir != "" {
			name := filepath.Join(d.cfg.outputDir, fmt.Sprintf("rank.%d.stacks", r))
			if err := os.WriteFile(name, []byte(head+"\n"+stacks+"\n"), 0o644); err != nil {
				d.out.Printf(proc.Stderr, "mpirun: warning: write %s: %v", name, err)
			} else {
				files = append(files, name)
				continue
			}
		}
		d.out.Printf(proc.Stderr, "mpirun: %s\n%s", head, indent(stacks))
	}
	if len(files) > 0 {
		d.out.Printf(proc.Stderr, "mpirun: %s: the ranks' goroutine stacks are in %s", why, strings.Join(files, ", "))
	}
}

// stacksWait bounds the wait for the ranks' stacks (a loaded machine
// may take a while to dump and send them).
const stacksWait = 3 * time.Second

// rankName is "rank 2 (pid 1234)" or, on several hosts, "rank 2 on node1
// (pid 1234)".
func (d *driver) rankName(r int, host string, pid int) string {
	s := fmt.Sprintf("rank %d", r)
	if d.cfg.plan.multiHost() && host != "" {
		s += " on " + host
	}
	if pid != 0 {
		s += fmt.Sprintf(" (pid %d)", pid)
	}
	return s
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
