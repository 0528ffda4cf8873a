//go:build unix

package output

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openDir opens the output directory (made 0755 less the umask if missing)
// and checks that nobody else can plant files in it: it must be owned by
// the caller or by root, and a directory anyone may write to must have the
// sticky bit (like /tmp), where others cannot replace our files.
func openDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output: create output directory: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("output: open output directory %s: %w", dir, err)
	}
	d := os.NewFile(uintptr(fd), dir)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		d.Close()
		return nil, fmt.Errorf("output: stat output directory %s: %w", dir, err)
	}
	me := uint32(os.Geteuid())
	switch {
	case st.Uid != me && st.Uid != 0:
		d.Close()
		return nil, fmt.Errorf("output: output directory %s is owned by uid %d, not by you (uid %d): refusing to write rank files where another user controls the names", dir, st.Uid, me)
	case st.Mode&unix.S_IWOTH != 0 && st.Mode&unix.S_ISVTX == 0:
		d.Close()
		return nil, fmt.Errorf("output: output directory %s is writable by everyone without the sticky bit (mode %04o): another user could plant or replace rank files; chmod o-w or +t it, or use another directory", dir, st.Mode&0o7777)
	}
	return d, nil
}

// createIn opens name in the directory d for writing: created 0600 (less
// the umask) if missing, and if present it must be a regular file of the
// caller's with one link; it is never a symbolic link followed or a FIFO
// waited on. The file is truncated only after those checks.
func createIn(d *os.File, name string) (*os.File, error) {
	path := filepath.Join(d.Name(), name)
	fd, err := unix.Openat(int(d.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
	if err == unix.ELOOP {
		return nil, fmt.Errorf("output: %s is a symbolic link: refusing to follow it", path)
	}
	if err == unix.ENXIO {
		return nil, fmt.Errorf("output: %s is a FIFO or socket, not a regular file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("output: create %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("output: stat %s: %w", path, err)
	}
	me := uint32(os.Geteuid())
	var why string
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		why = "is not a regular file"
	case st.Uid != me:
		why = fmt.Sprintf("belongs to uid %d, not to you (uid %d)", st.Uid, me)
	case st.Nlink != 1:
		why = fmt.Sprintf("has %d hard links (another name for the same file exists)", st.Nlink)
	}
	if why != "" {
		f.Close()
		return nil, fmt.Errorf("output: %s %s: refusing to write rank output into it", path, why)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, fmt.Errorf("output: %s: %w", path, err)
	}
	if err := unix.Ftruncate(fd, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("output: truncate %s: %w", path, err)
	}
	return f, nil
}
