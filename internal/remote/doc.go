// Package remote starts ranks on other machines over SSH: it connects to
// hosts the way OpenSSH would, copies the program into a content-addressed
// cache over SFTP, and runs a small agent on each host that starts the
// host's ranks and streams their output and exits back to mpirun.
//
// # Connecting
//
// [Dial] reads ~/.ssh/config (HostName, User, Port, IdentityFile,
// UserKnownHostsFile, HashKnownHosts, ConnectTimeout,
// StrictHostKeyChecking=accept-new), authenticates with the ssh-agent's keys
// and then ~/.ssh/id_ed25519, id_ecdsa and id_rsa (encrypted key files are
// skipped with a note: load them with ssh-add), and checks the host key
// against ~/.ssh/known_hosts. An unknown host is an error unless
// [Options.AcceptNew], which appends its key the way OpenSSH's accept-new
// does; a changed key is always an error naming the file and line of the
// old key. Errors are [*DialError] values: errors.Is tells the kind
// ([ErrUnknownHost], [ErrHostKeyChanged], [ErrAuth], [ErrRefused],
// [ErrUnreachable], ...) and [Hint] says what to do. One connection per host
// carries everything; [DialAll] connects to many hosts, at most 16 at a
// time (mpirun fans out to every host itself: no tree of agents).
//
// # Installing the program
//
// [Host.Install] copies a file to ~/.cache/dsmexec/<sha256>/<name> on the
// host, unless it is already there. The copy is written under a temporary
// name and renamed into place, so an interrupted copy never leaves a broken
// program behind. The cache is trusted only by content: the cache
// directories and files are 0700, [Host.StartAgent] hashes a cached agent
// on the host (sha256sum, or reading it back over SFTP) and checks its
// SHA-256 before running it, and the agent
// hashes a cached program before executing it ([RankSpec.SHA256]); a file
// changed after it was copied is refused with an error wrapping
// [ErrCacheTampered] that names it. [Host.CheckRunnable] compares the program's ELF machine
// with the host's `uname -m` first, so a wrong architecture is reported
// plainly instead of as "Exec format error".
//
// # The agent
//
// mpirun starts one agent per host ([Host.StartAgent]): a program that
// calls [RunAgent] with its stdin and stdout, such as the installed mpirun
// in its agent mode. The two sides speak the framed protocol described in
// protocol.md: mpirun sends Start (one rank: path, args, env, dir), Signal,
// Stdin and Ping frames; the agent answers with Hello, Started, Line, Exit and
// Error frames. The agent starts ranks with package proc, so a remote rank's
// output arrives as whole proc.Line values and its end as a proc.Exit with
// rusage, exactly like a local rank's. When the agent's stdin closes
// (mpirun ended, or the connection broke) it stops all its ranks: SIGTERM,
// then SIGKILL after [AgentGrace]; it does the same when mpirun, having
// started pings ([Client.StartPings]), falls silent for longer than it
// asked, so a host cut off from the network does not keep its ranks. A
// host that stops answering SSH keepalives is disconnected ([Host.Lost]
// says so). After a Relay frame ([Client.Relay]) the agent is also the
// rendezvous master of its host's ranks (rendezvous.Relay): they join it
// over TCP on this host, their joins go to mpirun in one batch and the
// table comes back once, as Rdv frames on the same stream, so mpirun holds
// one connection per host. On mpirun's side, [Client] delivers the lines and exits into
// the caller's channels and makes up an Exit wrapping [ErrAgentGone] for
// every rank whose agent was lost.
//
// # Usage
//
//	h, err := remote.Dial(ctx, remote.Target{User: e.User, Host: e.Host, Port: e.Port}, remote.Options{AcceptNew: acceptNew})
//	if err != nil {
//		fmt.Fprintln(os.Stderr, "mpirun: error:", err)
//		if hint := remote.Hint(err); hint != "" {
//			fmt.Fprintln(os.Stderr, "mpirun: hint:", hint)
//		}
//		return err
//	}
//	defer h.Close()
//	if err := h.CheckRunnable(ctx, prog); err != nil {
//		return err
//	}
//	progPath, _, err := h.Install(ctx, prog, filepath.Base(prog))
//	self, _ := os.Executable()
//	agentPath, _, err := h.Install(ctx, self, "mpirun")
//	a, err := h.StartAgent(ctx, []string{agentPath, "-agent"}, lines, exits)
//	a.StartPings(time.Second, 15*time.Second) // the agent's watchdog
//	a.Start(remote.RankSpec{Rank: 2, Path: progPath, Env: []string{"DSMEXEC_RANK=2", ...}})
//	// ... receive from lines and exits until every rank has exited ...
//	a.CloseInput() // the agent stops whatever still runs and ends
//	err = a.Wait()
package remote
