package rank

import (
	"sync/atomic"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/internal/dsmhook"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// counters are this rank's message counts per peer (world rank): what it
// sent to each, and what arrived from each (entered the engine: a header
// was read, matched to a receive or filed as unexpected). Point-to-point,
// collective and barrier traffic, on every communicator, messages to self
// included. They feed mpirun's -summary and message matrix, and the
// deadlock detector (sent by i to j minus arrived at j from i = in flight).
//
// The hot path is two atomic adds on a cache line of the peer's own: no
// lock, no allocation. Sent and arrived are on separate lines (a sender
// and the driver write them at once).
type counters struct {
	peers []peerSlot
}

type peerSlot struct {
	sentMsgs, sentBytes atomic.Uint64
	_                   [48]byte
	arrMsgs, arrBytes   atomic.Uint64
	_                   [48]byte
}

func newCounters(size int) counters { return counters{peers: make([]peerSlot, size)} }

// sent counts a message of n bytes to world rank to.
func (c *counters) sent(to, n int) {
	if uint(to) < uint(len(c.peers)) {
		p := &c.peers[to]
		p.sentMsgs.Add(1)
		p.sentBytes.Add(uint64(n))
	}
}

// arrived counts a message of n bytes from world rank from.
func (c *counters) arrived(from, n int) {
	if uint(from) < uint(len(c.peers)) {
		p := &c.peers[from]
		p.arrMsgs.Add(1)
		p.arrBytes.Add(uint64(n))
	}
}

// snapshot reads the counters, indexed by world rank. Each field is read
// atomically; the fields of one peer are not one atomic unit (a message
// counted between two reads shows in one and not yet in the other).
func (c *counters) snapshot() []rendezvous.PeerCount {
	out := make([]rendezvous.PeerCount, len(c.peers))
	for i := range c.peers {
		p := &c.peers[i]
		out[i] = rendezvous.PeerCount{
			SentMsgs:     p.sentMsgs.Load(),
			SentBytes:    p.sentBytes.Load(),
			ArrivedMsgs:  p.arrMsgs.Load(),
			ArrivedBytes: p.arrBytes.Load(),
		}
	}
	return out
}

// stats is what this rank tells mpirun at Finalize: the shared memory's
// counters and the message counts.
func (w *World) stats() rendezvous.Stats {
	s := rendezvous.Stats{Peers: w.e.ctr.snapshot()}
	if w.mem != nil {
		st := w.mem.Stats()
		s.Backend, s.DSM, s.Columns, s.Raw, s.RawColumns = w.mem.Backend(), st.Map(), dsm.StatColumns, st.Raw(), dsm.RawColumns
		if dsmhook.LockTimes != nil {
			wait, hold := dsmhook.LockTimes(w.mem)
			s.LockWait, s.LockHold = wait.Seconds(), hold.Seconds()
		}
	}
	return s
}
