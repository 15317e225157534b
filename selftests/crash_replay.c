// SPDX-License-Identifier: GPL-2.0
/*
 * Crash replay of a reconcile-heavy guest: every write to the store and the
 * image is logged (dm-log-writes); the disks are then rebuilt at every
 * flush point and at random points in between, and each must load, be
 * consistent (tesseractctl check) and give the guest back every block it
 * wrote before its last completed FLUSH, exactly.
 *
 * The variants of crash_replay_locality.c (this file, built with
 * CRASH_REPLAY_LOCALITY: each program has 15 minutes in the test VM) add
 * the work that moves referenced blocks under a running guest once
 * references exist: the background cleaner copying them back into the
 * image, the compactor rewriting them in guest order in the store, and a
 * TESSERACT_FLATTEN call. Only crash points from the moment that work is
 * switched on are checked for them; the earlier ones are the plain variant.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
/*
 * Random points in between, and a bound on all (make check checks a
 * variant's check_percent of them: a point is about a second under TCG,
 * and its hour is short); make soak checks twenty times more.
 */
#define NR_RANDOM	100
#define MAX_POINTS	160
#define SOAK_FACTOR	20
/*
 * The debug kernel (TS_DEBUG=1) checks a quarter of them: a point takes it
 * 4 s alone and up to 25 s beside two other debug VMs, and what it is run
 * for, the locking and memory of loading and replaying, is the same at
 * every point. The matrix kernels check them all.
 */
#define DEBUG_DIVISOR	4
#define SEED		20261122U
/* How long the background worker may take to go idle. */
#define IDLE_TIMEOUT_S	300

/* What moves referenced blocks while the guest runs, from round bg_round. */
enum background { BG_NONE, BG_CLEANER, BG_COMPACTOR, BG_FLATTEN };

/* The background worker's counters (debugfs cleaner/), and flatten's. */
struct bg_counters {
	long long cleaned, compacted, pending;
};

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
	struct bg_counters before, after;	/* around the background work */
	int flatten_ret;			/* 0 or -errno of the ioctl */
	unsigned long long flattened;		/* blocks it cleaned */
	char *check;			/* a page of guest memory */
	struct vblk_dev dev;
	char store[64];			/* the store's device */
};

static unsigned int rnd(unsigned int *s)
{
	*s = *s * 1103515245U + 12345U;
	return (*s >> 8) & 0xffffff;
}

/*
 * The image is opened buffered (@direct false) where its durability is to
 * rest on fsync: store and image share one log-writes device, where a flush
 * of the store would also make the image's completed direct writes durable.
 */
static int open_guest(struct vblk_dev *d, const char *image, bool direct,
		      int *fd)
{
	/* The replayed image is another device: the token names the disk. */
	struct vhost_blk_disk_identity ident = {
		.disk_id = DISK_ID,
		.token = "crash-replay",
	};
	int ret;

	*fd = open(image, O_RDWR | (direct ? O_DIRECT : 0));
	if (*fd < 0)
		return -errno;
	ret = vblk_open(d, (BLOCKS + 64) * PAGE + (4 << 20), 1, 128, 0);
	if (ret)
		return ret;
	if (ioctl(d->fd, VHOST_BLK_SET_DISK_IDENTITY, &ident))
		return -errno;
	return vblk_set_backend(d, *fd);
}

static void bg_read(struct bg_counters *c)
{
	c->cleaned = ts_cleaner_counter("blocks_cleaned");
	c->compacted = ts_cleaner_counter("blocks_compacted");
	c->pending = ts_cleaner_counter("blocks_pending");
}

/*
 * Switch the background worker on, working all the time at full speed (no
 * idle time asked of the guest, no rate limit), so that it races the guest.
 */
static int bg_start(enum background bg)
{
	int ret;

	ret = ts_param_set("cleaner_idle_ms", "0");
	ret = ret ?: ts_param_set("cleaner_rate_kib", "0");
	if (bg == BG_CLEANER)
		ret = ret ?: ts_param_set("cleaner", "Y");
	if (bg == BG_COMPACTOR)
		ret = ret ?: ts_param_set("compactor", "Y");
	return ret;
}

static void *flatten_thread(void *arg)
{
	struct tesseract_flatten f = { .disk_id = DISK_ID };
	struct workload *w = arg;
	int fd = open("/dev/tesseract", O_RDWR);

	if (fd < 0 || ioctl(fd, TESSERACT_FLATTEN, &f))
		w->flatten_ret = -errno;
	else
		w->flattened = f.blocks_cleaned;
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* One round of the guest: changes, swap-outs and writes. */
static int guest_round(struct workload *w, char *ram, unsigned int *s)
{
	unsigned int b, n;

	/* New contents for some pages, pushed to host swap... */
	for (n = 0; n < BLOCKS / 4; n++) {
		b = rnd(s) % BLOCKS;
		ts_fill_page(ram + b * PAGE, TAG, b, ++w->version[b]);
	}
	ts_push_to_swap(CGROUP, ram, BLOCKS * PAGE);
	/* ... then written (reconciled), with some resident ones. */
	for (n = 0; n < BLOCKS / 2; n++) {
		b = rnd(s) % BLOCKS;
		if (!(n % 8))
			ts_fill_page(ram + b * PAGE, TAG, b, ++w->version[b]);
		if (vblk_rw(&w->dev, 0, VIRTIO_BLK_T_OUT, b * SECTORS,
			    ram + b * PAGE, PAGE, 0, false))
			return -EIO;
		w->written[b] = w->version[b];
	}
	return 0;
}

/*
 * The recorded run: rounds of changes, swap-outs, writes and flushes;
 * round @bg_round starts the background work @bg, which then runs while
 * the guest goes on (flatten: for that round), until after the last.
 */
static int run_workload(struct __test_metadata *_metadata, struct workload *w,
			enum background bg, unsigned int bg_round,
			unsigned int rounds, bool direct)
{
	unsigned int s = SEED, round, i, b;
	pthread_t flattener;
	char *ram, name[80];
	bool flattening = false;
	int fd, ret;

	snprintf(name, sizeof(name), "backing=%s", w->store);
	ret = ts_swap_up(name);
	if (ret)
		return ret;
	if (ts_cgroup_enter(CGROUP) ||
	    open_guest(&w->dev, CRASH_IMAGE, direct, &fd))
		return -EIO;
	ram = vblk_alloc(&w->dev, BLOCKS * PAGE, PAGE);
	if (!ram)
		return -ENOMEM;
	for (b = 0; b < BLOCKS; b++)
		ts_fill_page(ram + b * PAGE, TAG, b, ++w->version[b]);
	crash_mark("ready");

	for (round = 1; round <= rounds; round++) {
		if (bg != BG_NONE && round == bg_round) {
			bg_read(&w->before);
			crash_mark("bg-on");
			if (bg == BG_FLATTEN) {
				if (pthread_create(&flattener, NULL,
						   flatten_thread, w))
					return -EAGAIN;
				flattening = true;
			} else if (bg_start(bg)) {
				return -EIO;
			}
		}
		ret = guest_round(w, ram, &s);
		/* Flatten runs while the guest writes this round's blocks. */
		if (flattening) {
			pthread_join(flattener, NULL);
			flattening = false;
			crash_mark("bg-done");
		}
		if (ret)
			return ret;
		/* The last round ends without a flush. */
		if (round == rounds)
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
	/* Logged to the end: the cleaner also drops the last references. */
	if (bg == BG_CLEANER || bg == BG_COMPACTOR) {
		if (ts_cleaner_wait_idle(IDLE_TIMEOUT_S))
			return -ETIMEDOUT;
		crash_mark("bg-done");
	}
	bg_read(&w->after);
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

/* What a bad block holds instead: another intact page, zeros or garbage. */
static void report_block(const struct workload *w, const char *p,
			 unsigned long long point, unsigned int b,
			 unsigned int k)
{
	const unsigned long *h = (const unsigned long *)p;
	static const char zero[PAGE];

	printf("# point %llu (after flush %u): block %u lost its data (versions %u to %u good): ",
	       point, k, b, k ? w->durable[k][b] : 0, w->version[b]);
	if (!memcmp(p, zero, PAGE))
		printf("zeros\n");
	else if (ts_check_page(p, h[0], h[1], h[2]))
		printf("intact page of tag %lx block %lu version %lu\n",
		       h[0], h[1], h[2]);
	else
		printf("garbage (%lx %lx %lx)\n", h[0], h[1], h[2]);
}

static int check_point(unsigned long long point, void *arg)
{
	struct workload *w = arg;
	unsigned int k = flushes_before(w, point), b, bad = 0;
	struct vblk_dev d;
	char *buf;
	int fd = -1, ret;

	if (ts_tool("check " CRASH_STORE_REPLAY " >/dev/null 2>&1")) {
		printf("# point %llu: tesseractctl check fails\n", point);
		return 1;
	}
	if (ts_module_load("backing=" CRASH_STORE_REPLAY)) {
		printf("# point %llu: the store does not load\n", point);
		return 1;
	}
	vblk_init(&d);
	if (open_guest(&d, CRASH_IMAGE_REPLAY, true, &fd)) {
		printf("# point %llu: the disk does not attach\n", point);
		bad = 1;
		goto out;
	}
	buf = vblk_alloc(&d, BLOCKS * PAGE, PAGE);
	ret = buf ? vblk_rw(&d, 0, VIRTIO_BLK_T_IN, 0, buf, BLOCKS * PAGE, 0,
			    false) : -ENOMEM;
	if (ret) {
		/* < 0: -errno of the guest; > 0: the request's status. */
		printf("# point %llu: the read of the disk fails: %d\n",
		       point, ret);
		bad = 1;
		goto out;
	}
	for (b = 0; b < BLOCKS; b++) {
		if (block_ok(w, buf + b * PAGE, b, k))
			continue;
		if (!bad++)
			report_block(w, buf + b * PAGE, point, b, k);
	}
	if (bad)
		printf("# point %llu: %u blocks bad\n", point, bad);
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

/*
 * Points: logreplay's (every flush and FUA) from the start mark on, plus
 * nr_random random ones, thinned out evenly to max_points; at least
 * min_checked of them must be checked.
 */
FIXTURE_VARIANT(replay) {
	enum background bg;
	unsigned int bg_round, rounds;
	bool direct;		/* O_DIRECT image during the workload */
	unsigned int nr_random, max_points, min_checked;
	/*
	 * The store on another machine: nvme or nbd (remote_target.sh); the
	 * target serves the logged store device, so the log has the writes
	 * in the order that machine's disk saw them.
	 */
	const char *remote;
	bool soak_only;		/* make soak's: make check's time is short */
	/*
	 * The share of the points above (per cent) that make check checks,
	 * for its hour; 0: all of them. make soak and the debug kernel
	 * scale all of them.
	 */
	unsigned int check_percent;
};

#ifndef CRASH_REPLAY_LOCALITY
FIXTURE_VARIANT_ADD(replay, reconcile) {
	.bg = BG_NONE,
	.rounds = ROUNDS,
	.direct = true,
	.nr_random = NR_RANDOM,
	.max_points = MAX_POINTS,
	.min_checked = 100,
	.check_percent = 60,
};

/*
 * The store over NVMe/TCP and over NBD: the transports must carry the
 * store's flushes and FUA writes to the target's disk in order. Fewer
 * points (make soak: twenty times, and NBD): what a point checks is the
 * same as above.
 */
FIXTURE_VARIANT_ADD(replay, nvme_tcp) {
	.bg = BG_NONE,
	.rounds = ROUNDS,
	.direct = true,
	.nr_random = 8,
	.max_points = 12,
	.min_checked = 10,
	.remote = "nvme",
};

FIXTURE_VARIANT_ADD(replay, nbd) {
	.bg = BG_NONE,
	.rounds = ROUNDS,
	.direct = true,
	.nr_random = 8,
	.max_points = 12,
	.min_checked = 10,
	.remote = "nbd",
	.soak_only = true,
};

#else
/* References for five rounds, then cleaned while the guest adds more. */
FIXTURE_VARIANT_ADD(replay, cleaner) {
	.bg = BG_CLEANER,
	.bg_round = 6,
	.rounds = 12,
	.nr_random = 40,
	.max_points = 80,
	.min_checked = 70,
	.check_percent = 50,
};

FIXTURE_VARIANT_ADD(replay, compactor) {
	.bg = BG_COMPACTOR,
	.bg_round = 6,
	.rounds = 12,
	.nr_random = 40,
	.max_points = 80,
	.min_checked = 70,
	.check_percent = 50,
};

/* One flatten, during a round of guest writes, and a round after it. */
FIXTURE_VARIANT_ADD(replay, flatten) {
	.bg = BG_FLATTEN,
	.bg_round = 6,
	.rounds = 7,
	/*
	 * About a third of them land in the rounds checked, a share that
	 * varies with timing (48 to 67 of 160 seen): enough to keep 50.
	 */
	.nr_random = 150,
	.max_points = 50,
	.min_checked = 30,
};
#endif

FIXTURE_SETUP(replay)
{
	int ret;

	self->w = calloc(1, sizeof(*self->w));
	ASSERT_NE(NULL, self->w);
	if (variant->soak_only && !ts_soak())
		TS_SETUP_SKIP("this variant runs in make soak");
	ts_module_ensure_unloaded();
	ts_remote_down();
	if (crash_setup() == -ENODEV)
		TS_SETUP_SKIP("dm-log-writes, dm-snapshot or the disks missing");
	snprintf(self->w->store, sizeof(self->w->store), "%s", CRASH_STORE);
	if (variant->remote) {
		ret = ts_remote_up(variant->remote, CRASH_STORE, "",
				   self->w->store, sizeof(self->w->store));
		if (ret) {
			ts_remote_down();
			crash_teardown();
		}
		if (ret > 0)
			TS_SETUP_SKIP("no network, nvmet-tcp, nbd, nvme-cli or nbd-server here");
		ASSERT_EQ(0, ret);
	}
}

FIXTURE_TEARDOWN(replay)
{
	ts_swap_down();
	ts_remote_down();
	crash_teardown();
	crash_log_free(&self->w->log);
	free(self->w);
}

/* The background work was done, and while the log was being written. */
static void check_background(struct __test_metadata *_metadata,
			     const struct workload *w, enum background bg)
{
	const struct bg_counters *b = &w->before, *a = &w->after;

	if (bg == BG_NONE)
		return;
	TH_LOG("background: cleaned %lld -> %lld, compacted %lld -> %lld",
	       b->cleaned, a->cleaned, b->compacted, a->compacted);
	TH_LOG("references %lld -> %lld; flatten cleaned %llu", b->pending,
	       a->pending, w->flattened);
	ASSERT_LE(0, b->cleaned);
	ASSERT_LE(0, a->cleaned);
	/* Nothing moved before the log's start mark for the checks. */
	EXPECT_EQ(0, b->cleaned);
	EXPECT_EQ(0, b->compacted);
	/* A test of moved references only if there were many to move. */
	EXPECT_LE((long long)BLOCKS / 4, b->pending);
	switch (bg) {
	case BG_CLEANER:
		EXPECT_LE(b->pending, a->cleaned);
		EXPECT_EQ(0, a->pending);
		break;
	case BG_COMPACTOR:
		EXPECT_LE(b->pending / 2, a->compacted);
		EXPECT_EQ(0, a->cleaned);
		break;
	case BG_FLATTEN:
		EXPECT_EQ(0, w->flatten_ret);
		EXPECT_LE((unsigned long long)b->pending / 2, w->flattened);
		break;
	default:
		break;
	}
}

TEST_F_TIMEOUT(replay, flushed_writes_survive_every_crash_point, 14400)
{
	bool scaled = ts_soak() || ts_debug_kernel();
	unsigned int percent = scaled || !variant->check_percent ? 100 :
			       variant->check_percent;
	unsigned int factor = (ts_soak() ? SOAK_FACTOR : 1) * percent;
	unsigned int divisor = (ts_debug_kernel() ? DEBUG_DIVISOR : 1) * 100;
	unsigned int max_points = variant->max_points * factor / divisor;
	unsigned int nr_random = variant->nr_random * factor / divisor;
	unsigned int min_checked = variant->min_checked * percent / divisor;
	unsigned long long *points, *keep;
	size_t n, i, kept = 0;
	long long start;
	int failed;

	ASSERT_EQ(0, run_workload(_metadata, self->w, variant->bg,
				  variant->bg_round, variant->rounds,
				  variant->direct));
	TH_LOG("%u flushes, %llu pages reconciled", self->w->flushes,
	       self->w->reconciled);
	/* A test of reconciled data only if there is some. */
	ASSERT_LT((unsigned long long)BLOCKS, self->w->reconciled);
	check_background(_metadata, self->w, variant->bg);
	/* Nothing writes the logged store from here on. */
	if (variant->remote)
		ts_remote_down();
	ASSERT_EQ(0, crash_log_stop());
	ASSERT_EQ(0, crash_log_read(&self->w->log));
	start = crash_log_find_mark(&self->w->log, variant->bg == BG_NONE ?
				    "ready" : "bg-on");
	ASSERT_LE(0, start);
	if (variant->bg != BG_NONE)
		ASSERT_LT(start, crash_log_find_mark(&self->w->log,
						     "bg-done"));

	ASSERT_EQ(0, crash_points(nr_random, SEED, &points, &n));
	/*
	 * Points from the start mark on (the formatted, loaded store; or the
	 * background work switched on); at most max_points.
	 */
	keep = calloc(n, sizeof(*keep));
	ASSERT_NE(NULL, keep);
	for (i = 0; i < n; i++)
		if (points[i] > (unsigned long long)start)
			keep[kept++] = points[i];
	if (kept > max_points) {
		for (i = 0; i < max_points; i++)
			keep[i] = keep[i * kept / max_points];
		kept = max_points;
	}
	failed = crash_check_points(keep, kept, check_point, self->w);
	printf("# crash points replayed and checked: %llu of %zu\n",
	       self->w->checked, kept);
	EXPECT_EQ(0, failed);
	EXPECT_LE(min_checked, self->w->checked);
	free(keep);
	free(points);
}

TEST_HARNESS_MAIN
