/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading and replaying a dm-log-writes log (drivers/md/dm-log-writes.c,
 * Documentation/admin-guide/device-mapper/log-writes.rst): the engine of
 * tools/logreplay, linked into the crash-replay selftests as well.
 *
 * The log: a super block in its first sector, then for each entry a sector
 * holding the entry header (and the text of a mark) followed by the data
 * written, nr_sectors sectors (none for a discard). A "sector" is the
 * logical block size of the logged device, recorded in the super block;
 * entry sectors count in that unit. The super block's entry count is only
 * brought up to date by a FUA write, a mark, and the removal of the
 * log-writes device (which adds the mark "dm-log-writes-end"): read a log
 * once its device is gone.
 *
 * Crash point P is the disk after entries 0..P-1 were applied.
 *
 * Functions return 0 (lw_next: 1 for an entry, 0 at the end) or -errno;
 * on a failure, log->err says what went wrong.
 */
#ifndef _LOGWRITES_H
#define _LOGWRITES_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>

#define LW_FLUSH	0x1
#define LW_FUA		0x2
#define LW_DISCARD	0x4
#define LW_MARK		0x8
#define LW_META		0x10

#define LW_MARK_MAX	4096

struct lw_entry {
	__u64 index;
	__u64 sector;		/* in log sectors */
	__u64 nr_sectors;
	__u64 flags;
	char mark[LW_MARK_MAX];	/* a MARK's text (non-graphic bytes as _) */
};

struct lw_log {
	int fd;
	char *buf;		/* sequential reads, in large blocks */
	size_t len;		/* bytes valid in buf */
	size_t pos;		/* bytes of buf consumed */
	__u64 off;		/* log offset of buf[0] */
	__u64 size;		/* of the log file or device */
	__u64 nr_entries;
	__u32 sectorsize;
	__u64 cur;		/* index of the entry at the read position */
	char err[256];
};

/* Where a log is replayed: a block device or a file. */
struct lw_target {
	int fd;
	bool blkdev;
	__u64 size;
	char *zeroes;
};

int lw_open(struct lw_log *log, const char *path);
void lw_close(struct lw_log *log);

/*
 * Read the header of the next entry into @e; the read position is then at
 * its data, which lw_skip_data() or lw_apply() must consume.
 */
int lw_next(struct lw_log *log, struct lw_entry *e);
void lw_skip_data(struct lw_log *log, const struct lw_entry *e);
/* The read position, and a return to one it had (at entry @entry). */
__u64 lw_tell(const struct lw_log *log);
int lw_seek(struct lw_log *log, __u64 entry, __u64 offset);

/* "FLUSH|FUA|DISCARD|MARK|META" as they apply, or "-". */
const char *lw_flags_str(__u64 flags, char *buf, size_t len);

int lw_target_open(struct lw_target *t, const char *path, struct lw_log *log);
/* Sync and close; 0 or -errno. */
int lw_target_close(struct lw_target *t, struct lw_log *log);
/* Zero the whole target. */
int lw_target_zero(struct lw_target *t, struct lw_log *log);

/*
 * Apply entries @from..@to-1 onto @t in log order (from where the log is
 * if it is not past @from, else from the start), then sync @t. Writes are
 * written; discards are written as zeroes, so that a replay is
 * deterministic.
 */
int lw_replay(struct lw_log *log, struct lw_target *t, __u64 from, __u64 to);

/*
 * The crash points worth checking, increasing: after each FLUSH, FUA or
 * MARK entry and at the end of the log, leaving out any point whose disk is
 * that of the point before (no write or discard in between; point 0 is the
 * disk before the log); and @nrandom more among the other points, drawn
 * with @seed. Free *points.
 */
int lw_points(struct lw_log *log, __u64 nrandom, __u64 seed,
	      __u64 **points, size_t *n);

#endif /* _LOGWRITES_H */
