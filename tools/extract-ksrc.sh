#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# extract-ksrc.sh KVER DESTDIR FILE...
#
# Extract kernel-internal files (headers that distribution header packages do
# not ship) from the Debian linux-source tarball matching KVER into DESTDIR,
# keeping their in-tree paths. Nothing extracted here is ever committed.

set -euo pipefail

kver=$1
dest=$2
shift 2

series=$(echo "$kver" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
tarball=/usr/src/linux-source-$series.tar.xz
if [ ! -r "$tarball" ]; then
	echo "extract-ksrc: $tarball not found (install linux-source-$series)" >&2
	exit 1
fi

missing=()
for f in "$@"; do
	[ -e "$dest/$f" ] || missing+=("linux-source-$series/$f")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mkdir -p "$dest"
tar -C "$dest" --strip-components=1 -xJf "$tarball" "${missing[@]}"
