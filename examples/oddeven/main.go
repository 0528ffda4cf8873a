// oddeven sorts integers with odd-even transposition sort: every rank holds
// a block of keys, sorts it, then in each of Size() phases exchanges its
// block with a neighbour (left or right, alternating with the phase's
// parity) and keeps the lower or the upper half of the merged pair
// ("merge-split"). After Size() phases the blocks are sorted across ranks.
// Rank 0 gathers the input and the result and checks that the result is
// sorted and a permutation of the input. The pair exchange is one Sendrecv.
//
//	mpirun -np 4 ./bin/oddeven -n 1000
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

// mergeSplit merges two sorted blocks and returns the len(mine) smallest
// keys (keepLow) or the len(mine) largest.
func mergeSplit(mine, theirs []int64, keepLow bool) []int64 {
	out := make([]int64, len(mine))
	if keepLow {
		i, j := 0, 0
		for k := range out {
			if j >= len(theirs) || i < len(mine) && mine[i] <= theirs[j] {
				out[k], i = mine[i], i+1
			} else {
				out[k], j = theirs[j], j+1
			}
		}
	} else {
		i, j := len(mine)-1, len(theirs)-1
		for k := len(out) - 1; k >= 0; k-- {
			if j < 0 || i >= 0 && mine[i] > theirs[j] {
				out[k], i = mine[i], i-1
			} else {
				out[k], j = theirs[j], j-1
			}
		}
	}
	return out
}

func main() {
	n := flag.Int("n", 1000, "keys per rank")
	seed := flag.Uint64("seed", 1, "random seed; rank r uses the stream (seed, r)")
	flag.Parse()
	if *n < 1 {
		log.Fatal("oddeven: -n must be at least 1")
	}
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()

	// Every rank makes its own keys; rank 0 keeps a copy of all of them to
	// check the result against.
	rng := rand.New(rand.NewPCG(*seed, uint64(r)))
	keys := make([]int64, *n)
	for i := range keys {
		keys[i] = rng.Int64N(1_000_000)
	}
	input, err := rank.GatherSlice(w, 0, keys) // every rank's keys, in rank order, on rank 0
	if err != nil {
		log.Fatal(err)
	}

	start := time.Now()
	slices.Sort(keys)
	exchanges, changed := 0, 0
	for phase := 0; phase < size; phase++ {
		// Even phases pair (0,1), (2,3), ...; odd phases (1,2), (3,4), ...
		partner := r + 1
		if (r+phase)%2 == 1 {
			partner = r - 1
		}
		if partner < 0 || partner >= size {
			continue // an end rank sits this phase out
		}
		// tutorial:begin oddeven
		// Both ranks of a pair call Sendrecv: it sends my block and
		// receives the partner's at once, so the pair cannot deadlock
		// whoever comes first. The phase number is the tag, so phases
		// never mix. Encode and Decode turn []int64 into bytes and back.
		b, _, err := w.Sendrecv(partner, phase, rank.Encode(keys), partner, phase)
		if err != nil {
			log.Fatal(err)
		}
		theirs, err := rank.Decode[int64](b)
		if err != nil {
			log.Fatal(err)
		}
		// tutorial:end
		next := mergeSplit(keys, theirs, r < partner)
		if !slices.Equal(next, keys) {
			changed++
		}
		keys = next
		exchanges++
	}
	elapsed := time.Since(start)
	w.Report("exchanges", exchanges)
	w.Report("changed", changed)
	w.Report("time", elapsed)

	out, err := rank.GatherSlice(w, 0, keys)
	if err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		in := input
		if !slices.IsSorted(out) {
			i := 0
			for out[i] <= out[i+1] {
				i++
			}
			log.Fatalf("oddeven: not sorted: key %d is %d, key %d is %d", i, out[i], i+1, out[i+1])
		}
		slices.Sort(in)
		if !slices.Equal(in, out) {
			log.Fatal("oddeven: the result is sorted but not a permutation of the input")
		}
		fmt.Printf("oddeven: %d keys on %d rank%s (%d each), %d phase%s: sorted, a permutation of the input\n",
			len(out), size, plural(size), *n, size, plural(size))
		fmt.Printf("oddeven: sorted in %v\n", elapsed.Round(time.Microsecond))
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
