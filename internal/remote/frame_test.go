package remote

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsmexec/dsmexec/internal/proc"
	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

func TestFrameGolden(t *testing.T) {
	tests := []struct {
		name    string
		typ     byte
		payload []byte
		want    []byte
	}{
		{"signal", frameSignal, encodeSignal(syscall.SIGTERM), []byte{0, 0, 0, 2, 0x02, 15}},
		{"stdin", frameStdin, encodeStdin(3, []byte("hi")), []byte{0, 0, 0, 5, 0x03, 3, 2, 'h', 'i'}},
		{"ping", framePing, encodePing(15 * time.Second), []byte{0, 0, 0, 3, 0x04, 0x98, 0x75}},
		{"started", frameStarted, encodeStarted(Started{Rank: 1, Pid: 300}), []byte{0, 0, 0, 4, 0x81, 1, 0xac, 0x02}},
		{"line", frameLine, encodeLine(proc.Line{Rank: 2, Stream: proc.Stderr, Text: []byte("ok"), Partial: true}),
			[]byte{0, 0, 0, 7, 0x82, 2, 2, 1, 2, 'o', 'k'}},
		{"start", frameStart, encodeStart(RankSpec{Rank: 0, Path: "/a", Args: []string{"x"}, Env: []string{"A=1"}, Dir: "", Stdin: true}),
			[]byte{0, 0, 0, 15, 0x01, 0, 2, '/', 'a', 1, 1, 'x', 1, 3, 'A', '=', '1', 0, 1}},
		{"exit", frameExit, encodeExit(proc.Exit{Rank: 1, Pid: 2, Code: -1, Signal: syscall.SIGKILL, Wall: 3, User: 4, Sys: 5, MaxRSS: 6}),
			[]byte{0, 0, 0, 10, 0x83, 1, 2, 1, 9, 3, 4, 5, 6, 0}},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := writeFrame(&b, tt.typ, tt.payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, b.Bytes(), tt.want)
		}
		f, err := readFrame(&b, MaxFrame)
		if err != nil || f.typ != tt.typ || !bytes.Equal(f.payload, tt.payload) {
			t.Errorf("%s: read back %+v, %v", tt.name, f, err)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	spec := RankSpec{Rank: 7, Path: "/home/u/.cache/dsmexec/ab/app", Args: []string{"-n", "", "a b"}, Env: []string{"DSMEXEC_RANK=7", "X="}, Dir: "/tmp"}
	if got, err := decodeStart(encodeStart(spec)); err != nil || !reflect.DeepEqual(got, spec) {
		t.Errorf("Start: %+v, %v", got, err)
	}
	spec.SHA256 = strings.Repeat("0f", 32)
	if got, err := decodeStart(encodeStart(spec)); err != nil || !reflect.DeepEqual(got, spec) {
		t.Errorf("Start with a hash: %+v, %v", got, err)
	}
	relay := RelaySpec{Size: 8, Token: []byte{1, 2, 3}, Ranks: []int{4, 5, 7}, Reach: "10.0.0.1"}
	if got, err := decodeRelay(encodeRelay(relay)); err != nil || !reflect.DeepEqual(got, relay) {
		t.Errorf("Relay: %+v, %v", got, err)
	}
	if _, err := decodeRelay(encodeRelay(RelaySpec{Size: 2, Ranks: []int{2}})); !errors.Is(err, ErrBadFrame) {
		t.Errorf("Relay with a rank out of range: %v, want ErrBadFrame", err)
	}
	for _, rf := range []rendezvous.RelayFrame{{Rank: -1, Type: rendezvous.TypeTable, Body: []byte(`{"endpoints":[]}`)}, {Rank: 3, Type: rendezvous.TypeWhere}} {
		if got, err := decodeRdv(encodeRdv(rf), frameRdvUp); err != nil || !reflect.DeepEqual(got, rf) {
			t.Errorf("Rdv: %+v, %v", got, err)
		}
	}
	hello := Hello{Version: AgentVersion, Pid: 4242, Hostname: "h1", GOARCH: "arm64", NoFile: 1 << 20, Ports: 28232}
	if got, err := decodeHello(encodeHello(hello)); err != nil || got != hello {
		t.Errorf("Hello: %+v, %v", got, err)
	}
	exit := proc.Exit{Rank: 3, Pid: 99, Code: 2, Wall: 2 * time.Second, User: time.Millisecond, Sys: time.Microsecond, MaxRSS: 1 << 30}
	if got, err := decodeExit(encodeExit(exit)); err != nil || !reflect.DeepEqual(got, exit) {
		t.Errorf("Exit: %+v, %v", got, err)
	}
	exit.Err = errors.New("boom")
	got, err := decodeExit(encodeExit(exit))
	if err != nil || got.Err == nil || got.Err.Error() != "boom" {
		t.Errorf("Exit with error: %+v, %v", got, err)
	}
	line := proc.Line{Rank: 1, Stream: proc.Stdout, Text: bytes.Repeat([]byte("x"), proc.MaxLine)}
	if got, err := decodeLine(encodeLine(line)); err != nil || !reflect.DeepEqual(got, line) {
		t.Errorf("long Line: %v", err)
	}
	for _, l := range []proc.Line{{Rank: 2, Stream: proc.Stderr, Text: []byte("a"), Partial: true, More: true}, {Rank: 2, Stream: proc.Stderr, Text: []byte("b"), Partial: true}} {
		if got, err := decodeLine(encodeLine(l)); err != nil || !reflect.DeepEqual(got, l) {
			t.Errorf("Line %+v: %+v, %v", l, got, err)
		}
	}
	empty := proc.Line{Rank: 1, Stream: proc.Stdout}
	if got, err := decodeLine(encodeLine(empty)); err != nil || len(got.Text) != 0 || got.Partial {
		t.Errorf("empty Line: %+v, %v", got, err)
	}
	if got, err := decodePing(encodePing(1500 * time.Millisecond)); err != nil || got != 1500*time.Millisecond {
		t.Errorf("Ping: %v, %v", got, err)
	}
	if got, err := decodeError(encodeError("bad")); err != nil || got != "bad" {
		t.Errorf("Error: %q, %v", got, err)
	}
}

func TestFrameErrors(t *testing.T) {
	if _, err := readFrame(bytes.NewReader([]byte{0, 0x80, 0, 1, 0x82}), MaxFrame); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("large: %v", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 0}), MaxFrame); !errors.Is(err, ErrBadFrame) {
		t.Errorf("zero length: %v", err)
	}
	if _, err := readFrame(bytes.NewReader(nil), MaxFrame); err != io.EOF {
		t.Errorf("empty stream: %v, want io.EOF", err)
	}
	if _, err := readFrame(bytes.NewReader([]byte{0, 0, 0, 3, 0x82, 1}), MaxFrame); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated: %v, want io.ErrUnexpectedEOF", err)
	}
	if err := writeFrame(io.Discard, frameLine, make([]byte, MaxFrame)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("write large: %v", err)
	}
	bad := []struct {
		name string
		err  error
	}{
		{"trailing", second(decodeStarted(append(encodeStarted(Started{1, 2}), 0)))},
		{"short", second(decodeStarted([]byte{1}))},
		{"list count", second(decodeStart([]byte{0, 0, 200, 1}))},
		{"string length", second(decodeStart([]byte{0, 50, 'a'}))},
		{"flags", second(decodeStart(enc(encodeStart(RankSpec{}))[:len(encodeStart(RankSpec{}))-1].uv(4)))},
		{"sha256", second(decodeStart(enc(encodeStart(RankSpec{}))[:len(encodeStart(RankSpec{}))-1].uv(2).str("ABC")))},
		{"stream", second(decodeLine([]byte{0, 3, 0, 0}))},
		{"partial", second(decodeLine([]byte{0, 1, 2, 0}))},
		{"signal 0", second(decodeSignal([]byte{0}))},
		{"ping 0", second(decodePing([]byte{0}))},
		{"ping too long", second(decodePing(enc(nil).uv(uint64(maxIdle/time.Millisecond) + 1)))},
		{"magic", second(decodeHello(enc(nil).str("other").uv(1).uv(1).str("").str("")))},
		{"varint", second(decodeStarted([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))},
		{"rank range", second(decodeStarted(enc(nil).uv(1 << 40).uv(1)))},
	}
	for _, b := range bad {
		if !errors.Is(b.err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", b.name, b.err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// roundTrip checks decode∘encode is the identity on what decodes.
func roundTrip[T any](t *testing.T, p []byte, decode func([]byte) (T, error), encode func(T) []byte) {
	v, err := decode(p)
	if err != nil {
		return
	}
	w, err := decode(encode(v))
	if err != nil {
		t.Fatalf("re-decode of % x: %v", p, err)
	}
	if !reflect.DeepEqual(v, w) {
		t.Fatalf("decode(encode(%+v)) = %+v", v, w)
	}
}

type stdinData struct {
	rank int
	data []byte
}

// FuzzDecode: no input panics a decoder, and decode∘encode is the identity
// on every payload that decodes.
func FuzzDecode(f *testing.F) {
	f.Add(frameStart, encodeStart(RankSpec{Rank: 1, Path: "/p", Args: []string{"a"}, Env: []string{"E=1"}}))
	f.Add(frameLine, encodeLine(proc.Line{Rank: 1, Stream: proc.Stdout, Text: []byte("x")}))
	f.Add(frameExit, encodeExit(proc.Exit{Rank: 1, Code: 3, Err: errors.New("e")}))
	f.Add(frameHello, encodeHello(Hello{Version: 1}))
	f.Add(frameStdin, encodeStdin(1, []byte("in")))
	f.Add(frameSignal, encodeSignal(syscall.SIGINT))
	f.Add(framePing, encodePing(time.Second))
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		switch typ {
		case frameStart:
			roundTrip(t, p, decodeStart, encodeStart)
		case frameSignal:
			roundTrip(t, p, decodeSignal, encodeSignal)
		case framePing:
			roundTrip(t, p, decodePing, encodePing)
		case frameStdin:
			roundTrip(t, p, func(p []byte) (stdinData, error) {
				r, d, err := decodeStdin(p)
				return stdinData{r, d}, err
			}, func(s stdinData) []byte { return encodeStdin(s.rank, s.data) })
		case frameHello:
			roundTrip(t, p, decodeHello, encodeHello)
		case frameStarted:
			roundTrip(t, p, decodeStarted, encodeStarted)
		case frameLine:
			roundTrip(t, p, decodeLine, encodeLine)
		case frameExit:
			roundTrip(t, p, decodeExit, encodeExit)
		case frameError:
			roundTrip(t, p, decodeError, encodeError)
		}
	})
}
