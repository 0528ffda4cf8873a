// Command bench is `make bench`: it measures dsmexec and prints every figure
// beside a baseline measured in the same run, as a ratio. It asserts
// nothing; it is a report (see docs/PERFORMANCE.md for a reading of it).
//
//	go run ./scripts/bench           (or make bench, which builds bin/ first)
//	go run ./scripts/bench -quick    fewer repetitions, for a smoke test
//
// What it measures: launch time of bin/mpirun, barrier latency, ping-pong
// latency and bandwidth, the shared memory's remote read- and write-fault
// times against a raw Go TCP round trip, and allreduce. The baselines are
// Open MPI over its TCP transport (C programs in scripts/bench/c, compiled
// with mpicc here) and the raw round trip (scripts/bench/rawrtt).
//
// As root, every program (ours and Open MPI's) runs inside a network
// namespace "dsmbench" that has only lo, so both see the same network and
// Open MPI cannot pick another interface: the driver re-executes itself
// there with -inner. Otherwise ours runs on 127.0.0.1 and Open MPI is
// skipped, with the reason printed.
//
// Multi-host hook: with DSMEXEC_BENCH_MACHINEFILE set, the launch and read-
// fault figures are also taken with `mpirun -machinefile $FILE`, outside
// the dsmbench namespace (in $DSMEXEC_BENCH_NETNS if set, e.g. dsm-l of
// scripts/cluster-up.sh), and printed beside the one-host figures.
package main
