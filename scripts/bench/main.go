package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const netnsName = "dsmbench"

// counts are the repetitions of every figure.
type counts struct {
	LaunchReps   int // runs of each launch command (median)
	Barriers     int // per barrier figure at 2 ranks (fewer at more: see barriers)
	PingSmall    int // 8-byte round trips
	PingBig      int // 1 MiB round trips
	RawRTT       int // raw TCP round trips
	ReadPages    int // read faults, main figure
	VariantPages int // read faults of each GOMAXPROCS / goroutine variant
	WritePages   int // write faults
	ARSmall      int // 8-byte allreduces
	ARBig        int // 1 MiB allreduces
	Rounds       int // runs of every other figure, ours and Open MPI's alternating (median)
	IdleMs       int // how long a rank stays blocked in Recv for the idle-CPU figure
	CollSmall    int // API rows: small Alltoall/Scan/ReduceScatter calls
	CollBig      int // API rows: 1 MiB ones
}

var fullCounts = counts{10, 10000, 20000, 200, 10000, 3000, 1000, 1000, 2000, 20, 5, 1000, 500, 10}
var quickCounts = counts{3, 1000, 2000, 20, 1000, 500, 300, 300, 200, 5, 1, 1000, 50, 3}

// plan is what the measuring process needs: where everything is.
type plan struct {
	Mode         string // "local" or "multihost"
	Counts       counts
	Quick        bool
	Mpirun       string
	Hello        string
	Ranks        string
	RanksNoTrace string // ranks built with -tags dsmexec_notrace: no tracing call sites ("" when it did not build)
	RawRTT       string
	Allreduce    string // "" when it did not build
	RanksAPI     string // "" when it did not build (the API of issue 9 is missing)
	OMPI         ompi   // zero when Open MPI is not used
	Machinefile  string
	HelloFresh   string // multihost: a hello no host has cached yet
	Results      string // where the measuring process writes its results
}

// ompi is the Open MPI side: the launcher and the compiled C programs.
type ompi struct {
	Mpirun, Init, Barrier, Pingpong, Allreduce, Idle, Collectives string
}

// results are the figures, by key; see report.go for the keys.
type results struct {
	V     map[string]float64   // the figure: a median
	R     map[string][]float64 // the figure of every round, when there were rounds
	S     map[string]string
	Err   map[string]string // figure key (or prefix) -> why it is missing
	Notes []string
}

func newResults() *results {
	return &results{V: map[string]float64{}, R: map[string][]float64{}, S: map[string]string{}, Err: map[string]string{}}
}

func (r *results) merge(o *results) {
	for k, v := range o.V {
		r.V[k] = v
	}
	for k, v := range o.R {
		r.R[k] = v
	}
	for k, v := range o.S {
		r.S[k] = v
	}
	for k, v := range o.Err {
		r.Err[k] = v
	}
	r.Notes = append(r.Notes, o.Notes...)
}

func main() {
	inner := flag.String("inner", "", "internal: measure with the plan in this file")
	quick := flag.Bool("quick", false, "fewer repetitions (a smoke test; figures are noisier)")
	rounds := flag.Int("rounds", 0, "rounds of every figure after the launch (0: 5, or 1 with -quick)")
	flag.Parse()
	if *inner != "" {
		if err := innerMain(*inner); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if err := outer(*quick, *rounds); err != nil {
		fmt.Fprintf(os.Stderr, "bench: error: %v\n", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// innerMain measures in this process (already inside the namespace).
func innerMain(planFile string) error {
	b, err := os.ReadFile(planFile)
	if err != nil {
		return err
	}
	var p plan
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("read plan %s: %w", planFile, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := measure(ctx, &p)
	out, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return os.WriteFile(p.Results, out, 0o644)
}

func outer(quick bool, rounds int) error {
	started := time.Now()
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "dsmbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	p := plan{Mode: "local", Counts: fullCounts, Quick: quick}
	if quick {
		p.Counts = quickCounts
	}
	if rounds > 0 {
		p.Counts.Rounds = rounds
	}
	r := newResults()
	if err := buildOurs(ctx, root, tmp, &p, r); err != nil {
		return err
	}
	ompiReason := buildOMPI(ctx, root, tmp, &p)

	// The one-host figures: in the dsmbench namespace when we can make it.
	nsReason := ""
	if os.Geteuid() != 0 {
		nsReason = "not root, so no network namespace"
	} else if _, err := exec.LookPath("ip"); err != nil {
		nsReason = "no ip command (apt-get install iproute2)"
	} else if err := netnsUp(ctx); err != nil {
		nsReason = firstLine(err)
	}
	if nsReason == "" {
		defer netnsDown()
		r.S["where"] = fmt.Sprintf("network namespace %s (only lo), ours and Open MPI alike", netnsName)
	} else {
		r.S["where"] = "127.0.0.1 in the current network namespace (" + nsReason + ")"
		if p.OMPI != (ompi{}) {
			ompiReason = "skipped: " + nsReason + "; Open MPI must run where lo is the only interface"
			p.OMPI = ompi{}
		}
	}
	if ompiReason != "" {
		r.S["ompi"] = ompiReason
	}
	local, err := measureIn(ctx, tmp, p, "local", func() []string {
		if nsReason != "" {
			return nil
		}
		return []string{"ip", "netns", "exec", netnsName}
	}())
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted")
		}
		return err
	}
	r.merge(local)

	// The multi-host hook.
	if mf := os.Getenv("DSMEXEC_BENCH_MACHINEFILE"); mf != "" && ctx.Err() == nil {
		mh, err := multihost(ctx, root, tmp, p, mf)
		if err != nil {
			r.Err["mh"] = firstLine(err)
		} else {
			r.merge(mh)
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted")
	}
	r.S["elapsed"] = time.Since(started).Round(time.Second).String()
	report(os.Stdout, &p, r)
	return nil
}

// measureIn runs the measurements of a plan in a child process of this
// program (prefixed by wrap, e.g. ip netns exec), or in this process when
// wrap is empty.
func measureIn(ctx context.Context, tmp string, p plan, name string, wrap []string) (*results, error) {
	p.Mode = name
	p.Results = filepath.Join(tmp, name+".results.json")
	if len(wrap) == 0 {
		return measure(ctx, &p), nil
	}
	planFile := filepath.Join(tmp, name+".plan.json")
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(planFile, b, 0o644); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append(append([]string(nil), wrap[1:]...), self, "-inner", planFile)
	cmd := exec.CommandContext(ctx, wrap[0], args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("measure (%s): %w", strings.Join(wrap, " "), err)
	}
	b, err = os.ReadFile(p.Results)
	if err != nil {
		return nil, err
	}
	r := newResults()
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return r, nil
}

// repoRoot is the directory holding the module's go.mod, from the current
// directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/dsmexec/dsmexec")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run me from inside the dsmexec module (make bench)")
		}
		dir = parent
	}
}

// buildOurs finds bin/mpirun and bin/hello (building them into tmp when
// bin/ has none) and builds the bench's rank programs into tmp.
func buildOurs(ctx context.Context, root, tmp string, p *plan, r *results) error {
	gobuild := func(out, pkg string, extra ...string) error {
		args := append([]string{"build"}, extra...)
		args = append(args, "-o", out, pkg)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as make build
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	for _, b := range []struct {
		dst *string
		bin string
		pkg string
	}{{&p.Mpirun, "mpirun", "./mpirun"}, {&p.Hello, "hello", "./examples/hello"}} {
		path := filepath.Join(root, "bin", b.bin)
		if _, err := os.Stat(path); err == nil {
			*b.dst = path
			continue
		}
		progress("no bin/%s (run make bench to use bin/): building it into a temp dir", b.bin)
		*b.dst = filepath.Join(tmp, b.bin)
		if err := gobuild(*b.dst, b.pkg); err != nil {
			return err
		}
	}
	progress("building the rank programs (scripts/bench/ranks, rawrtt, allreduce, ranksapi)")
	p.Ranks = filepath.Join(tmp, "ranks")
	if err := gobuild(p.Ranks, "./scripts/bench/ranks"); err != nil {
		return err
	}
	// The baseline of "recording off costs nothing": the same program
	// with every tracing call site compiled away.
	p.RanksNoTrace = filepath.Join(tmp, "ranks-notrace")
	if err := gobuild(p.RanksNoTrace, "./scripts/bench/ranks", "-tags", "dsmexec_notrace"); err != nil {
		p.RanksNoTrace = ""
		progress("ranks with -tags dsmexec_notrace: %v", err)
	}
	p.RawRTT = filepath.Join(tmp, "rawrtt")
	if err := gobuild(p.RawRTT, "./scripts/bench/rawrtt"); err != nil {
		return err
	}
	// A program that does not build costs its figures, not the report.
	oneLine := func(err error) string {
		msg := strings.Join(strings.Fields(err.Error()), " ")
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return msg
	}
	p.Allreduce = filepath.Join(tmp, "go-allreduce")
	if err := gobuild(p.Allreduce, "./scripts/bench/allreduce"); err != nil {
		p.Allreduce = ""
		for _, tr := range transports {
			r.Err[tr.key+".ar.ours"] = "not built: " + oneLine(err)
		}
		progress("%v", err)
	}
	p.RanksAPI = filepath.Join(tmp, "ranksapi")
	if err := gobuild(p.RanksAPI, "./scripts/bench/ranksapi", "-tags", "benchapi"); err != nil {
		p.RanksAPI = ""
		why := apiMissing(err)
		for _, tr := range transports {
			for _, k := range apiKeys {
				r.Err[tr.key+"."+k] = why
			}
		}
		progress("scripts/bench/ranksapi: %s", why)
	}
	return nil
}

// apiKeys are the result-key prefixes of the ranksapi figures.
var apiKeys = []string{"typed", "isend", "coll.ours"}

// apiMissing is the footnote of the API rows when ranksapi does not build:
// the API of issue 9 is not there yet (or a compile error, named).
func apiMissing(err error) string {
	msg := err.Error()
	first := ""
	for _, l := range strings.Split(msg, "\n") {
		if strings.Contains(l, ".go:") {
			first = strings.TrimSpace(l)
			break
		}
	}
	if first == "" {
		first = firstLine(err)
	}
	if i := strings.Index(first, "scripts/bench/ranksapi/"); i >= 0 {
		first = first[i+len("scripts/bench/ranksapi/"):]
	}
	if strings.Contains(msg, "undefined: rank.") || strings.Contains(msg, "has no field or method") {
		return "n/a: needs the API of issue 9 (scripts/bench/ranksapi does not compile yet: " + first + ")"
	}
	return "ranksapi not built: " + first
}

// buildOMPI compiles the C programs with Open MPI's mpicc, or says why not.
func buildOMPI(ctx context.Context, root, tmp string, p *plan) string {
	const install = "Open MPI not installed: apt-get install openmpi-bin libopenmpi-dev"
	launcher, err := exec.LookPath("mpirun.openmpi")
	if err != nil {
		return install
	}
	cc := ""
	if c, err := exec.LookPath("mpicc.openmpi"); err == nil {
		cc = c
	} else if c, err := exec.LookPath("mpicc"); err == nil {
		// mpicc may be MPICH's; only Open MPI's wrapper knows -showme.
		if out, err := exec.CommandContext(ctx, c, "-showme:version").CombinedOutput(); err == nil && bytes.Contains(out, []byte("Open MPI")) {
			cc = c
		}
	}
	if cc == "" {
		return install + " (no Open MPI mpicc found)"
	}
	dir := filepath.Join(tmp, "ompi")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err.Error()
	}
	o := ompi{Mpirun: launcher}
	for _, c := range []struct {
		dst *string
		src string
	}{{&o.Init, "mpi_init_finalize"}, {&o.Barrier, "barrier"}, {&o.Pingpong, "pingpong"}, {&o.Allreduce, "allreduce"},
		{&o.Idle, "idle"}, {&o.Collectives, "collectives"}} {
		*c.dst = filepath.Join(dir, c.src)
		cmd := exec.CommandContext(ctx, cc, "-O2", "-o", *c.dst, filepath.Join(root, "scripts", "bench", "c", c.src+".c"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Sprintf("Open MPI skipped: %s %s.c: %v: %s", base(cc), c.src, err, bytes.TrimSpace(out))
		}
	}
	p.OMPI = o
	return ""
}

// netnsUp makes the dsmbench namespace with lo up (replacing a stale one
// left by an interrupted run).
func netnsUp(ctx context.Context) error {
	ip := func(args ...string) error {
		out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := ip("netns", "add", netnsName); err != nil {
		if !strings.Contains(err.Error(), "File exists") {
			return err
		}
		progress("removing a stale network namespace %s", netnsName)
		if err := ip("netns", "del", netnsName); err != nil {
			return err
		}
		if err := ip("netns", "add", netnsName); err != nil {
			return err
		}
	}
	if err := ip("netns", "exec", netnsName, "ip", "link", "set", "lo", "up"); err != nil {
		netnsDown()
		return err
	}
	return nil
}

func netnsDown() {
	if out, err := exec.Command("ip", "netns", "del", netnsName).CombinedOutput(); err != nil {
		progress("could not delete network namespace %s: %v: %s", netnsName, err, bytes.TrimSpace(out))
	}
}

// multihost takes the machine-file figures: a hello nobody has cached yet
// (a fresh build ID), then the measurements, in $DSMEXEC_BENCH_NETNS if set.
func multihost(ctx context.Context, root, tmp string, p plan, mf string) (*results, error) {
	abs, err := filepath.Abs(mf)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("DSMEXEC_BENCH_MACHINEFILE: %w", err)
	}
	p.Machinefile = abs
	p.HelloFresh = filepath.Join(tmp, "hello-fresh")
	id := fmt.Sprintf("dsmbench-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags=-buildid="+id, "-o", p.HelloFresh, "./examples/hello")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as make build
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build a fresh hello: %v: %s", err, bytes.TrimSpace(out))
	}
	p.OMPI = ompi{}
	var wrap []string
	if ns := os.Getenv("DSMEXEC_BENCH_NETNS"); ns != "" {
		wrap = []string{"ip", "netns", "exec", ns}
	}
	progress("multi-host figures with -machinefile %s%s", mf, map[bool]string{true: " in network namespace " + os.Getenv("DSMEXEC_BENCH_NETNS")}[len(wrap) > 0])
	return measureIn(ctx, tmp, p, "multihost", wrap)
}
