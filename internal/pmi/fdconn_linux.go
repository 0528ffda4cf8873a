package pmi

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// fileConn turns the inherited PMI_FD into a net.Conn. It first checks that
// the descriptor is a connected stream socket: a stale PMI_FD (an environment
// inherited without the descriptor) may name one of this process's own files,
// and wrapping then closing it would break them.
func fileConn(fd int) (net.Conn, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("%w: not a socket: %w", ErrEnv, os.NewSyscallError("getsockopt", err))
	}
	if typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("%w: socket type %d, want a stream socket", ErrEnv, typ)
	}
	if _, err := unix.Getpeername(fd); err != nil {
		return nil, fmt.Errorf("%w: not a connected socket: %w", ErrEnv, os.NewSyscallError("getpeername", err))
	}
	f := os.NewFile(uintptr(fd), "pmi")
	conn, err := net.FileConn(f) // dups fd with close-on-exec
	// Close the inherited number either way: it is not close-on-exec, and the
	// launcher's socket must not leak into this rank's children.
	f.Close()
	if err != nil {
		return nil, err
	}
	return conn, nil
}
