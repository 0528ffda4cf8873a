// Package launch holds the rules of an mpirun job as a pure state machine:
// events in (a rank started, exited, reported why it fails, called Abort; a
// signal to mpirun; a timer fired; ...), actions out (start the next rank,
// signal ranks, arm or stop a timer, print a line, write the report, exit).
// It does no I/O and owns no goroutines, clocks, sockets or processes: the
// driver in mpirun does, and feeds back what happened. Every way a job ends
// is a scenario in testdata/*.txt, and a seeded simulation (sim_test.go)
// checks that any order of events ends the job with the first failure's
// status, with every started rank signalled or exited.
//
// The rules:
//
//   - Ranks are started in order, one StartRank at a time; nothing more is
//     started once the job stops.
//   - The first cause ends the job: a rank that failed (non-zero exit,
//     killed by a signal, its host lost, could not be started), a signal to
//     mpirun, the timeout, a rendezvous failure, or a rank's Abort. Stopping
//     sends SIGTERM to every running rank and arms the grace timer; when it
//     fires they get SIGKILL. A second signal to mpirun kills at once.
//   - A rank exiting 0 early is normal: the others go on.
//   - Blame goes to the first failure in time, not the first exit reaped: a
//     rank that reported (Failure) that it fails because it lost peer P is
//     not blamed while P has not exited; the job waits up to Settle for P's
//     exit, and blames P if P failed. Ranks that reported a failure before
//     a later failing rank exited are waited for the same way. A rank that
//     reported that its failure is some other rank's doing without knowing
//     which (AnyPeer) is blamed only if no other failure comes within Settle.
//   - Abort(code) wins over rank failures (the ranks it takes down may exit
//     first) and exits with code (1 if code&0xff is 0).
//   - Once every started rank has exited and its output is closed, the
//     driver closes the job (Close) and reports back (Closed); the machine
//     prints the lost hosts and the cause, asks for the report if there is
//     one, and exits.
package launch
