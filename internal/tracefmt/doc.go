// Package tracefmt merges the ranks' trace streams (internal/trace) into
// one Chrome/Perfetto trace-event JSON document, which opens in
// ui.perfetto.dev and chrome://tracing: a process per rank named
// "rank N@host", a thread per goroutine that made calls (and per page
// server lane), complete ("X") slices, flow arrows ("s"/"f") from each
// send to the receive that matched it, counters ("C"), times in µs on the
// reference clock (each stream's recorded offset subtracted).
//
// Validate checks a document the way the viewers read it; tests and the
// browser test use it.
//
// Usage:
//
//	streams := []*trace.Stream{}                     // trace.Decode of each shipped buffer
//	err := tracefmt.Merge(w, streams, tracefmt.Options{})
//	tl, err := tracefmt.BuildBytes(encoded, tracefmt.Options{})  // large traces: events not kept
//	err = tl.Write(w)
//	err = tracefmt.Validate(jsonBytes)
//
//	// mpirun -merge-traces out.json FILE.0 FILE.1 ... (DSMEXEC_TRACE under Hydra/Slurm)
//	notes, err := tracefmt.MergeFiles("out.json", paths)
//	name := tracefmt.FileName(os.Getenv("DSMEXEC_TRACE"), rank, "rank")
package tracefmt
