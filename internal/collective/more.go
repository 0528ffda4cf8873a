package collective

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// Alltoall sends parts[i] to rank i and returns what every rank sent this
// one: entry i of the result is rank i's part for this rank (lengths may
// differ, like MPI_Alltoallv), in fresh memory. parts must have one entry
// per rank on every rank; otherwise every rank returns an error wrapping
// ErrPartCount.
//
// Pairwise exchange: in step i (1..N-1) a rank sends to rank+i and
// receives from rank-i (mod N). Send does not wait for the peer's Recv, so
// no ordering can deadlock; each rank moves exactly its data once.
func Alltoall(t Transport, parts [][]byte) ([][]byte, error) {
	return AlltoallAs(t, KindAlltoall, parts, "")
}

// AlltoallAs is Alltoall with the call named k (KindAlltoallSlice); a
// non-empty bad fails the call on every rank with ErrBadArg and that
// reason (the caller's own check of its arguments).
func AlltoallAs(t Transport, k Kind, parts [][]byte, bad string) ([][]byte, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, c.size)
	if bad != "" {
		c.failLocal(codeBadArg, ErrBadArg, "%s", bad)
	} else if len(parts) != c.size {
		c.failLocal(codePartCount, ErrPartCount, "%d parts for %d ranks", len(parts), c.size)
	} else {
		out[c.rank] = append([]byte{}, parts[c.rank]...)
	}
	var buf []byte
	for i := 1; i < c.size; i++ {
		to, from := (c.rank+i)%c.size, (c.rank-i+c.size)%c.size
		if c.err == nil {
			p := parts[to]
			buf = slices.Grow(buf[:0], hdrLen+len(p))[:hdrLen+len(p)] // Send keeps nothing
			copy(buf[hdrLen:], p)
		}
		c.send(to, 0, buf)
		if m, ok := c.recv(from, 0); ok {
			out[from] = m[hdrLen:]
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return out, nil
}

// ReduceScatter combines the ranks' vectors element-wise with op and
// returns block r of the result on rank r: len(v) must be divisible by the
// number of ranks N, and the blocks are len(v)/N elements each. A length
// that is not divisible, or that differs between ranks, is an error on
// every rank.
//
// Each rank sends block i of its vector straight to rank i and combines
// the N blocks it receives in rank order (N-1 messages of one block each:
// every rank moves (N-1)/N of the vector, the least possible).
func ReduceScatter[T Number](t Transport, v []T, op Op) ([]T, error) {
	c, err := begin(t, KindReduceScatter)
	if err != nil {
		return nil, err
	}
	e := elemOf[T]()
	c.setVector(op, e, len(v))
	if len(v)%c.size != 0 {
		c.failLocal(codeBadArg, ErrBadArg, "length %d not divisible by %d ranks", len(v), c.size)
	}
	nb, sz := len(v)/c.size, e.size()
	acc := vector(v, e, op)
	at := func(i int) int { return hdrLen + i*nb*sz }
	for i := 1; i < c.size; i++ {
		to := (c.rank + i) % c.size
		c.sendAt(to, 0, acc, at(to), at(to+1))
	}
	var res []byte
	for from := range c.size {
		var p []byte
		if from == c.rank {
			p = acc[at(from):at(from+1)]
		} else {
			var ok bool
			if p, ok = c.recvBody(from, 0, nb*sz); !ok {
				continue
			}
		}
		if res == nil {
			res = p
		} else if c.err == nil {
			combineWire[T](res, p, e, op)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return result[T](res, e), nil
}

// Scan returns on rank r the element-wise combination with op of the
// vectors of ranks 0..r (an inclusive prefix). Exscan returns that of
// ranks 0..r-1, and nil on rank 0. Lengths must agree.
//
// Recursive doubling: in round j a rank sends its partial result to rank
// r+2^j and combines the one from rank r-2^j into it (⌈log2 N⌉ rounds).
// A failure reaches the ranks above the one that saw it.
func Scan[T Number](t Transport, v []T, op Op) ([]T, error) { return scan(t, KindScan, v, op) }

// Exscan is the exclusive Scan: rank 0 gets nil, rank r the combination of
// ranks 0..r-1.
func Exscan[T Number](t Transport, v []T, op Op) ([]T, error) { return scan(t, KindExscan, v, op) }

func scan[T Number](t Transport, k Kind, v []T, op Op) ([]T, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	e := elemOf[T]()
	c.setVector(op, e, len(v))
	acc := vector(v, e, op) // the combination of ranks [r-2^j+1, r]
	body := len(acc) - hdrLen
	var excl []byte // of ranks [r-2^j+1, r-1]
	for j, d := 0, 1; d < c.size; j, d = j+1, d*2 {
		if c.rank+d < c.size {
			c.send(c.rank+d, uint8(j), acc)
		}
		if c.rank-d >= 0 {
			if p, ok := c.recvBody(c.rank-d, uint8(j), body); ok {
				if k == KindExscan {
					if excl == nil {
						excl = append([]byte{}, p...)
					} else {
						combineWire[T](excl, p, e, op)
					}
				}
				combineWire[T](acc[hdrLen:], p, e, op)
			}
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if k == KindExscan {
		if c.rank == 0 {
			return nil, nil
		}
		return result[T](excl, e), nil
	}
	return result[T](acc[hdrLen:], e), nil
}

// Combiner combines two encoded vectors of equal length in place:
// lo = lo ∘ hi, where lo holds the contribution of lower ranks.
type Combiner func(lo, hi []byte)

// ReduceFunc combines the ranks' encoded vectors b with f, in rank order
// (f need only be associative), and returns the result on root, nil
// elsewhere. The bytes must have the same length on every rank.
//
// A binomial tree over the ranks in their order towards rank 0 (each
// subtree is a range of consecutive ranks, so the order holds), then rank 0
// passes the result to root, and the outcome goes back down the tree so
// that every rank returns the same error.
func ReduceFunc(t Transport, k Kind, root int, b []byte, f Combiner) ([]byte, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	if err := c.setRoot(root); err != nil {
		return nil, err
	}
	c.h.n = uint64(len(b))
	acc := append(make([]byte, hdrLen, hdrLen+len(b)), b...)
	return reduceOrdered(c, root, acc, f)
}

// AllreduceFunc is ReduceFunc with the result on every rank (the same
// bytes everywhere: every combination is made from the same operands).
// Recursive doubling; a rank combines its partner's data on the side
// that keeps the rank order.
func AllreduceFunc(t Transport, k Kind, b []byte, f Combiner) ([]byte, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	c.h.n = uint64(len(b))
	acc := append(make([]byte, hdrLen, hdrLen+len(b)), b...)
	return allreduceOrdered(c, acc, f)
}

func reduceOrdered(c *call, root int, acc []byte, f Combiner) ([]byte, error) {
	body := len(acc) - hdrLen
	for mask := 1; mask < c.size; mask <<= 1 {
		step := uint8(bits.TrailingZeros(uint(mask)))
		if c.rank&mask != 0 {
			c.send(c.rank-mask, step, acc)
			break
		}
		if c.rank+mask < c.size {
			if p, ok := c.recvBody(c.rank+mask, step, body); ok {
				f(acc[hdrLen:], p)
			}
		}
	}
	if root != 0 {
		switch c.rank {
		case 0:
			c.send(root, stepFold, acc)
		case root:
			if p, ok := c.recvBody(0, stepFold, body); ok {
				copy(acc[hdrLen:], p)
			}
		}
	}
	if c.rank != 0 {
		c.recv(parent(c.rank), stepStatus)
	}
	for m := span(c.rank, c.size) / 2; m > 0; m /= 2 {
		if c.rank+m < c.size {
			c.sendHeader(c.rank+m, stepStatus)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.rank != root {
		return nil, nil
	}
	return acc[hdrLen:], nil
}

func allreduceOrdered(c *call, acc []byte, f Combiner) ([]byte, error) {
	body := len(acc) - hdrLen
	fl := newFold(c.rank, c.size)
	if fl.extra {
		c.send(fl.partner, stepFoldIn, acc)
		if p, ok := c.recvBody(fl.partner, stepFold, body); ok {
			return p, nil
		}
		return nil, c.err
	}
	// hiInto combines p, from higher ranks, into acc, or acc into p when p
	// is from lower ranks.
	combine := func(p []byte, lower bool) {
		if lower {
			f(p, acc[hdrLen:])
			copy(acc[hdrLen:], p)
		} else {
			f(acc[hdrLen:], p)
		}
	}
	if fl.partner >= 0 {
		if p, ok := c.recvBody(fl.partner, stepFoldIn, body); ok {
			combine(p, true)
		}
	}
	for j := range fl.k {
		peer := fl.peer(j)
		c.send(peer, uint8(j), acc)
		if p, ok := c.recvBody(peer, uint8(j), body); ok {
			combine(p, peer < c.rank)
		}
	}
	if fl.partner >= 0 {
		c.send(fl.partner, stepFold, acc)
	}
	if c.err != nil {
		return nil, c.err
	}
	return acc[hdrLen:], nil
}

// ReduceLoc finds, element by element, the minimum (op Min) or maximum
// (op Max) of the ranks' vectors and the lowest rank holding it (MPI's
// MINLOC and MAXLOC). It returns the values and ranks on root, nil
// elsewhere.
func ReduceLoc[T Number](t Transport, root int, v []T, op Op) ([]T, []int, error) {
	c, err := begin(t, KindReduceLoc)
	if err != nil {
		return nil, nil, err
	}
	if err := c.setRoot(root); err != nil {
		return nil, nil, err
	}
	e, acc, f := setLoc(c, v, op)
	b, err := reduceOrdered(c, root, acc, f)
	if b == nil || err != nil {
		return nil, nil, err
	}
	vals, ranks := splitLoc[T](b, len(v), e)
	return vals, ranks, nil
}

// AllreduceLoc is ReduceLoc with the result on every rank.
func AllreduceLoc[T Number](t Transport, v []T, op Op) ([]T, []int, error) {
	c, err := begin(t, KindAllreduceLoc)
	if err != nil {
		return nil, nil, err
	}
	e, acc, f := setLoc(c, v, op)
	b, err := allreduceOrdered(c, acc, f)
	if err != nil {
		return nil, nil, err
	}
	vals, ranks := splitLoc[T](b, len(v), e)
	return vals, ranks, nil
}

// A Loc vector travels as the values (encoded as elements) then one
// uint32 rank per element.
func setLoc[T Number](c *call, v []T, op Op) (elemType, []byte, Combiner) {
	e := elemOf[T]()
	c.h.op, c.h.elem, c.h.n = op, e, uint64(len(v))
	if op != Min && op != Max {
		c.failLocal(codeBadOp, ErrBadOp, "%v: only Min and Max find a location", op)
	}
	n, sz := len(v), e.size()
	acc := make([]byte, hdrLen+n*(sz+4))
	encode(acc[hdrLen:hdrLen+n*sz], v, e)
	for i := range n {
		binary.LittleEndian.PutUint32(acc[hdrLen+n*sz+4*i:], uint32(c.rank))
	}
	f := func(lo, hi []byte) {
		lv, hv := decode[T](lo[:n*sz], e), decode[T](hi[:n*sz], e)
		lr, hr := lo[n*sz:], hi[n*sz:]
		for i := range n {
			a, b := lv[i], hv[i]
			ra, rb := binary.LittleEndian.Uint32(lr[4*i:]), binary.LittleEndian.Uint32(hr[4*i:])
			better := b < a
			if op == Max {
				better = b > a
			}
			if better || b == a && rb < ra {
				lv[i] = b
				binary.LittleEndian.PutUint32(lr[4*i:], rb)
			}
		}
		encode(lo[:n*sz], lv, e)
	}
	return e, acc, f
}

func splitLoc[T Number](b []byte, n int, e elemType) ([]T, []int) {
	sz := e.size()
	vals := decode[T](b[:n*sz], e)
	ranks := make([]int, n)
	for i := range ranks {
		ranks[i] = int(binary.LittleEndian.Uint32(b[n*sz+4*i:]))
	}
	return vals, ranks
}
