#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Tesseract's experiment end to end, run inside the test kernel by
# bench-dp (after dp.sh's phase benchmark) and bench-e2e (alone): see
# tools/dpbench/e2e.c (build/tools/dpe2e). A guest that overcommits its own
# memory (a pager to a swap area on its disk, a page cache of a file) on a
# host that overcommits it (memory.max below the guest's RAM, /dev/tsswap0
# the swap), measured as whole-workload throughput and latency. Per profile
# (the store and the image behind dm-delay, as in dp.sh): reconciliation
# off, on, and on with the swap mapper ("map"), then the same with no host
# overcommit (memory.max "max"), the control, each twice. The module is
# loaded with swap_mapper=1; dpe2e turns the mapper off for the device but
# in the map runs. Prints a side-by-side table per profile, then per
# profile
#   dpbench e2e PROFILE throughput=<on/off> worst_latency=<off/on>
#           p99=<off/on> control=<on/off> mapper=<map/off>
#           mapper_worst_latency=<off/map> mapper_control=<map/off>
# and a last line "e2ebench ..." with every figure and the goals
# (dplib.sh's e2e_figures). /tmp/e2e.res keeps the ratios for dp.sh.
# Parameters (environment):
#   TS_E2E_PROFILES  profiles to run, in order, by spaces or commas (hdd ssd)
#   TS_E2E_GUEST_MIB guest RAM (64); TS_E2E_ANON_MIB, TS_E2E_FILE_MIB its
#                    anonymous and file working set (96, 32)
#   TS_E2E_HOST_MIB  the host's memory.max for it (48)
#   TS_E2E_THREADS   (4), TS_E2E_WARMUP_S (20), TS_E2E_SECONDS (40),
#   TS_E2E_WRITE_PCT (30), TS_E2E_THETA (0.9)
#   TS_DP_QUIET      1: leave dpe2e's own lines out (the demo: they stay in
#                    the guest's /tmp/e2e.log, and plot.py needs them)

PROFILES=$(echo "${TS_E2E_PROFILES:-hdd ssd}" | tr , " ")
ARGS="-G ${TS_E2E_GUEST_MIB:-64} -A ${TS_E2E_ANON_MIB:-96}
	-F ${TS_E2E_FILE_MIB:-32} -t ${TS_E2E_THREADS:-4}
	-w ${TS_E2E_WARMUP_S:-20} -d ${TS_E2E_SECONDS:-40}
	-W ${TS_E2E_WRITE_PCT:-30} -z ${TS_E2E_THETA:-0.9}"
HOST=${TS_E2E_HOST_MIB:-48}
# The controls run twice, in the order off, on, map, map, on, off, so that
# a drift of the host over the runs cancels out of their ratios.
RUNS="off on map ctl-off ctl-on ctl-map ctl-map2 ctl-on2 ctl-off2"
DP_INSMOD_ARGS=swap_mapper=1
LOG=/tmp/e2e.log
DPE2E="$TS_DIR/build/tools/dpe2e"

fail() {
	echo "# e2e: FAILED: $*"
	exit 1
}

delay_ms() {
	case $1 in
	hdd) echo "${TS_DP_HDD_MS:-8}" ;;
	ssd) echo "${TS_DP_SSD_MS:-0}" ;;
	*) echo "e2e.sh: unknown profile $1" >&2; exit 1 ;;
	esac
}

. "$TS_DIR/tools/bench/dplib.sh"

# e2e_val PROFILE RUN KEY: a value of that run's result line.
e2e_val() {
	tagged_val e2e "$1" "$2" result "$3"
}

# control PROFILE MODE: the throughput of the two control runs of MODE
# over those of off.
control() {
	calc ratio "$(sum "$(e2e_val "$1" "ctl-$2" ops_s)" \
		"$(e2e_val "$1" "ctl-${2}2" ops_s)")" \
		"$(sum "$(e2e_val "$1" ctl-off ops_s)" \
		"$(e2e_val "$1" ctl-off2 ops_s)")"
}

# sum A B: A + B, "-" if either is missing.
sum() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "-" || b == "-") print "-"; else print a + b }'
}

# row LABEL PROFILE KEY [mib|ms]: one line of the side-by-side table, a
# count of bytes in MiB or of nanoseconds in ms if asked.
row() {
	printf '#   %-26s' "$1"
	for r in $RUNS; do
		v=$(e2e_val "$2" "$r" "$3")
		[ "$4" = mib ] && [ "$v" != - ] &&
			v=$(awk -v b="$v" 'BEGIN { printf "%.1f", b / 1048576 }')
		[ "$4" = ms ] && [ "$v" != - ] &&
			v=$(awk -v n="$v" 'BEGIN { printf "%.1f", n / 1e6 }')
		printf ' %9s' "$v"
	done
	echo
}

table() {
	printf '#   %-26s' "$1 (dm-delay $(delay_ms "$1") ms)"
	for r in $RUNS; do
		printf ' %9s' "$r"
	done
	echo
	row "operations/s" "$1" ops_s
	row "latency p50 ms" "$1" p50_ms
	row "latency p99 ms" "$1" p99_ms
	row "latency p99.9 ms" "$1" p999_ms
	row "latency max ms" "$1" max_ms
	row "guest page-outs" "$1" guest_pageouts
	row "guest page-ins" "$1" guest_pageins
	row "guest file reads" "$1" file_reads
	row "host swap-ins (pswpin)" "$1" pswpin
	row "host swap-outs (pswpout)" "$1" pswpout
	row "image MiB read" "$1" image_read mib
	row "image MiB written" "$1" image_written mib
	row "store MiB read" "$1" store_read mib
	row "store MiB written" "$1" store_written mib
	row "references created" "$1" reconciled_pages
	row "references dropped" "$1" dropped_references
	row "references cleaned" "$1" blocks_cleaned
	row "swap-outs mapped" "$1" swap_outs_mapped
	row "swap-ins from the image" "$1" swap_ins_from_images
	row "copies before writes" "$1" copies_before_writes
	row "mapper hashing ms" "$1" hash_ns ms
	row "host CPU s" "$1" cpu_s
	row "pages read wrong" "$1" bad_pages
}

[ -x "$DPE2E" ] || fail "$DPE2E missing (make tools)"
dp_env
: >"$LOG"
: >/tmp/e2e.res

for p in $PROFILES; do
	ms=$(delay_ms "$p") || exit 1
	dp_up "$p" "$ms"
	for name in $RUNS; do
		case $name in
		off) mode=off host=$HOST ;;
		on) mode=on host=$HOST ;;
		map) mode=map host=$HOST ;;
		ctl-off*) mode=off host=0 ;;
		ctl-on*) mode=on host=0 ;;
		ctl-map*) mode=map host=0 ;;
		esac
		# shellcheck disable=SC2086
		"$DPE2E" -p "$p" -m "$mode" -H "$host" $ARGS -s "$store" \
			"$image" >/tmp/e2e.out 2>&1
		rc=$?
		sed "s/^# e2e $p $mode /# e2e $p $name /; s/^\([^#]\)/# \1/" \
			/tmp/e2e.out >>"$LOG"
		[ "${TS_DP_QUIET:-0}" = 1 ] ||
			sed "s/^# e2e $p $mode /# e2e $p $name /; s/^\([^#]\)/# \1/" \
				/tmp/e2e.out
		if [ $rc != 0 ]; then
			tail -n 5 /tmp/e2e.out
			dp_down
			fail "dpe2e $p $name exited $rc"
		fi
	done
	dp_down
	echo "$p $(calc ratio "$(e2e_val "$p" on ops_s)" "$(e2e_val "$p" off ops_s)")" \
		"$(calc ratio "$(e2e_val "$p" off max_ms)" "$(e2e_val "$p" on max_ms)")" \
		"$(calc ratio "$(e2e_val "$p" off p99_ms)" "$(e2e_val "$p" on p99_ms)")" \
		"$(control "$p" on)" \
		"$(calc ratio "$(e2e_val "$p" map ops_s)" "$(e2e_val "$p" off ops_s)")" \
		"$(calc ratio "$(e2e_val "$p" off max_ms)" "$(e2e_val "$p" map max_ms)")" \
		"$(control "$p" map)" >>/tmp/e2e.res
done

echo "#"
for p in $PROFILES; do
	table "$p"
done
while read -r p throughput worst p99 control mapper mworst mcontrol; do
	echo "dpbench e2e $p throughput=$throughput worst_latency=$worst p99=$p99 control=$control mapper=$mapper mapper_worst_latency=$mworst mapper_control=$mcontrol"
done </tmp/e2e.res
figures=$(e2e_figures /tmp/e2e.res)
missed=${figures##* missed=}
raw=
for p in $PROFILES; do
	for r in $RUNS; do
		for k in ops_s p99_ms max_ms; do
			raw="$raw $p.$r.$k=$(e2e_val "$p" "$r" $k)"
		done
	done
done
echo "e2ebench ${figures% missed=*}$raw goals=${missed:+missed:}${missed:-met}"
