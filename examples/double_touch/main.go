// double_touch is the original system's first program: every rank touches
// the same integer, which lives on one shared page, and prints what it sees.
// The page moves from rank to rank on page faults; no messages are written
// by the program.
//
//	mpirun -np 3 ./bin/double_touch
package main

import (
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, n := w.Rank(), w.Size()
	// tutorial:begin slice
	// One int64 at offset 0 of the shared region (on page 0, homed on rank 0).
	v := dsm.Slice[int64](w.Memory(), 0, 1)
	// tutorial:end

	// Plain loads and stores need the userfaultfd backend; where the
	// system forbids it (mprotect/SIGSEGV backend) use the accessors.
	m := w.Memory()
	plain := m.Backend() != "sigsegv"

	// Take turns: rank r adds r+1 while the others wait at a barrier.
	for turn := 0; turn < n; turn++ {
		if turn == r {
			if plain {
				// tutorial:begin touch
				v[0] += int64(r + 1) // an ordinary load and store: a read fault, then a write fault
				// tutorial:end
			} else {
				m.AddInt64(0, int64(r+1))
			}
		}
		if err := w.Barrier(); err != nil {
			log.Fatal(err)
		}
	}
	// Every rank reads the page: read-only copies everywhere.
	got := m.LoadInt64(0)
	if plain {
		got = v[0]
	}
	fmt.Printf("[Proc %d] integer value: %d\n", r, got)
	if want := int64(n * (n + 1) / 2); got != want {
		log.Fatalf("[Proc %d] integer value %d, want %d", r, got, want)
	}
	w.Report("value", got) // a column of mpirun's table, beside the page-fault counters
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
