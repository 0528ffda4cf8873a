package collective

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// appendBlock appends one block (see header.go) to dst.
func appendBlock(dst []byte, rank int, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(rank))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(b)))
	return append(dst, b...)
}

// nextBlock splits the first block off p.
func nextBlock(p []byte) (rank int, b, rest []byte, err error) {
	if len(p) < blockHdr {
		return 0, nil, nil, fmt.Errorf("block header cut short at %d bytes", len(p))
	}
	rank = int(binary.LittleEndian.Uint32(p))
	n := binary.LittleEndian.Uint64(p[4:])
	if n > uint64(len(p)-blockHdr) {
		return 0, nil, nil, fmt.Errorf("block of rank %d claims %d bytes, %d left", rank, n, len(p)-blockHdr)
	}
	end := blockHdr + int(n)
	return rank, p[blockHdr:end:end], p[end:], nil
}

// collect parses a body holding one block for every rank, in any order.
func collect(p []byte, size int) ([][]byte, error) {
	out := make([][]byte, size)
	seen := make([]bool, size)
	for count := 0; len(p) > 0; count++ {
		r, b, rest, err := nextBlock(p)
		if err != nil {
			return nil, err
		}
		if r >= size || seen[r] {
			return nil, fmt.Errorf("block %d is for rank %d, unexpected", count, r)
		}
		out[r], seen[r], p = b, true, rest
	}
	for r, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("no block for rank %d", r)
		}
	}
	return out, nil
}

// BcastAs sends the root's b to every rank, along a binomial tree (⌈log2 N⌉
// rounds). b is only read on root. Every rank, root included, gets a copy;
// the length comes from the root.
func BcastAs(t Transport, k Kind, root int, b []byte) ([]byte, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	if err := c.setRoot(root); err != nil {
		return nil, err
	}
	vr := c.vrank()
	var msg []byte
	if vr == 0 {
		msg = make([]byte, hdrLen+len(b))
		copy(msg[hdrLen:], b)
	} else {
		msg, _ = c.recv(c.abs(parent(vr)), 0)
	}
	// Forward the message as received: its header is this call's too.
	for m := span(vr, c.size) / 2; m > 0; m /= 2 {
		if vr+m < c.size {
			c.send(c.abs(vr+m), 0, msg)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return msg[hdrLen:], nil
}

// ScatterAs sends parts[i] from root to rank i and returns this rank's part,
// along a binomial tree: each rank forwards its subtree's parts. parts is
// only read on root and must hold one entry per rank (lengths may differ);
// otherwise every rank returns an error wrapping ErrPartCount. The result is
// a copy. A non-empty bad on root fails the call on every rank with
// ErrBadArg and bad as the reason (the caller's own check of its
// arguments, e.g. ScatterSlice's "length 10 not divisible by 3 ranks").
func ScatterAs(t Transport, k Kind, root int, parts [][]byte, bad string) ([]byte, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	if err := c.setRoot(root); err != nil {
		return nil, err
	}
	vr := c.vrank()
	sp := min(span(vr, c.size), c.size-vr) // vr's subtree: [vr, vr+sp)
	// msg is header room, then the blocks of the subtree in order;
	// off[i] is where the block of vr+i starts, off[sp] the end.
	var msg []byte
	off := make([]int, sp+1)
	if vr == 0 {
		if bad != "" {
			c.failLocal(codeBadArg, ErrBadArg, "%s", bad)
		} else if len(parts) != c.size {
			c.fail(codePartCount, ErrPartCount, "root has %d parts for %d ranks", len(parts), c.size)
		} else {
			total := hdrLen
			for _, p := range parts {
				total += blockHdr + len(p)
			}
			msg = make([]byte, hdrLen, total)
			for i := range sp {
				off[i] = len(msg)
				msg = appendBlock(msg, c.abs(i), parts[c.abs(i)])
			}
			off[sp] = len(msg)
		}
	} else {
		from := c.abs(parent(vr))
		var ok bool
		if msg, ok = c.recv(from, 0); ok {
			p := msg[hdrLen:]
			for i := range sp {
				off[i] = len(msg) - len(p)
				r, _, rest, err := nextBlock(p)
				if err == nil && r != c.abs(vr+i) {
					err = fmt.Errorf("block %d is for rank %d, want %d", i, r, c.abs(vr+i))
				}
				if err != nil {
					c.fail(codeMismatch, ErrMismatch, "parts from rank %d: %v", from, err)
					break
				}
				p = rest
			}
			if c.err == nil && len(p) > 0 {
				c.fail(codeMismatch, ErrMismatch, "parts from rank %d: %d bytes past the last", from, len(p))
			}
			off[sp] = len(msg)
		}
	}
	for m := span(vr, c.size) / 2; m > 0; m /= 2 {
		if vr+m < c.size {
			c.sendAt(c.abs(vr+m), 0, msg, off[m], off[min(2*m, sp)])
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	_, mine, _, _ := nextBlock(msg[off[0]:off[1]])
	return mine, nil
}

// GatherAs collects every rank's b on root: the result's entry i is rank i's
// bytes (lengths may differ), in fresh memory. Non-roots return nil. A
// binomial tree: each rank sends its subtree's blocks to its parent.
// Failures reach root; a non-root only learns of those below it.
func GatherAs(t Transport, k Kind, root int, b []byte) ([][]byte, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	if err := c.setRoot(root); err != nil {
		return nil, err
	}
	vr := c.vrank()
	held := appendBlock(make([]byte, hdrLen, hdrLen+blockHdr+len(b)), c.rank, b)
	for mask := 1; mask < c.size; mask <<= 1 {
		step := uint8(bits.TrailingZeros(uint(mask)))
		if vr&mask != 0 {
			c.send(c.abs(vr-mask), step, held)
			break
		}
		if vr+mask < c.size {
			if msg, ok := c.recv(c.abs(vr+mask), step); ok {
				held = append(held, msg[hdrLen:]...)
			}
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if vr != 0 {
		return nil, nil
	}
	out, err := collect(held[hdrLen:], c.size)
	if err != nil {
		c.fail(codeMismatch, ErrMismatch, "gathered blocks: %v", err)
		return nil, c.err
	}
	return out, nil
}

// AllgatherAs collects every rank's b on every rank: entry i of the result
// is rank i's bytes (lengths may differ), in fresh memory. Recursive
// doubling over the largest power of two of ranks, the others first
// handing their block to a partner and getting the whole result back.
func AllgatherAs(t Transport, k Kind, b []byte) ([][]byte, error) {
	c, err := begin(t, k)
	if err != nil {
		return nil, err
	}
	held := appendBlock(make([]byte, hdrLen, hdrLen+blockHdr+len(b)), c.rank, b)
	f := newFold(c.rank, c.size)
	if f.extra {
		c.send(f.partner, stepFoldIn, held)
		held = nil
	} else {
		if f.partner >= 0 {
			if msg, ok := c.recv(f.partner, stepFoldIn); ok {
				held = append(held, msg[hdrLen:]...)
			}
		}
		for j := range f.k {
			peer := f.peer(j)
			c.send(peer, uint8(j), held)
			if msg, ok := c.recv(peer, uint8(j)); ok {
				held = append(held, msg[hdrLen:]...)
			}
		}
	}
	if f.extra {
		held, _ = c.recv(f.partner, stepFold)
	} else if f.partner >= 0 {
		c.send(f.partner, stepFold, held)
	}
	if c.err != nil {
		return nil, c.err
	}
	out, err := collect(held[hdrLen:], c.size)
	if err != nil {
		c.fail(codeMismatch, ErrMismatch, "gathered blocks: %v", err)
		return nil, c.err
	}
	return out, nil
}

// fold places a rank in recursive doubling over a world whose size is not a
// power of two: with p the largest power of two not above size and
// rem = size-p, the first 2·rem ranks pair up; the even one of each pair
// (extra) hands its data to the odd one and waits for the result, the odd
// one takes part as new rank r/2, and ranks from 2·rem on as r-rem.
type fold struct {
	extra   bool
	partner int // the other rank of a pair, -1 outside pairs
	newRank int // rank among the p taking part; -1 for extra
	k       int // rounds: p = 1<<k
	rem     int
}

func newFold(rank, size int) fold {
	p, k := pow2(size)
	f := fold{k: k, rem: size - p, partner: -1}
	switch {
	case rank >= 2*f.rem:
		f.newRank = rank - f.rem
	case rank%2 == 0:
		f.extra, f.partner, f.newRank = true, rank+1, -1
	default:
		f.partner, f.newRank = rank-1, rank/2
	}
	return f
}

// peer returns the rank to exchange with in round j.
func (f fold) peer(j int) int {
	nr := f.newRank ^ 1<<j
	if nr < f.rem {
		return 2*nr + 1
	}
	return nr + f.rem
}

// Bcast is BcastAs with KindBcast.
func Bcast(t Transport, root int, b []byte) ([]byte, error) {
	return BcastAs(t, KindBcast, root, b)
}

// Scatter is ScatterAs with KindScatter.
func Scatter(t Transport, root int, parts [][]byte) ([]byte, error) {
	return ScatterAs(t, KindScatter, root, parts, "")
}

// Gather is GatherAs with KindGather.
func Gather(t Transport, root int, b []byte) ([][]byte, error) {
	return GatherAs(t, KindGather, root, b)
}

// Allgather is AllgatherAs with KindAllgather.
func Allgather(t Transport, b []byte) ([][]byte, error) {
	return AllgatherAs(t, KindAllgather, b)
}
