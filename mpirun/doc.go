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
// were still running. Bad input is reported as "mpirun: error: ..." with a
// "mpirun: hint: ..." where one helps, before anything starts: status 2 for
// usage errors, 1 otherwise.
//
// No rank outlives mpirun: each rank runs in its own process group, which
// mpirun signals and, once the rank has exited, kills whatever is left of;
// if mpirun itself is killed, the kernel kills every rank (parent-death
// signal) and each rank also exits when its master connection drops.
//
// Example:
//
//	mpirun -np 4 ./pi
//	mpirun -np 2 -x OMP_NUM_THREADS=1 -summary -output-dir out ./matmul 512
//
// See usage (mpirun -h) for every option.
package main
