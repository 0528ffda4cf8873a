package rendezvous

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// Client is a rank's connection to the master.
type Client struct {
	// Where, if set before Join, answers the master's question of which
	// call this rank is blocked in.
	Where func() string
	// OnLost, if set before Join, hears that mpirun saw another rank go
	// (its connection ended before it finalized). It runs on the
	// connection's reader and must not block for long.
	OnLost func(rank int, msg string)
	// State, if set before Join, answers the master's STATE question
	// (mpirun's deadlock detector): question in, answer out.
	State func(question []byte) []byte

	rank int
	c    *net.TCPConn
	r    *bufio.Reader
	w    *wire.Writer
	lost chan struct{}
	once sync.Once
	// acks: the master's answers to Abort and Failed; watching: Join
	// succeeded and watch reads them.
	acks     chan uint8
	clock    chan [4]int64 // the master's CLOCK answers (trace.go)
	watching atomic.Bool
}

// Dial connects to the master at addr and proves the token.
func Dial(ctx context.Context, addr string, token []byte, rank int) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: rank %d: dial master at %s: %w", rank, addr, err)
	}
	tc := c.(*net.TCPConn)
	tc.SetNoDelay(true)
	r := bufio.NewReader(tc)
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := auth.Dial(tc, r, token, rank, auth.Master, deadline); err != nil {
		tc.Close()
		return nil, fmt.Errorf("rendezvous: rank %d: authenticate with master at %s: %w", rank, addr, err)
	}
	return &Client{rank: rank, c: tc, r: r, w: wire.NewWriter(tc, rank), lost: make(chan struct{}), acks: make(chan uint8, 2), clock: make(chan [4]int64, 1)}, nil
}

// LocalIP is the address of this host's interface that reaches the master:
// the address peers can reach this rank at.
func (c *Client) LocalIP() net.IP { return c.c.LocalAddr().(*net.TCPAddr).IP }

// Join reports this rank and waits for the connection table, until ctx ends.
func (c *Client) Join(ctx context.Context, info JoinInfo) (Table, error) {
	info.Rank = c.rank
	body, _ := json.Marshal(info)
	if err := c.w.Write(wire.ChanControl, TypeJoin, 0, body); err != nil {
		return Table{}, fmt.Errorf("rendezvous: rank %d: report to master: %w", c.rank, err)
	}
	stop := context.AfterFunc(ctx, func() { c.c.SetReadDeadline(time.Now()) })
	f, err := wire.ReadFrame(c.r, wire.MaxBody)
	stop()
	c.c.SetReadDeadline(time.Time{})
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Table{}, fmt.Errorf("rendezvous: rank %d: wait for the connection table: %w", c.rank, err)
	}
	if f.Type != TypeTable {
		return Table{}, fmt.Errorf("rendezvous: rank %d: master sent frame type %d, want the table", c.rank, f.Type)
	}
	var t Table
	if err := json.Unmarshal(f.Body, &t); err != nil {
		return Table{}, fmt.Errorf("rendezvous: rank %d: bad table: %w", c.rank, err)
	}
	c.watching.Store(true)
	go c.watch()
	return t, nil
}

// watch answers the master's questions and notices it going away.
func (c *Client) watch() {
	defer c.once.Do(func() { close(c.lost) })
	for {
		f, err := wire.ReadFrame(c.r, wire.MaxBody)
		if err != nil {
			return
		}
		switch f.Type {
		case TypeWhere:
			where := ""
			if c.Where != nil {
				where = c.Where()
			}
			c.w.Write(wire.ChanControl, TypeWhere, 0, []byte(where))
		case TypeLost:
			var li LostInfo
			if json.Unmarshal(f.Body, &li) == nil && c.OnLost != nil {
				c.OnLost(li.Rank, li.Msg)
			}
		case TypeState:
			var answer []byte
			if c.State != nil {
				answer = c.State(f.Body)
			}
			c.w.Write(wire.ChanControl, TypeState, 0, answer)
		case TypeAbort, TypeFailed:
			select {
			case c.acks <- f.Type:
			default:
			}
		case TypeClock:
			c.clockAnswer(f.Body)
		}
	}
}

// Lost is closed when the connection to the master ends.
func (c *Client) Lost() <-chan struct{} { return c.lost }

// Cell sends one report cell.
func (c *Client) Cell(column, value string) error {
	body, _ := json.Marshal(Cell{Column: column, Value: value})
	return c.w.Write(wire.ChanControl, TypeCell, 0, body)
}

// Stats sends this rank's statistics.
func (c *Client) Stats(s Stats) error {
	body, _ := json.Marshal(s)
	return c.w.Write(wire.ChanControl, TypeStats, 0, body)
}

// Bye tells the master this rank finalized normally.
func (c *Client) Bye() error {
	return c.w.Write(wire.ChanControl, TypeBye, 0)
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// ackWait bounds the wait for the master's answer to Abort and Failed.
const ackWait = 2 * time.Second

// Abort asks mpirun to end the whole job with code, as MPI_Abort does, and
// returns once mpirun has the request (or after a bounded wait): the
// caller exits next, and mpirun reports the Abort rather than that exit.
func (c *Client) Abort(code int) error {
	body, _ := json.Marshal(AbortInfo{Code: code})
	return c.tell(TypeAbort, body, "abort")
}

// Failed tells mpirun why this rank is about to exit with an error before it
// does, so the first failure in time is blamed: lostPeer is the rank whose
// loss caused it (-1 if none), msg the error. It returns once mpirun has it
// (or after a bounded wait).
func (c *Client) Failed(lostPeer int, msg string) error {
	body, _ := json.Marshal(FailedInfo{LostPeer: lostPeer, Msg: msg})
	return c.tell(TypeFailed, body, "report the failure")
}

// tell sends a frame the master answers, and waits for the answer.
func (c *Client) tell(typ uint8, body []byte, what string) error {
	if !c.watching.Load() {
		return fmt.Errorf("rendezvous: rank %d: %s: not joined", c.rank, what)
	}
	if err := c.w.Write(wire.ChanControl, typ, 0, body); err != nil {
		return fmt.Errorf("rendezvous: rank %d: %s: %w", c.rank, what, err)
	}
	t := time.NewTimer(ackWait)
	defer t.Stop()
	for {
		select {
		case got := <-c.acks:
			if got == typ {
				return nil
			}
		case <-c.lost:
			return fmt.Errorf("rendezvous: rank %d: %s: the master is gone", c.rank, what)
		case <-t.C:
			return fmt.Errorf("rendezvous: rank %d: %s: no answer from the master within %v", c.rank, what, ackWait)
		}
	}
}
