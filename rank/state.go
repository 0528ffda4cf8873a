package rank

import (
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/internal/deadlock"
)

// The record of the call this rank is blocked in, for mpirun's deadlock
// detector (-deadlock-after) and its -timeout report. It costs the calls
// nothing they did not pay before: point-to-point waits keep their atomic
// record (recvRecord, in fatal.go; the communicator is one more pointer
// store), collectives their blockedIn (one allocation per collective call,
// as before) with the communicator and the collective's number. The rest
// is done only when mpirun asks (STATE, see answerState): the call's
// words, its world ranks, and, once the rank has been blocked for a
// while, a look at its goroutines.

// groups lists the communicators this rank is a member of, for the
// collective counts of a STATE answer.
type groups struct {
	mu   sync.Mutex
	list []*group
}

func (w *World) addGroup(g *group) {
	w.groups.mu.Lock()
	w.groups.list = append(w.groups.list, g)
	w.groups.mu.Unlock()
}

// commID names a communicator the same way on every member: its
// point-to-point context id (0 for the world).
func (g *group) commID() int { return int(g.p2p) }

// enterColl records that the caller entered a collective call of g (one
// more on g's count); the returned func ends it.
func (g *group) enterColl(call func() string) func() {
	seq := g.collSeq.Add(1)
	b := &blockedIn{call: call, since: time.Now(), g: g, seq: seq}
	w := g.w
	w.blocked.Store(b)
	w.callGen.Add(1)
	return func() { w.blocked.CompareAndSwap(b, nil) }
}

// lockWait records that the caller waits in dsm's Mutex.Lock for lock
// id (the memory calls it through dsmhook.WatchLocks); the returned func
// ends the wait. mpirun's deadlock detector sees it as "Lock(id)": a
// rank that waits for a lock while every other rank is blocked or
// finished waits forever.
func (w *World) lockWait(id int) func() {
	b := &blockedIn{call: func() string { return "Lock(" + strconv.Itoa(id) + ")" }, since: time.Now(), lock: id}
	w.blocked.Store(b)
	w.callGen.Add(1)
	return func() { w.blocked.CompareAndSwap(b, nil) }
}

// members lists the world ranks of g (nil: every rank).
func (g *group) members() []int {
	if g.ranks == nil {
		return nil
	}
	return append([]int(nil), g.ranks...)
}

// state describes the call this rank waits in now: ok is false when no
// goroutine waits in a dsmexec call.
func (w *World) state() (c deadlock.Call, since time.Time, ok bool) {
	r := &w.recvRec
	for i := 0; i < 4; i++ { // a record that changed while read is read again
		g0 := r.gen.Load()
		k := r.call.Load()
		if k == 0 {
			break
		}
		from, tag := int(r.from.Load()), int(r.tag.Load())
		s := r.since.Load()
		grp := r.g.Load()
		var reqs []*Request
		if k == callWaitany {
			if p := r.reqs.Load(); p != nil {
				reqs = *p
			}
		}
		if r.gen.Load() != g0 || r.call.Load() != k {
			continue
		}
		c = deadlock.Call{Name: recvCallName(k)}
		comm := 0
		if grp != nil {
			comm = grp.commID()
			from = grp.worldRank(from)
		}
		if k == callWaitany && reqs != nil {
			for _, q := range reqs {
				if q == nil || q.done.Load() || q.g == nil {
					continue
				}
				c.Recvs = append(c.Recvs, deadlock.Match{From: q.from, Tag: q.tag, Comm: q.g.commID()})
			}
		}
		if len(c.Recvs) == 0 {
			c.Recvs = []deadlock.Match{{From: from, Tag: tag, Comm: comm}}
		}
		return c, recvTime(s), true
	}
	b := w.blocked.Load()
	if b == nil {
		return c, since, false
	}
	name, root := splitCall(b.call())
	c = deadlock.Call{Name: name, Root: root, Lock: b.lock}
	if b.g != nil {
		c.Comm, c.Members, c.Seq = b.g.commID(), b.g.members(), int(b.seq)
	}
	return c, b.since, true
}

// recvCallName is the name of a point-to-point wait as the user wrote it.
func recvCallName(k int32) string {
	switch k {
	case callWait:
		return "Wait"
	case callWaitany:
		return "Waitany"
	}
	return callNames[k]
}

// splitCall takes a collective's words apart: "Bcast(root 2)" is Bcast
// with root 2; root is -1 when none is named.
func splitCall(s string) (name string, root int) {
	name, root = s, -1
	if i := strings.IndexByte(s, '('); i >= 0 {
		name = s[:i]
		args := strings.TrimSuffix(s[i+1:], ")")
		for _, a := range strings.Split(args, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(a), "root "); ok {
				if n, err := strconv.Atoi(v); err == nil {
					root = n
				}
			}
		}
	}
	return name, root
}

// answerState answers mpirun's STATE question (a deadlock.Question, JSON)
// with a deadlock.Report (JSON).
func (w *World) answerState(q []byte) []byte {
	var qq deadlock.Question
	json.Unmarshal(q, &qq) // a bad question is answered as an empty one
	rep := deadlock.Report{Round: qq.Round}
	now := time.Now()
	// Gen changes with every blocking call begun, point-to-point or
	// collective.
	rep.Gen = w.recvRec.gen.Load()<<32 ^ w.callGen.Load()
	c, since, ok := w.state()
	if ok {
		rep.Blocked, rep.Call = true, c
		rep.ForNS = int64(now.Sub(since))
	}
	rep.Entered = w.entered()
	rep.Sent, rep.Arrived = w.peerCounts()
	if (ok && rep.ForNS >= qq.AfterNS) || qq.Stacks {
		gs := deadlock.ParseStacks(allStacks())
		if ok && rep.ForNS >= qq.AfterNS {
			// A goroutine of the program that can go on by itself (it
			// computes, sleeps, reads a file) means this rank is not
			// stuck, whatever its other goroutines wait for.
			rep.Busy = deadlock.Busy(gs, -1)
			rep.InCalls = deadlock.InCalls(gs)
			if len(rep.Busy) > 0 {
				rep.Blocked = false
			}
		}
		if qq.Stacks {
			rep.Stacks = deadlock.Trim(gs)
		}
	}
	b, _ := json.Marshal(rep)
	return b
}

// entered counts the collectives entered per communicator.
func (w *World) entered() map[int]int {
	w.groups.mu.Lock()
	defer w.groups.mu.Unlock()
	m := make(map[int]int, len(w.groups.list))
	for _, g := range w.groups.list {
		if n := g.collSeq.Load(); n > 0 {
			m[g.commID()] = int(n)
		}
	}
	return m
}

// allStacks is runtime.Stack of every goroutine, whole (up to 16 MiB).
func allStacks() []byte {
	buf := make([]byte, 256<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= 16<<20 {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}
