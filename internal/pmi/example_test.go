package pmi

import (
	"context"
	"fmt"
	"net"
)

// The environment Hydra gives rank 1 of `mpiexec.hydra -n 2 ./app`.
func ExampleDetect() {
	env := map[string]string{"PMI_FD": "6", "PMI_RANK": "1", "PMI_SIZE": "2", "HYDI_CONTROL_FD": "7"}
	cfg, ok := Detect(func(k string) string { return env[k] })
	fmt.Println(ok, cfg.FD, cfg.Rank, cfg.Size, cfg.Version, cfg.Launcher)
	fmt.Println(cfg.Reason)
	// Output:
	// true 6 1 2 1 hydra
	// HYDI_CONTROL_FD is set (MPICH Hydra): PMI-1, whose abort keeps the exit status
}

// What package rank does, against a one-rank fake launcher. A real program
// calls Dial(ctx, cfg) with the Config from Detect(os.Getenv).
func ExampleClient() {
	job := newFakeJob(slurm, 1)
	defer job.stop()
	cli, srv := net.Pipe()
	go job.serve(srv, 0)

	ctx := context.Background()
	c, err := NewClient(ctx, cli, Config{FD: 5, Rank: 0, Size: 1, Version: 2, Launcher: LauncherSlurm})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Launcher(), "rank", c.Rank(), "of", c.Size())
	c.Put(fmt.Sprintf("dsmexec-addr-%d", c.Rank()), "127.0.0.1:4711")
	c.Fence(ctx)
	addr, err := c.Get(ctx, "dsmexec-addr-0")
	fmt.Println(addr, err)
	_, err = c.Get(ctx, "dsmexec-addr-1")
	fmt.Println(err)
	fmt.Println(c.Finalize())
	// Output:
	// PMI-2 over PMI_FD (Slurm) rank 0 of 1
	// 127.0.0.1:4711 <nil>
	// get "dsmexec-addr-1": pmi: key not found
	// <nil>
}
