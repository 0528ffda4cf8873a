// Command allreduce is the rank side of the allreduce figures in `make
// bench`: a float64 sum over every rank, timed for a small and a large
// vector. Rank 0 prints "BENCH allreduce.<elements>.mean_ns N".
//
//	mpirun -np 4 ./allreduce -small 1 -n 2000 -large 131072 -big 20
package main

import (
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/dsmexec/dsmexec/rank"
	"github.com/dsmexec/dsmexec/scripts/bench/collloop"
)

func main() {
	log.SetFlags(0)
	small := flag.Int("small", 1, "elements of the small vector (1 = 8 bytes)")
	n := flag.Int("n", 2000, "allreduces of the small vector")
	large := flag.Int("large", 1<<17, "elements of the large vector (131072 = 1 MiB)")
	big := flag.Int("big", 20, "allreduces of the large vector")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	for _, c := range []struct{ elems, iters int }{{*small, *n}, {*large, *big}} {
		d, err := run(w, c.elems, c.iters)
		if err != nil {
			log.Fatalf("allreduce: rank %d: %d elements: %v", w.Rank(), c.elems, err)
		}
		if w.Rank() == 0 {
			key := fmt.Sprintf("allreduce.%d.mean_ns", c.elems)
			fmt.Printf("BENCH %s %g\n", key, float64(d.Nanoseconds())/float64(c.iters))
			w.Report(fmt.Sprintf("allreduce %d B", 8*c.elems), d/time.Duration(c.iters))
		}
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}

// run times iters allreduces of elems float64s (after a few untimed ones)
// and checks every result: element i of rank r is r+i, so the sum is
// size*(size-1)/2 + size*i.
func run(w *rank.World, elems, iters int) (time.Duration, error) {
	v := make([]float64, elems)
	for i := range v {
		v[i] = float64(w.Rank() + i)
	}
	size := float64(w.Size())
	check := func(out []float64) error {
		if len(out) != elems {
			return fmt.Errorf("result has %d elements, want %d", len(out), elems)
		}
		for _, i := range []int{0, elems / 2, elems - 1} {
			if want := size*(size-1)/2 + size*float64(i); out[i] != want {
				return fmt.Errorf("element %d is %g, want %g", i, out[i], want)
			}
		}
		return nil
	}
	return collloop.Time(w, iters, func(i int) error {
		out, err := rank.Allreduce(w, v, rank.Sum)
		if err != nil {
			return err
		}
		if i < 0 || i == iters-1 {
			return check(out)
		}
		return nil
	})
}
