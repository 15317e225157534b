#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# libvirtd.sh start|stop: Debian's libvirtd in the test kernel, for the
# nested guest of selftests/vhost_user_blk.c. The host's root is shared
# read-only there and no systemd runs: libvirt's state, logs and a copy of
# its configuration go to tmpfs, and the daemon runs in the background of
# the test. QEMU still runs as libvirt-qemu:kvm, as on a host, so the
# socket permissions of the admin guide are what is tested. What the copy
# changes, and why:
# - security_driver "none": the test kernel loads no AppArmor profiles
#   (the admin guide's AppArmor rule is not tested here);
# - stdio_handler "file": no virtlogd runs;
# - no network autostarts (the nested guest has none).

set -u
state="/var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/libvirt"
pidfile=/run/libvirtd.pid

stop() {
	if [ -r $pidfile ]; then
		pid=$(cat $pidfile)
		kill "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null
		rm -f $pidfile
	fi
	for d in $state; do
		mountpoint -q "$d" && umount "$d"
	done
	return 0
}

start() {
	stop
	cp -a /etc/libvirt /run/etc-libvirt || return 1
	for d in $state; do
		mount -t tmpfs -o mode=755 tmpfs "$d" || return 1
	done
	cp -a /run/etc-libvirt/. /etc/libvirt/ && rm -rf /run/etc-libvirt
	rm -rf /etc/libvirt/qemu/networks/autostart
	mkdir -p /var/lib/libvirt/qemu /var/cache/libvirt/qemu \
		/var/log/libvirt/qemu
	chown libvirt-qemu:kvm /var/lib/libvirt/qemu
	cat >>/etc/libvirt/qemu.conf <<-EOF
	security_driver = "none"
	stdio_handler = "file"
	EOF
	/usr/sbin/libvirtd --daemon --pid-file=$pidfile || return 1
	i=0
	while ! virsh -c qemu:///system version >/dev/null 2>&1; do
		[ $i -lt 120 ] || return 1
		sleep 1
		i=$((i + 1))
	done
	return 0
}

# A start that fails half-way leaves nothing behind: the test's teardown
# does not run after a failed setup.
case "${1:-}" in
start) start || { rc=$?; stop; exit $rc; } ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
