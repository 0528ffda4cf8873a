package pmi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bytes recorded (strace) from rank 1 of a 2-rank `srun --mpi=pmi2` step of
// Slurm 22.05.8 (Debian 12 slurm-wlm), job 6, step 0. Slurm sometimes writes a
// PMI-2 reply's length header and its body with two write() calls: the
// client must not assume one read() holds a whole frame.
var slurmRecordedV2 = []step{
	{"cmd=init pmi_version=2 pmi_subversion=0\n", "cmd=response_to_init rc=0 pmi_version=2 pmi_subversion=0\n"},
	{"51    cmd=fullinit;pmijobid=6.0;pmirank=1;threaded=FALSE;",
		"114   cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=1;size=2;appnum=-1;debugged=FALSE;pmiverbose=FALSE;"},
	{"14    cmd=job-getid;", "38    cmd=job-getid-response;rc=0;jobid=6.0;"},
	{"53    cmd=kvs-put;key=dsmexec-addr-1;value=127.0.0.1:40001;", "26    cmd=kvs-put-response;rc=0;"},
	{"14    cmd=kvs-fence;", "28    cmd=kvs-fence-response;rc=0;"},
	{"50    cmd=kvs-get;jobid=6.0;srcid=-1;key=dsmexec-addr-0;", "59    "},
	{"", "cmd=kvs-get-response;rc=0;found=TRUE;value=127.0.0.1:40000;"},
	{"51    cmd=kvs-get;jobid=6.0;srcid=-1;key=dsmexec-missing;", "38    cmd=kvs-get-response;rc=0;found=FALSE;"},
	{"13    cmd=finalize;", "27    cmd=finalize-response;rc=0;"},
}

func TestSlurmRecorded(t *testing.T) {
	cli, srv := net.Pipe()
	done := scripted(srv, slurmRecordedV2)
	cfg, ok := Detect(env{"PMI_FD": "11", "PMI_RANK": "1", "PMI_SIZE": "2", "PMI_JOBID": "6.0",
		"SLURM_MPI_TYPE": "pmi2", "SLURM_STEP_ID": "0"}.get)
	if !ok || cfg.Version != 2 || cfg.Launcher != LauncherSlurm {
		t.Fatalf("Detect under srun --mpi=pmi2: %+v, %v", cfg, ok)
	}
	cfg.Timeout = testTimeout
	c, err := NewClient(context.Background(), cli, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if c.Rank() != 1 || c.Size() != 2 || c.KVSName() != "6.0" {
		t.Fatalf("rank %d size %d kvs %q, want 1, 2, 6.0", c.Rank(), c.Size(), c.KVSName())
	}
	if err := c.Put("dsmexec-addr-1", "127.0.0.1:40001"); err != nil {
		t.Fatal(err)
	}
	if err := c.Fence(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "dsmexec-addr-0"); err != nil || v != "127.0.0.1:40000" {
		t.Fatalf("Get of a reply split across writes: %q, %v", v, err)
	}
	if _, err := c.Get(ctx, "dsmexec-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if err := c.Finalize(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Slurm's pmi2 plugin (22.05.8) kills the step on a PMI-2 abort only when
// the request carries isworld=TRUE (compared without case); any other field
// name is ignored without a word and the job hangs on. This mirrors how it
// reads the request, independently of the client's own parser.
func TestSlurmAbortIsWorld(t *testing.T) {
	cli, srv := net.Pipe()
	defer srv.Close()
	got := make(chan map[string]string, 1)
	errc := make(chan error, 1)
	go func() {
		srv.SetDeadline(time.Now().Add(testTimeout))
		br := bufio.NewReader(srv)
		line, err := br.ReadString('\n')
		if err != nil || line != "cmd=init pmi_version=2 pmi_subversion=0\n" {
			errc <- errors.New("init: " + strconv.Quote(line))
			return
		}
		io.WriteString(srv, "cmd=response_to_init rc=0 pmi_version=2 pmi_subversion=0\n")
		for _, reply := range []string{
			"cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=0;size=3;appnum=-1;debugged=FALSE;pmiverbose=FALSE;",
			"cmd=job-getid-response;rc=0;jobid=9.0;",
			"", // the abort: no reply
		} {
			var h [6]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				errc <- err
				return
			}
			n, err := strconv.Atoi(strings.TrimSpace(string(h[:])))
			if err != nil {
				errc <- err
				return
			}
			body := make([]byte, n)
			if _, err := io.ReadFull(br, body); err != nil {
				errc <- err
				return
			}
			if reply == "" {
				got <- fields2(string(body))
				return
			}
			io.WriteString(srv, frame(reply))
		}
	}()
	c, err := NewClient(context.Background(), cli, Config{FD: 11, Rank: 0, Size: 3, JobID: "9.0", Version: 2, Launcher: LauncherSlurm, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Abort(1, "rank 0: out of memory"); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if f["cmd"] != "abort" || !strings.EqualFold(f["isworld"], "TRUE") {
			t.Fatalf("abort request %v: Slurm kills the step only for cmd=abort with isworld=TRUE", f)
		}
		if f["msg"] != "rank 0: out of memory" {
			t.Errorf("abort msg %q", f["msg"])
		}
	case err := <-errc:
		t.Fatal(err)
	}
}
