// randomwalk moves walkers on a ring of cells split among the ranks: each
// rank owns a stretch of cells and moves the walkers on it one step left or
// right at a time. A walker that steps off the stretch is sent to the
// neighbouring rank, so every round each rank sends its neighbours a list
// of walkers whose length nobody knows in advance (possibly empty). Rounds
// go on until every walker has taken all its steps; an Allreduce of the
// walkers still moving tells every rank when to stop.
//
// Each walker carries its own random generator, so where it ends up does
// not depend on the number of ranks: rank 0 checks the walkers against a
// serial walk, and an Allreduce checks that none was lost or duplicated.
//
//	mpirun -np 4 ./bin/randomwalk -walkers 2000 -cells 700 -steps 100
package main

import (
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

// Tags say which way walkers travel: with two ranks the left and the right
// neighbour are the same rank, and the two lists must not be confused.
const (
	tagLeft  = 1
	tagRight = 2
)

// A walker travels in messages as it is: SendSlice and RecvSlice take
// any struct of fixed-size numbers (its fields exported, as
// encoding/binary needs), 32 bytes each.
type walker struct {
	ID   int64
	Pos  int64  // cell, 0..cells-1
	Left int64  // steps still to take
	RNG  uint64 // splitmix64 state: the walker's own random generator
}

// next advances a splitmix64 generator.
func next(s *uint64) uint64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// newWalker places walker id at its starting cell.
func newWalker(id int64, seed uint64, cells, steps int64) walker {
	w := walker{ID: id, Left: steps, RNG: seed*0x2545f4914f6cdd1d + uint64(id)}
	w.Pos = int64(next(&w.RNG) % uint64(cells))
	return w
}

// move takes one step; the ring wraps around.
func (w *walker) move(cells int64) {
	if next(&w.RNG)>>63 == 0 {
		w.Pos = (w.Pos + cells - 1) % cells
	} else {
		w.Pos = (w.Pos + 1) % cells
	}
	w.Left--
}

func main() {
	total := flag.Int64("walkers", 2000, "walkers in all")
	cells := flag.Int64("cells", 700, "cells on the ring (split among the ranks)")
	steps := flag.Int64("steps", 100, "steps each walker takes")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	if *total < 0 || *steps < 0 || *cells < int64(size) {
		log.Fatalf("randomwalk: need -walkers ≥ 0, -steps ≥ 0 and -cells ≥ the number of ranks (%d)", size)
	}
	// This rank owns cells [lo, hi); its neighbours own the cells on
	// either side (the ring wraps around).
	lo, hi := int64(r)**cells/int64(size), int64(r+1)**cells/int64(size)
	mine := func(cell int64) bool { return lo <= cell && cell < hi }
	leftRank, rightRank := (r+size-1)%size, (r+1)%size

	// Every rank makes every walker and keeps those that start on its cells.
	var active, done []walker
	for id := range *total {
		wk := newWalker(id, *seed, *cells, *steps)
		if mine(wk.Pos) {
			active = append(active, wk)
		}
	}

	start := time.Now()
	handled, sent, rounds := 0, 0, 0
	for {
		rounds++
		handled += len(active)
		var toLeft, toRight []walker
		for _, wk := range active {
			for wk.Left > 0 && mine(wk.Pos) {
				wk.move(*cells)
			}
			// A step is ±1, so a walker that left is on the cell just
			// before lo or the cell at hi.
			switch {
			case mine(wk.Pos):
				done = append(done, wk) // no steps left
			case wk.Pos == (lo+*cells-1)%*cells:
				toLeft = append(toLeft, wk)
			default:
				toRight = append(toRight, wk)
			}
		}
		sent += len(toLeft) + len(toRight)
		// Both lists go out before anything is received: Send returns once
		// the bytes are handed to the connection, it does not wait for the
		// matching Recv, so this cannot deadlock in dsmexec. (In MPI a
		// large Send may wait; there you would use MPI_Sendrecv.)
		// tutorial:begin walkers
		if err := rank.SendSlice(w, leftRank, tagLeft, toLeft); err != nil {
			log.Fatal(err)
		}
		if err := rank.SendSlice(w, rightRank, tagRight, toRight); err != nil {
			log.Fatal(err)
		}
		fromRight, _, err := rank.RecvSlice[walker](w, rightRank, tagLeft)
		if err != nil {
			log.Fatal(err)
		}
		fromLeft, _, err := rank.RecvSlice[walker](w, leftRank, tagRight)
		if err != nil {
			log.Fatal(err)
		}
		active = append(fromRight, fromLeft...)
		// tutorial:end
		for _, wk := range active {
			if !mine(wk.Pos) {
				log.Fatalf("randomwalk: rank %d (cells %d-%d) got walker %d at cell %d", r, lo, hi-1, wk.ID, wk.Pos)
			}
		}
		// Walkers that arrived with no steps left are done here.
		moving := active[:0]
		for _, wk := range active {
			if wk.Left > 0 {
				moving = append(moving, wk)
			} else {
				done = append(done, wk)
			}
		}
		active = moving
		still, err := rank.Allreduce(w, []int64{int64(len(active))}, rank.Sum)
		if err != nil {
			log.Fatal(err)
		}
		if still[0] == 0 {
			break
		}
	}
	elapsed := time.Since(start)
	w.Report("handled", handled)
	w.Report("sent", sent)
	w.Report("finished here", len(done))

	// Conservation: as many walkers at the end as at the start, each once.
	var ids, pos int64
	for _, wk := range done {
		ids += wk.ID
		pos += wk.Pos
	}
	sums, err := rank.Allreduce(w, []int64{int64(len(done)), ids, pos}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	if sums[0] != *total || sums[1] != *total*(*total-1)/2 {
		log.Fatalf("randomwalk: rank %d: %d walkers with id sum %d at the end, want %d with id sum %d",
			r, sums[0], sums[1], *total, *total*(*total-1)/2)
	}
	if r == 0 {
		var want int64
		for id := range *total {
			wk := newWalker(id, *seed, *cells, *steps)
			for wk.Left > 0 {
				wk.move(*cells)
			}
			want += wk.Pos
		}
		if sums[2] != want {
			log.Fatalf("randomwalk: final cells add up to %d, the serial walk's to %d", sums[2], want)
		}
		fmt.Printf("randomwalk: %d walkers × %d steps on %d cells split among %d rank%s: %d round%s in %v\n",
			*total, *steps, *cells, size, plural(size), rounds, plural(rounds), elapsed.Round(time.Microsecond))
		fmt.Printf("randomwalk: all %d walkers finished, none lost or duplicated; final cells add up to %d (serial %d): correct\n",
			sums[0], sums[2], want)
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
