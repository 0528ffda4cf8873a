package rank

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/barrier"
	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/internal/collective"
	"github.com/dsmexec/dsmexec/internal/mesh"
	"github.com/dsmexec/dsmexec/internal/pmi"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// AnySource matches a message from any rank in Recv.
const AnySource = -1

// AnyTag matches a message with any tag in Recv.
const AnyTag = -1

// Errors.
var (
	ErrFinalized = errors.New("rank: world is finalized")
	ErrBadRank   = errors.New("rank: no such rank")
)

// PeerError says a peer is gone: every pending and later call that needs it
// fails with it.
type PeerError struct {
	Rank int   // the peer that was lost
	Err  error // how it was noticed
}

func (e *PeerError) Error() string { return fmt.Sprintf("rank: lost rank %d: %v", e.Rank, e.Err) }
func (e *PeerError) Unwrap() error { return e.Err }

// errPeerFinalized is the reason a peer that finalized normally sends no more.
var errPeerFinalized = errors.New("it has finalized")

// User message frame type (wire.ChanUser): body = tag (i32 big endian) + payload.
const typeUser uint8 = 1

// World is this process's view of the job.
type World struct {
	rank, size int
	host       string
	launch     string // how the world was formed: "mpirun", "singleton", "PMI-1 ..."

	mesh   *mesh.Mesh
	master *rendezvous.Client
	pmi    *pmi.Client
	mem    *dsm.Memory

	user       *mailbox
	barrierBox *mailbox
	collBox    *mailbox
	barrier    barrier.Barrier
	collT      collective.Transport

	lostMu sync.Mutex
	lost   map[int]error

	finOnce sync.Once
	finErr  error
	done    chan struct{}

	blocked atomic.Pointer[blockedIn] // the call a goroutine waits in, for mpirun -timeout
}

// blockedIn is a blocking call in progress; call describes it, formatted
// only when mpirun asks (not on every call).
type blockedIn struct {
	call  func() string
	since time.Time
}

// enter records that the caller blocks in call; the returned func ends it.
func (w *World) enter(call func() string) func() {
	b := &blockedIn{call: call, since: time.Now()}
	w.blocked.Store(b)
	return func() { w.blocked.CompareAndSwap(b, nil) }
}

// where says which call this rank waits in, for mpirun's -timeout report.
func (w *World) where() string {
	b := w.blocked.Load()
	if b == nil {
		return ""
	}
	return fmt.Sprintf("%s for %v", b.call(), time.Since(b.since).Round(time.Millisecond))
}

// anyName formats a rank or tag, AnySource and AnyTag as "any".
func anyName(r int) string {
	if r == AnySource {
		return "any"
	}
	return strconv.Itoa(r)
}

// Rank is this process's rank, 0..Size()-1.
func (w *World) Rank() int { return w.rank }

// Size is the number of ranks in the job.
func (w *World) Size() int { return w.size }

// Host is the machine-file name of this rank's host.
func (w *World) Host() string { return w.host }

// Launcher says how the world was formed ("mpirun", "singleton", "PMI-1 ...").
func (w *World) Launcher() string { return w.launch }

// Memory is the job's shared region.
func (w *World) Memory() *dsm.Memory { return w.mem }

func (w *World) finalized() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *World) checkPeer(r int) error {
	if w.finalized() {
		return ErrFinalized
	}
	if r < 0 || r >= w.size {
		return fmt.Errorf("%w %d (size %d)", ErrBadRank, r, w.size)
	}
	return nil
}

// Send sends b to rank `to` with a tag. It returns once b is handed to the
// connection (b may be reused). Messages between two ranks with one tag
// arrive in order.
func (w *World) Send(to, tag int, b []byte) error {
	if err := w.checkPeer(to); err != nil {
		return err
	}
	if tag < 0 {
		return fmt.Errorf("rank: tag %d: tags are >= 0", tag)
	}
	if to == w.rank {
		w.user.put(w.rank, tag, append([]byte(nil), b...))
		return nil
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(tag))
	if err := w.mesh.SendMessage(to, wire.ChanUser, typeUser, hdr[:], b); err != nil {
		return w.sendErr(to, err)
	}
	return nil
}

// Recv returns the next message from rank `from` (or AnySource) with the
// tag (or AnyTag).
func (w *World) Recv(from, tag int) ([]byte, error) {
	_, b, err := w.RecvFrom(from, tag)
	return b, err
}

// RecvFrom is Recv that also says which rank sent the message (useful with
// AnySource).
func (w *World) RecvFrom(from, tag int) (int, []byte, error) {
	if from != AnySource {
		if err := w.checkPeer(from); err != nil {
			return 0, nil, err
		}
	} else if w.finalized() {
		return 0, nil, ErrFinalized
	}
	defer w.enter(func() string { return fmt.Sprintf("Recv(from %s, tag %s)", anyName(from), anyName(tag)) })()
	m, err := w.user.get(from, tag)
	if err != nil {
		return 0, nil, err
	}
	return m.from, m.body, nil
}

func (w *World) sendErr(to int, err error) error {
	if errors.Is(err, mesh.ErrClosed) {
		return ErrFinalized
	}
	w.lostMu.Lock()
	lerr := w.lost[to]
	w.lostMu.Unlock()
	if lerr != nil {
		return lerr
	}
	return &PeerError{Rank: to, Err: err}
}

// Barrier blocks until every rank has called Barrier. It is also the
// consistency point of the shared memory in the examples.
func (w *World) Barrier() error {
	if w.finalized() {
		return ErrFinalized
	}
	if w.size == 1 {
		return nil
	}
	defer w.enter(func() string { return "Barrier" })()
	return w.barrier.Wait()
}

// coll starts a collective call described by call: it returns the
// transport to run it on and a func that ends the call.
func (w *World) coll(call func() string) (collective.Transport, func(), error) {
	if w.finalized() {
		return nil, nil, ErrFinalized
	}
	return w.collT, w.enter(call), nil
}

// Report adds a cell to this rank's row of the table mpirun prints at the
// end of the job (see mpirun -report-format).
func (w *World) Report(column string, value any) {
	if w.master == nil {
		return
	}
	var s string
	switch v := value.(type) {
	case string:
		s = v
	case float64:
		s = strconv.FormatFloat(v, 'g', 6, 64)
	case float32:
		s = strconv.FormatFloat(float64(v), 'g', 6, 32)
	case time.Duration:
		s = v.Round(time.Microsecond).String()
	default:
		s = fmt.Sprint(v)
	}
	w.master.Cell(column, s)
}

// handle dispatches a message from a peer (on that peer's reader goroutine).
func (w *World) handle(f wire.Frame) {
	switch f.Channel {
	case wire.ChanUser:
		if len(f.Body) < 4 {
			w.peerLost(f.Source, fmt.Errorf("short user message (%d bytes)", len(f.Body)))
			return
		}
		tag := int(binary.BigEndian.Uint32(f.Body))
		w.user.put(f.Source, tag, f.Body[4:])
	case wire.ChanBarrier:
		w.barrierBox.put(f.Source, 0, f.Body)
	case wire.ChanCollective:
		w.collBox.put(f.Source, 0, f.Body)
	}
}

// peerGone records that no more messages will come from peer, without
// treating it as a failure (it finalized).
func (w *World) peerGone(peer int, why error) {
	err := &PeerError{Rank: peer, Err: why}
	w.user.fail(peer, err)
	w.barrierBox.fail(peer, err)
	w.collBox.fail(peer, err)
}

// peerLost fails everything that waits for peer.
func (w *World) peerLost(peer int, why error) {
	err := &PeerError{Rank: peer, Err: why}
	w.lostMu.Lock()
	if _, ok := w.lost[peer]; ok {
		w.lostMu.Unlock()
		return
	}
	w.lost[peer] = err
	w.lostMu.Unlock()
	w.peerGone(peer, why)
}

// Finalize ends this rank's part in the job: a barrier, then the shared
// region stops being served and is unmapped, the connections are closed. It
// returns the first error; calling it again returns the same.
func (w *World) Finalize() error {
	w.finOnce.Do(func() {
		var errs []error
		if err := w.Barrier(); err != nil {
			errs = append(errs, fmt.Errorf("rank %d: finalize barrier: %w", w.rank, err))
		}
		if w.mem != nil {
			if w.master != nil {
				st := w.mem.Stats()
				w.master.Stats(rendezvous.Stats{Backend: w.mem.Backend(), DSM: st.Map(), Columns: dsm.StatColumns, Raw: st.Raw(), RawColumns: dsm.RawColumns})
			}
			if err := w.mem.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		close(w.done)
		if w.mesh != nil {
			w.mesh.Close(5 * time.Second)
		}
		w.user.close(ErrFinalized)
		w.barrierBox.close(ErrFinalized)
		w.collBox.close(ErrFinalized)
		if w.master != nil {
			w.master.Bye()
			w.master.Close()
		}
		if w.pmi != nil {
			if err := w.pmi.Finalize(); err != nil {
				errs = append(errs, err)
			}
		}
		w.finErr = errors.Join(errs...)
	})
	return w.finErr
}

// Init joins the job this process was started in: with the DSMEXEC_*
// environment set by mpirun, it reports to the master, learns everyone's
// address, builds the mesh and the shared region. Without it, it is a
// singleton world of size 1 (so `go run ./examples/hello` works).
func Init() (*World, error) {
	env, err := readEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if env != nil {
		return initMpirun(env)
	}
	if cfg, ok := pmi.Detect(os.Getenv); ok {
		return initPMI(cfg)
	}
	if why := pmi.Unsupported(os.Getenv); why != "" {
		fmt.Fprintf(os.Stderr, "rank: warning: %s; running as a singleton\n", why)
	}
	return initSingleton()
}

func newWorld(rank, size int, host, launch string) *World {
	return &World{
		rank: rank, size: size, host: host, launch: launch,
		user:       newMailbox(size),
		barrierBox: newMailbox(size),
		collBox:    newMailbox(size),
		lost:       map[int]error{},
		done:       make(chan struct{}),
	}
}

// initAlgorithms sets up the barrier and the collectives over the mesh.
func (w *World) initAlgorithms() {
	w.barrier = barrier.NewDissemination(&transport{w: w, ch: wire.ChanBarrier, box: w.barrierBox})
	w.collT = collective.Sequenced(&transport{w: w, ch: wire.ChanCollective, box: w.collBox})
}

func initSingleton() (*World, error) {
	w := newWorld(0, 1, "localhost", "singleton")
	w.initAlgorithms()
	size, err := dsmSizeFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	w.mem, err = dsm.New(dsm.Config{Rank: 0, Size: 1, Bytes: size})
	if err != nil {
		return nil, err
	}
	return w, nil
}

func initMpirun(env *launchEnv) (*World, error) {
	w := newWorld(env.rank, env.size, env.host, "mpirun")
	ctx, cancel := context.WithTimeout(context.Background(), env.timeout)
	defer cancel()
	token, err := hex.DecodeString(env.token)
	if err != nil {
		return nil, fmt.Errorf("rank: DSMEXEC_TOKEN is not hex: %w", err)
	}
	master, err := rendezvous.Dial(ctx, env.master, token, env.rank)
	if err != nil {
		return nil, err
	}
	w.master = master
	master.Where = w.where
	ip := master.LocalIP()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("rank %d: listen on %s: %w", env.rank, ip, err)
	}
	mem, err := dsm.New(dsm.Config{Rank: env.rank, Size: env.size, Bytes: env.dsmSize, Token: token, IP: ip.String()})
	if err != nil {
		ln.Close()
		master.Close()
		return nil, err
	}
	w.mem = mem
	verbosef("rank %d: pid %d on %s; mesh on %s; shared memory %d bytes, %s backend, served at %s",
		w.rank, os.Getpid(), w.host, ln.Addr(), mem.Len(), mem.Backend(), mem.Endpoint())
	table, err := master.Join(ctx, rendezvous.JoinInfo{
		Endpoints: []string{ln.Addr().String(), mem.Endpoint()},
		Host:      env.host,
		Pid:       os.Getpid(),
	})
	if err != nil {
		ln.Close()
		mem.Close()
		master.Close()
		return nil, err
	}
	if err := w.connect(ctx, ln, token, table.Endpoints); err != nil {
		mem.Close()
		master.Close()
		return nil, err
	}
	go func() {
		select {
		case <-master.Lost():
			if !w.finalized() {
				fmt.Fprintf(os.Stderr, "rank %d: lost the connection to mpirun (the launcher is gone); exiting\n", w.rank)
				os.Exit(1)
			}
		case <-w.done:
		}
	}()
	return w, nil
}

// connect builds the mesh and starts the shared memory, given every rank's
// endpoints (mesh address first, then the memory's).
func (w *World) connect(ctx context.Context, ln net.Listener, token []byte, endpoints [][]string) error {
	addrs := make([]string, w.size)
	memAddrs := make([]string, w.size)
	for i, e := range endpoints {
		if len(e) < 2 {
			ln.Close()
			return fmt.Errorf("rank %d: rank %d reported %d endpoints, want 2", w.rank, i, len(e))
		}
		addrs[i], memAddrs[i] = e[0], e[1]
	}
	memErr := make(chan error, 1)
	go func() { memErr <- w.mem.Connect(ctx, memAddrs) }()
	m, err := mesh.Connect(ctx, mesh.Config{
		Rank:     w.rank,
		Addrs:    addrs,
		Token:    token,
		Listener: ln,
		Handler:  w.handle,
		OnLost:   w.peerLost,
		OnBye:    func(p int) { w.peerGone(p, errPeerFinalized) },
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		},
	})
	if err != nil {
		<-memErr
		return fmt.Errorf("rank %d: build the mesh: %w", w.rank, err)
	}
	w.mesh = m
	if err := <-memErr; err != nil {
		m.Close(time.Second)
		return fmt.Errorf("rank %d: connect the shared memory: %w", w.rank, err)
	}
	w.initAlgorithms()
	return nil
}

// transport adapts the mesh to the barrier and collective packages: one
// channel, FIFO per peer.
type transport struct {
	w   *World
	ch  wire.Channel
	box *mailbox
}

func (t *transport) Rank() int { return t.w.rank }
func (t *transport) Size() int { return t.w.size }

func (t *transport) Send(to int, msg []byte) error {
	if to == t.w.rank {
		t.box.put(to, 0, append([]byte(nil), msg...))
		return nil
	}
	if err := t.w.mesh.SendMessage(to, t.ch, 0, nil, msg); err != nil {
		return t.w.sendErr(to, err)
	}
	return nil
}

func (t *transport) Recv(from int) ([]byte, error) {
	m, err := t.box.get(from, 0)
	return m.body, err
}
