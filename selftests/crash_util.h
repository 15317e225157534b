/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Crash-replay harness: record every write to the test's block devices with
 * dm-log-writes, then rebuild the disk as it was at any point of the log (a
 * "crash point") and check it.
 *
 * Layout on the test VM's two scratch disks (4 GiB each):
 *
 *   /dev/vdb [0, 2 GiB)  data of ts-crash-lw, a log-writes device whose log
 *                        is ts-crash-log; on top of it ts-store (first GiB)
 *                        and ts-image (second GiB), so one log holds the
 *                        writes of both in the order the disk saw them
 *   /dev/vda [0, 2 GiB)  ts-crash-target, where the log is replayed
 *   /dev/vda [2 GiB, 4 GiB - 256 MiB)  ts-crash-log
 *   /dev/vda [4 GiB - 256 MiB, 4 GiB)  ts-crash-cow, the copy-on-write store
 *                        of the snapshot if no ramdisk (brd) can be had
 *
 * To check a crash point, the target is brought to that point (replaying
 * only the entries not yet applied), then a non-persistent dm-snapshot of it
 * is made, with ts-store-replay and ts-image-replay on top: the checker may
 * write to those (a recovery at load does) without disturbing the replay.
 *
 * Crash point P is the disk after log entries 0..P-1 (see tools/logreplay;
 * its engine, tools/logreplay/logwrites.c, is linked in). Device-mapper is
 * driven through its ioctls, the /dev/mapper nodes made by the harness: no
 * udev, and no process started per device change (slow under TCG).
 * Functions return 0 or -errno unless said otherwise, and say on stderr
 * ("# crash: ...") what failed. Do not name a kselftest fixture "crash": its
 * FIXTURE_SETUP and FIXTURE_TEARDOWN would be crash_setup and crash_teardown.
 */
#ifndef _CRASH_UTIL_H
#define _CRASH_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#define CRASH_STORE		"/dev/mapper/ts-store"
#define CRASH_IMAGE		"/dev/mapper/ts-image"
#define CRASH_STORE_REPLAY	"/dev/mapper/ts-store-replay"
#define CRASH_IMAGE_REPLAY	"/dev/mapper/ts-image-replay"
/* Sizes of the store and image devices (and of their replays). */
#define CRASH_STORE_SECTORS	2097152ULL	/* 1 GiB */
#define CRASH_IMAGE_SECTORS	2097152ULL	/* 1 GiB */

/* Flags of a log entry (those of dm-log-writes). */
#define CRASH_FLUSH		0x1
#define CRASH_FUA		0x2
#define CRASH_DISCARD		0x4
#define CRASH_MARK		0x8
#define CRASH_META		0x10

struct crash_entry {
	unsigned long long sector;	/* 512-byte sectors of ts-crash-lw */
	unsigned long long sectors;
	unsigned int flags;
	char *mark;			/* the text of a MARK, else NULL */
};

/* The entries of the log, by index. */
struct crash_log {
	struct crash_entry *entries;
	size_t n;
};

/*
 * Tear down what an earlier run left, zero the data disk and the replay
 * target, create the devices above and start logging. -ENODEV if a module
 * or disk is missing (a test should then skip).
 */
int crash_setup(void);
/* Remove every device of the harness, whatever state it is in. */
void crash_teardown(void);

/* Append a mark to the log (no whitespace in @name). */
int crash_mark(const char *name);
/* Entries logged so far, or -errno. */
long long crash_logged_entries(void);
/*
 * Stop logging: remove ts-store and ts-image (nothing may hold them open),
 * flush the log-writes device (so that the writes never flushed are logged
 * in order) and remove it, which completes the log. -ENOSPC if the log
 * device filled up (the log is then incomplete).
 */
int crash_log_stop(void);

/* Read the (stopped) log's entries; free with crash_log_free(). */
int crash_log_read(struct crash_log *log);
void crash_log_free(struct crash_log *log);
/* Index of the first MARK entry named @name, or -1. */
long long crash_log_find_mark(const struct crash_log *log, const char *name);

/*
 * The crash points worth checking (logreplay points), plus @nrandom random
 * ones drawn with @seed, in increasing order; free *points.
 */
int crash_points(unsigned int nrandom, unsigned int seed,
		 unsigned long long **points, size_t *n);

/*
 * Bring the replay target to crash point @point: only the entries since the
 * previous point if it is further on, from scratch otherwise. Takes the
 * snapshot down first if it is up.
 */
int crash_replay_to(unsigned long long point);
/* Create the snapshot of the target and ts-{store,image}-replay on it. */
int crash_snapshot_up(void);
/* Remove them (nothing may hold them open); the target is as replayed. */
int crash_snapshot_down(void);

/*
 * For each of the @n points (increasing): replay to it, bring the snapshot
 * up, call @check (0 for a good point), take the snapshot down. Returns how
 * many points failed their check, or -errno if the harness itself failed.
 */
int crash_check_points(const unsigned long long *points, size_t n,
		       int (*check)(unsigned long long point, void *arg),
		       void *arg);

#endif /* _CRASH_UTIL_H */
