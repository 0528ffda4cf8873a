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

func (rp *reporter) bw(key string) string {
	v, ok := rp.get(key)
	if !ok {
		return rp.missing(key)
	}
	return fmt.Sprintf("%.2f GB/s", v/1e9)
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
		fmt.Fprintf(w, "baseline: %s over TCP on lo (mpirun.openmpi %s)\n", ompiVersion(p.OMPI.Mpirun), strings.Join(ompiFlags, " "))
	} else {
		fmt.Fprintf(w, "baseline: %s; Open MPI figures and their ratios are left out\n", r.S["ompi"])
	}
	fmt.Fprintln(w, "ratio = dsmexec / baseline, both measured in this run: below 1× is faster (for bandwidth, above 1× is more).")
	fmt.Fprintln(w, "Nothing here is asserted; \"met\"/\"missed\" compare a ratio with the project's goal.")
	if p.Quick {
		fmt.Fprintln(w, "-quick: repetitions cut about 10×; the figures are noisier than those of a full run.")
	}
	fmt.Fprintf(w, "repetitions: launch %d runs (+1 warm-up) each; then %d round(s), each figure the median of its rounds, of:\n", c.LaunchReps, c.Rounds)
	fmt.Fprintf(w, "  %d barriers; %d + %d ping-pongs; %d raw round trips; %d read faults (%d per variant), %d write faults;\n", c.Barriers, c.PingSmall, c.PingBig, c.RawRTT, c.ReadPages, c.VariantPages, c.WritePages)
	fmt.Fprintf(w, "  %d + %d allreduces. Whole run: %s.\n", c.ARSmall, c.ARBig, r.S["elapsed"])
	fmt.Fprintf(w, "load average (1 min) before measuring: %s; after: %s (this run's own ranks included). Other work slows both sides.\n", r.S["load.start"], r.S["load.end"])

	// 1. Launch.
	fmt.Fprintf(w, "\n1. Launch: wall time of the whole command, median of %d runs\n", c.LaunchReps)
	fmt.Fprintln(w, "   ours: bin/mpirun -np N bin/hello (default 64 MiB shared region, userfaultfd: one pager process per rank);")
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

	// 2. Barrier.
	fmt.Fprintf(w, "\n2. Barrier latency: mean over %d barriers (after 100 untimed), rank 0's clock\n", c.Barriers)
	fmt.Fprintln(w, "   baseline: Open MPI MPI_Barrier over TCP; goal ≤ 1.0×")
	rows = nil
	for _, np := range collNP {
		k := func(s string) string { return fmt.Sprintf("barrier.%s.%d", s, np) }
		x, rs := rp.ratio(k("ours"), k("ompi"))
		rows = append(rows, []string{fmt.Sprint(np), rp.dur(k("ours")), ompiCell(rp, haveOMPI, k("ompi")), rs, goal(rs, x <= 1.0)})
	}
	rp.table([]string{"N", "dsmexec", "Open MPI", "ratio", "goal"}, rows)

	// 3. Ping-pong.
	fmt.Fprintf(w, "\n3. Ping-pong, 2 ranks: 8 B one-way latency (half the mean of %d round trips), 1 MiB bandwidth (%d round trips)\n", c.PingSmall, c.PingBig)
	fmt.Fprintln(w, "   baseline: Open MPI MPI_Send/MPI_Recv over TCP; goals: latency ≤ 1.2×, bandwidth ≥ 0.9×")
	x1, r1 := rp.ratio("pp.ours.oneway", "pp.ompi.oneway")
	x2, r2 := rp.ratio("pp.ours.bw", "pp.ompi.bw")
	rp.table([]string{"figure", "dsmexec", "Open MPI", "ratio", "goal"}, [][]string{
		{"8 B one-way latency", rp.dur("pp.ours.oneway"), ompiCellDur(rp, haveOMPI, "pp.ompi.oneway"), r1, goal(r1, x1 <= 1.2)},
		{"1 MiB bandwidth", rp.bw("pp.ours.bw"), ompiCellBW(rp, haveOMPI, "pp.ompi.bw"), r2, goal(r2, x2 >= 0.9)},
	})

	// 4. Shared memory.
	fmt.Fprintln(w, "\n4. Shared memory: remote fault service time, timed around one load or store by the faulting goroutine")
	fmt.Fprintf(w, "   baseline: raw Go TCP round trip between two processes, 16 B request, 4 KiB reply (%d round trips):\n", c.RawRTT)
	fmt.Fprintf(w, "   mean %s, p50 %s, p99 %s, max %s\n", rp.dur("raw.mean"), rp.dur("raw.p50"), rp.dur("raw.p99"), rp.dur("raw.max"))
	fmt.Fprintln(w, "   goals: read fault ≤ 1.5× the raw round trip; no variant near 10 ms (a stall; judged on the max)")
	rows = nil
	add := func(label, key string, target func(x float64) bool) {
		x, rs := rp.ratio(key+".mean", "raw.mean")
		g := ""
		if target != nil {
			g = goal(rs, target(x))
		}
		row := []string{label, rp.dur(key + ".mean"), rp.dur(key + ".p50"), rp.dur(key + ".p99"), rp.dur(key + ".max"), rs, g}
		if max, ok := rp.get(key + ".max"); ok && max >= 5e6 {
			row[len(row)-1] = strings.TrimSpace(g + " (stall: max ≥ 5 ms)")
		}
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
	add(fmt.Sprintf("read fault, 2 ranks, %d pages", c.ReadPages), "rf.main", func(x float64) bool { return x <= 1.5 })
	for _, v := range readVariants[1:] {
		add(fmt.Sprintf("read fault, %s (%d pages)", v.label, c.VariantPages), "rf."+v.key, nil)
	}
	add(fmt.Sprintf("write fault, page read by 3 ranks (%d pages)", c.WritePages), "wf", nil)
	if mh {
		add(fmt.Sprintf("read fault across hosts (machine file, %d pages)", c.ReadPages), "mh.rf", func(x float64) bool { return x <= 1.5 })
	}
	rp.table([]string{"figure", "mean", "p50", "p99", "max", "mean ÷ raw", "goal", "≥ 1 ms", "pages/s", "dsm Stats mean"}, rows)
	fmt.Fprintln(w, "   (\"≥ 1 ms\" counts the faults that took a millisecond or more: a median of the rounds, like every cell.)")
	fmt.Fprintln(w, "   (\"dsm Stats mean\" is the fault time the shared memory measures itself, Stats().MeanFaultTime, warm-up faults included.)")
	fmt.Fprintln(w, "   A write fault on a page others hold needs at least two round trips: the home invalidates the copies, then grants.")

	// 5. Allreduce.
	fmt.Fprintf(w, "\n5. Allreduce (sum of float64s): mean of %d (8 B) and %d (1 MiB) after a few untimed, rank 0's clock\n", c.ARSmall, c.ARBig)
	fmt.Fprintln(w, "   baseline: Open MPI MPI_Allreduce over TCP; goal ≤ 1.2×")
	rows = nil
	for _, np := range collNP {
		row := []string{fmt.Sprint(np)}
		for _, e := range []int{1, 1 << 17} {
			k := func(s string) string { return fmt.Sprintf("ar.%s.%d.%d", s, np, e) }
			x, rs := rp.ratio(k("ours"), k("ompi"))
			row = append(row, rp.dur(k("ours")), ompiCellDur(rp, haveOMPI, k("ompi")), rs, goal(rs, x <= 1.2))
		}
		rows = append(rows, row)
	}
	rp.table([]string{"N", "8 B dsmexec", "Open MPI", "ratio", "goal", "1 MiB dsmexec", "Open MPI", "ratio", "goal"}, rows)

	// 6. Multi-host.
	fmt.Fprintln(w, "\n6. Multi-host")
	if mh {
		fmt.Fprintf(w, "   with -machinefile %s%s: see the machine-file columns of 1 and the last row of 4.\n", os.Getenv("DSMEXEC_BENCH_MACHINEFILE"),
			map[bool]string{true: " (mpirun run in network namespace " + os.Getenv("DSMEXEC_BENCH_NETNS") + ")"}[os.Getenv("DSMEXEC_BENCH_NETNS") != ""])
		if why := rp.why("mh"); why != "" {
			fmt.Fprintf(w, "   not measured: %s\n", why)
		}
	} else {
		fmt.Fprintln(w, "   not run: set DSMEXEC_BENCH_MACHINEFILE (e.g. /run/dsm-cluster/machinefile from scripts/cluster-up.sh) and")
		fmt.Fprintln(w, "   DSMEXEC_BENCH_NETNS=dsm-l to add launch across hosts (first run, then cached) and the cross-host read fault.")
	}

	rp.spread()
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
		if lo <= 0 || hi/lo <= 1.4 {
			continue
		}
		f := fmtDur
		if strings.HasSuffix(k, ".bw") {
			f = func(v float64) string { return fmt.Sprintf("%.2f GB/s", v/1e9) }
		} else if strings.HasSuffix(k, ".pps") {
			f = func(v float64) string { return fmt.Sprintf("%.0f pages/s", v) }
		}
		var s []string
		for _, x := range xs {
			s = append(s, f(x))
		}
		lines = append(lines, fmt.Sprintf("%s: %s", label(k), strings.Join(s, ", ")))
	}
	if len(lines) == 0 {
		return
	}
	sort.Strings(lines)
	fmt.Fprintln(rp.w, "\nRun-to-run spread above 40% (every round, in order; the tables show the median):")
	for _, l := range lines {
		fmt.Fprintf(rp.w, "   %s\n", l)
	}
}

// label names a result key in words.
func label(k string) string {
	f := strings.Split(k, ".")
	who := func(s string) string {
		if s == "ompi" {
			return "Open MPI"
		}
		return "dsmexec"
	}
	switch {
	case f[0] == "barrier" && len(f) == 3:
		return fmt.Sprintf("barrier, %s, %s ranks", who(f[1]), f[2])
	case f[0] == "ar" && len(f) == 4:
		size := "8 B"
		if f[3] != "1" {
			size = "1 MiB"
		}
		return fmt.Sprintf("allreduce %s, %s, %s ranks", size, who(f[1]), f[2])
	case f[0] == "pp" && len(f) == 3:
		what := "8 B one-way latency"
		if f[2] == "bw" {
			what = "1 MiB bandwidth"
		}
		return fmt.Sprintf("%s, %s", what, who(f[1]))
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
	return k
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

func ompiCellDur(rp *reporter, have bool, key string) string { return ompiCell(rp, have, key) }

func ompiCellBW(rp *reporter, have bool, key string) string {
	if !have {
		return "—"
	}
	return rp.bw(key)
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
