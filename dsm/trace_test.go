package dsm

import (
	"testing"

	"github.com/dsmexec/dsmexec/internal/falseshare"
)

// TestBoundRanges: written ranges are kept to maxRangesPerPage by joining
// the closest neighbours, covering every byte they covered.
func TestBoundRanges(t *testing.T) {
	var rs []falseshare.Range
	for i := range 40 {
		rs = append(rs, falseshare.Range{Off: i * 100, Len: 1 + i%3})
	}
	rs[7].Len = 90 // 7 and 8 are 10 bytes apart: the first to join
	out := bound(append([]falseshare.Range(nil), rs...))
	if len(out) != maxRangesPerPage {
		t.Fatalf("%d ranges, want %d", len(out), maxRangesPerPage)
	}
	for _, r := range rs {
		covered := false
		for _, o := range out {
			if o.Off <= r.Off && r.End() <= o.End() {
				covered = true
			}
		}
		if !covered {
			t.Errorf("%v is not covered by %v", r, out)
		}
	}
	for i := 1; i < len(out); i++ {
		if out[i].Off < out[i-1].End() {
			t.Errorf("ranges overlap or are out of order: %v", out)
		}
	}
}
