#!/usr/bin/env bash
# test-cluster.sh — multi-host tests of mpirun on a real (network namespace)
# cluster: cluster-up.sh 4 makes four hosts with OpenSSH sshd and users
# dsm1..dsm4; mpirun runs in the launcher namespace dsm-l with the launcher
# home cluster-up.sh prepared (key, known_hosts, ssh config).
#
# Cases: hello on 8 ranks (every line tagged with rank and host), the
# shared-memory examples on 4 and 8 ranks, a second run that copies nothing,
# Ctrl-C, a host whose sshd is stopped, a host with a wrong or missing host
# key, a host whose agent is killed, a host cut off mid-job. After every case no process of the job may
# remain in any namespace (the processes of users dsm1..dsm4).
#
# Needs root, iproute2 and openssh-server; skips (exit 0) with a reason
# otherwise. Prints PASS/FAIL per case and exits 1 if any failed. Every wait
# is bounded. Removes the cluster and its users at the end.
set -uo pipefail

skip() {
	echo "test-cluster: SKIP: $*"
	exit 0
}
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, users, sshd)"
command -v ip >/dev/null || skip "ip not found (apt-get install iproute2)"
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] || skip "sshd not found (apt-get install openssh-server)"
command -v ssh-keygen >/dev/null || skip "ssh-keygen not found (apt-get install openssh-client)"
command -v useradd >/dev/null || skip "useradd not found (apt-get install passwd)"
GO=${GO:-go}
command -v "$GO" >/dev/null || skip "go not found"

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root" || exit 1
STATE=/run/dsm-cluster
K=4
USERS=dsm1,dsm2,dsm3,dsm4
work=$(mktemp -d /tmp/test-cluster.XXXXXX)
BIN=$work/bin
FAILS=0
PASSES=0

pass() {
	echo "PASS: $*"
	PASSES=$((PASSES + 1))
}
fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}
# show FILE: the end of a log, indented, after a FAIL line.
show() { tail -n 25 "$1" | sed 's/^/    | /'; }

cleanup() {
	if [ -n "${bg:-}" ]; then kill -KILL "$bg" 2>/dev/null; fi
	"$here/cluster-down.sh" --users >/dev/null 2>&1 || echo "test-cluster: cluster-down.sh failed" >&2
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# mpi TIMEOUT OUT ARGS...: run mpirun in the launcher namespace, bounded by
# TIMEOUT seconds; sets RC and MS (elapsed milliseconds). stdout goes to
# OUT, stderr to OUT.err.
mpi() {
	local t=$1 out=$2 s
	shift 2
	s=$(now_ms)
	env -u SSH_AUTH_SOCK HOME="$STATE/home" timeout -k 5 "$t" ip netns exec dsm-l "$BIN/mpirun" "$@" >"$out" 2>"$out.err"
	RC=$?
	MS=$(($(now_ms) - s))
}

# The job's processes: everything the cluster users run. With "nosshd", the
# sshd session processes (OpenSSH's, which outlive a cut network until it
# returns) are left out.
job_procs() {
	if [ "${1:-}" = nosshd ]; then
		ps -o pid=,user=,comm=,args= -u "$USERS" 2>/dev/null | awk '$3 !~ /^sshd/'
	else
		ps -o pid=,user=,comm=,args= -u "$USERS" 2>/dev/null
	fi
}

# no_procs CASE SECONDS [nosshd]: wait (bounded) until no job process is
# left; FAIL naming them otherwise.
no_procs() {
	local name=$1 secs=$2 what=${3:-} i left
	for i in $(seq 1 $((secs * 10))); do
		left=$(job_procs "$what")
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	fail "$name: processes of the job still run ${secs}s after mpirun ended:"
	echo "$left" | sed 's/^/    | /'
	return 1
}

# tagged OUT NP: every stdout line is tagged [rank R@10.77.0.1H] with R < NP
# and the host placement gives (rank r on host r%4+1); prints the number of
# distinct ranks seen, or a complaint.
tagged() {
	awk -v np="$2" -v k=$K '
	{
		if (!match($0, /^\[rank [0-9]+@10\.77\.0\.[0-9]+\] /)) { print "untagged line: " $0; bad = 1; exit }
		split(substr($0, 7, RLENGTH - 8), a, "@")
		r = a[1] + 0; h = a[2]
		if (r >= np) { print "rank out of range: " $0; bad = 1; exit }
		want = "10.77.0." (11 + r % k)
		if (h != want) { print "rank " r " on " h ", want " want; bad = 1; exit }
		seen[r] = 1
	}
	END { if (!bad) { n = 0; for (r in seen) n++; print n } }' "$1"
}

# wait_sshd N: until host N's sshd answers (bounded).
wait_sshd() {
	local i
	for i in $(seq 1 50); do
		ip netns exec dsm-l ssh -F "$STATE/ssh_config" "dsm$1@10.77.0.$((10 + $1))" true 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

echo "test-cluster: starting $K hosts"
if ! "$here/cluster-up.sh" "$K" >"$work/up.log" 2>&1; then
	fail "cluster-up.sh $K"
	show "$work/up.log"
	exit 1
fi
# A first run must copy: empty the hosts' caches (homes may survive an
# earlier cluster without --users).
for i in $(seq 1 $K); do
	h=$(getent passwd "dsm$i" | cut -d: -f6)
	[ -n "$h" ] && rm -rf "$h/.cache/dsmexec"
done

echo "test-cluster: building mpirun and the examples into $BIN"
mkdir -p "$BIN"
for p in mpirun examples/hello examples/double_touch examples/counter examples/matmul examples/jacobi examples/ring; do
	if ! "$GO" build -o "$BIN/$(basename "$p")" "./$p" 2>"$work/build.log"; then
		fail "go build ./$p"
		show "$work/build.log"
		exit 1
	fi
done
MF=$STATE/machinefile

# 1. hello on 8 ranks: first run, copying mpirun and hello to every host.
name="hello -np 8 (first run, copies)"
mpi 60 "$work/hello1" -v -np 8 -machinefile "$MF" "$BIN/hello"
first_ms=$MS
n=$(tagged "$work/hello1" 8)
copies=$(grep -c "copied \(mpirun\|hello\) (" "$work/hello1.err")
hellos=$(grep -c "hello from rank" "$work/hello1")
if [ "$RC" = 0 ] && [ "$n" = 8 ] && [ "$hellos" = 8 ] && [ "$copies" = $((2 * K)) ]; then
	pass "$name: 8 ranks, each line tagged with its rank and host, $copies copies, ${MS}ms"
else
	fail "$name: status $RC, ranks seen: $n, hello lines $hellos, copies $copies (want 0, 8, 8, $((2 * K)))"
	show "$work/hello1"
	show "$work/hello1.err"
fi
no_procs "$name" 5

# 2. The second run finds everything in the caches.
name="hello -np 8 (second run, cached)"
mpi 60 "$work/hello2" -v -np 8 -machinefile "$MF" "$BIN/hello"
second_ms=$MS
cached=$(grep -c "\(mpirun\|hello\) found in the cache at" "$work/hello2.err")
if [ "$RC" = 0 ] && [ "$(tagged "$work/hello2" 8)" = 8 ] && ! grep -q "copied" "$work/hello2.err" && [ "$cached" = $((2 * K)) ]; then
	pass "$name: nothing copied, $cached cache hits, ${MS}ms"
else
	fail "$name: status $RC, cache hits $cached (want $((2 * K))), copies: $(grep -c copied "$work/hello2.err")"
	show "$work/hello2.err"
fi
no_procs "$name" 5
echo "test-cluster: launch time of hello -np 8 across $K hosts: ${first_ms}ms with copies, ${second_ms}ms cached"

# 3. The shared-memory examples across the hosts.
check_example() { # check_example NP PROGRAM ARGS...
	local np=$1 prog=$2 ok=1 why="" n
	shift 2
	name="$prog${*:+ $*} -np $np"
	mpi 90 "$work/ex" -np "$np" -machinefile "$MF" "$BIN/$prog" "$@"
	n=$(tagged "$work/ex" "$np")
	case $n in '' | *[!0-9]*) ok= why="$n" ;; esac
	[ "$RC" = 0 ] || { ok= why="status $RC"; }
	case $prog in
	double_touch)
		# every rank prints the same final value
		[ "$(grep -c 'integer value' "$work/ex")" = "$np" ] && [ "$(grep -o 'integer value: [0-9]*' "$work/ex" | sort -u | wc -l)" = 1 ] ||
			{ ok= why="$why; ranks disagree or are missing"; } ;;
	counter) grep -Eq "locked ([0-9]+), atomic \1, want \1 each" "$work/ex" || { ok= why="$why; wrong count"; } ;;
	matmul) grep -q "correct" "$work/ex" || { ok= why="$why; not correct"; } ;;
	jacobi) grep -q "equals the serial result" "$work/ex" || { ok= why="$why; not the serial result"; } ;;
	esac
	if [ -n "$ok" ]; then
		pass "$name: correct, ${MS}ms"
	else
		fail "$name: $why"
		show "$work/ex"
		show "$work/ex.err"
	fi
	no_procs "$name" 5
}
for np in 4 8; do
	check_example "$np" double_touch
	check_example "$np" counter -n 500
	check_example "$np" matmul -n 64
	check_example "$np" jacobi -n 64 -iters 10
done

# start_ring OUT: ring with endless laps in the background (bg = its pid),
# then wait (bounded) until all 8 ranks have joined the master.
start_ring() {
	env -u SSH_AUTH_SOCK HOME="$STATE/home" ip netns exec dsm-l "$BIN/mpirun" -v -np 8 -machinefile "$MF" "$BIN/ring" -laps 2000000000 >"$1" 2>"$1.err" &
	bg=$!
	local i
	for i in $(seq 1 200); do
		[ "$(grep -c 'master: rank [0-9]* joined' "$1.err")" = 8 ] && return 0
		kill -0 "$bg" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# wait_bg SECONDS: wait for the background mpirun; sets RC (124 if it did
# not end in time: it is killed then).
wait_bg() {
	local i
	for i in $(seq 1 $(($1 * 10))); do
		if ! kill -0 "$bg" 2>/dev/null; then
			wait "$bg"
			RC=$?
			bg=
			return
		fi
		sleep 0.1
	done
	kill -KILL "$bg" 2>/dev/null
	wait "$bg" 2>/dev/null
	RC=124
	bg=
}

# 4. Ctrl-C reaches every host.
name="SIGINT during a job"
if start_ring "$work/int"; then
	kill -INT "$bg"
	s=$(now_ms)
	wait_bg 10
	MS=$(($(now_ms) - s))
	if [ "$RC" = 130 ] && grep -q "mpirun: SIGINT: stopping 8 ranks" "$work/int.err"; then
		pass "$name: status 130 after ${MS}ms"
	else
		fail "$name: status $RC after ${MS}ms (want 130)"
		show "$work/int.err"
	fi
else
	fail "$name: the ranks did not all start"
	show "$work/int.err"
	[ -n "${bg:-}" ] && { kill -KILL "$bg"; wait "$bg"; bg=; }
fi
no_procs "$name" 5

# 5. A host whose sshd is stopped.
name="sshd stopped on host 3"
kill "$(cat "$STATE/h3/sshd.pid")"
for _ in $(seq 1 30); do kill -0 "$(cat "$STATE/h3/sshd.pid" 2>/dev/null)" 2>/dev/null || break; sleep 0.1; done
mpi 30 "$work/down" -np 8 -machinefile "$MF" "$BIN/hello"
if [ "$RC" = 1 ] && [ "$MS" -lt 10000 ] && [ ! -s "$work/down" ] &&
	grep -q "^mpirun: error: connect to dsm3@10.77.0.13:22: connection to 10.77.0.13:22 refused" "$work/down.err" &&
	grep -q "^mpirun: hint: is sshd running on 10.77.0.13" "$work/down.err"; then
	pass "$name: '$(grep -m1 '^mpirun: error' "$work/down.err")' after ${MS}ms"
else
	fail "$name: status $RC after ${MS}ms (want 1 within 10 s and the refused message)"
	show "$work/down.err"
fi
no_procs "$name" 5
ip netns exec dsm-h3 "$SSHD" -f "$STATE/h3/sshd_config" -E "$STATE/h3/sshd.log"
wait_sshd 3 || fail "restart sshd of host 3"

# 6. A host with a wrong host key, then with none (and -ssh-accept-new).
# The launcher's ssh config names $STATE/known_hosts; change both copies.
khs="$STATE/known_hosts $STATE/home/.ssh/known_hosts"
for f in $khs; do cp "$f" "$f.orig"; done
ssh-keygen -q -t ed25519 -N "" -C "not host 2" -f "$work/otherkey"
for f in $khs; do
	sed -i "s|^10\.77\.0\.12 .*|10.77.0.12 $(cut -d' ' -f1,2 "$work/otherkey.pub")|" "$f"
done
name="wrong host key for host 2"
mpi 30 "$work/key" -np 8 -machinefile "$MF" "$BIN/hello"
if [ "$RC" = 1 ] && [ "$MS" -lt 10000 ] && [ ! -s "$work/key" ] &&
	grep -q "^mpirun: error: connect to dsm2@10.77.0.12:22: WARNING: THE HOST KEY OF 10.77.0.12 HAS CHANGED" "$work/key.err" &&
	grep -q "^mpirun: hint: .*ssh-keygen -R '10.77.0.12'" "$work/key.err"; then
	pass "$name: refused with the changed-key warning after ${MS}ms"
else
	fail "$name: status $RC after ${MS}ms (want 1 within 10 s and the changed-key message)"
	show "$work/key.err"
fi
no_procs "$name" 5
for f in $khs; do grep -v '^10\.77\.0\.12 ' "$f.orig" >"$f"; done
name="unknown host key for host 2"
mpi 30 "$work/unknown" -np 8 -machinefile "$MF" "$BIN/hello"
if [ "$RC" = 1 ] && grep -q "^mpirun: error: connect to dsm2@10.77.0.12:22: host 10.77.0.12 is not in $STATE/known_hosts" "$work/unknown.err" &&
	grep -q "^mpirun: hint: .*ssh-keyscan -p 22 10.77.0.12" "$work/unknown.err"; then
	pass "$name: refused, with the ssh-keyscan hint"
else
	fail "$name: status $RC (want 1 and the unknown-host message)"
	show "$work/unknown.err"
fi
no_procs "$name" 5
name="-ssh-accept-new for host 2"
mpi 30 "$work/accept" -ssh-accept-new -np 8 -machinefile "$MF" "$BIN/hello"
if [ "$RC" = 0 ] && [ "$(tagged "$work/accept" 8)" = 8 ] && grep -q "^10\.77\.0\.12 ssh-ed25519 " "$STATE/known_hosts" &&
	grep -qF "$(grep '^10\.77\.0\.12 ' "$STATE/known_hosts")" "$STATE/known_hosts.orig"; then
	pass "$name: the job ran and the right key was added"
else
	fail "$name: status $RC, known_hosts line: $(grep '^10\.77\.0\.12 ' "$STATE/known_hosts")"
	show "$work/accept.err"
fi
no_procs "$name" 5
for f in $khs; do mv "$f.orig" "$f"; done

# 7. The agent of host 2 killed mid-job: its ranks are lost, the job ends.
name="agent of host 2 killed mid-job"
if start_ring "$work/agent"; then
	a=$(ps -ww -o pid=,args= -u dsm2 | awk '/mpirun -agent$/ {print $1}')
	kill -KILL $a
	s=$(now_ms)
	wait_bg 20
	MS=$(($(now_ms) - s))
	if [ -n "$a" ] && [ "$RC" = 1 ] && [ "$MS" -lt 10000 ] &&
		grep -q "^mpirun: error: lost host 10.77.0.12 (ranks 1, 5): its agent was killed by signal SIGKILL" "$work/agent.err"; then
		pass "$name: '$(grep -m1 '^mpirun: error: lost host' "$work/agent.err")' ${MS}ms after the kill"
	else
		fail "$name: agent pid '$a', status $RC ${MS}ms after the kill (want 1 within 10 s and the lost-host message)"
		show "$work/agent.err"
	fi
else
	fail "$name: the ranks did not all start"
	show "$work/agent.err"
	[ -n "${bg:-}" ] && { kill -KILL "$bg"; wait "$bg"; bg=; }
fi
no_procs "$name" 5

# 8. A host cut off mid-job: its link goes down while ring runs.
name="host 3 cut off mid-job"
if start_ring "$work/cut"; then
	ip netns exec dsm-h3 ip link set eth0 down
	s=$(now_ms)
	wait_bg 20
	MS=$(($(now_ms) - s))
	if [ "$RC" != 0 ] && [ "$RC" != 124 ] && [ "$MS" -lt 10000 ] &&
		grep -q "^mpirun: error: lost host 10.77.0.13 (ranks 2, 6): " "$work/cut.err"; then
		pass "$name: '$(grep -m1 '^mpirun: error: lost host' "$work/cut.err")' ${MS}ms after the cut, status $RC"
	else
		fail "$name: status $RC ${MS}ms after the cut (want non-zero within 10 s and the lost-host message)"
		show "$work/cut.err"
	fi
	# The other hosts' ranks end with mpirun; host 3's once its agent has
	# heard nothing for 15 s (it cannot hear mpirun end).
	for _ in $(seq 1 50); do
		left=$(ps -o pid=,user=,comm=,args= -u dsm1,dsm2,dsm4 2>/dev/null | awk '$3 !~ /^sshd/')
		[ -z "$left" ] && break
		sleep 0.1
	done
	[ -z "$left" ] || { fail "$name: processes left on the other hosts 5 s after mpirun ended:"; echo "$left" | sed 's/^/    | /'; }
	s=$(now_ms)
	if no_procs "$name (host 3, while cut off)" 30 nosshd; then
		pass "$name: host 3's agent stopped its ranks on its own $(($(now_ms) - s))ms after mpirun ended"
	fi
	ip netns exec dsm-h3 ip link set eth0 up
	no_procs "$name (after the link is back)" 15
else
	fail "$name: the ranks did not all start"
	show "$work/cut.err"
	[ -n "${bg:-}" ] && { kill -KILL "$bg"; wait "$bg"; bg=; }
	ip netns exec dsm-h3 ip link set eth0 up
fi

echo "test-cluster: $PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]
