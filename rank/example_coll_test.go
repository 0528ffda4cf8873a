package rank_test

import (
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/rank"
)

// Typed messages: Encode turns a slice into the bytes Send, Isend and
// Sendrecv carry; Decode turns them back. Plain numbers are copied in
// bulk; arrays and structs of numbers work too.
func ExampleEncode() {
	type particle struct {
		X, Y float64
		Mass float32
	}
	b := rank.Encode([]particle{{1, 2, 0.5}, {3, 4, 1.5}})
	ps, err := rank.Decode[particle](b)
	fmt.Println(len(b), ps, err)

	_, err = rank.Decode[float64](b[:10])
	fmt.Println(err)
	// Output:
	// 40 [{1 2 0.5} {3 4 1.5}] <nil>
	// rank: Decode: 10 bytes is not a whole number of 8-byte float64
}

// Who holds the minimum? AllreduceLoc returns the value and its rank (MPI's
// MINLOC); with one rank, that is rank 0.
func ExampleAllreduceLoc() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	distance := []float64{42.5 - float64(w.Rank())} // this rank's best tour, say
	best, err := rank.AllreduceLoc(w, distance, rank.Min)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("shortest %.1f found by rank %d\n", best[0].Value, best[0].Rank)
	// Output: shortest 42.5 found by rank 0
}

// Scan gives rank r the sum over ranks 0..r: here every rank counts its
// items and learns where its part starts (Exscan) and ends (Scan).
func ExampleScan() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	count := []int{10 + w.Rank()}
	end, err := rank.Scan(w, count, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	start, err := rank.Exscan(w, count, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	if start == nil { // rank 0
		start = []int{0}
	}
	fmt.Printf("rank %d: items [%d, %d)\n", w.Rank(), start[0], end[0])
	// Output: rank 0: items [0, 10)
}
