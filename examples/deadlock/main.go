// deadlock is a program that hangs on purpose. Ranks pair up (0 with 1, 2
// with 3, ...; with an odd number of ranks the last one pairs with itself)
// to swap a message, and both ranks of a pair call Recv first: each waits
// for a message the other will only send after its own Recv returns, so
// nobody ever sends. Run it with a timeout to see how mpirun reports where
// every rank was waiting:
//
//	mpirun -np 2 -timeout 5s ./bin/deadlock
//
// With -fix the lower rank of a pair sends first and the upper one
// receives first, and the program finishes.
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	fix := flag.Bool("fix", false, "order the calls so that the exchange cannot deadlock")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r := w.Rank()
	partner := r ^ 1
	if partner >= w.Size() {
		partner = r
	}
	msg := []byte(fmt.Sprintf("greetings from rank %d", r))
	var got []byte
	if *fix && r <= partner {
		// Send first: the partner (which receives first) gets it.
		if err := w.Send(partner, 0, msg); err != nil {
			log.Fatal(err)
		}
		if got, err = w.Recv(partner, 0); err != nil {
			log.Fatal(err)
		}
	} else {
		// tutorial:begin deadlock
		// Without -fix both ranks of a pair are here: both wait forever...
		if got, err = w.Recv(partner, 0); err != nil {
			log.Fatal(err)
		}
		// ...so nobody ever gets here.
		if err := w.Send(partner, 0, msg); err != nil {
			log.Fatal(err)
		}
		// tutorial:end
	}
	fmt.Printf("deadlock: rank %d got %q: no deadlock\n", r, got)
	w.Report("partner", partner)
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
