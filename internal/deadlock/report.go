package deadlock

import (
	"reflect"
	"time"
)

// Question is mpirun's STATE question to a rank (JSON on the wire).
type Question struct {
	// Round numbers the questions; the answer repeats it, so a late
	// answer to an earlier round is never taken for this one's.
	Round uint64 `json:"round"`
	// AfterNS: a rank blocked at least this long (nanoseconds) checks its
	// goroutines (Busy) before it says it is blocked; 0: always.
	AfterNS int64 `json:"after_ns"`
	// Stacks asks for the program's goroutine stacks, trimmed (Trim).
	Stacks bool `json:"stacks,omitempty"`
}

// Report is a rank's answer to a Question (JSON on the wire): what it is
// doing, and its message counts per peer.
type Report struct {
	Round uint64 `json:"round"`
	// Blocked: a goroutine of the program waits in the dsmexec call Call
	// (world ranks) since ForNS nanoseconds, and no goroutine of the
	// program can go on by itself (when the rank checked: see Question).
	Blocked bool  `json:"blocked"`
	Call    Call  `json:"call"`
	ForNS   int64 `json:"for_ns,omitempty"`
	// Gen changes whenever a blocking call begins: two answers with one
	// Gen and Blocked are the same call.
	Gen uint64 `json:"gen"`
	// Entered counts, per communicator, the collectives this rank has
	// entered.
	Entered map[int]int `json:"entered,omitempty"`
	// InCalls is how many goroutines of the program wait in dsmexec calls
	// (0 when not checked); Busy lists those that could go on by
	// themselves (the rank is then not Blocked).
	InCalls int   `json:"in_calls,omitempty"`
	Busy    []int `json:"busy,omitempty"`
	// Sent[p] and Arrived[p]: messages this rank sent to world rank p, and
	// that arrived here from p (every communicator, collectives included).
	Sent    []uint64 `json:"sent,omitempty"`
	Arrived []uint64 `json:"arrived,omitempty"`
	// Stacks: the program's goroutines, trimmed (when asked).
	Stacks string `json:"stacks,omitempty"`
}

// Same says whether two answers show the rank in the same state with the
// same counts: nothing happened on it in between (the time blocked aside).
func (r *Report) Same(o *Report) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.Blocked == o.Blocked && r.Gen == o.Gen && r.InCalls == o.InCalls &&
		reflect.DeepEqual(r.Call, o.Call) && reflect.DeepEqual(r.Entered, o.Entered) &&
		reflect.DeepEqual(r.Sent, o.Sent) && reflect.DeepEqual(r.Arrived, o.Arrived)
}

// Build makes the snapshot of a job at now from its ranks' answers:
// reports[r] is rank r's answer (nil: none), finished[r] says the rank
// finalized or exited (last[r], its last answer if any, still gives what
// it sent). ok is false when a live rank did not answer: no snapshot can
// be trusted then.
//
// A rank with more than one goroutine in dsmexec calls is taken to wait
// for a message from anyone (its record shows one call), so that any
// message in flight to it means no deadlock.
func Build(now time.Time, reports, last []*Report, finished []bool) (s Snapshot, ok bool) {
	n := len(reports)
	s.Now = now
	s.Ranks = make([]Rank, n)
	sent := make([][]int64, n)
	arrived := make([][]int64, n)
	comms := map[int]bool{0: true}
	for r := 0; r < n; r++ {
		rep := reports[r]
		if r < len(finished) && finished[r] {
			s.Ranks[r] = Rank{State: Finished}
			if rep == nil && r < len(last) {
				rep = last[r]
			}
			if rep != nil {
				sent[r] = counts(rep.Sent, n)
				arrived[r] = counts(rep.Arrived, n)
			}
			continue
		}
		if rep == nil {
			return Snapshot{}, false
		}
		sent[r] = counts(rep.Sent, n)
		arrived[r] = counts(rep.Arrived, n)
		st := Rank{State: Computing, Entered: rep.Entered}
		if rep.Blocked {
			st.State = Blocked
			st.Since = now.Add(-time.Duration(rep.ForNS))
			st.Call = rep.Call
			if rep.InCalls > 1 {
				st.Call.Recvs = append(append([]Match(nil), st.Call.Recvs...), Match{From: AnySource, Tag: AnyTag, Comm: st.Call.Comm})
			}
			for _, m := range st.Call.Recvs {
				comms[m.Comm] = true
			}
		}
		s.Ranks[r] = st
	}
	for c := range comms {
		s.InFlight = append(s.InFlight, InFlightFromCounts(sent, arrived, c)...)
	}
	return s, true
}

func counts(v []uint64, n int) []int64 {
	out := make([]int64, n)
	for i := 0; i < n && i < len(v); i++ {
		out[i] = int64(v[i])
	}
	return out
}
