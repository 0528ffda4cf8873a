// Command rdvprog talks to mpirun's master the way rank.Init does, without
// the rest of a rank: mpirun's tests use it for the rendezvous, the reported
// columns and the DSM statistics in -summary.
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
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
	c.Cell("answer", strconv.Itoa(40+rank))
	if rank == 1 {
		c.Cell("only_one", "yes")
	}
	c.Stats(rendezvous.Stats{
		Backend: "testbackend",
		Columns: []string{"faults", "bytes_in"},
		DSM:     map[string]string{"faults": strconv.Itoa(rank * 10), "bytes_in": "4096"},
	})
	c.Bye()
	c.Close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "rdvprog:", err)
	os.Exit(1)
}
