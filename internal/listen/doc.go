// Package listen is the accept loop of every listener that strangers can
// reach before they prove the job's token: mpirun's master socket, a rank's
// mesh listener and a page server's.
//
// A Server accepts until Close and never gives up: an accept error (EMFILE
// or ENFILE when the process or the system is out of descriptors, ENOBUFS,
// ECONNABORTED, anything else but the listener being closed) is followed by
// a pause of 5 ms, doubled after each further error up to 1 s, and the loop
// goes on, as net/http's Server does. Each accepted connection is handed to
// the handler in its own goroutine with a Gate: until the handler calls
// Gate.Authenticated, the connection counts as unauthenticated, and
//
//   - it is closed when HandshakeTimeout has passed (a hard bound: the
//     handler's own deadlines do not extend it);
//   - at most MaxPendingPerHost of them come from one source address and
//     at most MaxPending in all: a new connection over a bound makes room by
//     closing the oldest unauthenticated one (of that source, or overall),
//     so strangers holding idle connections never keep a real client out:
//     a client is dropped only if more than the bound of newer connections
//     arrive during its own handshake, which takes one round trip;
//   - Close closes it.
//
// Warnings about refused connections and accept errors go through a
// Limiter: the first of each cause in a second is written in full, the
// rest of that second become one summary line ("... (and 57 more like it
// in the last 1s)").
//
// # Usage
//
//	srv := listen.New(ln, listen.Config{Name: "master", MaxPendingPerHost: n + 16, MaxPending: 2*n + 64, Warnf: warnf})
//	go srv.Serve(func(c net.Conn, g *listen.Gate) {
//		defer c.Close()
//		if err := handshake(c); err != nil {
//			g.Refuse("authentication failed", err)
//			return
//		}
//		if !g.Authenticated() {
//			return // dropped meanwhile (timeout, eviction, Close)
//		}
//		... the authenticated peer ...
//	})
//	...
//	srv.Close() // the listener and every unauthenticated connection
//	srv.Wait()  // Serve and every handler have returned
package listen
