package transporttest

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// MemNet is an in-memory world of n ranks: one unbounded FIFO queue per
// ordered pair. With reorder set, a scheduler goroutine moves messages from
// per-link "in flight" queues to the receivers in a random order across
// links (seeded), so messages overtake each other between different pairs
// but never within one pair.
type MemNet struct {
	n       int
	reorder bool

	mu       sync.Mutex
	cond     *sync.Cond
	inflight [][][][]byte // [from][to], reorder only
	queued   int          // messages in inflight
	inbox    [][][][]byte // [from][to], ready for Recv
	down     []bool
	closed   bool
	done     chan struct{}
	rng      *rand.Rand
}

func NewMemNet(n int, reorder bool, seed uint64) *MemNet {
	m := &MemNet{n: n, reorder: reorder, down: make([]bool, n), done: make(chan struct{}),
		rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	m.cond = sync.NewCond(&m.mu)
	m.inflight = make([][][][]byte, n)
	m.inbox = make([][][][]byte, n)
	for i := range n {
		m.inflight[i] = make([][][]byte, n)
		m.inbox[i] = make([][][]byte, n)
	}
	if reorder {
		go m.schedule()
	} else {
		close(m.done)
	}
	return m
}

// Ends returns the n transports of the world.
func (m *MemNet) Ends() []*MemEnd {
	e := make([]*MemEnd, m.n)
	for i := range e {
		e[i] = &MemEnd{net: m, rank: i}
	}
	return e
}

// kill makes rank r fail like a crashed process: its own calls fail, and
// Recv from it fails once the messages it sent before are consumed.
func (m *MemNet) Kill(r int) {
	m.mu.Lock()
	m.down[r] = true
	m.mu.Unlock()
	m.cond.Broadcast()
}

// close fails every blocked and later call and stops the scheduler.
func (m *MemNet) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cond.Broadcast()
	<-m.done
}

func (m *MemNet) schedule() {
	defer close(m.done)
	type link struct{ from, to int }
	var links []link
	for {
		m.mu.Lock()
		for m.queued == 0 && !m.closed {
			m.cond.Wait()
		}
		if m.closed {
			m.mu.Unlock()
			return
		}
		links = links[:0]
		for f := range m.n {
			for t := range m.n {
				if len(m.inflight[f][t]) > 0 {
					links = append(links, link{f, t})
				}
			}
		}
		l := links[m.rng.IntN(len(links))]
		q := m.inflight[l.from][l.to]
		m.inbox[l.from][l.to] = append(m.inbox[l.from][l.to], q[0])
		m.inflight[l.from][l.to] = q[1:]
		m.queued--
		yield := m.rng.IntN(4) == 0
		m.mu.Unlock()
		m.cond.Broadcast()
		if yield {
			// Let senders add more so that the choice above has more
			// links to pick from; not needed for correctness.
			runtime.Gosched()
		}
	}
}

type MemEnd struct {
	net  *MemNet
	rank int
}

func (e *MemEnd) Rank() int { return e.rank }
func (e *MemEnd) Size() int { return e.net.n }

func (e *MemEnd) Send(to int, msg []byte) error {
	m := e.net
	if to < 0 || to >= m.n || to == e.rank {
		panic(fmt.Sprintf("fake: rank %d sends to rank %d of %d", e.rank, to, m.n))
	}
	c := append([]byte(nil), msg...)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return fmt.Errorf("fake: send to rank %d: world closed", to)
	case m.down[e.rank]:
		return fmt.Errorf("fake: send to rank %d: rank %d is down", to, e.rank)
	case m.down[to]:
		return fmt.Errorf("fake: send to rank %d: rank %d is down", to, to)
	}
	if m.reorder {
		m.inflight[e.rank][to] = append(m.inflight[e.rank][to], c)
		m.queued++
	} else {
		m.inbox[e.rank][to] = append(m.inbox[e.rank][to], c)
	}
	m.cond.Broadcast()
	return nil
}

func (e *MemEnd) Recv(from int) ([]byte, error) {
	msg, _, err := e.recv(from, -1)
	return msg, err
}

// RecvWithin is Recv that gives up after d (collective.TimedReceiver); with
// d 0 it only takes a message already there.
func (e *MemEnd) RecvWithin(from int, d time.Duration) ([]byte, bool, error) {
	return e.recv(from, d)
}

// RecvIntoWithin is RecvWithin into buf (collective.IntoReceiver): n is
// the message's length, and buf holds its first len(buf) bytes.
func (e *MemEnd) RecvIntoWithin(from int, buf []byte, d time.Duration) (int, bool, error) {
	msg, ok, err := e.recv(from, d)
	copy(buf, msg)
	return len(msg), ok, err
}

// recv waits without a limit when d < 0.
func (e *MemEnd) recv(from int, d time.Duration) ([]byte, bool, error) {
	m := e.net
	expired := d == 0
	if d > 0 {
		t := time.AfterFunc(d, func() {
			m.mu.Lock()
			expired = true
			m.mu.Unlock()
			m.cond.Broadcast()
		})
		defer t.Stop()
	}
	if from < 0 || from >= m.n || from == e.rank {
		panic(fmt.Sprintf("fake: rank %d receives from rank %d of %d", e.rank, from, m.n))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		switch {
		case m.closed:
			return nil, false, fmt.Errorf("fake: receive from rank %d: world closed", from)
		case m.down[e.rank]:
			return nil, false, fmt.Errorf("fake: receive from rank %d: rank %d is down", from, e.rank)
		}
		if q := m.inbox[from][e.rank]; len(q) > 0 {
			m.inbox[from][e.rank] = q[1:]
			return q[0], true, nil
		}
		if m.down[from] && len(m.inflight[from][e.rank]) == 0 {
			return nil, false, fmt.Errorf("fake: receive from rank %d: rank %d is down", from, from)
		}
		if expired {
			return nil, false, nil
		}
		m.cond.Wait()
	}
}
