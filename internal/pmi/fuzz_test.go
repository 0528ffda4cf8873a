package pmi

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
)

// replySeeds are every reply in the golden transcripts.
func replySeeds() (v1 []string, v2 []string) {
	for _, g := range goldens {
		for _, s := range g.steps {
			for _, part := range strings.SplitAfter(s.send, "\n") {
				switch {
				case part == "":
				case strings.HasPrefix(part, "cmd="):
					v1 = append(v1, strings.TrimSuffix(part, "\n"))
				case len(part) > frameHeader:
					v2 = append(v2, part[frameHeader:])
				}
			}
		}
	}
	return v1, v2
}

func sortedPairs(m message) []string {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(m.kv)) {
		pairs = append(pairs, k, m.kv[k])
	}
	return pairs
}

func sameMessage(a, b message) bool { return a.cmd == b.cmd && maps.Equal(a.kv, b.kv) }

func FuzzParseV1(f *testing.F) {
	v1, _ := replySeeds()
	for _, s := range v1 {
		f.Add(s)
	}
	f.Add("cmd=get_result rc=0 value=a=b==")
	f.Add("  cmd=x   a=  b=c ")
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseV1(line)
		if err != nil {
			return
		}
		if m.cmd == "" {
			t.Fatalf("parseV1(%q) gave an empty cmd", line)
		}
		again, err := parseV1(strings.TrimSuffix(formatV1(m.cmd, sortedPairs(m)...), "\n"))
		if err != nil || !sameMessage(m, again) {
			t.Fatalf("parseV1(%q) = %+v, reparsed %+v, %v", line, m, again, err)
		}
	})
}

func FuzzParseV2(f *testing.F) {
	_, v2 := replySeeds()
	for _, s := range v2 {
		f.Add(s)
	}
	f.Add("cmd=kvs-get-response;found=TRUE;value=a;;b;;;rc=0;")
	f.Add("cmd=x;;;a=;")
	f.Fuzz(func(t *testing.T, body string) {
		m, err := parseV2(body)
		if err != nil {
			return
		}
		fr := formatV2(m.cmd, sortedPairs(m)...)
		n, err := parseFrameLen([]byte(fr[:frameHeader]))
		if err != nil || n != len(fr)-frameHeader {
			t.Fatalf("formatV2 header %q for %d bytes: %d, %v", fr[:frameHeader], len(fr)-frameHeader, n, err)
		}
		again, err := parseV2(fr[frameHeader:])
		if err != nil || !sameMessage(m, again) {
			t.Fatalf("parseV2(%q) = %+v, reparsed %+v, %v", body, m, again, err)
		}
	})
}

// Encoding then decoding any request is the identity, ';' in values included.
func FuzzFormatV2(f *testing.F) {
	f.Add("kvs-put", "key", "tcp://127.0.0.1:1;x;;")
	f.Fuzz(func(t *testing.T, cmd, key, value string) {
		if cmd == "" || key == "" || key == "cmd" || strings.ContainsAny(key, "=;") {
			return
		}
		fr := formatV2(cmd, key, value)
		m, err := parseV2(fr[frameHeader:])
		if err != nil || m.cmd != cmd || len(m.kv) != 1 || m.kv[key] != value {
			t.Fatalf("formatV2(%q, %q, %q) = %q, parsed %+v, %v", cmd, key, value, fr, m, err)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	_, v2 := replySeeds()
	for _, s := range v2 {
		f.Add([]byte(frame(s)))
	}
	f.Add([]byte("999999"))
	f.Add([]byte(" 3    abc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		body, err := readFrame(bufio.NewReader(bytes.NewReader(b)), 1<<12)
		if err != nil {
			return
		}
		n, err := parseFrameLen(b[:frameHeader])
		if err != nil || n != len(body) || string(b[frameHeader:frameHeader+n]) != body {
			t.Fatalf("readFrame(%q) = %q; header says %d, %v", b, body, n, err)
		}
	})
}

// Whatever a launcher sends, the client returns errors, never panics or hangs.
func FuzzClient(f *testing.F) {
	for _, g := range goldens {
		var replies strings.Builder
		for _, s := range g.steps {
			replies.WriteString(s.send)
		}
		f.Add(uint8(g.cfg.Version), g.cfg.Port != "", replies.String())
	}
	f.Fuzz(func(t *testing.T, version uint8, port bool, replies string) {
		cfg := Config{FD: 6, Rank: 0, Size: 2, Version: 1 + int(version%2)}
		if port {
			cfg = Config{FD: -1, Port: "p", ID: "0", Rank: -1, Size: -1, Version: cfg.Version}
		}
		c, err := NewClient(context.Background(), &replayConn{r: strings.NewReader(replies)}, cfg)
		if err != nil {
			return
		}
		ctx := context.Background()
		_ = c.Put("addr-0", "x")
		_ = c.Fence(ctx)
		_, _ = c.Get(ctx, "addr-1")
		_, _ = c.Get(ctx, "addr-9")
		_ = c.Finalize()
	})
}

// replayConn is a net.Conn whose reads replay fixed bytes and whose writes vanish.
type replayConn struct {
	nopConn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

var _ net.Conn = (*replayConn)(nil)
