package pmi

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EnvVersion forces the wire version ("1" or "2") when the launcher speaks
// both and the guess from the environment is wrong.
const EnvVersion = "DSMEXEC_PMI_VERSION"

// DefaultTimeout bounds an exchange with the launcher when the caller's
// context has no deadline (and always for Put, Abort and Finalize).
const DefaultTimeout = 60 * time.Second

// MaxSize is the largest job size this package accepts from PMI_SIZE or
// from the launcher (and so the bound on a rank number): far beyond any
// real job, small enough that tables indexed by rank stay affordable, so a
// corrupt or hostile value is an error rather than an out-of-memory crash.
const MaxSize = 1 << 20

// Launcher names, as reported in Config.Launcher.
const (
	LauncherHydra = "hydra" // MPICH's mpiexec.hydra
	LauncherSlurm = "slurm" // srun --mpi=pmi2
)

// Config says how to reach the launcher's PMI server. Detect fills it from the
// environment; tests build it by hand.
type Config struct {
	// FD is the inherited, already connected socket (PMI_FD), or -1.
	FD int
	// Port is host:port of the launcher's PMI listener (PMI_PORT); used when FD < 0.
	Port string
	// ID is PMI_ID, the identity a PMI_PORT client presents.
	ID string
	// Rank and Size come from PMI_RANK and PMI_SIZE, -1 when unset: in PMI_PORT
	// mode Hydra sends them over the wire instead. Values the wire reports
	// must agree with them.
	Rank, Size int
	// JobID is PMI_JOBID (set by Slurm), sent in the PMI-2 fullinit.
	JobID string
	// Version is the wire version to ask for: 1 or 2. A PMI-1-only server
	// answering a PMI-2 init with version 1 is followed down to PMI-1.
	Version int
	// Launcher is the launcher the environment points at (LauncherHydra,
	// LauncherSlurm) or "" when there is no hint.
	Launcher string
	// Reason says why Version was chosen, for diagnostics.
	Reason string
	// Timeout bounds each exchange with the launcher; 0 means DefaultTimeout.
	Timeout time.Duration

	err error // what is wrong with the environment; Dial reports it
}

// Detect reports whether the environment says this process was started by a
// PMI launcher (PMI_FD, or PMI_PORT with PMI_ID), and which wire version to
// try. It returns true even when those variables are malformed, so that a
// broken launch fails in Dial with a message instead of silently running as a
// singleton.
//
// The version is chosen like this, first match wins:
//
//  1. DSMEXEC_PMI_VERSION=1 or 2.
//  2. HYDI_CONTROL_FD is set: MPICH Hydra, PMI-1. Hydra speaks both, but only
//     its PMI-1 abort carries the exit status (4.0.2 rejects a PMI-2 abort as
//     an unknown command and ends the job with status 255).
//  3. PMI_JOBID, SLURM_MPI_TYPE=pmi2* or SLURM_STEP_ID is set: Slurm's pmi2
//     plugin, PMI-2 (its native protocol; its PMI-1 path parses each request
//     from a single read()).
//  4. Otherwise PMI-1, which every PMI server speaks.
//
// Rule 2 comes before rule 3 because Hydra started inside a Slurm allocation
// leaves SLURM_* variables in the ranks' environment.
func Detect(getenv func(string) string) (Config, bool) {
	fdStr, port := getenv("PMI_FD"), getenv("PMI_PORT")
	if fdStr == "" && port == "" {
		return Config{}, false
	}
	c := Config{FD: -1, Rank: -1, Size: -1, JobID: getenv("PMI_JOBID")}
	var errs []string
	if fdStr != "" {
		fd, err := strconv.Atoi(fdStr)
		if err != nil || fd < 0 {
			errs = append(errs, fmt.Sprintf("PMI_FD=%q is not a file descriptor number", fdStr))
		} else {
			c.FD = fd
		}
	} else {
		c.Port = port
		c.ID = getenv("PMI_ID")
		if c.ID == "" {
			errs = append(errs, fmt.Sprintf("PMI_PORT=%q is set but PMI_ID is not", port))
		}
	}
	for _, v := range []struct {
		name string
		dst  *int
		min  int
	}{{"PMI_RANK", &c.Rank, 0}, {"PMI_SIZE", &c.Size, 1}} {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < v.min {
			errs = append(errs, fmt.Sprintf("%s=%q is not a valid number", v.name, s))
			continue
		}
		if n > MaxSize || (v.dst == &c.Rank && n >= MaxSize) {
			errs = append(errs, fmt.Sprintf("%s=%q is beyond the largest job this library supports (%d ranks)", v.name, s, MaxSize))
			continue
		}
		*v.dst = n
	}
	if c.Rank >= 0 && c.Size > 0 && c.Rank >= c.Size {
		errs = append(errs, fmt.Sprintf("PMI_RANK=%d is not below PMI_SIZE=%d", c.Rank, c.Size))
	}

	switch {
	case getenv("HYDI_CONTROL_FD") != "":
		c.Launcher = LauncherHydra
	case c.JobID != "" || strings.HasPrefix(getenv("SLURM_MPI_TYPE"), "pmi2") || getenv("SLURM_STEP_ID") != "":
		c.Launcher = LauncherSlurm
	}
	switch v := getenv(EnvVersion); {
	case v == "1" || v == "2":
		c.Version = int(v[0] - '0')
		c.Reason = EnvVersion + "=" + v
	case v != "":
		errs = append(errs, fmt.Sprintf("%s=%q: want 1 or 2", EnvVersion, v))
		c.Version = 1
		c.Reason = EnvVersion + " is invalid"
	case c.Launcher == LauncherHydra:
		c.Version = 1
		c.Reason = "HYDI_CONTROL_FD is set (MPICH Hydra): PMI-1, whose abort keeps the exit status"
	case c.Launcher == LauncherSlurm:
		c.Version = 2
		c.Reason = "Slurm variables are set (srun --mpi=pmi2): PMI-2"
	default:
		c.Version = 1
		c.Reason = "no launcher hint: PMI-1, which every PMI server speaks"
	}
	if len(errs) > 0 {
		c.err = fmt.Errorf("%w: %s", ErrEnv, strings.Join(errs, "; "))
	}
	return c, true
}

// Unsupported returns a sentence naming a launcher this package cannot talk
// to when the environment shows one (PMIx, Open MPI, or Slurm without PMI),
// and "" otherwise. Call it when Detect returns false: a multi-process launch
// that falls back to singletons runs N separate jobs of size 1.
func Unsupported(getenv func(string) string) string {
	if _, ok := Detect(getenv); ok {
		return ""
	}
	switch {
	case getenv("OMPI_COMM_WORLD_SIZE") != "":
		return "started by Open MPI's mpirun (OMPI_COMM_WORLD_SIZE is set), which speaks only PMIx: use dsmexec's mpirun or mpiexec.hydra"
	case getenv("PMIX_RANK") != "":
		return "started by a PMIx launcher (PMIX_RANK is set), which dsmexec cannot talk to: use srun --mpi=pmi2 or mpiexec.hydra"
	}
	if n, err := strconv.Atoi(getenv("SLURM_STEP_NUM_TASKS")); err == nil && n > 1 && getenv("SLURM_PROCID") != "" {
		return fmt.Sprintf("started by srun as one of %d tasks without PMI (no PMI_FD): use srun --mpi=pmi2", n)
	}
	return ""
}
