package output_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dsmexec/dsmexec/internal/output"
	"github.com/dsmexec/dsmexec/internal/proc"
)

// recorder keeps every Write call separately.
type recorder struct {
	mu     sync.Mutex
	writes []string
	fail   error
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.writes, "")
}

func line(rank int, s proc.Stream, text string, partial bool) proc.Line {
	return proc.Line{Rank: rank, Stream: s, Text: []byte(text), Partial: partial}
}

func runAll(t *testing.T, o output.Options, ls []proc.Line) *output.Writer {
	t.Helper()
	w, err := output.New(o)
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan proc.Line, len(ls))
	for _, l := range ls {
		c <- l
	}
	close(c)
	if err := w.Run(c); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return w
}

func TestFormats(t *testing.T) {
	ls := []proc.Line{
		line(0, proc.Stdout, "hello", false),
		line(1, proc.Stderr, "oops", false),
		line(1, proc.Stdout, "", false),
		line(0, proc.Stdout, "no newline", true),
	}
	tests := []struct {
		name     string
		tag      bool
		hosts    []string
		out, err string
	}{
		{"tagged", true, nil, "[rank 0] hello\n[rank 1] \n[rank 0] no newline\n", "[rank 1] oops\n"},
		{"hosts", true, []string{"a", "b"}, "[rank 0@a] hello\n[rank 1@b] \n[rank 0@a] no newline\n", "[rank 1@b] oops\n"},
		{"raw", false, nil, "hello\n\nno newline\n", "oops\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errw recorder
			w := runAll(t, output.Options{Stdout: &out, Stderr: &errw, Size: 2, Tag: tt.tag, Hosts: tt.hosts}, ls)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.out || errw.String() != tt.err {
				t.Errorf("stdout %q stderr %q, want %q %q", out.String(), errw.String(), tt.out, tt.err)
			}
		})
	}
}

func TestRankFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub", "dir")
	var out, errw recorder
	w := runAll(t, output.Options{Stdout: &out, Stderr: &errw, Size: 3, Tag: true, Dir: dir}, []proc.Line{
		line(0, proc.Stdout, "a", false),
		line(0, proc.Stdout, "long-piece-1 ", true),
		line(0, proc.Stdout, "long-piece-2", false),
		line(2, proc.Stderr, "e", false),
		line(0, proc.Stdout, "tail", true),
	})
	w.Printf(proc.Stderr, "mpirun: not in the files")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"rank.0.out": "a\nlong-piece-1 long-piece-2\ntail",
		"rank.0.err": "",
		"rank.1.out": "",
		"rank.1.err": "",
		"rank.2.out": "",
		"rank.2.err": "e\n",
	}
	for name, content := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", name, b, err, content)
		}
	}
	if got := out.String(); got != "[rank 0] a\n[rank 0] long-piece-1 \n[rank 0] long-piece-2\n[rank 0] tail\n" {
		t.Errorf("stdout %q", got)
	}
	if got := errw.String(); got != "[rank 2] e\nmpirun: not in the files\n" {
		t.Errorf("stderr %q", got)
	}
	// Close twice: same answer, and Printf still works.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Printf(proc.Stdout, "after close\n")
	if !strings.HasSuffix(out.String(), "after close\n") {
		t.Errorf("Printf after Close: %q", out.String())
	}
}

func TestBadDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	_, err := output.New(output.Options{Stdout: &recorder{}, Stderr: &recorder{}, Size: 1, Dir: filepath.Join(f, "x")})
	if err == nil || !strings.HasPrefix(err.Error(), "output: ") {
		t.Errorf("New with a file as parent dir: %v", err)
	}
}

// Many ranks send concurrently; every Write must hold whole, well-formed
// lines, and each rank's lines must come out complete and in order.
func TestConcurrentWholeLines(t *testing.T) {
	const ranks, n = 8, 2000
	var out, errw recorder
	w, err := output.New(output.Options{Stdout: &out, Stderr: &errw, Size: ranks, Tag: true})
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan proc.Line, 16)
	done := make(chan error, 1)
	go func() { done <- w.Run(c) }()
	var wg sync.WaitGroup
	for r := range ranks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				text := fmt.Sprintf("rank %d line %d %s", r, i, strings.Repeat("x", (i*r)%300))
				c <- line(r, proc.Stdout, text, false)
				if i%100 == 0 {
					w.Printf(proc.Stdout, "mpirun: note from %d", r)
				}
			}
		}()
	}
	wg.Wait()
	close(c)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	next := make([]int, ranks)
	for _, wr := range out.writes {
		if !strings.HasSuffix(wr, "\n") {
			t.Fatalf("a write ends mid-line: %q", wr[max(0, len(wr)-80):])
		}
		for _, l := range strings.Split(strings.TrimSuffix(wr, "\n"), "\n") {
			if strings.HasPrefix(l, "mpirun: note from ") {
				continue
			}
			var tr, r, i int
			var pad string
			if k, err := fmt.Sscanf(l, "[rank %d] rank %d line %d %s", &tr, &r, &i, &pad); (err != nil && k != 3) || tr != r || r < 0 || r >= ranks || i != next[r] || len(pad) != (i*r)%300 {
				t.Fatalf("bad line %q (want rank %d line %d)", l, r, next[r])
			}
			next[r]++
		}
	}
	for r, got := range next {
		if got != n {
			t.Errorf("rank %d: %d lines, want %d", r, got, n)
		}
	}
}

func TestWriteErrorKeepsDraining(t *testing.T) {
	out := &recorder{fail: errors.New("broken pipe")}
	w, err := output.New(output.Options{Stdout: out, Stderr: &recorder{}, Size: 1, Tag: true})
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan proc.Line)
	done := make(chan error, 1)
	go func() { done <- w.Run(c) }()
	for range 100 {
		c <- line(0, proc.Stdout, "x", false) // would block forever if Run stopped
	}
	close(c)
	if err := <-done; err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("Run = %v, want the write error", err)
	}
}

func TestBadRankPanics(t *testing.T) {
	w, err := output.New(output.Options{Stdout: &recorder{}, Stderr: &recorder{}, Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "rank 5") {
			t.Errorf("recover() = %v, want a panic naming rank 5", r)
		}
	}()
	c := make(chan proc.Line, 1)
	c <- line(5, proc.Stdout, "x", false)
	close(c)
	w.Run(c)
}

func BenchmarkRun4x1000(b *testing.B) {
	var sinkOut, sinkErr bytes.Buffer
	ls := make([]proc.Line, 0, 4000)
	for i := range 1000 {
		for r := range 4 {
			ls = append(ls, line(r, proc.Stdout, fmt.Sprintf("rank %d line %d some text to make it typical", r, i), false))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		sinkOut.Reset()
		w, _ := output.New(output.Options{Stdout: &sinkOut, Stderr: &sinkErr, Size: 4, Tag: true})
		c := make(chan proc.Line, 256)
		go func() {
			for _, l := range ls {
				c <- l
			}
			close(c)
		}()
		w.Run(c)
	}
}

func ExampleWriter() {
	w, err := output.New(output.Options{Stdout: os.Stdout, Stderr: os.Stdout, Size: 2, Tag: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	lines := make(chan proc.Line, 3)
	lines <- proc.Line{Rank: 1, Stream: proc.Stdout, Text: []byte("hello from 1")}
	lines <- proc.Line{Rank: 0, Stream: proc.Stdout, Text: []byte("hello from 0")}
	lines <- proc.Line{Rank: 0, Stream: proc.Stderr, Text: []byte("no newline at the end"), Partial: true}
	close(lines)
	w.Run(lines)
	w.Printf(proc.Stderr, "mpirun: all %d ranks done", 2)
	w.Close()
	// Output:
	// [rank 1] hello from 1
	// [rank 0] hello from 0
	// [rank 0] no newline at the end
	// mpirun: all 2 ranks done
}
