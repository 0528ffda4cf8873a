package dsm

import (
	"encoding/binary"
	"fmt"

	"github.com/dsmexec/dsmexec/internal/coherence"
)

// msgLen is the fixed part of a coherence message on the wire; a PAGE with
// data is followed by exactly one page. The frame header's type byte is the
// coherence.MsgType. See internal/wire/spec.md.
//
//	0  page       u32
//	4  seq        u64
//	12 requester  i32
//	16 access     u8
//	17 flags      u8  (1 = zero page, 2 = data follows)
//	18 lost       i32
//	22 role       u8
//	23 lock       u32
//	27 [page bytes]
const msgLen = 27

const (
	flagZero = 1 << 0
	flagData = 1 << 1
)

func encodeMsg(b *[msgLen]byte, m *coherence.Msg) {
	binary.BigEndian.PutUint32(b[0:], uint32(m.Page))
	binary.BigEndian.PutUint64(b[4:], m.Seq)
	binary.BigEndian.PutUint32(b[12:], uint32(int32(m.Requester)))
	b[16] = uint8(m.Access)
	var fl uint8
	if m.Zero {
		fl |= flagZero
	}
	if m.WithData {
		fl |= flagData
	}
	b[17] = fl
	binary.BigEndian.PutUint32(b[18:], uint32(int32(m.Lost)))
	b[22] = uint8(m.Role)
	binary.BigEndian.PutUint32(b[23:], m.Lock)
}

// decodeMsg parses a coherence message from rank `from` to `self`; data is
// the page contents when the message carries them.
func decodeMsg(typ uint8, body []byte, from, self, pageSize int) (m coherence.Msg, data []byte, err error) {
	if len(body) < msgLen {
		return m, nil, fmt.Errorf("dsm: %d-byte message from rank %d, want at least %d", len(body), from, msgLen)
	}
	m = coherence.Msg{
		Type:      coherence.MsgType(typ),
		From:      from,
		To:        self,
		Page:      coherence.Page(binary.BigEndian.Uint32(body[0:])),
		Seq:       binary.BigEndian.Uint64(body[4:]),
		Requester: int(int32(binary.BigEndian.Uint32(body[12:]))),
		Access:    coherence.Access(body[16]),
		Zero:      body[17]&flagZero != 0,
		WithData:  body[17]&flagData != 0,
		Lost:      int(int32(binary.BigEndian.Uint32(body[18:]))),
		Role:      coherence.Role(body[22]),
		Lock:      binary.BigEndian.Uint32(body[23:]),
	}
	if m.Type < coherence.MsgReq || m.Type > coherence.MsgLockError {
		return m, nil, fmt.Errorf("dsm: unknown message type %d from rank %d", typ, from)
	}
	rest := body[msgLen:]
	if m.WithData {
		if len(rest) != pageSize {
			return m, nil, fmt.Errorf("dsm: %s from rank %d carries %d bytes, want a %d-byte page", m.Type, from, len(rest), pageSize)
		}
		return m, rest, nil
	}
	if len(rest) != 0 {
		return m, nil, fmt.Errorf("dsm: %s from rank %d has %d stray bytes", m.Type, from, len(rest))
	}
	return m, nil, nil
}
