// Package rendezvous is the launcher's master socket and the ranks' side of
// it: every rank reports its listening addresses, the master answers with the
// connection table once all have reported, and the connection stays open for
// the rest of the job to carry report cells and DSM statistics to mpirun and
// to tell each rank when the launcher is gone. A rank's Abort(code) and
// Failed(lostPeer, msg) reach mpirun (Config.OnAbort, OnFailed) before they
// return, so mpirun hears why a rank ends before it reaps the exit. A rank
// whose connection ends without its BYE is lost: the master sends LOST to
// every other rank (Client.OnLost), which is how a rank learns of a peer
// it never connected to (the application mesh connects on demand).
//
// On hosts reached over SSH, the host's agent runs a Relay: it accepts the
// host's ranks exactly as the master does (same handshake and frames, so a
// rank cannot tell), sends their joins up in one TypeJoins batch, hands each
// the table when it comes down once, and relays everything else both ways
// as RelayFrame values over the agent's stream; the master's end of it is
// a Port (Master.Relay). mpirun then holds one connection per host.
//
// The master's accept loop is a listen.Server: it survives EMFILE/ENFILE
// (backing off 5 ms to 1 s), bounds unauthenticated connections (2·Size+64
// in all, Size+16 per source address; the oldest is dropped to make room)
// and their handshake time (10 s), and rate-limits its "refused a
// connection" warnings to one line per cause per second.
//
// Master side (mpirun):
//
//	m, err := rendezvous.Listen("127.0.0.1:0", rendezvous.Config{Size: n, Token: tok, Timeout: 30 * time.Second})
//	go m.Serve(ctx)                 // ranks get DSMEXEC_MASTER=m.Addr()
//	select { case err := <-m.Err(): ... }
//	reports := m.Reports()          // after the job
//
// Rank side (package rank):
//
//	c, err := rendezvous.Join(ctx, master, token, rank, rendezvous.Join{Endpoints: []string{addr}})
//	table := c.Table()              // endpoints of every rank
//	c.Cell("iterations", "42")
package rendezvous
