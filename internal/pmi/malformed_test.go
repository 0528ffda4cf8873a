package pmi

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

// Every malformed or hostile reply is an error, never a panic or a hang.
func TestMalformedReplies(t *testing.T) {
	const initV1 = "cmd=init pmi_version=1 pmi_subversion=1\n"
	const initV2 = "cmd=init pmi_version=2 pmi_subversion=0\n"
	okInitV2 := step{initV2, "cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n"}
	fullinit := frame("cmd=fullinit;pmijobid=;pmirank=0;threaded=FALSE;")
	put1 := "cmd=put kvsname=K key=k value=v\n"
	get1 := "cmd=get kvsname=K key=k\n"
	get2 := frame("cmd=kvs-get;jobid=J;srcid=-1;key=k;")
	var reply *ReplyError

	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []step
		op    func(*Client) error // after a successful handshake; nil: the handshake fails
		is    error               // errors.Is target, or nil with isReply
		reply bool                // want a *ReplyError
	}{
		{name: "init: not key=value", cfg: cfgV1, steps: []step{{initV1, "garbage\n"}}, is: ErrMalformed},
		{name: "init: no cmd", cfg: cfgV1, steps: []step{{initV1, "rc=0 pmi_version=1\n"}}, is: ErrMalformed},
		{name: "init: empty line", cfg: cfgV1, steps: []step{{initV1, "\n"}}, is: ErrMalformed},
		{name: "init: no rc", cfg: cfgV1, steps: []step{{initV1, "cmd=response_to_init pmi_version=1 pmi_subversion=1\n"}}, is: ErrMalformed},
		{name: "init: rc not a number", cfg: cfgV1, steps: []step{{initV1, "cmd=response_to_init rc=x pmi_version=1\n"}}, is: ErrMalformed},
		{name: "init: rc twice", cfg: cfgV1, steps: []step{{initV1, "cmd=response_to_init rc=0 rc=1 pmi_version=1\n"}}, is: ErrMalformed},
		{name: "init: refused", cfg: cfgV1, steps: []step{{initV1, "cmd=response_to_init rc=1 pmi_version=2 pmi_subversion=0\n"}}, reply: true},
		{name: "init: unknown version", cfg: cfgV1, steps: []step{{initV1, "cmd=response_to_init pmi_version=3 pmi_subversion=0 rc=0\n"}}, is: ErrMalformed},
		{name: "init: no version", cfg: cfgV1, steps: []step{{initV1, "cmd=response_to_init rc=0\n"}}, is: ErrMalformed},
		{name: "init: wrong cmd", cfg: cfgV1, steps: []step{{initV1, "cmd=maxes rc=0\n"}}, is: ErrMalformed},
		{name: "init: endless line", cfg: cfgV1, steps: []step{{initV1, "cmd=response_to_init x=" + strings.Repeat("a", maxReply) + "\n"}}, is: ErrMalformed},
		{name: "maxes: bad vallen_max", cfg: cfgV1, steps: []step{hydraV1Init[0], {"cmd=get_maxes\n", "cmd=maxes vallen_max=lots\n"}}, is: ErrMalformed},
		{name: "maxes: tiny keylen_max", cfg: cfgV1, steps: []step{hydraV1Init[0], {"cmd=get_maxes\n", "cmd=maxes keylen_max=1\n"}}, is: ErrMalformed},
		{name: "my_kvsname: none", cfg: cfgV1, steps: concat(hydraV1Init[:2], []step{{"cmd=get_my_kvsname\n", "cmd=my_kvsname rc=0\n"}}), is: ErrMalformed},
		{name: "PMI_FD without PMI_RANK", cfg: Config{FD: 6, Rank: -1, Size: -1, Version: 1, Timeout: testTimeout}, steps: hydraV1Init, is: ErrEnv},
		{name: "port: set rank not a number", cfg: Config{FD: -1, Port: "p", ID: "0", Version: 1, Timeout: testTimeout},
			steps: []step{{"cmd=initack pmiid=0\n", "cmd=initack\ncmd=set size=2\ncmd=set rank=zero\n"}}, is: ErrMalformed},
		{name: "port: rank beyond size", cfg: Config{FD: -1, Port: "p", ID: "0", Rank: -1, Size: -1, Version: 1, Timeout: testTimeout},
			steps: concat([]step{{"cmd=initack pmiid=0\n", "cmd=initack\ncmd=set size=2\ncmd=set rank=2\ncmd=set debug=0\n"}}, hydraV1Init), is: ErrMalformed},
		{name: "port: no initack", cfg: Config{FD: -1, Port: "p", ID: "0", Version: 1, Timeout: testTimeout},
			steps: []step{{"cmd=initack pmiid=0\n", "cmd=set size=2\n"}}, is: ErrMalformed},

		{name: "put: wrong reply", cfg: cfgV1, steps: concat(hydraV1Init, []step{{put1, "cmd=barrier_out\n"}}),
			op: func(c *Client) error { return c.Put("k", "v") }, is: ErrMalformed},
		{name: "put: refused", cfg: cfgV1, steps: concat(hydraV1Init, []step{{put1, "cmd=put_result rc=-1 msg=duplicate_key\n"}}),
			op: func(c *Client) error { return c.Put("k", "v") }, reply: true},
		{name: "put: no rc", cfg: cfgV1, steps: concat(hydraV1Init, []step{{put1, "cmd=put_result msg=success\n"}}),
			op: func(c *Client) error { return c.Put("k", "v") }, is: ErrMalformed},
		{name: "barrier_out: failure", cfg: cfgV1, steps: concat(hydraV1Init, []step{{"cmd=barrier_in\n", "cmd=barrier_out rc=1 msg=mpi/pmi2:_failed_to_send_temp_kvs\n"}}),
			op: func(c *Client) error { return c.Fence(context.Background()) }, reply: true},
		{name: "get: rc=0 without value", cfg: cfgV1, steps: concat(hydraV1Init, []step{{get1, "cmd=get_result rc=0 msg=success\n"}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, is: ErrMalformed},
		{name: "get: field without =", cfg: cfgV1, steps: concat(hydraV1Init, []step{{get1, "cmd=get_result rc=0 value\n"}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, is: ErrMalformed},
		{name: "get: empty key", cfg: cfgV1, steps: concat(hydraV1Init, []step{{get1, "cmd=get_result =x rc=0 value=v\n"}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, is: ErrMalformed},

		{name: "PMI-2 init: refused", cfg: cfgV2, steps: []step{{initV2, "cmd=response_to_init rc=1 pmi_version=1 pmi_subversion=1\n"}}, reply: true},
		{name: "PMI-2: header not a number", cfg: cfgV2, steps: []step{okInitV2, {fullinit, "abcdefcmd=x;"}}, is: ErrMalformed},
		{name: "PMI-2: zero length", cfg: cfgV2, steps: []step{okInitV2, {fullinit, "0     "}}, is: ErrMalformed},
		{name: "PMI-2: negative length", cfg: cfgV2, steps: []step{okInitV2, {fullinit, "-5    "}}, is: ErrMalformed},
		{name: "PMI-2: huge length", cfg: cfgV2, steps: []step{okInitV2, {fullinit, "999999"}}, is: ErrMalformed},
		{name: "PMI-2: digits then junk", cfg: cfgV2, steps: []step{okInitV2, {fullinit, "12 x  "}}, is: ErrMalformed},
		{name: "PMI-2: unterminated", cfg: cfgV2, steps: []step{okInitV2, {fullinit, frame("cmd=fullinit-response;rc=0")}}, is: ErrMalformed},
		{name: "PMI-2: no cmd", cfg: cfgV2, steps: []step{okInitV2, {fullinit, frame("rc=0;rank=0;size=1;")}}, is: ErrMalformed},
		{name: "PMI-2: field without =", cfg: cfgV2, steps: []step{okInitV2, {fullinit, frame("cmd=fullinit-response;rc;")}}, is: ErrMalformed},
		{name: "fullinit: rank beyond size", cfg: cfgV2, steps: []step{okInitV2,
			{fullinit, frame("cmd=fullinit-response;rc=0;rank=2;size=2;")}}, is: ErrMalformed},
		{name: "fullinit: huge size", cfg: cfgV2, steps: []step{okInitV2,
			{fullinit, frame("cmd=fullinit-response;rc=0;rank=0;size=2000000000;")}}, is: ErrMalformed},
		{name: "fullinit: size zero", cfg: cfgV2, steps: []step{okInitV2,
			{fullinit, frame("cmd=fullinit-response;rc=0;rank=0;size=0;")}}, is: ErrMalformed},
		{name: "fullinit: disagrees with PMI_RANK", cfg: cfgV2, steps: []step{okInitV2,
			{fullinit, frame("cmd=fullinit-response;rc=0;rank=1;size=2;")}}, is: ErrEnv},
		{name: "fullinit: refused", cfg: cfgV2, steps: []step{okInitV2,
			{fullinit, frame("cmd=fullinit-response;rc=14;errmsg=invalid args;")}}, reply: true},
		{name: "fullinit: wrong version", cfg: cfgV2, steps: []step{okInitV2,
			{fullinit, frame("cmd=fullinit-response;rc=0;pmi-version=3;rank=0;size=2;")}}, is: ErrMalformed},
		{name: "job-getid: no jobid", cfg: cfgV2, steps: concat(hydraV2Init[:2], []step{{frame("cmd=job-getid;"), frame("cmd=job-getid-response;rc=0;")}}), is: ErrMalformed},
		{name: "kvs-get: found=MAYBE", cfg: cfgV2, steps: concat(hydraV2Init, []step{{get2, frame("cmd=kvs-get-response;rc=0;found=MAYBE;")}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, is: ErrMalformed},
		{name: "kvs-get: no found", cfg: cfgV2, steps: concat(hydraV2Init, []step{{get2, frame("cmd=kvs-get-response;rc=0;value=v;")}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, is: ErrMalformed},
		{name: "kvs-get: found without value", cfg: cfgV2, steps: concat(hydraV2Init, []step{{get2, frame("cmd=kvs-get-response;rc=0;found=TRUE;")}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, is: ErrMalformed},
		{name: "kvs-get: refused", cfg: cfgV2, steps: concat(hydraV2Init, []step{{get2, frame("cmd=kvs-get-response;rc=3;errmsg=no such job;")}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, reply: true},
		{name: "kvs-get: escaped value", cfg: cfgV2, steps: concat(hydraV2Init, []step{{get2, frame("cmd=kvs-get-response;rc=0;found=TRUE;value=a;;b;;;extra;")}}),
			op: func(c *Client) error { _, err := c.Get(context.Background(), "k"); return err }, is: ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := net.Pipe()
			defer srv.Close()
			scripted(srv, tc.steps)
			c, err := NewClient(context.Background(), cli, tc.cfg)
			if tc.op != nil {
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				defer c.Close()
				err = tc.op(c)
			} else if err == nil {
				c.Close()
				t.Fatal("NewClient succeeded, want an error")
			}
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.reply && !errors.As(err, &reply):
				t.Fatalf("got %v, want a *ReplyError", err)
			case !tc.reply && !errors.Is(err, tc.is):
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "initialize PMI-") && !strings.Contains(err.Error(), "pmi: ") {
				t.Errorf("error %q names neither the step nor the package", err)
			}
		})
	}
}

// A PMI-2 value the server escaped per the spec is unescaped.
func TestEscapedValue(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	scripted(srv, concat(hydraV2Init, []step{{frame("cmd=kvs-get;jobid=J;srcid=-1;key=k;"), frame("cmd=kvs-get-response;rc=0;found=TRUE;value=a;;b;;;")}}))
	c, err := NewClient(context.Background(), cli, cfgV2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.Get(context.Background(), "k"); err != nil || v != "a;b;" {
		t.Fatalf("Get = %q, %v; want \"a;b;\"", v, err)
	}
}

// Keys and values the launchers could not store intact are refused before
// anything is sent (the scripted server has nothing after the handshake).
func TestPutValidation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		init       []step
		key, value string
		wantIn     string
	}{
		{"empty key", cfgV1, hydraV1Init, "", "v", "empty key"},
		{"key of 64 bytes", cfgV1, hydraV1Init, strings.Repeat("k", 64), "v", "at most 63"},
		{"key with =", cfgV1, hydraV1Init, "a=b", "v", `"="`},
		{"key with ;", cfgV2, hydraV2Init, "a;b", "v", `";"`},
		{"key with space", cfgV1, hydraV1Init, "a b", "v", `" "`},
		{"key not ASCII", cfgV2, hydraV2Init, "clé", "v", `"\xc3"`},
		{"value of 1024 bytes", cfgV1, hydraV1Init, "k", strings.Repeat("v", 1024), "at most 1023"},
		{"PMI-2 value of 1024 bytes", cfgV2, hydraV2Init, "k", strings.Repeat("v", 1024), "at most 1023"},
		{"value with space", cfgV1, hydraV1Init, "k", "a b", `" "`},
		{"value with newline", cfgV2, hydraV2Init, "k", "a\nb", `"\n"`},
		{"value with ;", cfgV2, hydraV2Init, "k", "a;b", `";"`},
		{"PMI-1 line over 1024 bytes", cfgV1, hydraV1Init, strings.Repeat("k", 63), strings.Repeat("v", 1000), "1024-byte line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := net.Pipe()
			done := scripted(srv, tc.init)
			c, err := NewClient(context.Background(), cli, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Put(tc.key, tc.value)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("Put: %v; want ErrInvalid mentioning %q", err, tc.wantIn)
			}
			if c.checkKey(tc.key) != nil {
				if _, err := c.Get(context.Background(), tc.key); !errors.Is(err, ErrInvalid) {
					t.Fatalf("Get: %v; want ErrInvalid", err)
				}
			}
			c.Close()
			if err := <-done; err != nil {
				t.Fatal(err) // something went on the wire
			}
		})
	}
}
