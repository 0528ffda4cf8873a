package main

import (
	"syscall"

	"github.com/dsmexec/dsmexec/internal/proc"
)

// A launcher starts ranks on the hosts it serves. The local one forks them
// here; a remote one (SSH, through the per-host agent) implements the same
// methods, so the job does not care where a rank runs.
type launcher interface {
	// Name is what -v calls it ("local", "ssh").
	Name() string
	// Start starts one rank on host. Its output goes to lines until its
	// task's Wait returns.
	Start(host *hostPlan, spec proc.Spec, lines chan<- proc.Line) (task, error)
	// Close releases what the launcher holds (connections), after every
	// task's Wait has returned.
	Close() error
}

// A task is one started rank, wherever it runs.
type task interface {
	Pid() int
	// Signal sends sig to the rank's process group.
	Signal(sig syscall.Signal) error
	// Wait returns how the rank ended, after all its output was sent.
	Wait() proc.Exit
}

// localLauncher forks ranks on this machine.
type localLauncher struct{}

func (localLauncher) Name() string { return "local" }

func (localLauncher) Start(host *hostPlan, spec proc.Spec, lines chan<- proc.Line) (task, error) {
	p, err := proc.Start(spec, lines)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (localLauncher) Close() error { return nil }

var (
	_ launcher = localLauncher{}
	_ launcher = (*sshLauncher)(nil)
)
