package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsmexec/dsmexec/internal/sshtest"
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

// testServer is an in-process SSH server on 127.0.0.1 (internal/sshtest)
// with an SFTP subsystem, running exec requests through sh -c with a
// temporary HOME.
type testServer struct {
	*sshtest.Server
	addr    string
	port    int
	home    string // the remote user's home
	hostKey ssh.Signer
}

func newTestServer(t *testing.T, authorized ...ssh.PublicKey) *testServer {
	t.Helper()
	s := sshtest.NewServer(t, "test", authorized...)
	return &testServer{Server: s, addr: s.Addr, port: s.Port, home: s.Home, hostKey: s.HostKey}
}

func (ts *testServer) loggedIn() []string { return ts.LoggedIn() }

func (ts *testServer) target() Target {
	return Target{User: "tester", Host: "127.0.0.1", Port: ts.port}
}

// knownHostsLine is the known_hosts line for this server.
func (ts *testServer) knownHostsLine() string { return ts.KnownHostsLine() }

func newSigner(t *testing.T) ssh.Signer { return sshtest.NewSigner(t) }

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
