package pmi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
)

// flavor selects whose reply bytes a fake server imitates.
type flavor int

const (
	hydra flavor = iota // MPICH Hydra 4.0.2: rc last, kvsname kvs_..., missing key rc=-1
	slurm               // Slurm pmi2 plugin: rc first, kvsname <job>.<step>, missing key rc=1
)

func (f flavor) String() string { return [...]string{"hydra", "slurm"}[f] }

// fakeJob is a PMI server for one job of size processes: a key-value space
// with fence semantics (puts become visible when every process has fenced),
// speaking PMI-1 and PMI-2 over any number of connections. Its parsing is
// written independently of the client's on purpose.
type fakeJob struct {
	flavor  flavor
	size    int
	kvsname string
	done    chan struct{} // closed by stop: fences give up

	mu      sync.Mutex
	pending map[string]string
	kvs     map[string]string
	arrived int
	release chan struct{}
	aborts  []string // abort requests, as received
}

func newFakeJob(f flavor, size int) *fakeJob {
	j := &fakeJob{
		flavor: f, size: size, done: make(chan struct{}),
		pending: map[string]string{}, kvs: map[string]string{}, release: make(chan struct{}),
	}
	if f == hydra {
		j.kvsname = "kvs_19430_0_1832353746_vm"
	} else {
		j.kvsname = "5.0"
	}
	return j
}

func (j *fakeJob) stop() { close(j.done) }

var errStopped = errors.New("fake job stopped")

// fence blocks until all size processes have entered it, then publishes
// every pending put.
func (j *fakeJob) fence() error {
	j.mu.Lock()
	ch := j.release
	j.arrived++
	if j.arrived == j.size {
		for k, v := range j.pending {
			j.kvs[k] = v
		}
		j.pending = map[string]string{}
		j.arrived = 0
		close(j.release)
		j.release = make(chan struct{})
	}
	j.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-j.done:
		return errStopped
	}
}

func (j *fakeJob) put(k, v string) {
	j.mu.Lock()
	j.pending[k] = v
	j.mu.Unlock()
}

func (j *fakeJob) get(k string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	v, ok := j.kvs[k]
	return v, ok
}

// serve speaks PMI on conn until the client finalizes, aborts or goes away.
// rank is the process's rank on a PMI_FD-style connection, -1 on a
// PMI_PORT one (the rank then comes from initack's pmiid or fullinit's pmirank).
func (j *fakeJob) serve(conn net.Conn, rank int) error {
	defer conn.Close()
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read first line: %w", err)
	}
	if strings.HasPrefix(line, "cmd=initack ") {
		f := fields1(line)
		if rank, err = strconv.Atoi(f["pmiid"]); err != nil {
			return fmt.Errorf("initack %q: %w", line, err)
		}
		if _, err := fmt.Fprintf(conn, "cmd=initack\ncmd=set size=%d\ncmd=set rank=%d\ncmd=set debug=0\n", j.size, rank); err != nil {
			return err
		}
		if line, err = br.ReadString('\n'); err != nil {
			return err
		}
	}
	f := fields1(line)
	if f["cmd"] != "init" {
		return fmt.Errorf("first request %q is not init", line)
	}
	v, sub := f["pmi_version"], f["pmi_subversion"]
	if j.flavor == hydra {
		_, err = fmt.Fprintf(conn, "cmd=response_to_init pmi_version=%s pmi_subversion=%s rc=0\n", v, sub)
	} else {
		_, err = fmt.Fprintf(conn, "cmd=response_to_init rc=0 pmi_version=%s pmi_subversion=%s\n", v, sub)
	}
	if err != nil {
		return err
	}
	switch v {
	case "1":
		return j.serveV1(conn, br)
	case "2":
		return j.serveV2(conn, br, rank)
	}
	return fmt.Errorf("init asks for version %q", v)
}

func fields1(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func (j *fakeJob) serveV1(conn net.Conn, br *bufio.Reader) error {
	hy := j.flavor == hydra
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("read PMI-1 request: %w", err)
		}
		f := fields1(line)
		var reply string
		switch f["cmd"] {
		case "get_maxes":
			reply = pick(hy, "cmd=maxes kvsname_max=256 keylen_max=64 vallen_max=1024\n",
				"cmd=maxes rc=0 kvsname_max=256 keylen_max=64 vallen_max=1024\n")
		case "get_my_kvsname":
			reply = pick(hy, "cmd=my_kvsname kvsname="+j.kvsname+"\n", "cmd=my_kvsname rc=0 kvsname="+j.kvsname+"\n")
		case "put":
			if f["kvsname"] != j.kvsname {
				return fmt.Errorf("put with kvsname %q", f["kvsname"])
			}
			j.put(f["key"], f["value"])
			reply = pick(hy, "cmd=put_result rc=0 msg=success\n", "cmd=put_result rc=0\n")
		case "barrier_in":
			if err := j.fence(); err != nil {
				return err
			}
			reply = pick(hy, "cmd=barrier_out\n", "cmd=barrier_out rc=0\n")
		case "get":
			if v, ok := j.get(f["key"]); ok {
				reply = pick(hy, "cmd=get_result rc=0 msg=success value="+v+"\n", "cmd=get_result rc=0 value="+v+"\n")
			} else {
				reply = pick(hy, "cmd=get_result rc=-1 msg=key_"+f["key"]+"_not_found value=unknown\n", "cmd=get_result rc=1\n")
			}
		case "finalize":
			_, err := io.WriteString(conn, pick(hy, "cmd=finalize_ack\n", "cmd=finalize_ack rc=0\n"))
			return err
		case "abort":
			j.mu.Lock()
			j.aborts = append(j.aborts, line)
			j.mu.Unlock()
			return nil
		default:
			return fmt.Errorf("unknown PMI-1 request %q", line)
		}
		if _, err := io.WriteString(conn, reply); err != nil {
			return err
		}
	}
}

// fields2 splits a PMI-2 body; the fake never stores ';', so no unescaping.
func fields2(body string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Split(strings.TrimSuffix(body, ";"), ";") {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

func frame(body string) string { return fmt.Sprintf("%-6d%s", len(body), body) }

func (j *fakeJob) serveV2(conn net.Conn, br *bufio.Reader, rank int) error {
	hy := j.flavor == hydra
	for {
		var h [6]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return fmt.Errorf("read PMI-2 header: %w", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(h[:])))
		if err != nil {
			return fmt.Errorf("PMI-2 header %q: %w", h, err)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return err
		}
		f := fields2(string(body))
		var reply string
		switch f["cmd"] {
		case "fullinit":
			if rank < 0 {
				if rank, err = strconv.Atoi(f["pmirank"]); err != nil {
					return fmt.Errorf("fullinit %q: %w", body, err)
				}
			}
			if hy {
				reply = fmt.Sprintf("cmd=fullinit-response;pmi-version=2;pmi-subversion=0;rank=%d;size=%d;appnum=0;debugged=FALSE;pmiverbose=FALSE;rc=0;", rank, j.size)
			} else {
				reply = fmt.Sprintf("cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=%d;size=%d;appnum=-1;debugged=FALSE;pmiverbose=FALSE;", rank, j.size)
			}
		case "job-getid":
			reply = pick(hy, "cmd=job-getid-response;jobid="+j.kvsname+";rc=0;", "cmd=job-getid-response;rc=0;jobid="+j.kvsname+";")
		case "kvs-put":
			j.put(f["key"], f["value"])
			reply = "cmd=kvs-put-response;rc=0;"
		case "kvs-fence":
			if err := j.fence(); err != nil {
				return err
			}
			reply = "cmd=kvs-fence-response;rc=0;"
		case "kvs-get":
			if f["jobid"] != j.kvsname {
				return fmt.Errorf("kvs-get with jobid %q", f["jobid"])
			}
			if v, ok := j.get(f["key"]); ok {
				reply = pick(hy, "cmd=kvs-get-response;found=TRUE;value="+v+";rc=0;", "cmd=kvs-get-response;rc=0;found=TRUE;value="+v+";")
			} else {
				reply = pick(hy, "cmd=kvs-get-response;found=FALSE;rc=0;", "cmd=kvs-get-response;rc=0;found=FALSE;")
			}
		case "finalize":
			_, err := io.WriteString(conn, frame("cmd=finalize-response;rc=0;"))
			return err
		case "abort":
			j.mu.Lock()
			j.aborts = append(j.aborts, string(body))
			j.mu.Unlock()
			return nil
		default:
			return fmt.Errorf("unknown PMI-2 request %q", body)
		}
		if _, err := io.WriteString(conn, frame(reply)); err != nil {
			return err
		}
	}
}

func pick(hydra bool, a, b string) string {
	if hydra {
		return a
	}
	return b
}
