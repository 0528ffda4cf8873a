// grid arranges the ranks in a grid of -cols columns (by default the
// smallest number of columns c with c*c ≥ N; the last row may be short)
// and splits the world twice: once into one communicator per row, once
// into one per column. Each rank holds one number (its rank squared); an
// Allreduce on its row communicator gives the row's sum and one on its
// column communicator the column's sum. Every rank checks both sums, its
// place in each communicator, and that WorldRank translates back.
//
//	mpirun -np 6 ./bin/grid
package main

import (
	"flag"
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/rank"
)

func main() {
	colsFlag := flag.Int("cols", 0, "columns of the grid (0: about √N)")
	flag.Parse()
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	r, size := w.Rank(), w.Size()
	cols := *colsFlag
	if cols <= 0 {
		for cols = 1; cols*cols < size; cols++ {
		}
	}
	value := r * r

	// tutorial:begin split
	row, col := r/cols, r%cols
	// Same color, same communicator; the key orders the ranks in it.
	rowComm, err := w.Split(row, col)
	if err != nil {
		log.Fatal(err)
	}
	colComm, err := w.Split(col, row)
	if err != nil {
		log.Fatal(err)
	}
	rowSum, err := rank.Allreduce(rowComm, []int{value}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	colSum, err := rank.Allreduce(colComm, []int{value}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	// tutorial:end

	// What the sums must be, computed from the grid's shape alone.
	wantRow, wantCol, rowLen, colLen := 0, 0, 0, 0
	for q := range size {
		if q/cols == row {
			wantRow += q * q
			rowLen++
		}
		if q%cols == col {
			wantCol += q * q
			colLen++
		}
	}
	switch {
	case rowSum[0] != wantRow || colSum[0] != wantCol:
		log.Fatalf("grid: rank %d (row %d, column %d): row sum %d, column sum %d, want %d and %d",
			r, row, col, rowSum[0], colSum[0], wantRow, wantCol)
	case rowComm.Rank() != col || rowComm.Size() != rowLen || colComm.Rank() != row || colComm.Size() != colLen:
		log.Fatalf("grid: rank %d: rank %d of %d in its row, %d of %d in its column; want %d of %d and %d of %d",
			r, rowComm.Rank(), rowComm.Size(), colComm.Rank(), colComm.Size(), col, rowLen, row, colLen)
	case rowComm.WorldRank(rowComm.Rank()) != r || colComm.WorldRank(colComm.Rank()) != r:
		log.Fatalf("grid: rank %d: WorldRank gives %d and %d", r, rowComm.WorldRank(rowComm.Rank()), colComm.WorldRank(colComm.Rank()))
	}
	fmt.Printf("grid: rank %d is (row %d, column %d): row sum %d, column sum %d\n", r, row, col, rowSum[0], colSum[0])
	w.Report("row/col", fmt.Sprintf("%d/%d", row, col))

	// Every rank's check passed once every rank reaches the barrier.
	if err := w.Barrier(); err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		rows := (size + cols - 1) / cols
		fmt.Printf("grid: %d rank%s in a grid of %d row%s × %d column%s: every row and column sum correct\n",
			size, plural(size), rows, plural(rows), cols, plural(cols))
	}
	if err := rowComm.Free(); err != nil {
		log.Fatal(err)
	}
	if err := colComm.Free(); err != nil {
		log.Fatal(err)
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
