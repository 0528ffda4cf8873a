// Package mesh builds the TCP meshes of a job.
//
// Lazy (OnDemand) is the application mesh of package rank: connections on
// demand, as Open MPI's btl/tcp. Want(j) starts a connection to rank j
// unless one exists or is being made; connections from peers are accepted
// until Close through package listen (strangers refused, warnings
// rate-limited). Two ranks dialling each other at once keep the lower
// rank's connection: the lower refuses the higher's connection while its
// own dial is in flight, the higher accepts the lower's, and a dialer uses
// a connection only after the acceptor's MESH OK, so each pair has one
// connection and both sides agree on it before any user byte. At most
// MaxDials attempts are in flight; failed attempts are retried with backoff
// until Timeout (one attempt's handshake has Timeout/3, 2-20 s), then
// Failed reports the peer with one error counting the attempts by cause.
// Lost(j) (mpirun says j is gone) fails a peer with no connection at once.
// Setup runs on each new connection before Ready hands it over (rank sets
// up its shared-memory rings there).
//
// Connect and Establish build an all-to-all mesh (once the memory mesh
// of package dsm, which is on demand now and has its own dialer; dsm's
// driver tests still use Connect): rank i dials every rank j > i and accepts from every j < i: one TCP
// connection per pair, TCP_NODELAY, authenticated both ways with the job
// token (package auth); the accepting side runs package listen's hardened
// accept loop (it survives EMFILE and bounds and times out unauthenticated
// connections). Connect runs one reader goroutine per peer that
// hands every message to the Handler, and one wire.Writer per peer keeps
// frames whole (the page servers' memory mesh). Establish only builds and
// authenticates the connections and hands them over, with any bytes the
// handshake read past its end (package rank's engine reads them itself).
//
// Usage:
//
//	ln, _ := net.Listen("tcp", "127.0.0.1:0")
//	// ... publish ln.Addr() and learn everyone's address (rendezvous) ...
//	m, err := mesh.Connect(ctx, mesh.Config{Rank: r, Addrs: addrs, Token: tok, Listener: ln,
//		Handler: func(f wire.Frame) { ... }, OnLost: func(peer int, err error) { ... }})
//	m.Send(peer, wire.ChanUser, typ, body)
//	m.Close()
package mesh
