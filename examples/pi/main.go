// pi estimates π twice, the two classic first uses of collectives:
//
//   - Monte Carlo: every rank throws its share of darts at the unit square
//     with its own seeded random generator and counts those inside the
//     quarter circle; rank.Reduce sums the counts on rank 0 only.
//   - The integral of 4/(1+x²) over [0,1] by the midpoint rule: every rank
//     adds up its share of the intervals; rank.Allreduce sums the partial
//     sums and gives every rank the same total, bit for bit.
//
// Run it with:
//
//	mpirun -np 4 ./bin/pi -samples 1000000 -intervals 1000000
//
// The output is deterministic for a given -np and flags (the generators are
// seeded), so runs under different launchers can be compared.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

// share is the part [lo, hi) of n items that rank r of size gets.
func share(n int64, r, size int) (lo, hi int64) {
	return n * int64(r) / int64(size), n * int64(r+1) / int64(size)
}

// darts throws n darts at [0,1)² and counts those with x²+y² < 1.
func darts(rng *rand.Rand, n int64) int64 {
	var in int64
	for range n {
		x, y := rng.Float64(), rng.Float64()
		if x*x+y*y < 1 {
			in++
		}
	}
	return in
}

// midpoint adds h·f(x) over the midpoints of intervals [lo, hi) of [0,1].
func midpoint(lo, hi, n int64) float64 {
	h := 1 / float64(n)
	var s float64
	for i := lo; i < hi; i++ {
		x := (float64(i) + 0.5) * h
		s += 4 / (1 + x*x)
	}
	return s * h
}

func main() {
	samples := flag.Int64("samples", 1_000_000, "Monte Carlo darts in all (split across ranks)")
	intervals := flag.Int64("intervals", 1_000_000, "midpoint-rule intervals in all (split across ranks)")
	seed := flag.Uint64("seed", 1, "random seed; rank r uses the stream (seed, r)")
	flag.Parse()
	if *samples < 1 || *intervals < 1 {
		log.Fatal("pi: -samples and -intervals must be at least 1")
	}
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	start := time.Now()

	// Monte Carlo: each rank its own generator, the counts summed on rank 0.
	lo, hi := share(*samples, r, size)
	rng := rand.New(rand.NewPCG(*seed, uint64(r)))
	hits := darts(rng, hi-lo)
	total, err := rank.Reduce(w, 0, []int64{hits}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}

	// The integral: partial sums, the total on every rank.
	ilo, ihi := share(*intervals, r, size)
	sum, err := rank.Allreduce(w, []float64{midpoint(ilo, ihi, *intervals)}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	integral := sum[0]

	// Every rank holds the same integral, so every rank can check it.
	if e := math.Abs(integral - math.Pi); e > 1e-9 {
		log.Fatalf("pi: rank %d: integral %.15f is %.2g away from π, want ≤ 1e-9", r, integral, e)
	}
	// The time goes to the table only, so that the output stays the same
	// from run to run.
	w.Report("hits", fmt.Sprintf("%d of %d", hits, hi-lo))
	w.Report("integral", fmt.Sprintf("%.15f", integral))
	w.Report("time", time.Since(start))

	if r == 0 {
		mc := 4 * float64(total[0]) / float64(*samples)
		// The estimate's standard deviation is about 1.64/√N; six of
		// them is a loose bound that a correct program never misses.
		bound := 6 * 1.65 / math.Sqrt(float64(*samples))
		if e := math.Abs(mc - math.Pi); e > bound {
			log.Fatalf("pi: Monte Carlo %.6f is %.2g away from π, want ≤ %.2g", mc, e, bound)
		}
		fmt.Printf("pi: integral %.14f (error %.1e), montecarlo %.4f with %d samples (error %.1e) on %d rank%s\n",
			integral, math.Abs(integral-math.Pi), mc, *samples, math.Abs(mc-math.Pi), size, plural(size))
		fmt.Printf("pi: integral within 1e-9 and montecarlo within %.2g of π: correct\n", bound)
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
