package proc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forker owns the one OS thread every child is forked from. PR_SET_PDEATHSIG
// fires when the thread that forked the child ends, not when the process
// ends; this thread is locked and its goroutine never returns, so the
// signal fires exactly when the launcher dies.
var forker struct {
	once sync.Once
	reqs chan forkReq
}

type forkReq struct {
	argv0 string
	argv  []string
	attr  *syscall.ProcAttr
	reply chan forkRes
}

type forkRes struct {
	pid int
	err error
}

func forkExec(argv0 string, argv []string, attr *syscall.ProcAttr) (int, error) {
	forker.once.Do(func() {
		forker.reqs = make(chan forkReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for r := range forker.reqs {
				pid, err := syscall.ForkExec(r.argv0, r.argv, r.attr)
				r.reply <- forkRes{pid, err}
			}
		}()
	})
	reply := make(chan forkRes, 1)
	forker.reqs <- forkReq{argv0, argv, attr, reply}
	r := <-reply
	return r.pid, r.err
}

func signalName(sig syscall.Signal) string { return unix.SignalName(sig) }

// Start starts the rank described by spec in its own process group, with
// SIGKILL as its parent-death signal, and sends its output to lines (nil
// discards it). The caller must keep receiving from lines until Wait returns.
func Start(spec Spec, lines chan<- Line) (*Process, error) {
	var closeAfter []*os.File // parent's copies of the child's ends
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	fail := func(what string, err error) (*Process, error) {
		return nil, fmt.Errorf("proc: %s for rank %d: %w", what, spec.Rank, err)
	}

	var stdin *os.File
	var stdinW *os.File // our end of the stdin pipe, if we copy
	switch in := spec.Stdin.(type) {
	case nil:
		f, err := os.Open(os.DevNull)
		if err != nil {
			return fail("open "+os.DevNull, err)
		}
		stdin = f
		closeAfter = append(closeAfter, f)
	case *os.File:
		stdin = in
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return fail("create stdin pipe", err)
		}
		stdin, stdinW = r, w
		closeAfter = append(closeAfter, r)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return fail("create stdout pipe", err)
	}
	closeAfter = append(closeAfter, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		if stdinW != nil {
			stdinW.Close()
		}
		return fail("create stderr pipe", err)
	}
	closeAfter = append(closeAfter, errW)

	pidfd := -1 // set by the fork where the kernel has pidfds (5.3+)
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	attr := &syscall.ProcAttr{
		Dir: spec.Dir,
		Env: env,
		// Fd puts these descriptors in blocking mode, which is what the
		// child expects of its standard streams.
		Files: []uintptr{stdin.Fd(), outW.Fd(), errW.Fd()},
		Sys: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
			PidFD:     &pidfd,
		},
	}
	argv := append([]string{spec.Path}, spec.Args...)
	start := time.Now()
	pid, err := forkExec(spec.Path, argv, attr)
	runtime.KeepAlive(stdin)
	runtime.KeepAlive(outW)
	runtime.KeepAlive(errW)
	if err != nil {
		outR.Close()
		errR.Close()
		if stdinW != nil {
			stdinW.Close()
		}
		return nil, fmt.Errorf("proc: start rank %d (%s): %w", spec.Rank, spec.Path, err)
	}

	p := &Process{rank: spec.Rank, pid: pid, start: start, done: make(chan struct{}), exited: pidFile(pidfd)}
	var readers sync.WaitGroup
	readers.Add(2)
	go readLines(&readers, outR, spec.Rank, Stdout, lines)
	go readLines(&readers, errR, spec.Rank, Stderr, lines)
	if stdinW != nil {
		go func() {
			io.Copy(stdinW, spec.Stdin)
			stdinW.Close()
		}()
	}
	go p.waitExit(&readers, []*os.File{outR, errR}, stdinW)
	return p, nil
}

// Signal sends sig to the rank's whole process group. After the rank has
// been reaped it returns os.ErrProcessDone.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return os.ErrProcessDone
	}
	// The group exists at least as long as the leader is not reaped (a
	// zombie stays a member), so -pid cannot name a recycled group here.
	err := syscall.Kill(-p.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	if err != nil {
		return fmt.Errorf("proc: signal rank %d (pid %d) with %s: %w", p.rank, p.pid, SignalName(sig), err)
	}
	return nil
}

// waitExit waits for the leader to exit without reaping it (so its pid and
// process group id cannot be reused meanwhile), lets the output drain, kills
// whatever is left of the group, and only then reaps the leader.
func (p *Process) waitExit(readers *sync.WaitGroup, pipes []*os.File, stdinW *os.File) {
	werr := p.waitExited()
	wall := time.Since(p.start)
	if stdinW != nil {
		stdinW.Close() // the copier's next write fails and it stops
	}

	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	waitFor := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-drained:
			return true
		case <-t.C:
			return false
		}
	}
	if !waitFor(drainDelay) {
		// Someone still holds the pipes: a leftover of the rank. Kill the
		// group; the pipes then close unless a process outside it has them.
		p.Signal(syscall.SIGKILL)
		if !waitFor(drainDelay) {
			for _, f := range pipes {
				f.SetReadDeadline(time.Now())
			}
			<-drained
		}
	}
	// No process of a rank outlives it, even one that closed its output.
	p.Signal(syscall.SIGKILL)

	var ws unix.WaitStatus
	var ru unix.Rusage
	p.mu.Lock()
	for {
		_, err := unix.Wait4(p.pid, &ws, 0, &ru)
		if err != unix.EINTR {
			if werr == nil && err != nil {
				werr = err
			}
			break
		}
	}
	p.reaped = true
	p.mu.Unlock()
	if p.exited != nil {
		p.exited.Close()
	}

	e := Exit{Rank: p.rank, Pid: p.pid, Wall: wall}
	switch {
	case werr != nil:
		e.Code = -1
		e.Err = fmt.Errorf("proc: wait for rank %d (pid %d): %w", p.rank, p.pid, werr)
	case ws.Signaled():
		e.Code = -1
		e.Signal = syscall.Signal(ws.Signal())
	default:
		e.Code = ws.ExitStatus()
	}
	if werr == nil {
		e.User = time.Duration(ru.Utime.Nano())
		e.Sys = time.Duration(ru.Stime.Nano())
		e.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
	}
	p.exit = e
	close(p.done)
}

// pidFile makes the pidfd of a new child pollable: the netpoller then waits
// for its exit, where a blocking waitid would hold an OS thread per rank
// for the whole job. nil when there is none.
func pidFile(fd int) *os.File {
	if fd < 0 {
		return nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), "pidfd")
}

// waitExited returns once the rank's process has exited, without reaping
// it (WNOWAIT).
func (p *Process) waitExited() error {
	var werr error
	if p.exited != nil {
		if rc, err := p.exited.SyscallConn(); err == nil {
			// Read waits in the netpoller until the pidfd is readable (the
			// process exited) and the func says it is done.
			err = rc.Read(func(fd uintptr) bool {
				for {
					var info unix.Siginfo // Signo stays 0 while it has not exited
					werr = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
					if werr != unix.EINTR {
						return werr != nil || info.Signo != 0
					}
				}
			})
			if err == nil && werr != unix.EINVAL { // EINVAL: no P_PIDFD (kernel < 5.4)
				return werr
			}
		}
	}
	for {
		var info unix.Siginfo
		werr = unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if werr != unix.EINTR {
			return werr
		}
	}
}

// readLines splits one output stream into Lines until EOF, a read error or
// the read deadline waitExit sets when it gives up on the pipe.
func readLines(wg *sync.WaitGroup, f *os.File, rank int, stream Stream, lines chan<- Line) {
	defer wg.Done()
	defer f.Close()
	emit := func(text []byte, partial, more bool) {
		if lines != nil {
			lines <- Line{Rank: rank, Stream: stream, Text: text, Partial: partial, More: more}
		}
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var long []byte // a line longer than br's buffer, being assembled
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			text := chunk[:len(chunk)-1]
			if long == nil {
				emit(append([]byte(nil), text...), false, false)
				continue
			}
			long = append(long, text...)
			long = emitLong(long, emit)
			emit(long, false, false)
			long = nil
		case err == bufio.ErrBufferFull:
			long = append(long, chunk...)
			long = emitLong(long, emit)
		default: // EOF, or the pipe was given up on
			if len(chunk) > 0 || len(long) > 0 {
				long = append(long, chunk...)
				long = emitLong(long, emit)
				emit(long, true, false)
			}
			return
		}
	}
}

// emitLong sends MaxLine-byte pieces while more than MaxLine bytes are held
// (keeping at least one byte back, so a line of exactly k*MaxLine bytes does
// not end with an empty piece) and returns the rest in a fresh slice.
func emitLong(long []byte, emit func(text []byte, partial, more bool)) []byte {
	if len(long) <= MaxLine {
		return long
	}
	for len(long) > MaxLine {
		emit(long[:MaxLine:MaxLine], true, true)
		long = long[MaxLine:]
	}
	return append(make([]byte, 0, len(long)+64<<10), long...)
}
