package remote

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// ErrAgentGone is wrapped by the Exit.Err of ranks whose agent connection
// ended before they reported their exit.
var ErrAgentGone = errors.New("remote: lost the agent")

// ErrClientClosed is returned by Client methods after Close.
var ErrClientClosed = errors.New("remote: agent client closed")

// stdinChunk is the most data one Stdin frame carries.
const stdinChunk = 32 << 10

// Client is mpirun's side of one agent: it sends Start, Signal and Stdin
// frames and turns the agent's frames into proc.Line and proc.Exit values,
// so remote ranks look like local ones.
//
// For each rank, every Line is sent on the lines channel before its Exit is
// sent on the exits channel, and each started rank gets exactly one Exit:
// if the stream ends first, the client sends one whose Err wraps
// ErrAgentGone and names the host. The caller must keep receiving from both
// channels until Done is closed (or call Close).
type Client struct {
	host  string
	hello Hello
	lines chan<- proc.Line
	exits chan<- proc.Exit

	wmu sync.Mutex // serialises frames on w
	w   io.WriteCloser

	mu      sync.Mutex
	pending map[int]int // started ranks without an Exit yet: rank → pid (0 until Started)
	used    map[int]bool
	inEOF   bool // CloseInput was called

	closeOnce sync.Once
	closed    chan struct{} // Close was called: stop delivering
	done      chan struct{} // the reader has finished and delivered every Exit
	err       error         // why the stream ended, if not cleanly; set before done

	// relayTo receives the relay's frames (nil until Relay).
	relayTo func(rendezvous.RelayFrame)

	// sumOf, if set, gives the SHA-256 of an installed program by remote
	// path, for Start frames that do not carry one.
	sumOf func(path string) string
}

// NewClient reads the agent's Hello from r and starts delivering its frames
// to lines and exits. host names the agent in messages. w carries frames to
// the agent; closing it (CloseInput) tells the agent to stop. NewClient
// blocks until the Hello arrives: close r (or what feeds it) to give up.
func NewClient(host string, r io.Reader, w io.WriteCloser, lines chan<- proc.Line, exits chan<- proc.Exit) (*Client, error) {
	rec := &prefixRecorder{r: r, max: 256}
	br := bufio.NewReaderSize(rec, 64<<10)
	f, err := readFrame(br, 4096)
	var hello Hello
	if err == nil && f.typ != frameHello {
		err = fmt.Errorf("%w: frame type %#x before Hello", ErrBadFrame, f.typ)
	}
	if err == nil {
		hello, err = decodeHello(f.payload)
	}
	if err != nil {
		got := rec.buf.Bytes()
		if len(got) == 0 {
			return nil, fmt.Errorf("remote: agent on %s: no Hello: %w", host, err)
		}
		return nil, fmt.Errorf("remote: agent on %s: no Hello (%v); it sent %q: is a login script (~/.bashrc, ~/.profile) printing text on non-interactive shells?", host, err, got)
	}
	if hello.Version != AgentVersion {
		return nil, fmt.Errorf("remote: agent on %s speaks protocol version %d, this mpirun speaks %d: use the same dsmexec version on every host", host, hello.Version, AgentVersion)
	}
	c := &Client{
		host:    host,
		hello:   hello,
		lines:   lines,
		exits:   exits,
		w:       w,
		pending: map[int]int{},
		used:    map[int]bool{},
		closed:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	go c.read(br)
	return c, nil
}

// prefixRecorder keeps the first bytes read through it, for error messages.
type prefixRecorder struct {
	r   io.Reader
	max int
	buf bytes.Buffer
}

func (p *prefixRecorder) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if room := p.max - p.buf.Len(); room > 0 {
		p.buf.Write(b[:min(n, room)])
	}
	return n, err
}

// Hello returns what the agent said about itself.
func (c *Client) Hello() Hello { return c.hello }

// Done is closed when the agent's stream has ended and every started rank's
// Exit has been delivered (after Close: when the stream has ended).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the stream ended when it did not end cleanly (the agent
// reported an error, the connection broke, a frame was malformed). Valid
// after Done is closed.
func (c *Client) Err() error {
	<-c.done
	return c.err
}

// Pid returns the pid of a started rank, once the agent reported it.
func (c *Client) Pid(rank int) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pid, ok := c.pending[rank]
	return pid, ok && pid != 0
}

func (c *Client) send(typ byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.closed:
		return ErrClientClosed
	default:
	}
	c.mu.Lock()
	eof := c.inEOF
	c.mu.Unlock()
	if eof {
		return fmt.Errorf("remote: send to agent on %s: input already closed", c.host)
	}
	// One Write per frame: the SSH channel forwards it as it is.
	b := make([]byte, 0, 5+len(payload))
	buf := bytes.NewBuffer(b)
	if err := writeFrame(buf, typ, payload); err != nil {
		return err
	}
	if _, err := c.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("remote: send to agent on %s: %w", c.host, err)
	}
	return nil
}

// Start asks the agent to start one rank. Its lines and its Exit arrive on
// the channels; a rank that cannot be started gets an Exit with Err set.
// For an Agent, a Path that its Host installed gets that file's SHA-256 in
// spec.SHA256 (unless set), so the agent runs only the bytes mpirun copied.
func (c *Client) Start(spec RankSpec) error {
	c.mu.Lock()
	if c.used[spec.Rank] {
		c.mu.Unlock()
		return fmt.Errorf("remote: rank %d already started on %s", spec.Rank, c.host)
	}
	if c.inEOF {
		c.mu.Unlock()
		return fmt.Errorf("remote: start rank %d on %s: input already closed", spec.Rank, c.host)
	}
	select {
	case <-c.done:
		c.mu.Unlock()
		return fmt.Errorf("remote: start rank %d on %s: %w", spec.Rank, c.host, ErrAgentGone)
	default:
	}
	c.used[spec.Rank] = true
	c.pending[spec.Rank] = 0
	c.mu.Unlock()
	if spec.SHA256 == "" && c.sumOf != nil {
		spec.SHA256 = c.sumOf(spec.Path)
	}
	if err := c.send(frameStart, encodeStart(spec)); err != nil {
		// The reader will report the rank as lost when the stream ends.
		return err
	}
	return nil
}

// Relay asks the agent to accept the rendezvous of its ranks itself
// (package rendezvous, Relay) and to start them with DSMEXEC_MASTER naming
// its relay; call it before the first Start. The relay's frames go to
// deliver, on the client's reader goroutine: it must not block for long
// (rendezvous.Port.Deliver does not).
func (c *Client) Relay(spec RelaySpec, deliver func(rendezvous.RelayFrame)) error {
	c.mu.Lock()
	c.relayTo = deliver
	c.mu.Unlock()
	return c.send(frameRelay, encodeRelay(spec))
}

// Rdv sends a rendezvous frame to the agent's relay.
func (c *Client) Rdv(f rendezvous.RelayFrame) error {
	return c.send(frameRdvDown, encodeRdv(f))
}

// Signal sends sig to every running rank of the agent.
func (c *Client) Signal(sig syscall.Signal) error {
	return c.send(frameSignal, encodeSignal(sig))
}

// Stdin returns a writer that feeds a rank's standard input (the rank must
// have been started with RankSpec.Stdin). Closing it closes the rank's
// stdin.
func (c *Client) Stdin(rank int) io.WriteCloser { return &stdinWriter{c: c, rank: rank} }

type stdinWriter struct {
	c      *Client
	rank   int
	once   sync.Once
	closed bool
}

func (s *stdinWriter) Write(p []byte) (int, error) {
	if s.closed {
		return 0, io.ErrClosedPipe
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), stdinChunk)
		if err := s.c.send(frameStdin, encodeStdin(s.rank, p[:k])); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func (s *stdinWriter) Close() error {
	var err error
	s.once.Do(func() {
		s.closed = true
		err = s.c.send(frameStdin, encodeStdin(s.rank, nil))
	})
	return err
}

// StartPings sends a Ping frame now and then every interval until the
// stream ends or CloseInput. Each Ping tells the agent to stop its ranks if
// it hears nothing from mpirun for idle, which should be several intervals.
func (c *Client) StartPings(interval, idle time.Duration) {
	payload := encodePing(idle)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if err := c.send(framePing, payload); err != nil {
				return
			}
			select {
			case <-t.C:
			case <-c.done:
				return
			case <-c.closed:
				return
			}
		}
	}()
}

// CloseInput closes the stream to the agent: the agent stops every rank
// still running (SIGTERM, then SIGKILL after its grace period), reports
// their exits and ends. Keep receiving until Done.
func (c *Client) CloseInput() error {
	c.mu.Lock()
	c.inEOF = true
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Close()
}

// Close stops delivering frames and closes the stream to the agent, which
// then ends its own stream, so the reader ends. Ranks not yet reported get
// no Exit. Safe to call more than once.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.CloseInput()
	})
	return err
}

// read delivers the agent's frames until the stream ends.
func (c *Client) read(br *bufio.Reader) {
	defer close(c.done)
	var agentErr string
	err := func() error {
		for {
			f, err := readFrame(br, MaxFrame)
			if err != nil {
				return err
			}
			if err := c.dispatch(f, &agentErr); err != nil {
				return err
			}
		}
	}()
	switch {
	case agentErr != "":
		c.err = &AgentError{Host: c.host, Msg: "agent failed: " + agentErr}
	case err == io.EOF:
		c.mu.Lock()
		lost := len(c.pending)
		c.mu.Unlock()
		if lost > 0 {
			c.err = fmt.Errorf("remote: agent on %s ended with %d ranks unreported: %w", c.host, lost, ErrAgentGone)
		}
	case errors.Is(err, errClosedByUs):
		return
	default:
		c.err = fmt.Errorf("remote: read from agent on %s: %w", c.host, err)
	}
	// Every started rank gets an Exit.
	c.mu.Lock()
	lost := make(map[int]int, len(c.pending))
	for r, pid := range c.pending {
		lost[r] = pid
	}
	c.pending = map[int]int{}
	c.mu.Unlock()
	cause := ""
	if c.err != nil && !errors.Is(c.err, ErrAgentGone) {
		cause = ": " + c.err.Error()
	}
	for r, pid := range lost {
		e := proc.Exit{Rank: r, Pid: pid, Code: -1, Err: fmt.Errorf("%w on %s before rank %d ended%s", ErrAgentGone, c.host, r, cause)}
		select {
		case c.exits <- e:
		case <-c.closed:
			return
		}
	}
}

// errClosedByUs ends the reader after Close.
var errClosedByUs = errors.New("remote: closed")

func (c *Client) dispatch(f frame, agentErr *string) error {
	switch f.typ {
	case frameStarted:
		s, err := decodeStarted(f.payload)
		if err != nil {
			return err
		}
		c.mu.Lock()
		_, ok := c.pending[s.Rank]
		if ok {
			c.pending[s.Rank] = s.Pid
		}
		c.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: Started for rank %d, which is not pending", ErrBadFrame, s.Rank)
		}
	case frameLine:
		l, err := decodeLine(f.payload)
		if err != nil {
			return err
		}
		c.mu.Lock()
		_, ok := c.pending[l.Rank]
		c.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: Line for rank %d, which is not pending", ErrBadFrame, l.Rank)
		}
		select {
		case c.lines <- l:
		case <-c.closed:
			return errClosedByUs
		}
	case frameExit:
		e, err := decodeExit(f.payload)
		if err != nil {
			return err
		}
		c.mu.Lock()
		_, ok := c.pending[e.Rank]
		delete(c.pending, e.Rank)
		c.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: Exit for rank %d, which is not pending", ErrBadFrame, e.Rank)
		}
		var ae *AgentError
		if errors.As(e.Err, &ae) {
			ae.Host = c.host
		}
		select {
		case c.exits <- e:
		case <-c.closed:
			return errClosedByUs
		}
	case frameRdvUp:
		rf, err := decodeRdv(f.payload, frameRdvUp)
		if err != nil {
			return err
		}
		c.mu.Lock()
		deliver := c.relayTo
		c.mu.Unlock()
		if deliver == nil {
			return fmt.Errorf("%w: Rdv before Relay", ErrBadFrame)
		}
		deliver(rf)
	case frameError:
		msg, err := decodeError(f.payload)
		if err != nil {
			return err
		}
		*agentErr = msg
	default:
		return fmt.Errorf("%w: unknown frame type %#x", ErrBadFrame, f.typ)
	}
	return nil
}
