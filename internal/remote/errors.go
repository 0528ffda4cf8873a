package remote

import (
	"errors"
	"fmt"
)

// Kinds of failure; a *DialError wraps exactly one of them, so
// errors.Is(err, remote.ErrUnknownHost) works on what Dial returns.
var (
	ErrUnreachable    = errors.New("remote: host unreachable")
	ErrRefused        = errors.New("remote: connection refused")
	ErrAuth           = errors.New("remote: authentication failed")
	ErrUnknownHost    = errors.New("remote: unknown host key")
	ErrHostKeyChanged = errors.New("remote: host key changed")
	ErrHostKeyRevoked = errors.New("remote: host key revoked")
	ErrBadConfig      = errors.New("remote: bad ssh configuration")
	ErrWrongArch      = errors.New("remote: program cannot run on this host")
	ErrSSH            = errors.New("remote: ssh failed") // any other failure
	// ErrHostLost is wrapped by Host.Lost: the host stopped answering
	// keepalives and its connection was closed.
	ErrHostLost = errors.New("remote: host stopped answering")
)

// DialError is a failed connection to one host, with a hint for the user.
type DialError struct {
	Target string // "user@host:port" as dialled
	Kind   error  // ErrUnreachable, ErrRefused, ErrAuth, ErrUnknownHost, ...
	Detail string // what happened, for the message
	Hint   string // what to do about it; may be empty
	Err    error  // the underlying error, may be nil
}

func (e *DialError) Error() string {
	return fmt.Sprintf("remote: connect to %s: %s", e.Target, e.Detail)
}

func (e *DialError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Hint returns the hint of the first *DialError (or *ArchError) in err's
// chain, or "".
func Hint(err error) string {
	var de *DialError
	if errors.As(err, &de) {
		return de.Hint
	}
	var ae *ArchError
	if errors.As(err, &ae) {
		return ae.Hint()
	}
	return ""
}
