package remote

import (
	"os"
	"syscall"
)

// fileIDOf returns the identity of the version of a file; ok is false
// where it cannot be known (the file is then hashed every time).
func fileIDOf(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}, true
}
