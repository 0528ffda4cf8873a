#!/usr/bin/env bash
# cluster-down.sh [--users] — remove what cluster-up.sh made: stop the test
# hosts' sshd and any process left in their namespaces, delete the
# namespaces (and with them the bridge and veths) and /run/dsm-cluster.
# --users also deletes the dsmN users (only those cluster-up.sh created,
# recognised by their GECOS field) and their homes. Idempotent.
set -euo pipefail

STATE=/run/dsm-cluster
MARK="dsmexec test host"
remove_users=
case ${1:-} in
'') ;;
--users) remove_users=1 ;;
*) echo "usage: $0 [--users]" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
	echo "cluster-down: must run as root" >&2
	exit 1
fi

# Our namespaces: dsm-br, dsm-l, dsm-h1...
namespaces=$(ip netns list 2>/dev/null | awk '$1 ~ /^dsm-(br|l|h[0-9]+)$/ {print $1}')

# Processes: the sshd of each host (by its pid file), then whatever still
# lives in our namespaces (sessions, agents, ranks of an aborted test).
pids=
for f in "$STATE"/h*/sshd.pid; do
	[ -f "$f" ] && pids="$pids $(cat "$f")"
done
for ns in $namespaces; do
	pids="$pids $(ip netns pids "$ns" 2>/dev/null || true)"
done
pids=$(echo $pids)
if [ -n "$pids" ]; then
	kill -TERM $pids 2>/dev/null || true
	for _ in $(seq 1 30); do # up to 3 s, then force
		alive=
		for p in $pids; do
			kill -0 "$p" 2>/dev/null && alive="$alive $p"
		done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in $pids; do
		kill -KILL "$p" 2>/dev/null || true
	done
fi

for ns in $namespaces; do
	ip netns del "$ns"
done
rm -rf "$STATE"

if [ -n "$remove_users" ]; then
	getent passwd | awk -F: -v m="$MARK" '$1 ~ /^dsm[0-9]+$/ && $5 == m {print $1}' | while read -r u; do
		userdel --remove "$u" 2>/dev/null || userdel "$u"
	done
fi
echo "cluster-down: done"
