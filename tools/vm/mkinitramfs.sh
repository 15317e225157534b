#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# mkinitramfs.sh KVER OUT [MODDIR [INIT MODULE...]]
#
# A minimal initramfs for the test kernel: static busybox, the modules needed
# to mount the host's root over virtio-9p, and tools/vm/init. Everything else
# the guest runs comes from the host's root, shared read-only. MODDIR holds
# the kernel's modules (default /lib/modules/KVER); a kernel with virtio-9p
# built in, as the debug kernel, needs none. With INIT, that script is the
# init and the MODULEs are those loaded (the nested guest of the selftests:
# tools/vm/nested-init). Static programs named in $TS_INITRAMFS_BINS
# (separated by spaces) go into /bin too.

set -euo pipefail

kver=$1
out=$2
here=$(dirname "$(readlink -f "$0")")
moddir=${3:-/lib/modules/$kver}
init=$here/init
wanted=(virtio_pci 9pnet_virtio 9p)
if [ $# -gt 3 ]; then
	init=$4
	wanted=("${@:5}")
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$work/bin/busybox"
for bin in ${TS_INITRAMFS_BINS:-}; do
	cp "$bin" "$work/bin/"
done
cp "$init" "$work/init"
chmod 755 "$work/init"

# Resolve dependencies in load order from modules.dep; built-in ones are
# absent from it and need nothing.
declare -A seen
order=()
add_module() {
	local name=$1 line path dep
	line=$(grep -sE "/$name\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" ||
		true)
	[ -n "$line" ] || return 0
	path=${line%%:*}
	[ -z "${seen[$path]:-}" ] || return 0
	seen[$path]=1
	for dep in ${line#*:}; do
		dep=$(basename "$dep")
		add_module "${dep%%.ko*}"
	done
	order+=("$path")
}
for m in "${wanted[@]}"; do
	add_module "$m"
done

: >"$work/lib/modules/load-order"
for path in "${order[@]}"; do
	name=$(basename "$path")
	name=${name%%.ko*}.ko
	case $path in
	*.xz) xz -dc "$moddir/$path" >"$work/lib/modules/$name" ;;
	*.zst) zstd -qdc "$moddir/$path" >"$work/lib/modules/$name" ;;
	*.gz) gzip -dc "$moddir/$path" >"$work/lib/modules/$name" ;;
	*) cp "$moddir/$path" "$work/lib/modules/$name" ;;
	esac
	echo "$name" >>"$work/lib/modules/load-order"
done

(cd "$work" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
