package rendezvous

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/listen"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// acceptJoin is the start of a rank's connection to a master or a relay
// (who, for messages): the handshake (check vets the rank the peer claims;
// a failure is refused through g), then the join frame, within 10 s. ok is
// false when c is to be dropped; what was wrong after the handshake went
// to warnf. br reads the frames that follow the join.
func acceptJoin(c net.Conn, g *listen.Gate, token []byte, check func(from int) error,
	who string, warnf func(string, ...any)) (rank int, j JoinInfo, br *bufio.Reader, ok bool) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	br = bufio.NewReader(c)
	rank, err := auth.Accept(c, br, token, auth.Master, time.Now().Add(handshakeTimeout), check)
	if err != nil {
		g.Refuse("failed handshake", err) // logged by the gate, rate-limited
		return rank, j, br, false
	}
	if !g.Authenticated() {
		return rank, j, br, false // dropped meanwhile (handshake time, or Close)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := wire.ReadFrame(br, maxControl)
	c.SetReadDeadline(time.Time{})
	if err != nil || f.Type != TypeJoin {
		warnf("%s: rank %d sent no join: %v", who, rank, err)
		return rank, j, br, false
	}
	if err := json.Unmarshal(f.Body, &j); err != nil || j.Rank != rank {
		warnf("%s: rank %d sent a bad join: %v", who, rank, err)
		return rank, j, br, false
	}
	return rank, j, br, true
}

// readFrames hands each frame rank sends after its join to handle, until
// the connection ends; an end other than EOF goes to logf.
func readFrames(br *bufio.Reader, rank int, who string, logf func(string, ...any), handle func(wire.Frame)) {
	for {
		f, err := wire.ReadFrame(br, maxControl)
		if err != nil {
			if err != io.EOF {
				logf("%s: rank %d: %v", who, rank, err)
			}
			return
		}
		handle(f)
	}
}
