package collective

import (
	"encoding/binary"
	"fmt"
	"github.com/dsmexec/dsmexec/internal/transporttest"
	"testing"
)

// testWorld is a set of transports, one per rank, and a way to abort them
// all (every blocked call returns an error).
type testWorld struct {
	ends  []Transport
	abort func()
}

func (w testWorld) size() int { return len(w.ends) }

// memWorld builds an in-memory world; seq wraps each end in Sequenced.
func memWorld(t testing.TB, n int, reorder, seq bool) testWorld {
	m := transporttest.NewMemNet(n, reorder, uint64(n)*7919)
	t.Cleanup(m.Close)
	w := testWorld{abort: m.Close}
	for _, e := range m.Ends() {
		var tr Transport = e
		if seq {
			tr = Sequenced(tr)
		}
		w.ends = append(w.ends, tr)
	}
	return w
}

// eagerEnd hides the transport's RecvWithin: a Sequenced transport over it
// says its hellos at the start of every call.
type eagerEnd struct{ Transport }

// eagerWorld is memWorld with eager hellos.
func eagerWorld(t testing.TB, n int, reorder bool) testWorld {
	m := transporttest.NewMemNet(n, reorder, uint64(n)*7919)
	t.Cleanup(m.Close)
	w := testWorld{abort: m.Close}
	for _, e := range m.Ends() {
		w.ends = append(w.ends, Sequenced(eagerEnd{e}))
	}
	return w
}

func memWorldNet(t testing.TB, n int) (testWorld, *transporttest.MemNet) {
	m := transporttest.NewMemNet(n, false, 1)
	t.Cleanup(m.Close)
	w := testWorld{abort: m.Close}
	for _, e := range m.Ends() {
		w.ends = append(w.ends, e)
	}
	return w, m
}

func tcpWorld(t testing.TB, n int) (testWorld, *transporttest.TCPMesh) {
	m := transporttest.NewTCPMesh(t, n)
	w := testWorld{abort: m.Close}
	for _, e := range m.Ends {
		w.ends = append(w.ends, e)
	}
	return w, m
}

// run calls body for every rank in its own goroutine and returns the
// errors. A rank that returns an error aborts the world if abortOnError is
// set. If the ranks are not done after a generous time the world is aborted
// and the test fails with a goroutine dump: a hang is a failure, not a
// timeout of the whole binary.
func (w testWorld) run(t testing.TB, body func(rank int, tr Transport) error) []error {
	t.Helper()
	return transporttest.RunRanks(t, w.size(), hangAfter, w.abort, func(r int) error {
		return body(r, w.ends[r])
	})
}

// mustRun is run where every rank must succeed.
func (w testWorld) mustRun(t testing.TB, body func(rank int, tr Transport) error) {
	t.Helper()
	for r, err := range w.run(t, body) {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

// someRanks lists a few interesting ranks of a world of n.
func someRanks(n int) []int {
	rs := []int{0}
	if n > 2 {
		rs = append(rs, n/2)
	}
	if n > 1 {
		rs = append(rs, n-1)
	}
	return rs
}

// pattern returns n deterministic bytes depending on seed.
func pattern(seed, n int) []byte {
	b := make([]byte, (n+7)&^7)
	x := uint64(seed)*0x9e3779b97f4a7c15 + 1
	for i := 0; i < len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	return b[:n:n]
}

func describe(b []byte) string {
	if len(b) <= 16 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%d bytes %x...", len(b), b[:16])
}

// hangAfter is how long run waits before it calls the ranks hung.
var hangAfter = transporttest.HangAfter
