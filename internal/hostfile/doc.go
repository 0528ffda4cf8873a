// Package hostfile reads mpirun's machine files and -host lists, places
// ranks on their lines, and tells which entries name this machine.
//
// # Machine-file rules
//
// One host per line. A '#' starts a comment that runs to the end of the
// line, whether the line holds a host or not; blank lines are skipped.
// A line is a host token followed by optional key=value words:
//
//	line                        meaning
//	----                        -------
//	node1                       1 slot, default user and ssh port
//	node1:4                     4 slots (MPICH's host:N; N is never a port)
//	node1 slots=4               4 slots (Open MPI's word)
//	node1 max_slots=6           at most 6 ranks here even when oversubscribed
//	                            (also max-slots=); alone it also sets slots=6
//	alice@node1                 ssh as alice
//	node1 user=alice            the same (also username=)
//	[node1]:2222                ssh port 2222 (the [host]:port form of ssh
//	                            and known_hosts)
//	node1 port=2222             the same
//	[::1]  [fe80::1%eth0]:2222  IPv6 literals go in brackets ...
//	::1    fe80::1              ... or bare, when nothing follows the address
//	alice@[fe80::1]:2222:4      port 2222 and 4 slots: inside brackets, :N
//	                            after the port is the slot count
//
// So ":N" right after a host name always means slots, as in MPICH; an ssh
// port needs brackets or port=. A slot count of 1024 or more written as
// host:N earns a warning, because it is more likely a port. Giving the same
// thing twice (node1:4 slots=2, alice@node1 user=bob) is an error, as are
// unknown words, slots or ports that are not whole numbers in range, and
// max_slots below slots. An IPv6 zone (%eth0, %2) is an interface name or
// number: 1 to 15 letters, digits, '.', '-' or '_'; anything else (control
// characters, '#', ',', '/', a second '%') is an error. Every error names
// the file and line, for example
//
//	m:3: bad slots value "x": want a whole number from 1 to 1048576
//
// The same host may appear on several lines. The lines are kept as written,
// in order, each with its own slots: "a\nb\na" places ranks a, b, a. That is
// MPICH's behaviour; the caller reuses one SSH connection per distinct
// user@host:port (see [Entry.Key]).
//
// # -host lists
//
// [ParseHosts] reads Open MPI's "-host a:2,b,alice@[::1]:2222": a comma
// separated list of host tokens with the same syntax as a machine-file host
// token (no key=value words). Errors name the item: "-host item 2: ...".
//
// # Placement
//
// [Place] gives ranks to lines in order, filling each line's slots, then
// starts again at the first line (MPICH's cyclic order over the slot list):
// with "a:2" and "b:1", 5 ranks go to a, a, b, a, a. More ranks than slots
// is allowed and returns a warning, as with Open MPI's --oversubscribe;
// lines whose max_slots is reached are skipped, and placement fails only if
// every line is full.
//
// # Local entries
//
// [IsLocal] reports whether an entry names this machine (localhost,
// 127.0.0.0/8, ::1, this machine's host name or one of its interface
// addresses) with no user other than the current one and no explicit ssh
// port. Such ranks are forked by mpirun, not started over SSH, unless the
// user asks for -ssh-always. Names are compared, never resolved: no DNS.
//
// # Usage
//
//	f, err := hostfile.ReadFile("m")
//	if err != nil {
//		return err // "m:3: ..."
//	}
//	for _, w := range f.Warnings {
//		fmt.Fprintln(os.Stderr, "mpirun: warning:", w)
//	}
//	hostOf, warning, err := hostfile.Place(f.Entries, np)
//	// rank r runs on f.Entries[hostOf[r]]; hostfile.IsLocal(e) → fork it.
package hostfile
