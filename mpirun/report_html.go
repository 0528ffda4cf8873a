package main

import (
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/htmlreport"
	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

// writeHTML writes the -report-html page of the job: the summary table,
// the message matrix (from the ranks' counters, or the trace when a rank
// sent none), the timeline from the trace.
func (d *driver) writeHTML(w io.Writer, tl *tracefmt.Timeline) error {
	cfg := d.cfg
	r := &htmlreport.Report{
		Title:   d.title(),
		Command: "mpirun " + strings.Join(d.args(), " "),
	}
	htmlreport.FromTrace(r, tl, cfg.np)
	s := d.summary(d.reps)
	head, rows := s.cells()
	if len(head) > 2 {
		r.Columns = head[2:]
	}
	for i, row := range rows {
		if len(row) < 2 {
			continue
		}
		r.Rows = append(r.Rows, htmlreport.Row{Rank: s.Ranks[i].Rank, Host: row[1], Cells: row[2:]})
	}
	if s.msgs {
		r.Messages, r.Bytes = toInt64(s.Messages), toInt64(s.Bytes)
	}
	r.FalseSharing = s.FalseSharing
	for rk, rep := range d.traces.pageReports(cfg.np) {
		if rep == nil {
			continue
		}
		r.Pages.Count, r.Pages.PageSize = rep.Pages, rep.PageSize
		for _, c := range rep.Counts {
			if c.Faults+c.Moves+c.Invalidations > 0 {
				r.Pages.Cells = append(r.Pages.Cells, htmlreport.PageCell{Page: int(c.Page), Rank: rk, Faults: c.Faults, Moves: c.Moves, Invalidations: c.Invalidations})
			}
		}
	}
	var bound time.Duration
	for _, n := range tl.Notes {
		if strings.Contains(n, "cut short") {
			r.Notes = append(r.Notes, n)
		}
	}
	if bound = clockBound(tl); bound > 0 {
		r.Notes = append(r.Notes, "The ranks' clocks are aligned to mpirun's within ±"+bound.Round(time.Microsecond).String()+" (measured at the start, NTP style).")
	}
	_, err := htmlreport.Write(w, r)
	return err
}

func toInt64(m [][]uint64) [][]int64 {
	out := make([][]int64, len(m))
	for i, row := range m {
		out[i] = make([]int64, len(row))
		for j, v := range row {
			out[i][j] = int64(v)
		}
	}
	return out
}

// title names the job: "ring: 4 ranks on 1 host".
func (d *driver) title() string {
	cfg := d.cfg
	name := cfg.path
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	hosts := len(cfg.plan.hosts)
	return name + ": " + itoa(cfg.np) + " rank" + plural(cfg.np) + " on " + itoa(hosts) + " host" + plural(hosts)
}

func (d *driver) args() []string {
	var out []string
	for i, a := range d.cfg.apps {
		if i > 0 {
			out = append(out, ":")
		}
		out = append(out, "-np", itoa(a.np), a.program)
		out = append(out, a.args...)
	}
	return out
}
func itoa(n int) string { return strconv.Itoa(n) }

var boundRx = regexp.MustCompile(`± (\S+)$`)

// clockBound is the largest clock error bound of the merged streams.
func clockBound(tl *tracefmt.Timeline) time.Duration {
	var b time.Duration
	for _, n := range tl.Notes {
		if m := boundRx.FindStringSubmatch(n); m != nil {
			if d, err := time.ParseDuration(m[1]); err == nil && d > b {
				b = d
			}
		}
	}
	return b
}
