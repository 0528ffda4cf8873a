//go:build !linux

package proc

import "syscall"

// Start returns ErrNotSupported: proc needs Linux process groups and
// parent-death signals.
func Start(spec Spec, lines chan<- Line) (*Process, error) {
	return nil, ErrNotSupported
}

// Signal returns ErrNotSupported.
func (p *Process) Signal(sig syscall.Signal) error { return ErrNotSupported }

func signalName(sig syscall.Signal) string { return "" }
