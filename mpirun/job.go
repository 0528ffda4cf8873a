package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/output"
	"github.com/dsmexec/dsmexec/internal/proc"
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
// signal to mpirun, the timeout, a rendezvous error.
type stopCause struct {
	status int
	msg    string // printed after the job, "mpirun: " prepended; "" for none
	hint   string
}

type job struct {
	cfg       *config
	out       *output.Writer
	launcher  launcher
	master    *rendezvous.Master
	multiHost bool

	ranks   []*rankState
	exits   chan proc.Exit
	running int

	cause    *stopCause
	stopping bool             // SIGTERM sent
	graceC   <-chan time.Time // SIGKILL when it fires
	grace    *time.Timer
}

func (j *job) vlogf(format string, args ...any) {
	if j.cfg.verbose {
		j.out.Printf(proc.Stderr, "mpirun: "+format, args...)
	}
}

func runJob(cfg *config, stdin, stdout, stderr *os.File) int {
	n := cfg.np
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = "localhost"
	}
	j := &job{cfg: cfg, launcher: localLauncher{}, exits: make(chan proc.Exit, n)}
	var tagHosts []string
	if j.multiHost {
		tagHosts = hosts
	}
	out, err := output.New(output.Options{Stdout: stdout, Stderr: stderr, Size: n, Tag: cfg.tagOutput, Hosts: tagHosts, Dir: cfg.outputDir})
	if err != nil {
		return report(stderr, failErr("", "%v", err))
	}
	j.out = out
	defer out.Close()

	tok := make([]byte, 32)
	rand.Read(tok) // never fails (crypto/rand panics rather)
	token := hex.EncodeToString(tok)
	m, err := rendezvous.Listen("127.0.0.1:0", rendezvous.Config{Size: n, Token: tok, Timeout: cfg.rdvTimeout, Logf: j.vlogf})
	if err != nil {
		return report(stderr, failErr("", "start the master socket: %v", err))
	}
	j.master = m
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Serve(ctx)

	j.vlogf("program %s, %d rank%s", cfg.path, n, plural(n))
	j.vlogf("placement: %s (launcher %s)", placement(hosts), j.launcher.Name())
	j.vlogf("master listening on %s, job token %s…", m.Addr(), token[:4])
	j.vlogf("shared region %d bytes; rendezvous timeout %v; grace %v", cfg.dsmSize, cfg.rdvTimeout, cfg.grace)

	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)

	lines := make(chan proc.Line, 1024)
	outDone := make(chan error, 1)
	go func() { outDone <- out.Run(lines) }()

	base := baseEnv(os.Environ(), cfg.env)
	in0 := rankStdin(stdin)
	j.ranks = make([]*rankState, n)
	for r := range j.ranks {
		j.ranks[r] = &rankState{rank: r, host: hosts[r]}
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
		spec := proc.Spec{
			Rank: rs.rank,
			Path: cfg.path,
			Args: cfg.args,
			Env:  launchEnv(base, rs.rank, n, m.Addr(), token, rs.host, cfg.dsmSize),
		}
		if rs.rank == 0 {
			spec.Stdin = in0
		}
		t, err := j.launcher.Start(rs.host, spec, lines)
		if err != nil {
			j.stop(&stopCause{status: 1, msg: fmt.Sprintf("error: start rank %d on %s: %v", rs.rank, rs.host, err)})
			break
		}
		rs.t = t
		j.running++
		j.vlogf("started rank %d on %s, pid %d", rs.rank, rs.host, t.Pid())
		go func() { j.exits <- t.Wait() }()
	}

	j.loop(sigc)
	signal.Stop(sigc) // from now on a signal ends mpirun at once

	close(lines)
	<-outDone
	var reports []rendezvous.Report
	if cfg.summary || cfg.verbose {
		reports = j.reports()
	}
	m.Close()
	j.launcher.Close()

	status := 0
	if c := j.cause; c != nil {
		status = c.status
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
	if cfg.summary {
		if err := j.writeSummary(reports, stderr); err != nil {
			out.Printf(proc.Stderr, "mpirun: error: write the summary: %v", err)
			if status == 0 {
				status = 1
			}
		}
	}
	return status
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
	}()
	rdvErr := j.master.Err()
	for j.running > 0 {
		select {
		case e := <-j.exits:
			rs := j.ranks[e.Rank]
			rs.exit, rs.done = e, true
			j.running--
			j.vlogf("%s %s", rs.who(j.multiHost), e)
			if e.Failed() && j.cause == nil {
				j.stop(&stopCause{status: e.Status(), msg: rs.who(j.multiHost) + " " + e.String()})
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
		}
	}
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
	for _, rs := range j.ranks {
		if rs.t == nil || rs.done {
			continue
		}
		if err := rs.t.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			j.out.Printf(proc.Stderr, "mpirun: warning: signal %s: %v", rs.who(j.multiHost), err)
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
