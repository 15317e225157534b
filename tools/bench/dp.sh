#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-dp, run inside the test kernel: the double-paging benchmark
# (build/tools/dpbench, see tools/dpbench/dpbench.c) with reconciliation off,
# then on, in each profile: the store (/dev/vdb) and the guest's disk image
# (/dev/vda) behind dm-delay, 8 ms per I/O for "hdd", none for "ssd" (the
# virtio disk's own latency under TCG; dm-delay counts in jiffies, 4 ms).
# Then the end-to-end workload in the same profiles (e2e.sh, with its
# defaults and TS_E2E_* parameters). Prints a side-by-side table per
# profile and phase, then one line per profile
#   dpbench PROFILE speedup=.. worst_latency_gain=.. swapins_avoided=..
#           data_bytes_ratio=..
# then e2e.sh's "dpbench e2e PROFILE ..." lines, and last a summary line of
# every figure and the goals, which run-tests takes as the result. Sizes
# and delays are parameters (environment):
#   TS_DP_PROFILES   profiles to run, in order, by spaces or commas (hdd ssd)
#   TS_DP_HDD_MS, TS_DP_SSD_MS    dm-delay per I/O in ms (8, 0)
#   TS_DP_HDD_MIB, TS_DP_SSD_MIB  cold guest memory paged out (64, 128)
#   TS_DP_HOT_MIB    hot guest memory (16)
#   TS_DP_DEPTH      page-out requests in flight (8)
#   TS_DP_PAGES      pages per request (8)
#   TS_DP_MARGIN_MIB memory.max above the resident set (16)
#   TS_DP_QUIET      1: leave dpbench's own lines out (they stay in /tmp/dp.log)
#   TS_DP_E2E        0: leave the end-to-end workload out (1)

PROFILES=$(echo "${TS_DP_PROFILES:-hdd ssd}" | tr , " ")
HOT=${TS_DP_HOT_MIB:-16}
DEPTH=${TS_DP_DEPTH:-8}
PAGES=${TS_DP_PAGES:-8}
MARGIN=${TS_DP_MARGIN_MIB:-16}
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

. "$TS_DIR/tools/bench/dplib.sh"

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

dp_env
: >"$LOG"
: >/tmp/dp.res
rm -f /tmp/e2e.sh.out

for p in $PROFILES; do
	ms=$(delay_ms "$p") || exit 1
	mib=$(cold_mib "$p")
	dp_up "$p" "$ms"
	modes="off on"
	if [ -w "$PARAM" ]; then
		echo 1 >"$PARAM"
		echo "# $p: module parameter reconcile=$(cat "$PARAM")"
	else
		modes=off
		echo "# $p: the module has no reconcile parameter:" \
			"reconciliation is not built yet, the \"on\" run is skipped"
	fi
	for m in $modes; do
		"$DPBENCH" -p "$p" -m "$m" -c "$mib" -H "$HOT" -q "$DEPTH" \
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
	dp_down
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

e2e=
if [ "${TS_DP_E2E:-1}" = 1 ]; then
	# Its own result lines go last, with the phase's.
	{
		TS_E2E_PROFILES="$PROFILES" sh "$TS_DIR/tools/bench/e2e.sh"
		echo $? >/tmp/e2e.rc
	} | tee /tmp/e2e.sh.out | grep -v '^e2ebench \|^dpbench e2e '
	[ "$(cat /tmp/e2e.rc)" = 0 ] ||
		fail "the end-to-end workload (e2e.sh) failed"
	e2e=$(e2e_figures /tmp/e2e.res)
fi

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
grep '^dpbench e2e ' /tmp/e2e.sh.out 2>/dev/null

# The summary: each profile's speedup, the worst of the other ratios, the
# end-to-end figures, and whether the goals are met (speedup hdd >= 3, ssd
# >= 1.5; worst-case latency gain >= 10; swap-ins avoided >= 95 %; data
# bytes ratio <= 0.01; the end-to-end goals of dplib.sh's e2e_figures).
awk -v e2e="${e2e% missed=*}" -v e2e_missed="${e2e##* missed=}" '
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
		if (e2e_missed != "") missed = missed "," e2e_missed
		printf "dpbench%s worst_latency_gain=%s swapins_avoided=%s data_bytes_ratio=%s%s goals=%s\n",
			s, gain, avoided, data, e2e == "" ? "" : " " e2e,
			missed == "" ? "met" : "missed:" substr(missed, 2)
	}' /tmp/dp.res
