// heat solves the 2-D heat equation on an n×n plate whose top edge is held
// at 100 degrees and the other edges at 0, with the explicit 5-point scheme.
// The rows are split among the ranks; each rank keeps its rows in private
// memory plus one "ghost" row above and below, and before every step it
// swaps its edge rows with its neighbours (halo exchange). Every -check
// steps an Allreduce(Max) of the largest change decides, on every rank
// alike, whether the plate has settled. Rank 0 gathers the plate and checks
// it against a serial computation, bit for bit.
//
//	mpirun -np 4 ./bin/heat -n 48 -tol 0.02
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

// Tags say which way a row travels, so the two rows a rank gets from its
// neighbours each step can never be confused (with two ranks, the rank
// above and the rank below can be the same).
const (
	tagUp   = 1 // a rank's first row, going to the rank above (r-1)
	tagDown = 2 // a rank's last row, going to the rank below (r+1)
)

// kappa is the diffusion number; the scheme is stable for kappa ≤ 0.25.
const kappa = 0.2

// initRows sets rows [lo, hi) of the plate into g, whose row 0 is global
// row lo.
func initRows(g []float64, n, lo, hi int) {
	for i := lo; i < hi; i++ {
		for j := 0; j < n; j++ {
			v := 0.0
			if i == 0 {
				v = 100
			}
			g[(i-lo)*n+j] = v
		}
	}
}

// step updates rows [from, to) of dst from src (rows from-1..to of src are
// read) and returns the largest change. Both the ranks and the serial check
// run this one function, so they compute the same bits.
func step(dst, src []float64, n, from, to int) float64 {
	var most float64
	for i := from; i < to; i++ {
		for j := 1; j < n-1; j++ {
			c := src[i*n+j]
			v := c + kappa*(src[(i-1)*n+j]+src[(i+1)*n+j]+src[i*n+j-1]+src[i*n+j+1]-4*c)
			dst[i*n+j] = v
			most = max(most, math.Abs(v-c))
		}
	}
	return most
}

// recvRow receives a row of len(row) cells from rank `from` into row.
func recvRow(w rank.Communicator, from, tag int, row []float64) error {
	got, _, err := rank.RecvSlice[float64](w, from, tag)
	if err != nil {
		return err
	}
	if len(got) != len(row) {
		return fmt.Errorf("heat: got a row of %d cells from rank %d, want %d", len(got), from, len(row))
	}
	copy(row, got)
	return nil
}

// exchange swaps edge rows with the neighbours. u holds this rank's rows
// in local rows 1..k and the ghosts in rows 0 and k+1. Even ranks send
// then receive, odd ranks receive then send: a pair of neighbours is always
// one even and one odd rank, so this order cannot deadlock even where Send
// waits for the matching Recv (as MPI's may for large messages).
func exchange(w rank.Communicator, u []float64, n, k, r, size int) (msgs int, err error) {
	up, down := r-1, r+1
	send := func() error {
		if up >= 0 {
			if err := rank.SendSlice(w, up, tagUp, u[1*n:2*n]); err != nil {
				return err
			}
			msgs++
		}
		if down < size {
			if err := rank.SendSlice(w, down, tagDown, u[k*n:(k+1)*n]); err != nil {
				return err
			}
			msgs++
		}
		return nil
	}
	recv := func() error {
		if up >= 0 {
			if err := recvRow(w, up, tagDown, u[0:n]); err != nil {
				return err
			}
		}
		if down < size {
			if err := recvRow(w, down, tagUp, u[(k+1)*n:(k+2)*n]); err != nil {
				return err
			}
		}
		return nil
	}
	first, second := send, recv
	if r%2 == 1 {
		first, second = recv, send
	}
	if err := first(); err != nil {
		return msgs, err
	}
	return msgs, second()
}

func main() {
	n := flag.Int("n", 48, "plate dimension (rows and columns, edges included)")
	maxSteps := flag.Int("steps", 2000, "most steps")
	tol := flag.Float64("tol", 0.02, "stop once no cell changes by more than this in a step")
	check := flag.Int("check", 10, "steps between convergence checks (an Allreduce)")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	if *n < 3 || *n < size || *check < 1 {
		log.Fatalf("heat: need -n ≥ 3 and ≥ the number of ranks (%d), and -check ≥ 1", size)
	}
	lo, hi := r**n/size, (r+1)**n/size
	k := hi - lo
	// Local rows 1..k are global rows lo..hi-1; rows 0 and k+1 are ghosts.
	// Global rows 0 and n-1 are the fixed edges: never updated.
	u := [2][]float64{make([]float64, (k+2)*(*n)), make([]float64, (k+2)*(*n))}
	initRows(u[0][*n:], *n, lo, hi)
	initRows(u[1][*n:], *n, lo, hi)
	from, to := 1, k+1
	if lo == 0 {
		from = 2
	}
	if hi == *n {
		to = k
	}

	start := time.Now()
	msgs, iters, cur := 0, 0, 0
	for iters < *maxSteps {
		m, err := exchange(w, u[cur], *n, k, r, size)
		if err != nil {
			log.Fatal(err)
		}
		msgs += m
		change := step(u[1-cur], u[cur], *n, from, to)
		cur = 1 - cur
		iters++
		if iters%*check == 0 {
			most, err := rank.Allreduce(w, []float64{change}, rank.Max)
			if err != nil {
				log.Fatal(err)
			}
			if most[0] <= *tol {
				break
			}
		}
	}
	elapsed := time.Since(start)
	w.Report("rows", fmt.Sprintf("%d-%d", lo, hi-1))
	w.Report("halo msgs", msgs)
	w.Report("time", elapsed)

	got, err := rank.GatherSlice(w, 0, u[cur][*n:(k+1)**n]) // the whole plate, on rank 0
	if err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		s := [2][]float64{make([]float64, *n**n), make([]float64, *n**n)}
		initRows(s[0], *n, 0, *n)
		initRows(s[1], *n, 0, *n)
		for it := 0; it < iters; it++ {
			step(s[(it+1)%2], s[it%2], *n, 1, *n-1)
		}
		want := s[iters%2]
		var sum float64
		for i := range want {
			if got[i] != want[i] || math.IsNaN(got[i]) {
				log.Fatalf("heat: cell (%d,%d) = %v, serial %v", i / *n, i%*n, got[i], want[i])
			}
			sum += got[i]
		}
		fmt.Printf("heat: %dx%d on %d rank%s, %d iterations in %v: equals the serial result bit for bit (mean %.6g)\n",
			*n, *n, size, plural(size), iters, elapsed.Round(time.Microsecond), sum/float64(len(want)))
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
