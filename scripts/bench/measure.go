package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result keys (values in ns, bytes/s, counts or % of a CPU). T is the
// transport of the message rows, "tcp" or "shm" (see transports):
//
//	launch.{dsm,sigsegv,nodsm,ompi}.N  median wall time of the whole launch command, N ranks
//	T.barrier.{ours,ompi}.N            mean barrier time
//	T.pp.{ours,ompi}.{oneway,bw}       8 B one-way latency, 1 MiB bandwidth (bytes/s)
//	T.pp.{ours,ompi}.{ctxsw,cpu}       context switches and CPU ns per 8 B round trip, both ranks
//	T.pp.{traced,notrace}.oneway       8 B one-way with mpirun -trace; with ranks built -tags dsmexec_notrace
//	T.idle.{ours,ompi}.{rank,pager}    % of a CPU used by a rank blocked in Recv (and its page server)
//	T.ar.{ours,ompi}.N.E               mean allreduce of E float64s, N ranks
//	T.typed.{bytes,float64}.B          8 B / 1 MiB one-way: Send/Recv vs SendSlice/RecvSlice[float64]
//	T.isend.{blocking,nonblocking}     8 B one-way: Send/Recv vs Isend/Irecv+Wait
//	T.coll.{ours,ompi}.W.E             mean Alltoall/Scan/ReduceScatter (W), E float64s, 8 ranks
//	raw.{mean,p50,p99,max}             raw Go TCP round trip, 16 B request, 4 KiB reply
//	rf.V.{mean,p50,p99,max,over1ms,pps,dsm}  remote read fault, variant V (see readVariants)
//	wf.{mean,p50,p99,max,over1ms,dsm}        remote write fault on a page read by 3 ranks
//	mh.launch.first.8, mh.launch.cached.N, mh.rf.*   with the machine file

var launchNP = []int{1, 4, 8}
var collNP = []int{2, 4, 8}

// ompiBase are Open MPI's flags for every run; a transport adds its own.
var ompiBase = []string{"--allow-run-as-root", "--oversubscribe"}

// ompiFlags force Open MPI onto its TCP transport over lo (launch figures).
var ompiFlags = append(append([]string(nil), ompiBase...), transports[0].btl...)

// transport is one way our ranks talk on one host, with the Open MPI
// transport it is compared with.
type transport struct {
	key   string   // result-key prefix
	label string   // in the report
	env   []string // for our mpirun (local ranks inherit its environment)
	btl   []string // Open MPI's flags
	ompi  string   // Open MPI's transport, in the report
}

var transports = []transport{
	{"tcp", "TCP (DSMEXEC_TRANSPORT=tcp)", []string{"DSMEXEC_TRANSPORT=tcp"},
		[]string{"--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"}, "TCP (btl tcp,self, lo)"},
	// Unset: the default, shared memory between ranks on one host.
	{"shm", "default (shared memory on one host)", []string{"-DSMEXEC_TRANSPORT"},
		[]string{"--mca", "btl", "self,vader"}, "shared memory (btl self,vader)"},
}

// apiWhat are the collectives of the API rows, as ranksapi and
// collectives.c name them.
var apiWhat = []string{"alltoall", "scan", "reducescatter"}

// apiNP is the size of the API collective rows.
const apiNP = 8

// readVariant is one run of the read-fault benchmark.
type readVariant struct {
	key, label string
	env        string // -x for mpirun, or ""
	goroutines int
	main       bool // the main figure (more pages)
}

var readVariants = []readVariant{
	{"main", "default GOMAXPROCS, 1 goroutine", "", 1, true},
	{"gmp1", "GOMAXPROCS=1", "GOMAXPROCS=1", 1, false},
	{"gmp2", "GOMAXPROCS=2", "GOMAXPROCS=2", 1, false},
	{"g4", "4 goroutines at once", "", 4, false},
	{"g4gmp1", "4 goroutines, GOMAXPROCS=1", "GOMAXPROCS=1", 4, false},
	// Page servers on one host may talk through shared memory (issue 8):
	// the same fault with TCP forced.
	{"tcp", "DSMEXEC_TRANSPORT=tcp", "DSMEXEC_TRANSPORT=tcp", 1, false},
}

type measurer struct {
	ctx   context.Context
	p     *plan
	r     *results
	round int // 0-based; progress is detailed in round 0 only
}

// measure takes every figure of the plan; a figure that fails is recorded
// in r.Err and the others go on.
func measure(ctx context.Context, p *plan) *results {
	m := &measurer{ctx: ctx, p: p, r: newResults()}
	if p.Mode == "multihost" {
		m.multihost()
		m.finish()
		return m.r
	}
	m.r.S["load.start"] = loadavg()
	nodsm := m.probeNoDSM()
	t := time.Now()
	m.launch(nodsm)
	m.r.V["time.launch"] = time.Since(t).Seconds()
	// Rounds: every figure once per round, ours and Open MPI's in turn, so
	// that other load on the machine falls on both; each figure is the
	// median of its rounds.
	roundStart := time.Now()
	for m.round = 0; m.round < p.Counts.Rounds && ctx.Err() == nil; m.round++ {
		if m.round > 0 {
			progress("round %d of %d (the last took %v): per transport barrier, ping-pong, idle CPU, allreduce, API rows; raw round trip, faults",
				m.round+1, p.Counts.Rounds, time.Since(roundStart).Round(time.Second))
			roundStart = time.Now()
		}
		type step struct {
			name string
			f    func()
		}
		var steps []step
		for _, tr := range transports {
			steps = append(steps,
				step{tr.key + " barrier", func() { m.barrier(tr, nodsm) }},
				step{tr.key + " ping-pong", func() { m.pingpong(tr, nodsm) }},
				step{tr.key + " idle", func() { m.idle(tr) }},
				step{tr.key + " allreduce", func() { m.allreduce(tr, nodsm) }},
				step{tr.key + " API", func() { m.api(tr, nodsm) }},
			)
		}
		steps = append(steps, step{"raw round trip", m.rawRTT}, step{"faults", m.faults})
		for _, st := range steps {
			if ctx.Err() == nil {
				t := time.Now()
				st.f()
				m.r.V["time."+st.name] += time.Since(t).Seconds()
			}
		}
	}
	m.finish()
	m.r.S["load.end"] = loadavg()
	return m.r
}

// finish makes each figure the median of its rounds.
func (m *measurer) finish() {
	for k, xs := range m.r.R {
		m.r.V[k] = medianF(xs)
	}
}

// step prints what a step does, in the first round.
func (m *measurer) step(format string, args ...any) {
	if m.round == 0 {
		progress(format, args...)
	}
}

func medianF(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	slices.Sort(s)
	return s[len(s)/2]
}

// loadavg is the 1-minute load average: other work perturbs every figure.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func (m *measurer) fail(key string, err error) {
	if m.ctx.Err() != nil {
		m.r.Err[key] = "interrupted"
		return
	}
	m.r.Err[key] = firstLine(err)
	progress("%s: %v", key, err)
}

// mpirun runs a bench program under bin/mpirun, with env added to its
// environment, and returns its BENCH lines.
func (m *measurer) mpirun(np int, extra, env []string, prog string, args ...string) (values, error) {
	a := []string{"-np", strconv.Itoa(np)}
	if m.p.Machinefile != "" {
		a = append(a, "-machinefile", m.p.Machinefile)
	}
	a = append(append(a, extra...), prog)
	out, _, err := run(m.ctx, 3*time.Minute, env, m.p.Mpirun, append(a, args...)...)
	if err != nil {
		return nil, err
	}
	return parseBench(out), nil
}

// ompirun runs a C program under Open MPI's mpirun over a transport.
func (m *measurer) ompirun(tr transport, np int, prog string, args ...string) (values, error) {
	a := append(append(append([]string(nil), ompiBase...), tr.btl...), "-np", strconv.Itoa(np), prog)
	out, _, err := run(m.ctx, 3*time.Minute, nil, m.p.OMPI.Mpirun, append(a, args...)...)
	if err != nil {
		return nil, err
	}
	return parseBench(out), nil
}

func (m *measurer) haveOMPI() bool { return m.p.OMPI.Mpirun != "" }

// probeNoDSM says whether this mpirun takes -dsm-size 0 (no shared region,
// no pager process): the flags to use, or nil.
func (m *measurer) probeNoDSM() []string {
	flags := []string{"-dsm-size", "0"}
	_, _, err := run(m.ctx, time.Minute, nil, m.p.Mpirun, append([]string{"-np", "2"}, append(flags, m.p.Hello)...)...)
	if err != nil {
		m.r.Err["launch.nodsm"] = "mpirun -dsm-size 0 fails: " + firstLine(err)
		m.r.Notes = append(m.r.Notes, "mpirun does not accept -dsm-size 0 yet, so the barrier, ping-pong and allreduce figures ran with the default 64 MiB shared region (and its pager process per rank)")
		progress("-dsm-size 0 not accepted (%v); the message-passing figures run with the default shared region", err)
		return nil
	}
	return flags
}

// launch times whole launch commands, interleaving the variants so that
// drift on the machine hits them alike; the first round is a warm-up.
func (m *measurer) launch(nodsm []string) {
	c := m.p.Counts
	what := "bin/mpirun bin/hello, also with DSMEXEC_FAULT=sigsegv"
	if nodsm != nil {
		what += ", also with -dsm-size 0"
	}
	if m.haveOMPI() {
		what += ", and Open MPI init+finalize"
	}
	progress("launch: -np %v, %d runs each (+1 warm-up) of %s", launchNP, c.LaunchReps, what)
	type variant struct {
		key  string
		env  []string
		name string
		args func(np int) []string
	}
	plain := func(np int) []string { return []string{"-np", strconv.Itoa(np), m.p.Hello} }
	vs := []variant{
		{"dsm", nil, m.p.Mpirun, plain},
		// The mprotect/SIGSEGV backend needs no pager process: the
		// difference is what the pager costs a launch.
		{"sigsegv", []string{"DSMEXEC_FAULT=sigsegv"}, m.p.Mpirun, plain},
	}
	if nodsm != nil {
		vs = append(vs, variant{"nodsm", nil, m.p.Mpirun, func(np int) []string {
			return append(append([]string{"-np", strconv.Itoa(np)}, nodsm...), m.p.Hello)
		}})
	}
	if m.haveOMPI() {
		vs = append(vs, variant{"ompi", nil, m.p.OMPI.Mpirun, func(np int) []string {
			return append(append(append([]string(nil), ompiFlags...), "-np", strconv.Itoa(np)), m.p.OMPI.Init)
		}})
	}
	for _, np := range launchNP {
		times := make(map[string][]time.Duration)
		failed := map[string]bool{}
		for rep := -1; rep < c.LaunchReps; rep++ {
			for _, v := range vs {
				if failed[v.key] {
					continue
				}
				_, el, err := run(m.ctx, time.Minute, v.env, v.name, v.args(np)...)
				if err != nil {
					m.fail(fmt.Sprintf("launch.%s.%d", v.key, np), err)
					failed[v.key] = true
					continue
				}
				if rep >= 0 {
					times[v.key] = append(times[v.key], el)
				}
			}
		}
		for k, t := range times {
			if !failed[k] {
				m.r.V[fmt.Sprintf("launch.%s.%d", k, np)] = float64(median(t).Nanoseconds())
			}
		}
	}
}

// barriers is how many barriers are timed at np ranks: fewer at more ranks,
// where each takes longer.
func barriers(c counts, np int) int { return c.Barriers * 2 / np }

func (m *measurer) barrier(tr transport, nodsm []string) {
	m.step("%s: barrier: %d / %d / %d barriers at -np %v", tr.key, barriers(m.p.Counts, collNP[0]), barriers(m.p.Counts, collNP[1]), barriers(m.p.Counts, collNP[2]), collNP)
	for _, np := range collNP {
		n := barriers(m.p.Counts, np)
		key := fmt.Sprintf("%s.barrier.ours.%d", tr.key, np)
		if v, err := m.mpirun(np, nodsm, tr.env, m.p.Ranks, "barrier", "-n", strconv.Itoa(n)); err != nil {
			m.fail(key, err)
		} else {
			m.take(v, "barrier.mean_ns", key)
		}
		if m.haveOMPI() {
			key := fmt.Sprintf("%s.barrier.ompi.%d", tr.key, np)
			if v, err := m.ompirun(tr, np, m.p.OMPI.Barrier, strconv.Itoa(n)); err != nil {
				m.fail(key, err)
			} else {
				m.take(v, "barrier.mean_ns", key)
			}
		}
	}
}

// take copies one BENCH value into the results.
func (m *measurer) take(v values, from, key string) bool {
	f, err := v.num(from)
	if err != nil {
		m.fail(key, err)
		return false
	}
	m.r.R[key] = append(m.r.R[key], f)
	return true
}

func (m *measurer) pingpong(tr transport, nodsm []string) {
	c := m.p.Counts
	m.step("%s: ping-pong: %d round trips of 8 B (with context switches and CPU), %d of 1 MiB", tr.key, c.PingSmall, c.PingBig)
	args := []string{"-small", "8", "-n", strconv.Itoa(c.PingSmall), "-size", strconv.Itoa(1 << 20), "-big", strconv.Itoa(c.PingBig)}
	takeAll := func(v values, who string) {
		k := tr.key + ".pp." + who
		m.take(v, "pingpong.oneway_ns", k+".oneway")
		m.take(v, "pingpong.bandwidth_Bps", k+".bw")
		m.take(v, "pingpong.ctxsw_per_rt", k+".ctxsw")
		m.take(v, "pingpong.cpu_ns_per_rt", k+".cpu")
	}
	if v, err := m.mpirun(2, nodsm, tr.env, m.p.Ranks, append([]string{"pingpong"}, args...)...); err != nil {
		m.fail(tr.key+".pp.ours", err)
	} else {
		takeAll(v, "ours")
	}
	// The same with mpirun -trace (issue 10: recording costs at most 1.5×).
	if f, err := os.CreateTemp("", "dsmbench-trace-*.json"); err != nil {
		m.fail(tr.key+".pp.traced.oneway", err)
	} else {
		f.Close()
		if v, err := m.mpirun(2, append(append([]string(nil), nodsm...), "-trace", f.Name()), tr.env, m.p.Ranks, append([]string{"pingpong"}, args...)...); err != nil {
			m.fail(tr.key+".pp.traced.oneway", err)
		} else {
			m.take(v, "pingpong.oneway_ns", tr.key+".pp.traced.oneway")
		}
		os.Remove(f.Name())
	}
	// And built without the tracing call sites (issue 10: recording off
	// costs nothing measurable). In the same round as the two above, so
	// the three take turns on the machine.
	if m.p.RanksNoTrace != "" {
		if v, err := m.mpirun(2, nodsm, tr.env, m.p.RanksNoTrace, append([]string{"pingpong"}, args...)...); err != nil {
			m.fail(tr.key+".pp.notrace.oneway", err)
		} else {
			m.take(v, "pingpong.oneway_ns", tr.key+".pp.notrace.oneway")
		}
	} else {
		m.r.Err[tr.key+".pp.notrace.oneway"] = "ranks did not build with -tags dsmexec_notrace"
	}
	if m.haveOMPI() {
		if v, err := m.ompirun(tr, 2, m.p.OMPI.Pingpong, "8", strconv.Itoa(c.PingSmall), strconv.Itoa(1<<20), strconv.Itoa(c.PingBig)); err != nil {
			m.fail(tr.key+".pp.ompi", err)
		} else {
			takeAll(v, "ompi")
		}
	}
}

// idle: the CPU a rank blocked in Recv uses (and its page server: so the
// default shared region, no -dsm-size 0), measured by the other rank from
// /proc/PID/stat.
func (m *measurer) idle(tr transport) {
	ms := m.p.Counts.IdleMs
	m.step("%s: idle CPU: a rank blocked in Recv for %d ms, ours and Open MPI's", tr.key, ms)
	if v, err := m.mpirun(2, nil, tr.env, m.p.Ranks, "idle", "-ms", strconv.Itoa(ms)); err != nil {
		m.fail(tr.key+".idle.ours", err)
	} else {
		m.take(v, "idle.rank_pct", tr.key+".idle.ours.rank")
		if _, ok := v["idle.pager_pct"]; ok {
			m.take(v, "idle.pager_pct", tr.key+".idle.ours.pager")
			m.r.S["idle.pager_comm"] = v["idle.pager_comm"]
		} else if kids, ok := v["idle.pager_none"]; ok {
			m.r.Err[tr.key+".idle.ours.pager"] = fmt.Sprintf("no page server found among the rank's %s child processes (a child named dsmexec-pager, or the only child)", kids)
		}
	}
	if m.haveOMPI() {
		if v, err := m.ompirun(tr, 2, m.p.OMPI.Idle, strconv.Itoa(ms)); err != nil {
			m.fail(tr.key+".idle.ompi", err)
		} else {
			m.take(v, "idle.rank_pct", tr.key+".idle.ompi.rank")
		}
	}
}

// rawRTT runs the raw TCP baseline: a server process and a client process.
func (m *measurer) rawRTT() {
	n := m.p.Counts.RawRTT
	m.step("raw TCP round trip: %d of 16 B -> 4 KiB", n)
	if err := m.rawRTTOnce(n); err != nil {
		m.fail("raw", err)
	}
}

func (m *measurer) rawRTTOnce(n int) error {
	ctx, cancel := context.WithTimeout(m.ctx, 2*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, m.p.RawRTT, "serve")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Wait()
	defer srv.Process.Kill() // a no-op once it has exited after the client closed
	sc := bufio.NewScanner(out)
	addr := ""
	if sc.Scan() {
		addr, _ = strings.CutPrefix(sc.Text(), "ADDR ")
	}
	if addr == "" {
		return fmt.Errorf("rawrtt serve printed no address")
	}
	cout, _, err := run(ctx, 2*time.Minute, nil, m.p.RawRTT, "client", "-addr", addr, "-n", strconv.Itoa(n))
	if err != nil {
		return err
	}
	v := parseBench(cout)
	for _, k := range []string{"mean", "p50", "p99", "max"} {
		m.take(v, "rawrtt."+k+"_ns", "raw."+k)
	}
	return nil
}

// faults: the remote read-fault variants (2 ranks) and the write fault on a
// page three ranks read (3 ranks), with the default shared region.
func (m *measurer) faults() {
	c := m.p.Counts
	m.step("read faults: %d pages (then %d per variant: GOMAXPROCS=1, =2, 4 goroutines, DSMEXEC_TRANSPORT=tcp); write faults: %d pages", c.ReadPages, c.VariantPages, c.WritePages)
	for _, rv := range readVariants {
		pages := c.VariantPages
		if rv.main {
			pages = c.ReadPages
		}
		m.readFault("rf."+rv.key, rv.env, pages, rv.goroutines)
	}
	key := "wf"
	v, err := m.mpirun(3, nil, nil, m.p.Ranks, "writefault", "-pages", strconv.Itoa(c.WritePages))
	if err != nil {
		m.fail(key, err)
		return
	}
	for _, k := range []string{"mean", "p50", "p99", "max"} {
		m.take(v, "writefault."+k+"_ns", key+"."+k)
	}
	m.take(v, "writefault.over1ms", key+".over1ms")
	m.take(v, "writefault.dsm_mean_fault_ns", key+".dsm")
}

func (m *measurer) readFault(key, env string, pages, goroutines int) {
	var extra []string
	if env != "" {
		extra = []string{"-x", env}
	}
	v, err := m.mpirun(2, extra, nil, m.p.Ranks, "readfault", "-pages", strconv.Itoa(pages), "-goroutines", strconv.Itoa(goroutines))
	if err != nil {
		m.fail(key, err)
		return
	}
	for _, k := range []string{"mean", "p50", "p99", "max"} {
		m.take(v, "readfault."+k+"_ns", key+"."+k)
	}
	m.take(v, "readfault.over1ms", key+".over1ms")
	m.take(v, "readfault.pages_per_s", key+".pps")
	m.take(v, "readfault.dsm_mean_fault_ns", key+".dsm")
	if b, ok := v["readfault.backend"]; ok {
		m.r.S["backend"] = b
	}
}

func (m *measurer) allreduce(tr transport, nodsm []string) {
	c := m.p.Counts
	elems := []int{1, 1 << 17}
	m.step("%s: allreduce: %d of 8 B, %d of 1 MiB, at -np %v", tr.key, c.ARSmall, c.ARBig, collNP)
	args := []string{strconv.Itoa(elems[0]), strconv.Itoa(c.ARSmall), strconv.Itoa(elems[1]), strconv.Itoa(c.ARBig)}
	for _, np := range collNP {
		if m.p.Allreduce != "" {
			v, err := m.mpirun(np, nodsm, tr.env, m.p.Allreduce, "-small", args[0], "-n", args[1], "-large", args[2], "-big", args[3])
			if err != nil {
				m.fail(fmt.Sprintf("%s.ar.ours.%d", tr.key, np), err)
			} else {
				for _, e := range elems {
					m.take(v, fmt.Sprintf("allreduce.%d.mean_ns", e), fmt.Sprintf("%s.ar.ours.%d.%d", tr.key, np, e))
				}
			}
		}
		if m.haveOMPI() {
			v, err := m.ompirun(tr, np, m.p.OMPI.Allreduce, args...)
			if err != nil {
				m.fail(fmt.Sprintf("%s.ar.ompi.%d", tr.key, np), err)
			} else {
				for _, e := range elems {
					m.take(v, fmt.Sprintf("allreduce.%d.mean_ns", e), fmt.Sprintf("%s.ar.ompi.%d.%d", tr.key, np, e))
				}
			}
		}
	}
}

// apiElems are the sizes of the API collective rows in float64s: small is
// one float64 (per block for Alltoall and ReduceScatter), large is 1 MiB of
// input per rank (so 128 KiB blocks at 8 ranks).
func apiElems(what string, np int) (small, large int) {
	if what == "scan" {
		return 1, 1 << 17
	}
	return 1, (1 << 17) / np
}

// api: the rows of issue 9's API (scripts/bench/ranksapi): typed against
// []byte messages and Isend/Irecv against Send/Recv, both ours only, and
// Alltoall, Scan, ReduceScatter at 8 ranks against Open MPI's.
func (m *measurer) api(tr transport, nodsm []string) {
	c := m.p.Counts
	m.step("%s: API of issue 9: typed and non-blocking ping-pong, %v at -np %d", tr.key, apiWhat, apiNP)
	if m.p.RanksAPI != "" {
		if v, err := m.mpirun(2, nodsm, tr.env, m.p.RanksAPI, "typed", "-n", strconv.Itoa(c.PingSmall), "-big", strconv.Itoa(c.PingBig)); err != nil {
			m.fail(tr.key+".typed", err)
		} else {
			for _, b := range []int{8, 1 << 20} {
				for _, kind := range []string{"bytes", "float64"} {
					m.take(v, fmt.Sprintf("typed.%s.%d.oneway_ns", kind, b), fmt.Sprintf("%s.typed.%s.%d", tr.key, kind, b))
				}
			}
		}
		if v, err := m.mpirun(2, nodsm, tr.env, m.p.RanksAPI, "isend", "-n", strconv.Itoa(c.PingSmall)); err != nil {
			m.fail(tr.key+".isend", err)
		} else {
			for _, kind := range []string{"blocking", "nonblocking"} {
				m.take(v, "isend."+kind+".oneway_ns", tr.key+".isend."+kind)
			}
		}
	}
	for _, what := range apiWhat {
		small, large := apiElems(what, apiNP)
		args := []string{strconv.Itoa(c.CollSmall), strconv.Itoa(small), strconv.Itoa(large), strconv.Itoa(c.CollBig)}
		take := func(v values, who string) {
			for _, e := range []int{small, large} {
				m.take(v, fmt.Sprintf("%s.%d.mean_ns", what, e), fmt.Sprintf("%s.coll.%s.%s.%d", tr.key, who, what, e))
			}
		}
		if m.p.RanksAPI != "" {
			v, err := m.mpirun(apiNP, nodsm, tr.env, m.p.RanksAPI, what, "-n", args[0], "-small", args[1], "-large", args[2], "-big", args[3])
			if err != nil {
				m.fail(fmt.Sprintf("%s.coll.ours.%s", tr.key, what), err)
			} else {
				take(v, "ours")
			}
		}
		if m.haveOMPI() {
			v, err := m.ompirun(tr, apiNP, m.p.OMPI.Collectives, append([]string{what}, args...)...)
			if err != nil {
				m.fail(fmt.Sprintf("%s.coll.ompi.%s", tr.key, what), err)
			} else {
				take(v, "ompi")
			}
		}
	}
}

// multihost: launch across the machine file's hosts (the first run copies
// the binary to every host, later runs find it cached) and the remote read
// fault between two hosts.
func (m *measurer) multihost() {
	c := m.p.Counts
	progress("multi-host launch: -np 8 first run (copies hello), then %d cached runs at -np %v", c.LaunchReps, launchNP)
	mf := []string{"-machinefile", m.p.Machinefile}
	_, el, err := run(m.ctx, 3*time.Minute, nil, m.p.Mpirun, append(mf, "-np", "8", m.p.HelloFresh)...)
	if err != nil {
		m.fail("mh.launch", err)
		return
	}
	m.r.V["mh.launch.first.8"] = float64(el.Nanoseconds())
	for _, np := range launchNP {
		var times []time.Duration
		key := fmt.Sprintf("mh.launch.cached.%d", np)
		for rep := 0; rep < c.LaunchReps; rep++ {
			_, el, err := run(m.ctx, time.Minute, nil, m.p.Mpirun, append(mf, "-np", strconv.Itoa(np), m.p.HelloFresh)...)
			if err != nil {
				m.fail(key, err)
				times = nil
				break
			}
			times = append(times, el)
		}
		if times != nil {
			m.r.V[key] = float64(median(times).Nanoseconds())
		}
	}
	progress("multi-host read faults: %d pages", c.ReadPages)
	m.readFault("mh.rf", "", c.ReadPages, 1)
}
