// SPDX-License-Identifier: GPL-2.0
/*
 * Locality recovery in the background: the cleaner copies referenced
 * blocks back into the guest image and drops the references, the compactor
 * rewrites a disk's referenced blocks into store blocks in guest order.
 * Neither may ever change what the guest reads, also while the guest
 * writes, discards, zeroes and reads the very blocks they are moving, and
 * both obey their knobs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define CGROUP		"ts-locality"
#define DISK		"/dev/vda"
#define DISK_ID		0x10ca1ULL
#define PAGES		512UL		/* 2 MiB of references */
/* Disk range the tests use, dropped (discarded) at teardown. */
#define DISK_SECTORS	(64UL << 11)	/* 64 MiB */
#define RACE_THREADS	3		/* on queues 1 to 3; 0 is ours */
#define NQUEUES		(RACE_THREADS + 1)
#define TRACING		"/sys/kernel/debug/tracing"
#define STORE_READ	TRACING "/events/tesseract/tesseract_store_read"

FIXTURE(loc) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
};

FIXTURE_SETUP(loc)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	/* Work at once and at full speed unless a test says otherwise. */
	ASSERT_EQ(0, ts_param_set("cleaner_idle_ms", "0"));
	ASSERT_EQ(0, ts_param_set("cleaner_rate_kib", "0"));
	/* Guest RAM is charged to the group that first touches it. */
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk_mq(&self->dev,
				       3 * PAGES * PAGE + (8 << 20), NQUEUES,
				       self->disk_fd, DISK_ID));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
	ASSERT_EQ(0, vblk_prepare_queues(&self->dev));
}

FIXTURE_TEARDOWN(loc)
{
	ts_param_set("cleaner", "N");
	ts_param_set("compactor", "N");
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/* The guest RAM page disk block @b is written from: scattered if asked. */
static size_t source_page(size_t b, bool scatter)
{
	/* 167 is prime to PAGES: a permutation with no two pages adjacent. */
	return scatter ? b * 167 % PAGES : b;
}

/*
 * Guest RAM pages (tag, page index, 1) pushed out to host swap and written
 * by the guest to disk blocks 0 to PAGES - 1: all of them references.
 * Scattered, block b comes from a page far from that of block b + 1, so
 * that the store blocks of the disk's run are out of guest order.
 */
static void make_references(struct __test_metadata *_metadata,
			    struct vblk_dev *d, char *buf, unsigned long tag,
			    bool scatter)
{
	size_t b;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, buf, PAGES, tag, 1));
	if (scatter) {
		for (b = 0; b < PAGES; b++)
			ASSERT_EQ(0, vblk_rw(d, 0, VIRTIO_BLK_T_OUT,
					     b * SECTORS,
					     buf + source_page(b, true) * PAGE,
					     PAGE, 0, false));
	} else {
		ASSERT_EQ(0, vblk_io_pages(d, VIRTIO_BLK_T_OUT, 0, buf, PAGES,
					   false));
	}
	ASSERT_EQ((long long)PAGES, ts_vhost_counter("pages_referenced"));
}

/* Disk blocks (from 0) that do not hold what make_references() wrote. */
static size_t bad_blocks(const char *p, size_t blocks, unsigned long tag,
			 bool scatter)
{
	size_t b, bad = 0;

	for (b = 0; b < blocks; b++)
		bad += !ts_check_page(p + b * PAGE, tag,
				      source_page(b, scatter), 1);
	return bad;
}

/* Read disk blocks [0, blocks) through the module into @p. */
static int guest_read(struct vblk_dev *d, char *p, size_t blocks)
{
	return vblk_io_pages(d, VIRTIO_BLK_T_IN, 0, p, blocks, false);
}

/*
 * Read [0, len) of the image itself, bypassing the module and the page
 * cache: what the disk holds without its references. 0 or -errno.
 */
static int image_read(void *p, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(DISK, O_RDONLY | O_DIRECT);
	if (fd < 0)
		return -errno;
	n = pread(fd, p, len, 0);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/*
 * The counters of our disk, three ways (TESSERACT_DISK_INFO, the disks
 * line, the vhost device), and the global ones, which only this disk
 * moves: all agree with the expected values.
 */
static void expect_counters(struct __test_metadata *_metadata,
			    long long references, long long cleaned,
			    long long compacted, long long moved)
{
	struct tesseract_disk_info info;

	ASSERT_EQ(0, ts_disk_info(DISK_ID, &info));
	EXPECT_NE(0ULL, info.flags & TESSERACT_DISK_ATTACHED);
	EXPECT_EQ(references, (long long)info.references);
	EXPECT_EQ(cleaned, (long long)info.blocks_cleaned);
	EXPECT_EQ(compacted, (long long)info.blocks_compacted);
	EXPECT_EQ(moved, (long long)info.bytes_moved);

	EXPECT_EQ(1, ts_debugfs_disk(DISK_ID, "attached"));
	EXPECT_EQ(references, ts_debugfs_disk(DISK_ID, "references"));
	EXPECT_EQ(cleaned, ts_debugfs_disk(DISK_ID, "cleaned"));
	EXPECT_EQ(compacted, ts_debugfs_disk(DISK_ID, "compacted"));
	EXPECT_EQ(moved, ts_debugfs_disk(DISK_ID, "bytes_moved"));

	EXPECT_EQ(references, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ(references, ts_cleaner_counter("blocks_pending"));
	EXPECT_EQ(cleaned, ts_cleaner_counter("blocks_cleaned"));
	EXPECT_EQ(compacted, ts_cleaner_counter("blocks_compacted"));
	EXPECT_EQ(moved, ts_cleaner_counter("bytes_moved"));
}

/*
 * The cleaner copies every referenced block into the image and drops its
 * reference: the image alone then holds what the guest wrote.
 */
TEST_F_TIMEOUT(loc, cleaner_copies_back_and_drops_references, 300)
{
	char *image;

	ASSERT_EQ(0, posix_memalign((void **)&image, PAGE, PAGES * PAGE));
	make_references(_metadata, &self->dev, self->buf, 1, false);
	/* Referenced, the data is not in the image: the check below can fail. */
	ASSERT_EQ(0, image_read(image, PAGES * PAGE));
	EXPECT_EQ(PAGES, bad_blocks(image, PAGES, 1, false));
	expect_counters(_metadata, PAGES, 0, 0, 0);

	ASSERT_EQ(0, ts_param_set("cleaner", "Y"));
	ASSERT_EQ(0, ts_cleaner_wait_idle(120));
	expect_counters(_metadata, 0, PAGES, 0, PAGES * PAGE);

	ASSERT_EQ(0, guest_read(&self->dev, self->check, PAGES));
	EXPECT_EQ(0UL, bad_blocks(self->check, PAGES, 1, false));
	ASSERT_EQ(0, image_read(image, PAGES * PAGE));
	EXPECT_EQ(0UL, bad_blocks(image, PAGES, 1, false));
	free(image);
}

/*
 * Read disk blocks [0, PAGES) with tesseract_store_read on: the store
 * block each came from, into @sb (-1: not from the store). Returns the
 * number of store I/Os, or -errno.
 */
static int trace_store_reads(struct vblk_dev *d, char *p, long long *sb)
{
	unsigned long long disk, block;
	unsigned int store_block, nr, i;
	char line[512], *ev;
	int ret, ios = 0;
	size_t b;
	FILE *f;

	for (b = 0; b < PAGES; b++)
		sb[b] = -1;
	ts_write_str(STORE_READ "/enable", "1");
	/* Opened for writing with O_TRUNC, the trace buffer empties. */
	f = fopen(TRACING "/trace", "w");
	if (f)
		fclose(f);
	ret = guest_read(d, p, PAGES);
	ts_write_str(STORE_READ "/enable", "0");
	if (ret)
		return ret < 0 ? ret : -EIO;
	f = fopen(TRACING "/trace", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		ev = strstr(line, "tesseract_store_read: ");
		/* @nr disk blocks from @block, store blocks in a row. */
		if (!ev || sscanf(ev + strlen("tesseract_store_read: "),
				  "disk=%llx block=%llu store_block=%u nr=%u",
				  &disk, &block, &store_block, &nr) != 4 ||
		    disk != DISK_ID)
			continue;
		ios++;
		for (i = 0; i < nr && block + i < PAGES; i++)
			sb[block + i] = store_block + i;
	}
	fclose(f);
	return ios;
}

/* Adjacent disk blocks whose store blocks are not adjacent too. */
static size_t discontinuities(const long long *sb)
{
	size_t b, n = 0;

	for (b = 1; b < PAGES; b++)
		n += sb[b - 1] < 0 || sb[b] != sb[b - 1] + 1;
	return n;
}

/*
 * Locality recovery moves runs of at most 64 referenced blocks (256 KiB,
 * Documentation/design.rst); a compacted run is one store I/O.
 */
#define RUN_MAX		64

/*
 * The compactor rewrites a scattered run of references into store blocks
 * in guest order; the references stay, the data does not change, and a
 * sequential read of the run reads the store sequentially.
 */
TEST_F_TIMEOUT(loc, compactor_puts_references_in_guest_order, 300)
{
	long long *sb = calloc(PAGES, sizeof(*sb)), compacted;
	size_t before, after;
	int ios_before, ios_after;

	ASSERT_NE(NULL, sb);
	make_references(_metadata, &self->dev, self->buf, 2, true);
	ios_before = trace_store_reads(&self->dev, self->check, sb);
	ASSERT_LT(0, ios_before);
	EXPECT_EQ(0UL, bad_blocks(self->check, PAGES, 2, true));
	before = discontinuities(sb);
	/* Out of order to start with: the checks below can fail. */
	ASSERT_LT(PAGES / 2, before);
	ASSERT_LT((int)(PAGES / 2), ios_before);

	ASSERT_EQ(0, ts_param_set("compactor", "Y"));
	ASSERT_EQ(0, ts_cleaner_wait_idle(120));
	compacted = ts_cleaner_counter("blocks_compacted");
	/* Every block was out of order, so every block moved, once. */
	EXPECT_EQ((long long)PAGES, compacted);
	expect_counters(_metadata, PAGES, 0, compacted, compacted * PAGE);

	ios_after = trace_store_reads(&self->dev, self->check, sb);
	EXPECT_EQ(0UL, bad_blocks(self->check, PAGES, 2, true));
	after = discontinuities(sb);
	TH_LOG("store discontinuities, store reads: %zu, %d before; %zu, %d after",
	       before, ios_before, after, ios_after);
	/* In order within each run; runs may land apart. */
	EXPECT_GE(PAGES / RUN_MAX - 1, after);
	EXPECT_EQ((int)(PAGES / RUN_MAX), ios_after);
	/* Nothing more to do, however long it runs. */
	ASSERT_EQ(0, ts_cleaner_wait_idle(120));
	EXPECT_EQ(compacted, ts_cleaner_counter("blocks_compacted"));
	free(sb);
}

/* With both on, the cleaner wins: blocks are cleaned, not compacted. */
TEST_F_TIMEOUT(loc, cleaner_wins_over_compactor, 300)
{
	make_references(_metadata, &self->dev, self->buf, 3, true);
	ASSERT_EQ(0, ts_param_set("compactor", "Y"));
	ASSERT_EQ(0, ts_param_set("cleaner", "Y"));
	ASSERT_EQ(0, ts_cleaner_wait_idle(120));
	/* The compactor may have started first: only what it left matters. */
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ((long long)PAGES, ts_cleaner_counter("blocks_cleaned"));
	ASSERT_EQ(0, guest_read(&self->dev, self->check, PAGES));
	EXPECT_EQ(0UL, bad_blocks(self->check, PAGES, 3, true));
}

/*
 * Races: guest threads write (whole blocks from swapped-out pages, so that
 * new references keep coming, and parts of blocks), discard, write-zeroes
 * and read a small range that the cleaner or the compactor keeps working
 * on. Each block has a lock that the guest threads take around their own
 * requests only, so that the model of what the guest wrote last is exact;
 * the background worker takes no part in it. Every read, during the run
 * and at the end, must agree with the model in every sector the model
 * defines (a discarded sector is undefined until written again).
 */
#define RACE_BLOCKS	64
#define RACE_ROUNDS	300
#define RACE_BATCH	8		/* swapped-out pages per round */
#define RACE_SCRATCH	4		/* pages for partial writes and reads */
#define RACE_TAG	0x1ace

struct race {
	struct vblk_dev *dev;
	char *model;			/* RACE_BLOCKS pages */
	bool defined[RACE_BLOCKS * SECTORS];
	pthread_mutex_t lock[RACE_BLOCKS];
	atomic_ulong version;
	atomic_ulong errors;		/* requests that failed */
	atomic_ulong mismatches;	/* sectors read back wrong */
	atomic_ulong reads;		/* sectors compared */
};

struct racer {
	struct race *r;
	unsigned int qi;
	unsigned long seed;
	char *pool, *scratch;		/* in guest RAM */
	pthread_t thread;
};

static unsigned long rnd(unsigned long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Lock the blocks of sectors [sector, sector + n), in order. */
static void lock_range(struct race *r, unsigned long sector, unsigned long n,
		       bool lock)
{
	unsigned long b;

	for (b = sector / SECTORS; b <= (sector + n - 1) / SECTORS; b++) {
		if (lock)
			pthread_mutex_lock(&r->lock[b]);
		else
			pthread_mutex_unlock(&r->lock[b]);
	}
}

/* Compare what was read of [sector, sector + n) with the model. */
static void race_compare(struct racer *t, const char *got,
			 unsigned long sector, unsigned long n)
{
	struct race *r = t->r;
	unsigned long s;

	for (s = sector; s < sector + n; s++) {
		if (!r->defined[s])
			continue;
		atomic_fetch_add(&r->reads, 1);
		if (!memcmp(got + (s - sector) * 512, r->model + s * 512, 512))
			continue;
		if (atomic_fetch_add(&r->mismatches, 1) < 8)
			printf("# queue %u: block %lu sector %lu: %lx, not %lx\n",
			       t->qi, s / SECTORS, s % SECTORS,
			       *(const unsigned long *)(got + (s - sector) * 512),
			       *(const unsigned long *)(r->model + s * 512));
	}
}

static void race_request(struct racer *t, int status)
{
	if (status && atomic_fetch_add(&t->r->errors, 1) < 8)
		printf("# queue %u: request failed: %d\n", t->qi, status);
}

/* A whole block from a page of the pool, most likely swapped out. */
static void race_write_block(struct racer *t, unsigned long b, char *page,
			     unsigned long version)
{
	struct race *r = t->r;
	int status;

	pthread_mutex_lock(&r->lock[b]);
	status = vblk_rw(r->dev, t->qi, VIRTIO_BLK_T_OUT, b * SECTORS, page,
			 PAGE, 0, false);
	race_request(t, status);
	if (!status) {
		/* From the pattern, not the page: reading it would swap it in. */
		ts_fill_page(r->model + b * PAGE, RACE_TAG + t->qi, b, version);
		memset(&r->defined[b * SECTORS], true, SECTORS);
	}
	pthread_mutex_unlock(&r->lock[b]);
}

/* One request other than a whole-block write, on up to two blocks. */
static void race_other(struct racer *t)
{
	unsigned long op = rnd(&t->seed) % 8, n, s, i;
	struct race *r = t->r;
	__u32 type;
	char *p;
	int status;

	/* Start anywhere in a block, end anywhere in it or the next. */
	s = rnd(&t->seed) % ((RACE_BLOCKS - 1) * SECTORS);
	n = 1 + rnd(&t->seed) % (2 * SECTORS - s % SECTORS);
	lock_range(r, s, n, true);
	switch (op) {
	case 0:
	case 1:
		/* A partial write, from a buffer not always page aligned. */
		p = t->scratch + (op ? 0 : 512 * (1 + rnd(&t->seed) % 7));
		for (i = 0; i < n * 512 / sizeof(long); i++)
			((unsigned long *)p)[i] = rnd(&t->seed);
		status = vblk_rw(r->dev, t->qi, VIRTIO_BLK_T_OUT, s, p,
				 n * 512, 0, false);
		if (!status) {
			memcpy(r->model + s * 512, p, n * 512);
			memset(&r->defined[s], true, n);
		}
		break;
	case 2:
	case 3:
		type = op == 2 ? VIRTIO_BLK_T_WRITE_ZEROES :
				 VIRTIO_BLK_T_DISCARD;
		status = vblk_discard_q(r->dev, t->qi, type, s, n,
					op == 2 && (s & 1) ?
					VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
		if (!status) {
			memset(r->model + s * 512, 0, n * 512);
			memset(&r->defined[s], type == VIRTIO_BLK_T_WRITE_ZEROES,
			       n);
		}
		break;
	case 4:
		status = vblk_rw(r->dev, t->qi, VIRTIO_BLK_T_FLUSH, 0, NULL, 0,
				 0, false);
		break;
	default:
		status = vblk_rw(r->dev, t->qi, VIRTIO_BLK_T_IN, s,
				 t->scratch, n * 512, 0, false);
		if (!status)
			race_compare(t, t->scratch, s, n);
		break;
	}
	race_request(t, status);
	lock_range(r, s, n, false);
}

static void *racer_thread(void *arg)
{
	unsigned long blocks[RACE_BATCH], versions[RACE_BATCH];
	struct racer *t = arg;
	unsigned int round, i;

	for (round = 0; round < RACE_ROUNDS; round++) {
		for (i = 0; i < RACE_BATCH; i++) {
			blocks[i] = rnd(&t->seed) % RACE_BLOCKS;
			versions[i] = atomic_fetch_add(&t->r->version, 1) + 1;
			ts_fill_page(t->pool + i * PAGE, RACE_TAG + t->qi,
				     blocks[i], versions[i]);
		}
		/* Out to swap, so that the writes become references. */
		madvise(t->pool, RACE_BATCH * PAGE, MADV_PAGEOUT);
		if (!(round % 4))
			ts_cgroup_write(CGROUP, "memory.reclaim", "2M");
		for (i = 0; i < RACE_BATCH; i++) {
			race_write_block(t, blocks[i], t->pool + i * PAGE,
					 versions[i]);
			race_other(t);
		}
	}
	return NULL;
}

/* All of the race's range, read through the module, against the model. */
static void race_check_all(struct racer *t, char *p)
{
	race_request(t, vblk_rw(t->r->dev, 0, VIRTIO_BLK_T_IN, 0, p,
				RACE_BLOCKS * PAGE, 0, false));
	race_compare(t, p, 0, RACE_BLOCKS * SECTORS);
}

static void race(struct __test_metadata *_metadata, struct vblk_dev *d,
		 char *buf, char *check, const char *worker)
{
	struct racer t[RACE_THREADS + 1] = { 0 };
	unsigned long seed = time(NULL), i;
	long long reconciled, cleaned, compacted;
	struct race *r;
	char *image;

	r = calloc(1, sizeof(*r));
	ASSERT_NE(NULL, r);
	r->model = calloc(RACE_BLOCKS, PAGE);
	ASSERT_NE(NULL, r->model);
	ASSERT_EQ(0, posix_memalign((void **)&image, PAGE, RACE_BLOCKS * PAGE));
	r->dev = d;
	for (i = 0; i < RACE_BLOCKS; i++)
		pthread_mutex_init(&r->lock[i], NULL);
	TH_LOG("seed %lu, %s", seed, worker);
	/* The model starts defined: all blocks written, all resident. */
	ts_fill_pages(r->model, RACE_BLOCKS, RACE_TAG, 0);
	memcpy(buf, r->model, RACE_BLOCKS * PAGE);
	memset(r->defined, true, sizeof(r->defined));
	ASSERT_EQ(0, vblk_rw(d, 0, VIRTIO_BLK_T_OUT, 0, buf,
			     RACE_BLOCKS * PAGE, 0, false));

	ASSERT_EQ(0, ts_param_set(worker, "Y"));
	for (i = 0; i <= RACE_THREADS; i++) {
		t[i].r = r;
		t[i].qi = i;
		t[i].seed = seed * (i + 1) | 1;
		t[i].pool = buf + i * (RACE_BATCH + RACE_SCRATCH) * PAGE;
		t[i].scratch = t[i].pool + RACE_BATCH * PAGE;
	}
	for (i = 1; i <= RACE_THREADS; i++)
		ASSERT_EQ(0, pthread_create(&t[i].thread, NULL, racer_thread,
					    &t[i]));
	for (i = 1; i <= RACE_THREADS; i++)
		pthread_join(t[i].thread, NULL);
	reconciled = ts_vhost_counter("reconciled_pages");
	/* Partial writes over references count as cleaned: not the worker. */
	cleaned = ts_cleaner_counter("blocks_cleaned") -
		  ts_vhost_counter("merged_blocks");
	compacted = ts_cleaner_counter("blocks_compacted");
	/* Once during the run, once after the worker is done. */
	race_check_all(&t[0], check);
	ASSERT_EQ(0, ts_cleaner_wait_idle(120));
	race_check_all(&t[0], check);

	TH_LOG("%lu sectors compared, %lld pages reconciled, %lld merged",
	       atomic_load(&r->reads), reconciled,
	       ts_vhost_counter("merged_blocks"));
	TH_LOG("during the run, the worker cleaned %lld blocks, compacted %lld",
	       cleaned, compacted);
	EXPECT_EQ(0UL, atomic_load(&r->errors));
	EXPECT_EQ(0UL, atomic_load(&r->mismatches));
	/* New references kept coming, and the worker raced with them. */
	EXPECT_LT((long long)RACE_THREADS * RACE_ROUNDS, reconciled);
	if (!strcmp(worker, "cleaner")) {
		EXPECT_LT(0, cleaned);
		/* All clean: the image alone holds what the guest wrote. */
		EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
		EXPECT_EQ(0, ts_cleaner_counter("blocks_pending"));
		ASSERT_EQ(0, image_read(image, RACE_BLOCKS * PAGE));
		i = atomic_load(&r->mismatches);
		race_compare(&t[0], image, 0, RACE_BLOCKS * SECTORS);
		EXPECT_EQ(i, atomic_load(&r->mismatches))
			TH_LOG("the image alone is wrong");
	} else {
		EXPECT_LT(0, compacted);
	}
	free(image);
	free(r->model);
	free(r);
}

TEST_F_TIMEOUT(loc, guest_races_cleaner, 900)
{
	race(_metadata, &self->dev, self->buf, self->check, "cleaner");
}

TEST_F_TIMEOUT(loc, guest_races_compactor, 900)
{
	race(_metadata, &self->dev, self->buf, self->check,
	     "compactor");
}

/*
 * cleaner_idle_ms: a guest that never pauses that long keeps its
 * references; once it goes quiet, they are cleaned, not sooner than
 * cleaner_idle_ms after its last request.
 */
#define IDLE_MS		4000
#define BUSY_SECONDS	8

TEST_F_TIMEOUT(loc, cleaner_waits_for_an_idle_disk, 300)
{
	double end, last = 0, first_cleaned = 0;
	char ms[16];

	make_references(_metadata, &self->dev, self->buf, 4, false);
	snprintf(ms, sizeof(ms), "%d", IDLE_MS);
	ASSERT_EQ(0, ts_param_set("cleaner_idle_ms", ms));
	ASSERT_EQ(0, ts_param_set("cleaner", "Y"));
	/* Busy: a read of some other block every 20 ms. */
	for (end = ts_now() + BUSY_SECONDS; ts_now() < end;) {
		last = ts_now();
		ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN,
				     2 * PAGES * SECTORS, self->check, PAGE, 0,
				     false));
		usleep(20000);
	}
	EXPECT_EQ(0, ts_cleaner_counter("blocks_cleaned"));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("pages_referenced"));

	/* Quiet now. */
	for (end = ts_now() + 120; ts_now() < end;) {
		if (!first_cleaned && ts_cleaner_counter("blocks_cleaned") > 0)
			first_cleaned = ts_now();
		if (!ts_vhost_counter("pages_referenced"))
			break;
		usleep(50000);
	}
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	ASSERT_NE(0, first_cleaned);
	TH_LOG("first blocks cleaned %.2f s after the last request",
	       first_cleaned - last);
	EXPECT_LE(IDLE_MS * 0.9 / 1000, first_cleaned - last);
	ASSERT_EQ(0, guest_read(&self->dev, self->check, PAGES));
	EXPECT_EQ(0UL, bad_blocks(self->check, PAGES, 4, false));
}

/*
 * cleaner_rate_kib bounds the data moved per second. Only an upper bound
 * is checked, which a slow (emulated) machine cannot break: the worker
 * moves a run, then waits for as long as the run takes at the rate, so
 * one run more than the rate allows may have moved.
 */
#define RATE_KIB	64

TEST_F_TIMEOUT(loc, cleaner_rate_is_limited, 300)
{
	double t0, t1, end;
	long long moved;
	char kib[16];

	make_references(_metadata, &self->dev, self->buf, 5, false);
	snprintf(kib, sizeof(kib), "%d", RATE_KIB);
	ASSERT_EQ(0, ts_param_set("cleaner_rate_kib", kib));
	t0 = ts_now();
	ASSERT_EQ(0, ts_param_set("cleaner", "Y"));
	sleep(4);
	moved = ts_cleaner_counter("bytes_moved");
	t1 = ts_now();
	TH_LOG("%lld KiB moved in %.2f s at %d KiB/s", moved >> 10, t1 - t0,
	       RATE_KIB);
	EXPECT_GE((t1 - t0) * RATE_KIB * 1024 + RUN_MAX * PAGE, moved);
	/* Slow, but moving. */
	for (end = ts_now() + 60; ts_now() < end && moved <= 0;) {
		usleep(100000);
		moved = ts_cleaner_counter("bytes_moved");
	}
	EXPECT_LT(0, moved);
	/* Unlimited, the rest goes at once. */
	ASSERT_EQ(0, ts_param_set("cleaner_rate_kib", "0"));
	ASSERT_EQ(0, ts_cleaner_wait_idle(120));
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ((long long)(PAGES * PAGE), ts_cleaner_counter("bytes_moved"));
	ASSERT_EQ(0, guest_read(&self->dev, self->check, PAGES));
	EXPECT_EQ(0UL, bad_blocks(self->check, PAGES, 5, false));
}

/* The nice of the kthread tesseract-clean, or 100 if not found. */
static int cleaner_nice(void)
{
	char path[300], comm[32], stat[1024], *p;
	int nice = 100, i;
	struct dirent *e;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return nice;
	while ((e = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		/* The name is cut to 15 characters. */
		if (ts_read_str(path, comm, sizeof(comm)) ||
		    strncmp(comm, "tesseract-clean", 15))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (ts_read_str(path, stat, sizeof(stat)))
			continue;
		/* Field 19; fields 3 to 18 follow the ") ". */
		p = strrchr(stat, ')');
		for (i = 0; p && i < 17; i++)
			p = strchr(p + 1, ' ');
		if (p)
			nice = atoi(p + 1);
	}
	closedir(d);
	return nice;
}

/* cleaner_nice: -20 to 19, applied to the kthread; others refused. */
TEST_F(loc, cleaner_nice_is_checked_and_applied)
{
	static const char * const bad[] = { "20", "-21", "100" };
	char val[32];
	double end;
	size_t i;
	int kmsg;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		kmsg = ts_kmsg_open();
		ASSERT_LE(0, kmsg);
		EXPECT_EQ(-EINVAL, ts_param_set("cleaner_nice", bad[i]))
			TH_LOG("cleaner_nice=%s", bad[i]);
		EXPECT_TRUE(ts_kmsg_contains(kmsg, "cleaner_nice"))
			TH_LOG("no message naming cleaner_nice=%s", bad[i]);
		close(kmsg);
	}
	ASSERT_EQ(0, ts_read_str(TS_SYSMOD "/parameters/cleaner_nice", val,
				 sizeof(val)));
	EXPECT_STREQ("10", val);

	ASSERT_EQ(0, ts_param_set("cleaner_nice", "-5"));
	ASSERT_EQ(0, ts_param_set("cleaner", "Y"));
	/* Applied by the worker itself, at its next pass. */
	for (end = ts_now() + 30; ts_now() < end && cleaner_nice() != -5;)
		usleep(50000);
	EXPECT_EQ(-5, cleaner_nice());
	ASSERT_EQ(0, ts_param_set("cleaner_nice", "19"));
	for (end = ts_now() + 30; ts_now() < end && cleaner_nice() != 19;)
		usleep(50000);
	EXPECT_EQ(19, cleaner_nice());
}

TEST_HARNESS_MAIN
