package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/kballard/go-shellquote"
	"golang.org/x/crypto/ssh"
)

// Session is a command running on a host.
type Session struct {
	Stdin  io.WriteCloser // the command's standard input
	Stdout io.Reader      // its standard output; must be read
	Stderr io.Reader      // its standard error; must be read

	host *Host
	cmd  string
	sess *ssh.Session
	stop func() bool // detaches the ctx watcher
}

// Start runs argv on the host, quoted for a POSIX shell with go-shellquote
// (the remote sshd runs it through the user's login shell). The environment
// is not passed with SSH "env" requests, which sshd refuses by default: put
// variables in argv ("env", "NAME=value", ...) or send them over stdin.
// Cancelling ctx closes the session.
func (h *Host) Start(ctx context.Context, argv []string) (*Session, error) {
	if len(argv) == 0 {
		return nil, errors.New("remote: start: empty command")
	}
	cmd := shellquote.Join(argv...)
	s, err := h.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("remote: open session on %s: %w", h.Name, err)
	}
	rs := &Session{host: h, cmd: cmd, sess: s}
	if rs.Stdin, err = s.StdinPipe(); err == nil {
		var out, errOut io.Reader
		if out, err = s.StdoutPipe(); err == nil {
			if errOut, err = s.StderrPipe(); err == nil {
				rs.Stdout, rs.Stderr = out, errOut
			}
		}
	}
	if err == nil {
		err = s.Start(cmd)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("remote: run %q on %s: %w", cmd, h.Name, err)
	}
	rs.stop = context.AfterFunc(ctx, func() { s.Close() })
	return rs, nil
}

// Wait waits for the command to exit. A non-zero exit is an
// *ssh.ExitError; a connection lost first is an *ssh.ExitMissingError or
// io.EOF. Both are wrapped with the command and host.
func (s *Session) Wait() error {
	err := s.sess.Wait()
	s.stop()
	if err != nil {
		return fmt.Errorf("remote: %q on %s: %w", s.cmd, s.host.Name, err)
	}
	return nil
}

// Close ends the session (the remote command sees its stdin close and,
// under OpenSSH, its output pipes break). Safe to call more than once.
func (s *Session) Close() error {
	s.stop()
	err := s.sess.Close()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// Output runs argv on the host and returns its standard output. A failure
// includes the end of its standard error.
func (h *Host) Output(ctx context.Context, argv []string) ([]byte, error) {
	s, err := h.Start(ctx, argv)
	if err != nil {
		return nil, err
	}
	s.Stdin.Close()
	var out bytes.Buffer
	errOut := &tailBuffer{max: 4 << 10}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); io.Copy(errOut, s.Stderr) }()
	_, cerr := io.Copy(&out, io.LimitReader(s.Stdout, 16<<20))
	wg.Wait()
	werr := s.Wait()
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("remote: run %q on %s: %w", s.cmd, h.Name, ctx.Err())
		}
		if msg := strings.TrimSpace(errOut.String()); msg != "" {
			return out.Bytes(), fmt.Errorf("%w: %s", werr, msg)
		}
		return out.Bytes(), werr
	}
	return out.Bytes(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Agent is an agent running on a host over an SSH session, with the Client
// that drives it.
type Agent struct {
	*Client
	sess   *Session
	stderr *tailBuffer
	errWG  sync.WaitGroup
}

// StartAgent runs argv (a program that calls RunAgent, such as the
// installed mpirun with its agent flag) on the host and connects a Client
// to it; see NewClient for lines and exits. It fails if no Hello arrives
// within the dial timeout, with the agent's standard error in the message
// (a missing program, a wrong architecture). Cancelling ctx closes the
// session: the agent then stops its ranks, but their exits may be lost; to
// stop a job cleanly call CloseInput and wait for Done first.
func (h *Host) StartAgent(ctx context.Context, argv []string, lines chan<- proc.Line, exits chan<- proc.Exit) (*Agent, error) {
	if err := h.verifyInstalled(ctx, argv); err != nil {
		return nil, err
	}
	s, err := h.Start(ctx, argv)
	if err != nil {
		return nil, err
	}
	a := &Agent{sess: s, stderr: &tailBuffer{max: 8 << 10}}
	a.errWG.Add(1)
	go func() { defer a.errWG.Done(); io.Copy(a.stderr, s.Stderr) }()

	timeout := h.timeout
	t := time.AfterFunc(timeout, func() { s.Close() })
	c, err := NewClient(h.Name, s.Stdout, s.Stdin, lines, exits)
	timedOut := !t.Stop()
	if err != nil {
		s.Close()
		s.Wait()
		a.errWG.Wait()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("remote: start agent on %s: %w", h.Name, ctx.Err())
		}
		if timedOut {
			err = fmt.Errorf("remote: agent on %s: no Hello within %v", h.Name, timeout)
		}
		if msg := strings.TrimSpace(a.stderr.String()); msg != "" {
			return nil, fmt.Errorf("%w; its stderr: %s", err, msg)
		}
		return nil, err
	}
	c.sumOf = h.installedSum
	a.Client = c
	return a, nil
}

// Stderr returns the last bytes the agent wrote to its standard error.
func (a *Agent) Stderr() string { return a.stderr.String() }

// Wait waits until the agent's stream has ended (every Exit delivered) and
// its session has closed, and returns the stream's error (wrapping the
// session's too, if any), or the session's exit status with the agent's
// stderr.
func (a *Agent) Wait() error {
	<-a.Client.Done()
	werr := a.sess.Wait()
	a.errWG.Wait()
	if err := a.Client.Err(); err != nil {
		if werr != nil {
			// Both: the exit status (e.g. killed by a signal) says why
			// the stream ended.
			return fmt.Errorf("%w (%w)", err, werr)
		}
		return err
	}
	if werr != nil {
		if msg := strings.TrimSpace(a.stderr.String()); msg != "" {
			return fmt.Errorf("%w; its stderr: %s", werr, msg)
		}
		return werr
	}
	return nil
}

// Close stops delivering and closes the session at once.
func (a *Agent) Close() error {
	a.Client.Close()
	return a.sess.Close()
}
