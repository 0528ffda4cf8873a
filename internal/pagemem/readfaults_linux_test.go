//go:build linux

package pagemem

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/uffd"
	"golang.org/x/sys/unix"
)

// TestReadFaultsInProcess drives ReadFaults and UffdOps in one process.
// That is safe only because the faults come from system calls: the
// faulting thread waits in the kernel, not holding a P.
func TestReadFaultsInProcess(t *testing.T) {
	r, err := NewRegion(4 * pageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	app, err := r.RegisterUffd()
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	if app.UserModeOnly() {
		t.Skip("user-mode-only userfaultfd: system calls get EFAULT, no fault to read (see TestUffdSyscall)")
	}
	dup, err := unix.FcntlInt(app.File().Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uffd.FromFile(os.NewFile(uintptr(dup), "uffd"))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ops := NewUffdOps(r.File(), u, r.Base(), r.Size(), pageSize)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	faults := make(chan Fault, 4)
	errc := make(chan error, 1)
	go func() { errc <- ReadFaults(ctx, u, r.Base(), pageSize, func(f Fault) { faults <- f }) }()

	zero, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer zero.Close()
	done := make(chan error, 1)
	go func() { // read(2) writes into page 2
		_, err := unix.Read(int(zero.Fd()), r.Bytes()[2*pageSize+10:2*pageSize+20])
		done <- err
	}()
	var f Fault
	select {
	case f = <-faults:
	case <-time.After(replyTimeout):
		t.Fatal("no fault read")
	}
	if f != (Fault{Page: 2, Write: true}) {
		t.Fatalf("fault %+v, want page 2 missing write", f)
	}
	if err := ops.Fill(2, fill(3), true); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := make([]byte, pageSize)
	if err := ops.Read(2, got); err != nil {
		t.Fatal(err)
	}
	want := fill(3)
	clear(want[10:20])
	if !bytes.Equal(got, want) {
		t.Fatal("page contents differ")
	}
	// A second Fill of the installed page is treated as served.
	if err := ops.Fill(2, nil, false); err != nil || ops.exists.Load() != 1 {
		t.Fatalf("refill: %v, exists %d", err, ops.exists.Load())
	}
	for _, bad := range []func() error{
		func() error { return ops.Fill(4, nil, true) },
		func() error { return ops.Fill(0, []byte{1}, true) },
		func() error { return ops.Protect(-1, true) },
		func() error { return ops.Drop(4) },
		func() error { return ops.Read(0, nil) },
		func() error { return ops.Wake(4) },
	} {
		if bad() == nil {
			t.Error("bad page operation succeeded")
		}
	}

	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadFaults = %v, want context.Canceled", err)
		}
	case <-time.After(replyTimeout):
		t.Fatal("ReadFaults did not stop on cancel")
	}
}
