// alloc places two arrays in the shared region with dsm.Alloc instead of
// hand-computed offsets. x holds n numbers, each rank writes its block of
// x; after a barrier each rank computes its block of y, the sum of every x
// with its two neighbours (x[-1] and x[n] count as 0), reading across the
// block edges — whatever rank wrote them. Rank 0 checks y against a serial
// computation.
//
// Every rank calls Alloc in the same order with the same sizes, so every
// rank gets the same offsets: no message is needed. Each array starts on a
// page of its own, so x and y never share a page.
//
//	mpirun -np 4 ./bin/alloc -n 100000
package main

import (
	"flag"
	"fmt"
	"log"
	"unsafe"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

// xAt is the value rank code writes at x[i].
func xAt(i int) float64 { return float64(i%97) * 0.5 }

func main() {
	n := flag.Int("n", 100000, "elements of each array")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	m := w.Memory()
	if m.Backend() == "sigsegv" {
		log.Fatal("alloc: plain loads and stores of shared memory need the userfaultfd backend")
	}

	// tutorial:begin alloc
	x, err := dsm.Alloc[float64](m, *n)
	if err != nil {
		log.Fatal(err) // the region is too small: mpirun -dsm-size
	}
	y, err := dsm.Alloc[float64](m, *n)
	if err != nil {
		log.Fatal(err)
	}
	lo, hi := r**n/size, (r+1)**n/size // this rank's block
	for i := lo; i < hi; i++ {
		x[i] = xAt(i)
	}
	if err := w.Barrier(); err != nil { // every block of x is written
		log.Fatal(err)
	}
	for i := lo; i < hi; i++ {
		y[i] = x[i]
		if i > 0 {
			y[i] += x[i-1] // may be the rank before's
		}
		if i < *n-1 {
			y[i] += x[i+1] // may be the rank after's
		}
	}
	if err := w.Barrier(); err != nil { // every block of y is written
		log.Fatal(err)
	}
	// tutorial:end

	base := uintptr(unsafe.Pointer(&m.Bytes()[0]))
	offX := int(uintptr(unsafe.Pointer(&x[0])) - base)
	offY := int(uintptr(unsafe.Pointer(&y[0])) - base)
	w.Report("block", fmt.Sprintf("%d-%d", lo, hi-1))
	// Every rank got the same offsets: the largest equals the smallest.
	most, err := rank.Allreduce(w, []int{offX, offY, -offX, -offY}, rank.Max)
	if err != nil {
		log.Fatal(err)
	}
	if most[0] != offX || most[1] != offY || -most[2] != offX || -most[3] != offY {
		log.Fatalf("alloc: rank %d has x at %d and y at %d; the ranks' offsets range over x %d..%d, y %d..%d",
			r, offX, offY, -most[2], most[0], -most[3], most[1])
	}
	if r == 0 {
		var sum float64
		for i := range *n {
			want := xAt(i)
			if i > 0 {
				want += xAt(i - 1)
			}
			if i < *n-1 {
				want += xAt(i + 1)
			}
			if y[i] != want {
				log.Fatalf("alloc: y[%d] = %v, want %v", i, y[i], want)
			}
			sum += y[i]
		}
		fmt.Printf("alloc: x at offset %d, y at offset %d on every rank (page size %d, %d bytes allocated)\n",
			offX, offY, m.PageSize(), m.Allocated())
		fmt.Printf("alloc: %d elements on %d rank%s, sum of y %.6g: equals the serial result\n", *n, size, plural(size), sum)
	}
	if offX%m.PageSize() != 0 || offY%m.PageSize() != 0 {
		log.Fatalf("alloc: rank %d: offsets %d and %d are not page-aligned", r, offX, offY)
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
