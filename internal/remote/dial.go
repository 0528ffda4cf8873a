package remote

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
	sshagent "golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Defaults for Options.
const (
	// DefaultTimeout bounds connecting to a host (TCP and SSH handshake)
	// and waiting for its agent's Hello: short enough that mpirun reports a
	// dead host within 10 s.
	DefaultTimeout   = 8 * time.Second
	DefaultKeepAlive = 30 * time.Second
	// maxParallelDials bounds DialAll.
	maxParallelDials = 16
)

// DefaultIdentities are tried, in order, after the agent's keys and the
// IdentityFile entries of the ssh config, as OpenSSH does.
var DefaultIdentities = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// Target is a host to connect to, as the user wrote it.
type Target struct {
	User string // "" = User from the ssh config, else the local user
	Host string // host name, ~/.ssh/config alias or IP literal, no brackets
	Port int    // 0 = Port from the ssh config, else 22
}

// String returns "user@host:port" with the parts that were given.
func (t Target) String() string {
	s := t.Host
	if t.Port != 0 {
		s = net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	} else if strings.Contains(s, ":") {
		s = "[" + s + "]"
	}
	if t.User != "" {
		s = t.User + "@" + s
	}
	return s
}

// Options control Dial. The zero value reads the current user's ~/.ssh.
type Options struct {
	// Home holds .ssh/config, .ssh/known_hosts and the default keys;
	// "" = os.UserHomeDir().
	Home string
	// ConfigFile is the ssh client config; "" = Home/.ssh/config (missing
	// is fine), "none" = no config. HostName, User, Port, IdentityFile,
	// UserKnownHostsFile, HashKnownHosts, ConnectTimeout and
	// StrictHostKeyChecking=accept-new are honoured.
	ConfigFile string
	// KnownHosts is the user's known_hosts file, the one AcceptNew appends
	// to; "" = UserKnownHostsFile from the config, else Home/.ssh/known_hosts.
	KnownHosts string
	// GlobalKnownHosts is also read; "" = /etc/ssh/ssh_known_hosts, "none"
	// = no global file.
	GlobalKnownHosts string
	// AgentSocket is the ssh-agent socket; "" = $SSH_AUTH_SOCK, "none" =
	// do not use an agent.
	AgentSocket string
	// IdentityFiles replaces DefaultIdentities (in Home/.ssh) when not nil.
	IdentityFiles []string
	// AcceptNew adds the keys of hosts missing from known_hosts, like
	// OpenSSH's StrictHostKeyChecking=accept-new. A changed key is never
	// accepted.
	AcceptNew bool
	// HashKnownHosts writes added hosts hashed (also set by the config).
	HashKnownHosts bool
	// LocalUser is the user name when neither the target nor the config
	// gives one; "" = the current user.
	LocalUser string
	// Timeout bounds the TCP connect and the SSH handshake; 0 =
	// ConnectTimeout from the config, else DefaultTimeout.
	Timeout time.Duration
	// KeepAlive is the interval of keepalive requests; a host that misses
	// three in a row is disconnected. 0 = DefaultKeepAlive, < 0 = none.
	KeepAlive time.Duration
	// Notef receives notes for the user ("skipping encrypted key ..."); it
	// may be called from several goroutines at once. nil = discard.
	Notef func(format string, args ...any)
	// Progress is called during long copies by Host.Install, with the
	// host's name; it may be called from several goroutines. nil = none.
	Progress func(host string, done, total int64)
}

func (o *Options) notef(format string, args ...any) {
	if o.Notef != nil {
		o.Notef(format, args...)
	}
}

// resolved is a Target after the ssh config: what is really dialled.
type resolved struct {
	name       string // the target as given, for messages
	user       string
	hostName   string
	port       int
	identities []string // key files, in order
	knownHosts []string // user file first (appended to), then global
	hashKnown  bool
	acceptNew  bool
	timeout    time.Duration
	home       string
}

func (r *resolved) addr() string { return net.JoinHostPort(r.hostName, strconv.Itoa(r.port)) }

// display is user@host:port as dialled.
func (r *resolved) display() string { return r.user + "@" + r.addr() }

// resolve applies the ssh config and the defaults to t.
func resolve(t Target, o *Options) (*resolved, error) {
	if t.Host == "" {
		return nil, fmt.Errorf("%w: empty host name", ErrBadConfig)
	}
	r := &resolved{name: t.String(), home: o.Home, acceptNew: o.AcceptNew, hashKnown: o.HashKnownHosts}
	if r.home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("%w: find home directory: %v", ErrBadConfig, err)
		}
		r.home = h
	}
	localUser := o.LocalUser
	if localUser == "" {
		if u, err := user.Current(); err == nil {
			localUser = u.Username
		} else {
			localUser = os.Getenv("USER")
		}
	}

	cfg, cfgPath, err := loadConfig(o.ConfigFile, r.home)
	if err != nil {
		return nil, err
	}
	get := func(key string) string {
		if cfg == nil {
			return ""
		}
		v, err := cfg.Get(t.Host, key)
		if err != nil {
			o.notef("%s: %s for %s: %v", cfgPath, key, t.Host, err)
		}
		return v
	}
	getAll := func(key string) []string {
		if cfg == nil {
			return nil
		}
		v, _ := cfg.GetAll(t.Host, key)
		return v
	}

	r.hostName = t.Host
	if hn := get("HostName"); hn != "" {
		r.hostName = strings.NewReplacer("%h", t.Host, "%%", "%").Replace(hn)
	}
	r.user = t.User
	if r.user == "" {
		r.user = get("User")
	}
	if r.user == "" {
		r.user = localUser
	}
	r.port = t.Port
	if r.port == 0 {
		if p := get("Port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("%w: %s: Port %q for %s", ErrBadConfig, cfgPath, p, t.Host)
			}
			r.port = n
		}
	}
	if r.port == 0 {
		r.port = 22
	}
	if v := get("ProxyJump"); v != "" && !strings.EqualFold(v, "none") {
		o.notef("%s: ProxyJump for %s is not supported; connecting directly", cfgPath, t.Host)
	}
	if v := get("ProxyCommand"); v != "" && !strings.EqualFold(v, "none") {
		o.notef("%s: ProxyCommand for %s is not supported; connecting directly", cfgPath, t.Host)
	}

	expand := func(p string) string {
		p = strings.NewReplacer("%d", r.home, "%u", localUser, "%r", r.user, "%h", r.hostName, "%%", "%").Replace(p)
		if p == "~" {
			return r.home
		}
		if strings.HasPrefix(p, "~/") {
			return filepath.Join(r.home, p[2:])
		}
		return p
	}
	for _, f := range getAll("IdentityFile") {
		r.identities = append(r.identities, expand(f))
	}
	defaults := o.IdentityFiles
	if defaults == nil {
		for _, n := range DefaultIdentities {
			defaults = append(defaults, filepath.Join(r.home, ".ssh", n))
		}
	}
	r.identities = append(r.identities, defaults...)

	switch {
	case o.KnownHosts != "":
		r.knownHosts = []string{o.KnownHosts}
	case get("UserKnownHostsFile") != "":
		for _, f := range strings.Fields(get("UserKnownHostsFile")) {
			r.knownHosts = append(r.knownHosts, expand(f))
		}
	default:
		r.knownHosts = []string{filepath.Join(r.home, ".ssh", "known_hosts")}
	}
	switch o.GlobalKnownHosts {
	case "":
		r.knownHosts = append(r.knownHosts, "/etc/ssh/ssh_known_hosts")
	case "none":
	default:
		r.knownHosts = append(r.knownHosts, o.GlobalKnownHosts)
	}
	if strings.EqualFold(get("HashKnownHosts"), "yes") {
		r.hashKnown = true
	}
	if strings.EqualFold(get("StrictHostKeyChecking"), "accept-new") {
		r.acceptNew = true
	}

	r.timeout = o.Timeout
	if r.timeout == 0 {
		if v := get("ConnectTimeout"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				r.timeout = time.Duration(n) * time.Second
			}
		}
	}
	if r.timeout == 0 {
		r.timeout = DefaultTimeout
	}
	return r, nil
}

func loadConfig(path, home string) (*ssh_config.Config, string, error) {
	if path == "none" {
		return nil, "", nil
	}
	explicit := path != ""
	if !explicit {
		path = filepath.Join(home, ".ssh", "config")
	}
	f, err := os.Open(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, path, nil
		}
		return nil, path, fmt.Errorf("%w: %v", ErrBadConfig, err)
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, path, fmt.Errorf("%w: %s: %v", ErrBadConfig, path, err)
	}
	return cfg, path, nil
}

// Host is a connection to one remote host. Everything done on the host
// (copies, commands, agents) shares its one SSH connection.
type Host struct {
	Name     string // the target as given, for messages
	User     string // as logged in
	HostName string // as dialled
	Port     int

	opts    Options
	client  *ssh.Client
	timeout time.Duration // the dial timeout, also for the agent's Hello

	closeOnce sync.Once
	done      chan struct{}
	kaDone    chan struct{}

	mu        sync.Mutex
	arch      string               // `uname -m`, once known
	lost      error                // why keepAlive gave the connection up
	installed map[string]installed // by remote path: what Install put there
}

// Lost returns why the keepalive gave up the connection (the host stopped
// answering), or nil if it did not.
func (h *Host) Lost() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// Client returns the SSH connection.
func (h *Host) Client() *ssh.Client { return h.client }

// Addr returns host:port as dialled.
func (h *Host) Addr() string { return net.JoinHostPort(h.HostName, strconv.Itoa(h.Port)) }

// Close closes the connection; every session on it ends. Safe to call more
// than once.
func (h *Host) Close() error {
	var err error
	h.closeOnce.Do(func() {
		close(h.done)
		err = h.client.Close()
		<-h.kaDone
	})
	return err
}

// Dial connects to t: ssh config lookups, agent and key-file auth, and
// known_hosts checking (see Options). Errors are *DialError values with a
// Kind and a Hint, except a cancelled ctx.
func Dial(ctx context.Context, t Target, opts Options) (*Host, error) {
	r, err := resolve(t, &opts)
	if err != nil {
		return nil, &DialError{Target: t.String(), Kind: ErrBadConfig, Detail: err.Error(), Err: err}
	}
	addr := r.addr()

	hkcb, err := loadKnownHosts(r.knownHosts)
	if err != nil {
		return nil, &DialError{Target: r.display(), Kind: ErrBadConfig, Detail: err.Error(), Err: err,
			Hint: "fix or move away the known_hosts file named above"}
	}
	var hkErr error // set by the callback: a classified host key problem
	callback := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := hkcb(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 && r.acceptNew {
			file := r.knownHosts[0]
			if werr := appendKnownHost(file, hostname, key, r.hashKnown); werr != nil {
				hkErr = &DialError{Target: r.display(), Kind: ErrBadConfig, Err: werr,
					Detail: fmt.Sprintf("cannot add its host key to %s: %v", file, werr)}
				return hkErr
			}
			opts.notef("added the host key of %s (%s %s) to %s", knownhosts.Normalize(hostname), key.Type(), ssh.FingerprintSHA256(key), file)
			return nil
		}
		hkErr = hostKeyError(r, hostname, key, err)
		return hkErr
	}

	agentSigners, fileSigners, closeAgent := collectSigners(r, &opts)
	defer closeAgent()
	signers := append(append([]ssh.Signer(nil), agentSigners...), fileSigners...)
	// verified: the host key was accepted, so a handshake that fails
	// after it failed in authentication (or the connection dropped).
	var verified atomic.Bool
	cfg := &ssh.ClientConfig{
		User: r.user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := callback(hostname, remote, key)
			verified.Store(err == nil)
			return err
		},
		HostKeyAlgorithms: knownAlgorithms(hkcb, addr),
		Timeout:           r.timeout,
	}

	d := net.Dialer{Timeout: r.timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("remote: connect to %s: %w", r.display(), ctx.Err())
		}
		return nil, netError(r, err)
	}
	conn.SetDeadline(time.Now().Add(r.timeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !stop() || err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("remote: connect to %s: %w", r.display(), ctx.Err())
		}
		return nil, handshakeError(r, err, hkErr, verified.Load(), len(agentSigners), fileSigners)
	}
	conn.SetDeadline(time.Time{})

	h := &Host{
		Name:     r.name,
		User:     r.user,
		HostName: r.hostName,
		Port:     r.port,
		opts:     opts,
		timeout:  r.timeout,
		client:   ssh.NewClient(c, chans, reqs),
		done:     make(chan struct{}),
		kaDone:   make(chan struct{}),
	}
	ka := opts.KeepAlive
	if ka == 0 {
		ka = DefaultKeepAlive
	}
	if ka > 0 {
		go h.keepAlive(ka)
	} else {
		close(h.kaDone)
	}
	return h, nil
}

// keepAlive sends keepalive requests; after three intervals without an
// answer it closes the connection, so sessions on it fail instead of
// hanging on a dead host.
func (h *Host) keepAlive(every time.Duration) {
	defer close(h.kaDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		res := make(chan error, 1)
		go func() {
			_, _, err := h.client.SendRequest("keepalive@openssh.com", true, nil)
			res <- err
		}()
		wait := time.NewTimer(3 * every)
		select {
		case err := <-res:
			wait.Stop()
			if err != nil {
				return // the connection is gone; its users see that themselves
			}
		case <-wait.C:
			h.mu.Lock()
			h.lost = fmt.Errorf("%w: no answer from %s for %v", ErrHostLost, h.Name, 3*every)
			h.mu.Unlock()
			h.opts.notef("%s: no answer for %v, closing the connection", h.Name, 3*every)
			h.client.Close()
			return
		case <-h.done:
			wait.Stop()
			return
		}
	}
}

// DialAll connects to every target in parallel. hosts[i] and errs[i]
// belong to targets[i]; exactly one of them is nil.
// At most maxParallelDials are in progress at once: mpirun fans out to
// every host itself (no tree of agents), and this bounds its CPU (key
// exchanges) and the burst of connections it opens.
func DialAll(ctx context.Context, targets []Target, opts Options) (hosts []*Host, errs []error) {
	return dialAll(ctx, targets, opts, Dial)
}

// dialAll is DialAll with the dial function given (the scale simulation
// gives a fake one).
func dialAll(ctx context.Context, targets []Target, opts Options, dial func(context.Context, Target, Options) (*Host, error)) (hosts []*Host, errs []error) {
	hosts = make([]*Host, len(targets))
	errs = make([]error, len(targets))
	sem := make(chan struct{}, maxParallelDials)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = fmt.Errorf("remote: connect to %s: %w", t, ctx.Err())
				return
			}
			defer func() { <-sem }()
			hosts[i], errs[i] = dial(ctx, t, opts)
		}()
	}
	wg.Wait()
	return hosts, errs
}

// collectSigners returns the agent's keys and the key files' keys (without
// those the agent already has). Encrypted key files are skipped with a note.
func collectSigners(r *resolved, o *Options) (agentSigners, fileSigners []ssh.Signer, closeAgent func()) {
	closeAgent = func() {}
	sock := o.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock != "" && sock != "none" {
		if conn, err := net.DialTimeout("unix", sock, r.timeout); err != nil {
			o.notef("ssh agent at %s: %v", sock, err)
		} else {
			closeAgent = func() { conn.Close() }
			if s, err := sshagent.NewClient(conn).Signers(); err != nil {
				o.notef("ssh agent at %s: %v", sock, err)
			} else {
				agentSigners = s
			}
		}
	}
	have := map[string]bool{}
	for _, s := range agentSigners {
		have[string(s.PublicKey().Marshal())] = true
	}
	for _, path := range r.identities {
		b, err := os.ReadFile(path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				o.notef("key %s: %v", path, err)
			}
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			if pm.PublicKey == nil || !have[string(pm.PublicKey.Marshal())] {
				o.notef("skipping %s: it is encrypted; load it with ssh-add %s", path, path)
			}
			continue
		case err != nil:
			o.notef("skipping %s: %v", path, err)
			continue
		}
		if k := string(s.PublicKey().Marshal()); !have[k] {
			have[k] = true
			fileSigners = append(fileSigners, s)
		}
	}
	return agentSigners, fileSigners, closeAgent
}

// loadKnownHosts reads the known_hosts files that exist.
func loadKnownHosts(files []string) (ssh.HostKeyCallback, error) {
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	return cb, nil
}

var (
	probeOnce sync.Once
	probeKey  ssh.PublicKey
)

// knownAlgorithms lists the host key algorithms of the keys known for addr,
// so the server is asked for a key type we can check (a host known by its
// RSA key that prefers Ed25519 would otherwise look changed). nil if none.
func knownAlgorithms(cb ssh.HostKeyCallback, addr string) []string {
	probeOnce.Do(func() {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(fmt.Sprintf("remote: generate probe key: %v", err))
		}
		probeKey, _ = ssh.NewPublicKey(pub)
	})
	// A fresh random key is never known, so the error lists what is.
	err := cb(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

var knownHostsMu sync.Mutex // serialises appends within this process

// appendKnownHost adds key for hostname (host:port) to file, as OpenSSH's
// accept-new does: "host" for port 22, "[host]:port" otherwise, hashed if
// asked.
func appendKnownHost(file, hostname string, key ssh.PublicKey, hash bool) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	name := knownhosts.Normalize(hostname)
	if hash {
		name = knownhosts.HashHostname(name)
	}
	line := knownhosts.Line([]string{name}, key) + "\n"
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return err
	}
	return f.Close()
}

// hostKeyError classifies a failed host key check.
func hostKeyError(r *resolved, hostname string, key ssh.PublicKey, err error) error {
	name := knownhosts.Normalize(hostname)
	offered := key.Type() + " " + ssh.FingerprintSHA256(key)
	userFile := r.knownHosts[0]
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return &DialError{Target: r.display(), Kind: ErrUnknownHost, Err: err,
			Detail: fmt.Sprintf("host %s is not in %s (it offered %s)", name, userFile, offered),
			Hint: fmt.Sprintf("check that fingerprint, then add the host with: ssh-keyscan -p %d %s >> %s (or run mpirun with -ssh-accept-new)",
				r.port, r.hostName, userFile),
		}
	case errors.As(err, &ke):
		var where []string
		for _, k := range ke.Want {
			where = append(where, fmt.Sprintf("%s:%d", k.Filename, k.Line))
		}
		return &DialError{Target: r.display(), Kind: ErrHostKeyChanged, Err: err,
			Detail: fmt.Sprintf("WARNING: THE HOST KEY OF %s HAS CHANGED: it offered %s, which does not match the key at %s. Someone may be intercepting the connection (man-in-the-middle), or the host was reinstalled. Not connecting.",
				name, offered, strings.Join(where, ", ")),
			Hint: fmt.Sprintf("if you know the host was reinstalled, remove the old key with: ssh-keygen -R '%s' -f %s, then add the new one", name, ke.Want[0].Filename),
		}
	case errors.As(err, &re):
		return &DialError{Target: r.display(), Kind: ErrHostKeyRevoked, Err: err,
			Detail: fmt.Sprintf("host %s offered %s, which is revoked at %s:%d", name, offered, re.Revoked.Filename, re.Revoked.Line)}
	}
	return &DialError{Target: r.display(), Kind: ErrSSH, Err: err, Detail: "check the host key: " + err.Error()}
}

// netError classifies a failed TCP connect.
func netError(r *resolved, err error) error {
	de := &DialError{Target: r.display(), Kind: ErrUnreachable, Err: err}
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		de.Kind = ErrRefused
		de.Detail = fmt.Sprintf("connection to %s refused", r.addr())
		de.Hint = fmt.Sprintf("is sshd running on %s and listening on port %d?", r.hostName, r.port)
	case errors.As(err, &dns):
		de.Detail = fmt.Sprintf("cannot resolve host name %q: %v", r.hostName, dns.Err)
		de.Hint = "check the host name in the machine file (or its HostName in ~/.ssh/config)"
	case errors.As(err, &ne) && ne.Timeout():
		de.Detail = fmt.Sprintf("no answer from %s within %v", r.addr(), r.timeout)
		de.Hint = fmt.Sprintf("is %s up and reachable from here (firewall, address)?", r.hostName)
	default:
		de.Detail = fmt.Sprintf("cannot reach %s: %v", r.addr(), err)
		de.Hint = fmt.Sprintf("is %s up and reachable from here?", r.hostName)
	}
	return de
}

// handshakeError classifies a failed SSH handshake. verified: the host key
// was accepted; what fails after that and is not the connection is the
// authentication (x/crypto/ssh has no error type for it).
func handshakeError(r *resolved, err, hkErr error, verified bool, nAgent int, files []ssh.Signer) error {
	if hkErr != nil {
		return hkErr
	}
	var ne net.Error
	switch {
	case verified && !errors.Is(err, io.EOF) && !errors.As(err, &ne):
		de := &DialError{Target: r.display(), Kind: ErrAuth, Err: err}
		n := nAgent + len(files)
		if n == 0 {
			de.Detail = "no SSH key to offer: no ssh-agent keys and none of " + strings.Join(r.identities, ", ")
			de.Hint = fmt.Sprintf("create a key with ssh-keygen -t ed25519, then install it with ssh-copy-id -p %d %s@%s", r.port, r.user, r.hostName)
		} else {
			de.Detail = fmt.Sprintf("the host accepted none of the %d keys offered (%d from ssh-agent, %d from key files) for user %s", n, nAgent, len(files), r.user)
			de.Hint = fmt.Sprintf("load your key with ssh-add, or add your public key to ~%s/.ssh/authorized_keys on %s (ssh-copy-id -p %d %s@%s)", r.user, r.hostName, r.port, r.user, r.hostName)
		}
		return de
	case errors.As(err, &ne) && ne.Timeout():
		return &DialError{Target: r.display(), Kind: ErrUnreachable, Err: err,
			Detail: fmt.Sprintf("no SSH handshake from %s within %v", r.addr(), r.timeout),
			Hint:   fmt.Sprintf("is the service on port %d of %s an SSH server?", r.port, r.hostName)}
	}
	return &DialError{Target: r.display(), Kind: ErrSSH, Err: err, Detail: err.Error()}
}
