// fsprog makes false sharing on purpose, for mpirun's tests: every rank
// adds to its own int64 of page 0 (rank r at offset 8r), n times with a
// barrier after each, so the page travels between the ranks although no
// byte is written by two. `fsprog N abort`: then rank 0 calls Abort(1)
// (the others wait in a Recv), for the trace of a rank that fails.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	w, err := rank.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer w.Finalize()
	n := 300
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	m := w.Memory()
	for range n {
		m.AddInt64(8*w.Rank(), 1)
		if err := w.Barrier(); err != nil { // the ranks take turns: the page moves every time
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if len(os.Args) > 2 && os.Args[2] == "abort" {
		if w.Rank() == 0 {
			w.Abort(1)
		}
		w.Recv(0, 0)
	}
	if err := w.Barrier(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if w.Rank() == 0 {
		for r := range w.Size() {
			if v := m.LoadInt64(8 * r); v != int64(n) {
				fmt.Printf("rank %d's counter is %d, want %d\n", r, v, n)
				os.Exit(1)
			}
		}
		fmt.Println("fsprog: done")
	}
}
