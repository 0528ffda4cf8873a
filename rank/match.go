package rank

// The matching engine's queues. See ENGINE.md for the design.
//
// Every arrived message that no receive was waiting for (an unexpected
// message) is on four intrusive lists at once: its (context, source, tag),
// (context, source, any), (context, any, tag) and (context, any, any)
// list, each in arrival order. A receive for a pattern takes the head of
// the one list named by its pattern: O(1), and AnySource takes the earliest
// arrival because the any-source lists are in arrival order.
//
// Posted receives are on one list each, the one named by their pattern.
// An arriving (context, source, tag) looks at the heads of the four lists
// that can match it and takes the one posted first. Lists are kept in maps
// keyed by the pattern and dropped when empty. The one posted receive when
// there is only one (a blocking Recv, the usual case) is kept aside in
// solo, on no list: matching it is a comparison, not four map lookups
// (a map operation with its key hash is 40 ns here, four to six of them
// per message). A second post puts solo on its list first.

// qkey names a list: a context and a source and tag, either of which may
// be -1 (any).
type qkey struct {
	ctx uint32
	src int32
	tag int64
}

// The four memberships of an unexpected message.
const (
	qST = iota // (source, tag)
	qS         // (source, any)
	qT         // (any, tag)
	qA         // (any, any)
	nq
)

func keyFor(kind int, ctx uint32, src, tag int) qkey {
	switch kind {
	case qST:
		return qkey{ctx, int32(src), int64(tag)}
	case qS:
		return qkey{ctx, int32(src), -1}
	case qT:
		return qkey{ctx, -1, int64(tag)}
	}
	return qkey{ctx, -1, -1}
}

// kindOf is the list a receive pattern reads.
func kindOf(src, tag int) int {
	switch {
	case src >= 0 && tag >= 0:
		return qST
	case src >= 0:
		return qS
	case tag >= 0:
		return qT
	}
	return qA
}

// msg is a message whose header has arrived: complete, still arriving, or
// stalled (header parsed, body left in the socket: the unexpected-memory
// bound).
type msg struct {
	ctx   uint32
	src   int // world rank
	tag   int
	total int    // payload bytes
	seq   uint64 // arrival order

	buf      []byte // the payload, for an unexpected message (nil while stalled)
	pooled   bool   // buf came from the pool
	complete bool
	stalled  bool
	req      *Request // the receive that took it while it was still arriving
	direct   bool     // the payload goes straight into req's buffer
	filed    bool     // on the unexpected lists
	counted  bool     // buf counts against the unexpected-memory bound

	next, prev [nq]*msg
	lists      [nq]*mlist
}

type mlist struct {
	head, tail *msg
}

type rlist struct {
	head, tail *Request
}

// matcher is the matching state; every method needs engine.mu.
type matcher struct {
	unexp  map[qkey]*mlist
	posted map[qkey]*rlist
	solo   *Request // the only posted receive, on no list (nil: none, or several)
	nposts int      // posted receives, solo included
	free   []*mlist
	freeR  []*rlist
	seq    uint64 // arrival numbers
	pseq   uint64 // posting numbers

	// Operation counts, for the tests of O(1) matching.
	steps uint64
}

func newMatcher() matcher {
	return matcher{unexp: map[qkey]*mlist{}, posted: map[qkey]*rlist{}}
}

func (q *matcher) mlistFor(k qkey) *mlist {
	l := q.unexp[k]
	if l == nil {
		if n := len(q.free); n > 0 {
			l, q.free = q.free[n-1], q.free[:n-1]
		} else {
			l = &mlist{}
		}
		q.unexp[k] = l
	}
	return l
}

// file puts m on its four unexpected lists.
func (q *matcher) file(m *msg) {
	for k := 0; k < nq; k++ {
		l := q.mlistFor(keyFor(k, m.ctx, m.src, m.tag))
		m.lists[k] = l
		m.prev[k] = l.tail
		m.next[k] = nil
		if l.tail != nil {
			l.tail.next[k] = m
		} else {
			l.head = m
		}
		l.tail = m
	}
	m.filed = true
}

// unfile takes m off its lists.
func (q *matcher) unfile(m *msg) {
	if !m.filed {
		return
	}
	for k := 0; k < nq; k++ {
		l := m.lists[k]
		if m.prev[k] != nil {
			m.prev[k].next[k] = m.next[k]
		} else {
			l.head = m.next[k]
		}
		if m.next[k] != nil {
			m.next[k].prev[k] = m.prev[k]
		} else {
			l.tail = m.prev[k]
		}
		m.next[k], m.prev[k], m.lists[k] = nil, nil, nil
		if l.head == nil {
			delete(q.unexp, keyFor(k, m.ctx, m.src, m.tag))
			q.free = append(q.free, l)
		}
	}
	m.filed = false
}

// findUnexpected returns the earliest unexpected message matching the
// pattern, or nil.
func (q *matcher) findUnexpected(ctx uint32, src, tag int) *msg {
	q.steps++
	l := q.unexp[keyFor(kindOf(src, tag), ctx, src, tag)]
	if l == nil {
		return nil
	}
	return l.head
}

// soloList is the plist of the solo receive (it is on no list).
var soloList rlist

// post appends r to the list of its pattern (or keeps it as solo).
func (q *matcher) post(r *Request) {
	q.pseq++
	r.pseq = q.pseq
	r.pnext, r.pprev = nil, nil
	q.nposts++
	if q.nposts == 1 {
		q.solo = r
		r.plist = &soloList
		return
	}
	if s := q.solo; s != nil {
		q.solo = nil
		q.list(s)
	}
	q.list(r)
}

// list appends r (numbered) to the list of its pattern.
func (q *matcher) list(r *Request) {
	k := keyFor(kindOf(r.from, r.tag), r.ctx, r.from, r.tag)
	l := q.posted[k]
	if l == nil {
		if n := len(q.freeR); n > 0 {
			l, q.freeR = q.freeR[n-1], q.freeR[:n-1]
		} else {
			l = &rlist{}
		}
		q.posted[k] = l
	}
	r.plist = l
	r.pprev = l.tail
	r.pnext = nil
	if l.tail != nil {
		l.tail.pnext = r
	} else {
		l.head = r
	}
	l.tail = r
}

// unpost takes r off its list.
func (q *matcher) unpost(r *Request) {
	l := r.plist
	if l == nil {
		return
	}
	q.nposts--
	if r == q.solo {
		q.solo, r.plist = nil, nil
		return
	}
	if r.pprev != nil {
		r.pprev.pnext = r.pnext
	} else {
		l.head = r.pnext
	}
	if r.pnext != nil {
		r.pnext.pprev = r.pprev
	} else {
		l.tail = r.pprev
	}
	r.pnext, r.pprev, r.plist = nil, nil, nil
	if l.head == nil {
		delete(q.posted, keyFor(kindOf(r.from, r.tag), r.ctx, r.from, r.tag))
		q.freeR = append(q.freeR, l)
	}
}

// findPosted returns the earliest posted receive that matches a message
// (ctx, src, tag), or nil.
func (q *matcher) findPosted(ctx uint32, src, tag int) *Request {
	q.steps++
	if s := q.solo; s != nil {
		if s.ctx == ctx && (s.from == src || s.from == AnySource) && (s.tag == tag || s.tag == AnyTag) {
			return s
		}
		return nil
	}
	if len(q.posted) == 0 {
		return nil
	}
	var best *Request
	for k := 0; k < nq; k++ {
		l := q.posted[keyFor(k, ctx, src, tag)]
		if l != nil && l.head != nil && (best == nil || l.head.pseq < best.pseq) {
			best = l.head
		}
	}
	return best
}

// postedAll lists every posted receive (solo included), for failing them.
func (q *matcher) postedAll() []*Request {
	var rs []*Request
	if q.solo != nil {
		rs = append(rs, q.solo)
	}
	for _, l := range q.posted {
		for r := l.head; r != nil; r = r.pnext {
			rs = append(rs, r)
		}
	}
	return rs
}
