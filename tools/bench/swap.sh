#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-swap, run inside the test kernel: swap throughput through
# /dev/tsswap0 (store on /dev/vdb) against a plain swap partition on /dev/vda,
# the same kind of virtio disk, alternating so both see the same conditions.

MIB=${TS_BENCH_MIB:-256}
ROUNDS=${TS_BENCH_ROUNDS:-5}
BENCH="$TS_DIR/build/tools/swapbench"

echo N >/sys/module/zswap/parameters/enabled 2>/dev/null
echo "# zswap enabled: $(cat /sys/module/zswap/parameters/enabled 2>/dev/null)"
# Both disks are sparse files on the same host disk: tell the kernel so, so
# that plain swap gets the same solid-state swap allocator as tsswap0.
for d in vda vdb; do
	echo 0 >/sys/block/$d/queue/rotational
done
"$TS_DIR/build/tools/tesseractctl" format --force /dev/vdb >/dev/null || exit 1
insmod "$TS_MODULE" backing=/dev/vdb || exit 1
mkswap -q /dev/tsswap0 >/dev/null && mkswap -q /dev/vda >/dev/null || exit 1

# One round on swap device $1, labelled $2; appends "out in out+in" to $3.
run() {
	swapon "$1" || exit 1
	"$BENCH" "$MIB" 1 >/tmp/bench.out 2>&1 || {
		cat /tmp/bench.out
		exit 1
	}
	sed "s|^|# $2: |" /tmp/bench.out
	swapoff "$1"
	sed -n 's/.*out \([0-9.]*\) MiB\/s, in \([0-9.]*\) MiB\/s, out+in \([0-9.]*\).*/\1 \2 \3/p' \
		/tmp/bench.out >>"$3"
}

rm -f /tmp/ts.res /tmp/plain.res
i=0
while [ $i -lt "$ROUNDS" ]; do
	run /dev/tsswap0 tsswap0 /tmp/ts.res
	run /dev/vda plain /tmp/plain.res
	i=$((i + 1))
done
rmmod tesseract

# median FILE COLUMN
median() {
	cut -d' ' -f"$2" "$1" | sort -g |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
for col in 1 2 3; do
	name=$(echo "out in out+in" | cut -d' ' -f$col)
	t=$(median /tmp/ts.res $col)
	p=$(median /tmp/plain.res $col)
	echo "# median $name MiB/s: tsswap0 $t, plain $p, ratio $(awk -v a="$t" -v b="$p" 'BEGIN { printf "%.3f", a / b }')"
done
t=$(median /tmp/ts.res 3)
p=$(median /tmp/plain.res 3)
echo "swapbench ratio=$(awk -v a="$t" -v b="$p" 'BEGIN { printf "%.3f", a / b }')"
