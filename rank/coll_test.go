package rank

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dsmexec/dsmexec/internal/collective"
	"github.com/dsmexec/dsmexec/internal/transporttest"
)

// fakeComm is a Communicator over a test transport: only the collective
// calls work.
type fakeComm struct {
	Communicator // nil: the point-to-point calls are not there
	t            collective.Transport
}

func (f *fakeComm) check(call func() string, err error) error { return err }

func (f *fakeComm) Rank() int { return f.t.Rank() }
func (f *fakeComm) Size() int { return f.t.Size() }
func (f *fakeComm) Send(to, tag int, b []byte) error {
	return errors.New("fakeComm: no point-to-point")
}
func (f *fakeComm) Recv(from, tag int) ([]byte, error) {
	return nil, errors.New("fakeComm: no point-to-point")
}
func (f *fakeComm) Barrier() error                               { return collBarrier(f, 0) }
func (f *fakeComm) Bcast(root int, b []byte) ([]byte, error)     { return bcast(f, root, b) }
func (f *fakeComm) Gather(root int, b []byte) ([][]byte, error)  { return gather(f, root, b) }
func (f *fakeComm) Allgather(b []byte) ([][]byte, error)         { return allgather(f, b) }
func (f *fakeComm) Scatter(root int, p [][]byte) ([]byte, error) { return scatter(f, root, p) }
func (f *fakeComm) coll(func() string) (collective.Transport, func(), error) {
	return f.t, func() {}, nil
}

// fakeWorld runs body on n ranks over an in-memory (or TCP) transport and
// returns their errors; a hang fails the test.
func fakeWorld(t testing.TB, n int, tcp bool, body func(c Communicator) error) []error {
	t.Helper()
	var ends []collective.Transport
	var abort func()
	if tcp {
		m := transporttest.NewTCPMesh(t, n)
		for _, e := range m.Ends {
			ends = append(ends, collective.Sequenced(e))
		}
		abort = m.Close
	} else {
		m := transporttest.NewMemNet(n, n%2 == 1, uint64(n))
		t.Cleanup(m.Close)
		for _, e := range m.Ends() {
			ends = append(ends, collective.Sequenced(e))
		}
		abort = m.Close
	}
	return transporttest.RunRanks(t, n, transporttest.HangAfter, abort, func(r int) error {
		return body(&fakeComm{t: ends[r]})
	})
}

func mustAll(t *testing.T, n int, body func(c Communicator) error) {
	t.Helper()
	for r, err := range fakeWorld(t, n, false, body) {
		if err != nil {
			t.Errorf("N=%d rank %d: %v", n, r, err)
		}
	}
}

func allFail(t *testing.T, n int, want string, body func(c Communicator) error) {
	t.Helper()
	for r, err := range fakeWorld(t, n, false, body) {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("N=%d rank %d: got %v, want an error containing %q", n, r, err, want)
		}
	}
}

type point struct {
	X, Y float32
	ID   int64
	OK   bool
}

type myInt int

func TestEncodeDecode(t *testing.T) {
	check := func(name string, enc []byte, want []byte) {
		t.Helper()
		if !slices.Equal(enc, want) {
			t.Errorf("%s: encoded %x, want %x", name, enc, want)
		}
	}
	check("int", Encode([]int{1, -2}), []byte{1, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	check("uint16", Encode([]uint16{0x102}), []byte{2, 1})
	check("float64", Encode([]float64{1}), []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
	check("bool", Encode([]bool{true, false}), []byte{1, 0})
	check("myInt", Encode([]myInt{3}), []byte{3, 0, 0, 0, 0, 0, 0, 0})
	check("array", Encode([][2]int16{{1, 2}}), []byte{1, 0, 2, 0})
	check("struct", Encode([]point{{1, 2, 3, true}}), []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 3, 0, 0, 0, 0, 0, 0, 0, 1})
	check("empty", Encode([]float64{}), []byte{})

	roundTrip(t, []int{0, 1, -1, math.MaxInt, math.MinInt})
	roundTrip(t, []uint{0, math.MaxUint})
	roundTrip(t, []int8{-128, 127})
	roundTrip(t, []float32{1.5, float32(math.Inf(-1))})
	roundTrip(t, []complex128{1 + 2i})
	roundTrip(t, []bool{true, false, true})
	roundTrip(t, []point{{1, 2, 3, true}, {4, 5, -6, false}})
	roundTrip(t, [][3]uint8{{1, 2, 3}})
	roundTrip(t, []myInt{-7})

	if _, err := Decode[float64](make([]byte, 12)); err == nil || !strings.Contains(err.Error(), "12 bytes is not a whole number of 8-byte float64") {
		t.Errorf("Decode of 12 bytes as float64: %v", err)
	}
	if _, err := Decode[string](nil); err == nil {
		t.Error("Decode[string] succeeded")
	}
	if b, _ := Decode[bool]([]byte{0, 7}); !slices.Equal(b, []bool{false, true}) {
		t.Errorf("bool from non-zero byte: %v", b)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Encode of []string did not panic")
			}
		}()
		Encode([]string{"x"})
	}()
}

func roundTrip[T comparable](t *testing.T, v []T) {
	t.Helper()
	got, err := Decode[T](Encode(v))
	if err != nil || !slices.Equal(got, v) {
		t.Errorf("%T: round trip gave %v, %v", v, got, err)
	}
}

func TestTypedCollectives(t *testing.T) {
	for n := 1; n <= 7; n++ {
		root := n / 2
		mustAll(t, n, func(c Communicator) error {
			r := c.Rank()
			got, err := BcastSlice(c, root, []point{{float32(r), 0, int64(r), true}})
			if err != nil || len(got) != 1 || got[0].ID != int64(root) {
				return fmt.Errorf("BcastSlice: %v %v", got, err)
			}
			all := make([]int, 3*n)
			for i := range all {
				all[i] = i * 10
			}
			mine, err := ScatterSlice(c, root, all)
			if err != nil || !slices.Equal(mine, all[3*r:3*r+3]) {
				return fmt.Errorf("ScatterSlice: %v %v", mine, err)
			}
			// Blocks of different lengths: rank r sends r+1 values.
			v := make([]float64, r+1)
			for i := range v {
				v[i] = float64(r)
			}
			var want []float64
			for q := range n {
				for range q + 1 {
					want = append(want, float64(q))
				}
			}
			g, err := GatherSlice(c, root, v)
			if err != nil || r == root && !slices.Equal(g, want) || r != root && g != nil {
				return fmt.Errorf("GatherSlice: %v %v", g, err)
			}
			g, err = AllgatherSlice(c, v)
			if err != nil || !slices.Equal(g, want) {
				return fmt.Errorf("AllgatherSlice: %v %v", g, err)
			}
			// AlltoallSlice: block i of rank r is {r*100+i, r*100+i}.
			a := make([]int32, 2*n)
			for i := range a {
				a[i] = int32(r*100 + i/2)
			}
			got2, err := AlltoallSlice(c, a)
			if err != nil {
				return fmt.Errorf("AlltoallSlice: %v", err)
			}
			for q := range n {
				if got2[2*q] != int32(q*100+r) || got2[2*q+1] != int32(q*100+r) {
					return fmt.Errorf("AlltoallSlice: got %v", got2)
				}
			}
			parts := make([][]byte, n)
			for i := range parts {
				parts[i] = []byte(fmt.Sprintf("%d->%d", r, i))
			}
			bs, err := alltoall(c, parts)
			for q := 0; err == nil && q < n; q++ {
				if string(bs[q]) != fmt.Sprintf("%d->%d", q, r) {
					err = fmt.Errorf("part from %d: %q", q, bs[q])
				}
			}
			if err != nil {
				return fmt.Errorf("alltoall: %w", err)
			}
			return c.Barrier()
		})
		if n > 1 {
			allFail(t, n, fmt.Sprintf("rank: ScatterSlice: length %d not divisible by %d ranks", 2*n+1, n), func(c Communicator) error {
				_, err := ScatterSlice(c, 0, make([]int, 2*n+1))
				return err
			})
		}
	}
}

func TestReductions(t *testing.T) {
	for n := 1; n <= 7; n++ {
		mustAll(t, n, func(c Communicator) error {
			r := c.Rank()
			s, err := Scan(c, []int8{1, int8(r)}, Sum)
			if err != nil || s[0] != int8(r+1) || int(s[1]) != r*(r+1)/2 {
				return fmt.Errorf("Scan: %v %v", s, err)
			}
			e, err := Exscan(c, []uint{1}, Sum)
			if err != nil || r == 0 && e != nil || r > 0 && e[0] != uint(r) {
				return fmt.Errorf("Exscan: %v %v", e, err)
			}
			v := make([]float32, 2*n)
			for i := range v {
				v[i] = float32(i)
			}
			rs, err := ReduceScatter(c, v, Sum)
			if err != nil || rs[0] != float32(2*r*n) || rs[1] != float32((2*r+1)*n) {
				return fmt.Errorf("ReduceScatter: %v %v", rs, err)
			}
			l, err := AllreduceLoc(c, []float64{float64(r % 2), -float64(r)}, Max)
			if err != nil || l[0] != (Loc[float64]{float64(min(n-1, 1)), min(n-1, 1)}) || l[1] != (Loc[float64]{0, 0}) {
				return fmt.Errorf("AllreduceLoc: %v %v", l, err)
			}
			l2, err := ReduceLoc(c, n-1, []int{r}, Min)
			if err != nil || r == n-1 && l2[0] != (Loc[int]{0, 0}) || r != n-1 && l2 != nil {
				return fmt.Errorf("ReduceLoc: %v %v", l2, err)
			}
			land, err := Allreduce(c, []int16{int16(r + 1), int16(r)}, Land)
			if wantLast := int16(0); n == 1 {
				_ = wantLast
			}
			if err != nil || land[0] != 1 || land[1] != 0 {
				return fmt.Errorf("Land: %v %v", land, err)
			}
			bx, err := Allreduce(c, []uint8{1 << r}, Bor)
			if err != nil || bx[0] != uint8(1<<n-1) {
				return fmt.Errorf("Bor: %v %v", bx, err)
			}
			// A non-commutative f: string concatenation of fixed arrays.
			cat := func(a, b [8]byte) [8]byte {
				n := int(a[0])
				copy(a[1+n:], b[1:1+b[0]])
				a[0] += b[0]
				return a
			}
			mine := [8]byte{1, byte('a' + r)}
			want := [8]byte{byte(n)}
			for q := range n {
				want[1+q] = byte('a' + q)
			}
			f, err := AllreduceFunc(c, [][8]byte{mine}, cat)
			if err != nil || f[0] != want {
				return fmt.Errorf("AllreduceFunc: %v %v", f, err)
			}
			f, err = ReduceFunc(c, 0, [][8]byte{mine}, cat)
			if err != nil || r == 0 && f[0] != want || r != 0 && f != nil {
				return fmt.Errorf("ReduceFunc: %v %v", f, err)
			}
			return nil
		})
		allFail(t, n, "rank: Allreduce: Band on float64", func(c Communicator) error {
			_, err := Allreduce(c, []float64{1}, Band)
			return err
		})
		if n > 1 {
			allFail(t, n, "rank: ReduceScatter: length", func(c Communicator) error {
				_, err := ReduceScatter(c, make([]int, n+1), Sum)
				return err
			})
		}
		allFail(t, n, "rank: AllreduceLoc: Sum: only Min and Max", func(c Communicator) error {
			_, err := AllreduceLoc(c, []int{1}, Sum)
			return err
		})
	}
}

func TestMismatchText(t *testing.T) {
	errs := fakeWorld(t, 3, false, func(c Communicator) error {
		for range 6 {
			if err := c.Barrier(); err != nil {
				return err
			}
		}
		if c.Rank() == 1 {
			_, err := c.Bcast(0, nil)
			return err
		}
		return c.Barrier()
	})
	for r, err := range errs {
		if err == nil || !strings.HasPrefix(err.Error(), "rank: collective mismatch: rank ") || !strings.Contains(err.Error(), "(call #7)") ||
			!strings.Contains(err.Error(), "Bcast") || !strings.Contains(err.Error(), "Barrier") {
			t.Errorf("rank %d: %v", r, err)
		}
	}
	errs = fakeWorld(t, 3, false, func(c Communicator) error {
		if c.Rank() == 1 {
			return finalizeBarrier(c)
		}
		return c.Barrier()
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "Finalize") {
			t.Errorf("finalize: rank %d: %v", r, err)
		}
	}
}

func TestTypedOverTCP(t *testing.T) {
	for r, err := range fakeWorld(t, 5, true, func(c Communicator) error {
		v := make([]float64, 1<<14)
		for i := range v {
			v[i] = float64(i)
		}
		s, err := Allreduce(c, v, Sum)
		if err != nil || s[100] != 500 {
			return fmt.Errorf("Allreduce: %v", err)
		}
		b, err := BcastSlice(c, 4, v)
		if err != nil || !slices.Equal(b, v) {
			return fmt.Errorf("BcastSlice: %v", err)
		}
		return nil
	}) {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}
