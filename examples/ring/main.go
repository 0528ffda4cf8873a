// ring passes a token around the ranks K times with SendSlice and
// RecvSlice (typed Send and Recv); every rank adds its rank number, and
// rank 0 checks the total at the end.
//
//	mpirun -np 4 ./bin/ring -laps 100
package main

import (
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	laps := flag.Int("laps", 10, "times the token goes around the ring")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, n := w.Rank(), w.Size()
	next, prev := (r+1)%n, (r+n-1)%n
	const tag = 7
	start := time.Now()
	// tutorial:begin ring
	var token int64
	for lap := 0; lap < *laps; lap++ {
		if r == 0 { // rank 0 starts every lap
			if err := rank.SendSlice(w, next, tag, []int64{token}); err != nil {
				log.Fatal(err)
			}
		}
		got, _, err := rank.RecvSlice[int64](w, prev, tag) // wait for the token
		if err != nil {
			log.Fatal(err)
		}
		token = got[0]
		if r != 0 { // add my rank and pass it on
			token += int64(r)
			if err := rank.SendSlice(w, next, tag, []int64{token}); err != nil {
				log.Fatal(err)
			}
		}
	}
	// tutorial:end
	if r == 0 {
		want := int64(*laps) * int64(n*(n-1)/2)
		if token != want {
			log.Fatalf("ring: token is %d after %d laps, want %d", token, *laps, want)
		}
		fmt.Printf("ring: token %d after %d laps of %d ranks: correct (%.1f µs per hop)\n",
			token, *laps, n, float64(time.Since(start).Microseconds())/float64(*laps*n))
	}
	w.Report("laps", *laps)
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
