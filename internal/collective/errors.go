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
	// collectives, roots, ops, element types, vector lengths or call
	// numbers (see Sequencer), or a malformed message.
	ErrMismatch = errors.New("collective: mismatched call")
	// ErrPartCount means the root of Scatter did not pass one part per rank.
	ErrPartCount = errors.New("collective: scatter needs one part per rank")
	// ErrBadOp means an Op that is not Sum, Prod, Min or Max.
	ErrBadOp = errors.New("collective: unknown op")
	// ErrTransport means a Send or Recv failed (a lost peer, a closed
	// world). On the rank that saw it the transport's error is wrapped too.
	ErrTransport = errors.New("collective: transport failed")
)

// Error is the failure of one collective call. The rank that sees a
// failure first passes it on through the rest of the algorithm, so the
// other ranks return an Error describing the same failure.
type Error struct {
	Call   string // the collective called on this rank: "bcast", "allreduce", ...
	Rank   int    // the rank that saw the failure first
	Reason string // what it saw
	// Err is one of the package's sentinel errors, and on the rank that
	// saw a transport failure also the transport's error.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("collective: %s on rank %d: %s", e.Call, e.Rank, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Error codes carried in a message header when the sender is failing.
const (
	codeOK        = 0
	codeMismatch  = 1
	codePartCount = 2
	codeBadOp     = 3
	codeTransport = 4
	maxCode       = codeTransport
)

func codeErr(code uint8) error {
	switch code {
	case codeMismatch:
		return ErrMismatch
	case codePartCount:
		return ErrPartCount
	case codeBadOp:
		return ErrBadOp
	case codeTransport:
		return ErrTransport
	}
	panic(fmt.Sprintf("collective: no error for code %d", code))
}
