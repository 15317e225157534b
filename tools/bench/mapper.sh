#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-mapper, run inside the test kernel: the swap mapper (issue #15).
# build/tools/mapperbench (tools/dpbench/mapper.c) is a guest that reads a
# range of its disk into its page cache; the host swaps that memory out in
# a random order, and the guest touches it all again, each page checked.
# With the mapper off, then on for the guest's device
# (VHOST_BLK_SET_SWAP_MAPPER), in each profile: the store (/dev/vdb) and
# the image (/dev/vda) behind dm-delay, 8 ms per I/O for "hdd", none for
# "ssd", as in dp.sh. The module is loaded once per profile, with
# swap_mapper=1 (it is 0444): off and on then share one store, one load
# and the mapper's tables, and differ only in what the device switch
# changes: fingerprints at read, and so mapped swap-outs and swap-ins
# from the image. "off" runs first, when the mapper holds no fingerprint
# (a swap-out then hashes nothing). Reconciliation is off for the device
# (mapperbench), so only the mapper acts; zswap is off (dp_env).
#
# Prints mapperbench's lines ("# mapper PROFILE MODE PHASE key=value..."),
# a table per profile, a line of the goals, and last
#   mapperbench writes_avoided=<percent> swapin_hdd=<on/off> swapin_ssd=<on/off>
#               hash_cpu=<percent>
# writes_avoided: 100 * (1 - store bytes written during the swap-out with
#   the mapper on / (pages swapped out (pswpout) * 4096)), the lowest of the
#   profiles;
# swapin_PROFILE: swap-in MiB/s of the range with the mapper on / off;
# hash_cpu: 100 * debugfs hash_ns over the swap-out with the mapper on /
#   the swapping process's kernel CPU time (getrusage) over it, the highest
#   of the profiles.
# Goals: writes_avoided >= 99, swapin_hdd >= 2, hash_cpu <= 5.
#
# Parameters (environment; run-tests passes TS_MAPPER_* to the guest):
#   TS_MAPPER_PROFILES   profiles to run, in order, by spaces or commas
#                        (hdd ssd)
#   TS_MAPPER_HDD_MS, TS_MAPPER_SSD_MS    dm-delay per I/O in ms (8, 0)
#   TS_MAPPER_HDD_MIB, TS_MAPPER_SSD_MIB  the range read, swapped out and
#                        in (64, 128)
#   TS_MAPPER_READ_KIB   bytes per sequential read request of the guest, in
#                        KiB (256)
#   TS_MAPPER_ORDER      the host's swap-out order: random or address
#                        (random)

PROFILES=$(echo "${TS_MAPPER_PROFILES:-hdd ssd}" | tr , " ")
READ_KIB=${TS_MAPPER_READ_KIB:-256}
ORDER=${TS_MAPPER_ORDER:-random}
LOG=/tmp/mapper.log
MAPPERBENCH="$TS_DIR/build/tools/mapperbench"
PARAM=/sys/module/tesseract/parameters/swap_mapper

delay_ms() {
	case $1 in
	hdd) echo "${TS_MAPPER_HDD_MS:-8}" ;;
	ssd) echo "${TS_MAPPER_SSD_MS:-0}" ;;
	*) echo "mapper.sh: unknown profile $1" >&2; exit 1 ;;
	esac
}

range_mib() {
	case $1 in
	hdd) echo "${TS_MAPPER_HDD_MIB:-64}" ;;
	ssd) echo "${TS_MAPPER_SSD_MIB:-128}" ;;
	esac
}

fail() {
	echo "# mapper: FAILED: $*"
	exit 1
}

. "$TS_DIR/tools/bench/dplib.sh"

DP_INSMOD_ARGS=swap_mapper=1

# mval PROFILE MODE PHASE KEY: a value of the last line "# mapper PROFILE
# MODE PHASE key=value..." of $LOG, "-" if there is none. KEY "stats:NAME"
# reads NAME from the phase's stats line instead (debugfs swap_mapper's
# names, which may be the same words as the phase line's keys).
mval() {
	awk -v p="$1" -v m="$2" -v ph="$3" -v k="${4#stats:}" \
		-v st="$([ "${4#stats:}" = "$4" ] && echo 0 || echo 1)" '
		$1 == "#" && $2 == "mapper" && $3 == p && $4 == m && $5 == ph &&
		($6 == "stats") == st {
			for (i = 6; i <= NF; i++) {
				n = index($i, "=")
				if (n && substr($i, 1, n - 1) == k)
					v = substr($i, n + 1)
			}
		}
		END { print v == "" ? "-" : v }' "$LOG"
}

# row LABEL PROFILE PHASE KEY [SCALE]: one line of the side-by-side table
# (KEY as for mval), values divided by SCALE if given.
row() {
	off=$(mval "$2" off "$3" "$4")
	on=$(mval "$2" on "$3" "$4")
	if [ -n "${5:-}" ]; then
		off=$(calc ratio "$off" "$5")
		on=$(calc ratio "$on" "$5")
	fi
	printf '#   %-40s %14s %14s\n' "$1" "$off" "$on"
}

# stat_rows PROFILE PHASE LABEL: a row for each swap_mapper value of the
# phase's stats lines (whatever the module reports) that is not 0 in both
# runs.
stat_rows() {
	for k in $(awk -v p="$1" -v ph="$2" '
		$1 == "#" && $2 == "mapper" && $3 == p && $5 == ph &&
		$6 == "stats" {
			for (i = 7; i <= NF; i++)
				if ($i !~ /=0$/ && $i !~ /^swapdev_/ &&
				    $i !~ /^fingerprints_capacity=/) {
					k = substr($i, 1, index($i, "=") - 1)
					if (!(k in seen)) print k
					seen[k] = 1
				}
		}' "$LOG"); do
		row "$3 $k" "$1" "$2" "stats:$k"
	done
}

# avoided PROFILE MODE: 100 * (1 - store bytes written / (pswpout * 4096))
# over the swap-out, "-" if unmeasured.
avoided() {
	awk -v w="$(mval "$1" "$2" swapout store_written)" \
		-v n="$(mval "$1" "$2" swapout pswpout)" 'BEGIN {
		if (w == "-" || n == "-" || n + 0 <= 0) print "-"
		else printf "%.2f", 100 * (1 - w / (n * 4096))
	}'
}

table() {
	printf '#   %-40s %14s %14s\n' \
		"$1 (dm-delay $(delay_ms "$1") ms), $(range_mib "$1") MiB" \
		"mapper off" "mapper on"
	row "read MiB/s" "$1" read mib_s
	row "read request latency p50 ms" "$1" read p50_ms
	row "read CPU ms (process sys)" "$1" read cpu_sys_ms
	row "read kernel CPU ms (all CPUs)" "$1" read kernel_cpu_ms
	row "read fingerprinting ms (hash_ns)" "$1" read stats:hash_ns \
		1000000
	row "swap-out s" "$1" swapout secs
	row "swap-out pages (pswpout)" "$1" swapout pswpout
	row "swap-out store bytes written" "$1" swapout store_written
	row "swap-out store write requests" "$1" swapout store_write_ios
	row "swap-out swaps mapped" "$1" swapout stats:swap_outs_mapped
	row "swap-out CPU ms (process sys)" "$1" swapout cpu_sys_ms
	row "swap-out kernel CPU ms (all CPUs)" "$1" swapout kernel_cpu_ms
	row "swap-out hashing ms (hash_ns)" "$1" swapout hash_ms
	row "swap-out hashing % of process sys" "$1" swapout hash_pct
	printf '#   %-40s %14s %14s\n' "swap-out writes avoided %" \
		"$(avoided "$1" off)" "$(avoided "$1" on)"
	row "swap-in MiB/s" "$1" swapin mib_s
	row "swap-in touch latency p50 ms" "$1" swapin p50_ms
	row "swap-in touch latency p99 ms" "$1" swapin p99_ms
	row "swap-in touch latency max ms" "$1" swapin max_ms
	row "swap-in major faults" "$1" swapin major_faults
	row "swap-in host swap-ins (pswpin)" "$1" swapin pswpin
	row "swap-in image read requests" "$1" swapin image_read_ios
	row "swap-in image bytes read" "$1" swapin image_read
	row "swap-in store read requests" "$1" swapin store_read_ios
	row "swap-in store bytes read" "$1" swapin store_read
	stat_rows "$1" swapin "swap-in mapper"
	row "pages swapped in wrong" "$1" swapin bad_pages
}

case $ORDER in
random) order= ;;
address) order=-a ;;
*) fail "TS_MAPPER_ORDER=$ORDER: random or address" ;;
esac

dp_env
[ -x "$MAPPERBENCH" ] || fail "$MAPPERBENCH missing (make tools)"
echo "# swap readahead: vm.page-cluster $(cat /proc/sys/vm/page-cluster)," \
	"vma_ra_enabled $(cat /sys/kernel/mm/swap/vma_ra_enabled 2>/dev/null || echo -)"
: >"$LOG"

for p in $PROFILES; do
	ms=$(delay_ms "$p") || exit 1
	mib=$(range_mib "$p")
	dp_up "$p" "$ms"
	[ "$(cat "$PARAM" 2>/dev/null)" = Y ] ||
		fail "the module has no swap mapper (parameter swap_mapper: $(cat "$PARAM" 2>&1))"
	echo "# $p: module parameters swap_mapper=$(cat "$PARAM")" \
		"swap_mapper_mib=$(cat "${PARAM}_mib" 2>/dev/null || echo -)"
	for m in off on; do
		# shellcheck disable=SC2086
		"$MAPPERBENCH" -p "$p" -m "$m" -c "$mib" -l "$READ_KIB" \
			-s "$store" $order "$image" >/tmp/mapper.out 2>&1
		rc=$?
		sed 's/^\([^#]\)/# \1/' /tmp/mapper.out | tee -a "$LOG"
		[ $rc = 0 ] || fail "mapperbench -p $p -m $m exited with $rc"
	done
	dp_down
done

for p in $PROFILES; do
	echo "#"
	table "$p"
done

# The summary: the worst writes_avoided and hash_cpu of the profiles.
wa=
hc=
for p in $PROFILES; do
	a=$(avoided "$p" on)
	h=$(mval "$p" on swapout hash_pct)
	wa=$(awk -v o="$wa" -v n="$a" 'BEGIN {
		if (o == "-" || n == "-") print "-"
		else if (o == "" || n + 0 < o + 0) print n
		else print o }')
	hc=$(awk -v o="$hc" -v n="$h" 'BEGIN {
		if (o == "-" || n == "-") print "-"
		else if (o == "" || n + 0 > o + 0) print n
		else print o }')
done
ratio() {
	calc ratio "$(mval "$1" on swapin mib_s)" "$(mval "$1" off swapin mib_s)"
}
hdd=$(ratio hdd)
ssd=$(ratio ssd)
echo "# mapperbench swap-out store bytes written:$(for p in $PROFILES; do
	printf ' %s off=%s on=%s' "$p" "$(mval "$p" off swapout store_written)" \
		"$(mval "$p" on swapout store_written)"
done)"
echo "# mapperbench swap-in MiB/s:$(for p in $PROFILES; do
	printf ' %s off=%s on=%s' "$p" "$(mval "$p" off swapin mib_s)" \
		"$(mval "$p" on swapin mib_s)"
done)"
echo "# goals writes_avoided >= 99, swapin_hdd >= 2, hash_cpu <= 5: $(awk \
	-v w="${wa:--}" -v s="$hdd" -v h="${hc:--}" 'BEGIN {
		if (w == "-") u = u " writes_avoided"
		else if (w + 0 < 99) m = m " writes_avoided"
		if (s == "-") u = u " swapin_hdd"
		else if (s + 0 < 2) m = m " swapin_hdd"
		if (h == "-") u = u " hash_cpu"
		else if (h + 0 > 5) m = m " hash_cpu"
		r = m == "" ? "met" : "missed:" m
		print u == "" ? r : r ", unmeasured:" u
	}')"
echo "mapperbench writes_avoided=${wa:--} swapin_hdd=$hdd swapin_ssd=$ssd hash_cpu=${hc:--}"
