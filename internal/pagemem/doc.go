// Package pagemem provides the OS-level page mechanisms of the DSM: a
// memfd-backed region mapped as the application's view, and two
// implementations of PageOps, the page operations a fault driver performs.
//
// # userfaultfd backend (two processes)
//
// The application process creates the Region and registers it with a
// userfaultfd (Region.RegisterUffd), then starts a pager process, handing
// it the memfd and the userfaultfd, and closes its own copy of the latter.
// The pager serves every fault: a Go thread blocked in a fault keeps its P
// and, inside runtime code such as memmove, cannot be stopped for a GC,
// so faults must never depend on goroutines of the faulting process.
//
//	// application
//	r, err := pagemem.NewRegion(size)
//	u, err := r.RegisterUffd()
//	cmd.ExtraFiles = []*os.File{r.File(), u.File()} // fds 3 and 4 in the pager
//	err = cmd.Start()
//	u.Close()
//	b := r.Bytes() // plain loads, stores and sync/atomic now fault into the pager
//
//	// pager (base, size: the application's r.Base(), r.Size())
//	u, err := uffd.FromFile(os.NewFile(4, "uffd"))
//	ops := pagemem.NewUffdOps(os.NewFile(3, "memfd"), u, base, size, os.Getpagesize())
//	go pagemem.ReadFaults(ctx, u, base, os.Getpagesize(), func(f pagemem.Fault) {
//		// fetch the page, then
//		err = ops.Fill(f.Page, data, f.Write)
//	})
//
// The pager never maps the region. Fill installs a page with UFFDIO_COPY
// (write-protected unless writable), Protect flips write protection, Read
// preads the memfd and Drop punches a hole in it, after which the next
// access raises a missing fault again. Every page starts missing.
//
// With UFFD_USER_MODE_ONLY (an unprivileged process when
// vm.unprivileged_userfaultfd=0) only user-mode accesses are served: a
// system call that reads or writes a missing page, such as write(2) from
// the region, fails with EFAULT instead. With a full userfaultfd such a
// system call waits for the pager like any access.
//
// # mprotect backend (one process)
//
// NewProtectOps maps the memfd a second time as an always-accessible
// service view for the in-process driver and turns page states into
// mprotect calls on the application view. Application code reaches the
// view through Access, which turns a fault into the faulting address:
//
//	ops, err := pagemem.NewProtectOps(r)
//	for {
//		addr, faulted := pagemem.Access(func() { n = copy(dst, b[off:]) })
//		if !faulted {
//			break
//		}
//		p, ok := r.PageOf(addr)
//		// ask the driver for page p (it calls ops.Fill or ops.Protect), retry
//	}
package pagemem
