package pmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// socketpair returns the client end as a bare descriptor (what a launcher
// leaves in PMI_FD) and the server end as a net.Conn.
func socketpair(t *testing.T) (int, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[1]), "server")
	srv, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return fds[0], srv
}

// Dial over an inherited socket, the way Hydra and Slurm hand it over.
func TestDialPMIFD(t *testing.T) {
	for _, f := range []flavor{hydra, slurm} {
		for _, version := range []int{1, 2} {
			t.Run(fmt.Sprintf("%v/PMI-%d", f, version), func(t *testing.T) {
				j := newFakeJob(f, 1)
				defer j.stop()
				fd, srv := socketpair(t)
				served := make(chan error, 1)
				go func() { served <- j.serve(srv, 0) }()
				c, err := Dial(context.Background(), Config{FD: fd, Rank: 0, Size: 1, Version: version, Timeout: testTimeout})
				if err != nil {
					t.Fatal(err)
				}
				// The inherited number is closed: only the close-on-exec dup remains.
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); !errors.Is(err, unix.EBADF) {
					t.Errorf("PMI_FD %d still open after Dial (fcntl: %v)", fd, err)
				}
				if err := c.Put("dsmexec-addr-0", "127.0.0.1:1"); err != nil {
					t.Fatal(err)
				}
				if err := c.Fence(context.Background()); err != nil {
					t.Fatal(err)
				}
				if v, err := c.Get(context.Background(), "dsmexec-addr-0"); err != nil || v != "127.0.0.1:1" {
					t.Fatalf("Get = %q, %v", v, err)
				}
				if err := c.Finalize(); err != nil {
					t.Fatal(err)
				}
				if err := <-served; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// A PMI_FD that is not a connected socket is refused and left open: it may be
// one of this process's own files.
func TestDialPMIFDNotASocket(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	for _, tc := range []struct {
		name string
		fd   int
	}{{"pipe", int(r.Fd())}, {"listening socket", int(lf.Fd())}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Dial(context.Background(), Config{FD: tc.fd, Rank: 0, Size: 1, Version: 1})
			if !errors.Is(err, ErrEnv) {
				t.Fatalf("Dial: %v, want ErrEnv", err)
			}
			if _, err := unix.FcntlInt(uintptr(tc.fd), unix.F_GETFD, 0); err != nil {
				t.Fatalf("fd %d was closed: %v", tc.fd, err)
			}
		})
	}
}
