package remote

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/limits"
	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// AgentGrace is how long the agent waits after SIGTERM before it sends
// SIGKILL to the ranks it stops.
var AgentGrace = 2 * time.Second

// stdinQueue is how many Stdin frames may wait for a slow rank before the
// agent stops reading its input (and so applies back-pressure to mpirun).
const stdinQueue = 64

// RunAgent runs the agent side of the protocol: it reads frames from in
// (the SSH session's stdin), starts ranks with package proc and writes their
// lines and exits to out. It returns when in ends (or fails) and every rank
// it started has exited: at the end of in it stops the ranks still running
// with SIGTERM, then SIGKILL after AgentGrace. The error is nil for a clean
// end of in.
//
// Once mpirun has sent a Ping, silence for the idle time the Ping names
// counts as the end of in, so a host cut off from mpirun does not keep its
// ranks: RunAgent then stops them and returns an error wrapping
// ErrMpirunSilent without waiting for their reports to be written, and the
// process should exit.
func RunAgent(in io.Reader, out io.Writer) error {
	// When out is the process's stdout and mpirun is gone, a write would
	// kill the agent with SIGPIPE (Go's rule for fds 1 and 2) before it
	// stops its ranks gently. Catching the signal turns it into EPIPE. A
	// caught signal, unlike an ignored one, is reset for the ranks at exec.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)

	a := &agent{
		w:      bufio.NewWriterSize(out, 64<<10),
		lines:  make(chan proc.Line), // unbuffered: see forward
		events: make(chan frame, 16),
		ranks:  map[int]*agentRank{},
	}
	host, _ := os.Hostname()
	hello := Hello{Version: AgentVersion, Pid: os.Getpid(), Hostname: host, GOARCH: runtime.GOARCH}
	// The ranks inherit the raised soft limit (see limits.Raise); mpirun
	// checks the job against the hard one before starting any rank.
	hello.NoFile, _ = limits.Raise()
	if lo, hi, err := limits.PortRange(); err == nil {
		hello.Ports = hi - lo + 1
	}
	a.send(frameHello, encodeHello(hello))
	fwdDone := make(chan struct{})
	go func() { a.forward(); close(fwdDone) }()

	readErr := a.read(in)
	a.stopAll()
	if a.relay != nil {
		a.relay.Close() // the ranks that are left learn mpirun is gone
	}
	if errors.Is(readErr, ErrMpirunSilent) {
		// mpirun is unreachable, so out may block for good (a full SSH
		// window on a dead link): the ranks are stopped, do not wait for
		// their reports to be written. The caller's process should exit.
		return fmt.Errorf("remote: agent: %w", readErr)
	}
	if a.relay != nil {
		a.relay.Wait() // no more frames for events
	}
	a.waiters.Wait()
	close(a.events) // nothing sends after the waiters are done
	<-fwdDone
	if readErr != nil {
		return fmt.Errorf("remote: agent: %w", readErr)
	}
	return nil
}

// ErrMpirunSilent is returned by RunAgent when mpirun asked for pings
// (the Ping frame) and then sent nothing for the idle time it gave: the
// network to mpirun is down, or mpirun is stuck. The agent has stopped its
// ranks.
var ErrMpirunSilent = errors.New("no word from mpirun")

type agent struct {
	w      *bufio.Writer // owned by forward (and by RunAgent before it starts)
	wErr   error         // first write error; later frames are dropped
	lines  chan proc.Line
	events chan frame

	// relay, once mpirun sent a Relay frame, accepts the rendezvous of
	// this host's ranks (used by the reader's goroutine only).
	relay *rendezvous.Relay

	mu      sync.Mutex
	ranks   map[int]*agentRank // running or exited, by rank
	waiters sync.WaitGroup     // one per started rank, until its Exit is queued
	sums    map[fileID]string  // SHA-256 of programs already hashed
}

// fileID identifies one version of a file: a write, a chmod or a rename
// over it changes its ctime, which no user can set back.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64
}

type agentRank struct {
	p      *proc.Process
	exited bool
	// stdin is nil unless RankSpec.Stdin. Data goes through the queue in
	// order; a nil slice in the queue is mpirun's end of input. stdinDone
	// is closed when the rank exited or is being stopped: queued data is
	// then dropped.
	stdin     chan []byte
	stdinDone chan struct{}
	stdinEOF  bool // mpirun closed the rank's stdin
}

// send writes one frame directly; only before forward starts.
func (a *agent) send(typ byte, payload []byte) {
	if a.wErr == nil {
		a.wErr = writeFrame(a.w, typ, payload)
	}
	if a.wErr == nil {
		a.wErr = a.w.Flush()
	}
}

// forward is the only writer of out once started. Lines arrive on an
// unbuffered channel: proc's Wait returns only after the rank's last line
// was handed over, and forward writes a line before it takes the next
// item, so a rank's Exit (queued after Wait) always follows its lines.
// After a write error it keeps receiving, so ranks never block on output.
func (a *agent) forward() {
	lines, events := a.lines, a.events
	for lines != nil || events != nil {
		var typ byte
		var payload []byte
		select {
		case l := <-lines:
			typ, payload = frameLine, encodeLine(l)
		case f, ok := <-events:
			if !ok {
				events = nil
				lines = nil // every rank has exited: no more lines
				continue
			}
			typ, payload = f.typ, f.payload
		}
		if a.wErr == nil {
			a.wErr = writeFrame(a.w, typ, payload)
		}
		// Flush when nothing else is ready, so bursts go out in big writes
		// and a lone line goes out at once.
		if a.wErr == nil && len(events) == 0 {
			a.wErr = a.w.Flush()
		}
	}
	if a.wErr == nil {
		a.wErr = a.w.Flush()
	}
}

// event queues a frame for forward.
func (a *agent) event(typ byte, payload []byte) { a.events <- frame{typ, payload} }

// read handles mpirun's frames until in ends. Once a Ping arrived, it also
// gives up when no frame arrives for the Ping's idle time.
func (a *agent) read(in io.Reader) error {
	type result struct {
		f   frame
		err error
	}
	// Frames are read by a goroutine so that the idle timer can end the
	// wait; when read gives up that way, the goroutine stays blocked in
	// Read until in ends (the agent's process exits first).
	frames := make(chan result)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		br := bufio.NewReaderSize(in, 64<<10)
		for {
			f, err := readFrame(br, MaxFrame)
			select {
			case frames <- result{f, err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var idle time.Duration // 0 until the first Ping
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case r := <-frames:
			if r.err == io.EOF {
				return nil
			}
			err := r.err
			if err == nil && r.f.typ == framePing {
				idle, err = decodePing(r.f.payload)
			} else if err == nil {
				err = a.handle(r.f)
			}
			if err != nil {
				a.event(frameError, encodeError(err.Error()))
				return err
			}
			if idle > 0 {
				timer.Reset(idle)
			}
		case <-timer.C:
			err := fmt.Errorf("%w for %v: stopping the ranks", ErrMpirunSilent, idle)
			select { // best effort: the way to mpirun is probably blocked
			case a.events <- frame{frameError, encodeError(err.Error())}:
			default:
			}
			return err
		}
	}
}

func (a *agent) handle(f frame) error {
	switch f.typ {
	case frameStart:
		spec, err := decodeStart(f.payload)
		if err != nil {
			return err
		}
		return a.start(spec)
	case frameSignal:
		sig, err := decodeSignal(f.payload)
		if err != nil {
			return err
		}
		a.signalAll(sig)
		return nil
	case frameStdin:
		rank, data, err := decodeStdin(f.payload)
		if err != nil {
			return err
		}
		return a.stdin(rank, data)
	case frameRelay:
		spec, err := decodeRelay(f.payload)
		if err != nil {
			return err
		}
		return a.startRelay(spec)
	case frameRdvDown:
		rf, err := decodeRdv(f.payload, frameRdvDown)
		if err != nil {
			return err
		}
		if a.relay == nil {
			return fmt.Errorf("%w: Rdv before Relay", ErrBadFrame)
		}
		a.relay.Deliver(rf)
		return nil
	}
	return fmt.Errorf("%w: unknown frame type %#x", ErrBadFrame, f.typ)
}

// startRelay opens the relay for this host's ranks: on this host's
// address on the way to mpirun, which the ranks then advertise to their
// peers.
func (a *agent) startRelay(spec RelaySpec) error {
	if a.relay != nil {
		return fmt.Errorf("%w: second Relay frame", ErrBadFrame)
	}
	ip, err := localIPToward(spec.Reach)
	if err != nil {
		return err
	}
	r, err := rendezvous.ListenRelay(net.JoinHostPort(ip, "0"), rendezvous.RelayConfig{
		Size: spec.Size, Token: spec.Token, Ranks: spec.Ranks,
		Up: func(f rendezvous.RelayFrame) error {
			a.event(frameRdvUp, encodeRdv(f))
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("remote: agent: %w", err)
	}
	a.relay = r
	if relayOpened != nil {
		relayOpened(spec, r.Addr())
	}
	go r.Serve()
	return nil
}

// relayOpened, when set (only by the scale simulation, scale_test.go),
// hears the address of every relay an agent opens: the simulation's ranks
// are goroutines, not processes the agent starts with DSMEXEC_MASTER.
var relayOpened func(spec RelaySpec, addr string)

// localIPToward returns this host's address on the route to reach
// (connecting a UDP socket sends nothing); 127.0.0.1 without reach.
func localIPToward(reach string) (string, error) {
	if reach == "" {
		return "127.0.0.1", nil
	}
	c, err := net.Dial("udp", net.JoinHostPort(reach, "9"))
	if err != nil {
		return "", fmt.Errorf("remote: agent: find this host's address toward mpirun at %s: %w", reach, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String(), nil
}

// setEnv returns env with NAME=value set, replacing any NAME entries.
func setEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if n, _, _ := strings.Cut(kv, "="); n != name {
			out = append(out, kv)
		}
	}
	return append(out, name+"="+value)
}

// masterEnv is the variable that tells a rank where its master is: with
// a relay, the relay.
const masterEnv = "DSMEXEC_MASTER"

func (a *agent) start(spec RankSpec) error {
	if a.relay != nil {
		spec.Env = setEnv(spec.Env, masterEnv, a.relay.Addr())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.ranks[spec.Rank]; dup {
		return fmt.Errorf("rank %d started twice", spec.Rank)
	}
	r := &agentRank{}
	ps := proc.Spec{Rank: spec.Rank, Path: spec.Path, Args: spec.Args, Env: mergeEnv(os.Environ(), spec.Env), Dir: spec.Dir}
	if spec.Stdin {
		pr, pw := io.Pipe()
		r.stdin, r.stdinDone = make(chan []byte, stdinQueue), make(chan struct{})
		ps.Stdin = pr
		go copyStdin(pw, pr, r.stdin, r.stdinDone)
	}
	a.ranks[spec.Rank] = r
	var p *proc.Process
	err := a.verify(spec)
	if err == nil {
		p, err = proc.Start(ps, a.lines)
		if why := limits.Explain(err); why != "" {
			err = fmt.Errorf("%w (the agent: %s)", err, why)
		}
	}
	if err != nil {
		r.exited = true
		r.stopStdin()
		a.waiters.Add(1)
		go func() { // through events, never blocking the reader on forward
			defer a.waiters.Done()
			a.event(frameExit, encodeExit(proc.Exit{Rank: spec.Rank, Code: -1, Err: err}))
		}()
		return nil
	}
	r.p = p
	a.waiters.Add(1)
	go func() {
		defer a.waiters.Done()
		a.event(frameStarted, encodeStarted(Started{Rank: spec.Rank, Pid: p.Pid()}))
		e := p.Wait()
		a.mu.Lock()
		r.exited = true
		r.stopStdin()
		a.mu.Unlock()
		a.event(frameExit, encodeExit(e))
	}()
	return nil
}

// copyStdin feeds queued Stdin data into the rank's stdin pipe until
// mpirun's end of input (a nil slice), a write error, or done.
func copyStdin(pw *io.PipeWriter, pr *io.PipeReader, queue <-chan []byte, done <-chan struct{}) {
	defer pw.Close()
	for {
		select {
		case b := <-queue:
			if b == nil {
				return
			}
			if _, err := pw.Write(b); err != nil {
				return
			}
		case <-done:
			pr.Close() // unblocks proc's copier, and a Write above
			return
		}
	}
}

// stopStdin drops the rank's pending stdin; called with a.mu held.
func (r *agentRank) stopStdin() {
	if r.stdinDone != nil {
		close(r.stdinDone)
		r.stdinDone = nil
	}
}

func (a *agent) stdin(rank int, data []byte) error {
	a.mu.Lock()
	r := a.ranks[rank]
	if r == nil {
		a.mu.Unlock()
		return fmt.Errorf("stdin for rank %d, which was not started", rank)
	}
	if r.stdin == nil || r.stdinDone == nil || r.stdinEOF {
		a.mu.Unlock()
		return nil // not asked for, closed, or the rank exited: drop it
	}
	queue, done := r.stdin, r.stdinDone
	if len(data) == 0 {
		r.stdinEOF = true
		data = nil
	} else {
		data = append([]byte(nil), data...)
	}
	a.mu.Unlock()
	select { // blocks while the queue is full: back-pressure on mpirun
	case queue <- data:
	case <-done:
	}
	return nil
}

func (a *agent) signalAll(sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.ranks {
		if r.p != nil && !r.exited {
			r.p.Signal(sig)
		}
	}
}

// stopAll ends every running rank: SIGCONT and SIGTERM, then SIGKILL after
// AgentGrace for those still running.
func (a *agent) stopAll() {
	a.mu.Lock()
	var running []*proc.Process
	for _, r := range a.ranks {
		r.stopStdin()
		if r.p != nil && !r.exited {
			running = append(running, r.p)
		}
	}
	a.mu.Unlock()
	if len(running) == 0 {
		return
	}
	for _, p := range running {
		p.Signal(syscall.SIGCONT)
		p.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() {
		for _, p := range running {
			p.Wait()
		}
		close(done)
	}()
	t := time.NewTimer(AgentGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for _, p := range running {
			p.Signal(syscall.SIGKILL)
		}
	}
}

// mergeEnv returns base with the NAME=value entries of over added,
// replacing entries of base with the same name.
func mergeEnv(base, over []string) []string {
	if len(over) == 0 {
		return base
	}
	skip := map[string]bool{}
	for _, kv := range over {
		name, _, _ := strings.Cut(kv, "=")
		skip[name] = true
	}
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !skip[name] {
			out = append(out, kv)
		}
	}
	return append(out, over...)
}

// verify checks that the program of spec has the content hash mpirun gave
// (when it gave one): a cached program replaced on this host by a file of
// the same size is refused, never executed. Called with a.mu held.
func (a *agent) verify(spec RankSpec) error {
	if spec.SHA256 == "" {
		return nil
	}
	p := spec.Path
	if !filepath.IsAbs(p) && spec.Dir != "" {
		p = filepath.Join(spec.Dir, p)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("remote: agent: check %s before running it: %w", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("remote: agent: check %s before running it: %w", p, err)
	}
	id, canCache := fileIDOf(fi)
	sum, ok := a.sums[id]
	if !ok || !canCache {
		hs := sha256.New()
		if _, err := io.Copy(hs, f); err != nil {
			return fmt.Errorf("remote: agent: hash %s before running it: %w", p, err)
		}
		sum = hex.EncodeToString(hs.Sum(nil))
		if a.sums == nil {
			a.sums = map[fileID]string{}
		}
		a.sums[id] = sum
	}
	if sum != spec.SHA256 {
		return fmt.Errorf("remote: agent: %s: %w (sha256 %.16s…, want %.16s…): it was changed after mpirun copied it; refusing to run it (remove %s to let mpirun copy it again)",
			p, ErrCacheTampered, sum, spec.SHA256, filepath.Dir(p))
	}
	return nil
}
