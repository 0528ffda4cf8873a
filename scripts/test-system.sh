#!/usr/bin/env bash
# System tests that need root: real sshd on namespace hosts (multi-host
# jobs), MPICH's Hydra and a single-node Slurm (PMI launches). Each script
# prints PASS/FAIL per case and SKIP with a reason when it cannot run.
set -u
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "SKIP system tests: they need root (network namespaces, sshd, test users); run: sudo make test-system"
	exit 0
fi
fail=0
# test-scale.sh all: 256 ranks on one host, and 64 ranks over 8 namespace
# hosts (hello, counter exact).
for t in scripts/test-cluster.sh scripts/test-pmi.sh "scripts/test-scale.sh all"; do
	if [ -f "${t%% *}" ]; then
		echo "== $t"
		start=$(date +%s)
		bash $t || { echo "FAIL $t"; fail=1; }
		echo "== $t took $(( $(date +%s) - start ))s"
	fi
done
exit $fail
