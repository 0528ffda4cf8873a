package collective

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Every message starts with a header of hdrLen bytes (all integers
// little-endian):
//
//	0      kind   the collective: KindBcast ... (see Kind)
//	1      code   codeOK, or the error code of a failing sender
//	2      op     the Op of Reduce/Allreduce, 0 otherwise
//	3      elem   the element type of Reduce/Allreduce, 0 otherwise
//	4      step   which message of the algorithm this is
//	5      flags  flagSkew: the sender knows the ranks' calls differ;
//	              flagMore: a segment, the stream goes on (large vectors)
//	6:8    magic  0xC011
//	8:12   seq    the call number (Sequencer), 0 without one
//	12:16  root   the root of rooted collectives, 0 otherwise
//	16:24  n      the vector length in elements (Reduce/Allreduce), 0 otherwise
//
// The body depends on the kind. With code OK:
//
//	bcast                the root's bytes
//	reduce, allreduce    elements, little-endian, int as 8 bytes
//	gather, allgather,   blocks, each a uint32 rank, a uint64 length and
//	scatter              that many bytes
//
// With an error code: a uint32 rank that saw the failure, then its
// description in UTF-8 (at most maxReason bytes).
//
// hdrLen is a multiple of 8 so that elements after it stay aligned.
const (
	hdrLen    = 24
	magic     = 0xC011
	maxReason = 1024
	blockHdr  = 12
)

// Header flags.
const (
	flagSkew = 1 << iota // the sender knows the ranks' calls differ
	flagMore             // a segment of a stream that goes on (see recvStream)
)

// Kind names a collective call. It travels in every message header, so
// that a message of one call never passes for one of another: the names
// are the calls of the rank package, and errors use them.
type Kind uint8

// The kinds. Typed variants (BcastSlice, ...) travel as their own kind.
const (
	KindBcast Kind = iota + 1
	KindGather
	KindAllgather
	KindScatter
	KindReduce
	KindAllreduce
	KindBarrier
	KindFinalize
	KindAlltoall
	KindScan
	KindExscan
	KindReduceScatter
	KindReduceLoc
	KindAllreduceLoc
	KindReduceFunc
	KindAllreduceFunc
	KindBcastSlice
	KindScatterSlice
	KindGatherSlice
	KindAllgatherSlice
	KindAlltoallSlice
	KindSplit
	KindDup
	maxKind = KindDup
)

var kindNames = [...]string{
	KindBcast: "Bcast", KindGather: "Gather", KindAllgather: "Allgather", KindScatter: "Scatter",
	KindReduce: "Reduce", KindAllreduce: "Allreduce", KindBarrier: "Barrier", KindFinalize: "Finalize",
	KindAlltoall: "Alltoall", KindScan: "Scan", KindExscan: "Exscan", KindReduceScatter: "ReduceScatter",
	KindReduceLoc: "ReduceLoc", KindAllreduceLoc: "AllreduceLoc", KindReduceFunc: "ReduceFunc",
	KindAllreduceFunc: "AllreduceFunc", KindBcastSlice: "BcastSlice", KindScatterSlice: "ScatterSlice",
	KindGatherSlice: "GatherSlice", KindAllgatherSlice: "AllgatherSlice", KindAlltoallSlice: "AlltoallSlice",
	KindSplit: "Split", KindDup: "Dup",
}

func (k Kind) String() string {
	if k >= 1 && k <= maxKind {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// rooted reports whether the kind's root field is meaningful.
func (k Kind) rooted() bool {
	switch k {
	case KindBcast, KindGather, KindScatter, KindReduce, KindReduceLoc, KindReduceFunc,
		KindBcastSlice, KindScatterSlice, KindGatherSlice:
		return true
	}
	return false
}

// vector reports whether the op, elem and n fields are meaningful.
func (k Kind) vector() bool {
	switch k {
	case KindReduce, KindAllreduce, KindScan, KindExscan, KindReduceScatter, KindReduceLoc, KindAllreduceLoc:
		return true
	}
	return false
}

// Steps: rounds of the trees and of recursive doubling are numbered from 0;
// these mark the other messages.
const (
	stepGather = 0x80 // | round: the allgather half of Rabenseifner
	stepFoldIn = 0xF0 // an extra rank folds into the power-of-two group
	stepFold   = 0xF1 // the result goes back to the extra rank
	stepStatus = 0xF2 // Reduce's root tells every rank how it went
	stepNotice = 0xF3 // a rank that saw a call mismatch tells every rank
	stepHello  = 0xF4 // a call has started (see call.hello)
)

type header struct {
	kind  Kind
	code  uint8
	op    Op
	elem  elemType
	step  uint8
	flags uint8
	seq   uint32
	root  uint32
	n     uint64
}

func (h *header) put(b []byte) {
	_ = b[hdrLen-1]
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(h.kind), h.code, byte(h.op), byte(h.elem), h.step, h.flags
	binary.LittleEndian.PutUint16(b[6:], magic)
	binary.LittleEndian.PutUint32(b[8:], h.seq)
	binary.LittleEndian.PutUint32(b[12:], h.root)
	binary.LittleEndian.PutUint64(b[16:], h.n)
}

func parseHeader(b []byte) (header, error) {
	if len(b) < hdrLen {
		return header{}, fmt.Errorf("message of %d bytes, shorter than a header", len(b))
	}
	if m := binary.LittleEndian.Uint16(b[6:]); m != magic {
		return header{}, fmt.Errorf("bad magic %#04x", m)
	}
	h := header{
		kind: Kind(b[0]), code: b[1], op: Op(b[2]), elem: elemType(b[3]), step: b[4], flags: b[5],
		seq:  binary.LittleEndian.Uint32(b[8:]),
		root: binary.LittleEndian.Uint32(b[12:]),
		n:    binary.LittleEndian.Uint64(b[16:]),
	}
	if h.code > maxCode {
		return header{}, fmt.Errorf("unknown error code %d", h.code)
	}
	return h, nil
}

// call describes the call a header belongs to, for error messages.
func (h header) call() string {
	var b strings.Builder
	b.WriteString(h.kind.String())
	if h.kind.rooted() {
		fmt.Fprintf(&b, " root %d", h.root)
	}
	if h.kind.vector() {
		fmt.Fprintf(&b, " %v of %d %v", h.op, h.n, h.elem)
	}
	fmt.Fprintf(&b, " call #%d %s", h.seq, stepName(h.step))
	return b.String()
}

func stepName(s uint8) string {
	switch {
	case s == stepFoldIn:
		return "fold-in"
	case s == stepFold:
		return "fold-out"
	case s == stepStatus:
		return "status"
	case s == stepNotice:
		return "mismatch notice"
	case s == stepHello:
		return "hello"
	case s&stepGather != 0:
		return fmt.Sprintf("allgather round %d", s&^stepGather)
	}
	return fmt.Sprintf("round %d", s)
}

// sameCall reports whether two headers belong to the same call and step.
func sameCall(a, b header) bool {
	return a.kind == b.kind && a.op == b.op && a.elem == b.elem && a.step == b.step &&
		a.seq == b.seq && a.root == b.root && a.n == b.n
}
