package collective

import (
	"bytes"
	"errors"
	"testing"
)

// The header's bytes are fixed: see header.go.
func TestHeaderGolden(t *testing.T) {
	h := header{kind: KindAllreduce, code: codeBadOp, op: Max, elem: elemFloat64, step: stepGather | 2,
		flags: flagSkew, seq: 0x01020304, root: 5, n: 0x1122334455667788}
	want := []byte{
		6, 3, 4, 7, 0x82, 1, 0x11, 0xC0,
		4, 3, 2, 1,
		5, 0, 0, 0,
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	}
	got := make([]byte, hdrLen)
	h.put(got)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	back, err := parseHeader(got)
	if err != nil || back != h {
		t.Fatalf("parse: got %+v, %v; want %+v", back, err, h)
	}
	if want := "Allreduce Max of 1234605616436508552 float64 call #16909060 allgather round 2"; h.call() != want {
		t.Errorf("call(): got %q, want %q", h.call(), want)
	}
}

// Messages as sent, captured from rank 0 of a two-rank Bcast and Allgather.
func TestMessageGolden(t *testing.T) {
	s := &script{rank: 0, size: 2}
	if _, err := Bcast(s, 0, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0, 0, 0, 0, 0, 0x11, 0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'}
	if len(s.sent) != 1 || !bytes.Equal(s.sent[0], want) {
		t.Fatalf("bcast sent %x\nwant %x", s.sent, want)
	}

	// A failing root sends its failure: rank, then text.
	s = &script{rank: 0, size: 2}
	_, err := Scatter(s, 0, nil)
	if !errors.Is(err, ErrPartCount) {
		t.Fatalf("scatter: %v", err)
	}
	want = append([]byte{4, 2, 0, 0, 0, 0, 0x11, 0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"root has 0 parts for 2 ranks"...)
	if len(s.sent) != 1 || !bytes.Equal(s.sent[0], want) {
		t.Fatalf("scatter sent %x\nwant %x", s.sent, want)
	}
}

// script is a transport for one rank whose every Recv returns the next of
// replies, then fails.
type script struct {
	rank, size int
	sent       [][]byte
	replies    [][]byte
}

func (s *script) Rank() int { return s.rank }
func (s *script) Size() int { return s.size }
func (s *script) Send(to int, msg []byte) error {
	s.sent = append(s.sent, bytes.Clone(msg))
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

// No message makes a collective panic; garbage is a mismatch.
func FuzzReceive(f *testing.F) {
	ok := make([]byte, hdrLen)
	for _, k := range []Kind{KindBcast, KindGather, KindAllgather, KindScatter, KindReduce, KindAllreduce} {
		h := header{kind: k}
		h.put(ok)
		f.Add(bytes.Clone(ok), uint8(k))
		f.Add(appendBlock(bytes.Clone(ok), 1, []byte("abc")), uint8(k))
	}
	h := header{kind: KindAllreduce, op: Sum, elem: elemFloat64, n: 2}
	h.put(ok)
	f.Add(append(bytes.Clone(ok), make([]byte, 16)...), uint8(KindAllreduce))
	f.Fuzz(func(t *testing.T, msg []byte, which uint8) {
		for rank := range 3 {
			s := &script{rank: rank, size: 3, replies: [][]byte{msg, msg, msg, msg}}
			var err error
			switch Kind(which%6 + 1) {
			case KindBcast:
				_, err = Bcast(s, 0, []byte("x"))
			case KindGather:
				_, err = Gather(s, 0, []byte("x"))
			case KindAllgather:
				_, err = Allgather(s, []byte("x"))
			case KindScatter:
				_, err = Scatter(s, 0, [][]byte{{1}, {2}, {3}})
			case KindReduce:
				_, err = Reduce(s, 0, []float64{1, 2}, Sum)
			case KindAllreduce:
				_, err = Allreduce(s, []float64{1, 2}, Sum)
			}
			var ce *Error
			if err != nil && !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *collective.Error", err)
			}
		}
	})
}

func TestClip(t *testing.T) {
	long := string(bytes.Repeat([]byte("é"), maxReason)) // 2 bytes each
	for in, want := range map[string]string{
		"ok":         "ok",
		"bad\xffutf": "bad\uFFFDutf",
		long:         long[:maxReason],
		"x" + long:   "x" + long[:maxReason-2],
	} {
		if got := clip(in); got != want {
			t.Errorf("clip(%.20q...) = %.20q... (%d bytes), want %d bytes", in, got, len(got), len(want))
		}
	}
}
