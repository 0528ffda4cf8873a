package barrier

import (
	"sync"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// Transport carries this package's messages on a channel of their own:
//
//	Rank() int
//	Size() int
//	Send(to int, msg []byte) error // must not retain msg after return
//	Recv(from int) ([]byte, error)
//
// Messages between one ordered pair of ranks arrive in the order sent
// (FIFO per pair, like TCP); Recv(from) returns the next message from that
// rank, blocking; it fails (error naming the rank) if the peer is lost or
// the world closed. Send must not wait for the peer to call Recv (the
// receiving side buffers, as a reader goroutine per connection does), and
// the slice returned by Recv belongs to the caller. Calls for one barrier
// are made from one goroutine at a time.
//
// It is the one transport interface of the project: the collectives (and
// the rank package's Barrier, which runs with them so that a barrier
// message never passes for a Bcast's) use the same.
type Transport = collective.Transport

// Barrier blocks each rank in Wait until every rank of the world has called
// Wait the same number of times.
type Barrier interface {
	// Wait returns once every rank has entered this barrier, or with an
	// *Error when a rank failed or the ranks disagree about the barrier.
	Wait() error
}

// NewDissemination returns a dissemination barrier over t. It counts the
// barriers it completes (the epoch) and stamps every message with the count,
// so all ranks must create it at the same point and call Wait equally often.
// Wait may be called from several goroutines; the calls are serialised.
func NewDissemination(t Transport) Barrier {
	return &object{t: t, wait: func(epoch uint64) error { return Dissemination(t, epoch) }}
}

// NewCentral returns a central-counter barrier over t rooted at root: every
// rank reports to root, which releases every rank once all have arrived.
// All ranks must pass the same root. A root out of range makes Wait fail.
func NewCentral(t Transport, root int) Barrier {
	return &object{t: t, wait: func(epoch uint64) error { return Central(t, root, epoch) }}
}

// object keeps the epoch counter and the first failure of one barrier.
type object struct {
	t    Transport
	wait func(epoch uint64) error

	mu    sync.Mutex
	epoch uint64
	err   error // sticky: the message streams are not trusted after a failure
}

func (o *object) Wait() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	err := o.wait(o.epoch)
	o.epoch++
	o.err = err
	return err
}
