//go:build unix

package output_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dsmexec/dsmexec/internal/output"
	"github.com/dsmexec/dsmexec/internal/proc"
)

func newInDir(dir string) (*output.Writer, error) {
	return output.New(output.Options{Stdout: &recorder{}, Stderr: &recorder{}, Size: 2, Dir: dir})
}

// A symbolic link planted as rank.0.out must not be followed: the target
// keeps its content and New fails naming the link.
func TestDirSymlinkNotFollowed(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "rank.0.out")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	w, err := newInDir(dir)
	if err == nil {
		w.Close()
	}
	if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("New with a planted symlink: %v, want an error naming %s", err, link)
	}
	if b, _ := os.ReadFile(secret); string(b) != "precious" {
		t.Errorf("the symlink's target was changed to %q", b)
	}
}

// Files are created 0600 less the umask; a rerun truncates the caller's
// own files.
func TestDirFileModes(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	syscall.Umask(old)
	for run := range 2 {
		w, err := newInDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		c := make(chan proc.Line, 1)
		c <- line(1, proc.Stdout, strings.Repeat("x", 10-run), false)
		close(c)
		if err := w.Run(c); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"rank.0.out", "rank.0.err", "rank.1.out", "rank.1.err"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o600) &^ os.FileMode(old); st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "rank.1.out")); string(b) != "xxxxxxxxx\n" {
		t.Errorf("rank.1.out after a rerun = %q", b)
	}
}

// A directory anyone may write to needs the sticky bit; a FIFO or a hard
// link planted in it is refused without blocking.
func TestDirSharedRules(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := newInDir(dir)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "sticky") {
		t.Errorf("New in a 0777 directory: %v, want a refusal naming it", err)
	}
	if err := syscall.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	w, err := newInDir(dir)
	if err != nil {
		t.Fatalf("New in a 01777 directory: %v", err)
	}
	w.Close()

	fifo := filepath.Join(dir, "rank.1.err")
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := newInDir(dir); err == nil || !strings.Contains(err.Error(), fifo) {
		t.Errorf("New with a FIFO planted: %v, want an error naming %s", err, fifo)
	}
	os.Remove(fifo)

	other := filepath.Join(t.TempDir(), "other")
	os.WriteFile(other, []byte("keep"), 0o600)
	hard := filepath.Join(dir, "rank.1.out")
	os.Remove(hard)
	if err := os.Link(other, hard); err != nil {
		t.Fatal(err)
	}
	if _, err := newInDir(dir); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Errorf("New with a hard link planted: %v", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "keep" {
		t.Errorf("the hard link's other name was truncated: %q", b)
	}
}

// As root: a directory or a file owned by another user is refused.
func TestDirOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another user")
	}
	const nobody = 65534
	dir := t.TempDir()
	sub := filepath.Join(dir, "theirs")
	os.Mkdir(sub, 0o755)
	if err := os.Chown(sub, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := newInDir(sub); err == nil || !strings.Contains(err.Error(), sub) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("New in another user's directory: %v", err)
	}
	planted := filepath.Join(dir, "rank.0.out")
	os.WriteFile(planted, []byte("theirs"), 0o666)
	if err := os.Chown(planted, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := newInDir(dir); err == nil || !strings.Contains(err.Error(), planted) || !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("New with another user's rank.0.out: %v", err)
	}
	if b, _ := os.ReadFile(planted); string(b) != "theirs" {
		t.Errorf("another user's file was truncated: %q", b)
	}
}
