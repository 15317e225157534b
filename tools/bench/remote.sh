#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-remote, run inside the test kernel: the store local (/dev/vdb)
# against the same disk served from "another machine" (a network namespace
# behind a veth pair, selftests/remote_target.sh) over NVMe/TCP and over
# NBD, at two round-trip times (tc netem on both ends). Each configuration
# in turn, a round of each, TS_BENCH_ROUNDS (3) times, so that all see the
# same conditions; medians. Per round: swap throughput (swapbench:
# TS_BENCH_MIB (256) pushed out and read back, one reclaimer) and the
# page-out phase of dpbench (TS_DP_SSD_MIB (128) of cold guest memory,
# reconciliation on, the guest's disk local and undelayed). Lines
#   # remote CONFIG round N: swap out+in X MiB/s, page-out Y MiB/s
# then per round-trip time, the longest first
#   remotebench nvme_tcp=R nbd=R nvme_tcp_pageout=R nbd_pageout=R rtt_us=T
# R: remote throughput / local. TS_BENCH_DELAYS_US: each end's delay, so
# half the round trip, in microseconds ("200,50").

MIB=${TS_BENCH_MIB:-256}
ROUNDS=${TS_BENCH_ROUNDS:-3}
COLD=${TS_DP_SSD_MIB:-128}
DELAYS=$(echo "${TS_BENCH_DELAYS_US:-200,50}" | tr , ' ')
SWAPBENCH="$TS_DIR/build/tools/swapbench"
TARGET="$TS_DIR/selftests/remote_target.sh"
LOG=/tmp/dp.log
RES=/tmp/remote.res

fail() {
	echo "remote.sh: $*" >&2
	"$TARGET" down
	exit 1
}

# shellcheck source=tools/bench/dplib.sh
. "$TS_DIR/tools/bench/dplib.sh"

# store_up CONFIG: the store's device of CONFIG ("local", or
# TRANSPORT-DELAY), the module loaded on it, swap on tsswap0.
store_up() {
	case $1 in
	local) store=/dev/vdb ;;
	*) store=$("$TARGET" up "${1%-*}" /dev/vdb "${1#*-}") ||
		fail "remote_target.sh up ${1%-*} /dev/vdb ${1#*-}" ;;
	esac
	"$TS_DIR/build/tools/tesseractctl" format --force "$store" >/dev/null ||
		fail "tesseractctl format $store"
	insmod "$TS_MODULE" backing="$store" || fail "insmod backing=$store"
	mkswap -q /dev/tsswap0 >/dev/null || fail "mkswap /dev/tsswap0"
}

store_down() {
	module_down
	"$TARGET" down
}

# round CONFIG N: one swapbench round and one dpbench page-out on CONFIG;
# appends "CONFIG swap_mib_s pageout_mib_s" to $RES.
round() {
	store_up "$1"
	swapon /dev/tsswap0 || fail "swapon"
	"$SWAPBENCH" "$MIB" 1 1 >/tmp/bench.out 2>&1 || {
		cat /tmp/bench.out
		fail "swapbench on $1"
	}
	swap=$(sed -n 's/.*out+in \([0-9.]*\).*/\1/p' /tmp/bench.out | head -n1)
	swapoff /dev/tsswap0 || fail "swapoff"
	swapon /dev/tsswap0 || fail "swapon"
	echo 1 >/sys/module/tesseract/parameters/reconcile
	"$DPBENCH" -p "$1" -m on -c "$COLD" -H 16 -q 8 -k 8 -M 16 -s "$store" \
		/dev/vda >/tmp/dp.out 2>&1 || {
		tail -n 5 /tmp/dp.out
		fail "dpbench on $1"
	}
	sed 's/^\([^#]\)/# \1/' /tmp/dp.out >>"$LOG"
	pageout=$(tagged_val dp "$1" on pageout mib_s)
	store_down
	echo "# remote $1 round $2: swap out+in $swap MiB/s, page-out $pageout MiB/s"
	echo "$1 $swap $pageout" >>"$RES"
}

# median CONFIG COLUMN (2: swap, 3: page-out)
median() {
	awk -v c="$1" -v k="$2" '$1 == c { print $k }' "$RES" | sort -g |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

dp_env
echo 0 >/sys/block/vdb/queue/rotational
: >"$LOG"
: >"$RES"
configs=local
for d in $DELAYS; do
	configs="$configs nvme-$d nbd-$d"
done
echo "# configurations: $configs (nvme-D, nbd-D: D us each way)"
i=1
while [ $i -le "$ROUNDS" ]; do
	for c in $configs; do
		round "$c" $i
	done
	i=$((i + 1))
done

# The remote medians of column 2 (swap) or 3 (page-out) over the local.
for d in $DELAYS; do
	printf 'remotebench'
	for figure in 2: 3:_pageout; do
		for t in nvme nbd; do
			name=$t
			[ $t = nvme ] && name=nvme_tcp
			printf ' %s%s=%s' $name "${figure#*:}" \
				"$(calc ratio "$(median "$t-$d" "${figure%:*}")" \
				"$(median local "${figure%:*}")")"
		done
	done
	printf ' rtt_us=%s\n' $((2 * d))
done
