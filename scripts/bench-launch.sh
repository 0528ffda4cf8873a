#!/usr/bin/env bash
# bench-launch.sh [REPS [NP...]] — launch time of `mpirun -np N hello` on
# this host: ours (default region, and -dsm-size 0) against Open MPI's
# `mpirun --oversubscribe -np N` of a C MPI hello (MPI_Init, print,
# MPI_Finalize), each on its default transport. The variants run
# interleaved, one warm-up round first; prints each run and the medians.
# Default: 5 runs of N = 8 and 128. Needs bin/ (make build) and Open
# MPI's mpicc (openmpi-bin, libopenmpi-dev).
#
# bench-launch.sh cluster [REPS [HOSTS [SLOTS]]] — the same across the
# namespace hosts of scripts/cluster-up.sh (real sshd; root): HOSTS × SLOTS
# ranks (default 5 runs of 8 × 8 = 64), ours with -machinefile (cached:
# the warm-up run fills each host's binary cache) against Open MPI's
# mpirun.openmpi --hostfile over the same SSH keys and known_hosts, both
# run from the launcher namespace dsm-l, interleaved. Open MPI starts its
# orted on each host as that host's user (orted and the program are on the
# shared filesystem), flat (no tree spawn: the hosts hold no SSH keys for
# each other, and ours is flat too), TCP only on the cluster's bridge, and
# told to yield while it waits (every "host" shares this machine's CPUs,
# so its ranks would otherwise busy-poll against each other). Uses a
# running cluster of HOSTS hosts if there is one, else makes one and
# removes it at the end.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=one
if [ "${1:-}" = cluster ]; then
	mode=cluster
	shift
fi
REPS=${1:-5}
shift || true
NPS=${*:-8 128}
HOSTS=${1:-8}
SLOTS=${2:-8}
work=$(mktemp -d /tmp/bench-launch.XXXXXX)
chmod 755 "$work" # the cluster's users run hello_ompi from here
cluster_made=
cleanup() {
	[ -n "$cluster_made" ] && bash "$here/cluster-down.sh" --users >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cat >"$work/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int rank, size;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	printf("hello from rank %d of %d (pid %d)\n", rank, size, (int)getpid());
	MPI_Finalize();
	return 0;
}
EOF
mpicc.openmpi -O2 -o "$work/hello_ompi" "$work/hello.c" || { echo "bench-launch: no Open MPI mpicc" >&2; exit 1; }
chmod 755 "$work/hello_ompi"
ours=$root/bin/mpirun
hello=$root/bin/hello
[ -x "$ours" ] && [ -x "$hello" ] || { echo "bench-launch: run make build first" >&2; exit 1; }
root_flag=
[ "$(id -u)" = 0 ] && root_flag=--allow-run-as-root

# t NAME NP CMD...: run CMD (bounded), print its time in ms, or FAIL.
t() {
	local name=$1 np=$2 s e rc n
	shift 2
	s=$(date +%s%N)
	timeout -k 5 300 "$@" >"$work/out" 2>"$work/err"
	rc=$?
	e=$(date +%s%N)
	n=$(grep -c "hello from rank" "$work/out")
	if [ "$rc" != 0 ] || [ "$n" != "$np" ]; then
		echo "FAIL"
		echo "$name -np $np: status $rc, $n hellos: $(head -c 300 "$work/err")" >&2
		return
	fi
	echo $(((e - s) / 1000000))
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
spread() { sort -n | awk 'NR == 1 {lo=$1} {hi=$1} END {if (NR == 0) print "-"; else print lo "-" hi}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# cluster: HOSTS × SLOTS ranks over the namespace hosts, ours and Open
# MPI's in turn (see the top of this file).
cluster() {
	local STATE=/run/dsm-cluster np=$((HOSTS * SLOTS)) k a c rep
	[ "$(id -u)" = 0 ] || { echo "bench-launch: cluster: needs root (scripts/cluster-up.sh)" >&2; exit 1; }
	k=$(sed -n 's/^DSM_CLUSTER_K=//p' "$STATE/cluster.env" 2>/dev/null)
	if [ "$k" != "$HOSTS" ]; then
		echo "bench-launch: bringing up $HOSTS namespace hosts (scripts/cluster-up.sh $HOSTS)"
		cluster_made=1
		bash "$here/cluster-up.sh" "$HOSTS" >"$work/cluster-up.log" 2>&1 || {
			echo "bench-launch: cluster-up.sh failed:" >&2
			tail -n 20 "$work/cluster-up.log" >&2
			exit 1
		}
	fi
	sed "s/\$/ slots=$SLOTS/" "$STATE/machinefile" >"$work/machinefile"
	cp "$work/machinefile" "$work/hostfile" # user@address slots=S: both read it
	# Ours: the launcher home of cluster-up.sh (key, known_hosts), no agent.
	local ours_cmd=(env -u SSH_AUTH_SOCK HOME="$STATE/home" ip netns exec dsm-l "$ours" -np "$np" -machinefile "$work/machinefile" "$hello")
	# Open MPI: OpenSSH with the cluster's config (same key, known_hosts).
	local net
	net=$(sed -n 's/^DSM_CLUSTER_LAUNCHER_ADDR=\(.*\)\.[0-9]*$/\1.0\/24/p' "$STATE/cluster.env")
	local ompi_cmd=(ip netns exec dsm-l mpirun.openmpi --allow-run-as-root --hostfile "$work/hostfile" -np "$np"
		--mca plm_rsh_agent "ssh -F $STATE/ssh_config" --mca plm_rsh_no_tree_spawn 1
		--mca btl tcp,self --mca btl_tcp_if_include "$net" --mca oob_tcp_if_include "$net"
		--mca mpi_yield_when_idle 1 "$work/hello_ompi")
	echo "bench-launch: cluster: $np ranks over $HOSTS hosts × $SLOTS slots, $REPS runs (+1 warm-up: fills our binary caches) of each, interleaved; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "  ours:     ${ours_cmd[*]}"
	echo "  Open MPI: ${ompi_cmd[*]}"
	: >"$work/dsm" && : >"$work/ompi"
	for rep in $(seq 0 "$REPS"); do
		a=$(t dsm "$np" "${ours_cmd[@]}")
		c=$(t ompi "$np" "${ompi_cmd[@]}")
		echo "cluster run $rep: dsmexec ${a} ms, Open MPI ${c} ms (load $(cut -d' ' -f1 /proc/loadavg))"
		if [ "$rep" -gt 0 ]; then
			[ "$a" != FAIL ] && echo "$a" >>"$work/dsm"
			[ "$c" != FAIL ] && echo "$c" >>"$work/ompi"
		fi
	done
	local md mo
	md=$(median <"$work/dsm")
	mo=$(median <"$work/ompi")
	echo "cluster $HOSTS×$SLOTS medians: dsmexec $md ms (range $(spread <"$work/dsm")), Open MPI $mo ms (range $(spread <"$work/ompi")); ratio $(ratio "$md" "$mo")×; ok runs $(wc -l <"$work/dsm")/$(wc -l <"$work/ompi") of $REPS"
}
if [ "$mode" = cluster ]; then
	cluster
	exit 0
fi

echo "bench-launch: $REPS runs (+1 warm-up) of each, interleaved; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for np in $NPS; do
	: >"$work/dsm" && : >"$work/nodsm" && : >"$work/ompi"
	for rep in $(seq 0 "$REPS"); do
		a=$(t dsm "$np" "$ours" -np "$np" "$hello")
		b=$(t nodsm "$np" "$ours" -dsm-size 0 -np "$np" "$hello")
		c=$(t ompi "$np" mpirun.openmpi $root_flag --oversubscribe -np "$np" "$work/hello_ompi")
		echo "np $np run $rep: dsmexec ${a} ms, dsmexec -dsm-size 0 ${b} ms, Open MPI ${c} ms (load $(cut -d' ' -f1 /proc/loadavg))"
		if [ "$rep" -gt 0 ]; then
			[ "$a" != FAIL ] && echo "$a" >>"$work/dsm"
			[ "$b" != FAIL ] && echo "$b" >>"$work/nodsm"
			[ "$c" != FAIL ] && echo "$c" >>"$work/ompi"
		fi
	done
	md=$(median <"$work/dsm")
	mn=$(median <"$work/nodsm")
	mo=$(median <"$work/ompi")
	echo "np $np medians: dsmexec $md ms ($(ratio "$md" "$mo")× Open MPI), -dsm-size 0 $mn ms ($(ratio "$mn" "$mo")×), Open MPI $mo ms; ok runs $(wc -l <"$work/dsm")/$(wc -l <"$work/nodsm")/$(wc -l <"$work/ompi") of $REPS"
done
