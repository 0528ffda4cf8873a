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
	if need := 3 * nn * 8; need > m.Len() {
		log.Fatalf("matmul: needs %d bytes of shared memory, have %d (mpirun -dsm-size)", need, m.Len())
	}
	// Page-align each matrix so A and B pages are only ever read by others.
	ps := m.PageSize()
	align := func(off int) int { return (off + ps - 1) / ps * ps }
	offA := 0
	offB := align(offA + nn*8)
	offC := align(offB + nn*8)
	a := dsm.Slice[float64](m, offA, nn)
	b := dsm.Slice[float64](m, offB, nn)
	c := dsm.Slice[float64](m, offC, nn)
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
	w.Report("rows", fmt.Sprintf("%d-%d", lo, hi-1))
	w.Report("compute", elapsed)
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
