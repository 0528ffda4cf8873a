package remote_test

import (
	"fmt"
	"io"
	"sort"

	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/remote"
)

// An agent driven through pipes; over SSH, Host.StartAgent wires the same
// Client to a session's stdin and stdout.
func ExampleClient() {
	toAgent, agentIn := io.Pipe()
	agentOut, fromAgent := io.Pipe()
	go func() {
		remote.RunAgent(toAgent, fromAgent)
		fromAgent.Close()
	}()

	lines, exits := make(chan proc.Line), make(chan proc.Exit)
	c, err := remote.NewClient("node1", agentOut, agentIn, lines, exits)
	if err != nil {
		fmt.Println(err)
		return
	}
	for r := 0; r < 2; r++ {
		c.Start(remote.RankSpec{Rank: r, Path: "/bin/sh", Args: []string{"-c", "echo hello from rank $R; exit $R"}, Env: []string{fmt.Sprintf("R=%d", r)}})
	}
	var out []string
	for n := 0; n < 2; {
		select {
		case l := <-lines:
			out = append(out, fmt.Sprintf("[rank %d] %s", l.Rank, l.Text))
		case e := <-exits:
			out = append(out, fmt.Sprintf("rank %d %s", e.Rank, e))
			n++
		}
	}
	c.CloseInput()
	<-c.Done()
	sort.Strings(out)
	for _, s := range out {
		fmt.Println(s)
	}
	// Output:
	// [rank 0] hello from rank 0
	// [rank 1] hello from rank 1
	// rank 0 exited with status 0
	// rank 1 exited with status 1
}
