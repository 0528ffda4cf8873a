package barrier

import (
	"encoding/binary"
	"fmt"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// A message is msgLen bytes:
//
//	0     kind   (kindDissemination, kindArrive or kindRelease)
//	1     round  (dissemination round; 0 otherwise)
//	2     status (statusOK, statusFailed or statusMismatch)
//	3     zero
//	4:8   failed rank, little-endian uint32 (when status is not OK)
//	8:12  reporting rank: the rank that saw the failure (when status is not OK)
//	12:16 zero
//	16:24 epoch, little-endian uint64
const msgLen = 24

const (
	kindDissemination = 0xB1
	kindArrive        = 0xB2
	kindRelease       = 0xB3
)

const (
	statusOK       = 0
	statusFailed   = 1
	statusMismatch = 2
)

type message struct {
	kind     byte
	round    byte
	status   byte
	failed   int
	reporter int
	epoch    uint64
}

func (m message) encode() [msgLen]byte {
	var b [msgLen]byte
	b[0], b[1], b[2] = m.kind, m.round, m.status
	binary.LittleEndian.PutUint32(b[4:], uint32(m.failed))
	binary.LittleEndian.PutUint32(b[8:], uint32(m.reporter))
	binary.LittleEndian.PutUint64(b[16:], m.epoch)
	return b
}

func decode(b []byte) (message, error) {
	if len(b) != msgLen {
		return message{}, fmt.Errorf("message of %d bytes, want %d", len(b), msgLen)
	}
	m := message{
		kind:     b[0],
		round:    b[1],
		status:   b[2],
		failed:   int(binary.LittleEndian.Uint32(b[4:])),
		reporter: int(binary.LittleEndian.Uint32(b[8:])),
		epoch:    binary.LittleEndian.Uint64(b[16:]),
	}
	if m.status > statusMismatch {
		return message{}, fmt.Errorf("unknown status %d", m.status)
	}
	return m, nil
}

func kindName(k byte) string {
	switch k {
	case kindDissemination:
		return "dissemination"
	case kindArrive:
		return "arrive"
	case kindRelease:
		return "release"
	}
	return fmt.Sprintf("kind %#x", k)
}

// run is the state of one barrier on one rank: the first failure seen, kept
// while the rank finishes the algorithm so that its partners learn of it.
type run struct {
	t     Transport
	rank  int
	size  int
	epoch uint64
	fail  *Error
	// failed and code describe fail for the messages this rank still sends.
	failed   int
	reporter int
	code     byte
}

func newRun(t Transport, epoch uint64) *run {
	rank, size := collective.CheckWorld(t)
	return &run{t: t, rank: rank, size: size, epoch: epoch}
}

func (r *run) setFail(peer, reporter int, code byte, err error) {
	if r.fail != nil {
		return
	}
	r.fail = &Error{Epoch: r.epoch, Rank: r.rank, Peer: peer, Err: err}
	r.failed, r.reporter, r.code = peer, reporter, code
}

func (r *run) send(to int, kind, round byte) {
	m := message{kind: kind, round: round, epoch: r.epoch}
	if r.fail != nil {
		m.status, m.failed, m.reporter = r.code, r.failed, r.reporter
	}
	b := m.encode()
	if err := r.t.Send(to, b[:]); err != nil {
		r.setFail(to, r.rank, statusFailed, fmt.Errorf("send %s round %d to rank %d: %w", kindName(kind), round, to, err))
	}
}

// recv takes the next message from rank from and checks that it is the
// expected one. A failure status in it is adopted as this rank's failure.
func (r *run) recv(from int, kind, round byte) {
	b, err := r.t.Recv(from)
	if err != nil {
		r.setFail(from, r.rank, statusFailed, fmt.Errorf("receive %s round %d from rank %d: %w", kindName(kind), round, from, err))
		return
	}
	m, err := decode(b)
	if err == nil && (m.kind != kind || m.round != round || m.epoch != r.epoch) {
		err = fmt.Errorf("got %s round %d epoch %d, want %s round %d epoch %d",
			kindName(m.kind), m.round, m.epoch, kindName(kind), round, r.epoch)
	}
	if err != nil {
		r.setFail(from, r.rank, statusMismatch, fmt.Errorf("message from rank %d: %w: %w", from, err, ErrMismatch))
		return
	}
	switch m.status {
	case statusFailed:
		r.setFail(m.failed, m.reporter, statusFailed,
			fmt.Errorf("rank %d failed (seen by rank %d): %w", m.failed, m.reporter, ErrPeerFailed))
	case statusMismatch:
		r.setFail(m.failed, m.reporter, statusMismatch,
			fmt.Errorf("rank %d sent a mismatched message (seen by rank %d): %w", m.failed, m.reporter, ErrMismatch))
	}
}

func (r *run) result() error {
	if r.fail != nil {
		return r.fail
	}
	return nil
}
