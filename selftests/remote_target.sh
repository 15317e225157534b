#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# remote_target.sh: another machine inside the test kernel, for the store
# over a network block device (selftests/remote_store.c): a target in the
# network namespace ts-target, behind a veth pair whose two ends delay
# every packet (tc netem). nvme: the kernel's NVMe over TCP target
# (nvmet-tcp), the host connected with nvme-cli; nbd: nbd-server, the host
# connected with nbd-client.
#
#   remote_target.sh up nvme|nbd DEVICE [DELAY_US [FAIL_S]]
#                         serve DEVICE, connect, print the host's device
#   remote_target.sh fault path|target on|off
#                         the path to the target down (the host's end of
#                         the link) or the target stopped (nvmet: its port
#                         closed, with the host's connections; nbd-server:
#                         killed), or back (off)
#   remote_target.sh cut path|target SECONDS
#                         that fault for SECONDS; "down" on stdout once it
#                         is in place
#   remote_target.sh reconnect nvme|nbd [FAIL_S]
#                         the host's device working again (printed), after
#                         an outage longer than its timeouts
#   remote_target.sh down                   undo all of it
#
# FAIL_S: with the path down, I/O fails after about that many seconds
# (nvme: the controller's fast_io_fail_tmo, after its 5 s keep-alive
# timeout noticed; nbd: each request's timeout). Without it, nvme I/O
# waits for the controller to come back, up to its 20 s controller-loss
# timeout, and nbd's requests time out after 20 s.
#
# up exits 2 if something the setup needs is missing here (a kernel
# without network, nvmet-tcp or nbd; nvme-cli or nbd not installed), 1 if
# it fails.

NETNS=ts-target
HOST_IF=ts-h
TARGET_IF=ts-t
HOST_IP=10.77.0.1
TARGET_IP=10.77.0.2
PORT=4420
NQN=nqn.2026-12.org.tesseract:remote-store
CFS=/sys/kernel/config/nvmet
SUBSYS=$CFS/subsystems/$NQN
NBD_PORT=10809
NBD_CONF=/tmp/ts-nbd-server.conf
NBD_PID=/tmp/ts-nbd-server.pid
NBD_DEV=/dev/nbd0
# The server's cgroup: no swap, or its pages could go to the swap it
# serves (a machine of its own would not swap to its clients).
NBD_CGROUP=/sys/fs/cgroup/ts-nbd-server

# Until no process is left in nbd-server's cgroup (up to 30 s): the last
# close of the device it serves writes its page cache to the disk.
# (cgroup.procs cannot say: cgroupfs files have no size.)
nbd_server_gone() {
	for _ in $(seq 300); do
		grep -qx "populated 0" "$NBD_CGROUP/cgroup.events" && return 0
		sleep 0.1
	done
	return 1
}

down() {
	nbd-client -d "$NBD_DEV"
	if [ -d "$NBD_CGROUP" ]; then
		# Asked to stop, or killed if a stopped target left no pid
		# (or a stale one).
		pid=$(cat "$NBD_PID" 2>/dev/null)
		if [ -n "$pid" ] && grep -qx "$pid" "$NBD_CGROUP/cgroup.procs"
		then
			kill "$pid"
		else
			echo 1 >"$NBD_CGROUP/cgroup.kill"
		fi
		nbd_server_gone || echo 1 >"$NBD_CGROUP/cgroup.kill"
		nbd_server_gone
	fi
	rm -f "$NBD_PID" "$NBD_CONF"
	rmdir "$NBD_CGROUP"
	nvme disconnect -n "$NQN"
	rm -f "$CFS/ports/1/subsystems/$NQN"
	rmdir "$CFS/ports/1"
	[ -d "$SUBSYS" ] && echo 0 >"$SUBSYS/namespaces/1/enable"
	rmdir "$SUBSYS/namespaces/1" "$SUBSYS"
	ip link del "$HOST_IF"
	ip netns del "$NETNS"
}

# The network: the target's end of the veth pair in its namespace.
net_up() {
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
}

nvme_up() {
	mountpoint -q /sys/kernel/config ||
		mount -t configfs none /sys/kernel/config
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
	nvme_serve
	nvme_connect
}

# The port listens in the namespace of whoever links a subsystem to it
# (nvmet-tcp creates its socket then): the target's. nsenter, not ip netns
# exec, whose fresh /sys has no configfs. Unlinking it closes the port and
# deletes the host's controllers on the target's side.
nvme_serve() {
	nsenter --net="/run/netns/$NETNS" \
		ln -s "$SUBSYS" "$CFS/ports/1/subsystems/$NQN"
}

# The host's controller of the target: short timeouts, so that a path that
# stays down fails I/O after seconds, not after the default ten minutes of
# reconnecting. With FAIL_S, I/O fails after it while the controller
# keeps reconnecting (for two minutes), and the same device works again
# when the path is back: nvme-cli 2.3 has no option for fast_io_fail_tmo,
# so the connect string goes to the fabrics device itself.
nvme_connect() {
	if [ -n "$fail" ]; then
		echo "transport=tcp,traddr=$TARGET_IP,trsvcid=$PORT,nqn=$NQN,ctrl_loss_tmo=120,fast_io_fail_tmo=$fail,reconnect_delay=1,keep_alive_tmo=5" \
			>/dev/nvme-fabrics
	else
		nvme connect -t tcp -a "$TARGET_IP" -s "$PORT" -n "$NQN" \
			--ctrl-loss-tmo=20 --reconnect-delay=1 \
			--keep-alive-tmo=5 >/dev/null
	fi
	nvme_device
}

# The namespace's block device, under its subsystem (with or without
# native multipath), once it is there.
nvme_device() {
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

# nbd-server with flush and FUA (the store's journal needs both), and the
# host's nbd-client with 4 KiB blocks and a 20 s I/O timeout.
nbd_up() {
	cat >"$NBD_CONF" <<-EOF
	[generic]
		user = root
		group = root
		listenaddr = $TARGET_IP
		port = $NBD_PORT
	[store]
		exportname = $device
		flush = true
		fua = true
	EOF
	mkdir -p "$NBD_CGROUP"
	echo 0 >"$NBD_CGROUP/memory.swap.max"
	nbd_serve
	nbd_connect
}

# nbd-server in its cgroup, until it listens.
nbd_serve() {
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh \
		"$NBD_CGROUP" ip netns exec "$NETNS" \
		nbd-server -C "$NBD_CONF" -p "$NBD_PID"
	for _ in $(seq 50); do
		ip netns exec "$NETNS" ss -ltn | grep -q ":$NBD_PORT " && return 0
		sleep 0.1
	done
	echo "nbd-server does not listen" >&2
	return 1
}

# The target stops as a crashed one would: every nbd-server process killed
# at once (the one serving the host's connection with it), or nvmet's port
# closed.
target_stop() {
	if [ -r "$NBD_CONF" ]; then
		echo 1 >"$NBD_CGROUP/cgroup.kill"
		nbd_server_gone || return 1
		rm -f "$NBD_PID"
	else
		rm "$CFS/ports/1/subsystems/$NQN"
	fi
}

target_start() {
	if [ -r "$NBD_CONF" ]; then
		nbd_serve
	else
		nvme_serve
	fi
}

# fault path|target on|off
fault() {
	case $1-$2 in
	path-on) ip link set "$HOST_IF" down ;;
	path-off) ip link set "$HOST_IF" up ;;
	target-on) target_stop ;;
	target-off) target_start ;;
	*) echo "fault: path or target, on or off, not $1 $2" >&2; return 1 ;;
	esac
}

nbd_connect() {
	nbd-client -N store "$TARGET_IP" "$NBD_PORT" "$NBD_DEV" -b 4096 \
		-t "${fail:-20}" >/dev/null || return 1
	echo "$NBD_DEV"
}

# After an outage longer than FAIL_S: an NBD connection that timed out is
# dead for good, the device fails all I/O until it is connected again
# (which the kernel refuses while something holds it open); an NVMe
# controller reconnects by itself once the path is back (within its
# controller-loss timeout; after that, connect again).
reconnect() {
	transport=$1
	fail=${2:-}
	case $transport in
	nbd)
		nbd-client -d "$NBD_DEV" >/dev/null 2>&1
		# The kernel lets go of the device asynchronously.
		for _ in $(seq 20); do
			nbd_connect 2>/dev/null && exit 0
			sleep 0.5
		done
		nbd_connect ;;
	nvme)
		for _ in $(seq 300); do
			for c in /sys/class/nvme/nvme*; do
				grep -qx "$NQN" "$c/subsysnqn" 2>/dev/null &&
				grep -qx live "$c/state" && nvme_device
			done
			sleep 0.1
		done
		nvme disconnect -n "$NQN" >/dev/null 2>&1
		nvme_connect ;;
	*) echo "reconnect: nvme or nbd, not $transport" >&2; exit 1 ;;
	esac
}

up() {
	transport=$1
	device=$2
	delay=${3:-50}
	fail=${4:-}
	case $transport in
	nvme)
		tools="nvme"
		modules="nvmet nvmet-tcp nvme-tcp" ;;
	nbd)
		tools="nbd-server nbd-client"
		modules="nbd" ;;
	*) echo "up: nvme or nbd, not $transport" >&2; exit 1 ;;
	esac
	for t in $tools; do
		command -v "$t" >/dev/null ||
			{ echo "$t is not installed" >&2; exit 2; }
	done
	for m in veth sch_netem $modules; do
		modprobe -q "$m" ||
			{ echo "no $m in this kernel" >&2; exit 2; }
	done
	# Any failure from here on is a failure (1), not a missing part (2):
	# ip, tc and dash's redirections exit 2 themselves. Not in an || list,
	# where the shell would ignore set -e.
	(set -e; net_up; "${transport}_up")
	[ $? = 0 ] || exit 1
}

case $1 in
up) shift; up "$@"; exit 0 ;;
fault) fault "$2" "$3" ;;
# Once it said down, nobody reads the pipe that is its stdout.
cut) fault "$2" on && echo down && exec >/dev/null && sleep "$3" &&
	fault "$2" off ;;
reconnect) shift; reconnect "$@" ;;
down) down >/dev/null 2>&1; exit 0 ;;
*) echo "usage: $0 up nvme|nbd DEVICE [DELAY_US [FAIL_S]] | fault path|target on|off | cut path|target SECONDS | reconnect nvme|nbd [FAIL_S] | down" >&2
	exit 1 ;;
esac
