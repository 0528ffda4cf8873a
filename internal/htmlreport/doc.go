// Package htmlreport writes mpirun -report-html's page: one self-contained
// HTML document (inline CSS, SVG and a few lines of script; nothing is
// fetched, so it opens offline and from a mail attachment) with
//
//   - the per-rank table (the -summary columns),
//   - a rank×rank matrix of messages and bytes, as a heat map,
//   - a timeline per rank of compute, communication, fault, lock and
//     barrier time, and each rank's totals,
//   - a heat map of the shared region, pages × ranks, for faults, pages
//     moved and invalidations (pages grouped into at most 256 columns),
//   - the false-sharing report (internal/falseshare).
//
// It is readable from 2 to 64 ranks (the matrix turns into colored cells
// without numbers past 16) and from 1 to 262,144 pages.
//
// Usage:
//
//	r := &htmlreport.Report{Title: "ring: 4 ranks", Columns: cols, Rows: rows}
//	htmlreport.FromTrace(r, tracefmt.Build(streams, tracefmt.Options{}), size)
//	r.Pages = htmlreport.Pages{Count: pages, PageSize: ps, Cells: cells}
//	r.FalseSharing = falseshare.Detect(pageWrites, ps, falseshare.Threshold, 20)
//	layout, err := htmlreport.Write(f, r)
package htmlreport
