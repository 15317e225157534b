#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-swap, run inside the test kernel: swap throughput through
# /dev/tsswap0 (store on /dev/vdb) against a plain swap partition on /dev/vda,
# the same kind of virtio disk, in turns so that all see the same
# conditions, with 1, 2 and 4 reclaimers pushing memory out at once. A third
# device, dm-linear over all of /dev/vda, is swap through a stacked bio-based
# device that does nothing per page: what stacking alone costs (a clone and
# a second pass through the block layer per bio), the floor for tsswap0.
#
# TS_BENCH_MIB (512) is pushed out and read back per round, TS_BENCH_ROUNDS
# (6) rounds per device and number of reclaimers, TS_BENCH_RECLAIMERS the
# numbers of reclaimers ("1,2,4"). TS_BENCH_PROFILE=1 adds profiled rounds
# per device at the largest number of reclaimers (perf record -a -g,
# cpu-clock), one recording swap-out, one swap-in, and prints where the
# time went: by module, by function, and with callees.
# TS_BENCH_MODULE_ARGS, comma-separated, go to insmod (e.g. "mrc=0").

MIB=${TS_BENCH_MIB:-512}
ROUNDS=${TS_BENCH_ROUNDS:-6}
RECLAIMERS=$(echo "${TS_BENCH_RECLAIMERS:-1,2,4}" | tr , ' ')
BENCH="$TS_DIR/build/tools/swapbench"

echo N >/sys/module/zswap/parameters/enabled 2>/dev/null
echo "# zswap enabled: $(cat /sys/module/zswap/parameters/enabled 2>/dev/null)"
# Both disks are sparse files on the same host disk: tell the kernel so, so
# that plain swap gets the same solid-state swap allocator as tsswap0.
for d in vda vdb; do
	echo 0 >/sys/block/$d/queue/rotational
done
"$TS_DIR/build/tools/tesseractctl" format --force /dev/vdb >/dev/null || exit 1
# shellcheck disable=SC2046
insmod "$TS_MODULE" backing=/dev/vdb $(echo "${TS_BENCH_MODULE_ARGS:-}" | tr , ' ') ||
	exit 1
mkswap -q /dev/tsswap0 >/dev/null && mkswap -q /dev/vda >/dev/null || exit 1
modprobe dm-mod
export DM_DISABLE_UDEV=1
VDA_SECTORS=$(blockdev --getsz /dev/vda)

# One round on the linear device, which exists only for it: it claims
# /dev/vda, which plain swap's swapon claims too. Its swap area is plain
# swap's, the same sectors of vda.
linear_run() {
	dmsetup --noudevsync create ts-linear \
		--table "0 $VDA_SECTORS linear /dev/vda 0" || exit 1
	run /dev/mapper/ts-linear "$@"
	dmsetup --noudevsync remove ts-linear || exit 1
}

# One round on swap device $1, labelled $2, $3 reclaimers; appends
# "out in out+in" to $4. $5, if set, is a command that wraps swapbench.
run() {
	swapon "$1" || exit 1
	$5 "$BENCH" "$MIB" 1 "$3" >/tmp/bench.out 2>&1 || {
		cat /tmp/bench.out
		exit 1
	}
	grep '^round' /tmp/bench.out | sed "s|^|# $2: |"
	swapoff "$1"
	sed -n 's/.*out \([0-9.]*\) MiB\/s, in \([0-9.]*\) MiB\/s, out+in \([0-9.]*\).*/\1 \2 \3/p' \
		/tmp/bench.out >>"$4"
}

# median FILE COLUMN
median() {
	cut -d' ' -f"$2" "$1" | sort -g |
		awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'
}

# The disks are sparse files: their first writes allocate host blocks, which
# later rounds do not pay. One round per device first, not counted.
run /dev/tsswap0 "warm-up tsswap0" 1 /dev/null
run /dev/vda "warm-up plain" 1 /dev/null
linear_run "warm-up linear" 1 /dev/null

ts() { run /dev/tsswap0 tsswap0 "$1" /tmp/ts.res; }
plain() { run /dev/vda plain "$1" /tmp/plain.res; }
linear() { linear_run linear "$1" /tmp/linear.res; }

rm -f /tmp/ratios
for n in $RECLAIMERS; do
	rm -f /tmp/ts.res /tmp/plain.res /tmp/linear.res
	i=0
	while [ $i -lt "$ROUNDS" ]; do
		# Each device goes first, second and last in turn, and each
		# follows each of the others as often, so that drift cancels.
		case $((i % 6)) in
		0) ts "$n"; plain "$n"; linear "$n" ;;
		1) plain "$n"; linear "$n"; ts "$n" ;;
		2) linear "$n"; ts "$n"; plain "$n" ;;
		3) ts "$n"; linear "$n"; plain "$n" ;;
		4) linear "$n"; plain "$n"; ts "$n" ;;
		5) plain "$n"; ts "$n"; linear "$n" ;;
		esac
		i=$((i + 1))
	done
	for col in 1 2 3; do
		name=$(echo "out in out+in" | cut -d' ' -f$col)
		t=$(median /tmp/ts.res $col)
		p=$(median /tmp/plain.res $col)
		l=$(median /tmp/linear.res $col)
		r=$(ratio "$t" "$p")
		echo "# reclaimers $n: median $name MiB/s: tsswap0 $t, plain $p, linear $l, ratio $r, linear/plain $(ratio "$l" "$p"), tsswap0/linear $(ratio "$t" "$l")"
		echo "$n $name $r" >>/tmp/ratios
		echo "$n linear-$name $(ratio "$l" "$p")" >>/tmp/ratios
	done
done

# profile DEV PHASE RECLAIMERS: one round on /dev/DEV with perf recording
# during PHASE (out or in) only; prints where the time went.
profile() {
	rm -f /tmp/perf.ctl /tmp/perf.ack
	mkfifo /tmp/perf.ctl /tmp/perf.ack || exit 1
	export SWAPBENCH_PERF="$2" SWAPBENCH_PERF_CTL=/tmp/perf.ctl,/tmp/perf.ack
	run /dev/$1 "profiled $1 $2" "$3" /dev/null \
		"perf record -q -a -g -e cpu-clock -F 1999 -D -1 --control fifo:/tmp/perf.ctl,/tmp/perf.ack -o /tmp/perf.data --"
	unset SWAPBENCH_PERF SWAPBENCH_PERF_CTL
	echo "# profile $1 swap-$2 ($3 reclaimers), self, by module:"
	perf report -q -i /tmp/perf.data --no-children --stdio -g none \
		--sort dso --percent-limit 0.5 2>/dev/null | sed 's/^/#   /'
	echo "# profile $1 swap-$2 ($3 reclaimers), self, by function:"
	perf report -q -i /tmp/perf.data --no-children --stdio -g none \
		--sort dso,symbol --percent-limit 0.7 2>/dev/null |
		sed 's/ *$//; s/^/#   /' | head -n 30
	echo "# profile $1 swap-$2 ($3 reclaimers), with callees:"
	perf report -q -i /tmp/perf.data --children --stdio -g none \
		--sort symbol --percent-limit 3 2>/dev/null |
		sed 's/ *$//; s/^/#   /' | head -n 45
	echo "# profile $1 swap-$2 ($3 reclaimers), the block and hook paths, with callees:"
	perf report -q -i /tmp/perf.data --children --stdio -g none \
		--sort symbol --percent-limit 0.1 2>/dev/null |
		grep -E ' (ts_|kretprobe|pre_handler|kprobe|ftrace|arch_ftrace|bio_|submit_bio|__submit_bio|blk_mq_submit|swap_writepage|__swap_writepage|swap_readpage|swap_read_folio|_raw_spin)' |
		sed 's/ *$//; s/^/#   /' | head -n 40
	# Time with interrupts off shows where they are enabled again: who
	# called the irq-restoring unlocks is who held (or waited for) a lock.
	echo "# profile $1 swap-$2 ($3 reclaimers), callers of the irq-restoring unlocks:"
	perf report -q -i /tmp/perf.data --no-children --stdio --sort symbol \
		--symbols=_raw_spin_unlock_irqrestore,_raw_spin_unlock_irq \
		-g folded,0,caller,count 2>/dev/null |
		awk -F';' 'NF > 1 { split($1, a, " "); n[$(NF - 1)] += a[1] }
			END { for (f in n) printf "%8d  %s\n", n[f], f }' |
		sort -rn | head -n 12 | sed 's/^/#   /'
}

if [ "${TS_BENCH_PROFILE:-0}" = 1 ]; then
	n=$(echo $RECLAIMERS | awk '{ print $NF }')
	for phase in out in; do
		for dev in tsswap0 vda; do
			profile $dev $phase "$n"
		done
	done
fi
rmmod tesseract

# got RECLAIMERS NAME: the ratio measured, or 0 if that run was not made.
got() {
	awk -v n="$1" -v name="$2" '$1 == n && $2 == name { r = $3 }
		END { print r == "" ? 0 : r }' /tmp/ratios
}
first=$(echo $RECLAIMERS | awk '{ print $1 }')
echo "swapbench ratio=$(got "$first" out+in) out=$(got "$first" out) in=$(got "$first" in) out4=$(got 4 out) in4=$(got 4 in) linear_out=$(got "$first" linear-out) linear_in=$(got "$first" linear-in)"
