// Package procstat reads what the bench needs from /proc and getrusage: the
// CPU time of another process (/proc/PID/stat), its children (the page
// server of a rank), and the context switches and CPU time of this process.
package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (the kernel fixes it for the ABI).
const ClockTicks = 100

// Stat is what the bench reads of /proc/PID/stat.
type Stat struct {
	PID, PPID int
	Comm      string
	UTime     int64 // clock ticks
	STime     int64 // clock ticks
}

// CPU is utime+stime as a duration.
func (s Stat) CPU() time.Duration {
	return time.Duration(s.UTime+s.STime) * time.Second / ClockTicks
}

// ParseStat decodes one /proc/PID/stat line. The command name is in
// parentheses and may hold spaces and parentheses itself, so the fields are
// counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	s := string(b)
	open := strings.IndexByte(s, '(')
	close := strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return Stat{}, fmt.Errorf("procstat: no (comm) in %q", trunc(s))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return Stat{}, fmt.Errorf("procstat: pid in %q: %v", trunc(s), err)
	}
	// After ")": state(3) ppid(4) pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime(14) stime(15).
	f := strings.Fields(s[close+1:])
	if len(f) < 13 {
		return Stat{}, fmt.Errorf("procstat: %d fields after the command in %q, want at least 13", len(f), trunc(s))
	}
	st := Stat{PID: pid, Comm: s[open+1 : close]}
	for _, x := range []struct {
		dst *int64
		i   int
	}{{&st.UTime, 11}, {&st.STime, 12}} {
		v, err := strconv.ParseInt(f[x.i], 10, 64)
		if err != nil {
			return Stat{}, fmt.Errorf("procstat: field %d of %q: %v", x.i+3, trunc(s), err)
		}
		*x.dst = v
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Stat{}, fmt.Errorf("procstat: ppid of %q: %v", trunc(s), err)
	}
	st.PPID = ppid
	return st, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Read reads /proc/PID/stat.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, fmt.Errorf("procstat: %w", err)
	}
	return ParseStat(b)
}

// Children are the processes whose parent is pid (a scan of /proc; processes
// that vanish during the scan are skipped).
func Children(pid int) ([]Stat, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	var out []Stat
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		st, err := ParseStat(b)
		if err == nil && st.PPID == pid {
			out = append(out, st)
		}
	}
	return out, nil
}

// Pager picks the page server among a rank's children: the one named
// dsmexec-pager (or whose name says pager), else the only child; ok is
// false when there is none or it cannot tell.
func Pager(children []Stat) (Stat, bool) {
	for _, c := range children {
		if c.Comm == "dsmexec-pager" {
			return c, true
		}
	}
	for _, c := range children {
		if strings.Contains(c.Comm, "pager") {
			return c, true
		}
	}
	if len(children) == 1 {
		return children[0], true
	}
	return Stat{}, false
}

// Usage is this process's context switches and CPU time (all its threads,
// getrusage RUSAGE_SELF).
type Usage struct {
	Voluntary, Involuntary int64
	CPU                    time.Duration
}

// Self reads this process's Usage.
func Self() (Usage, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return Usage{}, fmt.Errorf("procstat: getrusage: %w", err)
	}
	return Usage{
		Voluntary:   ru.Nvcsw,
		Involuntary: ru.Nivcsw,
		CPU:         time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
	}, nil
}

// Sub is u - v.
func (u Usage) Sub(v Usage) Usage {
	return Usage{u.Voluntary - v.Voluntary, u.Involuntary - v.Involuntary, u.CPU - v.CPU}
}

// Switches is voluntary + involuntary.
func (u Usage) Switches() int64 { return u.Voluntary + u.Involuntary }
