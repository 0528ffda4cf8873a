package coherence

import (
	"math/bits"
	"strconv"
	"strings"
)

// rankSet is a set of ranks, iterated in increasing order so that the
// machine's output is deterministic.
type rankSet []uint64

func newRankSet(size int) rankSet { return make(rankSet, (size+63)/64) }

func (s rankSet) has(r int) bool { return s[r/64]&(1<<(r%64)) != 0 }
func (s rankSet) add(r int)      { s[r/64] |= 1 << (r % 64) }
func (s rankSet) del(r int)      { s[r/64] &^= 1 << (r % 64) }

func (s rankSet) clear() {
	for i := range s {
		s[i] = 0
	}
}

func (s rankSet) len() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// min returns the smallest member, or -1 for the empty set.
func (s rankSet) min() int {
	for i, w := range s {
		if w != 0 {
			return i*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}

// ranks lists the members in increasing order.
func (s rankSet) ranks() []int {
	var rs []int
	for i, w := range s {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			rs = append(rs, i*64+b)
			w &^= 1 << b
		}
	}
	return rs
}

func (s rankSet) String() string {
	var parts []string
	for _, r := range s.ranks() {
		parts = append(parts, strconv.Itoa(r))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
