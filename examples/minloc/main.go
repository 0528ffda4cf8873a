// minloc finds which rank holds the minimum and which the maximum, MPI's
// MINLOC and MAXLOC. Every rank measures -n temperatures (random, seeded
// by its rank); rank.AllreduceLoc with rank.Min gives every rank the
// coldest reading of all and the rank that has it, rank.Max the warmest.
// A tie goes to the lowest rank: the second element, the same on every
// rank, shows it.
//
// Every rank can make every rank's readings (the generators are seeded),
// so every rank checks the answer against a serial search.
//
//	mpirun -np 4 ./bin/minloc
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"slices"

	"github.com/dsmexec/dsmexec/rank"
)

// readings are rank r's n temperatures.
func readings(r, n int) []float64 {
	rng := rand.New(rand.NewPCG(7, uint64(r)))
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(rng.IntN(8000)-2000) / 100 // -20.00 .. 59.99
	}
	return v
}

func main() {
	n := flag.Int("n", 1000, "readings per rank")
	flag.Parse()
	if *n < 1 {
		log.Fatal("minloc: -n must be at least 1")
	}
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	mine := readings(r, *n)

	// tutorial:begin minloc
	low, high := slices.Min(mine), slices.Max(mine)
	coldest, err := rank.AllreduceLoc(w, []float64{low, 0}, rank.Min)
	if err != nil {
		log.Fatal(err)
	}
	warmest, err := rank.AllreduceLoc(w, []float64{high}, rank.Max)
	if err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		fmt.Printf("minloc: coldest %.2f on rank %d, warmest %.2f on rank %d\n",
			coldest[0].Value, coldest[0].Rank, warmest[0].Value, warmest[0].Rank)
	}
	// tutorial:end

	// The serial answer: the first rank (lowest) that has the extreme.
	wantLow, wantHigh := rank.Loc[float64]{Value: low, Rank: r}, rank.Loc[float64]{Value: high, Rank: r}
	for q := range size {
		v := readings(q, *n)
		if lo := slices.Min(v); lo < wantLow.Value || lo == wantLow.Value && q < wantLow.Rank {
			wantLow = rank.Loc[float64]{Value: lo, Rank: q}
		}
		if hi := slices.Max(v); hi > wantHigh.Value || hi == wantHigh.Value && q < wantHigh.Rank {
			wantHigh = rank.Loc[float64]{Value: hi, Rank: q}
		}
	}
	if coldest[0] != wantLow || warmest[0] != wantHigh {
		log.Fatalf("minloc: rank %d: coldest %+v, warmest %+v; want %+v and %+v", r, coldest[0], warmest[0], wantLow, wantHigh)
	}
	if tie := coldest[1]; tie.Value != 0 || tie.Rank != 0 {
		log.Fatalf("minloc: rank %d: a value every rank has is reported as %+v, want rank 0", r, tie)
	}
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		fmt.Printf("minloc: %d readings on each of %d rank%s: both locations equal a serial search, ties to the lowest rank: correct\n",
			*n, size, plural(size))
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
