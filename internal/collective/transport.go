package collective

import (
	"fmt"
	"sync"
	"time"
)

// Transport carries the messages of the collectives on a channel of their
// own. Messages between one ordered pair of ranks arrive in the order sent
// (FIFO per pair, like TCP); Recv(from) returns the next message from that
// rank, blocking; it fails (error naming the rank) if the peer is lost or
// the world closed.
//
// The algorithms send before they receive, so Send must not wait for the
// peer to call Recv (the receiving side buffers, as a reader goroutine per
// connection does). The slice returned by Recv belongs to the caller; if its
// first byte is 8-byte aligned, numbers are combined in place without a copy.
// Collective calls on one Transport must not overlap (one at a time per
// rank, the same sequence of calls on every rank, as in MPI).
//
// The barrier package uses the same interface (barrier.Transport is an
// alias of this one).
type Transport interface {
	Rank() int
	Size() int
	Send(to int, msg []byte) error // must not retain msg after return
	Recv(from int) ([]byte, error)
}

// Sequencer may be implemented by a Transport to number collective calls.
// Every message then carries the number of its call, so that a message left
// over from an earlier call (one that failed part-way, or a call some rank
// skipped) is reported as a mismatch instead of being taken as data.
// NextSeq is called once at the start of every collective call and must
// return the same sequence on every rank. Without it the number is 0.
type Sequencer interface {
	NextSeq() uint32
}

// TimedReceiver may be implemented by a Transport so that a Sequenced
// transport says hello lazily (see call.hello): RecvWithin is Recv that
// gives up after d, returning ok false and taking no message if none from
// rank from arrived by then; with d 0 it only takes a message that has
// already arrived, without waiting or making progress. An error is a
// failure as in Recv.
type TimedReceiver interface {
	RecvWithin(from int, d time.Duration) (msg []byte, ok bool, err error)
}

// IntoReceiver may be implemented by a TimedReceiver so that collectives
// receive into buffers of their own, reused from call to call, instead of
// a new slice per message. RecvIntoWithin is RecvWithin (d > 0) into buf:
// n is the message's length; a message longer than buf is taken whole,
// and buf holds its first len(buf) bytes.
type IntoReceiver interface {
	RecvIntoWithin(from int, buf []byte, d time.Duration) (n int, ok bool, err error)
}

// helloAfter is how long a call on a TimedReceiver waits for a message
// before it sends its hellos.
var helloAfter = 2 * time.Millisecond

// Sequenced returns a Transport that forwards to t, numbers the calls
// (implements Sequencer with a counter starting at 1) and remembers a call
// mismatch: once the ranks' calls have been out of step (a *MismatchError),
// every later call returns that error at once. Wrap each rank's transport
// once, per communicator, and use the result for every collective call.
func Sequenced(t Transport) Transport {
	s := &sequenced{Transport: t}
	s.timed, _ = t.(TimedReceiver)
	if s.timed != nil {
		s.into, _ = t.(IntoReceiver)
	}
	return s
}

type sequenced struct {
	Transport
	mu     sync.Mutex
	seq    uint32
	broken error
	// kinds[s%len] is the kind of call s, for naming this rank's side of
	// a mismatch found later (a message of an earlier call arrives).
	kinds [64]Kind
	// hello[r] is the call whose hello (see call.hello) from rank r this
	// rank has not received yet; 0 if none (eager hellos only).
	hello []uint32
	// timed is the transport's TimedReceiver: hellos are lazy.
	timed TimedReceiver
	// stash[r] holds messages from rank r taken early while dropping
	// stale hellos (lazy hellos only), in arrival order.
	stash [][][]byte
	// into is the transport's IntoReceiver (lazy hellos only).
	into IntoReceiver
	// scratch is the receive buffer of calls (see call.scratch), and call
	// the state of the current one, kept from call to call: calls on one
	// transport do not overlap.
	scratch []byte
	call    call
}

func (s *sequenced) NextSeq() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// start numbers a call of kind k, or returns the error that broke the
// transport.
func (s *sequenced) start(k Kind) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.kinds[s.seq%uint32(len(s.kinds))] = k
	return s.seq, s.broken
}

// kindOf returns the kind of this rank's call seq, if it remembers it.
func (s *sequenced) kindOf(seq uint32) (Kind, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == 0 || seq > s.seq || s.seq-seq >= uint32(len(s.kinds)) {
		return 0, false
	}
	return s.kinds[seq%uint32(len(s.kinds))], true
}

func (s *sequenced) breakWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken == nil {
		s.broken = err
	}
}

// CheckWorld returns what the transport says about itself, checked;
// nonsense there is a programming error in the caller's adapter, not a
// runtime condition, and panics.
func CheckWorld(t Transport) (rank, size int) {
	rank, size = t.Rank(), t.Size()
	if size < 1 || rank < 0 || rank >= size {
		panic(fmt.Sprintf("collective: transport reports rank %d of size %d", rank, size))
	}
	return rank, size
}
