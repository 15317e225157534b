#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# dkms_build.sh KVER: build tesseract through dkms for KVER's headers, in a
# private dkms tree so that the host's dkms state is left alone, and check
# that the module it produced is for KVER.

set -euo pipefail

kver=$1
top=$(dirname "$(dirname "$(dirname "$(readlink -f "$0")")")")
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/dkms.conf")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# dkms wants <sourcetree>/<name>-<version>; copy only what is committed.
mkdir -p "$tmp/src/tesseract-$ver" "$tmp/tree"
git -C "$top" ls-files -z --cached --others --exclude-standard |
	(cd "$top" && xargs -0 cp --parents -t "$tmp/src/tesseract-$ver")
# The extracted kernel headers are a build product; reuse them if present.
[ -d "$top/build" ] && cp -a "$top"/build/ksrc-* "$tmp/src/tesseract-$ver/build/" 2>/dev/null ||
	true

dkms_args=(--sourcetree "$tmp/src" --dkmstree "$tmp/tree" -m tesseract -v "$ver" -k "$kver")
dkms add "${dkms_args[@]}" >/dev/null
if ! dkms build "${dkms_args[@]}" >"$tmp/out" 2>&1; then
	cat "$tmp/out"
	find "$tmp/tree" -name make.log -exec cat {} +
	exit 1
fi
ko=$(find "$tmp/tree/tesseract/$ver/$kver" -name 'tesseract.ko*' | head -n1)
[ -n "$ko" ] || { echo "dkms produced no tesseract.ko"; exit 1; }
vermagic=$(modinfo -F vermagic "$ko")
[ "${vermagic%% *}" = "$kver" ] || {
	echo "built for '${vermagic%% *}', expected '$kver'"
	exit 1
}
echo "dkms built $(basename "$ko") for $kver"
