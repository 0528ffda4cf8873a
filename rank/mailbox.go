package rank

import (
	"sync"
)

// mailbox holds messages that arrived before anyone asked for them, in
// arrival order, and matches them to receivers by (source, tag). Messages
// from one source with one tag never overtake each other.
type mailbox struct {
	mu     sync.Mutex
	cond   *sync.Cond
	msgs   []message
	peers  []peerState // why a source can no longer send, by rank
	closed error       // set when the world is finalized or broken
}

type message struct {
	from, tag int
	body      []byte
}

type peerState struct {
	err error // non-nil: nothing more will come from this peer
}

func newMailbox(size int) *mailbox {
	b := &mailbox{peers: make([]peerState, size)}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *mailbox) put(from, tag int, body []byte) {
	b.mu.Lock()
	b.msgs = append(b.msgs, message{from, tag, body})
	b.mu.Unlock()
	b.cond.Broadcast()
}

// fail records that nothing more will come from peer.
func (b *mailbox) fail(peer int, err error) {
	b.mu.Lock()
	if b.peers[peer].err == nil {
		b.peers[peer].err = err
	}
	b.mu.Unlock()
	b.cond.Broadcast()
}

// close fails every waiting and later get.
func (b *mailbox) close(err error) {
	b.mu.Lock()
	if b.closed == nil {
		b.closed = err
	}
	b.mu.Unlock()
	b.cond.Broadcast()
}

// get blocks until a message matching (from, tag) is there; from may be
// AnySource and tag AnyTag. It fails when the world closes, when `from` is
// gone, or (for AnySource) when any peer is gone, since the message might
// have been coming from it.
func (b *mailbox) get(from, tag int) (message, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for i, m := range b.msgs {
			if (from == AnySource || m.from == from) && (tag == AnyTag || m.tag == tag) {
				copy(b.msgs[i:], b.msgs[i+1:])
				b.msgs[len(b.msgs)-1] = message{}
				b.msgs = b.msgs[:len(b.msgs)-1]
				return m, nil
			}
		}
		if b.closed != nil {
			return message{}, b.closed
		}
		if from != AnySource {
			if err := b.peers[from].err; err != nil {
				return message{}, err
			}
		} else {
			for _, p := range b.peers {
				if p.err != nil {
					return message{}, p.err
				}
			}
		}
		b.cond.Wait()
	}
}
