//go:build linux

package pagemem_test

import (
	"bytes"
	"fmt"
	"os"

	"github.com/dsmexec/dsmexec/internal/pagemem"
)

// An accessor of the mprotect backend: every page starts inaccessible,
// the fault names the page, the driver fills it, the accessor retries.
func Example() {
	r, err := pagemem.NewRegion(4 * os.Getpagesize())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	ops, err := pagemem.NewProtectOps(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ops.Close()

	b := r.Bytes()
	off := r.PageSize() + 100
	var v byte
	for {
		addr, faulted := pagemem.Access(func() { v = b[off] })
		if !faulted {
			break
		}
		p, _ := r.PageOf(addr)
		fmt.Println("fault on page", p)
		if err := ops.Fill(p, bytes.Repeat([]byte{42}, r.PageSize()), false); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(v)
	// Output:
	// fault on page 1
	// 42
}
