//go:build linux && (amd64 || arm64)

package shm

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmarks run the peer as a second process (the test binary
// re-executed) and measure, in the same run, a baseline over a Unix
// socketpair with plain blocking read/write system calls, reporting both
// and their ratio. Run them with
//
//	go test -run '^$' -bench . -benchtime 2s ./internal/shm
//
// On a loaded machine the numbers are noisy; compare ratios.

const spinEnv = "DSMEXEC_SHM_TEST_SPIN"

// benchPeer starts a child with role on a new segment of ringSize bytes
// per direction.
func benchPeer(b *testing.B, role string, ringSize int, spin time.Duration) (*Segment, func()) {
	b.Helper()
	s, name, err := Create(ringSize)
	if err != nil {
		b.Fatal(err)
	}
	s.SetSpin(spin)
	os.Setenv(spinEnv, spin.String())
	cmd := startChild(b, role, name)
	os.Unsetenv(spinEnv)
	return s, func() {
		s.Close()
		waitChild(b, cmd, 60*time.Second)
		s.Unlink()
	}
}

// sockPeer starts a child with role on one end of a socketpair and
// returns the other end (a blocking descriptor).
func sockPeer(b *testing.B, role string) (int, func()) {
	b.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "sock")
	cmd := startChild(b, role, "", f)
	f.Close()
	return fds[0], func() {
		unix.Close(fds[0])
		waitChild(b, cmd, 60*time.Second)
	}
}

func fullRead(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Read(fd, p)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.EOF
		}
		p = p[n:]
	}
	return nil
}

func fullWrite(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// pingPong times n round trips of 8 bytes and returns the one-way time.
func pingPongShm(b *testing.B, s *Segment, n int) time.Duration {
	msg := make([]byte, 8)
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := s.Writer().Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s.Reader(), msg); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(2*n)
}

func pingPongSock(b *testing.B, fd int, n int) time.Duration {
	msg := make([]byte, 8)
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := fullWrite(fd, msg); err != nil {
			b.Fatal(err)
		}
		if err := fullRead(fd, msg); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start) / time.Duration(2*n)
}

// BenchmarkLatency8B: one-way time of an 8-byte ping-pong between two
// processes; ns/op is the shared-memory one-way time.
func BenchmarkLatency8B(b *testing.B) {
	for _, spin := range []time.Duration{DefaultSpin, 0} {
		b.Run(fmt.Sprint("spin=", spin), func(b *testing.B) {
			s, stop := benchPeer(b, "echo", 0, spin)
			defer stop()
			fd, stopSock := sockPeer(b, "sock-echo")
			defer stopSock()
			pingPongShm(b, s, 100) // warm up both
			pingPongSock(b, fd, 100)
			b.ResetTimer()
			shm := pingPongShm(b, s, b.N)
			b.StopTimer()
			sock := pingPongSock(b, fd, b.N)
			b.ReportMetric(float64(shm.Nanoseconds()), "ns/op")
			b.ReportMetric(float64(shm)/1e3, "shm-µs/one-way")
			b.ReportMetric(float64(sock)/1e3, "socketpair-µs/one-way")
			b.ReportMetric(float64(sock)/float64(shm), "socketpair/shm")
		})
	}
}

const bwMsg = 1 << 20

// streamShm sends n messages of 1 MiB and waits for the peer's
// acknowledgement that it read them all; it returns bytes per second.
func streamShm(b *testing.B, s *Segment, msg []byte, n int) float64 {
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(n))
	start := time.Now()
	if _, err := s.Writer().Write(hdr[:]); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := s.Writer().Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := io.ReadFull(s.Reader(), hdr[:1]); err != nil {
		b.Fatal(err)
	}
	return float64(n*len(msg)) / time.Since(start).Seconds()
}

func streamSock(b *testing.B, fd int, msg []byte, n int) float64 {
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(n))
	start := time.Now()
	if err := fullWrite(fd, hdr[:]); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := fullWrite(fd, msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := fullRead(fd, hdr[:1]); err != nil {
		b.Fatal(err)
	}
	return float64(n*len(msg)) / time.Since(start).Seconds()
}

// BenchmarkBandwidth1MiB: 1 MiB messages streamed to a process that
// copies them out; MB/s is the shared-memory figure.
func BenchmarkBandwidth1MiB(b *testing.B) {
	for _, rs := range []int{64 << 10, 256 << 10, DefaultRingSize, 1 << 20} {
		b.Run(fmt.Sprintf("ring=%dKiB", rs>>10), func(b *testing.B) {
			s, stop := benchPeer(b, "sink", rs, DefaultSpin)
			defer stop()
			fd, stopSock := sockPeer(b, "sock-sink")
			defer stopSock()
			msg := make([]byte, bwMsg)
			fill(msg, 0)
			streamShm(b, s, msg, 4)
			streamSock(b, fd, msg, 4)
			b.SetBytes(bwMsg)
			b.ResetTimer()
			shm := streamShm(b, s, msg, b.N)
			b.StopTimer()
			sock := streamSock(b, fd, msg, b.N)
			b.ReportMetric(shm/1e9, "shm-GB/s")
			b.ReportMetric(sock/1e9, "socketpair-GB/s")
			b.ReportMetric(shm/sock, "shm/socketpair")
		})
	}
}

// runBenchChild is the peer's side of the benchmarks; it reports false for
// a role it does not know.
func runBenchChild(role, name string) (bool, error) {
	switch role {
	case "sock-echo", "sock-sink":
		return true, runSockChild(role)
	case "sink":
	default:
		return false, nil
	}
	s, err := Open(name)
	if err != nil {
		return true, err
	}
	defer s.Close()
	if err := s.Unlink(); err != nil {
		return true, err
	}
	if d, err := time.ParseDuration(os.Getenv(spinEnv)); err == nil {
		s.SetSpin(d)
	}
	r := s.Reader()
	buf := make([]byte, bwMsg)
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			return true, nil
		} else if err != nil {
			return true, err
		}
		left := binary.LittleEndian.Uint64(hdr[:]) * bwMsg
		for left > 0 {
			n, err := r.Read(buf[:min(uint64(len(buf)), left)])
			if err != nil {
				return true, err
			}
			left -= uint64(n)
		}
		if _, err := s.Writer().Write([]byte{1}); err != nil {
			return true, err
		}
	}
}

func runSockChild(role string) error {
	const fd = 3
	switch role {
	case "sock-echo":
		msg := make([]byte, 8)
		for {
			if err := fullRead(fd, msg); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := fullWrite(fd, msg); err != nil {
				return err
			}
		}
	default: // sock-sink
		buf := make([]byte, bwMsg)
		for {
			var hdr [8]byte
			if err := fullRead(fd, hdr[:]); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			left := binary.LittleEndian.Uint64(hdr[:]) * bwMsg
			for left > 0 {
				n, err := unix.Read(fd, buf[:min(uint64(len(buf)), left)])
				if err != nil {
					return err
				}
				if n == 0 {
					return io.ErrUnexpectedEOF
				}
				left -= uint64(n)
			}
			if err := fullWrite(fd, []byte{1}); err != nil {
				return err
			}
		}
	}
}

// BenchmarkFastPath8B: TryWrite of 8 bytes, NeedsDoorbell, then Peek and
// Advance on the other end, on one goroutine: the cost of the calls
// themselves, with no waiting and no other process.
func BenchmarkFastPath8B(b *testing.B) {
	a, c := pair(b, 0)
	w, r := a.Writer(), c.Reader()
	msg := make([]byte, 8)
	for b.Loop() {
		if n, err := w.TryWrite(msg); n != 8 || err != nil {
			b.Fatal(n, err)
		}
		w.NeedsDoorbell()
		p, err := r.Peek()
		if len(p) != 8 || err != nil {
			b.Fatal(len(p), err)
		}
		r.Advance(8)
	}
}
