package launch

import (
	"fmt"
	"time"
)

// Config is what the machine knows about a job before it starts.
type Config struct {
	Size      int
	Hosts     []string // the host of each rank, for messages
	MultiHost bool     // messages name the host of a rank
	Grace     time.Duration
	Timeout   time.Duration // 0: none
	// Settle bounds the wait for a lost peer's exit before a rank that
	// failed because of it is blamed instead.
	Settle time.Duration
	// RendezvousTimeout and MasterAddr are for messages only.
	RendezvousTimeout time.Duration
	MasterAddr        string
	// Summary: -summary was given (or implied); SummaryOff: -summary=false
	// was given, so the table is not printed even if ranks reported values.
	Summary, SummaryOff bool
}

// DefaultSettle is a Config.Settle that covers a killed peer's exit being
// reaped or relayed by a host's agent.
const DefaultSettle = 500 * time.Millisecond

// Sig is a POSIX signal number.
type Sig int

// The signals the machine sends or hears.
const (
	SIGHUP  Sig = 1
	SIGINT  Sig = 2
	SIGKILL Sig = 9
	SIGTERM Sig = 15
)

func (s Sig) String() string {
	switch s {
	case SIGHUP:
		return "SIGHUP"
	case SIGINT:
		return "SIGINT"
	case SIGKILL:
		return "SIGKILL"
	case SIGTERM:
		return "SIGTERM"
	}
	return fmt.Sprintf("signal %d", int(s))
}

// Timer names one of the job's timers.
type Timer int

// The job's timers.
const (
	TimerTimeout Timer = iota // -timeout
	TimerGrace                // SIGTERM to SIGKILL
	TimerSettle               // waiting for a lost peer's exit to blame it
)

func (t Timer) String() string {
	return [...]string{"timeout", "grace", "settle"}[t]
}

// An Event is something that happened to the job.
type Event interface{ event() }

// Begin starts the job.
type Begin struct{}

// Started: rank started, as process Pid (0 if not known yet).
type Started struct{ Rank, Pid int }

// StartFailed: rank could not be started.
type StartFailed struct {
	Rank int
	Err  string
}

// Joined: rank reported to the master, from process Pid (0: not known).
type Joined struct{ Rank, Pid int }

// Failure: rank said it is about to exit because of an error; LostPeer is
// the rank whose loss caused it, -1 if none, AnyPeer if some other rank's
// failure caused it but the rank cannot tell which (a collective that a
// third rank saw fail, a mesh connection reset during Init).
type Failure struct {
	Rank, LostPeer int
	Msg            string
}

// AnyPeer as Failure.LostPeer: the failure is another rank's doing.
const AnyPeer = -2

// Aborted: rank called Abort(Code).
type Aborted struct{ Rank, Code int }

// Exited: rank's process ended (or its host was lost, or it could not be
// started where it runs).
type Exited struct {
	Rank, Pid int
	Status    int    // shell status: code, or 128+signal
	Failed    bool   // non-zero, or killed by a signal
	How       string // "exited with status 3", "killed by signal SIGKILL"
	// Lost: the rank's host was lost before it reported the exit; How says
	// why.
	Lost bool
	// StartErr: the host could not start it (the pid is 0).
	StartErr string
}

// OutputClosed: every line of rank was delivered.
type OutputClosed struct{ Rank int }

// Signal: mpirun received Sig.
type Signal struct{ Sig Sig }

// Fired: a timer armed by Arm expired.
type Fired struct{ Timer Timer }

// RendezvousFailed: the master gave up on ranks that never reported;
// Joined is how many did.
type RendezvousFailed struct {
	Err    string
	Joined int
}

// Closed answers Close: the driver closed the job's connections and output.
type Closed struct {
	Reported bool              // some rank reported values (World.Report)
	Backend  string            // the DSM fault backend(s) the ranks used
	Lost     map[string]Reason // why each lost host was lost
}

// Reason says why a host was lost and what to check.
type Reason struct{ Why, Hint string }

// ReportWritten answers WriteReport.
type ReportWritten struct{ Err string }

// Deadlocked: mpirun's deadlock detector found every live rank waiting
// for another for at least After; Text says so in words. Unless the job
// is stopping already, the machine answers TellDeadlock and stops the job
// with StatusDeadlock.
type Deadlocked struct {
	Text  string
	After time.Duration
}

// StatusDeadlock is mpirun's exit status after a deadlock.
const StatusDeadlock = 3

func (Begin) event()            {}
func (Started) event()          {}
func (StartFailed) event()      {}
func (Joined) event()           {}
func (Failure) event()          {}
func (Aborted) event()          {}
func (Exited) event()           {}
func (OutputClosed) event()     {}
func (Signal) event()           {}
func (Fired) event()            {}
func (RendezvousFailed) event() {}
func (Closed) event()           {}
func (ReportWritten) event()    {}
func (Deadlocked) event()       {}

// An Action is what the driver must do.
type Action interface{ action() }

// StartRank: start rank; answer Started or StartFailed.
type StartRank struct{ Rank int }

// Kill: send Sig to the ranks' process groups.
type Kill struct {
	Ranks []int
	Sig   Sig
}

// Arm: fire Timer after After (replacing an armed one); Disarm stops it.
type Arm struct {
	Timer Timer
	After time.Duration
}

// Disarm stops Timer; it must not fire afterwards.
type Disarm struct{ Timer Timer }

// Print: a line on mpirun's stderr; Verbose lines only with -v.
type Print struct {
	Text    string
	Verbose bool
}

// AskWhere: ask the ranks still running where they wait, and print it;
// Who names each of Ranks.
type AskWhere struct {
	Ranks []int
	Who   []string
}

// TellDeadlock: print Text ("deadlock: rank 0 waits in ...") after
// "mpirun: ", then the stacks of Ranks (named by Who), before they are
// stopped.
type TellDeadlock struct {
	Text  string
	Ranks []int
	Who   []string
}

// Close: every rank is gone; close the master, the hosts and the output,
// then answer Closed.
type Close struct{}

// WriteReport: write the -summary report; answer ReportWritten.
type WriteReport struct{}

// Exit: mpirun exits with Code. Nothing follows.
type Exit struct{ Code int }

func (StartRank) action()    {}
func (Kill) action()         {}
func (Arm) action()          {}
func (Disarm) action()       {}
func (Print) action()        {}
func (AskWhere) action()     {}
func (TellDeadlock) action() {}
func (Close) action()        {}
func (WriteReport) action()  {}
func (Exit) action()         {}
