package falseshare_test

import (
	"fmt"

	"github.com/dsmexec/dsmexec/internal/falseshare"
)

func ExampleDetect() {
	// Two ranks each increment their own int64 counter, side by side.
	fs := falseshare.Detect([]falseshare.Page{{
		Page: 0, Changes: 2000,
		Writers: []falseshare.Writer{
			{Rank: 0, Ranges: []falseshare.Range{{Off: 0, Len: 8}}},
			{Rank: 1, Ranges: []falseshare.Range{{Off: 8, Len: 8}}},
		},
	}}, 4096, falseshare.Threshold, 10)
	fmt.Println(fs[0].FalseSharing)
	fmt.Println(fs[0].Advice)
	// Output:
	// true
	// false sharing: page 0 changed owner 2000 times, but its writers wrote disjoint bytes (rank 0 bytes 0-7; rank 1 bytes 8-15): pad each rank's data to the page size (4096 bytes), or dsm.Alloc separate arrays
}
