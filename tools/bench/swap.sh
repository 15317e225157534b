#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-swap, run inside the test kernel: swap throughput through
# /dev/tsswap0 (store on /dev/vdb) against a plain swap partition on /dev/vda,
# the same kind of virtio disk, alternating so both see the same conditions.

MIB=${TS_BENCH_MIB:-256}
ROUNDS=${TS_BENCH_ROUNDS:-3}
BENCH="$TS_DIR/build/tools/swapbench"

echo N >/sys/module/zswap/parameters/enabled 2>/dev/null
echo "# zswap enabled: $(cat /sys/module/zswap/parameters/enabled 2>/dev/null)"
insmod "$TS_MODULE" backing=/dev/vdb || exit 1
mkswap -q /dev/tsswap0 >/dev/null && mkswap -q /dev/vda >/dev/null || exit 1

# Prints the round's out+in MiB/s on stdout, the details on stderr.
run() {
	swapon "$1" || exit 1
	"$BENCH" "$MIB" 1 >/tmp/bench.out 2>&1
	sed "s|^|# $2: |" /tmp/bench.out >&2
	swapoff "$1"
	sed -n 's/.*swapbench mib_s=//p' /tmp/bench.out
}

ts=""
plain=""
i=0
while [ $i -lt "$ROUNDS" ]; do
	ts="$ts $(run /dev/tsswap0 tsswap0)"
	plain="$plain $(run /dev/vda plain)"
	i=$((i + 1))
done
rmmod tesseract

median() {
	echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
ts_med=$(median $ts)
plain_med=$(median $plain)
echo "# tsswap0 out+in MiB/s: $ts (median $ts_med)"
echo "# plain   out+in MiB/s: $plain (median $plain_med)"
echo "swapbench ratio=$(awk -v a="$ts_med" -v b="$plain_med" 'BEGIN { printf "%.3f", a / b }')"
