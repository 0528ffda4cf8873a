package coherence

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func actStrings(acts []Action) []string {
	var s []string
	for _, a := range acts {
		s = append(s, a.String())
	}
	return s
}

func TestFaultOnAccessiblePageResolvesAtOnce(t *testing.T) {
	n := NewNode(0, 1) // a world of one: everything is local
	n.Fault(3, true)
	if got := fmt.Sprint(actStrings(n.Ready())); got != "[fill p3 Write zero resolve p3]" {
		t.Fatalf("first write fault: %s", got)
	}
	for _, write := range []bool{false, true} {
		n.Fault(3, write)
		if got := fmt.Sprint(actStrings(n.Ready())); got != "[resolve p3]" {
			t.Fatalf("fault(write=%t) on a writable page: %s", write, got)
		}
	}
	if n.Access(3) != Write || n.Access(4) != None {
		t.Fatalf("access p3 %s p4 %s", n.Access(3), n.Access(4))
	}
}

func TestMessagesFromLostPeerIgnored(t *testing.T) {
	n := NewNode(0, 2)
	n.PeerLost(1)
	n.PeerLost(1) // twice is harmless
	n.Step(Msg{Type: MsgReq, From: 1, To: 0, Page: 0, Access: Write})
	if acts := n.Ready(); len(acts) != 0 {
		t.Fatalf("acted on a lost peer's message: %v", acts)
	}
	n.Fault(1, false)
	acts := n.Ready()
	if len(acts) != 1 {
		t.Fatalf("fault on a page homed at a lost rank: %v", acts)
	}
	f, ok := acts[0].(Fail)
	var pe *PeerLostError
	if !ok || !errors.As(f.Err, &pe) || pe.Rank != 1 || pe.Role != RoleHome || !errors.Is(f.Err, ErrPeerLost) {
		t.Fatalf("want Fail naming rank 1 as home, got %v", acts[0])
	}
	if want := "coherence: page 1: rank 1 (its home) was lost"; f.Err.Error() != want {
		t.Fatalf("error %q, want %q", f.Err, want)
	}
}

func TestStepBeforeReadyPanicsWhenDataPending(t *testing.T) {
	n := NewNode(1, 2)
	n.Fault(0, false)
	n.Ready()
	n.Step(Msg{Type: MsgPage, From: 0, To: 1, Page: 0, Seq: 1, Access: Read, WithData: true})
	mustPanic(t, "Step before Ready", func() {
		n.Step(Msg{Type: MsgLockGrant, From: 0, To: 1})
	})
}

func TestMisusePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"NewNode rank":      func() { NewNode(2, 2) },
		"NewNode size":      func() { NewNode(0, 0) },
		"Step from self":    func() { NewNode(0, 2).Step(Msg{Type: MsgReq, From: 0, To: 0}) },
		"Step to other":     func() { NewNode(0, 2).Step(Msg{Type: MsgReq, From: 1, To: 1}) },
		"PeerLost self":     func() { NewNode(0, 2).PeerLost(0) },
		"unknown message":   func() { NewNode(0, 2).Step(Msg{Type: 99, From: 1, To: 0}) },
		"Unlock not held":   func() { NewNode(0, 2).Unlock(1) },
		"INV without copy":  func() { NewNode(0, 2).Step(Msg{Type: MsgInv, From: 1, To: 0, Page: 1, Seq: 1}) },
		"REQ to wrong home": func() { NewNode(0, 2).Step(Msg{Type: MsgReq, From: 1, To: 0, Page: 1, Access: Read}) },
		"Lock twice": func() {
			n := NewNode(0, 2)
			n.Lock(1)
			n.Lock(1)
		},
	} {
		mustPanic(t, name, f)
	}
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		p := recover()
		if p == nil {
			t.Errorf("%s: no panic", name)
		} else if s := fmt.Sprint(p); !strings.HasPrefix(s, "coherence: ") {
			t.Errorf("%s: panic %q lacks the package prefix", name, s)
		}
	}()
	f()
}

func TestNames(t *testing.T) {
	var names []string
	for ty := MsgReq; ty <= MsgLockError; ty++ {
		names = append(names, ty.String())
	}
	if got := strings.Join(names, " "); got != "REQ PAGE FWD INV INVACK GRANT DONE ERROR LOCK LOCKGRANT UNLOCK LOCKERROR" {
		t.Fatalf("names: %s", got)
	}
	if MsgType(0).String() != "MsgType(0)" || Access(7).String() != "Access(7)" {
		t.Fatal("unknown values not shown as numbers")
	}
	for _, tc := range []struct {
		m    Msg
		want string
	}{
		{Msg{Type: MsgReq, From: 1, To: 0, Page: 4, Access: Write}, "1->0 REQ p4 write"},
		{Msg{Type: MsgFwd, From: 0, To: 2, Page: 4, Seq: 9, Access: Read, Requester: 1}, "0->2 FWD p4 read to=1 seq=9"},
		{Msg{Type: MsgPage, From: 2, To: 1, Page: 4, Seq: 9, Access: Read, WithData: true}, "2->1 PAGE p4 read data seq=9"},
		{Msg{Type: MsgError, From: 0, To: 1, Page: 4, Seq: 9, Lost: 2, Role: RoleCopy}, "0->1 ERROR p4 lost=2 (a copy holder) seq=9"},
		{Msg{Type: MsgLockError, From: 0, To: 1, Lock: 3, Lost: 2, Role: RoleHolder}, "0->1 LOCKERROR L3 lost=2 (its holder)"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%#v: %q, want %q", tc.m, got, tc.want)
		}
	}
	e := &PeerLostError{Lock: 3, IsLock: true, Rank: 2, Role: RoleHome}
	if e.Error() != "coherence: lock 3: rank 2 (its home) was lost" {
		t.Errorf("lock error: %q", e)
	}
}
