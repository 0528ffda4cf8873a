package coherence

import (
	"fmt"
	"strings"
)

// Page numbers a page of the shared region, from 0. Page p's home is rank
// p % size.
type Page uint32

// Access is a rank's local access to a page.
type Access uint8

// The access levels, ordered: Write implies Read.
const (
	None Access = iota
	Read
	Write
)

func (a Access) String() string {
	switch a {
	case None:
		return "None"
	case Read:
		return "Read"
	case Write:
		return "Write"
	}
	return fmt.Sprintf("Access(%d)", uint8(a))
}

// MsgType is the type of a protocol message.
type MsgType uint8

// The message types. Values are stable: the wire layer may send them as one
// byte.
const (
	MsgReq       MsgType = iota + 1 // requester -> home: I want Page at Access
	MsgPage                         // home or owner -> requester: the page, at Access (Zero or WithData)
	MsgFwd                          // home -> owner: send Page at Access to Requester
	MsgInv                          // home -> copy holder: drop your read-only copy
	MsgInvAck                       // copy holder -> home: dropped
	MsgGrant                        // home -> requester: upgrade your current read copy to Write, no data
	MsgDone                         // requester -> home: installed Access (None: installed nothing)
	MsgError                        // home -> requester: your request failed, rank Lost was lost
	MsgLock                         // requester -> lock home: I want lock Lock
	MsgLockGrant                    // lock home -> requester: you hold lock Lock
	MsgUnlock                       // holder -> lock home: I release lock Lock
	MsgLockError                    // lock home -> requester: lock Lock failed, rank Lost was lost
)

var msgNames = [...]string{
	MsgReq:       "REQ",
	MsgPage:      "PAGE",
	MsgFwd:       "FWD",
	MsgInv:       "INV",
	MsgInvAck:    "INVACK",
	MsgGrant:     "GRANT",
	MsgDone:      "DONE",
	MsgError:     "ERROR",
	MsgLock:      "LOCK",
	MsgLockGrant: "LOCKGRANT",
	MsgUnlock:    "UNLOCK",
	MsgLockError: "LOCKERROR",
}

func (t MsgType) String() string {
	if int(t) < len(msgNames) && msgNames[t] != "" {
		return msgNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Role says what a lost rank was to the page or lock whose request failed.
type Role uint8

// The roles a lost rank can have had.
const (
	RoleNone   Role = iota
	RoleHome        // the page's or lock's home
	RoleOwner       // the rank holding the page's latest data
	RoleCopy        // a rank holding a read-only copy that had to be invalidated
	RoleHolder      // the lock's holder
)

func (r Role) String() string {
	switch r {
	case RoleHome:
		return "its home"
	case RoleOwner:
		return "its owner"
	case RoleCopy:
		return "a copy holder"
	case RoleHolder:
		return "its holder"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Msg is one protocol message. It carries no page contents: a PAGE with
// WithData is followed on the wire by the page's bytes, which the driver
// attaches when it executes the Send and hands to Fill on receipt.
type Msg struct {
	Type     MsgType
	From, To int
	// Page is the page concerned (all page messages).
	Page Page
	// Seq numbers the transaction at the page's home (FWD, PAGE, GRANT,
	// INV, INVACK, DONE, ERROR). Per page it only grows.
	Seq uint64
	// Requester is the rank the owner must send the page to (FWD).
	Requester int
	// Access is the access asked for (REQ, FWD), given (PAGE, GRANT), or
	// installed by the transaction (DONE; None when nothing was installed).
	Access Access
	// Zero marks a PAGE whose contents are all zeros; nothing follows it.
	Zero bool
	// WithData marks a PAGE followed by the page's contents.
	WithData bool
	// Lost is the rank whose loss failed the request (ERROR, LOCKERROR) and
	// Role what it was to the page or lock.
	Lost int
	Role Role
	// Lock is the lock's id (LOCK, LOCKGRANT, UNLOCK, LOCKERROR).
	Lock uint32
}

// IsLock reports whether m belongs to the lock protocol.
func (m Msg) IsLock() bool {
	switch m.Type {
	case MsgLock, MsgLockGrant, MsgUnlock, MsgLockError:
		return true
	}
	return false
}

// String formats m for traces and test scripts, e.g.
// "2->0 PAGE p3 write data seq=7".
func (m Msg) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d->%d %s", m.From, m.To, m.Type)
	if m.IsLock() {
		fmt.Fprintf(&b, " L%d", m.Lock)
		if m.Type == MsgLockError {
			fmt.Fprintf(&b, " lost=%d (%s)", m.Lost, m.Role)
		}
		return b.String()
	}
	fmt.Fprintf(&b, " p%d", m.Page)
	switch m.Type {
	case MsgReq, MsgPage, MsgFwd, MsgGrant, MsgDone:
		b.WriteString(" " + strings.ToLower(m.Access.String()))
	}
	if m.Type == MsgFwd {
		fmt.Fprintf(&b, " to=%d", m.Requester)
	}
	if m.Zero {
		b.WriteString(" zero")
	}
	if m.WithData {
		b.WriteString(" data")
	}
	if m.Type == MsgError {
		fmt.Fprintf(&b, " lost=%d (%s)", m.Lost, m.Role)
	}
	if m.Type != MsgReq {
		fmt.Fprintf(&b, " seq=%d", m.Seq)
	}
	return b.String()
}

// Action is one thing the driver must do, returned by Node.Ready. It is one
// of Send, Fill, Protect, Resolve, Fail, Granted, LockFailed.
type Action interface {
	action()
	String() string
}

// Send sends Msg to Msg.To. If Msg.WithData is set the driver attaches the
// page's local contents as they are when it executes this action: earlier
// actions in the same list have already revoked write access, so the
// contents can no longer change.
type Send struct{ Msg Msg }

// Fill installs Page at Access: with the contents that came with the PAGE
// message just passed to Step, or all zeros if Zero. The page had no local
// copy (None) before.
type Fill struct {
	Page   Page
	Access Access
	Zero   bool
}

// Protect changes the local access to Page without touching its contents:
// Write->Read (revoke write), Read->Write (upgrade), Read->None (drop).
type Protect struct {
	Page     Page
	From, To Access
}

// Resolve says that faults waiting on Page may retry now. A retry that
// still lacks access calls Node.Fault again; that is cheap (coalesced).
type Resolve struct{ Page Page }

// Fail fails the faults waiting on Page with Err (a *PeerLostError).
type Fail struct {
	Page Page
	Err  error
}

// Granted says this rank now holds lock Lock.
type Granted struct{ Lock uint32 }

// LockFailed fails the pending Lock(Lock) with Err (a *PeerLostError).
type LockFailed struct {
	Lock uint32
	Err  error
}

func (Send) action()       {}
func (Fill) action()       {}
func (Protect) action()    {}
func (Resolve) action()    {}
func (Fail) action()       {}
func (Granted) action()    {}
func (LockFailed) action() {}

func (a Send) String() string { return "send " + a.Msg.String() }
func (a Fill) String() string {
	src := "data"
	if a.Zero {
		src = "zero"
	}
	return fmt.Sprintf("fill p%d %s %s", a.Page, a.Access, src)
}
func (a Protect) String() string {
	return fmt.Sprintf("protect p%d %s->%s", a.Page, a.From, a.To)
}
func (a Resolve) String() string    { return fmt.Sprintf("resolve p%d", a.Page) }
func (a Fail) String() string       { return fmt.Sprintf("fail p%d: %v", a.Page, a.Err) }
func (a Granted) String() string    { return fmt.Sprintf("granted L%d", a.Lock) }
func (a LockFailed) String() string { return fmt.Sprintf("lockfailed L%d: %v", a.Lock, a.Err) }
