package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/hostfile"
	"github.com/dsmexec/dsmexec/internal/units"
)

// config is a parsed command line.
type config struct {
	np          int
	machinefile string
	hostList    string // -host
	sshAlways   bool
	acceptNew   bool
	noCopy      bool
	sshTimeout  time.Duration // 0: ConnectTimeout from ~/.ssh/config, else remote.DefaultTimeout
	env         []envVar      // from -x, in order
	dsmSize     int64
	timeout     time.Duration
	grace       time.Duration
	rdvTimeout  time.Duration
	tagOutput   bool
	outputDir   string
	summary     bool
	summaryOff  bool   // -summary=false given: no table even if ranks reported values
	format      string // table, csv, json
	reportFile  string
	verbose     bool

	program string // as given
	path    string // resolved, absolute
	args    []string
	// pathNotLocal: -no-copy with an absolute path that does not exist
	// here; it is used as given on the (all remote) hosts.
	pathNotLocal bool

	plan *plan // where each rank runs

	warnings []string
}

// envVar is one -x: set name=value, or forward mpirun's own value.
type envVar struct {
	name, value string
	unset       bool // -x NAME, but mpirun has no NAME: nothing to pass on
}

// launchVars are set by mpirun for every rank; -x may not set them.
var launchVars = []string{"DSMEXEC_RANK", "DSMEXEC_SIZE", "DSMEXEC_MASTER", "DSMEXEC_TOKEN", "DSMEXEC_HOST", "DSMEXEC_DSM_SIZE"}

const defaultDSMSize = 64 << 20

var errHelp = &cliError{msg: "help"}

type npValue struct {
	n   *int
	set *bool
}

func (v npValue) String() string {
	if v.n == nil {
		return "0"
	}
	return strconv.Itoa(*v.n)
}

func (v npValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not a whole number")
	}
	*v.n, *v.set = n, true
	return nil
}

type envList struct{ l *[]envVar }

func (v envList) String() string { return "" }

func (v envList) Set(s string) error {
	name, value, hasValue := strings.Cut(s, "=")
	if !validEnvName(name) {
		return fmt.Errorf("%q is not a NAME or NAME=VALUE", s)
	}
	for _, r := range launchVars {
		if name == r {
			return fmt.Errorf("%s is set by mpirun for each rank", name)
		}
	}
	e := envVar{name: name, value: value}
	if !hasValue {
		e.value, hasValue = os.LookupEnv(name)
		e.unset = !hasValue
	}
	*v.l = append(*v.l, e)
	return nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

type sizeValue struct{ n *int64 }

func (v sizeValue) String() string {
	if v.n == nil {
		return ""
	}
	return strconv.FormatInt(*v.n, 10)
}

func (v sizeValue) Set(s string) error {
	n, err := units.ParseSize(s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}

// parseArgs parses the command line and checks the program; nothing has
// been started when it returns an error.
func parseArgs(args []string) (*config, *cliError) {
	cfg := &config{dsmSize: defaultDSMSize, format: "table"}
	fs := flag.NewFlagSet("mpirun", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var npSet bool
	fs.Var(npValue{&cfg.np, &npSet}, "np", "")
	fs.Var(npValue{&cfg.np, &npSet}, "n", "")
	fs.StringVar(&cfg.machinefile, "machinefile", "", "")
	fs.StringVar(&cfg.machinefile, "hostfile", "", "")
	fs.StringVar(&cfg.hostList, "host", "", "")
	fs.BoolVar(&cfg.sshAlways, "ssh-always", false, "")
	fs.BoolVar(&cfg.acceptNew, "ssh-accept-new", false, "")
	fs.BoolVar(&cfg.noCopy, "no-copy", false, "")
	fs.DurationVar(&cfg.sshTimeout, "ssh-timeout", 0, "")
	fs.Var(envList{&cfg.env}, "x", "")
	fs.Var(sizeValue{&cfg.dsmSize}, "dsm-size", "")
	fs.DurationVar(&cfg.timeout, "timeout", 0, "")
	fs.DurationVar(&cfg.grace, "grace", time.Second, "")
	fs.DurationVar(&cfg.rdvTimeout, "rendezvous-timeout", 30*time.Second, "")
	fs.BoolVar(&cfg.tagOutput, "tag-output", true, "")
	fs.StringVar(&cfg.outputDir, "output-dir", "", "")
	fs.BoolVar(&cfg.summary, "summary", false, "")
	fs.StringVar(&cfg.format, "report-format", "table", "")
	fs.StringVar(&cfg.reportFile, "report-file", "", "")
	fs.BoolVar(&cfg.verbose, "v", false, "")
	help := "run 'mpirun -h' for the options"
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usageErr(help, "%s", err)
	}
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "summary" && !cfg.summary:
			cfg.summaryOff = true
		case f.Name == "report-format" || f.Name == "report-file":
			cfg.summary = true
		}
	})
	rest := fs.Args()
	if len(rest) == 0 {
		return nil, usageErr("name the program to run, e.g. mpirun -np 4 ./hello; "+help, "no program given")
	}
	cfg.program, cfg.args = rest[0], rest[1:]

	switch {
	case !npSet:
		cfg.np = 1
	case cfg.np < 1:
		return nil, usageErr("a job needs at least one rank: -np 1 or more", "-np %d: the number of ranks must be at least 1", cfg.np)
	}
	if cfg.timeout < 0 || cfg.grace < 0 || cfg.rdvTimeout <= 0 || cfg.sshTimeout < 0 {
		return nil, usageErr("durations look like 500ms, 30s, 2m", "negative or zero duration: -timeout %v, -grace %v, -rendezvous-timeout %v, -ssh-timeout %v", cfg.timeout, cfg.grace, cfg.rdvTimeout, cfg.sshTimeout)
	}
	switch cfg.format {
	case "table", "csv", "json":
	default:
		return nil, usageErr("use -report-format=table, csv or json", "unknown report format %q", cfg.format)
	}
	for _, e := range cfg.env {
		if e.unset {
			cfg.warnings = append(cfg.warnings, fmt.Sprintf("-x %s: %s is not set in mpirun's environment; not passed on", e.name, e.name))
		}
	}
	hf, cerr := readHosts(cfg)
	if cerr != nil {
		return nil, cerr
	}
	if hf != nil {
		cfg.warnings = append(cfg.warnings, hf.Warnings...)
		if !npSet {
			// Open MPI's rule: without -np, one rank per slot.
			cfg.np = 0
			for _, e := range hf.Entries {
				cfg.np += e.Slots
			}
		}
	}
	p, warning, cerr := makePlan(hf, cfg.np, cfg.sshAlways)
	if cerr != nil {
		return nil, cerr
	}
	if warning != "" {
		cfg.warnings = append(cfg.warnings, warning)
	}
	cfg.plan = p
	path, cerr := resolveProgram(cfg.program)
	if cerr != nil {
		// -no-copy with an absolute path: the program needs to exist on
		// the hosts, not here, unless a rank runs here.
		if !cfg.noCopy || !filepath.IsAbs(cfg.program) || p.anyLocal() {
			return nil, cerr
		}
		path, cfg.pathNotLocal = cfg.program, true
	}
	cfg.path = path
	return cfg, nil
}

// readHosts reads the -machinefile or the -host list; nil without either.
func readHosts(cfg *config) (*hostfile.File, *cliError) {
	const syntax = "one host per line: name, user@name, name:SLOTS, name slots=N, [name]:PORT (see mpirun -h)"
	switch {
	case cfg.machinefile != "" && cfg.hostList != "":
		return nil, usageErr("give the hosts one way: a machine file, or a -host list", "-machinefile and -host both given")
	case cfg.machinefile != "":
		hf, err := hostfile.ReadFile(cfg.machinefile)
		var pe *hostfile.ParseError
		var pathErr *fs.PathError
		switch {
		case err == nil:
			return hf, nil
		case errors.As(err, &pe):
			return nil, failErr(syntax, "%v", pe) // "m:3: ..."
		case errors.Is(err, hostfile.ErrNoHosts):
			return nil, failErr(syntax, "%s: no hosts: the machine file has only blank lines and comments", cfg.machinefile)
		case errors.As(err, &pathErr):
			return nil, failErr("", "cannot read machine file %s: %v", cfg.machinefile, pathErr.Err)
		default:
			return nil, failErr("", "%v", err)
		}
	case cfg.hostList != "":
		hf, err := hostfile.ParseHosts(cfg.hostList)
		if err != nil {
			return nil, usageErr("-host takes a comma-separated list such as node1:2,alice@node2,[10.0.0.5]:2222", "%v", err)
		}
		return hf, nil
	}
	return nil, nil
}
