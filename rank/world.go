package rank

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmexec/dsmexec/dsm"
	"github.com/dsmexec/dsmexec/internal/collective"
	"github.com/dsmexec/dsmexec/internal/dsmhook"
	"github.com/dsmexec/dsmexec/internal/mesh"
	"github.com/dsmexec/dsmexec/internal/pmi"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
	"github.com/dsmexec/dsmexec/internal/shm"
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

// World is this process's view of the job.
type World struct {
	rank, size int
	host       string
	launch     string // how the world was formed: "mpirun", "singleton", "PMI-1 ..."

	*group // the world's communicator: point-to-point calls, Split, Dup

	e      *engine
	master *rendezvous.Client
	pmi    *pmi.Client
	mem    *dsm.Memory

	errorsReturn bool       // InitWith(ErrorsReturn)
	nextCtx      uint32     // the lowest context id this rank never used
	splitMu      sync.Mutex // one Split or Dup at a time

	finOnce sync.Once
	finErr  error
	done    chan struct{}

	od        *mesh.Lazy // the application mesh (nil: singleton, in-process tests)
	lostMu    sync.Mutex // od and lostEarly
	lostEarly []lostNote // mpirun's LOST before od existed
	tr        *tracer    // nil: not tracing (trace.go)

	blocked atomic.Pointer[blockedIn] // the call a goroutine waits in, for mpirun -timeout
	recvRec recvRecord                // the same, for point-to-point calls
	callGen atomic.Uint64             // collective calls begun (state.go)
	groups  groups                    // the communicators this rank is in (state.go)
}

// blockedIn is a blocking call in progress; call describes it, formatted
// only when mpirun asks (not on every call).
type blockedIn struct {
	call  func() string
	since time.Time
	g     *group // the communicator of the collective (enterColl)
	seq   int64  // its number among g's collectives
	lock  int    // a Lock wait's lock id (state.go's lockWait)
}

// where says which call this rank waits in, for mpirun's -timeout report.
func (w *World) where() string {
	if s := w.whereRecv(); s != "" {
		return s
	}
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

// Barrier blocks until every rank has called Barrier. It is also the
// consistency point of the shared memory in the examples.
//
// It also checks that every rank allocated the same way from the shared
// region (dsm.Alloc in the same order with the same sizes): otherwise it
// fails on every rank, naming two ranks and their allocation digests.
func (w *World) Barrier() error {
	var digest uint64
	if w.mem != nil {
		digest = w.mem.AllocDigest()
	}
	return collBarrier(w, digest)
}

// Alltoall sends parts[i] to rank i and returns what every rank sent this
// one, indexed by rank (parts may differ in length, like Alltoallv).
func (w *World) Alltoall(parts [][]byte) ([][]byte, error) { return alltoall(w, parts) }

// coll starts a collective call described by call: it returns the
// transport to run it on and a func that ends the call.
func (w *World) coll(call func() string) (collective.Transport, func(), error) {
	if w.finalized() {
		return nil, nil, &callError{call: call(), err: ErrFinalized}
	}
	return w.collT, w.group.enterColl(call), nil
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

// Finalize ends this rank's part in the job: a barrier, then the shared
// region stops being served and is unmapped, the connections are closed
// (after every peer's messages in flight are taken in). It returns the
// first error; calling it again returns the same.
//
// Deferred (defer w.Finalize()) while the rank panics, it never stands in
// for a barrier the rank did not reach: it prints the panic and its stack
// as Go does, tells mpirun, and exits with status 2 at once.
func (w *World) Finalize() error {
	if v := recover(); v != nil {
		w.panicked(v)
	}
	w.finOnce.Do(func() {
		var errs []error
		if w.size > 1 {
			if err := finalizeBarrier(w); err != nil {
				errs = append(errs, fmt.Errorf("rank %d: finalize barrier: %w", w.rank, err))
			}
		}
		var st rendezvous.Stats
		if w.master != nil {
			w.tr.shipPages(w.mem, w.master)
			st = w.stats() // the region's, while it is open
		}
		if w.mem != nil {
			if err := w.mem.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		close(w.done)
		if w.od != nil {
			w.od.Close() // no new connections; those being made are in
			w.e.settleLinks()
		}
		w.e.shutdown(5 * time.Second)
		if w.master != nil {
			// The message counts after every peer's BYE: what was sent
			// to this rank has arrived (a collective's hellos too), so
			// the job's sent and received columns add up.
			st.Peers = w.e.ctr.snapshot()
			w.master.Stats(st)
		}
		w.tr.stopTrace() // the last piece leaves before the connection closes
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
	if w.finErr != nil {
		return w.check(func() string { return "Finalize" }, w.finErr)
	}
	return nil
}

// panicked ends a rank whose deferred Finalize found it panicking.
func (w *World) panicked(v any) {
	fmt.Fprintf(os.Stderr, "panic: %v\n\n%s", v, debug.Stack())
	if w.master != nil {
		w.master.Failed(-1, fmt.Sprintf("panic: %v", v))
	}
	if w.pmi != nil {
		w.pmi.Abort(2, fmt.Sprintf("rank %d: panic: %v", w.rank, v))
	}
	os.Exit(2)
}

// Init joins the job this process was started in: with the DSMEXEC_*
// environment set by mpirun, it reports to the master, learns everyone's
// address, builds the mesh and the shared region. Without it, it is a
// singleton world of size 1 (so `go run ./examples/hello` works). Errors
// of later calls are fatal (see InitWith).
func Init() (*World, error) {
	return InitWith()
}

// InitWith is Init with options. By default, as with MPI's
// MPI_ERRORS_ARE_FATAL, a call that fails (a lost peer, a failed
// collective) ends the rank: it prints "rank R: Call(args): error", tells
// mpirun and exits with status 1. With ErrorsReturn the error is returned
// instead. A caller's own mistakes (a bad rank, tag, root or color, a call
// after Finalize or Free, a truncated RecvInto) are returned either way.
func InitWith(opts ...Option) (*World, error) {
	var o options
	for _, opt := range opts {
		if opt.apply != nil {
			opt.apply(&o)
		}
	}
	w, err := initWorld()
	if err != nil {
		return nil, err
	}
	w.errorsReturn = o.errorsReturn
	return w, nil
}

func initWorld() (*World, error) {
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
	w := &World{
		rank: rank, size: size, host: host, launch: launch,
		e:       newEngine(rank, size),
		done:    make(chan struct{}),
		nextCtx: 2,
	}
	w.group = newGroup(w, rank, size, nil, 0)
	return w
}

func initSingleton() (*World, error) {
	w := newWorld(0, 1, "localhost", "singleton")
	size, err := dsmSizeFromEnv(os.Getenv)
	if err == nil {
		err = w.startTrace(os.Getenv, nil)
	}
	if err != nil {
		return nil, err
	}
	w.mem, err = newMemory(dsmhook.Config{Rank: 0, Size: 1, Bytes: size})
	if err != nil {
		return nil, err
	}
	w.setMem(w.mem)
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
	master.OnLost = w.peerLost
	master.State = w.answerState
	ip := master.LocalIP()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("rank %d: listen on %s: %w", env.rank, ip, err)
	}
	mem, err := newMemory(dsmhook.Config{Rank: env.rank, Size: env.size, Bytes: env.dsmSize, Token: token, IP: ip.String()})
	if err != nil {
		ln.Close()
		master.Close()
		return nil, err
	}
	w.mem = mem
	w.setMem(mem)
	verbosef("rank %d: pid %d on %s; mesh on %s; shared memory %d bytes, %s backend, served at %s",
		w.rank, os.Getpid(), w.host, ln.Addr(), mem.Len(), mem.Backend(), memEndpoint(mem))
	table, err := master.Join(ctx, rendezvous.JoinInfo{
		Endpoints: []string{ln.Addr().String(), memEndpoint(mem)},
		Host:      env.host,
		Pid:       os.Getpid(),
	})
	if err == nil {
		err = w.startTraceMpirun(master)
	}
	if err != nil {
		ln.Close()
		mem.Close()
		master.Close()
		return nil, err
	}
	if err := w.connect(ctx, ln, token, table.Endpoints, env.timeout); err != nil {
		// Most likely another rank died while the meshes were built: say
		// so, so that mpirun blames that rank rather than this one.
		master.Failed(anyPeer, err.Error())
		mem.Close()
		master.Close()
		return nil, err
	}
	dsmhook.Fatal = func(lost int, msg string) { master.Failed(lost, msg) }
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
	w.tr.initDone()
	return w, nil
}

// connect starts the application mesh, connections on demand (mesh.Lazy:
// none is made here; the first send to a peer, or a receive posted from a
// higher one, makes it), hands every connection to the engine as it is
// made, and starts the shared memory, given every rank's endpoints (mesh
// address first, then the memory's). timeout bounds the making of one
// connection (DSMEXEC_TIMEOUT, mpirun's -rendezvous-timeout).
func (w *World) connect(ctx context.Context, ln net.Listener, token []byte, endpoints [][]string, timeout time.Duration) error {
	addrs := make([]string, w.size)
	memAddrs := make([]string, w.size)
	for i, e := range endpoints {
		if len(e) < 2 {
			ln.Close()
			return fmt.Errorf("rank %d: rank %d reported %d endpoints, want 2", w.rank, i, len(e))
		}
		addrs[i], memAddrs[i] = e[0], e[1]
	}
	spin, limit, err := engineEnv(os.Getenv)
	if err != nil {
		ln.Close()
		return err
	}
	ringCfg, err := readRingEnv(os.Getenv)
	if err != nil {
		ln.Close()
		return err
	}
	maxDials, err := dialEnv(os.Getenv)
	if err != nil {
		ln.Close()
		return err
	}
	if mesh.RanksOnHost(addrs, w.rank) > runtime.NumCPU() {
		w.e.oversub = true // spinning must yield the CPU the sender may need
	}
	memErr := make(chan error, 1)
	go func() { memErr <- memConnect(w.mem, ctx, memAddrs) }()
	if err := w.e.start(nil, spin, limit); err != nil {
		ln.Close()
		<-memErr
		return err
	}
	plan := newRingPlan(w.rank, w.host, addrs, ringCfg)
	od := mesh.OnDemand(mesh.OnDemandConfig{
		Rank:     w.rank,
		Addrs:    addrs,
		Token:    token,
		Listener: ln,
		Timeout:  timeout,
		MaxDials: maxDials,
		Setup: func(c *mesh.Conn, dl time.Time) error {
			seg, err := plan.setup(c, dl)
			if seg != nil {
				c.Data = seg
			}
			return err
		},
		Ready: func(c *mesh.Conn) {
			seg, _ := c.Data.(*shm.Segment)
			l, err := newLink(w.e, c.Rank, c.TCP, c.Buffered)
			if err != nil {
				c.TCP.Close()
				if seg != nil {
					seg.Close()
				}
				w.e.peerFailed(c.Rank, fmt.Errorf("take the connection: %w", err))
				return
			}
			if seg != nil {
				l.attachRing(seg)
			}
			w.e.addLink(l)
		},
		Failed: w.e.peerFailed,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		},
	})
	w.e.mu.Lock()
	w.e.want = od.Want
	w.e.mu.Unlock()
	w.lostMu.Lock()
	w.od = od
	early := w.lostEarly
	w.lostEarly = nil
	w.lostMu.Unlock()
	for _, l := range early {
		od.Lost(l.rank, l.err)
	}
	if err := <-memErr; err != nil {
		// No graceful close: the peers may be stuck in their own memory
		// connect, waiting for this rank; they learn from its exit.
		od.Close()
		w.e.shutdown(0)
		return fmt.Errorf("rank %d: connect the shared memory: %w", w.rank, err)
	}
	return nil
}

// peerLost is mpirun's word that rank is gone (its connection to mpirun
// ended before it finalized): a peer this rank has no connection to fails
// every call that needs it with a *PeerError (mesh.Lazy.Lost).
func (w *World) peerLost(rank int, msg string) {
	err := fmt.Errorf("mpirun reports it gone (%s)", msg)
	w.lostMu.Lock()
	od := w.od
	if od == nil {
		w.lostEarly = append(w.lostEarly, lostNote{rank, err})
	}
	w.lostMu.Unlock()
	if od != nil {
		od.Lost(rank, err)
	}
}

type lostNote struct {
	rank int
	err  error
}
