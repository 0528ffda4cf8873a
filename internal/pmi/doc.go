// Package pmi is a client for the PMI process-management interface, so that a
// dsmexec program started by another launcher — MPICH's `mpiexec.hydra -n 4
// ./app` or Slurm's `srun --mpi=pmi2 -n 4 ./app` — learns its rank and the
// job size and exchanges key/values with the other ranks through the
// launcher, without linking any MPI library.
//
// Usage (what package rank does):
//
//	cfg, ok := pmi.Detect(os.Getenv)
//	if !ok {
//		// not started by a PMI launcher; pmi.Unsupported(os.Getenv) names
//		// one we cannot talk to (PMIx, Open MPI), if any
//	}
//	c, err := pmi.Dial(ctx, cfg)              // init handshake
//	c.Put(fmt.Sprintf("dsmexec-addr-%d", c.Rank()), "127.0.0.1:4711")
//	if c.Rank() == 0 {
//		c.Put("dsmexec-secret", hexSecret)
//	}
//	err = c.Fence(ctx)                         // everyone's puts are now visible
//	addr, err := c.Get(ctx, "dsmexec-addr-3")  // errors.Is(err, pmi.ErrNotFound) if absent
//	...
//	c.Finalize()                               // before a clean exit (Hydra kills the job otherwise)
//	c.Abort(1, "why")                          // on a fatal error, then exit(1)
//
// # Transports and versions
//
// The launcher hands over either an inherited connected socket (PMI_FD, with
// PMI_RANK and PMI_SIZE) or a TCP address (PMI_PORT, with PMI_ID; Hydra's
// -pmi-port). Both launchers speak both wire versions on it; Detect picks one
// (see its comment) and DSMEXEC_PMI_VERSION=1|2 overrides the choice.
//
// PMI-1 is newline-terminated lines of space-separated key=value fields.
// PMI-2 starts with the same PMI-1 init line, then every message is a
// 6-character decimal length ("%-6d") followed by "cmd=...;key=value;...;".
// Replies are parsed as unordered sets (Hydra puts rc last, Slurm first). The
// exact bytes exchanged, as recorded from Hydra 4.0.2 and read from Slurm's
// pmi2 plugin, are in PROTOCOL.md next to this file and in the golden tests.
//
// # Limits
//
// get_maxes reports C buffer sizes (keylen_max=64, vallen_max=1024, NUL
// included); Hydra silently truncates longer keys and values, so Put refuses
// keys over 63 bytes and values over 1023, and PMI-1 request lines over 1024
// bytes (MPICH's line buffer; Slurm parses a request from one read()). Values
// cannot hold spaces, newlines or ';' (neither Hydra nor Slurm undoes PMI-2's
// ";;" escape): encode binary data as hex or base64.
//
// Every exchange is bounded by its context, or Config.Timeout when the context
// has no deadline; a launcher that dies surfaces as ErrLauncherClosed.
package pmi
