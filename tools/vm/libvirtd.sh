#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# libvirtd.sh start|stop: Debian's libvirtd in the test kernel, for the
# nested guest of selftests/vhost_user_blk.c. The host's root is shared
# read-only there and no systemd runs: libvirt's state, logs and a copy of
# its configuration go to tmpfs, and the daemon runs in the background of
# the test. QEMU still runs as libvirt-qemu (whose groups include kvm), as
# on a host, so the socket permissions of the admin guide are what is
# tested. The copy's qemu.conf is written anew, so that nothing the host
# set there (a user, cgroup controllers) changes what is tested; it has:
# - security_driver "none": the test kernel loads no AppArmor profiles
#   (the admin guide's AppArmor rule is not tested here);
# - stdio_handler "file": no virtlogd runs.
# No network autostarts (the nested guest has none).
#
# Only in the test kernel (PID 1 is tools/vm/guest-run.sh): on a host it
# would stop the host's libvirt and hide its configuration.

set -u
state="/var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt"
pidfile=/run/ts-libvirtd.pid
# The root cgroup's controllers before libvirtd enabled its own.
controllers=/run/ts-libvirtd.controllers

if ! grep -qs guest-run.sh /proc/1/cmdline; then
	echo "libvirtd.sh: not in the test kernel" >&2
	exit 2
fi

# Kill @pid if it is still the program named @comm; wait for it.
kill_comm() {
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 0
	kill "$1" 2>/dev/null
	i=0
	while [ -d "/proc/$1" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$1" 2>/dev/null
	return 0
}

stop() {
	status=0
	# The domains first, while libvirtd can still stop them; then any
	# QEMU it left (both run in sessions of their own, out of reach of
	# the test's process group).
	if [ -r $pidfile ]; then
		for dom in $(virsh -q list --name 2>/dev/null); do
			virsh -q destroy "$dom" >/dev/null 2>&1
		done
		kill_comm "$(cat $pidfile)" libvirtd
		rm -f $pidfile
	fi
	for f in /run/libvirt/qemu/*.pid; do
		[ -r "$f" ] && kill_comm "$(cat "$f")" qemu-system-x86
	done
	rm -rf /run/libvirt /run/etc-libvirt
	for d in $state; do
		if mountpoint -q "$d" && ! umount "$d"; then
			echo "libvirtd.sh: cannot unmount $d" >&2
			status=1
		fi
	done
	# libvirt's cgroup partition, and the controllers it enabled at the
	# root. Left enabled, cpuset would count every test's cgroup as a
	# cpuset: the first one created and the last one gone each patch the
	# kernel's text (cpusets_enabled_key), and a test kernel under TCG
	# once took an int3 oops in __alloc_pages() from such a patch.
	for d in /sys/fs/cgroup/machine/*/ /sys/fs/cgroup/machine/*/*/; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	rmdir /sys/fs/cgroup/machine 2>/dev/null
	if [ -r $controllers ]; then
		for c in $(cat /sys/fs/cgroup/cgroup.subtree_control); do
			grep -qw "$c" $controllers ||
				echo "-$c" >/sys/fs/cgroup/cgroup.subtree_control ||
				status=1
		done
		rm -f $controllers
	fi
	return $status
}

start() {
	stop || return 1
	cat /sys/fs/cgroup/cgroup.subtree_control >$controllers || return 1
	cp -a /etc/libvirt /run/etc-libvirt || return 1
	for d in $state; do
		mount -t tmpfs -o mode=755 tmpfs "$d" || return 1
	done
	cp -a /run/etc-libvirt/. /etc/libvirt/ || return 1
	rm -rf /run/etc-libvirt /etc/libvirt/qemu/networks/autostart
	cat >/etc/libvirt/qemu.conf <<-EOF || return 1
	security_driver = "none"
	stdio_handler = "file"
	EOF
	mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu \
		/var/log/libvirt/qemu || return 1
	chown libvirt-qemu:kvm /var/lib/libvirt/qemu || return 1
	/usr/sbin/libvirtd --daemon --pid-file=$pidfile || return 1
	i=0
	while ! virsh -c qemu:///system version >/dev/null 2>&1; do
		[ $i -lt 120 ] || return 1
		sleep 1
		i=$((i + 1))
	done
	return 0
}

# A start that fails half-way leaves nothing behind.
case "${1:-}" in
start) start || { stop; exit 1; } ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
