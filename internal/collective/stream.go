package collective

// Streams: a vector part sent from one rank to another in one step of an
// algorithm travels as a stream of segments of at most segBytes, each a
// message with its own header; every segment but the last has flagMore.
// A receiver takes segments until the last one whatever it expected, so
// the message streams stay in step when ranks disagree on the vector
// length (and so on the number of segments), and a failing rank ends its
// stream with a single failure report. A part shorter than segBytes is one
// message without flags, as before streams.
//
// Segments let a rank combine one segment while the next is on its way,
// keep what the transport buffers for a message that arrives before its
// receive small (pooled), and, on a transport that receives into a
// caller's buffer (IntoReceiver), let every receive go into memory the
// call reuses: a scratch buffer kept on the Sequenced transport, or the
// result itself.

// segBytes is the largest body of a segment: with its header a segment
// is 64 KiB, the largest message the rank engine buffers in pooled memory
// when it arrives before its receive. Measured against 32 and 16 KiB and
// against sending 1 or 4 segments ahead (1 MiB Allreduce, N=2 and 4 over
// TCP, loaded machine): 64 KiB, 2 ahead used the least CPU and time. A
// variable so that tests can make streams of many segments from small
// vectors.
var segBytes = 64<<10 - hdrLen

// streamAhead is how many segments of its own stream a rank sends in an
// exchange before it receives the first of its partner's.
const streamAhead = 2

// smallRecv is room for a header and the longest failure report, so that
// a failure received into scratch is never cut.
const smallRecv = hdrLen + 4 + maxReason

// scratch returns a buffer of at least n bytes for one receive, kept on a
// Sequenced transport from call to call.
func (c *call) scratch(n int) []byte {
	p := &c.buf
	if c.seqd != nil {
		p = &c.seqd.scratch
	}
	n = max(n, smallRecv)
	if cap(*p) < n {
		*p = make([]byte, n)
	}
	return (*p)[:n]
}

// recvSeg receives a message of step from rank from whose body must be
// exactly size bytes, into scratch where the transport can: the body is
// valid until the next receive. more is the segment's flagMore.
func (c *call) recvSeg(from int, step uint8, size int) (body []byte, more, ok bool) {
	msg, n, more, ok := c.recvMsg(from, step, c.scratch(hdrLen+size))
	if !ok {
		return nil, more, false
	}
	if n-hdrLen != size {
		c.fail(codeMismatch, ErrMismatch, "rank %d sent %d bytes in %s, want %d", from, n-hdrLen, stepName(step), size)
		return nil, more, false
	}
	return msg[hdrLen:n], more, true
}

// recvSegAt is recvSeg with the body landing in buf[off:end]: received in
// place where the transport can (the hdrLen bytes before off are saved and
// put back, as sendAt does), else copied there.
func (c *call) recvSegAt(from int, step uint8, buf []byte, off, end int) (more, ok bool) {
	size := end - off
	if s := c.seqd; s == nil || s.into == nil || off < hdrLen || hdrLen+size < smallRecv || c.err != nil {
		body, more, ok := c.recvSeg(from, step, size)
		if ok {
			copy(buf[off:end], body)
		}
		return more, ok
	}
	var saved [hdrLen]byte
	dst := buf[off-hdrLen : end]
	copy(saved[:], dst)
	msg, n, more, ok := c.recvMsg(from, step, dst)
	if ok && n-hdrLen != size {
		c.fail(codeMismatch, ErrMismatch, "rank %d sent %d bytes in %s, want %d", from, n-hdrLen, stepName(step), size)
		ok = false
	}
	if ok && &msg[0] != &dst[0] {
		copy(buf[off:end], msg[hdrLen:]) // (a message taken early, from the stash)
	}
	copy(dst, saved[:])
	return more, ok
}

// combineFunc combines src into dst, encoded vectors of the call's element
// type and op (combineWire of the call's T).
type combineFunc func(dst, src []byte, e elemType, op Op)

// outStream is a stream being sent: buf[off:hi] is still to go.
type outStream struct {
	to       int
	step     uint8
	buf      []byte
	off, hi  int
	seg      int
	started  bool
	finished bool
}

// segLen is segBytes rounded down to whole elements of sz bytes.
func segLen(sz int) int { return max(segBytes/sz, 1) * sz }

func (c *call) sendNext(o *outStream) {
	if c.err != nil && o.started {
		// A failure seen mid-stream: end it with the failure report.
		c.sendSeg(o.to, o.step, o.buf, o.off, o.off, false)
		o.finished = true
		return
	}
	end := min(o.off+o.seg, o.hi)
	more := end < o.hi && c.err == nil
	c.sendSeg(o.to, o.step, o.buf, o.off, end, more)
	o.off, o.started, o.finished = end, true, !more
}

// inStream is a stream being received into buf[off:hi], combined with
// comb(dst, src) if not nil.
type inStream struct {
	from     int
	step     uint8
	buf      []byte
	lo, off  int
	hi       int
	seg      int
	comb     combineFunc
	finished bool
}

func (c *call) recvNext(s *inStream) {
	want := min(s.seg, s.hi-s.off)
	var more, ok bool
	if s.comb != nil {
		var body []byte
		if body, more, ok = c.recvSeg(s.from, s.step, want); ok {
			s.comb(s.buf[s.off:s.off+want], body, c.h.elem, c.h.op)
		}
	} else {
		more, ok = c.recvSegAt(s.from, s.step, s.buf, s.off, s.off+want)
	}
	if ok {
		s.off += want
	}
	s.finished = !more
	if s.finished && ok && s.off != s.hi {
		c.fail(codeMismatch, ErrMismatch, "rank %d sent %d bytes in %s, want %d", s.from, s.off-s.lo, stepName(s.step), s.hi-s.lo)
	}
}

// sendStream sends buf[lo:hi] (lo ≥ hdrLen: room for the header) to rank
// to as the stream of step, in segments of whole elements of sz bytes.
func (c *call) sendStream(to int, step uint8, buf []byte, lo, hi, sz int) {
	o := outStream{to: to, step: step, buf: buf, off: lo, hi: hi, seg: segLen(sz)}
	for !o.finished && !c.broken {
		c.sendNext(&o)
	}
}

// recvStream receives rank from's stream of step into buf[lo:hi] (or
// combines it into it with comb): it must hold hi-lo bytes in all.
func (c *call) recvStream(from int, step uint8, buf []byte, lo, hi, sz int, comb combineFunc) {
	s := inStream{from: from, step: step, buf: buf, lo: lo, off: lo, hi: hi, seg: segLen(sz), comb: comb}
	for !s.finished {
		c.recvNext(&s)
	}
}

// exchange sends buf[slo:shi] to peer and receives peer's stream of the
// same step into buf[rlo:rhi] (combining with comb, if not nil),
// interleaved: streamAhead segments go out before the first comes in, then
// one after each received, so that neither rank waits for the other's
// whole stream and the combining overlaps the transfer.
func (c *call) exchange(peer int, step uint8, buf []byte, slo, shi, rlo, rhi, sz int, comb combineFunc) {
	seg := segLen(sz)
	o := outStream{to: peer, step: step, buf: buf, off: slo, hi: shi, seg: seg}
	s := inStream{from: peer, step: step, buf: buf, lo: rlo, off: rlo, hi: rhi, seg: seg, comb: comb}
	for i := 0; i < streamAhead && !o.finished && !c.broken; i++ {
		c.sendNext(&o)
	}
	for !s.finished || (!o.finished && !c.broken) {
		if !s.finished {
			c.recvNext(&s)
		}
		if !o.finished && !c.broken {
			c.sendNext(&o)
		}
	}
}
