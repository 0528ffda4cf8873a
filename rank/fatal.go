package rank

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// Option changes how InitWith forms the world.
type Option struct {
	apply func(*options)
}

type options struct {
	errorsReturn bool
}

// ErrorsReturn makes failed calls return their error instead of ending the
// rank (MPI_ERRORS_RETURN).
var ErrorsReturn = Option{apply: func(o *options) { o.errorsReturn = true }}

// isMistake says whether err is the caller's own mistake at the call site,
// returned in both error modes.
func isMistake(err error) bool {
	var ce *callError
	if errors.As(err, &ce) {
		return true
	}
	for _, s := range []error{ErrFinalized, ErrBadRank, ErrBadTag, ErrBadColor, ErrFreed, ErrTruncate,
		ErrTooLarge, ErrConcurrentSplit, collective.ErrBadRoot, collective.ErrPartCount, collective.ErrBadOp, collective.ErrBadArg} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// check passes a failed call's error through the error mode: returned
// with ErrorsReturn or when it is the caller's mistake; otherwise the rank
// prints it, tells mpirun and exits 1.
func (w *World) check(call func() string, err error) error {
	if err == nil || w.errorsReturn || isMistake(err) {
		return err
	}
	msg := fmt.Sprintf("rank %d: %s: %v", w.rank, call(), err)
	fmt.Fprintln(os.Stderr, msg)
	lost := -1
	var pe *PeerError
	if errors.As(err, &pe) {
		lost = pe.Rank
	} else if errors.Is(err, collective.ErrTransport) {
		lost = anyPeer // a collective another rank saw fail
	}
	w.tr.lost(lost)
	w.tr.stopTraceExit(w.mem)
	if w.master != nil {
		w.master.Failed(lost, msg)
	}
	if w.pmi != nil {
		w.pmi.Abort(1, msg)
	}
	os.Exit(1)
	return err
}

// anyPeer as the lost peer of a failure reported to mpirun: another rank's
// failure caused it, this rank cannot tell which (launch.AnyPeer).
const anyPeer = -2

// Abort ends the whole job at once with code, as MPI_Abort: mpirun (or
// the PMI launcher) ends every rank and exits with code (1 if code is 0).
// A singleton exits with code.
func (w *World) Abort(code int) {
	fmt.Fprintf(os.Stderr, "rank %d: Abort(%d)\n", w.rank, code)
	w.tr.stopTraceExit(w.mem)
	if w.master != nil {
		w.master.Abort(code)
	}
	if w.pmi != nil {
		w.pmi.Abort(code, fmt.Sprintf("rank %d called Abort(%d)", w.rank, code))
	}
	if code == 0 && w.size > 1 {
		code = 1
	}
	os.Exit(code)
}

// The fast record of the point-to-point call a goroutine waits in, for
// mpirun -timeout: atomics, no allocation per call. When several
// goroutines wait, it shows one of them.
type recvRecord struct {
	gen   atomic.Uint64
	call  atomic.Int32
	from  atomic.Int64
	tag   atomic.Int64
	since atomic.Int64
	g     atomic.Pointer[group]      // the communicator (from is its rank)
	reqs  atomic.Pointer[[]*Request] // Waitany's requests
}

const (
	callRecv int32 = iota + 1
	callRecvInto
	callProbe
	callSendrecv
	callWait
	callWaitany
)

var callNames = [...]string{callRecv: "Recv", callRecvInto: "RecvInto", callProbe: "Probe", callSendrecv: "Sendrecv",
	callWait: "Wait on Irecv", callWaitany: "Waitany on Irecv"}

func (w *World) enterRecv(g *group, call int32, from, tag int) uint64 {
	r := &w.recvRec
	gen := r.gen.Add(1)
	// A store is a locked instruction, a load is not: the fields a loop
	// of calls repeats are not stored again (readers check gen around
	// their reads).
	if r.g.Load() != g {
		r.g.Store(g)
	}
	if r.from.Load() != int64(from) {
		r.from.Store(int64(from))
	}
	if r.tag.Load() != int64(tag) {
		r.tag.Store(int64(tag))
	}
	r.since.Store(int64(time.Since(recvEpoch))) // (monotonic only: half of time.Now's cost)
	r.call.Store(call)
	return gen
}

// recvEpoch is the origin of recvRecord.since, which counts nanoseconds
// from it on the monotonic clock.
var recvEpoch = time.Now()

// recvTime is the time of a recvRecord.since value.
func recvTime(since int64) time.Time { return recvEpoch.Add(time.Duration(since)) }

func (w *World) leave(gen uint64) {
	if w.recvRec.gen.Load() == gen {
		w.recvRec.call.Store(0)
	}
}

// whereRecv describes the point-to-point wait in progress, or "".
func (w *World) whereRecv() string {
	r := &w.recvRec
	c := r.call.Load()
	if c == 0 {
		return ""
	}
	since := time.Since(recvTime(r.since.Load()))
	return fmt.Sprintf("%s(from %s, tag %s) for %v", callNames[c], anyName(int(r.from.Load())), anyName(int(r.tag.Load())),
		since.Round(time.Millisecond))
}
