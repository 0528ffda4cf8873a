package collective

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"unicode/utf8"
)

// call is the state of one collective call on one rank.
//
// Every algorithm here sends and receives the same messages whatever
// happens: a rank that fails (a transport error, a mismatched message, bad
// arguments) records the first failure and carries on, sending a header with
// the error code and a description instead of data. Its partners adopt the
// failure and pass it on in turn, so the failure reaches every rank that
// depends on the failing one, no rank waits for a message that will not be
// sent, and the message streams stay in step for the next call.
type call struct {
	t    Transport
	rank int
	size int
	h    header // this rank's view of the call; code, step and flags unset

	err  *Error // the first failure seen, nil while all is well
	code uint8  // err's code, sent to partners
	// skew is set once this rank knows that some ranks made a different
	// call (any header field differs). It travels in every header and, unlike
	// other failures, is known to every rank at the end of the first half of
	// Allreduce; that half uses it to leave out the second half consistently.
	skew bool

	hdrOnly []byte // a header-sized scratch buffer
}

func begin(t Transport, k kind) *call {
	rank, size := world(t)
	c := &call{t: t, rank: rank, size: size}
	c.h.kind = k
	if s, ok := t.(Sequencer); ok {
		c.h.seq = s.NextSeq()
	}
	return c
}

// setRoot checks root locally; every rank does, so a bad root fails
// everywhere without communication.
func (c *call) setRoot(root int) error {
	if root < 0 || root >= c.size {
		return &Error{Call: c.h.kind.String(), Rank: c.rank,
			Reason: fmt.Sprintf("root %d out of range for %d ranks", root, c.size), Err: ErrBadRoot}
	}
	c.h.root = uint32(root)
	return nil
}

// vrank maps a rank to its rank relative to the root, and abs back.
func (c *call) vrank() int     { return (c.rank - int(c.h.root) + c.size) % c.size }
func (c *call) abs(vr int) int { return (vr + int(c.h.root)) % c.size }

func (c *call) fail(code uint8, err error, format string, args ...any) {
	if c.err != nil {
		return
	}
	c.err = &Error{Call: c.h.kind.String(), Rank: c.rank, Reason: fmt.Sprintf(format, args...), Err: err}
	c.code = code
}

func (c *call) failTransport(verb string, peer int, step uint8, err error) {
	c.fail(codeTransport, fmt.Errorf("%w: %w", ErrTransport, err),
		"%s rank %d in %s: %v", verb, peer, stepName(step), err)
}

func (c *call) result() error {
	if c.err != nil {
		return c.err
	}
	return nil
}

func (c *call) header(step uint8) header {
	h := c.h
	h.step = step
	if c.skew {
		h.flags |= flagSkew
	}
	if c.err != nil {
		h.code = c.code
	}
	return h
}

// send sends buf, whose first hdrLen bytes are room for the header.
func (c *call) send(to int, step uint8, buf []byte) {
	c.sendAt(to, step, buf, hdrLen, len(buf))
}

// sendAt sends buf[off:end] preceded by the header, which is written over
// the hdrLen bytes before off and then put back: a part of a large buffer
// goes out without a copy, which Send allows because it keeps nothing.
// After a failure it sends the failure instead.
func (c *call) sendAt(to int, step uint8, buf []byte, off, end int) {
	var msg []byte
	var saved [hdrLen]byte
	h := c.header(step)
	failing := c.err != nil
	if failing {
		msg = c.failureMsg(h)
	} else {
		if off < hdrLen || off > end || end > len(buf) {
			panic(fmt.Sprintf("collective: send [%d:%d] of a %d-byte buffer", off, end, len(buf)))
		}
		msg = buf[off-hdrLen : end]
		copy(saved[:], msg)
		h.put(msg)
	}
	err := c.t.Send(to, msg)
	if !failing {
		copy(msg, saved[:])
	}
	if err != nil {
		c.failTransport("send to", to, step, err)
	}
}

// sendHeader sends a message without a body.
func (c *call) sendHeader(to int, step uint8) {
	if c.hdrOnly == nil {
		c.hdrOnly = make([]byte, hdrLen)
	}
	c.send(to, step, c.hdrOnly)
}

func (c *call) failureMsg(h header) []byte {
	reason := clip(c.err.Reason)
	msg := make([]byte, hdrLen+4+len(reason))
	h.put(msg)
	binary.LittleEndian.PutUint32(msg[hdrLen:], uint32(c.err.Rank))
	copy(msg[hdrLen+4:], reason)
	return msg
}

// recv receives the message for step from rank from and checks its
// header. It returns the whole message (header included) and true if it
// carries data for this call; otherwise the failure has been recorded.
func (c *call) recv(from int, step uint8) ([]byte, bool) {
	msg, err := c.t.Recv(from)
	if err != nil {
		c.failTransport("receive from", from, step, err)
		return nil, false
	}
	h, err := parseHeader(msg)
	if err != nil {
		c.fail(codeMismatch, ErrMismatch, "message from rank %d: %v", from, err)
		return nil, false
	}
	if h.flags&flagSkew != 0 {
		c.skew = true
	}
	want := c.header(step)
	h.code, want.code = 0, 0
	if !sameCall(h, want) {
		c.skew = true
		c.fail(codeMismatch, ErrMismatch, "rank %d sent %s, rank %d is in %s", from, h.call(), c.rank, want.call())
		return nil, false
	}
	if code := msg[1]; code != codeOK {
		body := msg[hdrLen:]
		if len(body) < 4 {
			c.fail(codeMismatch, ErrMismatch, "malformed failure report from rank %d", from)
			return nil, false
		}
		if c.err == nil {
			c.err = &Error{Call: c.h.kind.String(), Rank: int(binary.LittleEndian.Uint32(body)),
				Reason: clip(string(body[4:])), Err: codeErr(code)}
			c.code = code
		}
		return nil, false
	}
	if c.err != nil {
		return nil, false
	}
	return msg, true
}

// recvBody is recv for a message whose body must be exactly size bytes.
func (c *call) recvBody(from int, step uint8, size int) ([]byte, bool) {
	msg, ok := c.recv(from, step)
	if !ok {
		return nil, false
	}
	if len(msg)-hdrLen != size {
		c.fail(codeMismatch, ErrMismatch, "rank %d sent %d bytes in %s, want %d", from, len(msg)-hdrLen, stepName(step), size)
		return nil, false
	}
	return msg[hdrLen:], true
}

// Binomial trees over ranks relative to the root (vr 0 is the root): the
// parent of vr is vr with its lowest set bit cleared, and its children are
// vr+m for the powers of two m below that bit (below size for the root).

func parent(vr int) int { return vr & (vr - 1) }

// span is the lowest set bit of vr, or for the root the smallest power of
// two not below size: vr's subtree is [vr, vr+span) ∩ [0, size).
func span(vr, size int) int {
	if vr == 0 {
		return 1 << bits.Len(uint(size-1))
	}
	return vr & -vr
}

// pow2 returns the largest power of two not above n, and log2 of it.
func pow2(n int) (p, k int) {
	k = bits.Len(uint(n)) - 1
	return 1 << k, k
}

// clip makes a failure description fit in a message: valid UTF-8 of at
// most maxReason bytes.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxReason {
		s = s[:maxReason]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}
