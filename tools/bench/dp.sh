#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-dp, run inside the test kernel: the double-paging benchmark
# (build/tools/dpbench, see tools/dpbench/dpbench.c) with reconciliation off,
# then on, in each profile: the store (/dev/vdb) and the guest's disk image
# (/dev/vda) behind dm-delay, 8 ms per I/O for "hdd", none for "ssd" (the
# virtio disk's own latency under TCG; dm-delay counts in jiffies, 4 ms).
# Prints a side-by-side table per profile, then one line per profile
#   dpbench PROFILE speedup=.. worst_latency_gain=.. swapins_avoided=..
#           data_bytes_ratio=..
# and last a summary line of all profiles, which run-tests takes as the
# result. Sizes and delays are parameters (environment):
#   TS_DP_PROFILES   profiles to run, in order (hdd ssd)
#   TS_DP_HDD_MS, TS_DP_SSD_MS    dm-delay per I/O in ms (8, 0)
#   TS_DP_HDD_MIB, TS_DP_SSD_MIB  cold guest memory paged out (64, 128)
#   TS_DP_HOT_MIB    hot guest memory (16)
#   TS_DP_DEPTH      page-out requests in flight (8)
#   TS_DP_PAGES      pages per request (8)
#   TS_DP_MARGIN_MIB memory.max above the resident set (16)
#   TS_DP_QUIET      1: leave dpbench's own lines out (they stay in /tmp/dp.log)

PROFILES=${TS_DP_PROFILES:-hdd ssd}
HOT=${TS_DP_HOT_MIB:-16}
DEPTH=${TS_DP_DEPTH:-8}
PAGES=${TS_DP_PAGES:-8}
MARGIN=${TS_DP_MARGIN_MIB:-16}
BENCH="$TS_DIR/build/tools/dpbench"
PARAM=/sys/module/tesseract/parameters/reconcile
LOG=/tmp/dp.log

delay_ms() {
	case $1 in
	hdd) echo "${TS_DP_HDD_MS:-8}" ;;
	ssd) echo "${TS_DP_SSD_MS:-0}" ;;
	*) echo "dp.sh: unknown profile $1" >&2; exit 1 ;;
	esac
}

cold_mib() {
	case $1 in
	hdd) echo "${TS_DP_HDD_MIB:-64}" ;;
	ssd) echo "${TS_DP_SSD_MIB:-128}" ;;
	esac
}

fail() {
	echo "# dp: FAILED: $*"
	exit 1
}

# dm_up NAME DEV MS: a dm-delay device over DEV; prints its /dev/dm-N.
dm_up() {
	dmsetup --noudevsync remove "$1" 2>/dev/null
	dmsetup --noudevsync create "$1" \
		--table "0 $(blockdev --getsz "$2") delay $2 0 $3" || return 1
	echo "/dev/dm-$(dmsetup info -c --noheadings -o minor "$1" | tr -d ' ')"
}

# val PROFILE MODE PHASE KEY: a value from a "# dp" line of the log.
val() {
	awk -v p="$1" -v m="$2" -v ph="$3" -v k="$4" '
		$1 == "#" && $2 == "dp" && $3 == p && $4 == m && $5 == ph {
			for (i = 6; i <= NF; i++) {
				n = index($i, "=")
				if (n && substr($i, 1, n - 1) == k)
					v = substr($i, n + 1)
			}
		}
		END { print v == "" ? "-" : v }' "$LOG"
}

# fallbacks PROFILE MODE: the page-out's non-zero fallback counters.
fallbacks() {
	awk -v p="$1" -v m="$2" '
		$1 == "#" && $2 == "dp" && $3 == p && $4 == m &&
		$5 == "pageout" && $6 == "counters" {
			for (i = 7; i <= NF; i++)
				if ($i ~ /^fallback_/ && $i !~ /=0$/)
					v = v " " substr($i, 10)
		}
		END { print v == "" ? " none" : v }' "$LOG"
}

# calc EXPR A B: awk arithmetic on two values, "-" if either is missing or
# the expression divides by zero.
calc() {
	awk -v a="$2" -v b="$3" -v e="$1" 'BEGIN {
		if (a == "-" || b == "-") { print "-"; exit }
		a += 0; b += 0
		if (e == "ratio") { if (b == 0) print "-"; else printf "%.3f", a / b }
		if (e == "avoided") { if (b == 0) print "-"; else printf "%.1f", 100 * (1 - a / b) }
	}'
}

# row LABEL PROFILE PHASE KEY: one line of the side-by-side table.
row() {
	printf '#   %-34s %14s %14s\n' "$1" "$(val "$2" off "$3" "$4")" \
		"$(val "$2" on "$3" "$4")"
}

table() {
	printf '#   %-34s %14s %14s\n' "$1 (dm-delay $(delay_ms "$1") ms)" \
		"reconcile off" "reconcile on"
	row "page-out MiB/s" "$1" pageout mib_s
	row "page-out write latency p50 ms" "$1" pageout p50_ms
	row "page-out write latency p99 ms" "$1" pageout p99_ms
	row "page-out write latency max ms" "$1" pageout max_ms
	row "page-out host swap-ins (pswpin)" "$1" pageout pswpin
	row "page-out image bytes written" "$1" pageout image_written
	row "page-out image bytes read" "$1" pageout image_read
	row "page-out store bytes read" "$1" pageout store_read
	row "page-out store bytes written" "$1" pageout store_written
	row "page-out reconciled pages" "$1" pageout reconciled_pages
	echo "#   page-out fallbacks, on:$(fallbacks "$1" on)"
	row "page-out hot pass max ms" "$1" pageout hot_max_ms
	row "read-back MiB/s" "$1" readback mib_s
	row "read-back latency p99 ms" "$1" readback p99_ms
	row "read-back latency max ms" "$1" readback max_ms
	row "read-back host swap-ins (pswpin)" "$1" readback pswpin
	row "read-back image bytes read" "$1" readback image_read
	row "read-back store bytes read" "$1" readback store_read
	row "read-back false reads avoided" "$1" readback false_reads_avoided
	row "pages read back wrong" "$1" verify bad_pages
}

[ -x "$BENCH" ] || fail "$BENCH missing (make tools)"
echo N >/sys/module/zswap/parameters/enabled 2>/dev/null
echo "# zswap enabled: $(cat /sys/module/zswap/parameters/enabled 2>/dev/null)"
echo "# vm.page-cluster: $(cat /proc/sys/vm/page-cluster)," \
	"THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled)" \
	"(dpbench's guest RAM is MADV_NOHUGEPAGE)"
modprobe dm-delay || fail "no dm-delay target"
: >"$LOG"
: >/tmp/dp.res

for p in $PROFILES; do
	ms=$(delay_ms "$p") || exit 1
	mib=$(cold_mib "$p")
	store=$(dm_up dp-store /dev/vdb "$ms") || fail "dm-delay over /dev/vdb"
	image=$(dm_up dp-image /dev/vda "$ms") || fail "dm-delay over /dev/vda"
	echo "# $p: dm-delay $ms ms per I/O: store $store, image $image"
	"$BENCH" -L "$store" "$image" | sed "s|^# dp probe|# $p: probe|"
	"$TS_DIR/build/tools/tesseractctl" format --force "$store" >/dev/null ||
		fail "tesseractctl format $store"
	insmod "$TS_MODULE" backing="$store" || fail "insmod backing=$store"
	modes="off on"
	if [ -w "$PARAM" ]; then
		echo 1 >"$PARAM"
		echo "# $p: module parameter reconcile=$(cat "$PARAM")"
	else
		modes=off
		echo "# $p: the module has no reconcile parameter:" \
			"reconciliation is not built yet, the \"on\" run is skipped"
	fi
	mkswap -q /dev/tsswap0 >/dev/null || fail "mkswap /dev/tsswap0"
	swapon /dev/tsswap0 || fail "swapon /dev/tsswap0"
	echo "# $p: swap: $(awk 'NR > 1 { printf "%s ", $1 }' /proc/swaps)"
	for m in $modes; do
		"$BENCH" -p "$p" -m "$m" -c "$mib" -H "$HOT" -q "$DEPTH" \
			-k "$PAGES" -M "$MARGIN" -s "$store" "$image" \
			>/tmp/dp.out 2>&1
		rc=$?
		sed 's/^\([^#]\)/# \1/' /tmp/dp.out >>"$LOG"
		[ "${TS_DP_QUIET:-0}" = 1 ] || sed 's/^\([^#]\)/# \1/' /tmp/dp.out
		if [ $rc != 0 ]; then
			[ "${TS_DP_QUIET:-0}" = 1 ] && tail -n 5 /tmp/dp.out
			fail "dpbench -p $p -m $m exited with $rc"
		fi
	done
	swapoff /dev/tsswap0
	# A device closed just now may hold the module for a moment.
	for _ in 1 2 3 4 5; do
		rmmod tesseract 2>/dev/null && break
		sleep 1
	done
	[ -e /sys/module/tesseract ] &&
		fail "rmmod tesseract: $(rmmod tesseract 2>&1) (disk references left?)"
	dmsetup --noudevsync remove dp-store
	dmsetup --noudevsync remove dp-image
done

# ratios PROFILE: "speedup=.. worst_latency_gain=.. swapins_avoided=..
# data_bytes_ratio=..", on against off.
ratios() {
	echo "speedup=$(calc ratio "$(val "$1" on pageout mib_s)" \
		"$(val "$1" off pageout mib_s)")" \
		"worst_latency_gain=$(calc ratio "$(val "$1" off pageout max_ms)" \
		"$(val "$1" on pageout max_ms)")" \
		"swapins_avoided=$(calc avoided "$(val "$1" on pageout pswpin)" \
		"$(val "$1" off pageout pswpin)")" \
		"data_bytes_ratio=$(calc ratio \
		"$(val "$1" on pageout image_written)" \
		"$(val "$1" off pageout image_written)")"
}

echo "#"
for p in $PROFILES; do
	table "$p"
	echo "#   $p: $(ratios "$p")"
done
summary=dpbench
goals=
for p in $PROFILES; do
	if [ "$(val "$p" on pageout mib_s)" = - ]; then
		echo "dpbench $p reconcile=unavailable" \
			"off_mib_s=$(val "$p" off pageout mib_s)" \
			"off_max_ms=$(val "$p" off pageout max_ms)"
		summary="$summary ${p}_off_mib_s=$(val "$p" off pageout mib_s)"
		goals=unmeasured
		continue
	fi
	r=$(ratios "$p")
	echo "dpbench $p $r"
	echo "$p $r" | sed 's/[a-z_]*=//g' >>/tmp/dp.res
done
[ -n "$goals" ] && echo "$summary reconcile=unavailable" && exit 0

# The summary: each profile's speedup, the worst of the other ratios, and
# whether the goals are met (speedup hdd >= 3, ssd >= 1.5; worst-case
# latency gain >= 10; swap-ins avoided >= 95 %; data bytes ratio <= 0.01).
awk '
	function worse(old, new, lower) {
		if (new == "-" || old == "-") return "-"
		if (old == "") return new
		return (lower ? new + 0 < old + 0 : new + 0 > old + 0) ? new : old
	}
	{
		s = s " " $1 "_speedup=" $2
		gain = worse(gain, $3, 1)
		avoided = worse(avoided, $4, 1)
		data = worse(data, $5, 0)
		goal = $1 == "hdd" ? 3 : $1 == "ssd" ? 1.5 : 0
		if ($2 == "-" || $2 + 0 < goal) missed = missed "," $1 "_speedup"
	}
	END {
		if (gain == "-" || gain + 0 < 10) missed = missed ",worst_latency_gain"
		if (avoided == "-" || avoided + 0 < 95) missed = missed ",swapins_avoided"
		if (data == "-" || data + 0 > 0.01) missed = missed ",data_bytes_ratio"
		printf "dpbench%s worst_latency_gain=%s swapins_avoided=%s data_bytes_ratio=%s goals=%s\n",
			s, gain, avoided, data, missed == "" ? "met" : "missed:" substr(missed, 2)
	}' /tmp/dp.res
