//go:build linux && (amd64 || arm64)

package shm

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executes itself as the peer process: TestMain runs a
// child role when childEnv is set.
const (
	childEnv     = "DSMEXEC_SHM_TEST_CHILD"
	childNameEnv = "DSMEXEC_SHM_TEST_NAME"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		if err := runChild(role, os.Getenv(childNameEnv)); err != nil {
			fmt.Fprintf(os.Stderr, "shm test child %s: %v\n", role, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// pattern is the byte at stream position i of a test stream.
func pattern(i uint64) byte { return byte(i*131 + i>>9 + i>>17) }

func fill(b []byte, at uint64) {
	for i := range b {
		b[i] = pattern(at + uint64(i))
	}
}

func check(b []byte, at uint64) error {
	for i := range b {
		if b[i] != pattern(at+uint64(i)) {
			return fmt.Errorf("stream byte %d is %#x, want %#x", at+uint64(i), b[i], pattern(at+uint64(i)))
		}
	}
	return nil
}

// readPattern reads total bytes of the fill pattern from r, at most
// bufSize at a time, and fails the test at the first wrong byte.
func readPattern(t testing.TB, r *Reader, bufSize int, total uint64) {
	t.Helper()
	buf := make([]byte, bufSize)
	var pos uint64
	for pos < total {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(buf[:n], pos); err != nil {
			t.Fatal(err)
		}
		pos += uint64(n)
	}
}

// pair makes a segment and opens it again in this process, as a peer
// would; both are closed at the end of the test.
func pair(t testing.TB, ringSize int) (a, b *Segment) {
	t.Helper()
	a, name, err := Create(ringSize)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	b, err = Open(name)
	if err != nil {
		a.Unlink()
		a.Close()
		t.Fatalf("Open: %v", err)
	}
	if err := b.Unlink(); err != nil {
		t.Fatalf("Unlink: %v", err)
	}
	if err := a.Unlink(); err != nil {
		t.Fatalf("second Unlink: %v", err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestCreateOpenRoundTrip(t *testing.T) {
	a, b := pair(t, 0)
	if a.Side() != SideA || b.Side() != SideB || a.RingSize() != DefaultRingSize || b.RingSize() != DefaultRingSize {
		t.Fatalf("sides %v %v sizes %d %d", a.Side(), b.Side(), a.RingSize(), b.RingSize())
	}
	if _, err := os.Stat(filepath.Join(dir, a.Name())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment still has a name after Unlink: %v", err)
	}
	for _, dirn := range []struct {
		w *Writer
		r *Reader
	}{{a.Writer(), b.Reader()}, {b.Writer(), a.Reader()}} {
		if n, err := dirn.w.TryWrite([]byte("hello, "), []byte("ring")); n != 11 || err != nil {
			t.Fatalf("TryWrite = %d, %v", n, err)
		}
		if n, err := dirn.r.Readable(); n != 11 || err != nil {
			t.Fatalf("Readable = %d, %v", n, err)
		}
		p, err := dirn.r.Peek()
		if string(p) != "hello, ring" || err != nil {
			t.Fatalf("Peek = %q, %v", p, err)
		}
		dirn.r.Advance(7)
		buf := make([]byte, 16)
		if n, err := dirn.r.TryRead(buf); string(buf[:n]) != "ring" || err != nil {
			t.Fatalf("TryRead = %q, %v", buf[:n], err)
		}
		if n, err := dirn.r.TryRead(buf); n != 0 || err != nil {
			t.Fatalf("TryRead on empty ring = %d, %v", n, err)
		}
	}
}

// TestWrapAndFull writes across the end of the ring many times, fills it
// to the byte and checks that Peek is contiguous across the wrap.
func TestWrapAndFull(t *testing.T) {
	a, b := pair(t, os.Getpagesize())
	w, r := a.Writer(), b.Reader()
	size := a.RingSize()
	var wpos, rpos uint64
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, size+100)
	for round := 0; round < 2000; round++ {
		k := rng.IntN(size + 50)
		fill(buf[:k], wpos)
		n, err := w.TryWrite(buf[:k/2], buf[k/2:k])
		if err != nil {
			t.Fatal(err)
		}
		if free := size - int(wpos-rpos); n != min(k, free) {
			t.Fatalf("round %d: TryWrite of %d with %d free wrote %d", round, k, free, n)
		}
		wpos += uint64(n)
		if round%3 == 0 {
			p, err := r.Peek()
			if err != nil || len(p) != int(wpos-rpos) {
				t.Fatalf("round %d: Peek = %d bytes, %v; want %d", round, len(p), err, wpos-rpos)
			}
			if err := check(p, rpos); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			m := rng.IntN(len(p) + 1)
			r.Advance(m)
			rpos += uint64(m)
			continue
		}
		m, err := r.TryRead(buf[:rng.IntN(size)])
		if err != nil {
			t.Fatal(err)
		}
		if err := check(buf[:m], rpos); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		rpos += uint64(m)
	}
}

func TestAdvanceBeyondPeekPanics(t *testing.T) {
	a, b := pair(t, 0)
	a.Writer().TryWrite([]byte("abc"))
	b.Reader().Peek()
	defer func() {
		if recover() == nil {
			t.Fatal("Advance past the peeked bytes did not panic")
		}
	}()
	b.Reader().Advance(4)
}

func TestOpenRefuses(t *testing.T) {
	a, name, err := Create(0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer a.Unlink()
	path := filepath.Join(dir, name)
	other := namePrefix + "0123456789abcdef0123456789abcdef"
	otherPath := filepath.Join(dir, other)
	t.Cleanup(func() { os.Remove(otherPath) })

	write := func(t *testing.T, mode os.FileMode, size int64, hdr func([]byte)) {
		t.Helper()
		os.Remove(otherPath)
		f, err := os.OpenFile(otherPath, os.O_CREATE|os.O_EXCL|os.O_RDWR, mode)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Chmod(mode); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		putHeader(b, ctlSizeFor(os.Getpagesize()), DefaultRingSize)
		if hdr != nil {
			hdr(b)
		}
		f.Write(b)
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	full := int64(ctlSizeFor(os.Getpagesize())) + 2*DefaultRingSize
	tests := []struct {
		name  string
		setup func(t *testing.T)
		open  string
	}{
		{"path traversal", nil, "../etc/passwd"},
		{"not our prefix", nil, "x" + name},
		{"uppercase hex", nil, namePrefix + "0123456789ABCDEF0123456789ABCDEF"},
		{"missing", nil, other},
		{"mode 0644", func(t *testing.T) { write(t, 0o644, full, nil) }, other},
		{"bad magic", func(t *testing.T) { write(t, 0o600, full, func(b []byte) { b[0] = 'X' }) }, other},
		{"bad version", func(t *testing.T) { write(t, 0o600, full, func(b []byte) { b[offVersion] = 9 }) }, other},
		{"short file", func(t *testing.T) { write(t, 0o600, full-1, nil) }, other},
		{"ring not a power of two", func(t *testing.T) {
			write(t, 0o600, full, func(b []byte) { b[offRingSize] = 1 })
		}, other},
		{"symlink", func(t *testing.T) {
			os.Remove(otherPath)
			if err := os.Symlink(path, otherPath); err != nil {
				t.Fatal(err)
			}
		}, other},
		{"directory", func(t *testing.T) {
			os.Remove(otherPath)
			if err := os.Mkdir(otherPath, 0o700); err != nil {
				t.Fatal(err)
			}
		}, other},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			s, err := Open(tc.open)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.open)
			}
			if !errors.Is(err, ErrBadSegment) {
				t.Fatalf("Open(%q) = %v, want ErrBadSegment", tc.open, err)
			}
		})
	}
	s, err := Open(name)
	if err != nil {
		t.Fatalf("the good segment does not open after all that: %v", err)
	}
	s.Close()
}

func TestCreateUnavailable(t *testing.T) {
	old := dir
	dir = filepath.Join(t.TempDir(), "no-such-dir")
	defer func() { dir = old }()
	_, _, err := Create(0)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create in a missing directory = %v, want ErrUnavailable", err)
	}
	if _, _, err := Create(1000); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create(1000) = %v, want a size error", err)
	}
}

// TestCorruptIndices writes impossible indices where the peer would and
// expects errors, never a panic or an out-of-bounds access.
func TestCorruptIndices(t *testing.T) {
	for _, tc := range []struct {
		name string
		poke func(a *Segment)
		op   func(a, b *Segment) error
	}{
		{"head far ahead", func(a *Segment) { *a.w.head = 1 << 40 }, func(a, b *Segment) error { _, err := b.r.Readable(); return err }},
		{"head behind tail", func(a *Segment) { *a.w.head = ^uint64(0) }, func(a, b *Segment) error { _, err := b.r.Peek(); return err }},
		{"tail ahead of head", func(a *Segment) { *a.w.tail = 5 }, func(a, b *Segment) error { _, err := a.w.TryWrite([]byte("x")); return err }},
		{"tail far behind", func(a *Segment) { *a.w.tail = ^uint64(0) - 1<<30 }, func(a, b *Segment) error { _, err := a.w.Write([]byte("x")); return err }},
		{"head ahead, blocking read", func(a *Segment) { *a.w.head = 1 << 33 }, func(a, b *Segment) error { _, err := b.r.Read(make([]byte, 1)); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t, 0)
			tc.poke(a)
			err := tc.op(a, b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			t.Log(err)
		})
	}
}

// TestStreamBlocking streams through a small ring with the blocking calls
// on two goroutines: messages larger than the ring, writer and reader
// both waiting on futexes.
func TestStreamBlocking(t *testing.T) {
	for _, spin := range []time.Duration{0, DefaultSpin} {
		t.Run(fmt.Sprint("spin=", spin), func(t *testing.T) {
			a, b := pair(t, os.Getpagesize())
			a.SetSpin(spin)
			b.SetSpin(spin)
			const total = 8 << 20
			errc := make(chan error, 1)
			go func() {
				rng := rand.New(rand.NewPCG(3, 4))
				buf := make([]byte, 3*a.RingSize())
				var pos uint64
				for pos < total {
					k := min(rng.IntN(len(buf))+1, total-int(pos))
					fill(buf[:k], pos)
					n, err := a.Writer().Writev(nil, buf[:k/3], buf[k/3:k])
					if err != nil || n != k {
						errc <- fmt.Errorf("Writev = %d, %v (want %d)", n, err, k)
						return
					}
					pos += uint64(k)
				}
				errc <- nil
			}()
			readPattern(t, b.Reader(), 5000, total)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// doorbellReader reads n bytes with the engine's parking protocol: poll,
// PrepareSleep, re-check Readable, park on bell. A lost wake-up shows as
// a reader parked with bytes in the ring: after 10 s parked it reports
// that (a failure detector, not synchronisation).
func doorbellReader(r *Reader, bell <-chan struct{}, total uint64, sink func([]byte, uint64) error) error {
	var pos uint64
	for pos < total {
		p, err := r.Peek()
		if err != nil {
			return err
		}
		if len(p) > 0 {
			if err := sink(p, pos); err != nil {
				return err
			}
			pos += uint64(len(p))
			r.Advance(len(p))
			continue
		}
		r.PrepareSleep()
		if n, err := r.Readable(); n > 0 || err != nil {
			r.CancelSleep()
			if err != nil {
				return err
			}
			continue
		}
		select {
		case <-bell:
		case <-time.After(10 * time.Second):
			n, _ := r.Readable()
			return fmt.Errorf("lost wake-up: parked 10 s at stream byte %d with %d bytes in the ring", pos, n)
		}
	}
	return nil
}

// doorbellWriter writes total bytes in random pieces with TryWrite and
// rings bell when NeedsDoorbell says so; when the ring is full it waits
// in Writev (whose own doorbell hook rings too).
func doorbellWriter(w *Writer, ring func(), total uint64, seed uint64) error {
	w.SetDoorbell(ring)
	rng := rand.New(rand.NewPCG(seed, 5))
	buf := make([]byte, 70000)
	var pos uint64
	for pos < total {
		k := min(uint64(rng.IntN(len(buf))+1), total-pos)
		if rng.IntN(8) == 0 {
			k = min(uint64(rng.IntN(16)+1), total-pos) // frame-sized pieces too
		}
		fill(buf[:k], pos)
		n, err := w.TryWrite(buf[:k])
		if err != nil {
			return err
		}
		if w.NeedsDoorbell() {
			ring()
		}
		if uint64(n) < k {
			m, err := w.Writev(nil, buf[n:k])
			if err != nil {
				return err
			}
			n += m
		}
		pos += uint64(n)
	}
	return nil
}

// TestDoorbellNoLostWakeup runs the engine's parking protocol on two
// goroutines, with the reader parking as often as possible.
func TestDoorbellNoLostWakeup(t *testing.T) {
	a, b := pair(t, 16<<10)
	const total = 32 << 20
	bell := make(chan struct{}, 1)
	var rings atomic.Int64
	ring := func() {
		rings.Add(1)
		select {
		case bell <- struct{}{}:
		default:
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- doorbellWriter(a.Writer(), ring, total, 9) }()
	err := doorbellReader(b.Reader(), bell, total, check)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d doorbells for %d MiB", rings.Load(), total>>20)
}

func TestCloseStopsWaiters(t *testing.T) {
	t.Run("Close wakes a blocked writer and reader", func(t *testing.T) {
		a, _ := pair(t, os.Getpagesize())
		a.SetSpin(0)
		errc := make(chan error, 2)
		go func() { _, err := a.Writer().Write(make([]byte, 3*a.RingSize())); errc <- err }()
		go func() { _, err := a.Reader().Read(make([]byte, 10)); errc <- err }()
		for a.Reader().readerSleepState() != sleepFutex || atomic.LoadUint32(a.w.writerWait) == 0 {
			time.Sleep(time.Millisecond) // polling for a state, not a sleep as synchronisation
		}
		a.Close()
		for range 2 {
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Fatalf("got %v, want ErrClosed", err)
			}
		}
		if _, err := a.Writer().TryWrite([]byte("x")); !errors.Is(err, ErrClosed) {
			t.Fatalf("TryWrite after Close = %v", err)
		}
		// Nothing may touch the unmapped memory after Close.
		a.Reader().PrepareSleep()
		a.Reader().CancelSleep()
		if a.Writer().NeedsDoorbell() {
			t.Fatal("NeedsDoorbell after Close")
		}
		for _, f := range []func() (int, error){a.Reader().Readable, a.Writer().Writable,
			func() (int, error) { return a.Reader().TryRead(make([]byte, 1)) },
			func() (int, error) { p, err := a.Reader().Peek(); return len(p), err }} {
			if _, err := f(); !errors.Is(err, ErrClosed) {
				t.Fatalf("call after Close = %v", err)
			}
		}
		a.Reader().Advance(0)
	})
	t.Run("done stops a blocked reader", func(t *testing.T) {
		_, b := pair(t, 0)
		done := make(chan struct{})
		errc := make(chan error, 1)
		go func() { _, err := b.Reader().ReadWait(done, make([]byte, 10)); errc <- err }()
		close(done)
		if err := <-errc; !errors.Is(err, ErrStopped) {
			t.Fatalf("got %v, want ErrStopped", err)
		}
	})
	t.Run("peer Close: writer gets ErrPeerClosed, reader drains then EOF", func(t *testing.T) {
		a, b := pair(t, os.Getpagesize())
		errc := make(chan error, 1)
		go func() { _, err := a.Writer().Write(make([]byte, 3*a.RingSize())); errc <- err }()
		b.Writer().TryWrite([]byte("last words"))
		for atomic.LoadUint32(a.w.writerWait) == 0 {
			time.Sleep(time.Millisecond)
		}
		b.Close()
		if err := <-errc; !errors.Is(err, ErrPeerClosed) {
			t.Fatalf("writer got %v, want ErrPeerClosed", err)
		}
		got, err := io.ReadAll(a.Reader())
		if string(got) != "last words" || err != nil {
			t.Fatalf("ReadAll = %q, %v", got, err)
		}
	})
	t.Run("Close twice", func(t *testing.T) {
		a, _ := pair(t, 0)
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// readerSleepState reads the flag without the lock, which a waiting
// ReadWait holds.
func (r *Reader) readerSleepState() uint32 { return atomic.LoadUint32(r.readerSleep) }

// startChild runs this test binary as the peer with role, passing the
// segment name and extra files (fd 3, 4, ...).
func startChild(t testing.TB, role, name string, files ...*os.File) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childNameEnv+"="+name)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// waitChild waits for the child, killing it after limit (a failure
// detector: a healthy child exits long before).
func waitChild(t testing.TB, cmd *exec.Cmd, limit time.Duration) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("child: %v", err)
		}
	case <-time.After(limit):
		cmd.Process.Kill()
		<-errc
		t.Fatalf("child still running after %v; killed", limit)
	}
}

// pipeBell is a doorbell over a pipe: ring writes a byte (dropped when the
// pipe is full: a pending byte already wakes the reader), the channel
// delivers one token per byte read.
func pipeBell(r, w *os.File) (ring func(), bell <-chan struct{}) {
	c := make(chan struct{}, 1)
	go func() {
		b := make([]byte, 64)
		for {
			if _, err := r.Read(b); err != nil {
				return
			}
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}()
	unix.SetNonblock(int(w.Fd()), true)
	return func() { unix.Write(int(w.Fd()), []byte{1}) }, c
}

// TestTwoProcesses streams through a child that echoes everything back,
// both sides using the engine's doorbell protocol with pipes as the
// "sockets": the cross-process check of the wake protocol.
func TestTwoProcesses(t *testing.T) {
	a, name, err := Create(32 << 10)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer a.Unlink()
	// toChild carries doorbells for the child's reader, toParent ours.
	cr, pw, _ := os.Pipe()
	pr, cw, _ := os.Pipe()
	cmd := startChild(t, "echo-doorbell", name, cr, cw)
	cr.Close()
	cw.Close()
	defer pr.Close()
	defer pw.Close()
	ring, bell := pipeBell(pr, pw)
	const total = 24 << 20
	errc := make(chan error, 1)
	go func() { errc <- doorbellWriter(a.Writer(), ring, total, 11) }()
	if err := doorbellReader(a.Reader(), bell, total, check); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	a.Close() // the child reads EOF and exits, once woken:
	ring()    // Close wakes futexes, not a reader parked elsewhere
	waitChild(t, cmd, 30*time.Second)
}

// TestTwoProcessesBlocking echoes through a child with the blocking
// futex calls on both sides.
func TestTwoProcessesBlocking(t *testing.T) {
	for _, spin := range []time.Duration{0, DefaultSpin} {
		t.Run(fmt.Sprint("spin=", spin), func(t *testing.T) { testTwoProcessesBlocking(t, spin) })
	}
}

func testTwoProcessesBlocking(t *testing.T, spin time.Duration) {
	a, name, err := Create(os.Getpagesize())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer a.Unlink()
	a.SetSpin(spin)
	t.Setenv(spinEnv, spin.String())
	cmd := startChild(t, "echo", name)
	const total = 8 << 20
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 100000)
		var pos uint64
		for pos < total {
			k := min(uint64(len(buf)), total-pos)
			fill(buf[:k], pos)
			if _, err := a.Writer().Write(buf[:k]); err != nil {
				errc <- err
				return
			}
			pos += k
		}
		errc <- nil
	}()
	readPattern(t, a.Reader(), 8192, total)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	a.Close()
	waitChild(t, cmd, 30*time.Second)
}

// TestPeerKilled: the peer dies without closing; liveness is the caller's
// (its TCP connection), modelled here by the child's exit closing done.
// A reader and a writer blocked on the ring return ErrStopped.
func TestPeerKilled(t *testing.T) {
	a, name, err := Create(os.Getpagesize())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer a.Unlink()
	cmd := startChild(t, "hang", name)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	// The child writes one byte once it opened the segment.
	if _, err := io.ReadFull(a.Reader(), make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() { _, err := a.Reader().ReadWait(done, make([]byte, 1)); errc <- err }()
	go func() { _, err := a.Writer().Writev(done, make([]byte, 3*a.RingSize())); errc <- err }()
	for atomic.LoadUint32(a.w.writerWait) == 0 || a.Reader().readerSleepState() != sleepFutex {
		time.Sleep(time.Millisecond) // polling for a state
	}
	cmd.Process.Kill()
	for range 2 {
		if err := <-errc; !errors.Is(err, ErrStopped) {
			t.Fatalf("got %v, want ErrStopped", err)
		}
	}
}

// runChild is the peer's side of the multi-process tests and benchmarks.
func runChild(role, name string) error {
	if ok, err := runBenchChild(role, name); ok {
		return err
	}
	s, err := Open(name)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Unlink(); err != nil {
		return err
	}
	if d, err := time.ParseDuration(os.Getenv(spinEnv)); err == nil {
		s.SetSpin(d)
	}
	r, w := s.Reader(), s.Writer()
	switch role {
	case "hang": // say hello, then block until killed
		if _, err := w.Write([]byte{1}); err != nil {
			return err
		}
		time.Sleep(time.Minute) // the parent kills us long before
		return errors.New("not killed")
	case "echo": // blocking calls: echo every byte until EOF
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
	case "echo-doorbell": // the engine's protocol; fd 3 our bell, fd 4 the parent's
		ring, bell := pipeBell(os.NewFile(3, "bell-in"), os.NewFile(4, "bell-out"))
		w.SetDoorbell(ring)
		for {
			p, err := r.Peek()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if len(p) > 0 {
				n, err := w.TryWrite(p)
				if err != nil {
					return err
				}
				if w.NeedsDoorbell() {
					ring()
				}
				if n == 0 {
					// Full: hand over what we peeked with a blocking write.
					if n, err = w.Writev(nil, p); err != nil {
						return err
					}
				}
				r.Advance(n)
				continue
			}
			r.PrepareSleep()
			if n, err := r.Readable(); n > 0 || err != nil {
				r.CancelSleep()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				continue
			}
			select {
			case <-bell:
			case <-time.After(20 * time.Second):
				return errors.New("lost wake-up in the child")
			}
		}
	}
	return fmt.Errorf("unknown role %q", role)
}

// TestWriterDoorbell: a writer that parks outside a full ring
// (PrepareWait) is owed exactly one doorbell once the reader makes room,
// and none when it cancelled or the ring had room at its re-check.
func TestWriterDoorbell(t *testing.T) {
	a, b := pair(t, 4096)
	w, r := a.Writer(), b.Reader()
	if n, err := w.TryWrite(make([]byte, 4096)); n != 4096 || err != nil {
		t.Fatalf("fill: %d %v", n, err)
	}
	w.PrepareWait()
	if n, err := w.Writable(); n != 0 || err != nil {
		t.Fatalf("full ring writable %d %v", n, err)
	}
	buf := make([]byte, 100)
	if n, err := r.TryRead(buf); n != 100 || err != nil {
		t.Fatalf("read %d %v", n, err)
	}
	if !r.WriterNeedsDoorbell() {
		t.Fatal("no doorbell owed to the parked writer after room was made")
	}
	if r.WriterNeedsDoorbell() {
		t.Fatal("a second doorbell owed for one park")
	}
	w.PrepareWait()
	w.CancelWait()
	r.TryRead(buf)
	if r.WriterNeedsDoorbell() {
		t.Fatal("doorbell owed after CancelWait")
	}
}

// TestEmpty: the lock-free poll agrees with Readable: empty on a new ring,
// not after a write, empty again once read, and not once the peer closed
// (so a poll goes on to see the EOF).
func TestEmpty(t *testing.T) {
	a, b := pair(t, 0)
	w, r := a.Writer(), b.Reader()
	if !r.Empty() {
		t.Fatal("a new ring is not Empty")
	}
	if _, err := w.TryWrite([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if r.Empty() {
		t.Fatal("Empty after a write")
	}
	buf := make([]byte, 8)
	if n, err := r.TryRead(buf); n != 3 || err != nil {
		t.Fatalf("TryRead = %d, %v", n, err)
	}
	if !r.Empty() {
		t.Fatal("not Empty once read")
	}
	a.Close()
	if r.Empty() {
		t.Fatal("Empty after the peer closed")
	}
	if _, err := r.Readable(); err != io.EOF {
		t.Fatalf("Readable after the peer closed = %v, want io.EOF", err)
	}
}
