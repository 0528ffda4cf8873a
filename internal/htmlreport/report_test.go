package htmlreport

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/falseshare"
	"github.com/dsmexec/dsmexec/internal/trace"
	"github.com/dsmexec/dsmexec/internal/tracefmt"
)

const (
	synthRanks  = 4
	synthRounds = 10
	synthExtra  = 3 // extra messages from rank 0 to rank 2
)

// synthStreams is a 4-rank ring with fixed times: each round every rank
// computes, sends 8*(rank+1) bytes to the next rank, receives from the
// previous one, and enters a barrier; rank 0 also sends synthExtra
// messages to rank 2; rank 1 waits for a lock and faults on pages.
func synthStreams() []*trace.Stream {
	us := time.Microsecond
	var ss []*trace.Stream
	flow := func(from, round, k int) uint64 { return uint64(from+1)<<40 | uint64(round*10+k+1) }
	for r := 0; r < synthRanks; r++ {
		s := &trace.Stream{Rank: r, Size: synthRanks, Host: fmt.Sprintf("h%d", r/2), Role: "rank", Start: time.Unix(1000, 0)}
		ev := func(e trace.Event) { s.Events = append(s.Events, e) }
		ev(trace.Event{Op: trace.OpTrack, Track: 1, Name: "main"})
		for i := 0; i < synthRounds; i++ {
			t := time.Duration(i) * 1000 * us
			prev := (r + synthRanks - 1) % synthRanks
			next := (r + 1) % synthRanks
			ev(trace.Event{Op: trace.OpBegin, Track: 1, Time: t + 300*us, Kind: trace.KindSend, Args: trace.Args{Peer: next, Tag: i, Bytes: int64(8 * (r + 1)), Flow: flow(r, i, 0)}})
			ev(trace.Event{Op: trace.OpEnd, Track: 1, Time: t + 310*us, Kind: trace.KindSend})
			if r == 0 {
				for k := 0; k < synthExtra && i == 0; k++ {
					ev(trace.Event{Op: trace.OpBegin, Track: 1, Time: t + 311*us + time.Duration(k)*us, Kind: trace.KindSend, Args: trace.Args{Peer: 2, Tag: 99, Bytes: 1000, Flow: flow(0, 50, k)}})
					ev(trace.Event{Op: trace.OpEnd, Track: 1, Time: t + 311*us + time.Duration(k)*us + 500, Kind: trace.KindSend})
				}
			}
			ev(trace.Event{Op: trace.OpBegin, Track: 1, Time: t + 320*us, Kind: trace.KindRecv, Args: trace.Args{Peer: prev, Tag: i}})
			ev(trace.Event{Op: trace.OpEnd, Track: 1, Time: t + 500*us, Kind: trace.KindRecv, Args: trace.Args{Peer: prev, Tag: i, Bytes: int64(8 * (prev + 1)), Flow: flow(prev, i, 0)}})
			if r == 2 && i == 0 {
				for k := 0; k < synthExtra; k++ {
					ev(trace.Event{Op: trace.OpBegin, Track: 1, Time: t + 501*us + time.Duration(k)*us, Kind: trace.KindRecv, Args: trace.Args{Peer: 0, Tag: 99}})
					ev(trace.Event{Op: trace.OpEnd, Track: 1, Time: t + 501*us + time.Duration(k)*us + 500, Kind: trace.KindRecv, Args: trace.Args{Peer: 0, Tag: 99, Bytes: 1000, Flow: flow(0, 50, k)}})
				}
			}
			if r == 1 {
				ev(trace.Event{Op: trace.OpBegin, Track: 1, Time: t + 600*us, Kind: trace.KindLock, Args: trace.Args{Lock: 1}})
				ev(trace.Event{Op: trace.OpEnd, Track: 1, Time: t + 700*us, Kind: trace.KindLock})
				ev(trace.Event{Op: trace.OpComplete, Track: 1, Time: t + 710*us, Dur: 50 * us, Kind: trace.KindFault, Args: trace.Args{Page: int64(i), Access: trace.AccessWrite, From: 0}})
			}
			ev(trace.Event{Op: trace.OpBegin, Track: 1, Time: t + 800*us, Kind: trace.KindBarrier})
			ev(trace.Event{Op: trace.OpEnd, Track: 1, Time: t + 950*us, Kind: trace.KindBarrier})
		}
		ss = append(ss, s)
	}
	return ss
}

// Synthetic is the report of the synthetic 4-rank job; the browser test
// opens it.
func Synthetic(t testing.TB) (*Report, [][]int64) {
	tl := tracefmt.Build(synthStreams(), tracefmt.Options{})
	r := &Report{
		Title:   "ring: 4 ranks on 2 hosts",
		Command: "mpirun -np 4 -trace t.json -report-html r.html ./ring",
		Columns: []string{"exit", "wall", "messages sent", "faults r/w"},
	}
	for i := 0; i < synthRanks; i++ {
		r.Rows = append(r.Rows, Row{Rank: i, Host: fmt.Sprintf("h%d", i/2), Cells: []string{"0", "10ms", fmt.Sprint(synthRounds), "0/10"}})
	}
	FromTrace(r, tl, synthRanks)
	want := make([][]int64, synthRanks)
	for i := range want {
		want[i] = make([]int64, synthRanks)
		want[i][(i+1)%synthRanks] = synthRounds
	}
	want[0][2] += synthExtra
	r.Pages = Pages{Count: 1000, PageSize: 4096}
	for p := 0; p < 1000; p += 7 {
		for rk := 0; rk < synthRanks; rk++ {
			if (p+rk)%3 == 0 {
				r.Pages.Cells = append(r.Pages.Cells, PageCell{Page: p, Rank: rk, Faults: int64(p%11 + 1), Moves: int64(p % 5), Invalidations: int64(rk)})
			}
		}
	}
	r.FalseSharing = falseshare.Detect([]falseshare.Page{
		{Page: 0, Changes: 400, Writers: []falseshare.Writer{{Rank: 0, Ranges: []falseshare.Range{{Off: 0, Len: 8}}}, {Rank: 1, Ranges: []falseshare.Range{{Off: 8, Len: 8}}}}},
		{Page: 5, Changes: 120, Writers: []falseshare.Writer{{Rank: 2, Ranges: []falseshare.Range{{Off: 0, Len: 8}}}, {Rank: 3, Ranges: []falseshare.Range{{Off: 0, Len: 8}}}}},
	}, 4096, falseshare.Threshold, 10)
	return r, want
}

func TestWrite(t *testing.T) {
	r, want := Synthetic(t)
	for i := range want {
		for j := range want[i] {
			if r.Messages[i][j] != want[i][j] {
				t.Fatalf("messages[%d][%d] = %d, want %d", i, j, r.Messages[i][j], want[i][j])
			}
		}
	}
	if r.Bytes[0][2] != synthExtra*1000 || r.Bytes[3][0] != 32*synthRounds {
		t.Fatalf("bytes %v", r.Bytes)
	}
	var buf bytes.Buffer
	lay, err := Write(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if lay.Ranks != 4 || lay.MatrixCells != 16 || lay.FalseSharing != 2 {
		t.Fatalf("layout %+v", lay)
	}
	if lay.HeatBins != 250 || lay.PagesPerBin != 4 {
		t.Fatalf("1000 pages in %d bins of %d", lay.HeatBins, lay.PagesPerBin)
	}
	count := func(re string) int { return len(regexp.MustCompile(re).FindAllStringIndex(page, -1)) }
	if n := count(`<td class="cell"`); n != lay.MatrixCells {
		t.Errorf("%d matrix cells in the page, layout says %d", n, lay.MatrixCells)
	}
	if n := count(`<rect class="tl"`); n != lay.TimelineRects || n < synthRanks {
		t.Errorf("%d timeline rects, layout says %d", n, lay.TimelineRects)
	}
	if n := count(`<rect class="hm"`); n != lay.HeatRects[0]+lay.HeatRects[1]+lay.HeatRects[2] || lay.HeatRects[0] == 0 {
		t.Errorf("%d heat rects, layout says %v", n, lay.HeatRects)
	}
	if !strings.Contains(page, `data-from="0" data-to="2" data-msgs="3"`) {
		t.Errorf("matrix cell 0→2 missing")
	}
	if !strings.Contains(page, "pad each rank&#39;s data to the page size (4096 bytes), or dsm.Alloc separate arrays") {
		t.Errorf("false-sharing advice missing")
	}
	// Rank 1's lock waits show in its totals.
	if !regexp.MustCompile(`<rect class="tot" data-cat="lock"[^>]*><title>rank 1: lock`).MatchString(page) {
		t.Errorf("rank 1's lock time missing from the totals")
	}
	selfContained(t, page)
}

// selfContained fails when the page refers to anything outside itself.
func selfContained(t *testing.T, page string) {
	t.Helper()
	stripped := strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")
	for _, bad := range []string{"http://", "https://", "//cdn", "src=", "@import", "url("} {
		if strings.Contains(stripped, bad) {
			i := strings.Index(stripped, bad)
			t.Errorf("page refers outside itself: %q near %q", bad, stripped[max(0, i-60):min(len(stripped), i+60)])
		}
	}
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(stripped, -1) {
		if !strings.HasPrefix(m[1], "data:") && !strings.HasPrefix(m[1], "#") {
			t.Errorf("link to %q", m[1])
		}
	}
}

// Readable from 2 to 64 ranks and 1 to 262,144 pages: the heat map keeps
// at most 256 columns and the page stays small.
func TestSizes(t *testing.T) {
	for _, tt := range []struct{ ranks, pages int }{{2, 1}, {2, 3}, {8, 256}, {16, 257}, {64, 4096}, {64, 262144}} {
		t.Run(fmt.Sprintf("%d ranks %d pages", tt.ranks, tt.pages), func(t *testing.T) {
			r := &Report{Pages: Pages{Count: tt.pages, PageSize: 4096}, Messages: make([][]int64, tt.ranks), Bytes: make([][]int64, tt.ranks)}
			for i := range r.Messages {
				r.Messages[i] = make([]int64, tt.ranks)
				r.Bytes[i] = make([]int64, tt.ranks)
				r.Messages[i][(i+1)%tt.ranks] = int64(i + 1)
			}
			r.Timeline.Duration = time.Second
			r.Timeline.Ranks = make([][]Interval, tt.ranks)
			for rk := 0; rk < tt.ranks; rk++ {
				r.Timeline.Ranks[rk] = []Interval{{Start: 0, End: 300 * time.Millisecond, Cat: trace.CatComm}, {Start: 500 * time.Millisecond, End: time.Second, Cat: trace.CatBarrier}}
				// Every page of every rank touched: the worst case.
				step := max(1, tt.pages/2000)
				for p := rk % step; p < tt.pages; p += step {
					r.Pages.Cells = append(r.Pages.Cells, PageCell{Page: p, Rank: rk, Faults: 1, Moves: 1, Invalidations: 1})
				}
			}
			var buf bytes.Buffer
			lay, err := Write(&buf, r)
			if err != nil {
				t.Fatal(err)
			}
			if lay.HeatBins > maxBins || lay.HeatBins*lay.PagesPerBin < tt.pages || (lay.HeatBins-1)*lay.PagesPerBin >= tt.pages {
				t.Fatalf("%d pages in %d bins of %d", tt.pages, lay.HeatBins, lay.PagesPerBin)
			}
			if lay.MatrixCells != tt.ranks*tt.ranks {
				t.Fatalf("%d matrix cells", lay.MatrixCells)
			}
			if lay.TimelineRects != 3*tt.ranks {
				t.Fatalf("%d timeline rects, want %d (comm, compute, barrier per rank)", lay.TimelineRects, 3*tt.ranks)
			}
			if buf.Len() > 12<<20 {
				t.Fatalf("page is %d bytes", buf.Len())
			}
			selfContained(t, buf.String())
		})
	}
}

func TestEmptyReport(t *testing.T) {
	var buf bytes.Buffer
	lay, err := Write(&buf, &Report{})
	if err != nil {
		t.Fatal(err)
	}
	if lay.MatrixCells != 0 || lay.TimelineRects != 0 || !strings.Contains(buf.String(), "No messages were recorded") {
		t.Fatalf("layout %+v", lay)
	}
}

func TestEscapes(t *testing.T) {
	var buf bytes.Buffer
	_, err := Write(&buf, &Report{Title: "<script>alert(1)</script>", Columns: []string{"<b>"}, Rows: []Row{{Host: "<i>", Cells: []string{"&"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>alert") || strings.Contains(buf.String(), "<i>") {
		t.Fatal("user text not escaped")
	}
}
