// scan computes prefix sums across the ranks with rank.Scan and
// rank.Exscan. Every rank holds a number of items that differs from rank
// to rank; to place them one after the other in a global order, each rank
// needs to know how many items the ranks before it hold: the exclusive
// prefix sum of the counts. Scan gives the inclusive one (ranks 0..r),
// Exscan the exclusive one (ranks 0..r-1; nil on rank 0).
//
// Every rank checks its sums against a serial computation, and rank 0
// gathers the global positions and checks that they cover 0..total-1
// exactly once.
//
//	mpirun -np 4 ./bin/scan
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/rank"
)

// items is how many items rank r holds.
func items(r int) int { return (r*5+3)%7 + 1 }

func main() {
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	mine := items(r)

	// tutorial:begin scan
	incl, err := rank.Scan(w, []int{mine}, rank.Sum) // items on ranks 0..r
	if err != nil {
		log.Fatal(err)
	}
	excl, err := rank.Exscan(w, []int{mine}, rank.Sum) // items on ranks 0..r-1
	if err != nil {
		log.Fatal(err)
	}
	first := 0 // Exscan gives rank 0 nothing: nobody is before it
	if r > 0 {
		first = excl[0]
	}
	positions := make([]int, mine) // where my items go in the global order
	for i := range positions {
		positions[i] = first + i
	}
	fmt.Printf("scan: rank %d holds %d items: positions %d to %d\n", r, mine, first, incl[0]-1)
	// tutorial:end

	want := 0
	for q := 0; q < r; q++ {
		want += items(q)
	}
	if first != want || incl[0] != want+mine || (r == 0) != (excl == nil) {
		log.Fatalf("scan: rank %d: Scan %v, Exscan %v; want %d and %d", r, incl, excl, want+mine, want)
	}
	all, err := rank.GatherSlice(w, 0, positions)
	if err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		for i, p := range all {
			if p != i {
				log.Fatalf("scan: item %d of the gathered order has position %d", i, p)
			}
		}
		fmt.Printf("scan: %d items on %d rank%s, placed at positions 0 to %d in rank order by Scan and Exscan: correct\n",
			len(all), size, plural(size), len(all)-1)
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
