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
// A line longer than proc.MaxLine (1 MiB) arrives in pieces (Line.More) and
// is passed through whole, never split: tagged once, its pieces written as
// they come, and every other line (other ranks', either stream, the
// launcher's Printf) held until it ends. If it holds back more than 64 MiB
// or for more than 2 s, it is ended with a newline there, the held lines
// are written, and its rest starts with "[rank N] (continued) ". A long
// line whose rest never comes (a lost host) is ended when Run's channel
// closes. The rank files always get the exact bytes.
//
// With a directory, every rank also gets D/rank.N.out and D/rank.N.err,
// byte-for-byte copies of what it wrote (a last line without a newline stays
// without one).
//
// The directory and the files are checked so that another user cannot make
// the launcher write where they choose (a symbolic link planted as
// rank.0.out in a shared directory) or read what it writes:
//
//   - a missing directory is created (0755 less the umask); an existing one
//     must be owned by the caller or by root, and if everyone may write to
//     it, it must have the sticky bit (as /tmp has);
//   - files are opened relative to the directory's descriptor with
//     O_NOFOLLOW (a symbolic link is an error, never followed) and without
//     blocking (a FIFO is an error, never waited on); a missing file is
//     created 0600 less the umask; an existing one must be a regular file
//     of the caller's with a single link, and is truncated only then.
//
// Every refusal is an error naming the path, returned by New before any
// rank starts.
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
