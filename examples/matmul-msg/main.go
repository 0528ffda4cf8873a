// matmul-msg computes the same C = A×B as the shared-memory matmul example,
// with messages instead: rank 0 fills A and B, Scatter hands every rank its
// block of rows of A, Bcast gives every rank all of B, each rank computes
// its rows of C in private memory, and Gather brings the blocks of C back
// to rank 0, which checks them against a serial product. The matrices and
// the row blocks are matmul's, so the checksums are the same.
//
//	mpirun -np 4 ./bin/matmul-msg -n 128
//
// Compare with `mpirun -np 4 -summary ./bin/matmul -n 128`: there the data
// moves as 4 KiB pages on page faults (the summary's "bytes in/out"); here
// it moves in three collective calls, whose payload each rank reports in
// the column "msg bytes in/out".
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"time"

	"github.com/dsmexec/dsmexec/rank"
)

// fill is matmul's.
func fill(a, b []float64, n int) {
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			a[i*n+j] = float64((i*7+j*3)%11) - 5
			b[i*n+j] = float64((i*5+j*13)%17) / 4
		}
	}
}

// multiply computes rows [0, rows) of c = a×b, where a holds those rows
// only and b is n×n.
func multiply(c, a, b []float64, n, rows int) {
	for i := 0; i < rows; i++ {
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
	r, size := w.Rank(), w.Size()
	nn := *n * *n
	// Rank i gets rows [rows(i), rows(i+1)), as in matmul.
	rows := func(i int) int { return i * *n / size }

	var a, b []float64
	var parts [][]byte
	if r == 0 {
		a, b = make([]float64, nn), make([]float64, nn)
		fill(a, b, *n)
		parts = make([][]byte, size)
		for i := range size {
			parts[i] = rank.Encode(a[rows(i)**n : rows(i+1)**n])
		}
	}
	// in and out count the matrix bytes this rank gets from and hands over
	// for other ranks (payload only: the collectives' binomial trees also
	// forward blocks through intermediate ranks and add small headers).
	var in, out int
	start := time.Now()
	// The blocks differ in size when n is not a multiple of the number of
	// ranks, so the scatter is the byte one (like MPI_Scatterv), each
	// block encoded; B is the same for everyone: BcastSlice.
	mine, err := w.Scatter(0, parts)
	if err != nil {
		log.Fatal(err)
	}
	myA, err := rank.Decode[float64](mine)
	if err != nil {
		log.Fatal(err)
	}
	myB, err := rank.BcastSlice(w, 0, b)
	if err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		for i := 1; i < size; i++ {
			out += len(parts[i]) + 8*len(myB)
		}
	} else {
		in += len(mine) + 8*len(myB)
	}
	distributed := time.Now()

	myRows := rows(r+1) - rows(r)
	c := make([]float64, myRows**n)
	multiply(c, myA, myB, *n, myRows)
	computed := time.Now()

	cc, err := rank.GatherSlice(w, 0, c) // the blocks of C, in rank order, on rank 0
	if err != nil {
		log.Fatal(err)
	}
	end := time.Now()
	if r == 0 {
		in += 8 * (len(cc) - len(c))
	} else {
		out += len(c) * 8
	}
	// The columns match the DSM summary columns of the shared-memory matmul.
	if rows(r) < rows(r+1) {
		w.Report("rows", fmt.Sprintf("%d-%d", rows(r), rows(r+1)-1))
	} else {
		w.Report("rows", "none")
	}
	w.Report("compute", computed.Sub(distributed))
	w.Report("msg bytes in/out", human(int64(in))+"/"+human(int64(out)))

	// Every rank's byte counts, summed on rank 0 for the comparison line.
	moved, err := rank.Reduce(w, 0, []int64{int64(in)}, rank.Sum)
	if err != nil {
		log.Fatal(err)
	}
	if r == 0 {
		pc := make([]float64, nn)
		multiply(pc, a, b, *n, *n)
		var sum, want float64
		for i := range pc {
			sum += cc[i]
			want += pc[i]
			if cc[i] != pc[i] {
				log.Fatalf("matmul-msg: C[%d][%d] = %g, want %g", i / *n, i%*n, cc[i], pc[i])
			}
		}
		if math.IsNaN(sum) {
			log.Fatal("matmul-msg: NaN")
		}
		fmt.Printf("matmul-msg: %dx%d on %d ranks, checksum %.6g (serial %.6g): correct\n", *n, *n, size, sum, want)
		fmt.Printf("matmul-msg: %v in all: scatter+bcast %v, compute %v, gather %v\n",
			end.Sub(start).Round(time.Microsecond), distributed.Sub(start).Round(time.Microsecond),
			computed.Sub(distributed).Round(time.Microsecond), end.Sub(computed).Round(time.Microsecond))
		fmt.Printf("matmul-msg: Scatter, Bcast and Gather moved %s of matrix data between ranks (rows of A and all of B out, rows of C back)\n",
			human(moved[0]))
		fmt.Printf("matmul-msg: compare the shared-memory version's page traffic: mpirun -np %d -summary bin/matmul -n %d (column bytes in/out)\n",
			size, *n)
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}

func human(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}
