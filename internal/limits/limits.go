// Package limits says how many open files and connections a dsmexec job
// needs per process, and checks that against the host's limits
// (RLIMIT_NOFILE, the ephemeral port range) before anything starts, so
// that a job too big for the host is refused with the number to change
// instead of timing out half-connected.
//
// The formulas live here and nowhere else. They depend on how ranks
// connect, which issue 13 changes in steps, each a switch here (a [Job]
// field):
//
//   - Mesh, the application mesh: [AllToAll] (every rank connects to
//     every other rank during rank.Init: a rank's descriptors grow with
//     the job's size N) or [OnDemand] (a rank connects to a peer on first
//     use: its descriptors grow with the peers it talks to, [Job.Peers]:
//     the collectives' O(log N) partners, [CollectivePeers], plus
//     [ProgramPeers] for the program's own point-to-point partners, such
//     as its neighbours on the same host).
//   - MemMesh, the memory mesh between page servers: AllToAll or
//     OnDemand (a page server connects to the page servers it faults on;
//     estimated like the application mesh: a program whose ranks fault on
//     every other rank's pages needs up to N-1 and is told at the fault
//     when it runs out).
//   - Pagers: [PagerPerRank] (every rank has its own page server) or
//     [PagerPerHost] (one page server per host: at most H-1 memory
//     connections to the other hosts' and, per local rank, its control
//     socket, memfd and userfaultfd).
//
// mpirun builds its Job with [CurrentMesh], [CurrentMemMesh] and
// [CurrentPagers], what rank and dsm do today; the merge that changes one
// changes its constant (mpirun's TestFileFormulas measures a real job
// against the formulas).
package limits

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Fixed descriptors per process, measured after rank.Init and one barrier
// (Linux, Go 1.26, /proc/PID/fd; docs/PERFORMANCE.md "Scale"): the Go
// runtime's epoll and wake-up pipe, stdin/out/err, the connection to the
// master, the mesh listener, and for the memory its listener, memfd,
// userfaultfd and the page server's control socket.
// The rank figures include one descriptor that rank's message engine
// (rank/engine.go) added: N+14 before it, N+15 with it.
const (
	rankFixed    = 16 // + Peers() application mesh connections; userfaultfd backend
	rankNoDSM    = 13 // + Peers(): -dsm-size 0 (no memory mesh, no page server)
	sigsegvFixed = 14 // + Peers() + memory peers: the rank serves its own pages on the memory mesh
	pagerFixed   = 13 // + memory peers; a page server per rank (userfaultfd backend)
	// A page server per host: its listeners (Unix, TCP), epoll and eventfd
	// and the runtime's; per local rank pagerPerLocalRank (control socket,
	// memfd, userfaultfd), per other host one memory-mesh connection.
	pagerHostFixed    = 15
	pagerPerLocalRank = 3
	mpirunFixed       = 10
	// mpirun per rank it forks: stdout and stderr pipes and the rank's
	// master connection. Per remote host: the SSH connection (the agent
	// relays its ranks' rendezvous over it). Per remote rank that talks to
	// mpirun's master directly: one connection.
	mpirunPerLocalRank  = 3
	mpirunPerRemoteHost = 1
)

// Slack is added to every figure for what the program opens itself
// (files, its own sockets).
const Slack = 16

// Connect is how the ranks of a job connect to each other.
type Connect int

const (
	// AllToAll: every rank connects to every other rank, on each mesh,
	// during rank.Init.
	AllToAll Connect = iota
	// OnDemand: a rank connects to a peer on first use (issue 13 item 1).
	OnDemand
)

// PagerModel is how page servers are placed.
type PagerModel int

const (
	// PagerPerRank: every rank (userfaultfd backend) has its own page
	// server process, connected to every other rank's.
	PagerPerRank PagerModel = iota
	// PagerPerHost: one page server per host serves its ranks over Unix
	// sockets and connects to the other hosts' (issue 13 item 2).
	PagerPerHost
)

// What the code does today: the merges of issue 13 items 1 and 2 change
// these (and only these) for the formulas to follow.
const (
	CurrentMesh    = OnDemand
	CurrentMemMesh = OnDemand
	CurrentPagers  = PagerPerHost
)

// ProgramPeers is what the formulas allow, with connections on demand,
// for the peers a program talks to beyond the collectives' (its
// point-to-point partners: ring and grid neighbours, a master and its
// workers). A program that talks to more peers than this and the
// collectives' needs more descriptors than the check assumed.
const ProgramPeers = 16

// Job is what the formulas need to know about a job.
type Job struct {
	Size int // N: ranks in the job
	// PerHost: the most ranks on one host (0: Size, all on one host).
	PerHost int
	// Hosts: the hosts running ranks (0: 1).
	Hosts int
	// DSM: the job has a shared region (-dsm-size > 0).
	DSM bool
	// SIGSEGV: the ranks use the sigsegv backend (DSMEXEC_FAULT=sigsegv),
	// which serves pages from the rank itself.
	SIGSEGV bool
	// Mesh, MemMesh and Pagers: how the job connects (the zero values
	// are AllToAll and PagerPerRank; mpirun sets CurrentMesh,
	// CurrentMemMesh and CurrentPagers).
	Mesh    Connect
	MemMesh Connect
	Pagers  PagerModel
}

// CollectivePeers is an upper bound on the peers one rank of n exchanges
// messages with in the collectives (internal/collective) called with
// root 0: the dissemination barrier's 2⌈log₂n⌉ (rank ± 2^k), recursive
// doubling's ⌊log₂n⌋ partners (rank XOR 2^k) and its fold partner, the
// binomial trees' parent and children (among rank ± 2^k), and the hellos
// to rank ± 1: 3⌈log₂n⌉ + 1, at most n-1. The scale simulation
// (internal/remote, TestScaleSimulation) checks it against the peers the
// real algorithms touch.
func CollectivePeers(n int) int {
	if n <= 1 {
		return 0
	}
	return min(n-1, 3*ceilLog2(n)+1)
}

func ceilLog2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

// Peers is the application-mesh connections of one rank.
func (j Job) Peers() int {
	n := max(j.Size-1, 0)
	if j.Mesh == AllToAll {
		return n
	}
	return min(n, CollectivePeers(j.Size)+ProgramPeers)
}

func (j Job) perHost() int {
	if j.PerHost <= 0 {
		return j.Size
	}
	return j.PerHost
}

func (j Job) hosts() int { return max(j.Hosts, 1) }

// memPeers is the memory-mesh connections of one rank's page server (or
// of the rank itself, sigsegv backend).
func (j Job) memPeers() int {
	n := max(j.Size-1, 0)
	if j.MemMesh == AllToAll {
		return n
	}
	return min(n, CollectivePeers(j.Size)+ProgramPeers) // pages come from the ranks one talks to, roughly
}

// RankFDs is the descriptors one rank process holds, its page server's
// included when the rank serves its own pages (sigsegv backend).
func (j Job) RankFDs() int {
	p := j.Peers()
	switch {
	case !j.DSM:
		return rankNoDSM + p + Slack
	case j.SIGSEGV:
		return sigsegvFixed + p + j.memPeers() + Slack
	}
	return rankFixed + p + Slack
}

// PagerFDs is the descriptors of one page server process (0 when there is
// none): one per rank, or one per host.
func (j Job) PagerFDs() int {
	if !j.DSM || j.SIGSEGV {
		return 0
	}
	if j.Pagers == PagerPerHost {
		return pagerHostFixed + j.hosts() - 1 + pagerPerLocalRank*j.perHost() + Slack
	}
	return pagerFixed + j.memPeers() + Slack
}

// ProcessFDs is the most descriptors any rank-side process of the job
// holds: what RLIMIT_NOFILE must allow on every host running ranks.
func (j Job) ProcessFDs() int { return max(j.RankFDs(), j.PagerFDs()) }

// MpirunFDs is the descriptors mpirun holds with localRanks forked here,
// remoteHosts hosts reached over SSH whose agents relay the rendezvous, and
// directRemote remote ranks that talk to mpirun's master themselves.
func MpirunFDs(localRanks, remoteHosts, directRemote int) int {
	return mpirunFixed + mpirunPerLocalRank*localRanks + mpirunPerRemoteHost*remoteHosts + directRemote + Slack
}

// Dials is the TCP connections the ranks of one host open: with AllToAll
// all at once during rank.Init (rank i dials every rank above it, on each
// mesh); OnDemand at most half of each rank's peers (a pair has one
// connection), as they are first used. ranks lists the host's ranks.
func (j Job) Dials(ranks []int) int {
	all := 0 // rank i dials every rank above it
	for _, r := range ranks {
		all += max(j.Size-1-r, 0)
	}
	dials := func(c Connect) int {
		if c == OnDemand {
			return len(ranks) * ((j.Peers() + 1) / 2)
		}
		return all
	}
	d := dials(j.Mesh)
	if j.DSM && (j.SIGSEGV || j.Pagers == PagerPerRank) {
		d += dials(j.MemMesh) // the memory mesh between ranks (page servers per host: H-1, not counted)
	}
	return d
}

// NoFile returns the soft and hard RLIMIT_NOFILE of this process.
func NoFile() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("limits: getrlimit(RLIMIT_NOFILE): %w", err)
	}
	return rl.Cur, rl.Max, nil
}

// Raise sets the soft RLIMIT_NOFILE to the hard one and returns the hard
// limit. The Go runtime raises its own soft limit at startup, but gives
// the processes it starts the soft limit it found (so that programs not
// ready for many descriptors, select(2) users, keep theirs); calling
// setrlimit explicitly, as Raise does, makes the children inherit the
// raised limit, which ranks and their page servers need.
func Raise() (hard uint64, err error) {
	_, hard, err = NoFile()
	if err != nil {
		return 0, err
	}
	rl := syscall.Rlimit{Cur: hard, Max: hard}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return hard, fmt.Errorf("limits: raise the soft RLIMIT_NOFILE to %d: %w", hard, err)
	}
	return hard, nil
}

// Hint says how to raise the hard limit of open files.
const Hint = "raise it with ulimit -Hn (as root) or /etc/security/limits.conf"

// TooFew is the refusal when a job needs more descriptors per process than
// the hard limit allows.
type TooFew struct {
	Size int // ranks in the job
	// Need: descriptors of the largest rank-side process, if over Hard
	// (else 0); Mpirun: mpirun's own, if over Hard (else 0).
	Need, Mpirun int
	Host         string // "" for this machine, else the host named in the error
	Hard         uint64 // the hard limit
}

func (e *TooFew) Error() string {
	where := "here"
	if e.Host != "" {
		where = "on " + e.Host
	}
	if e.Need == 0 {
		return fmt.Sprintf("a job of %d ranks needs ~%d open files in mpirun, the hard limit %s is %d", e.Size, e.Mpirun, where, e.Hard)
	}
	also := ""
	if e.Mpirun > e.Need {
		also = fmt.Sprintf(" (mpirun itself ~%d)", e.Mpirun)
	}
	return fmt.Sprintf("a job of %d ranks needs ~%d open files per process%s, the hard limit %s is %d", e.Size, e.Need, also, where, e.Hard)
}

// Check compares the descriptors a host's rank processes need (need) and
// mpirun's (mpirun; 0 on hosts without mpirun) with the hard limit.
func Check(size, need, mpirun int, host string, hard uint64) error {
	e := &TooFew{Size: size, Host: host, Hard: hard}
	if uint64(need) > hard {
		e.Need = need
	}
	if uint64(mpirun) > hard {
		e.Mpirun = mpirun
	}
	if e.Need == 0 && e.Mpirun == 0 {
		return nil
	}
	return e
}

// PortRange reads the ephemeral port range (lo, hi inclusive).
func PortRange() (lo, hi int, err error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, fmt.Errorf("limits: read the ephemeral port range: %w", err)
	}
	return parseRange(string(b))
}

func parseRange(s string) (lo, hi int, err error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("limits: ip_local_port_range %q: want two numbers", strings.TrimSpace(s))
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil || hi < lo {
		return 0, 0, fmt.Errorf("limits: ip_local_port_range %q: want lo hi", strings.TrimSpace(s))
	}
	return lo, hi, nil
}

// CheckPorts compares the connections the ranks of one host open with
// the ephemeral port range of size ports. Linux shares a local port among
// connections to different destinations, so the bound that holds is per
// destination: every rank of the host may dial the same peer's listener,
// so perHost (the host's ranks) must fit. A job whose total dials exceed
// the range still works, but leaves many sockets in TIME_WAIT: note says
// so (empty otherwise).
func CheckPorts(perHost, dials, ports int, host string) (note string, err error) {
	where := "here"
	if host != "" {
		where = "on " + host
	}
	if perHost > ports {
		return "", fmt.Errorf("%d ranks on one host dial each peer's listener from up to %d ephemeral ports, the range %s has %d (net.ipv4.ip_local_port_range)", perHost, perHost, where, ports)
	}
	if dials > ports {
		note = fmt.Sprintf("the ranks %s open %d TCP connections during Init, more than the %d ephemeral ports (Linux shares them among destinations, so this works)", where, dials, ports)
	}
	return note, nil
}

// IsEMFILE reports whether err is a process (EMFILE) or system (ENFILE)
// out-of-descriptors error.
func IsEMFILE(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// Explain returns a sentence naming the limit for an out-of-descriptors
// error ("" for other errors).
func Explain(err error) string {
	if errors.Is(err, syscall.ENFILE) {
		return "the system is out of open files (fs.file-max)"
	}
	if !errors.Is(err, syscall.EMFILE) {
		return ""
	}
	soft, hard, e := NoFile()
	if e != nil {
		return "this process reached its limit of open files; " + Hint
	}
	return fmt.Sprintf("this process reached its limit of open files (soft %d, hard %d); %s", soft, hard, Hint)
}
