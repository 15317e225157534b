# SPDX-License-Identifier: GPL-2.0
#
# Shared by the benchmarks that run build/tools/dpbench in the test kernel
# (dp.sh, locality.sh, mapper.sh); sourced, with $TS_DIR, $TS_MODULE and a
# fail() function of the caller's; val() reads dpbench's lines from $LOG.
# $DP_INSMOD_ARGS, if the caller sets it, goes to dp_up's insmod after the
# backing device (space-separated parameters, e.g. "swap_mapper=1").

DPBENCH="$TS_DIR/build/tools/dpbench"

# dm_up NAME DEV MS: a dm-delay device over DEV; prints its /dev/dm-N.
dm_up() {
	dmsetup --noudevsync remove "$1" 2>/dev/null
	dmsetup --noudevsync create "$1" \
		--table "0 $(blockdev --getsz "$2") delay $2 0 $3" || return 1
	echo "/dev/dm-$(dmsetup info -c --noheadings -o minor "$1" | tr -d ' ')"
}

# dp_env: zswap off, and the swap settings the results depend on.
dp_env() {
	[ -x "$DPBENCH" ] || fail "$DPBENCH missing (make tools)"
	echo N >/sys/module/zswap/parameters/enabled 2>/dev/null
	echo "# zswap enabled: $(cat /sys/module/zswap/parameters/enabled 2>/dev/null)"
	echo "# vm.page-cluster: $(cat /proc/sys/vm/page-cluster)," \
		"THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled)" \
		"(dpbench's guest RAM is MADV_NOHUGEPAGE)"
	modprobe dm-delay || fail "no dm-delay target"
}

# dp_up PROFILE MS: the store (/dev/vdb) and the image (/dev/vda) behind
# dm-delay, MS ms per I/O, their latency probed; the module loaded on the
# store (with $DP_INSMOD_ARGS) and /dev/tsswap0 the swap. Sets $store and
# $image.
dp_up() {
	store=$(dm_up dp-store /dev/vdb "$2") || fail "dm-delay over /dev/vdb"
	image=$(dm_up dp-image /dev/vda "$2") || fail "dm-delay over /dev/vda"
	echo "# $1: dm-delay $2 ms per I/O: store $store, image $image"
	"$DPBENCH" -L "$store" "$image" | sed "s|^# dp probe|# $1: probe|"
	"$TS_DIR/build/tools/tesseractctl" format --force "$store" >/dev/null ||
		fail "tesseractctl format $store"
	# Unquoted: one word per parameter.
	# shellcheck disable=SC2086
	insmod "$TS_MODULE" backing="$store" ${DP_INSMOD_ARGS:-} ||
		fail "insmod backing=$store${DP_INSMOD_ARGS:+ $DP_INSMOD_ARGS}"
	mkswap -q /dev/tsswap0 >/dev/null || fail "mkswap /dev/tsswap0"
	swapon /dev/tsswap0 || fail "swapon /dev/tsswap0"
	echo "# $1: swap: $(awk 'NR > 1 { printf "%s ", $1 }' /proc/swaps)"
}

# module_down: swap off and the module unloaded, or fail.
module_down() {
	swapoff /dev/tsswap0
	# A device closed just now may hold the module for a moment.
	for _ in 1 2 3 4 5; do
		rmmod tesseract 2>/dev/null && break
		sleep 1
	done
	[ -e /sys/module/tesseract ] &&
		fail "rmmod tesseract: $(rmmod tesseract 2>&1) (disk references left?)"
}

# dp_down: undo dp_up.
dp_down() {
	module_down
	dmsetup --noudevsync remove dp-store
	dmsetup --noudevsync remove dp-image
}

# tagged_val TAG PROFILE RUN PHASE KEY: a value from a "# TAG PROFILE RUN
# PHASE key=value..." line of $LOG (the last such), "-" if there is none.
tagged_val() {
	awk -v t="$1" -v p="$2" -v m="$3" -v ph="$4" -v k="$5" '
		$1 == "#" && $2 == t && $3 == p && $4 == m && $5 == ph {
			for (i = 6; i <= NF; i++) {
				n = index($i, "=")
				if (n && substr($i, 1, n - 1) == k)
					v = substr($i, n + 1)
			}
		}
		END { print v == "" ? "-" : v }' "$LOG"
}

# val PROFILE MODE PHASE KEY: a value from dpbench's "# dp" lines.
val() {
	tagged_val dp "$@"
}

# e2e_figures RES: the end-to-end ratios in RES (lines "PROFILE throughput
# worst_latency p99 control mapper mapper_worst_latency mapper_control",
# written by e2e.sh) as "e2e_PROFILE_KEY=VALUE" words, then "missed=" and
# the goals they miss, comma-separated: HDD-like throughput at least 4
# times, SSD-like 1.5 times, worst-case latency at least 10 times lower
# (reconciliation on against off), the control runs (no host overcommit)
# at least 0.98, with the mapper too.
e2e_figures() {
	awk '
	BEGIN {
		split("throughput worst_latency p99 control mapper " \
		      "mapper_worst_latency mapper_control", key)
	}
	{
		for (i = 1; i <= 7; i++)
			s = s " e2e_" $1 "_" key[i] "=" $(i + 1)
		goal = $1 == "hdd" ? 4 : $1 == "ssd" ? 1.5 : 0
		if ($2 == "-" || $2 + 0 < goal) m = m ",e2e_" $1 "_throughput"
		if ($3 == "-" || $3 + 0 < 10) m = m ",e2e_" $1 "_worst_latency"
		if ($5 == "-" || $5 + 0 < 0.98) m = m ",e2e_" $1 "_control"
		if ($8 == "-" || $8 + 0 < 0.98)
			m = m ",e2e_" $1 "_mapper_control"
	}
	END { printf "%s missed=%s\n", substr(s, 2), substr(m, 2) }' "$1"
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
