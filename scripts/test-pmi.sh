#!/usr/bin/env bash
# test-pmi.sh — run dsmexec programs under the launchers clusters already have,
# with no MPI library linked, and check they compute what they compute under
# our own mpirun:
#
#   Hydra  mpiexec.hydra -n 3 PROG    (MPICH; PMI-1 and PMI-2 over PMI_FD, PMI-1 over -pmi-port)
#   Slurm  srun --mpi=pmi2 -O -n 3 PROG   (a single-node cluster started here:
#          munged, slurmctld, slurmd; PMI-2, and PMI-1 once)
#
# PROG is bin/counter -n 300 and bin/pi (bin/ring stands in while the pi
# example does not exist). A case passes when the job exits 0, all 3 ranks say
# (DSMEXEC_VERBOSE=1) that they formed the world through the expected PMI
# version, transport and launcher, and the program's result lines ("counter:
# ...", "pi: ...") equal our mpirun's once the [rank N] tags and timings are
# removed. An abort case per launcher has rank 1's Init fail after it joined the
# PMI job: the launcher must end the whole job at once (the others wait in a
# fence that rank 1 never reaches).
#
# Everything runs in a network namespace, dsm-pmi, that has only loopback, so
# no launcher can pick the machine's real interface. It also holds 127.0.0.2:
# with 127.0.0.1 as its only IPv4 address, glibc's AI_ADDRCONFIG makes
# getaddrinfo("127.0.0.1") fail and Slurm cannot resolve its own node. Slurm's
# daemons enter only the network namespace (nsenter --net): `ip netns exec`
# remounts /sys and slurmd then finds no cgroup filesystem.
#
# Needs root. Installs mpich, slurm-wlm and munge with apt-get when missing.
# Prints PASS, FAIL or SKIP per case and exits 1 if any case failed; prints SKIP
# and exits 0 when not root or network namespaces are unusable. Every wait is
# bounded. The daemons, the namespace and the state directory (logs, config)
# are removed on exit; after a failure the state directory is kept.
#
#   bash scripts/test-pmi.sh          (from the repository; bin/ from make build)
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
NS=dsm-pmi
NSPATH=/run/netns/$NS
JOBTIMEOUT=60   # seconds for one launcher run
ABORTBOUND=20   # seconds within which an aborted job must have ended
NP=3
export LC_ALL=C
STATE=""
# The binaries under test: make build's bin/ unless DSM_PMI_BIN names another
# directory (holding mpirun, counter and pi or ring).
BIN=${DSM_PMI_BIN:-bin}

log() { echo "test-pmi: $*"; }
failures=0
passes=0
skips=0
pass() { echo "PASS $1"; passes=$((passes + 1)); }
skip() { echo "SKIP $1: $2"; skips=$((skips + 1)); }
fail() {
	echo "FAIL $1: $2"
	failures=$((failures + 1))
	shift 2
	for f in "$@"; do
		[ -s "$f" ] || continue
		echo "---- ${f#"$STATE"/} (last 30 lines)"
		tail -n 30 "$f"
	done
	[ $# -gt 0 ] && echo "----"
}

if [ "$(id -u)" != 0 ]; then
	echo "SKIP test-pmi: needs root (network namespace, Slurm daemons)"
	exit 0
fi
for tool in ip nsenter timeout setpriv; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP test-pmi: $tool not found (apt-get install iproute2 util-linux coreutils)"
		exit 0
	fi
done

# ---- packages ---------------------------------------------------------------

# ensure_pkgs PKG...: apt-get install the packages that are missing; false if that fails.
ensure_pkgs() {
	local need=() p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
	done
	[ ${#need[@]} -eq 0 ] && return 0
	if ! command -v apt-get >/dev/null; then
		log "${need[*]} not installed and there is no apt-get"
		return 1
	fi
	log "installing ${need[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
}

have_hydra=yes have_slurm=yes
ensure_pkgs mpich || true
command -v mpiexec.hydra >/dev/null || have_hydra="mpiexec.hydra not found and apt-get install mpich failed"
ensure_pkgs slurm-wlm munge || true
for t in srun sinfo slurmctld slurmd munged munge unmunge; do
	if ! PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null; then
		have_slurm="$t not found and apt-get install slurm-wlm munge failed"
		break
	fi
done
SLURMCTLD=$(PATH=$PATH:/usr/sbin:/sbin command -v slurmctld || true)
SLURMD=$(PATH=$PATH:/usr/sbin:/sbin command -v slurmd || true)
MUNGED=$(PATH=$PATH:/usr/sbin:/sbin command -v munged || true)

# ---- programs ---------------------------------------------------------------

mkdir -p "$BIN" && BIN=$(cd "$BIN" && pwd)

# The pi example is the one the issue names; ring stands in until it exists.
PROGS=(counter pi)
if [ ! -d examples/pi ] && [ ! -x "$BIN/pi" ]; then
	PROGS=(counter ring)
	PISKIP="examples/pi does not exist yet: $BIN/ring runs in its place"
fi
declare -A ARGS=([counter]="-n 300" [pi]="" [ring]="")
for b in mpirun "${PROGS[@]}"; do
	[ -x "$BIN/$b" ] && continue
	src=./examples/$b
	[ "$b" = mpirun ] && src=./mpirun
	log "$BIN/$b is missing: go build -o $BIN/$b $src"
	if ! go build -o "$BIN/$b" "$src"; then
		echo "FAIL build: go build -o $BIN/$b $src"
		exit 1
	fi
done

# ---- namespace, clean-up ----------------------------------------------------

STATE=$(mktemp -d /tmp/dsm-pmi.XXXXXX)
chmod 755 "$STATE"
DAEMONS=() # pids we started, stopped in reverse order

stop_pid() { # stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
}

cleanup() {
	local i pids
	trap - EXIT INT TERM HUP
	for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
		stop_pid "${DAEMONS[i]}"
	done
	if [ -e "$NSPATH" ]; then
		# Whatever is left in our namespace is ours: slurmstepd, ranks.
		pids=$(ip netns pids "$NS" 2>/dev/null)
		for p in $pids; do stop_pid "$p"; done
		ip netns del "$NS" 2>/dev/null
	fi
	if [ "$failures" -eq 0 ]; then
		rm -rf "$STATE"
	else
		log "logs and configuration kept in $STATE"
	fi
}
trap cleanup EXIT
trap 'echo "test-pmi: interrupted"; failures=$((failures + 1)); exit 130' INT TERM HUP

if [ -e "$NSPATH" ]; then
	if [ -n "$(ip netns pids "$NS" 2>/dev/null)" ]; then
		echo "FAIL setup: network namespace $NS exists and has processes ($(ip netns pids "$NS" | tr '\n' ' ')): is another test-pmi.sh running?"
		failures=1
		NSPATH=/nonexistent # not ours: leave it alone
		exit 1
	fi
	ip netns del "$NS"
fi
if ! err=$(ip netns add "$NS" 2>&1); then
	echo "SKIP test-pmi: network namespaces are unusable here (ip netns add: $err)"
	exit 0
fi
ip -n "$NS" link set lo up
ip -n "$NS" addr add 127.0.0.2/32 dev lo
innet() { nsenter --net="$NSPATH" "$@"; }

# ---- checks -----------------------------------------------------------------

# results PROG FILE: PROG's result lines in FILE, without [rank N] tags and
# with durations replaced by <t>, sorted.
results() {
	sed -E 's/^\[rank [0-9]+(@[^]]*)?\] //' "$2" | grep -E "^$1: " |
		sed -E 's/[0-9]+(\.[0-9]+)? ?(ns|µs|us|ms|s|m|h)\b/<t>/g' | sort
}

# reference PROG: run PROG under our mpirun in the namespace; its results go
# to $STATE/ref-PROG.results (empty when the run failed).
reference() {
	local p=$1 out=$STATE/ref-$1.out
	: >"$STATE/ref-$p.results"
	local st
	# shellcheck disable=SC2086
	innet timeout -k 5 "$JOBTIMEOUT" "$BIN/mpirun" -np "$NP" "$BIN/$p" ${ARGS[$p]} >"$out" 2>&1
	st=$?
	if [ $st -ne 0 ]; then
		fail "mpirun $p" "$BIN/mpirun -np $NP $BIN/$p ${ARGS[$p]} exited $st" "$out"
		return
	fi
	results "$p" "$out" >"$STATE/ref-$p.results"
	if [ ! -s "$STATE/ref-$p.results" ]; then
		fail "mpirun $p" "no \"$p:\" result line in its output" "$out"
		return
	fi
	pass "mpirun -np $NP $p ($(head -n 1 "$STATE/ref-$p.results"))"
}

# check NAME PROG VIA CMD...: run CMD, a 3-rank job of PROG, in the namespace.
# VIA is what every rank must report, e.g. "PMI-2 over PMI_FD (Slurm)".
check() {
	local name=$1 p=$2 via=$3 tag
	shift 3
	tag=$(echo "$name" | tr -c 'A-Za-z0-9\n' '-')
	local out=$STATE/$tag.out err=$STATE/$tag.err got=$STATE/$tag.results st
	if [ ! -s "$STATE/ref-$p.results" ]; then
		skip "$name" "no reference result from our mpirun"
		return
	fi
	innet timeout -k 5 "$JOBTIMEOUT" env DSMEXEC_VERBOSE=1 "$@" >"$out" 2>"$err"
	st=$?
	if [ $st -ne 0 ]; then
		[ $st -eq 124 ] && st="124 (timed out after ${JOBTIMEOUT}s)"
		fail "$name" "$* exited $st" "$out" "$err"
		return
	fi
	local n
	n=$(grep -cF "world of $NP formed through $via" "$err")
	if [ "$n" -ne "$NP" ]; then
		fail "$name" "$n of $NP ranks report \"world of $NP formed through $via\"" "$err" "$out"
		return
	fi
	results "$p" "$out" >"$got"
	if ! cmp -s "$got" "$STATE/ref-$p.results"; then
		fail "$name" "results differ from mpirun's" "$out"
		diff "$STATE/ref-$p.results" "$got" | sed 's/^/    /'
		return
	fi
	pass "$name"
}

# check_abort NAME WANT CMD...: run CMD (a 3-rank counter job) with rank 1's
# Init failing after it joined the PMI job (DSMEXEC_DSM_SIZE=bogus): rank.Init
# then aborts through PMI. The job must end within ABORTBOUND seconds with a
# non-zero status (WANT, if not empty, is the exact status expected).
check_abort() {
	local name=$1 want=$2 tag st start took
	shift 2
	tag=$(echo "$name" | tr -c 'A-Za-z0-9\n' '-')
	local out=$STATE/$tag.out
	start=$SECONDS
	innet timeout -k 5 "$ABORTBOUND" "$@" sh -c \
		'[ "${PMI_RANK:-}" = 1 ] && export DSMEXEC_DSM_SIZE=bogus; exec "$0" "$@"' "$BIN/counter" -n 300 >"$out" 2>&1
	st=$?
	took=$((SECONDS - start))
	if [ $st -eq 124 ] || [ "$took" -ge "$ABORTBOUND" ]; then
		fail "$name" "the job did not end within ${ABORTBOUND}s of rank 1's abort (status $st)" "$out"
	elif [ $st -eq 0 ]; then
		fail "$name" "the job exited 0 although rank 1 failed" "$out"
	elif [ -n "$want" ] && [ "$st" != "$want" ]; then
		fail "$name" "the job exited $st, want $want" "$out"
	else
		pass "$name (exit status $st, ${took}s)"
	fi
}

# check_trace NAME CMD...: run CMD (a 3-rank ring job) with DSMEXEC_TRACE, each
# rank writing its own stream; mpirun -merge-traces must merge the three into a
# valid trace and report each rank's clock offset against rank 0's with its
# bound (measured over the mesh at Init: rank 0 exactly 0, the others a
# positive bound that holds 0, since the ranks share this host's clock).
check_trace() {
	local name=$1 tag
	shift
	tag=$(echo "$name" | tr -c 'A-Za-z0-9\n' '-')
	local dir=$STATE/$tag out=$STATE/$tag.out merged=$STATE/$tag.json st
	mkdir -p "$dir"
	innet timeout -k 5 "$JOBTIMEOUT" env DSMEXEC_TRACE="$dir/t.%r" "$@" "$BIN/ring" >"$out" 2>&1
	st=$?
	if [ $st -ne 0 ]; then
		fail "$name" "$* $BIN/ring with DSMEXEC_TRACE exited $st" "$out"
		return
	fi
	if ! "$BIN/mpirun" -merge-traces "$merged" "$dir/t.0" "$dir/t.1" "$dir/t.2" >>"$out" 2>&1; then
		fail "$name" "mpirun -merge-traces failed" "$out"
		return
	fi
	local bad
	bad=$(awk '/^mpirun: clock of rank / {
		n++; split($0, a, "offset "); split(a[2], b, " ± ")
		off = b[1]; bound = b[2]
		if ($5 == "0" && (off != "0s" || bound != "0s")) print "rank 0: " off " ± " bound
		if ($5 != "0" && bound == "0s") print "rank " $5 ": no bound"
	} END { if (n != 3) print n+0 " clock lines, want 3" }' "$out")
	if [ -n "$bad" ]; then
		fail "$name" "clocks: $bad" "$out"
		return
	fi
	pass "$name ($(grep -c '"ph":"X"' "$merged") slices; $(grep '^mpirun: clock of rank 1 ' "$out" | sed 's/.*: offset //'))"
}

# ---- reference runs: our mpirun -----------------------------------------------

log "state in $STATE; programs: ${PROGS[*]}"
for p in "${PROGS[@]}"; do reference "$p"; done
[ -n "${PISKIP:-}" ] && skip "pi" "$PISKIP"

# ---- Hydra ------------------------------------------------------------------

if [ "$have_hydra" != yes ]; then
	skip "hydra" "$have_hydra"
else
	for p in "${PROGS[@]}"; do
		# shellcheck disable=SC2086
		check "hydra PMI-1 $p" "$p" "PMI-1 over PMI_FD (MPICH Hydra)" \
			mpiexec.hydra -n "$NP" "$BIN/$p" ${ARGS[$p]}
		# shellcheck disable=SC2086
		check "hydra PMI-2 $p" "$p" "PMI-2 over PMI_FD (MPICH Hydra)" \
			env DSMEXEC_PMI_VERSION=2 mpiexec.hydra -n "$NP" "$BIN/$p" ${ARGS[$p]}
	done
	# -pmi-port: Hydra names its listener by host name unless told an
	# interface, and the host name may resolve to an address not in the namespace.
	# shellcheck disable=SC2086
	check "hydra -pmi-port counter" counter "PMI-1 over PMI_PORT 127.0.0." \
		mpiexec.hydra -iface lo -pmi-port -n "$NP" "$BIN/counter" ${ARGS[counter]}
	# Hydra's PMI-1 abort ends the job with the rank's exit code.
	check_abort "hydra PMI-1 abort" 1 mpiexec.hydra -n "$NP"
	check_trace "hydra trace clocks" mpiexec.hydra -n "$NP"
fi

# ---- Slurm ------------------------------------------------------------------

# start_munge: use a munged that answers, or start one (in the namespace).
start_munge() {
	if timeout 5 sh -c 'munge -n </dev/null | unmunge >/dev/null' 2>/dev/null; then
		log "using the munged already running"
		return 0
	fi
	mkdir -p /run/munge /var/lib/munge /var/log/munge
	chown munge:munge /run/munge /var/lib/munge /var/log/munge
	chmod 755 /run/munge
	if [ ! -s /etc/munge/munge.key ]; then
		log "creating /etc/munge/munge.key"
		mkdir -p /etc/munge
		dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
		chown munge:munge /etc/munge/munge.key
		chmod 400 /etc/munge/munge.key
	fi
	innet setpriv --reuid=munge --regid=munge --init-groups "$MUNGED" -F -f >"$STATE/munged.log" 2>&1 &
	DAEMONS+=($!)
	local i
	for i in $(seq 100); do
		if timeout 5 sh -c 'munge -n </dev/null | unmunge >/dev/null' 2>/dev/null; then
			return 0
		fi
		kill -0 "${DAEMONS[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	fail "slurm setup" "munged did not start" "$STATE/munged.log"
	return 1
}

# start_slurm: slurmctld and slurmd for one node, NODE, at 127.0.0.1 in the
# namespace; waits (bounded) until the node is idle.
start_slurm() {
	NODE=$(hostname -s 2>/dev/null || hostname)
	mkdir -p "$STATE/slurm/state" "$STATE/slurm/spool"
	export SLURM_CONF=$STATE/slurm/slurm.conf
	cat >"$SLURM_CONF" <<EOF
ClusterName=dsmpmi
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/slurm/state
SlurmdSpoolDir=$STATE/slurm/spool
SlurmctldPidFile=$STATE/slurm/slurmctld.pid
SlurmdPidFile=$STATE/slurm/slurmd.pid
SlurmctldLogFile=$STATE/slurm/slurmctld.log
SlurmdLogFile=$STATE/slurm/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
	innet "$SLURMCTLD" -D -i >"$STATE/slurm/slurmctld.out" 2>&1 &
	DAEMONS+=($!)
	innet "$SLURMD" -D -N "$NODE" >"$STATE/slurm/slurmd.out" 2>&1 &
	DAEMONS+=($!)
	local i st=""
	for i in $(seq 150); do # 30 s
		st=$(innet timeout 5 sinfo -h -N -n "$NODE" -o %T 2>/dev/null)
		[ "$st" = idle ] && return 0
		for pid in "${DAEMONS[@]: -2}"; do
			kill -0 "$pid" 2>/dev/null || break 2
		done
		sleep 0.2
	done
	fail "slurm setup" "node $NODE is not idle after 30 s (state \"$st\")" \
		"$STATE/slurm/slurmctld.out" "$STATE/slurm/slurmd.out"
	return 1
}

if [ "$have_slurm" != yes ]; then
	skip "slurm" "$have_slurm"
elif start_munge && start_slurm; then
	log "single-node Slurm up: node $NODE idle ($(srun --version))"
	for p in "${PROGS[@]}"; do
		# shellcheck disable=SC2086
		check "slurm PMI-2 $p" "$p" "PMI-2 over PMI_FD (Slurm)" \
			srun --mpi=pmi2 -O -n "$NP" "$BIN/$p" ${ARGS[$p]}
	done
	# shellcheck disable=SC2086
	check "slurm PMI-1 counter" counter "PMI-1 over PMI_FD (Slurm)" \
		env DSMEXEC_PMI_VERSION=1 srun --mpi=pmi2 -O -n "$NP" "$BIN/counter" ${ARGS[counter]}
	# Slurm kills the step (srun exits 137) on an abort from either version;
	# without -K it would otherwise wait for the ranks stuck in the fence.
	check_abort "slurm PMI-2 abort" "" srun --mpi=pmi2 -O -n "$NP"
	check_abort "slurm PMI-1 abort" "" env DSMEXEC_PMI_VERSION=1 srun --mpi=pmi2 -O -n "$NP"
	check_trace "slurm trace clocks" srun --mpi=pmi2 -O -n "$NP"
fi

echo "test-pmi: $passes passed, $failures failed, $skips skipped"
[ "$failures" -eq 0 ]
