#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs as PID 1 inside the test kernel, on the host's root shared read-only.
# Prepares writable scratch space, then runs the selftests (TS_MODE=test), a
# phase ($TS_PHASE) of a power-cut test (TS_MODE=powercut) or the demo
# (TS_MODE=demo), writing their output to the second serial port;
# the kernel's own console stays on the first, which the host scans for oopses.

# The tmpfs mounts below must not hide the project, wherever the host keeps
# it (a CI clone may live under /tmp): reach it through /mnt instead.
case "$TS_DIR" in
/mnt | /mnt/*) ;;
*) mount --bind "$TS_DIR" /mnt && TS_DIR=/mnt ;;
esac
export TS_DIR TS_SOAK TS_DEBUG TS_TIMEOUT_SCALE TS_FUZZ_SECONDS TS_FUZZ_SEED

# The debug kernel's own modules are in the build tree, not in the host's
# /lib/modules (tools/debug-kernel/build.sh): modprobe finds them there.
[ -n "$TS_MODDIR" ] && mount --bind "$TS_MODDIR" /lib/modules

mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
mount -t tmpfs -o mode=700 tmpfs /root
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm

# A task stuck for a minute is a hang: report it (the host fails the run).
# The debug kernel is slower: five minutes.
hung=60
[ "${TS_DEBUG:-0}" = 1 ] && hung=300
echo $hung >/proc/sys/kernel/hung_task_timeout_secs 2>/dev/null

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
export TS_KVER="$(uname -r)"
export TS_BUILD="$TS_DIR/build/$TS_KVER"
export TS_MODULE="$TS_BUILD/tesseract.ko"

stty -F /dev/ttyS1 raw -echo 115200 2>/dev/null
exec >/dev/ttyS1 2>&1 </dev/null

# Scratch disks the host attached (sparse files on the host).
modprobe virtio_blk
# The module uses the vhost core and crc32c; load them as modprobe would.
modprobe vhost 2>/dev/null
modprobe libcrc32c 2>/dev/null

echo "# tesseract-guest: kernel $TS_KVER, $(nproc) cpus, $(free -m | awk '/Mem:/ {print $2}') MiB"

# run_tests LIST: the programs of selftests/LIST that TS_FILTER selects.
run_tests() {
	list="$TS_BUILD/selftests/$1"
	per_test_timeout=${TS_TEST_TIMEOUT:-900}
	# Soak runs check up to twenty times the points (crash_replay: a
	# second a point, well within ten times the time).
	[ "${TS_SOAK:-0}" = 1 ] && per_test_timeout=$((per_test_timeout * 10))
	# A slower kernel (the debug kernel) scales every timeout.
	per_test_timeout=$((per_test_timeout * ${TS_TIMEOUT_SCALE:-1}))
	# A fuzzer runs for the time it is given, on top.
	per_test_timeout=$((per_test_timeout + ${TS_FUZZ_SECONDS:-0}))

	if [ ! -r "$list" ]; then
		echo "# tesseract-error: $list missing (selftests not built)"
		return
	fi
	while read -r prog; do
		if [ -n "$TS_FILTER" ]; then
			case ",$TS_FILTER," in
			*",$prog,"*) ;;
			*) continue ;;
			esac
		fi
		echo "# tesseract-start: $prog"
		start=$(date +%s)
		# TS_CASE: only the tests of that name (6.12's harness; 6.1's
		# has no options and runs them all). In a session of its own:
		# the harness runs each test in a process group of its own,
		# which the timeout's kill misses, and a timed-out test's
		# process must not run on into the next program (a crash replay
		# reloading the module under the fuzzer did). What is left of
		# the session when the program is over is killed.
		(cd /tmp && exec setsid sh -c 'echo $$ >/tmp/ts-session
			exec timeout -k 10 "$@"' sh "$per_test_timeout" \
			"$TS_BUILD/selftests/$prog" ${TS_CASE:+-t "$TS_CASE"})
		rc=$?
		session=$(cat /tmp/ts-session 2>/dev/null)
		if [ -n "$session" ] && pkill -KILL -s "$session"; then
			echo "# tesseract-leftovers: $prog left processes behind; killed"
		fi
		rm -f /tmp/ts-session
		# Its time, for planning runs of the slower kernels.
		echo "# tesseract-exit: $prog $rc $(($(date +%s) - start))s"
	done <"$list"
}

# kmemleak_report WHEN: scan for leaks (twice, as kmemleak's documentation
# advises against transient false positives) and write what it suspects as
# "# kmemleak: " lines for the host (tools/debug-kernel/reports.py), then
# forget them so that a later scan shows only new ones.
kmemleak=/sys/kernel/debug/kmemleak
kmemleak_report() {
	[ -w $kmemleak ] || return 0
	echo scan >$kmemleak
	sleep 6
	echo scan >$kmemleak
	echo "# tesseract-kmemleak: $1 begin"
	sed 's/^/# kmemleak: /' $kmemleak
	echo "# tesseract-kmemleak: $1 end"
	echo clear >$kmemleak
}

# What boot left unreferenced is not ours to report. kmemleak's own scan
# every ten minutes walks all of guest RAM, minutes of TCG time a pass in
# this kernel: off, since the scans above find every unreferenced object
# whenever they run.
if [ "${TS_DEBUG:-0}" = 1 ] && [ -w $kmemleak ]; then
	echo clear >$kmemleak
	echo scan=off >$kmemleak
fi

case "$TS_MODE" in
demo)
	sh "$TS_DIR/tools/demo.sh"
	;;
bench)
	sh "$TS_DIR/tools/bench/$TS_BENCH.sh"
	;;
powercut)
	export TS_PHASE
	run_tests powercut.list
	;;
*)
	run_tests tests.list
	;;
esac

# The debug kernel: leaks after the suite, and after the module's final
# unload if a program left it loaded.
if [ "${TS_DEBUG:-0}" = 1 ]; then
	kmemleak_report after-suite
	if [ -d /sys/module/tesseract ]; then
		rmmod tesseract
		kmemleak_report after-unload
	fi
fi

echo "# tesseract-done"
sync
/bin/busybox poweroff -f
