package auth

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/dsmexec/dsmexec/internal/wire"
)

// Frame types on wire.ChanControl used by the handshake.
const (
	TypeHello     = wire.TypeHello
	TypeChallenge = wire.TypeChallenge
	TypeProof     = wire.TypeProof
	TypeReject    = wire.TypeReject
)

// Master is the identity of the launcher's rendezvous socket.
const Master = -1

// ErrDenied is returned when the other end does not prove the token.
var ErrDenied = errors.New("auth: peer did not prove the job token")

const nonceLen = 16

// maxFrame bounds handshake frames: a stranger cannot make us allocate.
const maxFrame = 256

func mac(token []byte, role string, from, to int, nd, na []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write([]byte(role))
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], uint32(int32(from)))
	binary.BigEndian.PutUint32(b[4:], uint32(int32(to)))
	m.Write(b[:])
	m.Write(nd)
	m.Write(na)
	return m.Sum(nil)
}

func readFrame(r io.Reader, want uint8) ([]byte, error) {
	f, err := wire.ReadFrame(r, maxFrame)
	if err != nil {
		return nil, err
	}
	if f.Channel != wire.ChanControl {
		return nil, fmt.Errorf("auth: got a %s frame during the handshake", f.Channel)
	}
	if f.Type == TypeReject {
		return nil, fmt.Errorf("%w: rejected: %s", ErrDenied, f.Body)
	}
	if f.Type != want {
		return nil, fmt.Errorf("auth: got frame type %d during the handshake, want %d", f.Type, want)
	}
	return f.Body, nil
}

// Dial runs the dialer's side on c: this end is `from`, the other end must
// prove it is `to`. The deadline bounds the whole exchange.
func Dial(c net.Conn, r *bufio.Reader, token []byte, from, to int, deadline time.Time) error {
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	w := wire.NewWriter(c, from)
	nd := make([]byte, nonceLen)
	rand.Read(nd)
	var ids [8]byte
	binary.BigEndian.PutUint32(ids[:4], uint32(int32(from)))
	binary.BigEndian.PutUint32(ids[4:], uint32(int32(to)))
	if err := w.Write(wire.ChanControl, TypeHello, 0, ids[:], nd); err != nil {
		return err
	}
	body, err := readFrame(r, TypeChallenge)
	if err != nil {
		return err
	}
	if len(body) != nonceLen+sha256.Size {
		return fmt.Errorf("auth: challenge of %d bytes", len(body))
	}
	na, got := body[:nonceLen], body[nonceLen:]
	if !hmac.Equal(got, mac(token, "acceptor", from, to, nd, na)) {
		return ErrDenied
	}
	return w.Write(wire.ChanControl, TypeProof, 0, mac(token, "dialer", from, to, nd, na))
}

// Accept runs the acceptor's side on c, which is `self`. It returns the
// identity the dialer proved. accept may refuse an identity (a rank out of
// range, a duplicate) with an error, which is sent back as the reason.
func Accept(c net.Conn, r *bufio.Reader, token []byte, self int, deadline time.Time, accept func(from int) error) (int, error) {
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	w := wire.NewWriter(c, self)
	reject := func(err error) (int, error) {
		w.Write(wire.ChanControl, TypeReject, 0, []byte(err.Error()))
		return 0, err
	}
	body, err := readFrame(r, TypeHello)
	if err != nil {
		return 0, err
	}
	if len(body) != 8+nonceLen {
		return reject(fmt.Errorf("auth: hello of %d bytes", len(body)))
	}
	from := int(int32(binary.BigEndian.Uint32(body[:4])))
	to := int(int32(binary.BigEndian.Uint32(body[4:8])))
	nd := body[8:]
	if to != self {
		return reject(fmt.Errorf("auth: dialer wants rank %d, this is %d", to, self))
	}
	na := make([]byte, nonceLen)
	rand.Read(na)
	if err := w.Write(wire.ChanControl, TypeChallenge, 0, na, mac(token, "acceptor", from, to, nd, na)); err != nil {
		return 0, err
	}
	proof, err := readFrame(r, TypeProof)
	if err != nil {
		return 0, err
	}
	if !hmac.Equal(proof, mac(token, "dialer", from, to, nd, na)) {
		return reject(ErrDenied)
	}
	if accept != nil {
		if err := accept(from); err != nil {
			return reject(err)
		}
	}
	return from, nil
}
