// Package deadlock decides, from a snapshot of a job, whether it is
// deadlocked, and says so in words:
//
//	deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 0, tag 0); nobody can send
//
// It is a pure function (no clocks, no I/O): mpirun polls the ranks for
// what each is doing (computing, finished, or blocked in which call since
// when, how many collectives it entered per communicator) and for the
// messages sent but not yet received, and calls Check. A job is
// deadlocked when every live rank has been blocked for at least D, no
// message in flight matches any blocked receive, and every blocked
// collective lacks a member that has not entered it. A computing rank or
// a matching message in flight is never a deadlock; the randomized test
// checks tens of thousands of snapshots of correct jobs with long compute
// phases and slow networks.
//
// Question and Report are the STATE frame's bodies (wire type 22, mpirun
// → rank → mpirun, JSON): what a rank waits in, for how long, its
// collectives per communicator and its message counts per peer (sent,
// and arrived: a header read). Build turns the answers into a Snapshot
// (in flight = sent by i to j − arrived at j from i, on every
// communicator a blocked receive uses); Report.Same says a rank did
// nothing between two answers, which mpirun requires of every rank before
// it believes a second deadlocked verdict (mpirun/deadlock.go).
//
// ParseStacks, Busy and Trim read runtime.Stack(buf, true) dumps: Busy
// lists the program's goroutines that could go on without another rank (a
// rank must not report itself blocked while there are any), Trim keeps
// the program's goroutines with the dsmexec call each is in and its own
// frames, for mpirun's stack report on -timeout or a deadlock.
//
// Usage:
//
//	v := deadlock.Check(deadlock.Snapshot{
//		Now: time.Now(),
//		Ranks: []deadlock.Rank{
//			{State: deadlock.Blocked, Since: t, Call: deadlock.Call{Name: "Recv", Recvs: []deadlock.Match{{From: 1, Tag: 0}}}},
//			{State: deadlock.Blocked, Since: t, Call: deadlock.Call{Name: "Recv", Recvs: []deadlock.Match{{From: 0, Tag: 0}}}},
//		},
//	}, 2*time.Second)
//	if v.Deadlocked {
//		fmt.Fprintln(os.Stderr, "mpirun: "+v.Text)
//	}
//
//	gs := deadlock.ParseStacks(buf[:runtime.Stack(buf, true)])
//	blocked := len(deadlock.Busy(gs, myGoroutine)) == 0
//	report := deadlock.Trim(gs)
package deadlock
