package collective

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var allOps = []Op{Sum, Prod, Min, Max}

type myInt int
type myFloat32 float32

func isFloat[T Number]() bool {
	e := elemOf[T]()
	return e == elemFloat32 || e == elemFloat64
}

// values returns rank r's input. Floats are small integers or powers of two
// so that any order of operations gives the exact serial result; integers
// span the whole range so that Sum and Prod wrap.
func values[T Number](op Op, r, n int, seed uint64) []T {
	rng := rand.New(rand.NewPCG(seed, uint64(r)))
	v := make([]T, n)
	for i := range v {
		switch {
		case !isFloat[T]():
			v[i] = T(rng.Uint64())
		case op == Prod:
			v[i] = T([]float64{-2, -1, -0.5, 0.5, 1, 2}[rng.IntN(6)])
		default:
			v[i] = T(rng.IntN(2001) - 1000)
		}
	}
	return v
}

func apply[T Number](op Op, a, b T) T {
	switch op {
	case Sum:
		return a + b
	case Prod:
		return a * b
	case Min:
		if b < a {
			return b
		}
		return a
	case Max:
		if b > a {
			return b
		}
		return a
	}
	panic(op)
}

// serial folds the inputs left to right.
func serial[T Number](op Op, in [][]T) []T {
	out := slices.Clone(in[0])
	for _, v := range in[1:] {
		for i := range out {
			out[i] = apply(op, out[i], v[i])
		}
	}
	return out
}

func sameVec[T Number](got, want []T) error {
	if got == nil {
		return fmt.Errorf("got nil, want %d elements", len(want))
	}
	if len(got) != len(want) {
		return fmt.Errorf("got %d elements, want %d", len(got), len(want))
	}
	for i := range got {
		// Compare bits: NaN must be NaN, -0 must be -0.
		if !(got[i] == want[i] || got[i] != got[i] && want[i] != want[i]) {
			return fmt.Errorf("element %d: got %v, want %v", i, got[i], want[i])
		}
	}
	return nil
}

type reduceCase struct {
	op   Op
	size int
	root int
}

// reduceCases covers every op with sizes around the interesting points:
// empty, tiny, odd, and just over the Rabenseifner threshold.
func reduceCases[T Number](n int) []reduceCase {
	big := rabenseifnerMin/elemOf[T]().size() + 3
	var cs []reduceCase
	for i, op := range allOps {
		for j, size := range []int{0, 1, 5, 33, big} {
			cs = append(cs, reduceCase{op, size, (i + j) % n})
		}
	}
	return cs
}

// checkReduce runs every case through Allreduce and Reduce on one world,
// one call after another, and compares with the serial result.
func checkReduce[T Number](t *testing.T, w testWorld) {
	t.Helper()
	n := w.size()
	cases := reduceCases[T](n)
	in := make([][][]T, len(cases))
	want := make([][]T, len(cases))
	for c, rc := range cases {
		in[c] = make([][]T, n)
		for r := range n {
			in[c][r] = values[T](rc.op, r, rc.size, uint64(c))
		}
		want[c] = serial(rc.op, in[c])
	}
	w.mustRun(t, func(r int, tr Transport) error {
		for c, rc := range cases {
			v := in[c][r]
			keep := slices.Clone(v)
			got, err := Allreduce(tr, v, rc.op)
			if err == nil {
				err = sameVec(got, want[c])
			}
			if err != nil {
				return fmt.Errorf("allreduce %v of %d: %w", rc.op, rc.size, err)
			}
			got, err = Reduce(tr, rc.root, v, rc.op)
			switch {
			case err != nil:
			case r == rc.root:
				err = sameVec(got, want[c])
			case got != nil:
				err = fmt.Errorf("non-root got %d elements", len(got))
			}
			if err != nil {
				return fmt.Errorf("reduce %v of %d to %d: %w", rc.op, rc.size, rc.root, err)
			}
			if !slices.Equal(v, keep) && !isFloat[T]() {
				return fmt.Errorf("input modified")
			}
		}
		return nil
	})
}

func testReduceType[T Number](t *testing.T) {
	for n := 1; n <= 7; n++ {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			checkReduce[T](t, memWorld(t, n, n%2 == 0, n%3 != 0))
		})
	}
}

func TestReduce(t *testing.T) {
	t.Run("int", testReduceType[int])
	t.Run("int32", testReduceType[int32])
	t.Run("int64", testReduceType[int64])
	t.Run("uint32", testReduceType[uint32])
	t.Run("uint64", testReduceType[uint64])
	t.Run("float32", testReduceType[float32])
	t.Run("float64", testReduceType[float64])
	t.Run("myInt", testReduceType[myInt])
	t.Run("myFloat32", testReduceType[myFloat32])
}

// The portable path (big-endian machines) and unaligned messages from the
// transport give the same results.
func TestReducePortable(t *testing.T) {
	t.Run("slow-path", func(t *testing.T) {
		fastPath = false
		defer func() { fastPath = true }()
		for _, n := range []int{3, 4} {
			checkReduce[int](t, memWorld(t, n, false, true))
			checkReduce[uint32](t, memWorld(t, n, false, true))
			checkReduce[float32](t, memWorld(t, n, false, true))
			checkReduce[float64](t, memWorld(t, n, false, true))
		}
	})
	t.Run("misaligned", func(t *testing.T) {
		for _, n := range []int{3, 4} {
			w := memWorld(t, n, false, false)
			for r := range w.ends {
				w.ends[r] = misaligned{w.ends[r]}
			}
			checkReduce[int64](t, w)
			checkReduce[float32](t, w)
		}
	})
}

// misaligned returns every message one byte into its buffer.
type misaligned struct{ Transport }

func (m misaligned) Recv(from int) ([]byte, error) {
	b, err := m.Transport.Recv(from)
	if err != nil {
		return nil, err
	}
	c := make([]byte, len(b)+1)
	copy(c[1:], b)
	return c[1:], nil
}

// 8 MiB vectors.
func TestReduceLarge(t *testing.T) {
	const elems = 1 << 20 // float64: 8 MiB
	for _, n := range []int{3, 4} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			in := make([][]float64, n)
			for r := range in {
				in[r] = make([]float64, elems)
				for i := range in[r] {
					in[r][i] = float64((i*7+r*13)%1001 - 500)
				}
			}
			want := serial(Sum, in)
			w := memWorld(t, n, false, true)
			w.mustRun(t, func(r int, tr Transport) error {
				got, err := Allreduce(tr, in[r], Sum)
				if err == nil {
					err = sameVec(got, want)
				}
				if err != nil {
					return fmt.Errorf("allreduce: %w", err)
				}
				got, err = Reduce(tr, 1, in[r], Sum)
				if err == nil && r == 1 {
					err = sameVec(got, want)
				}
				if err != nil {
					return fmt.Errorf("reduce: %w", err)
				}
				return nil
			})
		})
	}
}

func TestMinMaxNaN(t *testing.T) {
	nan := math.NaN()
	negZero := math.Copysign(0, -1)
	for _, n := range []int{2, 3, 5} {
		in := make([][]float64, n)
		for r := range in {
			in[r] = []float64{float64(r), float64(-r), 0, 1}
		}
		in[n-1][0] = nan
		in[0][2] = negZero
		wantMin := []float64{nan, float64(-(n - 1)), negZero, 1}
		wantMax := []float64{nan, 0, 0, 1}
		w := memWorld(t, n, false, true)
		w.mustRun(t, func(r int, tr Transport) error {
			for _, c := range []struct {
				op   Op
				want []float64
			}{{Min, wantMin}, {Max, wantMax}} {
				got, err := Allreduce(tr, in[r], c.op)
				if err != nil {
					return err
				}
				if err := sameVec(got, c.want); err != nil {
					return fmt.Errorf("%v: %w", c.op, err)
				}
				if math.Signbit(got[2]) != math.Signbit(c.want[2]) {
					return fmt.Errorf("%v: got %v for -0 and +0, want %v", c.op, got[2], c.want[2])
				}
			}
			return nil
		})
	}
}

func TestIntOverflowWraps(t *testing.T) {
	w := memWorld(t, 3, false, true)
	w.mustRun(t, func(r int, tr Transport) error {
		got, err := Allreduce(tr, []int32{math.MaxInt32, math.MinInt32, 1 << 20}, Sum)
		if err != nil {
			return err
		}
		// MaxInt32*3 = 2^32 + (MaxInt32 - 2) wraps to MaxInt32-2;
		// MinInt32*3 = -2^32 - 2^31 wraps to MinInt32.
		return sameVec(got, []int32{math.MaxInt32 - 2, math.MinInt32, 3 << 20})
	})
}

// A rank with a different vector length, op or type makes every rank fail,
// and the next call works again.
func TestReduceMismatch(t *testing.T) {
	big := rabenseifnerMin/8 + 10
	type variant struct {
		name string
		call func(tr Transport, odd bool) error
		want error
	}
	f64 := func(n int) []float64 { return make([]float64, n) }
	variants := []variant{
		{"allreduce-len", func(tr Transport, odd bool) error {
			_, err := Allreduce(tr, f64(map[bool]int{false: 3, true: 4}[odd]), Sum)
			return err
		}, ErrMismatch},
		{"allreduce-len-large", func(tr Transport, odd bool) error {
			_, err := Allreduce(tr, f64(map[bool]int{false: big, true: big + 1}[odd]), Sum)
			return err
		}, ErrMismatch},
		{"allreduce-len-across-algorithms", func(tr Transport, odd bool) error {
			_, err := Allreduce(tr, f64(map[bool]int{false: big, true: 10}[odd]), Max)
			return err
		}, ErrMismatch},
		{"allreduce-empty-vs-one", func(tr Transport, odd bool) error {
			_, err := Allreduce(tr, f64(map[bool]int{false: 0, true: 1}[odd]), Sum)
			return err
		}, ErrMismatch},
		{"allreduce-op", func(tr Transport, odd bool) error {
			_, err := Allreduce(tr, f64(5), map[bool]Op{false: Sum, true: Max}[odd])
			return err
		}, ErrMismatch},
		{"allreduce-type", func(tr Transport, odd bool) error {
			var err error
			if odd {
				_, err = Allreduce(tr, make([]int64, big), Sum)
			} else {
				_, err = Allreduce(tr, f64(big), Sum)
			}
			return err
		}, ErrMismatch},
		{"allreduce-type-size", func(tr Transport, odd bool) error {
			var err error
			if odd {
				_, err = Allreduce(tr, make([]float32, big), Sum)
			} else {
				_, err = Allreduce(tr, f64(big), Sum)
			}
			return err
		}, ErrMismatch},
		{"allreduce-bad-op", func(tr Transport, odd bool) error {
			_, err := Allreduce(tr, f64(2), Op(0))
			return err
		}, ErrBadOp},
		{"reduce-len", func(tr Transport, odd bool) error {
			_, err := Reduce(tr, 0, f64(map[bool]int{false: 7, true: 6}[odd]), Min)
			return err
		}, ErrMismatch},
		{"reduce-len-root-last", func(tr Transport, odd bool) error {
			_, err := Reduce(tr, tr.Size()-1, f64(map[bool]int{false: big, true: 1}[odd]), Sum)
			return err
		}, ErrMismatch},
		{"reduce-op", func(tr Transport, odd bool) error {
			_, err := Reduce(tr, 1, f64(3), map[bool]Op{false: Prod, true: Sum}[odd])
			return err
		}, ErrMismatch},
		{"reduce-bad-op", func(tr Transport, odd bool) error {
			_, err := Reduce(tr, 0, f64(2), Op(9))
			return err
		}, ErrBadOp},
	}
	for n := 2; n <= 7; n++ {
		for _, v := range variants {
			for _, odd := range someRanks(n) {
				for _, seq := range []bool{false, true} {
					name := fmt.Sprintf("N=%d/%s/odd=%d/seq=%v", n, v.name, odd, seq)
					t.Run(name, func(t *testing.T) {
						w := memWorld(t, n, odd%2 == 0, seq)
						errs := w.run(t, func(r int, tr Transport) error { return v.call(tr, r == odd) })
						for r, err := range errs {
							var ce *Error
							switch {
							case !errors.As(err, &ce):
								t.Errorf("rank %d: got %v, want a *collective.Error", r, err)
							case v.want == ErrBadOp && !errors.Is(err, ErrBadOp):
								t.Errorf("rank %d: got %v, want ErrBadOp", r, err)
							case v.want == ErrMismatch && !errors.Is(err, ErrMismatch):
								t.Errorf("rank %d: got %v, want ErrMismatch", r, err)
							}
						}
						// The message streams are still in step.
						w.mustRun(t, func(r int, tr Transport) error {
							got, err := Allreduce(tr, []int{r}, Sum)
							if err == nil && got[0] != n*(n-1)/2 {
								err = fmt.Errorf("got %d", got[0])
							}
							return err
						})
					})
				}
			}
		}
	}
}

// The failure names what differs.
func TestMismatchText(t *testing.T) {
	w := memWorld(t, 2, false, false)
	errs := w.run(t, func(r int, tr Transport) error {
		_, err := Allreduce(tr, make([]float64, 3+r), Sum)
		return err
	})
	want := "collective: Allreduce: rank 1 sent Allreduce Sum of 4 float64 call #0 round 0, rank 0 is in Allreduce Sum of 3 float64 call #0 round 0 (seen by rank 0)"
	if errs[0] == nil || errs[0].Error() != want {
		t.Errorf("got  %v\nwant %s", errs[0], want)
	}
}

// A rank that is gone makes every other rank fail with an error naming it.
func TestDeadRank(t *testing.T) {
	big := rabenseifnerMin/8 + 1
	calls := map[string]func(tr Transport) error{
		"allreduce": func(tr Transport) error { _, err := Allreduce(tr, []float64{1, 2}, Sum); return err },
		"allreduce-large": func(tr Transport) error {
			_, err := Allreduce(tr, make([]float64, big), Sum)
			return err
		},
		"allgather": func(tr Transport) error { _, err := Allgather(tr, []byte("x")); return err },
		"reduce":    func(tr Transport) error { _, err := Reduce(tr, 0, []int32{1}, Max); return err },
		"reduce-root-last": func(tr Transport) error {
			_, err := Reduce(tr, tr.Size()-1, []int32{1}, Max)
			return err
		},
	}
	for n := 2; n <= 7; n++ {
		for name, call := range calls {
			for _, dead := range someRanks(n) {
				t.Run(fmt.Sprintf("N=%d/%s/dead=%d", n, name, dead), func(t *testing.T) {
					w, m := memWorldNet(t, n)
					m.Kill(dead)
					errs := w.run(t, func(r int, tr Transport) error {
						if r == dead {
							return nil
						}
						return call(tr)
					})
					for r, err := range errs {
						if r == dead {
							continue
						}
						if !errors.Is(err, ErrTransport) || !strings.Contains(err.Error(), fmt.Sprintf("rank %d ", dead)) {
							t.Errorf("rank %d: got %v, want ErrTransport naming rank %d", r, err, dead)
						}
					}
				})
			}
		}
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{Sum: "Sum", Prod: "Prod", Min: "Min", Max: "Max", Band: "Band", Bxor: "Bxor", 0: "Op(0)", 200: "Op(200)"} {
		if got := op.String(); got != want {
			t.Errorf("%d: got %q, want %q", op, got, want)
		}
	}
}
