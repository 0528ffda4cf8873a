package remote

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAgentWatchdog: after a Ping, silence from mpirun for the Ping's idle
// time makes the agent stop its ranks and end, as for a cut-off network.
func TestAgentWatchdog(t *testing.T) {
	defer func(g time.Duration) { AgentGrace = g }(AgentGrace)
	AgentGrace = 100 * time.Millisecond
	p := startAgentPair(t)
	if err := p.c.Start(shRank(0, `echo $$; exec sleep 60`)); err != nil {
		t.Fatal(err)
	}
	l := <-p.lines
	pid, err := strconv.Atoi(string(l.Text))
	if err != nil {
		t.Fatalf("line %q", l.Text)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := p.c.send(framePing, encodePing(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	go func() { // the client side keeps draining; what arrives does not matter
		for {
			select {
			case <-p.lines:
			case <-p.exits:
			case <-p.c.Done():
				return
			}
		}
	}()
	select {
	case err := <-p.agentErr:
		if !errors.Is(err, ErrMpirunSilent) {
			t.Errorf("agent: %v, want ErrMpirunSilent", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not give up on a silent mpirun")
	}
	if n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 30_000); err != nil || n != 1 {
		t.Fatalf("rank %d still running after the watchdog fired", pid)
	}
}
