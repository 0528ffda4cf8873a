package transporttest

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// HangAfter is how long the tests wait before they call the ranks hung.
const HangAfter = 60 * time.Second

// RunRanks runs body for every rank 0..n-1 in its own goroutine and returns
// their results. If they are not all done after hangAfter (HangAfter, or
// less for a test that expects a hang) it calls abort
// (which must make every blocked call return) and fails the test with a
// goroutine dump, so that a hang shows up as a failure rather than as a
// timeout of the whole test binary.
func RunRanks(t testing.TB, n int, hangAfter time.Duration, abort func(), body func(rank int) error) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() { errs[r] = body(r) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hangAfter):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		abort()
		<-done
		t.Fatalf("ranks did not finish; goroutines:\n%s", buf)
	}
	return errs
}
