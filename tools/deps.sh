#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and testing tesseract needs, idempotently and quietly:
# QEMU, busybox, fio, dmsetup, sparse, dkms, and the two Debian 12 test
# kernels (6.1 from bookworm, 6.12 from bookworm-backports) with their headers
# and source tarballs. Costs about a second when everything is present.
#
# deps.sh --debug-kernel also installs what building a kernel from the 6.12
# tarball takes (make debug-kernel): flex, bison, bc, libelf and libssl.

set -euo pipefail

BPO_SOURCES=/etc/apt/sources.list.d/tesseract-backports.sources
SRC_SOURCES=/etc/apt/sources.list.d/tesseract-src.sources

# The -dev libraries make fio's configure see what Debian's fio build saw
# (tools/fio/fio-src.sh), so our ioengine matches fio's structure layout.
# libvirt-clients: virt-xml-validate, which checks the libvirt example;
# libvirt-daemon-system: the libvirtd that starts it in the test kernel (on
# a host that runs systemd, installing it also enables the host's libvirtd,
# which the tests leave alone). nvme-cli, nbd-server, nbd-client and
# iproute2: the store over NVMe over TCP and NBD in the test kernel
# (selftests/remote_target.sh; on a host that runs systemd, installing
# nbd-server also enables its service, which the tests leave alone).
tool_pkgs=(build-essential qemu-system-x86 busybox-static cpio fio dmsetup
	   sparse kmod dkms xz-utils util-linux e2fsprogs python3
	   python3-docutils python3-matplotlib dpkg-dev libaio-dev
	   libnuma-dev librdmacm-dev libibverbs-dev zlib1g-dev libvirt-clients
	   libvirt-daemon-system nvme-cli nbd-server nbd-client iproute2)
k61_pkgs=(linux-image-amd64 linux-headers-amd64 linux-source-6.1)
debug_pkgs=()
[ "${1:-}" = --debug-kernel ] &&
	debug_pkgs=(flex bison bc libelf-dev libssl-dev)

missing_pkgs() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || echo "$p"
	done
}

installed_612_abi() {
	dpkg-query -W -f='${Package} ${Status}\n' 'linux-image-6.12.*-amd64' \
		2>/dev/null | awk '/install ok installed/ { print $1 }' |
		sed -e 's/^linux-image-//' -e 's/-amd64$//' | sort -V | tail -n1
}

have_everything() {
	local abi

	[ -f "$SRC_SOURCES" ] || return 1
	[ -z "$(missing_pkgs "${tool_pkgs[@]}" "${k61_pkgs[@]}" \
		"${debug_pkgs[@]}")" ] || return 1
	abi=$(installed_612_abi)
	[ -n "$abi" ] || return 1
	[ -z "$(missing_pkgs "linux-headers-$abi-amd64" linux-source-6.12)" ] ||
		return 1
	[ -f /usr/src/linux-source-6.1.tar.xz ] &&
		[ -f /usr/src/linux-source-6.12.tar.xz ]
}

# fio's source (for building our ioengine) comes from deb-src.
ensure_source_suite() {
	[ -f "$SRC_SOURCES" ] && return 0
	cat >"$SRC_SOURCES" <<'EOS'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
}

ensure_backports_suite() {
	grep -rqs 'bookworm-backports' /etc/apt/sources.list \
		/etc/apt/sources.list.d/ && return 0
	cat >"$BPO_SOURCES" <<'EOS'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
}

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		-o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold \
		--no-install-recommends "$@" >/dev/null
}

# The backports kernel ABI name (e.g. 6.12.95+deb12) and its source version,
# read from the backports metapackage so image, headers and source match.
install_612() {
	local image srcver

	image=$(apt-cache show -t bookworm-backports linux-image-amd64 |
		sed -n 's/^Depends: .*\(linux-image-6\.12\.[^ ,]*-amd64\).*/\1/p' |
		sort -V | tail -n1)
	srcver=$(apt-cache madison linux-source-6.12 |
		awk -F' [|] ' '/bookworm-backports/ { print $2; exit }')
	if [ -z "$image" ] || [ -z "$srcver" ]; then
		echo "deps: bookworm-backports offers no 6.12 kernel" >&2
		exit 1
	fi
	apt_install "$image" "${image/linux-image-/linux-headers-}" \
		"linux-source-6.12=$srcver"
}

main() {
	have_everything && return 0

	echo "deps: installing build and test dependencies (apt)" >&2
	ensure_backports_suite
	ensure_source_suite
	apt-get update -q >/dev/null
	apt_install "${tool_pkgs[@]}" "${k61_pkgs[@]}" "${debug_pkgs[@]}"
	[ -n "$(installed_612_abi)" ] && [ -f /usr/src/linux-source-6.12.tar.xz ] ||
		install_612
	have_everything || {
		echo "deps: dependencies still missing after apt" >&2
		exit 1
	}
}

main
