package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

var (
	errHelp    = &cliError{msg: "help"}
	errNoArgs  = &cliError{status: 2, msg: "no arguments"}
	errVersion = &cliError{msg: "version"}
)

const helpHint = "run 'mpirun -h' for the options"

// parseArgs parses the command line and checks the programs; nothing has
// been started when it returns an error. MPMD: parts separated by ":" each
// have their own -np, -x, program and arguments; the first part holds the
// options of the whole job too.
func parseArgs(args []string) (*config, *cliError) {
	if len(args) == 0 {
		return nil, errNoArgs
	}
	cfg := &config{dsmSize: defaultDSMSize, format: "table", traceLimit: defaultTraceLimit}
	parts := splitParts(args)
	for i, part := range parts {
		a := &app{}
		fs := newFlagSet()
		a.addFlags(fs)
		if i == 0 {
			cfg.addFlags(fs)
		}
		if cerr := parsePart(fs, part, a, i, cfg); cerr != nil {
			return nil, cerr
		}
		if cfg.version {
			return nil, errVersion
		}
		cfg.apps = append(cfg.apps, a)
	}
	if len(cfg.apps) == 1 {
		// One program: its -x are every rank's.
		cfg.genv = append(cfg.genv, cfg.apps[0].env...)
		cfg.apps[0].env = nil
	}
	if cerr := cfg.check(); cerr != nil {
		return nil, cerr
	}
	if cerr := cfg.place(); cerr != nil {
		return nil, cerr
	}
	return cfg, cfg.resolve()
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("mpirun", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// splitParts splits an MPMD command line at its ":" arguments.
func splitParts(args []string) [][]string {
	var parts [][]string
	start := 0
	for i, a := range args {
		if a == ":" {
			parts = append(parts, args[start:i])
			start = i + 1
		}
	}
	return append(parts, args[start:])
}

// parsePart parses one part of the command line into a (and, for the first
// part, cfg).
func parsePart(fs *flag.FlagSet, part []string, a *app, i int, cfg *config) *cliError {
	part, cerr := prescan(fs, part, i)
	if cerr != nil {
		return cerr
	}
	if err := fs.Parse(part); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usageErr(helpHint, "%s", err)
	}
	if cfg.version {
		return nil
	}
	rest := fs.Args()
	if len(rest) == 0 {
		if i > 0 {
			return usageErr("each part of an MPMD command line is [-np N] [-x NAME=VALUE] program [args], e.g. mpirun -np 1 ./master : -np 4 ./worker", "no program in part %d (after the %s \":\")", i+1, ordinal(i))
		}
		return usageErr("name the program to run, e.g. mpirun -np 4 ./hello; "+helpHint, "no program given")
	}
	a.program, a.args = rest[0], rest[1:]
	return nil
}

func ordinal(i int) string {
	switch i {
	case 1:
		return "first"
	case 2:
		return "second"
	case 3:
		return "third"
	}
	return strconv.Itoa(i) + "th"
}

// addFlags registers what each part of an MPMD line may have.
func (a *app) addFlags(fs *flag.FlagSet) {
	fs.Var(npValue{&a.np, &a.npSet}, "np", "")
	fs.Var(npValue{&a.np, &a.npSet}, "n", "")
	fs.Var(envList{&a.env}, "x", "")
}

// addFlags registers the options of the whole job.
func (c *config) addFlags(fs *flag.FlagSet) {
	for _, name := range []string{"machinefile", "hostfile", "f"} {
		fs.StringVar(&c.machinefile, name, "", "")
	}
	for _, name := range []string{"host", "hosts", "H"} {
		fs.StringVar(&c.hostList, name, "", "")
	}
	for _, name := range []string{"ppn", "N", "npernode"} {
		fs.Var(countValue{&c.ppn}, name, "")
	}
	fs.BoolVar(&c.sshAlways, "ssh-always", false, "")
	fs.BoolVar(&c.acceptNew, "ssh-accept-new", false, "")
	fs.BoolVar(&c.noCopy, "no-copy", false, "")
	fs.DurationVar(&c.sshTimeout, "ssh-timeout", 0, "")
	fs.Var(envList{&c.genv}, "genv", "")
	fs.Var(sizeValue{&c.dsmSize}, "dsm-size", "")
	fs.Var(secondsValue{&c.timeout}, "timeout", "")
	fs.DurationVar(&c.grace, "grace", time.Second, "")
	fs.DurationVar(&c.deadlockAfter, "deadlock-after", 2*time.Second, "")
	fs.DurationVar(&c.rdvTimeout, "rendezvous-timeout", 30*time.Second, "")
	fs.BoolVar(&c.tagOutput, "tag-output", true, "")
	for _, name := range []string{"l", "prepend-rank"} {
		fs.BoolFunc(name, "", func(string) error { c.tagOutput = true; return nil })
	}
	fs.BoolVar(&c.timestamps, "timestamp-output", false, "")
	fs.StringVar(&c.wdir, "wdir", "", "")
	fs.BoolVar(&c.oversubscribe, "oversubscribe", false, "")
	fs.StringVar(&c.outputDir, "output-dir", "", "")
	fs.BoolFunc("summary", "", func(v string) error {
		b, err := strconv.ParseBool(v)
		c.summary, c.summaryOff = b, !b
		return err
	})
	fs.StringVar(&c.format, "report-format", "table", "")
	fs.StringVar(&c.reportFile, "report-file", "", "")
	fs.StringVar(&c.traceFile, "trace", "", "")
	fs.Var(sizeValue{&c.traceLimit}, "trace-limit", "")
	fs.StringVar(&c.reportHTML, "report-html", "", "")
	fs.BoolVar(&c.verbose, "v", false, "")
	fs.BoolVar(&c.version, "version", false, "")
}

// check checks the options that need no file or host.
func (c *config) check() *cliError {
	for _, a := range c.apps {
		if a.npSet && a.np < 1 {
			return usageErr("a job needs at least one rank: -np 1 or more", "-np %d: the number of ranks must be at least 1", a.np)
		}
	}
	if c.timeout < 0 || c.grace < 0 || c.rdvTimeout <= 0 || c.sshTimeout < 0 {
		return usageErr("durations look like 500ms, 30s, 2m", "negative or zero duration: -timeout %v, -grace %v, -rendezvous-timeout %v, -ssh-timeout %v", c.timeout, c.grace, c.rdvTimeout, c.sshTimeout)
	}
	if c.deadlockAfter < 0 {
		return usageErr("-deadlock-after 2s; 0 turns the deadlock detector off", "negative duration: -deadlock-after %v", c.deadlockAfter)
	}
	switch c.format {
	case "table", "csv", "json":
	default:
		return usageErr("use -report-format=table, csv or json", "unknown report format %q", c.format)
	}
	if c.format != "table" || c.reportFile != "" {
		c.summary, c.summaryOff = true, false
	}
	if cerr := c.openOutputs(); cerr != nil {
		return cerr
	}
	envs := c.genv
	for _, a := range c.apps {
		envs = append(envs, a.env...)
	}
	for _, e := range envs {
		if e.unset {
			c.warnings = append(c.warnings, fmt.Sprintf("-x %s: %s is not set in mpirun's environment; not passed on", e.name, e.name))
		}
	}
	if c.wdir != "" {
		abs, err := filepath.Abs(c.wdir)
		if err != nil {
			return failErr("", "-wdir %s: %v", c.wdir, err)
		}
		c.wdir = abs
	}
	return nil
}

// place reads the hosts and places every rank.
func (c *config) place() *cliError {
	hf, cerr := readHosts(c)
	if cerr != nil {
		return cerr
	}
	hf = c.perHost(hf)
	if hf != nil {
		c.warnings = append(c.warnings, hf.Warnings...)
	}
	c.np = 0
	for _, a := range c.apps {
		if !a.npSet {
			a.np = 1
			if hf != nil && len(c.apps) == 1 {
				// Open MPI's rule: without -np, one rank per slot.
				a.np = 0
				for _, e := range hf.Entries {
					a.np += e.Slots
				}
			}
		}
		a.first = c.np
		c.np += a.np
	}
	p, warning, cerr := makePlan(hf, c.np, c.sshAlways)
	if cerr != nil {
		return cerr
	}
	if warning != "" && !c.oversubscribe {
		c.warnings = append(c.warnings, warning)
	}
	c.plan = p
	return nil
}

// resolve finds every program; with -wdir that is where it is checked.
func (c *config) resolve() *cliError {
	if c.wdir != "" && c.plan.anyLocal() {
		if st, err := os.Stat(c.wdir); err != nil || !st.IsDir() {
			return failErr("give a directory that exists on every host", "-wdir %s: not a directory", c.wdir)
		}
	}
	for _, a := range c.apps {
		path, cerr := resolveProgram(a.program)
		if cerr != nil {
			// -no-copy with an absolute path: the program needs to exist
			// on the hosts, not here, unless a rank runs here.
			if !c.noCopy || !filepath.IsAbs(a.program) || c.plan.anyLocal() {
				return cerr
			}
			path, a.pathNotLocal = a.program, true
		}
		a.path = path
	}
	c.path = c.apps[0].path
	return nil
}

// programs returns the distinct programs of the job.
func (c *config) programs() []*app {
	var ps []*app
	seen := map[string]bool{}
	for _, a := range c.apps {
		if !seen[a.path] {
			seen[a.path] = true
			ps = append(ps, a)
		}
	}
	return ps
}
