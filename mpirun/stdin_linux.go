package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// rankStdin is what rank 0 reads. A file or pipe is handed over as it is. A
// terminal is copied through a pipe, because rank 0 runs in its own process
// group and would be stopped (SIGTTIN) reading the terminal itself; when
// mpirun is not in the terminal's foreground group it would be stopped too,
// so rank 0 gets /dev/null then.
func rankStdin(stdin *os.File) io.Reader {
	if stdin == nil {
		return nil
	}
	fd := int(stdin.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return stdin
	}
	if pg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err != nil || pg != unix.Getpgrp() {
		return nil
	}
	return struct{ io.Reader }{stdin} // not an *os.File: proc copies it
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
