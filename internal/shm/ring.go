package shm

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// low32 is the futex word of a 64-bit index: its low half, which is the
// first four bytes on the little-endian platforms the futex code is built
// for. Consecutive values of an index that a waiter can see differ in
// their low 32 bits because no index moves by 2^32 while the other side
// waits (a ring holds at most MaxRingSize bytes).
func low32(p *uint64) *uint32 { return (*uint32)(unsafe.Pointer(p)) }

// Writer is the producer half of a ring: a byte stream to the peer.
// Only this side writes head; the tail is the peer's and is checked
// before use.
type Writer struct {
	mu          sync.Mutex // one writer at a time; Close waits for it
	seg         *Segment
	head        *uint64 // shared: published write position
	tail        *uint64 // shared: peer's read position (untrusted)
	readerSleep *uint32
	writerWait  *uint32
	data        []byte // 2*size: the ring and its mirror
	size, mask  uint64
	pos         uint64 // our write position; the shared head is only ever set from it
	err         error  // sticky ErrCorrupt
	spin        time.Duration
	doorbell    func()
}

func (w *Writer) init(s *Segment, ctl, data []byte, size int) {
	w.seg = s
	w.head = word64(ctl, ringHead)
	w.tail = word64(ctl, ringTail)
	w.readerSleep = word32(ctl, ringReaderSleep)
	w.writerWait = word32(ctl, ringWriterWait)
	w.data = data
	w.size = uint64(size)
	w.mask = uint64(size - 1)
}

// SetDoorbell sets the function a blocking write (Writev, Write) calls after
// it published bytes while the reader was parked outside the ring
// (Reader.PrepareSleep): the engine sends a doorbell frame on the peer's
// socket. Without it a blocking write longer than the free space can wait
// forever for a reader that sleeps elsewhere. f runs with the Writer
// locked: it must not call the Writer. Set before use.
func (w *Writer) SetDoorbell(f func()) { w.doorbell = f }

// free returns the bytes the ring can take now, after checking the peer's
// tail: it must lie in [pos-size, pos].
func (w *Writer) free() (uint64, error) {
	t := atomic.LoadUint64(w.tail)
	used := w.pos - t
	if used > w.size {
		w.err = fmt.Errorf("%w: %s's read position %d with write position %d, ring of %d bytes", ErrCorrupt, w.seg.side^1, t, w.pos, w.size)
		return 0, w.err
	}
	return w.size - used, nil
}

func (w *Writer) usable() error {
	if w.seg.closed.Load() {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if w.seg.peerGone() {
		return ErrPeerClosed
	}
	return nil
}

// copyIn copies from parts, skipping the first skip bytes, into at most max
// free bytes at the write position, and returns the count. The mirror
// makes the destination contiguous.
func (w *Writer) copyIn(parts [][]byte, skip, max uint64) uint64 {
	off := w.pos & w.mask
	dst := w.data[off : off+max]
	var n uint64
	for _, p := range parts {
		if skip >= uint64(len(p)) {
			skip -= uint64(len(p))
			continue
		}
		k := copy(dst[n:], p[skip:])
		skip = 0
		n += uint64(k)
		if n == max {
			break
		}
	}
	return n
}

// publish makes n more bytes visible and wakes a reader waiting on the
// futex. The store and the load that follows are sequentially consistent:
// either the reader's re-check after it set readerSleep sees this head, or
// this load sees readerSleep set (doc.go).
func (w *Writer) publish(n uint64) {
	w.pos += n
	atomic.StoreUint64(w.head, w.pos)
	if atomic.LoadUint32(w.readerSleep) == sleepFutex &&
		atomic.CompareAndSwapUint32(w.readerSleep, sleepFutex, awake) {
		futexWake(low32(w.head))
	}
}

// TryWrite copies as many bytes of parts (in order, as one stream) as fit
// now and publishes them; it never blocks and makes no system call unless
// the reader waits on the futex (ReadWait). It returns the bytes written,
// possibly fewer than given, like a non-blocking socket. After it the
// caller checks NeedsDoorbell.
func (w *Writer) TryWrite(parts ...[]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tryWrite(parts)
}

func (w *Writer) tryWrite(parts [][]byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	free, err := w.free()
	if err != nil || free == 0 {
		return 0, err
	}
	n := w.copyIn(parts, 0, free)
	if n > 0 {
		w.publish(n)
	}
	return int(n), nil
}

// TryWriteBell is TryWrite followed by NeedsDoorbell, under one turn of
// the Writer's lock (the engine's send path): doorbell reports that bytes
// were published while the reader was parked outside the ring.
func (w *Writer) TryWriteBell(parts [][]byte) (n int, doorbell bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err = w.tryWrite(parts)
	if n > 0 {
		doorbell = w.needsDoorbell()
	}
	return n, doorbell, err
}

// NeedsDoorbell reports whether the reader parked outside the ring since
// it last looked (Reader.PrepareSleep) and clears that flag: true means the
// caller must wake it (a doorbell frame on the socket the reader parks on).
// Call after publishing bytes; no system call.
func (w *Writer) NeedsDoorbell() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.seg.closed.Load() && w.needsDoorbell()
}

func (w *Writer) needsDoorbell() bool {
	return atomic.LoadUint32(w.readerSleep) == sleepDoorbell &&
		atomic.CompareAndSwapUint32(w.readerSleep, sleepDoorbell, awake)
}

// PrepareWait announces that the caller, finding the ring full, is about
// to park outside the ring (on the peer's socket) until the reader makes
// room. The caller must then check Writable once more and park only if it
// is still 0; a reader that consumes after that check sees the flag
// (Reader.WriterNeedsDoorbell) and rings the doorbell. Call CancelWait
// when the caller does not park or wakes for another reason. No system
// call. Not to be mixed with the blocking Writev.
func (w *Writer) PrepareWait() { w.setWait(writerDoorbell) }

// CancelWait withdraws PrepareWait.
func (w *Writer) CancelWait() { w.setWait(0) }

func (w *Writer) setWait(v uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seg.closed.Load() {
		atomic.StoreUint32(w.writerWait, v)
	}
}

// Writable returns how many bytes TryWrite would take now; no system
// call.
func (w *Writer) Writable() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	n, err := w.free()
	return int(n), err
}

// Write writes all of p, blocking while the ring is full (io.Writer). It
// stops only on Close, the peer's Close or a corrupt ring.
func (w *Writer) Write(p []byte) (int, error) { return w.Writev(nil, p) }

// Writev writes all of parts as one stream, blocking while the ring is
// full: it spins for the spin time (Segment.SetSpin), then waits on the
// futex of the tail word until the reader consumes. Bytes are published
// in chunks of at most 64 KiB so that the reader drains while this copies.
// It returns early with ErrStopped when done closes, ErrClosed after Close,
// ErrPeerClosed after the peer's Close; each is seen within ~20 ms while
// waiting. After each publish it rings the doorbell (SetDoorbell) if the
// reader parked outside the ring.
func (w *Writer) Writev(done <-chan struct{}, parts ...[]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var total uint64
	for _, p := range parts {
		total += uint64(len(p))
	}
	var n uint64
	for n < total {
		if err := w.usable(); err != nil {
			return int(n), err
		}
		free, err := w.free()
		if err != nil {
			return int(n), err
		}
		if free == 0 {
			if free, err = w.waitFree(done); err != nil {
				return int(n), err
			}
		}
		k := w.copyIn(parts, n, min(free, w.chunk()))
		w.publish(k)
		n += k
		if w.doorbell != nil && w.needsDoorbell() {
			w.doorbell()
		}
	}
	return int(n), nil
}

// waitFree waits until the ring has room: spin, then announce the wait in
// writerWait, re-check, and sleep on the futex of the tail word until it
// changes. The reader wakes the futex only when writerWait is set.
func (w *Writer) waitFree(done <-chan struct{}) (uint64, error) {
	start := time.Now()
	for i := 0; ; i++ {
		free, err := w.free()
		if err != nil || free > 0 {
			return free, err
		}
		if i&63 == 63 {
			if err := w.stopped(done); err != nil {
				return 0, err
			}
			if !spinMore(start, w.spin) {
				break
			}
		}
	}
	for {
		atomic.StoreUint32(w.writerWait, writerFutex)
		free, err := w.free()
		if err != nil || free > 0 {
			atomic.StoreUint32(w.writerWait, 0)
			return free, err
		}
		futexWait(low32(w.tail), uint32(w.pos-w.size), futexTimeout) // the tail just seen: the ring was full
		if err := w.stopped(done); err != nil {
			atomic.StoreUint32(w.writerWait, 0)
			return 0, err
		}
	}
}

// chunk is the most a blocking write publishes at once: a quarter of the
// ring, at most writeChunk, so that the reader always has a piece to copy
// while the writer fills the next.
func (w *Writer) chunk() uint64 { return min(writeChunk, w.size/4) }

// spinMore paces a spin-wait begun at start: it says whether to go on
// polling, and after the first pureSpin it gives the CPU away (sched_yield)
// at each call, so that a peer that shares this CPU can run and produce
// what is waited for. Called every 64 polls.
func spinMore(start time.Time, limit time.Duration) bool {
	el := time.Since(start)
	if el >= limit {
		return false
	}
	if el >= pureSpin {
		osYield()
	}
	return true
}

func (w *Writer) stopped(done <-chan struct{}) error {
	select {
	case <-done:
		return ErrStopped
	default:
	}
	return w.usable()
}

// Reader is the consumer half of a ring. Only this side writes tail; the
// head is the peer's and is checked before use.
type Reader struct {
	mu          sync.Mutex
	seg         *Segment
	head        *uint64 // shared: peer's write position (untrusted)
	tail        *uint64 // shared: our published read position
	readerSleep *uint32
	writerWait  *uint32
	data        []byte
	size, mask  uint64
	pos         uint64 // our read position
	seen        uint64 // the last head checked: pos..seen is readable
	err         error
	spin        time.Duration
}

func (r *Reader) init(s *Segment, ctl, data []byte, size int) {
	r.seg = s
	r.head = word64(ctl, ringHead)
	r.tail = word64(ctl, ringTail)
	r.readerSleep = word32(ctl, ringReaderSleep)
	r.writerWait = word32(ctl, ringWriterWait)
	r.data = data
	r.size = uint64(size)
	r.mask = uint64(size - 1)
}

// avail loads and checks the peer's head: it must lie in [pos, pos+size].
func (r *Reader) avail() (uint64, error) {
	if r.err != nil {
		return 0, r.err
	}
	h := atomic.LoadUint64(r.head)
	n := h - r.pos
	if n > r.size {
		r.err = fmt.Errorf("%w: %s's write position %d with read position %d, ring of %d bytes", ErrCorrupt, r.seg.side^1, h, r.pos, r.size)
		return 0, r.err
	}
	r.seen = h
	return n, nil
}

// availOrEOF is avail, with io.EOF for an empty ring whose writer closed.
func (r *Reader) availOrEOF() (uint64, error) {
	if r.seg.closed.Load() {
		return 0, ErrClosed
	}
	n, err := r.avail()
	if n == 0 && err == nil && r.seg.peerGone() {
		// The peer stores its last head before its closed word: look again.
		if n, err = r.avail(); n == 0 && err == nil {
			return 0, io.EOF
		}
	}
	return n, err
}

// advance publishes the read position and wakes a writer waiting for
// space (same Dekker pairing as publish, with writerWait).
func (r *Reader) advance(n uint64) {
	r.pos += n
	atomic.StoreUint64(r.tail, r.pos)
	if atomic.LoadUint32(r.writerWait) == writerFutex && atomic.CompareAndSwapUint32(r.writerWait, writerFutex, 0) {
		futexWake(low32(r.tail))
	}
}

// WriterNeedsDoorbell reports whether the writer parked outside the ring
// waiting for space (Writer.PrepareWait) and clears that flag: true means
// the caller must wake it (a doorbell frame on the socket the writer parks
// on). Call after consuming bytes; no system call.
func (r *Reader) WriterNeedsDoorbell() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.seg.closed.Load() && r.writerNeedsDoorbell()
}

// OwnWriterNeedsDoorbell is WriterNeedsDoorbell without the Reader's lock
// in the usual case (the writer does not wait): like Empty, only for the
// goroutine that reads, with no Close running meanwhile.
func (r *Reader) OwnWriterNeedsDoorbell() bool {
	if atomic.LoadUint32(r.writerWait) != writerDoorbell {
		return false
	}
	return r.WriterNeedsDoorbell()
}

func (r *Reader) writerNeedsDoorbell() bool {
	return atomic.LoadUint32(r.writerWait) == writerDoorbell &&
		atomic.CompareAndSwapUint32(r.writerWait, writerDoorbell, 0)
}

// Empty reports, without taking the Reader's lock, that nothing is
// readable now and neither side closed: the usual answer of a poll, which
// Readable then need not give. Only the goroutine that reads (or one that
// took over from it with a happens-before edge) may call it.
func (r *Reader) Empty() bool {
	return r.err == nil && atomic.LoadUint64(r.head) == r.pos && !r.seg.closed.Load() && !r.seg.peerGone()
}

// Readable returns how many bytes can be read now; no system call. It
// returns io.EOF for an empty ring whose peer closed.
func (r *Reader) Readable() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.availOrEOF()
	return int(n), err
}

// TryRead copies up to len(p) readable bytes into p and consumes them; it
// never blocks and makes no system call unless the writer waits for space.
// It returns 0, nil when nothing is readable, 0, io.EOF when the peer
// closed and everything was read.
func (r *Reader) TryRead(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.OwnTryRead(p)
}

// OwnTryRead is TryRead without the Reader's lock: like Empty, only for
// the goroutine that reads, with no Close running meanwhile (the engine's
// driver: segments are closed after the last driver).
func (r *Reader) OwnTryRead(p []byte) (int, error) {
	n, err := r.availOrEOF()
	if n == 0 || err != nil {
		return 0, err
	}
	return r.copyOut(p, n), nil
}

// copyOut copies min(len(p), n) readable bytes into p and consumes them,
// publishing the read position every quarter ring (at most writeChunk) so
// that a writer waiting for space refills while this copies.
func (r *Reader) copyOut(p []byte, n uint64) int {
	n = min(n, uint64(len(p)))
	step := min(writeChunk, r.size/4)
	var done uint64
	for done < n {
		k := min(step, n-done)
		off := r.pos & r.mask
		copy(p[done:done+k], r.data[off:off+k])
		r.advance(k)
		done += k
	}
	return int(n)
}

// Peek returns every readable byte as one contiguous slice of the ring (the
// mirror mapping makes it contiguous across the wrap), without consuming
// it. The slice stays valid until Advance consumes it or Close. The peer
// can still write to that memory if it is hostile: read each field of it
// once, check, then use the copy.
func (r *Reader) Peek() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := r.availOrEOF()
	if n == 0 || err != nil {
		return nil, err
	}
	off := r.pos & r.mask
	return r.data[off : off+n : off+n], nil
}

// Advance consumes n bytes returned by the last Peek (or Readable). More
// than that is a bug in the caller and panics.
func (r *Reader) Advance(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n < 0 || uint64(n) > r.seen-r.pos {
		panic(fmt.Sprintf("shm: Advance(%d) with %d bytes known readable", n, r.seen-r.pos))
	}
	if r.seg.closed.Load() || n == 0 {
		return
	}
	r.advance(uint64(n))
}

// PrepareSleep announces that the caller is about to park outside the ring
// (on the peer's socket). The caller must then check Readable once more and
// park only if it is still 0; a writer that publishes after that check
// sees the flag (NeedsDoorbell) and rings the doorbell. Call CancelSleep
// when the caller does not park or wakes for another reason. No system
// call.
func (r *Reader) PrepareSleep() { r.setSleep(sleepDoorbell) }

// CancelSleep withdraws PrepareSleep. A doorbell may still arrive for it:
// doorbells are hints, a reader that finds nothing just parks again.
func (r *Reader) CancelSleep() { r.setSleep(awake) }

func (r *Reader) setSleep(v uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seg.closed.Load() {
		atomic.StoreUint32(r.readerSleep, v)
	}
}

// Read reads at least one byte into p, blocking while the ring is empty
// (io.Reader; ReadWait without a done channel).
func (r *Reader) Read(p []byte) (int, error) { return r.ReadWait(done0, p) }

var done0 <-chan struct{}

// ReadWait reads at least one byte into p (for len(p) > 0), blocking while
// the ring is empty: it spins for the spin time, then waits on the futex
// of the head word; the writer wakes it after publishing. For tests,
// benchmarks and callers that park on nothing else. It returns early with
// ErrStopped when done closes and ErrClosed after Close, and io.EOF once
// the peer closed and everything was read.
func (r *Reader) ReadWait(done <-chan struct{}, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	for i := 0; ; i++ {
		n, err := r.availOrEOF()
		if err != nil {
			return 0, err
		}
		if n > 0 {
			return r.copyOut(p, n), nil
		}
		if i&63 == 63 {
			if err := r.stopped(done); err != nil {
				return 0, err
			}
			if !spinMore(start, r.spin) {
				break
			}
		}
	}
	for {
		atomic.StoreUint32(r.readerSleep, sleepFutex)
		n, err := r.availOrEOF()
		if err != nil || n > 0 {
			atomic.StoreUint32(r.readerSleep, awake)
			if err != nil {
				return 0, err
			}
			return r.copyOut(p, n), nil
		}
		futexWait(low32(r.head), uint32(r.pos), futexTimeout) // r.pos == the head just seen
		if err := r.stopped(done); err != nil {
			atomic.StoreUint32(r.readerSleep, awake)
			return 0, err
		}
	}
}

func (r *Reader) stopped(done <-chan struct{}) error {
	select {
	case <-done:
		return ErrStopped
	default:
	}
	if r.seg.closed.Load() {
		return ErrClosed
	}
	return nil
}
