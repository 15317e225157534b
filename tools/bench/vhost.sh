#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-vhost, run inside the test kernel: fio 4 KiB random reads and writes
# at queue depth 1 and 32 on /dev/vdb, through /dev/vhost-blk with our fio
# engine (a guest's view) and natively with io_uring and O_DIRECT (the
# host's view), interleaved, in the same boot; vhost-blk once as loaded
# and once with busy polling (busy_poll_us=TS_BENCH_POLL_US, default 1000:
# longer than a 4 KiB I/O takes under TCG). TS_BENCH_ROUNDS (3) runs of
# TS_BENCH_RUNTIME (10) seconds each; the medians are compared.
# TS_BENCH_PROFILE=1 adds a profile of random reads at depth 1 natively,
# through vhost-blk and polled: context switches per request (perf stat)
# and where the CPU time went (perf record -a -g, cpu-clock).

RUNTIME=${TS_BENCH_RUNTIME:-10}
ROUNDS=${TS_BENCH_ROUNDS:-3}
POLL_US=${TS_BENCH_POLL_US:-1000}
POLL_PARAM=/sys/module/tesseract/parameters/busy_poll_us
ENGINE="$TS_DIR/build/tools/fio-vhostblk.so"
DISK=/dev/vdb

insmod "$TS_MODULE" || exit 1
# Give the sparse scratch disk real blocks, so reads are not of holes.
fio --name=fill --filename=$DISK --rw=write --bs=1M --size=1G --direct=1 --eta=never \
	--ioengine=io_uring --output=/dev/null || exit 1

# iops ENGINE RW QD [WRAPPER]: IOPS of one run; WRAPPER, if set, is a
# command that runs fio (a profiler).
iops() {
	case $1 in
	native) engine=io_uring ;;
	vhost) engine="external:$ENGINE" ;;
	esac
	$4 fio --name=bench --filename=$DISK --ioengine="$engine" --direct=1 \
		--rw="$2" --bs=4k --iodepth="$3" --size=1G --runtime="$RUNTIME" \
		--time_based --randrepeat=0 --eta=never --output-format=json \
		--output=/tmp/fio.json >/dev/null 2>&1 || {
		echo "# fio $1 $2 qd$3 failed" >&2
		echo 0
		return
	}
	/usr/bin/python3 -c '
import json, sys
job = json.load(open("/tmp/fio.json"))["jobs"][0]
print("%.0f" % (job["read"]["iops"] + job["write"]["iops"]))'
}

ratio() {
	awk -v v="$1" -v n="$2" 'BEGIN { printf "%.3f", n ? v / n : 0 }'
}

# median: of the numbers on standard input.
median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

rm -f /tmp/ratios
for qd in 1 32; do
	for rw in randread randwrite; do
		: >/tmp/native.iops
		: >/tmp/vhost.iops
		: >/tmp/polled.iops
		i=0
		while [ $i -lt "$ROUNDS" ]; do
			iops native $rw $qd >>/tmp/native.iops
			iops vhost $rw $qd >>/tmp/vhost.iops
			echo "$POLL_US" >$POLL_PARAM || exit 1
			iops vhost $rw $qd >>/tmp/polled.iops
			echo 0 >$POLL_PARAM
			i=$((i + 1))
		done
		echo "# qd$qd $rw runs: native $(echo $(cat /tmp/native.iops)), vhost-blk $(echo $(cat /tmp/vhost.iops)), polled $(echo $(cat /tmp/polled.iops))"
		n=$(median </tmp/native.iops)
		v=$(median </tmp/vhost.iops)
		p=$(median </tmp/polled.iops)
		r=$(ratio "$v" "$n")
		rp=$(ratio "$p" "$n")
		echo "# qd$qd $rw: native $n IOPS, vhost-blk $v IOPS, ratio $r; polled $p IOPS, ratio $rp"
		echo "$qd $r $rp" >>/tmp/ratios
	done
done
# profile LABEL ENGINE POLL_US: one run of random reads at depth 1 under
# perf: context switches per request, and where the CPU time went.
profile() {
	echo "$3" >$POLL_PARAM || exit 1
	n=$(iops "$2" randread 1 "perf stat -a -x, -e context-switches,cpu-clock -o /tmp/perf.stat --")
	switches=$(awk -F, '$3 == "context-switches" { print $1 }' /tmp/perf.stat)
	echo "# profile $1 qd1 randread: $n IOPS, $(awk -v s="$switches" -v n="$n" -v t="$RUNTIME" \
		'BEGIN { printf "%.2f", n ? s / (n * t) : 0 }') context switches per request"
	iops "$2" randread 1 "perf record -q -a -g -e cpu-clock -F 1999 -o /tmp/perf.data --" >/dev/null
	echo 0 >$POLL_PARAM
	echo "# profile $1 qd1 randread, self, by function:"
	perf report -q -i /tmp/perf.data --no-children --stdio -g none \
		--sort dso,symbol --percent-limit 1.5 2>/dev/null |
		sed 's/ *$//; s/^/#   /' | head -n 20
	echo "# profile $1 qd1 randread, the request's path, with callees:"
	perf report -q -i /tmp/perf.data --children --stdio -g none \
		--sort symbol --percent-limit 0.5 2>/dev/null |
		grep -E ' (vhost|ts_|io_uring|io_submit|io_issue|blkdev_|aio_|eventfd|fio_vhostblk|schedule|try_to_wake_up|__x64_sys_(read|write|io_uring_enter|ppoll|poll))' |
		sed 's/ *$//; s/^/#   /' | head -n 25
}

if [ "${TS_BENCH_PROFILE:-0}" = 1 ]; then
	profile native native 0
	profile vhost-blk vhost 0
	profile polled vhost "$POLL_US"
fi
rmmod tesseract

# worst QD COLUMN: the worse ratio of the two runs at depth QD.
worst() {
	awk -v qd="$1" -v col="$2" '$1 == qd { if (min == "" || $col < min) min = $col }
		END { print min }' /tmp/ratios
}
echo "vhostbench ratio=$(worst 32 2) qd1=$(worst 1 2) polled=$(worst 32 3) qd1_polled=$(worst 1 3) poll_us=$POLL_US"
