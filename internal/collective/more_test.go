package collective

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// ref applies op the way the package documents it, for any op.
func ref[T Number](op Op, a, b T) T {
	switch op {
	case Land:
		return truth[T](a != 0 && b != 0)
	case Lor:
		return truth[T](a != 0 || b != 0)
	case Band:
		return T(uint64(a) & uint64(b))
	case Bor:
		return T(uint64(a) | uint64(b))
	case Bxor:
		return T(uint64(a) ^ uint64(b))
	}
	return apply(op, a, b)
}

// serial combines the inputs of ranks [lo, hi) element-wise in order.
func serialRange[T Number](op Op, in [][]T, lo, hi int) []T {
	acc := slices.Clone(in[lo])
	normalize(acc, op)
	for r := lo + 1; r < hi; r++ {
		for i := range acc {
			acc[i] = ref(op, acc[i], in[r][i])
		}
	}
	return acc
}

var everyOp = []Op{Sum, Prod, Min, Max, Land, Lor, Band, Bor, Bxor}

func inputs[T Number](op Op, n, length int) [][]T {
	in := make([][]T, n)
	for r := range n {
		in[r] = values[T](op, r, length, 42)
		if op.logical() {
			for i := range in[r] {
				if (i+r)%3 == 0 {
					in[r][i] = 0
				}
			}
		}
	}
	return in
}

func checkScans[T Number](t *testing.T, w testWorld) {
	t.Helper()
	n := w.size()
	for _, op := range everyOp {
		if op.Bitwise() && isFloat[T]() {
			continue
		}
		for _, length := range []int{0, 1, 3 * n, 5000 * n} {
			in := inputs[T](op, n, length)
			w.mustRun(t, func(r int, tr Transport) error {
				got, err := Scan(tr, in[r], op)
				if err != nil {
					return fmt.Errorf("Scan %v: %w", op, err)
				}
				if want := serialRange(op, in, 0, r+1); !slices.Equal(got, want) && !nanEqual(got, want) {
					return fmt.Errorf("Scan %v of %d: got %v, want %v", op, length, head(got), head(want))
				}
				got, err = Exscan(tr, in[r], op)
				if err != nil {
					return fmt.Errorf("Exscan %v: %w", op, err)
				}
				if r == 0 {
					if got != nil {
						return fmt.Errorf("Exscan on rank 0: got %v, want nil", head(got))
					}
				} else if want := serialRange(op, in, 0, r); !slices.Equal(got, want) && !nanEqual(got, want) {
					return fmt.Errorf("Exscan %v of %d: got %v, want %v", op, length, head(got), head(want))
				}
				if length%n == 0 {
					got, err = ReduceScatter(tr, in[r], op)
					if err != nil {
						return fmt.Errorf("ReduceScatter %v: %w", op, err)
					}
					nb := length / n
					if want := serialRange(op, in, 0, n)[r*nb : (r+1)*nb]; !slices.Equal(got, want) && !nanEqual(got, want) {
						return fmt.Errorf("ReduceScatter %v of %d: got %v, want %v", op, length, head(got), head(want))
					}
				}
				all, err := Allreduce(tr, in[r], op)
				if err != nil {
					return fmt.Errorf("Allreduce %v: %w", op, err)
				}
				if want := serialRange(op, in, 0, n); !slices.Equal(all, want) && !nanEqual(all, want) {
					return fmt.Errorf("Allreduce %v of %d: got %v, want %v", op, length, head(all), head(want))
				}
				return nil
			})
		}
	}
}

func nanEqual[T Number](a, b []T) bool {
	return slices.EqualFunc(a, b, func(x, y T) bool { return x == y || x != x && y != y })
}

func head[T any](v []T) []T {
	if len(v) > 6 {
		return v[:6]
	}
	return v
}

func TestScanReduceScatter(t *testing.T) {
	for n := 1; n <= 7; n++ {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			w := memWorld(t, n, n%2 == 1, true)
			checkScans[float64](t, w)
			checkScans[int](t, w)
			checkScans[int8](t, w)
			checkScans[uint16](t, w)
			checkScans[myFloat32](t, w)
			checkScans[uint](t, w)
		})
	}
}

func TestAlltoall(t *testing.T) {
	for n := 1; n <= 7; n++ {
		w := memWorld(t, n, true, true)
		part := func(from, to int) []byte { return pattern(from*100+to, (from+2*to)%5*7) }
		w.mustRun(t, func(r int, tr Transport) error {
			parts := make([][]byte, n)
			for to := range n {
				parts[to] = part(r, to)
			}
			got, err := Alltoall(tr, parts)
			if err != nil {
				return err
			}
			for from := range n {
				if !bytes.Equal(got[from], part(from, r)) || got[from] == nil {
					return fmt.Errorf("N=%d: part from %d: got %s", n, from, describe(got[from]))
				}
			}
			return nil
		})
		// A wrong number of parts on one rank fails every rank; the next
		// call works.
		errs := w.run(t, func(r int, tr Transport) error {
			parts := make([][]byte, n)
			if r == n-1 {
				parts = parts[:n-1]
			}
			_, err := Alltoall(tr, parts)
			return err
		})
		for r, err := range errs {
			if !errors.Is(err, ErrPartCount) {
				t.Errorf("N=%d rank %d: got %v, want ErrPartCount", n, r, err)
			}
		}
		w.mustRun(t, func(r int, tr Transport) error { return Barrier(tr) })
	}
}

func TestReduceScatterErrors(t *testing.T) {
	for n := 2; n <= 5; n++ {
		w := memWorld(t, n, false, true)
		errs := w.run(t, func(r int, tr Transport) error {
			_, err := ReduceScatter(tr, make([]int32, n+1), Sum)
			return err
		})
		for r, err := range errs {
			if !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), "ReduceScatter: length") {
				t.Errorf("N=%d rank %d: got %v", n, r, err)
			}
		}
		// One rank with another length: everyone fails too.
		errs = w.run(t, func(r int, tr Transport) error {
			l := n
			if r == 1 {
				l = 2 * n
			}
			_, err := ReduceScatter(tr, make([]int32, l), Sum)
			return err
		})
		for r, err := range errs {
			if !errors.Is(err, ErrMismatch) {
				t.Errorf("N=%d rank %d: got %v, want ErrMismatch", n, r, err)
			}
		}
		w.mustRun(t, func(r int, tr Transport) error { return Barrier(tr) })
	}
}

func TestBitwiseOnFloat(t *testing.T) {
	for n := 1; n <= 4; n++ {
		w := memWorld(t, n, false, true)
		errs := w.run(t, func(r int, tr Transport) error {
			_, err := Allreduce(tr, []float64{1}, Band)
			return err
		})
		for r, err := range errs {
			if !errors.Is(err, ErrBadOp) || err.Error() != "collective: Allreduce: Band on float64" {
				t.Errorf("N=%d rank %d: got %v", n, r, err)
			}
		}
		w.mustRun(t, func(r int, tr Transport) error { return Barrier(tr) })
	}
}

// Logical ops give 1 or 0, on one rank too.
func TestLogicalOneRank(t *testing.T) {
	w := memWorld(t, 1, false, true)
	w.mustRun(t, func(r int, tr Transport) error {
		got, err := Allreduce(tr, []int{0, 5, -3}, Lor)
		if err == nil && !slices.Equal(got, []int{0, 1, 1}) {
			err = fmt.Errorf("Lor: got %v", got)
		}
		return err
	})
}

// catFunc concatenates strings of fixed width: associative, not
// commutative, so the order shows.
func catFunc(width int) Combiner {
	return func(lo, hi []byte) {
		for i := 0; i < len(lo); i += width {
			// each element: count (1 byte) then up to width-1 rank bytes
			a, b := lo[i:i+width], hi[i:i+width]
			na, nb := int(a[0]), int(b[0])
			copy(a[1+na:], b[1:1+nb])
			a[0] = byte(na + nb)
		}
	}
}

func TestFuncOrder(t *testing.T) {
	for n := 1; n <= 7; n++ {
		w := memWorld(t, n, true, true)
		const width, elems = 8, 3
		want := make([]byte, 0, width*elems)
		for range elems {
			el := make([]byte, width)
			el[0] = byte(n)
			for r := range n {
				el[1+r] = byte(r)
			}
			want = append(want, el...)
		}
		for _, root := range someRanks(n) {
			w.mustRun(t, func(r int, tr Transport) error {
				in := make([]byte, width*elems)
				for i := 0; i < len(in); i += width {
					in[i], in[i+1] = 1, byte(r)
				}
				got, err := AllreduceFunc(tr, KindAllreduceFunc, in, catFunc(width))
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("N=%d AllreduceFunc: got %x, want %x", n, got, want)
				}
				got, err = ReduceFunc(tr, KindReduceFunc, root, in, catFunc(width))
				if err != nil {
					return err
				}
				if r == root && !bytes.Equal(got, want) || r != root && got != nil {
					return fmt.Errorf("N=%d ReduceFunc root %d: got %x", n, root, got)
				}
				return nil
			})
		}
	}
}

func TestLoc(t *testing.T) {
	for n := 1; n <= 7; n++ {
		w := memWorld(t, n, true, true)
		// element 0: rank r has r%3 (ties); element 1: 100-r; element 2: all equal.
		in := func(r int) []float64 { return []float64{float64(r % 3), float64(100 - r), 7} }
		for _, op := range []Op{Min, Max} {
			var wantV []float64
			var wantR []int
			for i := range 3 {
				bv, br := in(0)[i], 0
				for r := 1; r < n; r++ {
					if x := in(r)[i]; op == Min && x < bv || op == Max && x > bv {
						bv, br = x, r
					}
				}
				wantV, wantR = append(wantV, bv), append(wantR, br)
			}
			w.mustRun(t, func(r int, tr Transport) error {
				v, ranks, err := AllreduceLoc(tr, in(r), op)
				if err != nil {
					return err
				}
				if !slices.Equal(v, wantV) || !slices.Equal(ranks, wantR) {
					return fmt.Errorf("N=%d AllreduceLoc %v: got %v %v, want %v %v", n, op, v, ranks, wantV, wantR)
				}
				root := n - 1
				v, ranks, err = ReduceLoc(tr, root, in(r), op)
				if err != nil {
					return err
				}
				if r == root && (!slices.Equal(v, wantV) || !slices.Equal(ranks, wantR)) || r != root && v != nil {
					return fmt.Errorf("N=%d ReduceLoc %v: got %v %v", n, op, v, ranks)
				}
				return nil
			})
		}
		errs := w.run(t, func(r int, tr Transport) error {
			_, _, err := AllreduceLoc(tr, []int{1}, Sum)
			return err
		})
		for r, err := range errs {
			if !errors.Is(err, ErrBadOp) {
				t.Errorf("N=%d rank %d: got %v, want ErrBadOp", n, r, err)
			}
		}
	}
}

var _ = binary.LittleEndian
