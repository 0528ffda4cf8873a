package barrier

import "fmt"

// Dissemination runs one dissemination barrier with the given epoch over t:
// ⌈log2 N⌉ rounds, in round k sending to (rank+2^k) mod N and receiving from
// (rank-2^k) mod N. All ranks must pass the same epoch; a message with
// another epoch or round is an error that says what was expected. With one
// rank it returns at once.
//
// A rank that fails a round keeps going and sends a failure status in the
// remaining rounds, so every rank ends with an *Error naming the failed rank
// rather than waiting for a message that will not come.
func Dissemination(t Transport, epoch uint64) error {
	r := newRun(t, epoch)
	for k, d := 0, 1; d < r.size; k, d = k+1, d*2 {
		r.send((r.rank+d)%r.size, kindDissemination, byte(k))
		r.recv((r.rank-d+r.size)%r.size, kindDissemination, byte(k))
	}
	return r.result()
}

// Central runs one central-counter barrier with the given epoch over t:
// every rank but root sends an arrival to root; once root has heard from
// all of them it sends each a release. A failure seen by root travels in the
// releases, so every rank returns an *Error naming the failed rank.
func Central(t Transport, root int, epoch uint64) error {
	r := newRun(t, epoch)
	if root < 0 || root >= r.size {
		return &Error{Epoch: epoch, Rank: r.rank, Peer: -1,
			Err: fmt.Errorf("root %d of %d ranks: %w", root, r.size, ErrBadRoot)}
	}
	if r.rank != root {
		r.send(root, kindArrive, 0)
		r.recv(root, kindRelease, 0)
		return r.result()
	}
	for i := range r.size {
		if i != root {
			r.recv(i, kindArrive, 0)
		}
	}
	for i := range r.size {
		if i != root {
			r.send(i, kindRelease, 0)
		}
	}
	return r.result()
}
