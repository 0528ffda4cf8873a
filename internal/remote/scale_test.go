package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/collective"
	"github.com/dsmexec/dsmexec/internal/limits"
	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// The scale simulation (issue 13 item 5): 1,000 ranks on 100 hosts, 10
// per host, without a process or an SSH server. It goes through the real
// code where it can and counts what each process holds:
//
//   - mpirun's fan-out to the hosts: the real dialAll (bounded concurrent
//     dials) with a fake dial on a fake clock;
//   - each host: the real agent (RunAgent) behind the real Client, over
//     in-memory pipes standing for the SSH session, relaying the
//     rendezvous of its ranks (the Relay frame, rendezvous.Relay);
//   - mpirun's rendezvous master (rendezvous.Master) with one Port per
//     host, as mpirun wires them (sshLauncher.relay);
//   - the ranks: goroutines that join their host's relay over TCP on
//     127.0.0.1 with the real rendezvous client, and get the table;
//   - then the messages of a Barrier, a small and a large Allreduce and a
//     Bcast, run by internal/collective's real algorithms on a fake
//     transport that records which peers each rank sends to and receives
//     from: with connections on demand those are the connections a rank
//     opens.
//
// It checks: every rank gets the whole table; the table crosses each
// host's link exactly once; mpirun holds no connection per rank (only one
// per host and its listener); at most maxParallelDials dials at once;
// after the barrier and the Allreduces every process holds at most 64
// connections, and each rank's collective peers stay within
// limits.CollectivePeers. The figures go to the test log (-v) and to
// docs/PERFORMANCE.md "Scale".
func TestScaleSimulation(t *testing.T) {
	const hosts, perHost = 100, 10
	const n = hosts * perHost
	// The ranks' connections to the relays are real sockets, both ends
	// in this process: 2 per rank, plus the relays' listeners.
	if _, hard, err := limits.NoFile(); err != nil || hard < 4*n {
		t.Skipf("needs %d open files, the hard limit is %d (%v)", 4*n, hard, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang bound, not a timing
	defer cancel()

	names := make([]string, hosts)
	for h := range names {
		names[h] = fmt.Sprintf("node%03d", h)
	}

	// 1. mpirun connects to every host: at most maxParallelDials at once.
	fan := simulateFanOut(t, ctx, names)

	// 2. One agent per host, relaying its ranks' rendezvous to mpirun's
	// master; the ranks join their host's relay.
	tok := []byte("scale-simulation-token")
	m, err := rendezvous.Listen("127.0.0.1:0", rendezvous.Config{Size: n, Token: tok, Timeout: 2 * time.Minute,
		Warnf: func(format string, args ...any) { t.Errorf("master: "+format, args...) }})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(ctx)
	defer m.Close()

	type opened struct {
		spec RelaySpec
		addr string
	}
	relays := make(chan opened, hosts)
	relayOpened = func(spec RelaySpec, addr string) { relays <- opened{spec, addr} }
	defer func() { relayOpened = nil }()

	links := make([]*simLink, hosts)
	clients := make([]*Client, hosts)
	agentDone := make(chan error, hosts)
	hostOf := map[int]int{}
	for h := range hosts {
		l := &simLink{name: names[h]}
		links[h] = l
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		go func() {
			err := RunAgent(inR, outW)
			outW.Close()
			inR.Close()
			agentDone <- err
		}()
		c, err := NewClient(names[h], &countReader{r: outR, n: &l.upBytes}, &countWriter{w: inW, n: &l.downBytes}, make(chan proc.Line), make(chan proc.Exit))
		if err != nil {
			t.Fatal(err)
		}
		clients[h] = c
		defer outR.Close()
		defer c.Close()
		port := m.Relay(names[h], func(f rendezvous.RelayFrame) error {
			l.down(f)
			return c.Rdv(f)
		})
		ranks := make([]int, perHost) // by slot, as a machine file "nodeNNN slots=10"
		for i := range ranks {
			ranks[i] = h*perHost + i
			hostOf[ranks[i]] = h
		}
		if err := c.Relay(RelaySpec{Size: n, Token: tok, Ranks: ranks}, func(f rendezvous.RelayFrame) {
			l.up(f)
			port.Deliver(f)
		}); err != nil {
			t.Fatal(err)
		}
	}

	type joined struct {
		rank int
		tab  rendezvous.Table
		c    *rendezvous.Client
		err  error
	}
	results := make(chan joined, n)
	rdvStart := time.Now()
	dialing := make(chan struct{}, 64)
	var lastDial, readyAt atomic.Int64
	go func() {
		select {
		case <-m.Ready():
			readyAt.Store(int64(time.Since(rdvStart)))
		case <-ctx.Done():
		}
	}()
	for range hosts {
		var o opened
		select {
		case o = <-relays:
		case <-ctx.Done():
			t.Fatal("the agents did not all open their relays")
		}
		for _, r := range o.spec.Ranks {
			go func() {
				// Real ranks start one after another (an agent forks
				// them in turn); 1,000 handshakes at once on a loaded
				// machine could take longer than their 10 s bound.
				select {
				case dialing <- struct{}{}:
				case <-ctx.Done():
					results <- joined{rank: r, err: ctx.Err()}
					return
				}
				c, err := rendezvous.Dial(ctx, o.addr, tok, r)
				<-dialing
				lastDial.Store(int64(time.Since(rdvStart)))
				if err != nil {
					results <- joined{rank: r, err: err}
					return
				}
				tab, err := c.Join(ctx, rendezvous.JoinInfo{
					Endpoints: []string{fmt.Sprintf("10.0.%d.%d:40000", hostOf[r]/250, hostOf[r]%250), fmt.Sprintf("10.0.%d.%d:40001", hostOf[r]/250, hostOf[r]%250)},
					Host:      names[hostOf[r]], Pid: 100000 + r,
				})
				results <- joined{rank: r, tab: tab, c: c, err: err}
			}()
		}
	}
	tableBytes := 0
	for range n {
		j := <-results
		if j.err != nil {
			t.Errorf("rank %d: %v", j.rank, j.err)
			continue
		}
		defer j.c.Close()
		if len(j.tab.Endpoints) != n {
			t.Errorf("rank %d: table of %d ranks, want %d", j.rank, len(j.tab.Endpoints), n)
			continue
		}
		for r, e := range j.tab.Endpoints {
			if len(e) != 2 || !strings.HasSuffix(e[0], ":40000") {
				t.Errorf("rank %d: table entry of rank %d is %v", j.rank, r, e)
				break
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	select {
	case <-m.Ready():
	case <-ctx.Done():
		t.Fatal("the master never sent the table")
	}
	rdvTime := time.Since(rdvStart)

	// What crossed each host's link, and what mpirun holds.
	direct, attached := m.Conns()
	if direct != 0 || attached != hosts {
		t.Errorf("mpirun's master: %d direct rank connections and %d relays, want 0 and %d", direct, attached, hosts)
	}
	mpirunConns := attached + direct + 1 // the SSH connections, the ranks' own, the master's listener
	if mpirunConns > hosts+2 {
		t.Errorf("mpirun holds %d connections for %d hosts, want at most hosts + 2", mpirunConns, hosts)
	}
	var maxDown, maxUp int64
	for _, l := range links {
		if got := l.tables.Load(); got != 1 {
			t.Errorf("%s: the table crossed its link %d times, want once", l.name, got)
		}
		if got := l.joinBatches.Load(); got < 1 || got > perHost {
			t.Errorf("%s: %d batches of joins, want 1 (at most one per rank)", l.name, got)
		}
		tableBytes = max(tableBytes, int(l.tableBytes.Load()))
		maxDown, maxUp = max(maxDown, l.downBytes.Load()), max(maxUp, l.upBytes.Load())
	}
	batches := 0
	for _, l := range links {
		batches += int(l.joinBatches.Load())
	}

	// 3. The connection pattern of a Barrier and an Allreduce.
	pat := collectivePattern(t, n, true)
	maxRank := 0
	for r := range n {
		// A rank's connections: its collective peers, its rendezvous
		// connection to its host's relay, and (one page server per host)
		// the Unix socket to its page server.
		c := pat.peers[r] + 2
		maxRank = max(maxRank, c)
		if pat.peers[r] > limits.CollectivePeers(n) {
			t.Errorf("rank %d talks to %d peers in the collectives, limits.CollectivePeers(%d) = %d", r, pat.peers[r], n, limits.CollectivePeers(n))
		}
	}
	agentConns := perHost + 1 // the relay's rank connections and its listener (the SSH session is pipes to sshd)
	pagerConns := perHost     // one page server per host: its ranks' sockets; memory connections to other hosts only on a fault
	worst := max(maxRank, agentConns, pagerConns)
	if worst > 64 {
		t.Errorf("a process holds %d connections after a barrier and an Allreduce, want at most 64", worst)
	}

	// Stop: the master says bye through every relay, the agents end.
	m.Close()
	for _, c := range clients {
		c.CloseInput()
	}
	for range hosts {
		select {
		case err := <-agentDone:
			if err != nil && !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("agent: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("the agents did not end")
		}
	}

	// Under the common hard limit of 1024 open files, the job is refused
	// today and accepted once ranks connect on demand with a page server
	// per host.
	j := limits.Job{Size: n, PerHost: perHost, Hosts: hosts, DSM: true, Mesh: limits.OnDemand, MemMesh: limits.OnDemand, Pagers: limits.PagerPerHost}
	today := limits.Job{Size: n, PerHost: perHost, Hosts: hosts, DSM: true}
	agentFDs := limits.MpirunFDs(perHost, 0, 0)
	if err := limits.Check(n, j.ProcessFDs(), agentFDs, names[0], 1024); err != nil {
		t.Errorf("on demand, per-host page servers: %v", err)
	}
	refused := limits.Check(n, today.ProcessFDs(), agentFDs, names[0], 1024)
	if refused == nil {
		t.Errorf("today's all-to-all job of %d ranks passes a hard limit of 1024", n)
	}
	t.Logf("scale simulation, %d ranks on %d hosts (%d per host):", n, hosts, perHost)
	t.Logf("  launch: mpirun dialled %d hosts, at most %d at once (%d rounds; at %v per SSH connection %v on the fake clock)", fan.dials, fan.peak, fan.rounds, simDialCost, fan.elapsed)
	t.Logf("  rendezvous of %d goroutine ranks through %d relays: %v (real time, this machine; the last handshake done after %v, the table sent after %v)", n, hosts, rdvTime.Round(time.Millisecond), time.Duration(lastDial.Load()).Round(time.Millisecond), time.Duration(readyAt.Load()).Round(time.Millisecond))
	t.Logf("  rendezvous: %d join batches for %d ranks; the table (%d bytes) sent %d times in all, once per host; per link at most %d bytes down, %d up", batches, n, tableBytes, hosts, maxDown, maxUp)
	t.Logf("  mpirun: %d connections (%d SSH, %d rank connections, 1 listener)", mpirunConns, attached, direct)
	t.Logf("  collectives: %d messages; peers per rank min %d, median %d, max %d (limits.CollectivePeers = %d)", pat.msgs, pat.min, pat.median, pat.max, limits.CollectivePeers(n))
	t.Logf("  connections after Barrier + Allreduce: rank ≤ %d, agent %d, page server %d (+ up to %d to other hosts on faults)", maxRank, agentConns, pagerConns, hosts-1)
	t.Logf("  open files (limits): rank %d, page server %d with connections on demand and a page server per host; today %d and %d (under a hard limit of 1024: %v)", j.RankFDs(), j.PagerFDs(), today.RankFDs(), today.PagerFDs(), refused)
}

// simDialCost is the fake clock's time for one SSH connection (TCP, key
// exchange, authentication).
const simDialCost = 100 * time.Millisecond

type fanOut struct {
	dials, peak, rounds int
	elapsed             time.Duration // on the fake clock
}

// simulateFanOut runs dialAll over names with a fake dial: each dial waits
// for the fake clock, which advances by simDialCost once every dial that
// may run at once has started, and releases them.
func simulateFanOut(t *testing.T, ctx context.Context, names []string) fanOut {
	t.Helper()
	targets := make([]Target, len(names))
	for i, h := range names {
		targets[i] = Target{User: "sim", Host: h, Port: 22}
	}
	arrive := make(chan chan struct{})
	var inflight, peak, dials atomic.Int32
	dial := func(ctx context.Context, tg Target, _ Options) (*Host, error) {
		k := inflight.Add(1)
		for {
			p := peak.Load()
			if k <= p || peak.CompareAndSwap(p, k) {
				break
			}
		}
		dials.Add(1)
		release := make(chan struct{})
		select {
		case arrive <- release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		inflight.Add(-1)
		return &Host{}, nil
	}
	var res fanOut
	clock := make(chan fanOut, 1)
	go func() {
		var now time.Duration
		rounds := 0
		for left := len(names); left > 0; {
			batch := make([]chan struct{}, 0, maxParallelDials)
			for len(batch) < min(maxParallelDials, left) {
				select {
				case r := <-arrive:
					batch = append(batch, r)
				case <-ctx.Done():
					clock <- fanOut{rounds: -1}
					return
				}
			}
			now += simDialCost
			rounds++
			left -= len(batch)
			for _, r := range batch {
				close(r)
			}
		}
		clock <- fanOut{rounds: rounds, elapsed: now}
	}()
	hs, errs := dialAll(ctx, targets, Options{}, dial)
	res = <-clock
	if res.rounds < 0 {
		t.Fatalf("fan-out: fewer than %d dials at once (peak %d): the fake clock waited for the rest", maxParallelDials, peak.Load())
	}
	for i := range hs {
		if errs[i] != nil || hs[i] == nil {
			t.Fatalf("fan-out: %s: %v", names[i], errs[i])
		}
	}
	res.dials, res.peak = int(dials.Load()), int(peak.Load())
	if res.dials != len(names) {
		t.Errorf("fan-out: %d dials for %d hosts", res.dials, len(names))
	}
	if res.peak > maxParallelDials {
		t.Errorf("fan-out: %d dials at once, want at most %d", res.peak, maxParallelDials)
	}
	return res
}

// simLink counts what crosses one host's link (the SSH session) for the
// rendezvous.
type simLink struct {
	name                  string
	tables, joinBatches   atomic.Int32
	tableBytes            atomic.Int64
	downBytes, upBytes    atomic.Int64 // every frame of the agent protocol, each way
	downFrames, upFrames  atomic.Int32
	downOther, upRelayOth atomic.Int32
}

func (l *simLink) down(f rendezvous.RelayFrame) {
	l.downFrames.Add(1)
	if f.Rank == -1 && f.Type == rendezvous.TypeTable {
		l.tables.Add(1)
		l.tableBytes.Add(int64(len(f.Body)))
	}
}

func (l *simLink) up(f rendezvous.RelayFrame) {
	l.upFrames.Add(1)
	if f.Rank == -1 && f.Type == rendezvous.TypeJoins {
		l.joinBatches.Add(1)
	}
}

type countWriter struct {
	w io.WriteCloser
	n *atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}
func (c *countWriter) Close() error { return c.w.Close() }

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// pattern is who talks to whom in the collectives.
type pattern struct {
	peers            []int // per rank: distinct peers it sent to or received from, or that did so with it
	min, median, max int
	msgs             int64
}

// collectivePattern runs a Barrier, an Allreduce of one float64, with
// large one of 64 KiB (Rabenseifner's algorithm), and a Bcast from rank 0 on
// n ranks over a recording in-memory transport, each rank's calls
// through collective.Sequenced as package rank makes them (so the hellos
// to rank ± 1 count too).
func collectivePattern(t *testing.T, n int, large bool) pattern {
	t.Helper()
	net := newSimNet(n)
	defer net.close()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := collective.Sequenced(&simEnd{net: net, rank: r})
			if err := collective.Barrier(tr); err != nil {
				errs[r] = fmt.Errorf("barrier: %w", err)
				return
			}
			sum, err := collective.Allreduce(tr, []float64{1}, collective.Sum)
			if err == nil && sum[0] != float64(n) {
				err = fmt.Errorf("sum %v, want %d", sum[0], n)
			}
			if err != nil {
				errs[r] = fmt.Errorf("allreduce: %w", err)
				return
			}
			if large {
				big := make([]float64, 64<<10/8) // the size from which Allreduce uses Rabenseifner's algorithm
				big[0] = 1
				if got, err := collective.Allreduce(tr, big, collective.Sum); err != nil || got[0] != float64(n) {
					errs[r] = fmt.Errorf("64 KiB allreduce: %v, %v", err, got[:1])
					return
				}
			}
			if _, err := collective.Bcast(tr, 0, []byte("x")); err != nil {
				errs[r] = fmt.Errorf("bcast: %w", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a hang bound
		net.close()
		<-done
		t.Fatalf("the collectives of %d ranks hung", n)
	}
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d of %d: %v", r, n, err)
		}
	}
	p := pattern{peers: make([]int, n), msgs: net.msgs.Load()}
	conn := make([]map[int]bool, n)
	for r := range n {
		conn[r] = map[int]bool{}
	}
	for r := range n {
		for q := range net.touched[r] {
			conn[r][q] = true
			conn[q][r] = true
		}
	}
	counts := make([]int, n)
	for r := range n {
		p.peers[r] = len(conn[r])
		counts[r] = len(conn[r])
	}
	sortInts(counts)
	p.min, p.median, p.max = counts[0], counts[n/2], counts[n-1]
	return p
}

func sortInts(v []int) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// simNet is an in-memory transport: one FIFO per ordered pair, made on
// first use (as a connection on demand is), recording the peers each rank
// touches.
type simNet struct {
	n       int
	mu      sync.Mutex
	queues  map[[2]int]chan []byte
	touched []map[int]bool // touched[r]: written only by rank r's goroutine
	msgs    atomic.Int64
	done    chan struct{}
	once    sync.Once
}

func newSimNet(n int) *simNet {
	s := &simNet{n: n, queues: map[[2]int]chan []byte{}, touched: make([]map[int]bool, n), done: make(chan struct{})}
	for r := range s.touched {
		s.touched[r] = map[int]bool{}
	}
	return s
}

func (s *simNet) close() { s.once.Do(func() { close(s.done) }) }

func (s *simNet) queue(from, to int) chan []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]int{from, to}
	q := s.queues[k]
	if q == nil {
		q = make(chan []byte, 32) // a call sends a pair a few messages; Send must not wait
		s.queues[k] = q
	}
	return q
}

type simEnd struct {
	net  *simNet
	rank int
}

func (e *simEnd) Rank() int { return e.rank }
func (e *simEnd) Size() int { return e.net.n }

func (e *simEnd) Send(to int, msg []byte) error {
	e.net.touched[e.rank][to] = true
	e.net.msgs.Add(1)
	select {
	case e.net.queue(e.rank, to) <- append([]byte(nil), msg...):
		return nil
	default:
		return fmt.Errorf("sim: rank %d: queue to rank %d full", e.rank, to)
	}
}

func (e *simEnd) Recv(from int) ([]byte, error) {
	e.net.touched[e.rank][from] = true
	select {
	case m := <-e.net.queue(from, e.rank):
		return m, nil
	case <-e.net.done:
		return nil, fmt.Errorf("sim: rank %d: receive from rank %d: closed", e.rank, from)
	}
}

// CollectivePeers is an upper bound for every size: the peers the real
// algorithms touch never exceed it (so that the limit check, which uses
// it with connections on demand, does not undercount).
func TestCollectivePeersBound(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 200, 255, 256, 257} {
		if n == 1 {
			if limits.CollectivePeers(1) != 0 {
				t.Error("CollectivePeers(1) != 0")
			}
			continue
		}
		// Rabenseifner's partners are recursive doubling's: the 64 KiB
		// Allreduce at a few sizes only (it is the slow part under -race).
		large := n == 5 || n == 12 || n == 100 || n == 257
		p := collectivePattern(t, n, large)
		if p.max > limits.CollectivePeers(n) {
			t.Errorf("N=%d: a rank talks to %d peers, limits.CollectivePeers = %d", n, p.max, limits.CollectivePeers(n))
		}
		if testing.Verbose() {
			t.Logf("N=%d: peers min %d median %d max %d, bound %d", n, p.min, p.median, p.max, limits.CollectivePeers(n))
		}
	}
}
