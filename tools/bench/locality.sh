#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-locality, run inside the test kernel: how sequential reads of a
# range the guest paged out with reconciliation on fare, before and after
# locality recovery (issue #7). The store (/dev/vdb) and the image
# (/dev/vda) sit behind dm-delay, 8 ms per I/O (dp.sh's "hdd" profile).
# build/tools/dpbench (tools/dpbench/dpbench.c) pages out a guest's cold
# pages, which the host swapped out in a random order (dpbench -r), so that
# the disk range becomes references scattered across the store; then
# (dpbench -l) the guest reads the range sequentially, one request at a
# time (queue depth 1), with the page cache dropped and every page checked:
#   before     the references as the page-out left them;
#   compacted  after the compactor (compactor=Y, cleaner_idle_ms=0,
#              cleaner_rate_kib=0) has finished: debugfs
#              cleaner/idle_passes grew by 2;
#   cleaned    after TESSERACT_FLATTEN copied them back into the image;
#   never      the same range written by the same page-out with
#              reconciliation off (run first, so never reconciled).
# Prints a table, a line of the four throughputs in MiB/s and last
#   localitybench cleaned=<cleaned/never> compacted=<compacted/never>
# Parameters (environment):
#   TS_LOC_MS        dm-delay per I/O in ms (8)
#   TS_LOC_MIB       cold guest memory paged out, the range read (32)
#   TS_LOC_READ_KIB  bytes per sequential read request, in KiB (256)
#   TS_LOC_ORDER     order of the host's swap-out: random or address (random)
#   TS_DP_HOT_MIB, TS_DP_DEPTH, TS_DP_PAGES, TS_DP_MARGIN_MIB  as in dp.sh

MS=${TS_LOC_MS:-8}
MIB=${TS_LOC_MIB:-32}
READ_KIB=${TS_LOC_READ_KIB:-256}
ORDER=${TS_LOC_ORDER:-random}
HOT=${TS_DP_HOT_MIB:-16}
DEPTH=${TS_DP_DEPTH:-8}
PAGES=${TS_DP_PAGES:-8}
MARGIN=${TS_DP_MARGIN_MIB:-16}
PARAMS=/sys/module/tesseract/parameters
LOG=/tmp/locality.log
READS="before compacted cleaned never"

fail() {
	echo "# locality: FAILED: $*"
	exit 1
}

. "$TS_DIR/tools/bench/dplib.sh"

# mode READ: the dpbench run a read belongs to.
mode() {
	[ "$1" = never ] && echo off || echo on
}

# rv READ KEY: a value of a read's line.
rv() {
	val hdd "$(mode "$1")" "seqread-$1" "$2"
}

# row LABEL KEY: a line of the table, one column per read.
row() {
	printf '#   %-26s' "$1"
	for r in $READS; do
		printf ' %10s' "$(rv "$r" "$2")"
	done
	echo
}

case $ORDER in
random) scatter=-r ;;
address) scatter= ;;
*) fail "TS_LOC_ORDER=$ORDER: random or address" ;;
esac

dp_env
: >"$LOG"
dp_up hdd "$MS"
[ -w "$PARAMS/reconcile" ] || fail "the module has no reconcile parameter"
echo 1 >"$PARAMS/reconcile"
# Nothing moves references behind the first reads.
for p in cleaner compactor; do
	[ -w "$PARAMS/$p" ] && echo N >"$PARAMS/$p"
done
echo "# module parameters: $(for p in reconcile cleaner compactor \
	cleaner_idle_ms cleaner_rate_kib cleaner_nice; do
	printf '%s=%s ' "$p" "$(cat "$PARAMS/$p" 2>/dev/null || echo -)"
done)"

for m in off on; do
	"$DPBENCH" -p hdd -m "$m" -c "$MIB" -H "$HOT" -q "$DEPTH" -k "$PAGES" \
		-M "$MARGIN" -s "$store" $scatter -l "$READ_KIB" "$image" \
		>/tmp/locality.out 2>&1
	rc=$?
	sed 's/^\([^#]\)/# \1/' /tmp/locality.out | tee -a "$LOG"
	[ $rc = 0 ] || fail "dpbench -m $m -l $READ_KIB exited with $rc"
done
dp_down

echo "#"
printf '#   %-26s' "hdd (dm-delay $MS ms), $MIB MiB"
for r in $READS; do
	printf ' %10s' "$r"
done
echo
row "read MiB/s" mib_s
row "request latency p50 ms" p50_ms
row "request latency max ms" max_ms
row "requests ($READ_KIB KiB)" requests
row "store read I/Os" store_read_ios
row "store bytes read" store_read
row "image read I/Os" image_read_ios
row "image bytes read" image_read
row "store reads (blocks)" store_reads
row "pages read wrong" bad_pages
echo "#   references after the page-out $(val hdd on pageout references)," \
	"after compaction $(val hdd on compact references)," \
	"after flatten $(val hdd on flatten references)"
echo "#   compaction: $(val hdd on compact secs) s," \
	"$(val hdd on compact blocks_compacted) blocks," \
	"$(val hdd on compact bytes_moved) bytes moved"
echo "#   flatten: $(val hdd on flatten secs) s," \
	"$(val hdd on flatten blocks_cleaned) blocks cleaned"

cleaned=$(calc ratio "$(rv cleaned mib_s)" "$(rv never mib_s)")
compacted=$(calc ratio "$(rv compacted mib_s)" "$(rv never mib_s)")
echo "# localitybench MiB/s before=$(rv before mib_s)" \
	"compacted=$(rv compacted mib_s) cleaned=$(rv cleaned mib_s)" \
	"never=$(rv never mib_s)"
echo "# goals cleaned >= 0.95, compacted >= 0.8: $(awk -v c="$cleaned" \
	-v k="$compacted" 'BEGIN {
		if (c == "-" || k == "-") { print "unmeasured"; exit }
		m = (c + 0 < 0.95 ? " cleaned" : "") (k + 0 < 0.8 ? " compacted" : "")
		print m == "" ? "met" : "missed:" m
	}')"
echo "localitybench cleaned=$cleaned compacted=$compacted"
