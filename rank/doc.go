// Package rank is a dsmexec program's view of its job: its rank, the
// number of ranks, messages between ranks, barriers, collectives, the
// per-rank report table, and the shared memory.
//
// Usage:
//
//	w, err := rank.Init() // under mpirun, Hydra or Slurm; alone: a world of one
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer w.Finalize()
//	if w.Rank() == 0 {
//		w.Send(1, 7, []byte("ping"))
//	} else if w.Rank() == 1 {
//		b, err := w.Recv(0, 7)
//	}
//	sum, err := rank.Allreduce(w, []float64{x}, rank.Sum)
//	w.Barrier()
//	w.Report("iterations", n)
//	v := dsm.Slice[int64](w.Memory(), 0, 1024) // shared between all ranks
//
// Init forms the world from the DSMEXEC_* environment set by mpirun (a
// rendezvous with mpirun's master socket, then a TCP mesh whose connections are made on first use), or
// through a PMI launcher's key-value space, or as a singleton. A rank that
// loses a peer fails every pending and later call that needs it with a
// *PeerError naming the rank; nothing waits forever. Errors are fatal by
// default (the rank prints the call and the error and exits 1);
// InitWith(ErrorsReturn) returns them. Mistakes at the call site (a bad
// rank, tag or color, a call after Finalize or Free) are always returned.
//
// Point-to-point: Send, Recv, RecvFrom, RecvStatus, RecvInto (no
// allocation), Probe, Iprobe, Sendrecv, Isend and Irecv with Wait, Test,
// Waitall, Waitany; ProcNull as a partner is a no-op. Split and Dup make
// communicators (*Comm) with the same calls, whose messages never match
// another communicator's. ENGINE.md in this folder describes the matching
// engine and how a waiting goroutine reads the connections itself.
package rank
