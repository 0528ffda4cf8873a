package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dsmexec/dsmexec/internal/sshtest"
)

// The SSH tests run mpirun against in-process SSH servers (internal/sshtest:
// gliderlabs/ssh with the pkg/sftp server) on 127.0.0.1. Each server plays one host: it
// has its own host key and its own home directory (so its own cache), and
// runs commands as this test's user through /bin/sh, the way sshd does.
// Because the ranks run on this machine, loopback addresses work for them.

// testEnv is what the SSH helpers need of a *testing.T; mainEnv provides
// it outside a test, for the setup the tests share.
type testEnv interface {
	Helper()
	Fatal(args ...any)
	TempDir() string
	Cleanup(func())
}

// mainEnv is a testEnv for TestMain: its directories live under binDir,
// its cleanups run in cleanup.
type mainEnv struct {
	mu       sync.Mutex
	cleanups []func()
}

func (*mainEnv) Helper()           {}
func (*mainEnv) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

func (*mainEnv) TempDir() string {
	d, err := os.MkdirTemp(binDir, "ssh-")
	if err != nil {
		panic(err)
	}
	return d
}

func (e *mainEnv) Cleanup(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

func (e *mainEnv) cleanup() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
}

var (
	sharedEnv  mainEnv
	sharedOnce sync.Once
	sharedSt   *sshSetup
)

// sharedSSH returns two hosts, node1 and node2, shared by the tests that
// neither change them nor care what their caches hold: the agent and the
// test programs are copied to them once for the whole run.
func sharedSSH(t *testing.T) *sshSetup {
	t.Helper()
	sharedOnce.Do(func() { sharedSt = newSSHSetup(&sharedEnv, 2) })
	return sharedSt
}

// sshServer is one in-process host (internal/sshtest).
type sshServer struct {
	*sshtest.Server
	name string // its alias in the client's ~/.ssh/config: node1, ...
	port int
	home string
}

func newSSHServer(t testEnv, name string, authorized ...ssh.PublicKey) *sshServer {
	t.Helper()
	s := sshtest.NewServer(t, name, authorized...)
	return &sshServer{Server: s, name: name, port: s.Port, home: s.Home}
}

// close stops the server and drops every connection: the host is gone.
func (s *sshServer) close() { s.Close() }

func (s *sshServer) knownHostsLine() string { return s.KnownHostsLine() }

// sshSetup is a client home (HOME for mpirun) and the hosts it knows.
type sshSetup struct {
	home    string // HOME: .ssh/id_ed25519, known_hosts, config
	key     ssh.Signer
	servers []*sshServer
}

// newSSHSetup starts n hosts, node1..nodeN, that accept the client's key
// and are in its known_hosts and ~/.ssh/config (HostName 127.0.0.1 and the
// server's port, user "tester").
func newSSHSetup(t testEnv, n int) *sshSetup {
	t.Helper()
	st := &sshSetup{home: t.TempDir()}
	if err := os.Mkdir(filepath.Join(st.home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "mpirun test key")
	if err != nil {
		t.Fatal(err)
	}
	st.write(t, ".ssh/id_ed25519", string(pem.EncodeToMemory(block)))
	if st.key, err = ssh.NewSignerFromKey(priv); err != nil {
		t.Fatal(err)
	}
	var known, config strings.Builder
	for i := 1; i <= n; i++ {
		s := newSSHServer(t, fmt.Sprintf("node%d", i), st.key.PublicKey())
		st.servers = append(st.servers, s)
		known.WriteString(s.knownHostsLine() + "\n")
		fmt.Fprintf(&config, "Host %s\n    HostName 127.0.0.1\n    Port %d\n    User tester\n", s.name, s.port)
	}
	st.write(t, ".ssh/known_hosts", known.String())
	st.write(t, ".ssh/config", config.String())
	return st
}

func (st *sshSetup) write(t testEnv, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(st.home, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (st *sshSetup) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(st.home, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// machineFile writes a machine file with the given lines.
func (st *sshSetup) machineFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "machines")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// env is mpirun's environment: this test's, with HOME pointing at the
// client home and no ssh-agent.
func (st *sshSetup) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+st.home)
}

// run runs mpirun with the setup's environment (at most a minute).
func (st *sshSetup) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runMpirunEnv(t, st.env(), stdin, args...)
}

// start runs mpirun in the background with the setup's environment.
func (st *sshSetup) start(t *testing.T, args ...string) *started {
	t.Helper()
	return startEnv(t, st.env(), args...)
}

// fakeELF writes a minimal ELF64 executable header for machine m.
func fakeELF(t *testing.T, m elf.Machine) string {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	binary.Write(&b, le, uint16(elf.ET_EXEC))
	binary.Write(&b, le, uint16(m))
	binary.Write(&b, le, uint32(1))                      // version
	binary.Write(&b, le, [3]uint64{})                    // entry, phoff, shoff
	binary.Write(&b, le, uint32(0))                      // flags
	binary.Write(&b, le, [6]uint16{64, 56, 0, 64, 0, 0}) // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
	p := filepath.Join(t.TempDir(), "foreign")
	if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitGone waits (at most 10 s) until no process carries env.
func waitGone(t *testing.T, env string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := jobProcs(env)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the job still run 10 s after mpirun ended: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
