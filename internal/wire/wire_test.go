package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

func TestHeaderGolden(t *testing.T) {
	tests := []struct {
		name string
		f    Frame
		want []byte
	}{
		{"empty control", Frame{Channel: ChanControl, Type: 1, Source: 0},
			[]byte{1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"user from rank 3", Frame{Channel: ChanUser, Type: 2, Source: 3, Body: []byte("hi")},
			[]byte{1, 1, 2, 0, 0, 0, 0, 3, 0, 0, 0, 2, 'h', 'i'}},
		{"dsm fragment from rank 258", Frame{Channel: ChanDSM, Type: 9, Flags: FlagMore, Source: 258, Body: []byte{0xff}},
			[]byte{1, 4, 9, 1, 0, 0, 1, 2, 0, 0, 0, 1, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendFrame(nil, &tt.f)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("encode = % x, want % x", got, tt.want)
			}
			f, err := ReadFrame(bytes.NewReader(tt.want), MaxBody)
			if err != nil {
				t.Fatal(err)
			}
			if f.Channel != tt.f.Channel || f.Type != tt.f.Type || f.Flags != tt.f.Flags || f.Source != tt.f.Source || !bytes.Equal(f.Body, tt.f.Body) {
				t.Fatalf("decode = %+v, want %+v", f, tt.f)
			}
		})
	}
}

func TestReadFrameRejects(t *testing.T) {
	big := MakeHeader(ChanUser, 0, 0, 0, MaxBody+1)
	badVer := MakeHeader(ChanUser, 0, 0, 0, 0)
	badVer[0] = 7
	badChan := MakeHeader(Channel(200), 0, 0, 0, 0)
	badFlags := MakeHeader(ChanUser, 0, 0x80, 0, 0)
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", big[:], ErrTooLarge},
		{"version", badVer[:], ErrVersion},
		{"channel", badChan[:], ErrChannel},
		{"flags", badFlags[:], ErrFlags},
		{"short header", []byte{1, 0, 0}, io.ErrUnexpectedEOF},
		{"empty", nil, io.EOF},
		{"short body", append(MakeHeaderBytes(ChanUser, 5), 1, 2), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.in), MaxBody)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func MakeHeaderBytes(ch Channel, n int) []byte {
	h := MakeHeader(ch, 0, 0, 0, n)
	return h[:]
}

// TestWriterNoInterleave has many goroutines write big and small frames to
// one socket at once; every frame must arrive whole.
func TestWriterNoInterleave(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := NewWriter(a, 1)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				n := 1 + (i*7919+g*104729)%(3*smallFrame)
				body := bytes.Repeat([]byte{byte(g)}, n)
				if err := w.Write(ChanUser, uint8(g), 0, body[:n/2], body[n/2:]); err != nil {
					t.Error(err)
					return
				}
			}
		}(g)
	}
	r := bufio.NewReader(b)
	for i := 0; i < writers*each; i++ {
		f, err := ReadFrame(r, MaxBody)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range f.Body {
			if c != f.Type {
				t.Fatalf("frame from writer %d contains a byte of writer %d", f.Type, c)
			}
		}
	}
	wg.Wait()
}

func TestFragmentedMessage(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	w := NewWriter(a, 2)
	body := make([]byte, 2*MaxBody+123)
	for i := range body {
		body[i] = byte(i * 31)
	}
	prefix := []byte{9, 9, 9}
	go func() {
		if err := w.WriteMessage(ChanUser, 3, prefix, body); err != nil {
			t.Error(err)
		}
		w.Write(ChanUser, 4, 0, []byte("next"))
	}()
	r := bufio.NewReader(b)
	f, err := ReadMessage(r)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != 3 || f.Source != 2 || !bytes.Equal(f.Body[:3], prefix) || !bytes.Equal(f.Body[3:], body) {
		t.Fatalf("reassembled message differs (len %d)", len(f.Body))
	}
	g, err := ReadMessage(r)
	if err != nil || string(g.Body) != "next" {
		t.Fatalf("next = %q, %v", g.Body, err)
	}
}

func TestWriterRefusesHuge(t *testing.T) {
	w := NewWriter(io.Discard, 0)
	if err := w.Write(ChanUser, 0, 0, make([]byte, MaxBody+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, &Frame{Channel: ChanUser, Type: 1, Source: 2, Body: []byte("x")}))
	f.Add([]byte{1, 4, 9, 1, 0, 0, 1, 2, 0, 0, 0, 1, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr, err := ReadFrame(bytes.NewReader(in), 1<<16)
		if err != nil {
			return
		}
		enc := AppendFrame(nil, &fr)
		if !bytes.Equal(enc, in[:len(enc)]) {
			t.Fatalf("decode∘encode differs:\n in % x\nout % x", in[:len(enc)], enc)
		}
		fr2, err := ReadFrame(bytes.NewReader(enc), 1<<16)
		if err != nil || fr2.Channel != fr.Channel || fr2.Type != fr.Type || fr2.Flags != fr.Flags || fr2.Source != fr.Source || !bytes.Equal(fr2.Body, fr.Body) {
			t.Fatalf("re-decode mismatch: %v", err)
		}
	})
}

func TestUserPrefixGolden(t *testing.T) {
	var b [UserPrefixSize]byte
	PutUserPrefix(b[:], 3, 1<<32+7, 1<<20)
	want := []byte{0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0x10, 0, 0}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("prefix % x, want % x", b, want)
	}
	ctx, tag, total, err := ParseUserPrefix(b[:])
	if err != nil || ctx != 3 || tag != 1<<32+7 || total != 1<<20 {
		t.Fatalf("parsed %d %d %d %v", ctx, tag, total, err)
	}
	PutUserPrefix(b[:], 0, -1, 0)
	if _, _, _, err := ParseUserPrefix(b[:]); err == nil {
		t.Fatal("a negative tag was accepted")
	}
	PutUserPrefix(b[:], 0, 1, MaxUserMessage+1)
	if _, _, _, err := ParseUserPrefix(b[:]); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a total over MaxUserMessage: %v", err)
	}
	if _, _, _, err := ParseUserPrefix(b[:5]); err == nil {
		t.Fatal("a short prefix was accepted")
	}
}
