package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testAgentEnv makes the test binary run as an agent (see TestMain).
const testAgentEnv = "DSMEXEC_REMOTE_TEST_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(testAgentEnv) == "1" {
		if err := RunAgent(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testServer is an in-process SSH server on 127.0.0.1 with an SFTP
// subsystem, running exec requests through sh -c with a temporary HOME.
type testServer struct {
	addr    string
	port    int
	home    string // the remote user's home
	hostKey ssh.Signer

	mu         sync.Mutex
	authorized []ssh.PublicKey
	users      []string // users that logged in
}

func newTestServer(t *testing.T, authorized ...ssh.PublicKey) *testServer {
	t.Helper()
	ts := &testServer{home: t.TempDir(), authorized: authorized}
	ts.hostKey = newSigner(t)
	srv := &gliderssh.Server{
		Handler: ts.exec,
		PublicKeyHandler: func(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			for _, k := range ts.authorized {
				if gliderssh.KeysEqual(k, key) {
					ts.users = append(ts.users, ctx.User())
					return true
				}
			}
			return false
		},
		SubsystemHandlers: map[string]gliderssh.SubsystemHandler{
			"sftp": func(s gliderssh.Session) {
				srv, err := sftp.NewServer(s, sftp.WithServerWorkingDirectory(ts.home))
				if err != nil {
					fmt.Fprintln(s.Stderr(), err)
					return
				}
				srv.Serve()
				srv.Close()
			},
		},
	}
	srv.AddHostKey(ts.hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ts.port = ln.Addr().(*net.TCPAddr).Port
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ts
}

// exec runs the command like sshd: through a shell, stdin closed when the
// client closes its side, the command not killed when the client goes.
func (ts *testServer) exec(s gliderssh.Session) {
	cmd := exec.Command("/bin/sh", "-c", s.RawCommand())
	cmd.Dir = ts.home
	cmd.Env = []string{"HOME=" + ts.home, "PATH=" + os.Getenv("PATH")}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		s.Exit(255)
		return
	}
	cmd.Stdout = s
	cmd.Stderr = s.Stderr()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(s.Stderr(), err)
		s.Exit(127)
		return
	}
	go func() {
		io.Copy(stdin, s)
		stdin.Close()
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		s.Exit(0)
	case errors.As(err, &ee):
		s.Exit(ee.ExitCode() & 0xff)
	default:
		s.Exit(255)
	}
}

func (ts *testServer) loggedIn() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.users...)
}

func (ts *testServer) target() Target {
	return Target{User: "tester", Host: "127.0.0.1", Port: ts.port}
}

// knownHostsLine is the known_hosts line for this server.
func (ts *testServer) knownHostsLine() string {
	return knownhosts.Line([]string{ts.addr}, ts.hostKey.PublicKey())
}

func newSigner(t *testing.T) ssh.Signer {
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

// clientHome is a local home directory with .ssh/id_ed25519 and a
// known_hosts file.
type clientHome struct {
	dir    string
	key    ssh.Signer
	priv   ed25519.PrivateKey
	notes  []string
	notesM sync.Mutex
}

func newClientHome(t *testing.T, knownHosts ...string) *clientHome {
	t.Helper()
	h := &clientHome{dir: t.TempDir()}
	if err := os.Mkdir(filepath.Join(h.dir, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test key")
	if err != nil {
		t.Fatal(err)
	}
	h.priv = priv
	h.write(t, ".ssh/id_ed25519", string(pem.EncodeToMemory(block)))
	if h.key, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	kh := ""
	for _, l := range knownHosts {
		kh += l + "\n"
	}
	h.write(t, ".ssh/known_hosts", kh)
	return h
}

func (h *clientHome) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (h *clientHome) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// options points Dial at this home only: no agent, no global known_hosts.
func (h *clientHome) options() Options {
	return Options{
		Home:             h.dir,
		AgentSocket:      "none",
		GlobalKnownHosts: "none",
		Timeout:          20 * time.Second,
		Notef: func(format string, args ...any) {
			h.notesM.Lock()
			h.notes = append(h.notes, fmt.Sprintf(format, args...))
			h.notesM.Unlock()
		},
	}
}

func (h *clientHome) allNotes() []string {
	h.notesM.Lock()
	defer h.notesM.Unlock()
	return append([]string(nil), h.notes...)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dialTest connects a fresh client home to a fresh server.
func dialTest(t *testing.T) (*testServer, *clientHome, *Host) {
	t.Helper()
	ch := newClientHome(t)
	ts := newTestServer(t, ch.key.PublicKey())
	ch.write(t, ".ssh/known_hosts", ts.knownHostsLine()+"\n")
	h, err := Dial(testContext(t), ts.target(), ch.options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return ts, ch, h
}

func portString(p int) string { return strconv.Itoa(p) }

func mustPriv(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func privOf(t *testing.T, h *clientHome) ed25519.PrivateKey { return h.priv }
