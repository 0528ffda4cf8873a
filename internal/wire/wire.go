package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Version is the protocol version carried in every header.
const Version = 1

// HeaderSize is the size of the fixed frame header in bytes.
const HeaderSize = 12

// MaxBody is the largest body a frame may carry. Larger user messages are
// split into several frames with FlagMore set on all but the last.
const MaxBody = 16 << 20

// Channel says which part of a rank a frame is for.
type Channel uint8

// Channels. The numbers are part of the wire format.
const (
	ChanControl    Channel = 0 // handshake, finalize, rendezvous
	ChanUser       Channel = 1 // Send/Recv
	ChanBarrier    Channel = 2 // barrier package
	ChanCollective Channel = 3 // Bcast, Reduce, ...
	ChanDSM        Channel = 4 // coherence protocol
	numChannels            = 5
)

func (c Channel) String() string {
	switch c {
	case ChanControl:
		return "control"
	case ChanUser:
		return "user"
	case ChanBarrier:
		return "barrier"
	case ChanCollective:
		return "collective"
	case ChanDSM:
		return "dsm"
	}
	return fmt.Sprintf("channel(%d)", uint8(c))
}

// Flags in the header.
const (
	// FlagMore marks a fragment of a message that continues in the next
	// frame of the same channel from the same source.
	FlagMore   uint8 = 1 << 0
	flagsKnown       = FlagMore
)

// Errors returned by the decoder.
var (
	ErrVersion  = errors.New("wire: unsupported protocol version")
	ErrTooLarge = errors.New("wire: frame body too large")
	ErrChannel  = errors.New("wire: unknown channel")
	ErrFlags    = errors.New("wire: unknown flags")
)

// Header is the fixed 12-byte frame header:
//
//	0  version  u8
//	1  channel  u8
//	2  type     u8
//	3  flags    u8
//	4  source   u32 big endian (sender's rank)
//	8  length   u32 big endian (body bytes that follow)
type Header [HeaderSize]byte

// MakeHeader builds a header.
func MakeHeader(ch Channel, typ uint8, flags uint8, src int, n int) Header {
	var h Header
	h[0] = Version
	h[1] = uint8(ch)
	h[2] = typ
	h[3] = flags
	binary.BigEndian.PutUint32(h[4:], uint32(src))
	binary.BigEndian.PutUint32(h[8:], uint32(n))
	return h
}

func (h *Header) Version() uint8   { return h[0] }
func (h *Header) Channel() Channel { return Channel(h[1]) }
func (h *Header) Type() uint8      { return h[2] }
func (h *Header) Flags() uint8     { return h[3] }
func (h *Header) Source() int      { return int(binary.BigEndian.Uint32(h[4:])) }
func (h *Header) Len() int         { return int(binary.BigEndian.Uint32(h[8:])) }
func (h *Header) setLen(n int)     { binary.BigEndian.PutUint32(h[8:], uint32(n)) }
func (h *Header) String() string {
	return fmt.Sprintf("v%d %s type=%d flags=%#x src=%d len=%d", h.Version(), h.Channel(), h.Type(), h.Flags(), h.Source(), h.Len())
}

// Check validates a header before its body is read (and allocated).
func (h *Header) Check(max int) error {
	if h.Version() != Version {
		return fmt.Errorf("%w %d (want %d)", ErrVersion, h.Version(), Version)
	}
	if h.Channel() >= numChannels {
		return fmt.Errorf("%w %d", ErrChannel, h[1])
	}
	if h.Flags()&^flagsKnown != 0 {
		return fmt.Errorf("%w %#x", ErrFlags, h.Flags())
	}
	if n := h.Len(); n > max {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, max)
	}
	return nil
}

// Frame is one decoded frame.
type Frame struct {
	Channel Channel
	Type    uint8
	Flags   uint8
	Source  int
	Body    []byte
}

// Header returns the frame's header.
func (f *Frame) Header() Header {
	return MakeHeader(f.Channel, f.Type, f.Flags, f.Source, len(f.Body))
}

// AppendFrame appends the encoding of f to b.
func AppendFrame(b []byte, f *Frame) []byte {
	h := f.Header()
	b = append(b, h[:]...)
	return append(b, f.Body...)
}

// ReadFrame reads one frame from r. Bodies longer than max are refused
// before any allocation. A clean end of stream before a header is io.EOF;
// inside a frame it is io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, max int) (Frame, error) {
	var h Header
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	if err := h.Check(max); err != nil {
		return Frame{}, err
	}
	f := Frame{Channel: h.Channel(), Type: h.Type(), Flags: h.Flags(), Source: h.Source()}
	if n := h.Len(); n > 0 {
		f.Body = make([]byte, n)
		if _, err := io.ReadFull(r, f.Body); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
	}
	return f, nil
}

// Writer writes whole frames to one connection. It is safe for concurrent
// use and never interleaves two frames: the old C system corrupted pages
// because two threads wrote one socket.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	src int
	buf []byte
	err error // first write error; later writes fail at once
}

// NewWriter returns a Writer stamping frames with source rank src.
func NewWriter(w io.Writer, src int) *Writer {
	return &Writer{w: w, src: src}
}

// smallFrame is the size up to which header and body are copied into one
// buffer (one write call); bigger bodies go out with writev.
const smallFrame = 16 << 10

// Write sends one frame made of the concatenation of parts as its body.
// Bodies longer than MaxBody are refused; use WriteMessage to fragment.
func (w *Writer) Write(ch Channel, typ uint8, flags uint8, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > MaxBody {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, n, MaxBody)
	}
	h := MakeHeader(ch, typ, flags, w.src, n)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	var err error
	if n <= smallFrame {
		b := append(w.buf[:0], h[:]...)
		for _, p := range parts {
			b = append(b, p...)
		}
		w.buf = b
		_, err = w.w.Write(b)
	} else {
		bufs := make(net.Buffers, 0, 1+len(parts))
		bufs = append(bufs, h[:])
		for _, p := range parts {
			if len(p) > 0 {
				bufs = append(bufs, p)
			}
		}
		_, err = bufs.WriteTo(w.w)
	}
	if err != nil {
		w.err = err
	}
	return err
}

// WriteMessage sends prefix+body as one logical message, split into frames
// of at most MaxBody bytes with FlagMore on all but the last. The fragments
// of one message are never interleaved with other frames of this Writer.
func (w *Writer) WriteMessage(ch Channel, typ uint8, prefix, body []byte) error {
	if len(prefix)+len(body) <= MaxBody {
		return w.Write(ch, typ, 0, prefix, body)
	}
	if len(prefix) > MaxBody {
		return fmt.Errorf("%w: prefix of %d bytes", ErrTooLarge, len(prefix))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	first := true
	for first || len(body) > 0 {
		room := MaxBody
		var parts net.Buffers
		if first {
			room -= len(prefix)
		}
		k := min(room, len(body))
		flags := uint8(0)
		if k < len(body) {
			flags = FlagMore
		}
		n := k
		if first {
			n += len(prefix)
		}
		h := MakeHeader(ch, typ, flags, w.src, n)
		parts = append(parts, h[:])
		if first && len(prefix) > 0 {
			parts = append(parts, prefix)
		}
		if k > 0 {
			parts = append(parts, body[:k])
		}
		if _, err := parts.WriteTo(w.w); err != nil {
			w.err = err
			return err
		}
		body = body[k:]
		first = false
	}
	return nil
}

// MaxMessage bounds the total size of a fragmented message.
const MaxMessage = 1 << 30

// ReadMessage reads one logical message: a frame, or a run of fragments
// (FlagMore) from one Writer, reassembled. The returned frame has no flags.
func ReadMessage(r io.Reader) (Frame, error) {
	f, err := ReadFrame(r, MaxBody)
	if err != nil || f.Flags&FlagMore == 0 {
		return f, err
	}
	body := f.Body
	for {
		g, err := ReadFrame(r, MaxBody)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
		if g.Channel != f.Channel || g.Type != f.Type || g.Source != f.Source {
			return Frame{}, fmt.Errorf("wire: fragment of a %s message interrupted by a %s frame", f.Channel, g.Channel)
		}
		if len(body)+len(g.Body) > MaxMessage {
			return Frame{}, fmt.Errorf("%w: message over %d bytes", ErrTooLarge, MaxMessage)
		}
		body = append(body, g.Body...)
		if g.Flags&FlagMore == 0 {
			f.Body = body
			f.Flags = 0
			return f, nil
		}
	}
}

// User messages (channel ChanUser, type TypeUserMessage) travel as one
// frame, or as a run of fragments with FlagMore on all but the last. The
// first frame's body starts with a UserPrefixSize-byte prefix:
//
//	0  context  u32 big endian (the communicator's matching context)
//	4  tag      u64 big endian (the full int; tags are >= 0)
//	12 total    u64 big endian (payload bytes of the whole message)
//
// followed by the start of the payload; later fragments carry payload
// only. The total lets a receiver place the payload in one buffer (the
// receive's own, or one allocation) as it arrives.
const (
	TypeUserMessage uint8 = 1
	UserPrefixSize        = 20
	// MaxUserMessage is the largest user message (64 GiB); a larger one
	// is refused by the sender.
	MaxUserMessage = 64 << 30
)

// PutUserPrefix writes a user message prefix into b[:UserPrefixSize].
func PutUserPrefix(b []byte, context uint32, tag int64, total int64) {
	_ = b[UserPrefixSize-1]
	binary.BigEndian.PutUint32(b[0:], context)
	binary.BigEndian.PutUint64(b[4:], uint64(tag))
	binary.BigEndian.PutUint64(b[12:], uint64(total))
}

// ParseUserPrefix reads a user message prefix; it refuses a negative tag
// and a total over MaxUserMessage.
func ParseUserPrefix(b []byte) (context uint32, tag int64, total int64, err error) {
	if len(b) < UserPrefixSize {
		return 0, 0, 0, fmt.Errorf("wire: user message prefix of %d bytes (want %d)", len(b), UserPrefixSize)
	}
	context = binary.BigEndian.Uint32(b[0:])
	tag = int64(binary.BigEndian.Uint64(b[4:]))
	t := binary.BigEndian.Uint64(b[12:])
	if tag < 0 {
		return 0, 0, 0, fmt.Errorf("wire: user message with negative tag %d", tag)
	}
	if t > MaxUserMessage {
		return 0, 0, 0, fmt.Errorf("%w: user message of %d bytes (max %d)", ErrTooLarge, t, int64(MaxUserMessage))
	}
	return context, tag, int64(t), nil
}
