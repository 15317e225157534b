// SPDX-License-Identifier: GPL-2.0
/*
 * Crash replay of a reconcile-heavy guest: every write to the store and the
 * image is logged (dm-log-writes); the disks are then rebuilt at every
 * flush point and at random points in between, and each must load, be
 * consistent (tesseractctl check) and give the guest back every block it
 * wrote before its last completed FLUSH, exactly.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/swap.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "crash_util.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define CGROUP		"ts-crash"
#define BLOCKS		256		/* guest disk blocks the workload uses */
#define ROUNDS		16
#define DISK_ID		0x7e55ULL
#define TAG		0xd15cUL
/* Random points in between, and a bound on all; ten times more to soak. */
#define NR_RANDOM	190
#define MAX_POINTS	320
#define SOAK_FACTOR	10
#define SEED		20261122U

/*
 * What the guest did. Block b got versions 1, 2, ... in order; durable[k][b]
 * is its version when FLUSH k completed (0: never written), and flush k is
 * followed in the log by the mark "flush-k".
 */
struct workload {
	unsigned int version[BLOCKS];	/* newest contents of the page */
	unsigned int written[BLOCKS];	/* version last written to disk */
	unsigned int durable[ROUNDS][BLOCKS];
	unsigned int flushes;
	struct crash_log log;
	unsigned long long checked, reconciled;
	char *check;			/* a page of guest memory */
	struct vblk_dev dev;
};

static unsigned int rnd(unsigned int *s)
{
	*s = *s * 1103515245U + 12345U;
	return (*s >> 8) & 0xffffff;
}

static int open_guest(struct vblk_dev *d, const char *image, int *fd)
{
	__u64 id = DISK_ID;
	int ret;

	*fd = open(image, O_RDWR | O_DIRECT);
	if (*fd < 0)
		return -errno;
	ret = vblk_open(d, (BLOCKS + 64) * PAGE + (4 << 20), 1, 128, 0);
	if (ret)
		return ret;
	if (ioctl(d->fd, VHOST_BLK_SET_DISK_ID, &id))
		return -errno;
	return vblk_set_backend(d, *fd);
}

/* The recorded run: rounds of changes, swap-outs, writes and flushes. */
static int run_workload(struct __test_metadata *_metadata, struct workload *w)
{
	unsigned int s = SEED, round, i, b, n;
	char *ram, name[32];
	int fd, ret;

	ret = ts_swap_up("backing=" CRASH_STORE);
	if (ret)
		return ret;
	if (ts_cgroup_enter(CGROUP) || open_guest(&w->dev, CRASH_IMAGE, &fd))
		return -EIO;
	ram = vblk_alloc(&w->dev, BLOCKS * PAGE, PAGE);
	if (!ram)
		return -ENOMEM;
	for (b = 0; b < BLOCKS; b++)
		ts_fill_page(ram + b * PAGE, TAG, b, ++w->version[b]);
	crash_mark("ready");

	for (round = 1; round <= ROUNDS; round++) {
		/* New contents for some pages, pushed to host swap... */
		for (n = 0; n < BLOCKS / 4; n++) {
			b = rnd(&s) % BLOCKS;
			ts_fill_page(ram + b * PAGE, TAG, b, ++w->version[b]);
		}
		ts_push_to_swap(CGROUP, ram, BLOCKS * PAGE);
		/* ... then written (reconciled), with some resident ones. */
		for (n = 0; n < BLOCKS / 2; n++) {
			b = rnd(&s) % BLOCKS;
			if (!(n % 8))
				ts_fill_page(ram + b * PAGE, TAG, b,
					     ++w->version[b]);
			if (vblk_rw(&w->dev, 0, VIRTIO_BLK_T_OUT, b * SECTORS,
				    ram + b * PAGE, PAGE, 0, false))
				return -EIO;
			w->written[b] = w->version[b];
		}
		/* The last round ends without a flush. */
		if (round == ROUNDS)
			break;
		if (vblk_rw(&w->dev, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0,
			    false))
			return -EIO;
		w->flushes = round;
		for (i = 0; i < BLOCKS; i++)
			w->durable[round][i] = w->written[i];
		snprintf(name, sizeof(name), "flush-%u", round);
		crash_mark(name);
	}
	w->reconciled = ts_vhost_counter("reconciled_pages");
	vblk_close(&w->dev);
	close(fd);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	return 0;
}

/* Flushes completed before crash point @point (log entries 0..point-1). */
static unsigned int flushes_before(const struct workload *w,
				   unsigned long long point)
{
	char name[32];
	unsigned int k;
	long long m;

	for (k = w->flushes; k; k--) {
		snprintf(name, sizeof(name), "flush-%u", k);
		m = crash_log_find_mark(&w->log, name);
		if (m >= 0 && (unsigned long long)m < point)
			return k;
	}
	return 0;
}

/*
 * Block b at a point after flush k: its version at flush k, or any later
 * one; zero only if it had not been written by then.
 */
static bool block_ok(const struct workload *w, const char *p, unsigned int b,
		     unsigned int k)
{
	unsigned int v, from = k ? w->durable[k][b] : 0;
	static const char zero[PAGE];

	if (!from && !memcmp(p, zero, PAGE))
		return true;
	for (v = from ? from : 1; v <= w->version[b]; v++)
		if (ts_check_page(p, TAG, b, v))
			return true;
	return false;
}

static int check_point(unsigned long long point, void *arg)
{
	struct workload *w = arg;
	unsigned int k = flushes_before(w, point), b, bad = 0;
	struct vblk_dev d;
	char *buf;
	int fd = -1;

	if (ts_tool("check " CRASH_STORE_REPLAY " >/dev/null 2>&1")) {
		printf("# point %llu: tesseractctl check fails\n", point);
		return 1;
	}
	if (ts_module_load("backing=" CRASH_STORE_REPLAY)) {
		printf("# point %llu: the store does not load\n", point);
		return 1;
	}
	vblk_init(&d);
	if (open_guest(&d, CRASH_IMAGE_REPLAY, &fd)) {
		printf("# point %llu: the disk does not attach\n", point);
		bad = 1;
		goto out;
	}
	buf = vblk_alloc(&d, BLOCKS * PAGE, PAGE);
	if (!buf || vblk_rw(&d, 0, VIRTIO_BLK_T_IN, 0, buf, BLOCKS * PAGE, 0,
			    false)) {
		bad = 1;
		goto out;
	}
	for (b = 0; b < BLOCKS; b++) {
		if (block_ok(w, buf + b * PAGE, b, k))
			continue;
		if (!bad++)
			printf("# point %llu (after flush %u): block %u lost its data\n",
			       point, k, b);
	}
	w->checked++;
out:
	vblk_close(&d);
	if (fd >= 0)
		close(fd);
	ts_module_ensure_unloaded();
	return bad ? 1 : 0;
}

FIXTURE(replay) {
	struct workload *w;
};

FIXTURE_SETUP(replay)
{
	self->w = calloc(1, sizeof(*self->w));
	ASSERT_NE(NULL, self->w);
	ts_module_ensure_unloaded();
	if (crash_setup() == -ENODEV)
		SKIP(return, "dm-log-writes, dm-snapshot or the disks missing");
}

FIXTURE_TEARDOWN(replay)
{
	ts_swap_down();
	crash_teardown();
	crash_log_free(&self->w->log);
	free(self->w);
}

TEST_F_TIMEOUT(replay, flushed_writes_survive_every_crash_point, 14400)
{
	const char *soak = getenv("TS_SOAK");
	unsigned int factor = soak && !strcmp(soak, "1") ? SOAK_FACTOR : 1;
	unsigned long long *points, *keep;
	size_t n, i, kept = 0;
	long long ready;
	int failed;

	ASSERT_EQ(0, run_workload(_metadata, self->w));
	TH_LOG("%u flushes, %llu pages reconciled", self->w->flushes,
	       self->w->reconciled);
	/* A test of reconciled data only if there is some. */
	ASSERT_LT((unsigned long long)BLOCKS, self->w->reconciled);
	ASSERT_EQ(0, crash_log_stop());
	ASSERT_EQ(0, crash_log_read(&self->w->log));
	ready = crash_log_find_mark(&self->w->log, "ready");
	ASSERT_LE(0, ready);

	ASSERT_EQ(0, crash_points(NR_RANDOM * factor, SEED, &points, &n));
	/* Points from the formatted, loaded store on; at most MAX_POINTS. */
	keep = calloc(n, sizeof(*keep));
	ASSERT_NE(NULL, keep);
	for (i = 0; i < n; i++)
		if (points[i] > (unsigned long long)ready)
			keep[kept++] = points[i];
	if (kept > MAX_POINTS * factor) {
		for (i = 0; i < MAX_POINTS * factor; i++)
			keep[i] = keep[i * kept / (MAX_POINTS * factor)];
		kept = MAX_POINTS * factor;
	}
	failed = crash_check_points(keep, kept, check_point, self->w);
	printf("# crash points replayed and checked: %llu of %zu\n",
	       self->w->checked, kept);
	EXPECT_EQ(0, failed);
	EXPECT_LE(200ULL, self->w->checked);
	free(keep);
	free(points);
}

TEST_HARNESS_MAIN
