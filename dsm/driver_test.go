package dsm

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeOps is an in-memory page table: what the application may do with each
// page, and its contents. The test's "application" holds mu while it checks
// access and touches a page, as a CPU would within one instruction.
type fakeOps struct {
	mu     sync.Mutex
	ps     int
	access map[int]int // 0 none, 1 read, 2 write
	data   map[int][]byte
}

func newFakeOps(ps int) *fakeOps {
	return &fakeOps{ps: ps, access: map[int]int{}, data: map[int][]byte{}}
}

func (f *fakeOps) Fill(p int, data []byte, writable bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.access[p] != 0 {
		return fmt.Errorf("fill of installed page %d", p)
	}
	b := make([]byte, f.ps)
	copy(b, data)
	f.data[p] = b
	f.access[p] = 1
	if writable {
		f.access[p] = 2
	}
	return nil
}

func (f *fakeOps) Protect(p int, writable bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.access[p] == 0 {
		return fmt.Errorf("protect of absent page %d", p)
	}
	f.access[p] = 1
	if writable {
		f.access[p] = 2
	}
	return nil
}

func (f *fakeOps) Drop(p int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.access[p] = 0
	delete(f.data, p)
	return nil
}

func (f *fakeOps) Read(p int, buf []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(buf)
	copy(buf, f.data[p])
	return nil
}

func (f *fakeOps) Wake(p int) error { return nil }

// touch runs fn on page p's contents once this rank holds p with at
// least the access asked for, faulting through the driver as needed.
func (f *fakeOps) touch(d *driver, p int, write bool, fn func(b []byte)) {
	need := 1
	if write {
		need = 2
	}
	for {
		f.mu.Lock()
		if f.access[p] >= need {
			fn(f.data[p])
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		if err := d.fetch(p, write); err != nil {
			panic(err)
		}
	}
}

// add increments the uint64 at the start of page p.
func (f *fakeOps) add(d *driver, p int) {
	f.touch(d, p, true, func(b []byte) { binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)+1) })
}

func (f *fakeOps) load(d *driver, p int) uint64 { return f.loadWord(d, p, 0) }

func (f *fakeOps) store(d *driver, p, word int, v uint64) {
	f.touch(d, p, true, func(b []byte) { binary.LittleEndian.PutUint64(b[word*8:], v) })
}

func (f *fakeOps) loadWord(d *driver, p, word int) (v uint64) {
	f.touch(d, p, false, func(b []byte) { v = binary.LittleEndian.Uint64(b[word*8:]) })
	return v
}

func TestDriverCounters(t *testing.T) {
	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			const ps, iters, pages = 64, 300, 3
			lns := make([]net.Listener, n)
			addrs := make([]string, n)
			for i := range lns {
				lns[i], _ = net.Listen("tcp", "127.0.0.1:0")
				addrs[i] = lns[i].Addr().String()
			}
			ds := make([]*driver, n)
			ops := make([]*fakeOps, n)
			for i := range ds {
				ops[i] = newFakeOps(ps)
				ds[i] = newDriver(i, n, ps, ops[i], false, func(err error) { panic(err) }, t.Logf)
			}
			var wg sync.WaitGroup
			for i := range ds {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					if err := ds[i].connect(lns[i], addrs, []byte("k"), time.Now().Add(10*time.Second)); err != nil {
						t.Error(err)
					}
				}(i)
			}
			wg.Wait()
			for i := range ds {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					for k := 0; k < iters; k++ {
						ops[i].add(ds[i], k%pages)
						ops[i].load(ds[i], (k+1)%pages)
					}
				}(i)
			}
			wg.Wait()
			var total uint64
			for p := 0; p < pages; p++ {
				total += ops[0].load(ds[0], p)
			}
			if want := uint64(n * iters); total != want {
				t.Fatalf("total %d, want %d", total, want)
			}
			for _, d := range ds {
				wg.Add(1)
				go func() { defer wg.Done(); d.close() }()
			}
			wg.Wait()
		})
	}
}

// TestDriverFalseSharing: every rank owns some words of every page; in each
// round it writes its words with the round number, a barrier, then it
// reads every word of every page and must see the round number.
func TestDriverFalseSharing(t *testing.T) {
	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			const ps, pages, rounds = 64, 4, 200
			words := ps / 8
			lns := make([]net.Listener, n)
			addrs := make([]string, n)
			for i := range lns {
				lns[i], _ = net.Listen("tcp", "127.0.0.1:0")
				addrs[i] = lns[i].Addr().String()
			}
			ds := make([]*driver, n)
			ops := make([]*fakeOps, n)
			for i := range ds {
				ops[i] = newFakeOps(ps)
				ds[i] = newDriver(i, n, ps, ops[i], false, func(err error) { panic(err) }, t.Logf)
			}
			var wg sync.WaitGroup
			for i := range ds {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					if err := ds[i].connect(lns[i], addrs, []byte("k"), time.Now().Add(10*time.Second)); err != nil {
						t.Error(err)
					}
				}(i)
			}
			wg.Wait()
			var bmu sync.Mutex
			bcond := sync.NewCond(&bmu)
			arrived, gen := 0, 0
			barrier := func() {
				bmu.Lock()
				g := gen
				arrived++
				if arrived == n {
					arrived, gen = 0, gen+1
					bcond.Broadcast()
				} else {
					for g == gen {
						bcond.Wait()
					}
				}
				bmu.Unlock()
			}
			errs := make(chan error, n)
			for i := range ds {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					for r := 1; r <= rounds; r++ {
						for p := 0; p < pages; p++ {
							for w := i; w < words; w += n {
								ops[i].store(ds[i], p, w, uint64(r))
							}
						}
						barrier()
						for p := 0; p < pages; p++ {
							for w := 0; w < words; w++ {
								if v := ops[i].loadWord(ds[i], p, w); v != uint64(r) {
									errs <- fmt.Errorf("round %d: rank %d reads %d at page %d word %d", r, i, v, p, w)
									return
								}
							}
						}
						barrier()
					}
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, d := range ds {
				wg.Add(1)
				go func() { defer wg.Done(); d.close() }()
			}
			wg.Wait()
		})
	}
}
