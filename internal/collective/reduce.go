package collective

import "math/bits"

// rabenseifnerMin is the vector size, in bytes, from which Allreduce uses
// reduce-scatter + allgather: below it latency dominates and recursive
// doubling's log2 N rounds of whole vectors win; above it each rank sends
// and combines about twice the vector in all instead of log2 N times.
const rabenseifnerMin = 64 << 10

// vector returns header room followed by v encoded, as 1 or 0 for a
// logical op.
func vector[T Number](v []T, e elemType, op Op) []byte {
	buf := make([]byte, hdrLen+len(v)*e.size())
	if op.logical() {
		v = append([]T(nil), v...)
		normalize(v, op)
	}
	encode(buf[hdrLen:], v, e)
	return buf
}

// setVector records the vector's description in the header and checks the
// op locally (every rank does, so all fail alike).
func (c *call) setVector(op Op, e elemType, n int) {
	c.h.op, c.h.elem, c.h.n = op, e, uint64(n)
	switch {
	case !op.valid():
		c.failLocal(codeBadOp, ErrBadOp, "%v is not an op", op)
	case op.Bitwise() && e.float():
		c.failLocal(codeBadOp, ErrBadOp, "%v on %v", op, e)
	}
}

// Reduce combines the ranks' vectors element by element with op and
// returns the result on root, nil elsewhere. All vectors must have the same
// length and every rank the same op and T; otherwise every rank returns an
// error wrapping ErrMismatch (or ErrBadOp). v is not modified.
//
// A binomial tree carries partial results to root (⌈log2 N⌉ rounds), then
// root sends the outcome back down the tree as a header-only message, so
// that a failure seen anywhere is returned on every rank.
func Reduce[T Number](t Transport, root int, v []T, op Op) ([]T, error) {
	c, err := begin(t, KindReduce)
	if err != nil {
		return nil, err
	}
	if err := c.setRoot(root); err != nil {
		return nil, err
	}
	e := elemOf[T]()
	c.setVector(op, e, len(v))
	acc := vector(v, e, op)
	vr := c.vrank()
	for mask := 1; mask < c.size; mask <<= 1 {
		step := uint8(bits.TrailingZeros(uint(mask)))
		if vr&mask != 0 {
			c.send(c.abs(vr-mask), step, acc)
			break
		}
		if vr+mask < c.size {
			if p, ok := c.recvBody(c.abs(vr+mask), step, len(acc)-hdrLen); ok {
				combineWire[T](acc[hdrLen:], p, e, op)
			}
		}
	}
	if vr != 0 {
		c.recv(c.abs(parent(vr)), stepStatus)
	}
	for m := span(vr, c.size) / 2; m > 0; m /= 2 {
		if vr+m < c.size {
			c.sendHeader(c.abs(vr+m), stepStatus)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if vr != 0 {
		return nil, nil
	}
	return result[T](acc[hdrLen:], e), nil
}

// Allreduce combines the ranks' vectors element by element with op and
// returns the result on every rank; every rank gets the same bits. All
// vectors must have the same length and every rank the same op and T;
// otherwise every rank returns an error wrapping ErrMismatch (or ErrBadOp).
// v is not modified.
//
// Small vectors use recursive doubling (⌈log2 N⌉ rounds of whole vectors);
// vectors of 64 KiB and more use Rabenseifner's reduce-scatter by recursive
// halving then allgather by recursive doubling. When N is not a power of
// two the extra ranks first fold their vector into a partner's and get the
// result back at the end.
func Allreduce[T Number](t Transport, v []T, op Op) ([]T, error) {
	c, err := begin(t, KindAllreduce)
	if err != nil {
		return nil, err
	}
	e := elemOf[T]()
	c.setVector(op, e, len(v))
	acc := vector(v, e, op)
	body := len(acc) - hdrLen
	f := newFold(c.rank, c.size)
	switch {
	case f.extra:
		c.send(f.partner, stepFoldIn, acc)
		if p, ok := c.recvBody(f.partner, stepFold, body); ok {
			return result[T](p, e), nil
		}
		return nil, c.err
	case f.partner >= 0:
		if p, ok := c.recvBody(f.partner, stepFoldIn, body); ok {
			combineWire[T](acc[hdrLen:], p, e, op)
		}
	}
	if body >= rabenseifnerMin {
		rabenseifner[T](c, f, acc, e, op)
	} else {
		for j := range f.k {
			peer := f.peer(j)
			c.send(peer, uint8(j), acc)
			if p, ok := c.recvBody(peer, uint8(j), body); ok {
				combineWire[T](acc[hdrLen:], p, e, op)
			}
		}
	}
	if f.partner >= 0 {
		c.send(f.partner, stepFold, acc)
	}
	if c.err != nil {
		return nil, c.err
	}
	return result[T](acc[hdrLen:], e), nil
}

// rabenseifner runs the power-of-two part of a large Allreduce on acc.
//
// Reduce-scatter: in round j (j = 0..k-1) the rank and its partner
// newRank^(1<<j) split their current block in halves; the rank with bit j
// clear keeps the lower half, the other the upper, each sends the half it
// gives up and combines the half it keeps. After k rounds each rank holds
// 1/p of the result. Allgather: the rounds in reverse, each rank sending its
// block and copying in its partner's, until every rank has all of it.
//
// The first half has the same partners and steps as recursive doubling,
// and every header carries the vector length, so ranks whose vectors differ
// in size (and may have chosen different algorithms) all know it at the end
// of the first half (call.skew); they then all skip the second half, which
// keeps the message pattern the same on every rank.
func rabenseifner[T Number](c *call, f fold, acc []byte, e elemType, op Op) {
	type block struct{ lo, hi int } // elements
	sz := e.size()
	at := func(i int) int { return hdrLen + i*sz }
	blocks := make([]block, f.k) // the block before round j
	cur := block{0, (len(acc) - hdrLen) / sz}
	for j := range f.k {
		peer := f.peer(j)
		blocks[j] = cur
		mid := cur.lo + (cur.hi-cur.lo)/2
		give := block{mid, cur.hi}
		if f.newRank>>j&1 == 0 {
			cur.hi = mid
		} else {
			give, cur.lo = block{cur.lo, mid}, mid
		}
		c.sendAt(peer, uint8(j), acc, at(give.lo), at(give.hi))
		if p, ok := c.recvBody(peer, uint8(j), (cur.hi-cur.lo)*sz); ok {
			combineWire[T](acc[at(cur.lo):at(cur.hi)], p, e, op)
		}
	}
	if c.skew {
		return
	}
	for j := f.k - 1; j >= 0; j-- {
		peer := f.peer(j)
		step := stepGather | uint8(j)
		c.sendAt(peer, step, acc, at(cur.lo), at(cur.hi))
		b := blocks[j]
		mid := b.lo + (b.hi-b.lo)/2
		theirs := block{mid, b.hi}
		if f.newRank>>j&1 != 0 {
			theirs = block{b.lo, mid}
		}
		if p, ok := c.recvBody(peer, step, (theirs.hi-theirs.lo)*sz); ok {
			copy(acc[at(theirs.lo):at(theirs.hi)], p)
		}
		cur = b
	}
}
