package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/dsmexec/dsmexec/internal/proc"
)

// A launcher is how the job reaches its ranks, wherever they run: the local
// one forks them here, the SSH one asks each host's agent, and hostLaunchers
// routes each rank to the one that serves its host. The driver uses nothing
// else of them.
type launcher interface {
	// Start starts one rank. Its output goes to the launcher's lines until
	// Wait returns. pid is 0 where it is not known yet (remote ranks).
	Start(spec proc.Spec) (pid int, err error)
	// Signal sends sig to the ranks' process groups. A host's agent signals
	// all of its ranks at once.
	Signal(ranks []int, sig syscall.Signal) error
	// Wait returns how a started rank ended, after all its output was sent.
	Wait(rank int) proc.Exit
	// Close releases what the launcher holds (connections, agents), after
	// every Wait has returned.
	Close() error
	// Lost says why a rank whose Wait reported remote.ErrAgentGone was
	// lost, and what to check; valid after Close.
	Lost(rank int) (reason, hint string)
}

// localLauncher forks ranks on this machine.
type localLauncher struct {
	lines chan<- proc.Line
	mu    sync.Mutex
	procs map[int]*proc.Process
}

func newLocalLauncher(lines chan<- proc.Line) *localLauncher {
	return &localLauncher{lines: lines, procs: map[int]*proc.Process{}}
}

func (l *localLauncher) Start(spec proc.Spec) (int, error) {
	p, err := proc.Start(spec, l.lines)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.procs[spec.Rank] = p
	l.mu.Unlock()
	return p.Pid(), nil
}

func (l *localLauncher) proc(rank int) *proc.Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.procs[rank]
}

func (l *localLauncher) Signal(ranks []int, sig syscall.Signal) error {
	var errs []error
	for _, r := range ranks {
		p := l.proc(r)
		if p == nil {
			continue
		}
		if err := p.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("rank %d (pid %d): %w", r, p.Pid(), err))
		}
	}
	return errors.Join(errs...)
}

func (l *localLauncher) Wait(rank int) proc.Exit { return l.proc(rank).Wait() }

func (l *localLauncher) Close() error { return nil }

func (l *localLauncher) Lost(int) (string, string) { return "", "" }

// hostLaunchers sends each rank to the launcher of its host: local, or ssh
// (nil when every rank runs here).
type hostLaunchers struct {
	plan  *plan
	local *localLauncher
	ssh   *sshLauncher
}

func (h *hostLaunchers) of(rank int) launcher {
	if h.plan.host(rank).local || h.ssh == nil {
		return h.local
	}
	return h.ssh
}

func (h *hostLaunchers) Start(spec proc.Spec) (int, error) { return h.of(spec.Rank).Start(spec) }

func (h *hostLaunchers) Signal(ranks []int, sig syscall.Signal) error {
	var local, remote []int
	for _, r := range ranks {
		if h.of(r) == launcher(h.local) {
			local = append(local, r)
		} else {
			remote = append(remote, r)
		}
	}
	err := h.local.Signal(local, sig)
	if len(remote) > 0 {
		err = errors.Join(err, h.ssh.Signal(remote, sig))
	}
	return err
}

func (h *hostLaunchers) Wait(rank int) proc.Exit { return h.of(rank).Wait(rank) }

func (h *hostLaunchers) Close() error {
	if h.ssh != nil {
		return h.ssh.Close()
	}
	return nil
}

func (h *hostLaunchers) Lost(rank int) (string, string) { return h.of(rank).Lost(rank) }

var (
	_ launcher = (*localLauncher)(nil)
	_ launcher = (*sshLauncher)(nil)
	_ launcher = (*hostLaunchers)(nil)
)
