#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-mrc, run inside the test kernel. Accuracy: a Zipf workload records
# its miss-ratio curve at one memory.max and reruns at larger ones; the
# swap-ins each rerun measures are compared with what the curve predicted.
# Overhead: swap throughput (swapbench) with the curves on against off,
# alternating module loads in the same boot.

PAGES=${TS_MRC_PAGES:-16384}		# 64 MiB working set
ACCESSES=${TS_MRC_ACCESSES:-200000}
WARMUP=${TS_MRC_WARMUP:-100000}
ZIPF_S=${TS_MRC_ZIPF_S:-0.9}
SIZES=${TS_MRC_SIZES:-"4096 6144 8192 10240 12288"}
MIB=${TS_BENCH_MIB:-128}
ROUNDS=${TS_BENCH_ROUNDS:-7}
TOOLS="$TS_DIR/build/tools"

echo N >/sys/module/zswap/parameters/enabled 2>/dev/null
echo "# zswap enabled: $(cat /sys/module/zswap/parameters/enabled 2>/dev/null)"
echo "# lru_gen: $(cat /sys/kernel/mm/lru_gen/enabled 2>/dev/null || echo none)"
echo 0 >/sys/block/vdb/queue/rotational
# Readahead would read pages before their fault: see the admin guide.
echo 0 >/proc/sys/vm/page-cluster

# load MRC: a fresh store, the module with mrc=MRC, swap on tsswap0 only.
load() {
	swapoff -a 2>/dev/null
	rmmod tesseract 2>/dev/null
	"$TOOLS/tesseractctl" format --force /dev/vdb >/dev/null || exit 1
	insmod "$TS_MODULE" backing=/dev/vdb mrc="$1" mrc_window_s=0 || exit 1
	mkswap -q /dev/tsswap0 >/dev/null && swapon /dev/tsswap0 || exit 1
}

load 1
echo "# accuracy: $PAGES pages, Zipf s=$ZIPF_S, $ACCESSES accesses after $WARMUP, memory.max (pages) $SIZES"
"$TOOLS/mrcbench" "$PAGES" "$ACCESSES" "$WARMUP" "$ZIPF_S" $SIZES \
	>/tmp/mrc.out 2>&1
status=$?
sed 's/^/# /' /tmp/mrc.out
[ $status = 0 ] || exit 1
max_error=$(sed -n 's/^mrcbench max_error=//p' /tmp/mrc.out)
"$TOOLS/tesseractctl" mrc ts-mrcbench | sed 's/^/# ctl: /'

# One swapbench round with mrc=$1, labelled $2; appends out+in to $3.
run() {
	load "$1"
	"$TOOLS/swapbench" "$MIB" 1 >/tmp/bench.out 2>&1 || {
		cat /tmp/bench.out
		exit 1
	}
	sed "s|^|# $2: |" /tmp/bench.out
	sed -n 's/.*out+in \([0-9.]*\) MiB\/s.*/\1/p' /tmp/bench.out >>"$3"
}

rm -f /tmp/on.res /tmp/off.res
i=0
while [ $i -lt "$ROUNDS" ]; do
	run 1 mrc-on /tmp/on.res
	run 0 mrc-off /tmp/off.res
	i=$((i + 1))
done
# What the swap paths spend in the curves' code, timed in the module.
load 1
echo 1 >/sys/kernel/debug/tesseract/mrc/time_paths
"$TOOLS/swapbench" "$MIB" 1 >/tmp/bench.out 2>&1 || exit 1
sed 's/^/# path cost: /' /sys/kernel/debug/tesseract/mrc/path_ns
swapoff -a
rmmod tesseract

median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
on=$(median /tmp/on.res)
off=$(median /tmp/off.res)
overhead=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }')
echo "# median out+in MiB/s: curves on $on, off $off"
echo "mrcbench max_error=$max_error overhead=$overhead"
