package main

import (
	"context"
	"encoding/json"
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

// TestBrowserJob opens the -report-html page of real 4-rank jobs (ring,
// jacobi, counter) in headless Chromium: no console errors, nothing
// requested from the network, the 16 cells of the message matrix with
// the counts the ranks reported (-report-format json of the same run),
// a timeline with one row per rank, a page heat map for the jobs that
// use the shared memory. DSMEXEC_SCREENSHOTS=dir keeps PNGs of the
// sections (docs/img: the tutorial's "Looking at your job").
func TestBrowserJob(t *testing.T) {
	var chromium string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("skipping: no chromium on PATH (Debian: apt-get install -y chromium); CI installs it")
	}
	shots := os.Getenv("DSMEXEC_SCREENSHOTS")
	for _, job := range []struct {
		name  string
		args  []string
		pages bool // uses the shared memory: a heat map
	}{
		{"ring", nil, false},
		{"jacobi", nil, true},
		{"counter", []string{"-n", "200"}, true},
	} {
		t.Run(job.name, func(t *testing.T) {
			prog := example(t, job.name)
			dir := t.TempDir()
			page, js := filepath.Join(dir, "report.html"), filepath.Join(dir, "report.json")
			r := runMpirun(t, "", append([]string{"-np", "4", "-report-html", page, "-report-format", "json", "-report-file", js, prog}, job.args...)...)
			if r.status != 0 {
				t.Fatalf("status %d: %s", r.status, r.stderr)
			}
			b, err := os.ReadFile(js)
			if err != nil {
				t.Fatal(err)
			}
			var s summary
			if err := json.Unmarshal(b, &s); err != nil || len(s.Messages) != 4 {
				t.Fatalf("json report: %v, matrix %v", err, s.Messages)
			}
			got, problems, requests := openReport(t, chromium, page, filepath.Join(dir, "profile"), shots, job.name)
			if len(got.Cells) != 16 {
				t.Fatalf("%d matrix cells, want 16", len(got.Cells))
			}
			for _, c := range got.Cells {
				if w := s.Messages[c.From][c.To]; c.Msgs != int64(w) {
					t.Errorf("matrix %d→%d: %d messages, the ranks counted %d", c.From, c.To, c.Msgs, w)
				} else if w > 0 && !strings.HasPrefix(c.Text, fmt.Sprint(w)) {
					t.Errorf("matrix %d→%d shows %q, want it to start with %d", c.From, c.To, c.Text, w)
				}
			}
			if got.Timeline < 4 || got.Totals < 4 {
				t.Errorf("timeline: %d rects, totals %d rects; want a row per rank at least", got.Timeline, got.Totals)
			}
			if job.pages && got.Heat == 0 {
				t.Errorf("no heat map rects for a job using the shared memory")
			}
			if !strings.Contains(got.Title, job.name+": 4 ranks") {
				t.Errorf("title %q", got.Title)
			}
			for _, p := range problems {
				t.Errorf("page: %s", p)
			}
			for _, u := range requests {
				t.Errorf("page requested %s", u)
			}
		})
	}
}

type pageSeen struct {
	Cells []struct {
		From int    `json:"from"`
		To   int    `json:"to"`
		Msgs int64  `json:"msgs"`
		Text string `json:"text"`
	} `json:"cells"`
	Timeline int    `json:"timeline"`
	Totals   int    `json:"totals"`
	Heat     int    `json:"heat"`
	Title    string `json:"title"`
}

// openReport loads the page in headless Chromium (with the network made
// unusable) and reads its DOM; problems are console errors and
// exceptions, requests what the page asked for besides itself.
func openReport(t *testing.T, chromium, file, profile, shots, name string) (got pageSeen, problems, requests []string) {
	t.Helper()
	pageURL := (&url.URL{Scheme: "file", Path: file}).String()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("proxy-server", "127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND"),
		chromedp.Flag("user-data-dir", profile),
		chromedp.WindowSize(1280, 1400),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	var mu sync.Mutex
	if err := chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" || ev.Type == "assert" {
				problems = append(problems, fmt.Sprintf("console.%s", ev.Type))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
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
	got, err := chromedp.Run(bctx, chromedp.Evaluate[pageSeen](`(function () {
		var cells = [];
		document.querySelectorAll('#matrix td.cell').forEach(function (td) {
			cells.push({from: +td.dataset.from, to: +td.dataset.to, msgs: +td.dataset.msgs, text: td.textContent});
		});
		return {
			cells: cells,
			timeline: document.querySelectorAll('#timeline rect.tl').length,
			totals: document.querySelectorAll('#totals rect.tot').length,
			heat: document.querySelectorAll('#heat-faults rect.hm').length,
			title: document.title
		};
	})()`))
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	if shots != "" {
		ids := []string{"matrix", "timeline"}
		if got.Heat > 0 {
			ids = append(ids, "heat-faults")
		}
		if n, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#falsesharing').length`)); n > 0 {
			ids = append(ids, "falsesharing")
		}
		for _, id := range ids {
			png, err := chromedp.Run(bctx, chromedp.Screenshot(chromedp.ID(id)))
			if err != nil {
				t.Fatalf("screenshot #%s: %v", id, err)
			}
			if err := os.WriteFile(filepath.Join(shots, name+"-"+id+".png"), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[int](`1`)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got, append([]string(nil), problems...), append([]string(nil), requests...)
}
