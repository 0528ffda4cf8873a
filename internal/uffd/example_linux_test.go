//go:build linux && (amd64 || arm64)

package uffd_test

import (
	"bytes"
	"fmt"
	"os"
	"unsafe"

	"github.com/dsmexec/dsmexec/internal/uffd"
	"golang.org/x/sys/unix"
)

// Register a shared mapping and install its first page. A real pager does
// the Copy from another process, in answer to a message from ReadMsgs.
func Example() {
	ps := os.Getpagesize()
	fd, _ := unix.MemfdCreate("example", unix.MFD_CLOEXEC)
	defer unix.Close(fd)
	unix.Ftruncate(fd, int64(ps))
	mem, _ := unix.Mmap(fd, 0, ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	defer unix.Munmap(mem)

	u, err := uffd.New(true)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer u.Close()
	if _, err := u.API(uffd.FeatureMissingShmem | uffd.FeatureWPHugetlbfsShmem); err != nil {
		fmt.Println(err)
		return
	}
	base := uintptr(unsafe.Pointer(&mem[0]))
	if _, err := u.Register(base, uintptr(ps), uffd.ModeMissing|uffd.ModeWP); err != nil {
		fmt.Println(err)
		return
	}
	if err := u.Copy(base, bytes.Repeat([]byte{7}, ps), true); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(mem[0], mem[ps-1]) // installed: no fault
	// Output: 7 7
}
