// Command ranks is the rank side of `make bench` (scripts/bench): one SPMD
// program with a mode per figure, written against the public API only. Each
// result is a line "BENCH key value" (value in ns, bytes/s or a count) on the
// rank that measured it, which the bench driver collects from mpirun's
// output; the same figures go to w.Report for `mpirun -summary`.
//
//	mpirun -np 8 ./ranks barrier -n 10000
//	mpirun -np 2 ./ranks pingpong -n 20000 -big 200
//	mpirun -np 2 ./ranks readfault -pages 3000 -goroutines 4
//	mpirun -np 3 ./ranks writefault -pages 1000
//	mpirun -np 2 ./ranks idle -ms 1000
//
// Every mode checks what it read: a wrong value is printed as
// "BENCH <mode>.wrong N" and makes the program exit 1.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/rank"
	"github.com/dsmexec/dsmexec/scripts/bench/procstat"
)

func main() {
	log.SetFlags(0)
	if len(os.Args) < 2 {
		log.Fatal("usage: ranks barrier|pingpong|readfault|writefault|idle [flags]")
	}
	mode, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	n := fs.Int("n", 10000, "barrier: barriers; pingpong: small round trips")
	big := fs.Int("big", 200, "pingpong: round trips of -size bytes")
	size := fs.Int("size", 1<<20, "pingpong: the large message size")
	small := fs.Int("small", 8, "pingpong: the small message size")
	pages := fs.Int("pages", 3000, "readfault/writefault: pages faulted")
	goroutines := fs.Int("goroutines", 1, "readfault: goroutines faulting at once")
	ms := fs.Int("ms", 1000, "idle: milliseconds rank 1 stays blocked in Recv")
	into := fs.Bool("into", true, "pingpong: receive with RecvInto into one buffer (as MPI_Recv); false: Recv, a new slice per message")
	fs.Parse(args)

	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	switch mode {
	case "barrier":
		err = barrierBench(w, *n)
	case "pingpong":
		err = pingpong(w, *small, *n, *size, *big, *into)
	case "readfault":
		err = readFault(w, *pages, *goroutines)
	case "writefault":
		err = writeFault(w, *pages)
	case "idle":
		err = idle(w, time.Duration(*ms)*time.Millisecond)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		log.Fatalf("ranks: rank %d: %s: %v", w.Rank(), mode, err)
	}
	if err := w.Finalize(); err != nil {
		log.Fatal(err)
	}
}

// result prints one figure for the driver and reports it to mpirun.
func result(w *rank.World, key string, v float64) {
	fmt.Printf("BENCH %s %g\n", key, v)
	w.Report(key, v)
}

func barrierBench(w *rank.World, n int) error {
	for i := 0; i < 100; i++ { // warm up the mesh connections
		if err := w.Barrier(); err != nil {
			return err
		}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := w.Barrier(); err != nil {
			return err
		}
	}
	el := time.Since(start)
	if w.Rank() == 0 {
		result(w, "barrier.mean_ns", float64(el.Nanoseconds())/float64(n))
	}
	return nil
}

// pingpong: rank 0 sends, rank 1 echoes; other ranks only wait. One-way
// latency is half the mean round trip; bandwidth is size per one-way time.
// Around the timed small round trips each rank also reads its process's
// context switches and CPU time (getrusage: every thread); rank 0 prints the
// two ranks' sum per round trip.
func pingpong(w *rank.World, small, n, size, big int, into bool) error {
	if w.Size() < 2 {
		return fmt.Errorf("needs 2 ranks, have %d", w.Size())
	}
	var usage procstat.Usage
	run := func(tag, msgSize, iters int) (time.Duration, error) {
		msg := bytes.Repeat([]byte{byte(tag)}, msgSize)
		buf := make([]byte, msgSize)
		recv := func(from int) ([]byte, error) {
			if !into {
				return w.Recv(from, tag)
			}
			n, _, err := w.RecvInto(from, tag, buf)
			return buf[:n], err
		}
		warm := min(iters/10+1, 100)
		var start time.Time
		var u0 procstat.Usage
		for i := -warm; i < iters; i++ {
			if i == 0 {
				var err error
				if u0, err = procstat.Self(); err != nil {
					return 0, err
				}
				start = time.Now()
			}
			switch w.Rank() {
			case 0:
				if err := w.Send(1, tag, msg); err != nil {
					return 0, err
				}
				b, err := recv(1)
				if err != nil {
					return 0, err
				}
				if len(b) != msgSize || b[0] != byte(tag) || b[len(b)-1] != byte(tag) {
					return 0, fmt.Errorf("round trip %d: echo of %d bytes came back as %d bytes", i, msgSize, len(b))
				}
			case 1:
				b, err := recv(0)
				if err != nil {
					return 0, err
				}
				if err := w.Send(0, tag, b); err != nil {
					return 0, err
				}
			}
		}
		el := time.Since(start)
		u1, err := procstat.Self()
		if err != nil {
			return 0, err
		}
		usage = u1.Sub(u0)
		return el, nil
	}
	el, err := run(1, small, n)
	if err != nil {
		return err
	}
	// Both ranks' usage to rank 0 (after the timing, on the message path).
	var mine [16]byte
	binary.LittleEndian.PutUint64(mine[:8], uint64(usage.Switches()))
	binary.LittleEndian.PutUint64(mine[8:], uint64(usage.CPU.Nanoseconds()))
	all, err := w.Gather(0, mine[:])
	if err != nil {
		return err
	}
	if w.Rank() == 0 {
		var sw, cpu float64
		for r, b := range all[:2] {
			if len(b) != 16 {
				return fmt.Errorf("usage of rank %d: %d bytes, want 16", r, len(b))
			}
			sw += float64(binary.LittleEndian.Uint64(b[:8]))
			cpu += float64(binary.LittleEndian.Uint64(b[8:]))
		}
		result(w, "pingpong.ctxsw_per_rt", sw/float64(n))
		result(w, "pingpong.cpu_ns_per_rt", cpu/float64(n))
	}
	if err := w.Barrier(); err != nil {
		return err
	}
	bigEl, err := run(2, size, big)
	if err != nil {
		return err
	}
	if w.Rank() == 0 {
		result(w, "pingpong.small_bytes", float64(small))
		result(w, "pingpong.oneway_ns", float64(el.Nanoseconds())/float64(2*n))
		result(w, "pingpong.big_bytes", float64(size))
		oneway := bigEl.Seconds() / float64(2*big)
		result(w, "pingpong.big_oneway_ns", oneway*1e9)
		result(w, "pingpong.bandwidth_Bps", float64(size)/oneway)
	}
	return nil
}

// durations summarises fault times.
func durations(w *rank.World, prefix string, d []time.Duration) {
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	q := func(f float64) float64 { return float64(d[min(len(d)-1, int(f*float64(len(d))))].Nanoseconds()) }
	result(w, prefix+".count", float64(len(d)))
	result(w, prefix+".mean_ns", float64(sum.Nanoseconds())/float64(len(d)))
	result(w, prefix+".p50_ns", q(0.5))
	result(w, prefix+".p99_ns", q(0.99))
	result(w, prefix+".max_ns", float64(d[len(d)-1].Nanoseconds()))
	slow := len(d) - sort.Search(len(d), func(i int) bool { return d[i] >= time.Millisecond })
	result(w, prefix+".over1ms", float64(slow))
}

// readFault: rank 0 writes one word in each of `pages` pages homed on rank
// 0, then rank 1 reads one word of each, timing every read: each is a read
// fault served by rank 0 (one request, one page back). With several
// goroutines, they take the pages round-robin and fault at the same time.
func readFault(w *rank.World, pages, goroutines int) error {
	if w.Size() < 2 {
		return fmt.Errorf("needs 2 ranks, have %d", w.Size())
	}
	m := w.Memory()
	ps, size := m.PageSize(), w.Size()
	const warm = 20
	total := pages + warm
	if need := total * size * ps; need > m.Len() {
		return fmt.Errorf("%d pages homed on rank 0 need a %d-byte region, have %d", total, need, m.Len())
	}
	off := func(k int) int { return k * size * ps } // page k*size: homed on rank 0
	if m.Home(off(1)/ps) != 0 {
		return fmt.Errorf("page %d is homed on rank %d, want 0", off(1)/ps, m.Home(off(1)/ps))
	}
	if w.Rank() == 0 {
		for k := 0; k < total; k++ {
			m.StoreInt64(off(k), int64(k+1))
		}
	}
	if err := w.Barrier(); err != nil {
		return err
	}
	if w.Rank() == 1 {
		for k := pages; k < total; k++ { // warm-up pages, not timed
			m.LoadInt64(off(k))
		}
		times := make([][]time.Duration, goroutines)
		for g := range times { // allocated up front: no garbage collection while timing
			times[g] = make([]time.Duration, 0, pages/goroutines+1)
		}
		wrong := make([]int, goroutines)
		var wg sync.WaitGroup
		start := time.Now()
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := g; k < pages; k += goroutines {
					t := time.Now()
					v := m.LoadInt64(off(k))
					times[g] = append(times[g], time.Since(t))
					if v != int64(k+1) {
						wrong[g]++
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		all := slices.Concat(times...)
		durations(w, "readfault", all)
		result(w, "readfault.pages_per_s", float64(pages)/el.Seconds())
		st := m.Stats()
		result(w, "readfault.dsm_read_faults", float64(st.ReadFaults))
		result(w, "readfault.dsm_mean_fault_ns", float64(st.MeanFaultTime().Nanoseconds()))
		fmt.Printf("BENCH readfault.backend %s\n", m.Backend())
		if bad := sumInts(wrong); bad > 0 {
			result(w, "readfault.wrong", float64(bad))
			return fmt.Errorf("%d of %d pages read a wrong value", bad, pages)
		}
	}
	return w.Barrier()
}

// writeFault: rank 0 writes a word in each page homed on it, every rank
// reads it (three read-only copies with 3 ranks), then rank 1 writes it:
// that write fault must invalidate the other copies first. Only the write
// is timed. Afterwards the last rank checks it sees rank 1's values.
func writeFault(w *rank.World, pages int) error {
	if w.Size() < 3 {
		return fmt.Errorf("needs 3 ranks, have %d", w.Size())
	}
	m := w.Memory()
	ps, size := m.PageSize(), w.Size()
	const warm = 20
	total := pages + warm
	if need := total * size * ps; need > m.Len() {
		return fmt.Errorf("%d pages homed on rank 0 need a %d-byte region, have %d", total, need, m.Len())
	}
	off := func(k int) int { return k * size * ps }
	if w.Rank() == 0 {
		for k := 0; k < total; k++ {
			m.StoreInt64(off(k), int64(k+1))
		}
	}
	if err := w.Barrier(); err != nil {
		return err
	}
	wrong := 0
	for k := 0; k < total; k++ {
		if m.LoadInt64(off(k)) != int64(k+1) {
			wrong++
		}
	}
	if err := w.Barrier(); err != nil {
		return err
	}
	if w.Rank() == 1 {
		for k := pages; k < total; k++ {
			m.StoreInt64(off(k), -int64(k+1))
		}
		times := make([]time.Duration, 0, pages)
		for k := 0; k < pages; k++ {
			t := time.Now()
			m.StoreInt64(off(k), -int64(k+1))
			times = append(times, time.Since(t))
		}
		durations(w, "writefault", times)
		st := m.Stats()
		result(w, "writefault.dsm_write_faults", float64(st.WriteFaults))
		result(w, "writefault.dsm_mean_fault_ns", float64(st.MeanFaultTime().Nanoseconds()))
	}
	if err := w.Barrier(); err != nil {
		return err
	}
	if w.Rank() == size-1 {
		for k := 0; k < total; k++ {
			if m.LoadInt64(off(k)) != -int64(k+1) {
				wrong++
			}
		}
	}
	if wrong > 0 {
		result(w, "writefault.wrong", float64(wrong))
		return fmt.Errorf("%d wrong values read", wrong)
	}
	return w.Barrier()
}

func sumInts(a []int) int {
	s := 0
	for _, x := range a {
		s += x
	}
	return s
}

// idle: rank 1 tells rank 0 its pid and blocks in Recv; rank 0 reads rank
// 1's CPU time (utime+stime of /proc/PID/stat) and that of its page server
// (a child of rank 1) over d, then releases it. Rank 0 sleeps meanwhile, so
// nothing is sent to rank 1 while it waits. Figures in % of one CPU.
func idle(w *rank.World, d time.Duration) error {
	if w.Size() < 2 {
		return fmt.Errorf("needs 2 ranks, have %d", w.Size())
	}
	const tagPid, tagGo = 31, 32
	switch w.Rank() {
	case 1:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(os.Getpid()))
		if err := w.Send(0, tagPid, b[:]); err != nil {
			return err
		}
		if _, err := w.Recv(0, tagGo); err != nil {
			return err
		}
	case 0:
		b, err := w.Recv(1, tagPid)
		if err != nil {
			return err
		}
		if len(b) != 8 {
			return fmt.Errorf("pid of rank 1: %d bytes, want 8", len(b))
		}
		pid := int(binary.LittleEndian.Uint64(b))
		kids, err := procstat.Children(pid)
		if err != nil {
			return err
		}
		// A host's page server (the default) is the child of whichever
		// rank came first: look at rank 0's children too, after rank 1's.
		own, _ := procstat.Children(os.Getpid())
		pager, havePager := procstat.Pager(append(kids, own...))
		r0, err := procstat.Read(pid)
		if err != nil {
			return err
		}
		var p0 procstat.Stat
		if havePager {
			if p0, err = procstat.Read(pager.PID); err != nil {
				havePager = false
			}
		}
		start := time.Now()
		time.Sleep(d)
		r1, err := procstat.Read(pid)
		if err != nil {
			return err
		}
		var p1 procstat.Stat
		if havePager {
			if p1, err = procstat.Read(pager.PID); err != nil {
				havePager = false
			}
		}
		el := time.Since(start)
		if err := w.Send(1, tagGo, []byte{1}); err != nil {
			return err
		}
		result(w, "idle.rank_pct", 100*(r1.CPU()-r0.CPU()).Seconds()/el.Seconds())
		if havePager {
			result(w, "idle.pager_pct", 100*(p1.CPU()-p0.CPU()).Seconds()/el.Seconds())
			fmt.Printf("BENCH idle.pager_comm %s\n", strings.ReplaceAll(pager.Comm, " ", "_"))
		} else {
			fmt.Printf("BENCH idle.pager_none %d\n", len(kids))
		}
	}
	return w.Barrier()
}
