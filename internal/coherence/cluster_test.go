package coherence

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// cluster is an in-memory world of Nodes with a driver per rank that does
// exactly what a real driver does with Ready: it keeps each rank's memory
// (page -> access, value), attaches the sender's current value to a Send
// with data, installs it on Fill, and so on. Messages travel on FIFO links,
// one per ordered pair of ranks. The simulation and the script tests both
// drive it through its events (fault, retry, deliver, lock, unlock, kill,
// lost), which are recorded so that a failing run prints a replayable
// script.
type cluster struct {
	n      int
	manual bool // Resolve makes waiting ops runnable; a retry event runs them
	nodes  []*Node
	mem    []map[Page]*cell
	links  [][][]flight // links[from][to], FIFO
	dead   []bool
	told   [][]bool // told[x][l]: rank x was told that l is lost
	killed bool

	truth   map[Page]uint64 // last value written to each page (0: never)
	nextVal uint64
	pages   []Page // pages touched, for the invariant checks

	active []*op // waiting or runnable
	last   map[[2]int]*op

	lockSt   []map[uint32]*simLock
	holder   map[uint32]int // -1 or absent: free
	arrivals map[uint32][]int
	grants   map[uint32][]int

	delivering *flight
	deliverTo  int
	lastActs   [][]Action

	trace     []event
	err       error
	failedOps int
	linkBuf   [][2]int // reused by deliverable
}

type cell struct {
	access Access
	val    uint64
}

type flight struct {
	m   Msg
	val uint64 // the page contents, for a PAGE with data
}

type opState uint8

const (
	opWaiting opState = iota
	opRunnable
	opDone
	opFailed
)

var opStateNames = map[string]opState{"waiting": opWaiting, "runnable": opRunnable, "done": opDone, "failed": opFailed}

func (s opState) String() string {
	for k, v := range opStateNames {
		if v == s {
			return k
		}
	}
	return "?"
}

// op is one application access: a load or a store by rank on page.
type op struct {
	rank  int
	page  Page
	write bool
	state opState
	err   error
}

type simLock struct {
	state string // idle, waiting, held, failed
	err   error
}

type evKind uint8

const (
	evFault evKind = iota
	evRetry
	evDeliver
	evLock
	evUnlock
	evKill
	evLost
)

type event struct {
	kind  evKind
	a, b  int
	page  Page
	write bool
	lock  uint32
}

func (e event) String() string {
	switch e.kind {
	case evFault:
		rw := "read"
		if e.write {
			rw = "write"
		}
		return fmt.Sprintf("fault %d p%d %s", e.a, e.page, rw)
	case evRetry:
		return fmt.Sprintf("retry %d p%d", e.a, e.page)
	case evDeliver:
		return fmt.Sprintf("deliver %d->%d", e.a, e.b)
	case evLock:
		return fmt.Sprintf("lock %d L%d", e.a, e.lock)
	case evUnlock:
		return fmt.Sprintf("unlock %d L%d", e.a, e.lock)
	case evKill:
		return fmt.Sprintf("kill %d", e.a)
	case evLost:
		return fmt.Sprintf("lost %d %d", e.a, e.b)
	}
	return "?"
}

func newCluster(n int, manual bool) *cluster {
	c := &cluster{
		n:        n,
		manual:   manual,
		nodes:    make([]*Node, n),
		mem:      make([]map[Page]*cell, n),
		links:    make([][][]flight, n),
		dead:     make([]bool, n),
		told:     make([][]bool, n),
		truth:    make(map[Page]uint64),
		last:     make(map[[2]int]*op),
		lockSt:   make([]map[uint32]*simLock, n),
		holder:   make(map[uint32]int),
		arrivals: make(map[uint32][]int),
		grants:   make(map[uint32][]int),
		lastActs: make([][]Action, n),
	}
	for r := range n {
		c.nodes[r] = NewNode(r, n)
		c.mem[r] = make(map[Page]*cell)
		c.links[r] = make([][]flight, n)
		c.told[r] = make([]bool, n)
		c.lockSt[r] = make(map[uint32]*simLock)
	}
	return c
}

func (c *cluster) violation(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

// script returns the recorded events as a script that replays them.
func (c *cluster) script() string {
	var b strings.Builder
	mode := ""
	if c.manual {
		mode = " manual"
	}
	fmt.Fprintf(&b, "cluster %d%s\n", c.n, mode)
	for _, e := range c.trace {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// do records and carries out one event, then checks the invariants. A
// panic in a Node becomes the cluster's error.
func (c *cluster) do(e event) (err error) {
	c.trace = append(c.trace, e)
	for r := range c.lastActs {
		c.lastActs[r] = c.lastActs[r][:0]
	}
	defer func() {
		if p := recover(); p != nil {
			c.violation("panic: %v", p)
		}
		err = c.err
	}()
	switch e.kind {
	case evFault:
		c.fault(e.a, e.page, e.write)
	case evRetry:
		c.retry(e.a, e.page)
	case evDeliver:
		c.deliver(e.a, e.b)
	case evLock:
		c.lock(e.a, e.lock)
	case evUnlock:
		c.unlock(e.a, e.lock)
	case evKill:
		c.kill(e.a)
	case evLost:
		c.lost(e.a, e.b)
	}
	if c.err == nil {
		c.check()
	}
	return c.err
}

func (c *cluster) cell(r int, p Page) *cell {
	cl := c.mem[r][p]
	if cl == nil {
		cl = &cell{}
		c.mem[r][p] = cl
	}
	return cl
}

// run carries out rank r's actions until it has none.
func (c *cluster) run(r int) {
	for c.err == nil {
		acts := c.nodes[r].Ready()
		if len(acts) == 0 {
			return
		}
		for _, a := range acts {
			c.lastActs[r] = append(c.lastActs[r], a)
			c.exec(r, a)
		}
	}
}

func (c *cluster) exec(r int, a Action) {
	switch a := a.(type) {
	case Send:
		m := a.Msg
		if m.From != r || m.To == r || m.To < 0 || m.To >= c.n {
			c.violation("rank %d: bad send %v", r, m)
			return
		}
		var val uint64
		if m.WithData {
			cl := c.cell(r, m.Page)
			if cl.access != Read {
				c.violation("rank %d sends p%d's data while its access is %s: write must be revoked first", r, m.Page, cl.access)
				return
			}
			val = cl.val
		}
		if m.Type == MsgLockGrant {
			c.recordGrant(m.Lock, m.To)
		}
		if !c.dead[m.To] {
			c.links[r][m.To] = append(c.links[r][m.To], flight{m: m, val: val})
		}
	case Fill:
		cl := c.cell(r, a.Page)
		if cl.access != None {
			c.violation("rank %d: %v over access %s", r, a, cl.access)
			return
		}
		var val uint64
		if !a.Zero {
			f := c.delivering
			if f == nil || c.deliverTo != r || f.m.Type != MsgPage || !f.m.WithData || f.m.Page != a.Page {
				c.violation("rank %d: %v without a PAGE with data just delivered", r, a)
				return
			}
			val = f.val
		}
		cl.access, cl.val = a.Access, val
	case Protect:
		cl := c.cell(r, a.Page)
		ok := cl.access == a.From && (a.From == Write && a.To == Read || a.From == Read && a.To == Write || a.From != None && a.To == None)
		if !ok {
			c.violation("rank %d: %v but access is %s", r, a, cl.access)
			return
		}
		cl.access = a.To
		if a.To == None {
			cl.val = 0xdeadbeef // dropped: must never be read again
		}
	case Resolve:
		var ready []*op
		for _, o := range c.active {
			if o.rank == r && o.page == a.Page && o.state == opWaiting {
				ready = append(ready, o)
			}
		}
		for _, o := range ready {
			if c.manual {
				o.state = opRunnable
			} else {
				c.try(o)
			}
		}
	case Fail:
		c.checkLostErr(a.Err, a.Page, false)
		for _, o := range c.active {
			if o.rank == r && o.page == a.Page && o.state == opWaiting {
				o.state, o.err = opFailed, a.Err
				c.failedOps++
			}
		}
		c.prune()
	case Granted:
		l := c.lockSt[r][a.Lock]
		if l == nil || l.state != "waiting" {
			c.violation("rank %d: %v but not waiting for it", r, a)
			return
		}
		if h, ok := c.holder[a.Lock]; ok && h >= 0 {
			c.violation("rank %d: %v while rank %d holds it", r, a, h)
			return
		}
		l.state = "held"
		c.holder[a.Lock] = r
		if c.nodes[r].LockHome(a.Lock) == r {
			c.recordGrant(a.Lock, r)
		}
	case LockFailed:
		c.checkLostErr(a.Err, 0, true)
		l := c.lockSt[r][a.Lock]
		if l == nil || l.state != "waiting" {
			c.violation("rank %d: %v but not waiting for it", r, a)
			return
		}
		l.state, l.err = "failed", a.Err
	default:
		c.violation("rank %d: unknown action %T", r, a)
	}
}

// checkLostErr checks that a failure names a lost rank (and the page).
func (c *cluster) checkLostErr(err error, p Page, isLock bool) {
	var pe *PeerLostError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPeerLost) {
		c.violation("failure is not a *PeerLostError: %v", err)
		return
	}
	if !c.dead[pe.Rank] {
		c.violation("failure names rank %d, which is alive: %v", pe.Rank, err)
	}
	want := fmt.Sprintf("page %d: rank %d ", p, pe.Rank)
	if isLock {
		want = fmt.Sprintf("lock %d: rank %d ", pe.Lock, pe.Rank)
	}
	if !strings.Contains(err.Error(), want) || pe.IsLock != isLock {
		c.violation("failure %q does not say %q", err, want)
	}
}

func (c *cluster) recordGrant(id uint32, to int) {
	g := append(c.grants[id], to)
	c.grants[id] = g
	if c.killed {
		return // lost ranks leave the queue: FIFO is checked without losses
	}
	arr := c.arrivals[id]
	if len(g) > len(arr) || arr[len(g)-1] != to {
		c.violation("lock %d granted in order %v, requests arrived at its home in order %v", id, g, arr)
	}
}

func (c *cluster) prune() {
	c.active = slices.DeleteFunc(c.active, func(o *op) bool { return o.state == opDone || o.state == opFailed })
}

// try performs o if the rank's access allows it, else faults.
func (c *cluster) try(o *op) {
	cl := c.cell(o.rank, o.page)
	if o.write && cl.access == Write || !o.write && cl.access >= Read {
		if o.write {
			c.nextVal++
			cl.val = c.nextVal
			c.truth[o.page] = c.nextVal
		} else if cl.val != c.truth[o.page] {
			c.violation("rank %d reads p%d = %d, but the last write was %d", o.rank, o.page, cl.val, c.truth[o.page])
		}
		o.state = opDone
		c.prune()
		return
	}
	o.state = opWaiting
	c.nodes[o.rank].Fault(o.page, o.write)
}

func (c *cluster) fault(r int, p Page, write bool) {
	if c.dead[r] {
		c.violation("fault at dead rank %d", r)
		return
	}
	if !slices.Contains(c.pages, p) {
		c.pages = append(c.pages, p)
	}
	o := &op{rank: r, page: p, write: write}
	c.last[[2]int{r, int(p)}] = o
	c.active = append(c.active, o)
	c.try(o)
	c.run(r)
}

// retry runs the runnable ops of rank r on page p, oldest first.
func (c *cluster) retry(r int, p Page) {
	var ready []*op
	for _, o := range c.active {
		if o.rank == r && o.page == p && o.state == opRunnable {
			ready = append(ready, o)
		}
	}
	if len(ready) == 0 {
		c.violation("retry %d p%d: nothing runnable", r, p)
		return
	}
	for _, o := range ready {
		c.try(o)
	}
	c.run(r)
}

func (c *cluster) deliver(from, to int) {
	q := c.links[from][to]
	if len(q) == 0 || c.dead[to] || c.told[to][from] {
		c.violation("deliver %d->%d: nothing to deliver", from, to)
		return
	}
	f := q[0]
	c.links[from][to] = q[1:]
	if f.m.Type == MsgLock {
		c.arrivals[f.m.Lock] = append(c.arrivals[f.m.Lock], from)
	}
	c.delivering, c.deliverTo = &f, to
	c.nodes[to].Step(f.m)
	c.run(to)
	c.delivering = nil
}

func (c *cluster) lockState(r int, id uint32) *simLock {
	l := c.lockSt[r][id]
	if l == nil {
		l = &simLock{state: "idle"}
		c.lockSt[r][id] = l
	}
	return l
}

func (c *cluster) lock(r int, id uint32) {
	l := c.lockState(r, id)
	if c.dead[r] || l.state == "waiting" || l.state == "held" {
		c.violation("lock %d L%d: rank is dead, waiting or holding", r, id)
		return
	}
	l.state, l.err = "waiting", nil
	if c.nodes[r].LockHome(id) == r {
		c.arrivals[id] = append(c.arrivals[id], r)
	}
	c.nodes[r].Lock(id)
	c.run(r)
}

func (c *cluster) unlock(r int, id uint32) {
	l := c.lockState(r, id)
	if c.dead[r] || l.state != "held" {
		c.violation("unlock %d L%d: not held", r, id)
		return
	}
	l.state = "idle"
	c.holder[id] = -1
	c.nodes[r].Unlock(id)
	c.run(r)
}

func (c *cluster) kill(r int) {
	if c.dead[r] {
		c.violation("kill %d: already dead", r)
		return
	}
	c.dead[r], c.killed = true, true
	for x := range c.n {
		c.links[x][r] = nil
	}
	c.active = slices.DeleteFunc(c.active, func(o *op) bool { return o.rank == r })
}

func (c *cluster) lost(x, l int) {
	if !c.dead[l] || c.dead[x] || c.told[x][l] {
		c.violation("lost %d %d: rank %d is not dead, or rank %d is dead or was told", x, l, l, x)
		return
	}
	c.links[l][x] = nil // what was not delivered before the loss never will be
	c.told[x][l] = true
	c.nodes[x].PeerLost(l)
	c.run(x)
}

// check verifies the invariants that hold after every event.
func (c *cluster) check() {
	for _, p := range c.pages {
		writers, readers := 0, 0
		for r := range c.n {
			if c.dead[r] {
				continue
			}
			cl := c.mem[r][p]
			acc := None
			if cl != nil {
				acc = cl.access
			}
			if got := c.nodes[r].Access(p); got != acc {
				c.violation("rank %d p%d: Node.Access says %s, the driver's memory %s", r, p, got, acc)
			}
			switch acc {
			case Write:
				writers++
			case Read:
				readers++
			}
			if acc >= Read && cl.val != c.truth[p] {
				c.violation("rank %d p%d: copy holds %d, the last write was %d", r, p, cl.val, c.truth[p])
			}
		}
		if writers > 1 || writers == 1 && readers > 0 {
			c.violation("p%d: %d writers and %d readers at once", p, writers, readers)
		}
	}
}

// deliverable lists the links whose head message can be delivered.
func (c *cluster) deliverable() [][2]int {
	ls := c.linkBuf[:0]
	defer func() { c.linkBuf = ls }()
	for from := range c.n {
		for to := range c.n {
			if len(c.links[from][to]) > 0 && !c.dead[to] && !c.told[to][from] {
				ls = append(ls, [2]int{from, to})
			}
		}
	}
	return ls
}

// pendingLost lists the (survivor, dead rank) pairs not yet told.
func (c *cluster) pendingLost() [][2]int {
	if !c.killed {
		return nil
	}
	var ls [][2]int
	for x := range c.n {
		for l := range c.n {
			if !c.dead[x] && c.dead[l] && !c.told[x][l] {
				ls = append(ls, [2]int{x, l})
			}
		}
	}
	return ls
}

// final checks a drained cluster: nothing in flight, every fault and lock
// request answered, every directory at a live home matching the copies.
func (c *cluster) final() error {
	if len(c.deliverable()) > 0 || len(c.pendingLost()) > 0 {
		c.violation("not drained")
	}
	for _, o := range c.active {
		c.violation("rank %d: %s p%d never completed (state %s)", o.rank, map[bool]string{false: "read", true: "write"}[o.write], o.page, o.state)
	}
	for r := range c.n {
		if c.dead[r] {
			continue
		}
		for id, l := range c.lockSt[r] {
			if l.state == "waiting" || l.state == "held" {
				c.violation("rank %d: lock %d still %s", r, id, l.state)
			}
		}
		nd := c.nodes[r]
		for p, st := range nd.pages {
			if st.pending != None || st.wantWrite {
				c.violation("rank %d p%d: request still pending: %v", r, p, st)
			}
		}
		for p, d := range nd.dir {
			if d.busy != nil || len(d.queue) > 0 {
				c.violation("rank %d p%d: home still busy: %v", r, p, d)
				continue
			}
			holders := newRankSet(c.n)
			for x := range c.n {
				if !c.dead[x] && c.mem[x][p] != nil && c.mem[x][p].access >= Read {
					holders.add(x)
					if c.mem[x][p].access == Write && (d.owner != x || d.copies.len() != 1) {
						c.violation("p%d: rank %d writes but the directory says %v", p, x, d)
					}
				}
			}
			if !slices.Equal(holders, d.copies) {
				c.violation("p%d: copies at %v, the directory says %v", p, holders, d)
			}
			switch {
			case d.owner >= 0 && !d.copies.has(d.owner):
				c.violation("p%d: owner holds no copy: %v", p, d)
			case d.lostBy >= 0 && (d.owner >= 0 || d.copies.len() > 0):
				c.violation("p%d: lost yet has copies: %v", p, d)
			case d.owner < 0 && d.lostBy < 0 && c.truth[p] != 0:
				c.violation("p%d: directory says all zeros, last write was %d: %v", p, c.truth[p], d)
			}
		}
		for id, e := range nd.lockDir {
			if e.holder >= 0 || len(e.queue) > 0 {
				c.violation("rank %d lock %d: home still has holder %d queue %v", r, id, e.holder, e.queue)
			}
		}
	}
	return c.err
}
