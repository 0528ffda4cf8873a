package coherence

import "slices"

// lockState is a lock as seen by a requesting rank.
type lockState uint8

const (
	lockIdle lockState = iota
	lockWaiting
	lockHeld
)

// lockEntry is the home's record of one lock.
type lockEntry struct {
	holder   int   // -1: free
	queue    []int // waiting ranks, FIFO
	brokenBy int   // >= 0: the holder was lost; every request fails
}

// Lock asks for lock id. Granted follows when this rank holds it, or
// LockFailed if a rank it depends on is lost. The caller must not ask again
// for a lock it is waiting for or holds (it panics).
func (n *Node) Lock(id uint32) {
	if st := n.locks[id]; st != lockIdle {
		n.fatalf("Lock(%d) while already waiting for or holding it", id)
	}
	h := n.LockHome(id)
	if n.lost[h] {
		n.emit(LockFailed{Lock: id, Err: &PeerLostError{Lock: id, IsLock: true, Rank: h, Role: RoleHome}})
		return
	}
	n.locks[id] = lockWaiting
	n.send(Msg{Type: MsgLock, To: h, Lock: id})
	n.flush()
}

// Unlock releases lock id, which this rank must hold (it panics
// otherwise).
func (n *Node) Unlock(id uint32) {
	if st := n.locks[id]; st != lockHeld {
		n.fatalf("Unlock(%d) of a lock not held", id)
	}
	delete(n.locks, id)
	n.send(Msg{Type: MsgUnlock, To: n.LockHome(id), Lock: id})
	n.flush()
}

func (n *Node) onLockReply(m Msg) {
	if n.locks[m.Lock] != lockWaiting || m.From != n.LockHome(m.Lock) {
		n.fatalf("%v but lock state is %d", m, n.locks[m.Lock])
	}
	if m.Type == MsgLockGrant {
		n.locks[m.Lock] = lockHeld
		n.emit(Granted{Lock: m.Lock})
		return
	}
	delete(n.locks, m.Lock)
	n.emit(LockFailed{Lock: m.Lock, Err: &PeerLostError{Lock: m.Lock, IsLock: true, Rank: m.Lost, Role: m.Role}})
}

func (n *Node) onLockHome(m Msg) {
	if n.LockHome(m.Lock) != n.self {
		n.fatalf("%v: lock %d is homed at rank %d", m, m.Lock, n.LockHome(m.Lock))
	}
	e := n.lockDir[m.Lock]
	if e == nil {
		e = &lockEntry{holder: -1, brokenBy: -1}
		n.lockDir[m.Lock] = e
	}
	switch m.Type {
	case MsgLock:
		switch {
		case e.brokenBy >= 0:
			n.send(Msg{Type: MsgLockError, To: m.From, Lock: m.Lock, Lost: e.brokenBy, Role: RoleHolder})
		case e.holder < 0:
			e.holder = m.From
			n.send(Msg{Type: MsgLockGrant, To: m.From, Lock: m.Lock})
		default:
			if e.holder == m.From || slices.Contains(e.queue, m.From) {
				n.fatalf("%v: rank %d already holds or waits for it (holder %d, queue %v)", m, m.From, e.holder, e.queue)
			}
			e.queue = append(e.queue, m.From)
		}
	case MsgUnlock:
		if e.holder != m.From {
			n.fatalf("%v: holder is %d", m, e.holder)
		}
		n.grantNext(m.Lock, e)
	}
}

func (n *Node) grantNext(id uint32, e *lockEntry) {
	e.holder = -1
	if len(e.queue) > 0 {
		e.holder = e.queue[0]
		e.queue = e.queue[1:]
		n.send(Msg{Type: MsgLockGrant, To: e.holder, Lock: id})
	}
}

// locksLost fails this rank's lock requests homed at the lost rank, drops
// the lost rank's requests from the locks homed here, and breaks the locks
// it held: their waiters, and every later request, fail.
func (n *Node) locksLost(rank int) {
	for _, id := range sortedKeys(n.locks) {
		if n.locks[id] == lockWaiting && n.LockHome(id) == rank {
			delete(n.locks, id)
			n.emit(LockFailed{Lock: id, Err: &PeerLostError{Lock: id, IsLock: true, Rank: rank, Role: RoleHome}})
		}
	}
	for _, id := range sortedKeys(n.lockDir) {
		e := n.lockDir[id]
		e.queue = slices.DeleteFunc(e.queue, func(r int) bool { return r == rank })
		if e.holder != rank {
			continue
		}
		e.holder, e.brokenBy = -1, rank
		for _, w := range e.queue {
			n.send(Msg{Type: MsgLockError, To: w, Lock: id, Lost: rank, Role: RoleHolder})
		}
		e.queue = nil
	}
}
