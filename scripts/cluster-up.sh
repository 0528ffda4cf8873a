#!/usr/bin/env bash
# cluster-up.sh K — K test hosts with real OpenSSH sshd, in network namespaces.
#
#   dsm-br  holds the bridge br0 (no address) joining everyone
#   dsm-l   the launcher: 10.77.0.2      (run mpirun here: ip netns exec dsm-l ...)
#   dsm-hN  host N: 10.77.0.(10+N), sshd on port 22, Unix user dsmN
#
# The namespaces are linked only to each other: no interface in the root
# namespace, no default route, so no test traffic can reach a real network.
# Every host runs its own sshd (own host key, config, pid file and log under
# /run/dsm-cluster/hN); user dsmN has its own home with authorized_keys
# holding a test key made here.
#
# For tests, /run/dsm-cluster holds:
#   hosts        "name netns address user port" per host (after # comments)
#   machinefile  user@address per host, for mpirun -machinefile
#   cluster.env  shell variables: DSM_CLUSTER_K, DSM_CLUSTER_KEY, ...
#   id_ed25519   the test key (and .pub)
#   known_hosts  every host's key, as OpenSSH and x/crypto/knownhosts read it
#   ssh_config   for OpenSSH: ssh -F /run/dsm-cluster/ssh_config dsm1@10.77.0.11
#   home/.ssh/   id_ed25519, known_hosts and config: a launcher home
#                (HOME=/run/dsm-cluster/home, or remote.Options{Home: ...})
#
# Idempotent: it first removes a previous cluster (cluster-down.sh). Needs
# root, iproute2 and openssh-server (sshd is never started as a service).
set -euo pipefail

K=${1:-4}
case $K in '' | *[!0-9]*) echo "usage: $0 K   (1 <= K <= 50)" >&2; exit 2 ;; esac
if [ "$K" -lt 1 ] || [ "$K" -gt 50 ]; then
	echo "usage: $0 K   (1 <= K <= 50)" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ]; then
	echo "cluster-up: must run as root (network namespaces, users, sshd)" >&2
	exit 1
fi
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
for tool in ip ssh-keygen useradd "$SSHD"; do
	if ! command -v "$tool" >/dev/null; then
		echo "cluster-up: $tool not found (apt-get install iproute2 openssh-server passwd)" >&2
		exit 1
	fi
done

STATE=/run/dsm-cluster
NET=10.77.0
BR=dsm-br
LNS=dsm-l
MARK="dsmexec test host" # GECOS of our users; cluster-down.sh --users removes only those

here=$(cd "$(dirname "$0")" && pwd)
"$here/cluster-down.sh" >/dev/null

mkdir -p "$STATE" /run/sshd # sshd's privilege separation directory
chmod 755 "$STATE" /run/sshd

# Network: one bridge in its own namespace, one veth per node.
ip netns add "$BR"
ip -n "$BR" link set lo up
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up

node() { # node NETNS ADDRESS: a namespace with eth0 on the bridge
	local ns=$1 addr=$2 port=v-${1#dsm-}
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$BR" link add "$port" type veth peer name eth0 netns "$ns"
	ip -n "$BR" link set "$port" master br0 up
	ip -n "$ns" addr add "$addr/24" dev eth0
	ip -n "$ns" link set eth0 up
}
node "$LNS" "$NET.2"

# The test key, for every user.
ssh-keygen -q -t ed25519 -N "" -C "dsm-cluster test key" -f "$STATE/id_ed25519"
: >"$STATE/known_hosts"
{
	echo "# dsm-cluster hosts: name netns address user port"
} >"$STATE/hosts"
: >"$STATE/machinefile"

shell=/bin/bash
[ -x "$shell" ] || shell=/bin/sh

for i in $(seq 1 "$K"); do
	ns=dsm-h$i addr=$NET.$((10 + i)) user=dsm$i dir=$STATE/h$i
	node "$ns" "$addr"

	if ! id "$user" >/dev/null 2>&1; then
		useradd --create-home --home-dir "/home/$user" --shell "$shell" --comment "$MARK" "$user"
	fi
	usermod -p '*' "$user" # no password, but not locked: sshd refuses locked accounts
	home=$(getent passwd "$user" | cut -d: -f6)
	install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
	install -m 600 -o "$user" -g "$user" "$STATE/id_ed25519.pub" "$home/.ssh/authorized_keys"

	mkdir -p "$dir"
	ssh-keygen -q -t ed25519 -N "" -C "$ns host key" -f "$dir/ssh_host_ed25519_key"
	cat >"$dir/sshd_config" <<-EOF
		# sshd of test host $ns ($addr); made by cluster-up.sh
		ListenAddress $addr:22
		HostKey $dir/ssh_host_ed25519_key
		PidFile $dir/sshd.pid
		AuthorizedKeysFile .ssh/authorized_keys
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		PermitRootLogin no
		AllowUsers dsm*
		UseDNS no
		PrintMotd no
		PrintLastLog no
		MaxSessions 64
		MaxStartups 64:30:128
		ClientAliveInterval 5
		ClientAliveCountMax 3
		Subsystem sftp internal-sftp
	EOF
	"$SSHD" -t -f "$dir/sshd_config"
	ip netns exec "$ns" "$SSHD" -f "$dir/sshd_config" -E "$dir/sshd.log"

	echo "$addr $(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")" >>"$STATE/known_hosts"
	echo "h$i $ns $addr $user 22" >>"$STATE/hosts"
	echo "$user@$addr" >>"$STATE/machinefile"
done

# A launcher home and an OpenSSH config using the test key and known_hosts.
install -d -m 700 "$STATE/home" "$STATE/home/.ssh"
install -m 600 "$STATE/id_ed25519" "$STATE/home/.ssh/id_ed25519"
install -m 644 "$STATE/id_ed25519.pub" "$STATE/home/.ssh/id_ed25519.pub"
install -m 644 "$STATE/known_hosts" "$STATE/home/.ssh/known_hosts"
cat >"$STATE/ssh_config" <<EOF
# OpenSSH client config for the test hosts; made by cluster-up.sh
Host $NET.*
    IdentityFile $STATE/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $STATE/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 5
EOF
install -m 644 "$STATE/ssh_config" "$STATE/home/.ssh/config"

cat >"$STATE/cluster.env" <<EOF
DSM_CLUSTER_K=$K
DSM_CLUSTER_LAUNCHER_NS=$LNS
DSM_CLUSTER_LAUNCHER_ADDR=$NET.2
DSM_CLUSTER_HOSTS=$STATE/hosts
DSM_CLUSTER_MACHINEFILE=$STATE/machinefile
DSM_CLUSTER_KEY=$STATE/id_ed25519
DSM_CLUSTER_KNOWN_HOSTS=$STATE/known_hosts
DSM_CLUSTER_SSH_CONFIG=$STATE/ssh_config
DSM_CLUSTER_HOME=$STATE/home
EOF

# Wait (bounded) until every sshd answers from the launcher's namespace.
for i in $(seq 1 "$K"); do
	addr=$NET.$((10 + i))
	ok=
	for _ in $(seq 1 100); do
		if ip netns exec "$LNS" ssh -F "$STATE/ssh_config" "dsm$i@$addr" true 2>/dev/null; then
			ok=1
			break
		fi
		sleep 0.1
	done
	if [ -z "$ok" ]; then
		echo "cluster-up: sshd of dsm-h$i ($addr) does not answer; its log:" >&2
		tail -n 20 "$STATE/h$i/sshd.log" >&2 || true
		exit 1
	fi
done
echo "cluster-up: $K hosts ready; see $STATE/hosts, run the launcher with: ip netns exec $LNS ..."
