package rendezvous

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dsmexec/dsmexec/internal/wire"
)

// Frame types for tracing (docs/TRACING.md).
const (
	TypeTrace = wire.TypeTrace // rank -> master: role u8, then a piece of a trace stream
	TypeClock = wire.TypeClock // rank <-> master: a clock sample
)

// maxTracePiece is the most stream bytes one TRACE frame carries (the
// master takes control frames of at most maxControl bytes).
const maxTracePiece = maxControl - 1

// Trace sends a piece of this rank's trace stream (role 0: the rank, 1:
// its page server) to the master, in frames of at most 1 MiB.
func (c *Client) Trace(role uint8, piece []byte) error {
	for len(piece) > 0 {
		k := min(len(piece), maxTracePiece)
		if err := c.w.Write(wire.ChanControl, TypeTrace, 0, []byte{role}, piece[:k]); err != nil {
			return fmt.Errorf("rendezvous: rank %d: send trace: %w", c.rank, err)
		}
		piece = piece[k:]
	}
	return nil
}

// Clock takes n NTP-style samples of the master's clock against this
// process's: each is [t0, t1, t2, t3] in UnixNano, t0 and t3 here (sent,
// answer received), t1 and t2 at the master (received, answered). It
// needs Join to have succeeded; each sample waits at most wait.
func (c *Client) Clock(n int, wait time.Duration) ([][4]int64, error) {
	if !c.watching.Load() {
		return nil, errors.New("rendezvous: Clock before Join")
	}
	var out [][4]int64
	for range n {
		var b [8]byte
		t0 := time.Now().UnixNano()
		binary.BigEndian.PutUint64(b[:], uint64(t0))
		if err := c.w.Write(wire.ChanControl, TypeClock, 0, b[:]); err != nil {
			return out, fmt.Errorf("rendezvous: rank %d: clock sample: %w", c.rank, err)
		}
		t := time.NewTimer(wait)
		select {
		case a := <-c.clock:
			t.Stop()
			t3 := time.Now().UnixNano()
			if a[0] == t0 {
				out = append(out, [4]int64{t0, a[1], a[2], t3})
			}
		case <-t.C:
			return out, fmt.Errorf("rendezvous: rank %d: the master did not answer a clock sample within %v", c.rank, wait)
		case <-c.lost:
			t.Stop()
			return out, fmt.Errorf("rendezvous: rank %d: connection to the master lost", c.rank)
		}
	}
	return out, nil
}

func (c *Client) clockAnswer(body []byte) {
	if len(body) != 24 {
		return
	}
	var a [4]int64
	for i := range 3 {
		a[i] = int64(binary.BigEndian.Uint64(body[8*i:]))
	}
	select {
	case c.clock <- a:
	default:
	}
}

// trace handles TRACE and CLOCK frames of a rank.
func (m *Master) trace(rank int, typ uint8, body []byte) {
	t1 := time.Now().UnixNano()
	switch typ {
	case TypeTrace:
		if len(body) < 1 || m.cfg.OnTrace == nil {
			return
		}
		m.cfg.OnTrace(rank, body[0], body[1:])
	case TypeClock:
		if len(body) != 8 {
			return
		}
		m.mu.Lock()
		mc := m.conns[rank]
		m.mu.Unlock()
		if mc == nil {
			return
		}
		var b [24]byte
		copy(b[:8], body)
		binary.BigEndian.PutUint64(b[8:], uint64(t1))
		binary.BigEndian.PutUint64(b[16:], uint64(time.Now().UnixNano()))
		mc.write(TypeClock, b[:])
	}
}
