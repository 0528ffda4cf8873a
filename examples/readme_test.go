package examples_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dsmexec/dsmexec/internal/pagemem"
)

// fences returns the bodies of the fenced code blocks of a Markdown text
// whose info string is lang, in order.
func fences(text, lang string) []string {
	var out []string
	var cur []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case !in && l == "```"+lang:
			in, cur = true, nil
		case in && l == "```":
			in = false
			out = append(out, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, l)
		}
	}
	return out
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadmeOwnModule follows the README's "module of your own" steps
// literally: the first Go block of "Your first program" as main.go, and
// the shell block that starts with `mkdir first`, run line by line.
func TestReadmeOwnModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module from scratch")
	}
	readme := readRepoFile(t, "README.md")
	sec := readme[strings.Index(readme, "## Your first program"):]
	sec = sec[:strings.Index(sec, "\n## API")]
	gos := fences(sec, "go")
	if len(gos) == 0 {
		t.Fatal("no Go block under \"Your first program\"")
	}
	var steps string
	for _, b := range fences(sec, "sh") {
		if strings.HasPrefix(b, "mkdir first") {
			steps = b
		}
	}
	if steps == "" {
		t.Fatal("no shell block starting with `mkdir first` under \"Your first program\"")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repo, "bin", "mpirun")); err != nil {
		// The README's last line uses the repository's bin/mpirun (make build).
		if err := os.MkdirAll(filepath.Join(repo, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", filepath.Join(bin, "mpirun"), filepath.Join(repo, "bin", "mpirun")).CombinedOutput(); err != nil {
			t.Fatalf("cp mpirun: %v\n%s", err, out)
		}
	}
	dir := t.TempDir()
	wrote := false
	for _, line := range strings.Split(strings.TrimSpace(steps), "\n") {
		line = strings.ReplaceAll(line, "/path/to/dsmexec", repo)
		if strings.HasPrefix(line, "#") {
			if strings.Contains(line, "main.go") {
				if err := os.WriteFile(filepath.Join(dir, "first", "main.go"), []byte(gos[0]), 0o644); err != nil {
					t.Fatal(err)
				}
				wrote = true
			}
			continue
		}
		if strings.HasPrefix(line, "mkdir first && cd first") {
			if err := os.Mkdir(filepath.Join(dir, "first"), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = filepath.Join(dir, "first")
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README step %q: %v\n%s", line, err, out)
		}
		if strings.Contains(line, "mpirun") {
			for _, want := range []string{`got "hello"`, "slots: [0 10 20 30]"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("the job's output lacks %q:\n%s", want, out)
				}
			}
		}
	}
	if !wrote {
		t.Fatal("the steps never say where to save main.go")
	}
}

// TestKernelRequirementQuoted: the README and the tutorial quote the
// kernel the userfaultfd backend needs as the same version the code names.
func TestKernelRequirementQuoted(t *testing.T) {
	re := regexp.MustCompile(`(?:Linux ≥ |Linux )(\d+\.\d+)(?: or newer)?`)
	for _, name := range []string{"README.md", "docs/TUTORIAL.md"} {
		text := readRepoFile(t, name)
		found := false
		for _, l := range strings.Split(text, "\n") {
			if !strings.Contains(l, "5.11") && strings.Contains(l, "Linux") && (strings.Contains(l, "needs") || strings.Contains(l, "used when")) {
				for _, m := range re.FindAllStringSubmatch(l, -1) {
					found = true
					if m[1] != pagemem.MinKernel {
						t.Errorf("%s: %q says Linux %s, the code needs %s", name, strings.TrimSpace(l), m[1], pagemem.MinKernel)
					}
				}
			}
		}
		if !found {
			t.Errorf("%s never says which Linux the userfaultfd backend needs", name)
		}
	}
}
