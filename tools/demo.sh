#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The demo, run inside the test kernel by tools/vm/guest-run.sh: load
# tesseract with a store on /dev/vdb, swap through /dev/tsswap0, and show
# what the module exposes.

set -e

step() {
	echo
	echo "### $*"
}

step "insmod tesseract.ko backing=/dev/vdb"
insmod "$TS_MODULE" backing=/dev/vdb
dmesg | grep tesseract | tail -n 3

step "modinfo: parameters"
modinfo -F parm "$TS_MODULE"

step "/sys/module/tesseract"
for f in /sys/module/tesseract/abi_version /sys/module/tesseract/parameters/*; do
	printf '%-48s %s\n' "$f" "$(cat "$f")"
done

step "/sys/block/tsswap0/tesseract"
for f in /sys/block/tsswap0/tesseract/*; do
	printf '%-48s %s\n' "$f" "$(cat "$f")"
done

step "mkswap + swapon /dev/tsswap0"
echo N >/sys/module/zswap/parameters/enabled
mkswap -q /dev/tsswap0
swapon /dev/tsswap0
cat /proc/swaps

step "push 64 MiB of anonymous memory to swap (build/tools/swapbench 64 1)"
"$TS_DIR/build/tools/swapbench" 64 1

step "/sys/kernel/debug/tesseract/tsswap0"
cd /sys/kernel/debug/tesseract/tsswap0
for f in *; do
	[ -r "$f" ] && [ "$f" != release_holds ] &&
		printf '%-20s %s\n' "$f" "$(cat "$f")"
done
cd /

step "/dev/vhost-blk"
ls -l /dev/vhost-blk

step "swapoff, rmmod"
swapoff /dev/tsswap0
rmmod tesseract
dmesg | grep tesseract | tail -n 1
