#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Tesseract's experiment end to end, run inside the test kernel
# (build/tools/dpe2e, see tools/dpbench/e2e.c): a guest that overcommits
# its own memory (a pager to a swap area on its disk, a page cache of a
# file) on a host that overcommits it (memory.max below the guest's RAM,
# /dev/tsswap0 the swap), measured as whole-workload throughput and
# latency. Per profile (the store and the image behind dm-delay, as in
# dp.sh): reconciliation off and on, and a control pair with no host
# overcommit (memory.max "max"). The swap mapper does not exist yet: its
# column reads n/a. Prints per profile
#   dpbench e2e PROFILE throughput=<on/off> worst_latency=<off/on>
#           p99=<off/on> control=<on/off> mapper=n/a
# and a last line "e2ebench ..." with every figure (make bench-e2e). A first
# version: bench-dp does not run it yet. Parameters (environment):
#   TS_E2E_PROFILES  profiles to run, in order (hdd ssd)
#   TS_E2E_GUEST_MIB guest RAM (64); TS_E2E_ANON_MIB, TS_E2E_FILE_MIB its
#                    anonymous and file working set (96, 32)
#   TS_E2E_HOST_MIB  the host's memory.max for it (48)
#   TS_E2E_THREADS   (4), TS_E2E_WARMUP_S (20), TS_E2E_SECONDS (40),
#   TS_E2E_WRITE_PCT (30), TS_E2E_THETA (0.9)

PROFILES=${TS_E2E_PROFILES:-hdd ssd}
ARGS="-G ${TS_E2E_GUEST_MIB:-64} -A ${TS_E2E_ANON_MIB:-96}
	-F ${TS_E2E_FILE_MIB:-32} -t ${TS_E2E_THREADS:-4}
	-w ${TS_E2E_WARMUP_S:-20} -d ${TS_E2E_SECONDS:-40}
	-W ${TS_E2E_WRITE_PCT:-30} -z ${TS_E2E_THETA:-0.9}"
HOST=${TS_E2E_HOST_MIB:-48}
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

# e2e_val PROFILE RUN KEY: a value of the result line of that run.
e2e_val() {
	awk -v p="$1" -v r="$2" -v k="$3" '
		$1 == "#" && $2 == "e2e" && $3 == p && $4 == r &&
		$5 == "result" {
			for (i = 6; i <= NF; i++) {
				n = index($i, "=")
				if (n && substr($i, 1, n - 1) == k)
					v = substr($i, n + 1)
			}
		}
		END { print v == "" ? "-" : v }' "$LOG"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "-" || b == "-" || b + 0 == 0) print "-"
		else printf "%.3f", a / b }'
}

[ -x "$DPE2E" ] || fail "$DPE2E missing (make tools)"
dp_env
: >"$LOG"
summary=

for p in $PROFILES; do
	ms=$(delay_ms "$p") || exit 1
	dp_up "$p" "$ms"
	# run NAME MODE HOST_MIB: one dpe2e run, its lines kept as "NAME".
	for run in off:off:$HOST on:on:$HOST ctl-off:off:0 ctl-on:on:0; do
		name=${run%%:*}
		rest=${run#*:}
		mode=${rest%%:*}
		host=${rest#*:}
		# shellcheck disable=SC2086
		"$DPE2E" -p "$p" -m "$mode" -H "$host" $ARGS -s "$store" \
			"$image" >/tmp/e2e.out 2>&1
		rc=$?
		sed "s/^# e2e $p $mode /# e2e $p $name /; s/^\([^#]\)/# \1/" \
			/tmp/e2e.out | tee -a "$LOG"
		[ $rc = 0 ] || { dp_down; fail "dpe2e $p $name exited $rc"; }
	done
	dp_down

	throughput=$(ratio "$(e2e_val "$p" on ops_s)" "$(e2e_val "$p" off ops_s)")
	worst=$(ratio "$(e2e_val "$p" off max_ms)" "$(e2e_val "$p" on max_ms)")
	p99=$(ratio "$(e2e_val "$p" off p99_ms)" "$(e2e_val "$p" on p99_ms)")
	control=$(ratio "$(e2e_val "$p" ctl-on ops_s)" \
		"$(e2e_val "$p" ctl-off ops_s)")
	echo "dpbench e2e $p throughput=$throughput worst_latency=$worst p99=$p99 control=$control mapper=n/a"
	summary="$summary $p: throughput=$throughput worst_latency=$worst p99=$p99 control=$control"
	for r in off on ctl-off ctl-on; do
		summary="$summary $p.$r.ops_s=$(e2e_val "$p" $r ops_s) $p.$r.p99_ms=$(e2e_val "$p" $r p99_ms) $p.$r.max_ms=$(e2e_val "$p" $r max_ms)"
	done
done
echo "e2ebench$summary"
