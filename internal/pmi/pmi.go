package pmi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Errors. Operations wrap them with what they were doing ("get \"k\": ...").
var (
	// ErrNotFound: Get of a key nobody put (or not yet visible: Fence first).
	ErrNotFound = errors.New("pmi: key not found")
	// ErrLauncherClosed: the launcher closed the PMI connection (it died or
	// ended the job).
	ErrLauncherClosed = errors.New("pmi: launcher closed the connection")
	// ErrTimeout: no reply within Config.Timeout.
	ErrTimeout = errors.New("pmi: launcher did not answer in time")
	// ErrMalformed: a reply this package cannot parse, or not the reply the
	// request calls for.
	ErrMalformed = errors.New("pmi: malformed reply")
	// ErrInvalid: a key or value the launcher could not store intact.
	ErrInvalid = errors.New("pmi: invalid key or value")
	// ErrClosed: the client was closed (or finalized).
	ErrClosed = errors.New("pmi: client is closed")
	// ErrAborted: Abort was called; the launcher is ending the job.
	ErrAborted = errors.New("pmi: job aborted")
	// ErrEnv: the PMI environment variables are inconsistent.
	ErrEnv = errors.New("pmi: bad launcher environment")
	// ErrNotSupported: inherited PMI_FD sockets are not supported on this platform.
	ErrNotSupported = errors.New("pmi: not supported on this platform")
)

// ReplyError is a launcher's refusal: a reply with rc != 0.
type ReplyError struct {
	Cmd string // the request, e.g. "put" or "kvs-fence"
	RC  int
	Msg string // the launcher's msg or errmsg field, if any
}

func (e *ReplyError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("pmi: launcher refused %s: rc=%d", e.Cmd, e.RC)
	}
	return fmt.Sprintf("pmi: launcher refused %s: rc=%d: %s", e.Cmd, e.RC, e.Msg)
}

// Limits for PMI-2, which has no get_maxes (PMI2_MAX_KEYLEN, PMI2_MAX_VALLEN).
// Like get_maxes' figures they are C buffer sizes, NUL included: the longest
// key is 63 bytes, the longest value 1023 (Hydra silently truncates longer ones).
const (
	defaultKeyMax = 64
	defaultValMax = 1024
)

// A Client is one rank's connection to the launcher's PMI server. Its methods
// are safe for concurrent use; exchanges are serialised (PMI is strictly
// request/reply), except Abort, which never waits behind a Fence.
type Client struct {
	conn      net.Conn
	br        *bufio.Reader
	cfg       Config
	transport string // "PMI_FD", "PMI_PORT host:port"
	portMode  bool
	timeout   time.Duration

	// Set by the handshake, read-only afterwards.
	version        int
	rank, size     int
	kvsname        string
	keyMax, valMax int // exclusive, as the launcher reports them

	mu      sync.Mutex // one request/reply exchange at a time
	broken  error      // under mu: the stream is out of step; every call fails with it
	wmu     sync.Mutex // one writer at a time
	aborted atomic.Bool

	finOnce   sync.Once
	finErr    error
	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error
}

// Dial connects to the launcher named by c (the inherited PMI_FD socket, or a
// TCP connection to PMI_PORT) and performs the init handshake.
func Dial(ctx context.Context, c Config) (*Client, error) {
	if c.err != nil {
		return nil, c.err
	}
	var (
		conn net.Conn
		err  error
	)
	switch {
	case c.FD >= 0:
		conn, err = fileConn(c.FD)
		if err != nil {
			return nil, fmt.Errorf("use PMI_FD=%d: %w", c.FD, err)
		}
	case c.Port != "":
		d := net.Dialer{Timeout: timeoutOf(c)}
		conn, err = d.DialContext(ctx, "tcp", c.Port)
		if err != nil {
			return nil, fmt.Errorf("dial PMI_PORT %s: %w", c.Port, err)
		}
	default:
		return nil, fmt.Errorf("%w: the config names neither PMI_FD nor PMI_PORT", ErrEnv)
	}
	return NewClient(ctx, conn, c)
}

// NewClient performs the init handshake over conn, an already connected
// stream to a PMI server, and takes ownership of it (it is closed on error).
// c says how to introduce ourselves: c.Port != "" with c.FD < 0 means the
// PMI_PORT handshake (initack with c.ID); otherwise the PMI_FD one.
func NewClient(ctx context.Context, conn net.Conn, c Config) (*Client, error) {
	cl := &Client{
		conn:    conn,
		br:      bufio.NewReaderSize(conn, 4096),
		cfg:     c,
		timeout: timeoutOf(c),
		version: c.Version,
		rank:    -1,
		size:    -1,
	}
	switch {
	case c.FD >= 0:
		cl.transport = "PMI_FD"
	case c.Port != "":
		cl.transport, cl.portMode = "PMI_PORT "+c.Port, true
	default:
		cl.transport = "an open connection"
	}
	if c.Version != 1 && c.Version != 2 {
		conn.Close()
		return nil, fmt.Errorf("%w: PMI version %d: want 1 or 2", ErrEnv, c.Version)
	}
	if err := cl.handshake(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("initialize PMI-%d over %s: %w", cl.version, cl.transport, err)
	}
	return cl, nil
}

func timeoutOf(c Config) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Rank is this process's rank, 0..Size()-1.
func (c *Client) Rank() int { return c.rank }

// Size is the number of processes in the job.
func (c *Client) Size() int { return c.size }

// Version is the PMI wire version in use, 1 or 2.
func (c *Client) Version() int { return c.version }

// KVSName is the job's key-value space: PMI-1's kvsname, PMI-2's jobid.
func (c *Client) KVSName() string { return c.kvsname }

// Launcher describes the connection, e.g. "PMI-1 over PMI_FD (MPICH Hydra)".
func (c *Client) Launcher() string {
	s := fmt.Sprintf("PMI-%d over %s", c.version, c.transport)
	switch c.cfg.Launcher {
	case LauncherHydra:
		s += " (MPICH Hydra)"
	case LauncherSlurm:
		s += " (Slurm)"
	}
	return s
}

// MaxKey and MaxValue are the longest key and value Put accepts, in bytes.
func (c *Client) MaxKey() int   { return c.keyMax - 1 }
func (c *Client) MaxValue() int { return c.valMax - 1 }

// handshake runs the init sequence; one deadline bounds all of it.
func (c *Client) handshake(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	disarm := c.arm(ctx)
	defer disarm()
	if err := c.init(); err != nil {
		return c.classify(ctx, err)
	}
	return nil
}

func (c *Client) init() error {
	wireRank, wireSize := -1, -1
	if c.portMode && c.version == 1 {
		// PMI_PORT: introduce ourselves, then Hydra tells rank and size.
		if err := c.write(formatV1("initack", "pmiid", c.cfg.ID)); err != nil {
			return err
		}
		if _, err := c.readV1("initack"); err != nil {
			return err
		}
		for range 3 { // set size, set rank, set debug: MPICH reads exactly three
			m, err := c.readV1("set")
			if err != nil {
				return err
			}
			for k, v := range m.kv {
				switch k {
				case "size", "rank":
					n, err := strconv.Atoi(v)
					if err != nil || n < 0 {
						return fmt.Errorf("%w: cmd=set %s=%q", ErrMalformed, k, truncate(v))
					}
					if k == "size" {
						wireSize = n
					} else {
						wireRank = n
					}
				}
			}
		}
	}

	sub := 1
	if c.version == 2 {
		sub = 0
	}
	if err := c.write(formatV1("init", "pmi_version", strconv.Itoa(c.version), "pmi_subversion", strconv.Itoa(sub))); err != nil {
		return err
	}
	m, err := c.readV1("response_to_init")
	if err != nil {
		return err
	}
	if err := rcOf(m, "init", true); err != nil {
		return fmt.Errorf("%w (if the launcher speaks only the other PMI version, set %s)", err, EnvVersion)
	}
	sv, err := intField(m, "pmi_version")
	if err != nil {
		return err
	}
	switch {
	case sv == c.version:
	case sv == 1 && c.version == 2 && !c.portMode:
		// A PMI-1-only server answers with its own version: follow it.
		c.version = 1
	default:
		return fmt.Errorf("%w: asked for PMI-%d, the launcher answered pmi_version=%d", ErrMalformed, c.version, sv)
	}

	if c.version == 1 {
		return c.initV1(wireRank, wireSize)
	}
	return c.initV2()
}

func (c *Client) initV1(wireRank, wireSize int) error {
	if err := c.write(formatV1("get_maxes")); err != nil {
		return err
	}
	m, err := c.readV1("maxes")
	if err != nil {
		return err
	}
	if err := rcOf(m, "get_maxes", false); err != nil {
		return err
	}
	c.keyMax, c.valMax = defaultKeyMax, defaultValMax
	for _, f := range []struct {
		key string
		dst *int
	}{{"keylen_max", &c.keyMax}, {"vallen_max", &c.valMax}} {
		if _, ok := m.get(f.key); !ok {
			continue
		}
		n, err := intField(m, f.key)
		if err != nil {
			return err
		}
		if n < 2 {
			return fmt.Errorf("%w: %s=%d", ErrMalformed, f.key, n)
		}
		*f.dst = n
	}

	if err := c.write(formatV1("get_my_kvsname")); err != nil {
		return err
	}
	if m, err = c.readV1("my_kvsname"); err != nil {
		return err
	}
	if err := rcOf(m, "get_my_kvsname", false); err != nil {
		return err
	}
	if c.kvsname = m.kv["kvsname"]; c.kvsname == "" {
		return fmt.Errorf("%w: cmd=my_kvsname without a kvsname", ErrMalformed)
	}

	if c.portMode {
		if wireRank < 0 || wireSize < 1 || wireRank >= wireSize {
			return fmt.Errorf("%w: PMI_PORT handshake gave rank %d of size %d", ErrMalformed, wireRank, wireSize)
		}
		return c.setRankSize(wireRank, wireSize)
	}
	// Over PMI_FD a PMI-1 client learns rank and size from the environment.
	if c.cfg.Rank < 0 || c.cfg.Size < 1 {
		return fmt.Errorf("%w: PMI-1 over %s needs PMI_RANK and PMI_SIZE", ErrEnv, c.transport)
	}
	c.rank, c.size = c.cfg.Rank, c.cfg.Size
	return nil
}

func (c *Client) initV2() error {
	pairs := []string{"pmijobid", c.cfg.JobID}
	switch {
	case c.portMode:
		pairs = append(pairs, "pmirank", c.cfg.ID)
	case c.cfg.Rank >= 0:
		pairs = append(pairs, "pmirank", strconv.Itoa(c.cfg.Rank))
	}
	pairs = append(pairs, "threaded", "FALSE")
	if err := c.write(formatV2("fullinit", pairs...)); err != nil {
		return err
	}
	m, err := c.readV2("fullinit-response")
	if err != nil {
		return err
	}
	if err := rcOf(m, "fullinit", true); err != nil {
		return err
	}
	if v, ok := m.get("pmi-version"); ok && v != "2" {
		return fmt.Errorf("%w: fullinit-response says pmi-version=%q", ErrMalformed, truncate(v))
	}
	rank, err := intField(m, "rank")
	if err != nil {
		return err
	}
	size, err := intField(m, "size")
	if err != nil {
		return err
	}
	if size < 1 || rank < 0 || rank >= size {
		return fmt.Errorf("%w: fullinit-response gave rank %d of size %d", ErrMalformed, rank, size)
	}
	if err := c.setRankSize(rank, size); err != nil {
		return err
	}

	if err := c.write(formatV2("job-getid")); err != nil {
		return err
	}
	if m, err = c.readV2("job-getid-response"); err != nil {
		return err
	}
	if err := rcOf(m, "job-getid", true); err != nil {
		return err
	}
	id, ok := m.get("jobid")
	if !ok || id == "" {
		return fmt.Errorf("%w: job-getid-response without a jobid", ErrMalformed)
	}
	c.kvsname = id
	c.keyMax, c.valMax = defaultKeyMax, defaultValMax
	return nil
}

// setRankSize records what the wire said, checking it against PMI_RANK and
// PMI_SIZE when the environment had them.
func (c *Client) setRankSize(rank, size int) error {
	if size > MaxSize {
		return fmt.Errorf("%w: the launcher says the job has %d ranks, beyond the largest this library supports (%d)", ErrMalformed, size, MaxSize)
	}
	if (c.cfg.Rank >= 0 && c.cfg.Rank != rank) || (c.cfg.Size > 0 && c.cfg.Size != size) {
		return fmt.Errorf("%w: the launcher says rank %d of %d, the environment PMI_RANK=%d PMI_SIZE=%d",
			ErrEnv, rank, size, c.cfg.Rank, c.cfg.Size)
	}
	c.rank, c.size = rank, size
	return nil
}

// Put stores key=value in the job's key-value space. Other ranks see it after
// the next Fence. Keys are printable ASCII without '=' or ';'; values are
// bytes other than space, ';' and control characters (neither Hydra nor Slurm
// undoes PMI-2's ";;" escape, so ';' cannot travel intact): encode binary data.
func (c *Client) Put(key, value string) error {
	if err := c.checkKey(key); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if err := c.checkValue(value); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	var req, want string
	if c.version == 1 {
		req, want = formatV1("put", "kvsname", c.kvsname, "key", key, "value", value), "put_result"
		if len(req) > maxLineV1 {
			return fmt.Errorf("put %q: %w: the request is %d bytes, over PMI-1's %d-byte line (this key leaves %d bytes for a value)",
				key, ErrInvalid, len(req), maxLineV1, maxLineV1-(len(req)-len(value)))
		}
	} else {
		req, want = formatV2("kvs-put", "key", key, "value", value), "kvs-put-response"
	}
	m, err := c.exchange(context.Background(), req, want)
	if err == nil {
		err = rcOf(m, "put", true)
	}
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// Fence waits until every rank has called Fence and makes every Put before it
// visible to every rank: PMI-1 barrier_in/barrier_out (a PMI-1 client's
// kvs_commit is local, nothing goes on the wire), PMI-2 kvs-fence.
func (c *Client) Fence(ctx context.Context) error {
	var err error
	var m message
	if c.version == 1 {
		if m, err = c.exchange(ctx, formatV1("barrier_in"), "barrier_out"); err == nil {
			err = rcOf(m, "barrier_in", false) // Hydra sends no rc, Slurm does
		}
	} else {
		if m, err = c.exchange(ctx, formatV2("kvs-fence"), "kvs-fence-response"); err == nil {
			err = rcOf(m, "kvs-fence", true)
		}
	}
	if err != nil {
		return fmt.Errorf("fence: %w", err)
	}
	return nil
}

// Get returns the value another rank (or this one) put under key before the
// last Fence. A missing key is ErrNotFound, wrapped with the key.
func (c *Client) Get(ctx context.Context, key string) (string, error) {
	v, err := c.get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("get %q: %w", key, err)
	}
	return v, nil
}

func (c *Client) get(ctx context.Context, key string) (string, error) {
	if err := c.checkKey(key); err != nil {
		return "", err
	}
	if c.version == 1 {
		m, err := c.exchange(ctx, formatV1("get", "kvsname", c.kvsname, "key", key), "get_result")
		if err != nil {
			return "", err
		}
		// Hydra: rc=-1 msg=key_K_not_found value=unknown. Slurm: rc=1.
		if err := rcOf(m, "get", true); err != nil {
			var re *ReplyError
			if errors.As(err, &re) && re.Msg != "" {
				return "", fmt.Errorf("%w (rc=%d: %s)", ErrNotFound, re.RC, re.Msg)
			}
			if errors.As(err, &re) {
				return "", fmt.Errorf("%w (rc=%d)", ErrNotFound, re.RC)
			}
			return "", err
		}
		v, ok := m.get("value")
		if !ok {
			return "", fmt.Errorf("%w: get_result rc=0 without a value", ErrMalformed)
		}
		return v, nil
	}
	m, err := c.exchange(ctx, formatV2("kvs-get", "jobid", c.kvsname, "srcid", "-1", "key", key), "kvs-get-response")
	if err != nil {
		return "", err
	}
	if err := rcOf(m, "kvs-get", true); err != nil {
		return "", err
	}
	found, ok := m.get("found")
	switch {
	case !ok:
		return "", fmt.Errorf("%w: kvs-get-response without found", ErrMalformed)
	case strings.EqualFold(found, "FALSE"):
		return "", ErrNotFound
	case !strings.EqualFold(found, "TRUE"):
		return "", fmt.Errorf("%w: kvs-get-response found=%q", ErrMalformed, truncate(found))
	}
	v, ok := m.get("value")
	if !ok {
		return "", fmt.Errorf("%w: kvs-get-response found=TRUE without a value", ErrMalformed)
	}
	return v, nil
}

// Abort asks the launcher to end the whole job and returns once the request
// is written; the caller should then print msg and exit with code (the
// launcher may kill it first). PMI-1 carries code (Hydra exits with it; Slurm
// kills the step, srun exits 137). PMI-2's abort (isworld=TRUE) has no exit
// status and carries msg: Slurm kills the step; Hydra 4.0.2 does not know the
// command and ends the job with status 255. Abort does not wait for an
// exchange in progress.
func (c *Client) Abort(code int, msg string) error {
	if c.closed.Load() {
		return fmt.Errorf("abort: %w", ErrClosed)
	}
	c.aborted.Store(true)
	var req string
	if c.version == 1 {
		req = formatV1("abort", "exitcode", strconv.Itoa(code))
	} else {
		req = formatV2("abort", "isworld", "TRUE", "msg", abortMsg(msg, c.valMax-1))
	}
	c.wmu.Lock()
	c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := io.WriteString(c.conn, req)
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("abort: %w", c.classify(context.Background(), err))
	}
	return nil
}

// abortMsg makes msg safe for a PMI-2 field servers do not unescape.
func abortMsg(msg string, max int) string {
	b := []byte(msg)
	for i, ch := range b {
		if ch < ' ' || ch == 0x7f || ch == ';' {
			b[i] = ' '
		}
	}
	if len(b) > max {
		b = b[:max]
	}
	return string(b)
}

// Finalize tells the launcher this process is done with PMI and closes the
// connection. Call it before a clean exit: Hydra ends the whole job when a
// process that spoke PMI exits without it. Safe to call twice.
func (c *Client) Finalize() error {
	c.finOnce.Do(func() {
		c.finErr = c.finalize()
		c.Close()
	})
	return c.finErr
}

func (c *Client) finalize() error {
	var err error
	var m message
	if c.version == 1 {
		if m, err = c.exchange(context.Background(), formatV1("finalize"), "finalize_ack"); err == nil {
			err = rcOf(m, "finalize", false)
		}
	} else {
		if m, err = c.exchange(context.Background(), formatV2("finalize"), "finalize-response"); err == nil {
			err = rcOf(m, "finalize", true)
		}
	}
	if err != nil {
		return fmt.Errorf("finalize: %w", err)
	}
	return nil
}

// Close closes the connection without Finalize (Hydra then ends the job) and
// unblocks an exchange in progress. Safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

func (c *Client) checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) >= c.keyMax {
		return fmt.Errorf("%w: the key is %d bytes, the launcher stores at most %d", ErrInvalid, len(key), c.keyMax-1)
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; b <= ' ' || b >= 0x7f || b == '=' || b == ';' {
			return fmt.Errorf("%w: the key has %q at byte %d (keys are printable ASCII without '=' or ';')", ErrInvalid, key[i:i+1], i)
		}
	}
	return nil
}

func (c *Client) checkValue(v string) error {
	if len(v) >= c.valMax {
		return fmt.Errorf("%w: the value is %d bytes, the launcher stores at most %d", ErrInvalid, len(v), c.valMax-1)
	}
	for i := 0; i < len(v); i++ {
		if b := v[i]; b <= ' ' || b == 0x7f || b == ';' {
			return fmt.Errorf("%w: the value has %q at byte %d (no spaces, ';' or control characters: encode binary data)", ErrInvalid, v[i:i+1], i)
		}
	}
	return nil
}

// exchange writes one request and reads its reply, bounded by ctx (or the
// timeout when ctx has no deadline). An I/O or framing failure leaves the
// stream out of step: the client is then broken and every later call fails.
func (c *Client) exchange(ctx context.Context, req, want string) (message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed.Load():
		return message{}, ErrClosed
	case c.aborted.Load():
		return message{}, ErrAborted
	case c.broken != nil:
		return message{}, fmt.Errorf("connection unusable after an earlier failure: %w", c.broken)
	}
	if err := ctx.Err(); err != nil {
		return message{}, err
	}
	disarm := c.arm(ctx)
	defer disarm()
	var m message
	err := c.write(req)
	if err == nil {
		if c.version == 1 {
			m, err = c.readV1(want)
		} else {
			m, err = c.readV2(want)
		}
	}
	if err != nil {
		c.broken = c.classify(ctx, err)
		return message{}, c.broken
	}
	return m, nil
}

// aLongTimeAgo is a deadline in the past: setting it unblocks I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// arm sets the connection deadline for one exchange and makes ctx
// cancellation unblock it. disarm must be called before the next arm.
func (c *Client) arm(ctx context.Context) (disarm func()) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.timeout)
	}
	c.conn.SetDeadline(deadline)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetDeadline(aLongTimeAgo)
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired // it ran or is running: let it finish before the next arm
		}
	}
}

func (c *Client) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := io.WriteString(c.conn, s)
	return err
}

func (c *Client) readV1(want string) (message, error) {
	line, err := readLine(c.br, maxReply)
	if err != nil {
		return message{}, err
	}
	m, err := parseV1(line)
	if err != nil {
		return message{}, fmt.Errorf("%w: %v in %q", ErrMalformed, err, truncate(line))
	}
	if m.cmd != want {
		return message{}, fmt.Errorf("%w: got cmd=%s, want cmd=%s", ErrMalformed, truncate(m.cmd), want)
	}
	return m, nil
}

func (c *Client) readV2(want string) (message, error) {
	body, err := readFrame(c.br, maxReply)
	if err != nil {
		return message{}, err
	}
	m, err := parseV2(body)
	if err != nil {
		return message{}, fmt.Errorf("%w: %v in %q", ErrMalformed, err, truncate(body))
	}
	if m.cmd != want {
		return message{}, fmt.Errorf("%w: got cmd=%s, want cmd=%s", ErrMalformed, truncate(m.cmd), want)
	}
	return m, nil
}

// classify turns an I/O error into one of the package's errors.
func (c *Client) classify(ctx context.Context, err error) error {
	if c.closed.Load() && !errors.Is(err, ErrMalformed) {
		return ErrClosed
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded
		}
		return fmt.Errorf("%w (waited %v)", ErrTimeout, c.timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.ErrClosedPipe),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrLauncherClosed
	}
	return err
}

// rcOf checks a reply's rc field; required says whether it must be present.
func rcOf(m message, req string, required bool) error {
	s, ok := m.get("rc")
	if !ok {
		if required {
			return fmt.Errorf("%w: cmd=%s without rc", ErrMalformed, m.cmd)
		}
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%w: cmd=%s rc=%q", ErrMalformed, m.cmd, truncate(s))
	}
	if n != 0 {
		msg := m.kv["msg"]
		if msg == "" {
			msg = m.kv["errmsg"]
		}
		return &ReplyError{Cmd: req, RC: n, Msg: msg}
	}
	return nil
}

// intField returns a required integer field.
func intField(m message, key string) (int, error) {
	s, ok := m.get(key)
	if !ok {
		return 0, fmt.Errorf("%w: cmd=%s without %s", ErrMalformed, m.cmd, key)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%w: cmd=%s %s=%q", ErrMalformed, m.cmd, key, truncate(s))
	}
	return n, nil
}
