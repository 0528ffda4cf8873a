package rank

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// localWorlds makes n worlds in this process, connected by socketpairs:
// the whole engine without a network or mpirun.
func localWorlds(t testing.TB, n int, spin time.Duration, limit int64) []*World {
	t.Helper()
	ws := make([]*World, n)
	for r := range ws {
		ws[r] = newWorld(r, n, "localhost", "test")
		ws[r].errorsReturn = true
	}
	links := make([][]*link, n)
	for r := range links {
		links[r] = make([]*link, n)
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if links[i][j], err = newLinkFd(ws[i].e, j, fds[0], nil); err != nil {
				t.Fatal(err)
			}
			if links[j][i], err = newLinkFd(ws[j].e, i, fds[1], nil); err != nil {
				t.Fatal(err)
			}
			if localRing > 0 {
				a, b := ringPair(t, localRing)
				links[i][j].attachRing(a)
				links[j][i].attachRing(b)
			}
		}
	}
	for r, w := range ws {
		if n > 1 {
			if err := w.e.start(links[r], spin, limit); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Add(1)
			go func(w *World) {
				defer wg.Done()
				w.finOnce.Do(func() {
					close(w.done)
					w.e.shutdown(2 * time.Second)
				})
			}(w)
		}
		wg.Wait()
	})
	return ws
}

// each runs f on every world in its own goroutine and fails on errors.
func each(t testing.TB, ws []*World, f func(w *World) error) {
	t.Helper()
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for r, w := range ws {
		wg.Add(1)
		go func(r int, w *World) {
			defer wg.Done()
			errs[r] = f(w)
			if errs[r] != nil {
				fmt.Fprintf(os.Stderr, "rank %d: %v\n", r, errs[r])
			}
		}(r, w)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("hung")
	}
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func TestLocalPingPong(t *testing.T) {
	for _, spin := range []time.Duration{0, 50 * time.Microsecond} {
		ws := localWorlds(t, 2, spin, 1<<30)
		each(t, ws, func(w *World) error {
			peer := 1 - w.Rank()
			buf := make([]byte, 8)
			for i := 0; i < 1000; i++ {
				if w.Rank() == 0 {
					if err := w.Send(peer, 1, []byte(fmt.Sprintf("%08d", i))); err != nil {
						return err
					}
					n, st, err := w.RecvInto(peer, 1, buf)
					if err != nil || n != 8 || st.Source != peer || string(buf) != fmt.Sprintf("%08d", i+1) {
						return fmt.Errorf("round %d: %q %v %v", i, buf[:n], st, err)
					}
				} else {
					n, _, err := w.RecvInto(peer, 1, buf)
					if err != nil || n != 8 {
						return fmt.Errorf("round %d: %v", i, err)
					}
					v, _ := strconv.Atoi(string(buf))
					if err := w.Send(peer, 1, []byte(fmt.Sprintf("%08d", v+1))); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
}

func TestLocalAllToAllSizes(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := localWorlds(t, n, 20*time.Microsecond, 1<<30)
			each(t, ws, func(w *World) error {
				for to := 0; to < n; to++ {
					if err := w.Send(to, 5, bytes.Repeat([]byte{byte(w.Rank())}, 100*to+1)); err != nil {
						return err
					}
				}
				for i := 0; i < n; i++ {
					b, st, err := w.RecvStatus(AnySource, 5)
					if err != nil {
						return err
					}
					if len(b) != 100*w.Rank()+1 || b[0] != byte(st.Source) || st.Count != len(b) || st.Tag != 5 {
						return fmt.Errorf("got %d bytes %v", len(b), st)
					}
				}
				if err := w.Barrier(); err != nil {
					return err
				}
				out, err := w.Allgather([]byte{byte(w.Rank())})
				if err != nil {
					return err
				}
				for i, b := range out {
					if len(b) != 1 || int(b[0]) != i {
						return fmt.Errorf("allgather %v", out)
					}
				}
				return nil
			})
		})
	}
}

var _ = errors.Is

// TestTags: a tag is a whole int; 1<<32 is not tag 0 (it was cut to 32
// bits on the wire).
func TestTags(t *testing.T) {
	ws := localWorlds(t, 2, 0, 1<<30)
	each(t, ws, func(w *World) error {
		if w.Rank() == 0 {
			if err := w.Send(1, 1<<32, []byte("big")); err != nil {
				return err
			}
			if err := w.Send(1, 0, []byte("zero")); err != nil {
				return err
			}
			if err := w.Send(1, TagUB, []byte("ub")); err != nil {
				return err
			}
			if err := w.Send(1, -5, nil); !errors.Is(err, ErrBadTag) {
				return fmt.Errorf("Send with tag -5: %v", err)
			}
			return nil
		}
		b, st, err := w.RecvStatus(0, 0)
		if err != nil || string(b) != "zero" || st.Tag != 0 {
			return fmt.Errorf("Recv tag 0 got %q %v %v", b, st, err)
		}
		b, st, err = w.RecvStatus(0, AnyTag)
		if err != nil || string(b) != "big" || st.Tag != 1<<32 {
			return fmt.Errorf("Recv any tag got %q %v %v", b, st, err)
		}
		b, err = w.Recv(0, TagUB)
		if err != nil || string(b) != "ub" {
			return fmt.Errorf("Recv TagUB got %q %v", b, err)
		}
		if _, err := w.Recv(0, -7); !errors.Is(err, ErrBadTag) {
			return fmt.Errorf("Recv with tag -7: %v", err)
		}
		return nil
	})
}

// TestLargeMessages: fragmented messages arrive whole through Recv and
// RecvInto; one over the maximum is refused at Send and the receiver
// carries on.
func TestLargeMessages(t *testing.T) {
	defer func(m int) { maxMessage = m }(maxMessage)
	maxMessage = 40 << 20
	ws := localWorlds(t, 2, 0, 1<<30)
	const n = 40 << 20 // three 16 MiB fragments
	big := make([]byte, n)
	for i := range big {
		big[i] = byte(i * 7)
	}
	each(t, ws, func(w *World) error {
		if w.Rank() == 0 {
			if err := w.Send(1, 1, big); err != nil {
				return err
			}
			if err := w.Send(1, 2, big); err != nil {
				return err
			}
			if err := w.Send(1, 3, make([]byte, n+1)); !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("Send over the maximum: %v", err)
			}
			return w.Send(1, 4, []byte("after"))
		}
		b, err := w.Recv(0, 1)
		if err != nil || !bytes.Equal(b, big) {
			return fmt.Errorf("Recv of %d bytes: %d bytes, %v", n, len(b), err)
		}
		buf := make([]byte, n+10)
		k, st, err := w.RecvInto(0, 2, buf)
		if err != nil || k != n || st.Count != n || !bytes.Equal(buf[:k], big) {
			return fmt.Errorf("RecvInto of %d bytes: %d, %v, %v", n, k, st, err)
		}
		b, err = w.Recv(0, 4)
		if err != nil || string(b) != "after" {
			return fmt.Errorf("message after the refused one: %q %v", b, err)
		}
		return nil
	})
}

func TestTruncate(t *testing.T) {
	ws := localWorlds(t, 2, 0, 1<<30)
	each(t, ws, func(w *World) error {
		if w.Rank() == 0 {
			w.Send(1, 1, []byte("0123456789"))
			return w.Send(1, 1, []byte("ok"))
		}
		buf := make([]byte, 4)
		n, st, err := w.RecvInto(0, 1, buf)
		if !errors.Is(err, ErrTruncate) || n != 4 || string(buf) != "0123" || st.Count != 10 {
			return fmt.Errorf("RecvInto into 4 bytes: n %d %v %v", n, st, err)
		}
		if !bytes.Contains([]byte(err.Error()), []byte("10 bytes")) || !bytes.Contains([]byte(err.Error()), []byte("4 bytes")) {
			return fmt.Errorf("truncation error does not name both sizes: %v", err)
		}
		n, _, err = w.RecvInto(0, 1, buf)
		if err != nil || string(buf[:n]) != "ok" {
			return fmt.Errorf("next message: %q %v", buf[:n], err)
		}
		return nil
	})
}

func TestProbeProcNullSendrecv(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := localWorlds(t, n, 10*time.Microsecond, 1<<30)
			each(t, ws, func(w *World) error {
				r := w.Rank()
				// Ring shift of 1 MiB with Sendrecv: no deadlock.
				msg := bytes.Repeat([]byte{byte(r)}, 1<<20)
				b, st, err := w.Sendrecv((r+1)%n, 3, msg, (r+n-1)%n, 3)
				if err != nil || len(b) != 1<<20 || b[0] != byte((r+n-1)%n) || st.Source != (r+n-1)%n {
					return fmt.Errorf("Sendrecv: %d bytes %v %v", len(b), st, err)
				}
				// Boundary ranks with ProcNull.
				left, right := r-1, r+1
				if left < 0 {
					left = ProcNull
				}
				if right >= n {
					right = ProcNull
				}
				b, st, err = w.Sendrecv(right, 4, []byte{byte(r)}, left, 4)
				if err != nil {
					return err
				}
				if left == ProcNull && (st.Source != ProcNull || len(b) != 0) || left != ProcNull && (len(b) != 1 || int(b[0]) != left) {
					return fmt.Errorf("ProcNull shift: %v %v", b, st)
				}
				// Probe, then Recv of the same (source, tag) gets the probed message.
				w.Send((r+1)%n, 5, bytes.Repeat([]byte("x"), 10+r))
				w.Send((r+1)%n, 5, []byte("second"))
				pst, err := w.Probe(AnySource, 5)
				if err != nil || pst.Count != 10+(r+n-1)%n {
					return fmt.Errorf("Probe: %v %v", pst, err)
				}
				b, st, err = w.RecvStatus(pst.Source, pst.Tag)
				if err != nil || len(b) != pst.Count || st != pst {
					return fmt.Errorf("Recv after Probe: %d bytes %v %v (probed %v)", len(b), st, err, pst)
				}
				if _, ok, err := w.Iprobe(AnySource, 99); ok || err != nil {
					return fmt.Errorf("Iprobe for nothing: %v %v", ok, err)
				}
				for {
					if st, ok, err := w.Iprobe(AnySource, 5); err != nil {
						return err
					} else if ok {
						b, err := w.Recv(st.Source, 5)
						if err != nil || string(b) != "second" {
							return fmt.Errorf("after Iprobe: %q %v", b, err)
						}
						break
					}
				}
				if err := w.Send(ProcNull, 1, []byte("void")); err != nil {
					return err
				}
				if _, err := w.Probe(ProcNull, 1); err != nil {
					return err
				}
				return w.Barrier()
			})
		})
	}
}

// TestRequests: Irecv posted before the message gets it, in posting
// order; Waitany returns each request once, then -1; Wait again returns
// the same.
func TestRequests(t *testing.T) {
	ws := localWorlds(t, 3, 10*time.Microsecond, 1<<30)
	each(t, ws, func(w *World) error {
		r := w.Rank()
		if r == 0 {
			a := w.Irecv(1, 7)
			b := w.Irecv(1, 7)
			c := w.Irecv(AnySource, 8)
			reqs := []*Request{a, nil, b, c}
			w.Send(1, 1, nil) // go
			seen := map[int]bool{}
			for {
				i, st, err := Waitany(reqs...)
				if err != nil {
					return err
				}
				if i == -1 {
					break
				}
				if seen[i] {
					return fmt.Errorf("Waitany returned %d twice", i)
				}
				seen[i] = true
				if i == 3 && (st.Source != 2 || st.Tag != 8) {
					return fmt.Errorf("request 3: %v", st)
				}
			}
			if len(seen) != 3 {
				return fmt.Errorf("Waitany returned %v", seen)
			}
			if string(a.Bytes()) != "first" || string(b.Bytes()) != "second" {
				return fmt.Errorf("posting order: %q %q", a.Bytes(), b.Bytes())
			}
			st1, _ := a.Wait()
			st2, _ := a.Wait()
			if st1 != st2 || st1.Count != 5 {
				return fmt.Errorf("second Wait: %v %v", st1, st2)
			}
			if done, st, err := c.Test(); !done || err != nil || st.Source != 2 {
				return fmt.Errorf("Test after completion: %v %v %v", done, st, err)
			}
			return Waitall(nil, w.Isend(1, 9, []byte("bye")), w.Isend(2, 9, nil))
		}
		if r == 1 {
			if _, err := w.Recv(0, 1); err != nil {
				return err
			}
			s1 := w.Isend(0, 7, []byte("first"))
			s2 := w.Isend(0, 7, []byte("second"))
			if err := Waitall(s1, s2); err != nil {
				return err
			}
		} else {
			if _, err := w.Isend(0, 8, []byte("from 2")).Wait(); err != nil {
				return err
			}
		}
		req := w.Irecv(0, 9)
		for {
			done, _, err := req.Test()
			if err != nil {
				return err
			}
			if done {
				return nil
			}
		}
	})
}

// TestDrainLinear: 100k queued messages drained in the worst order for a
// scan (newest tag first) cost a constant number of matching steps each.
func TestDrainLinear(t *testing.T) {
	for _, n := range []int{10000, 100000} {
		ws := localWorlds(t, 1, 0, 1<<40)
		w := ws[0]
		for i := 0; i < n; i++ {
			if err := w.Send(0, i, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		before := w.e.q.steps
		buf := make([]byte, 1)
		for i := n - 1; i >= 0; i-- {
			if k, st, err := w.RecvInto(0, i, buf); err != nil || k != 1 || buf[0] != byte(i) || st.Tag != i {
				t.Fatalf("tag %d: %v %v", i, st, err)
			}
		}
		steps := w.e.q.steps - before
		if steps > uint64(2*n) {
			t.Fatalf("draining %d messages took %d matching steps", n, steps)
		}
		if len(w.e.q.unexp) != 0 {
			t.Fatalf("%d unexpected lists left", len(w.e.q.unexp))
		}
	}
}

// TestStress: many goroutines receive at once (Irecv, AnySource, Probe
// then Recv) while others send; every message is received once.
func TestStress(t *testing.T) {
	const n, per, gor = 3, 200, 4
	ws := localWorlds(t, n, 20*time.Microsecond, 1<<30)
	each(t, ws, func(w *World) error {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		counts := make([]map[string]int, gor)
		for g := 0; g < gor; g++ {
			counts[g] = map[string]int{}
			wg.Add(2)
			go func(g int) { // sender
				defer wg.Done()
				for i := 0; i < per; i++ {
					to := (w.Rank() + 1 + i%(n-1)) % n
					if err := w.Send(to, g, []byte(fmt.Sprintf("%d/%d/%d", w.Rank(), g, i))); err != nil {
						errs <- err
						return
					}
				}
			}(g)
			go func(g int) { // receiver of tag g, three ways
				defer wg.Done()
				for i := 0; i < per; i++ {
					var b []byte
					var err error
					switch i % 3 {
					case 0:
						b, err = w.Recv(AnySource, g)
					case 1:
						req := w.Irecv(AnySource, g)
						_, err = req.Wait()
						b = req.Bytes()
					case 2:
						var st Status
						st, err = w.Probe(AnySource, g)
						if err == nil {
							// Another goroutine may not take it: the tag is ours.
							b, err = w.Recv(st.Source, st.Tag)
						}
					}
					if err != nil {
						errs <- err
						return
					}
					counts[g][string(b)]++
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return err
		}
		for g := range counts {
			for m, c := range counts[g] {
				if c != 1 {
					return fmt.Errorf("%q received %d times", m, c)
				}
			}
			if len(counts[g]) != per {
				return fmt.Errorf("tag %d: %d distinct messages", g, len(counts[g]))
			}
		}
		return w.Barrier()
	})
}

// TestUnexpectedLimit: past the bound the receiver stops reading the link,
// so the sender blocks (TCP backpressure); nothing is lost, memory stays
// under the bound, and a receive for the stalled message resumes it.
func TestUnexpectedLimit(t *testing.T) {
	const limit, size, count = 64 << 10, 16 << 10, 200 // 3.2 MiB sent, 64 KiB kept
	ws := localWorlds(t, 2, 0, limit)
	sent := make(chan int, count+1)
	go func() {
		for i := 0; i < count; i++ {
			msg := bytes.Repeat([]byte{byte(i)}, size)
			if err := ws[0].Send(1, 1, msg); err != nil {
				t.Error(err)
				return
			}
			sent <- i
		}
	}()
	w := ws[1]
	// Take in what comes until the sender is blocked on a full socket.
	blocked := func() bool {
		l := ws[0].e.links[1]
		ws[0].e.mu.Lock()
		defer ws[0].e.mu.Unlock()
		return l.wantOut
	}
	deadline := time.Now().Add(20 * time.Second)
	for !blocked() {
		if time.Now().After(deadline) {
			t.Fatal("the sender never blocked")
		}
		w.Iprobe(0, 99)
	}
	for i := 0; i < 50; i++ {
		w.Iprobe(0, 99) // more progress: must not take more memory
	}
	w.e.mu.Lock()
	used, stalled := w.e.unexpBytes, len(w.e.stalled)
	w.e.mu.Unlock()
	// (At the limit exactly the link may not even have been read up to
	// the next header: zero or one stalled link.)
	if used > limit || stalled > 1 {
		t.Fatalf("unexpected memory %d (limit %d), %d stalled links", used, limit, stalled)
	}
	if len(sent) == count {
		t.Fatal("every message was sent although the receiver holds only 64 KiB")
	}
	// Probe sees the stalled message; receiving drains everything in order.
	if st, err := w.Probe(0, 1); err != nil || st.Count != size {
		t.Fatalf("Probe: %v %v", st, err)
	}
	buf := make([]byte, size)
	for i := 0; i < count; i++ {
		n, _, err := w.RecvInto(0, 1, buf)
		if err != nil || n != size || buf[0] != byte(i) || buf[size-1] != byte(i) {
			t.Fatalf("message %d: %d bytes, first %d, %v", i, n, buf[0], err)
		}
	}
	w.e.mu.Lock()
	defer w.e.mu.Unlock()
	if w.e.unexpBytes != 0 {
		t.Fatalf("%d bytes still counted", w.e.unexpBytes)
	}
}

// TestComms: Split into rows and columns, Dup, Free; equal tags on
// different communicators never match.
func TestComms(t *testing.T) {
	for _, n := range []int{1, 2, 4, 6, 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := localWorlds(t, n, 10*time.Microsecond, 1<<30)
			each(t, ws, func(w *World) error {
				r := w.Rank()
				row, err := w.Split(r/2, -r) // key reverses the order
				if err != nil {
					return err
				}
				col, err := w.Split(r%2, 0)
				if err != nil {
					return err
				}
				none, err := w.Split(Undefined, 0)
				if err != nil || none != nil {
					return fmt.Errorf("Split(Undefined): %v %v", none, err)
				}
				wantRow := min(2, n-r/2*2)
				if row.Size() != wantRow || row.WorldRank(row.Rank()) != r {
					return fmt.Errorf("row: rank %d of %d, world %d", row.Rank(), row.Size(), row.WorldRank(row.Rank()))
				}
				if wantRow == 2 && row.Rank() != 1-r%2 {
					return fmt.Errorf("row rank %d: the key did not order it", row.Rank())
				}
				dup, err := col.Dup()
				if err != nil {
					return err
				}
				// Same tag on col and dup: each gets its own.
				if col.Size() > 1 {
					next := (col.Rank() + 1) % col.Size()
					prev := (col.Rank() + col.Size() - 1) % col.Size()
					if err := dup.Send(next, 1, []byte("dup")); err != nil {
						return err
					}
					if err := col.Send(next, 1, []byte("col")); err != nil {
						return err
					}
					b, st, err := col.RecvStatus(AnySource, 1)
					if err != nil || string(b) != "col" || st.Source != prev {
						return fmt.Errorf("col got %q %v %v", b, st, err)
					}
					b, err = dup.Recv(prev, 1)
					if err != nil || string(b) != "dup" {
						return fmt.Errorf("dup got %q %v", b, err)
					}
				}
				sum, err := Allreduce(row, []int{r}, Sum)
				if err != nil {
					return err
				}
				want := 0
				for q := r / 2 * 2; q < min(n, r/2*2+2); q++ {
					want += q
				}
				if sum[0] != want {
					return fmt.Errorf("row sum %d, want %d", sum[0], want)
				}
				all, err := col.Allgather([]byte{byte(r)})
				if err != nil || len(all) != col.Size() {
					return fmt.Errorf("col Allgather %v %v", all, err)
				}
				for i, b := range all {
					if int(b[0]) != col.WorldRank(i) {
						return fmt.Errorf("col Allgather[%d] = %d", i, b[0])
					}
				}
				parts := make([][]byte, row.Size())
				for i := range parts {
					parts[i] = []byte{byte(r), byte(i)}
				}
				got, err := row.Alltoall(parts)
				if err != nil {
					return err
				}
				for i, b := range got {
					if int(b[0]) != row.WorldRank(i) || int(b[1]) != row.Rank() {
						return fmt.Errorf("Alltoall[%d] = %v", i, b)
					}
				}
				if err := row.Barrier(); err != nil {
					return err
				}
				if err := dup.Free(); err != nil {
					return err
				}
				if err := dup.Send(0, 1, nil); !errors.Is(err, ErrFreed) {
					return fmt.Errorf("Send after Free: %v", err)
				}
				if _, err := w.Split(-5, 0); !errors.Is(err, ErrBadColor) {
					return fmt.Errorf("Split(-5): %v", err)
				}
				return w.Barrier()
			})
		})
	}
}

// TestRecvIntoAllocs: a ping-pong with RecvInto allocates nothing per
// message once warm (requests, waiters and buffers are reused).
func TestRecvIntoAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates")
	}
	ws := localWorlds(t, 2, 0, 1<<30)
	msg := make([]byte, 8)
	done := make(chan error, 1)
	const rounds = 2000
	go func() {
		buf := make([]byte, 8)
		for i := 0; i < rounds+100; i++ {
			if _, _, err := ws[1].RecvInto(0, 1, buf); err != nil {
				done <- err
				return
			}
			if err := ws[1].Send(0, 1, buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	buf := make([]byte, 8)
	round := func() {
		if err := ws[0].Send(1, 1, msg); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws[0].RecvInto(1, 1, buf); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		round()
	}
	allocs := testing.AllocsPerRun(rounds-1, round)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The peer's goroutine allocates nothing either, but AllocsPerRun
	// counts every goroutine: allow a little for the runtime (timers).
	if allocs > 0.5 {
		t.Fatalf("%.2f allocations per round trip", allocs)
	}
}

func TestEngineEnv(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tt := range []struct {
		get   func(string) string
		spin  time.Duration
		limit int64
		err   string
	}{
		{env(), defaultSpin, defaultUnexpectedLimit, ""},
		{env("DSMEXEC_SPIN", "0"), 0, defaultUnexpectedLimit, ""},
		{env("DSMEXEC_SPIN", "20us", "DSMEXEC_UNEXPECTED_LIMIT", "64MiB"), 20 * time.Microsecond, 64 << 20, ""},
		{env("DSMEXEC_SPIN", "fast"), 0, 0, "DSMEXEC_SPIN"},
		{env("DSMEXEC_UNEXPECTED_LIMIT", "lots"), 0, 0, "DSMEXEC_UNEXPECTED_LIMIT"},
	} {
		spin, limit, err := engineEnv(tt.get)
		if tt.err != "" {
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.err)) {
				t.Errorf("want an error naming %s, got %v", tt.err, err)
			}
			continue
		}
		if err != nil || spin != tt.spin || limit != tt.limit {
			t.Errorf("got %v %v %v, want %v %v", spin, limit, err, tt.spin, tt.limit)
		}
	}
}

// TestSendFirst: ranks that all Send large messages to each other before
// any Recv do not deadlock: a Send on a full socket reads meanwhile.
func TestSendFirst(t *testing.T) {
	const n, size = 3, 8 << 20
	ws := localWorlds(t, n, 0, 1<<30)
	each(t, ws, func(w *World) error {
		for to := 0; to < n; to++ {
			if to != w.Rank() {
				if err := w.Send(to, 1, bytes.Repeat([]byte{byte(w.Rank())}, size)); err != nil {
					return err
				}
			}
		}
		for i := 0; i < n-1; i++ {
			b, st, err := w.RecvStatus(AnySource, 1)
			if err != nil || len(b) != size || b[size-1] != byte(st.Source) {
				return fmt.Errorf("got %d bytes %v %v", len(b), st, err)
			}
		}
		return nil
	})
}

// TestStalledPeerLost: a peer that dies while its link is stalled (the
// unexpected-memory bound) is still seen: a receive for a message behind
// the stalled one fails instead of waiting for ever.
func TestStalledPeerLost(t *testing.T) {
	ws := localWorlds(t, 2, 0, 1024)
	if err := ws[0].Send(1, 1, make([]byte, 2048)); err != nil { // stalls rank 1's link
		t.Fatal(err)
	}
	if err := ws[0].Send(1, 2, []byte("behind")); err != nil {
		t.Fatal(err)
	}
	// Rank 0 dies: its socket closes without a BYE.
	unix.Shutdown(ws[0].e.links[1].fd, unix.SHUT_RDWR)
	b, err := ws[1].Recv(0, 2) // behind the stalled message
	if err == nil && string(b) == "behind" {
		return // read after the peer closed: also fine
	}
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Rank != 0 {
		t.Fatalf("Recv behind a stalled message from a dead peer: %q %v", b, err)
	}
}

// TestHandoff: many goroutines wait at once, each for its own tag; the
// messages come in the opposite order, so the driver's own receive often
// completes first and the role must pass on without a lost wake-up.
func TestHandoff(t *testing.T) {
	for _, spin := range []time.Duration{0, 20 * time.Microsecond} {
		ws := localWorlds(t, 2, spin, 1<<30)
		const g, rounds = 32, 20
		each(t, ws, func(w *World) error {
			for round := 0; round < rounds; round++ {
				if w.Rank() == 1 {
					if _, err := w.Recv(0, 1000); err != nil { // every receiver is posted
						return err
					}
					for i := g - 1; i >= 0; i-- {
						if err := w.Send(0, i, []byte{byte(i)}); err != nil {
							return err
						}
					}
					continue
				}
				var wg sync.WaitGroup
				errs := make(chan error, g)
				var posted sync.WaitGroup
				posted.Add(g)
				for i := 0; i < g; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						req := w.Irecv(1, i)
						posted.Done()
						if i%2 == 0 {
							if _, err := req.Wait(); err != nil {
								errs <- err
								return
							}
						} else {
							for {
								done, _, err := req.Test()
								if err != nil {
									errs <- err
									return
								}
								if done {
									break
								}
								if i%4 == 1 {
									w.Iprobe(1, 999)
								}
								// Let the other world's goroutines (same
								// process, GOMAXPROCS Ps) run.
								runtime.Gosched()
							}
						}
						if b := req.Bytes(); len(b) != 1 || int(b[0]) != i {
							errs <- fmt.Errorf("tag %d got %v", i, b)
						}
					}(i)
				}
				posted.Wait()
				if err := w.Send(1, 1000, nil); err != nil {
					return err
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					return err
				}
			}
			return nil
		})
	}
}
