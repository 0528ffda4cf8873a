package hostfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// Limits on numbers in a machine file.
const (
	MaxSlots = 1 << 20
	// portLikeSlots is where host:N starts to look like a port mistaken for
	// a slot count.
	portLikeSlots = 1024
	// maxLine bounds one line, so a binary file given by mistake fails
	// quickly instead of growing a huge buffer.
	maxLine = 64 << 10
)

// HostsName is the File name used for -host lists, and the prefix of their
// error messages.
const HostsName = "-host"

// Entry is one line of a machine file (or one item of a -host list).
type Entry struct {
	User     string // "" = not given (ssh config, then the current user)
	Host     string // host name or IP literal, without brackets
	Port     int    // ssh port; 0 = not given (ssh config, then 22)
	Slots    int    // ranks this line takes before placement wraps; ≥ 1
	MaxSlots int    // most ranks this line may take; 0 = no limit
	Line     int    // line in the machine file, or item number in -host
}

// Key names the SSH destination of the entry, "user@host:port" with the
// parts that were given. Entries with the same key share a connection.
func (e Entry) Key() string {
	var b strings.Builder
	if e.User != "" {
		b.WriteString(e.User)
		b.WriteByte('@')
	}
	b.WriteString(bracket(e.Host, e.Port != 0))
	if e.Port != 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Port))
	}
	return b.String()
}

// String returns the entry in machine-file syntax, such that Parse of the
// result gives the entry back (Line aside).
func (e Entry) String() string {
	s := e.Key()
	if e.Slots != 1 {
		s += " slots=" + strconv.Itoa(e.Slots)
	}
	if e.MaxSlots != 0 {
		s += " max_slots=" + strconv.Itoa(e.MaxSlots)
	}
	return s
}

// bracket puts an IPv6 literal in brackets, and any host when a port
// follows.
func bracket(host string, port bool) string {
	if port || strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// File is a parsed machine file or -host list.
type File struct {
	Name     string   // file name, or HostsName
	Entries  []Entry  // in order
	Warnings []string // "m:3: ..." lines for the user; never fatal
}

// ParseError is a syntax error at one line of a machine file or one item of
// a -host list.
type ParseError struct {
	File string // file name, or HostsName
	Line int    // line number, or item number in a -host list
	Msg  string // what is wrong, e.g. `bad slots value "x": ...`
}

func (e *ParseError) Error() string {
	if e.File == HostsName {
		return fmt.Sprintf("%s item %d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ErrNoHosts is returned for a machine file or -host list without entries.
var ErrNoHosts = errors.New("hostfile: no hosts")

// ReadFile parses the machine file at path.
func ReadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hostfile: open machine file: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a machine file from r; name is used in messages.
func Parse(name string, r io.Reader) (*File, error) {
	out := &File{Name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		e, warn, err := parseLine(words, n)
		if err != nil {
			return nil, &ParseError{File: name, Line: n, Msg: err.Error()}
		}
		if warn != "" {
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s:%d: %s", name, n, warn))
		}
		out.Entries = append(out.Entries, e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ParseError{File: name, Line: n + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLine)}
		}
		return nil, fmt.Errorf("hostfile: read %s: %w", name, err)
	}
	if len(out.Entries) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoHosts, name)
	}
	return out, nil
}

// ParseHosts parses an Open MPI style -host list: "a:2,b,alice@[::1]:2222".
func ParseHosts(list string) (*File, error) {
	out := &File{Name: HostsName}
	for i, item := range strings.Split(list, ",") {
		n := i + 1
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, &ParseError{File: HostsName, Line: n, Msg: "empty host name"}
		}
		if strings.ContainsAny(item, " \t") {
			return nil, &ParseError{File: HostsName, Line: n, Msg: fmt.Sprintf("%q: a -host item is one host token; use a machine file for slots=, port=, ...", item)}
		}
		e, warn, err := parseLine([]string{item}, n)
		if err != nil {
			return nil, &ParseError{File: HostsName, Line: n, Msg: err.Error()}
		}
		if warn != "" {
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s item %d: %s", HostsName, n, warn))
		}
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}

// parseLine parses the words of one line. The error text carries no
// position; the caller adds it.
func parseLine(words []string, line int) (Entry, string, error) {
	e := Entry{Line: line}
	tok, err := parseHostToken(words[0])
	if err != nil {
		return e, "", err
	}
	e.User, e.Host, e.Port = tok.user, tok.host, tok.port
	var warn string
	if tok.slots != 0 {
		e.Slots = tok.slots
		if !tok.bracketed && tok.slots >= portLikeSlots {
			warn = fmt.Sprintf("%q gives %s %d slots (MPICH's host:N); for ssh port %d write \"[%s]:%d\" or \"%s port=%d\"",
				words[0], tok.host, tok.slots, tok.slots, tok.host, tok.slots, tok.host, tok.slots)
		}
	}
	seen := map[string]bool{}
	for _, w := range words[1:] {
		key, val, ok := strings.Cut(w, "=")
		if !ok || key == "" {
			return e, "", fmt.Errorf("unexpected %q after the host: want key=value (slots=, max_slots=, user=, port=)", w)
		}
		canon := strings.ToLower(key)
		switch canon {
		case "max-slots":
			canon = "max_slots"
		case "username":
			canon = "user"
		}
		if seen[canon] {
			return e, "", fmt.Errorf("%s given twice", key)
		}
		seen[canon] = true
		switch canon {
		case "slots":
			if e.Slots != 0 {
				return e, "", fmt.Errorf("slots given twice (%q and %s)", words[0], w)
			}
			if e.Slots, err = parseSlots(val); err != nil {
				return e, "", err
			}
		case "max_slots":
			if e.MaxSlots, err = parseNumber("max_slots", val, 1, MaxSlots); err != nil {
				return e, "", err
			}
		case "user":
			if !validUser(val) {
				return e, "", fmt.Errorf("bad user name %q", val)
			}
			if e.User != "" && e.User != val {
				return e, "", fmt.Errorf("user given twice (%q and %s)", words[0], w)
			}
			e.User = val
		case "port":
			if e.Port != 0 {
				return e, "", fmt.Errorf("port given twice (%q and %s)", words[0], w)
			}
			if e.Port, err = parsePort(val); err != nil {
				return e, "", err
			}
		default:
			return e, "", fmt.Errorf("unknown word %q: want slots=, max_slots=, user= or port=", key)
		}
	}
	switch {
	case e.Slots == 0 && e.MaxSlots != 0:
		e.Slots = e.MaxSlots
	case e.Slots == 0:
		e.Slots = 1
	case e.MaxSlots != 0 && e.MaxSlots < e.Slots:
		return e, "", fmt.Errorf("max_slots=%d is less than slots=%d", e.MaxSlots, e.Slots)
	}
	return e, warn, nil
}

type hostToken struct {
	user      string
	host      string
	port      int
	slots     int
	bracketed bool
}

// parseHostToken parses [user@]host[:slots], [user@][host][:port[:slots]]
// or [user@]ipv6.
func parseHostToken(s string) (hostToken, error) {
	var t hostToken
	rest := s
	if user, h, ok := strings.Cut(s, "@"); ok {
		if !validUser(user) {
			return t, fmt.Errorf("bad user name %q in %q", user, s)
		}
		t.user, rest = user, h
	}
	if rest == "" {
		return t, fmt.Errorf("empty host name in %q", s)
	}
	var err error
	if rest[0] == '[' {
		t.bracketed = true
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return t, fmt.Errorf("missing ']' in %q", s)
		}
		t.host = rest[1:end]
		if err := checkHost(t.host); err != nil {
			return t, err
		}
		after := rest[end+1:]
		if after == "" {
			return t, nil
		}
		if after[0] != ':' {
			return t, fmt.Errorf("unexpected %q after ']' in %q: want [host]:port", after, s)
		}
		port, slots, hasSlots := strings.Cut(after[1:], ":")
		if t.port, err = parsePort(port); err != nil {
			return t, err
		}
		if hasSlots {
			if t.slots, err = parseSlots(slots); err != nil {
				return t, err
			}
		}
		return t, nil
	}
	if strings.Count(rest, ":") > 1 {
		// A bare IPv6 literal: the whole token is the address.
		if addr, zone, ok := strings.Cut(rest, "%"); ok && isIPv6(addr) {
			if err := checkZone(rest, zone); err != nil {
				return t, err
			}
		}
		if !isIPv6(rest) {
			return t, fmt.Errorf("bad host %q: an IPv6 address with a port or slots goes in brackets, as in [fe80::1]:2222", rest)
		}
		t.host = rest
		return t, nil
	}
	host, slots, hasSlots := strings.Cut(rest, ":")
	if err := checkHost(host); err != nil {
		return t, err
	}
	t.host = host
	if hasSlots {
		if t.slots, err = parseSlots(slots); err != nil {
			return t, err
		}
	}
	return t, nil
}

func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host name")
	}
	if strings.Contains(h, ":") {
		if addr, zone, ok := strings.Cut(h, "%"); ok && isIPv6(addr) {
			return checkZone(h, zone)
		}
		if !isIPv6(h) {
			return fmt.Errorf("bad IPv6 address %q", h)
		}
		return nil
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("bad host name %q: unexpected %q", h, c)
		}
	}
	if h[0] == '-' {
		return fmt.Errorf("bad host name %q: starts with '-'", h)
	}
	return nil
}

// maxZone is the longest interface name Linux allows (IFNAMSIZ-1).
const maxZone = 15

// isIPv6 accepts an IPv6 literal with an optional %zone (see checkZone).
func isIPv6(s string) bool {
	addr, zone, hasZone := strings.Cut(s, "%")
	ip := net.ParseIP(addr)
	if ip == nil || !strings.Contains(addr, ":") {
		return false
	}
	return !hasZone || checkZone(s, zone) == nil
}

// checkZone accepts the zone of an IPv6 literal: an interface name or
// number, 1 to 15 letters, digits, '.', '-' or '_'. Anything else (control
// characters, '#', ',', '%', spaces) would reach ssh's command line or the
// dialer as it is.
func checkZone(host, zone string) error {
	if zone == "" || len(zone) > maxZone {
		return fmt.Errorf("bad IPv6 zone in %q: want an interface name or number of 1 to %d characters", host, maxZone)
	}
	for i := 0; i < len(zone); i++ {
		c := zone[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("bad IPv6 zone %q in %q: unexpected %q (want letters, digits, '.', '-', '_')", zone, host, c)
		}
	}
	return nil
}

func validUser(u string) bool {
	if u == "" || u[0] == '-' {
		return false
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '$') {
			return false
		}
	}
	return true
}

func parseSlots(v string) (int, error) { return parseNumber("slots", v, 1, MaxSlots) }
func parsePort(v string) (int, error)  { return parseNumber("port", v, 1, 65535) }

func parseNumber(what, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi || v[0] == '+' {
		return 0, fmt.Errorf("bad %s value %q: want a whole number from %d to %d", what, v, lo, hi)
	}
	return n, nil
}
