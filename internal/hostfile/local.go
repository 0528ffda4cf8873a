package hostfile

import (
	"net"
	"os"
	"os/user"
	"strings"
	"sync"
)

// Machine describes this machine for IsLocal: its names and addresses and
// the current user.
type Machine struct {
	Hostname string   // os.Hostname()
	User     string   // the current user's login name
	Addrs    []net.IP // interface addresses
}

var (
	thisOnce    sync.Once
	thisMachine Machine
)

// ThisMachine returns the description of this machine, read once.
func ThisMachine() Machine {
	thisOnce.Do(func() {
		thisMachine.Hostname, _ = os.Hostname()
		if u, err := user.Current(); err == nil {
			thisMachine.User = u.Username
		} else {
			thisMachine.User = os.Getenv("USER")
		}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					thisMachine.Addrs = append(thisMachine.Addrs, n.IP)
				}
			}
		}
	})
	return thisMachine
}

// IsLocal reports whether e names this machine for the current user, so its
// ranks can be forked instead of started over SSH.
func IsLocal(e Entry) bool { return ThisMachine().IsLocal(e) }

// IsLocal reports whether e names machine m with no other user and no
// explicit ssh port (an explicit port means the user wants that sshd, for
// instance a container published on localhost:2222).
func (m Machine) IsLocal(e Entry) bool {
	if e.Port != 0 || (e.User != "" && e.User != m.User) {
		return false
	}
	return m.names(e.Host)
}

func (m Machine) names(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	switch h {
	case "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback":
		return true
	}
	addr, _, _ := strings.Cut(h, "%")
	if ip := net.ParseIP(addr); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		for _, a := range m.Addrs {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	me := strings.ToLower(m.Hostname)
	if me == "" {
		return false
	}
	if h == me {
		return true
	}
	// "node1" and "node1.example.org" name the same machine, whichever of
	// the two forms the host name and the file use.
	short, _, _ := strings.Cut(me, ".")
	hshort, _, _ := strings.Cut(h, ".")
	return h == short || (me == short && hshort == me)
}
