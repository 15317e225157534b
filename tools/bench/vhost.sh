#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# bench-vhost, run inside the test kernel: fio 4 KiB random reads and writes
# at queue depth 1 and 32 on /dev/vdb, through /dev/vhost-blk with our fio
# engine (a guest's view) and natively with io_uring and O_DIRECT (the
# host's view), interleaved, in the same boot.

RUNTIME=${TS_BENCH_RUNTIME:-10}
ENGINE="$TS_DIR/build/tools/fio-vhostblk.so"
DISK=/dev/vdb

insmod "$TS_MODULE" || exit 1
# Give the sparse scratch disk real blocks, so reads are not of holes.
fio --name=fill --filename=$DISK --rw=write --bs=1M --size=1G --direct=1 --eta=never \
	--ioengine=io_uring --output=/dev/null || exit 1

# iops ENGINE RW QD: IOPS of one run.
iops() {
	case $1 in
	native) engine=io_uring ;;
	vhost) engine="external:$ENGINE" ;;
	esac
	fio --name=bench --filename=$DISK --ioengine="$engine" --direct=1 \
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

for qd in 1 32; do
	for rw in randread randwrite; do
		n=$(iops native $rw $qd)
		v=$(iops vhost $rw $qd)
		r=$(awk -v v="$v" -v n="$n" 'BEGIN { printf "%.3f", n ? v / n : 0 }')
		echo "# qd$qd $rw: native $n IOPS, vhost-blk $v IOPS, ratio $r"
		echo "$qd $r" >>/tmp/ratios
	done
done
rmmod tesseract

worst() {
	awk -v qd="$1" '$1 == qd { if (min == "" || $2 < min) min = $2 } END { print min }' /tmp/ratios
}
echo "vhostbench ratio=$(worst 32) qd1=$(worst 1)"
