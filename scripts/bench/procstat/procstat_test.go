package procstat

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 120 0 0 0 37 12 0 0 20 0 5 0 100 0 0\n"
	st, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != 4242 || st.PPID != 17 || st.Comm != "a (weird) name" || st.UTime != 37 || st.STime != 12 {
		t.Errorf("ParseStat = %+v, want pid 4242 ppid 17 comm %q utime 37 stime 12", st, "a (weird) name")
	}
	if got := st.CPU().Milliseconds(); got != 490 {
		t.Errorf("CPU = %d ms, want 490", got)
	}
	for _, bad := range []string{"", "12 noparen S 1", "x (c) S 1 2 3 4 5 6 7 8 9 10 11 12", "12 (c) S 1 2 3", "12 (c) S 1 2 3 4 5 6 7 8 9 10 u 12"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) took it", bad)
		}
	}
}

func TestSelfAndChildren(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() {
		t.Errorf("Read(self) = %+v, want pid %d ppid %d", st, os.Getpid(), os.Getppid())
	}
	kids, err := Children(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range kids {
		found = found || k.PID == os.Getpid()
	}
	if !found {
		t.Errorf("Children(parent) = %v lacks this process %d", kids, os.Getpid())
	}
	u, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU <= 0 || u.Switches() < 0 {
		t.Errorf("Self = %+v", u)
	}
}

func TestPager(t *testing.T) {
	a, b := Stat{PID: 1, Comm: "ranks"}, Stat{PID: 2, Comm: "dsmexec-pager"}
	if p, ok := Pager([]Stat{a, b}); !ok || p.PID != 2 {
		t.Errorf("Pager by name = %v, %v", p, ok)
	}
	if p, ok := Pager([]Stat{a}); !ok || p.PID != 1 {
		t.Errorf("Pager of one child = %v, %v", p, ok)
	}
	if _, ok := Pager([]Stat{a, {PID: 3, Comm: "x"}}); ok {
		t.Error("Pager chose among two unnamed children")
	}
	if _, ok := Pager(nil); ok {
		t.Error("Pager chose from no children")
	}
}
