#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# build.sh [OUTDIR]: build the debug test kernel (make debug-kernel).
#
# A 6.12 kernel from Debian's linux-source-6.12 tarball (the source of the
# 6.12 test kernel), configured as x86_64 defconfig + kvm_guest.config +
# tools/debug-kernel/debug.config, built niced into OUTDIR (default
# build/debug-kernel):
#
#   src/        the extracted source
#   obj/        the build (O=): KDIR for the module (make KDIR=obj), with
#               vmlinux, Module.symvers and arch/x86/boot/bzImage
#   modules/    modules_install output: modules/lib/modules/<release>/
#   release     the kernel release (6.12.N-tsdebug)
#   stamp       checksums of the tarball, the fragment and this script
#   build.log   the last build's output
#
# Nothing is done when the stamp matches; a changed fragment rebuilds in
# the same tree (make only redoes what changed), a changed tarball from
# scratch. DEBUG_KERNEL_JOBS (default 2) sets make -j.

set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
top=$(dirname "$(dirname "$here")")
out=${1:-$top/build/debug-kernel}
tarball=/usr/src/linux-source-6.12.tar.xz
fragment=$here/debug.config
jobs=${DEBUG_KERNEL_JOBS:-2}

die() {
	echo "debug-kernel: $*" >&2
	exit 1
}

[ -r "$tarball" ] || die "$tarball not found (make deps installs linux-source-6.12)"

mkdir -p "$out"
out=$(readlink -f "$out")
tar_sum=$(sha256sum "$tarball" | cut -d' ' -f1)
stamp="tarball $tar_sum
fragment $(sha256sum "$fragment" | cut -d' ' -f1)
script $(sha256sum "$0" | cut -d' ' -f1)"

if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
   [ -f "$out/release" ]; then
	echo "debug-kernel: $(cat "$out/release") is up to date ($out)"
	exit 0
fi
rm -f "$out/stamp" "$out/release"

src=$out/src obj=$out/obj
if [ "$(cat "$src/.tarball" 2>/dev/null)" != "$tar_sum" ]; then
	echo "debug-kernel: extracting $tarball"
	rm -rf "$src" "$obj" "$out/modules"
	mkdir -p "$src"
	tar -C "$src" --strip-components=1 -xJf "$tarball"
	echo "$tar_sum" >"$src/.tarball"
fi
mkdir -p "$obj"

for tool in flex bison bc; do
	command -v $tool >/dev/null || die "$tool missing (tools/deps.sh --debug-kernel installs it)"
done
[ -e /usr/include/libelf.h ] || die "libelf-dev missing (tools/deps.sh --debug-kernel installs it)"

kmake() {
	nice -n 19 make -C "$src" O="$obj" ARCH=x86_64 "$@"
}

start=$(date +%s)
{
	echo "debug-kernel: configuring"
	kmake -s x86_64_defconfig
	# merge_config.sh writes .config into the current directory's O=.
	(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" \
		"$obj/.config" "$src/kernel/configs/kvm_guest.config" \
		"$fragment" >/dev/null)
	kmake -s olddefconfig
} >"$out/build.log" 2>&1 || {
	tail -n 30 "$out/build.log" >&2
	die "configuration failed (log: $out/build.log)"
}

# Every line of the fragment must hold: "CONFIG_X=v" set to v, "# CONFIG_X
# is not set" not set.
bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		opt=${line%%=*}
		grep -qxF -- "$line" "$obj/.config" && continue
		;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }
		opt=${opt%% *}
		grep -q "^$opt=" "$obj/.config" || continue
		;;
	*) continue ;;
	esac
	got=$(grep -E "^$opt=|^# $opt is not set" "$obj/.config" || true)
	echo "debug-kernel: wanted '$line', got '${got:-nothing}'" >&2
	bad=1
done <"$fragment"
[ $bad = 0 ] || die "the configuration lacks options of $fragment"

echo "debug-kernel: building with make -j$jobs (nice 19), log in $out/build.log"
{
	kmake -j"$jobs" bzImage modules
	rm -rf "$out/modules"
	kmake -s INSTALL_MOD_PATH="$out/modules" modules_install
} >>"$out/build.log" 2>&1 || {
	grep -E 'error|Error' "$out/build.log" | head -n 30 >&2
	die "build failed (log: $out/build.log)"
}

secs=$(($(date +%s) - start))
release=$(cat "$obj/include/config/kernel.release")
echo "$release" >"$out/release"
echo "$stamp" >"$out/stamp"
echo "debug-kernel: $release built in $((secs / 60)) min $((secs % 60)) s" |
	tee -a "$out/build.log"
