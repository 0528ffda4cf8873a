package rank

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// conns counts this rank's application links and the mesh's connections.
func (w *World) conns() (links, made, dials int) {
	w.e.mu.Lock()
	for _, l := range w.e.links {
		if l != nil {
			links++
		}
	}
	w.e.mu.Unlock()
	if w.od != nil {
		made, dials = w.od.Conns(), w.od.Dials()
	}
	return
}

// openFds counts this process's open file descriptors.
func openFds() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents) - 1 // (the directory itself)
}

func init() {
	// ringtalk: every rank talks only to its ring neighbours, and has at
	// most 2 application connections.
	programs["ringtalk"] = func(w *World) error {
		r, n := w.Rank(), w.Size()
		next, prev := (r+1)%n, (r+n-1)%n
		for i := 0; i < 50; i++ {
			if err := w.Send(next, 3, []byte(strconv.Itoa(i))); err != nil {
				return err
			}
			b, err := w.Recv(prev, 3)
			if err != nil {
				return err
			}
			if string(b) != strconv.Itoa(i) {
				return fmt.Errorf("message %d from rank %d is %q", i, prev, b)
			}
		}
		links, made, _ := w.conns()
		fmt.Printf("rank %d: %d links, %d connections\n", r, links, made)
		if links > 2 || made > 2 {
			return fmt.Errorf("rank %d talked to its two neighbours over %d links (%d connections)", r, links, made)
		}
		// Exit without Finalize: its barrier would connect a rank still in
		// the loop to partners of the barrier, and spoil the count. What
		// this rank sent is received all the same (a link's messages
		// before its EOF are; mpirun's LOST is ignored for a linked peer).
		os.Exit(0)
		return nil
	}
	// crossing: every rank sends to every other at once before receiving
	// (every pair dials from both sides at the same time); per source the
	// messages arrive in order.
	programs["crossing"] = func(w *World) error {
		r, n := w.Rank(), w.Size()
		const per = 200
		for i := 0; i < per; i++ {
			for k := 1; k < n; k++ {
				if err := w.Send((r+k)%n, 7, []byte(strconv.Itoa(i))); err != nil {
					return err
				}
			}
		}
		for k := 1; k < n; k++ {
			from := (r + n - k) % n
			for i := 0; i < per; i++ {
				b, err := w.Recv(from, 7)
				if err != nil {
					return err
				}
				if string(b) != strconv.Itoa(i) {
					return fmt.Errorf("message %d from rank %d is %q", i, from, b)
				}
			}
		}
		links, made, _ := w.conns()
		if links != n-1 || made != n-1 {
			return fmt.Errorf("rank %d: %d links, %d connections, want %d", r, links, made, n-1)
		}
		return nil
	}
	// anyfirst: rank 0 receives with AnySource before anyone connected to
	// it and never dials; the others connect to send.
	programs["anyfirst"] = func(w *World) error {
		r, n := w.Rank(), w.Size()
		if r != 0 {
			for i := 0; i < 20; i++ {
				if err := w.Send(0, 2, []byte(strconv.Itoa(i))); err != nil {
					return err
				}
			}
			return nil
		}
		next := make([]int, n)
		for k := 0; k < 20*(n-1); k++ {
			b, st, err := w.RecvStatus(AnySource, 2)
			if err != nil {
				return err
			}
			if string(b) != strconv.Itoa(next[st.Source]) {
				return fmt.Errorf("message %d from rank %d is %q", next[st.Source], st.Source, b)
			}
			next[st.Source]++
		}
		if _, _, dials := w.conns(); dials != 0 {
			return fmt.Errorf("rank 0 dialled %d times to receive", dials)
		}
		return nil
	}
	// killedearly: rank 1 is SIGKILLed right after Init, before anyone
	// connected to it; a receive from it by a lower rank (which dials), a
	// send to it by a higher rank (which dials) and a receive from it by a
	// higher rank (which only waits: mpirun's word is all it gets) all
	// fail with a PeerError naming rank 1.
	programs["killedearly"] = func(w *World) error {
		var err error
		start := time.Now()
		switch w.Rank() {
		case 1:
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		case 0:
			_, err = w.Recv(1, 0)
		case 2:
			err = w.Send(1, 0, []byte("x"))
		default:
			_, err = w.Recv(1, 0)
		}
		var pe *PeerError
		if !errors.As(err, &pe) || pe.Rank != 1 {
			return fmt.Errorf("rank %d: a call needing rank 1 returned %v, want a PeerError for rank 1", w.Rank(), err)
		}
		fmt.Printf("rank %d: failed after %v: %v\n", w.Rank(), time.Since(start).Round(time.Millisecond), err)
		os.Exit(0)
		return nil
	}
	// stopped: rank 1 stops itself (SIGSTOP: alive for mpirun, its master
	// connection open, but it answers no handshake); rank 0's Send to it
	// fails once DSMEXEC_TIMEOUT has passed with a PeerError naming rank 1
	// and its address, then rank 0 kills it (its pid is in RANK_TEST_DIR).
	programs["stopped"] = func(w *World) error {
		pidFile := os.Getenv("RANK_TEST_DIR") + "/pid1"
		if w.Rank() == 1 {
			if err := os.WriteFile(pidFile+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
				return err
			}
			os.Rename(pidFile+".tmp", pidFile)
			for { // (stopped again if anything continues it; rank 0 kills it)
				syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			}
		}
		// Wait until rank 1 is stopped (state T in /proc/PID/stat).
		pid := 0
		for end := time.Now().Add(10 * time.Second); ; {
			if b, rerr := os.ReadFile(pidFile); rerr == nil {
				pid, _ = strconv.Atoi(string(b))
				if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") T ") {
					break
				}
			}
			if time.Now().After(end) {
				return fmt.Errorf("rank 1 did not stop (pid %d)", pid)
			}
			time.Sleep(10 * time.Millisecond) // polls a condition, bounded
		}
		err := w.Send(1, 0, []byte("x"))
		syscall.Kill(pid, syscall.SIGKILL)
		var pe *PeerError
		ok := errors.As(err, &pe) && pe.Rank == 1 && strings.Contains(err.Error(), "no connection to rank 1 at 127.0.0.1:")
		if !ok {
			return fmt.Errorf("Send to a stopped rank returned %v, want a PeerError naming rank 1 and its address", err)
		}
		fmt.Println("send failed:", err)
		os.Exit(0)
		return nil
	}
	// fds: after Init and one Barrier, print the open fds and connections.
	programs["fds"] = func(w *World) error {
		if err := w.Barrier(); err != nil {
			return err
		}
		links, made, dials := w.conns()
		fmt.Printf("fds %d links %d conns %d dials %d\n", openFds(), links, made, dials)
		return nil
	}
}

func TestRingNeighboursOnly(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			runJob(t, "ringtalk", 8, transportEnv(tr))
		})
	}
}

func TestCrossingDials(t *testing.T) {
	rounds := 5
	if testing.Short() || raceOn {
		rounds = 2
	}
	for i := 0; i < rounds; i++ {
		for _, tr := range transports {
			t.Run(fmt.Sprintf("%s/%d", tr, i), func(t *testing.T) {
				runJob(t, "crossing", 5, transportEnv(tr))
			})
		}
	}
}

func TestAnySourceBeforeConnect(t *testing.T) {
	runJob(t, "anyfirst", 5)
}

func TestKilledBeforeConnect(t *testing.T) {
	outs, errs := startJob(t, "killedearly", 4)
	for r := range outs {
		if r == 1 {
			continue
		}
		if errs[r] != nil || !strings.Contains(outs[r], "lost rank 1") {
			t.Errorf("rank %d: %v\n%s", r, errs[r], outs[r])
		}
		t.Logf("%s", strings.TrimSpace(outs[r]))
	}
}

// TestUnreachablePeer: a peer that mpirun does not report lost but that
// answers no handshake is retried until the timeout, then the call fails
// naming it and its address.
func TestUnreachablePeer(t *testing.T) {
	dir := t.TempDir()
	outs, errs := startJob(t, "stopped", 2, "DSMEXEC_TIMEOUT=3s", "RANK_TEST_DIR="+dir)
	if errs[0] != nil || !strings.Contains(outs[0], "send failed: rank: lost rank 1: mesh: rank 0: no connection to rank 1 at ") {
		t.Fatalf("rank 0: %v\n%s\nrank 1: %v\n%s", errs[0], outs[0], errs[1], outs[1])
	}
	t.Logf("%s", strings.TrimSpace(outs[0]))
}

// TestFdsAtScale: 64 ranks (no shared region: DSMEXEC_DSM_SIZE=0, so the
// page server's memory mesh is not counted), Init and one Barrier: each
// rank holds at most 32 fds, and its connections are those of the
// dissemination barrier (at most 2·log2(64) = 12).
func TestFdsAtScale(t *testing.T) {
	if testing.Short() || raceOn {
		t.Skip("64 processes")
	}
	const n = 64
	outs := runJob(t, "fds", n)
	maxFds, maxConns := 0, 0
	for r, out := range outs {
		var fds, links, conns, dials int
		i := strings.Index(out, "fds ")
		if i < 0 {
			t.Fatalf("rank %d said %q", r, out)
		}
		fmt.Sscanf(out[i:], "fds %d links %d conns %d dials %d", &fds, &links, &conns, &dials)
		maxFds, maxConns = max(maxFds, fds), max(maxConns, conns)
		if fds > 32 || conns > 12 || links != conns {
			t.Errorf("rank %d: %d fds, %d links, %d connections", r, fds, links, conns)
		}
	}
	t.Logf("N=%d: at most %d fds and %d connections per rank after Init+Barrier", n, maxFds, maxConns)
}
