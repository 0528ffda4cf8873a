package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sys/unix"
)

// writeTable writes the -summary table for people: a title naming the
// fault backend, then one row per rank, DSM columns that are all zero left
// out. When that is wider than width (0: no limit), one rank per column
// instead (transposed), and if that does not fit either, the columns in
// groups that fit, each group with the rank number first.
func (s summary) writeTable(w io.Writer, width int) error {
	head, rows := s.cells()
	title := fmt.Sprintf("job summary: %d rank%s", len(rows), plural(len(rows)))
	if s.Backend != "" {
		title += ", DSM fault backend " + s.Backend
	}
	fmt.Fprintln(w, title)
	out, err := render(head, rows)
	if err != nil || width == 0 || textWidth(out) <= width {
		w.Write(out)
		return err
	}
	th, trows := transpose(head, rows)
	if out, err := render(th, trows); err != nil || textWidth(out) <= width {
		w.Write(out)
		return err
	}
	for _, cols := range groups(head, rows, width) {
		h, r := pick(head, rows, cols)
		out, err := render(h, r)
		if err != nil {
			return err
		}
		w.Write(out)
	}
	return nil
}

// cells are the table's header and rows as text.
func (s summary) cells() (head []string, rows [][]string) {
	head = []string{"RANK", "HOST", "PID", "EXIT", "WALL", "CPU", "MAX RSS"}
	if s.msgs {
		head = append(head, "msgs sent/recv", "msg bytes sent/recv")
	}
	if s.traced {
		head = append(head, "recv wait", "barrier wait")
	}
	if s.locks {
		head = append(head, "lock wait/hold")
	}
	if s.faults {
		head = append(head, "fault time")
	}
	head = append(append(head, s.dsmShown...), s.Columns...)
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
		switch {
		case s.msgs && r.counted:
			row = append(row, fmt.Sprintf("%d/%d", r.MsgsSent, r.MsgsReceived),
				bytesString(int64(r.BytesSent))+"/"+bytesString(int64(r.BytesReceived)))
		case s.msgs:
			row = append(row, "-", "-")
		}
		if s.traced {
			row = append(row, optDur(r.RecvWaitSeconds), optDur(r.BarrierWaitSeconds))
		}
		if s.locks {
			row = append(row, roundDur(r.LockWaitSeconds)+"/"+roundDur(r.LockHoldSeconds))
		}
		if s.faults {
			row = append(row, roundDur(r.FaultSeconds))
		}
		for _, c := range s.dsmShown {
			row = append(row, orDash(r.dsmText[c]))
		}
		for _, c := range s.Columns {
			row = append(row, orDash(r.valText[c]))
		}
		rows = append(rows, row)
	}
	return head, rows
}

// render draws the table in box-drawing characters: the header centred,
// the cells right-aligned, a cell's lines (split at newlines) stacked. It
// is drawn here rather than by a table package: such a package's
// initialisation (width tables, caches) cost mpirun about a quarter of its
// start-up CPU, before the first rank is forked, on every job.
func render(head []string, rows [][]string) ([]byte, error) {
	w := make([]int, len(head))
	cells := func(r []string) [][]string {
		c := make([][]string, len(head))
		for i := range c {
			if i < len(r) {
				c[i] = cellLines(r[i])
			}
			for _, l := range c[i] {
				w[i] = max(w[i], cellWidth(l))
			}
		}
		return c
	}
	h := cells(head)
	body := make([][][]string, len(rows))
	for i, r := range rows {
		body[i] = cells(r)
	}
	var b bytes.Buffer
	rule := func(left, mid, right string) {
		b.WriteString(left)
		for i, n := range w {
			if i > 0 {
				b.WriteString(mid)
			}
			b.WriteString(strings.Repeat("─", n+2))
		}
		b.WriteString(right + "\n")
	}
	row := func(c [][]string, center bool) {
		height := 1
		for _, ls := range c {
			height = max(height, len(ls))
		}
		for k := range height {
			b.WriteString("│")
			for i, n := range w {
				var l string
				if k < len(c[i]) {
					l = c[i][k]
				}
				pad := n - cellWidth(l)
				left := pad
				if center {
					left = pad / 2
				}
				b.WriteString(" " + strings.Repeat(" ", left) + l + strings.Repeat(" ", pad-left) + " │")
			}
			b.WriteString("\n")
		}
	}
	rule("┌", "┬", "┐")
	row(h, true)
	if len(body) > 0 {
		rule("├", "┼", "┤")
	}
	for _, c := range body {
		row(c, false)
	}
	rule("└", "┴", "┘")
	return b.Bytes(), nil
}

// cellLines is a cell's text as lines: tabs as four spaces, each line
// trimmed.
func cellLines(s string) []string {
	ls := strings.Split(strings.ReplaceAll(s, "\t", "    "), "\n")
	for i, l := range ls {
		ls[i] = strings.TrimSpace(l)
	}
	return ls
}

// cellWidth is how many terminal columns s takes: two for the wide
// characters of East Asian scripts, none for combining marks and
// zero-width characters.
func cellWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200B || r == 0x200D || r == 0xFEFF:
		case wideRune(r):
			n += 2
		default:
			n++
		}
	}
	return n
}

// wideRune reports the East Asian wide and fullwidth ranges (Unicode
// UAX #11) and the emoji that terminals draw two columns wide.
func wideRune(r rune) bool {
	switch {
	case r < 0x1100:
		return false
	case r <= 0x115F, r >= 0x2E80 && r <= 0x303E, r >= 0x3041 && r <= 0x33FF,
		r >= 0x3400 && r <= 0x4DBF, r >= 0x4E00 && r <= 0x9FFF, r >= 0xA000 && r <= 0xA4CF,
		r >= 0xAC00 && r <= 0xD7A3, r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F,
		r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6, r >= 0x1F300 && r <= 0x1F64F,
		r >= 0x1F900 && r <= 0x1F9FF, r >= 0x20000 && r <= 0x3FFFD:
		return true
	}
	return false
}

// transpose makes one column per rank: "RANK 0", "RANK 1", ...
func transpose(head []string, rows [][]string) ([]string, [][]string) {
	th := []string{""}
	for _, r := range rows {
		th = append(th, "RANK "+r[0])
	}
	var tr [][]string
	for i := 1; i < len(head); i++ {
		row := []string{head[i]}
		for _, r := range rows {
			row = append(row, r[i])
		}
		tr = append(tr, row)
	}
	return th, tr
}

// groups splits the columns after RANK into groups that fit width, each
// preceded by RANK (column 0).
func groups(head []string, rows [][]string, width int) [][]int {
	colWidth := func(i int) int {
		n := 0
		for _, l := range cellLines(head[i]) {
			n = max(n, cellWidth(l))
		}
		for _, r := range rows {
			for _, l := range cellLines(r[i]) {
				n = max(n, cellWidth(l))
			}
		}
		return n + 3 // padding and border
	}
	first := 1 + colWidth(0)
	var gs [][]int
	cur, used := []int{0}, first
	for i := 1; i < len(head); i++ {
		cw := colWidth(i)
		if len(cur) > 1 && used+cw > width {
			gs = append(gs, cur)
			cur, used = []int{0}, first
		}
		cur = append(cur, i)
		used += cw
	}
	return append(gs, cur)
}

func pick(head []string, rows [][]string, cols []int) ([]string, [][]string) {
	h := make([]string, len(cols))
	for j, c := range cols {
		h[j] = head[c]
	}
	rs := make([][]string, len(rows))
	for i, r := range rows {
		rs[i] = make([]string, len(cols))
		for j, c := range cols {
			rs[i][j] = r[c]
		}
	}
	return h, rs
}

// textWidth is the widest line of out, in terminal columns.
func textWidth(out []byte) int {
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		n = max(n, cellWidth(l))
	}
	return n
}

// termWidth is the width of the terminal f is, else $COLUMNS, else 0 (no
// limit: a file or a pipe).
func termWidth(f *os.File) int {
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		return int(ws.Col)
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 0
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

func optDur(f *float64) string {
	if f == nil {
		return "-"
	}
	return roundDur(*f)
}

// writeFalseSharing adds the summary's false-sharing lines: the flagged
// pages (more than falseshare.Threshold ownership changes, disjoint
// writers), with the advice.
func (s summary) writeFalseSharing(w io.Writer) {
	for _, f := range s.FalseSharing {
		if f.FalseSharing {
			fmt.Fprintln(w, f.Advice)
		}
	}
}
