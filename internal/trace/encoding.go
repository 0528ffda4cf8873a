package trace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Magic starts every stream: "DSMXTRC" and the format version.
const Magic = "DSMXTRC\x01"

// ErrNotTrace is returned for data that does not start with Magic.
var ErrNotTrace = errors.New("trace: not a dsmexec trace (bad magic)")

type header struct {
	Rank, Size, PID int
	Host, Role      string
	Start           time.Time
}

func appendHeader(b []byte, h header) []byte {
	b = append(b, Magic...)
	b = binary.AppendUvarint(b, uint64(h.Rank))
	b = binary.AppendUvarint(b, uint64(h.Size))
	b = binary.AppendUvarint(b, uint64(h.PID))
	b = binary.AppendVarint(b, h.Start.UnixNano())
	b = appendString(b, h.Host)
	b = appendString(b, h.Role)
	return b
}

func appendString(b []byte, s string) []byte {
	if len(s) > maxName {
		s = s[:maxName]
	}
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTrack(b []byte, id uint32, name string) []byte {
	b = append(b, byte(OpTrack))
	b = binary.AppendUvarint(b, uint64(id))
	return appendString(b, name)
}

func appendArgs(b []byte, a *Args) []byte {
	var m uint64
	if a.Peer != 0 {
		m |= argPeer
	}
	if a.Tag != 0 {
		m |= argTag
	}
	if a.Comm != 0 {
		m |= argComm
	}
	if a.Bytes != 0 {
		m |= argBytes
	}
	if a.Page != 0 {
		m |= argPage
	}
	if a.Access != 0 {
		m |= argAccess
	}
	if a.From != 0 {
		m |= argFrom
	}
	if a.Flow != 0 {
		m |= argFlow
	}
	if a.Lock != 0 {
		m |= argLock
	}
	b = binary.AppendUvarint(b, m)
	if m&argPeer != 0 {
		b = binary.AppendVarint(b, int64(a.Peer))
	}
	if m&argTag != 0 {
		b = binary.AppendVarint(b, int64(a.Tag))
	}
	if m&argComm != 0 {
		b = binary.AppendVarint(b, int64(a.Comm))
	}
	if m&argBytes != 0 {
		b = binary.AppendVarint(b, a.Bytes)
	}
	if m&argPage != 0 {
		b = binary.AppendVarint(b, a.Page)
	}
	if m&argAccess != 0 {
		b = append(b, byte(a.Access))
	}
	if m&argFrom != 0 {
		b = binary.AppendVarint(b, int64(a.From))
	}
	if m&argFlow != 0 {
		b = binary.AppendUvarint(b, a.Flow)
	}
	if m&argLock != 0 {
		b = binary.AppendVarint(b, int64(a.Lock))
	}
	return b
}

// Stream is one decoded recorder stream: one process of one rank.
type Stream struct {
	Rank, Size, PID int
	Host, Role      string
	Start           time.Time // wall clock of the recorder's start, on the rank's clock
	Events          []Event
	// Truncated is set when the data ended inside a record: the stream is
	// the records before the cut (a rank that died mid-write, a partial
	// file). Full is set when the recorder hit its limit.
	Truncated bool
	Full      bool
}

// errShort is the decoder's "the data ends inside this record".
var errShort = errors.New("short")

type decoder struct {
	b   []byte
	off int
}

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, errShort
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n == 0 {
		return 0, errShort
	}
	if n < 0 {
		return 0, fmt.Errorf("varint overflow at byte %d", d.off)
	}
	d.off += n
	return v, nil
}

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.b[d.off:])
	if n == 0 {
		return 0, errShort
	}
	if n < 0 {
		return 0, fmt.Errorf("varint overflow at byte %d", d.off)
	}
	d.off += n
	return v, nil
}

func (d *decoder) string() (string, error) {
	n, err := d.uvarint()
	if err != nil {
		return "", err
	}
	if n > maxName {
		return "", fmt.Errorf("string of %d bytes at byte %d (at most %d)", n, d.off, maxName)
	}
	if uint64(len(d.b)-d.off) < n {
		return "", errShort
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}

func (d *decoder) args(a *Args) error {
	m, err := d.uvarint()
	if err != nil {
		return err
	}
	if m >= argLock<<1 {
		return fmt.Errorf("unknown argument bits %#x at byte %d", m, d.off)
	}
	iv := func(bit uint64, p *int) error {
		if m&bit == 0 {
			return nil
		}
		v, err := d.varint()
		*p = int(v)
		return err
	}
	if err := iv(argPeer, &a.Peer); err != nil {
		return err
	}
	if err := iv(argTag, &a.Tag); err != nil {
		return err
	}
	if err := iv(argComm, &a.Comm); err != nil {
		return err
	}
	if m&argBytes != 0 {
		if a.Bytes, err = d.varint(); err != nil {
			return err
		}
	}
	if m&argPage != 0 {
		if a.Page, err = d.varint(); err != nil {
			return err
		}
	}
	if m&argAccess != 0 {
		c, err := d.byte()
		if err != nil {
			return err
		}
		a.Access = Access(c)
	}
	if err := iv(argFrom, &a.From); err != nil {
		return err
	}
	if m&argFlow != 0 {
		if a.Flow, err = d.uvarint(); err != nil {
			return err
		}
	}
	return iv(argLock, &a.Lock)
}

// Decode decodes one stream (the concatenation of a recorder's Drain
// pieces, or a DSMEXEC_TRACE file). Data cut anywhere decodes to the
// records before the cut, with Truncated set; only data that is not a
// trace, or that breaks the format inside, is an error.
func Decode(b []byte) (*Stream, error) {
	return Scan(b, func(s *Stream, e *Event) { s.Events = append(s.Events, *e) })
}

// Scan is Decode without keeping the events: it calls fn with the stream
// (its header filled in, Events left empty) and each event in order, so
// a merge of large streams holds only what it builds.
func Scan(b []byte, fn func(s *Stream, e *Event)) (*Stream, error) {
	if len(b) < len(Magic) || string(b[:len(Magic)]) != Magic {
		if len(b) < len(Magic) && string(b) == Magic[:len(b)] {
			return nil, fmt.Errorf("trace: %d bytes, cut inside the header", len(b))
		}
		return nil, ErrNotTrace
	}
	d := &decoder{b: b, off: len(Magic)}
	s := &Stream{}
	if err := d.header(s); err != nil {
		if errors.Is(err, errShort) {
			return nil, fmt.Errorf("trace: %d bytes, cut inside the header", len(b))
		}
		return nil, fmt.Errorf("trace: header: %w", err)
	}
	var now int64
	for d.off < len(b) {
		start := d.off
		ev, err := d.record(&now)
		if errors.Is(err, errShort) {
			s.Truncated = true
			break
		}
		if err != nil {
			return s, fmt.Errorf("trace: rank %d: record at byte %d: %w", s.Rank, start, err)
		}
		if ev.Op == OpFull {
			s.Full = true
		}
		fn(s, &ev)
	}
	return s, nil
}

func (d *decoder) header(s *Stream) error {
	var err error
	u := func() int {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = d.uvarint()
		return int(v)
	}
	s.Rank, s.Size, s.PID = u(), u(), u()
	if err != nil {
		return err
	}
	ns, err := d.varint()
	if err != nil {
		return err
	}
	s.Start = time.Unix(0, ns)
	if s.Host, err = d.string(); err != nil {
		return err
	}
	s.Role, err = d.string()
	return err
}

func (d *decoder) record(now *int64) (Event, error) {
	var ev Event
	op, err := d.byte()
	if err != nil {
		return ev, err
	}
	ev.Op = Op(op)
	track := func() error {
		v, err := d.uvarint()
		if v > 1<<32-1 {
			return fmt.Errorf("track %d out of range", v)
		}
		ev.Track = uint32(v)
		return err
	}
	at := func() error {
		v, err := d.varint()
		if err != nil {
			return err
		}
		*now += v
		ev.Time = time.Duration(*now)
		return nil
	}
	kind := func() error {
		c, err := d.byte()
		ev.Kind = Kind(c)
		return err
	}
	seq := func(fs ...func() error) error {
		for _, f := range fs {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	}
	args := func() error { return d.args(&ev.Args) }
	switch ev.Op {
	case OpBegin, OpEnd:
		return ev, seq(track, at, kind, args)
	case OpComplete:
		return ev, seq(track, at, func() error {
			v, err := d.uvarint()
			ev.Dur = time.Duration(v)
			return err
		}, kind, args)
	case OpCounter:
		return ev, seq(at, func() error {
			c, err := d.byte()
			ev.Counter = Counter(c)
			return err
		}, func() error {
			v, err := d.varint()
			ev.Value = v
			return err
		})
	case OpTrack:
		return ev, seq(track, func() error {
			s, err := d.string()
			ev.Name = s
			return err
		})
	case OpClock:
		return ev, seq(func() error {
			v, err := d.varint()
			ev.Offset = time.Duration(v)
			return err
		}, func() error {
			v, err := d.varint()
			ev.Bound = time.Duration(v)
			return err
		})
	case OpFull:
		return ev, at()
	case OpInstant:
		return ev, seq(track, at, func() error {
			s, err := d.string()
			ev.Name = s
			return err
		})
	}
	return ev, fmt.Errorf("unknown record type %d", op)
}
