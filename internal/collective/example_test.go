package collective

import (
	"fmt"
	"github.com/dsmexec/dsmexec/internal/transporttest"
	"sync"
)

// Four ranks, here goroutines over an in-memory transport, add up their
// vectors; every rank gets the sum.
func ExampleAllreduce() {
	const n = 4
	world := transporttest.NewMemNet(n, false, 0) // the test's in-memory Transport
	defer world.Close()

	sums := make([][]float64, n)
	var wg sync.WaitGroup
	for r, t := range world.Ends() {
		wg.Go(func() {
			t := Sequenced(t)             // wrap once per rank
			v := []float64{float64(r), 1} // rank r contributes r and 1
			sum, err := Allreduce(t, v, Sum)
			if err != nil {
				fmt.Println(err)
				return
			}
			sums[r] = sum
		})
	}
	wg.Wait()
	fmt.Println(sums)
	// Output: [[6 4] [6 4] [6 4] [6 4]]
}
