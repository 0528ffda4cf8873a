package tracefmt

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// eps is the slack of comparisons of sums of timestamps: half the
// resolution (1 ns) of the times dsmexec writes, in µs.
const eps = 0.0005

// Validate checks a trace-event JSON document the way the viewers read
// it, and returns every problem found (nil: none):
//
//   - it parses, as an object with "traceEvents" or as an array;
//   - every event has the fields its phase requires (ph, pid; name, ts,
//     dur >= 0 and tid for "X"; numeric args for "C"; a name in args for
//     the process_name and thread_name metadata; id for flows; bp "e" or
//     nothing for "f"; a scope g, p or t for instants);
//   - every flow id has exactly one start ("s") and one end ("f"), each
//     inside a complete slice of its thread (so it binds to it);
//   - timestamps never go backwards on a thread, nor on a counter;
//   - complete slices of a thread nest (the viewers drop those that
//     overlap without nesting);
//   - every process with events has a process_name.
func Validate(data []byte) error {
	var doc struct {
		TraceEvents []map[string]json.RawMessage `json:"traceEvents"`
	}
	var events []map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err == nil && doc.TraceEvents != nil {
		events = doc.TraceEvents
	} else if err := json.Unmarshal(data, &events); err != nil {
		return fmt.Errorf("tracefmt: not trace-event JSON: %w", err)
	}
	var errs []error
	bad := func(i int, format string, args ...any) {
		if len(errs) < 50 {
			errs = append(errs, fmt.Errorf("event %d: "+format, append([]any{i}, args...)...))
		}
	}
	type tkey struct{ pid, tid int }
	type span struct{ start, end float64 }
	lastTs := map[tkey]float64{}
	lastCounter := map[string]float64{}
	slices := map[tkey][]span{}
	open := map[tkey][]span{}
	type flowEnd struct {
		i   int
		key tkey
		ts  float64
	}
	starts := map[string][]flowEnd{}
	ends := map[string][]flowEnd{}
	named := map[int]bool{}
	used := map[int]bool{}

	for i, ev := range events {
		var ph string
		if err := json.Unmarshal(ev["ph"], &ph); err != nil || ph == "" {
			bad(i, "no ph")
			continue
		}
		num := func(field string) (float64, bool) {
			var v float64
			raw, ok := ev[field]
			if !ok || json.Unmarshal(raw, &v) != nil {
				return 0, false
			}
			return v, true
		}
		str := func(field string) (string, bool) {
			var v string
			raw, ok := ev[field]
			if !ok || json.Unmarshal(raw, &v) != nil {
				return "", false
			}
			return v, true
		}
		pidf, ok := num("pid")
		if !ok {
			bad(i, "%s event without a numeric pid", ph)
			continue
		}
		pid := int(pidf)
		tidf, hasTid := num("tid")
		key := tkey{pid, int(tidf)}
		ts, hasTs := num("ts")
		name, hasName := str("name")
		needTs := func() bool {
			if !hasTs {
				bad(i, "%s event without ts", ph)
				return false
			}
			return true
		}
		onThread := func() {
			if !hasTid {
				bad(i, "%s event without tid", ph)
				return
			}
			used[pid] = true
			if last, ok := lastTs[key]; ok && ts < last {
				bad(i, "ts %v before %v on pid %d tid %d", ts, last, key.pid, key.tid)
			}
			lastTs[key] = ts
		}
		switch ph {
		case "X":
			dur, ok := num("dur")
			if !hasName || !needTs() {
				bad(i, "X event without name or ts")
				continue
			}
			if !ok || dur < 0 {
				bad(i, "X event %q without dur >= 0", name)
				continue
			}
			onThread()
			st := open[key]
			for len(st) > 0 && st[len(st)-1].end <= ts+eps {
				st = st[:len(st)-1]
			}
			if len(st) > 0 && ts+dur > st[len(st)-1].end+eps {
				bad(i, "X event %q [%v, %v] overlaps [%v, %v] on pid %d tid %d without nesting", name, ts, ts+dur, st[len(st)-1].start, st[len(st)-1].end, key.pid, key.tid)
			}
			open[key] = append(st, span{ts, ts + dur})
			slices[key] = append(slices[key], span{ts, ts + dur})
		case "B", "E":
			if needTs() {
				onThread()
			}
		case "i", "I":
			if !hasName || !needTs() {
				bad(i, "instant without name or ts")
				continue
			}
			if s, ok := str("s"); ok && s != "g" && s != "p" && s != "t" {
				bad(i, "instant scope %q", s)
			}
			if s, _ := str("s"); s == "g" || s == "p" {
				used[pid] = true
				continue
			}
			onThread()
		case "C":
			if !hasName || !needTs() {
				bad(i, "counter without name or ts")
				continue
			}
			var args map[string]any
			if json.Unmarshal(ev["args"], &args) != nil || len(args) == 0 {
				bad(i, "counter %q without args", name)
				continue
			}
			for k, v := range args {
				if _, ok := v.(float64); !ok {
					bad(i, "counter %q arg %q is not a number", name, k)
				}
			}
			ck := fmt.Sprintf("%d/%s", pid, name)
			if last, ok := lastCounter[ck]; ok && ts < last {
				bad(i, "counter %q ts %v before %v", name, ts, last)
			}
			lastCounter[ck] = ts
			used[pid] = true
		case "M":
			var args map[string]any
			json.Unmarshal(ev["args"], &args)
			switch name {
			case "process_name", "thread_name":
				if n, ok := args["name"].(string); !ok || n == "" {
					bad(i, "%s without args.name", name)
				}
				if name == "process_name" {
					named[pid] = true
				}
			case "process_sort_index", "thread_sort_index":
				if _, ok := args["sort_index"].(float64); !ok {
					bad(i, "%s without a numeric args.sort_index", name)
				}
			case "process_labels", "thread_labels", "process_uptime_seconds":
			default:
				bad(i, "unknown metadata %q", name)
			}
		case "s", "t", "f":
			raw, ok := ev["id"]
			if !ok {
				bad(i, "flow event without id")
				continue
			}
			if !needTs() {
				continue
			}
			if bp, ok := str("bp"); ok && (ph != "f" || bp != "e") {
				bad(i, "flow %s with bp %q", ph, bp)
			}
			onThread()
			id := string(raw)
			fe := flowEnd{i, key, ts}
			if ph == "s" {
				starts[id] = append(starts[id], fe)
			} else if ph == "f" {
				ends[id] = append(ends[id], fe)
			}
		default:
			bad(i, "phase %q not produced by dsmexec", ph)
		}
	}
	inSlice := func(fe flowEnd) bool {
		for _, s := range slices[fe.key] {
			if s.start-eps <= fe.ts && fe.ts <= s.end+eps {
				return true
			}
		}
		return false
	}
	var ids []string
	for id := range starts {
		ids = append(ids, id)
	}
	for id := range ends {
		if _, ok := starts[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		s, f := starts[id], ends[id]
		if len(s) != 1 || len(f) != 1 {
			errs = append(errs, fmt.Errorf("flow %s has %d starts and %d ends (want one of each)", id, len(s), len(f)))
			continue
		}
		if !inSlice(s[0]) {
			errs = append(errs, fmt.Errorf("event %d: flow %s starts outside every slice of its thread", s[0].i, id))
		}
		if !inSlice(f[0]) {
			errs = append(errs, fmt.Errorf("event %d: flow %s ends outside every slice of its thread", f[0].i, id))
		}
	}
	var pids []int
	for pid := range used {
		if !named[pid] {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		errs = append(errs, fmt.Errorf("pid %d has events but no process_name", pid))
	}
	if len(errs) > 0 {
		return fmt.Errorf("tracefmt: invalid trace: %w", errors.Join(errs...))
	}
	return nil
}
