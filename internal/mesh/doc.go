// Package mesh builds the all-to-all TCP mesh of a job and carries framed
// messages over it.
//
// Rank i dials every rank j > i and accepts from every j < i: one TCP
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
