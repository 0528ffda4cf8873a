package dsm

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/pagemem"
	"github.com/dsmexec/dsmexec/internal/uffd"
	"github.com/dsmexec/dsmexec/internal/wire"
	"golang.org/x/sys/unix"
)

// joinHostPager hands this rank's region to the job's page server on this
// host, starting it if no rank of the job did (pagerhost_linux.go).
func joinHostPager(m *Memory, region *pagemem.Region, u *uffd.FD) (*uffdImpl, error) {
	addr := &net.UnixAddr{Name: hostSocketName(m.cfg.Token), Net: "unix"}
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if attempt > 0 {
			time.Sleep(min(time.Duration(attempt)*2*time.Millisecond, 100*time.Millisecond))
		}
		c, err := net.DialUnix("unix", nil, addr)
		if err != nil {
			// Nobody listens: become the one that starts the server (or
			// find that another rank just did).
			last = err
			if _, err := startHostPager(m, addr); err != nil {
				return nil, err
			}
			continue
		}
		p, err := helloHostPager(m, c, region, u, deadline)
		if err == nil {
			return p, nil
		}
		c.Close()
		last = err
		var refused *refusedError
		if errors.Is(err, auth.ErrDenied) || errors.As(err, &refused) {
			return nil, fmt.Errorf("dsm: rank %d: this host's page server: %w", m.cfg.Rank, err)
		}
		// A server that exits (its ranks all gone) while we connected:
		// try again, with a new one.
	}
	return nil, fmt.Errorf("dsm: rank %d: no page server on this host within 30 s: %v", m.cfg.Rank, last)
}

// refusedError is the host page server's refusal of a rank's CONFIG.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// startHostPager binds the job's socket and, if it was free, starts the
// host page server with it, returning its pid. It returns 0 and nil when
// another process holds the name (the caller dials again).
func startHostPager(m *Memory, addr *net.UnixAddr) (int, error) {
	ln, err := net.ListenUnix("unix", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return 0, nil
		}
		return 0, fmt.Errorf("dsm: rank %d: listen for this host's ranks: %w", m.cfg.Rank, err)
	}
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	lf, err := ln.File()
	if err != nil {
		return 0, fmt.Errorf("dsm: rank %d: %w", m.cfg.Rank, err)
	}
	defer lf.Close()
	tcp, err := listen(m.cfg.IP)
	if err != nil {
		return 0, fmt.Errorf("dsm: rank %d: %w", m.cfg.Rank, err)
	}
	defer tcp.Close()
	tf, err := tcp.(*net.TCPListener).File()
	if err != nil {
		return 0, fmt.Errorf("dsm: rank %d: %w", m.cfg.Rank, err)
	}
	defer tf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("dsm: rank %d: %w", m.cfg.Rank, err)
	}
	defer pr.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{pagerName, "host"}
	cmd.Env = append(os.Environ(), pagerEnv+"=host")
	// No output: it must not hold this rank's stdout and stderr, which
	// mpirun reads to their end, beyond this rank's life. It passes what
	// it has to say to a rank (LOG).
	cmd.ExtraFiles = []*os.File{lf, pr, tf}
	// Its own session, and no parent-death signal: it serves every rank of
	// the job on this host, and this one may finish first. It exits when
	// all of them have gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return 0, fmt.Errorf("dsm: rank %d: start this host's page server: %w", m.cfg.Rank, err)
	}
	go cmd.Wait() // reaped here if it ends before this rank
	err = json.NewEncoder(pw).Encode(hostConfig{Token: hex.EncodeToString(m.cfg.Token), IP: m.cfg.IP, Starter: os.Getpid()})
	pw.Close()
	if err != nil {
		return 0, fmt.Errorf("dsm: rank %d: configure this host's page server: %w", m.cfg.Rank, err)
	}
	return cmd.Process.Pid, nil
}

// helloHostPager registers this rank with the host page server at c:
// handshake, peer check, LISTEN, CONFIG with the memfd and userfaultfd,
// REPLY.
func helloHostPager(m *Memory, c *net.UnixConn, region *pagemem.Region, u *uffd.FD, deadline time.Time) (*uffdImpl, error) {
	rank := m.cfg.Rank
	cred, err := peerCred(c)
	if err != nil {
		return nil, err
	}
	if int(cred.Uid) != os.Getuid() {
		return nil, &refusedError{fmt.Sprintf("the process at the job's socket runs as uid %d, not %d", cred.Uid, os.Getuid())}
	}
	r := bufio.NewReaderSize(c, 4096)
	if err := auth.Dial(c, r, m.cfg.Token, rank, hostPagerID, deadline); err != nil {
		return nil, err
	}
	c.SetDeadline(deadline)
	f, err := wire.ReadFrame(r, 4096)
	if err != nil {
		return nil, err
	}
	if f.Channel != wire.ChanControl || f.Type != ctlListen {
		return nil, fmt.Errorf("frame type %d instead of LISTEN", f.Type)
	}
	// The server's endpoint and pid (SO_PEERCRED names the process that
	// bound the socket: the rank that started the server).
	ep, spid, _ := strings.Cut(string(f.Body), " ")
	pid, err := strconv.Atoi(spid)
	if err != nil {
		return nil, fmt.Errorf("bad LISTEN %q", f.Body)
	}
	cfg, _ := json.Marshal(pagerConfig{Rank: rank, Size: m.cfg.Size, Base: region.Base(), Length: region.Size(), PageSize: m.pageSize})
	hd := wire.MakeHeader(wire.ChanControl, ctlConfig, 0, rank, len(cfg))
	msg := append(hd[:], cfg...)
	n, _, err := c.WriteMsgUnix(msg, unix.UnixRights(int(region.File().Fd()), int(u.File().Fd())), nil)
	if err == nil && n < len(msg) {
		_, err = c.Write(msg[n:])
	}
	if err != nil {
		return nil, err
	}
	f, err = wire.ReadFrame(r, 4096)
	if err != nil {
		return nil, err
	}
	if f.Type != ctlReply || len(f.Body) < 5 {
		return nil, fmt.Errorf("frame type %d instead of the reply to CONFIG", f.Type)
	}
	if f.Body[4] != 0 {
		return nil, &refusedError{string(f.Body[5:])}
	}
	c.SetDeadline(time.Time{})
	left, _ := r.Peek(r.Buffered())
	p, err := newUffdImpl(m, region, c, append([]byte(nil), left...))
	if err != nil {
		return nil, err
	}
	p.ep, p.pid = ep, pid
	return p, nil
}
