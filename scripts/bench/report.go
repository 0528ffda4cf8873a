package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// reporter prints the figures; a missing figure's cell says "n/a [k]" and
// footnote k says why.
type reporter struct {
	w     io.Writer
	r     *results
	notes []string
	seen  map[string]int
}

// why is the recorded reason a figure is missing: for the key itself or
// for a dot-prefix of it ("barrier.ours" covers "barrier.ours.8").
func (rp *reporter) why(key string) string {
	for k := key; ; {
		if s, ok := rp.r.Err[k]; ok {
			return s
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			return ""
		}
		k = k[:i]
	}
}

// missing is the cell of a figure that was not measured.
func (rp *reporter) missing(key string) string {
	reason := rp.why(key)
	if reason == "" {
		return "—"
	}
	if n, ok := rp.seen[reason]; ok {
		return fmt.Sprintf("n/a [%d]", n)
	}
	rp.notes = append(rp.notes, reason)
	rp.seen[reason] = len(rp.notes)
	return fmt.Sprintf("n/a [%d]", len(rp.notes))
}

func (rp *reporter) get(key string) (float64, bool) {
	v, ok := rp.r.V[key]
	return v, ok
}

// dur formats a time in ns.
func (rp *reporter) dur(key string) string {
	v, ok := rp.get(key)
	if !ok {
		return rp.missing(key)
	}
	return fmtDur(v)
}

func fmtDur(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e4:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	case ns < 1e6:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	case ns < 1e7:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns < 1e9:
		return fmt.Sprintf("%.1f ms", ns/1e6)
	}
	return fmt.Sprintf("%.2f s", ns/1e9)
}

// ratio is ours/base as "0.42×", or "—" when either is missing.
func (rp *reporter) ratio(ours, base string) (float64, string) {
	a, ok1 := rp.get(ours)
	b, ok2 := rp.get(base)
	if !ok1 || !ok2 || b == 0 {
		return 0, "—"
	}
	return a / b, fmtRatio(a / b)
}

// fmtRatio shows three significant digits, so that a ratio just above a
// goal of 0.1× does not print as 0.10× beside "missed".
func fmtRatio(x float64) string {
	switch {
	case x < 0.1:
		return fmt.Sprintf("%.4f×", x)
	case x < 1:
		return fmt.Sprintf("%.3f×", x)
	case x < 10:
		return fmt.Sprintf("%.2f×", x)
	}
	return fmt.Sprintf("%.1f×", x)
}

// goal says whether a ratio meets a goal; "" when there is no ratio.
func goal(s string, ok bool) string {
	if s == "—" {
		return ""
	}
	if ok {
		return "met"
	}
	return "missed"
}

func (rp *reporter) table(header []string, rows [][]string) {
	tw := tabwriter.NewWriter(rp.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   "+strings.Join(header, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, "   "+strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
}

func report(w io.Writer, p *plan, r *results) {
	rp := &reporter{w: w, r: r, seen: map[string]int{}}
	c := p.Counts
	haveOMPI := r.S["ompi"] == ""
	mh := os.Getenv("DSMEXEC_BENCH_MACHINEFILE") != ""

	fmt.Fprintln(w)
	fmt.Fprintln(w, "dsmexec benchmarks (make bench = go run ./scripts/bench)")
	fmt.Fprintf(w, "machine: %d CPUs%s, Linux %s, %s", runtime.NumCPU(), cpuModel(), kernel(), runtime.Version())
	if b := r.S["backend"]; b != "" {
		fmt.Fprintf(w, ", shared-memory backend %s", b)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "network: %s\n", r.S["where"])
	if haveOMPI {
		fmt.Fprintf(w, "baseline: %s (mpirun.openmpi %s, then --mca btl tcp,self --mca btl_tcp_if_include lo\n", ompiVersion(p.OMPI.Mpirun), strings.Join(ompiBase, " "))
		fmt.Fprintln(w, "          for the TCP rows and the launch, --mca btl self,vader for the shared-memory rows)")
	} else {
		fmt.Fprintf(w, "baseline: %s; Open MPI figures and their ratios are left out\n", r.S["ompi"])
	}
	fmt.Fprintln(w, "ratio = dsmexec / baseline, both measured in this run: below 1× is faster (for bandwidth, above 1× is more).")
	fmt.Fprintln(w, "Nothing here is asserted; \"met\"/\"missed\" compare a ratio with the project's goal.")
	if p.Quick {
		fmt.Fprintln(w, "-quick: repetitions cut about 10×; the figures are noisier than those of a full run.")
	}
	fmt.Fprintf(w, "repetitions: launch %d runs (+1 warm-up) each; then %d round(s), each figure the median of its rounds, of:\n", c.LaunchReps, c.Rounds)
	fmt.Fprintf(w, "  %d-%d barriers; %d + %d ping-pongs; %d raw round trips; %d read faults (%d per variant), %d write faults;\n", barriers(c, collNP[2]), barriers(c, collNP[0]), c.PingSmall, c.PingBig, c.RawRTT, c.ReadPages, c.VariantPages, c.WritePages)
	fmt.Fprintf(w, "  %d + %d allreduces; idle %d ms; API rows %d + %d collective calls. Each message row over both transports.\n", c.ARSmall, c.ARBig, c.IdleMs, c.CollSmall, c.CollBig)
	fmt.Fprintf(w, "Whole run: %s.\n", r.S["elapsed"])
	fmt.Fprintf(w, "load average (1 min) before measuring: %s; after: %s (this run's own ranks included). Other work slows both sides.\n", r.S["load.start"], r.S["load.end"])

	// 1. Launch.
	fmt.Fprintf(w, "\n1. Launch: wall time of the whole command, median of %d runs\n", c.LaunchReps)
	fmt.Fprintln(w, "   ours: bin/mpirun -np N bin/hello (default 64 MiB shared region, userfaultfd: one page server per host);")
	fmt.Fprintln(w, "   the same with DSMEXEC_FAULT=sigsegv (no pager process), and with -dsm-size 0 (no shared region)")
	fmt.Fprintln(w, "   baseline: Open MPI mpirun -np N ./mpi_init_finalize (C, MPI_Init + MPI_Finalize)")
	fmt.Fprintln(w, "   goal: ≤ 0.1× Open MPI and under 50 ms")
	hdr := []string{"N", "dsmexec", "ratio", "goal", "sigsegv", "ratio", "-dsm-size 0", "ratio", "Open MPI"}
	if mh {
		hdr = append(hdr, "machine file, cached", "÷ one host")
	}
	var rows [][]string
	for _, np := range launchNP {
		k := func(s string) string { return fmt.Sprintf("launch.%s.%d", s, np) }
		x, rs := rp.ratio(k("dsm"), k("ompi"))
		ours, _ := rp.get(k("dsm"))
		_, rs0 := rp.ratio(k("nodsm"), k("ompi"))
		_, rss := rp.ratio(k("sigsegv"), k("ompi"))
		g := goal(rs, x <= 0.1 && ours < 50e6)
		if _, ok := rp.get(k("dsm")); ok && rs == "—" {
			g = goal("", ours < 50e6) + " (50 ms only)"
		}
		row := []string{fmt.Sprint(np), rp.dur(k("dsm")), rs, g, rp.dur(k("sigsegv")), rss, rp.dur(k("nodsm")), rs0, ompiCell(rp, haveOMPI, k("ompi"))}
		if mh {
			_, rmh := rp.ratio(fmt.Sprintf("mh.launch.cached.%d", np), k("dsm"))
			row = append(row, rp.dur(fmt.Sprintf("mh.launch.cached.%d", np)), rmh)
		}
		rows = append(rows, row)
	}
	rp.table(hdr, rows)
	if mh {
		fmt.Fprintf(w, "   machine file, -np 8, first run (copies the binary to every host): %s\n", rp.dur("mh.launch.first.8"))
	}

	// 2-4, 6, 7: the message rows, once per transport.
	fmt.Fprintln(w, "\nMessage passing: every row below twice, ours over each transport beside the Open MPI transport it is compared with:")
	for _, tr := range transports {
		fmt.Fprintf(w, "   %s: dsmexec %s against Open MPI %s\n", trShort(tr), tr.label, tr.ompi)
	}
	fmt.Fprintln(w, "   (ranks that ignore DSMEXEC_TRANSPORT, before the shared-memory transport of issue 8, measure TCP in both dsmexec columns)")

	fmt.Fprintf(w, "\n2. Barrier latency: mean over %d / %d / %d barriers at N=%d / %d / %d (after 100 untimed), rank 0's clock\n",
		barriers(c, collNP[0]), barriers(c, collNP[1]), barriers(c, collNP[2]), collNP[0], collNP[1], collNP[2])
	var mrows []mrow
	for _, np := range collNP {
		mrows = append(mrows, mrow{
			label: fmt.Sprintf("N=%d", np),
			key:   func(tr transport, who string) string { return fmt.Sprintf("%s.barrier.%s.%d", tr.key, who, np) },
			goal: func(tr transport) *goalSpec {
				if tr.key == "tcp" {
					return le(1.0)
				}
				if np == 2 {
					return le(1.5)
				}
				return nil
			},
		})
	}
	rp.ttable(haveOMPI, "Open MPI", mrows)

	fmt.Fprintf(w, "\n3. Ping-pong, 2 ranks: 8 B one-way latency (half the mean of %d round trips), 1 MiB bandwidth (%d round trips);\n", c.PingSmall, c.PingBig)
	fmt.Fprintln(w, "   context switches (voluntary + involuntary, getrusage of each rank process: all its threads) and CPU time")
	fmt.Fprintln(w, "   per 8 B round trip, the two ranks' sum, over the same timed round trips")
	ppKey := func(what string) func(tr transport, who string) string {
		return func(tr transport, who string) string { return fmt.Sprintf("%s.pp.%s.%s", tr.key, who, what) }
	}
	rp.ttable(haveOMPI, "Open MPI", []mrow{
		{label: "8 B one-way latency", key: ppKey("oneway"), goal: byTransport(le(1.2), le(1.5))},
		{label: "1 MiB bandwidth", key: ppKey("bw"), u: uBW, goal: byTransport(ge(0.9), ge(1.0))},
		{label: "context switches / round trip", key: ppKey("ctxsw"), u: uCount},
		{label: "CPU time / round trip", key: ppKey("cpu")},
	})
	fmt.Fprintln(w, "   with mpirun -trace FILE (every Send and Recv recorded and shipped to mpirun), against the same run without; goal ≤ 1.5×")
	rp.ttable(true, "untraced", []mrow{{label: "8 B one-way, traced", key: func(tr transport, who string) string {
		if who == "ompi" {
			return tr.key + ".pp.ours.oneway"
		}
		return tr.key + ".pp.traced.oneway"
	}, goal: byTransport(le(1.5), le(1.5))}})
	fmt.Fprintln(w, "   recording off (no -trace: each call site's one branch on a nil tracer), against the same program built with")
	fmt.Fprintln(w, "   -tags dsmexec_notrace (no call sites at all), in the same rounds; goal ≤ 1.02×")
	rp.ttable(true, "no hooks", []mrow{{label: "8 B one-way, tracing off", key: func(tr transport, who string) string {
		if who == "ompi" {
			return tr.key + ".pp.notrace.oneway"
		}
		return tr.key + ".pp.ours.oneway"
	}, goal: byTransport(le(1.02), le(1.02))}})

	fmt.Fprintf(w, "\n4. CPU while idle: rank 1 blocked in Recv for %d ms while rank 0 sleeps; utime+stime of /proc/PID/stat over that time,\n", c.IdleMs)
	fmt.Fprintln(w, "   in % of one CPU (ours with the default shared region: the host's page server, found by name;")
	fmt.Fprintln(w, "   Open MPI has none, and busy-polls while it waits)")
	if comm := r.S["idle.pager_comm"]; comm != "" {
		fmt.Fprintf(w, "   (the page server was found as the process named %q)\n", comm)
	}
	idleKey := func(what string) func(tr transport, who string) string {
		return func(tr transport, who string) string { return fmt.Sprintf("%s.idle.%s.%s", tr.key, who, what) }
	}
	idleGoal := func(transport) *goalSpec {
		return &goalSpec{text: "< 5% of a CPU", absolute: true, ok: func(_, ours float64) bool { return ours < 5 }}
	}
	rp.ttable(haveOMPI, "Open MPI", []mrow{
		{label: "rank blocked in Recv", key: idleKey("rank"), u: uPct, goal: idleGoal},
		{label: "its page server", key: idleKey("pager"), u: uPct, goal: idleGoal, noBase: true},
	})

	// 5. Shared memory.
	fmt.Fprintln(w, "\n5. Shared memory: remote fault service time, timed around one load or store by the faulting goroutine")
	fmt.Fprintf(w, "   baseline: raw Go TCP round trip between two processes, 16 B request, 4 KiB reply (%d round trips):\n", c.RawRTT)
	fmt.Fprintf(w, "   mean %s, p50 %s, p99 %s, max %s\n", rp.dur("raw.mean"), rp.dur("raw.p50"), rp.dur("raw.p99"), rp.dur("raw.max"))
	fmt.Fprintln(w, "   goals: read fault mean ≤ 1.5× the raw round trip's mean, p99 ≤ 3× it, none ≥ 10 ms; write fault mean ≤ 3×")
	rows = nil
	add := func(label, key string, g faultGoal) {
		_, rs := rp.ratio(key+".mean", "raw.mean")
		_, r99 := rp.ratio(key+".p99", "raw.mean")
		row := []string{label, rp.dur(key + ".mean"), rp.dur(key + ".p50"), rp.dur(key + ".p99"), rp.dur(key + ".max"), rs, r99, rp.faultGoal(key, g)}
		if n, ok := rp.get(key + ".over1ms"); ok {
			row = append(row, fmt.Sprintf("%.0f", n))
		} else {
			row = append(row, rp.missing(key))
		}
		if pps, ok := rp.get(key + ".pps"); ok {
			row = append(row, fmt.Sprintf("%.0f", pps))
		} else {
			row = append(row, "")
		}
		row = append(row, rp.dur(key+".dsm"))
		rows = append(rows, row)
	}
	readGoal := faultGoal{mean: 1.5, p99: 3, max: true}
	add(fmt.Sprintf("read fault, 2 ranks, %d pages", c.ReadPages), "rf.main", readGoal)
	for _, v := range readVariants[1:] {
		g := faultGoal{max: true}
		if v.key == "tcp" { // the goal holds over TCP too (as across hosts)
			g = readGoal
		}
		add(fmt.Sprintf("read fault, %s (%d pages)", v.label, c.VariantPages), "rf."+v.key, g)
	}
	add(fmt.Sprintf("write fault, page read by 3 ranks (%d pages)", c.WritePages), "wf", faultGoal{mean: 3, max: true})
	if mh {
		add(fmt.Sprintf("read fault across hosts (machine file, %d pages)", c.ReadPages), "mh.rf", readGoal)
	}
	rp.table([]string{"figure", "mean", "p50", "p99", "max", "mean ÷ raw", "p99 ÷ raw", "goal", "≥ 1 ms", "pages/s", "dsm Stats mean"}, rows)
	fmt.Fprintln(w, "   (\"≥ 1 ms\" counts the faults that took a millisecond or more: a median of the rounds, like every cell.)")
	fmt.Fprintln(w, "   (\"dsm Stats mean\" is the fault time the shared memory measures itself, Stats().MeanFaultTime, warm-up faults included.)")
	fmt.Fprintln(w, "   A write fault on a page others hold needs at least two round trips: the home invalidates the copies, then grants.")

	// 6. Allreduce.
	fmt.Fprintf(w, "\n6. Allreduce (sum of float64s): mean of %d (8 B) and %d (1 MiB) after a few untimed, rank 0's clock\n", c.ARSmall, c.ARBig)
	mrows = nil
	for _, e := range []int{1, 1 << 17} {
		for _, np := range collNP {
			g := le(1.2)
			size := "8 B"
			if e != 1 {
				g, size = le(1.5), "1 MiB"
			}
			mrows = append(mrows, mrow{
				label: fmt.Sprintf("%s, N=%d", size, np),
				key:   func(tr transport, who string) string { return fmt.Sprintf("%s.ar.%s.%d.%d", tr.key, who, np, e) },
				goal:  byTransport(g, nil),
			})
		}
	}
	rp.ttable(haveOMPI, "Open MPI", mrows)

	// 7. The API of issue 9.
	fmt.Fprintln(w, "\n7. The API of issue 9 (scripts/bench/ranksapi, built with -tags benchapi)")
	fmt.Fprintf(w, "   typed: SendSlice/RecvSlice of []float64 against Send/Recv of a []byte of the same bytes, ping-pong one-way (%d / %d round trips)\n", c.PingSmall, c.PingBig)
	fmt.Fprintf(w, "   non-blocking: Irecv posted, Isend, Wait, against Send/Recv, 8 B ping-pong one-way (%d round trips)\n", c.PingSmall)
	typedKey := func(b int) func(tr transport, who string) string {
		return func(tr transport, who string) string {
			kind := "float64"
			if who == "ompi" {
				kind = "bytes"
			}
			return fmt.Sprintf("%s.typed.%s.%d", tr.key, kind, b)
		}
	}
	rp.ttable(true, "baseline", []mrow{
		{label: "8 B: []float64 vs []byte", key: typedKey(8), goal: byTransport(le(1.1), le(1.1))},
		{label: "1 MiB: []float64 vs []byte", key: typedKey(1 << 20), goal: byTransport(le(1.1), le(1.1))},
		{label: "8 B: Isend/Irecv vs Send/Recv", key: func(tr transport, who string) string {
			if who == "ompi" {
				return tr.key + ".isend.blocking"
			}
			return tr.key + ".isend.nonblocking"
		}, goal: byTransport(le(1.2), le(1.2))},
	})
	fmt.Fprintf(w, "   collectives at %d ranks on float64s, mean of %d (small) and %d (1 MiB) calls, against MPI_Alltoall, MPI_Scan,\n", apiNP, c.CollSmall, c.CollBig)
	fmt.Fprintln(w, "   MPI_Reduce_scatter_block (MPI_SUM); small: one float64 (per block for Alltoall and ReduceScatter), 1 MiB: of input per rank")
	mrows = nil
	for _, what := range apiWhat {
		small, large := apiElems(what, apiNP)
		for _, e := range []int{small, large} {
			size := fmt.Sprintf("%d B", 8*e)
			if e != small {
				size = "1 MiB"
			}
			mrows = append(mrows, mrow{
				label: fmt.Sprintf("%s, %s", apiName[what], size),
				key:   func(tr transport, who string) string { return fmt.Sprintf("%s.coll.%s.%s.%d", tr.key, who, what, e) },
				goal:  byTransport(le(1.5), nil),
			})
		}
	}
	rp.ttable(haveOMPI, "Open MPI", mrows)

	// 8. Multi-host.
	fmt.Fprintln(w, "\n8. Multi-host")
	if mh {
		fmt.Fprintf(w, "   with -machinefile %s%s: see the machine-file columns of 1 and the last row of 5.\n", os.Getenv("DSMEXEC_BENCH_MACHINEFILE"),
			map[bool]string{true: " (mpirun run in network namespace " + os.Getenv("DSMEXEC_BENCH_NETNS") + ")"}[os.Getenv("DSMEXEC_BENCH_NETNS") != ""])
		if why := rp.why("mh"); why != "" {
			fmt.Fprintf(w, "   not measured: %s\n", why)
		}
	} else {
		fmt.Fprintln(w, "   not run: set DSMEXEC_BENCH_MACHINEFILE (e.g. /run/dsm-cluster/machinefile from scripts/cluster-up.sh) and")
		fmt.Fprintln(w, "   DSMEXEC_BENCH_NETNS=dsm-l to add launch across hosts (first run, then cached) and the cross-host read fault.")
	}

	rp.spread()
	rp.timeSpent()
	if len(r.Notes) > 0 || len(rp.notes) > 0 {
		fmt.Fprintln(w, "\nNotes")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "   - %s\n", n)
		}
		for i, n := range rp.notes {
			fmt.Fprintf(w, "   [%d] %s\n", i+1, n)
		}
	}
	// Failures of figures no cell showed.
	var rest []string
	for k, v := range r.Err {
		if _, shown := rp.seen[v]; !shown {
			rest = append(rest, k+": "+v)
		}
	}
	sort.Strings(rest)
	for _, s := range rest {
		fmt.Fprintf(w, "   - %s\n", s)
	}
}

// spread lists the figures whose rounds disagree by more than 40%
// (largest over smallest).
func (rp *reporter) spread() {
	var lines []string
	for k, xs := range rp.r.R {
		if len(xs) < 2 || !headline(k) {
			continue
		}
		lo, hi := slices.Min(xs), slices.Max(xs)
		switch unitOf(k) {
		case uPct: // near zero a ratio says nothing (0.3% against 0.1%): points
			if hi-lo <= 5 {
				continue
			}
		case uCount:
			if hi-lo <= 0.5 {
				continue
			}
		default:
			if lo <= 0 || hi/lo <= 1.4 {
				continue
			}
		}
		var s []string
		for _, x := range xs {
			s = append(s, fmtVal(x, unitOf(k)))
		}
		lines = append(lines, fmt.Sprintf("%s: %s", label(k), strings.Join(s, ", ")))
	}
	if len(lines) == 0 {
		return
	}
	sort.Strings(lines)
	fmt.Fprintln(rp.w, "\nRun-to-run spread above 40% (for % of a CPU: 5 points; context switches: 0.5) — every round, in order; the tables show the median:")
	for _, l := range lines {
		fmt.Fprintf(rp.w, "   %s\n", l)
	}
}

// label names a result key in words.
func label(k string) string {
	suffix := ""
	for _, tr := range transports {
		if rest, ok := strings.CutPrefix(k, tr.key+"."); ok {
			k, suffix = rest, ", "+trShort(tr)
		}
	}
	f := strings.Split(k, ".")
	who := func(s string) string {
		if s == "ompi" {
			return "Open MPI"
		}
		return "dsmexec"
	}
	switch {
	case f[0] == "barrier" && len(f) == 3:
		return fmt.Sprintf("barrier, %s, %s ranks%s", who(f[1]), f[2], suffix)
	case f[0] == "ar" && len(f) == 4:
		size := "8 B"
		if f[3] != "1" {
			size = "1 MiB"
		}
		return fmt.Sprintf("allreduce %s, %s, %s ranks%s", size, who(f[1]), f[2], suffix)
	case f[0] == "pp" && len(f) == 3:
		what := map[string]string{"oneway": "8 B one-way latency", "bw": "1 MiB bandwidth", "ctxsw": "context switches per round trip", "cpu": "CPU per round trip"}[f[2]]
		return fmt.Sprintf("%s, %s%s", what, who(f[1]), suffix)
	case f[0] == "idle" && len(f) == 3:
		what := "rank blocked in Recv"
		if f[2] == "pager" {
			what = "its page server"
		}
		return fmt.Sprintf("idle CPU, %s, %s%s", what, who(f[1]), suffix)
	case f[0] == "typed" && len(f) == 3:
		return fmt.Sprintf("%s B one-way as []%s%s", f[2], f[1], suffix)
	case f[0] == "isend" && len(f) == 2:
		return fmt.Sprintf("8 B one-way, %s%s", f[1], suffix)
	case f[0] == "coll" && len(f) == 4:
		return fmt.Sprintf("%s of %s float64s, %s%s", apiName[f[2]], f[3], who(f[1]), suffix)
	case k == "raw.mean":
		return "raw TCP round trip, mean"
	case k == "wf.mean":
		return "write fault, mean"
	case f[0] == "rf" && len(f) == 3:
		for _, v := range readVariants {
			if v.key == f[1] {
				return fmt.Sprintf("read fault (%s), %s", v.label, f[2])
			}
		}
	}
	return k + suffix
}

// headline says whether a key is a figure the tables judge (not a
// percentile or a count).
func headline(k string) bool {
	for _, s := range []string{".p50", ".p99", ".max", ".over1ms", ".dsm", ".pps"} {
		if strings.HasSuffix(k, s) {
			return false
		}
	}
	return true
}

func ompiCell(rp *reporter, have bool, key string) string {
	if !have {
		return "—"
	}
	return rp.dur(key)
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return " (" + strings.TrimSpace(v) + ")"
		}
	}
	return ""
}

func ompiVersion(mpirun string) string {
	out, err := exec.Command(mpirun, "--version").Output()
	if err != nil {
		return "Open MPI"
	}
	line, _, _ := bytes.Cut(out, []byte("\n"))
	// "mpirun.openmpi (OpenRTE) 4.1.4"
	for _, tag := range []string{"(OpenRTE) ", "(Open MPI) "} {
		if i := bytes.Index(line, []byte(tag)); i >= 0 {
			return "Open MPI " + string(line[i+len(tag):])
		}
	}
	return string(line)
}

// unit is how a figure prints.
type unit int

const (
	uDur   unit = iota // ns
	uBW                // bytes/s
	uCount             // a count (context switches)
	uPct               // % of a CPU
	uPPS               // pages/s
)

func fmtVal(v float64, u unit) string {
	switch u {
	case uBW:
		return fmt.Sprintf("%.2f GB/s", v/1e9)
	case uCount:
		return fmt.Sprintf("%.2f", v)
	case uPct:
		return fmt.Sprintf("%.1f%%", v)
	case uPPS:
		return fmt.Sprintf("%.0f pages/s", v)
	}
	return fmtDur(v)
}

// unitOf is the unit of a result key.
func unitOf(k string) unit {
	switch {
	case strings.HasSuffix(k, ".bw"):
		return uBW
	case strings.HasSuffix(k, ".ctxsw"):
		return uCount
	case strings.Contains(k, ".idle."):
		return uPct
	case strings.HasSuffix(k, ".pps"):
		return uPPS
	}
	return uDur
}

// val formats a figure, or says why it is missing.
func (rp *reporter) val(key string, u unit) string {
	v, ok := rp.get(key)
	if !ok {
		return rp.missing(key)
	}
	return fmtVal(v, u)
}

// goalSpec is a goal of the issues: a bound on the ratio, or (absolute) on
// our figure itself.
type goalSpec struct {
	text     string
	absolute bool                           // judged on our figure, not the ratio
	ok       func(ratio, ours float64) bool // whether it is met
}

func le(limit float64) *goalSpec {
	return &goalSpec{text: fmt.Sprintf("≤ %.1f×", limit), ok: func(x, _ float64) bool { return x <= limit }}
}

func ge(limit float64) *goalSpec {
	return &goalSpec{text: fmt.Sprintf("≥ %.1f×", limit), ok: func(x, _ float64) bool { return x >= limit }}
}

// byTransport is a row's goal over TCP and over the default transport
// (nil: the issues set none).
func byTransport(tcp, shm *goalSpec) func(transport) *goalSpec {
	return func(tr transport) *goalSpec {
		if tr.key == "tcp" {
			return tcp
		}
		return shm
	}
}

// cell is the goal column: the goal, and whether it is met when there is
// something to judge.
func (g *goalSpec) cell(rs string, ratio float64, ours float64, haveOurs bool) string {
	if g == nil {
		return ""
	}
	if g.absolute {
		if !haveOurs {
			return g.text
		}
		return g.text + ": " + goal("", g.ok(ratio, ours))
	}
	if rs == "—" {
		return g.text
	}
	return g.text + ": " + goal(rs, g.ok(ratio, ours))
}

// mrow is one row of a two-transport table: key names a figure by
// transport and by side ("ours", or "ompi" for the baseline).
type mrow struct {
	label  string
	key    func(tr transport, who string) string
	u      unit
	goal   func(tr transport) *goalSpec // nil: no goal
	noBase bool                         // no baseline figure (e.g. Open MPI has no page server)
}

// ttable prints rows with four columns per transport: ours, the baseline,
// the ratio, the goal. haveBase is false when the baseline (Open MPI) was
// not run.
func (rp *reporter) ttable(haveBase bool, baseName string, rows []mrow) {
	hdr := []string{"figure"}
	for _, tr := range transports {
		hdr = append(hdr, trShort(tr)+": dsmexec", baseName, "ratio", "goal")
	}
	var out [][]string
	for _, r := range rows {
		row := []string{r.label}
		for _, tr := range transports {
			ours, base := r.key(tr, "ours"), r.key(tr, "ompi")
			var g *goalSpec
			if r.goal != nil {
				g = r.goal(tr)
			}
			baseCell, x, rs := "—", 0.0, "—"
			if haveBase && !r.noBase {
				baseCell = rp.val(base, r.u)
				if r.u != uPct { // a share of a CPU near 0 makes no ratio
					x, rs = rp.ratio(ours, base)
				}
			}
			v, have := rp.get(ours)
			row = append(row, rp.val(ours, r.u), baseCell, rs, g.cell(rs, x, v, have))
		}
		out = append(out, row)
	}
	rp.table(hdr, out)
}

// trShort names a transport in a column header.
func trShort(tr transport) string {
	if tr.key == "tcp" {
		return "TCP"
	}
	return "default"
}

var apiName = map[string]string{"alltoall": "Alltoall", "scan": "Scan", "reducescatter": "ReduceScatter"}

// faultGoal bounds a fault row: mean and p99 as multiples of the raw round
// trip's mean (0: none), and no fault of 10 ms or more when max is set.
type faultGoal struct {
	mean, p99 float64
	max       bool
}

// faultGoal is the goal cell of a fault row: what it asks and whether each
// part is met.
func (rp *reporter) faultGoal(key string, g faultGoal) string {
	raw, haveRaw := rp.get("raw.mean")
	var parts []string
	missed := false
	judged := false
	if g.mean > 0 {
		parts = append(parts, fmt.Sprintf("mean ≤ %.1f×", g.mean))
		if m, ok := rp.get(key + ".mean"); ok && haveRaw {
			judged = true
			missed = missed || m/raw > g.mean
		}
	}
	if g.p99 > 0 {
		parts = append(parts, fmt.Sprintf("p99 ≤ %.0f×", g.p99))
		if p, ok := rp.get(key + ".p99"); ok && haveRaw {
			judged = true
			missed = missed || p/raw > g.p99
		}
	}
	if g.max {
		parts = append(parts, "max < 10 ms")
		if m, ok := rp.get(key + ".max"); ok {
			judged = true
			missed = missed || m >= 10e6
		}
	}
	s := strings.Join(parts, ", ")
	if judged {
		s += ": " + goal("", !missed)
	}
	if m, ok := rp.get(key + ".max"); ok && m >= 5e6 {
		s += " (stall: max ≥ 5 ms)"
	}
	return s
}

// timeSpent lists where the run's time went (all rounds), to keep make bench
// within its budget.
func (rp *reporter) timeSpent() {
	var parts []string
	for k, v := range rp.r.V {
		if name, ok := strings.CutPrefix(k, "time."); ok {
			parts = append(parts, fmt.Sprintf("%s %.0f s", name, v))
		}
	}
	if len(parts) == 0 {
		return
	}
	sort.Strings(parts)
	fmt.Fprintf(rp.w, "\nTime spent (all rounds): %s\n", strings.Join(parts, ", "))
}
