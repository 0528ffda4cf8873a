// Package coherence is the page-coherence protocol of dsmexec's shared
// memory, written as a pure state machine: no goroutines, sockets, clocks or
// system calls. A driver (package dsm) feeds it application faults, peer
// messages and peer losses, and carries out the actions it asks for.
//
// The protocol: sequential consistency per page, single writer or many
// readers, invalidation based, with a home-based directory. Page p's home
// is rank p % size; it records the page's owner (the rank holding the
// latest data, or none while the page is all zeros) and its copy set, and
// runs one transaction per page at a time, queueing the others in FIFO
// order. Distributed locks live in the same machine, lock id at rank
// id % size. PROTOCOL.md describes the messages.
//
// # Usage
//
// One driver goroutine owns a Node. After every call that feeds it (Fault,
// Step, PeerLost, Lock, Unlock) the driver calls Ready and carries out the
// actions strictly in the order given, before handing it the next message:
//
//	n := coherence.NewNode(self, size)
//	n.Fault(p, write) // or n.Step(msg), n.PeerLost(rank), n.Lock(id), n.Unlock(id)
//	for _, a := range n.Ready() {
//		switch a := a.(type) {
//		case coherence.Send:
//			// Frame a.Msg for a.Msg.To; if a.Msg.WithData, append the page's
//			// contents as they are now (read through the daemon's own mapping).
//		case coherence.Fill:
//			// Copy in the data of the PAGE just stepped (zeros if a.Zero),
//			// then map the page at a.Access.
//		case coherence.Protect:
//			// Change the application's access from a.From to a.To.
//		case coherence.Resolve:
//			// Wake the faults waiting on a.Page; each retries its access and
//			// calls Fault again if it still lacks it.
//		case coherence.Fail:
//			// Wake them with a.Err instead.
//		case coherence.Granted, coherence.LockFailed:
//			// Wake the Lock(a.Lock) caller.
//		}
//	}
//
// # Order of actions
//
// The list order is part of the contract. Write access is always revoked
// before data is read for sending, so no write can be lost between the read
// and the revocation:
//
//	FWD(read) at the owner:  [Protect(Write->Read) if it wrote], Send(PAGE, WithData)
//	FWD(write) at the owner: [Protect(Write->Read) if it wrote], Send(PAGE, WithData), Protect(Read->None)
//	INV at a copy holder:    Protect(Read->None), Send(INVACK)
//	PAGE at the requester:   Fill, Send(DONE), Resolve, [Send(REQ write) if a write fault waited]
//	GRANT at the requester:  Protect(Read->Write), Send(DONE), Resolve
//	ERROR at the requester:  Fail, Send(DONE None)
//
// When the home, owner and requester coincide, the same actions happen
// without the Sends to self: messages to self are handled inside the node.
//
// # Rules for the driver
//
//   - Step only messages from peers (m.From != self, m.To == self), in the
//     order each connection delivered them.
//   - Carry out Ready before the next Step: a Fill takes its data from the
//     PAGE message just stepped (Step panics otherwise).
//   - Perform the local actions of one Ready list in order, and put its
//     messages on the wire only after all of them; a Send WithData
//     captures the page's contents at its place in the list. Otherwise,
//     in FWD(write) at the owner, the PAGE could reach the new owner, and
//     the new owner write, while the old owner could still read its copy
//     (the list is atomic in the simulation, not on a real network).
//   - Call PeerLost(r) once the connection to r is gone, after stepping every
//     message read from it. Later messages from r are ignored, nothing more
//     is sent to r, and every request that depended on r fails with a
//     *PeerLostError (errors.Is ErrPeerLost) naming the page or lock and r:
//     "coherence: page 17: rank 2 (its owner) was lost". A page whose only
//     current copy was lost stays lost: later faults on it fail too. A lock
//     whose holder was lost stays broken.
//   - At most one Lock(id) per rank and id may be outstanding, and Unlock
//     only a held lock: the caller serialises its goroutines (the node
//     panics otherwise, as it does on a message that breaks the protocol).
package coherence
