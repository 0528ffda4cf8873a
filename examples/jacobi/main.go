// jacobi relaxes a 2-D grid with the 5-point stencil. Both grids live in
// shared memory; each rank updates a block of rows, and a barrier separates
// iterations. Rows are not page-aligned, so pages at block edges are written
// by two ranks (false sharing): the pages bounce, and the result must still
// equal the serial one bit for bit.
//
//	mpirun -np 4 ./bin/jacobi -n 100 -iters 50
package main

import (
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

func initGrid(g []float64, n int) {
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v := 0.0
			if i == 0 {
				v = 100 // hot top edge
			} else if j == 0 || j == n-1 || i == n-1 {
				v = float64(j % 7)
			}
			g[i*n+j] = v
		}
	}
}

func step(dst, src []float64, n, lo, hi int) {
	for i := max(lo, 1); i < min(hi, n-1); i++ {
		for j := 1; j < n-1; j++ {
			dst[i*n+j] = 0.25 * (src[(i-1)*n+j] + src[(i+1)*n+j] + src[i*n+j-1] + src[i*n+j+1])
		}
	}
}

func main() {
	n := flag.Int("n", 100, "grid dimension")
	iters := flag.Int("iters", 50, "iterations")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	m := w.Memory()
	nn := *n * *n
	var g [2][]float64 // the two grids: iteration it reads g[it%2], writes the other
	for i := range g {
		if g[i], err = dsm.Alloc[float64](m, nn); err != nil {
			log.Fatalf("jacobi: %v (mpirun -dsm-size)", err)
		}
	}
	if w.Rank() == 0 {
		initGrid(g[0], *n)
		initGrid(g[1], *n)
	}
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	lo, hi := w.Rank()**n/w.Size(), (w.Rank()+1)**n/w.Size()
	start := time.Now()
	for it := 0; it < *iters; it++ {
		step(g[(it+1)%2], g[it%2], *n, lo, hi)
		if err := w.Barrier(); err != nil {
			log.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	w.Report("rows", fmt.Sprintf("%d-%d", lo, hi-1))
	w.Report("time", elapsed)
	if w.Rank() == 0 {
		s := [2][]float64{make([]float64, nn), make([]float64, nn)}
		initGrid(s[0], *n)
		initGrid(s[1], *n)
		for it := 0; it < *iters; it++ {
			step(s[(it+1)%2], s[it%2], *n, 0, *n)
		}
		res, ser := g[*iters%2], s[*iters%2]
		var sum float64
		for i := range ser {
			sum += res[i]
			if res[i] != ser[i] {
				log.Fatalf("jacobi: cell (%d,%d) = %v, serial %v", i / *n, i%*n, res[i], ser[i])
			}
		}
		fmt.Printf("jacobi: %dx%d, %d iterations on %d ranks: equals the serial result (sum %.6g)\n", *n, *n, *iters, w.Size(), sum)
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
