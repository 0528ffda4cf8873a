package trace

import (
	"fmt"
	"time"
)

// Kind names what a slice is: the dsmexec call or the memory event. The
// numbers are part of the encoding; add new kinds at the end.
type Kind uint8

// Kinds of slices.
const (
	KindNone Kind = iota
	KindSend
	KindRecv
	KindProbe
	KindWait
	KindBarrier
	KindBcast
	KindGather
	KindAllgather
	KindScatter
	KindReduce
	KindAllreduce
	KindAlltoall
	KindScan
	KindSendrecv
	KindFault // a page fault: Page, Access, From
	KindLock  // waiting for a dsm.Mutex: Lock
	KindHold  // holding a dsm.Mutex (Lock to Unlock): Lock
	KindFinalize
	KindIprobe
	KindTest
	KindInit // joining the job: connections to the peers and the shared memory
	kindCount
)

var kindNames = [kindCount]string{
	"none", "Send", "Recv", "Probe", "Wait", "Barrier", "Bcast", "Gather",
	"Allgather", "Scatter", "Reduce", "Allreduce", "Alltoall", "Scan",
	"Sendrecv", "Fault", "Lock", "Hold", "Finalize", "Iprobe", "Test", "Init",
}

func (k Kind) String() string {
	if k < kindCount {
		return kindNames[k]
	}
	return fmt.Sprintf("kind %d", k)
}

// Category groups kinds for the report's timeline.
type Category uint8

// Categories of time.
const (
	CatCompute Category = iota // outside every dsmexec call
	CatComm                    // point-to-point and collectives other than Barrier
	CatFault                   // page faults
	CatLock                    // waiting for a lock
	CatBarrier                 // Barrier (and Finalize's barrier)
)

var catNames = [...]string{"compute", "communication", "fault", "lock", "barrier"}

func (c Category) String() string {
	if int(c) < len(catNames) {
		return catNames[c]
	}
	return fmt.Sprintf("category %d", c)
}

// Category says which timeline category a kind's time counts for.
func (k Kind) Category() Category {
	switch k {
	case KindFault:
		return CatFault
	case KindLock:
		return CatLock
	case KindBarrier, KindFinalize:
		return CatBarrier
	case KindHold, KindNone:
		return CatCompute
	}
	return CatComm
}

// Access is the access a page fault asked for.
type Access uint8

// Accesses.
const (
	AccessNone Access = iota
	AccessRead
	AccessWrite
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	}
	return "none"
}

// Args are a slice's details. Zero fields cost nothing in the encoding
// (a bit mask says which fields follow), so a zero value means "absent or
// zero"; which fields a kind uses is listed in docs/TRACING.md.
type Args struct {
	Peer   int    // the other rank (Send: to; Recv begin: from or -1 AnySource; Recv end: the actual source; collectives: root)
	Tag    int    // the tag (-1 AnyTag)
	Comm   int    // communicator id (0: the world)
	Bytes  int64  // payload bytes
	Page   int64  // page number (Fault)
	Access Access // Fault: read or write
	From   int    // Fault: rank the page came from (-1: no transfer, an upgrade or zero page)
	Flow   uint64 // Send: the message's flow id; Recv end: the matched message's flow id
	Lock   int    // Lock, Hold: the lock id
}

// argument bits in the encoding's mask, in field order.
const (
	argPeer = 1 << iota
	argTag
	argComm
	argBytes
	argPage
	argAccess
	argFrom
	argFlow
	argLock
)

// Counter identifies a counter track.
type Counter uint8

// Counters.
const (
	CounterPagesHeld Counter = iota + 1 // pages this rank holds a copy of
	CounterBytesSent                    // user payload bytes sent so far
	CounterBytesRecv                    // user payload bytes received so far
	counterCount
)

var counterNames = [counterCount]string{"", "pages held", "bytes sent", "bytes received"}

func (c Counter) String() string {
	if c > 0 && c < counterCount {
		return counterNames[c]
	}
	return fmt.Sprintf("counter %d", c)
}

// Op is the type of a decoded event.
type Op uint8

// Event types. The numbers are the record type bytes of the encoding.
const (
	OpBegin    Op = 1 // a slice begins on Track
	OpEnd      Op = 2 // the innermost open slice of Track ends; Args are its results
	OpComplete Op = 3 // a whole slice: Time is its start, Dur its length
	OpCounter  Op = 4 // Counter has Value from Time on
	OpTrack    Op = 5 // Track is named Name
	OpClock    Op = 6 // this rank's clock minus the reference clock: Offset ± Bound
	OpFull     Op = 7 // the trace limit was reached: nothing after Time was recorded
	OpInstant  Op = 8 // a point event Name (e.g. "lost rank 2")
)

// Event is one decoded record.
type Event struct {
	Op      Op
	Time    time.Duration // since the trace's Start, on this rank's clock
	Dur     time.Duration // OpComplete
	Track   uint32
	Kind    Kind
	Args    Args
	Counter Counter
	Value   int64
	Name    string        // OpTrack, OpInstant
	Offset  time.Duration // OpClock
	Bound   time.Duration // OpClock
}
