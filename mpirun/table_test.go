package main

import (
	"strings"
	"testing"
)

// The summary table's drawing: header centred, cells right-aligned, a
// cell's lines stacked, tabs as spaces, wide characters two columns.
func TestRender(t *testing.T) {
	tests := []struct {
		name string
		head []string
		rows [][]string
		want string
	}{{
		name: "rows",
		head: []string{"RANK", "HOST", "CPU"},
		rows: [][]string{{"0", "localhost", "518µs"}, {"12", "h", "-"}},
		want: `
┌──────┬───────────┬───────┐
│ RANK │   HOST    │  CPU  │
├──────┼───────────┼───────┤
│    0 │ localhost │ 518µs │
│   12 │         h │     - │
└──────┴───────────┴───────┘
`,
	}, {
		name: "no rows",
		head: []string{"RANK", "ab"},
		want: `
┌──────┬────┐
│ RANK │ ab │
└──────┴────┘
`,
	}, {
		name: "lines, tabs, spaces",
		head: []string{"", "v"},
		rows: [][]string{{"x", "line1\nline two "}, {"y", "a\tb"}},
		want: `
┌───┬──────────┐
│   │    v     │
├───┼──────────┤
│ x │    line1 │
│   │ line two │
│ y │   a    b │
└───┴──────────┘
`,
	}, {
		name: "wide",
		head: []string{"RANK", "日本"},
		rows: [][]string{{"0", "é"}},
		want: `
┌──────┬──────┐
│ RANK │ 日本 │
├──────┼──────┤
│    0 │    é │
└──────┴──────┘
`,
	}}
	for _, tt := range tests {
		got, err := render(tt.head, tt.rows)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if want := strings.TrimPrefix(tt.want, "\n"); string(got) != want {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, got, want)
		}
	}
}
