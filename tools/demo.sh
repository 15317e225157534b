#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The demo, run inside the test kernel by tools/vm/guest-run.sh: load
# tesseract with a store on /dev/vdb, swap through /dev/tsswap0 and show what
# the module exposes, then a short double-paging benchmark (tools/bench/dp.sh,
# SSD-like profile): a guest's page-out of 32 MiB, then a whole guest
# workload that pages on a host that swaps it (the end-to-end mode, half
# the sizes and a quarter of the time of bench-dp's), reconciliation off
# and on, side by side.

set -e

step() {
	echo
	echo "### $*"
}

step "tesseractctl format /dev/vdb; insmod tesseract.ko backing=/dev/vdb"
"$TS_DIR/build/tools/tesseractctl" format --force /dev/vdb
insmod "$TS_MODULE" backing=/dev/vdb
dmesg | grep tesseract | tail -n 3
for f in /sys/module/tesseract/abi_version /sys/module/tesseract/parameters/*; do
	printf '%-48s %s\n' "$f" "$(cat "$f")"
done

step "mkswap + swapon /dev/tsswap0, push 32 MiB of anonymous memory through it"
echo N >/sys/module/zswap/parameters/enabled
mkswap -q /dev/tsswap0
swapon /dev/tsswap0
cat /proc/swaps
"$TS_DIR/build/tools/swapbench" 32 1

step "/sys/kernel/debug/tesseract/tsswap0"
cd /sys/kernel/debug/tesseract/tsswap0
for f in *; do
	[ -r "$f" ] && [ "$f" != release_holds ] &&
		printf '%-20s %s\n' "$f" "$(cat "$f")"
done
cd /
swapoff /dev/tsswap0
rmmod tesseract

step "double paging: a guest pages out 32 MiB of RAM the host has swapped out," \
	"then runs a workload that pages on a host that swaps it"
set +e
TS_DP_PROFILES=ssd TS_DP_SSD_MIB=32 TS_DP_HOT_MIB=8 TS_DP_QUIET=1 \
	TS_E2E_GUEST_MIB=32 TS_E2E_ANON_MIB=48 TS_E2E_FILE_MIB=16 \
	TS_E2E_HOST_MIB=24 TS_E2E_WARMUP_S=5 TS_E2E_SECONDS=10 \
	sh "$TS_DIR/tools/bench/dp.sh"

# make demo VM=1: the same moment with a real guest. The host's QEMU boots
# this kernel again as a guest of tesseract-vhost-user-blk (memfd RAM, a
# vhost-user-blk-pci disk); the guest fills 16 MiB, the host swaps the
# whole guest out to tsswap0, the guest writes the 16 MiB to its disk.
# selftests/vhost_user_blk.c's nested.libvirt.qemu_guest (libvirtd starts
# the admin guide's example domain), with reconciliation off and then on
# (a few minutes each under TCG).
[ "${TS_DEMO_VM:-0}" = 1 ] || exit 0
step "a real guest (libvirt, vhost-user-blk, memfd RAM) pages out 16 MiB" \
	"the host has swapped out: reconciliation off, then on"
for on in 0 1; do
	TS_NESTED_RECONCILE=$on "$TS_BUILD/selftests/vhost_user_blk" \
		-r nested.libvirt.qemu_guest >/tmp/demo-vm-$on.log 2>&1
	echo "reconcile=$on: $(grep -c '^ok' /tmp/demo-vm-$on.log) passed," \
		"$(grep -c '^not ok' /tmp/demo-vm-$on.log) failed"
done
printf '%-40s %12s %12s\n' "" "reconcile=0" "reconcile=1"
for what in "guest pages in host swap" "reconciled" "swapped in during the write"; do
	printf '%-40s' "$what"
	for on in 0 1; do
		v=$(sed -n "s/.* \([0-9][0-9]*\) $what.*/\1/p" \
			/tmp/demo-vm-$on.log | head -n1)
		printf ' %12s' "${v:--}"
	done
	echo
done

