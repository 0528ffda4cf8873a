package deadlock

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AnySource and AnyTag have the values of rank.AnySource and rank.AnyTag.
const (
	AnySource = -1
	AnyTag    = -1
)

// State is what a rank is doing.
type State uint8

// States.
const (
	Computing State = iota // not in a blocking dsmexec call (or in one that cannot block: Send)
	Blocked                // in a blocking call, described by Rank.Call
	Finished               // finalized or exited: it will send nothing more
)

// Match is a receive a blocked call waits for: a message from From (a
// world rank, or AnySource) with Tag (or AnyTag) on communicator Comm.
type Match struct {
	From, Tag, Comm int
}

// Call is the blocking call a rank is in.
type Call struct {
	Name string // as the user wrote it: "Recv", "Probe", "Wait", "Waitall", "Barrier", "Bcast", ...

	// Point-to-point: the receives that would let the call go on; any one
	// of them arriving is progress (Recv and Probe have one; Waitall and
	// Waitany one per pending receive request).
	Recvs []Match

	// Collective (Recvs empty): its communicator, the world ranks of its
	// members (nil: every rank), its number among the collectives of that
	// communicator (1 for the first), and its root (-1: none).
	Comm    int
	Members []int
	Seq     int
	Root    int

	// Lock is the dsm.Mutex id of a Lock wait (Name "Lock"): any other
	// rank may hold it, and none that is blocked or finished will
	// release it.
	Lock int
}

// isLock says whether the call is a wait in dsm's Mutex.Lock.
func (c *Call) isLock() bool { return c.Name == "Lock" && len(c.Recvs) == 0 }

// Rank is one rank's state in a snapshot.
type Rank struct {
	State State
	Call  Call      // when Blocked
	Since time.Time // when Blocked: when the call began
	// Entered counts, per communicator, the collectives this rank has
	// entered (the one it is in included).
	Entered map[int]int
}

// InFlight is N messages sent by From to To and not yet received by a
// matching call (on the network or queued at To). Tag AnyTag means the
// tags are not known: it may match any receive from From.
type InFlight struct {
	From, To, Tag, Comm, N int
}

// Snapshot is the job as mpirun sees it at Now.
type Snapshot struct {
	Now      time.Time
	Ranks    []Rank // by world rank
	InFlight []InFlight
}

// Verdict is Check's answer.
type Verdict struct {
	Deadlocked bool
	Cycle      []int  // the wait-for cycle, from its lowest rank (empty when none: e.g. waiting for a finished rank)
	Text       string // deadlock: the sentence mpirun prints after "mpirun: "; otherwise why not
}

// Check decides whether the job in s is deadlocked: every live rank has
// been blocked in a dsmexec call for at least after, and none of them can
// go on — no message in flight matches any of its receives, and every
// collective it is in lacks a member that has not arrived. A computing
// rank, a matching message in flight, or a collective that everyone has
// entered means no deadlock.
//
// The snapshot must be consistent: mpirun takes the ranks' states and
// counts after each has been blocked for after (no call began or ended
// since), so no message was sent or received in between.
func Check(s Snapshot, after time.Duration) Verdict {
	n := len(s.Ranks)
	live := 0
	for r, st := range s.Ranks {
		switch st.State {
		case Finished:
			continue
		case Computing:
			return Verdict{Text: fmt.Sprintf("rank %d is computing", r)}
		}
		live++
		if d := s.Now.Sub(st.Since); d < after {
			return Verdict{Text: fmt.Sprintf("rank %d has been in %s for only %v", r, st.Call.Name, d)}
		}
	}
	if live == 0 {
		return Verdict{Text: "no rank is running"}
	}
	waits := make([][]int, n) // wait-for edges
	for r, st := range s.Ranks {
		if st.State != Blocked {
			continue
		}
		c := &st.Call
		if len(c.Recvs) > 0 {
			for _, m := range c.Recvs {
				if f, ok := s.inFlight(r, m); ok {
					return Verdict{Text: fmt.Sprintf("rank %d can receive a message in flight from rank %d", r, f.From)}
				}
				if m.From == AnySource {
					for p := 0; p < n; p++ {
						if p != r {
							waits[r] = append(waits[r], p)
						}
					}
				} else if m.From >= 0 && m.From < n {
					waits[r] = append(waits[r], m.From)
				}
			}
			waits[r] = dedup(waits[r])
			continue
		}
		if c.isLock() {
			// Whoever holds the lock is blocked or finished too (every
			// live rank is blocked): it will not unlock. A lock handed
			// over meanwhile would have reached the rank long before
			// two snapshots D apart.
			for p := range s.Ranks {
				if p != r {
					waits[r] = append(waits[r], p)
				}
			}
			continue
		}
		missing := s.notArrived(r)
		if len(missing) == 0 {
			return Verdict{Text: fmt.Sprintf("every member has entered rank %d's %s", r, c.Name)}
		}
		waits[r] = missing
	}

	cycle := findCycle(s.Ranks, waits)
	var parts []string
	done := map[int]bool{}
	for _, r := range cycle {
		parts = append(parts, s.describe(r, waits[r]))
		done[r] = true
	}
	for r, st := range s.Ranks {
		if st.State == Blocked && !done[r] {
			parts = append(parts, s.describe(r, waits[r]))
		}
	}
	var fin []int
	seen := map[int]bool{}
	for r := range s.Ranks {
		for _, p := range waits[r] {
			if s.Ranks[p].State == Finished && !seen[p] {
				seen[p] = true
				fin = append(fin, p)
			}
		}
	}
	sort.Ints(fin)
	if len(fin) > 0 {
		parts = append(parts, ranksPhrase(fin)+" "+plural(len(fin), "has", "have")+" finished")
	}
	end := "; nobody can send"
	for _, st := range s.Ranks {
		if st.State == Blocked && st.Call.isLock() {
			end = "; nobody can send or unlock"
			break
		}
	}
	return Verdict{
		Deadlocked: true,
		Cycle:      cycle,
		Text:       "deadlock: " + strings.Join(parts, ", ") + end,
	}
}

// inFlight finds a message in flight to r that m matches.
func (s *Snapshot) inFlight(r int, m Match) (InFlight, bool) {
	for _, f := range s.InFlight {
		if f.N <= 0 || f.To != r || f.Comm != m.Comm {
			continue
		}
		if m.From != AnySource && m.From != f.From {
			continue
		}
		if m.Tag != AnyTag && f.Tag != AnyTag && m.Tag != f.Tag {
			continue
		}
		return f, true
	}
	return InFlight{}, false
}

// notArrived lists the members of r's collective that have not entered it.
func (s *Snapshot) notArrived(r int) []int {
	c := &s.Ranks[r].Call
	members := c.Members
	if members == nil {
		members = make([]int, len(s.Ranks))
		for i := range members {
			members[i] = i
		}
	}
	var missing []int
	for _, m := range members {
		if m < 0 || m >= len(s.Ranks) {
			continue
		}
		if s.Ranks[m].Entered[c.Comm] < c.Seq {
			missing = append(missing, m)
		}
	}
	return missing
}

// findCycle follows wait-for edges between blocked ranks from the lowest
// rank and returns the first cycle found, rotated to start at its lowest
// rank.
func findCycle(ranks []Rank, waits [][]int) []int {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(ranks))
	var stack []int
	var found []int
	var visit func(r int) bool
	visit = func(r int) bool {
		color[r] = grey
		stack = append(stack, r)
		for _, p := range waits[r] {
			if ranks[p].State != Blocked {
				continue
			}
			if color[p] == grey {
				i := len(stack) - 1
				for stack[i] != p {
					i--
				}
				found = append([]int(nil), stack[i:]...)
				return true
			}
			if color[p] == white && visit(p) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[r] = black
		return false
	}
	for r := range ranks {
		if ranks[r].State == Blocked && color[r] == white && visit(r) {
			break
		}
	}
	if len(found) == 0 {
		return nil
	}
	lo := 0
	for i, r := range found {
		if r < found[lo] {
			lo = i
		}
	}
	return append(found[lo:], found[:lo]...)
}

// describe says what rank r waits for, e.g. "rank 0 waits in Recv(from 1,
// tag 0)" or "rank 2 waits in Barrier (ranks 0, 1 have not arrived)".
func (s *Snapshot) describe(r int, waits []int) string {
	c := &s.Ranks[r].Call
	var b strings.Builder
	fmt.Fprintf(&b, "rank %d waits in %s", r, c.String())
	if len(c.Recvs) == 0 && !c.isLock() {
		fmt.Fprintf(&b, " (%s %s not arrived)", ranksPhrase(waits), plural(len(waits), "has", "have"))
	}
	return b.String()
}

// String formats the call as the user wrote it: Recv(from 1, tag 0),
// Recv(from any, tag any), Waitall(from 1 tag 0; from 2 tag 3),
// Bcast(root 0), Barrier, Barrier(comm 3).
func (c Call) String() string {
	name := c.Name
	if name == "" {
		name = "call"
	}
	if len(c.Recvs) == 1 {
		m := c.Recvs[0]
		s := fmt.Sprintf("%s(from %s, tag %s", name, anyName(m.From), anyName(m.Tag))
		if m.Comm != 0 {
			s += fmt.Sprintf(", comm %d", m.Comm)
		}
		return s + ")"
	}
	if c.isLock() {
		return fmt.Sprintf("Lock(%d)", c.Lock)
	}
	if len(c.Recvs) > 1 {
		var ps []string
		for _, m := range c.Recvs {
			p := fmt.Sprintf("from %s tag %s", anyName(m.From), anyName(m.Tag))
			if m.Comm != 0 {
				p += fmt.Sprintf(" comm %d", m.Comm)
			}
			ps = append(ps, p)
		}
		return name + "(" + strings.Join(ps, "; ") + ")"
	}
	var args []string
	if rooted(name) && c.Root >= 0 {
		args = append(args, fmt.Sprintf("root %d", c.Root))
	}
	if c.Comm != 0 {
		args = append(args, fmt.Sprintf("comm %d", c.Comm))
	}
	if len(args) == 0 {
		return name
	}
	return name + "(" + strings.Join(args, ", ") + ")"
}

// rooted says whether a collective has a root worth naming.
func rooted(name string) bool {
	switch name {
	case "Bcast", "Gather", "Scatter", "Reduce":
		return true
	}
	return false
}

func anyName(v int) string {
	if v == -1 {
		return "any"
	}
	return strconv.Itoa(v)
}

func ranksPhrase(rs []int) string {
	ss := make([]string, len(rs))
	for i, r := range rs {
		ss[i] = strconv.Itoa(r)
	}
	if len(rs) == 1 {
		return "rank " + ss[0]
	}
	return "ranks " + strings.Join(ss, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func dedup(xs []int) []int {
	sort.Ints(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// InFlightFromCounts turns per-rank message counters into messages in
// flight: sent[i][j] is what rank i says it sent to j, received[j][i] what
// rank j says it received (matched) from i, both on communicator comm.
// The tags are not known, so the messages may match any receive from i.
func InFlightFromCounts(sent, received [][]int64, comm int) []InFlight {
	var out []InFlight
	for i := range sent {
		for j := range sent[i] {
			var got int64
			if j < len(received) && i < len(received[j]) {
				got = received[j][i]
			}
			if n := sent[i][j] - got; n > 0 {
				out = append(out, InFlight{From: i, To: j, Tag: AnyTag, Comm: comm, N: int(n)})
			}
		}
	}
	return out
}
