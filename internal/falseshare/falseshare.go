package falseshare

import (
	"fmt"
	"sort"
	"strings"
)

// Range is a byte range of a page: Len bytes from Off.
type Range struct {
	Off, Len int
}

// End is the offset just past the range.
func (r Range) End() int { return r.Off + r.Len }

func (r Range) String() string {
	if r.Len == 1 {
		return fmt.Sprint(r.Off)
	}
	return fmt.Sprintf("%d-%d", r.Off, r.End()-1)
}

// Writer is what one rank wrote to a page.
type Writer struct {
	Rank   int
	Ranges []Range
}

// Page is what the memory recorded about one page: how many times its
// ownership (write access) moved between ranks, and which bytes each rank
// wrote.
type Page struct {
	Page    int
	Changes int
	Writers []Writer
}

// Finding is a page worth showing.
type Finding struct {
	Page    int
	Changes int
	Writers []Writer // normalized: sorted by rank, ranges merged
	// FalseSharing: at least two ranks wrote the page and no byte was
	// written by two of them; the page moves although the ranks share no
	// data.
	FalseSharing bool
	Advice       string
}

// Threshold is the number of ownership changes from which the summary
// mentions a falsely shared page.
const Threshold = 100

// Detect returns the top pages by ownership changes (at most top; all
// when top <= 0), most changes first, each flagged when its writers wrote
// disjoint byte ranges and it changed owner at least minChanges times.
func Detect(pages []Page, pageSize, minChanges, top int) []Finding {
	var out []Finding
	for _, p := range pages {
		if p.Changes <= 0 {
			continue
		}
		f := Finding{Page: p.Page, Changes: p.Changes, Writers: normalize(p.Writers)}
		f.FalseSharing = p.Changes >= minChanges && disjoint(f.Writers)
		f.Advice = advice(f, pageSize)
		out = append(out, f)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Changes != out[j].Changes {
			return out[i].Changes > out[j].Changes
		}
		return out[i].Page < out[j].Page
	})
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	return out
}

// normalize merges each rank's ranges and the entries of one rank, and
// drops writers that wrote nothing.
func normalize(ws []Writer) []Writer {
	byRank := map[int][]Range{}
	for _, w := range ws {
		byRank[w.Rank] = append(byRank[w.Rank], w.Ranges...)
	}
	var out []Writer
	for r, rs := range byRank {
		rs = Merge(rs)
		if len(rs) > 0 {
			out = append(out, Writer{Rank: r, Ranges: rs})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rank < out[j].Rank })
	return out
}

// Merge sorts ranges and joins those that overlap or touch; empty ranges
// are dropped.
func Merge(rs []Range) []Range {
	var in []Range
	for _, r := range rs {
		if r.Len > 0 {
			in = append(in, r)
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i].Off < in[j].Off })
	var out []Range
	for _, r := range in {
		if n := len(out); n > 0 && r.Off <= out[n-1].End() {
			if r.End() > out[n-1].End() {
				out[n-1].Len = r.End() - out[n-1].Off
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// disjoint says whether two or more ranks wrote and no byte was written by
// two of them.
func disjoint(ws []Writer) bool {
	if len(ws) < 2 {
		return false
	}
	type edge struct {
		off, end, rank int
	}
	var all []edge
	for _, w := range ws {
		for _, r := range w.Ranges {
			all = append(all, edge{r.Off, r.End(), w.Rank})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].off < all[j].off })
	end := -1
	for _, e := range all {
		if e.off < end {
			return false // ranges of one rank were merged, so this is another rank
		}
		end = max(end, e.end)
	}
	return true
}

func advice(f Finding, pageSize int) string {
	if len(f.Writers) < 2 {
		return ""
	}
	var who []string
	for _, w := range f.Writers {
		var rs []string
		for i, r := range w.Ranges {
			if i == 3 {
				rs = append(rs, fmt.Sprintf("and %d more", len(w.Ranges)-3))
				break
			}
			rs = append(rs, r.String())
		}
		who = append(who, fmt.Sprintf("rank %d bytes %s", w.Rank, strings.Join(rs, ", ")))
	}
	if f.FalseSharing {
		return fmt.Sprintf("false sharing: page %d changed owner %d times, but its writers wrote disjoint bytes (%s): pad each rank's data to the page size (%d bytes), or dsm.Alloc separate arrays",
			f.Page, f.Changes, strings.Join(who, "; "), pageSize)
	}
	if disjoint(f.Writers) {
		return ""
	}
	return fmt.Sprintf("true sharing: ranks write the same bytes of page %d (%s): combine updates locally and write once, or use a reduction",
		f.Page, strings.Join(who, "; "))
}

// Diff returns the byte ranges where cur differs from twin (a copy of the
// page taken when write access was granted), at most maxRanges of them:
// when there are more, the closest ones are joined (the ranges then cover
// some unchanged bytes, never miss a changed one). This is what the memory
// records at a revocation: a comparison of one page, no cost on writes.
func Diff(twin, cur []byte, maxRanges int) []Range {
	n := min(len(twin), len(cur))
	var rs []Range
	for i := 0; i < n; {
		// Compare 8 bytes at a time where both agree.
		if i+8 <= n && string(twin[i:i+8]) == string(cur[i:i+8]) {
			i += 8
			continue
		}
		if twin[i] == cur[i] {
			i++
			continue
		}
		j := i + 1
		for j < n && twin[j] != cur[j] {
			j++
		}
		rs = append(rs, Range{i, j - i})
		i = j
	}
	if maxRanges < 1 {
		maxRanges = 1
	}
	for len(rs) > maxRanges {
		// Join the pair with the smallest gap.
		best := 0
		for k := 1; k+1 < len(rs); k++ {
			if rs[k+1].Off-rs[k].End() < rs[best+1].Off-rs[best].End() {
				best = k
			}
		}
		rs[best].Len = rs[best+1].End() - rs[best].Off
		rs = append(rs[:best+1], rs[best+2:]...)
	}
	return rs
}
