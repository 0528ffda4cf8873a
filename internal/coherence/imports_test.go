package coherence

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestImportsAsDocumented: the protocol stays pure (no net, time, sync or
// syscalls), and docs/ARCHITECTURE.md lists exactly what it imports.
func TestImportsAsDocumented(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	set := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			set[p] = true
		}
	}
	var got []string
	for p := range set {
		got = append(got, p)
		for _, bad := range []string{"net", "time", "sync", "os", "syscall", "golang.org/x/sys"} {
			if p == bad || strings.HasPrefix(p, bad+"/") {
				t.Errorf("coherence imports %s: the protocol must stay a pure state machine", p)
			}
		}
	}
	slices.Sort(got)
	doc, err := os.ReadFile("../../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`internal/coherence` imports only ([^;]*);").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/ARCHITECTURE.md no longer says what internal/coherence imports")
	}
	var listed []string
	for _, q := range regexp.MustCompile("`([^`]+)`").FindAllSubmatch(m[1], -1) {
		listed = append(listed, string(q[1]))
	}
	slices.Sort(listed)
	if !slices.Equal(got, listed) {
		t.Errorf("internal/coherence imports %v; docs/ARCHITECTURE.md says %v", got, listed)
	}
}
