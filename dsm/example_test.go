package dsm_test

import (
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

// A one-rank region (what rank.Init makes without mpirun): the accessors
// work the same on every backend.
func ExampleMemory() {
	w, err := rank.Init() // a world of one rank: its region is plain memory
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	m := w.Memory()
	m.StoreInt64(0, 40)
	m.AddInt64(0, 2)
	m.WriteAt([]byte("shared"), 4096)
	buf := make([]byte, 6)
	m.ReadAt(buf, 4096)
	fmt.Println(m.LoadInt64(0), string(buf), m.Home(1), m.Backend())
	// Output: 42 shared 0 local
}

// Alloc places arrays in the region without hand-computed offsets: every
// rank that makes the same calls in the same order gets the same offsets.
func ExampleAlloc() {
	w, err := rank.Init() // a world of one rank: its region is plain memory
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	m := w.Memory()
	grid, err := dsm.Alloc[float64](m, 100*100)
	if err != nil {
		log.Fatal(err)
	}
	hist, err := dsm.Alloc[int64](m, 16)
	if err != nil {
		log.Fatal(err)
	}
	grid[0], hist[15] = 1.5, 7
	fmt.Println(len(grid), len(hist), m.Allocated())
	_, err = dsm.Alloc[float64](m, m.Len()) // 8 bytes each: too many
	fmt.Println(err)
	// Output:
	// 10000 16 86016
	// dsm: Alloc of 67108864 float64 (536870912 bytes) does not fit: 67022848 of 67108864 bytes left
}
