//go:build !linux

package remote

import "os"

func fileIDOf(fi os.FileInfo) (fileID, bool) { return fileID{}, false }
