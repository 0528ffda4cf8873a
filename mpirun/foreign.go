package main

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/hostfile"
)

// foreignFlags are options of Open MPI's or MPICH's mpirun that dsmexec does
// not have: each is refused with what to do instead, never ignored.
var foreignFlags = map[string]struct{ mpi, hint string }{
	"map-by":                 {"Open MPI", "ranks fill each host's slots in order; shape the placement with the machine file's slots or -ppn"},
	"bind-to":                {"Open MPI", "ranks are not bound to cores; the kernel places them (taskset in the program's command line binds one)"},
	"rank-by":                {"Open MPI", "ranks are numbered in the order they are placed: the machine file's order"},
	"mca":                    {"Open MPI", "there are no MCA parameters; see mpirun -h for the options"},
	"gmca":                   {"Open MPI", "there are no MCA parameters; see mpirun -h for the options"},
	"report-bindings":        {"Open MPI", "ranks are not bound to cores; -v shows where each rank runs"},
	"display-map":            {"Open MPI", "-v shows where each rank runs"},
	"display-allocation":     {"Open MPI", "-v shows where each rank runs"},
	"cpus-per-proc":          {"Open MPI", "ranks are not bound to cores"},
	"cpus-per-rank":          {"Open MPI", "ranks are not bound to cores"},
	"use-hwthread-cpus":      {"Open MPI", "slots are what the machine file says; hardware threads are not counted"},
	"output-filename":        {"Open MPI", "use -output-dir DIR: each rank's output goes to DIR/rank.N.out and .err"},
	"merge-stderr-to-stdout": {"Open MPI", "redirect in the shell: mpirun ... 2>&1"},
	"allow-run-as-root":      {"Open MPI", "dsmexec runs as root without it"},
	"prefix":                 {"Open MPI", "mpirun copies itself to the hosts; nothing needs installing there"},
	"preload-binary":         {"Open MPI", "the program is copied to the hosts by default (-no-copy turns that off)"},
	"pernode":                {"Open MPI", "use -ppn 1 (or -N 1)"},
	"npersocket":             {"Open MPI", "use -ppn N for N ranks per host"},
	"bynode":                 {"Open MPI", "ranks fill each host's slots in order; give each host slots=1 to go round the hosts"},
	"byslot":                 {"Open MPI", "that is the placement already: each host's slots in order"},
	"am":                     {"Open MPI", "there are no MCA parameters"},
	"tune":                   {"Open MPI", "there are no MCA parameters"},
	"launch-agent":           {"Open MPI", "mpirun starts itself on the hosts over SSH as the agent"},
	"binding":                {"MPICH", "ranks are not bound to cores; the kernel places them"},
	"launcher":               {"MPICH", "hosts are reached over SSH (this machine's ranks are forked); -ssh-always sends even those over SSH"},
	"rmk":                    {"MPICH", "give the hosts with -f, -hosts or -host"},
	"iface":                  {"MPICH", "the master listens where the hosts reach it (the SSH connections' address); ranks listen on the address they reach the master by"},
	"configfile":             {"MPICH", "write the MPMD parts on the command line, separated by ':'"},
	"envall":                 {"MPICH", "ranks forked here get mpirun's environment; use -x NAME for ranks on other hosts"},
	"genvall":                {"MPICH", "ranks forked here get mpirun's environment; use -x NAME for ranks on other hosts"},
	"envnone":                {"MPICH", "not supported: ranks get mpirun's (or the host's login) environment"},
	"genvnone":               {"MPICH", "not supported: ranks get mpirun's (or the host's login) environment"},
	"envlist":                {"MPICH", "use -x NAME for each variable"},
	"genvlist":               {"MPICH", "use -x NAME for each variable"},
	"env":                    {"MPICH", "use -x NAME=VALUE (in an MPMD part, for that part's ranks)"},
	"outfile-pattern":        {"MPICH", "use -output-dir DIR: each rank's output goes to DIR/rank.N.out and .err"},
	"errfile-pattern":        {"MPICH", "use -output-dir DIR: each rank's output goes to DIR/rank.N.out and .err"},
	"print-all-exitcodes":    {"MPICH", "use -summary: the table has every rank's exit status"},
	"disable-auto-cleanup":   {"MPICH", "the first failing rank always ends the job"},
}

// prescan walks the options of one part of the command line (up to its
// program) before the flag package does: it refuses Open MPI and MPICH
// options dsmexec lacks, and job-wide options after the first ':', and
// turns MPICH's two-word "-genv NAME VALUE" into -genv NAME=VALUE.
func prescan(fs *flag.FlagSet, args []string, part int) ([]string, *cliError) {
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f, ok := foreignFlags[name]; ok {
			return nil, usageErr(f.hint, "%s is an %s option dsmexec does not have", a, f.mpi)
		}
		fl := fs.Lookup(name)
		if fl == nil {
			if part > 0 && jobFlag(name) {
				return nil, usageErr("options of the whole job go before the first program; each later part has only -np, -n and -x", "%s in part %d of an MPMD command line", a, part+1)
			}
			break // the flag package reports it
		}
		if name == "genv" && !hasValue && i+2 < len(out) && !strings.Contains(out[i+1], "=") {
			out = append(out[:i+1], append([]string{out[i+1] + "=" + out[i+2]}, out[i+3:]...)...)
		}
		if bf, ok := fl.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && bf.IsBoolFlag()) {
			i++ // its value
		}
	}
	return out, nil
}

// jobFlag reports whether name is an option of the whole job.
func jobFlag(name string) bool {
	fs := newFlagSet()
	(&config{}).addFlags(fs)
	return fs.Lookup(name) != nil
}

// countValue is a whole number of at least 1 (-ppn).
type countValue struct{ n *int }

func (v countValue) String() string {
	if v.n == nil {
		return "0"
	}
	return strconv.Itoa(*v.n)
}

func (v countValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return errors.New("want a whole number of at least 1")
	}
	*v.n = n
	return nil
}

// secondsValue is a duration, or a number of seconds as Open MPI's
// --timeout takes.
type secondsValue struct{ d *time.Duration }

func (v secondsValue) String() string {
	if v.d == nil {
		return "0s"
	}
	return v.d.String()
}

func (v secondsValue) Set(s string) error {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*v.d = time.Duration(n * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want seconds (60) or a duration (90s, 5m)")
	}
	*v.d = d
	return nil
}

// perHost applies -ppn: every host takes that many ranks (without hosts,
// this machine does).
func (c *config) perHost(hf *hostfile.File) *hostfile.File {
	if c.ppn == 0 {
		return hf
	}
	if hf == nil {
		hf = &hostfile.File{Name: "-ppn", Entries: []hostfile.Entry{{Host: "localhost"}}}
	}
	for i := range hf.Entries {
		e := &hf.Entries[i]
		e.Slots = c.ppn
		if e.MaxSlots != 0 && e.MaxSlots < c.ppn {
			e.MaxSlots = c.ppn
		}
	}
	return hf
}

// versionText is what --version prints: the module's version from the
// build information, the commit when known, and the Go version.
func versionText() string {
	v, rev := "(unknown)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = " commit " + s.Value[:min(12, len(s.Value))]
			case "vcs.modified":
				if s.Value == "true" {
					rev += " (modified)"
				}
			}
		}
	}
	return fmt.Sprintf("mpirun (dsmexec) %s%s, built with %s for %s/%s\n", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
