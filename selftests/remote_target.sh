#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# remote_target.sh: another machine inside the test kernel, for the store
# over NVMe over TCP (selftests/remote_store.c). The kernel's target
# (nvmet-tcp) runs in the network namespace ts-target, behind a veth pair
# whose two ends delay every packet (tc netem); the host connects with
# nvme-cli.
#
#   remote_target.sh up DEVICE [DELAY_US]   serve DEVICE, connect, print
#                                           the host's block device
#   remote_target.sh cut SECONDS            the path down for SECONDS
#   remote_target.sh down                   undo all of it
#
# up exits 2 if something the setup needs is missing here (a kernel
# without network or nvmet-tcp, nvme-cli not installed), 1 if it fails.

NETNS=ts-target
HOST_IF=ts-h
TARGET_IF=ts-t
HOST_IP=10.77.0.1
TARGET_IP=10.77.0.2
PORT=4420
NQN=nqn.2026-12.org.tesseract:remote-store
CFS=/sys/kernel/config/nvmet
SUBSYS=$CFS/subsystems/$NQN

down() {
	nvme disconnect -n "$NQN"
	rm -f "$CFS/ports/1/subsystems/$NQN"
	rmdir "$CFS/ports/1"
	[ -d "$SUBSYS" ] && echo 0 >"$SUBSYS/namespaces/1/enable"
	rmdir "$SUBSYS/namespaces/1" "$SUBSYS"
	ip link del "$HOST_IF"
	ip netns del "$NETNS"
}

up() {
	device=$1
	delay=${2:-50}
	command -v nvme >/dev/null || { echo "nvme-cli missing" >&2; exit 2; }
	for m in veth sch_netem nvmet nvmet-tcp nvme-tcp; do
		modprobe -q "$m" ||
			{ echo "no $m in this kernel" >&2; exit 2; }
	done
	set -e
	mountpoint -q /sys/kernel/config ||
		mount -t configfs none /sys/kernel/config
	ip netns add "$NETNS"
	ip link add "$HOST_IF" type veth peer name "$TARGET_IF"
	ip link set "$TARGET_IF" netns "$NETNS"
	ip addr add "$HOST_IP/24" dev "$HOST_IF"
	ip link set "$HOST_IF" up
	tc qdisc add dev "$HOST_IF" root netem delay "${delay}us"
	ip netns exec "$NETNS" ip link set lo up
	ip netns exec "$NETNS" ip addr add "$TARGET_IP/24" dev "$TARGET_IF"
	ip netns exec "$NETNS" ip link set "$TARGET_IF" up
	ip netns exec "$NETNS" tc qdisc add dev "$TARGET_IF" root netem \
		delay "${delay}us"
	mkdir "$SUBSYS"
	echo 1 >"$SUBSYS/attr_allow_any_host"
	mkdir "$SUBSYS/namespaces/1"
	echo "$device" >"$SUBSYS/namespaces/1/device_path"
	echo 1 >"$SUBSYS/namespaces/1/enable"
	mkdir "$CFS/ports/1"
	echo tcp >"$CFS/ports/1/addr_trtype"
	echo ipv4 >"$CFS/ports/1/addr_adrfam"
	echo "$TARGET_IP" >"$CFS/ports/1/addr_traddr"
	echo "$PORT" >"$CFS/ports/1/addr_trsvcid"
	# The port listens in the namespace of whoever links a subsystem to
	# it (nvmet-tcp creates its socket then): the target's. nsenter, not
	# ip netns exec, whose fresh /sys has no configfs.
	nsenter --net="/run/netns/$NETNS" \
		ln -s "$SUBSYS" "$CFS/ports/1/subsystems/$NQN"
	# Short timeouts: a path that stays down fails I/O after seconds,
	# not after the default ten minutes of reconnecting.
	nvme connect -t tcp -a "$TARGET_IP" -s "$PORT" -n "$NQN" \
		--ctrl-loss-tmo=20 --reconnect-delay=1 --keep-alive-tmo=5 \
		>/dev/null
	set +e
	# The namespace's block device, under its subsystem (with or without
	# native multipath).
	for s in /sys/class/nvme-subsystem/*; do
		grep -qx "$NQN" "$s/subsysnqn" 2>/dev/null || continue
		for _ in $(seq 50); do
			# nvmeXnY (multipath's head) first, else the path's.
			for n in "$s"/nvme*n1 "$s"/nvme*/nvme*n1; do
				if [ -b "/dev/${n##*/}" ]; then
					echo "/dev/${n##*/}"
					exit 0
				fi
			done
			sleep 0.1
		done
	done
	echo "no block device for $NQN" >&2
	exit 1
}

case $1 in
up) shift; up "$@" ;;
cut) ip link set "$HOST_IF" down && sleep "$2" && ip link set "$HOST_IF" up ;;
down) down >/dev/null 2>&1; exit 0 ;;
*) echo "usage: $0 up DEVICE [DELAY_US] | cut SECONDS | down" >&2; exit 1 ;;
esac
