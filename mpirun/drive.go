package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/launch"
	"github.com/dsmexec/dsmexec/internal/limits"
	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/remote"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// run feeds the state machine events until it says to exit.
func (d *driver) run() int {
	cfg := d.cfg
	d.machine = launch.New(launch.Config{
		Size: cfg.np, Hosts: cfg.plan.names(), MultiHost: cfg.plan.multiHost(),
		Grace: cfg.grace, Timeout: cfg.timeout, Settle: launch.DefaultSettle,
		RendezvousTimeout: cfg.rdvTimeout, MasterAddr: d.master.Addr(),
		Summary: cfg.summary, SummaryOff: cfg.summaryOff,
	})
	d.queue = append(d.queue, launch.Begin{})
	d.startDetector()
	for {
		for _, a := range d.machine.Step(d.next()) {
			if code, exit := d.do(a); exit {
				return code
			}
		}
	}
}

// next returns the next event: those the driver made itself first (after
// any signal, so that Ctrl-C is heard between starts), then whatever comes.
func (d *driver) next() launch.Event {
	if len(d.queue) > 0 {
		select {
		case s := <-d.sigc:
			return launch.Signal{Sig: launch.Sig(s.(syscall.Signal))}
		default:
		}
		ev := d.queue[0]
		d.queue = d.queue[1:]
		return ev
	}
	for {
		select {
		case e := <-d.exitc:
			return d.exited(e)
		case ev := <-d.msgc:
			return ev
		case s := <-d.sigc:
			return launch.Signal{Sig: launch.Sig(s.(syscall.Signal))}
		case f := <-d.firec:
			if f.gen == d.gen[f.t] {
				d.joins()
				d.queue = append(d.queue, launch.Fired{Timer: f.t})
				return d.next()
			}
		case err := <-d.rdvErr:
			d.rdvErr = nil
			joined := d.joins()
			d.queue = append(d.queue, launch.RendezvousFailed{Err: err.Error(), Joined: joined})
			return d.next()
		}
	}
}

// joins queues a Joined event for each rank that reported to the master
// since the last call (the machine learns remote ranks' pids so), and
// returns how many have joined.
func (d *driver) joins() int {
	n := 0
	for _, r := range d.master.Reports() {
		if !r.Joined {
			continue
		}
		n++
		if !d.joined[r.Rank] {
			d.joined[r.Rank] = true
			d.queue = append(d.queue, launch.Joined{Rank: r.Rank, Pid: r.Pid})
		}
	}
	return n
}

// do carries out one action; exit is true for the last one.
func (d *driver) do(a launch.Action) (code int, exit bool) {
	switch a := a.(type) {
	case launch.StartRank:
		d.start(a.Rank)
	case launch.Kill:
		if err := d.l.Signal(a.Ranks, syscall.Signal(a.Sig)); err != nil {
			d.out.Printf(proc.Stderr, "mpirun: warning: signal %v", err)
		}
	case launch.Arm:
		d.arm(a.Timer, a.After)
	case launch.Disarm:
		d.disarm(a.Timer)
	case launch.Print:
		if !a.Verbose || d.cfg.verbose {
			d.out.Printf(proc.Stderr, "%s", a.Text)
		}
	case launch.AskWhere:
		d.tellWhere(a)
	case launch.TellDeadlock:
		d.out.Printf(proc.Stderr, "mpirun: %s", a.Text)
		d.printStacks(a.Ranks, "deadlock")
	case launch.Close:
		d.queue = append(d.queue, d.close())
	case launch.WriteReport:
		var ev launch.ReportWritten
		if err := d.writeSummary(d.reps, d.stderr); err != nil {
			ev.Err = err.Error()
		}
		d.queue = append(d.queue, ev)
	case launch.Exit:
		return a.Code, true
	}
	return 0, false
}

func (d *driver) start(r int) {
	pid, err := d.l.Start(d.spec(r))
	if err != nil {
		msg := err.Error()
		if why := limits.Explain(err); why != "" {
			msg += " (" + why + ")"
		}
		d.queue = append(d.queue, launch.StartFailed{Rank: r, Err: msg})
		return
	}
	d.started[r] = true
	host := d.cfg.plan.host(r).name
	if pid != 0 {
		d.vlogf("started rank %d on %s, pid %d", r, host, pid)
	} else {
		d.vlogf("started rank %d on %s", r, host)
	}
	go func() { d.exitc <- d.l.Wait(r) }()
	d.queue = append(d.queue, launch.Started{Rank: r, Pid: pid})
}

// exited turns a rank's end into events. Wait returns after the rank's
// output was sent, so its output is closed too.
func (d *driver) exited(e proc.Exit) launch.Event {
	d.exits[e.Rank] = e
	d.noteExit(e.Rank)
	d.queue = append(d.queue, launch.OutputClosed{Rank: e.Rank})
	switch {
	case errors.Is(e.Err, remote.ErrAgentGone):
		return launch.Exited{Rank: e.Rank, Lost: true, How: e.Err.Error()}
	case e.Err != nil && e.Pid == 0:
		why := e.Err.Error()
		var ae *remote.AgentError
		if errors.As(e.Err, &ae) {
			why = ae.Msg // without the host, named here already
		}
		return launch.Exited{Rank: e.Rank, StartErr: why}
	}
	return launch.Exited{Rank: e.Rank, Pid: e.Pid, Status: e.Status(), Failed: e.Failed(), How: e.String()}
}

func (d *driver) arm(t launch.Timer, after time.Duration) {
	d.disarm(t)
	g := d.gen[t]
	d.timers[t] = time.AfterFunc(after, func() {
		select {
		case d.firec <- fired{t: t, gen: g}:
		case <-d.quit:
		}
	})
}

// disarm stops a timer; a firing already on its way is ignored (its
// generation is old).
func (d *driver) disarm(t launch.Timer) {
	if tm := d.timers[t]; tm != nil {
		tm.Stop()
		delete(d.timers, t)
	}
	d.gen[t]++
}

// close ends the job once every rank is gone: from now on a signal ends
// mpirun at once. It collects the reports, closes the master, the hosts and
// the output, and says what the machine needs for the last lines.
func (d *driver) close() launch.Event {
	signal.Stop(d.sigc)
	close(d.quit)
	d.reps = d.reports()
	d.master.Close()
	d.l.Close()
	d.endOutput()
	ev := launch.Closed{Reported: reported(d.reps), Backend: backends(d.reps), Lost: map[string]launch.Reason{}}
	for r, e := range d.exits {
		if errors.Is(e.Err, remote.ErrAgentGone) {
			why, hint := d.l.Lost(r)
			ev.Lost[d.cfg.plan.host(r).name] = launch.Reason{Why: why, Hint: hint}
		}
	}
	return ev
}

// tellWhere asks the ranks still running which dsmexec call they wait in
// and prints it: a job that timed out is usually a deadlock, and this says
// which ranks wait for which.
func (d *driver) tellWhere(a launch.AskWhere) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	d.master.Where(ctx)
	reps := d.master.Reports()
	for i, r := range a.Ranks {
		if r >= len(reps) || !reps[r].Joined {
			continue
		}
		if w := reps[r].Where; w != "" {
			d.out.Printf(proc.Stderr, "mpirun: %s was waiting in %s", a.Who[i], w)
		} else {
			d.out.Printf(proc.Stderr, "mpirun: %s was not waiting in a dsmexec call (computing, or in a page fault)", a.Who[i])
		}
	}
	d.printStacks(a.Ranks, "timeout")
}

// reports returns what the ranks told the master. A rank that exited
// normally after finalizing sent its statistics just before; they may still
// be in flight, so wait a little (bounded) for the master to read them, or
// to see the rank's connection end without them.
func (d *driver) reports() []rendezvous.Report {
	limit := time.NewTimer(time.Second)
	defer limit.Stop()
	for {
		changed := d.master.Changed() // before Reports: no change is missed
		reps := d.master.Reports()
		pending := false
		for i, rep := range reps {
			if i < len(d.exits) && rep.Joined && !rep.Finalized && !rep.Ended && d.started[i] && !d.exits[i].Failed() {
				pending = true
			}
		}
		if !pending {
			return reps
		}
		select {
		case <-changed:
		case <-limit.C:
			return d.master.Reports()
		}
	}
}

func reported(reps []rendezvous.Report) bool {
	for _, r := range reps {
		if len(r.Columns) > 0 {
			return true
		}
	}
	return false
}

func backends(reps []rendezvous.Report) string {
	count := map[string]int{}
	var order []string
	for _, r := range reps {
		if b := r.Stats.Backend; b != "" {
			if count[b] == 0 {
				order = append(order, b)
			}
			count[b]++
		}
	}
	if len(order) == 1 {
		return order[0]
	}
	var parts []string
	for _, b := range order {
		parts = append(parts, fmt.Sprintf("%s (%d ranks)", b, count[b]))
	}
	return strings.Join(parts, ", ")
}

// connect sets up the remote hosts, reporting every failure. A signal
// cancels it. ok is false when the job cannot start; status is then mpirun's
// exit status.
func (d *driver) connect(hosts []*hostPlan) (status int, ok bool) {
	// The agents' sessions live as long as this context: it is cancelled
	// only on failure here, or by ssh.Close after the job.
	ctx, cancel := context.WithCancel(context.Background())
	d.ssh.cancel = cancel
	done := make(chan []hostFailure, 1)
	go func() { done <- d.ssh.connect(ctx, hosts, d.lines) }()
	var sig syscall.Signal
	var fails []hostFailure
	for fails == nil {
		select {
		case fails = <-done:
			if fails == nil {
				fails = []hostFailure{}
			}
		case s := <-d.sigc:
			if sig == 0 {
				sig = s.(syscall.Signal)
				d.out.Printf(proc.Stderr, "mpirun: %s: giving up on connecting to the hosts", proc.SignalName(sig))
				cancel()
			}
		}
	}
	switch {
	case sig != 0:
		if len(fails) == 0 {
			d.ssh.Close() // set up just before the signal won
		}
		return 128 + int(sig), false
	case len(fails) == 0:
		return 0, true
	}
	d.hostFailures(ctx, fails)
	if len(fails) < len(hosts) {
		d.vlogf("no rank was started: %d of %d host%s could not be set up", len(fails), len(hosts), plural(len(hosts)))
	}
	return 1, false
}

func (d *driver) hostFailures(ctx context.Context, fails []hostFailure) {
	for _, f := range fails {
		if ctx.Err() != nil && errors.Is(f.err, context.Canceled) {
			continue
		}
		msg := strings.TrimPrefix(f.err.Error(), "remote: ")
		if !strings.Contains(msg, f.host.name) {
			msg = f.host.name + ": " + msg
		}
		d.out.Printf(proc.Stderr, "mpirun: error: %s", msg)
		if f.hint != "" {
			d.out.Printf(proc.Stderr, "mpirun: hint: %s", f.hint)
		} else if h := remote.Hint(f.err); h != "" {
			d.out.Printf(proc.Stderr, "mpirun: hint: %s", h)
		}
	}
}
