package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/falseshare"
	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
	"github.com/dsmexec/dsmexec/internal/trace"
)

// summaryRow is one rank's line of the -summary report; its JSON form is
// an element of the -report-format=json "ranks" (README: "Reports").
type summaryRow struct {
	Rank        int     `json:"rank"`
	Host        string  `json:"host"`
	Started     bool    `json:"started"`
	Pid         int     `json:"pid,omitempty"`
	ExitCode    int     `json:"exit_code"` // -1 if killed by a signal or never started
	Signal      string  `json:"signal,omitempty"`
	Status      int     `json:"status"` // exit code, or 128+signal
	WallSeconds float64 `json:"wall_seconds"`
	UserSeconds float64 `json:"user_seconds"`
	SysSeconds  float64 `json:"sys_seconds"`
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	Backend     string  `json:"backend,omitempty"`
	// Messages this rank sent, and that arrived at it (point-to-point,
	// collective and barrier traffic; see rank/counters.go).
	MsgsSent      uint64 `json:"msgs_sent"`
	BytesSent     uint64 `json:"bytes_sent"`
	MsgsReceived  uint64 `json:"msgs_received"`
	BytesReceived uint64 `json:"bytes_received"`
	// Time (seconds) blocked in receives (Recv, Probe, Wait, Sendrecv)
	// and barriers (Barrier, Finalize): known only when the job was traced
	// (-trace, -report-html), null otherwise; in dsm locks and faults.
	RecvWaitSeconds    *float64       `json:"recv_wait_seconds"`
	BarrierWaitSeconds *float64       `json:"barrier_wait_seconds"`
	LockWaitSeconds    float64        `json:"lock_wait_seconds"`
	LockHoldSeconds    float64        `json:"lock_hold_seconds"`
	FaultSeconds       float64        `json:"fault_seconds"`
	DSM                map[string]any `json:"dsm,omitempty"`    // raw: counts and bytes as integers, times in seconds
	Values             map[string]any `json:"values,omitempty"` // what the rank reported: numbers as numbers, durations in seconds

	dsmText map[string]string // the DSM counters as the table shows them
	counted bool              // the rank reported message counts
	valText map[string]string
}

type summary struct {
	Backend    string       `json:"backend,omitempty"` // the DSM fault backend(s)
	DSMColumns []string     `json:"dsm_columns"`       // order of the raw DSM counters
	Columns    []string     `json:"columns"`           // order of the values ranks reported
	Ranks      []summaryRow `json:"ranks"`
	// Messages[i][j] and Bytes[i][j]: what rank i sent to rank j, as rank
	// i counted it (absent when no rank reported counts).
	Messages [][]uint64 `json:"messages,omitempty"`
	Bytes    [][]uint64 `json:"bytes,omitempty"`

	// FalseSharing: the pages that changed owner most (with the per-page
	// reports of -summary, -trace, -report-html), flagged ones first.
	FalseSharing []falseshare.Finding `json:"false_sharing,omitempty"`

	dsmShown []string // the table's DSM columns
	msgs     bool     // some rank reported message counts
	traced   bool     // receive and barrier times are known
	locks    bool     // some rank waited for or held a lock
	faults   bool     // some rank spent time in faults
}

// orderedKeys collects names in first-seen order.
type orderedKeys struct {
	seen map[string]bool
	list []string
}

func (o *orderedKeys) add(names ...string) {
	if o.seen == nil {
		o.seen = map[string]bool{}
	}
	for _, n := range names {
		if !o.seen[n] {
			o.seen[n] = true
			o.list = append(o.list, n)
		}
	}
}

func (d *driver) summary(reps []rendezvous.Report) summary {
	s := summary{Backend: backends(reps)}
	var raw, shown, cols orderedKeys
	for _, rep := range reps {
		raw.add(rep.Stats.RawColumns...)
	}
	for r := range d.exits {
		row := d.summaryRow(r)
		if r < len(reps) {
			rep := reps[r]
			row.Backend = rep.Stats.Backend
			row.dsmText, row.valText = rep.Stats.DSM, rep.Values
			shown.add(rep.Stats.Columns...)
			shown.add(sortedKeys(rep.Stats.DSM)...) // counters without a declared order go last
			cols.add(rep.Columns...)
			row.DSM = rawDSM(rep.Stats)
			s.addPeers(r, len(d.exits), &row, rep.Stats.Peers)
			raw.add(sortedKeys(row.DSM)...)
			for c, v := range rep.Values {
				if row.Values == nil {
					row.Values = map[string]any{}
				}
				row.Values[c] = rawValue(v)
			}
		}
		s.Ranks = append(s.Ranks, row)
	}
	s.fillMatrix()
	d.times(&s, reps)
	s.FalseSharing = d.falseSharing()
	s.DSMColumns, s.Columns = raw.list, cols.list
	for _, c := range shown.list {
		if !allZero(s.Ranks, c) {
			s.dsmShown = append(s.dsmShown, c)
		}
	}
	return s
}

func (d *driver) summaryRow(r int) summaryRow {
	row := summaryRow{Rank: r, Host: d.cfg.plan.host(r).name, Started: d.started[r], ExitCode: -1}
	if d.started[r] {
		e := d.exits[r]
		row.Pid = e.Pid
		row.ExitCode = e.Code
		if e.Signal != 0 {
			row.Signal = proc.SignalName(e.Signal)
		}
		row.Status = e.Status()
		row.WallSeconds = e.Wall.Seconds()
		row.UserSeconds = e.User.Seconds()
		row.SysSeconds = e.Sys.Seconds()
		row.MaxRSSBytes = e.MaxRSS
	}
	return row
}

// rawDSM is a rank's DSM counters as numbers: as the rank sent them, or
// (from a rank that sent only the display strings) parsed from those.
func rawDSM(st rendezvous.Stats) map[string]any {
	if len(st.Raw) == 0 && len(st.DSM) == 0 {
		return nil
	}
	m := map[string]any{}
	for k, v := range st.Raw {
		m[k] = number(v)
	}
	if len(st.Raw) == 0 {
		for k, v := range st.DSM {
			m[k] = rawValue(v)
		}
	}
	return m
}

// number is v as an integer when it is one (JSON and CSV then show no
// fraction), else v.
func number(v float64) any {
	if v == float64(int64(v)) {
		return int64(v)
	}
	return v
}

// rawValue turns a display string into a number where it is one: an
// integer, a float, a duration (seconds) or a size (bytes); else the
// string.
func rawValue(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d.Seconds()
	}
	if m := sizeRx.FindStringSubmatch(s); m != nil {
		f, _ := strconv.ParseFloat(m[1], 64)
		return int64(f * float64(int64(1)<<(10*strings.Index("_KMG", m[2]))))
	}
	return s
}

// sizeRx matches sizes as the DSM counters show them: 4.0KiB, 12 B.
var sizeRx = regexp.MustCompile(`^(\d+(?:\.\d+)?) ?([KMG]?)(?:i?B)$`)

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// allZero reports whether DSM column c shows nothing but zeros.
func allZero(rows []summaryRow, c string) bool {
	for _, r := range rows {
		if v := r.dsmText[c]; strings.ContainsAny(v, "123456789") {
			return false
		}
	}
	return true
}

// writeSummary prints the -summary report to -report-file or stderr, in
// one write.
func (d *driver) writeSummary(reps []rendezvous.Report, stderr *os.File) error {
	s := d.summary(reps)
	var buf bytes.Buffer
	var err error
	switch d.cfg.format {
	case "json":
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(s)
	case "csv":
		err = s.writeCSV(&buf)
	default:
		width := 0
		if d.cfg.reportFile == "" {
			width = termWidth(stderr)
		}
		err = s.writeTable(&buf, width)
		s.writeFalseSharing(&buf)
	}
	if err != nil {
		return err
	}
	if d.cfg.reportFile != "" {
		return os.WriteFile(d.cfg.reportFile, buf.Bytes(), 0o644)
	}
	_, err = stderr.Write(buf.Bytes())
	return err
}

// csvHeader is the first columns of -report-format=csv (README: "Reports").
var csvHeader = []string{"rank", "host", "pid", "exit_code", "signal", "status", "wall_seconds", "user_seconds", "sys_seconds", "max_rss_bytes", "backend", "msgs_sent", "bytes_sent", "msgs_received", "bytes_received",
	"recv_wait_seconds", "barrier_wait_seconds", "lock_wait_seconds", "lock_hold_seconds", "fault_seconds"}

func (s summary) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := append(append(append([]string(nil), csvHeader...), s.DSMColumns...), s.Columns...)
	cw.Write(head)
	for _, r := range s.Ranks {
		pid := ""
		if r.Started {
			pid = strconv.Itoa(r.Pid)
		}
		rec := []string{
			strconv.Itoa(r.Rank), r.Host, pid, strconv.Itoa(r.ExitCode), r.Signal, strconv.Itoa(r.Status),
			ftoa(r.WallSeconds), ftoa(r.UserSeconds), ftoa(r.SysSeconds), strconv.FormatInt(r.MaxRSSBytes, 10), r.Backend,
			utoa(r.MsgsSent), utoa(r.BytesSent), utoa(r.MsgsReceived), utoa(r.BytesReceived),
			optSeconds(r.RecvWaitSeconds), optSeconds(r.BarrierWaitSeconds), ftoa(r.LockWaitSeconds), ftoa(r.LockHoldSeconds), ftoa(r.FaultSeconds),
		}
		for _, c := range s.DSMColumns {
			rec = append(rec, csvCell(r.DSM[c]))
		}
		for _, c := range s.Columns {
			rec = append(rec, csvCell(r.Values[c]))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

func csvCell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) }

func utoa(u uint64) string { return strconv.FormatUint(u, 10) }

// addPeers takes rank r's message counts (indexed by world rank) into its
// row and the matrices.
func (s *summary) addPeers(r, np int, row *summaryRow, peers []rendezvous.PeerCount) {
	if len(peers) == 0 {
		return
	}
	if s.Messages == nil {
		s.Messages, s.Bytes = make([][]uint64, np), make([][]uint64, np)
	}
	if r >= np {
		return
	}
	s.msgs, row.counted = true, true
	s.Messages[r], s.Bytes[r] = make([]uint64, np), make([]uint64, np)
	for j, p := range peers {
		row.MsgsSent += p.SentMsgs
		row.BytesSent += p.SentBytes
		row.MsgsReceived += p.ArrivedMsgs
		row.BytesReceived += p.ArrivedBytes
		if j < np {
			s.Messages[r][j], s.Bytes[r][j] = p.SentMsgs, p.SentBytes
		}
	}
}

// fillMatrix fills the matrix rows of ranks that reported no
// counts (they died before Finalize) with zeros, so that every row has np
// cells.
func (s *summary) fillMatrix() {
	for i := range s.Messages {
		if s.Messages[i] == nil {
			s.Messages[i], s.Bytes[i] = make([]uint64, len(s.Messages)), make([]uint64, len(s.Messages))
		}
	}
}

func optSeconds(f *float64) string {
	if f == nil {
		return ""
	}
	return ftoa(*f)
}

// times fills the time columns: locks and faults from the ranks' stats,
// receives and barriers from the trace when there is one.
func (d *driver) times(s *summary, reps []rendezvous.Report) {
	for i := range s.Ranks {
		row := &s.Ranks[i]
		if r := row.Rank; r < len(reps) {
			st := reps[r].Stats
			row.LockWaitSeconds, row.LockHoldSeconds = st.LockWait, st.LockHold
			row.FaultSeconds = st.Raw["fault_mean_seconds"] * (st.Raw["read_faults"] + st.Raw["write_faults"])
		}
		s.locks = s.locks || row.LockWaitSeconds > 0 || row.LockHoldSeconds > 0
		s.faults = s.faults || row.FaultSeconds > 0
	}
	if !d.cfg.tracing() || d.traces == nil {
		return
	}
	tl, _, err := d.timeline()
	if err != nil {
		return
	}
	recv := make([]float64, len(s.Ranks))
	barrier := make([]float64, len(s.Ranks))
	for _, sl := range tl.Slices {
		if sl.Rank < 0 || sl.Rank >= len(recv) {
			continue
		}
		sec := float64(sl.End-sl.Start) / 1e9
		switch sl.Kind {
		case trace.KindRecv, trace.KindProbe, trace.KindWait, trace.KindSendrecv:
			recv[sl.Rank] += sec
		case trace.KindBarrier, trace.KindFinalize:
			barrier[sl.Rank] += sec
		}
	}
	s.traced = true
	for i := range s.Ranks {
		if r := s.Ranks[i].Rank; r < len(recv) {
			s.Ranks[i].RecvWaitSeconds, s.Ranks[i].BarrierWaitSeconds = &recv[r], &barrier[r]
		}
	}
}

// falseSharing runs the detector on the ranks' page reports: ownership
// changes of a page are the write grants of every rank.
func (d *driver) falseSharing() []falseshare.Finding {
	if d.traces == nil {
		return nil
	}
	reps := d.traces.pageReports(d.cfg.np)
	pages := map[int64]*falseshare.Page{}
	size := 0
	for r, rep := range reps {
		if rep == nil {
			continue
		}
		size = rep.PageSize
		for _, c := range rep.Counts {
			p := pages[c.Page]
			if p == nil {
				p = &falseshare.Page{Page: int(c.Page)}
				pages[c.Page] = p
			}
			p.Changes += int(c.Grants)
			if len(c.Written) > 0 {
				p.Writers = append(p.Writers, falseshare.Writer{Rank: r, Ranges: c.Written})
			}
		}
	}
	var list []falseshare.Page
	for _, p := range pages {
		list = append(list, *p)
	}
	return falseshare.Detect(list, size, falseshare.Threshold, 20)
}
