package output

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/dsmexec/dsmexec/internal/proc"
)

// flushAt is the buffered size past which Run writes out even if more lines
// are waiting; the buffer only ever holds whole lines.
const flushAt = 64 << 10

// maxBatch bounds how many lines Run handles before it lets Printf in.
const maxBatch = 4096

var suffix = [3]string{proc.Stdout: "out", proc.Stderr: "err"}

// Options configure a Writer.
type Options struct {
	Stdout, Stderr io.Writer // where the ranks' two streams go
	Size           int       // number of ranks; lines must have 0 <= Rank < Size
	// Tag prefixes every line with "[rank N] "; without it lines are
	// written as they are (still whole, one newline each).
	Tag bool
	// Hosts, if not nil, names the host of every rank (len Size) and the
	// tag becomes "[rank N@host] ".
	Hosts []string
	// Dir, if not empty, is created if needed and gets one rank.N.out and
	// one rank.N.err file per rank, truncated first. See the package
	// documentation for what New refuses (symbolic links, other users'
	// files and directories).
	Dir string
}

// Writer writes the lines of all ranks. Its methods may be called from
// several goroutines.
type Writer struct {
	mu     sync.Mutex
	tags   [][]byte
	sinks  [3]sink            // indexed by proc.Stream
	files  [][3]*bufio.Writer // per rank, by stream; nil without Dir
	closer []*os.File
	err    error // first error
	closed bool
}

type sink struct {
	w   io.Writer
	buf []byte
}

// New returns a Writer; it creates the per-rank files now so that a bad
// directory is reported before any rank starts.
func New(o Options) (*Writer, error) {
	if o.Stdout == nil || o.Stderr == nil || o.Size < 0 || (o.Hosts != nil && len(o.Hosts) != o.Size) {
		return nil, fmt.Errorf("output: bad options: stdout/stderr set %v/%v, size %d, %d hosts",
			o.Stdout != nil, o.Stderr != nil, o.Size, len(o.Hosts))
	}
	w := &Writer{tags: make([][]byte, o.Size)}
	w.sinks[proc.Stdout].w = o.Stdout
	w.sinks[proc.Stderr].w = o.Stderr
	if o.Tag {
		for r := range w.tags {
			tag := "[rank " + strconv.Itoa(r)
			if o.Hosts != nil {
				tag += "@" + o.Hosts[r]
			}
			w.tags[r] = []byte(tag + "] ")
		}
	}
	if o.Dir != "" {
		d, err := openDir(o.Dir)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		w.files = make([][3]*bufio.Writer, o.Size)
		for r := range w.files {
			for _, s := range []proc.Stream{proc.Stdout, proc.Stderr} {
				f, err := createIn(d, fmt.Sprintf("rank.%d.%s", r, suffix[s]))
				if err != nil {
					w.Close()
					return nil, err
				}
				w.closer = append(w.closer, f)
				w.files[r][s] = bufio.NewWriterSize(f, 32<<10)
			}
		}
	}
	return w, nil
}

// Run writes the lines it receives until lines is closed, then flushes and
// returns the first write error. Run keeps receiving after an error, so
// ranks never block on a launcher whose output went away.
func (w *Writer) Run(lines <-chan proc.Line) error {
	for {
		l, ok := <-lines
		if !ok {
			return w.Flush()
		}
		w.mu.Lock()
		w.add(l)
	batch:
		for n := 1; n < maxBatch; n++ {
			select {
			case l, ok = <-lines:
				if !ok {
					w.flushLocked()
					err := w.err
					w.mu.Unlock()
					return err
				}
				w.add(l)
			default:
				break batch
			}
		}
		w.flushLocked()
		w.mu.Unlock()
	}
}

func (w *Writer) add(l proc.Line) {
	if l.Rank < 0 || l.Rank >= len(w.tags) || (l.Stream != proc.Stdout && l.Stream != proc.Stderr) {
		panic(fmt.Sprintf("output: line of rank %d stream %d in a job of %d ranks", l.Rank, l.Stream, len(w.tags)))
	}
	s := &w.sinks[l.Stream]
	s.buf = append(s.buf, w.tags[l.Rank]...)
	s.buf = append(s.buf, l.Text...)
	s.buf = append(s.buf, '\n')
	if len(s.buf) >= flushAt {
		w.writeSink(s)
	}
	if w.files != nil {
		f := w.files[l.Rank][l.Stream]
		f.Write(l.Text)
		if !l.Partial {
			f.WriteByte('\n')
		}
	}
}

func (w *Writer) writeSink(s *sink) {
	if len(s.buf) == 0 {
		return
	}
	if _, err := s.w.Write(s.buf); err != nil && w.err == nil {
		w.err = fmt.Errorf("output: write: %w", err)
	}
	if cap(s.buf) > 4*flushAt {
		s.buf = nil // do not keep a giant line's buffer
	} else {
		s.buf = s.buf[:0]
	}
}

func (w *Writer) flushLocked() {
	w.writeSink(&w.sinks[proc.Stdout])
	w.writeSink(&w.sinks[proc.Stderr])
	for _, fs := range w.files {
		for _, f := range fs {
			if f != nil && f.Buffered() > 0 {
				if err := f.Flush(); err != nil && w.err == nil {
					w.err = fmt.Errorf("output: write rank file: %w", err)
				}
			}
		}
	}
}

// Flush writes out everything buffered and returns the first error so far.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	return w.err
}

// Printf writes one line of the launcher's own (untagged, not copied to the
// rank files) after everything buffered so far, and flushes it at once. A
// newline is added unless the text ends with one.
func (w *Writer) Printf(stream proc.Stream, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	s := &w.sinks[stream]
	s.buf = fmt.Appendf(s.buf, format, args...)
	if len(s.buf) == 0 || s.buf[len(s.buf)-1] != '\n' {
		s.buf = append(s.buf, '\n')
	}
	w.writeSink(s)
}

// Close flushes and closes the rank files. It returns the first error of
// the Writer's life; calling it again returns the same.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	w.closed = true
	w.flushLocked()
	w.files = nil // Printf may still write to the streams
	var errs []error
	for _, f := range w.closer {
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil && w.err == nil {
		w.err = fmt.Errorf("output: close rank files: %w", err)
	}
	return w.err
}
