// Package trace records what one rank does — its dsmexec calls, page
// faults, lock waits and counters — into a bounded in-memory buffer, in a
// compact binary encoding that is shipped to mpirun (or written to a
// DSMEXEC_TRACE file) and merged into Chrome/Perfetto trace-event JSON by
// internal/tracefmt.
//
// Tracing is off unless asked: the recorder is then a nil *Recorder, and
// every call site costs one predictable branch (BenchmarkOff). When on,
// events are appended under a mutex to 64 KiB chunks; past the limit
// (DefaultLimit, mpirun -trace-limit) the recorder stops, records that it
// did, and warns once. docs/TRACING.md describes the format, the cost and
// how rank, dsm and mpirun call in.
//
// Usage:
//
//	rec := trace.New(trace.Config{Rank: 0, Size: 4, Host: "h1", PID: os.Getpid(), Warn: warn})
//	// or: var rec *trace.Recorder  (off: every method is a no-op)
//
//	id := rec.NewFlow()                                        // 0 when off
//	sp := rec.Begin(trace.KindSend, trace.Args{Peer: to, Tag: tag, Bytes: n, Flow: id})
//	... send, carrying id in the message when it is not 0 ...
//	sp.End(trace.Args{})
//
//	sp = rec.Begin(trace.KindRecv, trace.Args{Peer: from, Tag: tag})
//	... receive a message that carried flow ...
//	sp.End(trace.Args{Peer: src, Tag: gotTag, Bytes: n, Flow: flow})
//
//	off, bound, err := trace.Offset(samples)                   // NTP-style, at rendezvous
//	rec.SetClock(off, bound)
//
//	piece := rec.Drain()          // ship it; pieces concatenated decode with trace.Decode
//	s, err := trace.Decode(all)   // s.Truncated when the data was cut
package trace
