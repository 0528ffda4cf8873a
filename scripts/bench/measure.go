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

// Result keys (values in ns, bytes/s or counts):
//
//	launch.{dsm,sigsegv,nodsm,ompi}.N  median wall time of the whole launch command, N ranks
//	barrier.{ours,ompi}.N            mean barrier time
//	pp.{ours,ompi}.{oneway,bw}       8 B one-way latency, 1 MiB bandwidth (bytes/s)
//	raw.{mean,p50,p99,max}           raw Go TCP round trip, 16 B request, 4 KiB reply
//	rf.V.{mean,p50,p99,max,over1ms,pps,dsm}  remote read fault, variant V (see readVariants)
//	wf.{mean,p50,p99,max,over1ms,dsm}        remote write fault on a page read by 3 ranks
//	ar.{ours,ompi}.N.E               mean allreduce of E float64s, N ranks
//	mh.launch.first.8, mh.launch.cached.N, mh.rf.*   with the machine file

var launchNP = []int{1, 4, 8}
var collNP = []int{2, 4, 8}

// ompiFlags force Open MPI onto its TCP transport over lo.
var ompiFlags = []string{"--allow-run-as-root", "--oversubscribe", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"}

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
	m.launch(nodsm)
	// Rounds: every figure once per round, ours and Open MPI's in turn, so
	// that other load on the machine falls on both; each figure is the
	// median of its rounds.
	for m.round = 0; m.round < p.Counts.Rounds && ctx.Err() == nil; m.round++ {
		if m.round > 0 {
			progress("round %d of %d: barrier, ping-pong, raw round trip, faults, allreduce", m.round+1, p.Counts.Rounds)
		}
		for _, step := range []func(){
			func() { m.barrier(nodsm) },
			func() { m.pingpong(nodsm) },
			m.rawRTT,
			m.faults,
			func() { m.allreduce(nodsm) },
		} {
			if ctx.Err() == nil {
				step()
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

// mpirun runs a bench program under bin/mpirun and returns its BENCH lines.
func (m *measurer) mpirun(np int, extra []string, prog string, args ...string) (values, error) {
	a := []string{"-np", strconv.Itoa(np)}
	if m.p.Machinefile != "" {
		a = append(a, "-machinefile", m.p.Machinefile)
	}
	a = append(append(a, extra...), prog)
	out, _, err := run(m.ctx, 3*time.Minute, nil, m.p.Mpirun, append(a, args...)...)
	if err != nil {
		return nil, err
	}
	return parseBench(out), nil
}

// ompirun runs a C program under Open MPI's mpirun.
func (m *measurer) ompirun(np int, prog string, args ...string) (values, error) {
	a := append(append([]string(nil), ompiFlags...), "-np", strconv.Itoa(np), prog)
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

func (m *measurer) barrier(nodsm []string) {
	n := m.p.Counts.Barriers
	m.step("barrier: %d barriers at -np %v", n, collNP)
	for _, np := range collNP {
		key := fmt.Sprintf("barrier.ours.%d", np)
		if v, err := m.mpirun(np, nodsm, m.p.Ranks, "barrier", "-n", strconv.Itoa(n)); err != nil {
			m.fail(key, err)
		} else {
			m.take(v, "barrier.mean_ns", key)
		}
		if m.haveOMPI() {
			key := fmt.Sprintf("barrier.ompi.%d", np)
			if v, err := m.ompirun(np, m.p.OMPI.Barrier, strconv.Itoa(n)); err != nil {
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

func (m *measurer) pingpong(nodsm []string) {
	c := m.p.Counts
	m.step("ping-pong: %d round trips of 8 B, %d of 1 MiB", c.PingSmall, c.PingBig)
	args := []string{"-small", "8", "-n", strconv.Itoa(c.PingSmall), "-size", strconv.Itoa(1 << 20), "-big", strconv.Itoa(c.PingBig)}
	if v, err := m.mpirun(2, nodsm, m.p.Ranks, append([]string{"pingpong"}, args...)...); err != nil {
		m.fail("pp.ours", err)
	} else {
		m.take(v, "pingpong.oneway_ns", "pp.ours.oneway")
		m.take(v, "pingpong.bandwidth_Bps", "pp.ours.bw")
	}
	if m.haveOMPI() {
		if v, err := m.ompirun(2, m.p.OMPI.Pingpong, "8", strconv.Itoa(c.PingSmall), strconv.Itoa(1<<20), strconv.Itoa(c.PingBig)); err != nil {
			m.fail("pp.ompi", err)
		} else {
			m.take(v, "pingpong.oneway_ns", "pp.ompi.oneway")
			m.take(v, "pingpong.bandwidth_Bps", "pp.ompi.bw")
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
	m.step("read faults: %d pages (then %d per variant: GOMAXPROCS=1, =2, 4 goroutines); write faults: %d pages", c.ReadPages, c.VariantPages, c.WritePages)
	for _, rv := range readVariants {
		pages := c.VariantPages
		if rv.main {
			pages = c.ReadPages
		}
		m.readFault("rf."+rv.key, rv.env, pages, rv.goroutines)
	}
	key := "wf"
	v, err := m.mpirun(3, nil, m.p.Ranks, "writefault", "-pages", strconv.Itoa(c.WritePages))
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
	v, err := m.mpirun(2, extra, m.p.Ranks, "readfault", "-pages", strconv.Itoa(pages), "-goroutines", strconv.Itoa(goroutines))
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

func (m *measurer) allreduce(nodsm []string) {
	c := m.p.Counts
	elems := []int{1, 1 << 17}
	m.step("allreduce: %d of 8 B, %d of 1 MiB, at -np %v", c.ARSmall, c.ARBig, collNP)
	args := []string{strconv.Itoa(elems[0]), strconv.Itoa(c.ARSmall), strconv.Itoa(elems[1]), strconv.Itoa(c.ARBig)}
	for _, np := range collNP {
		if m.p.Allreduce != "" {
			v, err := m.mpirun(np, nodsm, m.p.Allreduce, "-small", args[0], "-n", args[1], "-large", args[2], "-big", args[3])
			if err != nil {
				m.fail(fmt.Sprintf("ar.ours.%d", np), err)
			} else {
				for _, e := range elems {
					m.take(v, fmt.Sprintf("allreduce.%d.mean_ns", e), fmt.Sprintf("ar.ours.%d.%d", np, e))
				}
			}
		}
		if m.haveOMPI() {
			v, err := m.ompirun(np, m.p.OMPI.Allreduce, args...)
			if err != nil {
				m.fail(fmt.Sprintf("ar.ompi.%d", np), err)
			} else {
				for _, e := range elems {
					m.take(v, fmt.Sprintf("allreduce.%d.mean_ns", e), fmt.Sprintf("ar.ompi.%d.%d", np, e))
				}
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
