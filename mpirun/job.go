package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/output"
	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/remote"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// rankState is mpirun's view of one rank.
type rankState struct {
	rank int
	host string
	t    task // nil if never started
	exit proc.Exit
	done bool
}

func (r *rankState) who(multiHost bool) string {
	if multiHost {
		return fmt.Sprintf("rank %d (pid %d on %s)", r.rank, r.t.Pid(), r.host)
	}
	return fmt.Sprintf("rank %d (pid %d)", r.rank, r.t.Pid())
}

// stopCause is why the job was stopped: the first of a failing rank, a
// lost host, a signal to mpirun, the timeout, a rendezvous error.
type stopCause struct {
	status int
	msg    string // printed after the job, "mpirun: " prepended; "" for none
	hint   string
	// rankFailed: a rank exited non-zero or was killed. If a host is lost
	// too, the lost host is the likelier cause and is reported first.
	rankFailed bool
}

// lostHost is a host whose connection ended before its ranks reported
// their exits.
type lostHost struct {
	host  *hostPlan
	ranks []int
}

type job struct {
	cfg       *config
	plan      *plan
	out       *output.Writer
	local     localLauncher
	ssh       *sshLauncher // nil when every rank runs here
	master    *rendezvous.Master
	multiHost bool

	ranks   []*rankState
	exits   chan proc.Exit
	running int

	lost      map[*hostPlan]*lostHost
	lostOrder []*lostHost

	cause    *stopCause
	stopping bool             // SIGTERM sent
	graceC   <-chan time.Time // SIGKILL when it fires
	grace    *time.Timer
	abortC   <-chan time.Time // after SIGKILL: give up on unanswering hosts
	abort    *time.Timer
}

func (j *job) vlogf(format string, args ...any) {
	if j.cfg.verbose {
		j.out.Printf(proc.Stderr, "mpirun: "+format, args...)
	}
}

func runJob(cfg *config, stdin, stdout, stderr *os.File) int {
	p := cfg.plan
	n := cfg.np
	j := &job{cfg: cfg, plan: p, exits: make(chan proc.Exit, n), multiHost: p.multiHost(), lost: map[*hostPlan]*lostHost{}}
	var tagHosts []string
	if j.multiHost {
		tagHosts = p.names()
	}
	out, err := output.New(output.Options{Stdout: stdout, Stderr: stderr, Size: n, Tag: cfg.tagOutput, Hosts: tagHosts, Dir: cfg.outputDir})
	if err != nil {
		return report(stderr, failErr("", "%v", err))
	}
	j.out = out
	defer out.Close()

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)

	lines := make(chan proc.Line, 1024)
	outDone := make(chan error, 1)
	go func() { outDone <- out.Run(lines) }()
	endOutput := func() {
		close(lines)
		<-outDone
	}

	launcherName := "local"
	if remotes := p.remote(); len(remotes) > 0 {
		launcherName = "ssh"
		if p.anyLocal() {
			launcherName = "local+ssh"
		}
	}
	j.vlogf("program %s, %d rank%s", cfg.path, n, plural(n))
	j.vlogf("placement: %s (launcher %s)", placement(p.names()), launcherName)
	if remotes := p.remote(); len(remotes) > 0 {
		j.ssh = newSSHLauncher(cfg, out, stderr, j.vlogf)
		if status, ok := j.connect(remotes, lines, sigc); !ok {
			endOutput()
			return status
		}
	}

	tok := make([]byte, 32)
	rand.Read(tok) // never fails (crypto/rand panics rather)
	token := hex.EncodeToString(tok)
	listen, reach := "127.0.0.1:0", []net.IP(nil)
	if j.ssh != nil {
		// The master listens where the hosts reach this machine: the local
		// address of their SSH connections (never a hard-coded one).
		reach = j.ssh.localIPs()
		if len(reach) == 1 {
			listen = net.JoinHostPort(reach[0].String(), "0")
		} else {
			listen = ":0" // hosts reach us on different addresses
		}
	}
	m, err := rendezvous.Listen(listen, rendezvous.Config{Size: n, Token: tok, Timeout: cfg.rdvTimeout, Logf: j.vlogf,
		Warnf: func(format string, args ...any) { out.Printf(proc.Stderr, "mpirun: warning: "+format, args...) }})
	if err != nil {
		if j.ssh != nil {
			j.ssh.Close()
		}
		endOutput()
		return report(stderr, failErr("", "start the master socket: %v", err))
	}
	j.master = m
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Serve(ctx)
	_, port, _ := net.SplitHostPort(m.Addr())
	masterFor := func(hp *hostPlan) string {
		switch {
		case j.ssh == nil:
			return m.Addr()
		case hp.local:
			// Local ranks advertise the address they reach the master
			// by: it must be one the remote ranks can reach too.
			return net.JoinHostPort(reach[0].String(), port)
		}
		return net.JoinHostPort(j.ssh.hosts[hp].localIP.String(), port)
	}
	if len(reach) > 1 {
		j.vlogf("master listening on %s (the hosts reach it at %s), job token %s…", m.Addr(), ipList(reach), token[:4])
	} else {
		j.vlogf("master listening on %s, job token %s…", m.Addr(), token[:4])
	}
	j.vlogf("shared region %d bytes; rendezvous timeout %v; grace %v", cfg.dsmSize, cfg.rdvTimeout, cfg.grace)

	// Ranks forked here inherit mpirun's environment; ranks on other hosts
	// get the agent's (their login environment) plus the same additions.
	extra := []string{"DSMEXEC_TIMEOUT=" + cfg.rdvTimeout.String()} // the ranks wait for the table as long as the master waits for them
	if cfg.verbose {
		extra = append(extra, "DSMEXEC_VERBOSE=1")
	}
	localBase := append(baseEnv(os.Environ(), cfg.env), extra...)
	remoteBase := append(baseEnv(nil, cfg.env), extra...)
	in0 := rankStdin(stdin)
	j.ranks = make([]*rankState, n)
	for r := range j.ranks {
		j.ranks[r] = &rankState{rank: r, host: p.host(r).name}
	}
	for _, rs := range j.ranks {
		select {
		case s := <-sigc:
			j.onSignal(s.(syscall.Signal))
		default:
		}
		if j.stopping {
			break
		}
		hp := p.host(rs.rank)
		base := localBase
		if !hp.local {
			base = remoteBase
		}
		spec := proc.Spec{
			Rank: rs.rank,
			Path: cfg.path,
			Args: cfg.args,
			Env:  launchEnv(base, rs.rank, n, masterFor(hp), token, rs.host, cfg.dsmSize),
		}
		if rs.rank == 0 && in0 != nil {
			spec.Stdin = in0
		}
		var t task
		if hp.local {
			t, err = j.local.Start(hp, spec, lines)
		} else {
			t, err = j.ssh.Start(hp, spec, lines)
		}
		if err != nil {
			j.stop(&stopCause{status: 1, msg: fmt.Sprintf("error: start rank %d on %s: %v", rs.rank, rs.host, err)})
			break
		}
		rs.t = t
		j.running++
		if hp.local {
			j.vlogf("started rank %d on %s, pid %d", rs.rank, rs.host, t.Pid())
		} else {
			j.vlogf("started rank %d on %s", rs.rank, rs.host)
		}
		go func() { j.exits <- t.Wait() }()
	}

	j.loop(sigc)
	signal.Stop(sigc) // from now on a signal ends mpirun at once

	reports := j.reports()
	m.Close()
	if j.ssh != nil {
		j.ssh.Close()
	}
	endOutput()

	status := 0
	c := j.cause
	if len(j.lostOrder) > 0 {
		for _, lh := range j.lostOrder {
			reason, hint := j.ssh.lostReason(lh.host)
			out.Printf(proc.Stderr, "mpirun: error: lost host %s (%s): %s", lh.host.name, rankList(lh.ranks), reason)
			out.Printf(proc.Stderr, "mpirun: hint: %s", hint)
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
			out.Printf(proc.Stderr, "mpirun: %s", c.msg)
		}
		if c.hint != "" {
			out.Printf(proc.Stderr, "mpirun: hint: %s", c.hint)
		}
	}
	if cfg.verbose {
		if b := backends(reports); b != "" {
			j.vlogf("DSM fault backend: %s", b)
		}
	}
	// The table is printed with -summary, and whenever a rank reported
	// something with World.Report.
	if cfg.summary || reported(reports) {
		if err := j.writeSummary(reports, stderr); err != nil {
			out.Printf(proc.Stderr, "mpirun: error: write the summary: %v", err)
			if status == 0 {
				status = 1
			}
		}
	}
	return status
}

// connect sets up the remote hosts, reporting every failure. A signal
// cancels it. ok is false when the job cannot start; status is then mpirun's
// exit status.
func (j *job) connect(hosts []*hostPlan, lines chan<- proc.Line, sigc <-chan os.Signal) (status int, ok bool) {
	// The agents' sessions live as long as this context: it is cancelled
	// only on failure here, or by ssh.Close after the job.
	ctx, cancel := context.WithCancel(context.Background())
	j.ssh.cancel = cancel
	done := make(chan []hostFailure, 1)
	go func() { done <- j.ssh.connect(ctx, hosts, lines) }()
	var sig syscall.Signal
	var fails []hostFailure
wait:
	for {
		select {
		case fails = <-done:
			break wait
		case s := <-sigc:
			if sig == 0 {
				sig = s.(syscall.Signal)
				j.out.Printf(proc.Stderr, "mpirun: %s: giving up on connecting to the hosts", proc.SignalName(sig))
				cancel()
			}
		}
	}
	if sig != 0 {
		if len(fails) == 0 {
			j.ssh.Close() // set up just before the signal won
		}
		return 128 + int(sig), false
	}
	if len(fails) == 0 {
		return 0, true
	}
	for _, f := range fails {
		if ctx.Err() != nil && errors.Is(f.err, context.Canceled) {
			continue
		}
		msg := strings.TrimPrefix(f.err.Error(), "remote: ")
		if !strings.Contains(msg, f.host.name) {
			msg = f.host.name + ": " + msg
		}
		j.out.Printf(proc.Stderr, "mpirun: error: %s", msg)
		if f.hint != "" {
			j.out.Printf(proc.Stderr, "mpirun: hint: %s", f.hint)
		} else if h := remote.Hint(f.err); h != "" {
			j.out.Printf(proc.Stderr, "mpirun: hint: %s", h)
		}
	}
	if len(fails) < len(hosts) {
		j.vlogf("no rank was started: %d of %d host%s could not be set up", len(fails), len(hosts), plural(len(hosts)))
	}
	return 1, false
}

func ipList(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// loop waits for every started rank to end, stopping the job on the first
// failure, a signal, the timeout or a rendezvous error.
func (j *job) loop(sigc <-chan os.Signal) {
	var timeoutC <-chan time.Time
	if j.cfg.timeout > 0 {
		t := time.NewTimer(j.cfg.timeout)
		defer t.Stop()
		timeoutC = t.C
	}
	defer func() {
		if j.grace != nil {
			j.grace.Stop()
		}
		if j.abort != nil {
			j.abort.Stop()
		}
	}()
	rdvErr := j.master.Err()
	for j.running > 0 {
		select {
		case e := <-j.exits:
			rs := j.ranks[e.Rank]
			rs.exit, rs.done = e, true
			j.running--
			switch {
			case errors.Is(e.Err, remote.ErrAgentGone):
				j.vlogf("rank %d on %s: %v", rs.rank, rs.host, e.Err)
				j.hostLost(rs)
			case e.Err != nil && e.Pid == 0:
				why := e.Err.Error()
				var ae *remote.AgentError
				if errors.As(e.Err, &ae) {
					why = ae.Msg // without the host, named here already
				}
				j.vlogf("rank %d on %s could not be started: %s", rs.rank, rs.host, why)
				j.stop(&stopCause{status: 1, msg: fmt.Sprintf("error: could not start rank %d on %s: %s", rs.rank, rs.host, why)})
			default:
				j.vlogf("%s %s", rs.who(j.multiHost), e)
				if e.Failed() {
					j.stop(&stopCause{status: e.Status(), msg: rs.who(j.multiHost) + " " + e.String(), rankFailed: true})
				}
			}
		case s := <-sigc:
			j.onSignal(s.(syscall.Signal))
		case <-timeoutC:
			var still []string
			for _, rs := range j.ranks {
				if rs.t != nil && !rs.done {
					still = append(still, fmt.Sprint(rs.rank))
				}
			}
			j.tellWhere()
			j.stop(&stopCause{
				status: 124,
				msg:    fmt.Sprintf("error: job timed out after %v; rank%s %s still running", j.cfg.timeout, plural(len(still)), strings.Join(still, ", ")),
				hint:   "raise -timeout if the job needs longer, or find out where those ranks wait",
			})
		case err := <-rdvErr:
			rdvErr = nil
			joined := 0
			for _, r := range j.master.Reports() {
				if r.Joined {
					joined++
				}
			}
			if joined == 0 {
				// A program that does not use dsmexec (hostname, a
				// script) never reports: that is not an error.
				j.vlogf("no rank reported to the master within %v; treating the program as one that does not use dsmexec", j.cfg.rdvTimeout)
				continue
			}
			j.stop(&stopCause{
				status: 1,
				msg:    "error: " + err.Error(),
				hint:   fmt.Sprintf("those ranks did not call rank.Init or cannot reach the master at %s; raise -rendezvous-timeout if they start slowly", j.master.Addr()),
			})
		case <-j.graceC:
			j.graceC = nil
			j.vlogf("grace of %v over: sending SIGKILL", j.cfg.grace)
			j.signalAll(syscall.SIGKILL)
			if j.ssh != nil {
				j.abort = time.NewTimer(abortAfter)
				j.abortC = j.abort.C
			}
		case <-j.abortC:
			// Hosts that did not report their ranks' ends even after
			// SIGKILL (keepalives would notice a dead one sooner): their
			// ranks are lost, their agents stop them on their own.
			j.abortC = nil
			j.vlogf("some hosts did not report their ranks' exits %v after SIGKILL: closing the connections", abortAfter)
			j.ssh.abort()
		}
	}
}

// abortAfter is how long after SIGKILL mpirun waits for remote exits.
const abortAfter = 5 * time.Second

// hostLost records a rank whose host's connection ended first, and stops
// the job: the rank's peers cannot go on without it.
func (j *job) hostLost(rs *rankState) {
	hp := j.plan.host(rs.rank)
	lh := j.lost[hp]
	if lh == nil {
		lh = &lostHost{host: hp}
		j.lost[hp] = lh
		j.lostOrder = append(j.lostOrder, lh)
	}
	lh.ranks = append(lh.ranks, rs.rank)
	j.stop(&stopCause{status: 1}) // the message names the lost hosts at the end
}

// onSignal handles SIGINT, SIGTERM or SIGHUP sent to mpirun: the first stops
// the job, a second one while it stops kills the ranks at once.
func (j *job) onSignal(sig syscall.Signal) {
	if j.stopping {
		j.out.Printf(proc.Stderr, "mpirun: %s again: killing the ranks", proc.SignalName(sig))
		j.signalAll(syscall.SIGKILL)
		return
	}
	j.out.Printf(proc.Stderr, "mpirun: %s: stopping %d rank%s (SIGTERM, then SIGKILL after %v)", proc.SignalName(sig), j.running, plural(j.running), j.cfg.grace)
	j.stop(&stopCause{status: 128 + int(sig)})
}

// stop records why the job ends (the first cause wins) and sends SIGTERM to
// every running rank, SIGKILL after the grace period.
func (j *job) stop(c *stopCause) {
	if j.cause == nil {
		j.cause = c
	}
	if j.stopping {
		return
	}
	j.stopping = true
	if j.running > 0 {
		j.vlogf("stopping: SIGTERM to %d rank%s", j.running, plural(j.running))
	}
	j.signalAll(syscall.SIGTERM)
	j.grace = time.NewTimer(j.cfg.grace)
	j.graceC = j.grace.C
}

func (j *job) signalAll(sig syscall.Signal) {
	sent := map[any]bool{} // remote ranks are signalled once per host
	for _, rs := range j.ranks {
		if rs.t == nil || rs.done {
			continue
		}
		if g, ok := rs.t.(interface{ signalGroup() any }); ok {
			if sent[g.signalGroup()] {
				continue
			}
			sent[g.signalGroup()] = true
		}
		if err := rs.t.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			j.out.Printf(proc.Stderr, "mpirun: warning: signal %s: %v", rs.who(j.multiHost), err)
		}
	}
}

// tellWhere asks the ranks still running which dsmexec call they wait in
// and prints it: a job that timed out is usually a deadlock, and this says
// which ranks wait for which.
func (j *job) tellWhere() {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	j.master.Where(ctx)
	reps := j.master.Reports()
	for _, rs := range j.ranks {
		if rs.t == nil || rs.done || rs.rank >= len(reps) || !reps[rs.rank].Joined {
			continue
		}
		if w := reps[rs.rank].Where; w != "" {
			j.out.Printf(proc.Stderr, "mpirun: %s was waiting in %s", rs.who(j.multiHost), w)
		} else {
			j.out.Printf(proc.Stderr, "mpirun: %s was not waiting in a dsmexec call (computing, or in a page fault)", rs.who(j.multiHost))
		}
	}
}

// reports returns what the ranks told the master. A rank that exited
// normally after finalizing sent its statistics just before; they may still
// be in flight, so wait a little (bounded) for the master to read them.
func (j *job) reports() []rendezvous.Report {
	deadline := time.Now().Add(time.Second)
	for {
		reps := j.master.Reports()
		pending := false
		for i, rep := range reps {
			if i < len(j.ranks) && rep.Joined && !rep.Finalized && j.ranks[i].done && !j.ranks[i].exit.Failed() {
				pending = true
			}
		}
		if !pending || time.Now().After(deadline) {
			return reps
		}
		time.Sleep(2 * time.Millisecond)
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

// placement describes where ranks run: "ranks 0-3 on localhost".
func placement(hosts []string) string {
	var parts []string
	for i := 0; i < len(hosts); {
		k := i
		for k+1 < len(hosts) && hosts[k+1] == hosts[i] {
			k++
		}
		if k == i {
			parts = append(parts, fmt.Sprintf("rank %d on %s", i, hosts[i]))
		} else {
			parts = append(parts, fmt.Sprintf("ranks %d-%d on %s", i, k, hosts[i]))
		}
		i = k + 1
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
