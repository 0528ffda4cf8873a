package trace

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultLimit is the default bound on one recorder's encoded events
// (mpirun -trace-limit).
const DefaultLimit = 256 << 20

// chunkSize is the size of the buffers records are appended to: the
// buffer grows a chunk at a time (never by copying what is recorded), so
// the memory in use is at most the limit plus one chunk.
const chunkSize = 64 << 10

// maxName bounds the strings a record carries (track and instant names).
const maxName = 200

// Config describes the process a recorder records for; it goes in the
// stream's header.
type Config struct {
	Rank, Size int
	Host       string
	PID        int
	Role       string // "rank" or "pager": which process of the rank wrote the stream
	Limit      int64  // bytes; 0 means DefaultLimit
	// Warn is called once, without locks held, when the limit is reached.
	Warn func(msg string)
}

// Recorder records one process's events into a bounded buffer. A nil
// *Recorder is valid and records nothing: every method starts with a nil
// check the compiler inlines into the caller, which is the whole cost of
// tracing when it is off.
//
// Recording is cheap because it does little: a call reads the monotonic
// clock, reserves a slot with one atomic add (no lock), writes its record
// there (64 bytes, one cache line) and marks the slot done. Slots live in
// a ring of ringBlocks blocks that are reused, so a recording goroutine
// writes to memory that stays in cache and allocates nothing. The
// encoding into the stream (varints, deltas, track names, the limit) is
// deferred and batched: the pump encodes what is there every 200 ms; a
// goroutine that starts a block while half the ring waits encodes one
// block's worth itself (no other thread is woken: on a host whose CPUs
// spin for messages, waking one costs more than the encoding); one that
// finds the ring full encodes it all. docs/TRACING.md section 3 has the
// numbers.
//
// All methods are safe for concurrent use.
type Recorder struct {
	cfg   Config
	start time.Time // with its monotonic reading: times are time.Since(start)
	limit int64
	full  atomic.Bool
	flows atomic.Uint64
	ctr   [counterCount]atomic.Int64

	seq  atomic.Uint64                     // slots reserved; slot n is in block n/blockSlots
	ring [ringBlocks]atomic.Pointer[block] // block k is at ring[k%ringBlocks] while it holds k
	last atomic.Pointer[lastTrack]         // the last goroutine's track (see track)

	smu    sync.Mutex
	stacks map[uintptr]stackEntry // goroutine id by stack granule, see track
	byID   map[uint32][]uintptr   // the keys of stacks per id

	mu       sync.Mutex
	enc      uint64   // slots encoded: every slot before it is in the stream
	chunks   [][]byte // the encoded stream not yet drained; the last one is being filled
	scratch  []byte   // a track name being encoded
	total    int64    // bytes ever encoded, header included
	lastT    int64    // time of the previous timed record, ns since start
	tracks   map[uint32]bool
	nextName uint32
	warned   bool
	warning  string // the limit's warning, to print once the lock is released
}

// slot is one record as the caller made it, before encoding: 64 bytes.
// The arguments of a Send or Recv are packed in it; a fault's or lock's
// use the same fields (form, below); anything else goes to ext.
type slot struct {
	op    Op
	kind  Kind
	ctr   Counter
	form  uint8 // formPacked, formMem or formExt: where the Args are
	track uint32
	peer  int32 // formMem: From
	tag   int32 // formMem: Lock
	t     int64 // ns since start; OpClock: the offset
	dur   int64 // OpComplete: the duration; OpCounter: the value; OpClock: the bound
	bytes int64 // formMem: Page
	flow  uint64
	comm  int32
	acc   Access // formMem: Access
	ext   *ext   // formExt, and names (OpTrack, OpInstant)
}

type ext struct {
	a    Args
	name string
}

// Where a slot keeps its Args.
const (
	formPacked = iota // peer, tag, comm, bytes, flow
	formMem           // page, access, from, lock, comm
	formExt           // ext.a
)

func fits32(v int) bool { return v == int(int32(v)) }

// setArgs packs a into s.
func (s *slot) setArgs(a *Args) {
	switch {
	case a.Page == 0 && a.Access == 0 && a.From == 0 && a.Lock == 0 && fits32(a.Peer) && fits32(a.Tag) && fits32(a.Comm):
		s.peer, s.tag, s.comm, s.bytes, s.flow = int32(a.Peer), int32(a.Tag), int32(a.Comm), a.Bytes, a.Flow
	case a.Peer == 0 && a.Tag == 0 && a.Bytes == 0 && a.Flow == 0 && fits32(a.From) && fits32(a.Lock) && fits32(a.Comm):
		s.form, s.bytes, s.acc, s.peer, s.tag, s.comm = formMem, a.Page, a.Access, int32(a.From), int32(a.Lock), int32(a.Comm)
	default:
		s.form, s.ext = formExt, &ext{a: *a}
	}
}

// args unpacks the slot's Args.
func (s *slot) args() Args {
	switch s.form {
	case formMem:
		return Args{Page: s.bytes, Access: s.acc, From: int(s.peer), Lock: int(s.tag), Comm: int(s.comm)}
	case formExt:
		return s.ext.a
	}
	return Args{Peer: int(s.peer), Tag: int(s.tag), Comm: int(s.comm), Bytes: s.bytes, Flow: s.flow}
}

// appendArgs encodes the slot's Args.
func (s *slot) appendArgs(b []byte) []byte {
	a := s.args()
	return appendArgs(b, &a)
}

// blockSlots is the number of records in a block (32 KiB).
const blockSlots = 512

// ringBlocks is the number of blocks of the ring (2 MiB): the unencoded
// records a recorder holds at most.
const ringBlocks = 64

// A block holds blockSlots consecutive slots, those of block number
// no-1; it is reused for block no-1+ringBlocks once all of them are
// encoded.
type block struct {
	slots [blockSlots]slot
	done  [blockSlots]atomic.Uint32 // set once the slot is written
	no    atomic.Uint64             // the block number it holds, plus one
}

// New starts a recorder. Its clock starts now; the header records the
// wall-clock time of the start.
func New(cfg Config) *Recorder {
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Role == "" {
		cfg.Role = "rank"
	}
	r := &Recorder{cfg: cfg, start: time.Now(), limit: cfg.Limit, tracks: map[uint32]bool{}, stacks: map[uintptr]stackEntry{}, byID: map[uint32][]uintptr{}, nextName: namedTrackBase}
	h := appendHeader(nil, header{
		Rank: cfg.Rank, Size: cfg.Size, PID: cfg.PID, Host: cfg.Host, Role: cfg.Role,
		Start: r.start,
	})
	r.chunks = [][]byte{append(make([]byte, 0, chunkSize), h...)}
	r.total = int64(len(h))
	return r
}

// On says whether r records (r is not nil and not full). Use it to skip
// computing arguments that cost something.
func (r *Recorder) On() bool { return r != nil && !r.full.Load() }

// Rank is the rank r records for.
func (r *Recorder) Rank() int { return r.cfg.Rank }

// Span is a slice begun with Begin; End ends it. The zero Span (from a nil
// or full recorder) does nothing.
type Span struct {
	r     *Recorder
	track uint32
	kind  Kind
}

// Begin starts a slice of kind k on the calling goroutine's track.
func (r *Recorder) Begin(k Kind, a Args) Span {
	if r == nil {
		return Span{}
	}
	return r.begin(0, k, a)
}

// BeginOn starts a slice on a track the caller chose (NewTrack), for a
// goroutine that stands for something else (the page server's fault path).
func (r *Recorder) BeginOn(track uint32, k Kind, a Args) Span {
	if r == nil {
		return Span{}
	}
	return r.begin(track, k, a)
}

// End ends the slice with its results (bytes received, actual source,
// matched flow id); fields given at Begin need not be repeated.
func (s Span) End(a Args) {
	if s.r != nil {
		s.r.end(s, a)
	}
}

// Complete records a whole slice that began at start and ended at end on
// track (0: the calling goroutine's track).
func (r *Recorder) Complete(track uint32, k Kind, start, end time.Time, a Args) {
	if r == nil {
		return
	}
	r.complete(track, k, start, end, a)
}

// NewFlow returns an id, unique in the job, for a message about to be
// sent: record it in the Send's Args.Flow, carry it in the message, and
// record it in the matching receive's End. 0 when r is nil.
func (r *Recorder) NewFlow() uint64 {
	if r == nil {
		return 0
	}
	return uint64(r.cfg.Rank+1)<<40 | r.flows.Add(1)
}

// Count records that counter c has value v from now on.
func (r *Recorder) Count(c Counter, v int64) {
	if r == nil {
		return
	}
	r.count(c, v)
}

// CountAt records that counter c had value v from time t on (samples
// taken elsewhere and recorded later, such as the page server's; record
// one counter's samples in time order).
func (r *Recorder) CountAt(c Counter, v int64, t time.Time) {
	if r == nil {
		return
	}
	r.countAt(c, v, t)
}

// Add adds d to counter c and records the new value.
func (r *Recorder) Add(c Counter, d int64) {
	if r == nil {
		return
	}
	r.add(c, d)
}

// add is kept out of line so that Add, a nil check, inlines.
//
//go:noinline
func (r *Recorder) add(c Counter, d int64) {
	if c < counterCount {
		r.count(c, r.ctr[c].Add(d))
	}
}

// Instant records a point event on the calling goroutine's track.
func (r *Recorder) Instant(name string) {
	if r == nil {
		return
	}
	r.instant(name)
}

func (r *Recorder) instant(name string) {
	if r.full.Load() {
		return
	}
	t := r.now()
	track := r.track()
	b, i := r.reserve()
	b.slots[i] = slot{op: OpInstant, track: track, t: t, ext: &ext{name: name}}
	b.done[i].Store(1)
}

// SetClock records this process's clock offset from the job's reference
// clock (Offset computes it): the merge subtracts it from every time.
func (r *Recorder) SetClock(offset, bound time.Duration) {
	if r == nil || r.full.Load() {
		return
	}
	b, i := r.reserve()
	b.slots[i] = slot{op: OpClock, t: int64(offset), dur: int64(bound)}
	b.done[i].Store(1)
}

// NewTrack names a track for BeginOn and Complete ("page server").
func (r *Recorder) NewTrack(name string) uint32 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	id := r.nextName
	r.nextName++
	r.mu.Unlock()
	// Any record on the track is reserved after this one: the name comes
	// first in the stream.
	b, i := r.reserve()
	b.slots[i] = slot{op: OpTrack, track: id, ext: &ext{name: name}}
	b.done[i].Store(1)
	return id
}

// Drain returns the records made since the last Drain (the first one
// starts with the stream header) and forgets them. Pieces returned by
// successive calls, concatenated in order, are the stream; any prefix of
// the stream that ends between two pieces decodes completely, and a
// prefix cut anywhere decodes to the records before the cut.
func (r *Recorder) Drain() []byte {
	if r == nil {
		return nil
	}
	chunks := r.drainChunks()
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	out := make([]byte, 0, n)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out
}

// drainChunks is Drain without copying: the chunks themselves (the
// recorder forgets them), in order, none empty.
func (r *Recorder) drainChunks() [][]byte {
	r.mu.Lock()
	r.encodeLocked(^uint64(0))
	out := r.chunks
	if len(out[len(out)-1]) == 0 {
		out = out[:len(out)-1]
	}
	r.chunks = [][]byte{make([]byte, 0, chunkSize)}
	w := r.takeWarningLocked()
	r.mu.Unlock()
	r.warn(w)
	return out
}

// Total is the number of bytes recorded so far, drained or not.
func (r *Recorder) Total() int64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	r.encodeLocked(^uint64(0))
	n := r.total
	w := r.takeWarningLocked()
	r.mu.Unlock()
	r.warn(w)
	return n
}

// now is the time since the recorder's start: one read of the monotonic
// clock (time.Since of a time with a monotonic reading reads no wall
// clock).
func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *Recorder) begin(track uint32, k Kind, a Args) Span {
	if r.full.Load() {
		return Span{}
	}
	t := r.now()
	if track == 0 {
		track = r.track()
	}
	b, i := r.reserve()
	s := slot{op: OpBegin, kind: k, track: track, t: t}
	s.setArgs(&a)
	b.slots[i] = s
	b.done[i].Store(1)
	return Span{r: r, track: track, kind: k}
}

func (r *Recorder) end(sp Span, a Args) {
	if r.full.Load() {
		return
	}
	t := r.now()
	b, i := r.reserve()
	s := slot{op: OpEnd, kind: sp.kind, track: sp.track, t: t}
	s.setArgs(&a)
	b.slots[i] = s
	b.done[i].Store(1)
}

func (r *Recorder) complete(track uint32, k Kind, start, end time.Time, a Args) {
	if r.full.Load() {
		return
	}
	d := end.Sub(start)
	if d < 0 {
		d = 0
	}
	if track == 0 {
		track = r.track()
	}
	b, i := r.reserve()
	s := slot{op: OpComplete, kind: k, track: track, t: int64(start.Sub(r.start)), dur: int64(d)}
	s.setArgs(&a)
	b.slots[i] = s
	b.done[i].Store(1)
}

func (r *Recorder) count(c Counter, v int64) {
	if r.full.Load() {
		return
	}
	t := r.now()
	b, i := r.reserve()
	b.slots[i] = slot{op: OpCounter, ctr: c, t: t, dur: v}
	b.done[i].Store(1)
}

func (r *Recorder) countAt(c Counter, v int64, at time.Time) {
	if r.full.Load() {
		return
	}
	b, i := r.reserve()
	b.slots[i] = slot{op: OpCounter, ctr: c, t: int64(at.Sub(r.start)), dur: v}
	b.done[i].Store(1)
}

// reserve returns the block and index of a slot to fill. The block is looked up in the ring; the first caller
// of a block's slots (or one that finds the ring full) installs it.
func (r *Recorder) reserve() (*block, uint64) {
	n := r.seq.Add(1) - 1
	k := n / blockSlots
	b := r.ring[k%ringBlocks].Load()
	if b == nil || b.no.Load() != k+1 {
		b = r.install(k)
	}
	return b, n % blockSlots
}

// install makes block k current in the ring: a new block, or the one
// that held k-ringBlocks once all of its slots are encoded (encoding
// them here if the pump has not; waiting for a goroutine still writing
// one of them).
func (r *Recorder) install(k uint64) *block {
	for {
		r.mu.Lock()
		b := r.ring[k%ringBlocks].Load()
		if b != nil && b.no.Load() == k+1 {
			r.mu.Unlock()
			return b
		}
		if b != nil && b.no.Load() > k+1 {
			panic(fmt.Sprintf("trace: block %d reserved after block %d took its place", k, b.no.Load()-1))
		}
		if b != nil {
			r.encodeLocked(^uint64(0))
		}
		if b == nil || r.enc >= b.no.Load()*blockSlots {
			if b == nil {
				b = new(block)
			} else {
				for i := range b.done {
					b.done[i].Store(0)
				}
			}
			b.no.Store(k + 1)
			r.ring[k%ringBlocks].Store(b)
			if k >= r.enc/blockSlots+ringBlocks/2 {
				// Records pile up (a busy rank, a pump that did not
				// run): encode a block's worth now, a little at a
				// time rather than the whole ring once it is full.
				r.encodeLocked(blockSlots)
			}
			w := r.takeWarningLocked()
			r.mu.Unlock()
			r.warn(w)
			return b
		}
		// A slot of the old block is still being written.
		r.mu.Unlock()
		runtime.Gosched()
	}
}

// encodeLocked encodes the records made so far into the stream, in the
// order their slots were reserved, up to the first slot still being
// written (the rest waits for the next call).
func (r *Recorder) encodeLocked(most uint64) {
	for end := r.enc + min(most, 1<<62); r.enc < r.seq.Load() && r.enc < end; {
		k := r.enc / blockSlots
		b := r.ring[k%ringBlocks].Load()
		if b == nil || b.no.Load() != k+1 {
			return // its first writer is on its way to install it
		}
		i := r.enc % blockSlots
		if b.done[i].Load() == 0 {
			return
		}
		r.encodeSlotLocked(&b.slots[i])
		b.slots[i].ext = nil
		r.enc++
	}
}

// encodeSlotLocked appends one record to the stream, naming a goroutine's
// track the first time it appears.
func (r *Recorder) encodeSlotLocked(s *slot) {
	if r.warned {
		return
	}
	switch s.op {
	case OpBegin, OpEnd, OpComplete, OpInstant:
		if !r.tracks[s.track] && s.track < namedTrackBase {
			r.tracks[s.track] = true
			name := fmt.Sprintf("goroutine %d", s.track)
			if s.track == 1 {
				name = "main"
			}
			r.appendLocked(appendTrack(r.scratch[:0], s.track, name), s.t)
		}
	}
	// The record is encoded in place at the end of the last chunk; it
	// stays there if it fits the limit.
	c := r.chunks[len(r.chunks)-1]
	if cap(c)-len(c) < maxRecord {
		c = make([]byte, 0, chunkSize)
		r.chunks = append(r.chunks, c)
	}
	start, lastT := len(c), r.lastT
	b := append(c, byte(s.op))
	switch s.op {
	case OpBegin, OpEnd:
		b = binary.AppendUvarint(b, uint64(s.track))
		b = binary.AppendVarint(b, r.deltaLocked(s.t))
		b = append(b, byte(s.kind))
		b = s.appendArgs(b)
	case OpComplete:
		b = binary.AppendUvarint(b, uint64(s.track))
		b = binary.AppendVarint(b, r.deltaLocked(s.t))
		b = binary.AppendUvarint(b, uint64(s.dur))
		b = append(b, byte(s.kind))
		b = s.appendArgs(b)
	case OpCounter:
		b = binary.AppendVarint(b, r.deltaLocked(s.t))
		b = append(b, byte(s.ctr))
		b = binary.AppendVarint(b, s.dur)
	case OpInstant:
		b = binary.AppendUvarint(b, uint64(s.track))
		b = binary.AppendVarint(b, r.deltaLocked(s.t))
		b = appendString(b, s.ext.name)
	case OpClock:
		b = binary.AppendVarint(b, s.t)
		b = binary.AppendVarint(b, s.dur)
	case OpTrack:
		r.tracks[s.track] = true
		b = appendTrack(b[:start], s.track, s.ext.name)
	default:
		panic(fmt.Sprintf("trace: slot with op %d", s.op))
	}
	n := int64(len(b) - start)
	if r.total+n > r.limit-fullReserve {
		r.lastT = lastT
		r.fullLocked(s.t)
		return
	}
	r.chunks[len(r.chunks)-1] = b
	r.total += n
}

// maxRecord bounds one encoded record: the largest is an instant or a
// track with a name of maxName bytes.
const maxRecord = 2*binary.MaxVarintLen64 + maxName + 16

// deltaLocked turns t (ns since start) into the encoding's time: ns since
// the previous timed record (negative when a goroutine took its time
// before another that recorded first).
func (r *Recorder) deltaLocked(t int64) int64 {
	d := t - r.lastT
	r.lastT = t
	return d
}

// fullReserve is room kept for the OpFull record.
const fullReserve = 16

// appendLocked appends one encoded record, or, when it would pass the
// limit, records OpFull (at t, the first record's time that did not fit)
// instead and stops recording; the warning is left for
// takeWarningLocked.
func (r *Recorder) appendLocked(b []byte, t int64) {
	if r.warned {
		return
	}
	if r.total+int64(len(b)) > r.limit-fullReserve {
		r.fullLocked(t)
		return
	}
	r.put(b)
}

// fullLocked records OpFull at t and stops recording.
func (r *Recorder) fullLocked(t int64) {
	r.full.Store(true)
	r.warned = true
	f := []byte{byte(OpFull)}
	f = binary.AppendVarint(f, r.deltaLocked(max(t, r.lastT)))
	r.put(f)
	r.warning = fmt.Sprintf("trace: rank %d: the trace reached its limit of %d bytes; recording stopped (raise it with mpirun -trace-limit)", r.cfg.Rank, r.limit)
}

// takeWarningLocked returns the limit's warning the first time after it
// was reached, "" otherwise.
func (r *Recorder) takeWarningLocked() string {
	w := r.warning
	r.warning = ""
	return w
}

func (r *Recorder) put(b []byte) {
	c := r.chunks[len(r.chunks)-1]
	if len(c)+len(b) > cap(c) {
		n := chunkSize
		if len(b) > n {
			n = len(b)
		}
		c = make([]byte, 0, n)
		r.chunks = append(r.chunks, c)
	}
	r.chunks[len(r.chunks)-1] = append(c, b...)
	r.total += int64(len(b))
}

func (r *Recorder) warn(msg string) {
	if msg != "" && r.cfg.Warn != nil {
		r.cfg.Warn(msg)
	}
}

// lastTrack is the one-entry track cache: the last goroutine that asked
// the runtime its id, at stack granule key, when the process had ngo
// goroutines.
type lastTrack struct {
	key   uintptr
	id    uint32
	ngo   int
	limit uint32 // uses before the next check (as the map entry's)
	uses  atomic.Uint32
}

// track is the calling goroutine's track: its id. Asking the runtime
// (goroutineTrack) costs microseconds, so the answer is cached by the
// address of the caller's stack frame (stackKey, taken in track's own
// frame, which every recording call reaches at the same depth):
// goroutines have disjoint stacks, so a goroutine calling from the same
// depth finds its entry.
//
// The last goroutine's answer is kept in one entry read without a lock,
// so a goroutine that records over and over (the common case: one
// goroutine making calls) costs a load, two compares and an add; the
// entry is trusted while the number of goroutines is what it was (a
// goroutine that ended leaves its stack to be reused by another, which
// would find the dead one's entry) and for verifyEvery uses. Goroutines
// that take turns use the map (under smu), whose entries are checked
// every verifyEvery uses.
//
// The price: a goroutine that reuses memory another one's stack had
// (that goroutine ended, or its stack grew and moved) can be shown on
// the other's track until the entry's next check; the merge keeps such
// slices valid by giving overlapping ones their own lane. The key is
// taken again after asking the runtime, which may have grown (moved) the
// stack.
//
//go:noinline
func (r *Recorder) track() uint32 {
	key := stackKey()
	if e := r.last.Load(); e != nil && e.key == key {
		if e.uses.Add(1) <= e.limit && runtime.NumGoroutine() == e.ngo {
			return e.id
		}
	} else {
		r.smu.Lock()
		id, ok := r.cachedLocked(key)
		r.smu.Unlock()
		if ok {
			return id
		}
	}
	id := goroutineTrack()
	key = stackKey()
	r.smu.Lock()
	limit := r.learnLocked(key, id)
	r.smu.Unlock()
	r.last.Store(&lastTrack{key: key, id: id, ngo: runtime.NumGoroutine(), limit: limit})
	return id
}

// namedTrackBase is the first id NewTrack hands out: above any goroutine id
// a process will reach.
const namedTrackBase = 1 << 31

// stackGranule is the granularity track maps stack addresses at:
// the smallest goroutine stack (2 KiB). Stacks are powers of two of at
// least that, aligned to it, so a granule never holds two stacks.
const stackGranule = 11

// verifyEvery: a cached goroutine id is checked against the runtime after
// this many uses, so that a stack reused by another goroutine is noticed.
const verifyEvery = 256

// stackEntry is a cached id; it is checked after limit uses, a limit that
// starts at 1 and doubles with each check the entry passes, up to
// verifyEvery: an entry learned by a goroutine whose stack moved right
// after (its memory taken by another goroutine at once) is caught soon,
// one that proved right costs a check every verifyEvery uses.
type stackEntry struct {
	id, hits, limit uint32
	ngo             int // runtime.NumGoroutine() when learned: checked again when it changed
}

// cachedLocked (smu held) looks the caller's stack granule up; it says no when the
// entry is due for a check.
func (r *Recorder) cachedLocked(key uintptr) (uint32, bool) {
	e, ok := r.stacks[key]
	if !ok || e.hits >= e.limit || e.ngo != runtime.NumGoroutine() {
		return 0, false
	}
	e.hits++
	r.stacks[key] = e
	return e.id, true
}

// learnLocked (smu held) records that the goroutine at stack granule key
// is id. A key new to the cache means the goroutine calls from another
// depth, or its stack moved: then its other keys are checked at their
// next use (a moved stack's memory can be taken by another goroutine,
// which would find this one's entry).
func (r *Recorder) learnLocked(key uintptr, id uint32) uint32 {
	if len(r.stacks) >= maxStacks {
		clear(r.stacks)
		clear(r.byID)
	}
	old, ok := r.stacks[key]
	if !ok {
		keys := r.byID[id]
		for _, k := range keys {
			if e, ok := r.stacks[k]; ok && e.id == id {
				e.hits = e.limit
				r.stacks[k] = e
			}
		}
		if len(keys) >= 8 {
			keys = keys[:0]
		}
		r.byID[id] = append(keys, key)
	}
	limit := uint32(1)
	if ok && old.id == id {
		limit = min(2*old.limit, verifyEvery)
	}
	r.stacks[key] = stackEntry{id: id, limit: limit, ngo: runtime.NumGoroutine()}
	return limit
}

// maxStacks bounds the stack cache; it is emptied when it grows past.
const maxStacks = 1 << 14

// stackKey is the stack granule of the caller's frame.
//
//go:noinline
func stackKey() uintptr {
	var probe byte
	return uintptr(unsafe.Pointer(&probe)) >> stackGranule
}

// goroutineTrack is the calling goroutine's id, the track its slices go
// on. Go does not expose it; the first line of runtime.Stack names it
// ("goroutine 18 [running]:"). Only called when tracing is on.
func goroutineTrack() uint32 {
	var buf [32]byte
	n := runtime.Stack(buf[:], false)
	b := buf[:n]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 1
	}
	var id uint32
	for _, c := range b[len(prefix):] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint32(c-'0')
	}
	if id == 0 || id >= namedTrackBase {
		id = 1
	}
	return id
}
