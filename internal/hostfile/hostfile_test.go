package hostfile

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLines(t *testing.T) {
	tests := []struct {
		line string
		want Entry
	}{
		{"node1", Entry{Host: "node1", Slots: 1}},
		{"  node1   # trailing comment", Entry{Host: "node1", Slots: 1}},
		{"node1:4", Entry{Host: "node1", Slots: 4}},
		{"node1 slots=4", Entry{Host: "node1", Slots: 4}},
		{"node1 SLOTS=4", Entry{Host: "node1", Slots: 4}},
		{"node1 slots=2 max_slots=6", Entry{Host: "node1", Slots: 2, MaxSlots: 6}},
		{"node1 max-slots=6", Entry{Host: "node1", Slots: 6, MaxSlots: 6}},
		{"node1:2 max_slots=2", Entry{Host: "node1", Slots: 2, MaxSlots: 2}},
		{"alice@node1", Entry{User: "alice", Host: "node1", Slots: 1}},
		{"alice@node1:3", Entry{User: "alice", Host: "node1", Slots: 3}},
		{"node1 user=alice", Entry{User: "alice", Host: "node1", Slots: 1}},
		{"node1 username=alice", Entry{User: "alice", Host: "node1", Slots: 1}},
		{"alice@node1 user=alice", Entry{User: "alice", Host: "node1", Slots: 1}},
		{"[node1]:2222", Entry{Host: "node1", Port: 2222, Slots: 1}},
		{"node1 port=2222 slots=2", Entry{Host: "node1", Port: 2222, Slots: 2}},
		{"[node1]:2222:4", Entry{Host: "node1", Port: 2222, Slots: 4}},
		{"10.77.0.11", Entry{Host: "10.77.0.11", Slots: 1}},
		{"10.77.0.11:2", Entry{Host: "10.77.0.11", Slots: 2}},
		{"[10.77.0.11]:22", Entry{Host: "10.77.0.11", Port: 22, Slots: 1}},
		{"[::1]", Entry{Host: "::1", Slots: 1}},
		{"::1", Entry{Host: "::1", Slots: 1}},
		{"fe80::1 slots=2", Entry{Host: "fe80::1", Slots: 2}},
		{"[fe80::1]:2222", Entry{Host: "fe80::1", Port: 2222, Slots: 1}},
		{"[fe80::1%eth0]:2222", Entry{Host: "fe80::1%eth0", Port: 2222, Slots: 1}},
		{"fe80::1%br-1.100", Entry{Host: "fe80::1%br-1.100", Slots: 1}},
		{"[fe80::1%2]", Entry{Host: "fe80::1%2", Slots: 1}},
		{"bob@[fe80::1]:2222:4", Entry{User: "bob", Host: "fe80::1", Port: 2222, Slots: 4}},
		{"node_1.example.org", Entry{Host: "node_1.example.org", Slots: 1}},
		{"node1\tslots=2", Entry{Host: "node1", Slots: 2}},
	}
	for _, tt := range tests {
		f, err := Parse("m", strings.NewReader(tt.line+"\n"))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.line, err)
			continue
		}
		want := tt.want
		want.Line = 1
		if len(f.Entries) != 1 || f.Entries[0] != want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.line, f.Entries, want)
			continue
		}
		if len(f.Warnings) != 0 {
			t.Errorf("Parse(%q) warnings %q", tt.line, f.Warnings)
		}
		// String is machine-file syntax that parses back to the same entry.
		back, err := Parse("m", strings.NewReader(want.String()))
		if err != nil || back.Entries[0] != want {
			t.Errorf("String() = %q parses to %+v, %v; want %+v", want.String(), back, err, want)
		}
	}
}

func TestParseFile(t *testing.T) {
	src := `# cluster for the lab
node1:2
   # indented comment

alice@node2 slots=1   # a comment after a host
node1
[fe80::1]:2222
`
	f, err := Parse("lab", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Host: "node1", Slots: 2, Line: 2},
		{User: "alice", Host: "node2", Slots: 1, Line: 5},
		{Host: "node1", Slots: 1, Line: 6},
		{Host: "fe80::1", Port: 2222, Slots: 1, Line: 7},
	}
	if !reflect.DeepEqual(f.Entries, want) {
		t.Errorf("entries:\n got %+v\nwant %+v", f.Entries, want)
	}
	if f.Name != "lab" {
		t.Errorf("Name = %q", f.Name)
	}
	keys := []string{}
	for _, e := range f.Entries {
		keys = append(keys, e.Key())
	}
	if got := strings.Join(keys, " "); got != "node1 alice@node2 node1 [fe80::1]:2222" {
		t.Errorf("keys = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		{"a\nnode1:x\n", `m:2: bad slots value "x": want a whole number from 1 to 1048576`},
		{"node1:0", `m:1: bad slots value "0": want a whole number from 1 to 1048576`},
		{"node1:-2", `m:1: bad slots value "-2"`},
		{"node1:+2", `m:1: bad slots value "+2"`},
		{"node1:", `m:1: bad slots value ""`},
		{"node1 slots=x", `m:1: bad slots value "x"`},
		{"node1 slots=2 slots=3", `m:1: slots given twice`},
		{"node1:2 slots=3", `m:1: slots given twice ("node1:2" and slots=3)`},
		{"node1 max_slots=1 slots=2", `m:1: max_slots=1 is less than slots=2`},
		{"node1 max_slots=0", `m:1: bad max_slots value "0"`},
		{"node1 port=0", `m:1: bad port value "0": want a whole number from 1 to 65535`},
		{"[node1]:70000", `m:1: bad port value "70000"`},
		{"[node1]:22 port=23", `m:1: port given twice`},
		{"[node1]", ""}, // valid; checked below not to error
		{"[node1", `m:1: missing ']' in "[node1"`},
		{"[node1]x", `m:1: unexpected "x" after ']'`},
		{"[node1]:22:y", `m:1: bad slots value "y"`},
		{"node1 cpus=4", `m:1: unknown word "cpus": want slots=, max_slots=, user= or port=`},
		{"node1 extra", `m:1: unexpected "extra" after the host: want key=value`},
		{"node1 =4", `m:1: unexpected "=4" after the host`},
		{"@node1", `m:1: bad user name "" in "@node1"`},
		{"a@b@node1", `m:1: bad host name "b@node1"`},
		{"alice@", `m:1: empty host name in "alice@"`},
		{"alice@node1 user=bob", `m:1: user given twice ("alice@node1" and user=bob)`},
		{"node1 user=", `m:1: bad user name ""`},
		{"no/de", `m:1: bad host name "no/de": unexpected '/'`},
		{"slots=4", `m:1: bad host name "slots=4"`},
		{"-node", `m:1: bad host name "-node": starts with '-'`},
		{"fe80::1:x", `m:1: bad host "fe80::1:x": an IPv6 address with a port or slots goes in brackets`},
		{"[fe80::zz]", `m:1: bad IPv6 address "fe80::zz"`},
		{"[fe80::1%a,b]", `m:1: bad IPv6 zone "a,b" in "fe80::1%a,b": unexpected ','`},
		{"fe80::1%a%b", `m:1: bad IPv6 zone "a%b" in "fe80::1%a%b": unexpected '%'`},
		{"[fe80::1%e\tth0]:22", `m:1: missing ']'`},
		{"[fe80::1%a/b]:22", `m:1: bad IPv6 zone "a/b"`},
		{"# only comments\n\n", `hostfile: no hosts in m`},
		{"", `hostfile: no hosts in m`},
		{"ok\n" + strings.Repeat("x", maxLine+10) + "\n", `m:2: line longer than 65536 bytes`},
	}
	for _, tt := range tests {
		_, err := Parse("m", strings.NewReader(tt.src))
		if tt.want == "" {
			if err != nil {
				t.Errorf("Parse(%q): %v", tt.src, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error %q", tt.src, tt.want)
			continue
		}
		if !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error\n got %q\nwant prefix %q", trunc(tt.src), err, tt.want)
		}
		var pe *ParseError
		if errors.As(err, &pe) && (pe.File != "m" || pe.Line < 1) {
			t.Errorf("Parse(%q): ParseError %+v", trunc(tt.src), pe)
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func TestParseWarnsPortLikeSlots(t *testing.T) {
	f, err := Parse("m", strings.NewReader("node1\nnode2:2222\n[node3]:2222\nnode4 slots=2000\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`m:2: "node2:2222" gives node2 2222 slots (MPICH's host:N); for ssh port 2222 write "[node2]:2222" or "node2 port=2222"`}
	if !reflect.DeepEqual(f.Warnings, want) {
		t.Errorf("warnings = %q, want %q", f.Warnings, want)
	}
	if f.Entries[1].Slots != 2222 || f.Entries[1].Port != 0 {
		t.Errorf("node2:2222 = %+v, want 2222 slots", f.Entries[1])
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "machines")
	if err := os.WriteFile(p, []byte("node1\nnode2:q\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(p)
	want := p + `:2: bad slots value "q"`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("ReadFile: %v, want prefix %q", err, want)
	}
	_, err = ReadFile(filepath.Join(dir, "missing"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "hostfile: open machine file: ") {
		t.Errorf("ReadFile(missing): %v", err)
	}
}

func TestParseHosts(t *testing.T) {
	f, err := ParseHosts("a:2,b, alice@[::1]:2222,fe80::1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Host: "a", Slots: 2, Line: 1},
		{Host: "b", Slots: 1, Line: 2},
		{User: "alice", Host: "::1", Port: 2222, Slots: 1, Line: 3},
		{Host: "fe80::1", Slots: 1, Line: 4},
	}
	if !reflect.DeepEqual(f.Entries, want) || f.Name != HostsName {
		t.Errorf("ParseHosts:\n got %+v\nwant %+v", f, want)
	}
	errs := []struct{ in, want string }{
		{"a,b:x", `-host item 2: bad slots value "x"`},
		{"a,,b", `-host item 2: empty host name`},
		{"", `-host item 1: empty host name`},
		{"a slots=2", `-host item 1: "a slots=2": a -host item is one host token`},
		{"[::1%#x]", `-host item 1: bad IPv6 zone "#x" in "::1%#x": unexpected '#'`},
		{"a,[::1%\x01]:22", `-host item 2: bad IPv6 zone "\x01" in "::1%\x01": unexpected '\x01'`},
		{"fe80::1%\x1b[2J", `-host item 1: bad IPv6 zone "\x1b[2J" in "fe80::1%\x1b[2J"`},
		{"[::1%]", `-host item 1: bad IPv6 zone in "::1%": want an interface name or number of 1 to 15 characters`},
		{"[::1%abcdefghijklmnop]", `-host item 1: bad IPv6 zone in "::1%abcdefghijklmnop"`},
	}
	for _, tt := range errs {
		_, err := ParseHosts(tt.in)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseHosts(%q): %v, want prefix %q", tt.in, err, tt.want)
		}
	}
	f, err = ParseHosts("a:4096")
	if err != nil || len(f.Warnings) != 1 || !strings.HasPrefix(f.Warnings[0], "-host item 1: ") {
		t.Errorf("ParseHosts(a:4096) = %+v, %v; want one warning", f, err)
	}
}

func TestPlace(t *testing.T) {
	e := func(host string, slots, max int) Entry { return Entry{Host: host, Slots: slots, MaxSlots: max} }
	tests := []struct {
		name    string
		entries []Entry
		np      int
		want    []int
		warn    string
		err     string
	}{
		{"one each", []Entry{e("a", 1, 0), e("b", 1, 0), e("c", 1, 0)}, 3, []int{0, 1, 2}, "", ""},
		{"fill slots in order", []Entry{e("a", 2, 0), e("b", 1, 0)}, 3, []int{0, 0, 1}, "", ""},
		{"fewer ranks", []Entry{e("a", 2, 0), e("b", 2, 0)}, 3, []int{0, 0, 1}, "", ""},
		{"wrap cyclic", []Entry{e("a", 2, 0), e("b", 1, 0)}, 5, []int{0, 0, 1, 0, 0}, "5 ranks on 3 slots: hosts are oversubscribed", ""},
		{"wrap twice", []Entry{e("a", 1, 0), e("b", 1, 0)}, 5, []int{0, 1, 0, 1, 0}, "5 ranks on 2 slots: hosts are oversubscribed", ""},
		{"duplicate lines keep order", []Entry{e("a", 1, 0), e("b", 1, 0), e("a", 1, 0)}, 3, []int{0, 1, 2}, "", ""},
		{"max_slots skips full", []Entry{e("a", 1, 1), e("b", 1, 0)}, 4, []int{0, 1, 1, 1}, "4 ranks on 2 slots: hosts are oversubscribed", ""},
		{"max_slots partial", []Entry{e("a", 2, 3), e("b", 2, 2)}, 5, []int{0, 0, 1, 1, 0}, "5 ranks on 4 slots: hosts are oversubscribed", ""},
		{"max_slots exact", []Entry{e("a", 2, 2), e("b", 1, 1)}, 3, []int{0, 0, 1}, "", ""},
		{"max_slots full", []Entry{e("a", 2, 2), e("b", 1, 1)}, 4, nil, "", "hostfile: not enough slots: 4 ranks but the hosts' max_slots add up to 3"},
		{"zero ranks", []Entry{e("a", 1, 0)}, 0, nil, "", "hostfile: place 0 ranks: want at least 1"},
		{"no entries", nil, 2, nil, "", "hostfile: no hosts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warn, err := Place(tt.entries, tt.np)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) || warn != tt.warn {
				t.Errorf("Place = %v, %q; want %v, %q", got, warn, tt.want, tt.warn)
			}
		})
	}
}

func TestPlacePanicsOnBadEntry(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "slots=0") {
			t.Errorf("recover() = %v, want a panic naming slots=0", r)
		}
	}()
	Place([]Entry{{Host: "a"}}, 1)
}

func TestIsLocal(t *testing.T) {
	m := Machine{
		Hostname: "node1.example.org",
		User:     "alice",
		Addrs:    []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")},
	}
	tests := []struct {
		e    Entry
		want bool
	}{
		{Entry{Host: "localhost"}, true},
		{Entry{Host: "LocalHost."}, true},
		{Entry{Host: "127.0.0.1"}, true},
		{Entry{Host: "127.1.2.3"}, true},
		{Entry{Host: "::1"}, true},
		{Entry{Host: "node1.example.org"}, true},
		{Entry{Host: "NODE1"}, true},
		{Entry{Host: "192.0.2.7"}, true},
		{Entry{Host: "2001:db8::7"}, true},
		{Entry{Host: "alice@localhost", User: "alice"}, false}, // not a host name
		{Entry{Host: "localhost", User: "alice"}, true},
		{Entry{Host: "localhost", User: "bob"}, false},
		{Entry{Host: "localhost", Port: 2222}, false},
		{Entry{Host: "localhost", Port: 22}, false},
		{Entry{Host: "node2"}, false},
		{Entry{Host: "node1.other.org"}, false},
		{Entry{Host: "10.77.0.11"}, false},
		{Entry{Host: "fe80::1%eth0"}, false},
	}
	for _, tt := range tests {
		if got := m.IsLocal(tt.e); got != tt.want {
			t.Errorf("IsLocal(%+v) = %v, want %v", tt.e, got, tt.want)
		}
	}
	short := Machine{Hostname: "node1", User: "alice"}
	if !short.IsLocal(Entry{Host: "node1.example.org"}) {
		t.Error("host name node1 should match node1.example.org")
	}
	if (Machine{}).IsLocal(Entry{Host: ""}) {
		t.Error("empty host name matched an unknown host name")
	}
	// The real machine: localhost is always local, and so is its own name.
	if !IsLocal(Entry{Host: "localhost"}) {
		t.Error("IsLocal(localhost) = false")
	}
	if h, err := os.Hostname(); err == nil && !IsLocal(Entry{Host: h}) {
		t.Errorf("IsLocal(%q) = false for os.Hostname()", h)
	}
}

func ExamplePlace() {
	f, err := Parse("m", strings.NewReader("node1:2  # two cores\nalice@node2\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	hostOf, warning, err := Place(f.Entries, 4)
	if err != nil {
		fmt.Println(err)
		return
	}
	for r, i := range hostOf {
		fmt.Printf("rank %d on %s\n", r, f.Entries[i].Key())
	}
	fmt.Println("warning:", warning)
	// Output:
	// rank 0 on node1
	// rank 1 on node1
	// rank 2 on alice@node2
	// rank 3 on node1
	// warning: 4 ranks on 3 slots: hosts are oversubscribed
}

// FuzzParse: the machine-file and -host parsers never panic, every error is
// a ParseError or names the file, and every entry they accept prints
// (String) as a line that parses back to the same entry.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"node1\n", "node1:4 max_slots=6\n", "alice@[fe80::1%eth0]:2222:4\n", "# c\n\n::1\n",
		"node1 port=22 user=bob slots=2\n", "[::1%#x]\n", "a,b:2,[::1]:22", "node1:x\n", "fe80::1%a%b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		check := func(file *File, err error) {
			if err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) && !errors.Is(err, ErrNoHosts) && !strings.HasPrefix(err.Error(), "hostfile: ") {
					t.Fatalf("%q: unexpected error type %T: %v", src, err, err)
				}
				if strings.ContainsAny(err.Error(), "\n\r\x1b") {
					t.Fatalf("%q: error carries a control character: %q", src, err)
				}
				return
			}
			for _, e := range file.Entries {
				if e.Slots < 1 || e.Slots > MaxSlots || e.Port < 0 || e.Port > 65535 || e.Host == "" {
					t.Fatalf("%q: entry out of range: %+v", src, e)
				}
				back, err := Parse("m", strings.NewReader(e.String()))
				if err != nil || len(back.Entries) != 1 {
					t.Fatalf("%q: entry %+v prints as %q, which parses to %v, %v", src, e, e.String(), back, err)
				}
				b := back.Entries[0]
				b.Line = e.Line
				if b != e {
					t.Fatalf("%q: entry %+v prints as %q, which parses to %+v", src, e, e.String(), b)
				}
			}
		}
		check(Parse("m", strings.NewReader(src)))
		check(ParseHosts(src))
	})
}
