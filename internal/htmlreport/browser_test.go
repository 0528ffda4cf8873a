package htmlreport

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// findChromium returns the headless browser the browser test drives, or
// skips the test. CI installs Debian's chromium (.ci/run).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("skipping: no chromium on PATH (Debian: apt-get install -y chromium); CI installs it")
	return ""
}

// TestBrowser opens the report of the synthetic 4-rank job in headless
// Chromium and checks what a person would see: no console errors, the
// 16 cells of the message matrix with the right counts, a heat map and a
// timeline with the drawn elements, the metric tabs working, and no
// request leaving the page. Set DSMEXEC_SCREENSHOTS=dir to keep PNGs of
// the matrix, the timeline and the heat map (for docs/).
func TestBrowser(t *testing.T) {
	chromium := findChromium(t)
	r, want := Synthetic(t)
	var page bytes.Buffer
	lay, err := Write(&page, r)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pageURL := (&url.URL{Scheme: "file", Path: file}).String()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI and containers run as root
		chromedp.Flag("disable-gpu", true),
		// Belt and braces: were the page to fetch anything, it could not.
		chromedp.Flag("proxy-server", "127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.Flag("user-data-dir", filepath.Join(dir, "profile")),
		chromedp.WindowSize(1280, 1400),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// Start the browser (and the tab) before listening.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}

	var mu sync.Mutex
	var problems, requests []string
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" || ev.Type == "assert" {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value))
				}
				problems = append(problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			problems = append(problems, "exception: "+msg)
		case *log.EventEntryAdded:
			if ev.Entry != nil && ev.Entry.Level == "error" {
				problems = append(problems, fmt.Sprintf("log %s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		case *network.EventRequestWillBeSent:
			if ev.Request != nil && ev.Request.URL != pageURL {
				requests = append(requests, ev.Request.URL)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("open %s: %v", pageURL, err)
	}

	type cell struct {
		From int    `json:"from"`
		To   int    `json:"to"`
		Msgs int64  `json:"msgs"`
		Text string `json:"text"`
	}
	type seen struct {
		Cells       []cell     `json:"cells"`
		Timeline    int        `json:"timeline"`
		Totals      int        `json:"totals"`
		Heat        [3]int     `json:"heat"`
		TimelineBox [2]float64 `json:"timelineBox"`
		HeatBox     [2]float64 `json:"heatBox"`
		Title       string     `json:"title"`
	}
	got, err := chromedp.Run(bctx, chromedp.Evaluate[seen](`(function () {
		function box(id) { var r = document.getElementById(id).getBoundingClientRect(); return [r.width, r.height]; }
		var cells = [];
		document.querySelectorAll('#matrix td.cell').forEach(function (td) {
			cells.push({from: +td.dataset.from, to: +td.dataset.to, msgs: +td.dataset.msgs, text: td.textContent});
		});
		return {
			cells: cells,
			timeline: document.querySelectorAll('#timeline rect.tl').length,
			totals: document.querySelectorAll('#totals rect.tot').length,
			heat: ['faults', 'moves', 'invalidations'].map(function (m) { return document.querySelectorAll('#heat-' + m + ' rect.hm').length; }),
			timelineBox: box('timeline'),
			heatBox: box('heat-faults'),
			title: document.title
		};
	})()`))
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	if len(got.Cells) != 16 {
		t.Fatalf("%d matrix cells, want 16", len(got.Cells))
	}
	for _, c := range got.Cells {
		if w := want[c.From][c.To]; c.Msgs != w {
			t.Errorf("matrix %d→%d: %d messages, want %d", c.From, c.To, c.Msgs, w)
		} else if w > 0 && !strings.HasPrefix(c.Text, fmt.Sprint(w)) {
			t.Errorf("matrix %d→%d shows %q, want it to start with %d", c.From, c.To, c.Text, w)
		}
	}
	if got.Timeline != lay.TimelineRects || got.Timeline < 4 {
		t.Errorf("timeline: %d rects in the page, %d drawn", got.Timeline, lay.TimelineRects)
	}
	if got.Totals != lay.TotalsRects || got.Totals < 4 {
		t.Errorf("totals: %d rects in the page, %d drawn", got.Totals, lay.TotalsRects)
	}
	if got.Heat != lay.HeatRects || got.Heat[0] == 0 {
		t.Errorf("heat map: %v rects in the page, %v drawn", got.Heat, lay.HeatRects)
	}
	if got.TimelineBox[0] < 100 || got.TimelineBox[1] < 20 || got.HeatBox[0] < 100 || got.HeatBox[1] < 20 {
		t.Errorf("timeline %v and heat map %v render too small", got.TimelineBox, got.HeatBox)
	}
	if !strings.Contains(got.Title, "ring: 4 ranks") {
		t.Errorf("title %q", got.Title)
	}

	// The metric tabs switch the heat map shown.
	shown, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`(function () {
		document.querySelector('button[data-tab="heat-moves"]').click();
		return ['faults', 'moves', 'invalidations'].map(function (m) { return getComputedStyle(document.getElementById('heat-' + m)).display; });
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(shown) != 3 || shown[0] != "none" || shown[1] == "none" || shown[2] != "none" {
		t.Errorf("after clicking moves, heat maps displayed: %v", shown)
	}

	if d := os.Getenv("DSMEXEC_SCREENSHOTS"); d != "" {
		chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('button[data-tab="heat-faults"]').click()`))
		for _, id := range []string{"matrix", "timeline", "heat-faults"} {
			png, err := chromedp.Run(bctx, chromedp.Screenshot(chromedp.ID(id)))
			if err != nil {
				t.Fatalf("screenshot #%s: %v", id, err)
			}
			if err := os.WriteFile(filepath.Join(d, "report-"+id+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Let late events (a lazy request, an error in a handler) arrive: a
	// round trip to the page after everything above.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[int](`1`)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("page: %s", p)
	}
	for _, u := range requests {
		t.Errorf("page requested %s", u)
	}
}
