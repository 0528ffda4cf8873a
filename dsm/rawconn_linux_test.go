package dsm

import (
	"bytes"
	"io"
	"testing"

	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// TestRawConnFrames sends frames of many sizes through a socketpair with
// small buffers: writes are partial (EAGAIN), reads split frames anywhere,
// and every frame arrives whole and in order, including bytes read ahead
// before the connection was handed over (leftover).
func TestRawConnFrames(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4096)
	}
	const count = 300
	body := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, (i*997)%(msgLen+4096+1)) }
	var pre []byte // two frames "read ahead" by a handshake
	for i := range 2 {
		h := wire.MakeHeader(wire.ChanDSM, uint8(i), 0, 7, len(body(i)))
		pre = append(append(pre, h[:]...), body(i)...)
	}
	pre = append(pre, 1, 4) // and a partial header: the rest comes on the socket
	w := newRawConn(fds[0], 1, nil)
	r := newRawConn(fds[1], 0, pre)
	var rest []byte
	{
		h := wire.MakeHeader(wire.ChanDSM, 2, 0, 7, len(body(2)))
		rest = append(h[2:], body(2)...)
	}
	w.out = append(w.out, rest...)
	for i := 3; i < count; i++ {
		w.queue(wire.ChanDSM, uint8(i), 7, body(i)[:len(body(i))/2], body(i)[len(body(i))/2:])
	}
	got, partial := 0, false
	for got < count {
		left, err := w.flush()
		if err != nil {
			t.Fatal(err)
		}
		partial = partial || left
		for {
			f, ok, err := r.next(msgLen + 4096)
			if err != nil {
				t.Fatalf("frame %d: %v", got, err)
			}
			if !ok {
				break
			}
			if int(f.Type) != got%256 || f.Source != 7 || !bytes.Equal(f.Body, body(got)) {
				t.Fatalf("frame %d: type %d source %d, %d bytes; want type %d, %d bytes", got, f.Type, f.Source, len(f.Body), got%256, len(body(got)))
			}
			got++
		}
		if got == count {
			break
		}
		if _, err := r.fill(); err != nil {
			t.Fatalf("after %d frames: %v", got, err)
		}
	}
	if !partial {
		t.Error("every write went out whole: the test did not exercise partial writes")
	}
	w.close()
	if _, err := r.fill(); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
	r.close()
}

// TestRawConnRefusesOversizedFrames: a header announcing more than a
// page message is an error before anything is allocated for it.
func TestRawConnRefusesOversizedFrames(t *testing.T) {
	h := wire.MakeHeader(wire.ChanDSM, 2, 0, 1, 1<<30)
	c := newRawConn(-1, 0, h[:])
	if _, _, err := c.next(msgLen + 4096); err == nil {
		t.Fatal("a 1 GiB frame was accepted")
	}
}
