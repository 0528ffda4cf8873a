// Package barrier implements barrier synchronisation for a world of ranks
// over a small message transport.
//
// A barrier lets no rank leave its k-th Wait before every rank has entered
// its k-th Wait. Two algorithms are provided:
//
//   - Dissemination: ⌈log2 N⌉ rounds; in round k rank i sends to
//     (i+2^k) mod N and receives from (i-2^k) mod N. No rank is special and
//     the latency is logarithmic in N. This is the default choice.
//   - Central: every rank reports to a root, which releases everyone once all
//     have arrived. Two message latencies, but the root handles 2(N-1)
//     messages per barrier.
//
// This package is the standalone form of the algorithms, with its own
// epoch-numbered messages. The rank package's Barrier does not use it: it
// runs the dissemination barrier of internal/collective on the collectives'
// transport, with their header (call name and number), so that a barrier
// message can never pass for a Bcast's, nor Finalize's for a Barrier's.
//
// The package knows nothing about sockets: the caller supplies a [Transport]
// that carries this package's messages on a channel of their own, FIFO per
// ordered pair of ranks (the rank package adapts its TCP mesh to it).
//
// # Usage
//
//	b := barrier.NewDissemination(t) // one per world, kept for its lifetime
//	for step := 0; step < steps; step++ {
//		compute(step)
//		if err := b.Wait(); err != nil {
//			return err // names the rank that failed; b stays broken
//		}
//	}
//
// Every message carries the barrier epoch (how many barriers this object
// completed before) and the round number; a message for another epoch or
// round is reported as [ErrMismatch] instead of being taken as a release.
//
// # Failures
//
// A rank that cannot send or receive (a lost peer, a closed world) does not
// stop: it finishes every round of the algorithm, sending a failure status
// instead of a plain message, so that its partners learn of the failure
// instead of waiting for a message that will never come. Every rank that
// takes part therefore returns an [*Error] naming the failed rank, provided
// the transport's Recv returns (with an error) once the peer it reads from is
// lost. After a failure the Barrier returned by NewDissemination or
// NewCentral stays broken and returns the same error from every later Wait.
package barrier
