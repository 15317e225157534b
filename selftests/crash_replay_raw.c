// SPDX-License-Identifier: GPL-2.0
/*
 * The crash-replay harness on a plain workload, without tesseract: versioned
 * 4 KiB blocks written to ts-store and ts-image with O_DIRECT, a flush and a
 * mark every few writes; then, at every flush point and at random points in
 * between, the replayed disk must hold every block written before the last
 * flush exactly, and every other block either as it was at that flush or as
 * a later write left it (never anything else: no torn or stray content).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "crash_util.h"
#include "ts_util.h"

#define PAGE		4096UL
#define NR_DEVS		2
#define MAX_BLOCKS	384
#define NR_WRITES	1500
#define NR_RANDOM	60
#define SEED		20240611U

static const struct {
	const char *path;
	const char *replay;
	unsigned long tag;
	unsigned int blocks;
} devs[NR_DEVS] = {
	{ CRASH_STORE, CRASH_STORE_REPLAY, 0x5354, 128 },
	{ CRASH_IMAGE, CRASH_IMAGE_REPLAY, 0x494d, MAX_BLOCKS },
};

/*
 * What the workload did: block b of device d got version v (1, 2, ...) in
 * epoch epoch[d][b][v - 1], the number of flushes completed before the
 * write was issued. Flush k (1, 2, ...) is followed by the mark "sync-k".
 */
struct workload {
	unsigned short *epoch[NR_DEVS][MAX_BLOCKS];
	unsigned int versions[NR_DEVS][MAX_BLOCKS];
	unsigned int syncs;
	/* Per crash point: log index of each mark "sync-k" (k from 1). */
	long long *mark_index;
	void *buf;
	unsigned long long points, durable_blocks, newer_blocks;
	int bad_reported;
};

static unsigned int rnd(unsigned int *state)
{
	*state = *state * 1103515245U + 12345U;
	return (*state >> 8) & 0xffffff;
}

static int write_block(struct workload *w, int fd, unsigned int d,
		       unsigned int b, bool dsync)
{
	unsigned int v = ++w->versions[d][b];
	struct iovec iov = { w->buf, PAGE };
	unsigned short *grown;

	grown = realloc(w->epoch[d][b], v * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	w->epoch[d][b] = grown;
	grown[v - 1] = w->syncs;
	ts_fill_page(w->buf, devs[d].tag, b, v);
	if (pwritev2(fd, &iov, 1, b * PAGE, dsync ? RWF_DSYNC : 0) != PAGE)
		return -errno;
	return 0;
}

/* Flush k has completed: mark it in the log, then start epoch k. */
static int synced(struct workload *w)
{
	char name[32];

	snprintf(name, sizeof(name), "sync-%u", w->syncs + 1);
	if (crash_mark(name))
		return -EIO;
	w->syncs++;
	return 0;
}

static int run_workload(struct workload *w)
{
	unsigned int i, d, b, r, seed = SEED;
	int fds[NR_DEVS], ret = 0;

	for (d = 0; d < NR_DEVS; d++) {
		fds[d] = open(devs[d].path, O_RDWR | O_DIRECT);
		if (fds[d] < 0)
			return -errno;
	}
	for (i = 0; i < NR_WRITES && !ret; i++) {
		d = rnd(&seed) % 4 ? 1 : 0;
		b = rnd(&seed) % devs[d].blocks;
		r = rnd(&seed) % 64;
		ret = write_block(w, fds[d], d, b, r == 0);
		if (!ret && r == 0) {
			/* RWF_DSYNC: durable once it returns. */
			ret = synced(w);
		} else if (!ret && r % 12 == 1) {
			ret = fsync(fds[rnd(&seed) % NR_DEVS]) ? -errno : 0;
			ret = ret ?: synced(w);
		}
	}
	for (d = 0; d < NR_DEVS; d++)
		close(fds[d]);
	return ret;
}

/*
 * Versions block b of device d may hold after flush k: from the last one
 * written before it (0: none, the block reads as zeroes) to the last one
 * written before flush k + 1.
 */
static void allowed(const struct workload *w, unsigned int d, unsigned int b,
		    unsigned int k, unsigned int *lo, unsigned int *hi)
{
	unsigned int v, n = w->versions[d][b];

	*lo = 0;
	*hi = 0;
	for (v = 1; v <= n && w->epoch[d][b][v - 1] <= k; v++) {
		if (w->epoch[d][b][v - 1] < k)
			*lo = v;
		*hi = v;
	}
}

static bool zero_page(const unsigned long *p)
{
	size_t i;

	for (i = 0; i < PAGE / sizeof(*p); i++) {
		if (p[i])
			return false;
	}
	return true;
}

static int check_point(unsigned long long point, void *arg)
{
	struct workload *w = arg;
	unsigned int d, b, k = 0, lo, hi, v;
	const unsigned long *page;
	int fd, bad = 0;
	ssize_t n;

	/* Flushes whose mark is in the replayed part of the log. */
	while (k < w->syncs && w->mark_index[k + 1] < (long long)point)
		k++;
	w->points++;

	for (d = 0; d < NR_DEVS; d++) {
		fd = open(devs[d].replay, O_RDONLY | O_DIRECT);
		if (fd < 0) {
			fprintf(stderr, "# %s: %s\n", devs[d].replay,
				strerror(errno));
			return -1;
		}
		n = pread(fd, w->buf, devs[d].blocks * PAGE, 0);
		close(fd);
		if (n != (ssize_t)(devs[d].blocks * PAGE)) {
			fprintf(stderr, "# %s: short read\n", devs[d].replay);
			return -1;
		}
		for (b = 0; b < devs[d].blocks; b++) {
			page = (const unsigned long *)((char *)w->buf + b * PAGE);
			allowed(w, d, b, k, &lo, &hi);
			v = zero_page(page) ? 0 : page[2];
			if (v >= lo && v <= hi &&
			    (!v || ts_check_page(page, devs[d].tag, b, v))) {
				w->durable_blocks += lo > 0;
				w->newer_blocks += v > lo;
				continue;
			}
			bad++;
			if (w->bad_reported++ >= 10)
				continue;
			fprintf(stderr,
				"# point %llu (after flush %u): %s block %u holds %s %lu, expected version %u..%u\n",
				point, k, devs[d].path, b,
				!v ? "zeroes, version" :
				ts_check_page(page, devs[d].tag, b, v) ?
				"version" : "garbage, version field",
				page[2], lo, hi);
		}
	}
	return bad;
}

FIXTURE(raw) {
	struct workload w;
};

FIXTURE_SETUP(raw)
{
	int ret;

	memset(&self->w, 0, sizeof(self->w));
	ret = crash_setup();
	if (ret == -ENODEV)
		TS_SETUP_SKIP("dm-log-writes, dm-snapshot or the disks missing");
	ASSERT_EQ(0, ret);
	self->w.buf = mmap(NULL, MAX_BLOCKS * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->w.buf);
}

FIXTURE_TEARDOWN(raw)
{
	unsigned int d, b;

	crash_teardown();
	for (d = 0; d < NR_DEVS; d++) {
		for (b = 0; b < MAX_BLOCKS; b++)
			free(self->w.epoch[d][b]);
	}
	free(self->w.mark_index);
}

TEST_F_TIMEOUT(raw, flushed_blocks_survive, 600)
{
	struct workload *w = &self->w;
	unsigned long long *points;
	struct crash_log log;
	size_t n, i, flushes = 0, fuas = 0;
	char name[32];
	time_t t0 = time(NULL), t1;
	int failed;

	ASSERT_EQ(0, run_workload(w));
	ASSERT_EQ(0, crash_log_stop());
	ASSERT_EQ(0, crash_log_read(&log));
	w->mark_index = calloc(w->syncs + 2, sizeof(*w->mark_index));
	ASSERT_NE(NULL, w->mark_index);
	for (i = 1; i <= w->syncs; i++) {
		snprintf(name, sizeof(name), "sync-%zu", i);
		w->mark_index[i] = crash_log_find_mark(&log, name);
		ASSERT_LE(0, w->mark_index[i]) TH_LOG("no mark %s", name);
		ASSERT_TRUE(i == 1 || w->mark_index[i] > w->mark_index[i - 1]);
	}
	/* Past the last flush, nothing more is durable. */
	w->mark_index[w->syncs + 1] = log.n;
	for (i = 0; i < log.n; i++) {
		flushes += !!(log.entries[i].flags & CRASH_FLUSH);
		fuas += !!(log.entries[i].flags & CRASH_FUA);
	}
	t1 = time(NULL);
	TH_LOG("workload: %d writes, %u syncs, %lds; log: %zu entries, %zu FLUSH, %zu FUA",
	       NR_WRITES, w->syncs, (long)(t1 - t0), log.n, flushes, fuas);
	crash_log_free(&log);

	ASSERT_EQ(0, crash_points(NR_RANDOM, SEED, &points, &n));
	failed = crash_check_points(points, n, check_point, w);
	free(points);
	TH_LOG("checked %llu crash points (%d of them random), %d failed, %lds",
	       w->points, NR_RANDOM, failed, (long)(time(NULL) - t1));
	TH_LOG("blocks found as flushed: %llu, newer than their last flush: %llu",
	       w->durable_blocks, w->newer_blocks);
	ASSERT_EQ(0, failed);
	ASSERT_GE(w->points, (unsigned long long)w->syncs);
	/* The random points do fall between flushes. */
	EXPECT_LT(0ULL, w->newer_blocks);
}

TEST_HARNESS_MAIN
