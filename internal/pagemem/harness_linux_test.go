//go:build linux

package pagemem

// The two-process harness: the test process is the application (it owns
// the Region and creates the userfaultfd); a re-exec of the test binary
// with PAGEMEM_TEST_ROLE=pager is the pager. The pager gets the memfd and
// the userfaultfd as ExtraFiles (fds 3 and 4), serves faults with UffdOps
// under a small fixed policy, and obeys line commands on stdin, answering
// on stdout, so a test can steer it: set the data of the next fill, hold
// and release faults on a page, protect, read and drop pages, and ask for
// counters.

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/uffd"
)

const (
	roleEnv     = "PAGEMEM_TEST_ROLE"
	baseEnv     = "PAGEMEM_TEST_BASE"
	sizeEnv     = "PAGEMEM_TEST_SIZE"
	userModeEnv = "PAGEMEM_TEST_EXPECT_USER_MODE" // set by TestUffdUnprivileged
	directEnv   = "PAGEMEM_TEST_DIRECT"           // benchmark: serve in the reader loop
)

// replyTimeout bounds every wait for the pager. It is a way out for a
// broken test, not a performance assertion.
const replyTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "pager" {
		os.Exit(pagerMain())
	}
	os.Exit(m.Run())
}

type pageState int

const (
	absent pageState = iota
	readOnly
	writable
)

type pageStats struct {
	total   int // fault messages received
	missing int // fills of an absent page
	wp      int // unprotects answering a write-protect fault
	dup     int // fills of a page already installed (must hit EEXIST)
	wake    int // faults answered by a wake alone
}

type testPager struct {
	ops   *UffdOps
	pages int
	state []pageState
	data  [][]byte // next fill; nil = zeros
	held  map[int][]Fault
	stats []pageStats
}

func pagerMain() int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "pager: "+format+"\n", args...)
		return 1
	}
	base, err1 := strconv.ParseUint(os.Getenv(baseEnv), 0, 64)
	size, err2 := strconv.Atoi(os.Getenv(sizeEnv))
	if err1 != nil || err2 != nil {
		return fail("bad environment: %v %v", err1, err2)
	}
	memfd := os.NewFile(3, "memfd")
	u, err := uffd.FromFile(os.NewFile(4, "uffd"))
	if err != nil {
		return fail("%v", err)
	}
	ps := os.Getpagesize()
	p := &testPager{
		ops:   NewUffdOps(memfd, u, uintptr(base), size, ps),
		pages: size / ps,
		state: make([]pageState, size/ps),
		data:  make([][]byte, size/ps),
		held:  map[int][]Fault{},
		stats: make([]pageStats, size/ps),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	faults := make(chan Fault, 256)
	readErr := make(chan error, 1)
	if os.Getenv(directEnv) == "1" {
		// Zeros for every fault, straight from the reading goroutine, with
		// no channel hop; commands other than dropall are not meaningful.
		go func() { readErr <- serveDirect(u, p.ops, uintptr(base), ps) }()
	} else {
		go func() { readErr <- ReadFaults(ctx, u, uintptr(base), ps, func(f Fault) { faults <- f }) }()
	}
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds)
	}()
	out := bufio.NewWriter(os.Stdout)
	type waiter struct{ page, n int }
	var wait *waiter
	for {
		select {
		case f := <-faults:
			if err := p.fault(f); err != nil {
				return fail("%v", err)
			}
		case line, ok := <-cmds:
			if !ok {
				return 0
			}
			if w, ok := strings.CutPrefix(line, "wait "); ok {
				var pg, n int
				if _, err := fmt.Sscan(w, &pg, &n); err != nil || pg < 0 || pg >= p.pages {
					fmt.Fprintf(out, "err bad wait %q\n", line)
				} else {
					wait = &waiter{pg, n}
				}
				break
			}
			reply, quit := p.command(line)
			fmt.Fprintln(out, reply)
			if quit {
				out.Flush()
				return 0
			}
		case err := <-readErr:
			return fail("%v", err)
		}
		if wait != nil && p.stats[wait.page].total >= wait.n {
			fmt.Fprintln(out, "ok")
			wait = nil
		}
		out.Flush()
	}
}

func serveDirect(u *uffd.FD, ops *UffdOps, base uintptr, ps int) error {
	msgs := make([]uffd.Msg, 64)
	for {
		n, err := u.ReadMsgs(msgs)
		if err != nil {
			return err
		}
		for _, m := range msgs[:n] {
			if err := ops.Fill(int((uintptr(m.Address)-base)/uintptr(ps)), nil, m.IsWrite()); err != nil {
				return err
			}
		}
	}
}

// fault applies the pager's policy: fill absent pages (writable for a
// write), unprotect on a write-protect fault, and answer any other fault
// for an installed page by filling it again, which must find it installed
// (EEXIST) and only wake.
func (p *testPager) fault(f Fault) error {
	if f.Page < 0 || f.Page >= p.pages {
		return fmt.Errorf("fault on page %d outside [0, %d)", f.Page, p.pages)
	}
	p.stats[f.Page].total++
	if q, ok := p.held[f.Page]; ok {
		p.held[f.Page] = append(q, f)
		return nil
	}
	return p.serve(f)
}

func (p *testPager) serve(f Fault) error {
	s, st := &p.stats[f.Page], p.state[f.Page]
	switch {
	case st == absent:
		if err := p.ops.Fill(f.Page, p.data[f.Page], f.Write); err != nil {
			return err
		}
		p.state[f.Page] = readOnly
		if f.Write {
			p.state[f.Page] = writable
		}
		s.missing++
	case f.WP && f.Write && st == readOnly:
		if err := p.ops.Protect(f.Page, true); err != nil {
			return err
		}
		p.state[f.Page] = writable
		s.wp++
	case !f.WP:
		if err := p.ops.Fill(f.Page, p.data[f.Page], st == writable); err != nil {
			return err
		}
		s.dup++
	default:
		if err := p.ops.Wake(f.Page); err != nil {
			return err
		}
		s.wake++
	}
	return nil
}

func (p *testPager) command(line string) (reply string, quit bool) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return "err empty command", false
	}
	arg := func(i int) int {
		if i >= len(fields) {
			return -1
		}
		n, err := strconv.Atoi(fields[i])
		if err != nil {
			return -1
		}
		return n
	}
	pg := arg(1)
	needPage := map[string]bool{"set": true, "protect": true, "read": true, "drop": true, "hold": true, "release": true, "stats": true}
	if needPage[fields[0]] && (pg < 0 || pg >= p.pages) {
		return fmt.Sprintf("err bad page in %q", line), false
	}
	var err error
	switch fields[0] {
	case "set":
		p.data[pg] = nil
		if b := arg(2); b > 0 {
			p.data[pg] = fill(byte(b))
		}
	case "protect":
		w := arg(2) == 1
		err = p.ops.Protect(pg, w)
		if err == nil && p.state[pg] != absent {
			p.state[pg] = readOnly
			if w {
				p.state[pg] = writable
			}
		}
	case "read":
		buf := make([]byte, pageSize)
		if err = p.ops.Read(pg, buf); err == nil {
			return "ok " + hex.EncodeToString(buf), false
		}
	case "drop":
		if err = p.ops.Drop(pg); err == nil {
			p.state[pg] = absent
		}
	case "dropall":
		for q := range p.pages {
			if err = p.ops.Drop(q); err != nil {
				break
			}
			p.state[q] = absent
		}
	case "hold":
		p.held[pg] = nil
	case "release":
		q := p.held[pg]
		delete(p.held, pg)
		for _, f := range q {
			if err = p.serve(f); err != nil {
				break
			}
		}
	case "stats":
		s := p.stats[pg]
		return fmt.Sprintf("ok total=%d missing=%d wp=%d dup=%d wake=%d", s.total, s.missing, s.wp, s.dup, s.wake), false
	case "exists":
		return fmt.Sprintf("ok %d", p.ops.exists.Load()), false
	case "quit":
		return "ok", true
	default:
		return fmt.Sprintf("err unknown command %q", line), false
	}
	if err != nil {
		return "err " + err.Error(), false
	}
	return "ok", false
}

// pagerProc is the application's handle on a running pager.
type pagerProc struct {
	tb       testing.TB
	cmd      *exec.Cmd
	in       *os.File
	outFile  *os.File
	out      *bufio.Reader
	stderr   *os.File
	userMode bool
	waited   chan error
}

// startPager creates a region of the given number of pages, registers it
// with a userfaultfd and starts a pager process serving it. The
// application keeps no copy of the userfaultfd.
func startPager(tb testing.TB, pages int, env ...string) (*Region, *pagerProc) {
	tb.Helper()
	r, err := NewRegion(pages * pageSize)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	u, err := r.RegisterUffd()
	if err != nil {
		tb.Fatal(err)
	}
	defer u.Close()
	if os.Getenv(userModeEnv) == "1" && !u.UserModeOnly() {
		tb.Fatal("unprivileged process got a full userfaultfd, want UFFD_USER_MODE_ONLY")
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	stderr, err := os.CreateTemp(tb.TempDir(), "pager-stderr")
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=pager",
		fmt.Sprintf("%s=%#x", baseEnv, r.Base()), fmt.Sprintf("%s=%d", sizeEnv, r.Size()))
	cmd.Env = append(cmd.Env, env...)
	if _, ok := os.LookupEnv("GORACE"); !ok {
		// A race-enabled pager would otherwise linger a second at exit.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.ExtraFiles = []*os.File{r.File(), u.File()}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	inR.Close()
	outW.Close()
	p := &pagerProc{tb: tb, cmd: cmd, in: inW, outFile: outR, out: bufio.NewReaderSize(outR, 3*pageSize),
		stderr: stderr, userMode: u.UserModeOnly(), waited: make(chan error, 1)}
	go func() { p.waited <- cmd.Wait() }()
	tb.Cleanup(p.stop)
	return r, p
}

func (p *pagerProc) stop() {
	fmt.Fprintln(p.in, "quit")
	p.in.Close()
	var err error
	select {
	case err = <-p.waited:
	case <-time.After(replyTimeout):
		p.cmd.Process.Kill()
		err = <-p.waited
	}
	p.outFile.Close()
	if err != nil || p.tb.Failed() {
		b, _ := os.ReadFile(p.stderr.Name())
		p.tb.Errorf("pager exited: %v; stderr:\n%s", err, b)
	}
	p.stderr.Close()
}

// try sends a command and returns the reply after "ok".
func (p *pagerProc) try(format string, args ...any) (string, error) {
	line := fmt.Sprintf(format, args...)
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		return "", fmt.Errorf("send %q: %w", line, err)
	}
	p.outFile.SetReadDeadline(time.Now().Add(replyTimeout))
	reply, err := p.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reply to %q: %w", line, err)
	}
	reply = strings.TrimSuffix(reply, "\n")
	rest, ok := strings.CutPrefix(reply, "ok")
	if !ok {
		return "", fmt.Errorf("%q: %s", line, reply)
	}
	return strings.TrimSpace(rest), nil
}

func (p *pagerProc) do(format string, args ...any) string {
	p.tb.Helper()
	rest, err := p.try(format, args...)
	if err != nil {
		p.tb.Fatal(err)
	}
	return rest
}

func (p *pagerProc) read(page int) []byte {
	p.tb.Helper()
	b, err := hex.DecodeString(p.do("read %d", page))
	if err != nil || len(b) != pageSize {
		p.tb.Fatalf("read %d: %d bytes, %v", page, len(b), err)
	}
	return b
}

func (p *pagerProc) stats(page int) pageStats {
	p.tb.Helper()
	var s pageStats
	if _, err := fmt.Sscanf(p.do("stats %d", page), "total=%d missing=%d wp=%d dup=%d wake=%d",
		&s.total, &s.missing, &s.wp, &s.dup, &s.wake); err != nil {
		p.tb.Fatal(err)
	}
	return s
}

// within runs fn, which touches the region, on its own goroutine and
// waits for it. If fn does not return in time (a fault nobody serves),
// the pager is killed: the kernel then releases every waiting thread,
// since the application closed its copy of the userfaultfd.
func (p *pagerProc) within(what string, fn func()) {
	p.tb.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(replyTimeout):
		p.cmd.Process.Kill()
		<-done
		p.tb.Fatalf("%s: not served within %v", what, replyTimeout)
	}
}
