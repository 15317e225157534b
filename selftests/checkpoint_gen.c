// SPDX-License-Identifier: GPL-2.0
/*
 * Checkpoints in place of commits too big for the journal, and which of
 * two checkpoints recovery loads.
 *
 * The store is formatted with a journal of two blocks, so that a commit of
 * more records than one journal block holds (TS_JOURNAL_RECORDS) cannot go
 * to the journal and a FLUSH writes a checkpoint of every reference
 * instead. A guest writes 256 pages the host swapped out (256 references
 * in one commit) and flushes, twice in a row: two checkpoints and no
 * journal block between them. Then a small commit that does fit the
 * journal, and another big one. Every write to the store and the image is
 * logged (dm-log-writes, crash_util.h); the disks are rebuilt at every
 * flush and FUA point and at random points in between, and at each one
 * tesseractctl check must pass, the module must load the checkpoint that
 * check says it reads, and the guest must read back what it had written
 * when its last completed FLUSH returned (or something it wrote later),
 * never anything older: an older checkpoint brings back references that
 * were dropped, onto blocks that swap may have reused since.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/tesseract_store.h>

#include "kselftest_harness.h"
#include "crash_util.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define CGROUP		"ts-ckpt-gen"
#define DISK_ID		0xc4e7ULL
#define TOKEN		"checkpoint-gen"
#define TAG		0x6e4eUL
#define BLOCKS		256U	/* a commit of them overflows the journal */
#define SMALL		16U	/* a commit of them fits */
#define FORMAT_ARGS	"--journal-blocks 2"
#define OUT		"/tmp/checkpoint_gen.out"
#define NR_RANDOM	60
#define MAX_POINTS	120
#define SEED		20261201U

/* Round r writes pages [0, pages[r - 1]) with version r, then flushes. */
static const unsigned int round_pages[] = { BLOCKS, BLOCKS, SMALL, BLOCKS };
#define ROUNDS		ARRAY_SIZE(round_pages)

/* The checkpoint tesseractctl reads, and the journal it replays after it. */
struct pick {
	int slot;
	unsigned long long seq, refs, journal;
};

struct workload {
	/* Version of each block when flush k completed (0: not written). */
	unsigned int durable[ROUNDS + 1][BLOCKS];
	unsigned int newest[BLOCKS];
	struct pick after[ROUNDS + 1];	/* on the live store, after flush k */
	long long flush_mark[ROUNDS + 1];
	unsigned long long checked;
	struct crash_log log;
	struct vblk_dev dev;		/* the guest of the recorded run */
	int image;
};

/* Run tesseractctl @cmd on @dev, output in OUT: its exit status. */
static int tool(const char *cmd, const char *dev)
{
	char args[256];

	snprintf(args, sizeof(args), "%s %s >" OUT " 2>&1", cmd, dev);
	return ts_tool(args);
}

/* The checkpoint and journal lines of check's (or dump's) output. */
static int read_pick(struct pick *p)
{
	static char buf[1 << 20];
	const char *line;
	size_t n;
	FILE *f;

	f = fopen(OUT, "r");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	line = strstr(buf, "checkpoint: slot ");
	if (!line || sscanf(line, "checkpoint: slot %d, seq %llu, %llu references",
			    &p->slot, &p->seq, &p->refs) != 3)
		return -EINVAL;
	line = strstr(buf, ", journal ");
	if (!line || sscanf(line, ", journal %llu blocks", &p->journal) != 1)
		return -EINVAL;
	return 0;
}

static void show_output(void)
{
	ts_system("sed 's/^/# /' " OUT " | head -20");
}

/*
 * The recorded run: ROUNDS rounds of page changes, swap-outs, one guest
 * write of the pages and a FLUSH, each FLUSH followed by a mark.
 */
static void run_workload(struct __test_metadata *_metadata,
			 struct workload *w)
{
	unsigned int r, b, version[BLOCKS] = { 0 };
	struct vblk_dev *dev = &w->dev;
	long long before, reconciled;
	char name[32];
	char *ram;

	ASSERT_EQ(0, ts_swap_up_with("backing=" CRASH_STORE, FORMAT_ARGS));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	w->image = open(CRASH_IMAGE, O_RDWR | O_DIRECT);
	ASSERT_LE(0, w->image);
	/* The replayed image is another device: the token names the disk. */
	ASSERT_EQ(0, vblk_open_disk_token(dev, BLOCKS * PAGE + (4 << 20),
					  w->image, DISK_ID, TOKEN));
	ram = vblk_alloc(dev, BLOCKS * PAGE, PAGE);
	ASSERT_NE(NULL, ram);
	ASSERT_EQ(0, crash_mark("ready"));

	for (r = 1; r <= ROUNDS; r++) {
		for (b = 0; b < round_pages[r - 1]; b++) {
			ts_fill_page(ram + b * PAGE, TAG, b, r);
			version[b] = r;
		}
		ts_push_to_swap(CGROUP, ram, round_pages[r - 1] * PAGE);
		before = ts_vhost_counter("reconciled_pages");
		ASSERT_EQ(0, vblk_io_pages(dev, VIRTIO_BLK_T_OUT, 0, ram,
					   round_pages[r - 1], false));
		reconciled = ts_vhost_counter("reconciled_pages") - before;
		/* Each reconciled page is a record of the round's commit. */
		if (round_pages[r - 1] == BLOCKS)
			ASSERT_LT((long long)TS_JOURNAL_RECORDS, reconciled)
				TH_LOG("round %u: only %lld of %u pages reconciled",
				       r, reconciled, BLOCKS);
		ASSERT_EQ(0, vblk_rw(dev, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0,
				     0, false));
		memcpy(w->durable[r], version, sizeof(version));
		snprintf(name, sizeof(name), "flush-%u", r);
		ASSERT_EQ(0, crash_mark(name));
		/* dump reads a device in use: what the FLUSH left. */
		ASSERT_EQ(0, tool("dump", CRASH_STORE)) show_output();
		ASSERT_EQ(0, read_pick(&w->after[r])) show_output();
		TH_LOG("flush %u: checkpoint slot %d seq %llu, %llu refs, journal %llu blocks",
		       r, w->after[r].slot, w->after[r].seq,
		       w->after[r].refs, w->after[r].journal);
	}
	memcpy(w->newest, version, sizeof(version));
	/* Nothing may hold the store or the image when the log stops. */
	vblk_close(dev);
	close(w->image);
	w->image = -1;
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/* Flushes completed before crash point @point (log entries 0..point-1). */
static unsigned int flushes_before(const struct workload *w,
				   unsigned long long point)
{
	unsigned int k = 0;

	while (k < ROUNDS && w->flush_mark[k + 1] >= 0 &&
	       (unsigned long long)w->flush_mark[k + 1] < point)
		k++;
	return k;
}

/* The version block @b holds in @p, or 0 for zeros, or -1 for neither. */
static int version_of(const char *p, unsigned int b)
{
	static const char zero[PAGE];
	unsigned int v;

	if (!memcmp(p, zero, PAGE))
		return 0;
	for (v = 1; v <= ROUNDS; v++)
		if (ts_check_page(p, TAG, b, v))
			return v;
	return -1;
}

static int check_point(unsigned long long point, void *arg)
{
	struct workload *w = arg;
	unsigned int k = flushes_before(w, point), b, bad = 0;
	struct vblk_dev d;
	char needle[128];
	struct pick pick;
	int fd = -1, kmsg, st, v;
	char *buf;

	st = tool("check", CRASH_STORE_REPLAY);
	if (st || read_pick(&pick)) {
		printf("# point %llu (after flush %u): tesseractctl check exits %d\n",
		       point, k, st);
		show_output();
		return 1;
	}
	kmsg = ts_kmsg_open();
	if (ts_module_load("backing=" CRASH_STORE_REPLAY)) {
		printf("# point %llu (after flush %u): the store does not load\n",
		       point, k);
		ts_system("dmesg | grep tesseract: | tail -2 | sed 's/^/# /'");
		close(kmsg);
		return 1;
	}
	snprintf(needle, sizeof(needle), "checkpoint %llu in slot %d,",
		 pick.seq, pick.slot);
	if (!ts_kmsg_contains(kmsg, needle)) {
		printf("# point %llu (after flush %u): check reads slot %d seq %llu, the module:\n",
		       point, k, pick.slot, pick.seq);
		ts_system("dmesg | grep 'store on' | tail -1 | sed 's/^/# /'");
		bad++;
	}
	close(kmsg);

	vblk_init(&d);
	fd = open(CRASH_IMAGE_REPLAY, O_RDWR | O_DIRECT);
	if (fd < 0 || vblk_open_disk_token(&d, BLOCKS * PAGE + (4 << 20), fd,
					   DISK_ID, TOKEN)) {
		printf("# point %llu: the disk does not attach\n", point);
		bad++;
		goto out;
	}
	buf = vblk_alloc(&d, BLOCKS * PAGE, PAGE);
	if (!buf || vblk_io_pages(&d, VIRTIO_BLK_T_IN, 0, buf, BLOCKS,
				  false)) {
		printf("# point %llu: the disk cannot be read\n", point);
		bad++;
		goto out;
	}
	/* What flush k made durable, or anything written later. */
	for (b = 0; b < BLOCKS; b++) {
		v = version_of(buf + b * PAGE, b);
		if (v >= (int)w->durable[k][b] &&
		    v <= (int)w->newest[b] && (v || !w->durable[k][b]))
			continue;
		if (bad++)
			continue;
		printf("# point %llu (after flush %u, checkpoint slot %d seq %llu):\n",
		       point, k, pick.slot, pick.seq);
		printf("# block %u holds %s %d, flushed version %u\n", b,
		       v < 0 ? "garbage" : "version", v, w->durable[k][b]);
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

static int cmp_ull(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a;
	unsigned long long y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

FIXTURE(gen) {
	struct workload *w;
};

FIXTURE_SETUP(gen)
{
	self->w = calloc(1, sizeof(*self->w));
	ASSERT_NE(NULL, self->w);
	vblk_init(&self->w->dev);
	self->w->image = -1;
	ts_module_ensure_unloaded();
	if (crash_setup() == -ENODEV)
		TS_SETUP_SKIP("dm-log-writes, dm-snapshot or the disks missing");
}

FIXTURE_TEARDOWN(gen)
{
	vblk_close(&self->w->dev);
	if (self->w->image >= 0)
		close(self->w->image);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	crash_teardown();
	crash_log_free(&self->w->log);
	free(self->w);
}

TEST_F_TIMEOUT(gen, newest_checkpoint_survives_every_crash_point, 1800)
{
	struct workload *w = self->w;
	unsigned long long *points, *keep;
	const struct pick *a = w->after;
	size_t n, i, kept = 0;
	long long ready;
	unsigned int k;
	int failed;

	run_workload(_metadata, w);

	/*
	 * Big commits became checkpoints, each newer than the one before
	 * and in the other slot; the small one went to the journal.
	 */
	for (k = 1; k <= ROUNDS; k++) {
		EXPECT_EQ(round_pages[k - 1] == BLOCKS ? 0ULL : 1ULL,
			  a[k].journal);
		if (k == 1 || round_pages[k - 1] != BLOCKS)
			continue;
		EXPECT_LT(a[k - 1].seq, a[k].seq);
		EXPECT_NE(a[k - 1].slot, a[k].slot);
	}

	ASSERT_EQ(0, crash_log_stop());
	ASSERT_EQ(0, crash_log_read(&w->log));
	ready = crash_log_find_mark(&w->log, "ready");
	ASSERT_LE(0, ready);
	for (k = 1; k <= ROUNDS; k++) {
		char name[32];

		snprintf(name, sizeof(name), "flush-%u", k);
		w->flush_mark[k] = crash_log_find_mark(&w->log, name);
		ASSERT_LT(ready, w->flush_mark[k]);
	}

	/*
	 * logreplay's points (every flush and FUA) and random ones after
	 * the store was loaded, thinned out to MAX_POINTS, and the moments
	 * each FLUSH had completed: up to its mark.
	 */
	ASSERT_EQ(0, crash_points(NR_RANDOM, SEED, &points, &n));
	keep = calloc(n + ROUNDS, sizeof(*keep));
	ASSERT_NE(NULL, keep);
	for (i = 0; i < n; i++)
		if (points[i] > (unsigned long long)ready)
			keep[kept++] = points[i];
	if (kept > MAX_POINTS) {
		for (i = 0; i < MAX_POINTS; i++)
			keep[i] = keep[i * kept / MAX_POINTS];
		kept = MAX_POINTS;
	}
	for (k = 1; k <= ROUNDS; k++)
		keep[kept++] = w->flush_mark[k] + 1;
	qsort(keep, kept, sizeof(*keep), cmp_ull);
	for (i = n = 0; i < kept; i++)
		if (!n || keep[i] != keep[n - 1])
			keep[n++] = keep[i];
	kept = n;

	failed = crash_check_points(keep, kept, check_point, w);
	printf("# crash points replayed and checked: %llu of %zu\n",
	       w->checked, kept);
	EXPECT_EQ(0, failed);
	EXPECT_EQ(kept, w->checked);
	free(keep);
	free(points);
}

TEST_HARNESS_MAIN
