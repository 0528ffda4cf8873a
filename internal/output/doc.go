// Package output prints the lines of every rank of a job on the launcher's
// standard output and standard error.
//
// Each line is written whole, prefixed with its rank ("[rank 3] text", or
// "[rank 3@node2] text" when the job spans several hosts), and a write never
// holds part of a line, so lines of different ranks are never interleaved or
// spliced, unlike launchers that tag each read() chunk. One goroutine (Run)
// formats lines into a buffer and writes it out whenever the channel has
// nothing more to give, so a burst of output costs a few large writes.
//
// With a directory, every rank also gets D/rank.N.out and D/rank.N.err,
// byte-for-byte copies of what it wrote (a last line without a newline stays
// without one).
//
// # Usage
//
//	w, err := output.New(output.Options{Stdout: os.Stdout, Stderr: os.Stderr, Size: n, Tag: true})
//	if err != nil {
//		return err
//	}
//	done := make(chan error, 1)
//	go func() { done <- w.Run(lines) }() // until lines is closed
//	... start ranks with proc.Start(spec, lines), wait for them, close(lines) ...
//	err = <-done
//	w.Printf(proc.Stderr, "mpirun: rank %d failed", r) // the launcher's own lines
//	w.Close()
package output
