package coherence

import (
	"fmt"
	"slices"
)

// Node is one rank's protocol state: its local access to every page, its
// outstanding requests, and, for the pages and locks it is home of, the
// directory. It is not safe for concurrent use: one driver goroutine owns it.
type Node struct {
	self, size int
	lost       []bool // lost[r]: PeerLost(r) was called

	pages map[Page]*pageState // this rank's view, as requester and holder
	dir   map[Page]*dirEntry  // pages homed here
	seq   uint64              // last transaction number handed out here

	locks   map[uint32]lockState  // this rank's locks, as requester
	lockDir map[uint32]*lockEntry // locks homed here

	selfq      []Msg // messages to self, handled before the entry point returns
	acts       []Action
	fillWanted bool // a data Fill is in acts: Ready must run before the next Step
}

// pageState is the requester/holder side of one page at one rank.
type pageState struct {
	access    Access
	pending   Access // the access asked for by the REQ in flight; None: none
	wantWrite bool   // a write fault came while a read request was in flight
	lastSeq   uint64 // the last transaction for this page that ended here
}

// dirEntry is the home's record of one page.
type dirEntry struct {
	owner  int     // rank holding the latest data; -1: none (all zeros) or lost
	copies rankSet // ranks holding a copy (the owner's included)
	lostBy int     // >= 0: the data was lost with this rank; requests fail
	busy   *txn
	queue  []request
}

type request struct {
	from   int
	access Access
}

type phase uint8

const (
	phaseInv   phase = iota + 1 // waiting for INVACKs
	phaseData                   // data or grant on its way; waiting for DONE
	phaseError                  // ERROR sent; waiting for DONE
)

func (ph phase) String() string {
	switch ph {
	case phaseInv:
		return "inv"
	case phaseData:
		return "data"
	case phaseError:
		return "error"
	}
	return fmt.Sprintf("phase(%d)", uint8(ph))
}

type supplyKind uint8

const (
	supplyZero  supplyKind = iota + 1 // home sends PAGE zero
	supplyGrant                       // home sends GRANT (requester holds a current copy)
	supplyData                        // supplier sends PAGE with data (FWD, or the home itself)
)

// txn is the transaction a home is running for one page.
type txn struct {
	seq      uint64
	req      int
	access   Access
	phase    phase
	supply   supplyKind
	supplier int     // for supplyData; -1 otherwise
	acks     rankSet // INVACKs still awaited
	dataSent bool    // PAGE/GRANT/FWD went out: the requester may have installed it
	failed   int     // >= 0: the lost rank that failed the transaction
	failRole Role
	reqLost  bool // the requester was lost
}

func (t *txn) String() string {
	return fmt.Sprintf("txn{seq=%d req=%d %s phase=%s supply=%d supplier=%d acks=%s sent=%t failed=%d reqLost=%t}",
		t.seq, t.req, t.access, t.phase, t.supply, t.supplier, t.acks, t.dataSent, t.failed, t.reqLost)
}

func (t *txn) fail(rank int, role Role) {
	if t.failed < 0 {
		t.failed, t.failRole = rank, role
	}
}

func (d *dirEntry) String() string {
	s := fmt.Sprintf("dir{owner=%d copies=%s lostBy=%d queue=%v", d.owner, d.copies, d.lostBy, d.queue)
	if d.busy != nil {
		s += " " + d.busy.String()
	}
	return s + "}"
}

// NewNode returns the state of rank self in a world of size ranks: no page
// accessible, every page all zeros, no lock held.
func NewNode(self, size int) *Node {
	if size < 1 || self < 0 || self >= size {
		panic(fmt.Sprintf("coherence: NewNode(%d, %d): rank out of range", self, size))
	}
	return &Node{
		self:    self,
		size:    size,
		lost:    make([]bool, size),
		pages:   make(map[Page]*pageState),
		dir:     make(map[Page]*dirEntry),
		locks:   make(map[uint32]lockState),
		lockDir: make(map[uint32]*lockEntry),
	}
}

// Self returns this node's rank.
func (n *Node) Self() int { return n.self }

// Size returns the number of ranks.
func (n *Node) Size() int { return n.size }

// Home returns the rank that is home of page p: p % size.
func (n *Node) Home(p Page) int { return int(uint64(p) % uint64(n.size)) }

// LockHome returns the rank that is home of lock id: id % size.
func (n *Node) LockHome(id uint32) int { return int(uint64(id) % uint64(n.size)) }

// Access returns this rank's current access to page p, as the actions
// returned so far leave it.
func (n *Node) Access(p Page) Access {
	if st := n.pages[p]; st != nil {
		return st.access
	}
	return None
}

// Ready returns the actions to carry out, in order, and forgets them.
func (n *Node) Ready() []Action {
	acts := n.acts
	n.acts = nil
	n.fillWanted = false
	return acts
}

// Fault reports an application fault on page p: a read, or a write if
// write is set. If the page is already accessible enough, Resolve follows at
// once; otherwise Resolve (or Fail) follows when the request is answered.
func (n *Node) Fault(p Page, write bool) {
	need := Read
	if write {
		need = Write
	}
	st := n.page(p)
	switch {
	case st.access >= need:
		n.emit(Resolve{Page: p})
	case n.lost[n.Home(p)]:
		n.emit(Fail{Page: p, Err: &PeerLostError{Page: p, Rank: n.Home(p), Role: RoleHome}})
	case st.pending == None:
		st.pending = need
		n.send(Msg{Type: MsgReq, To: n.Home(p), Page: p, Access: need})
	case st.pending == Read && need == Write:
		st.wantWrite = true
	}
	n.flush()
}

// Step hands the node a message from a peer. Messages from a rank already
// reported lost are ignored. If Ready holds a Fill with data from an earlier
// message, Step panics: the driver must carry out Ready between messages.
func (n *Node) Step(m Msg) {
	if m.To != n.self || m.From == n.self || m.From < 0 || m.From >= n.size {
		panic(fmt.Sprintf("coherence: rank %d: Step(%v): not a message from a peer to this rank", n.self, m))
	}
	if n.fillWanted {
		panic(fmt.Sprintf("coherence: rank %d: Step(%v) before Ready: a Fill still needs the previous message's data", n.self, m))
	}
	if n.lost[m.From] {
		return
	}
	n.dispatch(m)
	n.flush()
}

// PeerLost tells the node that rank was lost. Every request that can no
// longer complete fails (Fail, LockFailed, ERROR to remote requesters).
func (n *Node) PeerLost(rank int) {
	if rank < 0 || rank >= n.size || rank == n.self {
		panic(fmt.Sprintf("coherence: rank %d: PeerLost(%d): not a peer", n.self, rank))
	}
	if n.lost[rank] {
		return
	}
	n.lost[rank] = true

	// Our own faults on pages homed at the lost rank.
	for _, p := range sortedKeys(n.pages) {
		st := n.pages[p]
		if st.pending != None && n.Home(p) == rank {
			st.pending, st.wantWrite = None, false
			n.emit(Fail{Page: p, Err: &PeerLostError{Page: p, Rank: rank, Role: RoleHome}})
		}
	}
	// Pages homed here.
	for _, p := range sortedKeys(n.dir) {
		n.homeLost(p, n.dir[p], rank)
	}
	n.locksLost(rank)
	n.flush()
}

func sortedKeys[K uint32 | Page, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (n *Node) emit(a Action) {
	if f, ok := a.(Fill); ok && !f.Zero {
		n.fillWanted = true
	}
	n.acts = append(n.acts, a)
}

// send queues m for m.To. Messages to self never become actions: they are
// handled, in order, before the current entry point returns. Messages to a
// lost rank are dropped.
func (n *Node) send(m Msg) {
	m.From = n.self
	switch {
	case m.To == n.self:
		n.selfq = append(n.selfq, m)
	case !n.lost[m.To]:
		n.emit(Send{Msg: m})
	}
}

func (n *Node) flush() {
	for len(n.selfq) > 0 {
		m := n.selfq[0]
		n.selfq = n.selfq[1:]
		n.dispatch(m)
	}
	n.selfq = nil
}

func (n *Node) dispatch(m Msg) {
	switch m.Type {
	case MsgReq:
		d := n.homeEntry(m)
		d.queue = append(d.queue, request{from: m.From, access: m.Access})
		n.startNext(m.Page, d)
	case MsgFwd:
		n.onFwd(m)
	case MsgPage, MsgGrant:
		n.onPage(m)
	case MsgInv:
		n.onInv(m)
	case MsgInvAck:
		n.onInvAck(m)
	case MsgDone:
		n.onDone(m)
	case MsgError:
		n.onError(m)
	case MsgLock, MsgUnlock:
		n.onLockHome(m)
	case MsgLockGrant, MsgLockError:
		n.onLockReply(m)
	default:
		n.fatalf("unknown message %v", m)
	}
}

func (n *Node) fatalf(format string, args ...any) {
	panic(fmt.Sprintf("coherence: rank %d: ", n.self) + fmt.Sprintf(format, args...))
}

func (n *Node) page(p Page) *pageState {
	st := n.pages[p]
	if st == nil {
		st = &pageState{}
		n.pages[p] = st
	}
	return st
}

func (st *pageState) String() string {
	return fmt.Sprintf("page{access=%s pending=%s wantWrite=%t lastSeq=%d}", st.access, st.pending, st.wantWrite, st.lastSeq)
}

// ---- requester and holder side ----

// stale reports whether a reply for page p belongs to a transaction this
// rank already ended (failed by ERROR, or by the loss of the page's home).
func (n *Node) stale(st *pageState, m Msg) bool {
	return m.Seq <= st.lastSeq || (st.pending == None && n.lost[n.Home(m.Page)])
}

func (n *Node) onPage(m Msg) {
	st := n.page(m.Page)
	if n.stale(st, m) {
		return
	}
	if st.pending == None || m.Access != st.pending {
		n.fatalf("%v for %v", m, st)
	}
	if m.Type == MsgGrant {
		if st.access != Read || m.Access != Write {
			n.fatalf("%v for %v: only a current read copy can be upgraded", m, st)
		}
		n.emit(Protect{Page: m.Page, From: Read, To: Write})
	} else {
		if st.access != None || m.Zero == m.WithData || (m.WithData && m.From == n.self) {
			n.fatalf("%v for %v", m, st)
		}
		n.emit(Fill{Page: m.Page, Access: m.Access, Zero: m.Zero})
	}
	st.access, st.pending, st.lastSeq = m.Access, None, m.Seq
	n.send(Msg{Type: MsgDone, To: n.Home(m.Page), Page: m.Page, Seq: m.Seq, Access: m.Access})
	n.emit(Resolve{Page: m.Page})
	if st.wantWrite {
		st.wantWrite = false
		if st.access < Write {
			st.pending = Write
			n.send(Msg{Type: MsgReq, To: n.Home(m.Page), Page: m.Page, Access: Write})
		}
	}
}

func (n *Node) onError(m Msg) {
	st := n.page(m.Page)
	if n.stale(st, m) {
		return
	}
	if st.pending == None {
		n.fatalf("%v for %v", m, st)
	}
	st.pending, st.wantWrite, st.lastSeq = None, false, m.Seq
	n.emit(Fail{Page: m.Page, Err: &PeerLostError{Page: m.Page, Rank: m.Lost, Role: m.Role}})
	n.send(Msg{Type: MsgDone, To: n.Home(m.Page), Page: m.Page, Seq: m.Seq, Access: None})
}

// onFwd supplies the page to m.Requester. Write access is revoked before
// the Send, so the data the driver reads cannot change any more.
func (n *Node) onFwd(m Msg) {
	st := n.pages[m.Page]
	if st == nil || st.access == None || m.Requester == n.self || m.From != n.Home(m.Page) {
		n.fatalf("%v: no copy to supply (%v)", m, st)
	}
	if st.access == Write {
		n.emit(Protect{Page: m.Page, From: Write, To: Read})
		st.access = Read
	}
	n.send(Msg{Type: MsgPage, To: m.Requester, Page: m.Page, Seq: m.Seq, Access: m.Access, WithData: true})
	if m.Access == Write {
		n.emit(Protect{Page: m.Page, From: Read, To: None})
		st.access = None
	}
}

func (n *Node) onInv(m Msg) {
	st := n.pages[m.Page]
	if st == nil || st.access != Read || m.From != n.Home(m.Page) {
		n.fatalf("%v: no read copy to invalidate (%v)", m, st)
	}
	n.emit(Protect{Page: m.Page, From: Read, To: None})
	st.access = None
	n.send(Msg{Type: MsgInvAck, To: m.From, Page: m.Page, Seq: m.Seq})
}

// ---- home side ----

func (n *Node) homeEntry(m Msg) *dirEntry {
	if n.Home(m.Page) != n.self {
		n.fatalf("%v: page p%d is homed at rank %d", m, m.Page, n.Home(m.Page))
	}
	d := n.dir[m.Page]
	if d == nil {
		d = &dirEntry{owner: -1, lostBy: -1, copies: newRankSet(n.size)}
		n.dir[m.Page] = d
	}
	return d
}

// current returns the page's directory entry and its running transaction,
// checking that m belongs to it.
func (n *Node) current(m Msg) (*dirEntry, *txn) {
	d := n.dir[m.Page]
	if d == nil || d.busy == nil || d.busy.seq != m.Seq {
		n.fatalf("%v matches no running transaction (%v)", m, d)
	}
	return d, d.busy
}

// startNext starts the next queued request for p if none is running.
func (n *Node) startNext(p Page, d *dirEntry) {
	if d.busy != nil || len(d.queue) == 0 {
		return
	}
	r := d.queue[0]
	d.queue = d.queue[1:]
	n.seq++
	t := &txn{seq: n.seq, req: r.from, access: r.access, supplier: -1, failed: -1, acks: newRankSet(n.size)}
	d.busy = t
	if d.lostBy >= 0 {
		t.fail(d.lostBy, RoleOwner)
		n.errorPhase(p, t)
		return
	}
	hasCopy := d.copies.has(r.from)
	if r.access == Read && hasCopy {
		n.fatalf("p%d: read request from rank %d, which holds a copy (%v)", p, r.from, d)
	}
	switch {
	case r.access == Write && hasCopy:
		t.supply = supplyGrant
	case d.owner < 0:
		t.supply = supplyZero
	case d.copies.has(n.self):
		t.supply, t.supplier = supplyData, n.self
	default:
		t.supply, t.supplier = supplyData, d.owner
	}
	t.phase = phaseInv
	if r.access == Write {
		for _, c := range d.copies.ranks() {
			if c != t.req && c != t.supplier {
				t.acks.add(c)
				n.send(Msg{Type: MsgInv, To: c, Page: p, Seq: t.seq})
			}
		}
	}
	if t.acks.len() == 0 {
		n.afterInv(p, d, t)
	}
}

// afterInv runs once every awaited INVACK is in (or its sender lost).
func (n *Node) afterInv(p Page, d *dirEntry, t *txn) {
	switch {
	case t.reqLost:
		n.finishReqLost(p, d, t)
	case t.failed >= 0:
		n.errorPhase(p, t)
	default:
		n.dataPhase(p, t)
	}
}

func (n *Node) dataPhase(p Page, t *txn) {
	t.phase, t.dataSent = phaseData, true
	switch t.supply {
	case supplyZero:
		n.send(Msg{Type: MsgPage, To: t.req, Page: p, Seq: t.seq, Access: t.access, Zero: true})
	case supplyGrant:
		n.send(Msg{Type: MsgGrant, To: t.req, Page: p, Seq: t.seq, Access: Write})
	case supplyData:
		// To self this is handled like a FWD from a peer: same order.
		n.send(Msg{Type: MsgFwd, To: t.supplier, Page: p, Seq: t.seq, Access: t.access, Requester: t.req})
	}
}

func (n *Node) errorPhase(p Page, t *txn) {
	t.phase = phaseError
	n.send(Msg{Type: MsgError, To: t.req, Page: p, Seq: t.seq, Access: t.access, Lost: t.failed, Role: t.failRole})
}

func (n *Node) onInvAck(m Msg) {
	d, t := n.current(m)
	if t.phase != phaseInv || !t.acks.has(m.From) {
		n.fatalf("%v not awaited by %v", m, d)
	}
	t.acks.del(m.From)
	d.copies.del(m.From)
	if t.acks.len() == 0 {
		n.afterInv(m.Page, d, t)
	}
}

func (n *Node) onDone(m Msg) {
	d, t := n.current(m)
	if m.From != t.req || !(t.phase == phaseData && m.Access == t.access || t.phase == phaseError) {
		n.fatalf("%v not awaited by %v", m, d)
	}
	switch m.Access {
	case Write:
		d.owner, d.lostBy = m.From, -1
		d.copies.clear()
		d.copies.add(m.From)
	case Read:
		d.copies.add(m.From)
		if d.lostBy >= 0 {
			// The data reached the requester before its supplier was lost.
			d.owner, d.lostBy = m.From, -1
		}
	}
	n.finish(m.Page, d, t.failed)
}

// finishReqLost ends a transaction whose requester was lost.
func (n *Node) finishReqLost(p Page, d *dirEntry, t *txn) {
	if t.dataSent && t.access == Write {
		// Every other copy is gone (invalidated, or dropped by the
		// supplier): the only current data went to the lost requester.
		d.owner = -1
		d.copies.clear()
		if d.lostBy < 0 {
			d.lostBy = t.req
		}
	}
	blame := t.failed
	if blame < 0 {
		blame = t.req
	}
	n.finish(p, d, blame)
}

func (n *Node) finish(p Page, d *dirEntry, blame int) {
	d.busy = nil
	n.fixOwner(p, d, blame)
	n.startNext(p, d)
}

// fixOwner makes the owner a current copy holder again after copies were
// lost or failed transactions invalidated it; with no copy left the data is
// lost, with blame.
func (n *Node) fixOwner(p Page, d *dirEntry, blame int) {
	if d.owner < 0 || d.copies.has(d.owner) {
		return
	}
	if m := d.copies.min(); m >= 0 {
		d.owner = m
		return
	}
	if blame < 0 {
		n.fatalf("p%d: owner %d holds no copy (%v)", p, d.owner, d)
	}
	d.owner, d.lostBy = -1, blame
}

// homeLost updates page p's directory after rank was lost, and fails or
// ends the running transaction if it waited on that rank.
func (n *Node) homeLost(p Page, d *dirEntry, rank int) {
	d.queue = slices.DeleteFunc(d.queue, func(r request) bool { return r.from == rank })
	d.copies.del(rank)
	if d.owner == rank {
		n.fixOwner(p, d, rank)
	}
	t := d.busy
	if t == nil {
		return
	}
	if t.acks.has(rank) {
		t.acks.del(rank)
		t.fail(rank, RoleCopy)
	}
	if t.supplier == rank && t.phase != phaseError {
		t.fail(rank, RoleOwner)
	}
	if t.req == rank {
		t.reqLost = true
	}
	switch t.phase {
	case phaseInv:
		if t.acks.len() == 0 {
			n.afterInv(p, d, t)
		}
	case phaseData:
		if t.reqLost {
			n.finishReqLost(p, d, t)
		} else if t.failed >= 0 {
			n.errorPhase(p, t)
		}
	case phaseError:
		if t.reqLost {
			n.finishReqLost(p, d, t)
		}
	}
}
