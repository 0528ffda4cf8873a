package dsm_test

import (
	"fmt"
	"log"

	"github.com/dsmexec/dsmexec/dsm"
)

// A one-rank region (what rank.Init makes without mpirun): the accessors
// work the same on every backend.
func ExampleMemory() {
	m, err := dsm.New(dsm.Config{Rank: 0, Size: 1, Bytes: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	m.StoreInt64(0, 40)
	m.AddInt64(0, 2)
	m.WriteAt([]byte("shared"), 4096)
	buf := make([]byte, 6)
	m.ReadAt(buf, 4096)
	fmt.Println(m.LoadInt64(0), string(buf), m.Home(1), m.Backend())
	// Output: 42 shared 0 local
}
