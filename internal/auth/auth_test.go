package auth

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func pair(t *testing.T, dialTok, accTok []byte, from, to, self int, accept func(int) error) (dialErr, accErr error, got int) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(5 * time.Second)
	done := make(chan error, 1)
	go func() {
		done <- Dial(a, bufio.NewReader(a), dialTok, from, to, deadline)
		a.Close() // the acceptor must not wait for more after a failure here
	}()
	got, accErr = Accept(b, bufio.NewReader(b), accTok, self, deadline, accept)
	b.Close()
	dialErr = <-done
	return dialErr, accErr, got
}

func TestHandshake(t *testing.T) {
	tests := []struct {
		name             string
		dialTok, accTok  string
		from, to, self   int
		accept           func(int) error
		wantDial, wantAc bool // success expected
	}{
		{"both know the token", "k", "k", 2, 5, 5, nil, true, true},
		{"master identity", "k", "k", 3, Master, Master, nil, true, true},
		{"dialer has the wrong token", "bad", "k", 2, 5, 5, nil, false, false},
		{"acceptor has the wrong token", "k", "bad", 2, 5, 5, nil, false, false},
		{"dialer wants another rank", "k", "k", 2, 4, 5, nil, false, false},
		{"acceptor refuses the identity", "k", "k", 2, 5, 5, func(int) error { return fmt.Errorf("duplicate") }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dErr, aErr, got := pair(t, []byte(tt.dialTok), []byte(tt.accTok), tt.from, tt.to, tt.self, tt.accept)
			if tt.wantAc != (aErr == nil) {
				t.Fatalf("accept err = %v, want success %v", aErr, tt.wantAc)
			}
			if tt.wantAc && got != tt.from {
				t.Fatalf("accepted identity %d, want %d", got, tt.from)
			}
			if tt.wantDial && dErr != nil {
				t.Fatalf("dial err = %v", dErr)
			}
			if tt.dialTok != tt.accTok && !errors.Is(dErr, ErrDenied) {
				t.Fatalf("dial with mismatched tokens: err = %v, want ErrDenied", dErr)
			}
		})
	}
}

func TestGarbageIsRefused(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		a.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		a.Close()
	}()
	if _, err := Accept(b, bufio.NewReader(b), []byte("k"), 0, time.Now().Add(5*time.Second), nil); err == nil {
		t.Fatal("garbage accepted")
	}
}
