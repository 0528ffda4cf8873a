package deadlock

import (
	"strings"
	"testing"
	"time"
)

func TestBuild(t *testing.T) {
	now := time.Unix(1000, 0)
	recv := func(from int, sent, arrived []uint64) *Report {
		return &Report{Blocked: true, ForNS: int64(3 * time.Second), Call: Call{Name: "Recv", Recvs: []Match{{From: from, Tag: 0}}}, Sent: sent, Arrived: arrived}
	}
	// Mutual Recv, nothing in flight: a deadlock.
	s, ok := Build(now, []*Report{recv(1, []uint64{0, 2}, []uint64{0, 2}), recv(0, []uint64{2, 0}, []uint64{2, 0})}, nil, []bool{false, false})
	if !ok {
		t.Fatal("not ok")
	}
	if v := Check(s, 2*time.Second); !v.Deadlocked || !strings.Contains(v.Text, "rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 0, tag 0)") {
		t.Fatalf("%+v", v)
	}
	if got := s.Ranks[0].Since; !got.Equal(now.Add(-3 * time.Second)) {
		t.Errorf("since %v", got)
	}
	// Rank 1 sent a third message rank 0 has not seen arrive: in flight.
	s, _ = Build(now, []*Report{recv(1, []uint64{0, 2}, []uint64{0, 2}), recv(0, []uint64{3, 0}, []uint64{2, 0})}, nil, []bool{false, false})
	if v := Check(s, 2*time.Second); v.Deadlocked {
		t.Fatalf("a message in flight, yet %s", v.Text)
	}
	// A rank that did not answer: no snapshot.
	if _, ok := Build(now, []*Report{recv(1, nil, nil), nil}, nil, []bool{false, false}); ok {
		t.Fatal("ok without rank 1's answer")
	}
	// A finished rank's last counts still say what it sent.
	last := []*Report{nil, {Sent: []uint64{1, 0}}}
	s, ok = Build(now, []*Report{recv(1, nil, nil), nil}, last, []bool{false, true})
	if !ok || s.Ranks[1].State != Finished {
		t.Fatalf("ok %v %+v", ok, s.Ranks)
	}
	if v := Check(s, 2*time.Second); v.Deadlocked {
		t.Fatalf("rank 1's message to rank 0 is in flight, yet %s", v.Text)
	}
	// Two goroutines in calls: any message in flight to the rank counts,
	// whatever its recorded call waits for.
	multi := recv(1, []uint64{0, 0, 0}, []uint64{0, 0, 0})
	multi.InCalls = 2
	s, _ = Build(now, []*Report{multi, recv(0, []uint64{0, 0, 0}, nil), recv(0, []uint64{1, 0, 0}, nil)}, nil, make([]bool, 3))
	if v := Check(s, 2*time.Second); v.Deadlocked {
		t.Fatalf("a message from rank 2 is on its way to rank 0 (two goroutines waiting), yet %s", v.Text)
	}
	// A rank whose goroutines are busy is computing.
	s, _ = Build(now, []*Report{recv(1, nil, nil), {Blocked: false, Busy: []int{7}}}, nil, []bool{false, false})
	if v := Check(s, 2*time.Second); v.Deadlocked {
		t.Fatalf("rank 1 computes, yet %s", v.Text)
	}
}

func TestReportSame(t *testing.T) {
	a := &Report{Blocked: true, Gen: 3, ForNS: 1, Call: Call{Name: "Recv", Recvs: []Match{{From: 1}}}, Sent: []uint64{1, 2}, Entered: map[int]int{0: 1}}
	b := *a
	b.ForNS, b.Round = 99, 7
	if !a.Same(&b) {
		t.Error("the time blocked and the round make answers differ")
	}
	for _, change := range []func(r *Report){
		func(r *Report) { r.Gen++ },
		func(r *Report) { r.Sent = []uint64{1, 3} },
		func(r *Report) { r.Arrived = []uint64{1} },
		func(r *Report) { r.Entered = map[int]int{0: 2} },
		func(r *Report) { r.Blocked = false },
	} {
		c := *a
		change(&c)
		if a.Same(&c) {
			t.Errorf("%+v and %+v are the same", a, c)
		}
	}
	var n *Report
	if !n.Same(nil) || n.Same(a) || a.Same(nil) {
		t.Error("nil answers")
	}
}
