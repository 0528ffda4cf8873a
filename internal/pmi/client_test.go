package pmi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds every exchange in these tests so a bug fails instead of hanging.
const testTimeout = 10 * time.Second

// step is one exchange of a scripted launcher: the exact bytes it expects
// from the client, then the exact bytes it answers (either may be empty).
type step struct{ recv, send string }

// Pseudo-steps: hangup makes the scripted launcher close the connection,
// mark closes the next of scripted's marks channels (to sequence a test).
var (
	hangup = step{send: "\x00hangup"}
	mark   = step{send: "\x00mark"}
)

// scripted runs steps on the server end of conn and then expects the client
// to close the connection without sending anything more. It reports the
// first deviation on the returned channel (nil when the script ran clean).
func scripted(conn net.Conn, steps []step, marks ...chan struct{}) <-chan error {
	done := make(chan error, 1)
	go func() {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(testTimeout))
		for i, s := range steps {
			if s == hangup {
				done <- nil
				return
			}
			if s == mark {
				close(marks[0])
				marks = marks[1:]
				continue
			}
			if s.recv != "" {
				got := make([]byte, len(s.recv))
				if _, err := io.ReadFull(conn, got); err != nil {
					done <- fmt.Errorf("step %d: reading %q: %v (got %q)", i, s.recv, err, got)
					return
				}
				if string(got) != s.recv {
					done <- fmt.Errorf("step %d: client sent\n\t%q\nwant\n\t%q", i, got, s.recv)
					return
				}
			}
			if s.send != "" {
				if _, err := io.WriteString(conn, s.send); err != nil {
					done <- fmt.Errorf("step %d: writing %q: %v", i, s.send, err)
					return
				}
			}
		}
		var extra [64]byte
		if n, err := conn.Read(extra[:]); err != io.EOF {
			done <- fmt.Errorf("after the script: read %q, %v; want EOF (client closed)", extra[:n], err)
			return
		}
		done <- nil
	}()
	return done
}

// Transcripts. The Hydra ones are peers.md's recordings of MPICH 4.0.2's
// Hydra, plus bytes recorded from it for the missing key, job-getid and
// PMI_PORT; the Slurm ones follow the formats in Slurm's pmi2 plugin
// (src/plugins/mpi/pmi2/pmi1.c, pmi2.c, agent.c).
const (
	hydraKVS   = "kvs_19430_0_1832353746_vm"
	hydraJobID = "kvs_19531_0_1301394740_vm"
)

var hydraV1Body = []step{
	{"cmd=get_maxes\n", "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n"},
	{"cmd=get_my_kvsname\n", "cmd=my_kvsname kvsname=" + hydraKVS + "\n"},
	{"cmd=put kvsname=" + hydraKVS + " key=addr-0 value=tcp://127.0.0.1:40000\n", "cmd=put_result rc=0 msg=success\n"},
	{"cmd=barrier_in\n", "cmd=barrier_out\n"},
	{"cmd=get kvsname=" + hydraKVS + " key=addr-1\n", "cmd=get_result rc=0 msg=success value=tcp://127.0.0.1:40001\n"},
	{"cmd=get kvsname=" + hydraKVS + " key=addr-9\n", "cmd=get_result rc=-1 msg=key_addr-9_not_found value=unknown\n"},
	{"cmd=finalize\n", "cmd=finalize_ack\n"},
}

var goldens = []struct {
	name         string
	cfg          Config
	steps        []step
	rank, size   int
	version      int
	kvs          string
	launcher     string
	put          [2]string
	get, missing string
	want         string
}{
	{
		name: "hydra PMI-1 over PMI_FD",
		cfg:  Config{FD: 6, Rank: 0, Size: 2, Version: 1, Launcher: LauncherHydra},
		steps: append([]step{
			{"cmd=init pmi_version=1 pmi_subversion=1\n", "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n"},
		}, hydraV1Body...),
		rank: 0, size: 2, version: 1, kvs: hydraKVS, launcher: "PMI-1 over PMI_FD (MPICH Hydra)",
		put: [2]string{"addr-0", "tcp://127.0.0.1:40000"}, get: "addr-1", missing: "addr-9", want: "tcp://127.0.0.1:40001",
	},
	{
		name: "hydra PMI-1 over PMI_PORT",
		cfg:  Config{FD: -1, Port: "127.0.0.1:4711", ID: "0", Rank: -1, Size: -1, Version: 1, Launcher: LauncherHydra},
		steps: append([]step{
			{"cmd=initack pmiid=0\n", "cmd=initack\ncmd=set size=2\ncmd=set rank=0\ncmd=set debug=0\n"},
			{"cmd=init pmi_version=1 pmi_subversion=1\n", "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n"},
		}, hydraV1Body...),
		rank: 0, size: 2, version: 1, kvs: hydraKVS, launcher: "PMI-1 over PMI_PORT 127.0.0.1:4711 (MPICH Hydra)",
		put: [2]string{"addr-0", "tcp://127.0.0.1:40000"}, get: "addr-1", missing: "addr-9", want: "tcp://127.0.0.1:40001",
	},
	{
		name: "hydra PMI-2 over PMI_FD",
		cfg:  Config{FD: 6, Rank: 0, Size: 2, Version: 2, Launcher: LauncherHydra},
		steps: []step{
			{"cmd=init pmi_version=2 pmi_subversion=0\n", "cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n"},
			{"48    cmd=fullinit;pmijobid=;pmirank=0;threaded=FALSE;",
				"113   cmd=fullinit-response;pmi-version=2;pmi-subversion=0;rank=0;size=2;appnum=0;debugged=FALSE;pmiverbose=FALSE;rc=0;"},
			{"14    cmd=job-getid;", "60    cmd=job-getid-response;jobid=" + hydraJobID + ";rc=0;"},
			{"60    cmd=kvs-put;key=addr-0;value=tcp://127.0.0.1:40000/pid19533;", "26    cmd=kvs-put-response;rc=0;"},
			{"14    cmd=kvs-fence;", "28    cmd=kvs-fence-response;rc=0;"},
			{"64    cmd=kvs-get;jobid=" + hydraJobID + ";srcid=-1;key=addr-1;",
				"74    cmd=kvs-get-response;found=TRUE;value=tcp://127.0.0.1:40001/pid19534;rc=0;"},
			{"64    cmd=kvs-get;jobid=" + hydraJobID + ";srcid=-1;key=addr-9;", "38    cmd=kvs-get-response;found=FALSE;rc=0;"},
			{"13    cmd=finalize;", "27    cmd=finalize-response;rc=0;"},
		},
		rank: 0, size: 2, version: 2, kvs: hydraJobID, launcher: "PMI-2 over PMI_FD (MPICH Hydra)",
		put: [2]string{"addr-0", "tcp://127.0.0.1:40000/pid19533"}, get: "addr-1", missing: "addr-9", want: "tcp://127.0.0.1:40001/pid19534",
	},
	{
		name: "hydra PMI-2 over PMI_PORT",
		cfg:  Config{FD: -1, Port: "127.0.0.1:4711", ID: "1", Rank: -1, Size: -1, Version: 2},
		steps: []step{
			{"cmd=init pmi_version=2 pmi_subversion=0\n", "cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n"},
			{"48    cmd=fullinit;pmijobid=;pmirank=1;threaded=FALSE;",
				"113   cmd=fullinit-response;pmi-version=2;pmi-subversion=0;rank=1;size=2;appnum=0;debugged=FALSE;pmiverbose=FALSE;rc=0;"},
			{"14    cmd=job-getid;", "60    cmd=job-getid-response;jobid=" + hydraJobID + ";rc=0;"},
			{frame("cmd=kvs-put;key=addr-1;value=x;"), frame("cmd=kvs-put-response;rc=0;")},
			{frame("cmd=kvs-fence;"), frame("cmd=kvs-fence-response;rc=0;")},
			{frame("cmd=kvs-get;jobid=" + hydraJobID + ";srcid=-1;key=addr-0;"), frame("cmd=kvs-get-response;found=TRUE;value=;rc=0;")},
			{frame("cmd=kvs-get;jobid=" + hydraJobID + ";srcid=-1;key=nope;"), frame("cmd=kvs-get-response;found=FALSE;rc=0;")},
			{frame("cmd=finalize;"), frame("cmd=finalize-response;rc=0;")},
		},
		rank: 1, size: 2, version: 2, kvs: hydraJobID, launcher: "PMI-2 over PMI_PORT 127.0.0.1:4711",
		put: [2]string{"addr-1", "x"}, get: "addr-0", missing: "nope", want: "",
	},
	{
		name: "slurm PMI-1 over PMI_FD",
		cfg:  Config{FD: 5, Rank: 1, Size: 2, Version: 1, Launcher: LauncherSlurm},
		steps: []step{
			{"cmd=init pmi_version=1 pmi_subversion=1\n", "cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1\n"},
			{"cmd=get_maxes\n", "cmd=maxes rc=0 kvsname_max=256 keylen_max=64 vallen_max=1024\n"},
			{"cmd=get_my_kvsname\n", "cmd=my_kvsname rc=0 kvsname=5.0\n"},
			{"cmd=put kvsname=5.0 key=addr-1 value=127.0.0.1:40001\n", "cmd=put_result rc=0\n"},
			{"cmd=barrier_in\n", "cmd=barrier_out rc=0\n"},
			{"cmd=get kvsname=5.0 key=addr-0\n", "cmd=get_result rc=0 value=127.0.0.1:40000\n"},
			{"cmd=get kvsname=5.0 key=addr-9\n", "cmd=get_result rc=1\n"},
			{"cmd=finalize\n", "cmd=finalize_ack rc=0\n"},
		},
		rank: 1, size: 2, version: 1, kvs: "5.0", launcher: "PMI-1 over PMI_FD (Slurm)",
		put: [2]string{"addr-1", "127.0.0.1:40001"}, get: "addr-0", missing: "addr-9", want: "127.0.0.1:40000",
	},
	{
		name: "slurm PMI-2 over PMI_FD",
		cfg:  Config{FD: 5, Rank: 1, Size: 2, JobID: "5.0", Version: 2, Launcher: LauncherSlurm},
		steps: []step{
			{"cmd=init pmi_version=2 pmi_subversion=0\n", "cmd=response_to_init rc=0 pmi_version=2 pmi_subversion=0\n"},
			{"51    cmd=fullinit;pmijobid=5.0;pmirank=1;threaded=FALSE;",
				"114   cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=1;size=2;appnum=-1;debugged=FALSE;pmiverbose=FALSE;"},
			{"14    cmd=job-getid;", "38    cmd=job-getid-response;rc=0;jobid=5.0;"},
			{"45    cmd=kvs-put;key=addr-1;value=127.0.0.1:40001;", "26    cmd=kvs-put-response;rc=0;"},
			{"14    cmd=kvs-fence;", "28    cmd=kvs-fence-response;rc=0;"},
			{"42    cmd=kvs-get;jobid=5.0;srcid=-1;key=addr-0;", "59    cmd=kvs-get-response;rc=0;found=TRUE;value=127.0.0.1:40000;"},
			{"42    cmd=kvs-get;jobid=5.0;srcid=-1;key=addr-9;", "38    cmd=kvs-get-response;rc=0;found=FALSE;"},
			{"13    cmd=finalize;", "27    cmd=finalize-response;rc=0;"},
		},
		rank: 1, size: 2, version: 2, kvs: "5.0", launcher: "PMI-2 over PMI_FD (Slurm)",
		put: [2]string{"addr-1", "127.0.0.1:40001"}, get: "addr-0", missing: "addr-9", want: "127.0.0.1:40000",
	},
}

func TestGoldenTranscripts(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			ctx := context.Background()
			cli, srv := net.Pipe()
			done := scripted(srv, g.steps)
			cfg := g.cfg
			cfg.Timeout = testTimeout
			c, err := NewClient(ctx, cli, cfg)
			if err != nil {
				t.Fatalf("NewClient: %v (server: %v)", err, <-done)
			}
			if c.Rank() != g.rank || c.Size() != g.size || c.Version() != g.version || c.KVSName() != g.kvs || c.Launcher() != g.launcher {
				t.Errorf("got rank %d size %d version %d kvs %q launcher %q; want %d %d %d %q %q",
					c.Rank(), c.Size(), c.Version(), c.KVSName(), c.Launcher(), g.rank, g.size, g.version, g.kvs, g.launcher)
			}
			if err := c.Put(g.put[0], g.put[1]); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if err := c.Fence(ctx); err != nil {
				t.Fatalf("Fence: %v", err)
			}
			if v, err := c.Get(ctx, g.get); err != nil || v != g.want {
				t.Fatalf("Get(%q) = %q, %v; want %q", g.get, v, err, g.want)
			}
			_, err = c.Get(ctx, g.missing)
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), g.missing) {
				t.Fatalf("Get(%q) error = %v; want ErrNotFound naming the key", g.missing, err)
			}
			if err := c.Finalize(); err != nil {
				t.Fatalf("Finalize: %v", err)
			}
			if err := c.Finalize(); err != nil {
				t.Fatalf("second Finalize: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if _, err := c.Get(ctx, g.get); !errors.Is(err, ErrClosed) {
				t.Fatalf("Get after Finalize: %v, want ErrClosed", err)
			}
		})
	}
}

// handshake prefixes for tests that start after init.
var (
	hydraV1Init = []step{
		{"cmd=init pmi_version=1 pmi_subversion=1\n", "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n"},
		{"cmd=get_maxes\n", "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n"},
		{"cmd=get_my_kvsname\n", "cmd=my_kvsname kvsname=K\n"},
	}
	hydraV2Init = []step{
		{"cmd=init pmi_version=2 pmi_subversion=0\n", "cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n"},
		{frame("cmd=fullinit;pmijobid=;pmirank=0;threaded=FALSE;"),
			frame("cmd=fullinit-response;pmi-version=2;pmi-subversion=0;rank=0;size=2;appnum=0;debugged=FALSE;pmiverbose=FALSE;rc=0;")},
		{frame("cmd=job-getid;"), frame("cmd=job-getid-response;jobid=J;rc=0;")},
	}
	cfgV1 = Config{FD: 6, Rank: 0, Size: 2, Version: 1, Timeout: testTimeout}
	cfgV2 = Config{FD: 6, Rank: 0, Size: 2, Version: 2, Timeout: testTimeout}
)

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// A server that only speaks PMI-1 answers a PMI-2 init with version 1: the
// client follows it down.
func TestVersionFallback(t *testing.T) {
	cli, srv := net.Pipe()
	done := scripted(srv, []step{
		{"cmd=init pmi_version=2 pmi_subversion=0\n", "cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n"},
		{"cmd=get_maxes\n", "cmd=maxes kvsname_max=256 keylen_max=32 vallen_max=128\n"},
		{"cmd=get_my_kvsname\n", "cmd=my_kvsname kvsname=K\n"},
	})
	c, err := NewClient(context.Background(), cli, cfgV2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version() != 1 || c.MaxKey() != 31 || c.MaxValue() != 127 {
		t.Errorf("version %d, max key %d, max value %d; want 1, 31, 127", c.Version(), c.MaxKey(), c.MaxValue())
	}
	if err := c.Put("k", strings.Repeat("v", 128)); !errors.Is(err, ErrInvalid) {
		t.Errorf("Put of 128 bytes with vallen_max=128: %v, want ErrInvalid", err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAbort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		init  []step
		wire  string
		code  int
		msg   string
		later func(*Client) error
	}{
		{"PMI-1", cfgV1, hydraV1Init, "cmd=abort exitcode=7\n", 7, "ignored on PMI-1", nil},
		{"PMI-2", cfgV2, hydraV2Init, frame("cmd=abort;isworld=TRUE;msg=rank 0: bad  worse news;"), 3, "rank 0: bad; worse\tnews", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := net.Pipe()
			done := scripted(srv, concat(tc.init, []step{{recv: tc.wire}}))
			c, err := NewClient(context.Background(), cli, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Abort(tc.code, tc.msg); err != nil {
				t.Fatal(err)
			}
			if err := c.Put("k", "v"); !errors.Is(err, ErrAborted) {
				t.Errorf("Put after Abort: %v, want ErrAborted", err)
			}
			if err := c.Finalize(); !errors.Is(err, ErrAborted) {
				t.Errorf("Finalize after Abort: %v, want ErrAborted", err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Abort must go out while another goroutine waits in Fence.
func TestAbortDuringFence(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	inFence := make(chan struct{})
	done := scripted(srv, concat(hydraV1Init, []step{{recv: "cmd=barrier_in\n"}, mark, {recv: "cmd=abort exitcode=9\n"}}), inFence)
	c, err := NewClient(context.Background(), cli, cfgV1)
	if err != nil {
		t.Fatal(err)
	}
	fenced := make(chan error, 1)
	go func() { fenced <- c.Fence(context.Background()) }()
	<-inFence
	if err := c.Abort(9, "x"); err != nil {
		t.Fatal(err)
	}
	c.Close() // unblocks the fence: the job is going away
	if err := <-fenced; !errors.Is(err, ErrClosed) {
		t.Errorf("Fence: %v, want ErrClosed", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLauncherGoesAway(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []step
		op    func(*Client) error
	}{
		{"PMI-1 during fence", cfgV1, concat(hydraV1Init, []step{{recv: "cmd=barrier_in\n"}, hangup}),
			func(c *Client) error { return c.Fence(context.Background()) }},
		{"PMI-1 mid-line", cfgV1, concat(hydraV1Init, []step{{recv: "cmd=barrier_in\n", send: "cmd=barr"}, hangup}),
			func(c *Client) error { return c.Fence(context.Background()) }},
		{"PMI-2 during fence", cfgV2, concat(hydraV2Init, []step{{recv: frame("cmd=kvs-fence;")}, hangup}),
			func(c *Client) error { return c.Fence(context.Background()) }},
		{"PMI-2 mid-frame", cfgV2, concat(hydraV2Init, []step{{recv: frame("cmd=kvs-put;key=k;value=v;"), send: "26    cmd=kvs"}, hangup}),
			func(c *Client) error { return c.Put("k", "v") }},
		{"PMI-2 mid-header", cfgV2, concat(hydraV2Init, []step{{recv: frame("cmd=kvs-fence;"), send: "2"}, hangup}),
			func(c *Client) error { return c.Fence(context.Background()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := net.Pipe()
			done := scripted(srv, tc.steps)
			c, err := NewClient(context.Background(), cli, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = tc.op(c)
			if !errors.Is(err, ErrLauncherClosed) || !strings.Contains(err.Error(), "pmi: launcher closed the connection") {
				t.Fatalf("got %v, want ErrLauncherClosed", err)
			}
			if _, err := c.Get(context.Background(), "k"); !errors.Is(err, ErrLauncherClosed) {
				t.Errorf("Get after the launcher left: %v, want ErrLauncherClosed", err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("during init", func(t *testing.T) {
		cli, srv := net.Pipe()
		done := scripted(srv, []step{{recv: "cmd=init pmi_version=1 pmi_subversion=1\n"}, hangup})
		_, err := NewClient(context.Background(), cli, cfgV1)
		if !errors.Is(err, ErrLauncherClosed) || !strings.Contains(err.Error(), "initialize PMI-1 over PMI_FD") {
			t.Fatalf("got %v, want ErrLauncherClosed from initialize", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// A launcher that keeps the connection open but never answers: the context,
// or else the configured timeout, ends the wait.
func TestNoAnswer(t *testing.T) {
	t.Run("context canceled", func(t *testing.T) {
		cli, srv := net.Pipe()
		defer srv.Close()
		inFence := make(chan struct{})
		scripted(srv, concat(hydraV1Init, []step{{recv: "cmd=barrier_in\n"}, mark}), inFence)
		c, err := NewClient(context.Background(), cli, cfgV1)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		fenced := make(chan error, 1)
		go func() { fenced <- c.Fence(ctx) }()
		<-inFence
		cancel()
		err = <-fenced
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Fence: %v, want context.Canceled", err)
		}
		// The reply may still arrive: the stream is out of step, so the client refuses.
		if err := c.Put("k", "v"); err == nil || !strings.Contains(err.Error(), "earlier failure") {
			t.Fatalf("Put after a canceled Fence: %v, want the earlier failure", err)
		}
	})
	t.Run("context deadline", func(t *testing.T) {
		cli, srv := net.Pipe()
		defer srv.Close()
		scripted(srv, concat(hydraV1Init, []step{{recv: "cmd=barrier_in\n"}}))
		c, err := NewClient(context.Background(), cli, cfgV1)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := c.Fence(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Fence: %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		cli, srv := net.Pipe()
		defer srv.Close()
		scripted(srv, concat(hydraV1Init, []step{{recv: "cmd=put kvsname=K key=k value=v\n"}}))
		cfg := cfgV1
		c, err := NewClient(context.Background(), cli, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.timeout = 20 * time.Millisecond // after the handshake, so only Put is short
		if err := c.Put("k", "v"); !errors.Is(err, ErrTimeout) {
			t.Fatalf("Put: %v, want ErrTimeout", err)
		}
	})
	t.Run("context canceled before the call", func(t *testing.T) {
		cli, srv := net.Pipe()
		defer srv.Close()
		scripted(srv, hydraV1Init)
		c, err := NewClient(context.Background(), cli, cfgV1)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Get: %v, want context.Canceled", err)
		}
		// Nothing was sent: the client is still usable (the script ends at EOF).
	})
	t.Run("close unblocks", func(t *testing.T) {
		cli, srv := net.Pipe()
		defer srv.Close()
		scripted(srv, concat(hydraV1Init, []step{{recv: "cmd=barrier_in\n"}}))
		c, err := NewClient(context.Background(), cli, cfgV1)
		if err != nil {
			t.Fatal(err)
		}
		fenced := make(chan error, 1)
		go func() { fenced <- c.Fence(context.Background()) }()
		c.Close()
		if err := <-fenced; !errors.Is(err, ErrClosed) {
			t.Fatalf("Fence: %v, want ErrClosed", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}
