package rank

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/dsmexec/dsmexec/internal/collective"
	"github.com/dsmexec/dsmexec/internal/trace"
)

// group is what a communicator is to the engine: its members (as world
// ranks), its two matching contexts, and its collective transports. The
// world is a group; each *Comm is one. Point-to-point calls are methods of
// group, so *World and *Comm have them alike.
type group struct {
	w            *World
	e            *engine
	rank, size   int
	ranks        []int // communicator rank -> world rank; nil: the world
	index        []int // world rank -> communicator rank or -1; nil: the world
	p2p, collCtx uint32
	freed        atomic.Bool
	collSeq      atomic.Int64 // collective calls entered (state.go)

	collT collective.Transport
}

// tagColl is the tag of every message on a communicator's collective
// context: internal/collective numbers and names the calls itself.
const tagColl = 0

func newGroup(w *World, rank, size int, ranks []int, p2p uint32) *group {
	g := &group{w: w, e: w.e, rank: rank, size: size, ranks: ranks, p2p: p2p, collCtx: p2p + 1}
	if ranks != nil {
		g.index = make([]int, w.size)
		for i := range g.index {
			g.index[i] = -1
		}
		for c, wr := range ranks {
			g.index[wr] = c
		}
	}
	members := ranks
	if members == nil {
		members = make([]int, size)
		for i := range members {
			members[i] = i
		}
	}
	w.addGroup(g)
	g.e.register(g.p2p, members)
	g.e.register(g.collCtx, members)
	g.collT = collective.Sequenced(&collTransport{g: g, tag: tagColl})
	return g
}

// Rank is this process's rank in the communicator.
func (g *group) Rank() int { return g.rank }

// Size is the number of ranks in the communicator.
func (g *group) Size() int { return g.size }

func (g *group) worldRank(r int) int {
	if g.ranks == nil || r < 0 {
		return r
	}
	return g.ranks[r]
}

func (g *group) commRank(wr int) int {
	if g.index == nil || wr < 0 || wr >= len(g.index) {
		return wr
	}
	return g.index[wr]
}

// WorldRank translates a rank of this communicator to its world rank
// (Undefined if r is not a rank of it).
func (g *group) WorldRank(r int) int {
	if r < 0 || r >= g.size {
		return Undefined
	}
	return g.worldRank(r)
}

// live fails calls after Finalize or Free.
func (g *group) live(call func() string) error {
	if g.w.finalized() {
		return &callError{call: call(), err: ErrFinalized}
	}
	if g.freed.Load() {
		return &callError{call: call(), err: ErrFreed}
	}
	return nil
}

func (g *group) checkDest(call func() string, to int) error {
	if to == ProcNull || to >= 0 && to < g.size {
		return nil
	}
	return &callError{call: call(), err: ErrBadRank, detail: fmt.Sprintf("no rank %d (size %d)", to, g.size)}
}

func (g *group) checkSrc(call func() string, from int) error {
	if from == ProcNull || from == AnySource || from >= 0 && from < g.size {
		return nil
	}
	return &callError{call: call(), err: ErrBadRank, detail: fmt.Sprintf("no rank %d (size %d)", from, g.size)}
}

func checkTag(call func() string, tag int, recv bool) error {
	if tag >= 0 || recv && tag == AnyTag {
		return nil
	}
	return &callError{call: call(), err: ErrBadTag, detail: fmt.Sprintf("tag %d (tags are 0..%d, AnyTag in receives)", tag, TagUB)}
}

func (g *group) sendArgs(call func() string, to, tag, n int) error {
	if err := g.live(call); err != nil {
		return err
	}
	if err := g.checkDest(call, to); err != nil {
		return err
	}
	if err := checkTag(call, tag, false); err != nil {
		return err
	}
	if n > maxMessage {
		return &callError{call: call(), err: ErrTooLarge, detail: fmt.Sprintf("a message of %d bytes (the largest is %d)", n, maxMessage)}
	}
	return nil
}

func (g *group) recvArgs(call func() string, from, tag int) error {
	if err := g.live(call); err != nil {
		return err
	}
	if err := g.checkSrc(call, from); err != nil {
		return err
	}
	return checkTag(call, tag, true)
}

func callTo(name string, to, tag int) func() string {
	return func() string { return fmt.Sprintf("%s(to %d, tag %d)", name, to, tag) }
}

func callFrom(name string, from, tag int) func() string {
	return func() string { return fmt.Sprintf("%s(from %s, tag %s)", name, anyName(from), anyName(tag)) }
}

// Send sends b to rank `to` with a tag (any int >= 0). It returns once b
// is handed to the connection (b may be reused). Messages between two
// ranks with one tag arrive in order. To ProcNull it does nothing.
func (g *group) Send(to, tag int, b []byte) error {
	if to == ProcNull || to < 0 || to >= g.size || tag < 0 || len(b) > maxMessage || g.freed.Load() || g.w.finalized() {
		if err := g.sendArgs(callTo("Send", to, tag), to, tag, len(b)); err != nil || to == ProcNull {
			return err
		}
	}
	defer g.w.tr.send(trace.KindSend, g, to, tag, len(b)).End(trace.Args{})
	if err := g.e.send(g.p2p, g.worldRank(to), tag, b); err != nil {
		return g.w.check(callTo("Send", to, tag), err)
	}
	return nil
}

// Recv returns the next message from rank `from` (or AnySource) with the
// tag (or AnyTag).
func (g *group) Recv(from, tag int) ([]byte, error) {
	b, _, err := g.RecvStatus(from, tag)
	return b, err
}

// RecvFrom is Recv that also says which rank sent the message (useful with
// AnySource).
func (g *group) RecvFrom(from, tag int) (int, []byte, error) {
	b, st, err := g.RecvStatus(from, tag)
	return st.Source, b, err
}

// RecvStatus is Recv with the message's status: its source, tag and
// length. From ProcNull it returns an empty message at once, with Source
// ProcNull.
func (g *group) RecvStatus(from, tag int) ([]byte, Status, error) {
	if err := g.recvArgs(callFrom("Recv", from, tag), from, tag); err != nil {
		return nil, Status{}, err
	}
	if from == ProcNull {
		return []byte{}, Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	gen := g.w.enterRecv(g, callRecv, from, tag)
	sp := g.w.tr.recv(trace.KindRecv, g, from, tag)
	_, b, st, err := g.e.recv(g, g.p2p, g.worldRank(from), tag, nil, false)
	g.w.tr.recvEnd(sp, g, st, err, false)
	g.w.leave(gen)
	if err != nil {
		return nil, st, g.w.check(callFrom("Recv", from, tag), err)
	}
	return b, st, nil
}

// RecvInto receives the next matching message into buf and returns its
// length. A message longer than buf is an error (ErrTruncate, naming both
// sizes; buf holds its first len(buf) bytes). It allocates nothing of its
// own, which makes it the fastest way to receive.
func (g *group) RecvInto(from, tag int, buf []byte) (int, Status, error) {
	if from < 0 || from >= g.size || tag < 0 || g.freed.Load() || g.w.finalized() {
		if err := g.recvArgs(callFrom("RecvInto", from, tag), from, tag); err != nil {
			return 0, Status{}, err
		}
		if from == ProcNull {
			return 0, Status{Source: ProcNull, Tag: AnyTag}, nil
		}
	}
	gen := g.w.enterRecv(g, callRecvInto, from, tag)
	sp := g.w.tr.recv(trace.KindRecv, g, from, tag)
	n, _, st, err := g.e.recv(g, g.p2p, g.worldRank(from), tag, buf, true)
	g.w.tr.recvEnd(sp, g, st, err, false)
	g.w.leave(gen)
	if err != nil {
		if errors.Is(err, ErrTruncate) {
			return n, st, &callError{call: callFrom("RecvInto", from, tag)(), err: err}
		}
		return n, st, g.w.check(callFrom("RecvInto", from, tag), err)
	}
	return n, st, nil
}

// Probe blocks until a message matching (from, tag) can be received and
// returns its status without receiving it; a Recv of the same (source,
// tag) then gets that message.
func (g *group) Probe(from, tag int) (Status, error) {
	call := callFrom("Probe", from, tag)
	if err := g.recvArgs(call, from, tag); err != nil {
		return Status{}, err
	}
	if from == ProcNull {
		return Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	gen := g.w.enterRecv(g, callProbe, from, tag)
	sp := g.w.tr.recv(trace.KindProbe, g, from, tag)
	st, _, err := g.e.probe(g, g.p2p, g.worldRank(from), tag, true)
	g.w.tr.recvEnd(sp, g, st, err, true)
	g.w.leave(gen)
	if err != nil {
		return st, g.w.check(call, err)
	}
	return st, nil
}

// Iprobe is Probe that does not block: ok says whether a message is there.
func (g *group) Iprobe(from, tag int) (Status, bool, error) {
	call := callFrom("Iprobe", from, tag)
	if err := g.recvArgs(call, from, tag); err != nil {
		return Status{}, false, err
	}
	if from == ProcNull {
		return Status{Source: ProcNull, Tag: AnyTag}, true, nil
	}
	sp := g.w.tr.iprobe(g, from, tag)
	st, ok, err := g.e.probe(g, g.p2p, g.worldRank(from), tag, false)
	g.w.tr.iprobeEnd(sp, g, st, ok)
	if err != nil && !ok {
		return st, false, g.w.check(call, err)
	}
	return st, ok, nil
}

// Sendrecv sends b to `to` and receives from `from` at once: the receive
// is posted before the send, so two ranks calling it with each other never
// deadlock (ring shifts, odd-even sort). Either side may be ProcNull.
func (g *group) Sendrecv(to, sendTag int, b []byte, from, recvTag int) ([]byte, Status, error) {
	call := func() string {
		return fmt.Sprintf("Sendrecv(to %d, tag %d, from %s, tag %s)", to, sendTag, anyName(from), anyName(recvTag))
	}
	if err := g.sendArgs(call, to, sendTag, len(b)); err != nil {
		return nil, Status{}, err
	}
	if err := g.recvArgs(call, from, recvTag); err != nil {
		return nil, Status{}, err
	}
	sp := g.w.tr.sendrecv(g, to, sendTag, len(b), from, recvTag)
	var r *Request
	if from != ProcNull {
		r = g.e.irecv(g, g.p2p, g.worldRank(from), recvTag)
	}
	if to != ProcNull {
		if err := g.e.send(g.p2p, g.worldRank(to), sendTag, b); err != nil {
			return nil, Status{}, g.w.check(call, err)
		}
	}
	if r == nil {
		sp.End(trace.Args{Peer: -1, Tag: -1})
		return []byte{}, Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	gen := g.w.enterRecv(g, callSendrecv, from, recvTag)
	st, err := r.waitRaw()
	g.w.tr.recvEnd(sp, g, st, err, false)
	g.w.leave(gen)
	if err != nil {
		return nil, st, g.w.check(call, err)
	}
	return r.buf, st, nil
}

// waitRaw is Wait without the error mode.
func (r *Request) waitRaw() (Status, error) {
	g := r.g
	r.g = nil
	st, err := r.Wait()
	r.g = g
	return st, err
}

// Isend starts a send and returns its request. The message is handed to
// the connection before Isend returns (as Send: b may be reused at once);
// Wait returns its error, if any.
func (g *group) Isend(to, tag int, b []byte) *Request {
	call := callTo("Isend", to, tag)
	if err := g.sendArgs(call, to, tag, len(b)); err != nil {
		return doneRequest(Status{}, nil, err)
	}
	if to == ProcNull {
		return doneRequest(Status{}, nil, nil)
	}
	sp := g.w.tr.send(trace.KindSend, g, to, tag, len(b))
	r := doneRequest(Status{}, nil, g.e.send(g.p2p, g.worldRank(to), tag, b))
	sp.End(trace.Args{})
	r.g = g
	return r
}

// Irecv posts a receive and returns its request; Wait or Test it, then
// Bytes is the message and Status its status. Receives are matched in the
// order they were posted.
func (g *group) Irecv(from, tag int) *Request {
	if err := g.recvArgs(callFrom("Irecv", from, tag), from, tag); err != nil {
		return doneRequest(Status{}, nil, err)
	}
	if from == ProcNull {
		return doneRequest(Status{Source: ProcNull, Tag: AnyTag}, []byte{}, nil)
	}
	return g.e.irecv(g, g.p2p, g.worldRank(from), tag)
}

// collTransport is a communicator's collective context seen as the FIFO
// per-peer transport internal/collective and barrier run on.
type collTransport struct {
	g   *group
	tag int
}

func (t *collTransport) Rank() int { return t.g.rank }
func (t *collTransport) Size() int { return t.g.size }

func (t *collTransport) Send(to int, msg []byte) error {
	return t.g.e.send(t.g.collCtx, t.g.worldRank(to), t.tag, msg)
}

func (t *collTransport) Recv(from int) ([]byte, error) {
	_, b, _, err := t.g.e.recv(nil, t.g.collCtx, t.g.worldRank(from), t.tag, nil, false)
	return b, err
}

// Comm is a communicator made by Split or Dup: a subset of the ranks with
// ranks of its own, whose messages never match those of another
// communicator, even with equal tags.
type Comm struct {
	*group
}

var _ Communicator = (*Comm)(nil)

func (c *Comm) coll(call func() string) (collective.Transport, func(), error) {
	if err := c.live(call); err != nil {
		return nil, nil, err
	}
	return c.collT, c.enterColl(call), nil
}

// Barrier blocks until every rank of the communicator has called Barrier.
func (c *Comm) Barrier() error { return collBarrier(c, 0) }

// Bcast sends root's b to every rank of the communicator.
func (c *Comm) Bcast(root int, b []byte) ([]byte, error) { return bcast(c, root, b) }

// Gather collects every rank's b at root, indexed by communicator rank.
func (c *Comm) Gather(root int, b []byte) ([][]byte, error) { return gather(c, root, b) }

// Allgather gives every rank every rank's b.
func (c *Comm) Allgather(b []byte) ([][]byte, error) { return allgather(c, b) }

// Scatter sends parts[r] from root to rank r of the communicator.
func (c *Comm) Scatter(root int, parts [][]byte) ([]byte, error) { return scatter(c, root, parts) }

// Alltoall sends parts[i] to rank i and returns what every rank sent this
// one, indexed by rank (parts may differ in length, like Alltoallv).
func (c *Comm) Alltoall(parts [][]byte) ([][]byte, error) { return alltoall(c, parts) }

// check passes a failed call's error through the world's error mode.
func (g *group) check(call func() string, err error) error { return g.w.check(call, err) }

// Split partitions the communicator: ranks with the same color form a new
// communicator, ordered by key, then by their rank here. Color Undefined
// returns a nil *Comm and no error. Every rank must call it (collective).
func (g *group) Split(color, key int) (*Comm, error) {
	return g.split("Split", color, key)
}

// Dup returns a communicator with the same ranks whose messages never
// match this one's.
func (g *group) Dup() (*Comm, error) {
	return g.split("Dup", 0, g.rank)
}

// Free releases a communicator made by Split or Dup; later calls on it
// fail with ErrFreed.
func (c *Comm) Free() error {
	if c.freed.Swap(true) {
		return &callError{call: "Comm.Free", err: ErrFreed}
	}
	c.e.unregister(c.p2p)
	c.e.unregister(c.collCtx)
	return nil
}

// Abort ends the whole job with code (see World.Abort).
func (c *Comm) Abort(code int) { c.w.Abort(code) }

func (g *group) split(name string, color, key int) (*Comm, error) {
	call := func() string { return fmt.Sprintf("%s(color %d, key %d)", name, color, key) }
	if err := g.live(call); err != nil {
		return nil, err
	}
	if color < 0 && color != Undefined {
		return nil, &callError{call: call(), err: ErrBadColor, detail: fmt.Sprintf("color %d (colors are >= 0, or Undefined)", color)}
	}
	if !g.w.splitMu.TryLock() {
		return nil, &callError{call: call(), err: ErrConcurrentSplit}
	}
	defer g.w.splitMu.Unlock()
	defer g.enterColl(call)()
	// Every member contributes its color, key and the lowest context id it
	// has never used; the new contexts start at the largest of those, so
	// no member can already use them for another communicator.
	var mine [20]byte
	binary.LittleEndian.PutUint64(mine[0:], uint64(int64(color)))
	binary.LittleEndian.PutUint64(mine[8:], uint64(int64(key)))
	binary.LittleEndian.PutUint32(mine[16:], g.w.nextCtx)
	kind := collective.KindSplit
	if name == "Dup" {
		kind = collective.KindDup
	}
	all, err := collective.AllgatherAs(g.collT, kind, mine[:])
	if err != nil {
		return nil, g.w.check(call, err)
	}
	type member struct{ color, key, rank int }
	var ms []member
	var base uint64
	colors := map[int]bool{}
	for r, b := range all {
		if len(b) != 20 {
			return nil, g.w.check(call, fmt.Errorf("rank: %s: rank %d sent %d bytes", name, r, len(b)))
		}
		m := member{int(int64(binary.LittleEndian.Uint64(b[0:]))), int(int64(binary.LittleEndian.Uint64(b[8:]))), r}
		base = max(base, uint64(binary.LittleEndian.Uint32(b[16:])))
		if m.color != Undefined {
			colors[m.color] = true
		}
		ms = append(ms, m)
	}
	sorted := make([]int, 0, len(colors))
	for c := range colors {
		sorted = append(sorted, c)
	}
	slices.Sort(sorted)
	next := base + 2*uint64(len(sorted))
	if next > math.MaxUint32 {
		return nil, &callError{call: call(), err: ErrTooManyComms}
	}
	g.w.nextCtx = uint32(next)
	if color == Undefined {
		return nil, nil
	}
	idx, _ := slices.BinarySearch(sorted, color)
	var mine2 []member
	for _, m := range ms {
		if m.color == color {
			mine2 = append(mine2, m)
		}
	}
	slices.SortStableFunc(mine2, func(a, b member) int {
		if a.key != b.key {
			if a.key < b.key {
				return -1
			}
			return 1
		}
		return a.rank - b.rank
	})
	ranks := make([]int, len(mine2))
	me := -1
	for i, m := range mine2 {
		ranks[i] = g.worldRank(m.rank)
		if m.rank == g.rank {
			me = i
		}
	}
	return &Comm{newGroup(g.w, me, len(ranks), ranks, uint32(base)+2*uint32(idx))}, nil
}

// Errors a caller's mistake causes; they are returned, never fatal.
var (
	ErrBadTag          = errors.New("rank: bad tag")
	ErrBadColor        = errors.New("rank: bad color")
	ErrFreed           = errors.New("rank: communicator is freed")
	ErrTooLarge        = errors.New("rank: message too large")
	ErrConcurrentSplit = errors.New("rank: Split or Dup called while another one runs on this rank")
	ErrTooManyComms    = errors.New("rank: out of communicator context ids")
)

// TagUB is the largest tag: any int >= 0 travels whole (64 bits).
const TagUB = math.MaxInt

// maxMessage is the largest message Send accepts (a var for tests).
var maxMessage = 64 << 30

// callError is a caller's mistake, named with its call.
type callError struct {
	call   string
	err    error
	detail string
}

func (e *callError) Error() string {
	if e.detail == "" {
		return fmt.Sprintf("rank: %s: %v", e.call, e.err)
	}
	return fmt.Sprintf("rank: %s: %s", e.call, e.detail)
}

func (e *callError) Unwrap() error { return e.err }
