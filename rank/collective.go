package rank

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/collective"
)

// Number is the element type of the reductions (Reduce, Allreduce, Scan,
// Exscan, ReduceScatter, ReduceLoc, AllreduceLoc): every integer and
// floating-point kind, and types defined on them. int and uint travel as
// 64-bit values, so ranks on different machines agree.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64
}

// Op combines values element by element in the reductions.
//
// Sum and Prod wrap around on integer overflow, like Go arithmetic. Min and
// Max follow Go's built-in min and max (a NaN anywhere gives NaN). Land and
// Lor are logical and and or: non-zero is true, the result is 1 or 0 (with
// one rank too). Band, Bor and Bxor are bitwise, for integer types only: a
// float type with them is an error on every rank. Every rank of an
// Allreduce gets the same bits; a floating-point Sum may differ in the last
// bits from a serial loop, because the order of the additions follows the
// algorithm.
type Op uint8

// The operations (MPI_SUM, MPI_PROD, MPI_MIN, MPI_MAX, MPI_LAND, MPI_LOR,
// MPI_BAND, MPI_BOR, MPI_BXOR).
const (
	Sum  = Op(collective.Sum)
	Prod = Op(collective.Prod)
	Min  = Op(collective.Min)
	Max  = Op(collective.Max)
	Land = Op(collective.Land)
	Lor  = Op(collective.Lor)
	Band = Op(collective.Band)
	Bor  = Op(collective.Bor)
	Bxor = Op(collective.Bxor)
)

func (o Op) String() string { return collective.Op(o).String() }

// Collective calls are matched by order: every rank must make the same
// sequence of collective calls (as in MPI). They travel on a channel of
// their own, so user tags never collide with them. Each call carries its
// number and its name, so that a rank that calls something else at the
// same point (a Bcast while the others are in Barrier, a Finalize) is
// caught on every rank: `rank: collective mismatch: rank 0 called Barrier
// while rank 1 called Bcast (call #7)`. After a mismatch every later
// collective call of the communicator returns the same error. Other errors
// (a bad root, lengths that differ, a lost rank) are returned on every rank
// and leave the communicator usable.

// collError is a collective's error in the rank package's words.
type collError struct {
	msg string
	err error
}

func (e *collError) Error() string { return e.msg }
func (e *collError) Unwrap() error { return e.err }

// wrap turns the collective package's errors into rank's ("rank: Bcast:
// ...", "rank: collective mismatch: ..."); others pass unchanged.
func wrap(err error) error {
	var ce *collective.Error
	var me *collective.MismatchError
	if errors.As(err, &ce) || errors.As(err, &me) {
		return &collError{msg: "rank: " + strings.TrimPrefix(err.Error(), "collective: "), err: err}
	}
	return err
}

// argError is a mistake in the arguments of call, found before any
// message is sent (every rank checks its own).
func argError(call, format string, args ...any) error {
	return fmt.Errorf("rank: %s: %s", call, fmt.Sprintf(format, args...))
}

// run starts a collective call on c and runs f on its transport.
func run[R any](c Communicator, call func() string, f func(t collective.Transport) (R, error)) (R, error) {
	t, done, err := c.coll(call)
	if err != nil {
		var zero R
		return zero, err
	}
	defer done()
	if end := traceColl(c, call); end != nil {
		defer end()
	}
	r, err := f(t)
	if err != nil {
		var zero R
		return zero, c.check(call, wrap(err))
	}
	return r, nil
}

// RecvIntoWithin makes the collective transport a
// collective.IntoReceiver: collectives receive into buffers they keep.
func (t *collTransport) RecvIntoWithin(from int, buf []byte, d time.Duration) (int, bool, error) {
	_, n, ok, err := t.g.e.recvWithinInto(t.g.collCtx, t.g.worldRank(from), t.tag, buf, true, d)
	if errors.Is(err, ErrTruncate) {
		err = nil // (the collective sees that n is too long)
	}
	return n, ok, err
}

func named(s string) func() string { return func() string { return s } }

func rooted(call string, root int) func() string {
	return func() string { return fmt.Sprintf("%s(root %d)", call, root) }
}

// The names of the calls without arguments, made once (a call's name is
// a func so that it is formatted only when needed).
var (
	barrierName  = named("Barrier")
	finalizeName = named("Finalize")
)

// collBarrier is Barrier on any communicator; World.Barrier and Comm.Barrier
// call it. digest is compared across ranks (see collective.BarrierDigest):
// 0 for a plain Barrier.
func collBarrier(c Communicator, digest uint64) error {
	_, err := run(c, barrierName, func(t collective.Transport) (struct{}, error) {
		return struct{}{}, collective.BarrierDigest(t, digest)
	})
	return err
}

// finalizeBarrier is Finalize's barrier: a call of its own kind, which
// never passes for a Barrier.
func finalizeBarrier(c Communicator) error {
	_, err := run(c, finalizeName, func(t collective.Transport) (struct{}, error) {
		return struct{}{}, collective.Finalize(t)
	})
	return err
}

func bcast(c Communicator, root int, b []byte) ([]byte, error) {
	return run(c, rooted("Bcast", root), func(t collective.Transport) ([]byte, error) {
		return collective.Bcast(t, root, b)
	})
}

func gather(c Communicator, root int, b []byte) ([][]byte, error) {
	return run(c, rooted("Gather", root), func(t collective.Transport) ([][]byte, error) {
		return collective.Gather(t, root, b)
	})
}

func allgather(c Communicator, b []byte) ([][]byte, error) {
	return run(c, named("Allgather"), func(t collective.Transport) ([][]byte, error) {
		return collective.Allgather(t, b)
	})
}

func scatter(c Communicator, root int, parts [][]byte) ([]byte, error) {
	return run(c, rooted("Scatter", root), func(t collective.Transport) ([]byte, error) {
		return collective.Scatter(t, root, parts)
	})
}

// alltoall sends parts[i] to rank i and returns, at index i, what rank i
// sent this one (lengths may differ, as MPI_Alltoallv). parts must have
// Size() entries on every rank. The Alltoall methods of World and Comm
// call it.
func alltoall(c Communicator, parts [][]byte) ([][]byte, error) {
	return run(c, named("Alltoall"), func(t collective.Transport) ([][]byte, error) {
		return collective.Alltoall(t, parts)
	})
}

// Bcast sends root's b to every rank and returns it (root gets b back).
func (w *World) Bcast(root int, b []byte) ([]byte, error) { return bcast(w, root, b) }

// Gather collects every rank's b at root, indexed by rank; nil on non-roots.
func (w *World) Gather(root int, b []byte) ([][]byte, error) { return gather(w, root, b) }

// Allgather gives every rank every rank's b, indexed by rank.
func (w *World) Allgather(b []byte) ([][]byte, error) { return allgather(w, b) }

// Scatter sends parts[r] from root to rank r; parts is read on root only
// and must have Size() elements.
func (w *World) Scatter(root int, parts [][]byte) ([]byte, error) { return scatter(w, root, parts) }
