// Command bench is `make bench`: it measures dsmexec and prints every figure
// beside a baseline measured in the same run, as a ratio. It asserts
// nothing; it is a report (see docs/PERFORMANCE.md for a reading of it).
//
//	go run ./scripts/bench           (or make bench, which builds bin/ first)
//	go run ./scripts/bench -quick    fewer repetitions, for a smoke test
//	go run ./scripts/bench -rounds 3 rounds of every figure after the launch (default 5, -quick 1)
//
// What it measures: launch time of bin/mpirun; barrier latency, ping-pong
// latency and bandwidth, context switches and CPU time per round trip, the
// CPU a rank blocked in Recv uses (and its page server), and allreduce, each
// twice: with DSMEXEC_TRANSPORT=tcp against Open MPI's TCP transport (btl
// tcp,self on lo), and with the default transport (shared memory between
// ranks on one host) against Open MPI's shared memory (btl self,vader); the
// shared memory's remote read- and write-fault times (mean, p50, p99, max)
// against a raw Go TCP round trip (scripts/bench/rawrtt); and the rows of
// issue 9's API (scripts/bench/ranksapi, built with -tags benchapi, "n/a"
// while the API does not compile): typed against []byte messages,
// Isend/Irecv against Send/Recv, and Alltoall, Scan and ReduceScatter at 8
// ranks against Open MPI's. The Open MPI programs are in scripts/bench/c,
// compiled with mpicc here. Every row prints the issues' goal and whether
// this run meets it.
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
