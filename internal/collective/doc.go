// Package collective implements MPI-style collective operations (Barrier,
// Finalize's barrier, Bcast, Gather, Allgather, Scatter, Alltoall, Reduce,
// Allreduce, Scan, Exscan, ReduceScatter, ReduceLoc, AllreduceLoc and the
// ordered ReduceFunc/AllreduceFunc) over a small message transport. The
// rank package exposes them under the same names (and the typed *Slice
// calls through the *As variants, which name the call in every message).
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
// Barrier and Finalize are dissemination barriers (⌈log2 N⌉ rounds);
// BarrierDigest also agrees on a 64-bit digest (min and max travel with the
// rounds). Alltoall and ReduceScatter are pairwise exchanges (each rank
// sends every other rank its block directly; Send never waits for the
// peer's Recv, so the order cannot deadlock). Scan and Exscan are
// recursive doubling over rank order. ReduceFunc and the Loc calls use
// trees and recursive doubling that keep the rank order, so f need not be
// commutative. The others take ⌈log2 N⌉ rounds. Bcast, Scatter, Gather and Reduce use binomial
// trees rooted at root. Allgather and Allreduce use recursive doubling over
// the largest power of two of ranks; the remaining ranks first fold their
// data into a partner and get the result back at the end. An Allreduce of
// 64 KiB or more uses Rabenseifner's algorithm (reduce-scatter by recursive
// halving, then allgather by recursive doubling), so that each rank moves
// about twice the vector instead of log2 N times. Elements travel
// little-endian (int as 8 bytes) and are combined in place where the machine
// is little-endian.
//
// Reduce and Allreduce send a vector part as a stream of segments of at
// most 64 KiB (a message each, flagged when more follow): a rank combines
// one segment while the next travels, and in an exchange each rank sends
// two segments ahead of what it has received. On a transport that
// receives into the caller's buffer ([IntoReceiver]) every segment lands
// in memory the call reuses (a scratch buffer kept on the Sequenced
// transport, or the result itself), so a large Allreduce allocates only
// its result.
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
//   - Another collective at the same point (a Bcast while the others are
//     in Barrier, a Finalize), or a rank one call ahead, is a
//     *MismatchError naming both ranks, both calls and the call number.
//     The rank that receives the message of the other call tells every
//     rank (a notice), so all return it; a rank whose part of the call
//     needed nothing from the odd one learns it in its next call. On a
//     Sequenced transport the error then sticks: every later call returns
//     it at once (the message streams cannot be realigned). To keep two
//     ranks in different calls from waiting for each other, a call on a
//     Sequenced transport sends a header-only hello to rank-1 and rank+1
//     (and, in Bcast and Scatter, to the tree parent): over a transport
//     that is a [TimedReceiver] only once it has waited 2 ms for a
//     message (so a call whose messages come promptly sends none), and
//     while it still waits it looks for the hellos of others every 10 ms
//     (which also breaks longer cycles of waits); else at its start, and a
//     wait around a longer cycle can still block, as in MPI.
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
