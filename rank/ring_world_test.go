package rank

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// transports are the ways the multi-process tests run: rings between
// ranks on this host (the default), and TCP only.
var transports = []string{"auto", "tcp"}

func transportEnv(tr string) string { return "DSMEXEC_TRANSPORT=" + tr }

func init() {
	// transport: every pair uses the transport the test asked for
	// (RANK_TEST_RINGS: "all", "none", or pairs "0-1,0-3" on TCP).
	programs["transport"] = func(w *World) error {
		want := os.Getenv("RANK_TEST_RINGS")
		// Connect to every peer first (connections are made on demand).
		if _, err := w.Alltoall(make([][]byte, w.Size())); err != nil {
			return err
		}
		w.e.mu.Lock()
		defer w.e.mu.Unlock()
		links := 0
		for p, l := range w.e.links {
			if l == nil {
				continue
			}
			links++
			a, b := min(p, w.Rank()), max(p, w.Rank())
			ring := want == "all" || want != "none" && !strings.Contains(","+want+",", fmt.Sprintf(",%d-%d,", a, b))
			if (l.rr != nil) != ring {
				return fmt.Errorf("link to rank %d: ring %v, want %v (%s)", p, l.rr != nil, ring, want)
			}
		}
		if links != w.Size()-1 {
			return fmt.Errorf("%d links after Alltoall, want %d", links, w.Size()-1)
		}
		return nil
	}
	// bigboth: every rank sends a message of several fragments (larger
	// than any ring) to every other rank before receiving any: both
	// directions of every pair at once, and nobody deadlocks.
	programs["bigboth"] = func(w *World) error {
		r, n := w.Rank(), w.Size()
		const size = 2*(16<<20) + 5
		msg := func(from, to int) []byte {
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(i*31 + from*7 + to)
			}
			return b
		}
		for k := 1; k < n; k++ {
			if err := w.Send((r+k)%n, 4, msg(r, (r+k)%n)); err != nil {
				return err
			}
		}
		for k := 1; k < n; k++ {
			from := (r + n - k) % n
			b, err := w.Recv(from, 4)
			if err != nil {
				return err
			}
			if !bytes.Equal(b, msg(from, r)) {
				return fmt.Errorf("the %d bytes from rank %d differ", len(b), from)
			}
		}
		return nil
	}
	// killfull: rank 0's Send of 64 MiB blocks on a full ring (or socket):
	// rank 1 stops reading (its unexpected-memory bound stalls the link)
	// and is SIGKILLed; rank 0's Send must fail naming rank 1.
	programs["killfull"] = func(w *World) error {
		if w.Rank() == 1 {
			if _, err := w.Recv(0, 1); err != nil {
				return err
			}
			for {
				w.Iprobe(0, 99) // progress until the big message stalled the link
				w.e.mu.Lock()
				stalled := len(w.e.stalled) > 0
				w.e.mu.Unlock()
				if stalled {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			}
		}
		if err := w.Send(1, 1, nil); err != nil {
			return err
		}
		err := w.Send(1, 2, make([]byte, 64<<20))
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Rank != 1 {
			return fmt.Errorf("Send to a killed rank on a full link returned %v, want a PeerError for rank 1", err)
		}
		fmt.Println("send failed:", err)
		os.Exit(0)
		return nil
	}
	// anymix: rank 0 receives with AnySource from peers of which some are
	// on rings and some on TCP (DSMEXEC_TEST_TCP_PAIRS); per source the
	// order is kept.
	programs["anymix"] = func(w *World) error {
		const per = 300
		if w.Rank() != 0 {
			for i := 0; i < per; i++ {
				b := make([]byte, 1+(i*997)%70000) // small and ring-sized
				b[0] = byte(i)
				if err := w.Send(0, 5, b); err != nil {
					return err
				}
			}
			return nil
		}
		next := make([]int, w.Size())
		for k := 0; k < per*(w.Size()-1); k++ {
			b, st, err := w.RecvStatus(AnySource, 5)
			if err != nil {
				return err
			}
			i := next[st.Source]
			if len(b) != 1+(i*997)%70000 || b[0] != byte(i) {
				return fmt.Errorf("message %d from rank %d: %d bytes, first %d", i, st.Source, len(b), b[0])
			}
			next[st.Source]++
		}
		return nil
	}
}

func TestTransport(t *testing.T) {
	for _, c := range []struct {
		n    int
		env  []string
		want string
	}{
		{2, nil, "all"},
		{4, nil, "all"},
		{3, []string{"DSMEXEC_TRANSPORT=tcp"}, "none"},
		{4, []string{"DSMEXEC_TEST_TCP_PAIRS=0-1,2-3"}, "0-1,2-3"},
	} {
		t.Run(fmt.Sprintf("%d/%s", c.n, c.want), func(t *testing.T) {
			runJob(t, "transport", c.n, append(c.env, "RANK_TEST_RINGS="+c.want)...)
		})
	}
}

func TestBigBothWays(t *testing.T) {
	for _, tr := range transports {
		for _, n := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/%d", tr, n), func(t *testing.T) {
				runJob(t, "bigboth", n, transportEnv(tr))
			})
		}
	}
}

func TestAnySourceMixed(t *testing.T) {
	runJob(t, "anymix", 4, "DSMEXEC_TEST_TCP_PAIRS=0-1,0-3")
}

// TestKilledWhileSendBlocked: a Send blocked on a full ring (or socket)
// fails with a PeerError when the receiver dies.
func TestKilledWhileSendBlocked(t *testing.T) {
	for _, tr := range transports {
		outs, errs := startJob(t, "killfull", 2, "DSMEXEC_UNEXPECTED_LIMIT=64KiB", transportEnv(tr))
		if errs[0] != nil || !strings.Contains(outs[0], "send failed: rank: lost rank 1") {
			t.Fatalf("%s: rank 0: %v\n%s", tr, errs[0], outs[0])
		}
		t.Logf("%s: rank 0: %s", tr, strings.TrimSpace(outs[0]))
	}
}
