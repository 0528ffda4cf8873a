// matmul computes C = A×B with A, B and C in shared memory: rank 0 fills A
// and B, every rank reads them (read-only copies spread to every rank) and
// writes its own block of rows of C; rank 0 checks C against a serial
// product computed in private memory.
//
//	mpirun -np 4 ./bin/matmul -n 128
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"time"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

func fill(a, b []float64, n int) {
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			a[i*n+j] = float64((i*7+j*3)%11) - 5
			b[i*n+j] = float64((i*5+j*13)%17) / 4
		}
	}
}

func multiply(c, a, b []float64, n, lo, hi int) {
	for i := lo; i < hi; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for k := 0; k < n; k++ {
				s += a[i*n+k] * b[k*n+j]
			}
			c[i*n+j] = s
		}
	}
}

func main() {
	n := flag.Int("n", 128, "matrix dimension")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	m := w.Memory()
	nn := *n * *n
	// Every rank allocates the three matrices in the same order, so every
	// rank gets the same offsets. Each starts on a page of its own: the
	// pages of A and B are only ever read by other ranks.
	var mats [3][]float64
	for i := range mats {
		if mats[i], err = dsm.Alloc[float64](m, nn); err != nil {
			log.Fatalf("matmul: %v (mpirun -dsm-size)", err)
		}
	}
	a, b, c := mats[0], mats[1], mats[2]
	if w.Rank() == 0 {
		fill(a, b, *n)
	}
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	lo, hi := w.Rank()**n/w.Size(), (w.Rank()+1)**n/w.Size()
	multiply(c, a, b, *n, lo, hi)
	elapsed := time.Since(start)
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	// tutorial:begin report
	w.Report("rows", fmt.Sprintf("%d-%d", lo, hi-1)) // a column "rows" in mpirun's table
	w.Report("compute", elapsed)                     // a time.Duration
	// tutorial:end
	if w.Rank() == 0 {
		pa, pb, pc := make([]float64, nn), make([]float64, nn), make([]float64, nn)
		fill(pa, pb, *n)
		multiply(pc, pa, pb, *n, 0, *n)
		var sum, want float64
		for i := range pc {
			sum += c[i]
			want += pc[i]
			if c[i] != pc[i] {
				log.Fatalf("matmul: C[%d][%d] = %g, want %g", i / *n, i%*n, c[i], pc[i])
			}
		}
		fmt.Printf("matmul: %dx%d on %d ranks, checksum %.6g (serial %.6g): correct\n", *n, *n, w.Size(), sum, want)
		if math.IsNaN(sum) {
			log.Fatal("matmul: NaN")
		}
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
