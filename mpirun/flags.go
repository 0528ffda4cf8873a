package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/hostfile"
	"github.com/dsmexec/dsmexec/internal/units"
)

// config is a parsed command line.
type config struct {
	np            int // total, over every app
	machinefile   string
	hostList      string // -host
	ppn           int    // -ppn/-N/--npernode: ranks per host; 0 = the slots
	sshAlways     bool
	acceptNew     bool
	noCopy        bool
	sshTimeout    time.Duration // 0: ConnectTimeout from ~/.ssh/config, else remote.DefaultTimeout
	genv          []envVar      // -genv (and -x of a single program): every rank
	dsmSize       int64
	timeout       time.Duration
	grace         time.Duration
	deadlockAfter time.Duration // 0: no deadlock detector
	rdvTimeout    time.Duration
	tagOutput     bool
	timestamps    bool   // --timestamp-output
	wdir          string // -wdir, absolute; "" = mpirun's (remote: the login directory)
	oversubscribe bool
	outputDir     string
	summary       bool
	summaryOff    bool   // -summary=false given: no table even if ranks reported values
	format        string // table, csv, json
	reportFile    string
	traceFile     string // -trace (trace.go)
	traceLimit    int64  // -trace-limit, bytes per rank
	reportHTML    string // -report-html
	traceOut      *os.File
	htmlOut       *os.File
	verbose       bool
	version       bool

	// apps are the programs of the job: one, or several with MPMD's colon
	// syntax, ranks numbered in order.
	apps []*app
	// path is the first app's program (for messages).
	path string

	plan *plan // where each rank runs

	warnings []string
}

// app is one program of the job and its ranks.
type app struct {
	np      int
	npSet   bool
	first   int    // its first rank
	program string // as given
	path    string // resolved, absolute
	args    []string
	env     []envVar // its own -x (MPMD)
	// pathNotLocal: -no-copy with an absolute path that does not exist
	// here; it is used as given on the (all remote) hosts.
	pathNotLocal bool
}

// appOf returns the app rank r runs.
func (c *config) appOf(r int) *app {
	for i := len(c.apps) - 1; i > 0; i-- {
		if r >= c.apps[i].first {
			return c.apps[i]
		}
	}
	return c.apps[0]
}

// envVar is one -x: set name=value, or forward mpirun's own value.
type envVar struct {
	name, value string
	unset       bool // -x NAME, but mpirun has no NAME: nothing to pass on
}

// launchVars are set by mpirun for every rank; -x may not set them.
var launchVars = []string{"DSMEXEC_RANK", "DSMEXEC_SIZE", "DSMEXEC_MASTER", "DSMEXEC_TOKEN", "DSMEXEC_HOST", "DSMEXEC_DSM_SIZE"}

const defaultDSMSize = 64 << 20

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
