#!/usr/bin/env bash
# make bench: the one-host figures, and, when root with sshd and iproute2,
# the multi-host ones on a 4-host namespace cluster (scripts/cluster-up.sh)
# made for the run and removed after it.
set -u
cd "$(dirname "$0")/.."
if [ -n "${DSMEXEC_BENCH_MACHINEFILE:-}" ]; then
	exec go run ./scripts/bench "$@"
fi
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && [ -x /usr/sbin/sshd ]; then
	# Pin Go's caches: HOME changes below, for the cluster's SSH keys.
	export GOCACHE="$(go env GOCACHE)" GOMODCACHE="$(go env GOMODCACHE)" GOPATH="$(go env GOPATH)"
	if bash scripts/cluster-up.sh 4 >/tmp/dsm-bench-cluster.log 2>&1; then
		trap 'bash scripts/cluster-down.sh --users >/dev/null 2>&1' EXIT
		DSMEXEC_BENCH_MACHINEFILE=/run/dsm-cluster/machinefile DSMEXEC_BENCH_NETNS=dsm-l \
			HOME=/run/dsm-cluster/home SSH_AUTH_SOCK= go run ./scripts/bench "$@"
		exit $?
	fi
	echo "bench: the namespace cluster did not come up (see /tmp/dsm-bench-cluster.log); one-host figures only"
else
	echo "bench: multi-host figures need root, iproute2 and openssh-server; one-host figures only"
fi
exec go run ./scripts/bench "$@"
