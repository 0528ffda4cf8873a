package main

import (
	"fmt"
	"io"
	"os"

	"github.com/dsmexec/dsmexec/internal/remote"
)

const usageText = `usage: mpirun [options] program [args...]

Starts N copies ("ranks") of program as one dsmexec job. Options stop at the
program name; everything after it is passed to the program.

options:
  -np N, -n N              number of ranks (default 1)
  -machinefile FILE        hosts to run on, one per line (also -hostfile);
                           without it (and -host) every rank runs on this
                           machine; with it, -np defaults to the total slots
  -host LIST               the hosts as a list instead: node1:2,alice@node2
  -ssh-always              start even this machine's ranks over SSH
  -ssh-accept-new          add the keys of hosts missing from
                           ~/.ssh/known_hosts (OpenSSH's accept-new); a
                           changed key is always refused
  -ssh-timeout D           connect timeout per host (default: ConnectTimeout
                           of ~/.ssh/config, else 8s)
  -no-copy                 run the program at its path on every host instead
                           of copying it into the hosts' cache
  -x NAME[=VALUE]          set NAME for every rank, or forward mpirun's own
                           NAME; repeatable
  -dsm-size SIZE           size of the shared region: bytes, or with a K, M,
                           G (KiB, MiB, GiB) suffix (default 64MiB)
  -timeout D               stop the job after D (e.g. 90s, 5m) and exit 124;
                           0 means never (default 0)
  -grace D                 time between SIGTERM and SIGKILL when the job is
                           stopped (default 1s)
  -rendezvous-timeout D    time for every rank to report to mpirun's master
                           (default 30s); not enforced when no rank ever
                           reports (a program that does not use dsmexec)
  -tag-output              prefix every output line with "[rank N] "
                           (default true; -tag-output=false turns it off)
  -output-dir D            also write D/rank.N.out and D/rank.N.err
  -summary                 print a table per rank at the end: host, pid,
                           exit status, wall and CPU time, max RSS, DSM
                           counters and the values ranks reported
  -report-format F         table, csv or json (implies -summary)
  -report-file FILE        write the summary to FILE instead of stderr
  -v                       explain what mpirun does (placement, master
                           address, fault backend, ...)
  -h                       show this help

machine file: one host per line; # starts a comment. Each line is
  [user@]host[:SLOTS] [slots=N] [max_slots=N] [user=U] [port=P]
or [user@][host]:PORT[:SLOTS] (brackets mean an ssh port; IPv6 goes in
brackets too). Ranks fill each line's slots in order, then start again at
the first line: more ranks than slots is allowed, with a warning. This
machine's names (localhost, 127.0.0.1, its host name) without another user
or a port are forked; other hosts are reached over SSH with your keys and
~/.ssh/known_hosts, and the program is copied into ~/.cache/dsmexec there.

exit status: that of the first rank that failed (128+signal if killed by
one), 124 after -timeout, 128+signal if mpirun was interrupted, 2 for a
usage error, 1 for other errors of mpirun (a host that cannot be reached
or is lost during the job), 0 when every rank exited 0.

examples:
  mpirun -np 4 ./pi
  mpirun -np 2 -x OMP_NUM_THREADS=1 -summary -output-dir out ./matmul 512
  mpirun -np 8 -machinefile hosts ./matmul 512
  mpirun -host node1:2,node2:2 ./hello
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
	cfg, cerr := parseArgs(args)
	if cerr != nil {
		if cerr == errHelp {
			io.WriteString(stdout, usageText)
			return 0
		}
		return report(stderr, cerr)
	}
	for _, w := range cfg.warnings {
		fmt.Fprintf(stderr, "mpirun: warning: %s\n", w)
	}
	return startJob(cfg, stdin, stdout, stderr)
}
