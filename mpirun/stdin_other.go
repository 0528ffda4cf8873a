//go:build !linux

package main

import (
	"io"
	"os"
)

// rankStdin hands rank 0 mpirun's standard input as it is.
func rankStdin(stdin *os.File) io.Reader {
	if stdin == nil {
		return nil
	}
	return stdin
}

// isTerminal: progress lines are shown on Linux only.
func isTerminal(f *os.File) bool { return false }
