// SPDX-License-Identifier: GPL-2.0
/*
 * Crash-replay harness (see crash_util.h): dm-log-writes under the test's
 * devices, the engine of tools/logreplay to rebuild the disk at a crash
 * point, and a throw-away dm-snapshot for the checker.
 *
 * Device-mapper is driven through its ioctls rather than dmsetup: under TCG
 * every process started costs a fifth of a second, and a check of a few
 * hundred crash points needs several device changes each.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "crash_util.h"
#include "logwrites.h"
#include "ts_util.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#endif

#define MAPPER		"/dev/mapper/"
#define DATA_DISK	"/dev/vdb"
#define REPLAY_DISK	"/dev/vda"
#define LW		"ts-crash-lw"
#define LOG_DEV		MAPPER "ts-crash-log"
#define TARGET		MAPPER "ts-crash-target"
#define SNAP		MAPPER "ts-crash-snap"
#define COW_DEV		MAPPER "ts-crash-cow"
#define RAMDISK		"/dev/ram0"
/* Present while the harness has brd loaded, for its COW store. */
#define BRD_MARKER	"/run/ts-crash-brd"

#define DATA_SECTORS	(CRASH_STORE_SECTORS + CRASH_IMAGE_SECTORS)
#define COW_SECTORS	524288ULL	/* 256 MiB */
#define MIN_LOG_SECTORS	524288ULL

/* Every device of the harness, in the order they are to be removed. */
static const char * const devices[] = {
	"ts-image-replay", "ts-store-replay", "ts-crash-snap",
	"ts-image", "ts-store", LW,
	"ts-crash-log", "ts-crash-target", "ts-crash-cow",
};

/* The log being replayed, the target, and how far it is. */
static struct lw_log rlog = { .fd = -1 };
static struct lw_target target = { .fd = -1 };
static unsigned long long replayed;
static bool snapshot_is_up;

/* An ioctl buffer: the header, then a table, status or message. */
union dm_buf {
	struct dm_ioctl io;
	char bytes[16384];
};

static struct dm_ioctl *dm_init(union dm_buf *buf, const char *name)
{
	struct dm_ioctl *io = &buf->io;

	memset(buf, 0, sizeof(*buf));
	io->version[0] = DM_VERSION_MAJOR;
	io->data_size = sizeof(*buf);
	io->data_start = sizeof(*io);
	snprintf(io->name, sizeof(io->name), "%s", name);
	return io;
}

static int dm_do(unsigned long cmd, struct dm_ioctl *io)
{
	static int control = -1;

	if (control < 0) {
		control = open(MAPPER "control", O_RDWR | O_CLOEXEC);
		if (control < 0)
			return -errno;
	}
	return ioctl(control, cmd, io) ? -errno : 0;
}

static int dm_fail(const char *what, const char *name, int ret)
{
	fprintf(stderr, "# crash: %s %s: %s\n", what, name, strerror(-ret));
	return ret;
}

static int dm_remove(const char *name)
{
	union dm_buf buf;
	char node[128];
	int ret, tries;

	/* Whoever held the device may take a moment to let go. */
	for (tries = 0; tries < 50; tries++) {
		ret = dm_do(DM_DEV_REMOVE, dm_init(&buf, name));
		if (ret != -EBUSY)
			break;
		usleep(20000);
	}
	snprintf(node, sizeof(node), MAPPER "%s", name);
	if (!ret || ret == -ENXIO)
		unlink(node);
	if (ret == -ENXIO)
		return 0;
	return ret ? dm_fail("remove", name, ret) : 0;
}

/* Create and activate a one-target device, with its node in /dev/mapper. */
static int dm_create(const char *name, unsigned long long sectors,
		     const char *type, const char *fmt, ...)
{
	struct dm_target_spec *spec;
	struct dm_ioctl *io;
	unsigned int major, minor;
	union dm_buf buf;
	char node[128];
	va_list ap;
	int ret;

	ret = dm_do(DM_DEV_CREATE, dm_init(&buf, name));
	if (ret)
		return dm_fail("create", name, ret);

	io = dm_init(&buf, name);
	io->target_count = 1;
	spec = (struct dm_target_spec *)(buf.bytes + io->data_start);
	spec->length = sectors;
	snprintf(spec->target_type, sizeof(spec->target_type), "%s", type);
	va_start(ap, fmt);
	vsnprintf((char *)(spec + 1), sizeof(buf) - io->data_start -
		  sizeof(*spec), fmt, ap);
	va_end(ap);
	ret = dm_do(DM_TABLE_LOAD, io);
	if (ret) {
		fprintf(stderr, "# crash: table of %s: %s %s\n", name, type,
			(char *)(spec + 1));
		goto fail;
	}
	io = dm_init(&buf, name);
	ret = dm_do(DM_DEV_SUSPEND, io);	/* without the flag: resume */
	if (ret)
		goto fail;

	/* io->dev is the kernel's huge_encode_dev() of the device number. */
	major = (io->dev & 0xfff00) >> 8;
	minor = (io->dev & 0xff) | ((io->dev >> 12) & 0xfff00);
	snprintf(node, sizeof(node), MAPPER "%s", name);
	unlink(node);
	if (mknod(node, S_IFBLK | 0600, makedev(major, minor))) {
		ret = -errno;
		goto fail;
	}
	return 0;
fail:
	dm_fail("create", name, ret);
	dm_remove(name);
	return ret;
}

void crash_teardown(void)
{
	size_t i;

	lw_target_close(&target, &rlog);
	lw_close(&rlog);
	for (i = 0; i < ARRAY_SIZE(devices); i++)
		dm_remove(devices[i]);
	if (!access(BRD_MARKER, F_OK)) {
		ts_system_quiet("rmmod brd");
		unlink(BRD_MARKER);
	}
	replayed = 0;
	snapshot_is_up = false;
}

static long long dev_sectors(const char *path)
{
	unsigned long long bytes;
	int fd = open(path, O_RDONLY);
	int ret;

	if (fd < 0)
		return -errno;
	ret = ioctl(fd, BLKGETSIZE64, &bytes);
	close(fd);
	return ret ? -errno : (long long)(bytes >> 9);
}

static int zero_sectors(const char *path, unsigned long long start,
			unsigned long long sectors)
{
	unsigned long long range[2] = { start << 9, sectors << 9 };
	int fd = open(path, O_WRONLY);
	int ret;

	if (fd < 0)
		return -errno;
	ret = ioctl(fd, BLKZEROOUT, range) ? -errno : 0;
	close(fd);
	if (ret)
		fprintf(stderr, "# crash: cannot zero %s: %s\n", path,
			strerror(-ret));
	return ret;
}

int crash_setup(void)
{
	long long data, disk, log;
	int ret;

	if (ts_system("modprobe -a dm-mod dm-log-writes dm-snapshot"))
		return -ENODEV;
	crash_teardown();
	data = dev_sectors(DATA_DISK);
	disk = dev_sectors(REPLAY_DISK);
	if (data < (long long)DATA_SECTORS ||
	    disk < (long long)(DATA_SECTORS + MIN_LOG_SECTORS + COW_SECTORS))
		return -ENODEV;
	log = disk - DATA_SECTORS - COW_SECTORS;

	/* A ramdisk is the faster COW store: use one if it is ours. */
	if (access("/sys/module/brd", F_OK) &&
	    !ts_system("modprobe brd rd_nr=1 rd_size=262144")) {
		ret = open(BRD_MARKER, O_WRONLY | O_CREAT, 0644);
		if (ret >= 0)
			close(ret);
	}

	ret = dm_create("ts-crash-target", DATA_SECTORS, "linear",
			REPLAY_DISK " 0");
	ret = ret ?: dm_create("ts-crash-log", log, "linear",
			       REPLAY_DISK " %llu", DATA_SECTORS);
	ret = ret ?: dm_create("ts-crash-cow", COW_SECTORS, "linear",
			       REPLAY_DISK " %llu", DATA_SECTORS + log);
	/*
	 * The replay starts from the disk as it is when logging starts: make
	 * both zero. A zeroed super block makes a stale log unreadable.
	 */
	ret = ret ?: zero_sectors(DATA_DISK, 0, DATA_SECTORS);
	ret = ret ?: zero_sectors(TARGET, 0, DATA_SECTORS);
	ret = ret ?: zero_sectors(LOG_DEV, 0, 2048);
	ret = ret ?: dm_create(LW, DATA_SECTORS, "log-writes",
			       DATA_DISK " " LOG_DEV);
	ret = ret ?: dm_create("ts-store", CRASH_STORE_SECTORS, "linear",
			       MAPPER LW " 0");
	ret = ret ?: dm_create("ts-image", CRASH_IMAGE_SECTORS, "linear",
			       MAPPER LW " %llu", CRASH_STORE_SECTORS);
	if (ret)
		crash_teardown();
	return ret;
}

int crash_mark(const char *name)
{
	struct dm_target_msg *msg;
	struct dm_ioctl *io;
	union dm_buf buf;
	int ret;

	io = dm_init(&buf, LW);
	msg = (struct dm_target_msg *)(buf.bytes + io->data_start);
	msg->sector = 0;
	snprintf(msg->message, sizeof(buf) - io->data_start - sizeof(*msg),
		 "mark %s", name);
	ret = dm_do(DM_TARGET_MSG, io);
	return ret ? dm_fail("mark", name, ret) : 0;
}

/* The status of the log-writes device: entries, and whether it gave up. */
static int lw_status(long long *entries, bool *disabled)
{
	struct dm_target_spec *spec;
	unsigned long long n;
	struct dm_ioctl *io;
	union dm_buf buf;
	char *text, *end;
	int ret;

	io = dm_init(&buf, LW);
	ret = dm_do(DM_TABLE_STATUS, io);
	if (ret)
		return dm_fail("status", LW, ret);
	if (io->target_count != 1 || (io->flags & DM_BUFFER_FULL_FLAG))
		return -EIO;
	spec = (struct dm_target_spec *)(buf.bytes + io->data_start);
	text = (char *)(spec + 1);
	n = strtoull(text, &end, 10);
	if (end == text)
		return -EIO;
	*entries = n;
	*disabled = strstr(text, "logging_disabled");
	return 0;
}

long long crash_logged_entries(void)
{
	long long entries;
	bool disabled;
	int ret = lw_status(&entries, &disabled);

	return ret ?: entries;
}

/*
 * A flush of the log-writes device: the writes not flushed yet follow it
 * into the log, after everything logged before, where they belong.
 * Without it they are logged when the device is removed, and the
 * destructor (log_writes_dtr(), 6.1 and 6.12 alike) splices them at the
 * head of the queue of entries its thread has not written yet
 * (list_splice_init, not list_splice_tail_init): with a slow log thread
 * (the debug kernel) they landed before the last FLUSH and MARK, as if
 * written before a flush they followed.
 */
static int lw_flush(void)
{
	int fd = open(MAPPER LW, O_RDWR | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return dm_fail("open", LW, -errno);
	ret = fsync(fd) ? -errno : 0;
	close(fd);
	return ret ? dm_fail("flush", LW, ret) : 0;
}

int crash_log_stop(void)
{
	long long entries;
	bool disabled;
	int ret;

	ret = dm_remove("ts-image");
	ret = ret ?: dm_remove("ts-store");
	ret = ret ?: lw_flush();
	ret = ret ?: lw_status(&entries, &disabled);
	if (ret)
		return ret;
	/* Removing the device logs a last mark. */
	ret = dm_remove(LW);
	if (!ret && disabled) {
		fprintf(stderr, "# crash: the log device filled up\n");
		ret = -ENOSPC;
	}
	return ret;
}

static int log_open(struct lw_log *log)
{
	int ret = lw_open(log, LOG_DEV);

	if (ret)
		fprintf(stderr, "# crash: %s\n", log->err);
	return ret;
}

void crash_log_free(struct crash_log *log)
{
	size_t i;

	for (i = 0; i < log->n; i++)
		free(log->entries[i].mark);
	free(log->entries);
	log->entries = NULL;
	log->n = 0;
}

int crash_log_read(struct crash_log *log)
{
	static struct lw_entry e;
	struct crash_entry *ce;
	struct lw_log lw;
	unsigned int scale;
	int ret;

	log->entries = NULL;
	log->n = 0;
	ret = log_open(&lw);
	if (ret)
		return ret;
	scale = lw.sectorsize >> 9;
	log->entries = calloc(lw.nr_entries ?: 1, sizeof(*log->entries));
	if (!log->entries) {
		lw_close(&lw);
		return -ENOMEM;
	}
	while ((ret = lw_next(&lw, &e)) > 0) {
		ce = &log->entries[log->n++];
		ce->sector = e.sector * scale;
		ce->sectors = e.nr_sectors * scale;
		ce->flags = e.flags;
		if (e.flags & LW_MARK) {
			ce->mark = strdup(e.mark);
			if (!ce->mark) {
				ret = -ENOMEM;
				break;
			}
		}
		lw_skip_data(&lw, &e);
	}
	if (ret) {
		fprintf(stderr, "# crash: cannot read the log: %s\n",
			ret == -ENOMEM ? "out of memory" : lw.err);
		crash_log_free(log);
	}
	lw_close(&lw);
	return ret;
}

long long crash_log_find_mark(const struct crash_log *log, const char *name)
{
	size_t i;

	for (i = 0; i < log->n; i++) {
		if (log->entries[i].mark && !strcmp(log->entries[i].mark, name))
			return i;
	}
	return -1;
}

int crash_points(unsigned int nrandom, unsigned int seed,
		 unsigned long long **points, size_t *n)
{
	struct lw_log lw;
	__u64 *p;
	size_t i;
	int ret;

	*points = NULL;
	*n = 0;
	ret = log_open(&lw);
	if (ret)
		return ret;
	ret = lw_points(&lw, nrandom, seed, &p, n);
	if (ret)
		fprintf(stderr, "# crash: %s\n", lw.err);
	lw_close(&lw);
	if (ret)
		return ret;
	*points = calloc(*n ?: 1, sizeof(**points));
	if (!*points) {
		free(p);
		return -ENOMEM;
	}
	for (i = 0; i < *n; i++)
		(*points)[i] = p[i];
	free(p);
	return 0;
}

int crash_replay_to(unsigned long long point)
{
	int ret;

	if (snapshot_is_up) {
		ret = crash_snapshot_down();
		if (ret)
			return ret;
	}
	if (rlog.fd < 0) {
		ret = log_open(&rlog);
		if (ret)
			return ret;
	}
	if (target.fd < 0) {
		ret = lw_target_open(&target, TARGET, &rlog);
		if (ret)
			goto fail;
	}
	if (point < replayed) {
		ret = lw_target_zero(&target, &rlog);
		if (ret)
			goto fail;
		replayed = 0;
	}
	ret = lw_replay(&rlog, &target, replayed, point);
	if (ret)
		goto fail;
	replayed = point;
	return 0;
fail:
	fprintf(stderr, "# crash: replay to %llu: %s\n", point, rlog.err);
	return ret;
}

int crash_snapshot_up(void)
{
	const char *cow = access(BRD_MARKER, F_OK) ? COW_DEV : RAMDISK;
	int ret;

	snapshot_is_up = true;
	/* Non-persistent, 4 KiB chunks. */
	ret = dm_create("ts-crash-snap", DATA_SECTORS, "snapshot",
			TARGET " %s N 8", cow);
	ret = ret ?: dm_create("ts-store-replay", CRASH_STORE_SECTORS,
			       "linear", SNAP " 0");
	ret = ret ?: dm_create("ts-image-replay", CRASH_IMAGE_SECTORS,
			       "linear", SNAP " %llu", CRASH_STORE_SECTORS);
	if (ret)
		crash_snapshot_down();
	return ret;
}

int crash_snapshot_down(void)
{
	int ret;

	ret = dm_remove("ts-image-replay");
	ret = ret ?: dm_remove("ts-store-replay");
	ret = ret ?: dm_remove("ts-crash-snap");
	if (!ret)
		snapshot_is_up = false;
	return ret;
}

int crash_check_points(const unsigned long long *points, size_t n,
		       int (*check)(unsigned long long point, void *arg),
		       void *arg)
{
	int ret, failed = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		ret = crash_replay_to(points[i]);
		ret = ret ?: crash_snapshot_up();
		if (ret)
			return ret;
		if (check(points[i], arg))
			failed++;
		ret = crash_snapshot_down();
		if (ret)
			return ret;
	}
	return failed;
}
