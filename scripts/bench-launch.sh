#!/usr/bin/env bash
# bench-launch.sh [REPS [NP...]] — launch time of `mpirun -np N hello` on
# this host: ours (default region, and -dsm-size 0) against Open MPI's
# `mpirun --oversubscribe -np N` of a C MPI hello (MPI_Init, print,
# MPI_Finalize), each on its default transport. The variants run
# interleaved, one warm-up round first; prints each run and the medians.
# Default: 5 runs of N = 8 and 128. Needs bin/ (make build) and Open
# MPI's mpicc (openmpi-bin, libopenmpi-dev).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
REPS=${1:-5}
shift || true
NPS=${*:-8 128}
work=$(mktemp -d /tmp/bench-launch.XXXXXX)
trap 'rm -rf "$work"' EXIT
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
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
	echo "np $np medians: dsmexec $md ms ($(ratio "$md" "$mo")× Open MPI), -dsm-size 0 $mn ms ($(ratio "$mn" "$mo")×), Open MPI $mo ms; ok runs $(wc -l <"$work/dsm")/$(wc -l <"$work/nodsm")/$(wc -l <"$work/ompi") of $REPS"
done
