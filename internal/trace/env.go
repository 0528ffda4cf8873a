package trace

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The environment a rank reads to decide whether to trace.
const (
	// EnvTrace is DSMEXEC_TRACE: unset or empty, no tracing; ToMaster,
	// record and ship to mpirun (mpirun -trace / -report-html set it);
	// anything else, a file name pattern for this rank's stream (Hydra,
	// Slurm; see FileName).
	EnvTrace = "DSMEXEC_TRACE"
	// EnvTraceLimit is DSMEXEC_TRACE_LIMIT: the limit in bytes (mpirun
	// -trace-limit); unset, DefaultLimit.
	EnvTraceLimit = "DSMEXEC_TRACE_LIMIT"
	// ToMaster is the DSMEXEC_TRACE value meaning "ship to mpirun".
	ToMaster = "mpirun"
)

// FromEnv makes the recorder the environment asks for: nil (off) when
// DSMEXEC_TRACE is unset. file is the stream's file name when the rank
// writes its own (FileName of the pattern), "" when it ships to mpirun.
func FromEnv(getenv func(string) string, cfg Config) (rec *Recorder, file string, err error) {
	v := getenv(EnvTrace)
	if v == "" {
		return nil, "", nil
	}
	if l := getenv(EnvTraceLimit); l != "" {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil || n <= 0 {
			return nil, "", fmt.Errorf("trace: %s=%q: want a positive number of bytes", EnvTraceLimit, l)
		}
		cfg.Limit = n
	}
	if v != ToMaster {
		file = FileName(v, cfg.Rank, cfg.Role)
	}
	return New(cfg), file, nil
}

// FileName is the file of one rank's stream: the pattern with "%r"
// replaced by the rank, or with "."+rank appended when it has no "%r";
// a role other than "rank" (the page server: "pager") adds "."+role.
func FileName(pattern string, rank int, role string) string {
	name := pattern
	if strings.Contains(pattern, "%r") {
		name = strings.ReplaceAll(pattern, "%r", strconv.Itoa(rank))
	} else {
		name += "." + strconv.Itoa(rank)
	}
	if role != "" && role != "rank" {
		name += "." + role
	}
	return name
}

// Pump ships the recorder's stream while the rank runs: every interval,
// and once more when stop is closed, it drains r and hands the piece (if
// any) to write — a file's Write, or a send to mpirun. Shipping as it
// goes is what leaves mpirun (or the file) a valid, truncated trace when
// the rank dies. The returned channel yields write's first error (or nil)
// and is closed when the pump has stopped; after a write error the pump
// stops, and the recorder keeps recording up to its limit.
func (r *Recorder) Pump(every time.Duration, write func([]byte) error, stop <-chan struct{}) <-chan error {
	done := make(chan error, 1)
	if r == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			last := false
			select {
			case <-t.C:
			case <-stop:
				last = true
			}
			for _, b := range r.drainChunks() {
				if err := write(b); err != nil {
					done <- err
					return
				}
			}
			if last {
				done <- nil
				return
			}
		}
	}()
	return done
}
