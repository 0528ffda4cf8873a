package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestDialWithKey(t *testing.T) {
	ts, _, h := dialTest(t)
	out, err := h.Output(testContext(t), []string{"sh", "-c", `echo "hi $1 from $HOME"`, "sh", "it's me"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "hi it's me from " + ts.home + "\n"; string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if got := ts.loggedIn(); len(got) != 1 || got[0] != "tester" {
		t.Errorf("logged in as %q, want tester", got)
	}
	if h.User != "tester" || h.HostName != "127.0.0.1" || h.Port != ts.port || h.Addr() != ts.addr {
		t.Errorf("host = %+v", h)
	}
	// A failing command reports its status and stderr.
	_, err = h.Output(testContext(t), []string{"sh", "-c", "echo broken >&2; exit 3"})
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 || !strings.Contains(err.Error(), "broken") {
		t.Errorf("Output of a failing command: %v", err)
	}
}

func TestDialUnknownHost(t *testing.T) {
	ch := newClientHome(t) // empty known_hosts
	ts := newTestServer(t, ch.key.PublicKey())
	_, err := Dial(testContext(t), ts.target(), ch.options())
	if !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("err = %v, want ErrUnknownHost", err)
	}
	khFile := filepath.Join(ch.dir, ".ssh", "known_hosts")
	for _, want := range []string{"[127.0.0.1]:" + portString(ts.port), khFile, ssh.FingerprintSHA256(ts.hostKey.PublicKey())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	hint := Hint(err)
	for _, want := range []string{"ssh-keyscan -p " + portString(ts.port) + " 127.0.0.1 >> " + khFile, "-ssh-accept-new"} {
		if !strings.Contains(hint, want) {
			t.Errorf("hint %q does not mention %q", hint, want)
		}
	}
	if got := ch.read(t, ".ssh/known_hosts"); got != "" {
		t.Errorf("known_hosts changed without AcceptNew: %q", got)
	}
	if len(ts.loggedIn()) != 0 {
		t.Error("authenticated to an unknown host")
	}
}

func TestDialAcceptNew(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		ch := newClientHome(t)
		ch.write(t, ".ssh/known_hosts", "# no newline at the end") // the append must start a new line
		ts := newTestServer(t, ch.key.PublicKey())
		opts := ch.options()
		opts.AcceptNew = true
		opts.HashKnownHosts = hashed
		h, err := Dial(testContext(t), ts.target(), opts)
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		lines := strings.Split(strings.TrimSuffix(ch.read(t, ".ssh/known_hosts"), "\n"), "\n")
		if len(lines) != 2 || lines[0] != "# no newline at the end" {
			t.Fatalf("known_hosts lines %q", lines)
		}
		keyText := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ts.hostKey.PublicKey())))
		if hashed {
			if !strings.HasPrefix(lines[1], "|1|") || !strings.HasSuffix(lines[1], " "+keyText) || strings.Contains(lines[1], "127.0.0.1") {
				t.Errorf("hashed line %q", lines[1])
			}
		} else if want := "[127.0.0.1]:" + portString(ts.port) + " " + keyText; lines[1] != want {
			t.Errorf("line %q, want %q", lines[1], want)
		}
		notes := strings.Join(ch.allNotes(), "\n")
		if !strings.Contains(notes, "added the host key of [127.0.0.1]:"+portString(ts.port)) {
			t.Errorf("notes %q", notes)
		}
		// The line written is one a strict dial accepts.
		h, err = Dial(testContext(t), ts.target(), ch.options())
		if err != nil {
			t.Fatalf("dial after accept-new (hashed=%v): %v", hashed, err)
		}
		h.Close()
	}
}

func TestDialChangedKey(t *testing.T) {
	ch := newClientHome(t)
	ts := newTestServer(t, ch.key.PublicKey())
	old := newSigner(t)
	before := "# first line\n" + knownhosts.Line([]string{ts.addr}, old.PublicKey()) + "\n"
	ch.write(t, ".ssh/known_hosts", before)
	for _, acceptNew := range []bool{false, true} {
		opts := ch.options()
		opts.AcceptNew = acceptNew
		_, err := Dial(testContext(t), ts.target(), opts)
		if !errors.Is(err, ErrHostKeyChanged) {
			t.Fatalf("AcceptNew=%v: err = %v, want ErrHostKeyChanged", acceptNew, err)
		}
		khFile := filepath.Join(ch.dir, ".ssh", "known_hosts")
		for _, want := range []string{"HAS CHANGED", "[127.0.0.1]:" + portString(ts.port), khFile + ":2", ssh.FingerprintSHA256(ts.hostKey.PublicKey())} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if !strings.Contains(Hint(err), "ssh-keygen -R") {
			t.Errorf("hint %q", Hint(err))
		}
	}
	if got := ch.read(t, ".ssh/known_hosts"); got != before {
		t.Errorf("known_hosts changed: %q", got)
	}
	if len(ts.loggedIn()) != 0 {
		t.Error("authenticated to a host with a changed key")
	}
}

func TestKnownAlgorithms(t *testing.T) {
	// A host known by some key types is asked for those types only, so a
	// server whose preferred key is of another type does not look changed.
	dir := t.TempDir()
	file := filepath.Join(dir, "known_hosts")
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(k any) ssh.PublicKey {
		p, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	lines := knownhosts.Line([]string{"a"}, newSigner(t).PublicKey()) + "\n" +
		knownhosts.Line([]string{"a"}, pub(&ecKey.PublicKey)) + "\n" +
		knownhosts.Line([]string{"[b]:2222"}, pub(&rsaKey.PublicKey)) + "\n"
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	cb, err := loadKnownHosts([]string{file, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		want []string
	}{
		{"a:22", []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256}},
		{"b:2222", []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}},
		{"b:22", nil},
		{"c:22", nil},
	} {
		if got := knownAlgorithms(cb, tt.addr); !slices.Equal(got, tt.want) {
			t.Errorf("knownAlgorithms(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestDialAuthFailure(t *testing.T) {
	ch := newClientHome(t)
	ts := newTestServer(t, newSigner(t).PublicKey()) // someone else's key
	ch.write(t, ".ssh/known_hosts", ts.knownHostsLine()+"\n")
	_, err := Dial(testContext(t), ts.target(), ch.options())
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if !strings.Contains(err.Error(), "none of the 1 keys") || !strings.Contains(err.Error(), "tester") {
		t.Errorf("error %q", err)
	}
	if h := Hint(err); !strings.Contains(h, "ssh-add") || !strings.Contains(h, "authorized_keys") {
		t.Errorf("hint %q", h)
	}

	// No key at all.
	os.Remove(filepath.Join(ch.dir, ".ssh", "id_ed25519"))
	_, err = Dial(testContext(t), ts.target(), ch.options())
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "no SSH key to offer") || !strings.Contains(Hint(err), "ssh-keygen") {
		t.Errorf("err = %v (hint %q), want ErrAuth with no key", err, Hint(err))
	}
}

func TestDialSkipsEncryptedKey(t *testing.T) {
	ch := newClientHome(t)
	ts := newTestServer(t, ch.key.PublicKey())
	ch.write(t, ".ssh/known_hosts", ts.knownHostsLine()+"\n")
	// id_ed25519 becomes encrypted; the usable key moves to id_rsa's slot
	// (the name does not matter to the parser).
	good := ch.read(t, ".ssh/id_ed25519")
	ch.write(t, ".ssh/id_ed25519", encryptedKey)
	ch.write(t, ".ssh/id_rsa", good)
	h, err := Dial(testContext(t), ts.target(), ch.options())
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	notes := strings.Join(ch.allNotes(), "\n")
	if !strings.Contains(notes, "skipping "+filepath.Join(ch.dir, ".ssh", "id_ed25519")+": it is encrypted; load it with ssh-add") {
		t.Errorf("notes %q", notes)
	}
}

func TestDialWithAgent(t *testing.T) {
	ch := newClientHome(t)
	ts := newTestServer(t, ch.key.PublicKey())
	ch.write(t, ".ssh/known_hosts", ts.knownHostsLine()+"\n")
	os.Remove(filepath.Join(ch.dir, ".ssh", "id_ed25519")) // the agent has the only key

	keyring := sshagent.NewKeyring()
	if err := keyring.Add(sshagent.AddedKey{PrivateKey: privOf(t, ch)}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { sshagent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	opts := ch.options()
	opts.AgentSocket = sock
	h, err := Dial(testContext(t), ts.target(), opts)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}

func TestDialSSHConfig(t *testing.T) {
	ch := newClientHome(t)
	ts := newTestServer(t, ch.key.PublicKey())
	ch.write(t, ".ssh/known_hosts", ts.knownHostsLine()+"\n")
	// The key lives under another name, found only through IdentityFile.
	os.Rename(filepath.Join(ch.dir, ".ssh", "id_ed25519"), filepath.Join(ch.dir, ".ssh", "lab_key"))
	ch.write(t, ".ssh/config", `
Host lab
    HostName 127.0.0.1
    Port `+portString(ts.port)+`
    User labuser
    IdentityFile ~/.ssh/lab_key
`)
	h, err := Dial(testContext(t), Target{Host: "lab"}, ch.options())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Name != "lab" || h.HostName != "127.0.0.1" || h.Port != ts.port || h.User != "labuser" {
		t.Errorf("host = %+v", h)
	}
	if got := ts.loggedIn(); len(got) != 1 || got[0] != "labuser" {
		t.Errorf("logged in as %q", got)
	}
	// The target's own user and port win over the config.
	r, err := resolve(Target{User: "me", Host: "lab", Port: 2222}, &Options{Home: ch.dir})
	if err != nil {
		t.Fatal(err)
	}
	if r.user != "me" || r.port != 2222 || r.hostName != "127.0.0.1" {
		t.Errorf("resolved %+v", r)
	}
	if r.identities[0] != filepath.Join(ch.dir, ".ssh", "lab_key") || r.identities[1] != filepath.Join(ch.dir, ".ssh", "id_ed25519") {
		t.Errorf("identities %q", r.identities)
	}
	// Defaults for a host the config does not name.
	r, err = resolve(Target{Host: "other"}, &Options{Home: ch.dir, LocalUser: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if r.user != "alice" || r.port != 22 || r.hostName != "other" || r.knownHosts[0] != filepath.Join(ch.dir, ".ssh", "known_hosts") || r.knownHosts[1] != "/etc/ssh/ssh_known_hosts" {
		t.Errorf("resolved %+v", r)
	}
	ch.write(t, ".ssh/config", "Host lab\n  Port many\n")
	_, err = Dial(testContext(t), Target{Host: "lab"}, ch.options())
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), `Port "many"`) {
		t.Errorf("bad config: %v", err)
	}
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ch := newClientHome(t)
	_, err = Dial(testContext(t), Target{Host: "127.0.0.1", Port: port}, ch.options())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "127.0.0.1:"+portString(port)) {
		t.Errorf("err = %v, want ErrRefused naming the address", err)
	}
	if !strings.Contains(Hint(err), "sshd running") {
		t.Errorf("hint %q", Hint(err))
	}
}

func TestDialCancelled(t *testing.T) {
	// A server that accepts TCP but never speaks SSH: only ctx ends Dial.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // until the client gives up
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	ch := newClientHome(t)
	opts := ch.options()
	opts.Notef = func(string, ...any) {}
	done := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, Target{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}, opts)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestDialAll(t *testing.T) {
	ch := newClientHome(t)
	ts1 := newTestServer(t, ch.key.PublicKey())
	ts2 := newTestServer(t, ch.key.PublicKey())
	ch.write(t, ".ssh/known_hosts", ts1.knownHostsLine()+"\n") // ts2 unknown
	hosts, errs := DialAll(testContext(t), []Target{ts1.target(), ts2.target()}, ch.options())
	if errs[0] != nil || hosts[0] == nil {
		t.Errorf("host 0: %v", errs[0])
	} else {
		hosts[0].Close()
	}
	if !errors.Is(errs[1], ErrUnknownHost) || hosts[1] != nil {
		t.Errorf("host 1: %v, want ErrUnknownHost", errs[1])
	}
}

func TestTargetString(t *testing.T) {
	for _, tt := range []struct {
		t    Target
		want string
	}{
		{Target{Host: "h"}, "h"},
		{Target{User: "u", Host: "h", Port: 22}, "u@h:22"},
		{Target{Host: "::1"}, "[::1]"},
		{Target{Host: "::1", Port: 2222}, "[::1]:2222"},
	} {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.t, got, tt.want)
		}
	}
}

// encryptedKey is an ed25519 key encrypted with the passphrase "secret"
// (made once with ssh-keygen: encrypting one here takes seconds of bcrypt).
const encryptedKey = `-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABDydGSmEG
I/1glw8Ls6eoCkAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIPEPpha0ioJpJ6k0
iOGrVL0RK8JSGp8JNF5f3URHJV8OAAAAoA7A/dHWbdyOd5Ht0kGTT7cLqDIIQbL1jcWIXl
Fldt4w38gfHAYGBm8xG7MQdVWLo3G7HkMj4yuskCYWBg05QMfr2mhbCM4+53heH7ZC6bFN
BgtiuxjPOYWb/p43B/lh55F/kbYTIifKOedDzPfqrfSHvXwWB65FVZalLAKLH9+VtmbBpH
hyKAnUGPVJGGE9P4wffIRuTzxnxs3QVxwiU6Q=
-----END OPENSSH PRIVATE KEY-----
`
