package listen

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// warnings records what a Server writes.
type warnings struct {
	mu    sync.Mutex
	lines []string
	c     chan string // every line, if not nil
}

func (w *warnings) warnf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	w.mu.Lock()
	w.lines = append(w.lines, s)
	w.mu.Unlock()
	if w.c != nil {
		w.c <- s
	}
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// flaky fails its first n Accepts with err, then accepts for real.
type flaky struct {
	net.Listener
	mu  sync.Mutex
	n   int
	err error
}

func (f *flaky) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.n > 0 {
		f.n--
		f.mu.Unlock()
		return nil, f.err
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// echoToken is a toy handshake: the client sends "token\n", the server
// answers "welcome\n" and then echoes one line.
func echoToken(c net.Conn, g *Gate) {
	defer c.Close()
	r := bufio.NewReader(c)
	l, err := r.ReadString('\n')
	if err != nil || l != "token\n" {
		g.Refuse("authentication failed", fmt.Errorf("bad hello %q: %v", l, err))
		return
	}
	if !g.Authenticated() {
		return
	}
	c.Write([]byte("welcome\n"))
	if l, err := r.ReadString('\n'); err == nil {
		c.Write([]byte(l))
	}
}

func client(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "token\nping\n")
	r := bufio.NewReader(c)
	for _, want := range []string{"welcome\n", "ping\n"} {
		if got, err := r.ReadString('\n'); got != want {
			t.Fatalf("client got %q, %v; want %q", got, err, want)
		}
	}
}

func start(t *testing.T, ln net.Listener, cfg Config) (*Server, chan error) {
	srv := New(ln, cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(echoToken) }()
	t.Cleanup(func() { srv.Close(); srv.Wait() })
	return srv, done
}

// EMFILE from Accept (the process is out of descriptors) must not end the
// loop: it backs off and goes on, with one warning line per second.
func TestAcceptErrorsBackOff(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &warnings{}
	srv, done := start(t, &flaky{Listener: real, n: 6, err: emfile()}, Config{Name: "master", Warnf: w.warnf, Interval: time.Hour})
	client(t, srv.Addr().String())
	client(t, srv.Addr().String())
	srv.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v after Close, want nil", err)
	}
	lines := w.all()
	if len(lines) != 2 || !strings.Contains(lines[0], "master: accept on") || !strings.Contains(lines[0], "too many open files") ||
		!strings.Contains(lines[1], "and 4 more like it") {
		t.Errorf("warnings %q, want one line and one summary of the other 5 (the last, and 4 more)", lines)
	}
}

// Strangers holding idle connections (more than both bounds, from one
// address) never keep a real client out, and at most the per-host bound
// of them is held at any time.
func TestStrangersDoNotStarveAClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &warnings{}
	srv, _ := start(t, ln, Config{Name: "master", MaxPending: 8, MaxPendingPerHost: 4, Warnf: w.warnf, Interval: time.Hour})
	const strangers = 50
	var held []net.Conn
	for range strangers {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	client(t, srv.Addr().String())
	if n := srv.Pending(); n > 4 {
		t.Errorf("%d unauthenticated connections held, want at most 4", n)
	}
	// The oldest strangers were dropped: their reads end.
	held[0].SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := held[0].Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("the first stranger's connection is still open: %v", err)
	}
	srv.Close()
	lines := w.all()
	if len(lines) != 2 || !strings.Contains(lines[0], CauseHostLimit) || !strings.Contains(lines[1], "more like it") {
		t.Errorf("warnings %q, want one line and one summary", lines)
	}
}

// Strangers from several addresses, each within the per-host bound but
// over the total together: the total holds, and a client still gets in.
func TestTotalBound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &warnings{}
	srv, _ := start(t, ln, Config{MaxPending: 8, MaxPendingPerHost: 4, Warnf: w.warnf, Interval: time.Hour})
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for h := 2; h <= 6; h++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(h))}}
		for range 4 {
			c, err := d.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Skipf("cannot dial from 127.0.0.%d: %v", h, err)
			}
			held = append(held, c)
		}
	}
	client(t, srv.Addr().String())
	if n := srv.Pending(); n > 8 {
		t.Errorf("%d unauthenticated connections held, want at most 8", n)
	}
	srv.Close()
	if got := strings.Join(w.all(), "|"); !strings.Contains(got, "("+CauseTotalLimit+")") {
		t.Errorf("warnings %q lack the total bound", got)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// A connection that does not authenticate within HandshakeTimeout is
// closed by the Server even if the handler waits without a deadline.
func TestHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &warnings{c: make(chan string, 4)}
	srv := New(ln, Config{Name: "pager", HandshakeTimeout: 50 * time.Millisecond, Warnf: w.warnf})
	returned := make(chan bool, 1)
	go srv.Serve(func(c net.Conn, g *Gate) {
		defer c.Close()
		c.Read(make([]byte, 1)) // no deadline of its own
		returned <- g.Authenticated()
	})
	defer func() { srv.Close(); srv.Wait() }()
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok := <-returned; ok {
		t.Error("Authenticated() = true after the handshake timeout")
	}
	if l := <-w.c; !strings.Contains(l, CauseTimeout) {
		t.Errorf("warning %q", l)
	}
}

// Close closes unauthenticated connections, so Wait does not wait for a
// stranger's handshake timeout.
func TestCloseDropsPending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(ln, Config{HandshakeTimeout: time.Hour})
	in := make(chan struct{})
	go srv.Serve(func(c net.Conn, g *Gate) {
		defer c.Close()
		close(in)
		c.Read(make([]byte, 1))
	})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-in
	srv.Close()
	srv.Wait() // hangs (test timeout) if the stranger were kept
	if err := srv.Serve(echoToken); err == nil {
		t.Error("Serve after Close succeeded")
	}
}

func TestLimiter(t *testing.T) {
	w := &warnings{}
	l := NewLimiter(w.warnf, time.Hour)
	for i := range 10 {
		l.Warn("a", "a %d", i)
		l.Warn("b", "b %d", i)
	}
	l.Warn("c", "c once")
	l.Close()
	l.Warn("a", "after close")
	got := strings.Join(w.all(), "|")
	for _, want := range []string{"a 0", "b 0", "c once", "a 9 (and 8 more like it in the last 1h0m0s)", "b 9 (and 8 more"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
	if n := len(w.all()); n != 5 || strings.Contains(got, "after close") {
		t.Errorf("%d warnings %q, want 5", n, got)
	}
}
