package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

var (
	// ErrNotSupported is returned by Create and Open on platforms without
	// the shared-memory transport (anything but Linux on amd64 or arm64).
	ErrNotSupported = errors.New("shm: shared memory transport not supported on this platform")
	// ErrUnavailable wraps every reason Create cannot make a segment
	// (no /dev/shm, not writable, full): the caller stays on TCP.
	ErrUnavailable = errors.New("shm: shared memory unavailable")
	// ErrCorrupt is returned once the peer wrote an index that cannot be
	// right (more readable bytes than the ring holds, a read position past
	// the write position); the ring is unusable from then on.
	ErrCorrupt = errors.New("shm: corrupt ring")
	// ErrBadSegment is returned by Open for a segment that is not a
	// dsmexec ring of this version, owned by this user, mode 0600.
	ErrBadSegment = errors.New("shm: bad segment")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("shm: segment closed")
	// ErrPeerClosed is returned by a writer once the peer closed its end:
	// nobody will drain the ring again.
	ErrPeerClosed = errors.New("shm: peer closed the segment")
	// ErrStopped is returned by a blocking call whose done channel closed.
	ErrStopped = errors.New("shm: wait stopped")
)

// Side says which end of a segment a process holds. The creator is A and
// writes ring 0 (A→B), reading ring 1; the opener is B and does the
// opposite.
type Side int

const (
	SideA Side = 0
	SideB Side = 1
)

func (s Side) String() string {
	if s == SideA {
		return "A"
	}
	return "B"
}

// Layout of the control page (all integers native endian: both ends are on
// one host). Every word written by one side only sits on its own 128-byte
// line so that the two cores do not share a line they both write (128: the
// adjacent-line prefetcher pulls pairs of 64-byte lines).
const (
	offMagic    = 0   // [8]byte "dsmxshm\x00"
	offVersion  = 8   // uint32
	offCtlSize  = 12  // uint32: bytes of the control page (the OS page size, >= 4096)
	offRingSize = 16  // uint64: data bytes of each ring
	offClosedA  = 128 // uint32: 1 once A called Close
	offClosedB  = 192 // uint32: 1 once B called Close
	offRing0    = 512 // ring 0 (A→B) control block
	offRing1    = 1024

	// Within a ring control block.
	ringHead        = 0   // uint64: bytes ever written; written by the producer only
	ringTail        = 128 // uint64: bytes ever read; written by the consumer only
	ringReaderSleep = 256 // uint32: awake / sleepDoorbell / sleepFutex; set by the consumer, cleared by either
	ringWriterWait  = 384 // uint32: 1 while the producer waits for space; set by the producer, cleared by either

	headerLen = 24
	minCtl    = 4096

	version = 1

	// DefaultRingSize is the data size of each direction when Create is
	// given 0. Chosen by measurement (doc.go).
	DefaultRingSize = 512 << 10
	// MaxRingSize bounds what Open accepts from a header.
	MaxRingSize = 1 << 30

	// Reader sleep states.
	awake         = 0
	sleepDoorbell = 1 // the consumer parks elsewhere and needs a doorbell
	sleepFutex    = 2 // the consumer waits on the futex of the head word

	// Writer wait states.
	writerFutex    = 1 // the producer waits on the futex of the tail word
	writerDoorbell = 2 // the producer parks elsewhere and needs a doorbell

	// futexTimeout bounds every futex wait so that a done channel is seen
	// within this time even when nobody wakes the futex.
	futexTimeout = 20 * time.Millisecond
	// DefaultSpin is how long a blocking call spins before it waits on a
	// futex.
	DefaultSpin = 50 * time.Microsecond
	// pureSpin is how long a spin-wait polls before it starts yielding the
	// CPU between polls: a peer running on another CPU answers well within
	// it, and a peer waiting for this CPU loses at most this much. Measured
	// on 2 overloaded vCPUs: 0 and 1 µs gave 1.6–5.5 µs one-way, 3 µs
	// 5.6–17 µs, 10 µs 15 µs (a sched_yield costs ~0.3–0.7 µs there).
	pureSpin = 1 * time.Microsecond
	// writeChunk is how many bytes a blocking write publishes at a time, so
	// that the reader drains while the writer copies (doc.go).
	writeChunk = 64 << 10
)

var magic = [8]byte{'d', 's', 'm', 'x', 's', 'h', 'm', 0}

// header is the decoded first bytes of the control page.
type header struct {
	ctlSize  int
	ringSize int
}

// putHeader writes a header for the given sizes into b (at least headerLen).
func putHeader(b []byte, ctlSize, ringSize int) {
	copy(b[offMagic:], magic[:])
	binary.NativeEndian.PutUint32(b[offVersion:], version)
	binary.NativeEndian.PutUint32(b[offCtlSize:], uint32(ctlSize))
	binary.NativeEndian.PutUint64(b[offRingSize:], uint64(ringSize))
}

// parseHeader checks the header bytes b against what this process expects:
// control page size pageCtl, and a file of fileSize bytes. Any input gives
// a header or an error, never a panic (FuzzHeader).
func parseHeader(b []byte, pageCtl int, fileSize int64) (header, error) {
	if len(b) < headerLen {
		return header{}, fmt.Errorf("%w: header is %d bytes, want %d", ErrBadSegment, len(b), headerLen)
	}
	if [8]byte(b[offMagic:offMagic+8]) != magic {
		return header{}, fmt.Errorf("%w: magic %q", ErrBadSegment, b[offMagic:offMagic+8])
	}
	if v := binary.NativeEndian.Uint32(b[offVersion:]); v != version {
		return header{}, fmt.Errorf("%w: version %d, want %d", ErrBadSegment, v, version)
	}
	ctl := binary.NativeEndian.Uint32(b[offCtlSize:])
	if int64(ctl) != int64(pageCtl) {
		return header{}, fmt.Errorf("%w: control page of %d bytes, want %d", ErrBadSegment, ctl, pageCtl)
	}
	rs := binary.NativeEndian.Uint64(b[offRingSize:])
	if err := checkRingSize(rs, pageCtl); err != nil {
		return header{}, err
	}
	if want := int64(ctl) + 2*int64(rs); fileSize != want {
		return header{}, fmt.Errorf("%w: file is %d bytes, header says %d", ErrBadSegment, fileSize, want)
	}
	return header{ctlSize: int(ctl), ringSize: int(rs)}, nil
}

// checkRingSize: a power of two, at least one page, at most MaxRingSize.
func checkRingSize(rs uint64, page int) error {
	if rs < uint64(page) || rs > MaxRingSize || rs&(rs-1) != 0 {
		return fmt.Errorf("%w: ring size %d (want a power of two in [%d, %d])", ErrBadSegment, rs, page, MaxRingSize)
	}
	return nil
}

// ctlSizeFor is the control page size for an OS page size.
func ctlSizeFor(page int) int {
	if page < minCtl {
		return minCtl
	}
	return page
}

// Segment is one end of a shared-memory link: a control page and two rings,
// one per direction. Writer and Reader are the two halves this end uses;
// each may be used by one goroutine at a time (single producer, single
// consumer), the two concurrently.
type Segment struct {
	name string
	side Side
	ctl  []byte // the control page of the mapping
	mem  []byte // the whole mapping (mirrored rings), nil once unmapped
	w    Writer
	r    Reader

	closed     atomic.Bool
	ownClosed  *uint32
	peerClosed *uint32
}

// Name is the segment's name under /dev/shm, to send to the peer.
func (s *Segment) Name() string { return s.name }

// Side is SideA for the creator, SideB for the opener.
func (s *Segment) Side() Side { return s.side }

// RingSize is the data capacity of each direction in bytes.
func (s *Segment) RingSize() int { return int(s.w.size) }

// Writer is this end's producer half.
func (s *Segment) Writer() *Writer { return &s.w }

// Reader is this end's consumer half.
func (s *Segment) Reader() *Reader { return &s.r }

// SetSpin sets how long the blocking calls (Writer.Writev when the ring is
// full, Reader.ReadWait when it is empty) spin before they wait on a futex;
// 0 waits at once. Call before use.
func (s *Segment) SetSpin(d time.Duration) {
	s.w.spin = d
	s.r.spin = d
}

// attach fills in the two halves over a mapping laid out as
// [ctl][ring0 data, mirrored: 2*rs][ring1 data, mirrored: 2*rs].
func (s *Segment) attach(mem []byte, ctlSize, ringSize int, side Side) {
	s.mem = mem
	s.ctl = mem[:ctlSize:ctlSize]
	s.side = side
	ring := func(i int) (ctl []byte, data []byte) {
		off := []int{offRing0, offRing1}[i]
		d := ctlSize + i*2*ringSize
		return s.ctl[off : off+512], mem[d : d+2*ringSize : d+2*ringSize]
	}
	wi, ri := 0, 1
	if side == SideB {
		wi, ri = 1, 0
	}
	wc, wd := ring(wi)
	rc, rd := ring(ri)
	s.w.init(s, wc, wd, ringSize)
	s.r.init(s, rc, rd, ringSize)
	a := word32(s.ctl, offClosedA)
	b := word32(s.ctl, offClosedB)
	if side == SideA {
		s.ownClosed, s.peerClosed = a, b
	} else {
		s.ownClosed, s.peerClosed = b, a
	}
	s.w.spin = DefaultSpin
	s.r.spin = DefaultSpin
}

// peerGone reports whether the peer called Close.
func (s *Segment) peerGone() bool { return atomic.LoadUint32(s.peerClosed) != 0 }

// markClosed sets this side's closed word and wakes every futex of the
// segment: this process's waiters and the peer's.
func (s *Segment) markClosed() {
	atomic.StoreUint32(s.ownClosed, 1)
	for _, p := range []*uint64{s.w.head, s.w.tail, s.r.head, s.r.tail} {
		futexWake(low32(p))
	}
}

func word32(b []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&b[off]))
}

func word64(b []byte, off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&b[off]))
}
