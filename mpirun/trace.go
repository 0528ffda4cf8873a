package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/internal/dsmhook"
	"github.com/dsmexec/dsmexec/internal/trace"
	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

// Tracing (-trace, -trace-limit, -report-html, -merge-traces): the ranks
// record (internal/trace) and ship their streams on the rendezvous
// connection (through the host's agent on SSH hosts); mpirun appends each
// (rank, role) stream to a temporary file and, when the job is over,
// merges them into trace-event JSON (internal/tracefmt) and the HTML page
// (internal/htmlreport). docs/TRACING.md.

// defaultTraceLimit is -trace-limit's default, per rank.
const defaultTraceLimit = trace.DefaultLimit

// traceWarnTotal: past this many stream bytes in all, mpirun says the
// merge needs a lot of memory (12-21 bytes per stream byte).
const traceWarnTotal = 256 << 20

// tracing reports whether the ranks record.
func (c *config) tracing() bool { return c.traceFile != "" || c.reportHTML != "" }

// pageReports reports whether the ranks' memories count per page (for
// the false-sharing lines of -summary, and the page heat map).
func (c *config) pageReports() bool { return c.tracing() || c.summary }

// openOutputs opens the -trace and -report-html files before anything
// starts, so that an unwritable path is an error at once.
func (c *config) openOutputs() *cliError {
	if c.traceLimit <= 0 {
		return usageErr("sizes look like 64MiB, 1GiB", "-trace-limit %d: the limit must be positive", c.traceLimit)
	}
	for _, o := range []struct {
		flag, path string
		f          **os.File
	}{{"-trace", c.traceFile, &c.traceOut}, {"-report-html", c.reportHTML, &c.htmlOut}} {
		if o.path == "" {
			continue
		}
		f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return failErr("", "%s %s: %v", o.flag, o.path, unwrapPath(err))
		}
		*o.f = f
	}
	return nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// traceEnv is what every rank's environment gets when the job traces.
func (c *config) traceEnv() []string {
	var env []string
	if c.pageReports() {
		env = append(env, dsm.EnvReport+"=1")
	}
	if c.tracing() {
		env = append(env, trace.EnvTrace+"="+trace.ToMaster, trace.EnvTraceLimit+"="+strconv.FormatInt(c.traceLimit, 10))
	}
	return env
}

// traceSink collects the streams' pieces as they come, one temporary file
// per (rank, role): 64 ranks' traces do not belong in mpirun's memory.
type traceSink struct {
	dir string

	mu     sync.Mutex
	files  map[streamKey]*os.File
	order  []streamKey
	total  int64
	failed error // the first write error; later pieces are dropped
}

type streamKey struct {
	rank int
	role uint8
}

func newTraceSink(near string) (*traceSink, error) {
	dir := os.TempDir()
	if near != "" {
		dir = filepath.Dir(near)
	}
	d, err := os.MkdirTemp(dir, ".dsmexec-trace-")
	if err != nil {
		d, err = os.MkdirTemp("", "dsmexec-trace-")
		if err != nil {
			return nil, err
		}
	}
	return &traceSink{dir: d, files: map[streamKey]*os.File{}}, nil
}

// add appends a piece of rank's stream (from the master's reader).
func (s *traceSink) add(rank int, role uint8, piece []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return
	}
	k := streamKey{rank, role}
	f := s.files[k]
	if f == nil {
		var err error
		f, err = os.Create(filepath.Join(s.dir, fmt.Sprintf("rank%d.%d", rank, role)))
		if err != nil {
			s.failed = err
			return
		}
		s.files[k] = f
		s.order = append(s.order, k)
	}
	if _, err := f.Write(piece); err != nil {
		s.failed = err
	}
	s.total += int64(len(piece))
}

// streams reads every stream back, in (rank, role) order.
func (s *traceSink) streams() ([][]byte, []streamKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return nil, nil, s.failed
	}
	var keys []streamKey
	for _, k := range s.order {
		if k.role != rolePages {
			keys = append(keys, k)
		}
	}
	sortKeys(keys)
	var bufs [][]byte
	for _, k := range keys {
		b, err := os.ReadFile(s.files[k].Name())
		if err != nil {
			return nil, nil, err
		}
		bufs = append(bufs, b)
	}
	return bufs, keys, nil
}

func sortKeys(keys []streamKey) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && (keys[j].rank < keys[j-1].rank || keys[j].rank == keys[j-1].rank && keys[j].role < keys[j-1].role); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

func (s *traceSink) remove() {
	s.mu.Lock()
	for _, f := range s.files {
		f.Close()
	}
	s.mu.Unlock()
	os.RemoveAll(s.dir)
}

// finishTrace writes -trace and -report-html once the job is over
// (success or failure): what the ranks shipped, merged. Problems are
// warnings; the job's status stands.
func (d *driver) finishTrace(stderr io.Writer) {
	cfg := d.cfg
	if d.traces != nil {
		defer d.traces.remove()
	}
	if !cfg.tracing() {
		return
	}
	warn := func(format string, args ...any) { fmt.Fprintf(stderr, "mpirun: warning: "+format+"\n", args...) }
	defer func() {
		if cfg.traceOut != nil {
			cfg.traceOut.Close()
		}
		if cfg.htmlOut != nil {
			cfg.htmlOut.Close()
		}
	}()
	if d.traces == nil {
		return
	}
	tl, keys, err := d.timeline()
	if err != nil {
		warn("%v", err)
		return
	}
	for i, s := range tl.Streams {
		who := fmt.Sprintf("rank %d", keys[i].rank)
		if keys[i].role == 1 {
			who += "'s page server"
		}
		switch {
		case s.Full:
			warn("%s's trace reached -trace-limit; it stops there", who)
		case s.Truncated:
			warn("%s's trace is cut short (the rank died)", who)
		case keys[i].rank < len(d.exits) && d.exits[keys[i].rank].Failed():
			warn("%s's trace ends where the rank ended", who)
		}
	}
	seen := map[int]bool{}
	for _, k := range keys {
		seen[k.rank] = true
	}
	for r := range cfg.np {
		if !seen[r] && r < len(d.started) && d.started[r] {
			warn("rank %d shipped no trace", r)
		}
	}
	if cfg.traceOut != nil {
		if err := tl.Write(cfg.traceOut); err != nil {
			warn("-trace %s: %v", cfg.traceFile, err)
		} else if err := cfg.traceOut.Close(); err != nil {
			warn("-trace %s: %v", cfg.traceFile, err)
		}
		cfg.traceOut = nil
	}
	if cfg.htmlOut != nil {
		if err := d.writeHTML(cfg.htmlOut, tl); err != nil {
			warn("-report-html %s: %v", cfg.reportHTML, err)
		} else if err := cfg.htmlOut.Close(); err != nil {
			warn("-report-html %s: %v", cfg.reportHTML, err)
		}
		cfg.htmlOut = nil
	}
}

// mergeTraces is mpirun -merge-traces OUT FILE...: the DSMEXEC_TRACE
// files of a job launched by Hydra or Slurm, merged into one trace.
func mergeTraces(args []string, stderr io.Writer) int {
	if len(args) < 2 {
		return report(stderr, usageErr("mpirun -merge-traces OUT FILE... (the DSMEXEC_TRACE files of the ranks)", "-merge-traces needs an output file and at least one trace file"))
	}
	notes, err := tracefmt.MergeFiles(args[0], args[1:])
	if err != nil {
		return report(stderr, failErr("", "-merge-traces: %v", err))
	}
	// The clock offsets each rank measured against rank 0 at Init (and
	// applied) are information; a cut stream is a warning.
	for _, n := range notes {
		if strings.Contains(n, ": offset ") {
			fmt.Fprintf(stderr, "mpirun: clock of %s\n", n)
		} else {
			fmt.Fprintf(stderr, "mpirun: warning: %s\n", n)
		}
	}
	return 0
}

// rolePages is the TRACE frame role of a rank's page report (JSON,
// rank/trace.go).
const rolePages = 2

// timeline merges the streams the ranks shipped (once; the summary's
// time columns and -trace/-report-html share it).
func (d *driver) timeline() (*tracefmt.Timeline, []streamKey, error) {
	if d.tl != nil || d.tlErr != nil {
		return d.tl, d.tlKeys, d.tlErr
	}
	if d.traces == nil || !d.cfg.tracing() {
		d.tlErr = fmt.Errorf("no trace was recorded")
		return nil, nil, d.tlErr
	}
	bufs, keys, err := d.traces.streams()
	if err != nil {
		d.tlErr = fmt.Errorf("the trace could not be kept: %v", err)
		return nil, nil, d.tlErr
	}
	if d.traces.total > traceWarnTotal {
		fmt.Fprintf(d.stderr, "mpirun: warning: the traces total %d MiB; merging them needs several times that in memory (a smaller -trace-limit, such as 32MiB, keeps about a million messages per rank)\n", d.traces.total>>20)
	}
	tl, err := tracefmt.BuildBytes(bufs, tracefmt.Options{})
	if err != nil {
		d.tlErr = fmt.Errorf("the trace could not be read: %v", err)
		return nil, nil, d.tlErr
	}
	d.tl, d.tlKeys = tl, keys
	return tl, keys, nil
}

// pageReports are the ranks' page reports, by rank (nil entries: none).
func (s *traceSink) pageReports(np int) []*dsmhook.PageReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*dsmhook.PageReport, np)
	for k, f := range s.files {
		if k.role != rolePages || k.rank >= np {
			continue
		}
		b, err := os.ReadFile(f.Name())
		if err != nil {
			continue
		}
		var r dsmhook.PageReport
		if json.Unmarshal(b, &r) == nil {
			out[k.rank] = &r
		}
	}
	return out
}
