package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// summaryRow is one rank's line of the -summary report; its JSON form is
// the -report-format=json element.
type summaryRow struct {
	Rank        int               `json:"rank"`
	Host        string            `json:"host"`
	Started     bool              `json:"started"`
	Pid         int               `json:"pid,omitempty"`
	ExitCode    int               `json:"exit_code"` // -1 if killed by a signal or never started
	Signal      string            `json:"signal,omitempty"`
	Status      int               `json:"status"` // exit code, or 128+signal
	WallSeconds float64           `json:"wall_seconds"`
	UserSeconds float64           `json:"user_seconds"`
	SysSeconds  float64           `json:"sys_seconds"`
	MaxRSSBytes int64             `json:"max_rss_bytes"`
	Backend     string            `json:"backend,omitempty"`
	DSM         map[string]string `json:"dsm,omitempty"`
	Values      map[string]string `json:"values,omitempty"`
}

type summary struct {
	DSMColumns []string     `json:"dsm_columns"` // order of the DSM counters
	Columns    []string     `json:"columns"`     // order of the values ranks reported
	Ranks      []summaryRow `json:"ranks"`
}

func (d *driver) summary(reps []rendezvous.Report) summary {
	var s summary
	seenDSM, seenCol := map[string]bool{}, map[string]bool{}
	for _, r := range reps {
		for _, c := range r.Stats.Columns {
			if !seenDSM[c] {
				seenDSM[c] = true
				s.DSMColumns = append(s.DSMColumns, c)
			}
		}
		for c := range r.Stats.DSM { // counters without a declared order go last
			if !seenDSM[c] {
				seenDSM[c] = true
				s.DSMColumns = append(s.DSMColumns, c)
			}
		}
		for _, c := range r.Columns {
			if !seenCol[c] {
				seenCol[c] = true
				s.Columns = append(s.Columns, c)
			}
		}
	}
	for r := range d.exits {
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
		if r < len(reps) {
			rep := reps[r]
			row.Backend = rep.Stats.Backend
			if len(rep.Stats.DSM) > 0 {
				row.DSM = rep.Stats.DSM
			}
			if len(rep.Values) > 0 {
				row.Values = rep.Values
			}
		}
		s.Ranks = append(s.Ranks, row)
	}
	return s
}

// writeSummary prints the -summary report to -report-file or stderr, in
// one write.
func (d *driver) writeSummary(reps []rendezvous.Report, stderr io.Writer) error {
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
		err = s.writeTable(&buf)
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

func (s summary) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"rank", "host", "pid", "exit_code", "signal", "status", "wall_seconds", "user_seconds", "sys_seconds", "max_rss_bytes", "backend"}
	head = append(head, s.DSMColumns...)
	head = append(head, s.Columns...)
	cw.Write(head)
	for _, r := range s.Ranks {
		pid := ""
		if r.Started {
			pid = strconv.Itoa(r.Pid)
		}
		rec := []string{
			strconv.Itoa(r.Rank), r.Host, pid, strconv.Itoa(r.ExitCode), r.Signal, strconv.Itoa(r.Status),
			ftoa(r.WallSeconds), ftoa(r.UserSeconds), ftoa(r.SysSeconds), strconv.FormatInt(r.MaxRSSBytes, 10), r.Backend,
		}
		for _, c := range s.DSMColumns {
			rec = append(rec, r.DSM[c])
		}
		for _, c := range s.Columns {
			rec = append(rec, r.Values[c])
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) }

func (s summary) writeTable(w io.Writer) error {
	t := tablewriter.NewTable(w,
		tablewriter.WithHeaderAutoFormat(tw.Off), // keep the ranks' column names as they wrote them
		tablewriter.WithRowAlignment(tw.AlignRight),
	)
	head := []any{"RANK", "HOST", "PID", "EXIT", "WALL", "CPU", "MAX RSS"}
	for _, c := range s.DSMColumns {
		head = append(head, c)
	}
	for _, c := range s.Columns {
		head = append(head, c)
	}
	t.Header(head...)
	for _, r := range s.Ranks {
		row := []string{strconv.Itoa(r.Rank), r.Host, "-", "not started", "-", "-", "-"}
		if r.Started {
			exit := strconv.Itoa(r.ExitCode)
			if r.Signal != "" {
				exit = r.Signal
			}
			row = []string{
				strconv.Itoa(r.Rank), r.Host, strconv.Itoa(r.Pid), exit,
				roundDur(r.WallSeconds), roundDur(r.UserSeconds + r.SysSeconds), bytesString(r.MaxRSSBytes),
			}
		}
		for _, c := range s.DSMColumns {
			row = append(row, orDash(r.DSM[c]))
		}
		for _, c := range s.Columns {
			row = append(row, orDash(r.Values[c]))
		}
		if err := t.Append(row); err != nil {
			return err
		}
	}
	return t.Render()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func roundDur(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d >= time.Second:
		d = d.Round(time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(10 * time.Microsecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
