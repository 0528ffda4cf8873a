package shm

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func FuzzHeader(f *testing.F) {
	good := make([]byte, headerLen)
	putHeader(good, 4096, 8192)
	f.Add(good, int64(4096+2*8192))
	f.Add(good[:10], int64(0))
	f.Add(make([]byte, headerLen), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		h, err := parseHeader(b, 4096, size)
		if err != nil {
			if !errors.Is(err, ErrBadSegment) {
				t.Fatalf("error %v does not wrap ErrBadSegment", err)
			}
			return
		}
		if h.ctlSize != 4096 || h.ringSize < 4096 || h.ringSize&(h.ringSize-1) != 0 || int64(h.ctlSize)+2*int64(h.ringSize) != size {
			t.Fatalf("accepted %+v for a file of %d bytes", h, size)
		}
	})
}

// fakeSegment lays out a segment on ordinary memory: the same layout,
// without the mirror mapping (reads past the ring's end see zeros instead
// of its start, which is fine for bounds checking).
func fakeSegment(ringSize int) *Segment {
	const ctl = 4096
	mem := make([]byte, ctl+4*ringSize)
	s := &Segment{name: "fuzz"}
	s.attach(mem, ctl, ringSize, SideA)
	s.SetSpin(0)
	return s
}

// FuzzRing treats the input as a script in which a hostile peer writes
// arbitrary values into the control page between this side's calls; each
// call must return (bytes or an error), never panic or reach outside the
// ring.
func FuzzRing(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 4})
	f.Add([]byte{10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 4, 6})
	f.Add([]byte{11, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 2, 5, 8})
	stopped := make(chan struct{})
	close(stopped)
	f.Fuzz(func(t *testing.T, script []byte) {
		const size = 4096
		s := fakeSegment(size)
		w, r := s.Writer(), s.Reader()
		buf := make([]byte, 3*size)
		words := []*uint64{w.head, w.tail, r.head, r.tail}
		for len(script) > 0 {
			op := script[0]
			script = script[1:]
			arg := 0
			if len(script) > 0 {
				arg = int(script[0]) * 61
			}
			var err error
			switch op % 16 {
			case 0:
				_, err = w.TryWrite(buf[:arg%len(buf)])
			case 1:
				_, err = w.TryWrite(buf[:arg%size], buf[:arg%7])
			case 2:
				w.NeedsDoorbell()
				_, err = w.Writable()
			case 3:
				_, err = r.Readable()
			case 4:
				_, err = r.TryRead(buf[:arg%len(buf)])
			case 5:
				var p []byte
				p, err = r.Peek()
				if len(p) > size {
					t.Fatalf("Peek returned %d bytes from a ring of %d", len(p), size)
				}
				r.Advance(len(p) / 2)
			case 6:
				r.PrepareSleep()
			case 7:
				r.CancelSleep()
			case 8:
				_, err = w.Writev(stopped, buf[:arg%len(buf)])
			case 9, 10, 11, 12:
				// The peer writes one of the four index words (the peer
				// writes tail of our writer's ring and head of our reader's;
				// garbage in our own published words must not matter either).
				if len(script) < 8 {
					return
				}
				*words[op%16-9] = binary.LittleEndian.Uint64(script)
				script = script[8:]
				continue
			case 13:
				if len(script) < 8 {
					return
				}
				copy(s.ctl[offRing0+ringReaderSleep:], script[:4])
				copy(s.ctl[offRing1+ringWriterWait:], script[4:8])
				script = script[8:]
				continue
			case 14:
				_, err = r.ReadWait(stopped, buf[:1+arg%size])
			case 15:
				*s.peerClosed = uint32(arg)
			}
			if len(script) > 0 {
				script = script[1:]
			}
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrStopped) &&
				!errors.Is(err, ErrPeerClosed) && err != io.EOF {
				t.Fatalf("op %d: unexpected error %v", op, err)
			}
		}
	})
}
