package examples_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The tutorial (docs/TUTORIAL.md) must never rot, so every code block of it
// is checked here:
//
//   - A ```go block is a marked region of an example program: the line
//     before the block says which, `<!-- code: examples/ring/main.go#ring -->`,
//     and TestTutorialGoBlocks checks that the block is exactly the text
//     between `// tutorial:begin ring` and `// tutorial:end` in that file
//     (less the indentation the region has in the file). The examples are
//     built by TestMain and run by the other tests of this package, so the
//     code of every Go block is compiled and run.
//   - A ```sh block's `bin/...` and `head ...` lines are run by
//     TestTutorialCommands, in order, in a folder whose bin/ is this
//     test's build, and must succeed (a command whose output block says
//     "timed out" must exit 124, like mpirun -timeout; one whose output
//     block says "mpirun: deadlock:" must exit 3, like mpirun's deadlock
//     detector; one whose output
//     block says a rank "exited with status" must fail). In the plain block
//     of output that follows, every line that starts with "[rank ",
//     "mpirun: " or "rank," (a CSV header) must be printed by the
//     commands, with numbers (times, pids, counts) left out of the
//     comparison.

const tutorialPath = "docs/TUTORIAL.md"

func readTutorial(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", tutorialPath))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mdBlock is a fenced code block of a Markdown file.
type mdBlock struct {
	lang   string // the info string: go, sh, or "" (output)
	before string // the last non-empty line before the opening fence
	body   string
	line   int // line number of the opening fence
}

func mdBlocks(text string) []mdBlock {
	var out []mdBlock
	var cur *mdBlock
	var body []string
	prev := ""
	for i, l := range strings.Split(text, "\n") {
		switch {
		case cur == nil && strings.HasPrefix(strings.TrimSpace(l), "```"):
			cur = &mdBlock{lang: strings.TrimPrefix(strings.TrimSpace(l), "```"), before: prev, line: i + 1}
			body = nil
		case cur != nil && strings.TrimSpace(l) == "```":
			cur.body = strings.Join(body, "\n") + "\n"
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body = append(body, l)
		default:
			if strings.TrimSpace(l) != "" {
				prev = strings.TrimSpace(l)
			}
		}
	}
	return out
}

var regionBegin = regexp.MustCompile(`^\s*// tutorial:begin (\S+)\s*$`)

// tutorialRegions returns the marked regions of a Go file by name, each
// without the indentation common to its lines.
func tutorialRegions(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]string{}
	var name string
	var lines []string
	for i, l := range strings.Split(string(b), "\n") {
		if m := regionBegin.FindStringSubmatch(l); m != nil {
			if name != "" {
				t.Fatalf("%s:%d: tutorial:begin %s inside region %s", path, i+1, m[1], name)
			}
			if _, dup := regions[m[1]]; dup {
				t.Fatalf("%s:%d: a second region %s", path, i+1, m[1])
			}
			name, lines = m[1], nil
			continue
		}
		if strings.TrimSpace(l) == "// tutorial:end" {
			if name == "" {
				t.Fatalf("%s:%d: tutorial:end outside a region", path, i+1)
			}
			regions[name] = dedent(lines)
			name = ""
			continue
		}
		if name != "" {
			lines = append(lines, l)
		}
	}
	if name != "" {
		t.Fatalf("%s: region %s has no tutorial:end", path, name)
	}
	return regions
}

// dedent removes the leading tabs all non-empty lines have in common.
func dedent(lines []string) string {
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, "\t"))
		if common < 0 || n < common {
			common = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= common && common > 0 {
			l = l[common:]
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

var codeRef = regexp.MustCompile(`^<!-- code: (examples/[\w-]+/main\.go)#(\S+) -->$`)

// TestTutorialGoBlocks: every Go block of the tutorial is a region of an
// example program, verbatim, and every region is shown.
func TestTutorialGoBlocks(t *testing.T) {
	text := readTutorial(t)
	used := map[string]bool{} // file#region
	for _, b := range mdBlocks(text) {
		if b.lang != "go" {
			continue
		}
		m := codeRef.FindStringSubmatch(b.before)
		if m == nil {
			t.Errorf("%s:%d: a Go block without a `<!-- code: examples/PROG/main.go#REGION -->` line before it", tutorialPath, b.line)
			continue
		}
		regions := tutorialRegions(t, filepath.Join("..", m[1]))
		want, ok := regions[m[2]]
		if !ok {
			t.Errorf("%s:%d: %s has no region %q", tutorialPath, b.line, m[1], m[2])
			continue
		}
		used[m[1]+"#"+m[2]] = true
		if b.body != want {
			t.Errorf("%s:%d: the block differs from %s#%s; the block:\n%s\nthe program:\n%s", tutorialPath, b.line, m[1], m[2], b.body, want)
		}
	}
	files, err := filepath.Glob("*/main.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		for name := range tutorialRegions(t, f) {
			if !used["examples/"+filepath.ToSlash(f)+"#"+name] {
				t.Errorf("examples/%s: region %q is not shown in %s", f, name, tutorialPath)
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("no Go blocks found")
	}
}

var number = regexp.MustCompile(`[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?(µs|ms|ns|s)?`)

// masked is l with its numbers replaced by #, and runs of spaces made one.
func masked(l string) string {
	return strings.Join(strings.Fields(number.ReplaceAllString(l, "#")), " ")
}

// elided: an expected line with "…" in it stands for any printed line
// that has the parts between the "…"s in order, the first at its start
// and the last at its end (the tutorial elides what depends on timing).
func elided(want string, got map[string]bool) bool {
	parts := strings.Split(want, "…")
	if len(parts) < 2 {
		return false
	}
	for i, p := range parts {
		parts[i] = masked(p)
	}
	first, last := parts[0], parts[len(parts)-1]
lines:
	for l := range got {
		if !strings.HasPrefix(l, first) || !strings.HasSuffix(l, last) || len(l) < len(first)+len(last) {
			continue
		}
		rest := l[len(first) : len(l)-len(last)]
		for _, p := range parts[1 : len(parts)-1] {
			i := strings.Index(rest, p)
			if i < 0 {
				continue lines
			}
			rest = rest[i+len(p):]
		}
		return true
	}
	return false
}

// needsUffd matches the commands that use plain loads and stores of
// shared memory, or show the fault backend: they need userfaultfd.
var needsUffd = regexp.MustCompile(`bin/(double_touch|counter|matmul|jacobi|alloc)(\s|$)|fault backend`)

// TestTutorialCommands runs the tutorial's commands and compares their
// output with the output blocks after them (numbers left out).
func TestTutorialCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs every command of the tutorial")
	}
	dir := t.TempDir()
	if err := os.Symlink(bin, filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	blocks := mdBlocks(readTutorial(t))
	ran := 0
	for i, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		var cmds []string
		for _, l := range strings.Split(b.body, "\n") {
			if strings.HasPrefix(l, "bin/") || strings.HasPrefix(l, "head ") {
				cmds = append(cmds, l)
			}
		}
		if len(cmds) == 0 {
			continue
		}
		var expect []string
		timedOut, fails, deadlocked := false, false, false
		if i+1 < len(blocks) && blocks[i+1].lang == "" {
			for _, l := range strings.Split(blocks[i+1].body, "\n") {
				if strings.HasPrefix(l, "[rank ") || strings.HasPrefix(l, "mpirun: ") || strings.HasPrefix(l, "rank,") {
					expect = append(expect, l)
				}
				timedOut = timedOut || strings.Contains(l, "timed out")
				deadlocked = deadlocked || strings.HasPrefix(l, "mpirun: deadlock:")
				fails = fails || strings.Contains(l, "exited with status")
			}
		}
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			var out strings.Builder
			for _, c := range cmds {
				if needsUffd.MatchString(c) {
					needUffd(t)
				}
				cmd := exec.Command("sh", "-c", c)
				cmd.Dir = dir
				o, err := cmd.CombinedOutput()
				out.Write(o)
				var ee *exec.ExitError
				switch {
				case timedOut && (!errors.As(err, &ee) || ee.ExitCode() != 124):
					t.Fatalf("%q: want exit status 124 (timed out), got %v:\n%s", c, err, o)
				case deadlocked && (!errors.As(err, &ee) || ee.ExitCode() != 3):
					t.Fatalf("%q: want exit status 3 (deadlock), got %v:\n%s", c, err, o)
				case fails && !errors.As(err, &ee):
					t.Fatalf("%q: want a non-zero exit status (a rank failed), got %v:\n%s", c, err, o)
				case !timedOut && !fails && !deadlocked && err != nil:
					t.Fatalf("%q: %v:\n%s", c, err, o)
				}
			}
			got := map[string]bool{}
			for _, l := range strings.Split(out.String(), "\n") {
				got[masked(l)] = true
			}
			for _, l := range expect {
				if !got[masked(l)] && !elided(l, got) {
					t.Errorf("the tutorial shows\n\t%s\nbut %q printed no such line (numbers aside):\n%s", l, cmds, out.String())
				}
			}
		})
		ran++
	}
	if ran == 0 {
		t.Fatal("no commands found")
	}
}
