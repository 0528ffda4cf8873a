package rank

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/dsmexec/dsmexec/internal/dsmhook"
	"github.com/dsmexec/dsmexec/internal/pmi"
)

// initPMI forms the world through the key-value space of a PMI launcher
// (MPICH's Hydra, Slurm's srun --mpi=pmi2): rank 0 publishes a job secret,
// every rank publishes its mesh and memory addresses, and the mesh is built
// as under mpirun. No MPI library is involved.
//
// The mesh listens on DSMEXEC_ADDR if set, else on 127.0.0.1: a PMI job
// spanning several hosts must set DSMEXEC_ADDR to an address of each host
// that the others can reach.
func initPMI(cfg pmi.Config) (*World, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pmi.Dial(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("rank: join the PMI launcher: %w", err)
	}
	fail := func(err error) (*World, error) {
		c.Abort(1, err.Error())
		c.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	w := newWorld(c.Rank(), c.Size(), host, c.Launcher())
	w.pmi = c
	verbosef("rank %d: world of %d formed through %s", w.rank, w.size, c.Launcher())
	if err := w.startTrace(os.Getenv, nil); err != nil {
		return fail(err)
	}

	// The job secret: made by rank 0, read by the others after a fence.
	var token []byte
	if w.rank == 0 {
		token = make([]byte, 16)
		rand.Read(token)
		if err := c.Put("dsmexec-token", hex.EncodeToString(token)); err != nil {
			return fail(err)
		}
	}
	if err := c.Fence(ctx); err != nil {
		return fail(err)
	}
	if w.rank != 0 {
		s, err := c.Get(ctx, "dsmexec-token")
		if err == nil {
			token, err = hex.DecodeString(s)
		}
		if err != nil {
			return fail(fmt.Errorf("rank %d: read the job secret: %w", w.rank, err))
		}
	}
	ip := os.Getenv("DSMEXEC_ADDR")
	if ip == "" {
		ip = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return fail(fmt.Errorf("rank %d: listen on %s: %w", w.rank, ip, err))
	}
	size, err := dsmSizeFromEnv(os.Getenv)
	if err != nil {
		ln.Close()
		return fail(err)
	}
	mem, err := newMemory(dsmhook.Config{Rank: w.rank, Size: w.size, Bytes: size, Token: token, IP: ip})
	if err != nil {
		ln.Close()
		return fail(err)
	}
	w.mem = mem
	w.setMem(mem)
	if err := c.Put(fmt.Sprintf("dsmexec-%d", w.rank), ln.Addr().String()+","+memEndpoint(mem)); err != nil {
		ln.Close()
		mem.Close()
		return fail(err)
	}
	if err := c.Fence(ctx); err != nil {
		ln.Close()
		mem.Close()
		return fail(err)
	}
	endpoints := make([][]string, w.size)
	for r := range endpoints {
		s, err := c.Get(ctx, fmt.Sprintf("dsmexec-%d", r))
		if err != nil {
			ln.Close()
			mem.Close()
			return fail(fmt.Errorf("rank %d: read rank %d's address: %w", w.rank, r, err))
		}
		endpoints[r] = strings.Split(s, ",")
	}
	if err := w.connect(ctx, ln, token, endpoints, 60*time.Second); err != nil {
		mem.Close()
		return fail(err)
	}
	w.alignClock()
	w.tr.initDone()
	return w, nil
}

// verbosef logs what Init does when DSMEXEC_VERBOSE is set (mpirun -v).
func verbosef(format string, args ...any) {
	if os.Getenv("DSMEXEC_VERBOSE") != "" {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}
