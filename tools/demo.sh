#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The demo, run inside the test kernel by tools/vm/guest-run.sh: load
# tesseract and show what it exposes.

set -e

step() {
	echo
	echo "### $*"
}

step "insmod $TS_MODULE"
insmod "$TS_MODULE"
dmesg | grep tesseract | tail -n 3

step "modinfo: parameters"
modinfo -F parm "$TS_MODULE"

step "/sys/module/tesseract"
for f in /sys/module/tesseract/abi_version /sys/module/tesseract/parameters/*; do
	printf '%-48s %s\n' "$f" "$(cat "$f")"
done

step "/sys/kernel/debug/tesseract"
ls -l /sys/kernel/debug/tesseract

step "rmmod tesseract"
rmmod tesseract
dmesg | grep tesseract | tail -n 1
