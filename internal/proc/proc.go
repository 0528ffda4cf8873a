package proc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// MaxLine is the longest Text a Line carries. Longer lines are cut into
// pieces of MaxLine bytes, all but the last marked Partial.
const MaxLine = 1 << 20

// drainDelay bounds how long Wait waits for the output pipes to close after
// the rank itself has exited (a background process of the rank may still
// hold them), first before killing the rank's process group and again
// before giving up on the pipes.
const drainDelay = time.Second

// ErrNotSupported is returned by Start on systems other than Linux.
var ErrNotSupported = errors.New("proc: not supported on this system")

// Spec describes the process of one rank.
type Spec struct {
	Rank int    // copied into every Line and the Exit
	Path string // program to execute; also its argv[0]. Not looked up in PATH: pass an absolute path
	Args []string
	// Env is the complete environment ("NAME=value"); nil means the
	// launcher's own environment.
	Env []string
	Dir string // working directory; "" means the launcher's
	// Stdin is the rank's standard input; nil means /dev/null. An *os.File
	// is handed to the child as it is; any other reader is copied into a
	// pipe by a goroutine that stops at the reader's EOF or error or at the
	// first write after the rank exited (it may stay blocked in a Read of
	// Stdin until that Read returns).
	Stdin io.Reader
}

// Stream names the output stream a Line came from.
type Stream uint8

// The two output streams of a rank.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return fmt.Sprintf("Stream(%d)", uint8(s))
}

// Line is one line of a rank's output.
type Line struct {
	Rank   int
	Stream Stream
	Text   []byte // without the newline; owned by the receiver
	// Partial: no newline followed Text in the stream, because the stream
	// ended there or because the line was longer than MaxLine and continues
	// in the next Line of this stream.
	Partial bool
	// More: the line was longer than MaxLine and continues in the next Line
	// of this stream (Partial is then true too). Every Line with More is
	// followed, on its stream, by one without: the stream's last Line never
	// has More.
	More bool
}

// Exit describes how a rank ended.
type Exit struct {
	Rank, Pid int
	Code      int            // exit code, -1 if killed by a signal
	Signal    syscall.Signal // the signal that killed it, 0 if it exited
	Wall      time.Duration  // from Start to the exit
	User, Sys time.Duration  // CPU time of the rank and its waited-for children
	MaxRSS    int64          // peak resident set size in bytes
	Err       error          // non-nil if the rank could not be waited for
}

// Failed reports whether the rank exited non-zero, was killed by a signal,
// or could not be waited for.
func (e Exit) Failed() bool { return e.Err != nil || e.Code != 0 || e.Signal != 0 }

// Status is the shell-style status: the exit code, or 128+signal.
func (e Exit) Status() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	if e.Code < 0 || e.Err != nil {
		return 1
	}
	return e.Code
}

// String says how the rank ended, for messages: "exited with status 3",
// "killed by signal SIGKILL".
func (e Exit) String() string {
	switch {
	case e.Err != nil:
		return "could not be waited for: " + e.Err.Error()
	case e.Signal != 0:
		return "killed by signal " + SignalName(e.Signal)
	default:
		return fmt.Sprintf("exited with status %d", e.Code)
	}
}

// SignalName returns the conventional name of sig, such as "SIGKILL".
func SignalName(sig syscall.Signal) string {
	if n := signalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// Process is a started rank.
type Process struct {
	rank  int
	pid   int
	start time.Time

	mu     sync.Mutex // guards reaped against Signal
	reaped bool       // the pid is gone: never signal its group again

	exited *os.File // the child's pidfd (Linux), readable once it exits; nil: none

	done chan struct{} // closed when exit is set
	exit Exit
}

// Pid returns the process id of the rank, which is also its process group id.
func (p *Process) Pid() int { return p.pid }

// Wait waits until the rank has exited and every line of its output has been
// sent, and returns how it ended. It may be called from several goroutines.
func (p *Process) Wait() Exit {
	<-p.done
	return p.exit
}
