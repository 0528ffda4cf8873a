// failure shows what happens when a call fails. Every rank but rank 0
// sends rank 0 a result; with -lose the last rank leaves the job without
// sending (as if it had crashed).
//
// By default errors are fatal, as MPI's MPI_ERRORS_ARE_FATAL: rank 0's
// Recv from the lost rank does not return; the rank prints the call and
// the cause, exits 1, and mpirun ends the job:
//
//	mpirun -np 3 ./bin/failure -lose
//
// With -return the program starts with rank.InitWith(rank.ErrorsReturn):
// the Recv returns a *rank.PeerError naming the lost rank, and rank 0
// carries on with the results it has:
//
//	mpirun -np 3 ./bin/failure -lose -return
//
// With -mismatch rank 1 calls Bcast while the others call Barrier: every
// rank is told at once, naming both calls.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/dsmexec/dsmexec/rank"
)

const tagResult = 1

func main() {
	lose := flag.Bool("lose", false, "the last rank leaves without sending its result")
	ret := flag.Bool("return", false, "start with rank.InitWith(rank.ErrorsReturn): failed calls return their error")
	mismatch := flag.Bool("mismatch", false, "rank 1 calls Bcast while the others call Barrier")
	flag.Parse()
	var opts []rank.Option
	if *ret {
		opts = append(opts, rank.ErrorsReturn)
	}
	w, err := rank.InitWith(opts...)
	if err != nil {
		log.Fatal(err)
	}
	r, size := w.Rank(), w.Size()
	if *mismatch {
		if r == 1 {
			_, err = w.Bcast(0, []byte("settings"))
		} else {
			err = w.Barrier()
		}
		if err != nil { // only with -return: by default the call did not return
			log.Fatalf("failure: rank %d: %v", r, err)
		}
		fmt.Printf("failure: rank %d: no mismatch\n", r)
		return
	}
	lost := -1
	if *lose && size > 1 {
		lost = size - 1
	}
	if r == lost {
		os.Exit(0) // gone, without a word
	}
	if r != 0 {
		if err := rank.SendSlice(w, 0, tagResult, []int{r * r}); err != nil {
			log.Fatal(err)
		}
		if err := w.Finalize(); err != nil && lost < 0 {
			log.Fatal(err)
		}
		return
	}
	sum, got := 0, 0
	// tutorial:begin errorsreturn
	for q := 1; q < size; q++ {
		v, _, err := rank.RecvSlice[int](w, q, tagResult)
		var pe *rank.PeerError
		if errors.As(err, &pe) { // only with ErrorsReturn: else Recv did not return
			fmt.Printf("failure: lost rank %d (%v); carrying on without its result\n", pe.Rank, err)
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		sum += v[0]
		got++
	}
	// tutorial:end
	want := 0
	for q := 1; q < size; q++ {
		if q != lost {
			want += q * q
		}
	}
	if sum != want || got != size-1-min(lost+1, 1) {
		log.Fatalf("failure: %d results adding up to %d, want %d", got, sum, want)
	}
	fmt.Printf("failure: %d of %d results, sum %d: correct\n", got, size-1, sum)
	// Finalize waits for every rank; a lost one makes it fail, which
	// with ErrorsReturn is returned like any other error.
	if err := w.Finalize(); err != nil && lost < 0 {
		log.Fatal(err)
	}
}
