package rank

import (
	"testing"

	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// FuzzLinkParse feeds arbitrary bytes to a link's frame parser: it must
// deliver well-formed messages and refuse anything else without a panic,
// an out-of-range access, or a huge allocation.
func FuzzLinkParse(f *testing.F) {
	msg := func(ctx uint32, tag int64, payload []byte, flags uint8, total int64) []byte {
		h := wire.MakeHeader(wire.ChanUser, wire.TypeUserMessage, flags, 1, wire.UserPrefixSize+len(payload))
		b := append([]byte{}, h[:]...)
		var p [wire.UserPrefixSize]byte
		wire.PutUserPrefix(p[:], ctx, tag, total)
		b = append(b, p[:]...)
		return append(b, payload...)
	}
	f.Add(msg(0, 5, []byte("hello"), 0, 5))
	f.Add(msg(0, 1<<40, nil, 0, 0))
	f.Add(msg(2, 0, []byte("ab"), wire.FlagMore, 4))
	f.Add(append(msg(0, 1, []byte("x"), 0, 1), 1, 30, 0, 0))
	f.Add(msg(0, 1, []byte("short"), 0, 1<<35))
	f.Fuzz(func(t *testing.T, data []byte) {
		e := newEngine(0, 2)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[1])
		l, err := newLinkFd(e, 1, fds[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > len(l.rbuf) {
			data = data[:len(l.rbuf)]
		}
		l.rend = copy(l.rbuf, data)
		if err := e.start([]*link{nil, l}, 0, 1<<20); err != nil {
			t.Fatal(err)
		}
		defer e.shutdown(0)
		l.pump()
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.unexpBytes > 1<<20 {
			t.Fatalf("%d bytes taken for unexpected messages", e.unexpBytes)
		}
	})
}
