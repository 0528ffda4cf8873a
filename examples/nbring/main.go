// nbring is the non-blocking ring: every rank passes a message to its right
// neighbour and gets one from its left neighbour at the same time, N-1
// times, so every message travels once around the ring and every rank sees
// every rank's message (an "allgather by hand").
//
// Each step posts the receive with Irecv and the send with Isend, which
// both return at once, then waits for both with Waitall. No rank has to
// go first: whatever order the ranks reach the step in, the exchange
// cannot deadlock, and the rank could compute while the messages travel.
//
//	mpirun -np 4 ./bin/nbring
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/rank"
)

func greeting(r int) string { return fmt.Sprintf("hello from rank %d", r) }

func main() {
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	left, right := (r+size-1)%size, (r+1)%size

	got := make([]string, size) // got[q] is rank q's greeting
	got[r] = greeting(r)
	msg := []byte(got[r])
	// tutorial:begin nbring
	for step := 1; step < size; step++ {
		recv := w.Irecv(left, step)       // post the receive first...
		send := w.Isend(right, step, msg) // ...then send; neither blocks
		if err := rank.Waitall(recv, send); err != nil {
			log.Fatal(err)
		}
		msg = recv.Bytes() // pass on, next step, what came from the left
		got[(r-step+size)%size] = string(msg)
	}
	// tutorial:end

	for q := range size {
		if got[q] != greeting(q) {
			log.Fatalf("nbring: rank %d has %q from rank %d, want %q", r, got[q], q, greeting(q))
		}
	}
	fmt.Printf("nbring: rank %d got every rank's greeting in %d step%s (last: %q)\n", r, size-1, plural(size-1), got[(r+1)%size])
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		fmt.Printf("nbring: all %d ranks hold all %d greetings after %d step%s of Isend, Irecv and Waitall: correct\n", size, size, size-1, plural(size-1))
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
