package pmi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Wire limits. The C servers and MPICH's own clients use fixed buffers; these
// constants keep every request inside them and every reply allocation bounded.
const (
	// maxLineV1 is MPICH's PMIU_MAXLINE: its PMI-1 client never sends a
	// longer line, and Slurm reads a PMI-1 request with one 1024-byte read().
	maxLineV1 = 1024
	// maxReply bounds a reply line or frame body we accept (the longest real
	// reply is a 1024-byte value plus a few short fields).
	maxReply = 64 << 10
	// frameHeader is the PMI-2 length prefix: "%-6d", ASCII decimal, space padded.
	frameHeader = 6
	// maxFrame is the largest length a 6-digit header can carry.
	maxFrame = 999999
)

// message is one parsed PMI reply: the command name and the other fields as an
// unordered set (Hydra puts rc last, Slurm first).
type message struct {
	cmd string
	kv  map[string]string
}

// get returns the field and whether it was present.
func (m message) get(key string) (string, bool) {
	v, ok := m.kv[key]
	return v, ok
}

// parseV1 parses a PMI-1 line (without its newline): space-separated key=value
// fields, one of which is cmd. A value may be empty and may contain '='.
func parseV1(line string) (message, error) {
	m := message{kv: make(map[string]string)}
	haveCmd := false
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return message{}, fmt.Errorf("field %q is not key=value", truncate(f))
		}
		if k == "cmd" {
			if haveCmd {
				return message{}, errors.New("cmd appears twice")
			}
			if v == "" {
				return message{}, errors.New("empty cmd")
			}
			m.cmd, haveCmd = v, true
			continue
		}
		if _, dup := m.kv[k]; dup {
			return message{}, fmt.Errorf("field %q appears twice", truncate(k))
		}
		m.kv[k] = v
	}
	if !haveCmd {
		return message{}, errors.New("no cmd field")
	}
	return m, nil
}

// formatV1 builds a PMI-1 request line, newline included. pairs alternate key
// and value and keep their order (servers do not care, golden tests do).
func formatV1(cmd string, pairs ...string) string {
	if len(pairs)%2 != 0 {
		panic(fmt.Sprintf("pmi: formatV1(%q) with odd pairs %q", cmd, pairs))
	}
	var b strings.Builder
	b.WriteString("cmd=")
	b.WriteString(cmd)
	for i := 0; i < len(pairs); i += 2 {
		b.WriteByte(' ')
		b.WriteString(pairs[i])
		b.WriteByte('=')
		b.WriteString(pairs[i+1])
	}
	b.WriteByte('\n')
	return b.String()
}

// parseV2 parses a PMI-2 frame body: "cmd=name;key=value;...;". Inside a
// value ";;" stands for a literal ';' (the PMI-2 spec's escape); a single ';'
// ends the value. Every field, the last one included, ends with ';'.
func parseV2(body string) (message, error) {
	m := message{kv: make(map[string]string)}
	haveCmd := false
	i := 0
	for i < len(body) {
		eq := strings.IndexByte(body[i:], '=')
		if eq < 0 {
			return message{}, fmt.Errorf("field %q has no '='", truncate(body[i:]))
		}
		k := body[i : i+eq]
		if k == "" || strings.IndexByte(k, ';') >= 0 {
			return message{}, fmt.Errorf("bad key %q", truncate(k))
		}
		i += eq + 1
		var v strings.Builder
		terminated := false
		for i < len(body) {
			c := body[i]
			if c != ';' {
				v.WriteByte(c)
				i++
				continue
			}
			if i+1 < len(body) && body[i+1] == ';' {
				v.WriteByte(';')
				i += 2
				continue
			}
			i++
			terminated = true
			break
		}
		if !terminated {
			return message{}, fmt.Errorf("value of %q is not terminated by ';'", truncate(k))
		}
		if k == "cmd" {
			if haveCmd {
				return message{}, errors.New("cmd appears twice")
			}
			if v.Len() == 0 {
				return message{}, errors.New("empty cmd")
			}
			m.cmd, haveCmd = v.String(), true
			continue
		}
		if _, dup := m.kv[k]; dup {
			return message{}, fmt.Errorf("field %q appears twice", truncate(k))
		}
		m.kv[k] = v.String()
	}
	if !haveCmd {
		return message{}, errors.New("no cmd field")
	}
	return m, nil
}

// formatV2 builds a PMI-2 frame (length header included), escaping ';' in
// values as ";;". Keys never contain ';' or '=' (callers validate them).
func formatV2(cmd string, pairs ...string) string {
	if len(pairs)%2 != 0 {
		panic(fmt.Sprintf("pmi: formatV2(%q) with odd pairs %q", cmd, pairs))
	}
	var b strings.Builder
	b.WriteString("cmd=")
	b.WriteString(escapeV2(cmd))
	b.WriteByte(';')
	for i := 0; i < len(pairs); i += 2 {
		b.WriteString(pairs[i])
		b.WriteByte('=')
		b.WriteString(escapeV2(pairs[i+1]))
		b.WriteByte(';')
	}
	body := b.String()
	if len(body) > maxFrame {
		panic(fmt.Sprintf("pmi: PMI-2 %s request of %d bytes exceeds the %d-byte frame limit", cmd, len(body), maxFrame))
	}
	return fmt.Sprintf("%-6d", len(body)) + body
}

func escapeV2(s string) string { return strings.ReplaceAll(s, ";", ";;") }

// parseFrameLen decodes the 6-byte PMI-2 header: a decimal length, left
// justified and padded with spaces ("%-6d"). Leading spaces are tolerated.
func parseFrameLen(h []byte) (int, error) {
	if len(h) != frameHeader {
		return 0, fmt.Errorf("frame header is %d bytes, want %d", len(h), frameHeader)
	}
	s := strings.Trim(string(h), " ")
	if s == "" {
		return 0, fmt.Errorf("frame header %q holds no length", h)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("frame header %q is not a decimal length", h)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("frame header %q is not a positive length", h)
	}
	return n, nil
}

// readLine reads one newline-terminated line of at most max bytes (newline
// excluded) and returns it without the newline. A stream that ends mid-line
// reports io.ErrUnexpectedEOF; one that ends before any byte, io.EOF.
func readLine(br *bufio.Reader, max int) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			return "", fmt.Errorf("%w: a line exceeds %d bytes", ErrMalformed, max)
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return string(line[:len(line)-1]), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

// readFrame reads one PMI-2 frame and returns its body. The length is checked
// against max before anything is allocated.
func readFrame(br *bufio.Reader, max int) (string, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return "", err
	}
	n, err := parseFrameLen(h[:])
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if n > max {
		return "", fmt.Errorf("%w: a frame of %d bytes exceeds %d", ErrMalformed, n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return string(body), nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
