package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveProgram finds the program like a shell would (a name with a slash
// is a path, any other name is looked up in PATH) and checks that it can be
// executed, so that a typo is reported before any rank starts.
func resolveProgram(name string) (string, *cliError) {
	path := name
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		switch {
		case err == nil:
			path = p
		case errors.Is(err, exec.ErrDot):
			path = p // PATH names "." explicitly: the user asked for it
		default:
			hint := "check the spelling, or give the program's path"
			if st, serr := os.Stat(name); serr == nil && !st.IsDir() {
				hint = "to run the program in this directory, write ./" + name
			}
			return "", failErr(hint, "program %q not found in PATH", name)
		}
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", failErr("check the path; build the program first if it is yours (go build -o "+name+" .)", "program %s not found", name)
	case err != nil:
		return "", failErr("", "program %s: %v", name, err)
	case st.IsDir():
		return "", failErr("name the executable, not its directory", "program %s is a directory", name)
	case !st.Mode().IsRegular():
		return "", failErr("", "program %s is not a regular file", name)
	}
	if err := unix.Access(path, unix.X_OK); err != nil || st.Mode()&0o111 == 0 {
		return "", failErr("make it executable: chmod +x "+name, "program %s is not executable", name)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", failErr("", "program %s: %v", name, err)
	}
	return abs, nil
}
