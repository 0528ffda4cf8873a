package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/output"
	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/remote"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
	"golang.org/x/crypto/ssh"
)

// How a lost host is noticed, on both sides.
const (
	// sshKeepAlive: a host that misses three keepalives in a row (no
	// answer for 3 s) is disconnected and its ranks reported lost.
	sshKeepAlive = time.Second
	// agentPing, agentIdle: mpirun pings each agent every second; an agent
	// that hears nothing for agentIdle stops its ranks, so a host cut off
	// from the network does not keep them.
	agentPing = time.Second
	agentIdle = 15 * time.Second
	// agentWait bounds the wait for agents to end once the job is over.
	agentWait = 3 * time.Second
)

// sshLauncher starts ranks on other machines through one agent per host:
// the mpirun binary itself, copied into the host's cache and run in its
// agent mode over one SSH connection.
type sshLauncher struct {
	cfg   *config
	out   *output.Writer
	vlogf func(format string, args ...any)
	prog  *progress

	hosts  map[*hostPlan]*remoteHost
	order  []*remoteHost
	cancel context.CancelFunc // of the set-up context, which the agents' sessions live in

	mu     sync.Mutex
	giveUp *time.Timer // after SIGKILL: abandon hosts that do not answer
	closed bool
}

// abortAfter is how long after SIGKILL mpirun waits for remote exits.
const abortAfter = 5 * time.Second

// remoteHost is one connected host.
type remoteHost struct {
	plan  *hostPlan
	h     *remote.Host
	agent *remote.Agent // nil until set up
	// progPaths: each program of the job (its path here → its path on
	// that host)
	progPaths map[string]string
	localIP   net.IP // our address on the connection: the host reaches us there
	exits     chan proc.Exit
	dispatch  chan struct{} // closed when the dispatcher has delivered every Exit

	mu    sync.Mutex
	tasks map[int]*remoteTask

	waitErr error // how the agent's session ended, once Close waited for it
}

// hostFailure is a host that could not be set up.
type hostFailure struct {
	host *hostPlan
	err  error
	hint string
}

func newSSHLauncher(cfg *config, out *output.Writer, stderr *os.File, vlogf func(string, ...any)) *sshLauncher {
	return &sshLauncher{cfg: cfg, out: out, vlogf: vlogf, prog: newProgress(stderr), hosts: map[*hostPlan]*remoteHost{}}
}

// connect dials every host in parallel, then on each (in parallel) checks
// that the program can run there, installs the agent and the program in the
// host's cache and starts the agent, whose lines go to lines. Either every
// host is ready, or the failures are returned (and nothing is left open).
func (l *sshLauncher) connect(ctx context.Context, plans []*hostPlan, lines chan<- proc.Line) []hostFailure {
	if fails := l.dial(ctx, plans); len(fails) > 0 {
		l.Close()
		return fails
	}
	self, err := os.Executable()
	if err != nil {
		l.Close()
		return []hostFailure{{host: plans[0], err: fmt.Errorf("find mpirun's own executable, to install it as the agent: %w", err)}}
	}
	start := time.Now()
	setupErrs := make([]error, len(l.order))
	var wg sync.WaitGroup
	for i, rh := range l.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			setupErrs[i] = l.setup(ctx, rh, self, lines)
		}()
	}
	wg.Wait()
	l.prog.finish()
	var fails []hostFailure
	for i, err := range setupErrs {
		if err != nil {
			fails = append(fails, hostFailure{host: l.order[i].plan, err: err, hint: setupHint(err, l.order[i])})
		}
	}
	if len(fails) > 0 {
		l.Close()
		return fails
	}
	l.vlogf("set up %d host%s in %v", len(l.order), plural(len(l.order)), time.Since(start).Round(time.Millisecond))
	return nil
}

// dial connects to every host at once.
func (l *sshLauncher) dial(ctx context.Context, plans []*hostPlan) []hostFailure {
	opts := remote.Options{
		AcceptNew: l.cfg.acceptNew,
		Timeout:   l.cfg.sshTimeout,
		KeepAlive: sshKeepAlive,
		Notef: func(format string, args ...any) {
			l.out.Printf(proc.Stderr, "mpirun: note: "+format, args...)
		},
		Progress: l.prog.update,
	}
	targets := make([]remote.Target, len(plans))
	for i, hp := range plans {
		targets[i] = remote.Target{User: hp.entry.User, Host: hp.entry.Host, Port: hp.entry.Port}
	}
	start := time.Now()
	conns, errs := remote.DialAll(ctx, targets, opts)
	var fails []hostFailure
	for i, hp := range plans {
		if errs[i] != nil {
			fails = append(fails, hostFailure{host: hp, err: errs[i]})
			continue
		}
		h := conns[i]
		rh := &remoteHost{plan: hp, h: h, exits: make(chan proc.Exit), dispatch: make(chan struct{}), tasks: map[int]*remoteTask{}}
		if a, ok := h.Client().LocalAddr().(*net.TCPAddr); ok {
			rh.localIP = a.IP
		}
		l.hosts[hp] = rh
		l.order = append(l.order, rh)
		l.vlogf("%s: connected to %s as %s (from %s)", hp.name, h.Addr(), h.User, rh.localIP)
	}
	if len(fails) == 0 {
		l.vlogf("connected to %d host%s in %v", len(plans), plural(len(plans)), time.Since(start).Round(time.Millisecond))
	}
	return fails
}

// setup prepares one connected host and starts its agent.
func (l *sshLauncher) setup(ctx context.Context, rh *remoteHost, self string, lines chan<- proc.Line) error {
	for _, a := range l.cfg.programs() {
		if !a.pathNotLocal {
			if err := rh.h.CheckRunnable(ctx, a.path); err != nil {
				return err
			}
		}
	}
	if err := rh.h.CheckRunnable(ctx, self); err != nil {
		return err // mpirun itself runs there, as the agent
	}
	agentPath, err := l.install(ctx, rh, self, "mpirun")
	if err != nil {
		return err
	}
	rh.progPaths = map[string]string{}
	for _, a := range l.cfg.programs() {
		path := a.path
		if l.cfg.noCopy {
			l.vlogf("%s: -no-copy: running %s as it is there", rh.plan.name, path)
		} else if path, err = l.install(ctx, rh, a.path, filepath.Base(a.path)); err != nil {
			return err
		}
		rh.progPaths[a.path] = path
	}
	a, err := rh.h.StartAgent(ctx, []string{agentPath, "-agent"}, lines, rh.exits)
	if err != nil {
		return err
	}
	rh.agent = a
	a.StartPings(agentPing, agentIdle)
	go rh.dispatchExits()
	hello := a.Hello()
	l.vlogf("%s: agent running, pid %d on %s (%s)", rh.plan.name, hello.Pid, hello.Hostname, hello.GOARCH)
	return nil
}

// relay makes each host's agent the rendezvous master of the host's ranks:
// it accepts them as mpirun's master would (same token, same frames), sends
// their joins up in one batch over the SSH channel, hands them the table
// when it comes down once, and relays the rest both ways. mpirun then holds
// one connection per host, not per rank, and the table crosses each
// host's link once.
func (l *sshLauncher) relay(m *rendezvous.Master, size int, token []byte) {
	for _, rh := range l.order {
		a := rh.agent
		port := m.Relay(rh.plan.name, a.Rdv)
		reach := ""
		if rh.localIP != nil {
			reach = rh.localIP.String()
		}
		if err := a.Relay(remote.RelaySpec{Size: size, Token: token, Ranks: rh.plan.ranks, Reach: reach}, port.Deliver); err != nil {
			// The agent is gone: starting its ranks fails, or they are
			// reported lost.
			l.vlogf("%s: relay: %v", rh.plan.name, err)
			continue
		}
		l.vlogf("%s: the agent relays the rendezvous of %d rank%s", rh.plan.name, len(rh.plan.ranks), plural(len(rh.plan.ranks)))
	}
}

// install copies a file into the host's cache unless it is there already.
func (l *sshLauncher) install(ctx context.Context, rh *remoteHost, local, name string) (string, error) {
	start := time.Now()
	path, copied, err := rh.h.Install(ctx, local, name)
	if err != nil {
		return "", err
	}
	if copied {
		size := int64(0)
		if st, err := os.Stat(local); err == nil {
			size = st.Size()
		}
		l.vlogf("%s: copied %s (%s) to %s in %v", rh.plan.name, name, bytesString(size), path, time.Since(start).Round(time.Millisecond))
	} else {
		l.vlogf("%s: %s found in the cache at %s", rh.plan.name, name, path)
	}
	return path, nil
}

// setupHint says what to do about a failed setup, where remote.Hint does
// not know.
func setupHint(err error, rh *remoteHost) string {
	if h := remote.Hint(err); h != "" {
		return h
	}
	if strings.Contains(err.Error(), "agent on") {
		return fmt.Sprintf("the agent is this mpirun, copied into ~/%s on %s; run it there by hand to see what fails: ssh %s <that path> -agent </dev/null",
			remote.CacheDir, rh.plan.name, rh.plan.entry.Key())
	}
	return ""
}

// localIPs returns our distinct addresses on the hosts' connections, in
// host order.
func (l *sshLauncher) localIPs() []net.IP {
	var ips []net.IP
	for _, rh := range l.order {
		seen := false
		for _, ip := range ips {
			if ip.Equal(rh.localIP) {
				seen = true
			}
		}
		if !seen && rh.localIP != nil {
			ips = append(ips, rh.localIP)
		}
	}
	return ips
}

// Start asks the rank's host's agent to start it: spec.Path is replaced by
// the program's path on the host, spec.Env is added to the agent's
// environment (the remote login environment), spec.Stdin is forwarded.
func (l *sshLauncher) Start(spec proc.Spec) (int, error) {
	hp := l.cfg.plan.host(spec.Rank)
	rh := l.hosts[hp]
	if rh == nil || rh.agent == nil {
		panic(fmt.Sprintf("mpirun: rank %d for host %s, which is not set up", spec.Rank, hp.name))
	}
	t := &remoteTask{rh: rh, rank: spec.Rank, done: make(chan struct{})}
	rh.mu.Lock()
	rh.tasks[spec.Rank] = t
	rh.mu.Unlock()
	err := rh.agent.Start(remote.RankSpec{Rank: spec.Rank, Path: rh.progPaths[spec.Path], Args: spec.Args, Env: spec.Env, Dir: spec.Dir, Stdin: spec.Stdin != nil})
	if err != nil {
		return 0, err
	}
	if spec.Stdin != nil {
		go func() {
			w := rh.agent.Stdin(spec.Rank)
			io.Copy(w, spec.Stdin) // ends at EOF, or when the agent is gone
			w.Close()
		}()
	}
	return 0, nil
}

// Signal sends sig to every rank of the hosts running ranks: the agent
// protocol signals all of a host's ranks at once. After SIGKILL, hosts that
// have not reported all their ranks' exits within abortAfter are given up
// on (keepalives would notice a dead one sooner): their connections are
// closed, their ranks reported lost, and their agents stop them on their
// own.
func (l *sshLauncher) Signal(ranks []int, sig syscall.Signal) error {
	sent := map[*remoteHost]bool{}
	for _, r := range ranks {
		rh := l.hosts[l.cfg.plan.host(r)]
		if rh == nil || sent[rh] || rh.agent == nil {
			continue
		}
		sent[rh] = true
		// A failed send means the agent is gone: its ranks are then
		// reported lost, which is what Wait tells.
		rh.agent.Signal(sig)
	}
	if sig == syscall.SIGKILL {
		l.mu.Lock()
		if l.giveUp == nil && !l.closed {
			l.giveUp = time.AfterFunc(abortAfter, l.abandon)
		}
		l.mu.Unlock()
	}
	return nil
}

// abandon closes the connections of hosts that still run ranks.
func (l *sshLauncher) abandon() {
	for _, rh := range l.order {
		if rh.running() {
			l.vlogf("%s did not report its ranks' exits %v after SIGKILL: closing the connection", rh.plan.name, abortAfter)
			rh.h.Close()
		}
	}
}

// running reports whether a rank of the host has not reported its exit.
func (rh *remoteHost) running() bool {
	rh.mu.Lock()
	defer rh.mu.Unlock()
	for _, t := range rh.tasks {
		select {
		case <-t.done:
		default:
			return true
		}
	}
	return false
}

// Wait returns how the rank ended, as its host's agent reported it.
func (l *sshLauncher) Wait(rank int) proc.Exit {
	rh := l.hosts[l.cfg.plan.host(rank)]
	rh.mu.Lock()
	t := rh.tasks[rank]
	rh.mu.Unlock()
	<-t.done
	return t.exit
}

// Lost says why the rank's host was lost.
func (l *sshLauncher) Lost(rank int) (string, string) { return l.lostReason(l.cfg.plan.host(rank)) }

// reach is the address the host reaches this machine at: our end of its
// SSH connection.
func (l *sshLauncher) reach(hp *hostPlan) net.IP { return l.hosts[hp].localIP }

// dispatchExits hands each Exit the agent reports to its task.
func (rh *remoteHost) dispatchExits() {
	defer close(rh.dispatch)
	for {
		select {
		case e := <-rh.exits:
			rh.mu.Lock()
			t := rh.tasks[e.Rank]
			rh.mu.Unlock()
			if t == nil {
				panic(fmt.Sprintf("mpirun: exit of rank %d from %s, which runs no such rank", e.Rank, rh.plan.name))
			}
			t.exit = e
			close(t.done)
		case <-rh.agent.Done():
			return // every Exit was delivered before Done
		}
	}
}

// lostReason says why the host's ranks were lost, for "lost host" lines,
// and what to check.
func (l *sshLauncher) lostReason(hp *hostPlan) (reason, hint string) {
	unreachable := fmt.Sprintf("check that %s is up and reachable from here; its agent stops the ranks there once it has not heard from mpirun for %v", hp.name, agentIdle)
	rh := l.hosts[hp]
	if rh == nil {
		return "the connection to it dropped", unreachable
	}
	if err := rh.h.Lost(); err != nil {
		return fmt.Sprintf("it stopped answering (no reply to SSH keepalives for %v)", 3*sshKeepAlive), unreachable
	}
	if rh.agent == nil {
		return "the connection to it dropped", unreachable
	}
	select {
	case <-rh.agent.Done():
		if err := rh.agent.Err(); err != nil && !errors.Is(err, remote.ErrAgentGone) {
			return "the connection to it dropped: " + strings.TrimPrefix(err.Error(), "remote: "), unreachable
		}
	default:
	}
	// An agent that died with the connection up says why on stderr, or
	// its session's exit status does.
	crashed := fmt.Sprintf("the agent (mpirun -agent, run by sshd on %s) was killed or crashed; look at that host's logs (out of memory?)", hp.name)
	if msg := strings.TrimSpace(rh.agent.Stderr()); msg != "" {
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		return "its agent ended: " + msg, crashed
	}
	var ee *ssh.ExitError
	if errors.As(rh.waitErr, &ee) {
		how := fmt.Sprintf("exited with status %d", ee.ExitStatus())
		if sig := ee.Signal(); sig != "" {
			how = "was killed by signal SIG" + sig
		}
		return "its agent " + how, crashed
	}
	return "the connection to it dropped", unreachable
}

// Close ends every agent (which stops whatever still runs there), waiting
// at most agentWait for them, and closes the connections.
func (l *sshLauncher) Close() error {
	l.mu.Lock()
	l.closed = true
	if l.giveUp != nil {
		l.giveUp.Stop()
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, rh := range l.order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := rh.agent; a != nil {
				a.CloseInput()
				done := make(chan error, 1)
				go func() { done <- a.Wait() }()
				t := time.NewTimer(agentWait)
				select {
				case err := <-done:
					if err != nil {
						l.vlogf("%s: agent: %v", rh.plan.name, err)
					}
					rh.waitErr = err
				case <-t.C:
					l.vlogf("%s: the agent did not end within %v; closing the connection", rh.plan.name, agentWait)
					rh.h.Close()
					<-done
				}
				t.Stop()
				rh.h.Close()
				<-rh.dispatch
				return
			}
			rh.h.Close()
		}()
	}
	wg.Wait()
	if l.cancel != nil {
		l.cancel()
	}
	return nil
}

// remoteTask is a rank run by an agent.
type remoteTask struct {
	rh   *remoteHost
	rank int
	done chan struct{} // closed when exit is set
	exit proc.Exit
}
