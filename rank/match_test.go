package rank

import "testing"

// TestSoloOrder: the only posted receive is kept aside (solo); a second
// post puts it on its list first, so an arriving message still goes to
// the earliest posted receive that matches, whatever the patterns, and
// taking receives out in any order leaves the matcher empty.
func TestSoloOrder(t *testing.T) {
	type post struct{ from, tag int }
	cases := []struct {
		name  string
		posts []post
		msg   post // (src, tag) of the arriving message
		want  int  // index of the receive it must go to, -1: none
	}{
		{"solo matches", []post{{1, 5}}, post{1, 5}, 0},
		{"solo other tag", []post{{1, 5}}, post{1, 6}, -1},
		{"solo other source", []post{{1, 5}}, post{2, 5}, -1},
		{"solo any source", []post{{AnySource, 5}}, post{2, 5}, 0},
		{"solo any tag", []post{{1, AnyTag}}, post{1, 9}, 0},
		{"two same pattern", []post{{1, 5}, {1, 5}}, post{1, 5}, 0},
		{"any then specific", []post{{AnySource, AnyTag}, {1, 5}}, post{1, 5}, 0},
		{"specific then any", []post{{1, 5}, {AnySource, AnyTag}}, post{1, 5}, 0},
		{"non-matching solo then match", []post{{2, 5}, {1, 5}}, post{1, 5}, 1},
		{"three", []post{{2, 1}, {1, AnyTag}, {1, 5}}, post{1, 5}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := newMatcher()
			rs := make([]*Request, len(c.posts))
			for i, p := range c.posts {
				rs[i] = &Request{ctx: 4, from: p.from, tag: p.tag}
				q.post(rs[i])
			}
			got := q.findPosted(4, c.msg.from, c.msg.tag)
			if c.want < 0 && got != nil || c.want >= 0 && got != rs[c.want] {
				t.Fatalf("message %v went to %+v, want receive %d", c.msg, got, c.want)
			}
			if q.findPosted(5, c.msg.from, c.msg.tag) != nil {
				t.Fatal("a receive of another context matched")
			}
			if n := len(q.postedAll()); n != len(rs) {
				t.Fatalf("postedAll lists %d receives, want %d", n, len(rs))
			}
			for i := len(rs) - 1; i >= 0; i-- { // newest first
				q.unpost(rs[i])
				if rs[i].plist != nil {
					t.Fatalf("receive %d still says it is posted", i)
				}
			}
			if q.nposts != 0 || q.solo != nil || len(q.posted) != 0 {
				t.Fatalf("after taking every receive out: nposts %d solo %v lists %d", q.nposts, q.solo, len(q.posted))
			}
			q.post(rs[0]) // solo again
			if q.solo != rs[0] {
				t.Fatal("a receive posted alone is not solo")
			}
		})
	}
}
