package rank

import "github.com/dsmexec/dsmexec/internal/collective"

// ProcNull as a destination or source makes a send or receive a no-op, as
// MPI_PROC_NULL does: boundary ranks need no special case.
const ProcNull = -2

// Undefined as the color of Split leaves the caller out of every new
// communicator (MPI_UNDEFINED).
const Undefined = -1

// Status describes a received (or probed) message.
type Status struct {
	Source int // the sender's rank in the communicator
	Tag    int
	Count  int // bytes, also for typed receives
}

// Communicator is what *World and *Comm have in common: every
// package-level function (Reduce, Allreduce, the typed calls) takes one.
type Communicator interface {
	Rank() int
	Size() int
	Send(to, tag int, b []byte) error
	Recv(from, tag int) ([]byte, error)
	RecvFrom(from, tag int) (int, []byte, error)
	RecvStatus(from, tag int) ([]byte, Status, error)
	RecvInto(from, tag int, buf []byte) (int, Status, error)
	Probe(from, tag int) (Status, error)
	Iprobe(from, tag int) (Status, bool, error)
	Sendrecv(to, sendTag int, b []byte, from, recvTag int) ([]byte, Status, error)
	Isend(to, tag int, b []byte) *Request
	Irecv(from, tag int) *Request
	Split(color, key int) (*Comm, error)
	Dup() (*Comm, error)
	WorldRank(r int) int
	Abort(code int)
	Barrier() error
	Bcast(root int, b []byte) ([]byte, error)
	Gather(root int, b []byte) ([][]byte, error)
	Allgather(b []byte) ([][]byte, error)
	Scatter(root int, parts [][]byte) ([]byte, error)

	// coll starts a collective call: the transport to run it on (one per
	// communicator, its own matching context) and a func ending the call.
	coll(call func() string) (collective.Transport, func(), error)
	// check passes a failed call's error through the error mode: returned
	// (ErrorsReturn, or the caller's own mistake) or fatal.
	check(call func() string, err error) error
}

var _ Communicator = (*World)(nil)
