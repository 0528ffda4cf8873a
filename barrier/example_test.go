package barrier_test

import (
	"fmt"
	"github.com/dsmexec/dsmexec/internal/transporttest"
	"sync"
	"sync/atomic"

	"github.com/dsmexec/dsmexec/barrier"
)

// Four ranks, here goroutines over an in-memory transport, each doing three
// steps of work separated by barriers.
func ExampleNewDissemination() {
	const n, steps = 4, 3
	world := transporttest.NewMemNet(n, false, 0) // the test's in-memory Transport
	defer world.Close()

	var done [steps]atomic.Int32
	var wg sync.WaitGroup
	for _, t := range world.Ends() {
		wg.Go(func() {
			b := barrier.NewDissemination(t)
			for step := range steps {
				done[step].Add(1) // this rank's work for the step
				if err := b.Wait(); err != nil {
					fmt.Println(err)
					return
				}
				// Past the barrier every rank has done the step.
				if done[step].Load() != n {
					fmt.Println("barrier let a rank through early")
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("%d ranks passed %d barriers\n", n, steps)
	// Output: 4 ranks passed 3 barriers
}
