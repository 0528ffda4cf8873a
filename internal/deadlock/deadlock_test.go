package deadlock

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

const D = 2 * time.Second

func recv(from, tag int) Rank {
	return Rank{State: Blocked, Since: t0, Call: Call{Name: "Recv", Recvs: []Match{{From: from, Tag: tag}}}}
}

// lock is a rank waiting in dsm's Mutex.Lock for lock id.
func lock(id int) Rank {
	return Rank{State: Blocked, Since: t0, Call: Call{Name: "Lock", Lock: id, Root: -1}}
}

func barrier(seq int) Rank {
	return Rank{State: Blocked, Since: t0, Call: Call{Name: "Barrier", Seq: seq, Root: -1}, Entered: map[int]int{0: seq}}
}

func TestDeadlocks(t *testing.T) {
	now := t0.Add(3 * time.Second)
	tests := []struct {
		name  string
		ranks []Rank
		fl    []InFlight
		cycle []int
		text  string
	}{
		{
			name:  "two ranks receive from each other",
			ranks: []Rank{recv(1, 0), recv(0, 0)},
			cycle: []int{0, 1},
			text:  "deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 0, tag 0); nobody can send",
		},
		{
			name:  "ring of receives",
			ranks: []Rank{recv(3, 1), recv(0, 1), recv(1, 1), recv(2, 1)},
			cycle: []int{0, 3, 2, 1},
			text:  "deadlock: rank 0 waits in Recv(from 3, tag 1), rank 3 waits in Recv(from 2, tag 1), rank 2 waits in Recv(from 1, tag 1), rank 1 waits in Recv(from 0, tag 1); nobody can send",
		},
		{
			name:  "receive from a finished rank",
			ranks: []Rank{recv(1, 0), {State: Finished}},
			text:  "deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 has finished; nobody can send",
		},
		{
			name:  "a message in flight with another tag does not help",
			ranks: []Rank{recv(1, 0), recv(0, 0)},
			fl:    []InFlight{{From: 1, To: 0, Tag: 5, N: 2}, {From: 0, To: 1, Tag: 0, Comm: 3, N: 1}},
			cycle: []int{0, 1},
			text:  "deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Recv(from 0, tag 0); nobody can send",
		},
		{
			name: "half in Barrier, half in Recv",
			ranks: []Rank{barrier(1), barrier(1),
				func() Rank { r := recv(0, 0); r.Entered = map[int]int{0: 0}; return r }(),
				func() Rank { r := recv(1, 0); r.Entered = map[int]int{0: 0}; return r }()},
			cycle: []int{0, 2},
			text:  "deadlock: rank 0 waits in Barrier (ranks 2, 3 have not arrived), rank 2 waits in Recv(from 0, tag 0), rank 1 waits in Barrier (ranks 2, 3 have not arrived), rank 3 waits in Recv(from 1, tag 0); nobody can send",
		},
		{
			name:  "AnySource with nobody left to send",
			ranks: []Rank{recv(AnySource, AnyTag), {State: Finished}, {State: Finished}},
			text:  "deadlock: rank 0 waits in Recv(from any, tag any), ranks 1, 2 have finished; nobody can send",
		},
		{
			name: "Bcast whose root is in a Recv",
			ranks: []Rank{
				{State: Blocked, Since: t0, Call: Call{Name: "Recv", Recvs: []Match{{From: 1, Tag: 9}}}, Entered: map[int]int{0: 2}},
				{State: Blocked, Since: t0, Call: Call{Name: "Bcast", Seq: 3, Root: 0}, Entered: map[int]int{0: 3}},
			},
			cycle: []int{0, 1},
			text:  "deadlock: rank 0 waits in Recv(from 1, tag 9), rank 1 waits in Bcast(root 0) (rank 0 has not arrived); nobody can send",
		},
		{
			name: "Waitall on two receives nobody sends",
			ranks: []Rank{
				{State: Blocked, Since: t0, Call: Call{Name: "Waitall", Recvs: []Match{{From: 1, Tag: 0}, {From: 2, Tag: 0}}}},
				recv(0, 1), {State: Finished},
			},
			cycle: []int{0, 1},
			text:  "deadlock: rank 0 waits in Waitall(from 1 tag 0; from 2 tag 0), rank 1 waits in Recv(from 0, tag 1), rank 2 has finished; nobody can send",
		},
		{
			name: "collective on a sub-communicator",
			ranks: []Rank{
				{State: Blocked, Since: t0, Call: Call{Name: "Barrier", Comm: 7, Members: []int{0, 2}, Seq: 1, Root: -1}, Entered: map[int]int{7: 1}},
				{State: Finished},
				{State: Blocked, Since: t0, Call: Call{Name: "Recv", Recvs: []Match{{From: 0, Tag: 0, Comm: 7}}}, Entered: map[int]int{}},
			},
			cycle: []int{0, 2},
			text:  "deadlock: rank 0 waits in Barrier(comm 7) (rank 2 has not arrived), rank 2 waits in Recv(from 0, tag 0, comm 7); nobody can send",
		},
		{
			name:  "a lock holder waits for the rank that waits for its lock",
			ranks: []Rank{recv(1, 0), lock(3)},
			cycle: []int{0, 1},
			text:  "deadlock: rank 0 waits in Recv(from 1, tag 0), rank 1 waits in Lock(3); nobody can send or unlock",
		},
		{
			name:  "a lock kept by a rank that finished",
			ranks: []Rank{{State: Finished}, lock(0), lock(0)},
			cycle: []int{1, 2},
			text:  "deadlock: rank 1 waits in Lock(0), rank 2 waits in Lock(0), rank 0 has finished; nobody can send or unlock",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Check(Snapshot{Now: now, Ranks: tt.ranks, InFlight: tt.fl}, D)
			if !v.Deadlocked {
				t.Fatalf("not deadlocked: %s", v.Text)
			}
			if v.Text != tt.text {
				t.Errorf("text\n got %s\nwant %s", v.Text, tt.text)
			}
			if len(v.Cycle) != len(tt.cycle) {
				t.Fatalf("cycle %v, want %v", v.Cycle, tt.cycle)
			}
			for i := range v.Cycle {
				if v.Cycle[i] != tt.cycle[i] {
					t.Fatalf("cycle %v, want %v", v.Cycle, tt.cycle)
				}
			}
		})
	}
}

func TestNotDeadlocked(t *testing.T) {
	now := t0.Add(3 * time.Second)
	tests := []struct {
		name  string
		ranks []Rank
		fl    []InFlight
		why   string
	}{
		{"a rank computes", []Rank{recv(1, 0), {State: Computing}}, nil, "rank 1 is computing"},
		{"a matching message is in flight", []Rank{recv(1, 0), recv(0, 0)}, []InFlight{{From: 0, To: 1, Tag: 0, N: 1}}, "rank 1 can receive"},
		{"a message of unknown tag may match", []Rank{recv(1, 4), recv(0, 0)}, []InFlight{{From: 1, To: 0, Tag: AnyTag, N: 3}}, "rank 0 can receive"},
		{"AnySource with a message in flight", []Rank{recv(AnySource, 2), {State: Finished}, recv(0, 0)}, []InFlight{{From: 2, To: 0, Tag: 2, N: 1}}, "rank 0 can receive"},
		{"not blocked long enough", []Rank{recv(1, 0), {State: Blocked, Since: now.Add(-time.Second), Call: Call{Name: "Recv", Recvs: []Match{{From: 0}}}}}, nil, "for only 1s"},
		{"everyone entered the barrier", []Rank{barrier(2), barrier(2), barrier(2)}, nil, "every member has entered"},
		{"a member went past the barrier", []Rank{barrier(2), {State: Blocked, Since: t0, Call: Call{Name: "Recv", Recvs: []Match{{From: 0}}}, Entered: map[int]int{0: 2}}}, []InFlight{{From: 1, To: 0, Tag: 0, N: 1}}, "every member has entered"},
		{"every rank finished", []Rank{{State: Finished}, {State: Finished}}, nil, "no rank is running"},
		{"the lock holder computes", []Rank{lock(2), {State: Computing}}, nil, "rank 1 is computing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Check(Snapshot{Now: now, Ranks: tt.ranks, InFlight: tt.fl}, D)
			if v.Deadlocked {
				t.Fatalf("deadlock reported: %s", v.Text)
			}
			if !strings.Contains(v.Text, tt.why) {
				t.Fatalf("why %q, want %q", v.Text, tt.why)
			}
		})
	}
}

func TestCallString(t *testing.T) {
	for _, tt := range []struct {
		c    Call
		want string
	}{
		{Call{Name: "Probe", Recvs: []Match{{From: AnySource, Tag: 3}}}, "Probe(from any, tag 3)"},
		{Call{Name: "Barrier", Root: -1}, "Barrier"},
		{Call{Name: "Barrier"}, "Barrier"},
		{Call{Name: "Reduce", Root: 2, Comm: 1}, "Reduce(root 2, comm 1)"},
		{Call{Name: "Allreduce", Root: -1}, "Allreduce"},
	} {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestInFlightFromCounts(t *testing.T) {
	sent := [][]int64{{0, 3, 1}, {2, 0, 0}, {0, 0, 0}}
	recv := [][]int64{{0, 2, 0}, {3, 0, 0}, {0, 0, 0}} // rank 0 got 2 of 1's, rank 1 got 3 of 0's; 0->2 in flight
	got := InFlightFromCounts(sent, recv, 0)
	if len(got) != 1 || got[0] != (InFlight{From: 0, To: 2, Tag: AnyTag, N: 1}) {
		t.Fatalf("%+v", got)
	}
	v := Check(Snapshot{Now: t0.Add(3 * time.Second), Ranks: []Rank{recv1(1), recv1(0), recv1(0)}, InFlight: got}, D)
	if v.Deadlocked {
		t.Fatalf("rank 2 can receive from 0: %s", v.Text)
	}
}

func recv1(from int) Rank { return recv(from, 0) }
