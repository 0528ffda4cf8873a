package rank_test

import (
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/rank"
)

// Without mpirun, Init makes a world of one rank; the same program runs
// unchanged under mpirun -np N.
func Example() {
	w, err := rank.Init()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Finalize()
	w.Send(w.Rank(), 1, []byte("to myself"))
	b, _ := w.Recv(rank.AnySource, 1)
	sum, _ := rank.Allreduce(w, []int{w.Rank() + 1}, rank.Sum)
	v := dsm.Slice[int64](w.Memory(), 0, 1)
	v[0] = 42
	fmt.Println(w.Size(), string(b), sum[0], v[0])
	// Output: 1 to myself 1 42
}
