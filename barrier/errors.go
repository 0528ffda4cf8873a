package barrier

import (
	"errors"
	"fmt"
)

var (
	// ErrMismatch means a message did not belong to the barrier being
	// waited for: another epoch, round or algorithm, or malformed bytes.
	// The ranks called Wait a different number of times, mixed algorithms
	// or roots, or a message stream is corrupt.
	ErrMismatch = errors.New("barrier: mismatched message")
	// ErrPeerFailed means another rank reported that a rank failed: it
	// could not send to it or receive from it.
	ErrPeerFailed = errors.New("barrier: peer failed")
	// ErrBadRoot means the root of a central barrier is not a rank.
	ErrBadRoot = errors.New("barrier: root out of range")
)

// Error is the failure of one barrier on one rank.
type Error struct {
	Epoch uint64 // the barrier that failed (0 for the first)
	Rank  int    // the rank returning the error
	Peer  int    // the rank that failed or sent the offending message; -1 if none
	// Err is the cause: the transport's error when this rank saw the
	// failure itself, or wraps ErrMismatch, ErrPeerFailed or ErrBadRoot.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("barrier: epoch %d, rank %d: %v", e.Epoch, e.Rank, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
