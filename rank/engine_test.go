package rank

import (
	"bytes"
	"errors"
	"fmt"
	"os"
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
