package dsm

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// rawConn is a non-blocking stream socket that the page server's loop
// reads and writes with plain system calls, outside the Go netpoller: its
// readiness comes from the loop's own epoll, so an event wakes the loop's
// thread and no other.
type rawConn struct {
	fd   int
	rank int // the peer's rank; -1 for the control socket

	in   []byte // in[r:w] is read but not yet parsed
	r, w int
	out  []byte // written by queue, not yet accepted by the kernel

	// A memory-mesh peer's connection is made on demand (memnet_linux.go):
	// fd is -1 and out collects frames until state is peerUp.
	state peerState
	since time.Time // when this page server started to connect (budget)
	until time.Time // peerYielded: by when the peer's own dial must arrive
	// cancel stops the dial running for this peer (nil when none runs).
	cancel func()

	pollOut bool // EPOLLOUT is asked for (out did not fit)
	bye     bool // the peer said goodbye: its EOF is normal
	wrShut  bool // our write side is shut (after our BYE)
	closed  bool
}

func newRawConn(fd, rank int, leftover []byte) *rawConn {
	c := &rawConn{fd: fd, rank: rank, in: make([]byte, max(64<<10, 2*len(leftover)))}
	c.w = copy(c.in, leftover)
	return c
}

// fill reads what the kernel has, once. It returns 0 and no error when
// nothing is there (EAGAIN), io.EOF at the end of the stream.
func (c *rawConn) fill() (int, error) {
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if len(c.in)-c.w < 16<<10 && c.r > 0 {
		c.w = copy(c.in, c.in[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.in) {
		c.in = append(c.in, make([]byte, len(c.in))...)
	}
	for {
		n, err := unix.Read(c.fd, c.in[c.w:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, err
		case n == 0:
			return 0, io.EOF
		}
		c.w += n
		return n, nil
	}
}

// next returns the next whole frame in the buffer, if there is one. Its
// body points into the buffer: it is valid until the next fill.
func (c *rawConn) next(maxBody int) (f wire.Frame, ok bool, err error) {
	if c.w-c.r < wire.HeaderSize {
		return f, false, nil
	}
	var h wire.Header
	copy(h[:], c.in[c.r:])
	if err := h.Check(maxBody); err != nil {
		return f, false, err
	}
	n := wire.HeaderSize + h.Len()
	if c.w-c.r < n {
		if len(c.in)-c.r < n { // make room for the whole frame
			b := make([]byte, max(2*len(c.in), n))
			c.w = copy(b, c.in[c.r:c.w])
			c.in, c.r = b, 0
		}
		return f, false, nil
	}
	f = wire.Frame{Channel: h.Channel(), Type: h.Type(), Flags: h.Flags(), Source: h.Source(), Body: c.in[c.r+wire.HeaderSize : c.r+n : c.r+n]}
	c.r += n
	return f, true, nil
}

// queue appends one frame to the output.
func (c *rawConn) queue(ch wire.Channel, typ uint8, src int, parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := wire.MakeHeader(ch, typ, 0, src, n)
	c.out = append(c.out, h[:]...)
	for _, p := range parts {
		c.out = append(c.out, p...)
	}
}

// flush writes as much of the output as the kernel takes. It reports
// whether output is left (the caller waits for EPOLLOUT).
func (c *rawConn) flush() (left bool, err error) {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true, nil
		case err != nil:
			return true, err
		}
		if n == len(c.out) {
			c.out = c.out[:0]
			break
		}
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	return false, nil
}

// flushWait writes the whole output, waiting (up to timeoutMs in total per
// stall) when the socket is full.
func (c *rawConn) flushWait(timeoutMs int) error {
	for {
		left, err := c.flush()
		if err != nil || !left {
			return err
		}
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, timeoutMs)
		if err != nil && err != unix.EINTR {
			return err
		}
		if n == 0 && err == nil {
			return errors.New("write timed out")
		}
	}
}

// readFrameWait waits for one whole frame (setup phase, before the loop).
func (c *rawConn) readFrameWait(maxBody int) (wire.Frame, error) {
	for {
		f, ok, err := c.next(maxBody)
		if err != nil || ok {
			return f, err
		}
		n, err := c.fill()
		if err != nil {
			if err == io.EOF && c.r != c.w {
				err = io.ErrUnexpectedEOF
			}
			return f, err
		}
		if n == 0 {
			pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, -1); err != nil && err != unix.EINTR {
				return f, fmt.Errorf("poll: %w", err)
			}
		}
	}
}

func (c *rawConn) close() {
	if !c.closed && c.fd >= 0 {
		c.closed = true
		unix.Close(c.fd)
	}
}
