package rendezvous

import (
	"context"

	"github.com/dsmexec/dsmexec/internal/wire"
)

// TypeState: master -> rank: the deadlock detector's question (body
// opaque here: internal/deadlock's Question); rank -> master: the answer.
// Through a relay it passes like any other frame of a rank.
const TypeState = wire.TypeState

// stateRound collects the answers of one State call.
type stateRound struct {
	want map[int]bool
	got  map[int][]byte
	done chan struct{}
}

// State asks the ranks (those joined and not finalized among ranks) the
// question q and waits until each answered or ctx ends. It returns the
// answers by rank; ranks that did not answer are missing. One State runs
// at a time per master.
func (m *Master) State(ctx context.Context, ranks []int, q []byte) map[int][]byte {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	sr := &stateRound{want: map[int]bool{}, got: map[int][]byte{}, done: make(chan struct{})}
	var conns []member
	m.mu.Lock()
	for _, r := range ranks {
		if r >= 0 && r < len(m.conns) && m.conns[r] != nil && !m.reports[r].Finalized && !sr.want[r] {
			sr.want[r] = true
			conns = append(conns, m.conns[r])
		}
	}
	if len(conns) == 0 {
		m.mu.Unlock()
		return sr.got
	}
	m.state = sr
	m.mu.Unlock()
	for _, c := range conns {
		c.write(TypeState, q)
	}
	select {
	case <-sr.done:
	case <-ctx.Done():
	}
	m.mu.Lock()
	m.state = nil
	got := make(map[int][]byte, len(sr.got))
	for r, b := range sr.got {
		got[r] = b
	}
	m.mu.Unlock()
	return got
}

// stateAnswerLocked records rank's answer to the State in progress.
func (m *Master) stateAnswerLocked(rank int, body []byte) {
	sr := m.state
	if sr == nil || !sr.want[rank] {
		return
	}
	if _, dup := sr.got[rank]; !dup {
		sr.got[rank] = append([]byte(nil), body...)
		if len(sr.got) == len(sr.want) {
			close(sr.done)
		}
	}
}
