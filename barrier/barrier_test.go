package barrier_test

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/dsmexec/dsmexec/internal/transporttest"
	"sync/atomic"
	"testing"

	"github.com/dsmexec/dsmexec/barrier"
)

// algorithm builds a Barrier for one rank.
type algorithm struct {
	name string
	make func(t barrier.Transport) barrier.Barrier
}

func algorithms(n int) []algorithm {
	return []algorithm{
		{"dissemination", barrier.NewDissemination},
		{"central-root0", func(t barrier.Transport) barrier.Barrier { return barrier.NewCentral(t, 0) }},
		{fmt.Sprintf("central-root%d", n-1), func(t barrier.Transport) barrier.Barrier { return barrier.NewCentral(t, n-1) }},
	}
}

// runRanks is transporttest.RunRanks.
func runRanks(t testing.TB, n int, abort func(), body func(rank int) error) []error {
	t.Helper()
	return transporttest.RunRanks(t, n, transporttest.HangAfter, abort, body)
}

// checkBarriers runs k barriers on every rank and checks the barrier
// property: when a rank leaves barrier i, every rank has entered it.
func checkBarriers(t *testing.T, n, k int, ends []barrier.Transport, abort func(), alg algorithm) {
	t.Helper()
	entered := make([]atomic.Int32, k)
	errs := runRanks(t, n, abort, func(r int) error {
		b := alg.make(ends[r])
		var early error
		for i := range k {
			entered[i].Add(1)
			if err := b.Wait(); err != nil {
				abort() // unblock the others instead of letting them wait for us
				return fmt.Errorf("barrier %d: %w", i, err)
			}
			// Keep going after a violation so that the other ranks are
			// not left waiting for this one.
			if got := entered[i].Load(); got != int32(n) && early == nil {
				early = fmt.Errorf("left barrier %d when only %d of %d ranks had entered it", i, got, n)
			}
		}
		return early
	})
	for r, err := range errs {
		if err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
	}
}

func memEnds(m *transporttest.MemNet) []barrier.Transport {
	var ts []barrier.Transport
	for _, e := range m.Ends() {
		ts = append(ts, e)
	}
	return ts
}

func TestBarrierMemory(t *testing.T) {
	for n := 1; n <= 9; n++ {
		for _, alg := range algorithms(n) {
			for _, reorder := range []bool{false, true} {
				t.Run(fmt.Sprintf("N=%d/%s/reorder=%v", n, alg.name, reorder), func(t *testing.T) {
					m := transporttest.NewMemNet(n, reorder, uint64(n*100+len(alg.name)))
					defer m.Close()
					checkBarriers(t, n, 20, memEnds(m), m.Close, alg)
				})
			}
		}
	}
}

func TestBarrierLoopback(t *testing.T) {
	for n := 1; n <= 9; n++ {
		for _, alg := range algorithms(n) {
			t.Run(fmt.Sprintf("N=%d/%s", n, alg.name), func(t *testing.T) {
				m := transporttest.NewTCPMesh(t, n)
				var ends []barrier.Transport
				for _, e := range m.Ends {
					ends = append(ends, e)
				}
				checkBarriers(t, n, 10, ends, m.Close, alg)
			})
		}
	}
}

// failedRanks lists a few ranks to kill in a world of n.
func failedRanks(n int) []int {
	rs := []int{0}
	if n > 2 {
		rs = append(rs, n/2)
	}
	if n > 1 {
		rs = append(rs, n-1)
	}
	return rs
}

// checkNames checks that err is an *Error from rank r naming rank dead.
func checkNames(t *testing.T, r int, err error, dead int) {
	t.Helper()
	var be *barrier.Error
	switch {
	case err == nil:
		t.Errorf("rank %d: Wait succeeded although rank %d is dead", r, dead)
	case !errors.As(err, &be):
		t.Errorf("rank %d: error %v is not a *barrier.Error", r, err)
	case be.Peer != dead || be.Rank != r:
		t.Errorf("rank %d: error names rank %d (from rank %d), want rank %d: %v", r, be.Peer, be.Rank, dead, err)
	case !bytes.Contains([]byte(err.Error()), fmt.Appendf(nil, "rank %d", dead)):
		t.Errorf("rank %d: error text does not name rank %d: %v", r, dead, err)
	}
}

// A rank that dies before entering makes every other rank's Wait fail with
// an error naming it; a rank that dies after some barriers lets those
// complete and fails the next one everywhere.
func TestBarrierPeerFailure(t *testing.T) {
	for n := 2; n <= 9; n++ {
		for _, alg := range algorithms(n) {
			for _, dead := range failedRanks(n) {
				for _, after := range []int{0, 3} {
					name := fmt.Sprintf("N=%d/%s/dead=%d/after=%d", n, alg.name, dead, after)
					t.Run(name, func(t *testing.T) {
						m := transporttest.NewMemNet(n, after > 0, uint64(n+dead))
						defer m.Close()
						ends := m.Ends()
						errs := runRanks(t, n, m.Close, func(r int) error {
							b := alg.make(ends[r])
							for i := range after {
								if err := b.Wait(); err != nil {
									return fmt.Errorf("barrier %d before the failure: %w", i, err)
								}
							}
							if r == dead {
								m.Kill(r)
								return nil
							}
							err := b.Wait()
							if err2 := b.Wait(); err2 != err {
								return fmt.Errorf("second Wait after failure returned %v, want the first error %v", err2, err)
							}
							return err
						})
						for r, err := range errs {
							if r != dead {
								checkNames(t, r, err, dead)
							} else if err != nil {
								t.Errorf("rank %d: %v", r, err)
							}
						}
					})
				}
			}
		}
	}
}

// The dead rank itself gets an error too (its transport fails), instead of
// hanging.
func TestBarrierDeadRankReturns(t *testing.T) {
	for _, alg := range algorithms(5) {
		m := transporttest.NewMemNet(5, false, 1)
		m.Kill(2)
		err := alg.make(m.Ends()[2]).Wait()
		var be *barrier.Error
		if !errors.As(err, &be) || be.Rank != 2 {
			t.Errorf("%s: dead rank's Wait returned %v, want a *barrier.Error from rank 2", alg.name, err)
		}
		m.Close()
	}
}

func TestBarrierLoopbackPeerFailure(t *testing.T) {
	const n, dead = 5, 3
	for _, alg := range algorithms(n) {
		t.Run(alg.name, func(t *testing.T) {
			m := transporttest.NewTCPMesh(t, n)
			m.Kill(dead)
			errs := runRanks(t, n, m.Close, func(r int) error {
				if r == dead {
					return nil
				}
				return alg.make(m.Ends[r]).Wait()
			})
			for r, err := range errs {
				if r != dead {
					checkNames(t, r, err, dead)
				}
			}
		})
	}
}

// A rank waiting for another epoch makes every rank fail with ErrMismatch.
func TestBarrierEpochMismatch(t *testing.T) {
	type run func(t barrier.Transport, epoch uint64) error
	algs := map[string]func(n int) run{
		"dissemination": func(int) run { return barrier.Dissemination },
		"central-root0": func(int) run {
			return func(t barrier.Transport, e uint64) error { return barrier.Central(t, 0, e) }
		},
		"central-rootlast": func(n int) run {
			return func(t barrier.Transport, e uint64) error { return barrier.Central(t, n-1, e) }
		},
	}
	for n := 2; n <= 9; n++ {
		for name, alg := range algs {
			for _, odd := range failedRanks(n) {
				t.Run(fmt.Sprintf("N=%d/%s/odd=%d", n, name, odd), func(t *testing.T) {
					m := transporttest.NewMemNet(n, true, uint64(n*odd+3))
					defer m.Close()
					ends := m.Ends()
					errs := runRanks(t, n, m.Close, func(r int) error {
						epoch := uint64(4)
						if r == odd {
							epoch = 7
						}
						return alg(n)(ends[r], epoch)
					})
					for r, err := range errs {
						if !errors.Is(err, barrier.ErrMismatch) {
							t.Errorf("rank %d: got %v, want ErrMismatch", r, err)
						}
					}
					// The expected epoch is spelled out.
					if err := errs[odd]; err != nil && !bytes.Contains([]byte(err.Error()), []byte("want dissemination round")) &&
						!bytes.Contains([]byte(err.Error()), []byte("epoch 7")) {
						t.Errorf("rank %d: error does not say what was expected: %v", odd, err)
					}
				})
			}
		}
	}
}

func TestCentralBadRoot(t *testing.T) {
	for _, root := range []int{-1, 3, 100} {
		m := transporttest.NewMemNet(3, false, 0)
		errs := runRanks(t, 3, m.Close, func(r int) error {
			return barrier.NewCentral(m.Ends()[r], root).Wait()
		})
		for r, err := range errs {
			if !errors.Is(err, barrier.ErrBadRoot) {
				t.Errorf("root %d, rank %d: got %v, want ErrBadRoot", root, r, err)
			}
		}
		m.Close()
	}
}

func TestSingleRank(t *testing.T) {
	m := transporttest.NewMemNet(1, false, 0)
	defer m.Close()
	e := m.Ends()[0]
	for _, alg := range algorithms(1) {
		b := alg.make(e)
		for range 3 {
			if err := b.Wait(); err != nil {
				t.Fatalf("%s: %v", alg.name, err)
			}
		}
	}
}

// script is a transport for rank 0 of a world of size 2 that records what
// is sent and answers Recv from a fixed list.
type script struct {
	sent    [][]byte
	replies [][]byte
}

func (s *script) Rank() int { return 0 }
func (s *script) Size() int { return 2 }
func (s *script) Send(to int, msg []byte) error {
	s.sent = append(s.sent, append([]byte(nil), msg...))
	return nil
}
func (s *script) Recv(from int) ([]byte, error) {
	if len(s.replies) == 0 {
		return nil, errors.New("script: no more replies")
	}
	b := s.replies[0]
	s.replies = s.replies[1:]
	return b, nil
}

// The wire bytes of a barrier message are fixed: see message.go.
func TestMessageGolden(t *testing.T) {
	epoch := uint64(0x0102030405060708)
	want := []byte{
		0xB1, 0, 0, 0, // dissemination, round 0, ok
		0, 0, 0, 0, // failed rank
		0, 0, 0, 0, // reporter
		0, 0, 0, 0,
		8, 7, 6, 5, 4, 3, 2, 1, // epoch
	}
	s := &script{replies: [][]byte{want}}
	if err := barrier.Dissemination(s, epoch); err != nil {
		t.Fatal(err)
	}
	if len(s.sent) != 1 || !bytes.Equal(s.sent[0], want) {
		t.Fatalf("sent %x, want %x", s.sent, want)
	}

	// A failure status names the failed rank and the rank that saw it.
	failed := bytes.Clone(want)
	failed[2] = 1
	failed[4] = 9
	failed[8] = 5
	s = &script{replies: [][]byte{failed}}
	err := barrier.Dissemination(s, epoch)
	var be *barrier.Error
	if !errors.As(err, &be) || be.Peer != 9 || !errors.Is(err, barrier.ErrPeerFailed) {
		t.Fatalf("got %v, want a failure of rank 9", err)
	}
	if want := "barrier: epoch 72623859790382856, rank 0: rank 9 failed (seen by rank 5): barrier: peer failed"; err.Error() != want {
		t.Errorf("error text\n%s\nwant\n%s", err, want)
	}
}

func TestMalformedMessages(t *testing.T) {
	good := []byte{0xB1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	cases := map[string][]byte{
		"short":      good[:3],
		"long":       append(bytes.Clone(good), 0),
		"kind":       append([]byte{0xB2}, good[1:]...),
		"round":      append([]byte{0xB1, 1}, good[2:]...),
		"status":     append([]byte{0xB1, 0, 9}, good[3:]...),
		"epoch":      append(bytes.Clone(good[:16]), 1, 0, 0, 0, 0, 0, 0, 0),
		"empty":      {},
		"nil":        nil,
		"all-ones-x": bytes.Repeat([]byte{0xff}, 24),
	}
	for name, msg := range cases {
		s := &script{replies: [][]byte{msg}}
		err := barrier.Dissemination(s, 0)
		var be *barrier.Error
		if !errors.Is(err, barrier.ErrMismatch) || !errors.As(err, &be) || be.Peer != 1 {
			t.Errorf("%s: got %v, want ErrMismatch naming rank 1", name, err)
		}
	}
}
