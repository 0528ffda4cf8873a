package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// values are the "BENCH key value" lines of one run, by key.
type values map[string]string

// num returns the value of key as a number, or an error naming it.
func (v values) num(key string) (float64, error) {
	s, ok := v[key]
	if !ok {
		return 0, fmt.Errorf("bench: no %q in the program's output", key)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: %s=%q is not a number", key, s)
	}
	return f, nil
}

// parseBench collects "BENCH key value" lines, with or without mpirun's
// "[rank N] " prefix.
func parseBench(out []byte) values {
	v := values{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, "BENCH ")
		if i < 0 {
			continue
		}
		f := strings.Fields(line[i+len("BENCH "):])
		if len(f) == 2 {
			v[f[0]] = f[1]
		}
	}
	return v
}

// withEnv is base with env's changes: "NAME=value" sets NAME, "-NAME"
// removes it.
func withEnv(base, env []string) []string {
	drop := map[string]bool{}
	var set []string
	for _, e := range env {
		if name, ok := strings.CutPrefix(e, "-"); ok {
			drop[name] = true
		} else {
			name, _, _ := strings.Cut(e, "=")
			drop[name] = true
			set = append(set, e)
		}
	}
	var out []string
	for _, e := range base {
		name, _, _ := strings.Cut(e, "=")
		if !drop[name] {
			out = append(out, e)
		}
	}
	return append(out, set...)
}

// run starts a command (env: changes to this process's environment, see
// withEnv), waits for it under a deadline and returns its standard output
// and how long it took from start to exit. The command gets
// its own process group so that a deadline can stop everything it started.
func run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if env != nil {
		cmd.Env = withEnv(os.Environ(), env)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// SIGTERM to the group we created: mpirun (either one) forwards it.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	err := cmd.Wait()
	el := time.Since(start)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no result after %v: %w", timeout, err)
		}
		return stdout.Bytes(), el, fmt.Errorf("%s: %w%s", shortCmd(name, args), err, tail(stderr.Bytes(), stdout.Bytes()))
	}
	return stdout.Bytes(), el, nil
}

// shortCmd names a command in an error without its temp-dir paths.
func shortCmd(name string, args []string) string {
	parts := []string{base(name)}
	for _, a := range args {
		parts = append(parts, base(a))
	}
	return strings.Join(parts, " ")
}

func base(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 && i < len(p)-1 {
		return p[i+1:]
	}
	return p
}

// tail is the last few lines of a failed command's output, for its error.
func tail(stderr, stdout []byte) string {
	b := bytes.TrimSpace(stderr)
	if len(b) == 0 {
		b = bytes.TrimSpace(stdout)
	}
	if len(b) == 0 {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	return ": " + strings.Join(lines, " | ")
}

// median of durations (the upper one of the middle two).
func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// firstLine of an error, for a table cell.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
