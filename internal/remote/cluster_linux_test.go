package remote

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dsmexec/dsmexec/internal/proc"
	"golang.org/x/sys/unix"
)

// The namespace cluster of scripts/cluster-up.sh: real OpenSSH sshd on
// 10.77.0.11... These tests run only inside its launcher namespace:
//
//	sudo scripts/cluster-up.sh 2
//	go test -c -race -o /tmp/remote.test ./internal/remote
//	sudo ip netns exec dsm-l /tmp/remote.test -test.run Cluster -test.v

const clusterDir = "/run/dsm-cluster"

type clusterHost struct {
	target Target
	netns  string
}

func clusterHosts(t *testing.T) ([]clusterHost, Options) {
	t.Helper()
	f, err := os.Open(filepath.Join(clusterDir, "hosts"))
	if err != nil {
		t.Skipf("needs the namespace cluster (sudo scripts/cluster-up.sh 2, then run the test binary under ip netns exec dsm-l): %v", err)
	}
	defer f.Close()
	if !hasAddr("10.77.0.2") {
		t.Skip("needs to run in the cluster's launcher namespace: ip netns exec dsm-l <test binary>")
	}
	var hosts []clusterHost
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) != 5 || strings.HasPrefix(w[0], "#") {
			continue
		}
		port, err := strconv.Atoi(w[4])
		if err != nil {
			t.Fatalf("hosts file: %q", sc.Text())
		}
		hosts = append(hosts, clusterHost{Target{User: w[3], Host: w[2], Port: port}, w[1]})
	}
	if len(hosts) == 0 {
		t.Fatal("hosts file lists no host")
	}
	opts := Options{Home: filepath.Join(clusterDir, "home"), AgentSocket: "none", GlobalKnownHosts: "none",
		Notef: func(format string, args ...any) { t.Logf(format, args...) }}
	return hosts, opts
}

func hasAddr(ip string) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.String() == ip {
			return true
		}
	}
	return false
}

func TestClusterAgents(t *testing.T) {
	hosts, opts := clusterHosts(t)
	targets := make([]Target, len(hosts))
	for i, h := range hosts {
		targets[i] = h.target
	}
	conns, errs := DialAll(testContext(t), targets, opts)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v (hint: %s)", targets[i], err, Hint(err))
		}
		defer conns[i].Close()
	}
	lines, exits := make(chan proc.Line), make(chan proc.Exit)
	var agents []*Agent
	for i, h := range conns {
		self, _ := os.Executable()
		if err := h.CheckRunnable(testContext(t), self); err != nil {
			t.Fatal(err)
		}
		path, _, err := h.Install(testContext(t), self, "remote.test")
		if err != nil {
			t.Fatal(err)
		}
		a, err := h.StartAgent(testContext(t), []string{"env", testAgentEnv + "=1", path, "-test.run=^$"}, lines, exits)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		agents = append(agents, a)
		if err := a.Start(shRank(i, `echo "$(id -un) $DSMEXEC_RANK"; exit $DSMEXEC_RANK`, "DSMEXEC_RANK="+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	res := collect(t, lines, exits, len(hosts), nil)
	for i, h := range hosts {
		want := fmt.Sprintf("stdout: %s %d", h.target.User, i)
		if got := res.lines[i]; len(got) != 1 || got[0] != want {
			t.Errorf("rank %d lines %q, want %q", i, got, want)
		}
		if e := res.exits[i]; e.Code != i || e.Err != nil {
			t.Errorf("rank %d exit %+v", i, e)
		}
	}
	for _, a := range agents {
		a.CloseInput()
		if err := a.Wait(); err != nil {
			t.Errorf("agent: %v", err)
		}
	}
}

// TestClusterConnectionDrop: with real sshd, a dropped connection kills the
// remote rank.
func TestClusterConnectionDrop(t *testing.T) {
	hosts, opts := clusterHosts(t)
	h, err := Dial(testContext(t), hosts[0].target, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a, lines, exits := startTestAgent(t, h)
	if err := a.Start(shRank(0, `echo $$; exec sleep 60`)); err != nil {
		t.Fatal(err)
	}
	l := <-lines
	pid, err := strconv.Atoi(string(l.Text))
	if err != nil {
		t.Fatalf("line %q", l.Text)
	}
	// The rank lives in the host's namespace but shares our pid namespace.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(fd)
	h.Client().Close()
	if e := <-exits; !errors.Is(e.Err, ErrAgentGone) {
		t.Errorf("exit %+v", e)
	}
	n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 30_000)
	if err != nil || n != 1 {
		t.Fatalf("remote rank %d still running after the connection dropped", pid)
	}
}

func TestClusterHostKeys(t *testing.T) {
	hosts, opts := clusterHosts(t)
	dir := t.TempDir()
	opts.KnownHosts = filepath.Join(dir, "known_hosts") // empty: unknown host
	_, err := Dial(testContext(t), hosts[0].target, opts)
	if !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("err %v, want ErrUnknownHost", err)
	}
	opts.AcceptNew = true
	h, err := Dial(testContext(t), hosts[0].target, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	b, _ := os.ReadFile(opts.KnownHosts)
	want, _ := os.ReadFile(filepath.Join(clusterDir, "known_hosts"))
	if line := strings.TrimSpace(string(b)); !strings.Contains(string(want), line+"\n") {
		t.Errorf("accept-new wrote %q, not a line of cluster-up's known_hosts", line)
	}
	// Wrong user: the host refuses the key.
	bad := hosts[0].target
	bad.User = "root"
	opts.AcceptNew = false
	if _, err := Dial(testContext(t), bad, opts); !errors.Is(err, ErrAuth) {
		t.Errorf("root login: %v, want ErrAuth", err)
	}
}
