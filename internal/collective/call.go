package collective

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// call is the state of one collective call on one rank.
//
// Every algorithm here sends and receives the same messages whatever
// happens: a rank that fails (a transport error, a mismatched message, bad
// arguments) records the first failure and carries on, sending a header with
// the error code and a description instead of data. Its partners adopt the
// failure and pass it on in turn, so the failure reaches every rank that
// depends on the failing one, no rank waits for a message that will not be
// sent, and the message streams stay in step for the next call.
type call struct {
	t    Transport
	rank int
	size int
	h    header // this rank's view of the call; code, step and flags unset

	err  *Error // the first failure seen, nil while all is well
	code uint8  // err's code, sent to partners
	// skew is set once this rank knows that some ranks made a different
	// call (any header field differs). It travels in every header and, unlike
	// other failures, is known to every rank at the end of the first half of
	// Allreduce; that half uses it to leave out the second half consistently.
	skew bool
	// broken is set once this rank knows the ranks' calls are out of step
	// (a *MismatchError): it has told every rank, and sends and receives
	// nothing more, so the algorithm runs to its end without blocking.
	broken bool
	seqd   *sequenced // the transport's state, if it is Sequenced
	// helloed is set once this call said its lazy hellos.
	helloed bool

	hdrOnly []byte // a header-sized scratch buffer
	buf     []byte // scratch for receives when not Sequenced (see scratch)
	// out is room for a small message (a barrier's), so that it needs no
	// allocation of its own.
	out [hdrLen + digestsLen]byte
}

// begin starts a call of kind k. It fails at once, with the error that
// broke it, on a transport whose calls went out of step before.
func begin(t Transport, k Kind) (*call, error) {
	rank, size := CheckWorld(t)
	var c *call
	switch s := t.(type) {
	case *sequenced:
		seq, err := s.start(k)
		if err != nil {
			return nil, err
		}
		// Calls on one transport do not overlap: each reuses the last
		// one's state (and its header buffer).
		c = &s.call
		*c = call{t: t, rank: rank, size: size, hdrOnly: c.hdrOnly}
		c.h.kind = k
		c.h.seq = seq
		c.seqd = s
		switch {
		case size == 1:
		case s.timed != nil:
			c.dropHellos(s, (c.rank+1)%size)
			if size > 2 {
				c.dropHellos(s, (c.rank-1+size)%size)
			}
		case !k.rooted():
			c.hello(s)
		}
		if c.broken {
			return nil, c.err
		}
	case Sequencer:
		c = &call{t: t, rank: rank, size: size}
		c.h.kind = k
		c.h.seq = s.NextSeq()
	default:
		c = &call{t: t, rank: rank, size: size}
		c.h.kind = k
	}
	return c, nil
}

// ringFirst reports whether a call of kind k sends to rank+1 before it
// receives anything, so that it needs no hello to rank+1.
func ringFirst(k Kind) bool {
	return k == KindBarrier || k == KindFinalize || k == KindAlltoall || k == KindReduceScatter
}

// treeDown reports whether a non-root of kind k first waits for its parent
// in the binomial tree.
func treeDown(k Kind) bool {
	return k == KindBcast || k == KindScatter || k == KindBcastSlice || k == KindScatterSlice
}

// helloTargets lists the ranks rank q sends a hello to at the start of a
// call of kind k (see hello): rank q+1 unless the call's first message goes
// there anyway, rank q-1, and in Bcast and Scatter a non-root's parent when
// that is not a neighbour.
func helloTargets(k Kind, q, size, root int) []int {
	var ts []int
	add := func(r int) {
		if r != q && !slices.Contains(ts, r) {
			ts = append(ts, r)
		}
	}
	if !ringFirst(k) {
		add((q + 1) % size)
	}
	add((q - 1 + size) % size)
	if treeDown(k) {
		if vr := (q - root + size) % size; vr != 0 {
			add((parent(vr) + root) % size)
		}
	}
	return ts
}

// hello makes sure two ranks that make different calls cannot both wait
// for each other (rank 0 in Reduce waiting for rank 1, rank 1 in Bcast
// waiting for rank 0): at the start of every call each rank sends a few
// ranks a header-only hello naming its call (see helloTargets: its
// neighbours, and in Bcast and Scatter its parent). A rank waiting for one
// of them so receives a message of that rank's call and sees any mismatch.
// The hello of a call is received when the call first receives from its
// sender, or else at the start of the next call (when it was sent long
// ago), so it costs no waiting. (Waits around a longer cycle of ranks that
// send each other no hello can still block, as in MPI.) Rooted calls say
// hello once the root is known.
func (c *call) hello(s *sequenced) {
	root := int(c.h.root)
	for _, r := range helloTargets(c.h.kind, c.rank, c.size, root) {
		c.sendHeader(r, stepHello)
	}
	if len(s.hello) != c.size {
		s.hello = make([]uint32, c.size)
	}
	for r, seq := range s.hello {
		if seq != 0 {
			c.takeHello(s, r, seq)
			s.hello[r] = 0
		}
	}
	// Who says hello to this rank: candidates are the neighbours and, in
	// Bcast and Scatter, the children in the tree.
	cands := []int{(c.rank + 1) % c.size, (c.rank - 1 + c.size) % c.size}
	if treeDown(c.h.kind) {
		vr := (c.rank - root + c.size) % c.size
		for m := span(vr, c.size) / 2; m > 0; m /= 2 {
			if vr+m < c.size {
				cands = append(cands, (vr+m+root)%c.size)
			}
		}
	}
	for _, q := range cands {
		if q != c.rank && s.hello[q] == 0 && slices.Contains(helloTargets(c.h.kind, q, c.size, root), c.rank) {
			s.hello[q] = c.h.seq
		}
	}
}

// Lazy hellos (a transport that is a TimedReceiver): a call sends its
// hellos (to the same ranks as above) only once it has waited helloAfter
// for a message, so a call whose messages come promptly sends none. Any
// receive skips the hellos it meets: one of this call, or a stale one of
// an earlier call whose kind was this rank's kind then (a rank that waited
// in a call where this rank did not receive from it afterwards). Stale
// hellos do not pile up: at the start of every call this rank drops those
// already arrived from its neighbours, and in Bcast and Scatter from its
// children in the tree (the ranks that say hello to it), without waiting.

// sayHello sends this call's hellos (lazy hellos).
func (c *call) sayHello() {
	c.helloed = true
	h := c.h
	h.step = stepHello
	msg := make([]byte, hdrLen)
	h.put(msg)
	for _, r := range helloTargets(c.h.kind, c.rank, c.size, int(c.h.root)) {
		_ = c.t.Send(r, msg) // a lost peer is seen by the receives
	}
}

// badHello checks a hello from rank from against this rank's calls: nil
// if it names this call or an earlier one of the same kind here, else the
// mismatch. A hello of a later call is a mismatch too: a receive needed a
// message of this call that the sender never sent.
func (c *call) badHello(from int, h header) *MismatchError {
	m := &MismatchError{Rank: from, Call: h.kind, Seq: h.seq, Other: c.rank, OtherCall: c.h.kind, OtherSeq: c.h.seq}
	switch {
	case h.seq == c.h.seq:
		if h.kind == c.h.kind {
			return nil
		}
	case h.seq < c.h.seq:
		k, ok := c.seqd.kindOf(h.seq)
		if !ok || k == h.kind {
			return nil // (too old to check: it was checked by the calls since)
		}
		m.OtherCall, m.OtherSeq = k, h.seq
	}
	return m
}

// dropHellos drops the hellos of this or earlier calls that have arrived
// from rank q, without waiting, and takes a mismatch notice from q; the
// first other message stays first in the stash (lazy hellos).
func (c *call) dropHellos(s *sequenced, q int) {
	if q == c.rank {
		return
	}
	if s.stash == nil {
		s.stash = make([][][]byte, c.size)
	}
	for !c.broken {
		if len(s.stash[q]) == 0 {
			msg, ok, err := s.timed.RecvWithin(q, 0)
			if !ok || err != nil {
				return // (an error comes again to the receive that needs q)
			}
			s.stash[q] = append(s.stash[q], msg)
		}
		h, err := parseHeader(s.stash[q][0])
		if err == nil && h.step == stepNotice {
			c.takeNotice(q, c.pop(s, q)) // q found the calls out of step
			return
		}
		if err != nil || h.step != stepHello || h.seq > c.h.seq {
			return
		}
		if m := c.badHello(q, h); m != nil {
			c.breakCall(m)
			return
		}
		c.pop(s, q)
	}
}

func (c *call) pop(s *sequenced, q int) []byte {
	msg := s.stash[q][0]
	s.stash[q][0] = nil
	s.stash[q] = s.stash[q][1:]
	return msg
}

// next is the next message from rank from: from the stash, else from the
// transport; a call with lazy hellos says them once it has waited
// helloAfter. With dst, on a transport that can (IntoReceiver), the
// message goes into dst: msg is dst[:n], or all of dst when the message
// (n bytes) is longer, which then holds its first bytes; else msg is the
// whole message (n = len(msg)), in memory of its own.
func (c *call) next(from int, dst []byte) (msg []byte, n int, err error) {
	s := c.seqd
	if s == nil || s.timed == nil {
		msg, err = c.t.Recv(from)
		return msg, len(msg), err
	}
	if len(s.stash) > from && len(s.stash[from]) > 0 {
		msg = c.pop(s, from)
		return msg, len(msg), nil
	}
	if dst == nil || s.into == nil {
		dst = nil
	}
	if !c.helloed {
		msg, n, ok, err := c.recvWithin(from, dst, helloAfter)
		if ok || err != nil {
			return msg, n, err
		}
		c.sayHello()
	}
	// Still waiting: every helloRecheck, look for hellos from the ranks
	// that say hello to this one (a rank waiting on this one in another
	// call, around a cycle of waits that the first hellos did not break).
	for {
		msg, n, ok, err := c.recvWithin(from, dst, helloRecheck)
		if ok || err != nil {
			return msg, n, err
		}
		for _, q := range c.helloSenders() {
			if q != from {
				c.dropHellos(s, q)
			}
		}
		if c.broken {
			return nil, 0, errBroken
		}
	}
}

// recvWithin is the transport's timed receive, into dst if not nil.
func (c *call) recvWithin(from int, dst []byte, d time.Duration) (msg []byte, n int, ok bool, err error) {
	s := c.seqd
	if dst == nil {
		msg, ok, err = s.timed.RecvWithin(from, d)
		return msg, len(msg), ok, err
	}
	n, ok, err = s.into.RecvIntoWithin(from, dst, d)
	if !ok || err != nil {
		return nil, 0, ok, err
	}
	return dst[:min(n, len(dst))], n, true, nil
}

// helloRecheck is how often a call that said its hellos looks for the
// hellos of others while it waits.
const helloRecheck = 10 * time.Millisecond

// errBroken ends a receive of a call that found the calls out of step.
var errBroken = errors.New("collective: calls out of step")

// helloSenders lists the ranks that may say hello to this rank: its
// neighbours and, in Bcast and Scatter, its children in the tree.
func (c *call) helloSenders() []int {
	qs := []int{(c.rank + 1) % c.size, (c.rank - 1 + c.size) % c.size}
	if treeDown(c.h.kind) {
		vr := c.vrank()
		for m := span(vr, c.size) / 2; m > 0; m /= 2 {
			if vr+m < c.size {
				qs = append(qs, c.abs(vr+m))
			}
		}
	}
	return qs
}

// takeHello receives the hello of call seq from rank prev.
func (c *call) takeHello(s *sequenced, prev int, seq uint32) {
	msg, err := c.t.Recv(prev)
	if err != nil {
		c.failTransport("receive from", prev, stepHello, err)
		return
	}
	h, err := parseHeader(msg)
	switch {
	case err != nil:
		c.fail(codeMismatch, ErrMismatch, "message from rank %d: %v", prev, err)
	case h.step == stepNotice:
		c.takeNotice(prev, msg)
	default:
		k, _ := s.kindOf(seq)
		if h.step != stepHello || h.seq != seq || h.kind != k {
			c.breakCall(&MismatchError{Rank: prev, Call: h.kind, Seq: h.seq, Other: c.rank, OtherCall: k, OtherSeq: seq})
		}
	}
}

func (c *call) takeNotice(from int, msg []byte) {
	m, err := parseNotice(msg[hdrLen:], c.size)
	if err != nil {
		c.fail(codeMismatch, ErrMismatch, "message from rank %d: %v", from, err)
		return
	}
	c.breakCall(m)
}

// breakCall records that the ranks' calls are out of step, tells every
// other rank (so that none waits for a message of a call that is not being
// made) and marks the transport broken.
func (c *call) breakCall(m *MismatchError) {
	if c.broken {
		return
	}
	c.broken = true
	c.err = &Error{Call: c.h.kind.String(), Rank: c.rank, Reason: m.Error(), Err: m}
	c.code = codeCall
	if s, ok := c.t.(*sequenced); ok {
		s.breakWith(c.err)
	}
	h := c.h
	h.step, h.code = stepNotice, codeCall
	msg := make([]byte, hdrLen+noticeLen)
	h.put(msg)
	putNotice(msg[hdrLen:], m)
	for p := range c.size {
		if p != c.rank {
			_ = c.t.Send(p, msg) // a lost peer needs no notice
		}
	}
}

// A notice's body is a *MismatchError: rank, seq, other rank, other seq
// (uint32 each), then the two kinds (one byte each).
const noticeLen = 18

func putNotice(b []byte, m *MismatchError) {
	binary.LittleEndian.PutUint32(b[0:], uint32(m.Rank))
	binary.LittleEndian.PutUint32(b[4:], m.Seq)
	binary.LittleEndian.PutUint32(b[8:], uint32(m.Other))
	binary.LittleEndian.PutUint32(b[12:], m.OtherSeq)
	b[16], b[17] = byte(m.Call), byte(m.OtherCall)
}

func parseNotice(b []byte, size int) (*MismatchError, error) {
	if len(b) != noticeLen {
		return nil, fmt.Errorf("mismatch notice of %d bytes, want %d", len(b), noticeLen)
	}
	m := &MismatchError{
		Rank: int(binary.LittleEndian.Uint32(b[0:])), Seq: binary.LittleEndian.Uint32(b[4:]),
		Other: int(binary.LittleEndian.Uint32(b[8:])), OtherSeq: binary.LittleEndian.Uint32(b[12:]),
		Call: Kind(b[16]), OtherCall: Kind(b[17]),
	}
	if m.Rank >= size || m.Other >= size {
		return nil, fmt.Errorf("mismatch notice names ranks %d and %d of %d", m.Rank, m.Other, size)
	}
	return m, nil
}

// setRoot checks root locally; every rank does, so a bad root fails
// everywhere without communication.
func (c *call) setRoot(root int) error {
	if root < 0 || root >= c.size {
		return &Error{Call: c.h.kind.String(), Rank: c.rank, local: true,
			Reason: fmt.Sprintf("root %d out of range for %d ranks", root, c.size), Err: ErrBadRoot}
	}
	c.h.root = uint32(root)
	if s := c.seqd; s != nil && c.size > 1 && s.timed != nil {
		if treeDown(c.h.kind) {
			vr := c.vrank()
			for m := span(vr, c.size) / 2; m > 0; m /= 2 {
				if vr+m < c.size {
					c.dropHellos(s, c.abs(vr+m))
				}
			}
		}
		if c.broken {
			return c.err
		}
	} else if s != nil && c.size > 1 {
		c.hello(c.seqd)
		if c.broken {
			return c.err
		}
	}
	return nil
}

// vrank maps a rank to its rank relative to the root, and abs back.
func (c *call) vrank() int     { return (c.rank - int(c.h.root) + c.size) % c.size }
func (c *call) abs(vr int) int { return (vr + int(c.h.root)) % c.size }

func (c *call) fail(code uint8, err error, format string, args ...any) {
	if c.err != nil {
		return
	}
	c.err = &Error{Call: c.h.kind.String(), Rank: c.rank, Reason: fmt.Sprintf(format, args...), Err: err}
	c.code = code
}

// failLocal records a failure of this rank's own arguments, which every
// rank checks for itself: its text does not say which rank saw it.
func (c *call) failLocal(code uint8, err error, format string, args ...any) {
	if c.err != nil {
		return
	}
	c.fail(code, err, format, args...)
	c.err.local = true
}

func (c *call) failTransport(verb string, peer int, step uint8, err error) {
	c.fail(codeTransport, fmt.Errorf("%w: %w", ErrTransport, err),
		"%s rank %d in %s: %v", verb, peer, stepName(step), err)
}

func (c *call) result() error {
	if c.err != nil {
		return c.err
	}
	return nil
}

func (c *call) header(step uint8) header {
	h := c.h
	h.step = step
	if c.skew {
		h.flags |= flagSkew
	}
	if c.err != nil {
		h.code = c.code
	}
	return h
}

// send sends buf, whose first hdrLen bytes are room for the header.
func (c *call) send(to int, step uint8, buf []byte) {
	c.sendAt(to, step, buf, hdrLen, len(buf))
}

// sendAt sends buf[off:end] preceded by the header, which is written over
// the hdrLen bytes before off and then put back: a part of a large buffer
// goes out without a copy, which Send allows because it keeps nothing.
// After a failure it sends the failure instead.
func (c *call) sendAt(to int, step uint8, buf []byte, off, end int) {
	c.sendSeg(to, step, buf, off, end, false)
}

// sendSeg is sendAt of a segment of a stream (see sendStream): more says
// that the stream goes on after it.
func (c *call) sendSeg(to int, step uint8, buf []byte, off, end int, more bool) {
	if c.broken {
		return
	}
	var msg []byte
	var saved [hdrLen]byte
	h := c.header(step)
	if more {
		h.flags |= flagMore
	}
	failing := c.err != nil
	if failing {
		msg = c.failureMsg(h)
	} else {
		if off < hdrLen || off > end || end > len(buf) {
			panic(fmt.Sprintf("collective: send [%d:%d] of a %d-byte buffer", off, end, len(buf)))
		}
		msg = buf[off-hdrLen : end]
		copy(saved[:], msg)
		h.put(msg)
	}
	err := c.t.Send(to, msg)
	if !failing {
		copy(msg, saved[:])
	}
	if err != nil {
		c.failTransport("send to", to, step, err)
	}
}

// sendHeader sends a message without a body.
func (c *call) sendHeader(to int, step uint8) {
	if c.hdrOnly == nil {
		c.hdrOnly = make([]byte, hdrLen)
	}
	c.send(to, step, c.hdrOnly)
}

func (c *call) failureMsg(h header) []byte {
	reason := clip(c.err.Reason)
	msg := make([]byte, hdrLen+4+len(reason))
	h.put(msg)
	binary.LittleEndian.PutUint32(msg[hdrLen:], uint32(c.err.Rank))
	copy(msg[hdrLen+4:], reason)
	return msg
}

// recv receives the message for step from rank from and checks its
// header. It returns the whole message (header included) and true if it
// carries data for this call; otherwise the failure has been recorded.
func (c *call) recv(from int, step uint8) ([]byte, bool) {
	msg, _, _, ok := c.recvMsg(from, step, nil)
	return msg, ok
}

// recvMsg is recv into dst (see next: nil for a message in memory of its
// own), which must have room for a header. It also returns the message's
// length n (more than len(msg) when it did not fit dst) and whether the
// sender's stream of this step goes on (flagMore: the message was a
// segment of a longer one; see recvStream), which stays meaningful after a
// failure so that the stream is drained all the same.
func (c *call) recvMsg(from int, step uint8, dst []byte) (msg []byte, n int, more, ok bool) {
	for {
		if c.broken {
			return nil, 0, false, false
		}
		var err error
		msg, n, err = c.next(from, dst)
		if c.broken {
			return nil, 0, false, false
		}
		if err != nil {
			c.failTransport("receive from", from, step, err)
			return nil, 0, false, false
		}
		h, err := parseHeader(msg)
		if err != nil {
			c.fail(codeMismatch, ErrMismatch, "message from rank %d: %v", from, err)
			return nil, 0, false, false
		}
		if h.step == stepNotice {
			c.takeNotice(from, msg)
			return nil, 0, false, false
		}
		if s := c.seqd; s != nil && h.step == stepHello {
			if s.timed != nil {
				if m := c.badHello(from, h); m != nil {
					c.breakCall(m)
					return nil, 0, false, false
				}
				continue
			}
			if h.kind == c.h.kind && h.seq == c.h.seq && len(s.hello) == c.size && s.hello[from] == c.h.seq {
				s.hello[from] = 0
				continue
			}
		}
		if h.kind != c.h.kind || h.seq != c.h.seq {
			m := &MismatchError{Rank: from, Call: h.kind, Seq: h.seq,
				Other: c.rank, OtherCall: c.h.kind, OtherSeq: c.h.seq}
			// A message of an earlier call: this rank's part of that call
			// needed nothing from the sender. Name what this rank called then.
			if s, ok := c.t.(*sequenced); ok && h.seq < c.h.seq {
				if k, ok := s.kindOf(h.seq); ok {
					m.OtherCall, m.OtherSeq = k, h.seq
				}
			}
			c.breakCall(m)
			return nil, 0, false, false
		}
		more = h.flags&flagMore != 0
		if h.flags&flagSkew != 0 {
			c.skew = true
		}
		want := c.header(step)
		h.code, want.code = 0, 0
		if !sameCall(h, want) {
			c.skew = true
			c.fail(codeMismatch, ErrMismatch, "rank %d sent %s, rank %d is in %s", from, h.call(), c.rank, want.call())
			return nil, n, more, false
		}
		if code := msg[1]; code != codeOK {
			body := msg[hdrLen:]
			if len(body) < 4 {
				c.fail(codeMismatch, ErrMismatch, "malformed failure report from rank %d", from)
				return nil, n, more, false
			}
			if c.err == nil {
				c.err = &Error{Call: c.h.kind.String(), Rank: int(binary.LittleEndian.Uint32(body)),
					Reason: clip(string(body[4:])), Err: codeErr(code)}
				c.code = code
			}
			return nil, n, more, false
		}
		if c.err != nil {
			return nil, n, more, false
		}
		return msg, n, more, true
	}
}

// recvBody is recv for a message whose body must be exactly size bytes.
func (c *call) recvBody(from int, step uint8, size int) ([]byte, bool) {
	msg, ok := c.recv(from, step)
	if !ok {
		return nil, false
	}
	if len(msg)-hdrLen != size {
		c.fail(codeMismatch, ErrMismatch, "rank %d sent %d bytes in %s, want %d", from, len(msg)-hdrLen, stepName(step), size)
		return nil, false
	}
	return msg[hdrLen:], true
}

// Binomial trees over ranks relative to the root (vr 0 is the root): the
// parent of vr is vr with its lowest set bit cleared, and its children are
// vr+m for the powers of two m below that bit (below size for the root).

func parent(vr int) int { return vr & (vr - 1) }

// span is the lowest set bit of vr, or for the root the smallest power of
// two not below size: vr's subtree is [vr, vr+span) ∩ [0, size).
func span(vr, size int) int {
	if vr == 0 {
		return 1 << bits.Len(uint(size-1))
	}
	return vr & -vr
}

// pow2 returns the largest power of two not above n, and log2 of it.
func pow2(n int) (p, k int) {
	k = bits.Len(uint(n)) - 1
	return 1 << k, k
}

// clip makes a failure description fit in a message: valid UTF-8 of at
// most maxReason bytes.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxReason {
		s = s[:maxReason]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}
