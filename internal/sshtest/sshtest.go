// Package sshtest is an in-process SSH server for tests: gliderlabs/ssh with
// the pkg/sftp server on 127.0.0.1, one per simulated host, each with its
// own host key and home directory, running commands as the test's user
// through /bin/sh the way sshd does. internal/remote's and mpirun's tests
// use it; nothing else should.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// T is what the server needs of a *testing.T (or of a stand-in outside a
// test, for setup shared by several tests).
type T interface {
	Helper()
	Fatal(args ...any)
	TempDir() string
	Cleanup(func())
}

// Server is one in-process host.
type Server struct {
	Name    string // its name for the test: SSH_TEST_HOST in its commands' environment
	Addr    string // 127.0.0.1:port
	Port    int
	Home    string // the remote user's home: commands run there, SFTP starts there
	HostKey ssh.Signer

	srv  *gliderssh.Server
	ln   net.Listener
	done chan struct{}

	mu         sync.Mutex
	authorized []ssh.PublicKey
	users      []string
}

// NewServer starts a host that accepts the given client keys; it is closed
// at the end of the test.
func NewServer(t T, name string, authorized ...ssh.PublicKey) *Server {
	t.Helper()
	s := &Server{Name: name, Home: t.TempDir(), HostKey: NewSigner(t), authorized: authorized, done: make(chan struct{})}
	s.srv = &gliderssh.Server{
		Handler:          s.exec,
		PublicKeyHandler: s.allowed,
		SubsystemHandlers: map[string]gliderssh.SubsystemHandler{
			"sftp": func(sess gliderssh.Session) {
				srv, err := sftp.NewServer(sess, sftp.WithServerWorkingDirectory(s.Home))
				if err != nil {
					fmt.Fprintln(sess.Stderr(), err)
					return
				}
				srv.Serve()
				srv.Close()
			},
		},
	}
	s.srv.AddHostKey(s.HostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.Addr, s.Port = ln, ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
	go func() { s.srv.Serve(ln); close(s.done) }()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) allowed(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.authorized {
		if gliderssh.KeysEqual(k, key) {
			s.users = append(s.users, ctx.User())
			return true
		}
	}
	return false
}

// Authorize replaces the client keys the host accepts (none: it refuses
// everyone).
func (s *Server) Authorize(keys ...ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorized = keys
}

// LoggedIn returns the users that logged in, in order.
func (s *Server) LoggedIn() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.users...)
}

// Close stops the server and drops every connection: the host is gone.
// Safe to call twice.
func (s *Server) Close() {
	s.srv.Close()
	s.ln.Close() // in case Serve had not started yet: Close missed it
	<-s.done
}

// KnownHostsLine is the known_hosts line for this host.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr}, s.HostKey.PublicKey())
}

// exec runs a command like sshd: through a shell in the home directory,
// with a login-like environment; its stdin closes when the client's does
// or the connection ends; it is not killed when the client goes.
func (s *Server) exec(sess gliderssh.Session) {
	cmd := exec.Command("/bin/sh", "-c", sess.RawCommand())
	cmd.Dir = s.Home
	cmd.Env = []string{"HOME=" + s.Home, "PATH=" + os.Getenv("PATH"), "SSH_TEST_HOST=" + s.Name}
	if v, ok := os.LookupEnv("GORACE"); ok { // race-enabled agents: as the test asked
		cmd.Env = append(cmd.Env, "GORACE="+v)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		sess.Exit(255)
		return
	}
	cmd.Stdout = sess
	cmd.Stderr = sess.Stderr()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(sess.Stderr(), err)
		sess.Exit(127)
		return
	}
	go func() {
		io.Copy(stdin, sess)
		stdin.Close()
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		sess.Exit(0)
	case errors.As(err, &ee):
		sess.Exit(ee.ExitCode() & 0xff)
	default:
		sess.Exit(255)
	}
}

// NewSigner returns a fresh ed25519 key.
func NewSigner(t T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
