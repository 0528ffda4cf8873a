//go:build linux

package pagemem

import (
	"runtime"
	"sync"
	"testing"
)

var sink byte

// BenchmarkUffdFault measures fault -> pager fill -> resume across the two
// processes: each op is a read of a missing page that the pager fills
// with zeros. The baseline is the same first touch of a memfd page
// without userfaultfd (the kernel allocates the page itself). The direct
// variants fill from the pager's reading goroutine instead of passing each
// fault through a channel to a driver goroutine.
func BenchmarkUffdFault(b *testing.B) {
	const window = 1024 // pages faulted between two drops of the whole region
	for _, bc := range []struct {
		name       string
		procs      int
		goroutines int
		uffd       bool
		direct     bool // pager fills from its reading goroutine
	}{
		{"baseline-no-uffd", 1, 1, false, false},
		{"procs=1", 1, 1, true, false},
		{"procs=2", 2, 1, true, false},
		{"procs=1/goroutines=4", 1, 4, true, false},
		{"procs=2/goroutines=4", 2, 4, true, false},
		{"procs=1/direct", 1, 1, true, true},
		{"procs=2/goroutines=4/direct", 2, 4, true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(bc.procs))
			var r *Region
			var dropAll func()
			if bc.uffd {
				var p *pagerProc
				var env []string
				if bc.direct {
					env = append(env, directEnv+"=1")
				}
				r, p = startPager(b, window, env...)
				dropAll = func() { p.do("dropall") }
			} else {
				var err error
				if r, err = NewRegion(window * pageSize); err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				dropAll = func() {
					if err := punchHole(r.File(), 0, int64(r.Size())); err != nil {
						b.Fatal(err)
					}
				}
			}
			mem := r.Bytes()
			b.ResetTimer()
			for done := 0; done < b.N; done += window {
				n := min(window, b.N-done)
				if bc.goroutines == 1 {
					var s byte
					for p := range n {
						s += mem[p*pageSize]
					}
					sink += s
				} else {
					var wg sync.WaitGroup
					for g := range bc.goroutines {
						wg.Go(func() {
							var s byte
							for p := g; p < n; p += bc.goroutines {
								s += mem[p*pageSize]
							}
							if s != 0 {
								panic("non-zero page")
							}
						})
					}
					wg.Wait()
				}
				b.StopTimer()
				dropAll()
				b.StartTimer()
			}
		})
	}
}
