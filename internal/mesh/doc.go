// Package mesh builds the all-to-all TCP mesh of a job and carries framed
// messages over it.
//
// Rank i dials every rank j > i and accepts from every j < i: one TCP
// connection per pair, TCP_NODELAY, authenticated both ways with the job
// token (package auth). One reader goroutine per peer hands every message to
// the Handler; one wire.Writer per peer keeps frames whole.
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
