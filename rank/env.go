package rank

import (
	"fmt"
	"strconv"
	"time"

	"github.com/dsmexec/dsmexec/internal/units"
)

// launchEnv is the DSMEXEC_* contract between mpirun and a rank.
type launchEnv struct {
	rank, size int
	master     string
	token      string
	host       string
	dsmSize    int64
	timeout    time.Duration
}

// DefaultDSMSize is the shared region's size when DSMEXEC_DSM_SIZE is unset.
const DefaultDSMSize = 64 << 20

// readEnv returns nil when no DSMEXEC_RANK is set (not started by mpirun).
func readEnv(getenv func(string) string) (*launchEnv, error) {
	rs := getenv("DSMEXEC_RANK")
	if rs == "" {
		return nil, nil
	}
	e := &launchEnv{master: getenv("DSMEXEC_MASTER"), token: getenv("DSMEXEC_TOKEN"), host: getenv("DSMEXEC_HOST"), timeout: 60 * time.Second}
	var err error
	if e.rank, err = strconv.Atoi(rs); err != nil {
		return nil, fmt.Errorf("rank: DSMEXEC_RANK=%q is not a number", rs)
	}
	ss := getenv("DSMEXEC_SIZE")
	if e.size, err = strconv.Atoi(ss); err != nil || e.size < 1 {
		return nil, fmt.Errorf("rank: DSMEXEC_SIZE=%q is not a positive number", ss)
	}
	if e.rank < 0 || e.rank >= e.size {
		return nil, fmt.Errorf("rank: DSMEXEC_RANK=%d is outside 0..%d", e.rank, e.size-1)
	}
	if e.master == "" {
		return nil, fmt.Errorf("rank: DSMEXEC_RANK is set but DSMEXEC_MASTER is not (start the program with mpirun)")
	}
	if e.token == "" {
		return nil, fmt.Errorf("rank: DSMEXEC_TOKEN is not set (start the program with mpirun)")
	}
	if e.host == "" {
		e.host = "localhost"
	}
	if e.dsmSize, err = dsmSizeFromEnv(getenv); err != nil {
		return nil, err
	}
	if t := getenv("DSMEXEC_TIMEOUT"); t != "" {
		if e.timeout, err = time.ParseDuration(t); err != nil {
			return nil, fmt.Errorf("rank: DSMEXEC_TIMEOUT=%q: %w", t, err)
		}
	}
	return e, nil
}

func dsmSizeFromEnv(getenv func(string) string) (int64, error) {
	s := getenv("DSMEXEC_DSM_SIZE")
	if s == "" {
		return DefaultDSMSize, nil
	}
	n, err := units.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("rank: DSMEXEC_DSM_SIZE=%q: %w", s, err)
	}
	return n, nil
}

// Engine defaults: the spin before parking (DSMEXEC_SPIN) and the bound on
// unexpected-message memory (DSMEXEC_UNEXPECTED_LIMIT).
const (
	defaultSpin            = 50 * time.Microsecond
	defaultUnexpectedLimit = 1 << 30
)

// engineEnv reads DSMEXEC_SPIN ("0" disables spinning; a duration sets
// it) and DSMEXEC_UNEXPECTED_LIMIT (a size such as 64MiB).
func engineEnv(getenv func(string) string) (time.Duration, int64, error) {
	spin, limit := defaultSpin, int64(defaultUnexpectedLimit)
	if s := getenv("DSMEXEC_SPIN"); s != "" {
		if s == "0" {
			spin = 0
		} else {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				return 0, 0, fmt.Errorf("rank: DSMEXEC_SPIN=%q: want 0 or a duration such as 50us", s)
			}
			spin = d
		}
	}
	if s := getenv("DSMEXEC_UNEXPECTED_LIMIT"); s != "" {
		n, err := units.ParseSize(s)
		if err != nil || n <= 0 {
			return 0, 0, fmt.Errorf("rank: DSMEXEC_UNEXPECTED_LIMIT=%q: want a size such as 64MiB", s)
		}
		limit = n
	}
	return spin, limit, nil
}

// defaultMaxDials caps a rank's dial attempts in flight at once.
const defaultMaxDials = 16

// dialEnv reads DSMEXEC_MAX_DIALS: how many connections a rank may be
// dialling at once (default 16).
func dialEnv(getenv func(string) string) (int, error) {
	s := getenv("DSMEXEC_MAX_DIALS")
	if s == "" {
		return defaultMaxDials, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("rank: DSMEXEC_MAX_DIALS=%q: want a positive number", s)
	}
	return n, nil
}
