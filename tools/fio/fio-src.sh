#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fio-src.sh DIR: the source of the installed fio, configured as Debian
# builds it, in DIR/fio (for building our external ioengine against fio's
# internal headers, which no package ships). Nothing here is committed.

set -euo pipefail

dir=$1
[ -f "$dir/fio/config-host.h" ] && exit 0

version=$(dpkg-query -W -f='${Version}' fio)
mkdir -p "$dir"
cd "$dir"
rm -rf fio fio-*/
apt-get source --download-only -q "fio=$version" >/dev/null 2>&1 || {
	echo "fio-src: cannot fetch the source of fio $version (deb-src missing?)" >&2
	exit 1
}
tar xzf fio_*.orig.tar.gz
mv fio-*/ fio
cd fio
# The options of Debian's build (debian/rules), minus the GUI, and the same
# libraries present, so that fio's structures have the installed layout.
./configure --disable-native --prefix=/usr >configure.log 2>&1
