package pagemem

import (
	"runtime"
	"runtime/debug"
)

// Access runs fn on the calling goroutine with debug.SetPanicOnFault(true)
// and reports the address of the first memory fault fn hit, if any. A
// fault (SIGSEGV or SIGBUS at a non-nil address) becomes a runtime panic
// carrying the address, which Access recovers; fn stops at the faulting
// access, so it must be safe to run again from the start once the page is
// made accessible. Any other panic, including a nil dereference, is
// re-raised. The previous SetPanicOnFault setting is restored.
//
// Faults inside runtime helpers that user code calls (copy, i.e.
// runtime.memmove, and the bytes/strings comparison routines) are
// recovered like faults in plain Go code, and so are sync/atomic
// operations, which are compiled inline. The address is that of the first
// fault, not necessarily in the lowest page of a range: memmove may touch
// the end of a range first. Goroutines started by fn are not covered.
//
// Exception: in a binary built with -race, sync/atomic functions call the
// C race runtime. They first load from the address in Go assembly (so an
// atomic on a PROT_NONE page is recovered), but the store happens in C on
// the system stack, where a fault is fatal: an atomic write to a PROT_READ
// page crashes a race-enabled process. Accessors doing atomic writes must
// get the page writable before trying, in race builds.
func Access(fn func()) (addr uintptr, faulted bool) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if e, ok := r.(interface{ Addr() uintptr }); ok {
			if _, ok := r.(runtime.Error); ok {
				addr, faulted = e.Addr(), true
				return
			}
		}
		panic(r)
	}()
	fn()
	return 0, false
}
