// ring passes a token around the ranks K times with Send and Recv; every
// rank adds its rank number, and rank 0 checks the total at the end.
//
//	mpirun -np 4 ./bin/ring -laps 100
package main

import (
	"encoding/binary"
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
	buf := make([]byte, 8)
	var token uint64
	for lap := 0; lap < *laps; lap++ {
		if r == 0 {
			binary.LittleEndian.PutUint64(buf, token)
			if err := w.Send(next, tag, buf); err != nil {
				log.Fatal(err)
			}
		}
		b, err := w.Recv(prev, tag)
		if err != nil {
			log.Fatal(err)
		}
		token = binary.LittleEndian.Uint64(b)
		if r != 0 {
			token += uint64(r)
			binary.LittleEndian.PutUint64(buf, token)
			if err := w.Send(next, tag, buf); err != nil {
				log.Fatal(err)
			}
		}
	}
	if r == 0 {
		want := uint64(*laps) * uint64(n*(n-1)/2)
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
