package output_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/output"
	"github.com/dsmexec/dsmexec/internal/proc"
)

func piece(rank int, s proc.Stream, text string, more bool) proc.Line {
	return proc.Line{Rank: rank, Stream: s, Text: []byte(text), Partial: more, More: more}
}

// A 3 MiB line arrives in three pieces with other ranks' lines (both
// streams) and a launcher line between them: it comes out whole, tagged
// once, and nothing is written inside it.
func TestLongLineWhole(t *testing.T) {
	const M = proc.MaxLine
	a, b, c := strings.Repeat("a", M), strings.Repeat("b", M), strings.Repeat("c", M)
	var out, errw recorder
	dir := t.TempDir()
	w, err := output.New(output.Options{Stdout: &out, Stderr: &errw, Size: 3, Tag: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan proc.Line) // a send returns once Run has the line
	done := make(chan error, 1)
	go func() { done <- w.Run(ch) }()
	ch <- piece(0, proc.Stdout, a, true)
	ch <- line(1, proc.Stdout, "one", false)
	ch <- line(2, proc.Stderr, "two", false)
	ch <- piece(0, proc.Stdout, b, true)
	ch <- line(1, proc.Stdout, "three", false)
	w.Printf(proc.Stdout, "mpirun: note") // while the long line is open
	ch <- piece(0, proc.Stdout, c, false)
	ch <- line(1, proc.Stdout, "four", false)
	close(ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.Close()
	// The launcher's note may come before or after "three" (Printf races
	// with Run), but after the long line.
	got := out.String()
	rest, ok := strings.CutPrefix(got, "[rank 0] "+a+b+c+"\n")
	if !ok || (rest != "[rank 1] one\n[rank 1] three\nmpirun: note\n[rank 1] four\n" && rest != "[rank 1] one\nmpirun: note\n[rank 1] three\n[rank 1] four\n") {
		t.Errorf("stdout (%d bytes) is not the whole line, then the others: %q", len(got), head(got))
	}
	if got := errw.String(); got != "[rank 2] two\n" {
		t.Errorf("stderr %q", got)
	}
	if b0, _ := os.ReadFile(filepath.Join(dir, "rank.0.out")); string(b0) != a+b+c+"\n" {
		t.Errorf("rank.0.out is %d bytes, want the exact line", len(b0))
	}
}

func head(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if len(l) > 40 {
			l = l[:40] + "…"
		}
		b.WriteString(l)
	}
	return b.String()
}

// End to end with a real rank: a 3 MiB line printed by a process is one
// tagged line on the terminal.
func TestLongLineFromProcess(t *testing.T) {
	var out, errw recorder
	w, err := output.New(output.Options{Stdout: &out, Stderr: &errw, Size: 2, Tag: true})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan proc.Line, 16)
	done := make(chan error, 1)
	go func() { done <- w.Run(ch) }()
	const n = 3 << 20
	var ps []*proc.Process
	for r, script := range []string{
		"head -c 3145728 /dev/zero | tr '\\0' x; echo; echo after",
		"for i in 1 2 3 4 5 6 7 8 9 10; do echo short $i; done",
	} {
		p, err := proc.Start(proc.Spec{Rank: r, Path: "/bin/sh", Args: []string{"-c", script}}, ch)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if e := p.Wait(); e.Failed() {
			t.Fatalf("rank %d: %v", e.Rank, e)
		}
	}
	close(ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	long := 0
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "[rank 0] x"):
			long++
			if l != "[rank 0] "+strings.Repeat("x", n) {
				t.Errorf("the long line is %d bytes", len(l))
			}
		case l == "[rank 0] after" || strings.HasPrefix(l, "[rank 1] short "):
		default:
			t.Errorf("unexpected line %q", head(l))
		}
	}
	if long != 1 || len(lines) != 12 {
		t.Errorf("%d long lines, %d lines; want 1 and 12", long, len(lines))
	}
}

// Beyond the held-bytes bound the long line is broken: its first part ends
// with a newline, the held lines follow, and its rest is marked.
func TestLongLineBrokenWhenHoldingTooMuch(t *testing.T) {
	var out recorder
	w, err := output.New(output.Options{Stdout: &out, Stderr: &out, Size: 2, Tag: true})
	if err != nil {
		t.Fatal(err)
	}
	output.SetHold(w, 10, time.Hour)
	ch := make(chan proc.Line, 8)
	ch <- piece(0, proc.Stdout, "AAAA", true)
	ch <- line(1, proc.Stdout, "12345", false)
	ch <- line(1, proc.Stdout, "678901", false) // 11 bytes held: break
	ch <- piece(0, proc.Stdout, "BBBB", true)
	ch <- piece(0, proc.Stdout, "CCCC", false)
	close(ch)
	if err := w.Run(ch); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "[rank 0] AAAA\n[rank 1] 12345\n[rank 1] 678901\n[rank 0] (continued) BBBBCCCC\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Held lines wait at most the hold time for the long line to end.
func TestLongLineBrokenAfterHoldTime(t *testing.T) {
	var out recorder
	w, err := output.New(output.Options{Stdout: &out, Stderr: &out, Size: 2, Tag: true})
	if err != nil {
		t.Fatal(err)
	}
	output.SetHold(w, 1<<20, time.Millisecond)
	ch := make(chan proc.Line)
	done := make(chan error, 1)
	go func() { done <- w.Run(ch) }()
	ch <- piece(0, proc.Stdout, "AAAA", true)
	ch <- line(1, proc.Stdout, "waiting", false)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "[rank 1] waiting\n") {
		if time.Now().After(deadline) {
			t.Fatalf("held line never written: %q", out.String())
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	ch <- piece(0, proc.Stdout, "BBBB", false)
	close(ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "[rank 0] AAAA\n[rank 1] waiting\n[rank 0] (continued) BBBB\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A long line whose rest never comes (the rank's agent was lost) is ended
// when the channel closes, and what it held is written.
func TestLongLineCutOff(t *testing.T) {
	var out bytes.Buffer
	w, err := output.New(output.Options{Stdout: &out, Stderr: &out, Size: 2, Tag: true})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan proc.Line, 4)
	ch <- piece(0, proc.Stdout, "AAAA", true)
	ch <- line(1, proc.Stdout, "x", false)
	close(ch)
	if err := w.Run(ch); err != nil {
		t.Fatal(err)
	}
	w.Printf(proc.Stderr, "mpirun: lost host")
	w.Close()
	if got, want := out.String(), "[rank 0] AAAA\n[rank 1] x\nmpirun: lost host\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Lines buffered on the other stream (which may be the same terminal) are
// written before a long line starts, never in the middle of it.
func TestLongLineOtherStreamFirst(t *testing.T) {
	var out recorder
	w, err := output.New(output.Options{Stdout: &out, Stderr: &out, Size: 2, Tag: true})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan proc.Line, 8)
	ch <- line(1, proc.Stderr, "before", false)
	ch <- piece(0, proc.Stdout, "AAAA", true)
	ch <- line(1, proc.Stderr, "during", false)
	ch <- piece(0, proc.Stdout, "BBBB", false)
	close(ch)
	if err := w.Run(ch); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "[rank 1] before\n[rank 0] AAAABBBB\n[rank 1] during\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
