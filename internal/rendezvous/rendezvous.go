package rendezvous

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dsmexec/dsmexec/internal/auth"
	"github.com/dsmexec/dsmexec/internal/listen"
	"github.com/dsmexec/dsmexec/internal/wire"
)

// Frame types on wire.ChanControl after the handshake.
const (
	TypeJoin  = wire.TypeJoin  // rank -> master: JoinInfo (JSON)
	TypeTable = wire.TypeTable // master -> rank: Table (JSON)
	TypeCell  = wire.TypeCell  // rank -> master: Cell (JSON)
	TypeStats = wire.TypeStats // rank -> master: Stats (JSON)
	TypeBye   = wire.TypeBye   // rank -> master: finalized normally
	TypeWhere = wire.TypeWhere // master -> rank: where are you blocked? rank -> master: the answer (text)
	// TypeAbort: rank -> master: Abort (JSON); master -> rank: empty, once
	// mpirun has it. TypeFailed likewise with FailedInfo.
	TypeAbort  = wire.TypeAbort
	TypeFailed = wire.TypeFailed
	// TypeLost: master -> rank: LostInfo (JSON): a rank's connection to
	// the master ended without its BYE (the process is gone). Sent to
	// every other joined rank that has not finalized, once the table was
	// sent. Relay -> master: empty, Rank = the rank whose connection to
	// the relay ended so; master -> relay (Rank -1): LostInfo, for every
	// rank of the relay.
	TypeLost = wire.TypeLost
)

// LostInfo says which rank is gone and how it was seen.
type LostInfo struct {
	Rank int    `json:"rank"`
	Msg  string `json:"msg"`
}

// AbortInfo is what a rank that calls Abort sends.
type AbortInfo struct {
	Code int `json:"code"`
}

// FailedInfo is what a rank about to exit because of an error sends.
type FailedInfo struct {
	LostPeer int    `json:"lost_peer"` // -1: not caused by a lost peer
	Msg      string `json:"msg"`
}

// ErrTimeout is wrapped by the error returned when ranks never report.
var ErrTimeout = errors.New("rendezvous: timed out")

// maxControl bounds control frames from ranks.
const maxControl = 1 << 20

// JoinInfo is what a rank reports.
type JoinInfo struct {
	Rank      int      `json:"rank"`
	Endpoints []string `json:"endpoints"` // [mesh address, pager address, ...]
	Host      string   `json:"host"`
	Pid       int      `json:"pid"`
}

// Table is the connection table: Endpoints[r] is what rank r reported.
type Table struct {
	Endpoints [][]string `json:"endpoints"`
}

// Cell is one value a rank reported with World.Report.
type Cell struct {
	Column string `json:"column"`
	Value  string `json:"value"`
}

// Stats is what a rank sends when it finalizes.
type Stats struct {
	Backend string            `json:"backend,omitempty"`
	DSM     map[string]string `json:"dsm,omitempty"`
	// Columns is the order of the DSM columns.
	Columns []string `json:"columns,omitempty"`
	// Raw is DSM as numbers (counts, bytes, seconds) for mpirun's csv and
	// json reports, in the order of RawColumns.
	Raw        map[string]float64 `json:"raw,omitempty"`
	RawColumns []string           `json:"raw_columns,omitempty"`
	// Peers is the rank's message counts, indexed by world rank.
	Peers []PeerCount `json:"peers,omitempty"`
	// LockWait and LockHold: seconds this rank waited in dsm Mutex.Lock
	// and held dsm locks.
	LockWait float64 `json:"lock_wait,omitempty"`
	LockHold float64 `json:"lock_hold,omitempty"`
}

// PeerCount is what one rank sent to one peer and what arrived from it
// (every message that entered the rank's engine, matched or not):
// point-to-point, collective and barrier traffic.
type PeerCount struct {
	SentMsgs     uint64 `json:"sent_msgs"`
	SentBytes    uint64 `json:"sent_bytes"`
	ArrivedMsgs  uint64 `json:"arrived_msgs"`
	ArrivedBytes uint64 `json:"arrived_bytes"`
}

// Report is everything the master learned about one rank.
type Report struct {
	Rank      int
	Host      string
	Pid       int
	Joined    bool
	Finalized bool
	// Ended: the rank's connection (to the master or to its host's relay)
	// has ended, with or without its BYE: nothing more will come from it.
	Ended   bool
	Columns []string          // reported cell columns, in first-seen order
	Values  map[string]string // column -> last value
	Stats   Stats
	Where   string // answer to the last Where: the call the rank is blocked in, or ""
}

// Config configures a master.
type Config struct {
	Size    int
	Token   []byte
	Timeout time.Duration // for all ranks to report; 0 means 30 s
	Logf    func(format string, args ...any)
	// Warnf reports connections refused (strangers, wrong tokens, bad
	// joins); nil means Logf.
	Warnf func(format string, args ...any)
	// OnAbort and OnFailed hear a rank's Abort and Failed (nil: ignored).
	// The rank is answered once they return, and exits only then: what
	// they are told comes before the rank's exit.
	OnAbort  func(rank, code int)
	OnFailed func(rank, lostPeer int, msg string)
	// OnTrace takes a piece of a rank's trace stream (role 0: the rank,
	// 1: its page server); nil: pieces are dropped. Called from the
	// rank's connection's reader, in order.
	OnTrace func(rank int, role uint8, piece []byte)
}

// Master is the launcher's rendezvous socket.
type Master struct {
	cfg Config
	ln  net.Listener
	srv *listen.Server // the accept loop on ln

	mu        sync.Mutex
	reports   []Report
	conns     []member
	ports     []*Port // relays, in order of attachment
	endpoints [][]string
	joined    int
	whereC    chan struct{} // closed when every asked rank answered Where
	whereN    int
	whereWant int
	stateMu   sync.Mutex    // one State at a time (state.go)
	state     *stateRound   // the State in progress, under mu
	done      chan struct{} // closed when the table was sent
	errc      chan error
	lost      []bool        // TypeLost was sent for the rank
	changed   chan struct{} // closed (and replaced) when a rank finalizes or its connection ends
	closed    chan struct{}
	once      sync.Once
	wg        sync.WaitGroup
}

// A member is how the master reaches one joined rank: its own connection
// (memberConn), or the relay of its host (relayed).
type member interface {
	write(typ uint8, body ...[]byte) error
	close()
	// port is the rank's relay, nil for a direct connection.
	port() *Port
}

type memberConn struct {
	c net.Conn
	w *wire.Writer
}

func (mc *memberConn) write(typ uint8, body ...[]byte) error {
	return mc.w.Write(wire.ChanControl, typ, 0, body...)
}
func (mc *memberConn) close()      { mc.c.Close() }
func (mc *memberConn) port() *Port { return nil }

// Listen opens the master socket on addr (host:port; port 0 picks one).
func Listen(addr string, cfg Config) (*Master, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: listen on %s: %w", addr, err)
	}
	return newMaster(ln, cfg), nil
}

// newMaster serves on ln, which it owns.
func newMaster(ln net.Listener, cfg Config) *Master {
	m := &Master{
		cfg:       cfg,
		ln:        ln,
		reports:   make([]Report, cfg.Size),
		conns:     make([]member, cfg.Size),
		endpoints: make([][]string, cfg.Size),
		lost:      make([]bool, cfg.Size),
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
		errc:      make(chan error, 1),
		closed:    make(chan struct{}),
	}
	for i := range m.reports {
		m.reports[i].Rank = i
		m.reports[i].Values = map[string]string{}
	}
	// Every rank of a job may connect at once from one host; strangers
	// beyond these bounds push out the oldest unauthenticated connection
	// (see package listen), never a rank that already proved the token.
	m.srv = listen.New(ln, listen.Config{
		Name:              "master",
		MaxPending:        2*cfg.Size + 64,
		MaxPendingPerHost: cfg.Size + 16,
		HandshakeTimeout:  handshakeTimeout,
		Warnf:             m.warnf,
	})
	return m
}

// handshakeTimeout bounds the token handshake of a connection.
const handshakeTimeout = 10 * time.Second

// Addr is the master's host:port, for DSMEXEC_MASTER.
func (m *Master) Addr() string { return m.ln.Addr().String() }

// Err delivers a fatal rendezvous error (ranks that never reported).
func (m *Master) Err() <-chan error { return m.errc }

// Ready is closed once every rank has received the connection table.
func (m *Master) Ready() <-chan struct{} { return m.done }

func (m *Master) warnf(format string, args ...any) {
	if m.cfg.Warnf != nil {
		m.cfg.Warnf(format, args...)
		return
	}
	m.logf(format, args...)
}

func (m *Master) logf(format string, args ...any) {
	if m.cfg.Logf != nil {
		m.cfg.Logf(format, args...)
	}
}

// Serve accepts ranks until Close. It returns nil after Close, or the
// rendezvous error (also sent on Err).
func (m *Master) Serve(ctx context.Context) error {
	timer := time.NewTimer(m.cfg.Timeout)
	defer timer.Stop()
	go func() {
		select {
		case <-timer.C:
			m.mu.Lock()
			missing := m.missingLocked()
			m.mu.Unlock()
			select {
			case <-m.done:
				return
			default:
			}
			err := fmt.Errorf("%w: rank%s %s never reported to the master within %v", ErrTimeout, plural(len(missing)), joinInts(missing), m.cfg.Timeout)
			select {
			case m.errc <- err:
			default:
			}
		case <-m.done:
		case <-m.closed:
		case <-ctx.Done():
		}
	}()
	// The accept loop survives EMFILE and strangers (package listen); it
	// ends only with Close.
	err := m.srv.Serve(m.member)
	select {
	case <-m.closed:
		return nil // Serve after Close
	default:
	}
	return err
}

func (m *Master) missingLocked() []int {
	var missing []int
	for i, r := range m.reports {
		if !r.Joined {
			missing = append(missing, i)
		}
	}
	return missing
}

func (m *Master) member(c net.Conn, g *listen.Gate) {
	defer c.Close()
	rank, j, r, ok := acceptJoin(c, g, m.cfg.Token, func(from int) error {
		if from < 0 || from >= m.cfg.Size {
			return fmt.Errorf("rendezvous: rank %d out of range (size %d)", from, m.cfg.Size)
		}
		return nil
	}, "master", m.warnf)
	if !ok {
		return
	}
	if !m.join(j, &memberConn{c: c, w: wire.NewWriter(c, auth.Master)}, c.RemoteAddr().String()) {
		return
	}
	// The rest of the job: cells, stats, bye.
	readFrames(r, rank, "master", m.logf, func(f wire.Frame) {
		m.handle(rank, f.Type, f.Body)
	})
	m.ended(rank)
	m.gone(rank, "its connection to mpirun closed without a goodbye")
}

// gone tells every other rank that rank is lost, if its connection ended
// before it finalized: a rank that never connected to it learns so (the
// application mesh connects on demand). Nothing is sent before the table
// has gone to every rank (they wait for it; a rank that left while it was
// being sent is reported right after) or after Close.
func (m *Master) gone(rank int, msg string) {
	m.mu.Lock()
	select {
	case <-m.closed:
		m.mu.Unlock()
		return
	case <-m.done:
	default:
		m.mu.Unlock()
		// The table is still on its way to the others (this rank had
		// it and left at once): tell them once it has reached everyone.
		go func() {
			select {
			case <-m.done:
				m.gone(rank, msg)
			case <-m.closed:
			}
		}()
		return
	}
	if m.reports[rank].Finalized || m.lost[rank] {
		m.mu.Unlock()
		return
	}
	m.lost[rank] = true
	var direct []member
	ports := map[*Port]bool{}
	for i, c := range m.conns {
		if i == rank || c == nil || m.reports[i].Finalized || m.lost[i] {
			continue
		}
		if p := c.port(); p != nil {
			ports[p] = true
		} else {
			direct = append(direct, c)
		}
	}
	m.mu.Unlock()
	m.logf("master: rank %d is lost: %s", rank, msg)
	body, _ := json.Marshal(LostInfo{Rank: rank, Msg: msg})
	for _, c := range direct {
		c.write(TypeLost, body)
	}
	for p := range ports {
		p.send(RelayFrame{Rank: -1, Type: TypeLost, Body: body})
	}
}

// join records a rank's join, reached through mem; from says where it came
// from, for the log. It sends the table once every rank has joined (to
// each relay once). false: the join is refused (twice, or after Close).
func (m *Master) join(j JoinInfo, mem member, from string) bool {
	rank := j.Rank
	m.mu.Lock()
	select {
	case <-m.closed: // Close has closed the connections it knew of
		m.mu.Unlock()
		return false
	default:
	}
	if m.reports[rank].Joined {
		m.mu.Unlock()
		m.warnf("master: rank %d joined twice; second connection from %s refused", rank, from)
		return false
	}
	rep := &m.reports[rank]
	rep.Joined, rep.Host, rep.Pid = true, j.Host, j.Pid
	m.conns[rank] = mem
	m.endpoints[rank] = j.Endpoints
	m.joined++
	all := m.joined == m.cfg.Size
	var conns []member
	var body []byte
	if all {
		conns = append(conns, m.conns...)
		body, _ = json.Marshal(Table{Endpoints: m.endpoints})
	}
	m.mu.Unlock()
	m.logf("master: rank %d joined from %s (pid %d) with %v", rank, from, j.Pid, j.Endpoints)
	if all {
		// The table goes once to each rank with its own connection, and
		// once to each relay, which hands it to its ranks.
		sent := map[*Port]bool{}
		for i, mc := range conns {
			if p := mc.port(); p != nil {
				if !sent[p] {
					sent[p] = true
					if err := p.send(RelayFrame{Rank: -1, Type: TypeTable, Body: body}); err != nil {
						m.logf("master: send table to %s: %v", p.name, err)
					}
				}
				continue
			}
			if err := mc.write(TypeTable, body); err != nil {
				m.logf("master: send table to rank %d: %v", i, err)
			}
		}
		close(m.done)
	}
	return true
}

// handle records one frame of a joined rank.
func (m *Master) handle(rank int, typ uint8, body []byte) {
	m.mu.Lock()
	rep := &m.reports[rank]
	switch typ {
	case TypeCell:
		var cell Cell
		if json.Unmarshal(body, &cell) == nil {
			if _, ok := rep.Values[cell.Column]; !ok {
				rep.Columns = append(rep.Columns, cell.Column)
			}
			rep.Values[cell.Column] = cell.Value
		}
	case TypeStats:
		json.Unmarshal(body, &rep.Stats)
	case TypeTrace, TypeClock:
		m.mu.Unlock()
		m.trace(rank, typ, body)
		return
	case TypeBye:
		rep.Finalized = true
		m.changedLocked()
	case TypeAbort, TypeFailed:
		m.mu.Unlock()
		m.fatal(rank, typ, body)
		return
	case TypeState:
		m.stateAnswerLocked(rank, body)
	case TypeWhere:
		rep.Where = string(body)
		m.whereN++
		if m.whereC != nil && m.whereN >= m.whereWant {
			close(m.whereC)
			m.whereC = nil
		}
	}
	m.mu.Unlock()
}

// fatal passes on a rank's Abort or Failed, then answers it.
func (m *Master) fatal(rank int, typ uint8, body []byte) {
	switch typ {
	case TypeAbort:
		var a AbortInfo
		if json.Unmarshal(body, &a) != nil {
			m.warnf("master: rank %d sent a bad abort", rank)
			return
		}
		m.logf("master: rank %d called Abort(%d)", rank, a.Code)
		if m.cfg.OnAbort != nil {
			m.cfg.OnAbort(rank, a.Code)
		}
	case TypeFailed:
		var fi FailedInfo
		if json.Unmarshal(body, &fi) != nil {
			m.warnf("master: rank %d sent a bad failure report", rank)
			return
		}
		if m.cfg.OnFailed != nil {
			m.cfg.OnFailed(rank, fi.LostPeer, fi.Msg)
		}
	}
	m.mu.Lock()
	mc := m.conns[rank]
	m.mu.Unlock()
	if mc != nil {
		mc.write(typ)
	}
}

// Where asks every connected rank which call it is blocked in (for a job
// that timed out) and waits until all answered or ctx ends. The answers are
// in Reports()[r].Where: "" for a rank that is not blocked in a dsmexec
// call (computing, or in its own code).
func (m *Master) Where(ctx context.Context) {
	m.mu.Lock()
	done := make(chan struct{})
	m.whereC, m.whereN, m.whereWant = done, 0, 0
	var conns []member
	for i, c := range m.conns {
		if c != nil && !m.reports[i].Finalized {
			conns = append(conns, c)
			m.reports[i].Where = ""
		}
	}
	m.whereWant = len(conns)
	if len(conns) == 0 {
		m.whereC = nil
		close(done)
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.write(TypeWhere)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	m.mu.Lock()
	m.whereC = nil
	m.mu.Unlock()
}

// ended records that rank's connection ended: nothing more comes from it.
func (m *Master) ended(rank int) {
	m.mu.Lock()
	m.reports[rank].Ended = true
	m.changedLocked()
	m.mu.Unlock()
}

func (m *Master) changedLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Changed is closed the next time a rank finalizes (its BYE) or its
// connection ends: a caller waiting for the ranks' last reports takes
// Reports, and if some are still to come, waits on the Changed it took
// before.
func (m *Master) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// Conns says how the master reaches the ranks that joined: direct is the
// ranks with a connection of their own (each an open file of mpirun's),
// relays the relays attached (each one host, whatever its ranks).
func (m *Master) Conns() (direct, relays int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		if c != nil && c.port() == nil {
			direct++
		}
	}
	return direct, len(m.ports)
}

// Reports returns what every rank reported so far.
func (m *Master) Reports() []Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Report, len(m.reports))
	for i, r := range m.reports {
		r.Values = make(map[string]string, len(r.Values))
		for k, v := range m.reports[i].Values {
			r.Values[k] = v
		}
		r.Columns = append([]string(nil), r.Columns...)
		out[i] = r
	}
	return out
}

// Close stops accepting and closes every rank connection (ranks then learn
// the launcher is gone). Safe to call twice.
func (m *Master) Close() error {
	m.once.Do(func() {
		close(m.closed)
		m.srv.Close() // the listener and every unauthenticated connection
		m.mu.Lock()
		for _, c := range m.conns {
			if c != nil {
				c.close()
			}
		}
		ports := m.ports
		m.mu.Unlock()
		for _, p := range ports {
			p.send(RelayFrame{Rank: -1, Type: TypeBye}) // the relay closes its ranks' connections
		}
	})
	m.srv.Wait()
	m.wg.Wait()
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func joinInts(v []int) string {
	sort.Ints(v)
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
