package rank

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/dsmexec/dsmexec/internal/mesh"
	"github.com/dsmexec/dsmexec/internal/shm"
	"golang.org/x/sys/unix"
)

// localRing, when > 0, makes localWorlds connect every pair by a
// shared-memory segment with rings of that size (the socketpair then
// carries doorbells and EOF, as the TCP connection does between processes).
var localRing int

// ringPair makes a segment and opens it as the peer would: side A, side B.
func ringPair(t testing.TB, size int) (*shm.Segment, *shm.Segment) {
	t.Helper()
	a, name, err := shm.Create(size)
	if err != nil {
		t.Skipf("no shared memory here: %v", err)
	}
	b, err := shm.Open(name)
	if err != nil {
		a.Unlink()
		t.Fatal(err)
	}
	a.Unlink()
	return a, b
}

// TestRingLocal runs the in-process engine tests with every pair on
// rings of 64 KiB (many wraps, a full ring often): sends larger than the
// ring both ways at once, stalls, many goroutines.
func TestRingLocal(t *testing.T) {
	defer func() { localRing = 0 }()
	localRing = 64 << 10
	for name, f := range map[string]func(*testing.T){
		"PingPong": TestLocalPingPong, "AllToAllSizes": TestLocalAllToAllSizes, "Tags": TestTags,
		"LargeMessages": TestLargeMessages, "Truncate": TestTruncate, "Probe": TestProbeProcNullSendrecv,
		"Requests": TestRequests, "Stress": TestStress, "Comms": TestComms, "SendFirst": TestSendFirst,
		"StalledPeerLost": TestStalledPeerLost, "Handoff": TestHandoff, "DrainLinear": TestDrainLinear,
		"UnexpectedLimit": TestUnexpectedLimit, "RecvIntoAllocs": TestRecvIntoAllocs,
	} {
		t.Run(name, f)
	}
}

func TestRingSizeFor(t *testing.T) {
	for _, c := range []struct{ n, want int }{{2, 2 << 20}, {6, 2 << 20}, {8, 1 << 20}, {11, 512 << 10}, {12, 256 << 10}, {16, 256 << 10}, {24, 64 << 10}, {64, 64 << 10}} {
		if got := ringSizeFor(c.n); got != c.want {
			t.Errorf("ringSizeFor(%d) = %d, want %d", c.n, got, c.want)
		}
		if c.n <= 32 && c.n*(c.n-1)*ringSizeFor(c.n) > ringBudget {
			t.Errorf("%d ranks: %d bytes of rings", c.n, c.n*(c.n-1)*ringSizeFor(c.n))
		}
	}
}

func TestReadRingEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	if re, err := readRingEnv(env()); err != nil || re.off != "" {
		t.Fatalf("default: %+v %v", re, err)
	}
	if re, err := readRingEnv(env("DSMEXEC_TRANSPORT", "tcp")); err != nil || re.off == "" {
		t.Fatalf("tcp: %+v %v", re, err)
	}
	if _, err := readRingEnv(env("DSMEXEC_TRANSPORT", "carrier-pigeon")); err == nil || !strings.Contains(err.Error(), "DSMEXEC_TRANSPORT") {
		t.Fatalf("bad transport: %v", err)
	}
	if re, err := readRingEnv(env("DSMEXEC_TEST_TCP_PAIRS", "2-0,1-3")); err != nil || !re.tcpPairs[[2]int{0, 2}] || !re.tcpPairs[[2]int{1, 3}] {
		t.Fatalf("pairs: %+v %v", re, err)
	}
}

// TestCorruptRing: a peer that scribbles an index of the ring (here: the
// head of the ring rank 1 reads, far past the ring) makes rank 1's
// receive fail with a PeerError naming rank 0; no crash, no read outside
// the ring.
func TestCorruptRing(t *testing.T) {
	for _, what := range []string{"head", "length"} {
		t.Run(what, func(t *testing.T) {
			a, name, err := shm.Create(64 << 10)
			if err != nil {
				t.Skipf("no shared memory here: %v", err)
			}
			// A second mapping of the file: the hostile peer's hands.
			f, err := os.OpenFile(filepath.Join("/dev/shm", name), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := unix.Mmap(int(f.Fd()), 0, 4096+2*(64<<10), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Munmap(raw)
			b, err := shm.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			a.Unlink()
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			ws := []*World{newWorld(0, 2, "localhost", "test"), newWorld(1, 2, "localhost", "test")}
			for _, w := range ws {
				w.errorsReturn = true
			}
			l0, _ := newLinkFd(ws[0].e, 1, fds[0], nil)
			l1, _ := newLinkFd(ws[1].e, 0, fds[1], nil)
			l0.attachRing(a)
			l1.attachRing(b)
			ws[0].e.start([]*link{nil, l0}, 0, 1<<30)
			ws[1].e.start([]*link{l1, nil}, 0, 1<<30)
			defer func() {
				for _, w := range ws {
					w.e.shutdown(time.Second)
				}
			}()
			if err := ws[0].Send(1, 1, []byte("fine")); err != nil {
				t.Fatal(err)
			}
			if got, err := ws[1].Recv(0, 1); err != nil || string(got) != "fine" {
				t.Fatalf("before: %q %v", got, err)
			}
			head := (*uint64)(unsafe.Pointer(&raw[512])) // ring 0 (A→B) control block: head
			switch what {
			case "head":
				*head += 1 << 40 // more readable bytes than the ring holds
			case "length":
				// A frame header claiming 2 GiB, published as if sent.
				pos := *head
				data := raw[4096:]
				hdr := []byte{1, 1, 1, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}
				for i, c := range hdr {
					data[(pos+uint64(i))%(64<<10)] = c
				}
				*head = pos + uint64(len(hdr))
			}
			_, err = ws[1].Recv(0, 2)
			var pe *PeerError
			if !errors.As(err, &pe) || pe.Rank != 0 {
				t.Fatalf("Recv from a corrupt ring: %v, want a PeerError for rank 0", err)
			}
			t.Logf("%s: %v", what, err)
		})
	}
}

// BenchmarkPingPong: 8 B round trips between two in-process worlds, over
// socketpairs and over rings (one process: a lower bound of the engine's
// own cost per message, not the cross-process figure).
var benchRings = []int{0, 64 << 10, 512 << 10}

func BenchmarkPingPong(b *testing.B) {
	for _, ring := range benchRings {
		for _, size := range []int{8, 1 << 20} {
			name := "socket"
			if ring > 0 {
				name = fmt.Sprintf("ring%dK", ring>>10)
			}
			b.Run(fmt.Sprintf("%s/%d", name, size), func(b *testing.B) {
				localRing = ring
				defer func() { localRing = 0 }()
				ws := localWorlds(b, 2, 50*time.Microsecond, 1<<30)
				b.SetBytes(int64(2 * size))
				pingPong(b, ws, size)
			})
		}
	}
}

// FuzzRingLink feeds arbitrary bytes through a ring link: data[:k] into
// the ring (the frames), the rest onto the socket beside it (where only
// doorbells may come). Anything is delivered or refused, never a panic or
// an out-of-range access.
// pingPong times b.N round trips of size bytes from ws[0] to ws[1] and back.
func pingPong(b *testing.B, ws []*World, size int) {
	b.Helper()
	msg := make([]byte, size)
	buf := make([]byte, size)
	done := make(chan error, 1)
	go func() {
		rbuf := make([]byte, size)
		for i := 0; i < b.N; i++ {
			if _, _, err := ws[1].RecvInto(0, 1, rbuf); err != nil {
				done <- err
				return
			}
			if err := ws[1].Send(0, 1, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ws[0].Send(1, 1, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ws[0].RecvInto(1, 1, buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func FuzzRingLink(f *testing.F) {
	f.Add([]byte{1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0}, uint16(32))
	f.Add([]byte{1, 0, 31, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 30, 0, 0, 0, 0, 1, 0, 0, 0, 0}, uint16(12))
	f.Add([]byte{1, 0, 32, 0, 0, 0, 0, 1, 0, 0, 0, 0}, uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, k uint16) {
		a, b := ringPair(t, 64<<10)
		defer a.Close()
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fds[1])
		e := newEngine(0, 2)
		l, err := newLinkFd(e, 1, fds[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		l.attachRing(b)
		cut := min(int(k), len(data), 64<<10)
		a.Writer().TryWrite(data[:cut])
		unix.Write(fds[1], data[cut:min(len(data), cut+4096)])
		if err := e.start([]*link{nil, l}, 0, 1<<20); err != nil {
			t.Fatal(err)
		}
		defer e.shutdown(0)
		if err := l.pumpDoorbells(); err != nil {
			l.lost(err)
		}
		l.pump()
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.unexpBytes > 1<<20 {
			t.Fatalf("%d bytes taken for unexpected messages", e.unexpBytes)
		}
	})
}

// TestSetupRings runs the ring setup between two ranks over a real TCP
// connection: the same host gets a segment on both sides; another host
// name (as a machine file with one name for two machines would give when
// their boot_ids differ too) or DSMEXEC_TRANSPORT=tcp on either side stays
// on TCP, and both sides agree; bytes sent after the setup stay for the
// link.
func TestSetupRings(t *testing.T) {
	for _, c := range []struct {
		name         string
		host0, host1 string
		env0, env1   ringEnv
		ring         bool
	}{
		{"same", "h", "h", ringEnv{}, ringEnv{}, true},
		{"other host", "h", "g", ringEnv{}, ringEnv{}, false},
		{"tcp lower", "h", "h", ringEnv{off: "DSMEXEC_TRANSPORT=tcp"}, ringEnv{}, false},
		{"tcp higher", "h", "h", ringEnv{}, ringEnv{off: "DSMEXEC_TRANSPORT=tcp"}, false},
		{"pair", "h", "h", ringEnv{tcpPairs: map[[2]int]bool{{0, 1}: true}}, ringEnv{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			dialed := make(chan net.Conn, 1)
			go func() {
				d, _ := net.Dial("tcp", ln.Addr().String())
				dialed <- d
			}()
			a, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			b := <-dialed
			if b == nil {
				t.Fatal("dial failed")
			}
			defer a.Close()
			defer b.Close()
			addrs := []string{"127.0.0.1:1", "127.0.0.1:2"}
			conns := [][]*mesh.Conn{
				{nil, {Rank: 1, TCP: a.(*net.TCPConn)}},
				{{Rank: 0, TCP: b.(*net.TCPConn)}, nil},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			segs := make([][]*shm.Segment, 2)
			errs := make([]error, 2)
			done := make(chan int, 2)
			go func() {
				segs[0], errs[0] = setupRings(ctx, 0, c.host0, addrs, conns[0], c.env0)
				a.Write([]byte("after")) // the start of the link's stream
				done <- 0
			}()
			go func() {
				segs[1], errs[1] = setupRings(ctx, 1, c.host1, addrs, conns[1], c.env1)
				done <- 1
			}()
			<-done
			<-done
			for r := 0; r < 2; r++ {
				if errs[r] != nil {
					t.Fatalf("rank %d: %v", r, errs[r])
				}
				if got := segs[r][1-r] != nil; got != c.ring {
					t.Fatalf("rank %d: ring %v, want %v", r, got, c.ring)
				}
				if s := segs[r][1-r]; s != nil {
					defer s.Close()
				}
			}
			if c.ring {
				segs[0][1].Writer().TryWrite([]byte("ring"))
				var buf [8]byte
				if n, _ := segs[1][0].Reader().TryRead(buf[:]); string(buf[:n]) != "ring" {
					t.Fatalf("through the ring: %q", buf[:n])
				}
			}
			rest := append([]byte(nil), conns[1][0].Buffered...)
			b.SetReadDeadline(time.Now().Add(5 * time.Second))
			for len(rest) < 5 {
				var buf [16]byte
				n, err := b.Read(buf[:])
				if err != nil {
					t.Fatalf("after the setup: %q, %v", rest, err)
				}
				rest = append(rest, buf[:n]...)
			}
			if string(rest) != "after" {
				t.Fatalf("after the setup the link got %q", rest)
			}
			if c.ring {
				if _, err := os.Stat(filepath.Join("/dev/shm", segs[0][1].Name())); !os.IsNotExist(err) {
					t.Fatalf("the segment's name is still in /dev/shm: %v", err)
				}
			}
		})
	}
}

// BenchmarkMsgCost is the engine's own CPU cost per 8 B message, without
// waiting for a peer: one goroutine sends a batch to the other world, then
// receives it there (RecvInto from the known source), so no wait parks or
// spins and the figure is software only (send + receive of one message).
func BenchmarkMsgCost(b *testing.B) {
	for _, ring := range []int{0, 2 << 20} {
		name := "socket"
		if ring > 0 {
			name = "ring"
		}
		b.Run(name, func(b *testing.B) {
			localRing = ring
			defer func() { localRing = 0 }()
			ws := localWorlds(b, 2, 50*time.Microsecond, 1<<30)
			msg := make([]byte, 8)
			buf := make([]byte, 8)
			const batch = 1
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				k := min(batch, b.N-i)
				for j := 0; j < k; j++ {
					if err := ws[0].Send(1, 1, msg); err != nil {
						b.Fatal(err)
					}
				}
				for j := 0; j < k; j++ {
					if _, _, err := ws[1].RecvInto(0, 1, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
