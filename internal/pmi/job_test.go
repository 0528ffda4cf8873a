package pmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
)

// connector hands each of n ranks a way to reach the fake job's server.
type connector func(t *testing.T, j *fakeJob, rank int, cfg Config) (*Client, error)

// overPipe: PMI_FD-style, the server knows the rank from the connection.
func overPipe(t *testing.T, j *fakeJob, rank int, cfg Config) (*Client, error) {
	cli, srv := net.Pipe()
	go func() {
		if err := j.serve(srv, rank); err != nil && !errors.Is(err, errStopped) {
			t.Errorf("fake %v server, rank %d: %v", j.flavor, rank, err)
		}
	}()
	cfg.FD, cfg.Rank, cfg.Size = 6, rank, j.size
	return NewClient(context.Background(), cli, cfg)
}

// overPort: Hydra's -pmi-port, a loopback TCP listener and Dial.
func overPort(ln net.Listener) connector {
	return func(t *testing.T, j *fakeJob, rank int, cfg Config) (*Client, error) {
		cfg.FD, cfg.Port, cfg.ID, cfg.Rank, cfg.Size = -1, ln.Addr().String(), fmt.Sprint(rank), -1, -1
		return Dial(context.Background(), cfg)
	}
}

// runJob starts size ranks that do what package rank does: put an address,
// rank 0 a secret, fence, read everyone's address and the secret, finalize.
func runJob(t *testing.T, j *fakeJob, version int, connect connector) {
	t.Helper()
	type result struct {
		rank, size, version int
		addrs               []string
		secret              string
		err                 error
	}
	results := make([]result, j.size)
	var wg sync.WaitGroup
	for r := range j.size {
		wg.Go(func() {
			res := &results[r]
			res.err = func() error {
				c, err := connect(t, j, r, Config{Version: version, Timeout: testTimeout})
				if err != nil {
					return err
				}
				defer c.Close()
				res.rank, res.size, res.version = c.Rank(), c.Size(), c.Version()
				ctx := context.Background()
				if err := c.Put(fmt.Sprintf("dsmexec-addr-%d", c.Rank()), fmt.Sprintf("127.0.0.1:%d", 40000+c.Rank())); err != nil {
					return err
				}
				if c.Rank() == 0 {
					if err := c.Put("dsmexec-secret", "9f86d081884c7d659a2feaa0c55ad015"); err != nil {
						return err
					}
				}
				if err := c.Fence(ctx); err != nil {
					return err
				}
				for p := range c.Size() {
					v, err := c.Get(ctx, fmt.Sprintf("dsmexec-addr-%d", p))
					if err != nil {
						return err
					}
					res.addrs = append(res.addrs, v)
				}
				if res.secret, err = c.Get(ctx, "dsmexec-secret"); err != nil {
					return err
				}
				if _, err := c.Get(ctx, "dsmexec-addr-99"); !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("Get of a missing key: %v, want ErrNotFound", err)
				}
				return c.Finalize()
			}()
		})
	}
	wg.Wait()
	for r, res := range results {
		if res.err != nil {
			t.Errorf("rank %d: %v", r, res.err)
			continue
		}
		if res.rank != r || res.size != j.size || res.version != version {
			t.Errorf("rank %d: got rank %d size %d version %d", r, res.rank, res.size, res.version)
		}
		want := make([]string, j.size)
		for p := range want {
			want[p] = fmt.Sprintf("127.0.0.1:%d", 40000+p)
		}
		if strings.Join(res.addrs, ",") != strings.Join(want, ",") || res.secret != "9f86d081884c7d659a2feaa0c55ad015" {
			t.Errorf("rank %d: addrs %v secret %q; want %v and the secret", r, res.addrs, res.secret, want)
		}
	}
}

// Three ranks exchange addresses end to end through a fake launcher that
// implements fence across its clients, for each flavor, version and transport.
func TestJobExchange(t *testing.T) {
	for _, f := range []flavor{hydra, slurm} {
		for _, version := range []int{1, 2} {
			t.Run(fmt.Sprintf("%v/PMI-%d/pipe", f, version), func(t *testing.T) {
				j := newFakeJob(f, 3)
				defer j.stop()
				runJob(t, j, version, overPipe)
			})
			if f == slurm {
				continue // Slurm has no PMI_PORT mode
			}
			t.Run(fmt.Sprintf("%v/PMI-%d/port", f, version), func(t *testing.T) {
				j := newFakeJob(f, 3)
				defer j.stop()
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				go func() {
					for range j.size {
						conn, err := ln.Accept()
						if err != nil {
							return
						}
						go func() {
							if err := j.serve(conn, -1); err != nil && !errors.Is(err, errStopped) {
								t.Errorf("fake server: %v", err)
							}
						}()
					}
				}()
				runJob(t, j, version, overPort(ln))
			})
		}
	}
}

// The longest values each version can carry go through intact.
func TestJobLimits(t *testing.T) {
	for _, version := range []int{1, 2} {
		t.Run(fmt.Sprintf("PMI-%d", version), func(t *testing.T) {
			j := newFakeJob(hydra, 1)
			defer j.stop()
			c, err := overPipe(t, j, 0, Config{Version: version, Timeout: testTimeout})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			key := strings.Repeat("k", c.MaxKey())
			n := c.MaxValue()
			if version == 1 {
				n = maxLineV1 - len(formatV1("put", "kvsname", c.KVSName(), "key", key, "value", ""))
			}
			value := strings.Repeat("v", n)
			if err := c.Put(key, value); err != nil {
				t.Fatalf("Put of a %d-byte key and %d-byte value: %v", len(key), len(value), err)
			}
			if err := c.Put(key, value+"v"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Put of one byte more: %v, want ErrInvalid", err)
			}
			if err := c.Fence(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Get(context.Background(), key); err != nil || got != value {
				t.Fatalf("Get: %d bytes, %v; want %d bytes", len(got), err, len(value))
			}
			if err := c.Finalize(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Dial(ctx, Config{FD: -1}); !errors.Is(err, ErrEnv) {
		t.Errorf("Dial with neither FD nor Port: %v, want ErrEnv", err)
	}
	cfg, _ := Detect(env{"PMI_FD": "x"}.get)
	if _, err := Dial(ctx, cfg); !errors.Is(err, ErrEnv) || !strings.Contains(err.Error(), `PMI_FD="x"`) {
		t.Errorf("Dial with PMI_FD=x: %v, want ErrEnv naming it", err)
	}
	// A port nobody listens on: take one from the kernel and release it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Dial(ctx, Config{FD: -1, Port: addr, ID: "0", Version: 1, Timeout: testTimeout})
	if err == nil || !strings.Contains(err.Error(), "dial PMI_PORT "+addr) {
		t.Errorf("Dial to a closed port: %v", err)
	}
	if _, err := NewClient(ctx, nopConn{}, Config{FD: 6, Version: 3}); !errors.Is(err, ErrEnv) {
		t.Errorf("NewClient with version 3: %v, want ErrEnv", err)
	}
}
