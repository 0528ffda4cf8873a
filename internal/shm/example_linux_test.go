//go:build linux && (amd64 || arm64)

package shm_test

import (
	"fmt"

	"github.com/dsmexec/dsmexec/internal/shm"
)

// Both ends in one process here; in dsmexec the name travels to the peer
// rank over its authenticated TCP connection and the peer calls Open.
func Example() {
	a, name, err := shm.Create(0)
	if err != nil {
		fmt.Println("stay on TCP:", err)
		return
	}
	defer a.Close()
	b, err := shm.Open(name)
	if err != nil {
		a.Unlink()
		fmt.Println("stay on TCP:", err)
		return
	}
	defer b.Close()
	b.Unlink() // both mapped: the name can go

	w := a.Writer()
	w.TryWrite([]byte("frame header|"), []byte("body"))
	if w.NeedsDoorbell() {
		// send a doorbell frame on the TCP connection
	}

	r := b.Reader()
	p, _ := r.Peek() // contiguous, in place
	fmt.Printf("%s\n", p)
	r.Advance(len(p))
	// Output: frame header|body
}
