package collective

import (
	"errors"
	"fmt"
)

var (
	// ErrBadRoot means the root passed is not a rank. Every rank checks
	// its own argument, without communicating.
	ErrBadRoot = errors.New("collective: root out of range")
	// ErrMismatch means the ranks did not make the same call: different
	// roots, ops, element types or vector lengths, or a malformed message.
	// A different collective altogether (or a different call number) is a
	// *MismatchError, which wraps ErrMismatch too.
	ErrMismatch = errors.New("collective: mismatched call")
	// ErrPartCount means the root of Scatter did not pass one part per rank.
	ErrPartCount = errors.New("collective: scatter needs one part per rank")
	// ErrBadOp means an Op that is not one of the package's, or a bitwise
	// Op on a floating-point type.
	ErrBadOp = errors.New("collective: bad op")
	// ErrBadArg means an argument the call cannot use: a length not
	// divisible by the number of ranks, a wrong number of parts.
	ErrBadArg = errors.New("collective: bad argument")
	// ErrDigest means the ranks passed different digests to BarrierDigest.
	ErrDigest = errors.New("collective: digest mismatch")
	// ErrTransport means a Send or Recv failed (a lost peer, a closed
	// world). On the rank that saw it the transport's error is wrapped too.
	ErrTransport = errors.New("collective: transport failed")
)

// Error is the failure of one collective call. The rank that sees a
// failure first passes it on through the rest of the algorithm, so the
// other ranks return an Error describing the same failure.
type Error struct {
	Call   string // the collective called on this rank: "Bcast", "Allreduce", ...
	Rank   int    // the rank that saw the failure first
	Reason string // what it saw
	// Err is one of the package's sentinel errors (or a *MismatchError),
	// and on the rank that saw a transport failure also the transport's
	// error.
	Err error

	local bool // every rank checked its own arguments: Rank is not news
}

func (e *Error) Error() string {
	var m *MismatchError
	if errors.As(e.Err, &m) {
		return m.Error()
	}
	if e.local {
		return fmt.Sprintf("collective: %s: %s", e.Call, e.Reason)
	}
	return fmt.Sprintf("collective: %s: %s (seen by rank %d)", e.Call, e.Reason, e.Rank)
}

func (e *Error) Unwrap() error { return e.Err }

// MismatchError says that two ranks made different collective calls at the
// same point of their sequence of calls (or are at different points): one
// called Bcast while the other called Barrier, say. The rank that notices
// tells every rank, so all of them return it; after it the transport's
// call streams cannot be realigned and every later call on it returns the
// same error (see Sequenced).
type MismatchError struct {
	Rank      int  // one rank ...
	Call      Kind // ... and its call
	Seq       uint32
	Other     int // the other rank ...
	OtherCall Kind
	OtherSeq  uint32
}

func (e *MismatchError) Error() string {
	if e.Seq == e.OtherSeq {
		// The lower rank first, whichever of the two noticed: every rank
		// prints the same sentence whatever the timing.
		r, c, o, oc := e.Rank, e.Call, e.Other, e.OtherCall
		if r > o {
			r, c, o, oc = o, oc, r, c
		}
		return fmt.Sprintf("collective: collective mismatch: rank %d called %v while rank %d called %v (call #%d)",
			r, c, o, oc, e.Seq)
	}
	return fmt.Sprintf("collective: collective mismatch: rank %d called %v (call #%d) while rank %d called %v (call #%d)",
		e.Rank, e.Call, e.Seq, e.Other, e.OtherCall, e.OtherSeq)
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Error codes carried in a message header when the sender is failing.
const (
	codeOK        = 0
	codeMismatch  = 1
	codePartCount = 2
	codeBadOp     = 3
	codeTransport = 4
	codeBadArg    = 5
	codeCall      = 6 // a *MismatchError, in a notice (stepNotice)
	maxCode       = codeCall
)

func codeErr(code uint8) error {
	switch code {
	case codeMismatch, codeCall:
		return ErrMismatch
	case codePartCount:
		return ErrPartCount
	case codeBadOp:
		return ErrBadOp
	case codeTransport:
		return ErrTransport
	case codeBadArg:
		return ErrBadArg
	}
	panic(fmt.Sprintf("collective: no error for code %d", code))
}
