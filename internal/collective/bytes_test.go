package collective

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// partLen gives rank r a length that differs between ranks, 0 included.
func partLen(r, scale int) int { return (r * 37 % 11) * scale }

func TestBcast(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for root := range n {
			for _, size := range []int{0, 1, 1000} {
				t.Run(fmt.Sprintf("N=%d/root=%d/size=%d", n, root, size), func(t *testing.T) {
					w := memWorld(t, n, root%2 == 1, true)
					want := pattern(root, size)
					w.mustRun(t, func(r int, tr Transport) error {
						in := pattern(1000+r, 3) // ignored on non-roots
						if r == root {
							in = bytes.Clone(want)
						}
						got, err := Bcast(tr, root, in)
						if err != nil {
							return err
						}
						if !bytes.Equal(got, want) {
							return fmt.Errorf("got %s, want %s", describe(got), describe(want))
						}
						if r == root && !bytes.Equal(in, want) {
							return fmt.Errorf("root's input changed")
						}
						return nil
					})
				})
			}
		}
	}
}

func TestScatter(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for root := range n {
			t.Run(fmt.Sprintf("N=%d/root=%d", n, root), func(t *testing.T) {
				w := memWorld(t, n, root%2 == 0, root%2 == 1)
				parts := make([][]byte, n)
				for i := range parts {
					parts[i] = pattern(i, partLen(i, 13))
				}
				w.mustRun(t, func(r int, tr Transport) error {
					var in [][]byte
					if r == root {
						in = parts
					}
					for range 2 { // twice: the streams stay in step
						got, err := Scatter(tr, root, in)
						if err != nil {
							return err
						}
						if !bytes.Equal(got, parts[r]) {
							return fmt.Errorf("got %s, want %s", describe(got), describe(parts[r]))
						}
					}
					return nil
				})
			})
		}
	}
}

func TestGather(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for root := range n {
			t.Run(fmt.Sprintf("N=%d/root=%d", n, root), func(t *testing.T) {
				w := memWorld(t, n, root%2 == 1, root%2 == 0)
				w.mustRun(t, func(r int, tr Transport) error {
					for i := range 2 {
						got, err := Gather(tr, root, pattern(r+i, partLen(r+i, 7)))
						if err != nil {
							return err
						}
						if r != root {
							if got != nil {
								return fmt.Errorf("non-root got %d entries", len(got))
							}
							continue
						}
						if len(got) != n {
							return fmt.Errorf("got %d entries, want %d", len(got), n)
						}
						for j, b := range got {
							if want := pattern(j+i, partLen(j+i, 7)); !bytes.Equal(b, want) {
								return fmt.Errorf("entry %d: got %s, want %s", j, describe(b), describe(want))
							}
						}
					}
					return nil
				})
			})
		}
	}
}

func TestAllgather(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for _, reorder := range []bool{false, true} {
			t.Run(fmt.Sprintf("N=%d/reorder=%v", n, reorder), func(t *testing.T) {
				w := memWorld(t, n, reorder, reorder)
				w.mustRun(t, func(r int, tr Transport) error {
					for i := range 3 {
						got, err := Allgather(tr, pattern(r*i, partLen(r+i, 5)))
						if err != nil {
							return err
						}
						if len(got) != n {
							return fmt.Errorf("got %d entries, want %d", len(got), n)
						}
						for j, b := range got {
							if want := pattern(j*i, partLen(j+i, 5)); !bytes.Equal(b, want) {
								return fmt.Errorf("call %d entry %d: got %s, want %s", i, j, describe(b), describe(want))
							}
						}
					}
					return nil
				})
			})
		}
	}
}

// 8 MiB through every byte collective.
func TestBytesLarge(t *testing.T) {
	const big = 8 << 20
	for _, n := range []int{3, 4} {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			w := memWorld(t, n, false, true)
			root := n - 1
			want := pattern(42, big)
			w.mustRun(t, func(r int, tr Transport) error {
				got, err := Bcast(tr, root, want)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("bcast: got %s", describe(got))
				}
				mine := want[r*big/n : (r+1)*big/n]
				all, err := Allgather(tr, mine)
				if err != nil {
					return err
				}
				if !bytes.Equal(bytes.Join(all, nil), want) {
					return fmt.Errorf("allgather: pieces do not join up")
				}
				g, err := Gather(tr, root, mine)
				if err != nil {
					return err
				}
				if r == root && !bytes.Equal(bytes.Join(g, nil), want) {
					return fmt.Errorf("gather: pieces do not join up")
				}
				var parts [][]byte
				if r == root {
					parts = all
				}
				s, err := Scatter(tr, root, parts)
				if err != nil {
					return err
				}
				if !bytes.Equal(s, mine) {
					return fmt.Errorf("scatter: got %s", describe(s))
				}
				return nil
			})
		})
	}
}

func TestBadRoot(t *testing.T) {
	for n := 1; n <= 4; n++ {
		for _, root := range []int{-1, n, 1 << 20} {
			w := memWorld(t, n, false, true)
			calls := map[string]func(tr Transport) error{
				"Bcast":   func(tr Transport) error { _, err := Bcast(tr, root, nil); return err },
				"Gather":  func(tr Transport) error { _, err := Gather(tr, root, nil); return err },
				"Scatter": func(tr Transport) error { _, err := Scatter(tr, root, nil); return err },
				"Reduce":  func(tr Transport) error { _, err := Reduce(tr, root, []int{1}, Sum); return err },
			}
			for name, f := range calls {
				for r, err := range w.run(t, func(_ int, tr Transport) error { return f(tr) }) {
					var ce *Error
					if !errors.Is(err, ErrBadRoot) || !errors.As(err, &ce) || ce.Call != name || ce.Rank != r {
						t.Errorf("N=%d %s root %d, rank %d: got %v, want ErrBadRoot", n, name, root, r, err)
					}
				}
			}
			// The bad calls consumed no messages: the world still works.
			w.mustRun(t, func(r int, tr Transport) error {
				got, err := Allgather(tr, []byte{byte(r)})
				if err == nil && len(got) != n {
					err = fmt.Errorf("allgather after bad roots: %d entries", len(got))
				}
				return err
			})
		}
	}
}

func TestScatterPartCount(t *testing.T) {
	for n := 1; n <= 7; n++ {
		for _, root := range someRanks(n) {
			for _, count := range []int{0, n - 1, n + 1} {
				if count < 0 || count == n {
					continue
				}
				w := memWorld(t, n, true, true)
				errs := w.run(t, func(r int, tr Transport) error {
					parts := make([][]byte, count)
					if r != root {
						parts = make([][]byte, n) // ignored: only the root's count matters
					}
					_, err := Scatter(tr, root, parts)
					return err
				})
				for r, err := range errs {
					if !errors.Is(err, ErrPartCount) {
						t.Errorf("N=%d root %d with %d parts, rank %d: got %v, want ErrPartCount", n, root, count, r, err)
					}
				}
				// The failure kept the streams in step.
				w.mustRun(t, func(r int, tr Transport) error {
					_, err := Bcast(tr, root, []byte("ok"))
					return err
				})
			}
		}
	}
}

// Ranks making different calls: everyone fails instead of hanging where
// the algorithms exchange with everyone.
func TestMismatchedCalls(t *testing.T) {
	for n := 2; n <= 7; n++ {
		for _, odd := range someRanks(n) {
			t.Run(fmt.Sprintf("N=%d/odd=%d", n, odd), func(t *testing.T) {
				w := memWorld(t, n, true, false)
				errs := w.run(t, func(r int, tr Transport) error {
					if r == odd {
						_, err := Allgather(tr, []byte("x"))
						return err
					}
					_, err := Allreduce(tr, []float64{1}, Sum)
					return err
				})
				for r, err := range errs {
					if !errors.Is(err, ErrMismatch) {
						t.Errorf("rank %d: got %v, want ErrMismatch", r, err)
					}
				}
			})
		}
	}
}

// A rank that is one call ahead (its Sequencer skipped a number) is caught.
func TestSequenceMismatch(t *testing.T) {
	for n := 2; n <= 5; n++ {
		w := memWorld(t, n, false, true)
		w.ends[n-1].(Sequencer).NextSeq()
		errs := w.run(t, func(r int, tr Transport) error {
			_, err := Allgather(tr, []byte{1, 2, 3})
			return err
		})
		for r, err := range errs {
			if !errors.Is(err, ErrMismatch) {
				t.Errorf("N=%d rank %d: got %v, want ErrMismatch", n, r, err)
			} else if r == 0 && n == 2 && err.Error() != "collective: collective mismatch: rank 1 called Allgather (call #2) while rank 0 called Allgather (call #1)" {
				t.Errorf("error text: %v", err)
			}
		}
	}
}
