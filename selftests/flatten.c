// SPDX-License-Identifier: GPL-2.0
/*
 * Flatten (TESSERACT_FLATTEN, tesseractctl flatten): a guest disk's
 * references copied back into its image while the guest keeps using the
 * disk. Afterwards the disk has no references and its image, read past the
 * module, holds what the guest last wrote to every block; writes during the
 * call are not reconciled, writes after it are again; the errors of the
 * interface.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define CGROUP		"ts-flatten"
#define DISK		"/dev/vda"
#define CTL		"/dev/tesseract"
/* Disk blocks the tests use; the first REFS of them become references. */
#define BLOCKS		2048UL
#define REFS		1024UL
#define GUEST_RAM	(2 * BLOCKS * PAGE + (8 << 20))
#define OUT		"/tmp/flatten.out"
#define ERR		"/tmp/flatten.err"
/* An id no disk has: derived ids have bit 63, the tests' own are small. */
#define NO_DISK		0x7e57000000000001ULL

FIXTURE(fl) {
	struct vblk_dev dev;
	int disk_fd;
	__u64 id;
	char *buf, *check;
};

FIXTURE_SETUP(fl)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	/* Else every ENOENT below would be the node's, not the disk's. */
	ASSERT_EQ(0, access(CTL, R_OK | W_OK));
	/* Guest RAM is charged to the group that first touches it. */
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_GET_DISK_ID, &self->id));
	self->buf = vblk_alloc(&self->dev, BLOCKS * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, BLOCKS * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(fl)
{
	vblk_close_disk(&self->dev, self->disk_fd, BLOCKS * SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/*
 * Blocks [0, @refs) of the disk become references to pages (@tag, i, 1)
 * pushed to host swap: how many references the disk has afterwards.
 */
static long long make_refs(struct vblk_dev *d, char *buf, __u64 id,
			   size_t refs, unsigned long tag)
{
	struct tesseract_disk_info info;

	if (ts_fill_and_push(CGROUP, buf, refs, tag, 1) ||
	    vblk_io_pages(d, VIRTIO_BLK_T_OUT, 0, buf, refs, false) ||
	    ts_disk_info(id, &info))
		return -1;
	return info.references;
}

/* TESSERACT_FLATTEN of @id: 0 or -errno; blocks cleaned in @cleaned. */
static int flatten(__u64 id, __u64 *cleaned)
{
	struct tesseract_flatten arg = { .disk_id = id };
	int fd, ret;

	fd = open(CTL, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = ioctl(fd, TESSERACT_FLATTEN, &arg) ? -errno : 0;
	close(fd);
	if (cleaned)
		*cleaned = arg.blocks_cleaned;
	return ret;
}

/* tesseractctl @cmd @id, output in OUT and ERR: its exit status. */
static int ctl(const char *cmd, __u64 id)
{
	char args[256];

	snprintf(args, sizeof(args), "%s %llx >" OUT " 2>" ERR, cmd,
		 (unsigned long long)id);
	return ts_tool(args);
}

/* The text of @path (up to 64 KiB, static). */
static const char *slurp(const char *path)
{
	static char buf[1 << 16];
	size_t n = 0;
	FILE *f;

	f = fopen(path, "r");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

/* What the guest last did to each block. */
enum blk_state { BLK_DATA, BLK_ZERO, BLK_UNDEF };

struct model {
	unsigned long tag;
	unsigned long ver[BLOCKS];	/* BLK_DATA: page (tag, block, ver) */
	enum blk_state state[BLOCKS];
};

/* Does @page hold what the model says block @b holds? */
static bool model_ok(const struct model *m, unsigned long b,
		     const char *page)
{
	static const char zero[PAGE];

	switch (m->state[b]) {
	case BLK_DATA:
		return ts_check_page(page, m->tag, b, m->ver[b]);
	case BLK_ZERO:
		return !memcmp(page, zero, PAGE);
	default:		/* discarded: contents undefined */
		return true;
	}
}

/* Blocks of the image that differ from the model, read past the module. */
static long image_mismatches(const struct model *m)
{
	long bad = 0;
	unsigned long b;
	void *page;
	int fd;

	fd = open(DISK, O_RDONLY | O_DIRECT);
	if (fd < 0 || posix_memalign(&page, PAGE, PAGE))
		return -1;
	for (b = 0; b < BLOCKS; b++)
		if (pread(fd, page, PAGE, b * PAGE) != PAGE ||
		    !model_ok(m, b, page))
			bad++;
	free(page);
	close(fd);
	return bad;
}

/* Blocks the guest reads differently from the model. */
static long guest_mismatches(struct vblk_dev *d, char *check,
			     const struct model *m)
{
	unsigned long b;
	long bad = 0;

	if (vblk_io_pages(d, VIRTIO_BLK_T_IN, 0, check, BLOCKS, false))
		return -1;
	for (b = 0; b < BLOCKS; b++)
		bad += !model_ok(m, b, check + b * PAGE);
	return bad;
}

/*
 * The guest, in a thread of its own while the disk is flattened: writes of
 * resident pages (never reconciled, so that the disk ends with no
 * references), write-zeroes, discards and reads checked against the model,
 * over referenced blocks and others.
 */
struct churn {
	struct vblk_dev *dev;
	struct model *m;
	char *page, *rd;		/* guest RAM: 1 and 16 pages */
	unsigned long seed;
	atomic_bool stop;
	unsigned long ops, stale, errors;
};

static unsigned long rnd(unsigned long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void churn_op(struct churn *c)
{
	struct model *m = c->m;
	unsigned long b = rnd(&c->seed) % BLOCKS, op = rnd(&c->seed) % 10;
	unsigned long n, i;
	int st;

	if (op < 4) {
		ts_fill_page(c->page, m->tag, b, ++m->ver[b]);
		st = vblk_rw(c->dev, 0, VIRTIO_BLK_T_OUT, b * SECTORS, c->page,
			     PAGE, 0, false);
		m->state[b] = BLK_DATA;
	} else if (op < 5) {
		st = vblk_discard(c->dev, VIRTIO_BLK_T_WRITE_ZEROES,
				  b * SECTORS, SECTORS, 0);
		m->state[b] = BLK_ZERO;
	} else if (op < 6) {
		st = vblk_discard(c->dev, VIRTIO_BLK_T_DISCARD, b * SECTORS,
				  SECTORS, 0);
		m->state[b] = BLK_UNDEF;
	} else {
		/* Up to 16 blocks: runs of references read together. */
		n = 1 + rnd(&c->seed) % 16;
		if (b + n > BLOCKS)
			n = BLOCKS - b;
		st = vblk_rw(c->dev, 0, VIRTIO_BLK_T_IN, b * SECTORS, c->rd,
			     n * PAGE, 0, false);
		for (i = 0; !st && i < n; i++)
			c->stale += !model_ok(m, b + i, c->rd + i * PAGE);
	}
	c->errors += !!st;
	c->ops++;
}

static void *churn_thread(void *p)
{
	struct churn *c = p;

	while (!atomic_load(&c->stop))
		churn_op(c);
	return NULL;
}

/*
 * Blocks [0, BLOCKS / 2) are references, the rest plain data; flattened by
 * tesseractctl while the guest works on both.
 */
TEST_F_TIMEOUT(fl, flatten_with_the_tool_under_guest_io, 900)
{
	struct model *m = calloc(1, sizeof(*m));
	struct churn c = { .dev = &self->dev, .m = m, .seed = 0x2545f491 };
	struct tesseract_disk_info info;
	unsigned long long cleaned;
	const char *out;
	pthread_t thread;
	unsigned long b;
	int n;

	ASSERT_NE(NULL, m);
	c.page = vblk_alloc(&self->dev, PAGE, PAGE);
	c.rd = vblk_alloc(&self->dev, 16 * PAGE, PAGE);
	ASSERT_NE(NULL, c.page);
	ASSERT_NE(NULL, c.rd);
	TH_LOG("seed %#lx", c.seed);
	/* Plain writes of resident pages, then the references. */
	ts_fill_pages(self->buf, BLOCKS, 1, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT,
				   REFS * SECTORS, self->buf + REFS * PAGE,
				   BLOCKS - REFS, false));
	ASSERT_EQ((long long)REFS, make_refs(&self->dev, self->buf, self->id,
					     REFS, 1));
	m->tag = 1;
	for (b = 0; b < BLOCKS; b++)
		m->ver[b] = 1;

	ASSERT_EQ(0, ctl("disk", self->id));
	out = slurp(OUT);
	EXPECT_NE(NULL, strstr(out, "attached: yes\n")) TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "flattening: no\n"));
	EXPECT_NE(NULL, strstr(out, "references: 1024\n"));

	ASSERT_EQ(0, pthread_create(&thread, NULL, churn_thread, &c));
	/* Let the guest be busy before the flatten starts. */
	usleep(200 * 1000);
	EXPECT_EQ(0, ctl("flatten", self->id)) TH_LOG("%s", slurp(ERR));
	atomic_store(&c.stop, true);
	pthread_join(thread, NULL);
	out = slurp(OUT);
	TH_LOG("%lu guest operations; %s", c.ops, out);
	EXPECT_EQ(0UL, c.errors);
	EXPECT_EQ(0UL, c.stale);
	EXPECT_LT(100UL, c.ops);

	/* No references left, whichever way one asks. */
	ASSERT_EQ(0, ts_disk_info(self->id, &info));
	EXPECT_EQ(0ULL, info.references);
	EXPECT_EQ(TESSERACT_DISK_ATTACHED, info.flags);
	EXPECT_EQ(0, ts_debugfs_disk(self->id, "references"));
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	/* The tool reports the call's work; the cleaner is off. */
	out = strstr(out, "flattened: ");
	ASSERT_NE(NULL, out);
	n = sscanf(out, "flattened: %llu blocks cleaned", &cleaned);
	ASSERT_EQ(1, n);
	EXPECT_EQ(info.blocks_cleaned, cleaned);
	EXPECT_LE(cleaned, REFS);
	EXPECT_LT(0ULL, cleaned);
	EXPECT_EQ((long long)cleaned, ts_debugfs_disk(self->id, "cleaned"));

	/* What the guest reads, and what the image holds on its own. */
	EXPECT_EQ(0, guest_mismatches(&self->dev, self->check, m));
	EXPECT_EQ(0, image_mismatches(m));
	free(m);
}

/*
 * The window of the call, caught: writes of swapped-out pages that both
 * start and end while the disk is flagged as flattening must not become
 * references. After the call they do again.
 */
struct flatten_job {
	__u64 id;
	int ret;
	atomic_bool done;
};

static void *flatten_thread(void *p)
{
	struct flatten_job *job = p;

	job->ret = flatten(job->id, NULL);
	atomic_store(&job->done, true);
	return NULL;
}

static bool flattening(__u64 id)
{
	struct tesseract_disk_info info;

	return !ts_disk_info(id, &info) &&
	       (info.flags & TESSERACT_DISK_FLATTENING);
}

#define LATE		64	/* swapped-out pages written during the call */
#define ROUNDS		5

TEST_F_TIMEOUT(fl, writes_during_flatten_are_not_reconciled, 900)
{
	char *late = self->buf + REFS * PAGE;
	__u64 late_block = BLOCKS - LATE;
	struct tesseract_disk_info info;
	long long fallback0, reconciled0;
	unsigned long inside = 0, written = 0, round;
	struct flatten_job job;
	pthread_t thread;

	fallback0 = ts_vhost_counter("fallback_flattening");
	ASSERT_LE(0, fallback0) TH_LOG("no fallback_flattening counter");
	/* A call may be over before the guest sees it: try again. */
	for (round = 0; round < ROUNDS && !inside; round++) {
		/* References a missed round's late writes made: gone. */
		ASSERT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_DISCARD,
					  late_block * SECTORS,
					  LATE * SECTORS, 0));
		ASSERT_EQ((long long)REFS,
			  make_refs(&self->dev, self->buf, self->id, REFS,
				    10 + round));
		ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, late, LATE, 20 + round,
						1));
		reconciled0 = ts_vhost_counter("reconciled_pages");
		fallback0 = ts_vhost_counter("fallback_flattening");
		job = (struct flatten_job){ .id = self->id };
		ASSERT_EQ(0, pthread_create(&thread, NULL, flatten_thread,
					    &job));
		while (!atomic_load(&job.done) && !flattening(self->id))
			;
		for (written = 0; written < LATE && flattening(self->id);
		     written++) {
			ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT,
					     (late_block + written) * SECTORS,
					     late + written * PAGE, PAGE, 0,
					     false));
			inside += flattening(self->id);
		}
		pthread_join(thread, NULL);
		ASSERT_EQ(0, job.ret);
		TH_LOG("round %lu: %lu writes during the call, %lu of them inside",
		       round, written, inside);
	}
	ASSERT_LT(0UL, inside) TH_LOG("never caught a flatten running");
	EXPECT_LE(fallback0 + (long long)inside,
		  ts_vhost_counter("fallback_flattening"));
	/* At most the writes after the call ended were reconciled. */
	EXPECT_GE(reconciled0 + (long long)(written - inside),
		  ts_vhost_counter("reconciled_pages"));
	ASSERT_EQ(0, ts_disk_info(self->id, &info));
	EXPECT_GE((unsigned long long)(written - inside), info.references);
	EXPECT_EQ(0ULL, info.flags & TESSERACT_DISK_FLATTENING);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN,
				   late_block * SECTORS, self->check, written,
				   false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, written, 20 + round - 1, 1));

	/* Flattened once more, then reconciliation is back. */
	ASSERT_EQ(0, flatten(self->id, NULL));
	reconciled0 = ts_vhost_counter("reconciled_pages");
	ASSERT_EQ((long long)LATE, make_refs(&self->dev, self->buf, self->id,
					     LATE, 30));
	EXPECT_EQ(reconciled0 + (long long)LATE,
		  ts_vhost_counter("reconciled_pages"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   LATE, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, LATE, 30, 1));
}

#define RACES		40

/*
 * A guest write that drops the last reference while a flatten sweeps for
 * it: the sweep then finds nothing, which is no error. (It was one: the
 * flatten failed with EIO and warned, found by fuzz_vhost_blk, seed
 * 0x6b116f4a220109d9.) One reference a round, overwritten as the call
 * begins; every call must succeed and leave the guest's new data.
 */
TEST_F_TIMEOUT(fl, overwrite_of_the_last_reference_racing_flatten, 900)
{
	struct tesseract_disk_info info;
	struct flatten_job job;
	pthread_t thread;
	unsigned long round;

	for (round = 0; round < RACES; round++) {
		ASSERT_EQ(1, make_refs(&self->dev, self->buf, self->id, 1,
				       40 + round));
		ts_fill_page(self->check, 80 + round, 0, 1);
		job = (struct flatten_job){ .id = self->id };
		ASSERT_EQ(0, pthread_create(&thread, NULL, flatten_thread,
					    &job));
		ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 0,
				     self->check, PAGE, 0, false));
		pthread_join(thread, NULL);
		ASSERT_EQ(0, job.ret) TH_LOG("round %lu", round);
		ASSERT_EQ(0, ts_disk_info(self->id, &info));
		ASSERT_EQ(0ULL, info.references);
		ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0,
					   self->check, 1, false));
		ASSERT_EQ(0UL, ts_bad_pages(self->check, 1, 80 + round, 1));
	}
}

/* Unknown disks, bad ids, and a disk with nothing to do. */
TEST_F_TIMEOUT(fl, unknown_disk_and_nothing_to_do, 300)
{
	struct tesseract_disk_info info;
	__u64 cleaned = 1;
	char args[128];

	EXPECT_EQ(-ENOENT, ts_disk_info(NO_DISK, &info));
	EXPECT_EQ(-ENOENT, flatten(NO_DISK, NULL));
	EXPECT_EQ(1, ctl("flatten", NO_DISK));
	EXPECT_NE(NULL, strstr(slurp(ERR), "no such disk"))
		TH_LOG("%s", slurp(ERR));
	EXPECT_EQ(1, ctl("disk", NO_DISK));
	EXPECT_NE(NULL, strstr(slurp(ERR), "no such disk"));
	EXPECT_EQ(64, ts_tool("flatten 0xnothex 2>/dev/null"));
	EXPECT_EQ(64, ts_tool("disk 2>/dev/null"));

	/* Attached without references: nothing to clean, not an error. */
	EXPECT_EQ(0, flatten(self->id, &cleaned));
	EXPECT_EQ(0ULL, cleaned);
	/* The id with 0x, which the tool accepts too. */
	snprintf(args, sizeof(args), "flatten -q 0x%llx >" OUT " 2>" ERR,
		 (unsigned long long)self->id);
	EXPECT_EQ(0, ts_tool(args));
	EXPECT_STREQ("", slurp(ERR));
	EXPECT_NE(NULL, strstr(slurp(OUT), "flattened: 0 blocks cleaned"));
}

/*
 * A disk with references but no image attached (ENXIO), then its image
 * attached read-only (EROFS), then writable again: flattened.
 */
TEST_F_TIMEOUT(fl, detached_and_read_only_disks, 300)
{
	struct tesseract_disk_info info;
	struct model *m = calloc(1, sizeof(*m));
	unsigned long b;
	int ro_fd;

	ASSERT_NE(NULL, m);
	ASSERT_EQ(64, make_refs(&self->dev, self->buf, self->id, 64, 40));
	ASSERT_EQ(0, vblk_set_backend(&self->dev, -1));
	ASSERT_EQ(0, ts_disk_info(self->id, &info));
	EXPECT_EQ(0ULL, info.flags & TESSERACT_DISK_ATTACHED);
	EXPECT_EQ(64ULL, info.references);
	EXPECT_EQ(0, ts_debugfs_disk(self->id, "attached"));
	EXPECT_EQ(-ENXIO, flatten(self->id, NULL));
	EXPECT_EQ(1, ctl("flatten", self->id));
	EXPECT_NE(NULL, strstr(slurp(ERR), "not attached"))
		TH_LOG("%s", slurp(ERR));
	EXPECT_EQ(0, ctl("disk", self->id));
	EXPECT_NE(NULL, strstr(slurp(OUT), "attached: no\n"));

	ro_fd = open(DISK, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, ro_fd);
	ASSERT_EQ(0, vblk_set_backend(&self->dev, ro_fd));
	ASSERT_EQ(0, ts_disk_info(self->id, &info));
	EXPECT_NE(0ULL, info.flags & TESSERACT_DISK_ATTACHED);
	EXPECT_EQ(-EROFS, flatten(self->id, NULL));
	EXPECT_EQ(1, ctl("flatten", self->id));
	EXPECT_NE(NULL, strstr(slurp(ERR), "read-only"))
		TH_LOG("%s", slurp(ERR));
	ASSERT_EQ(0, ts_disk_info(self->id, &info));
	EXPECT_EQ(64ULL, info.references);

	ASSERT_EQ(0, vblk_set_backend(&self->dev, -1));
	close(ro_fd);
	ASSERT_EQ(0, vblk_set_backend(&self->dev, self->disk_fd));
	ASSERT_EQ(0, flatten(self->id, NULL));
	ASSERT_EQ(0, ts_disk_info(self->id, &info));
	EXPECT_EQ(0ULL, info.references);
	/* The image alone holds the 64 blocks make_refs wrote. */
	m->tag = 40;
	for (b = 0; b < BLOCKS; b++) {
		m->state[b] = b < 64 ? BLK_DATA : BLK_UNDEF;
		m->ver[b] = 1;
	}
	EXPECT_EQ(0, image_mismatches(m));
	free(m);
}

TEST_HARNESS_MAIN
