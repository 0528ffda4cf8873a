// Package shm is a pair of single-producer single-consumer byte-stream
// rings in shared memory between two processes of one user on one host:
// the link that carries dsmexec's wire frames between ranks on the same
// host instead of TCP. The byte layout is in spec.md.
//
// # Setup
//
// One side creates the segment (it becomes side A), sends its name to the
// peer over the already-authenticated TCP connection, and the peer opens
// it (side B). Once both have it mapped, either side unlinks the name:
//
//	seg, name, err := shm.Create(0) // 0: DefaultRingSize per direction
//	if err != nil { /* stay on TCP: errors.Is(err, shm.ErrUnavailable) */ }
//	// send name to the peer; the peer does:
//	peer, err := shm.Open(name)    // checks owner, mode 0600, size, magic, version
//	_ = peer.Unlink()              // either side, once both opened; idempotent
//	defer seg.Close()              // unmaps; the peer then sees EOF / ErrPeerClosed
//
// Create makes /dev/shm/dsmexec-<32 random hex digits> with
// O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, checks the new file's owner and
// allocates its pages (fallocate) so that a full /dev/shm fails at Create
// and not later with SIGBUS. Open accepts only names of that form, refuses
// symlinks (O_NOFOLLOW), anything but a regular file of this user with mode
// 0600, and a header of another magic, version or size; the header is
// checked again in the mapping. Any error of Create or Open means: stay on
// TCP. Other platforms than Linux on amd64 and arm64 get ErrNotSupported.
//
// Each ring is mapped twice, back to back, so that every run of readable
// or writable bytes is one contiguous slice, across the wrap: writes never
// split, and Peek hands the reader a whole frame in place.
//
// # Writing
//
// The Writer of a segment feeds the ring the peer reads. TryWrite(parts...)
// copies what fits (like a non-blocking writev) and publishes it; no
// system call unless the reader waits on the futex. Writev(done, parts...)
// and Write write everything, publishing in chunks (a quarter of the ring,
// at most 64 KiB) so that the reader drains while the writer copies; when
// the ring is full they spin (SetSpin, DefaultSpin 50 µs; after the first
// 1 µs they call sched_yield every 64 polls so that a peer sharing the CPU
// can run), then
// wait on a futex on the ring's tail word in 20 ms slices, re-checking
// done, Close and the peer's Close between slices.
//
// # Reading
//
// The Reader drains the ring the peer writes. Peek returns every readable
// byte as one slice of the ring without copying; Advance(n) consumes. TryRead
// copies. Readable counts. None of them blocks or makes a system call
// (except to wake a writer that waits for space). ReadWait / Read block:
// spin, then futex wait on the head word, for tests, benchmarks and callers
// that park on nothing else.
//
// # Parking outside the ring: the doorbell
//
// dsmexec's progress engine parks on its peers' sockets, not on this
// package's futexes. A reader about to park:
//
//	r.PrepareSleep()                       // readerSleep := 1 (sequentially consistent store)
//	if n, err := r.Readable(); n > 0 || err != nil {
//		r.CancelSleep()                // data came in between: do not park
//	} else {
//		park on the sockets            // a doorbell frame on TCP wakes it
//		r.CancelSleep()
//	}
//
// and a writer, after every TryWrite that wrote bytes:
//
//	if w.NeedsDoorbell() { send a doorbell frame to the peer on TCP } // CAS readerSleep 1 → 0
//
// (Writev does that itself through the function given to SetDoorbell, after
// each chunk it publishes: without it a write longer than the free space
// would wait for a reader asleep elsewhere.)
//
// A writer that finds the ring full and parks on its sockets does the
// same the other way round: PrepareWait, re-check Writable, park; the
// reader checks WriterNeedsDoorbell after consuming and rings the writer's
// doorbell (writer_wait = 2 in spec.md). Not to be mixed with Writev on
// one ring.
//
// No wake-up is lost. The reader stores the flag, then loads the head; the
// writer stores the head, then loads the flag. All four are sequentially
// consistent atomics (XCHG for the stores on amd64, STLR/LDAR on arm64;
// the instructions give the same order across processes as across
// threads), so in their single total order either the reader's load comes
// after the writer's store, and the reader sees the bytes and does not
// park, or the writer's load comes after the reader's store, and the
// writer sees the flag and rings. A doorbell rung before the reader
// actually parks waits in the socket, so it still wakes it. A spurious
// doorbell (the reader cancelled after all) costs one empty wake.
// TestDoorbellNoLostWakeup (two goroutines, one mapping) and
// TestTwoProcesses (two processes, pipes as the sockets) stream tens of
// MiB through small rings with the reader parking whenever the ring is
// empty; a reader parked for 10 s with bytes in its ring fails them.
// -race does not see the ring memory (it is outside the Go heap): these
// tests, not the race detector, check the protocol.
//
// The futex waits pair the same way: a waiter sets its flag (readerSleep
// = 2, or writerWait = 1), re-checks the index, then FUTEX_WAITs on the low
// 32 bits of the index it saw (not FUTEX_PRIVATE: the word is shared
// between processes); the other side stores the index, then loads the
// flag and, only if it is set, clears it and issues FUTEX_WAKE. The fast
// path therefore makes no system call, and the kernel's value check in
// FUTEX_WAIT closes the gap between the re-check and the sleep. The
// 20 ms timeout bounds every wait anyway.
//
// # A hostile or broken peer
//
// Each side keeps its own index in private memory and only ever stores it;
// the peer's index is loaded and checked on every use (the writer needs
// head−tail ∈ [0, size], the reader the same), so no value the peer writes
// can make a slice reach outside the ring: it makes the call return
// ErrCorrupt, and the ring stays failed (FuzzRing, FuzzHeader,
// TestCorruptIndices). The bytes themselves are the peer's to write even
// while the reader looks at them through Peek: read each header field once
// and check it before use. A same-user process that truncates the file
// while it is mapped could make an access fault with SIGBUS; a process of
// the same user can also ptrace ours, so that is outside what this package
// defends against (a sealed memfd would close it: see spec.md).
//
// Liveness is the caller's: keep the TCP connection as the liveness
// channel and Close the segment (or close the done channel of a blocking
// call) when the peer is lost; a waiter returns within ~20 ms. Close wakes
// this side's and the peer's futex waiters but not a peer parked on its
// socket: closing the TCP connection does that.
//
// # Numbers
//
// `go test -run '^$' -bench . -count 3 ./internal/shm`, two processes (the
// test binary re-executed as the peer), against a Unix socketpair with
// blocking read/write measured in the same run. Measured 2026-12-03 on a
// 2-vCPU VM shared with other jobs, load average 10–13: both CPUs were
// busy with other work, so the two processes mostly shared one CPU and
// these are far from the 0.21 µs / 17–22 GB/s a prototype of the same
// design reached on a quiet machine. Re-measure quietly.
//
//	8 B one-way, spin then futex       1.6–8.7 µs   (socketpair 7.4–14 µs; ratio 1.1–4.8×)
//	8 B one-way, futex at once         6.0–9.1 µs
//	1 MiB stream, 512 KiB ring         3.0–7.7 GB/s (socketpair 2.7–4.6 GB/s)
//	1 MiB stream, 1 MiB ring           3.4–12.7 GB/s
//	1 MiB stream, 64 KiB ring          1.2–2.5 GB/s: too small, writer and reader alternate
//	TryWrite+NeedsDoorbell+Peek+Advance of 8 B, one goroutine: 80–260 ns wall, ~45 ns of CPU
//
// Rings of 256 KiB to 1 MiB were indistinguishable in the noise; 512 KiB
// is the default (8 ranks on a host: 28 links, 28 MiB of /dev/shm, which
// also fits a container's default 64 MiB /dev/shm). Publishing in chunks
// of 16, 64 or 256 KiB made no measurable difference; 64 KiB is kept.
package shm
