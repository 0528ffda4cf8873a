package coherence_test

import (
	"fmt"

	"github.com/dsmexec/dsmexec/internal/coherence"
)

// Two ranks, no network: rank 1 writes page 0 (homed at rank 0), then rank
// 0 reads it. Each node's Ready is printed; messages are handed over by
// hand, as a driver would after reading them off its connection.
func Example() {
	nodes := []*coherence.Node{coherence.NewNode(0, 2), coherence.NewNode(1, 2)}
	var inflight []coherence.Msg
	ready := func(r int) {
		for _, a := range nodes[r].Ready() {
			fmt.Printf("rank %d: %v\n", r, a)
			if s, ok := a.(coherence.Send); ok {
				inflight = append(inflight, s.Msg)
			}
		}
	}
	deliverAll := func() {
		for len(inflight) > 0 {
			m := inflight[0]
			inflight = inflight[1:]
			nodes[m.To].Step(m)
			ready(m.To)
		}
	}

	nodes[1].Fault(0, true)
	ready(1)
	deliverAll()
	nodes[0].Fault(0, false)
	ready(0)
	deliverAll()
	fmt.Println(nodes[0].Access(0), nodes[1].Access(0))
	// Output:
	// rank 1: send 1->0 REQ p0 write
	// rank 0: send 0->1 PAGE p0 write zero seq=1
	// rank 1: fill p0 Write zero
	// rank 1: send 1->0 DONE p0 write seq=1
	// rank 1: resolve p0
	// rank 0: send 0->1 FWD p0 read to=0 seq=2
	// rank 1: protect p0 Write->Read
	// rank 1: send 1->0 PAGE p0 read data seq=2
	// rank 0: fill p0 Read data
	// rank 0: resolve p0
	// Read Read
}
