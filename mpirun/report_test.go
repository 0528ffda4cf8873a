package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The csv and json reports carry raw numbers with the header and schema
// the README documents ("Reports").
func TestReportFormats(t *testing.T) {
	dir := t.TempDir()
	csvFile, jsonFile := filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.json")
	for _, f := range [][2]string{{"csv", csvFile}, {"json", jsonFile}} {
		if r := runMpirun(t, "", "-np", "3", "-report-format", f[0], "-report-file", f[1], rdvprog); r.status != 0 {
			t.Fatalf("%s: status %d, stderr:\n%s", f[0], r.status, r.stderr)
		}
	}
	b, _ := os.ReadFile(csvFile)
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(recs) != 4 {
		t.Fatalf("csv: %v\n%s", err, b)
	}
	want := "rank,host,pid,exit_code,signal,status,wall_seconds,user_seconds,sys_seconds,max_rss_bytes,backend,msgs_sent,bytes_sent,msgs_received,bytes_received,recv_wait_seconds,barrier_wait_seconds,lock_wait_seconds,lock_hold_seconds,fault_seconds,faults,bytes_in,zero,mean_seconds,answer,time,only_one"
	if h := strings.Join(recs[0], ","); h != want {
		t.Fatalf("csv header\n %s, want\n %s", h, want)
	}
	for i, rec := range recs[1:] {
		col := func(name string) string { return rec[indexOf(recs[0], name)] }
		for _, c := range []string{"rank", "pid", "exit_code", "status", "max_rss_bytes", "msgs_sent", "bytes_sent", "msgs_received", "bytes_received", "faults", "bytes_in", "answer"} {
			if _, err := strconv.ParseInt(col(c), 10, 64); err != nil {
				t.Errorf("rank %d: %s = %q, not an integer", i, c, col(c))
			}
		}
		for _, c := range []string{"wall_seconds", "user_seconds", "sys_seconds", "time"} {
			if _, err := strconv.ParseFloat(col(c), 64); err != nil {
				t.Errorf("rank %d: %s = %q, not a number", i, c, col(c))
			}
		}
		if col("bytes_in") != "4096" || col("time") != "0.000395" || col("answer") != strconv.Itoa(40+i) {
			t.Errorf("rank %d: %q", i, rec)
		}
	}

	b, _ = os.ReadFile(jsonFile)
	var s struct {
		Backend    string           `json:"backend"`
		DSMColumns []string         `json:"dsm_columns"`
		Columns    []string         `json:"columns"`
		Ranks      []map[string]any `json:"ranks"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("json: %v\n%s", err, b)
	}
	if s.Backend != "testbackend" || len(s.Ranks) != 3 {
		t.Fatalf("json: %s", b)
	}
	for i, r := range s.Ranks {
		for _, k := range []string{"rank", "pid", "exit_code", "status", "wall_seconds", "user_seconds", "sys_seconds", "max_rss_bytes"} {
			if _, ok := r[k].(float64); !ok {
				t.Errorf("rank %d: %s = %#v, not a number", i, k, r[k])
			}
		}
		dsm, _ := r["dsm"].(map[string]any)
		vals, _ := r["values"].(map[string]any)
		if dsm["bytes_in"] != float64(4096) || vals["time"] != 0.000395 || vals["answer"] != float64(40+i) {
			t.Errorf("rank %d: dsm %v values %v", i, dsm, vals)
		}
	}
}

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return 0
}

// The table: only with -summary or reported values (not with
// -summary=false), all-zero DSM columns left out, the backend in the
// title, and within the terminal's width, even at 64 ranks.
func TestReportTable(t *testing.T) {
	r := runMpirun(t, "", "-np", "2", rdvprog)
	if r.status != 0 || !strings.Contains(r.stderr, "job summary: 2 ranks, DSM fault backend testbackend\n") {
		t.Fatalf("reported values but no table: status %d, stderr:\n%s", r.status, r.stderr)
	}
	if !strings.Contains(r.stderr, "faults") || strings.Contains(r.stderr, "zero") {
		t.Errorf("all-zero column shown, or a counter missing:\n%s", r.stderr)
	}
	if r := runMpirun(t, "", "-np", "2", "-summary=false", rdvprog); r.status != 0 || strings.Contains(r.stderr, "job summary") {
		t.Errorf("-summary=false: status %d, stderr:\n%s", r.status, r.stderr)
	}
	if r := runMpirun(t, "", "-np", "2", rankprog, "exit-code", "0"); r.stderr != "" {
		t.Errorf("a table nobody asked for:\n%s", r.stderr)
	}
	for _, n := range []string{"3", "64"} {
		r := runMpirunEnv(t, append(os.Environ(), "COLUMNS=60"), "", "-np", n, rdvprog)
		if r.status != 0 {
			t.Fatalf("status %d, stderr:\n%s", r.status, r.stderr)
		}
		i := strings.Index(r.stderr, "job summary")
		for _, l := range strings.Split(r.stderr[i:], "\n") {
			if utf8.RuneCountInString(l) > 60 {
				t.Errorf("-np %s: line wider than 60 columns: %q", n, l)
			}
		}
		last, _ := strconv.Atoi(n)
		if !strings.Contains(r.stderr, " "+strconv.Itoa(last-1)+" ") {
			t.Errorf("-np %s: rank %d missing:\n%s", n, last-1, r.stderr[i:])
		}
	}
}
