// Package collective implements MPI-style collective operations (Bcast,
// Gather, Allgather, Scatter, Reduce, Allreduce) over a small message
// transport. The rank package re-exports them under the same names.
//
// # Usage
//
// Every rank makes the same calls in the same order with the same root,
// op and element type, one call at a time per transport:
//
//	t := collective.Sequenced(tr) // once per rank: numbers the calls
//	cfg, err := collective.Bcast(t, 0, cfgOnRoot)              // root's bytes everywhere
//	sum, err := collective.Allreduce(t, []float64{x}, collective.Sum)
//	all, err := collective.Allgather(t, []byte(host))          // all[i] from rank i
//	mine, err := collective.Scatter(t, 0, partsOnRoot)         // parts[i] to rank i
//	rows, err := collective.Gather(t, 0, myRows)               // on root only
//	tot, err := collective.Reduce(t, 0, counts, collective.Max) // on root only
//
// Byte collectives accept a different length on every rank (Gather,
// Allgather, Scatter's parts). Reduce and Allreduce take any [Number] and
// need the same vector length everywhere. No call modifies its arguments or
// returns memory that aliases them.
//
// # Algorithms
//
// All take ⌈log2 N⌉ rounds. Bcast, Scatter, Gather and Reduce use binomial
// trees rooted at root. Allgather and Allreduce use recursive doubling over
// the largest power of two of ranks; the remaining ranks first fold their
// data into a partner and get the result back at the end. An Allreduce of
// 64 KiB or more uses Rabenseifner's algorithm (reduce-scatter by recursive
// halving, then allgather by recursive doubling), so that each rank moves
// about twice the vector instead of log2 N times. Elements travel
// little-endian (int as 8 bytes) and are combined in place where the machine
// is little-endian.
//
// # Errors
//
// Every message carries a header naming the collective, its call number
// (see [Sequencer]), root, op, element type, vector length, step, and a
// status. A rank that detects a failure (a message from a different call,
// vectors of different lengths, a Scatter root without one part per rank, a
// transport error) does not return at once: it completes the algorithm,
// sending the failure in place of data, and its partners do the same. So:
//
//   - A bad root is detected by every rank locally ([ErrBadRoot]).
//   - Mismatched vector lengths, ops or element types in Reduce or
//     Allreduce, and a wrong number of parts in Scatter, make every rank
//     return an [*Error] ([ErrMismatch], [ErrBadOp], [ErrPartCount]), also
//     when the lengths put ranks on different sides of the Rabenseifner
//     threshold. Reduce pays one header-only message per tree edge for
//     this: root sends the outcome back down the tree.
//   - Other mismatched calls (another collective, another call number) are
//     reported by the ranks that receive a message of the wrong call; in
//     Allgather and Allreduce that is every rank, as long as the calls
//     exchange the same number of messages.
//   - Bcast and Scatter failures reach the ranks below the failing one;
//     Gather failures reach root.
//   - A lost peer fails the ranks that depend on it with [ErrTransport], as
//     long as the transport's Recv returns an error once a peer is lost.
//
// Calls that disagree on the root (two ranks both believing they are the
// root, say) can still block, as in MPI.
//
// The message pattern stays the same whether or not a call fails, so the
// calls after a failed one work normally.
package collective
