package output

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

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

	// A line longer than proc.MaxLine arrives in pieces (Line.More). Its
	// rank owns the terminal until the last piece: the pieces are written
	// as they come, with the tag once, and everything else (other ranks'
	// lines on either stream, the launcher's) is held and written after.
	owner      int // rank whose long line is being written, -1 if none
	ownerS     proc.Stream
	held       []heldLine
	heldBytes  int
	heldSince  time.Time // when the first held line arrived
	cont       [][3]bool // rank, stream: the next piece continues a broken line
	tagged     bool
	holdLimit  int           // held bytes beyond which the long line is broken
	holdTime   time.Duration // held time beyond which it is broken
	timeBroken bool          // for tests: the last break was for time
}

// heldLine is a line waiting for a long line to end: a rank's, or (text
// set) one of the launcher's own.
type heldLine struct {
	l    proc.Line
	text []byte
}

// Bounds on what a long line may hold back before it is broken (ended
// with a newline, its rest tagged "(continued)"): other ranks' output is
// delayed, never lost and never spliced.
const (
	defaultHoldLimit = 64 << 20
	defaultHoldTime  = 2 * time.Second
)

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
	w := &Writer{tags: make([][]byte, o.Size), owner: -1, cont: make([][3]bool, o.Size), tagged: o.Tag,
		holdLimit: defaultHoldLimit, holdTime: defaultHoldTime}
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
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var wait time.Duration
	holding := false // lines are held behind a long line (set under w.mu below)
	for {
		var l proc.Line
		var ok bool
		if holding {
			timer.Reset(wait)
			select {
			case l, ok = <-lines:
				if !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
			case <-timer.C:
				w.mu.Lock()
				if _, still := w.holdLeft(); still {
					w.breakLine(true)
					w.timeBroken = true
					w.flushLocked()
				}
				wait, holding = w.holdLeft()
				w.mu.Unlock()
				continue
			}
		} else {
			l, ok = <-lines
		}
		if !ok {
			w.mu.Lock()
			w.endLong()
			w.flushLocked()
			err := w.err
			w.mu.Unlock()
			return err
		}
		w.mu.Lock()
		w.add(l)
	batch:
		for n := 1; n < maxBatch; n++ {
			select {
			case l, ok = <-lines:
				if !ok {
					w.endLong()
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
		wait, holding = w.holdLeft()
		w.mu.Unlock()
	}
}

// holdLeft says whether lines are held behind a long line, and how long
// they may still wait.
func (w *Writer) holdLeft() (time.Duration, bool) {
	if w.owner < 0 || len(w.held) == 0 {
		return 0, false
	}
	return max(time.Until(w.heldSince.Add(w.holdTime)), 0), true
}

func (w *Writer) add(l proc.Line) {
	if l.Rank < 0 || l.Rank >= len(w.tags) || (l.Stream != proc.Stdout && l.Stream != proc.Stderr) {
		panic(fmt.Sprintf("output: line of rank %d stream %d in a job of %d ranks", l.Rank, l.Stream, len(w.tags)))
	}
	if w.files != nil {
		f := w.files[l.Rank][l.Stream]
		f.Write(l.Text)
		if !l.Partial {
			f.WriteByte('\n')
		}
	}
	w.term(l)
}

// term puts one line (or piece of a long line) on its stream, or holds it
// while another rank's long line is being written.
func (w *Writer) term(l proc.Line) {
	if w.owner >= 0 && (w.owner != l.Rank || w.ownerS != l.Stream) {
		w.hold(heldLine{l: l})
		if w.heldBytes > w.holdLimit {
			w.breakLine(true)
		}
		return
	}
	s := &w.sinks[l.Stream]
	if w.owner < 0 {
		if l.More {
			// The other stream may share a terminal with this one: what it
			// has buffered goes out before the long line starts.
			other := proc.Stdout
			if l.Stream == proc.Stdout {
				other = proc.Stderr
			}
			w.writeSink(&w.sinks[other])
		}
		if w.cont[l.Rank][l.Stream] {
			w.cont[l.Rank][l.Stream] = false
			if w.tagged {
				s.buf = append(s.buf, w.tags[l.Rank]...)
				s.buf = append(s.buf, "(continued) "...)
			}
		} else {
			s.buf = append(s.buf, w.tags[l.Rank]...)
		}
	}
	s.buf = append(s.buf, l.Text...)
	if l.More {
		w.owner, w.ownerS = l.Rank, l.Stream
	} else {
		s.buf = append(s.buf, '\n')
		if w.owner >= 0 {
			w.owner = -1
			w.replay()
		}
	}
	if len(s.buf) >= flushAt {
		w.writeSink(s)
	}
}

func (w *Writer) hold(h heldLine) {
	if len(w.held) == 0 {
		w.heldSince = time.Now()
	}
	w.held = append(w.held, h)
	w.heldBytes += len(h.l.Text) + len(h.text)
}

// replay writes the held lines (some may be held again behind another
// long line among them).
func (w *Writer) replay() {
	held := w.held
	w.held, w.heldBytes = nil, 0
	for i, h := range held {
		if h.text != nil {
			if w.owner >= 0 {
				w.hold(h)
				continue
			}
			s := &w.sinks[h.l.Stream]
			s.buf = append(s.buf, h.text...)
			continue
		}
		w.term(h.l)
		held[i] = heldLine{}
	}
}

// breakLine ends the long line being written with a newline and lets the
// held lines out; if cont, the rest of the long line, when it comes, is
// tagged "(continued)".
func (w *Writer) breakLine(cont bool) {
	if w.owner < 0 {
		return
	}
	s := &w.sinks[w.ownerS]
	s.buf = append(s.buf, '\n')
	w.cont[w.owner][w.ownerS] = cont
	w.owner = -1
	w.replay()
}

// endLong ends a long line that will get no more pieces (its rank's
// stream is gone) and lets the held lines out.
func (w *Writer) endLong() {
	for w.owner >= 0 {
		w.breakLine(false)
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
// rank files) after everything buffered so far, and flushes it at once,
// unless a rank's long line is being written: then it comes right after
// that line. A newline is added unless the text ends with one.
func (w *Writer) Printf(stream proc.Stream, format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	text := fmt.Appendf(nil, format, args...)
	if len(text) == 0 || text[len(text)-1] != '\n' {
		text = append(text, '\n')
	}
	if w.owner >= 0 {
		// A rank's long line is being written: after it.
		w.hold(heldLine{l: proc.Line{Stream: stream}, text: text})
		return
	}
	w.flushLocked()
	s := &w.sinks[stream]
	s.buf = append(s.buf, text...)
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
	w.endLong()
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
