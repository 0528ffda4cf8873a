package pmi

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

type env map[string]string

func (e env) get(k string) string { return e[k] }

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      env
		ok       bool
		want     Config // compared field by field, err aside
		errIn    string // substring of Dial's error, "" for none
		launcher string
	}{
		{name: "nothing", env: env{}, ok: false},
		{name: "PMIx only", env: env{"PMIX_RANK": "0"}, ok: false},
		{name: "hydra PMI_FD (recorded)", env: env{"PMI_FD": "6", "PMI_RANK": "1", "PMI_SIZE": "2", "HYDI_CONTROL_FD": "7", "MPI_LOCALNRANKS": "2"},
			ok: true, want: Config{FD: 6, Rank: 1, Size: 2, Version: 1, Launcher: LauncherHydra}},
		{name: "hydra -pmi-port (recorded)", env: env{"PMI_PORT": "127.0.0.1:35327", "PMI_ID": "1", "HYDI_CONTROL_FD": "7"},
			ok: true, want: Config{FD: -1, Port: "127.0.0.1:35327", ID: "1", Rank: -1, Size: -1, Version: 1, Launcher: LauncherHydra}},
		{name: "slurm pmi2", env: env{"PMI_FD": "5", "PMI_RANK": "0", "PMI_SIZE": "4", "PMI_JOBID": "5.0", "SLURM_JOB_ID": "5", "SLURM_STEP_ID": "0"},
			ok: true, want: Config{FD: 5, Rank: 0, Size: 4, JobID: "5.0", Version: 2, Launcher: LauncherSlurm}},
		{name: "slurm by SLURM_MPI_TYPE", env: env{"PMI_FD": "5", "PMI_RANK": "0", "PMI_SIZE": "4", "SLURM_MPI_TYPE": "pmi2"},
			ok: true, want: Config{FD: 5, Rank: 0, Size: 4, Version: 2, Launcher: LauncherSlurm}},
		{name: "hydra inside a slurm allocation", env: env{"PMI_FD": "6", "PMI_RANK": "0", "PMI_SIZE": "2", "HYDI_CONTROL_FD": "7", "SLURM_JOB_ID": "9", "SLURM_STEP_ID": "1"},
			ok: true, want: Config{FD: 6, Rank: 0, Size: 2, Version: 1, Launcher: LauncherHydra}},
		{name: "override", env: env{"PMI_FD": "6", "PMI_RANK": "0", "PMI_SIZE": "2", "HYDI_CONTROL_FD": "7", "DSMEXEC_PMI_VERSION": "2"},
			ok: true, want: Config{FD: 6, Rank: 0, Size: 2, Version: 2, Launcher: LauncherHydra}},
		{name: "no hint", env: env{"PMI_FD": "3", "PMI_RANK": "0", "PMI_SIZE": "1"},
			ok: true, want: Config{FD: 3, Rank: 0, Size: 1, Version: 1}},
		{name: "PMI_FD wins over PMI_PORT", env: env{"PMI_FD": "3", "PMI_PORT": "127.0.0.1:1", "PMI_ID": "0", "PMI_RANK": "0", "PMI_SIZE": "1"},
			ok: true, want: Config{FD: 3, Rank: 0, Size: 1, Version: 1}},
		{name: "bad PMI_FD", env: env{"PMI_FD": "six"}, ok: true, errIn: `PMI_FD="six"`,
			want: Config{FD: -1, Rank: -1, Size: -1, Version: 1}},
		{name: "negative PMI_FD", env: env{"PMI_FD": "-1"}, ok: true, errIn: `PMI_FD="-1"`,
			want: Config{FD: -1, Rank: -1, Size: -1, Version: 1}},
		{name: "PMI_PORT without PMI_ID", env: env{"PMI_PORT": "127.0.0.1:1"}, ok: true, errIn: "PMI_ID is not",
			want: Config{FD: -1, Port: "127.0.0.1:1", Rank: -1, Size: -1, Version: 1}},
		{name: "bad PMI_SIZE", env: env{"PMI_FD": "3", "PMI_RANK": "0", "PMI_SIZE": "0"}, ok: true, errIn: `PMI_SIZE="0"`,
			want: Config{FD: 3, Rank: 0, Size: -1, Version: 1}},
		{name: "huge PMI_SIZE", env: env{"PMI_FD": "3", "PMI_RANK": "0", "PMI_SIZE": "2000000000"}, ok: true, errIn: `PMI_SIZE="2000000000" is beyond the largest job`,
			want: Config{FD: 3, Rank: 0, Size: -1, Version: 1}},
		{name: "huge PMI_RANK", env: env{"PMI_FD": "3", "PMI_RANK": "1048576"}, ok: true, errIn: `PMI_RANK="1048576" is beyond`,
			want: Config{FD: 3, Rank: -1, Size: -1, Version: 1}},
		{name: "rank beyond size", env: env{"PMI_FD": "3", "PMI_RANK": "2", "PMI_SIZE": "2"}, ok: true, errIn: "PMI_RANK=2 is not below PMI_SIZE=2",
			want: Config{FD: 3, Rank: 2, Size: 2, Version: 1}},
		{name: "bad override", env: env{"PMI_FD": "3", "PMI_RANK": "0", "PMI_SIZE": "1", "DSMEXEC_PMI_VERSION": "3"}, ok: true, errIn: "DSMEXEC_PMI_VERSION",
			want: Config{FD: 3, Rank: 0, Size: 1, Version: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := Detect(tc.env.get)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			got := fmt.Sprintf("%d %q %q %d %d %q %d %q", c.FD, c.Port, c.ID, c.Rank, c.Size, c.JobID, c.Version, c.Launcher)
			w := tc.want
			want := fmt.Sprintf("%d %q %q %d %d %q %d %q", w.FD, w.Port, w.ID, w.Rank, w.Size, w.JobID, w.Version, w.Launcher)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if c.Reason == "" {
				t.Error("no Reason")
			}
			switch {
			case tc.errIn == "" && c.err != nil:
				t.Errorf("unexpected environment error %v", c.err)
			case tc.errIn != "" && (!errors.Is(c.err, ErrEnv) || !strings.Contains(c.err.Error(), tc.errIn)):
				t.Errorf("environment error %v, want ErrEnv mentioning %q", c.err, tc.errIn)
			}
		})
	}
}

func TestUnsupported(t *testing.T) {
	for _, tc := range []struct {
		env  env
		want string
	}{
		{env{}, ""},
		{env{"PMI_FD": "6", "PMIX_RANK": "0"}, ""}, // PMI wins
		{env{"PMIX_RANK": "0", "PMIX_NAMESPACE": "slurm.pmix.5.0"}, "PMIx"},
		{env{"OMPI_COMM_WORLD_SIZE": "4", "PMIX_RANK": "1"}, "Open MPI"},
		{env{"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "2"}, "srun --mpi=pmi2"},
		{env{"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}, ""},
	} {
		got := Unsupported(tc.env.get)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Unsupported(%v) = %q, want one mentioning %q", tc.env, got, tc.want)
		}
	}
}

// nopConn is a net.Conn that is never used (tests that fail before I/O).
type nopConn struct{}

func (nopConn) Read([]byte) (int, error)         { return 0, errors.New("nopConn") }
func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return nil }
func (nopConn) RemoteAddr() net.Addr             { return nil }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
