//go:build !linux

package pmi

import "net"

func fileConn(fd int) (net.Conn, error) { return nil, ErrNotSupported }
