package main

import (
	"fmt"
	"io"
	"os"

	"github.com/dsmexec/dsmexec/internal/remote"
)

// shortUsage is printed when mpirun is run without arguments.
const shortUsage = `usage: mpirun [options] program [args...]
       mpirun [options] -np N program [args...] : -np M program2 [args...]
e.g.   mpirun -np 4 ./hello
'mpirun -h' lists the options.
`

const usageText = `usage: mpirun [options] program [args...]
       mpirun [options] -np N program [args...] : -np M program2 [args...]

Starts N copies ("ranks") of program as one dsmexec job. Options stop at the
program name; everything after it is passed to the program. MPMD: parts
separated by ':' each name a program with its own -np (default 1), -x and
arguments; ranks are numbered in order, the first part's first. Options of
the whole job go in the first part.

options (Open MPI's and MPICH's spellings are accepted where shown):
  -np N, -n N              number of ranks (default 1)
  -machinefile FILE        hosts to run on, one per line (also -hostfile,
                           -f); without it (and -host) every rank runs on
                           this machine; with it, -np defaults to the total
                           slots
  -host LIST               the hosts as a list instead: node1:2,alice@node2
                           (also -hosts, -H)
  -ppn N                   N ranks per host, whatever the slots say (also
                           -N, --npernode); -np defaults to N per host
  -wdir DIR                working directory of every rank, here and on the
                           hosts (default: mpirun's here, the login
                           directory on other hosts)
  -ssh-always              start even this machine's ranks over SSH
  -ssh-accept-new          add the keys of hosts missing from
                           ~/.ssh/known_hosts (OpenSSH's accept-new); a
                           changed key is always refused
  -ssh-timeout D           connect timeout per host (default: ConnectTimeout
                           of ~/.ssh/config, else 8s)
  -no-copy                 run the program at its path on every host instead
                           of copying it into the hosts' cache
  -x NAME[=VALUE]          set NAME for every rank, or forward mpirun's own
                           NAME; repeatable; in an MPMD part, for that
                           part's ranks
  -genv NAME VALUE         set NAME for every rank (MPICH; also NAME=VALUE)
  -dsm-size SIZE           size of the shared region: bytes, or with a K, M,
                           G (KiB, MiB, GiB) suffix (default 64MiB)
  -timeout D               stop the job after D (90s, 5m, or seconds: 60)
                           and exit 124; 0 means never (default 0)
  -grace D                 time between SIGTERM and SIGKILL when the job is
                           stopped (default 1s)
  -deadlock-after D        when every running rank has waited in a dsmexec
                           call for D with no message in flight, name the
                           wait-for cycle, print the ranks' stacks and exit
                           3 (default 2s; 0 turns it off)
  -rendezvous-timeout D    time for every rank to report to mpirun's master
                           (default 30s); not enforced when no rank ever
                           reports (a program that does not use dsmexec)
  -tag-output              prefix every output line with "[rank N] "
                           (default true; -tag-output=false turns it off;
                           -l and -prepend-rank are accepted)
  --timestamp-output       prefix every output line with the time since the
                           start, "[+1.250s] "
  --oversubscribe          accepted; more ranks than slots is allowed anyway,
                           and this flag silences the warning
  -output-dir D            also write D/rank.N.out and D/rank.N.err
  -summary                 print a table per rank at the end: host, pid,
                           exit status, wall and CPU time, max RSS, DSM
                           counters and the values ranks reported (shown
                           anyway when ranks reported values, unless
                           -summary=false)
  -report-format F         table, csv or json (implies -summary)
  -report-file FILE        write the summary to FILE instead of stderr
  -trace FILE              record every rank's calls, page faults and lock
                           waits; write them to FILE as trace-event JSON
                           (open it in ui.perfetto.dev or chrome://tracing)
  -trace-limit SIZE        stop recording a rank past SIZE (default 256MiB)
  -report-html FILE        write one self-contained HTML page: the ranks,
                           the message matrix, a timeline, the page heat
                           map and false sharing (records as -trace does)
  -merge-traces OUT FILE...
                           merge the DSMEXEC_TRACE=FILE traces of a job
                           started by Hydra or Slurm into OUT, and exit
  -v                       explain what mpirun does (placement, master
                           address, fault backend, ...)
  --version                print mpirun's version and Go's
  -h                       show this help

Open MPI and MPICH options dsmexec does not have (--map-by, --bind-to,
--mca, ...) are refused with a hint, never ignored.

machine file: one host per line; # starts a comment. Each line is
  [user@]host[:SLOTS] [slots=N] [max_slots=N] [user=U] [port=P]
or [user@][host]:PORT[:SLOTS] (brackets mean an ssh port; IPv6 goes in
brackets too). Ranks fill each line's slots in order, then start again at
the first line: more ranks than slots is allowed, with a warning. This
machine's names (localhost, 127.0.0.1, its host name) without another user
or a port are forked; other hosts are reached over SSH with your keys and
~/.ssh/known_hosts, and the program is copied into ~/.cache/dsmexec there.

exit status: that of the first rank that failed (128+signal if killed by
one), 124 after -timeout, 3 after a deadlock (-deadlock-after),
128+signal if mpirun was interrupted, 2 for a usage error, 1 for other
errors of mpirun (a host that cannot be reached or is lost during the
job), 0 when every rank exited 0.

examples:
  mpirun -np 4 ./pi
  mpirun -np 2 -x OMP_NUM_THREADS=1 -summary -output-dir out ./matmul 512
  mpirun -np 8 -machinefile hosts ./matmul 512
  mpirun -host node1:2,node2:2 ./hello
  mpirun -np 1 ./master : -np 4 ./worker
`

// agentFlag runs mpirun as the agent of a remote host (internal/remote):
// mpirun installs itself on each host and starts it this way over SSH.
// Not in the usage text: users never type it.
const agentFlag = "-agent"

func main() {
	if len(os.Args) == 2 && os.Args[1] == agentFlag {
		os.Exit(runAgent())
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// runAgent speaks the agent protocol on stdin and stdout until mpirun
// closes stdin (or falls silent); stderr is for humans.
func runAgent() int {
	if err := remote.RunAgent(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "mpirun agent on %s: %v\n", hostname(), err)
		return 1
	}
	return 0
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "this host"
	}
	return h
}

// cliError is a problem with the command line or its program, reported
// before anything starts.
type cliError struct {
	status int    // 2 for usage errors, 1 otherwise
	msg    string // after "mpirun: error: "
	hint   string // after "mpirun: hint: ", if any
}

func (e *cliError) Error() string { return e.msg }

func usageErr(hint, format string, args ...any) *cliError {
	return &cliError{status: 2, msg: fmt.Sprintf(format, args...), hint: hint}
}

func failErr(hint, format string, args ...any) *cliError {
	return &cliError{status: 1, msg: fmt.Sprintf(format, args...), hint: hint}
}

func report(stderr io.Writer, e *cliError) int {
	fmt.Fprintf(stderr, "mpirun: error: %s\n", e.msg)
	if e.hint != "" {
		fmt.Fprintf(stderr, "mpirun: hint: %s\n", e.hint)
	}
	return e.status
}

func run(args []string, stdin *os.File, stdout, stderr *os.File) int {
	if len(args) > 0 && (args[0] == "-merge-traces" || args[0] == "--merge-traces") {
		return mergeTraces(args[1:], stderr)
	}
	cfg, cerr := parseArgs(args)
	switch cerr {
	case nil:
	case errHelp:
		io.WriteString(stdout, usageText)
		return 0
	case errVersion:
		io.WriteString(stdout, versionText())
		return 0
	case errNoArgs:
		io.WriteString(stderr, shortUsage)
		return 2
	default:
		return report(stderr, cerr)
	}
	for _, w := range cfg.warnings {
		fmt.Fprintf(stderr, "mpirun: warning: %s\n", w)
	}
	return startJob(cfg, stdin, stdout, stderr)
}
