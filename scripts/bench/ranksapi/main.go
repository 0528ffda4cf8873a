//go:build benchapi

// Command ranksapi is the rank side of the `make bench` rows for the API of
// issue 9 (typed messages, non-blocking calls, Alltoall, Scan,
// ReduceScatter). It is built with -tags benchapi, so that `go build ./...`
// and `go vet ./...` pass while the API does not exist yet; the bench driver
// builds it and, when that fails, prints the rows as "n/a: needs the API of
// issue 9". Once the API is merged the tag may go.
//
//	mpirun -np 2 ./ranksapi typed -n 20000 -big 200
//	mpirun -np 2 ./ranksapi isend -n 20000
//	mpirun -np 8 ./ranksapi alltoall|scan|reducescatter -n 2000 -small 1 -large 16384 -big 20
//
// Results are "BENCH key value" lines printed by rank 0 (as scripts/bench/
// ranks and the C programs in scripts/bench/c, whose keys match).
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"time"

	"github.com/dsmexec/dsmexec/rank"
	"github.com/dsmexec/dsmexec/scripts/bench/collloop"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: ranksapi typed|isend|alltoall|scan|reducescatter [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	n := fs.Int("n", 2000, "calls (round trips) of the small size")
	big := fs.Int("big", 20, "calls (round trips) of the large size")
	small := fs.Int("small", 1, "collectives: float64s of the small size (per block for alltoall and reducescatter)")
	large := fs.Int("large", 1<<14, "collectives: float64s of the large size (per block for alltoall and reducescatter)")
	fs.Parse(args)

	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	switch mode {
	case "typed":
		err = typed(w, *n, *big)
	case "isend":
		err = isend(w, *n)
	case "alltoall", "scan", "reducescatter":
		for _, c := range []struct{ elems, iters int }{{*small, *n}, {*large, *big}} {
			var d time.Duration
			if d, err = collective(w, mode, c.elems, c.iters); err != nil {
				break
			}
			// The slowest rank's time counts: rank 0 alone would time only
			// its sends in a Scan (as scripts/bench/c/collectives.c).
			var slowest []float64
			if slowest, err = rank.Reduce(w, 0, []float64{float64(d.Nanoseconds())}, rank.Max); err != nil {
				break
			}
			if w.Rank() == 0 {
				fmt.Printf("BENCH %s.%d.mean_ns %g\n", mode, c.elems, slowest[0]/float64(c.iters))
			}
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		log.Fatalf("ranksapi: rank %d: %s: %v", w.Rank(), mode, err)
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}

// pingpong times iters round trips between ranks 0 and 1 (after a few
// untimed ones) of one exchange function; other ranks do nothing.
func pingpong(w *rank.World, iters int, exchange func(i int) error) (time.Duration, error) {
	if err := w.Barrier(); err != nil {
		return 0, err
	}
	warm := min(iters/10+1, 100)
	var start time.Time
	for i := -warm; i < iters; i++ {
		if i == 0 {
			start = time.Now()
		}
		if w.Rank() < 2 {
			if err := exchange(i); err != nil {
				return 0, fmt.Errorf("round trip %d: %w", i, err)
			}
		}
	}
	return time.Since(start), nil
}

// typed: the same bytes as []byte (Send/Recv) and as []float64
// (SendSlice/RecvSlice), 8 B and 1 MiB, one after the other.
func typed(w *rank.World, n, big int) error {
	if w.Size() < 2 {
		return fmt.Errorf("needs 2 ranks, have %d", w.Size())
	}
	for _, c := range []struct{ elems, iters int }{{1, n}, {1 << 17, big}} {
		f := make([]float64, c.elems)
		for i := range f {
			f[i] = float64(i) + 0.5
		}
		b := make([]byte, 8*c.elems)
		for i := range f {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(f[i]))
		}
		const tag = 5
		byteEl, err := pingpong(w, c.iters, func(int) error {
			peer := 1 - w.Rank()
			if w.Rank() == 0 {
				if err := w.Send(peer, tag, b); err != nil {
					return err
				}
			}
			got, err := w.Recv(peer, tag)
			if err != nil {
				return err
			}
			if !bytes.Equal(got[:8], b[:8]) || len(got) != len(b) {
				return fmt.Errorf("echo of %d bytes came back as %d bytes", len(b), len(got))
			}
			if w.Rank() == 1 {
				return w.Send(peer, tag, got)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("[]byte, %d B: %w", len(b), err)
		}
		typedEl, err := pingpong(w, c.iters, func(int) error {
			peer := 1 - w.Rank()
			if w.Rank() == 0 {
				if err := rank.SendSlice(w, peer, tag, f); err != nil {
					return err
				}
			}
			got, _, err := rank.RecvSlice[float64](w, peer, tag)
			if err != nil {
				return err
			}
			if len(got) != len(f) || got[len(got)-1] != f[len(f)-1] {
				return fmt.Errorf("echo of %d float64s came back as %d", len(f), len(got))
			}
			if w.Rank() == 1 {
				return rank.SendSlice(w, peer, tag, got)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("[]float64, %d B: %w", len(b), err)
		}
		if w.Rank() == 0 {
			fmt.Printf("BENCH typed.bytes.%d.oneway_ns %g\n", len(b), float64(byteEl.Nanoseconds())/float64(2*c.iters))
			fmt.Printf("BENCH typed.float64.%d.oneway_ns %g\n", len(b), float64(typedEl.Nanoseconds())/float64(2*c.iters))
		}
	}
	return nil
}

// isend: 8 B round trips with Send/Recv, then with Isend/Irecv and Wait
// (each side posts its receive before it sends).
func isend(w *rank.World, n int) error {
	if w.Size() < 2 {
		return fmt.Errorf("needs 2 ranks, have %d", w.Size())
	}
	msg := []byte("8 bytes!")
	const tag = 6
	blockEl, err := pingpong(w, n, func(int) error {
		peer := 1 - w.Rank()
		if w.Rank() == 0 {
			if err := w.Send(peer, tag, msg); err != nil {
				return err
			}
		}
		got, err := w.Recv(peer, tag)
		if err != nil {
			return err
		}
		if w.Rank() == 1 {
			return w.Send(peer, tag, got)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("Send/Recv: %w", err)
	}
	nbEl, err := pingpong(w, n, func(int) error {
		peer := 1 - w.Rank()
		rq := w.Irecv(peer, tag)
		if w.Rank() == 0 {
			if _, err := w.Isend(peer, tag, msg).Wait(); err != nil {
				return err
			}
		}
		st, err := rq.Wait()
		if err != nil {
			return err
		}
		if st.Count != len(msg) || !bytes.Equal(rq.Bytes(), msg) {
			return fmt.Errorf("received %q (count %d), want %q", rq.Bytes(), st.Count, msg)
		}
		if w.Rank() == 1 {
			_, err := w.Isend(peer, tag, rq.Bytes()).Wait()
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("Isend/Irecv: %w", err)
	}
	if w.Rank() == 0 {
		fmt.Printf("BENCH isend.blocking.oneway_ns %g\n", float64(blockEl.Nanoseconds())/float64(2*n))
		fmt.Printf("BENCH isend.nonblocking.oneway_ns %g\n", float64(nbEl.Nanoseconds())/float64(2*n))
	}
	return nil
}

// collective times iters calls of Alltoall, Scan or ReduceScatter on
// float64 data (the same as scripts/bench/c/collectives.c: element k of
// rank r's input is r+k; elems is per block for alltoall and reducescatter,
// the vector for scan) and checks the last element of the last result.
func collective(w *rank.World, what string, elems, iters int) (time.Duration, error) {
	me, size := w.Rank(), w.Size()
	inN := elems * size
	if what == "scan" {
		inN = elems
	}
	in := make([]float64, inN)
	for k := range in {
		in[k] = float64(me + k)
	}
	var parts [][]byte
	if what == "alltoall" {
		parts = make([][]byte, size)
		for d := range parts {
			parts[d] = make([]byte, 8*elems)
			for k := 0; k < elems; k++ {
				binary.LittleEndian.PutUint64(parts[d][8*k:], math.Float64bits(in[d*elems+k]))
			}
		}
	}
	var last float64
	call := func(int) error {
		switch what {
		case "alltoall":
			out, err := w.Alltoall(parts)
			if err != nil {
				return err
			}
			if len(out) != size || len(out[size-1]) != 8*elems {
				return fmt.Errorf("Alltoall gave %d parts, want %d of %d bytes", len(out), size, 8*elems)
			}
			last = math.Float64frombits(binary.LittleEndian.Uint64(out[size-1][8*(elems-1):]))
		case "scan":
			out, err := rank.Scan(w, in, rank.Sum)
			if err != nil {
				return err
			}
			if len(out) != elems {
				return fmt.Errorf("Scan gave %d elements, want %d", len(out), elems)
			}
			last = out[elems-1]
		case "reducescatter":
			out, err := rank.ReduceScatter(w, in, rank.Sum)
			if err != nil {
				return err
			}
			if len(out) != elems {
				return fmt.Errorf("ReduceScatter gave %d elements, want %d", len(out), elems)
			}
			last = out[elems-1]
		}
		return nil
	}
	el, err := collloop.Time(w, iters, call)
	if err != nil {
		return 0, err
	}
	var want float64
	r, s, e := float64(me), float64(size), float64(elems)
	switch what {
	case "alltoall": // block `me` of rank size-1
		want = (s - 1) + r*e + e - 1
	case "scan":
		want = r*(r+1)/2 + (r+1)*(e-1)
	case "reducescatter":
		want = s*(s-1)/2 + s*(r*e+e-1)
	}
	if last != want {
		return 0, fmt.Errorf("%d float64s: last element %g, want %g", elems, last, want)
	}
	return el, nil
}
