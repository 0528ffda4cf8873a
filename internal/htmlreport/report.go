package htmlreport

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/falseshare"
	"github.com/dsmexec/dsmexec/internal/trace"
	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

// Report is everything the page shows. Any part may be empty; its
// section then says so.
type Report struct {
	Title   string   // e.g. "ring: 4 ranks on 2 hosts"
	Command string   // the mpirun command line
	Notes   []string // lines shown at the top (a deadlock, a cut trace)

	// The per-rank table: Columns head it, each Row has one cell per column.
	Columns []string
	Rows    []Row

	// Messages[from][to] and Bytes[from][to]: user messages and payload bytes.
	Messages, Bytes [][]int64

	Timeline Timeline
	Pages    Pages

	// FalseSharing: falseshare.Detect's findings, most ownership changes first.
	FalseSharing []falseshare.Finding
}

// Row is a rank's row of the per-rank table.
type Row struct {
	Rank  int
	Host  string
	Cells []string
}

// Timeline is, per rank, the time spent in each category; what is in no
// interval is compute.
type Timeline struct {
	Duration time.Duration // the x axis: from 0 to Duration
	Ranks    [][]Interval  // by rank
}

// Interval is time spent in a category, from the start of the job.
type Interval struct {
	Start, End time.Duration
	Cat        trace.Category
}

// Pages is the page traffic of the shared region, sparse: a cell per
// (page, rank) that counted something.
type Pages struct {
	Count    int // pages in the region
	PageSize int
	Cells    []PageCell
}

// PageCell counts one rank's traffic on one page.
type PageCell struct {
	Page, Rank                   int
	Faults, Moves, Invalidations int64
}

// Metrics of the page heat map, in Layout.HeatRects order.
var Metrics = [3]string{"faults", "moves", "invalidations"}

// Layout says how many elements the page drew; the browser test checks
// the DOM against it.
type Layout struct {
	Ranks         int
	MatrixCells   int    // td.cell in table#matrix
	HeatBins      int    // columns of the heat map
	PagesPerBin   int    // pages per column
	HeatRects     [3]int // rect.hm in svg#heat-<metric>
	TimelineRects int    // rect.tl in svg#timeline
	TotalsRects   int    // rect.tot in svg#totals
	FalseSharing  int    // tr.fs in table#falsesharing
}

// Sizes.
const (
	maxBins     = 256 // heat map columns at most
	timeBuckets = 480 // timeline resolution
	plotW       = 960.0
	labelW      = 90.0
)

var catColors = [...]string{"#d9d9d9", "#4e79a7", "#e15759", "#f28e2b", "#59a14f"}

// Write writes the page: one self-contained HTML document (inline CSS,
// SVG and script; nothing is fetched).
func Write(w io.Writer, r *Report) (Layout, error) {
	var lay Layout
	n := max(len(r.Rows), len(r.Messages), len(r.Timeline.Ranks))
	for _, c := range r.Pages.Cells {
		n = max(n, c.Rank+1)
	}
	lay.Ranks = n
	data := struct {
		R                         *Report
		Ranks                     int
		Matrix, Heat, Tl, Legend  template.HTML
		Totals, FS                template.HTML
		HeatNote                  string
		HasMatrix, HasTl, HasHeat bool
		Metrics                   [3]string
	}{R: r, Ranks: n, Metrics: Metrics}
	data.Matrix, lay.MatrixCells = matrix(r, n)
	data.HasMatrix = lay.MatrixCells > 0
	data.Heat, data.HeatNote, lay.HeatBins, lay.PagesPerBin, lay.HeatRects = heat(r, n)
	data.HasHeat = r.Pages.Count > 0
	data.Tl, lay.TimelineRects = timeline(r, n)
	data.Totals, lay.TotalsRects = totals(r, n)
	data.HasTl = r.Timeline.Duration > 0
	data.Legend = legend()
	data.FS, lay.FalseSharing = fsTable(r)
	if err := page.Execute(w, data); err != nil {
		return lay, fmt.Errorf("htmlreport: %w", err)
	}
	return lay, nil
}

// heatColor maps t in [0, 1] to white → orange → dark red.
func heatColor(t float64) string {
	t = math.Max(0, math.Min(1, t))
	stops := [][3]float64{{255, 247, 236}, {253, 141, 60}, {127, 0, 0}}
	var a, b [3]float64
	var u float64
	if t < 0.5 {
		a, b, u = stops[0], stops[1], t*2
	} else {
		a, b, u = stops[1], stops[2], (t-0.5)*2
	}
	c := func(i int) int { return int(a[i] + (b[i]-a[i])*u + 0.5) }
	return fmt.Sprintf("#%02x%02x%02x", c(0), c(1), c(2))
}

// scale is a log scale of v against the largest value.
func scale(v, maxV int64) float64 {
	if v <= 0 || maxV <= 0 {
		return 0
	}
	return 0.15 + 0.85*math.Log1p(float64(v))/math.Log1p(float64(maxV))
}

func humanBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

func at(m [][]int64, i, j int) int64 {
	if i < len(m) && j < len(m[i]) {
		return m[i][j]
	}
	return 0
}

// matrix is the rank×rank table of messages and bytes.
func matrix(r *Report, n int) (template.HTML, int) {
	if len(r.Messages) == 0 && len(r.Bytes) == 0 {
		return "", 0
	}
	var maxM int64
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			maxM = max(maxM, at(r.Messages, i, j))
		}
	}
	compact := n > 16
	var b strings.Builder
	cls := "matrix"
	if compact {
		cls += " compact"
	}
	fmt.Fprintf(&b, `<table id="matrix" class="%s"><tr><th class="corner">from \ to</th>`, cls)
	for j := 0; j < n; j++ {
		fmt.Fprintf(&b, `<th>%d</th>`, j)
	}
	b.WriteString("</tr>\n")
	cells := 0
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<tr><th>%d</th>`, i)
		for j := 0; j < n; j++ {
			m, by := at(r.Messages, i, j), at(r.Bytes, i, j)
			t := scale(m, maxM)
			fg := "#000"
			if t > 0.6 {
				fg = "#fff"
			}
			title := fmt.Sprintf("rank %d → rank %d: %d messages, %s", i, j, m, humanBytes(by))
			text := ""
			if !compact && m > 0 {
				text = fmt.Sprintf(`%d<br><small>%s</small>`, m, html.EscapeString(humanBytes(by)))
			}
			fmt.Fprintf(&b, `<td class="cell" data-from="%d" data-to="%d" data-msgs="%d" data-bytes="%d" title="%s" style="background:%s;color:%s">%s</td>`,
				i, j, m, by, html.EscapeString(title), heatColor(t), fg, text)
			cells++
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</table>")
	return template.HTML(b.String()), cells
}

// heat is the pages × ranks heat map, one SVG per metric; pages are
// grouped into at most maxBins columns.
func heat(r *Report, n int) (svgs template.HTML, note string, bins, ppb int, rects [3]int) {
	count := r.Pages.Count
	if count <= 0 || n == 0 {
		return "", "", 0, 0, rects
	}
	bins = min(count, maxBins)
	ppb = (count + bins - 1) / bins
	bins = (count + ppb - 1) / ppb
	if ppb > 1 {
		note = fmt.Sprintf("Each column is %d pages (%s); %d pages in all.", ppb, humanBytes(int64(ppb*r.Pages.PageSize)), count)
	} else {
		note = fmt.Sprintf("Each column is one page; %d pages in all.", count)
	}
	rowH := math.Max(6, math.Min(24, 480/float64(n)))
	cellW := plotW / float64(bins)
	height := rowH*float64(n) + 24
	var b strings.Builder
	for mi, metric := range Metrics {
		grid := make([][]int64, n)
		for i := range grid {
			grid[i] = make([]int64, bins)
		}
		var maxV int64
		for _, c := range r.Pages.Cells {
			if c.Page < 0 || c.Page >= count || c.Rank < 0 || c.Rank >= n {
				continue
			}
			v := [3]int64{c.Faults, c.Moves, c.Invalidations}[mi]
			g := &grid[c.Rank][c.Page/ppb]
			*g += v
			maxV = max(maxV, *g)
		}
		display := ""
		if mi != 0 {
			display = ` style="display:none"`
		}
		fmt.Fprintf(&b, `<svg id="heat-%s" class="heat" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="page %s by rank"%s>`,
			metric, labelW+plotW, height, labelW+plotW, height, metric, display)
		fmt.Fprintf(&b, `<rect class="bg" x="%.1f" y="0" width="%.1f" height="%.1f" fill="#f7f7f7"/>`, labelW, plotW, rowH*float64(n))
		step := max(1, int(math.Ceil(12/rowH)))
		for rk := 0; rk < n; rk++ {
			y := rowH * float64(rk)
			if rk%step == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="lbl" text-anchor="end">rank %d</text>`, labelW-6, y+rowH/2+4, rk)
			}
			for bin := 0; bin < bins; bin++ {
				v := grid[rk][bin]
				if v == 0 {
					continue
				}
				lo := bin * ppb
				hi := min(count, lo+ppb) - 1
				pages := fmt.Sprintf("page %d", lo)
				if hi > lo {
					pages = fmt.Sprintf("pages %d–%d", lo, hi)
				}
				fmt.Fprintf(&b, `<rect class="hm" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>%s, rank %d: %d %s</title></rect>`,
					labelW+cellW*float64(bin), y, math.Max(cellW, 0.5), rowH, heatColor(scale(v, maxV)), pages, rk, v, metric)
				rects[mi]++
			}
		}
		// Page axis: a few labels.
		for k := 0; k <= 4; k++ {
			bin := (bins - 1) * k / 4
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="lbl" text-anchor="%s">%d</text>`, labelW+cellW*(float64(bin)+0.5), height-6, anchor(k), bin*ppb)
		}
		b.WriteString("</svg>\n")
	}
	return template.HTML(b.String()), note, bins, ppb, rects
}

// buckets turns a rank's intervals into the time per category of each of
// timeBuckets equal buckets.
func buckets(iv []Interval, dur time.Duration) [][5]float64 {
	bs := make([][5]float64, timeBuckets)
	w := float64(dur) / timeBuckets
	for _, in := range iv {
		s, e := float64(max(in.Start, 0)), float64(min(in.End, dur))
		if e <= s || int(in.Cat) >= 5 {
			continue
		}
		for k := int(s / w); k < timeBuckets && float64(k)*w < e; k++ {
			lo, hi := math.Max(s, float64(k)*w), math.Min(e, float64(k+1)*w)
			if hi > lo {
				bs[k][in.Cat] += hi - lo
			}
		}
	}
	for k := range bs {
		other := bs[k][1] + bs[k][2] + bs[k][3] + bs[k][4]
		bs[k][0] = math.Max(0, w-other)
	}
	return bs
}

// timeline draws, per rank, what it spent most of each bucket of time
// doing, adjacent buckets of one category joined.
func timeline(r *Report, n int) (template.HTML, int) {
	dur := r.Timeline.Duration
	if dur <= 0 || n == 0 {
		return "", 0
	}
	rowH := math.Max(6, math.Min(24, 480/float64(n)))
	height := rowH*float64(n) + 24
	bw := plotW / timeBuckets
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="timeline per rank">`,
		labelW+plotW, height, labelW+plotW, height)
	rects := 0
	step := max(1, int(math.Ceil(12/rowH)))
	for rk := 0; rk < n; rk++ {
		var iv []Interval
		if rk < len(r.Timeline.Ranks) {
			iv = r.Timeline.Ranks[rk]
		}
		bs := buckets(iv, dur)
		y := rowH * float64(rk)
		if rk%step == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="lbl" text-anchor="end">rank %d</text>`, labelW-6, y+rowH/2+4, rk)
		}
		dom := func(k int) int {
			best := 0
			for c := 1; c < 5; c++ {
				if bs[k][c] > bs[k][best] {
					best = c
				}
			}
			return best
		}
		for k := 0; k < timeBuckets; {
			c := dom(k)
			j := k + 1
			for j < timeBuckets && dom(j) == c {
				j++
			}
			from := time.Duration(float64(dur) * float64(k) / timeBuckets)
			to := time.Duration(float64(dur) * float64(j) / timeBuckets)
			fmt.Fprintf(&b, `<rect class="tl" data-cat="%s" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>rank %d: mostly %s, %v – %v</title></rect>`,
				trace.Category(c), labelW+bw*float64(k), y+1, bw*float64(j-k), rowH-2, catColors[c], rk, trace.Category(c), roundDur(from), roundDur(to))
			rects++
			k = j
		}
	}
	for k := 0; k <= 4; k++ {
		x := labelW + plotW*float64(k)/4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="lbl" text-anchor="%s">%v</text>`, x, height-6, anchor(k), roundDur(dur*time.Duration(k)/4))
	}
	b.WriteString("</svg>")
	return template.HTML(b.String()), rects
}

// totals draws, per rank, a bar of its whole time split by category.
func totals(r *Report, n int) (template.HTML, int) {
	dur := r.Timeline.Duration
	if dur <= 0 || n == 0 {
		return "", 0
	}
	rowH := math.Max(6, math.Min(24, 480/float64(n)))
	height := rowH * float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="totals" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="time per category per rank">`,
		labelW+plotW, height, labelW+plotW, height)
	rects := 0
	step := max(1, int(math.Ceil(12/rowH)))
	for rk := 0; rk < n; rk++ {
		var sum [5]float64
		if rk < len(r.Timeline.Ranks) {
			for _, bk := range buckets(r.Timeline.Ranks[rk], dur) {
				for c := range sum {
					sum[c] += bk[c]
				}
			}
		}
		y := rowH * float64(rk)
		if rk%step == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="lbl" text-anchor="end">rank %d</text>`, labelW-6, y+rowH/2+4, rk)
		}
		x := labelW
		for c := 0; c < 5; c++ {
			if sum[c] <= 0 {
				continue
			}
			wd := plotW * sum[c] / float64(dur)
			fmt.Fprintf(&b, `<rect class="tot" data-cat="%s" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"><title>rank %d: %s %v (%.0f%%)</title></rect>`,
				trace.Category(c), x, y+1, wd, rowH-2, catColors[c], rk, trace.Category(c), roundDur(time.Duration(sum[c])), 100*sum[c]/float64(dur))
			x += wd
			rects++
		}
	}
	b.WriteString("</svg>")
	return template.HTML(b.String()), rects
}

// anchor keeps the last of five axis labels inside the picture.
func anchor(k int) string {
	if k == 4 {
		return "end"
	}
	return "middle"
}

func legend() template.HTML {
	var b strings.Builder
	b.WriteString(`<div class="legend">`)
	for c, col := range catColors {
		fmt.Fprintf(&b, `<span><i style="background:%s"></i>%s</span>`, col, trace.Category(c))
	}
	b.WriteString(`</div>`)
	return template.HTML(b.String())
}

func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

func fsTable(r *Report) (template.HTML, int) {
	if len(r.FalseSharing) == 0 {
		return "", 0
	}
	var b strings.Builder
	b.WriteString(`<table id="falsesharing"><tr><th>page</th><th>ownership changes</th><th>who wrote what (bytes)</th><th></th></tr>`)
	for _, f := range r.FalseSharing {
		var ws []string
		for _, w := range f.Writers {
			var rs []string
			for _, rg := range w.Ranges {
				rs = append(rs, rg.String())
			}
			ws = append(ws, fmt.Sprintf("rank %d: %s", w.Rank, strings.Join(rs, ", ")))
		}
		flag := ""
		if f.FalseSharing {
			flag = `<span class="flag">false sharing</span>`
		}
		fmt.Fprintf(&b, `<tr class="fs"><td>%d</td><td>%d</td><td>%s</td><td>%s<div class="advice">%s</div></td></tr>`,
			f.Page, f.Changes, html.EscapeString(strings.Join(ws, "; ")), flag, html.EscapeString(f.Advice))
	}
	b.WriteString(`</table>`)
	return template.HTML(b.String()), len(r.FalseSharing)
}

// FromTrace fills the message matrix and the timeline of r from merged
// traces: messages counted at the sender (Send and Sendrecv slices), time
// per category from every slice of a rank's streams.
func FromTrace(r *Report, tl *tracefmt.Timeline, ranks int) {
	r.Messages = make([][]int64, ranks)
	r.Bytes = make([][]int64, ranks)
	for i := range r.Messages {
		r.Messages[i] = make([]int64, ranks)
		r.Bytes[i] = make([]int64, ranks)
	}
	// The timeline starts when every rank has finished Init (the time
	// before is connecting, not the program); a rank's Init shows in the
	// trace itself.
	start := tl.Min
	for _, s := range tl.Slices {
		if s.Kind == trace.KindInit && s.End > start && s.End <= tl.Max {
			start = s.End
		}
	}
	if start > tl.Min {
		r.Notes = append(r.Notes, fmt.Sprintf("The timeline starts when the last rank finished Init (connecting to the others), %v after the first one began.", time.Duration(start-tl.Min).Round(time.Microsecond)))
	}
	r.Timeline = Timeline{Duration: time.Duration(tl.Max - start), Ranks: make([][]Interval, ranks)}
	for _, s := range tl.Slices {
		if s.Rank < 0 || s.Rank >= ranks {
			continue
		}
		if (s.Kind == trace.KindSend || s.Kind == trace.KindSendrecv) && s.Begin.Peer >= 0 && s.Begin.Peer < ranks {
			r.Messages[s.Rank][s.Begin.Peer]++
			r.Bytes[s.Rank][s.Begin.Peer] += s.Begin.Bytes
		}
		if c := s.Kind.Category(); c != trace.CatCompute && s.Kind != trace.KindInit && s.End > start {
			r.Timeline.Ranks[s.Rank] = append(r.Timeline.Ranks[s.Rank], Interval{
				Start: time.Duration(max(s.Start, start) - start), End: time.Duration(s.End - start), Cat: c,
			})
		}
	}
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{if .R.Title}}{{.R.Title}} — {{end}}dsmexec report</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1120px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.note{background:#fff4e5;border-left:4px solid #f28e2b;padding:.4em .8em;margin:.4em 0}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:2px 6px;text-align:right}th{background:#f3f3f3}
#ranks td:nth-child(2){text-align:left}
table.matrix td.cell{min-width:3.2em;text-align:center;font-variant-numeric:tabular-nums}
table.matrix.compact td.cell{min-width:0;width:9px;height:9px;padding:0}
table.matrix.compact th{font-size:9px;padding:0 1px}
.lbl{font-size:11px;fill:#444}
.legend span{margin-right:1.2em;white-space:nowrap}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-1px;border:1px solid #999}
.tabs button{font:inherit;border:1px solid #bbb;background:#f3f3f3;padding:.2em .8em;cursor:pointer}.tabs button.on{background:#fd8d3c;color:#fff;border-color:#e6550d}
.flag{background:#e15759;color:#fff;padding:0 .4em;border-radius:3px;font-size:12px}.advice{text-align:left;color:#555;font-size:12px;max-width:40em}
#falsesharing td:nth-child(3){text-align:left}
.muted{color:#777}
svg{max-width:100%;height:auto;display:block}
</style>
</head>
<body>
<h1>{{if .R.Title}}{{.R.Title}}{{else}}dsmexec job report{{end}}</h1>
{{if .R.Command}}<p><code>{{.R.Command}}</code></p>{{end}}
{{range .R.Notes}}<p class="note">{{.}}</p>{{end}}

<h2>Ranks</h2>
{{if .R.Rows}}<table id="ranks"><tr><th>rank</th><th>host</th>{{range .R.Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .R.Rows}}<tr><td>{{.Rank}}</td><td>{{.Host}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>{{else}}<p class="muted">No per-rank data.</p>{{end}}

<h2>Messages between ranks</h2>
{{if .HasMatrix}}<p>Row: sender, column: receiver. Each cell: messages, and their payload bytes; darker is more messages.</p>
{{.Matrix}}{{else}}<p class="muted">No messages were recorded.</p>{{end}}

<h2>Timeline</h2>
{{if .HasTl}}{{.Legend}}
<p>What each rank spent most of each moment doing (hover for times).</p>
{{.Tl}}
<p>All of each rank's time, by category:</p>
{{.Totals}}{{else}}<p class="muted">No trace was recorded (run with <code>mpirun -trace</code> to get a timeline).</p>{{end}}

<h2>Shared memory pages</h2>
{{if .HasHeat}}<p>Pages (columns) by rank (rows). {{.HeatNote}}</p>
<div class="tabs" role="tablist">{{range $i, $m := .Metrics}}<button type="button" data-tab="heat-{{$m}}"{{if eq $i 0}} class="on"{{end}}>{{$m}}</button>{{end}}</div>
{{.Heat}}{{else}}<p class="muted">No page traffic.</p>{{end}}

<h2>False sharing</h2>
{{if .FS}}<p>Pages that changed owner most, and which bytes each rank wrote. A page is flagged when ranks wrote disjoint bytes of it: they share no data, yet the page travels between them on every write.</p>
{{.FS}}{{else}}<p class="muted">No page changed owner.</p>{{end}}

<script>
(function () {
  var buttons = document.querySelectorAll('.tabs button');
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener('click', function (ev) {
      for (var j = 0; j < buttons.length; j++) {
        var on = buttons[j] === ev.currentTarget;
        buttons[j].className = on ? 'on' : '';
        var svg = document.getElementById(buttons[j].getAttribute('data-tab'));
        if (svg) { svg.style.display = on ? '' : 'none'; }
      }
    });
  }
})();
</script>
</body>
</html>
`))
