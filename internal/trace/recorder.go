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
// All methods are safe for concurrent use.
type Recorder struct {
	cfg   Config
	start time.Time
	limit int64
	full  atomic.Bool
	flows atomic.Uint64
	ctr   [counterCount]atomic.Int64

	mu       sync.Mutex
	chunks   [][]byte // chunks not yet drained; the last one is being filled
	total    int64    // bytes ever recorded, header included
	last     int64    // time of the previous timed record, ns since start
	tracks   map[uint32]bool
	stacks   map[uintptr]stackEntry // goroutine id by stack granule, see callerTrack
	nextName uint32
	warned   bool
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
	r := &Recorder{cfg: cfg, start: time.Now(), limit: cfg.Limit, tracks: map[uint32]bool{}, stacks: map[uintptr]stackEntry{}, nextName: namedTrackBase}
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
	track := r.callerTrack(stackKey())
	r.mu.Lock()
	r.trackLocked(track)
	b := []byte{byte(OpInstant)}
	b = binary.AppendUvarint(b, uint64(track))
	b = binary.AppendVarint(b, r.deltaLocked(time.Now()))
	b = appendString(b, name)
	w := r.appendLocked(b)
	r.mu.Unlock()
	r.warn(w)
}

// SetClock records this process's clock offset from the job's reference
// clock (Offset computes it): the merge subtracts it from every time.
func (r *Recorder) SetClock(offset, bound time.Duration) {
	if r == nil {
		return
	}
	b := []byte{byte(OpClock)}
	b = binary.AppendVarint(b, int64(offset))
	b = binary.AppendVarint(b, int64(bound))
	r.mu.Lock()
	w := r.appendLocked(b)
	r.mu.Unlock()
	r.warn(w)
}

// NewTrack names a track for BeginOn and Complete ("page server").
func (r *Recorder) NewTrack(name string) uint32 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	id := r.nextName
	r.nextName++
	r.tracks[id] = true
	w := r.appendLocked(appendTrack(nil, id, name))
	r.mu.Unlock()
	r.warn(w)
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
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.chunks {
		n += len(c)
	}
	out := make([]byte, 0, n)
	for _, c := range r.chunks {
		out = append(out, c...)
	}
	last := r.chunks[len(r.chunks)-1]
	r.chunks = [][]byte{last[:0]}
	return out
}

// Total is the number of bytes recorded so far, drained or not.
func (r *Recorder) Total() int64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func (r *Recorder) begin(track uint32, k Kind, a Args) Span {
	if r.full.Load() {
		return Span{}
	}
	key := stackKey()
	var buf [96]byte
	now := time.Now()
	r.mu.Lock()
	if track == 0 {
		var ok bool
		if track, ok = r.cachedLocked(key); !ok {
			r.mu.Unlock()
			track = r.callerTrack(key)
			r.mu.Lock()
		}
	}
	r.trackLocked(track)
	b := append(buf[:0], byte(OpBegin))
	b = binary.AppendUvarint(b, uint64(track))
	b = binary.AppendVarint(b, r.deltaLocked(now))
	b = append(b, byte(k))
	b = appendArgs(b, &a)
	w := r.appendLocked(b)
	r.mu.Unlock()
	r.warn(w)
	return Span{r: r, track: track, kind: k}
}

func (r *Recorder) end(s Span, a Args) {
	var buf [96]byte
	now := time.Now()
	r.mu.Lock()
	// End is recorded even past the limit's warning as long as it fits:
	// appendLocked refuses it once full, and the merge closes open slices.
	b := append(buf[:0], byte(OpEnd))
	b = binary.AppendUvarint(b, uint64(s.track))
	b = binary.AppendVarint(b, r.deltaLocked(now))
	b = append(b, byte(s.kind))
	b = appendArgs(b, &a)
	w := r.appendLocked(b)
	r.mu.Unlock()
	r.warn(w)
}

func (r *Recorder) complete(track uint32, k Kind, start, end time.Time, a Args) {
	if r.full.Load() {
		return
	}
	if track == 0 {
		track = r.callerTrack(stackKey())
	}
	d := end.Sub(start)
	if d < 0 {
		d = 0
	}
	var buf [96]byte
	r.mu.Lock()
	r.trackLocked(track)
	b := append(buf[:0], byte(OpComplete))
	b = binary.AppendUvarint(b, uint64(track))
	b = binary.AppendVarint(b, r.deltaLocked(start))
	b = binary.AppendUvarint(b, uint64(d))
	b = append(b, byte(k))
	b = appendArgs(b, &a)
	w := r.appendLocked(b)
	r.mu.Unlock()
	r.warn(w)
}

func (r *Recorder) count(c Counter, v int64) { r.countAt(c, v, time.Now()) }

func (r *Recorder) countAt(c Counter, v int64, now time.Time) {
	if r.full.Load() {
		return
	}
	var buf [32]byte
	r.mu.Lock()
	b := append(buf[:0], byte(OpCounter))
	b = binary.AppendVarint(b, r.deltaLocked(now))
	b = append(b, byte(c))
	b = binary.AppendVarint(b, v)
	w := r.appendLocked(b)
	r.mu.Unlock()
	r.warn(w)
}

// deltaLocked turns t into the encoding's time: ns since the previous
// timed record (negative when a goroutine took its time before another
// that recorded first).
func (r *Recorder) deltaLocked(t time.Time) int64 {
	ns := int64(t.Sub(r.start))
	d := ns - r.last
	r.last = ns
	return d
}

// trackLocked names a goroutine's track the first time it records.
func (r *Recorder) trackLocked(track uint32) {
	if r.tracks[track] {
		return
	}
	r.tracks[track] = true
	name := fmt.Sprintf("goroutine %d", track)
	if track == 1 {
		name = "main"
	}
	r.appendLocked(appendTrack(nil, track, name))
}

// fullReserve is room kept for the OpFull record.
const fullReserve = 16

// appendLocked appends one record, or, when it would pass the limit,
// records OpFull instead and stops recording; it returns the warning to
// print (once), if any.
func (r *Recorder) appendLocked(b []byte) string {
	if r.full.Load() {
		return ""
	}
	if r.total+int64(len(b)) > r.limit-fullReserve {
		r.full.Store(true)
		f := []byte{byte(OpFull)}
		f = binary.AppendVarint(f, r.deltaLocked(time.Now()))
		r.put(f)
		if !r.warned {
			r.warned = true
			return fmt.Sprintf("trace: rank %d: the trace reached its limit of %d bytes; recording stopped (raise it with mpirun -trace-limit)", r.cfg.Rank, r.limit)
		}
		return ""
	}
	r.put(b)
	return ""
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

// namedTrackBase is the first id NewTrack hands out: above any goroutine id
// a process will reach.
const namedTrackBase = 1 << 31

// stackGranule is the granularity callerTrack maps stack addresses at:
// the smallest goroutine stack (2 KiB). Stacks are powers of two of at
// least that, aligned to it, so a granule never holds two stacks.
const stackGranule = 11

// verifyEvery: a cached goroutine id is checked against the runtime after
// this many uses, so that a stack reused by another goroutine is noticed.
const verifyEvery = 256

type stackEntry struct {
	id, hits uint32
}

// cachedLocked looks the caller's stack granule up; it says no when the
// entry is due for a check.
func (r *Recorder) cachedLocked(key uintptr) (uint32, bool) {
	e, ok := r.stacks[key]
	if !ok || e.hits >= verifyEvery {
		return 0, false
	}
	e.hits++
	r.stacks[key] = e
	return e.id, true
}

// maxStacks bounds the stack cache; it is emptied when it grows past.
const maxStacks = 1 << 14

// callerTrack is the calling goroutine's track: its id. Asking the runtime
// (goroutineTrack) costs microseconds, so the answer is cached by the
// address of the caller's stack frame: goroutines have disjoint stacks,
// and a goroutine calling from the same depth hits the cache (a map
// lookup). The price: a goroutine that reuses memory another one's stack
// had (that goroutine ended, or its stack grew and moved) is shown on the
// other's track until the entry's next check (verifyEvery uses); the
// merge keeps such slices valid by giving overlapping ones their own
// lane.
//
// key is stackKey() taken in the caller's frame.
func (r *Recorder) callerTrack(key uintptr) uint32 {
	r.mu.Lock()
	id, ok := r.cachedLocked(key)
	r.mu.Unlock()
	if ok {
		return id
	}
	id = goroutineTrack()
	r.mu.Lock()
	if len(r.stacks) >= maxStacks {
		clear(r.stacks)
	}
	r.stacks[key] = stackEntry{id: id}
	r.mu.Unlock()
	return id
}

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
