package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Cleanups of issue 11 that must stay done: one in-process SSH server
// (internal/sshtest), no doc citing a design file that is not in the
// repository, no authentication failure recognised by its text.
func TestCleanupsStay(t *testing.T) {
	check := func(glob, bad, why string) {
		files, _ := filepath.Glob(glob)
		if len(files) == 0 {
			t.Fatalf("no files match %s", glob)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), bad) {
				t.Errorf("%s has %q: %s", f, bad, why)
			}
		}
	}
	check("*_test.go", "gliderssh \"github.com/"+"gliderlabs/ssh\"", "use internal/sshtest")
	check("../internal/remote/*_test.go", "gliderssh \"github.com/"+"gliderlabs/ssh\"", "use internal/sshtest")
	check("*.go", "DESIGN"+".md", "not in this repository")
	check("../internal/remote/dial.go", `"unable to authenticate"`, "recognise the failure by the handshake's progress, not its text")
}
