package falseshare

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	pages := []Page{
		// The counter lesson: every rank increments its own int64 of one page.
		{Page: 0, Changes: 4000, Writers: []Writer{{0, []Range{{0, 8}}}, {1, []Range{{8, 8}}}, {2, []Range{{16, 8}}}, {3, []Range{{24, 8}}}}},
		// True sharing: everyone adds to the same int64.
		{Page: 1, Changes: 900, Writers: []Writer{{0, []Range{{0, 8}}}, {1, []Range{{4, 8}}}}},
		// Disjoint but rarely moving: not flagged.
		{Page: 2, Changes: 3, Writers: []Writer{{0, []Range{{0, 2048}}}, {1, []Range{{2048, 2048}}}}},
		// One writer only.
		{Page: 3, Changes: 150, Writers: []Writer{{2, []Range{{0, 4096}}}}},
		// Jacobi-like: row boundaries, ranges given in pieces and twice.
		{Page: 9, Changes: 150, Writers: []Writer{{1, []Range{{100, 10}, {0, 100}}}, {0, []Range{{2000, 96}}}, {1, []Range{{110, 5}}}}},
		{Page: 4, Changes: 0},
	}
	fs := Detect(pages, 4096, Threshold, 0)
	var got []int
	for _, f := range fs {
		got = append(got, f.Page)
	}
	if !reflect.DeepEqual(got, []int{0, 1, 3, 9, 2}) {
		t.Fatalf("order %v", got)
	}
	flag := map[int]bool{}
	for _, f := range fs {
		flag[f.Page] = f.FalseSharing
	}
	if !flag[0] || flag[1] || flag[2] || flag[3] || !flag[9] {
		t.Fatalf("flags %v", flag)
	}
	if a := fs[0].Advice; !strings.Contains(a, "pad each rank's data to the page size (4096 bytes), or dsm.Alloc separate arrays") ||
		!strings.Contains(a, "rank 1 bytes 8-15") {
		t.Errorf("advice %q", a)
	}
	if a := fs[1].Advice; !strings.Contains(a, "true sharing") {
		t.Errorf("advice %q", a)
	}
	if w := fs[3].Writers; !reflect.DeepEqual(w, []Writer{{0, []Range{{2000, 96}}}, {1, []Range{{0, 115}}}}) {
		t.Errorf("normalized writers %v", w)
	}
	if top := Detect(pages, 4096, Threshold, 2); len(top) != 2 || top[0].Page != 0 {
		t.Errorf("top 2: %v", top)
	}
}

func TestMerge(t *testing.T) {
	got := Merge([]Range{{10, 5}, {0, 3}, {3, 2}, {12, 10}, {40, 0}, {30, 1}})
	want := []Range{{0, 5}, {10, 12}, {30, 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func TestDiff(t *testing.T) {
	twin := make([]byte, 64)
	cur := make([]byte, 64)
	cur[3] = 1
	cur[4] = 1
	cur[20] = 9
	cur[63] = 2
	if got, want := Diff(twin, cur, 8), []Range{{3, 2}, {20, 1}, {63, 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	// Two ranges at most: the closest pair is joined.
	if got, want := Diff(twin, cur, 2), []Range{{3, 18}, {63, 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	if got := Diff(twin, twin, 4); len(got) != 0 {
		t.Fatalf("no change: %v", got)
	}
}

// Diff never misses a changed byte and never reports more than asked.
func TestDiffCovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 500; trial++ {
		n := 1 + rng.IntN(4096)
		twin := make([]byte, n)
		cur := make([]byte, n)
		for i := range twin {
			twin[i] = byte(rng.IntN(256))
		}
		copy(cur, twin)
		for k := rng.IntN(40); k > 0; k-- {
			cur[rng.IntN(n)] ^= byte(1 + rng.IntN(255))
		}
		maxR := 1 + rng.IntN(10)
		rs := Diff(twin, cur, maxR)
		if len(rs) > maxR {
			t.Fatalf("%d ranges, max %d", len(rs), maxR)
		}
		covered := make([]bool, n)
		for _, r := range rs {
			for i := r.Off; i < r.End(); i++ {
				covered[i] = true
			}
		}
		for i := range cur {
			if cur[i] != twin[i] && !covered[i] {
				t.Fatalf("trial %d: byte %d changed, not in %v", trial, i, rs)
			}
		}
	}
}
