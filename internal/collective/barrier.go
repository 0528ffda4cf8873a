package collective

import (
	"encoding/binary"
	"fmt"
)

// Barrier returns once every rank has called Barrier: a dissemination
// barrier (⌈log2 N⌉ rounds; in round j rank i sends to i+2^j and receives
// from i-2^j, mod N). It runs on the collectives' transport with their
// header, so a rank that calls something else at this point (a Bcast, a
// Finalize) makes every rank fail with a *MismatchError instead of being
// taken for a barrier.
func Barrier(t Transport) error { return barrierRun(t, KindBarrier, 0) }

// BarrierDigest is Barrier that also checks that every rank passed the same
// 64-bit digest d (of state that must agree across ranks, such as the
// shared-memory allocations made so far). Plain Barrier is BarrierDigest
// with 0. Digests that differ make every rank return an error wrapping
// ErrDigest that names two ranks and their digests (the lowest and the
// highest digest, each with the lowest rank holding it: the same text on
// every rank).
func BarrierDigest(t Transport, d uint64) error { return barrierRun(t, KindBarrier, d) }

// Finalize is the barrier of a rank that ends its part in the job. It is
// a kind of its own: a Finalize never passes for a Barrier, so a rank whose
// deferred Finalize runs (after a panic, say) while the others wait in
// Barrier makes them fail with a *MismatchError.
func Finalize(t Transport) error { return barrierRun(t, KindFinalize, 0) }

// digests is what a barrier message carries: the lowest and the highest
// digest seen so far, each with the lowest rank holding it. Min and max
// are idempotent, so after the dissemination rounds every rank has the
// same values, whatever paths they took.
type digests struct {
	lo, hi         uint64
	loRank, hiRank int
}

const digestsLen = 24

func (d *digests) put(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], d.lo)
	binary.LittleEndian.PutUint32(b[8:], uint32(d.loRank))
	binary.LittleEndian.PutUint32(b[12:], uint32(d.hiRank))
	binary.LittleEndian.PutUint64(b[16:], d.hi)
}

func (d *digests) merge(b []byte) {
	lo, loRank := binary.LittleEndian.Uint64(b[0:]), int(binary.LittleEndian.Uint32(b[8:]))
	hiRank, hi := int(binary.LittleEndian.Uint32(b[12:])), binary.LittleEndian.Uint64(b[16:])
	if lo < d.lo || lo == d.lo && loRank < d.loRank {
		d.lo, d.loRank = lo, loRank
	}
	if hi > d.hi || hi == d.hi && hiRank < d.hiRank {
		d.hi, d.hiRank = hi, hiRank
	}
}

func barrierRun(t Transport, k Kind, digest uint64) error {
	c, err := begin(t, k)
	if err != nil {
		return err
	}
	d := digests{lo: digest, hi: digest, loRank: c.rank, hiRank: c.rank}
	buf := c.out[:hdrLen+digestsLen]
	for j, dist := 0, 1; dist < c.size; j, dist = j+1, dist*2 {
		d.put(buf[hdrLen:])
		c.send((c.rank+dist)%c.size, uint8(j), buf)
		if p, _, ok := c.recvSeg((c.rank-dist+c.size)%c.size, uint8(j), digestsLen); ok {
			if r1, r2 := binary.LittleEndian.Uint32(p[8:]), binary.LittleEndian.Uint32(p[12:]); int(r1) >= c.size || int(r2) >= c.size {
				c.fail(codeMismatch, ErrMismatch, "barrier message from rank %d names ranks %d and %d", (c.rank-dist+c.size)%c.size, r1, r2)
				continue
			}
			d.merge(p)
		}
	}
	if c.err != nil {
		return c.err
	}
	if d.lo != d.hi {
		return &Error{Call: k.String(), Rank: c.rank, Err: ErrDigest,
			Reason: fmt.Sprintf("digest mismatch: rank %d has %#x, rank %d has %#x", d.loRank, d.lo, d.hiRank, d.hi)}
	}
	return nil
}
