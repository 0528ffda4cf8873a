// dlprog is the deadlock detector's test program: each mode is a job that
// deadlocks in a known way, or one that must never be called deadlocked.
//
//	dlprog recv2     ranks 0 and 1 both Recv from the other first
//	dlprog cycle3    rank r Recv from r+1 (mod 3): a 3-rank cycle
//	dlprog barrier   rank 0 waits in Recv(from 1, tag 5), the others in Barrier
//	dlprog missing   rank 0 sends one message, rank 1 receives two
//	dlprog compute D rank 0 computes for D while the others wait in Recv from it
//	dlprog helper D  every rank's main goroutine waits in Recv from its left
//	                 neighbour while a goroutine of its own computes for D
//	                 and then sends to its right one
//	dlprog timer D   the same, the goroutine waiting <-time.After(D) instead
//	dlprog lock      rank 0 takes dsm lock 0, tells rank 1 and waits in Recv
//	                 from it; rank 1 waits in Lock(0)
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	w, err := rank.Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, n := w.Rank(), w.Size()
	must := func(err error) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "rank %d: %v\n", r, err)
			os.Exit(1)
		}
	}
	arg := func() time.Duration {
		d, err := time.ParseDuration(os.Args[2])
		must(err)
		return d
	}
	switch os.Args[1] {
	case "recv2":
		if r < 2 {
			_, err := w.Recv(1-r, 0)
			must(err)
		}
	case "cycle3":
		_, err := w.Recv((r+1)%n, 0)
		must(err)
	case "barrier":
		if r == 0 {
			_, err := w.Recv(1, 5)
			must(err)
		} else {
			must(w.Barrier())
		}
	case "lock":
		mu := w.Memory().Mutex(0)
		if r == 0 {
			mu.Lock()
			must(w.Send(1, 0, []byte("locked")))
			_, err := w.Recv(1, 0)
			must(err)
		} else if r == 1 {
			_, err := w.Recv(0, 0)
			must(err)
			mu.Lock()
		}
	case "missing":
		if r == 0 {
			must(w.Send(1, 0, []byte("one")))
		} else if r == 1 {
			for i := 0; i < 2; i++ {
				_, err := w.Recv(0, 0)
				must(err)
			}
		}
	case "compute":
		d := arg()
		if r == 0 {
			spin(d)
			for p := 1; p < n; p++ {
				must(w.Send(p, 0, []byte("done")))
			}
		} else {
			_, err := w.Recv(0, 0)
			must(err)
		}
	case "helper":
		d := arg()
		sent := make(chan error, 1)
		go func() {
			spin(d)
			sent <- w.Send((r+1)%n, 0, []byte("hi"))
		}()
		_, err := w.Recv((r+n-1)%n, 0)
		must(err)
		must(<-sent)
	case "timer":
		d := arg()
		sent := make(chan error, 1)
		go func() {
			<-time.After(d)
			sent <- w.Send((r+1)%n, 0, []byte("hi"))
		}()
		_, err := w.Recv((r+n-1)%n, 0)
		must(err)
		must(<-sent)
	default:
		fmt.Fprintf(os.Stderr, "dlprog: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
	fmt.Printf("rank %d: done\n", r)
	must(w.Finalize())
}

// spin computes (no dsmexec call, no sleep) for d.
func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := 1
	for time.Now().Before(end) {
		for i := 0; i < 1000; i++ {
			x = x*31 + i
		}
	}
	if x == 42 {
		fmt.Println(x)
	}
}
