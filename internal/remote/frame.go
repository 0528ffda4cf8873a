package remote

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

// The agent protocol; protocol.md in this directory is its specification.

// MaxFrame is the largest frame (type + payload) either side accepts. It
// holds one proc.MaxLine line with room to spare.
const MaxFrame = 8 << 20

// AgentVersion is the protocol version carried in Hello. Version 2 added
// the Ping frame, version 3 the program's hash in Start, version 4 the
// host's limits in Hello, version 5 the rendezvous relay (Relay, Rdv).
const AgentVersion = 5

// agentMagic opens the Hello frame.
const agentMagic = "dsmexec-agent"

// Frame types. The numbers are part of the protocol.
const (
	frameStart   byte = 0x01
	frameSignal  byte = 0x02
	frameStdin   byte = 0x03
	framePing    byte = 0x04
	frameRelay   byte = 0x05
	frameRdvDown byte = 0x06
	frameHello   byte = 0x80
	frameStarted byte = 0x81
	frameLine    byte = 0x82
	frameExit    byte = 0x83
	frameError   byte = 0x84
	frameRdvUp   byte = 0x85
)

// StdinFrames is the Start flag for a rank whose stdin comes from Stdin
// frames.
const StdinFrames = 1 << 0

// startSum is the Start flag for a frame that ends with the program's
// SHA-256 (hex), which the agent checks before it executes the program.
const startSum = 1 << 1

// Protocol errors.
var (
	ErrFrameTooLarge = errors.New("remote: agent frame too large")
	ErrBadFrame      = errors.New("remote: malformed agent frame")
)

// RankSpec is what a Start frame carries: one rank for the agent to run.
type RankSpec struct {
	Rank int
	Path string   // absolute, or relative to Dir
	Args []string // argv[1:]
	Env  []string // NAME=value, added to the agent's own environment
	Dir  string   // "" = the agent's working directory
	// Stdin: the rank's standard input comes from Client.Stdin; otherwise
	// it is /dev/null.
	Stdin bool
	// SHA256 (hex), if not empty, is the content hash Path must have: the
	// agent hashes the file and refuses to execute anything else. An
	// Agent's Start fills it in for a program its Host installed.
	SHA256 string
}

// Hello is the agent's first frame.
type Hello struct {
	Version  int
	Pid      int
	Hostname string
	GOARCH   string
	// NoFile is the agent's hard RLIMIT_NOFILE, to which it raised its
	// soft one (its ranks inherit it); Ports is the size of the host's
	// ephemeral port range. 0: unknown.
	NoFile uint64
	Ports  int
}

// RelaySpec is what a Relay frame carries: the agent accepts the
// rendezvous of the host's ranks itself and relays it over the agent
// stream (package rendezvous, Relay).
type RelaySpec struct {
	Size  int    // ranks in the job
	Token []byte // the job's token
	Ranks []int  // the ranks this agent will start
	// Reach is mpirun's address as this host reaches it: the relay listens
	// on this host's address on the way there, which is the address the
	// ranks then advertise to their peers (as they did when they talked to
	// mpirun directly).
	Reach string
}

// Started reports the pid of a rank the agent started.
type Started struct{ Rank, Pid int }

// frame is one decoded frame: its type and payload.
type frame struct {
	typ     byte
	payload []byte
}

// writeFrame writes one frame.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload)+1 > MaxFrame {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrFrameTooLarge, len(payload)+1, MaxFrame)
	}
	var h [5]byte
	binary.BigEndian.PutUint32(h[:4], uint32(len(payload)+1))
	h[4] = typ
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one frame, refusing lengths over max before allocating.
// A clean end of stream before a frame is io.EOF.
func readFrame(r io.Reader, max int) (frame, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:4]); err != nil {
		return frame{}, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n == 0 {
		return frame{}, fmt.Errorf("%w: zero length", ErrBadFrame)
	}
	if n > uint32(max) {
		return frame{}, fmt.Errorf("%w: %d bytes (max %d)", ErrFrameTooLarge, n, max)
	}
	if _, err := io.ReadFull(r, h[4:5]); err != nil {
		return frame{}, noEOF(err)
	}
	f := frame{typ: h[4], payload: make([]byte, n-1)}
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, noEOF(err)
	}
	return f, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// enc builds a payload.
type enc []byte

func (e enc) uv(v uint64) enc    { return binary.AppendUvarint(e, v) }
func (e enc) sv(v int64) enc     { return binary.AppendVarint(e, v) }
func (e enc) u8(v byte) enc      { return append(e, v) }
func (e enc) bytes(b []byte) enc { return append(e.uv(uint64(len(b))), b...) }
func (e enc) str(s string) enc   { return append(e.uv(uint64(len(s))), s...) }
func (e enc) int(v int) enc {
	if v < 0 {
		panic(fmt.Sprintf("remote: negative value %d in an unsigned field", v))
	}
	return e.uv(uint64(v))
}
func (e enc) list(l []string) enc {
	e = e.uv(uint64(len(l)))
	for _, s := range l {
		e = e.str(s)
	}
	return e
}
func (e enc) dur(d time.Duration) enc {
	if d < 0 {
		d = 0
	}
	return e.uv(uint64(d))
}

// dec reads a payload; the first error sticks and later reads return zero
// values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrBadFrame, what)
	}
}

func (d *dec) uv(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) sv(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a uv that must fit a non-negative int32 (ranks, pids).
func (d *dec) int(what string) int {
	v := d.uv(what)
	if v > 1<<31-1 {
		d.fail(what)
		return 0
	}
	return int(v)
}

func (d *dec) u8(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) bytes(what string) []byte {
	n := d.uv(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str(what string) string { return string(d.bytes(what)) }

func (d *dec) list(what string) []string {
	n := d.uv(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) { // every element takes at least one byte
		d.fail(what)
		return nil
	}
	var l []string
	for i := uint64(0); i < n && d.err == nil; i++ {
		l = append(l, d.str(what))
	}
	return l
}

func (d *dec) dur(what string) time.Duration {
	v := d.uv(what)
	if v > 1<<63-1 {
		d.fail(what)
		return 0
	}
	return time.Duration(v)
}

// done returns the first error, or an error if bytes are left over.
func (d *dec) done(typ byte) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d bytes after the fields", ErrBadFrame, len(d.b))
	}
	if d.err != nil {
		return fmt.Errorf("frame type %#x: %w", typ, d.err)
	}
	return nil
}

// Encoders and decoders, one pair per frame type.

func encodeStart(s RankSpec) []byte {
	var flags uint64
	if s.Stdin {
		flags |= StdinFrames
	}
	if s.SHA256 != "" {
		flags |= startSum
	}
	e := enc(nil).int(s.Rank).str(s.Path).list(s.Args).list(s.Env).str(s.Dir).uv(flags)
	if s.SHA256 != "" {
		e = e.str(s.SHA256)
	}
	return e
}

func decodeStart(p []byte) (RankSpec, error) {
	d := dec{b: p}
	s := RankSpec{
		Rank: d.int("rank"),
		Path: d.str("path"),
		Args: d.list("args"),
		Env:  d.list("env"),
		Dir:  d.str("dir"),
	}
	flags := d.uv("flags")
	if flags&^(StdinFrames|startSum) != 0 {
		d.fail("flags")
	}
	s.Stdin = flags&StdinFrames != 0
	if flags&startSum != 0 {
		if s.SHA256 = d.str("sha256"); !isHexSum(s.SHA256) {
			d.fail("sha256")
		}
	}
	return s, d.done(frameStart)
}

func encodeSignal(sig syscall.Signal) []byte { return enc(nil).int(int(sig)) }

func decodeSignal(p []byte) (syscall.Signal, error) {
	d := dec{b: p}
	sig := d.int("signal")
	if sig == 0 || sig > 64 {
		d.fail("signal")
	}
	return syscall.Signal(sig), d.done(frameSignal)
}

func encodeStdin(rank int, data []byte) []byte { return enc(nil).int(rank).bytes(data) }

func decodeStdin(p []byte) (int, []byte, error) {
	d := dec{b: p}
	rank := d.int("rank")
	data := d.bytes("data")
	return rank, data, d.done(frameStdin)
}

// maxIdle bounds the idle time a Ping may ask for (a day): larger values
// are malformed rather than silently "never".
const maxIdle = 24 * time.Hour

func encodePing(idle time.Duration) []byte {
	if idle < time.Millisecond || idle > maxIdle {
		panic(fmt.Sprintf("remote: ping idle time %v outside 1ms..%v", idle, maxIdle))
	}
	return enc(nil).uv(uint64(idle / time.Millisecond))
}

func decodePing(p []byte) (time.Duration, error) {
	d := dec{b: p}
	ms := d.uv("idle")
	if d.err == nil && (ms == 0 || ms > uint64(maxIdle/time.Millisecond)) {
		d.fail("idle")
	}
	return time.Duration(ms) * time.Millisecond, d.done(framePing)
}

func encodeHello(h Hello) []byte {
	return enc(nil).str(agentMagic).int(h.Version).int(h.Pid).str(h.Hostname).str(h.GOARCH).uv(h.NoFile).int(h.Ports)
}

func decodeHello(p []byte) (Hello, error) {
	d := dec{b: p}
	if d.str("magic") != agentMagic {
		d.fail("magic")
	}
	h := Hello{
		Version:  d.int("version"),
		Pid:      d.int("pid"),
		Hostname: d.str("hostname"),
		GOARCH:   d.str("goarch"),
	}
	if d.err == nil && h.Version != AgentVersion {
		// Another version's Hello may end differently: the client
		// reports the version mismatch, not a malformed frame.
		return h, nil
	}
	h.NoFile = d.uv("nofile")
	h.Ports = d.int("ports")
	return h, d.done(frameHello)
}

func encodeRelay(r RelaySpec) []byte {
	e := enc(nil).int(r.Size).bytes(r.Token).uv(uint64(len(r.Ranks)))
	for _, k := range r.Ranks {
		e = e.int(k)
	}
	return e.str(r.Reach)
}

func decodeRelay(p []byte) (RelaySpec, error) {
	d := dec{b: p}
	r := RelaySpec{Size: d.int("size"), Token: append([]byte(nil), d.bytes("token")...)}
	n := d.uv("ranks")
	if n > uint64(len(d.b)) { // at least a byte each
		d.fail("ranks")
		n = 0
	}
	for i := uint64(0); i < n; i++ {
		k := d.int("rank")
		if d.err == nil && k >= r.Size {
			d.fail("rank")
		}
		r.Ranks = append(r.Ranks, k)
	}
	r.Reach = d.str("reach")
	return r, d.done(frameRelay)
}

// encodeRdv and decodeRdv: one rendezvous.RelayFrame, either way.
func encodeRdv(f rendezvous.RelayFrame) []byte {
	return enc(nil).sv(int64(f.Rank)).u8(f.Type).bytes(f.Body)
}

func decodeRdv(p []byte, typ byte) (rendezvous.RelayFrame, error) {
	d := dec{b: p}
	rank := d.sv("rank")
	if rank < -1 || rank > 1<<31-1 {
		d.fail("rank")
	}
	f := rendezvous.RelayFrame{Rank: int(rank), Type: d.u8("type")}
	f.Body = append([]byte(nil), d.bytes("body")...)
	return f, d.done(typ)
}

func encodeStarted(s Started) []byte { return enc(nil).int(s.Rank).int(s.Pid) }

func decodeStarted(p []byte) (Started, error) {
	d := dec{b: p}
	s := Started{Rank: d.int("rank"), Pid: d.int("pid")}
	return s, d.done(frameStarted)
}

func encodeLine(l proc.Line) []byte {
	var partial byte
	if l.Partial {
		partial = 1
	}
	if l.More {
		partial = 3
	}
	return enc(nil).int(l.Rank).u8(byte(l.Stream)).u8(partial).bytes(l.Text)
}

func decodeLine(p []byte) (proc.Line, error) {
	d := dec{b: p}
	l := proc.Line{Rank: d.int("rank"), Stream: proc.Stream(d.u8("stream"))}
	if l.Stream != proc.Stdout && l.Stream != proc.Stderr {
		d.fail("stream")
	}
	switch d.u8("partial") {
	case 0:
	case 1:
		l.Partial = true
	case 3:
		l.Partial, l.More = true, true
	default:
		d.fail("partial")
	}
	if t := d.bytes("text"); t != nil {
		l.Text = append([]byte(nil), t...)
	}
	return l, d.done(frameLine)
}

func encodeExit(e proc.Exit) []byte {
	var msg string
	if e.Err != nil {
		msg = e.Err.Error()
	}
	maxrss := e.MaxRSS
	if maxrss < 0 {
		maxrss = 0
	}
	return enc(nil).int(e.Rank).int(e.Pid).sv(int64(e.Code)).int(int(e.Signal)).
		dur(e.Wall).dur(e.User).dur(e.Sys).uv(uint64(maxrss)).str(msg)
}

func decodeExit(p []byte) (proc.Exit, error) {
	d := dec{b: p}
	e := proc.Exit{Rank: d.int("rank"), Pid: d.int("pid")}
	code := d.sv("code")
	if code < -1<<31 || code > 1<<31-1 {
		d.fail("code")
	}
	e.Code = int(code)
	e.Signal = syscall.Signal(d.int("signal"))
	e.Wall = d.dur("wall")
	e.User = d.dur("user")
	e.Sys = d.dur("sys")
	rss := d.uv("maxrss")
	if rss > 1<<63-1 {
		d.fail("maxrss")
	}
	e.MaxRSS = int64(rss)
	if msg := d.str("err"); msg != "" {
		e.Err = &AgentError{Msg: msg}
	}
	return e, d.done(frameExit)
}

func encodeError(msg string) []byte { return enc(nil).str(msg) }

func decodeError(p []byte) (string, error) {
	d := dec{b: p}
	s := d.str("text")
	return s, d.done(frameError)
}

// AgentError is an error reported by a remote agent, as text.
type AgentError struct {
	Host string // set by the client when known
	Msg  string
}

func (e *AgentError) Error() string {
	if e.Host == "" {
		return e.Msg
	}
	return e.Host + ": " + e.Msg
}

// isHexSum reports whether s is a SHA-256 in lower-case hex.
func isHexSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}
