package coherence

import (
	"errors"
	"fmt"
)

// ErrPeerLost is matched (errors.Is) by every error the machine reports:
// a request failed because a rank it depended on was lost.
var ErrPeerLost = errors.New("coherence: peer lost")

// PeerLostError is the error carried by Fail and LockFailed.
type PeerLostError struct {
	Page   Page   // the page whose fault failed (when !IsLock)
	Lock   uint32 // the lock whose Lock failed (when IsLock)
	IsLock bool
	Rank   int  // the lost rank
	Role   Role // what Rank was to the page or lock
}

func (e *PeerLostError) Error() string {
	if e.IsLock {
		return fmt.Sprintf("coherence: lock %d: rank %d (%s) was lost", e.Lock, e.Rank, e.Role)
	}
	return fmt.Sprintf("coherence: page %d: rank %d (%s) was lost", e.Page, e.Rank, e.Role)
}

// Is makes errors.Is(err, ErrPeerLost) true.
func (e *PeerLostError) Is(target error) bool { return target == ErrPeerLost }
