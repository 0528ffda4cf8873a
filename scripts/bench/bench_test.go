package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseBench(t *testing.T) {
	out := []byte("[rank 1] hello\n[rank 0] BENCH barrier.mean_ns 1234.5\nBENCH readfault.backend uffd\n" +
		"[rank 2] BENCH broken\nnot BENCHmark 3\n")
	v := parseBench(out)
	if got, err := v.num("barrier.mean_ns"); err != nil || got != 1234.5 {
		t.Errorf("barrier.mean_ns = %v, %v; want 1234.5", got, err)
	}
	if v["readfault.backend"] != "uffd" {
		t.Errorf("readfault.backend = %q, want uffd", v["readfault.backend"])
	}
	if _, err := v.num("readfault.backend"); err == nil {
		t.Error("a word parsed as a number")
	}
	if _, err := v.num("broken"); err == nil {
		t.Error("a line without a value was taken")
	}
	if len(v) != 2 {
		t.Errorf("parsed %d keys (%v), want 2", len(v), v)
	}
}

func TestMedian(t *testing.T) {
	if got := medianF([]float64{5, 1, 3}); got != 3 {
		t.Errorf("medianF = %v, want 3", got)
	}
	if got := median([]time.Duration{4, 1, 3, 2}); got != 3 {
		t.Errorf("median = %v, want 3 (the upper middle)", got)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		ns   float64
		want string
	}{{850, "850 ns"}, {1234, "1.23 µs"}, {43300, "43.3 µs"}, {4.51e6, "4.51 ms"}, {140.7e6, "140.7 ms"}, {1.19e9, "1.19 s"}} {
		if got := fmtDur(c.ns); got != c.want {
			t.Errorf("fmtDur(%v) = %q, want %q", c.ns, got, c.want)
		}
	}
	for _, c := range []struct {
		x    float64
		want string
	}{{0.02444, "0.0244×"}, {0.1021, "0.102×"}, {1.5, "1.50×"}, {12.34, "12.3×"}} {
		if got := fmtRatio(c.x); got != c.want {
			t.Errorf("fmtRatio(%v) = %q, want %q", c.x, got, c.want)
		}
	}
}

// TestReport renders made-up results: ratios, goals, missing figures with
// their reasons, and the spread of rounds.
func TestReport(t *testing.T) {
	r := newResults()
	r.V["launch.dsm.8"] = 40e6
	r.V["launch.ompi.8"] = 800e6
	r.V["barrier.ours.2"] = 20e3
	r.V["barrier.ompi.2"] = 10e3
	r.V["pp.ours.bw"] = 1e9
	r.V["pp.ompi.bw"] = 2e9
	r.V["raw.mean"] = 10e3
	r.V["rf.main.mean"] = 12e3
	r.V["rf.main.max"] = 20e6
	r.R["barrier.ours.2"] = []float64{20e3, 19e3, 60e3}
	r.Err["launch.nodsm"] = "mpirun -dsm-size 0 fails: nope"
	r.Err["ar.ours"] = "not built: undefined: rank.Allreduce"
	r.S["where"] = "somewhere"
	p := &plan{Counts: fullCounts}
	var b bytes.Buffer
	report(&b, p, r)
	out := b.String()
	for _, want := range []string{
		"0.0500×", // launch 40 ms / 800 ms
		"2.00×",   // barrier 20 µs / 10 µs
		"0.500×",  // bandwidth 1 / 2 GB/s
		"1.20×",   // read fault / raw
		"(stall: max ≥ 5 ms)",
		"n/a [1]", "[1] mpirun -dsm-size 0 fails: nope",
		"n/a [2]", "[2] not built: undefined: rank.Allreduce",
		"barrier, dsmexec, 2 ranks: 20.0 µs, 19.0 µs, 60.0 µs", "spread above 40%",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "8" && strings.Contains(l, "0.0500×") && !strings.Contains(l, "met") {
			t.Errorf("launch at 8 ranks, 40 ms and 0.05×, should meet its goal: %q", l)
		}
		if len(f) > 0 && f[0] == "2" && strings.Contains(l, "2.00×") && !strings.Contains(l, "missed") {
			t.Errorf("barrier at 2.00× should miss its goal: %q", l)
		}
	}

	// Without Open MPI: the reason, no ratios against it.
	r.S["ompi"] = "Open MPI not installed: apt-get install openmpi-bin libopenmpi-dev"
	delete(r.V, "launch.ompi.8")
	b.Reset()
	report(&b, p, r)
	if !strings.Contains(b.String(), "Open MPI not installed: apt-get install openmpi-bin libopenmpi-dev") {
		t.Errorf("report without Open MPI does not say how to install it:\n%s", b.String())
	}
	if strings.Contains(b.String(), "0.0500×") {
		t.Error("a launch ratio is printed without an Open MPI figure")
	}
}
