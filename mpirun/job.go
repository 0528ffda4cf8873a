package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/launch"
	"github.com/dsmexec/dsmexec/internal/output"
	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

// driver carries out a job: it owns the output, the signals, the timers,
// the master socket and the launchers, and feeds what happens to the job's
// state machine (internal/launch), which decides everything else.
type driver struct {
	cfg     *config
	stderr  *os.File
	out     *output.Writer
	ssh     *sshLauncher // nil when every rank runs here; only for setting up
	l       launcher
	master  *rendezvous.Master
	cancel  context.CancelFunc // of the master's Serve
	spec    func(rank int) proc.Spec
	machine *launch.Job

	lines   chan proc.Line
	outDone chan error
	sigc    chan os.Signal
	exitc   chan proc.Exit
	msgc    chan launch.Event // from the master: Failure, Aborted
	firec   chan fired
	rdvErr  <-chan error
	quit    chan struct{} // closed when the job closes
	timers  map[launch.Timer]*time.Timer
	gen     map[launch.Timer]int
	queue   []launch.Event

	started []bool
	joined  []bool // Joined sent to the machine
	exits   []proc.Exit
	reps    []rendezvous.Report
	traces  *traceSink // -trace, -report-html, page reports (trace.go)
	tl      *tracefmt.Timeline
	tlKeys  []streamKey
	tlErr   error

	detector *detector // -deadlock-after (deadlock.go)
}

type fired struct {
	t   launch.Timer
	gen int
}

func (d *driver) vlogf(format string, args ...any) {
	if d.cfg.verbose {
		d.out.Printf(proc.Stderr, "mpirun: "+format, args...)
	}
}

// startJob runs the job cfg describes and returns mpirun's exit status.
func startJob(cfg *config, stdin, stdout, stderr *os.File) int {
	d, err := newDriver(cfg, stdout, stderr)
	if err != nil {
		return report(stderr, failErr("", "%v", err))
	}
	defer signal.Stop(d.sigc)
	defer d.out.Close()
	if cerr := d.checkLimits(); cerr != nil {
		d.endOutput()
		return report(stderr, cerr)
	}
	if status, ok := d.setUpHosts(); !ok {
		d.endOutput()
		return status
	}
	token, err := d.listen()
	if err != nil {
		d.l.Close()
		d.endOutput()
		return report(stderr, failErr("", "start the master socket: %v", err))
	}
	defer d.cancel()
	d.spec = d.specs(token, stdin)
	code := d.run()
	d.finishTrace(stderr)
	return code
}

func newDriver(cfg *config, stdout, stderr *os.File) (*driver, error) {
	n := cfg.np
	p := cfg.plan
	var tagHosts []string
	if p.multiHost() {
		tagHosts = p.names()
	}
	out, err := output.New(output.Options{Stdout: stdout, Stderr: stderr, Size: n, Tag: cfg.tagOutput, Hosts: tagHosts, Dir: cfg.outputDir})
	if err != nil {
		return nil, err
	}
	d := &driver{
		cfg: cfg, stderr: stderr, out: out,
		lines: make(chan proc.Line, 1024), outDone: make(chan error, 1),
		sigc: make(chan os.Signal, 4), exitc: make(chan proc.Exit, n), msgc: make(chan launch.Event),
		firec: make(chan fired), quit: make(chan struct{}),
		timers: map[launch.Timer]*time.Timer{}, gen: map[launch.Timer]int{},
		started: make([]bool, n), joined: make([]bool, n), exits: make([]proc.Exit, n),
	}
	signal.Notify(d.sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	src := (<-chan proc.Line)(d.lines)
	if cfg.timestamps {
		stamped := make(chan proc.Line, 1024)
		go stampLines(d.lines, stamped, time.Now())
		src = stamped
	}
	go func() { d.outDone <- out.Run(src) }()
	return d, nil
}

// endOutput waits until every line was written.
func (d *driver) endOutput() {
	close(d.lines)
	<-d.outDone
}

// setUpHosts connects to the remote hosts, if any, and makes the launcher.
// ok is false when the job cannot start; status is then mpirun's exit
// status.
func (d *driver) setUpHosts() (status int, ok bool) {
	p := d.cfg.plan
	name := "local"
	remotes := p.remote()
	if len(remotes) > 0 {
		name = "ssh"
		if p.anyLocal() {
			name = "local+ssh"
		}
	}
	for _, a := range d.cfg.apps {
		d.vlogf("program %s, %d rank%s", a.path, a.np, plural(a.np))
	}
	d.vlogf("placement: %s (launcher %s)", placement(p.names()), name)
	if len(remotes) > 0 {
		d.ssh = newSSHLauncher(d.cfg, d.out, d.stderr, d.vlogf)
		if status, ok := d.connect(remotes); !ok {
			return status, false
		}
		if cerr := d.checkHostLimits(remotes); cerr != nil {
			d.ssh.Close()
			d.out.Printf(proc.Stderr, "mpirun: error: %s", cerr.msg)
			d.out.Printf(proc.Stderr, "mpirun: hint: %s", cerr.hint)
			return cerr.status, false
		}
	}
	d.l = &hostLaunchers{plan: p, local: newLocalLauncher(d.lines), ssh: d.ssh}
	return 0, true
}

// listen opens the master socket where every host reaches it and returns
// the job's token.
func (d *driver) listen() (string, error) {
	tok := make([]byte, 32)
	rand.Read(tok) // never fails (crypto/rand panics rather)
	token := hex.EncodeToString(tok)
	addr, reach := "127.0.0.1:0", []net.IP(nil)
	if d.ssh != nil {
		// The master listens where the hosts reach this machine: the local
		// address of their SSH connections (never a hard-coded one).
		reach = d.ssh.localIPs()
		addr = ":0" // hosts reach us on different addresses
		if len(reach) == 1 {
			addr = net.JoinHostPort(reach[0].String(), "0")
		}
	}
	var onTrace func(int, uint8, []byte)
	if d.cfg.pageReports() {
		ts, err := newTraceSink(d.cfg.traceFile)
		if err != nil {
			return "", fmt.Errorf("a folder for the traces: %w", err)
		}
		d.traces, onTrace = ts, ts.add
	}
	m, err := rendezvous.Listen(addr, rendezvous.Config{Size: d.cfg.np, Token: tok, Timeout: d.cfg.rdvTimeout, Logf: d.vlogf, OnTrace: onTrace,
		Warnf:    d.masterWarnf,
		OnFailed: func(rank, peer int, msg string) { d.send(launch.Failure{Rank: rank, LostPeer: peer, Msg: msg}) },
		OnAbort:  func(rank, code int) { d.send(launch.Aborted{Rank: rank, Code: code}) },
	})
	if err != nil {
		return "", err
	}
	d.master, d.rdvErr = m, m.Err()
	if d.ssh != nil {
		d.ssh.relay(m, d.cfg.np, tok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go m.Serve(ctx)
	if len(reach) > 1 {
		d.vlogf("master listening on %s (the hosts reach it at %s), job token %s…", m.Addr(), ipList(reach), token[:4])
	} else {
		d.vlogf("master listening on %s, job token %s…", m.Addr(), token[:4])
	}
	d.vlogf("shared region %d bytes; rendezvous timeout %v; grace %v", d.cfg.dsmSize, d.cfg.rdvTimeout, d.cfg.grace)
	return token, nil
}

// send hands the driver an event from another goroutine (the master's),
// unless the job is over.
func (d *driver) send(ev launch.Event) {
	select {
	case d.msgc <- ev:
	case <-d.quit:
	}
}

// masterFor is the master's address as the ranks on hp reach it.
func (d *driver) masterFor(hp *hostPlan) string {
	if d.ssh == nil {
		return d.master.Addr()
	}
	_, port, _ := net.SplitHostPort(d.master.Addr())
	if hp.local {
		// Local ranks advertise the address they reach the master by: it
		// must be one the remote ranks can reach too.
		return net.JoinHostPort(d.ssh.localIPs()[0].String(), port)
	}
	return net.JoinHostPort(d.ssh.reach(hp).String(), port)
}

// specs returns what starts each rank. Ranks forked here inherit mpirun's
// environment; ranks on other hosts get the agent's (their login
// environment) plus the same additions.
func (d *driver) specs(token string, stdin *os.File) func(int) proc.Spec {
	cfg := d.cfg
	extra := []string{"DSMEXEC_TIMEOUT=" + cfg.rdvTimeout.String()} // the ranks wait for the table as long as the master waits for them
	if cfg.verbose {
		extra = append(extra, "DSMEXEC_VERBOSE=1")
	}
	extra = append(extra, cfg.traceEnv()...)
	in0 := rankStdin(stdin)
	type key struct {
		a     *app
		local bool
	}
	bases := map[key][]string{}
	return func(r int) proc.Spec {
		hp, a := cfg.plan.host(r), cfg.appOf(r)
		base, ok := bases[key{a, hp.local}]
		if !ok {
			var environ []string
			if hp.local {
				environ = os.Environ()
			}
			base = append(baseEnv(environ, append(append([]envVar(nil), cfg.genv...), a.env...)), extra...)
			bases[key{a, hp.local}] = base
		}
		s := proc.Spec{Rank: r, Path: a.path, Args: a.args, Dir: cfg.wdir, Env: launchEnv(base, r, cfg.np, d.masterFor(hp), token, hp.name, cfg.dsmSize)}
		if r == 0 && in0 != nil {
			s.Stdin = in0
		}
		return s
	}
}

// stampLines prefixes each line (not the continuations of a long one) with
// the time since start, for --timestamp-output.
func stampLines(in <-chan proc.Line, out chan<- proc.Line, start time.Time) {
	defer close(out)
	type stream struct {
		rank int
		s    proc.Stream
	}
	cont := map[stream]bool{}
	for l := range in {
		k := stream{l.Rank, l.Stream}
		if !cont[k] {
			l.Text = append(fmt.Appendf(nil, "[+%.3fs] ", time.Since(start).Seconds()), l.Text...)
		}
		cont[k] = l.Partial
		out <- l
	}
}

func ipList(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

// placement describes where ranks run: "ranks 0-3 on localhost".
func placement(hosts []string) string {
	var parts []string
	for i := 0; i < len(hosts); {
		k := i
		for k+1 < len(hosts) && hosts[k+1] == hosts[i] {
			k++
		}
		if k == i {
			parts = append(parts, fmt.Sprintf("rank %d on %s", i, hosts[i]))
		} else {
			parts = append(parts, fmt.Sprintf("ranks %d-%d on %s", i, k, hosts[i]))
		}
		i = k + 1
	}
	return strings.Join(parts, ", ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
