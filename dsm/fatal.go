package dsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/dsmexec/dsmexec/internal/coherence"
	"github.com/dsmexec/dsmexec/internal/dsmhook"
)

// fatal ends the process: shared memory that cannot be made coherent (a lost
// rank held a page) must not let the program go on with wrong data. Before
// it exits it tells mpirun which rank's loss caused it (through rank's
// hook), so that the rank that died is blamed, not this one.
func fatal(err error) {
	fatalLost(lostPeer(err), err.Error())
}

func fatalLost(lost int, msg string) {
	fmt.Fprintf(os.Stderr, "%s\n", msg)
	if dsmhook.Fatal != nil {
		dsmhook.Fatal(lost, msg)
	}
	os.Exit(1)
}

// lostPeer is the rank whose loss err reports, or -1.
func lostPeer(err error) int {
	var pl *coherence.PeerLostError
	if errors.As(err, &pl) {
		return pl.Rank
	}
	var re *remoteLostError
	if errors.As(err, &re) {
		return re.rank
	}
	return -1
}

// remoteLostError is a page server's error that says which rank's loss
// caused it (REPLY status 2).
type remoteLostError struct {
	rank int
	msg  string
}

func (e *remoteLostError) Error() string { return e.msg }

// Is makes errors.Is(err, coherence.ErrPeerLost) true, as on the server.
func (e *remoteLostError) Is(target error) bool { return target == coherence.ErrPeerLost }

// replyErr decodes the error of a REPLY frame: status 1 is text, status 2
// the lost rank + 1 (u32) and text.
func replyErr(status byte, body []byte) error {
	if status == 2 {
		lost, msg := decodeFatal(body)
		if lost >= 0 {
			return &remoteLostError{rank: lost, msg: msg}
		}
		return errors.New(msg)
	}
	return errors.New(string(body))
}

// The body of a FATAL frame from the page server: the lost rank + 1 (0:
// none) as u32 big endian, then the error text.
func encodeFatal(err error) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(lostPeer(err)+1))
	return append(b, err.Error()...)
}

func decodeFatal(body []byte) (lost int, msg string) {
	if len(body) < 4 {
		return -1, string(body)
	}
	return int(binary.BigEndian.Uint32(body)) - 1, string(body[4:])
}
