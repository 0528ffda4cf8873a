package pmi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The real launcher: this test binary re-runs itself as a 3-rank job under
// MPICH's mpiexec.hydra (Debian package mpich), on loopback only (-iface lo).
const (
	childEnv      = "DSMEXEC_PMI_TEST_CHILD" // set in the ranks
	childAbortEnv = "DSMEXEC_PMI_TEST_ABORT" // rank 1 aborts with status 7
)

func TestHydra(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("this is a rank of a Hydra job")
	}
	mpiexec, err := exec.LookPath("mpiexec.hydra")
	if err != nil {
		t.Skip("mpiexec.hydra is not installed (CI installs Debian's mpich)")
	}
	line := regexp.MustCompile(`(?m)^pmi-child rank=(\d) size=(\d) via="([^"]*)" addrs=(\S+) secret=(\S+)$`)
	for _, tc := range []struct {
		name    string
		args    []string
		env     []string
		exit    func(int) bool
		wantVia string
	}{
		{"PMI-1 over PMI_FD", nil, nil, is(0), "PMI-1 over PMI_FD (MPICH Hydra)"},
		{"PMI-1 over PMI_PORT", []string{"-pmi-port"}, nil, is(0), "PMI-1 over PMI_PORT 127.0.0.1:"},
		{"PMI-2 over PMI_FD", nil, []string{EnvVersion + "=2"}, is(0), "PMI-2 over PMI_FD (MPICH Hydra)"},
		{"PMI-2 over PMI_PORT", []string{"-pmi-port"}, []string{EnvVersion + "=2"}, is(0), "PMI-2 over PMI_PORT 127.0.0.1:"},
		// PMI-1 abort ends the job with the status given.
		{"PMI-1 abort", nil, []string{childAbortEnv + "=1"}, is(7), ""},
		// Hydra 4.0.2 rejects a PMI-2 abort as an unknown command, which still
		// ends the job (status 255); 3 would mean the abort did nothing.
		{"PMI-2 abort", nil, []string{childAbortEnv + "=1", EnvVersion + "=2"}, func(s int) bool { return s != 0 && s != 3 }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append([]string{"-iface", "lo", "-n", "3"}, tc.args...)
			args = append(args, os.Args[0], "-test.run=^TestHydraChild$")
			cmd := exec.CommandContext(ctx, mpiexec, args...)
			// GORACE: a -race binary otherwise lingers a second at exit.
			cmd.Env = append(os.Environ(), append([]string{childEnv + "=1", "GORACE=atexit_sleep_ms=0"}, tc.env...)...)
			out, err := cmd.CombinedOutput()
			status := 0
			var ee *exec.ExitError
			switch {
			case errors.As(err, &ee):
				status = ee.ExitCode()
			case err != nil:
				t.Fatalf("run %s: %v\n%s", mpiexec, err, out)
			}
			if !tc.exit(status) {
				t.Fatalf("mpiexec.hydra exited with status %d\n%s", status, out)
			}
			if tc.wantVia == "" {
				return
			}
			var ranks []string
			for _, m := range line.FindAllStringSubmatch(string(out), -1) {
				ranks = append(ranks, m[1])
				if m[2] != "3" || !strings.HasPrefix(m[3], tc.wantVia) ||
					m[4] != "127.0.0.1:40000,127.0.0.1:40001,127.0.0.1:40002" || m[5] != "c0ffee" {
					t.Errorf("rank %s reported %q", m[1], m[0])
				}
			}
			sort.Strings(ranks)
			if strings.Join(ranks, ",") != "0,1,2" {
				t.Fatalf("ranks reporting: %v, want 0,1,2\n%s", ranks, out)
			}
		})
	}
}

func is(want int) func(int) bool { return func(s int) bool { return s == want } }

// TestHydraChild is one rank of TestHydra's jobs.
func TestHydraChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestHydra under mpiexec.hydra")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, ok := Detect(os.Getenv)
	if !ok {
		t.Fatal("Detect found no PMI launcher")
	}
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(childAbortEnv) != "" {
		if c.Rank() == 1 {
			if err := c.Abort(7, "rank 1: test abort"); err != nil {
				t.Fatal(err)
			}
			<-ctx.Done() // the launcher kills us; if not, exit 3 when the bound expires
			os.Exit(3)
		}
		c.Fence(ctx) // rank 1 never arrives; the launcher tears the job down
		// Wait to be killed: exiting at once (the fence may fail as soon as
		// the launcher starts tearing down) would race the abort's status.
		<-ctx.Done()
		os.Exit(3)
	}
	if err := c.Put(fmt.Sprintf("dsmexec-addr-%d", c.Rank()), fmt.Sprintf("127.0.0.1:%d", 40000+c.Rank())); err != nil {
		t.Fatal(err)
	}
	if c.Rank() == 0 {
		if err := c.Put("dsmexec-secret", "c0ffee"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Fence(ctx); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for r := range c.Size() {
		v, err := c.Get(ctx, fmt.Sprintf("dsmexec-addr-%d", r))
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, v)
	}
	secret, err := c.Get(ctx, "dsmexec-secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "dsmexec-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	fmt.Printf("pmi-child rank=%d size=%d via=%q addrs=%s secret=%s\n", c.Rank(), c.Size(), c.Launcher(), strings.Join(addrs, ","), secret)
	if err := c.Finalize(); err != nil {
		t.Fatal(err)
	}
}
