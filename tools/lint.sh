#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# lint.sh: checkpatch --strict on every C source and header of ours, a
# reStructuredText check of Documentation/, and sparse plus compiler
# warnings (make C=2) on the module for each kernel of the test matrix.
# Prints what it finds; exits non-zero if anything is found.

set -uo pipefail

top=$(dirname "$(dirname "$(readlink -f "$0")")")
status=0

mapfile -t kernels < <("$top/tools/test-kernels")
if [ ${#kernels[@]} -eq 0 ]; then
	echo "lint: no test kernel installed (run tools/deps.sh)"
	exit 1
fi

# checkpatch from the newest kernel source knows the newest rules.
newest=${kernels[${#kernels[@]}-1]}
make -s -C "$top" KVER="$newest" ksrc || exit 1
series=$(echo "$newest" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
checkpatch=$top/build/ksrc-$series/scripts/checkpatch.pl

mapfile -t sources < <(cd "$top" && git ls-files --cached --others \
	--exclude-standard -- '*.c' '*.h')
if [ ${#sources[@]} -gt 0 ]; then
	out=$(cd "$top" && perl "$checkpatch" --strict --no-tree --quiet \
		--show-types -f "${sources[@]}" 2>&1)
	if [ -n "$out" ]; then
		echo "$out"
		status=1
	fi
	echo "checkpatch --strict: ${#sources[@]} files"
fi

mapfile -t docs < <(cd "$top" && git ls-files --cached --others \
	--exclude-standard -- 'Documentation/*.rst')
if [ ${#docs[@]} -gt 0 ]; then
	(cd "$top" && /usr/bin/python3 tools/rstcheck.py "${docs[@]}") || status=1
fi

# The systemd unit, as systemd reads it, with the daemon where the build
# puts it (the unit names where the admin guide installs it). verify wants
# the executable to exist, and on a clean clone lint runs before the build.
unit=tesseract-vhost-user-blk@.service
if command -v systemd-analyze >/dev/null; then
	if ! log=$(make -s -C "$top" tools 2>&1); then
		echo "build of tools failed:"
		echo "$log"
		status=1
	fi
	unitdir=$(mktemp -d)
	sed "s|/usr/local/sbin/|$top/build/tools/|" \
		"$top/tools/vhost-user-blk/$unit" >"$unitdir/$unit"
	if ! out=$(cd "$unitdir" &&
		   systemd-analyze verify "./${unit/@/@lint}" 2>&1) ||
	   [ -n "$out" ]; then
		echo "systemd-analyze verify $unit:"
		echo "$out"
		status=1
	fi
	rm -rf "$unitdir"
	echo "systemd unit: $unit"
fi

for k in "${kernels[@]}"; do
	# Recompile everything so that compiler warnings show too; C=2 runs
	# sparse on every file.
	find "$top/build/$k/kmod" -name '*.o' -delete 2>/dev/null
	if ! log=$(make -s -C "$top" KVER="$k" modules C=2 CHECK=sparse 2>&1); then
		echo "build ($k) failed:"
		echo "$log"
		status=1
	fi
	out=$(echo "$log" | grep -E '(warning|error):' || true)
	if [ -n "$out" ]; then
		echo "sparse ($k):"
		echo "$out"
		status=1
	fi
	echo "sparse: $k"
done
exit $status
