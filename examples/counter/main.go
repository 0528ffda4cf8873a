// counter increments shared counters from every rank at once: one protected
// by a distributed Mutex, one with sync/atomic, both on the same page, and
// checks the totals are exact (the original C system lost up to 4% of them).
//
//	mpirun -np 4 ./bin/counter -n 2000
//
// With -accessors it uses Memory.LoadInt64/StoreInt64/AddInt64 instead of
// plain loads, stores and sync/atomic: that version also runs on the
// mprotect/SIGSEGV backend (DSMEXEC_FAULT=sigsegv).
package main

import (
	"flag"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	n := flag.Int("n", 2000, "increments of each counter per rank")
	accessors := flag.Bool("accessors", false, "use Memory accessor methods (works on every backend)")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	m := w.Memory()
	const lockedOff, atomicOff = 0, 8 // both on page 0
	mu := m.Mutex(0)
	start := time.Now()
	if *accessors {
		for i := 0; i < *n; i++ {
			mu.Lock()
			m.StoreInt64(lockedOff, m.LoadInt64(lockedOff)+1)
			mu.Unlock()
			m.AddInt64(atomicOff, 1)
		}
	} else {
		c := dsm.Slice[int64](m, 0, 2)
		for i := 0; i < *n; i++ {
			mu.Lock()
			c[0]++ // a plain read-modify-write, safe under the lock
			mu.Unlock()
			atomic.AddInt64(&c[1], 1)
		}
	}
	elapsed := time.Since(start)
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	locked, atomics := m.LoadInt64(lockedOff), m.LoadInt64(atomicOff)
	want := int64(*n * w.Size())
	w.Report("time", elapsed)
	w.Report("per op", elapsed/time.Duration(2**n))
	if w.Rank() == 0 {
		fmt.Printf("counter: locked %d, atomic %d, want %d each (%d ranks × %d)\n", locked, atomics, want, w.Size(), *n)
	}
	if locked != want || atomics != want {
		log.Fatalf("counter: rank %d sees locked=%d atomic=%d, want %d", w.Rank(), locked, atomics, want)
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}
