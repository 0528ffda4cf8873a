package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Real rank programs (examples), built once when a test needs them.
var (
	exampleOnce sync.Once
	exampleErr  error
)

func example(t *testing.T, name string) string {
	t.Helper()
	exampleOnce.Do(func() {
		for _, n := range []string{"ring", "counter", "jacobi"} {
			if b, err := exec.Command("go", "build", "-o", filepath.Join(binDir, n), "../examples/"+n).CombinedOutput(); err != nil {
				exampleErr = &buildError{n, err, string(b)}
				return
			}
		}
	})
	if exampleErr != nil {
		t.Fatal(exampleErr)
	}
	return filepath.Join(binDir, name)
}

type buildError struct {
	pkg string
	err error
	out string
}

func (e *buildError) Error() string {
	return "go build examples/" + e.pkg + ": " + e.err.Error() + "\n" + e.out
}

// TestMessageCounts: -report-format json carries each rank's messages
// and bytes sent and received and the matrix; the table shows them.
func TestMessageCounts(t *testing.T) {
	ring := example(t, "ring")
	r := runMpirun(t, "", "-np", "4", "-report-format", "json", ring)
	if r.status != 0 {
		t.Fatalf("status %d: %s", r.status, r.stderr)
	}
	var s summary
	if err := json.Unmarshal([]byte(r.stderr[indexJSON(r.stderr):]), &s); err != nil {
		t.Fatalf("json: %v\n%s", err, r.stderr)
	}
	if len(s.Messages) != 4 || len(s.Bytes) != 4 {
		t.Fatalf("matrix %v, bytes %v", s.Messages, s.Bytes)
	}
	for i, row := range s.Ranks {
		var sent, recv uint64
		for j := range 4 {
			sent += s.Messages[i][j]
			recv += s.Messages[j][i]
		}
		// The ring's 10 laps: at least 10 messages to the next rank.
		if next := (i + 1) % 4; s.Messages[i][next] < 10 || s.Bytes[i][next] < 80 {
			t.Errorf("rank %d sent %d messages (%d bytes) to rank %d, want at least 10 (80 bytes)", i, s.Messages[i][next], s.Bytes[i][next], next)
		}
		if row.MsgsSent != sent || row.MsgsReceived != recv || row.BytesSent == 0 || row.BytesReceived == 0 {
			t.Errorf("rank %d: sent %d received %d, the matrix says %d and %d", i, row.MsgsSent, row.MsgsReceived, sent, recv)
		}
	}
}

// indexJSON is where the JSON object starts in out (after the ranks'
// output).
func indexJSON(out string) int {
	for i := 0; i+1 < len(out); i++ {
		if out[i] == '{' && (i == 0 || out[i-1] == '\n') {
			return i
		}
	}
	return 0
}
