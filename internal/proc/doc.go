// Package proc starts the process of one rank and turns its standard output
// and standard error into whole lines.
//
// It is used by mpirun for ranks forked on the local machine and by the
// per-host agent for ranks on remote machines, so it knows nothing about
// jobs, tags or hosts: a Spec goes in, Lines and one Exit come out.
//
// Every rank runs in its own process group (so a signal reaches whatever the
// rank started, and a Ctrl-C typed at mpirun's terminal does not reach the
// rank directly) and is killed with SIGKILL if the launcher dies. Linux ties
// that "parent death signal" to the thread that forked the child, not to the
// process, and the Go runtime may fork from any thread and end threads at
// will; proc therefore forks every child from one goroutine locked to an OS
// thread that lives as long as the launcher.
//
// # Lines
//
// Output is split on '\n'; the newline is not part of Line.Text. Lines are
// never merged. A line longer than MaxLine bytes is delivered as several
// Lines of at most MaxLine bytes; all but the last carry Partial, meaning
// "no newline followed this text in the stream", and More, meaning "the
// line goes on in the next Line of this stream" (so a consumer can pass a
// long line through whole, with one tag at its start). The last bytes of a stream
// that ended without a newline are delivered, also marked Partial, when the
// stream closes. Writing Text, plus a newline when Partial is false, for each
// Line of a stream reproduces the stream byte for byte.
//
// # Exit
//
// Wait returns once the rank has exited and its output pipes are closed. A
// process the rank left behind in its group is killed with SIGKILL when the
// rank exits (no process of a rank outlives it); if something still holds
// the pipes, Wait waits at most a second before that kill and a second
// after it before it gives up on the pipes. The rank's pid is reaped only
// then, so Signal never reaches a recycled process group.
//
// Descendants that leave the rank's process group (setsid, or a daemon that
// double-forks) are out of reach of Signal, and the parent-death signal
// only covers the rank itself: a rank whose launcher is SIGKILLed dies, its
// own children do not unless they watch their parent.
//
// # Usage
//
//	lines := make(chan proc.Line, 256)
//	p, err := proc.Start(proc.Spec{Rank: 0, Path: "/bin/echo", Args: []string{"hi"}}, lines)
//	if err != nil {
//		return err
//	}
//	go func() { e := p.Wait(); close(lines); _ = e }()
//	for l := range lines {
//		fmt.Printf("[rank %d] %s\n", l.Rank, l.Text)
//	}
//
// The consumer must keep reading lines until Wait returns: a rank whose
// lines are not read blocks in write(2), as it would on a full pipe.
package proc
