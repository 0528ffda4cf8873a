package collective

import "math/bits"

// rabenseifnerMin is the vector size, in bytes, from which Allreduce uses
// reduce-scatter + allgather: below it latency dominates and recursive
// doubling's log2 N rounds of whole vectors win; above it each rank sends
// and combines about twice the vector in all instead of log2 N times.
const rabenseifnerMin = 64 << 10

// noHeader is the room for a header that vector copies in front of the
// elements (never written: its capacity is its length).
var noHeader [hdrLen]byte

// vector returns header room followed by v encoded, as 1 or 0 for a
// logical op.
func vector[T Number](v []T, e elemType, op Op) []byte {
	if b, ok := bytesOf(v, e); ok && len(b) > 0 && !op.logical() {
		// append, not make and copy: the runtime does not clear the
		// memory that the copy fills (a large vector is written once).
		return append(noHeader[:], b...)
	}
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
	comb := combineFunc(combineElems)
	vr := c.vrank()
	for mask := 1; mask < c.size; mask <<= 1 {
		step := uint8(bits.TrailingZeros(uint(mask)))
		if vr&mask != 0 {
			c.sendStream(c.abs(vr-mask), step, acc, hdrLen, len(acc), e.size())
			break
		}
		if vr+mask < c.size {
			c.recvStream(c.abs(vr+mask), step, acc, hdrLen, len(acc), e.size(), comb)
		}
	}
	if vr != 0 {
		c.recvSeg(c.abs(parent(vr)), stepStatus, 0)
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
	sz := e.size()
	c.setVector(op, e, len(v))
	acc := vector(v, e, op)
	comb := combineFunc(combineElems)
	f := newFold(c.rank, c.size)
	switch {
	case f.extra:
		c.sendStream(f.partner, stepFoldIn, acc, hdrLen, len(acc), sz)
		c.recvStream(f.partner, stepFold, acc, hdrLen, len(acc), sz, nil)
		if c.err != nil {
			return nil, c.err
		}
		return result[T](acc[hdrLen:], e), nil
	case f.partner >= 0:
		c.recvStream(f.partner, stepFoldIn, acc, hdrLen, len(acc), sz, comb)
	}
	if len(acc)-hdrLen >= rabenseifnerMin {
		rabenseifner(c, f, acc, sz, comb)
	} else {
		for j := range f.k {
			c.exchange(f.peer(j), uint8(j), acc, hdrLen, len(acc), hdrLen, len(acc), sz, comb)
		}
	}
	if f.partner >= 0 {
		c.sendStream(f.partner, stepFold, acc, hdrLen, len(acc), sz)
	}
	if c.err != nil {
		return nil, c.err
	}
	return result[T](acc[hdrLen:], e), nil
}

// rabenseifner runs the power-of-two part of a large Allreduce on acc
// (elements of sz bytes after hdrLen bytes of header room).
//
// Reduce-scatter: in round j (j = 0..k-1) the rank and its partner
// newRank^(1<<j) split their current block in halves; the rank with bit j
// clear keeps the lower half, the other the upper, each sends the half it
// gives up and combines the half it keeps. After k rounds each rank holds
// 1/p of the result. Allgather: the rounds in reverse, each rank sending its
// block and receiving its partner's in place, until every rank has all of
// it. Every exchange is a pair of streams (see exchange), so a round's
// combining overlaps its transfer.
//
// The first half has the same partners and steps as recursive doubling,
// and every header carries the vector length, so ranks whose vectors differ
// in size (and may have chosen different algorithms) all know it at the end
// of the first half (call.skew); they then all skip the second half, which
// keeps the message pattern the same on every rank.
func rabenseifner(c *call, f fold, acc []byte, sz int, comb combineFunc) {
	type block struct{ lo, hi int } // elements
	at := func(i int) int { return hdrLen + i*sz }
	var blocks [64]block // the block before round j
	cur := block{0, (len(acc) - hdrLen) / sz}
	for j := range f.k {
		blocks[j] = cur
		mid := cur.lo + (cur.hi-cur.lo)/2
		give := block{mid, cur.hi}
		if f.newRank>>j&1 == 0 {
			cur.hi = mid
		} else {
			give, cur.lo = block{cur.lo, mid}, mid
		}
		c.exchange(f.peer(j), uint8(j), acc, at(give.lo), at(give.hi), at(cur.lo), at(cur.hi), sz, comb)
	}
	if c.skew {
		return
	}
	for j := f.k - 1; j >= 0; j-- {
		b := blocks[j]
		mid := b.lo + (b.hi-b.lo)/2
		theirs := block{mid, b.hi}
		if f.newRank>>j&1 != 0 {
			theirs = block{b.lo, mid}
		}
		c.exchange(f.peer(j), stepGather|uint8(j), acc, at(cur.lo), at(cur.hi), at(theirs.lo), at(theirs.hi), sz, nil)
		cur = b
	}
}
