// Command mpirun starts N copies ("ranks") of a program and wires them into
// one dsmexec job.
//
// Usage:
//
//	mpirun [options] program [args...]
//
// Options stop at the program name: everything after it goes to the program.
// Every rank gets the DSMEXEC_* launch environment (rank, size, the master's
// address, the job token, its host, the shared region's size); rank.Init
// reads it, reports to mpirun's master socket and builds the mesh.
//
// Each line a rank prints is shown whole, prefixed "[rank N] " (lines are
// never spliced, see internal/output). Standard input goes to rank 0; the
// others read /dev/null.
//
// The first rank that exits non-zero or is killed by a signal ends the job:
// the others get SIGTERM, then SIGKILL after -grace, and mpirun prints
// "mpirun: rank R (pid P) exited with status S" (or "killed by signal
// SIGKILL") and exits with that status (128+signal for a signal). SIGINT,
// SIGTERM and SIGHUP to mpirun stop every rank the same way (a second one
// kills them at once) and mpirun exits 130, 143 or 129. -timeout ends the
// job the same way with status 124, like timeout(1), naming the ranks that
// were still running and printing their goroutine stacks. When every
// running rank has waited in a dsmexec call for -deadlock-after (2s) with
// no message on its way to it, mpirun names the wait-for cycle ("mpirun:
// deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in
// Recv(from 0, tag 0); nobody can send"), prints the stacks and ends the
// job with status 3 (deadlock.go, internal/deadlock). Bad input is reported as "mpirun: error: ..." with a
// "mpirun: hint: ..." where one helps, before anything starts: status 2 for
// usage errors, 1 otherwise.
//
// MPMD: "mpirun -np 1 ./master : -np 4 ./worker" runs several programs as
// one job, ranks numbered in order. Open MPI's and MPICH's spellings of the
// options are accepted where dsmexec has the option (-f, -hosts, -H, -ppn,
// -N, -genv, -l, -wdir, --timeout in seconds, ...); options it lacks
// (--bind-to, --map-by, --mca, ...) are refused with a hint.
//
// The rules of a job (who is stopped when, the grace period, blame, Abort,
// a lost host, the timeout, Ctrl-C twice) are a pure state machine,
// internal/launch; this package is its driver: it owns the processes, the
// SSH hosts (one launcher interface for both), the master socket, the
// timers and the output.
//
// No rank outlives mpirun: each rank runs in its own process group, which
// mpirun signals and, once the rank has exited, kills whatever is left of;
// if mpirun itself is killed, the kernel kills every rank (parent-death
// signal) and each rank also exits when its master connection drops.
//
// # Several machines
//
// With -machinefile (or -host) ranks are placed on the listed hosts by
// internal/hostfile. Entries naming this machine are forked as above; the
// others are reached over SSH (internal/remote), one connection per host,
// all hosts in parallel (at most 16 SSH handshakes at a time). On each, mpirun checks that the program's architecture
// fits, copies itself and the program into the host's cache
// (~/.cache/dsmexec/<sha256>/), skipping what is there already, and starts
// itself in its hidden agent mode ("mpirun -agent"), which starts that
// host's ranks and streams their lines and exits back. Output is then
// tagged "[rank N@host] ". Remote ranks get the agent's (login)
// environment plus the DSMEXEC_* variables and -x; the master listens on
// the address the hosts reach this machine by (the local address of the
// SSH connections) instead of 127.0.0.1.
//
// A host that cannot be reached, refuses the key, has an unknown or changed
// host key, or cannot run the program is an "mpirun: error:" naming it,
// with a hint, before any rank starts. A host lost during the job (its
// connection drops, or it misses SSH keepalives for 3 s) ends the job with
// "mpirun: error: lost host H (ranks ...)"; its agent stops the ranks there
// when its input ends, or after 15 s without a ping from mpirun if the
// network is cut.
//
// Example:
//
//	mpirun -np 4 ./pi
//	mpirun -np 2 -x OMP_NUM_THREADS=1 -summary -output-dir out ./matmul 512
//	mpirun -np 8 -machinefile hosts ./matmul 512
//
// See usage (mpirun -h) for every option.
package main
