package dsm_test

import (
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

// The examples take the shared region from a world of one rank (rank.Init
// without mpirun): the calls are the same under mpirun -np N, where every
// rank sees the same bytes at the same offsets.

// The accessors work on every fault backend; Bytes is the region itself,
// for plain loads and stores (userfaultfd backend, or one rank).
func ExampleMemory() {
	w, err := rank.Init() // a world of one rank: its region is plain memory
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	m := w.Memory()
	m.StoreInt64(0, 40)
	m.AddInt64(0, 2)
	if _, err := m.WriteAt([]byte("shared"), 4096); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := m.ReadAt(buf, 4096); err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.LoadInt64(0), string(buf), string(m.Bytes()[4096:4102]), m.PageSize())
	// Output: 42 shared shared 4096
}

// Slice is a typed view of the region at a byte offset: ordinary Go loads
// and stores on it are loads and stores of shared memory.
func ExampleSlice() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	v := dsm.Slice[float64](w.Memory(), 8192, 4) // 4 float64 at offset 8192
	for i := range v {
		v[i] = float64(i) / 2
	}
	if err := w.Barrier(); err != nil { // writes before it are seen after it on every rank
		log.Fatal(err)
	}
	fmt.Println(v, w.Memory().LoadFloat64(8192+8))
	// Output: [0 0.5 1 1.5] 0.5
}

// A Mutex makes a read-modify-write of shared memory happen one rank at a
// time. Every rank names the lock by the same id.
func ExampleMutex() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	m := w.Memory()
	counter := dsm.Slice[int64](m, 0, 1)
	mu := m.Mutex(0)
	for range 3 {
		mu.Lock()
		counter[0]++
		mu.Unlock()
	}
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(counter[0]) // 3 on each of N ranks: 3N under mpirun -np N
	// Output: 3
}

// Alloc places arrays in the region without hand-computed offsets: every
// rank that makes the same calls in the same order gets the same offsets.
// Each array starts on a page of its own.
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
