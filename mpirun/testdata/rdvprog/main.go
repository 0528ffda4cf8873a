// Command rdvprog talks to mpirun's master the way rank.Init does, without
// the rest of a rank: mpirun's tests use it for the rendezvous, the reported
// columns and the DSM statistics in -summary.
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/dsmexec/dsmexec/internal/rendezvous"
)

func main() {
	rank, _ := strconv.Atoi(os.Getenv("DSMEXEC_RANK"))
	if len(os.Args) > 2 && os.Args[1] == "join-only" && os.Args[2] != strconv.Itoa(rank) {
		// join-only R: every other rank never reports.
		fmt.Printf("not joining %d\n", rank)
		time.Sleep(10 * time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	token, err := hex.DecodeString(os.Getenv("DSMEXEC_TOKEN"))
	if err != nil {
		fail(err)
	}
	c, err := rendezvous.Dial(ctx, os.Getenv("DSMEXEC_MASTER"), token, rank)
	if err != nil {
		fail(err)
	}
	table, err := c.Join(ctx, rendezvous.JoinInfo{Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", 10000+rank)}, Host: os.Getenv("DSMEXEC_HOST"), Pid: os.Getpid()})
	if err != nil {
		fail(err)
	}
	fmt.Printf("joined %d of %d\n", rank, len(table.Endpoints))
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case "blame": // blame DIR: rank 3 fails after losing rank 1, which is killed after rank 3 is reaped
			blame(c, rank, os.Args[2])
		case "abort": // abort DIR: rank 2 fails after losing rank 1, which then calls Abort(3)
			abort(c, rank, os.Args[2])
		case "hold": // hold -: stay joined until killed
			fmt.Printf("holding %d\n", rank)
			time.Sleep(10 * time.Minute)
		}
	}
	c.Cell("answer", strconv.Itoa(40+rank))
	c.Cell("time", "395µs") // as rank.Report writes a time.Duration
	if rank == 1 {
		c.Cell("only_one", "yes")
	}
	st := rendezvous.Stats{
		Backend: "testbackend",
		Columns: []string{"faults", "bytes_in"},
		DSM:     map[string]string{"faults": strconv.Itoa(rank * 10), "bytes_in": "4.0KiB", "zero": "0/0"},
	}
	if rank > 0 { // rank 0 sends only the display strings, as an older rank would
		st.Raw = map[string]float64{"faults": float64(rank * 10), "bytes_in": 4096, "zero": 0, "mean_seconds": 0.25}
		st.RawColumns = []string{"faults", "bytes_in", "zero", "mean_seconds"}
	}
	c.Stats(st)
	c.Bye()
	c.Close()
}

// blame: rank 3 reports that it lost rank 1 and exits 1; rank 1 kills
// itself with SIGKILL once rank 3 has been reaped, so that mpirun reaps rank
// 3 first. Rank 1 must still be blamed.
func blame(c *rendezvous.Client, rank int, dir string) {
	switch rank {
	case 3:
		if err := c.Failed(1, "lost rank 1"); err != nil {
			fail(err)
		}
		os.WriteFile(filepath.Join(dir, "pid3"), []byte(strconv.Itoa(os.Getpid())), 0o644)
		fmt.Fprintln(os.Stderr, "rank 3: lost rank 1")
		os.Exit(1)
	case 1:
		waitReaped(filepath.Join(dir, "pid3"))
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	time.Sleep(10 * time.Minute)
}

// abort: rank 2 reports that it lost rank 1 and exits 1; rank 1, which
// ignores SIGTERM, calls Abort(3) once rank 2 has been reaped.
func abort(c *rendezvous.Client, rank int, dir string) {
	switch rank {
	case 2:
		if err := c.Failed(1, "lost rank 1"); err != nil {
			fail(err)
		}
		os.WriteFile(filepath.Join(dir, "pid2"), []byte(strconv.Itoa(os.Getpid())), 0o644)
		os.Exit(1)
	case 1:
		signal.Ignore(syscall.SIGTERM)
		waitReaped(filepath.Join(dir, "pid2"))
		if err := c.Abort(3); err != nil {
			fail(err)
		}
		os.Exit(3)
	}
	time.Sleep(10 * time.Minute)
}

// waitReaped waits (at most a minute) until the process whose pid is in
// file has been reaped by mpirun.
func waitReaped(file string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
			if _, err := os.Stat("/proc/" + string(b)); err != nil {
				return
			}
		}
		time.Sleep(5 * time.Millisecond) // polling another process's state
	}
	fail(fmt.Errorf("%s: never reaped", file))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rdvprog:", err)
	os.Exit(1)
}
