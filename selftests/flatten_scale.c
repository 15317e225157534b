// SPDX-License-Identifier: GPL-2.0
/*
 * Flatten at scale: a guest disk with a million references (TS_SOAK=1;
 * SMALL_REFS otherwise) on a large sparse store, flattened while another
 * process swaps, without long holds of the store's lock (issue 12): the
 * frees go back a batch at a time, allocations skip full chunks. The
 * kernel log must stay free of soft lockups and RCU stalls; the test
 * lowers their thresholds while it runs.
 *
 * A million references by guest writes of swapped-out pages would need
 * 4 GiB of swapped guest memory; the test writes them into the store
 * instead, in its on-disk format (include/uapi/linux/tesseract_store.h).
 * The module first makes a few references the ordinary way, so that the
 * checkpoint it writes at unload holds the BIND record of the disk's
 * identity token; the test then writes a newer checkpoint into the other
 * slot: that BIND and N ADD records, runs of RUN disk blocks on RUN store
 * blocks in a row, the runs scattered over the first N data blocks. A
 * sample of those blocks gets a pattern; after the flatten the image must
 * hold it at the disk blocks that referred to them.
 *
 * The longest hold of the store's lock while the blocks go back must stay
 * short (debugfs release_hold_max_us): the kernel's lockup detectors see
 * only holds of seconds.
 *
 * Devices: the store on /dev/vdc (16 GiB, sparse: tools/run-tests), the
 * image on /dev/vda (4 GiB: a million blocks).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/tesseract.h>
#include <linux/tesseract_store.h>

#include "kselftest_harness.h"
#include "ts_crc.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define STORE		"/dev/vdc"
#define DISK		"/dev/vda"
#define CTL		"/dev/tesseract"
#define CGROUP		"ts-flatten-scale"
#define SWAP_CGROUP	"ts-flatten-scale-swap"
#define DISK_ID		0xf1a75ca1eULL
#define TOKEN		"flatten-scale"
#define TAG		0xf1a7UL
/*
 * The longest the store's lock may be held giving blocks back: a batch
 * takes well under a millisecond, a million blocks in one hold far more.
 */
#define HOLD_LIMIT_US	50000
#define BATCH_LIMIT	256	/* TS_STORE_LOCK_BATCH */
#define SWAP_TAG	0x5a9UL
#define SOAK_REFS	1048576UL
#define SMALL_REFS	65536UL
/* Disk blocks on store blocks in a row; runs are scattered. */
#define RUN		64UL
/* Store blocks that get a pattern, spread over the references. */
#define SAMPLES		1024UL
/* Pages the swapping process pushes out and reads back, each round. */
#define SWAP_PAGES	4096UL
#define GUEST_RAM	(8UL << 20)
/* Pages pushed out and written for the first references (their BIND). */
#define FIRST_PAGES	256UL
/* Records written to the checkpoint slot at a time. */
#define WRITE_BLOCKS	256UL
/* Soft-lockup threshold while the test runs: 2 * this, in seconds. */
#define WATCHDOG_THRESH	"5"
#define RCU_STALL_S	"10"
#define WATCHDOG	"/proc/sys/kernel/watchdog_thresh"
#define RCU_STALL	"/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout"
#define OUT		"/tmp/flatten_scale.out"

/* What the checkpoint the module wrote at unload says. */
struct store {
	struct ts_sb sb;
	int slot;			/* the newest checkpoint's */
	struct ts_ckpt_header hdr;
	struct ts_bind_record bind;	/* of DISK_ID */
};

static unsigned long nr_refs(void)
{
	return ts_soak() ? SOAK_REFS : SMALL_REFS;
}

/* The store block disk block @x of @n refers to. */
static __u32 block_of(unsigned long x, unsigned long n)
{
	unsigned long runs = n / RUN;

	/* An odd stride permutes the runs (runs is a power of 2). */
	return (x / RUN * 0x9e3779b1UL) % runs * RUN + x % RUN;
}

/* Sample @k of SAMPLES: a disk block, at another place in its run each. */
static unsigned long sample(unsigned long k, unsigned long n)
{
	unsigned long step = n / SAMPLES;

	return k * step + k % (step < RUN ? step : RUN);
}

static void *page_alloc(size_t pages)
{
	void *p;

	return posix_memalign(&p, PAGE, pages * PAGE) ? NULL : p;
}

static int rw_blocks(int fd, bool write, void *buf, size_t nr, __u64 block)
{
	ssize_t n;

	n = write ? pwrite(fd, buf, nr * PAGE, block * PAGE) :
		    pread(fd, buf, nr * PAGE, block * PAGE);
	return n == (ssize_t)(nr * PAGE) ? 0 : -EIO;
}

/* The superblock and the newest valid checkpoint of the store on @fd. */
static int store_read(int fd, struct store *s)
{
	struct ts_ckpt_header *h;
	struct ts_record *recs;
	__u64 seq[2];
	void *buf;
	int i, valid[2], ret = -EINVAL;

	buf = page_alloc(1);
	if (!buf)
		return -ENOMEM;
	if (rw_blocks(fd, false, buf, 1, 0))
		goto out;
	memcpy(&s->sb, buf, sizeof(s->sb));
	if (le64toh(s->sb.magic) != TS_SB_MAGIC)
		goto out;
	h = buf;
	for (i = 0; i < 2; i++) {
		valid[i] = !rw_blocks(fd, false, buf, 1,
				      le64toh(s->sb.ckpt_start[i])) &&
			   le64toh(h->magic) == TS_CKPT_MAGIC &&
			   le32toh(h->crc) ==
			   ts_block_crc(h, offsetof(struct ts_ckpt_header, crc)) &&
			   !memcmp(h->uuid, s->sb.uuid, sizeof(h->uuid));
		seq[i] = le64toh(h->seq);
	}
	if (!valid[0] && !valid[1])
		goto out;
	s->slot = valid[0] && (!valid[1] || seq[0] > seq[1]) ? 0 : 1;
	if (rw_blocks(fd, false, buf, 1, le64toh(s->sb.ckpt_start[s->slot])))
		goto out;
	memcpy(&s->hdr, buf, sizeof(s->hdr));
	/* Its first record: the disk's BIND, then its ADD. */
	if (!le64toh(s->hdr.nr_refs) ||
	    rw_blocks(fd, false, buf, 1,
		      le64toh(s->sb.ckpt_start[s->slot]) + 1))
		goto out;
	recs = buf;
	memcpy(&s->bind, &recs[0], sizeof(s->bind));
	if (s->bind.type == TS_REC_BIND &&
	    le64toh(s->bind.disk_id) == DISK_ID)
		ret = 0;
out:
	free(buf);
	return ret;
}

/*
 * A checkpoint newer than the store's, into its other slot: the disk's
 * BIND and @n ADD records, disk block x on block_of(x). The journal goes
 * on where the old one's did: nothing in it follows the new seq.
 */
static int store_write_ckpt(int fd, const struct store *s, unsigned long n)
{
	int slot = !s->slot;
	__u64 nr = n + 1, i, at = le64toh(s->sb.ckpt_start[slot]) + 1;
	struct ts_ckpt_header *h;
	struct ts_record *recs, *rec;
	__u32 crc = ~0U;
	size_t fill = 0;
	int ret = -EIO;

	recs = page_alloc(WRITE_BLOCKS);
	if (!recs)
		return -ENOMEM;
	memset(recs, 0, WRITE_BLOCKS * PAGE);
	for (i = 0; i < nr; i++) {
		/* TS_CKPT_RECORDS to a block, the rest of it zero. */
		rec = (struct ts_record *)((char *)recs +
					   fill / TS_CKPT_RECORDS * PAGE) +
		      fill % TS_CKPT_RECORDS;
		fill++;
		if (!i) {
			memcpy(rec, &s->bind, sizeof(*rec));
		} else {
			rec->type = TS_REC_ADD;
			rec->data_block = htole32(block_of(i - 1, n));
			rec->disk_id = htole64(DISK_ID);
			rec->disk_block = htole64(i - 1);
		}
		crc = ts_crc32c(crc, rec, sizeof(*rec));
		if (fill < WRITE_BLOCKS * TS_CKPT_RECORDS && i + 1 < nr)
			continue;
		/* Whole blocks: the rest of the last one stays zero. */
		if (rw_blocks(fd, true, recs,
			      (fill + TS_CKPT_RECORDS - 1) / TS_CKPT_RECORDS,
			      at))
			goto out;
		at += WRITE_BLOCKS;
		fill = 0;
		memset(recs, 0, WRITE_BLOCKS * PAGE);
	}
	if (fdatasync(fd))
		goto out;
	/* The records are down: now the header. */
	h = (void *)recs;
	h->magic = htole64(TS_CKPT_MAGIC);
	h->seq = htole64(le64toh(s->hdr.seq) + 1);
	h->entries_crc = htole32(~crc);
	h->nr_refs = htole64(nr);
	h->journal_next = s->hdr.journal_next;
	memcpy(h->uuid, s->sb.uuid, sizeof(h->uuid));
	h->crc = htole32(ts_block_crc(h, offsetof(struct ts_ckpt_header, crc)));
	if (rw_blocks(fd, true, h, 1, le64toh(s->sb.ckpt_start[slot])) ||
	    fdatasync(fd))
		goto out;
	ret = 0;
out:
	free(recs);
	return ret;
}

/* Does a message logged since ts_kmsg_open() hold one of @needles? */
static const char *kmsg_find(int fd, const char *const *needles)
{
	static char rec[8192];
	ssize_t n;
	int i;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n < 0)
			return NULL;
		rec[n] = '\0';
		for (i = 0; needles[i]; i++)
			if (strstr(rec, needles[i]))
				return rec;
	}
}

/*
 * The swapping process: rounds of SWAP_PAGES pages written, pushed out
 * to /dev/tsswap0 (store blocks allocated past the full chunks of the
 * references) and read back (their slots freed), until told to stop.
 */
struct swapper {
	atomic_bool stop;
	atomic_ulong rounds, pushed, bad;
	atomic_int error;
};

static void swapper_run(struct swapper *sw)
{
	unsigned long v;
	size_t left;
	char *p;

	if (ts_cgroup_enter(SWAP_CGROUP)) {
		atomic_store(&sw->error, 1);
		_exit(1);
	}
	p = mmap(NULL, SWAP_PAGES * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		atomic_store(&sw->error, 2);
		_exit(1);
	}
	for (v = 1; !atomic_load(&sw->stop); v++) {
		left = ts_fill_and_push(SWAP_CGROUP, p, SWAP_PAGES, SWAP_TAG,
					v);
		atomic_fetch_add(&sw->pushed, SWAP_PAGES - left);
		atomic_fetch_add(&sw->bad,
				 ts_bad_pages(p, SWAP_PAGES, SWAP_TAG, v));
		atomic_fetch_add(&sw->rounds, 1);
	}
	ts_cgroup_leave(SWAP_CGROUP);
	_exit(0);
}

FIXTURE(fs) {
	struct vblk_dev dev;
	int disk_fd, store_fd;
	struct swapper *sw;
	pid_t swapper;
	char watchdog[32], rcu_stall[32];
};

FIXTURE_SETUP(fs)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	self->store_fd = -1;
	self->swapper = -1;
	ts_module_ensure_unloaded();
	if (access(STORE, R_OK | W_OK) || access(DISK, R_OK | W_OK))
		TS_SETUP_SKIP("no " STORE " or " DISK);
	self->sw = mmap(NULL, sizeof(*self->sw), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->sw);
	memset(self->sw, 0, sizeof(*self->sw));
	/*
	 * A CPU that does not schedule for 10 s is a soft lockup, one that
	 * holds up RCU for 10 s a stall (the debug kernel keeps its own).
	 */
	if (!ts_debug_kernel()) {
		if (!ts_read_str(WATCHDOG, self->watchdog,
				 sizeof(self->watchdog)))
			ts_write_str(WATCHDOG, WATCHDOG_THRESH);
		if (!ts_read_str(RCU_STALL, self->rcu_stall,
				 sizeof(self->rcu_stall)))
			ts_write_str(RCU_STALL, RCU_STALL_S);
	}
}

FIXTURE_TEARDOWN(fs)
{
	if (self->swapper > 0) {
		kill(self->swapper, SIGKILL);
		waitpid(self->swapper, NULL, 0);
	}
	vblk_close(&self->dev);
	if (self->disk_fd >= 0)
		close(self->disk_fd);
	if (self->store_fd >= 0)
		close(self->store_fd);
	ts_cgroup_leave(SWAP_CGROUP);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	if (self->watchdog[0])
		ts_write_str(WATCHDOG, self->watchdog);
	if (self->rcu_stall[0])
		ts_write_str(RCU_STALL, self->rcu_stall);
}

/* Attach DISK to a new guest with the token (the disk's identity). */
static int attach(struct vblk_dev *d, int disk_fd)
{
	vblk_init(d);
	return vblk_open_disk_token(d, GUEST_RAM, disk_fd, DISK_ID, TOKEN);
}

static int flatten(__u64 id, __u64 *cleaned)
{
	struct tesseract_flatten arg = { .disk_id = id };
	int fd, ret;

	fd = open(CTL, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = ioctl(fd, TESSERACT_FLATTEN, &arg) ? -errno : 0;
	close(fd);
	*cleaned = arg.blocks_cleaned;
	return ret;
}

TEST_F_TIMEOUT(fs, flatten_a_million_references_while_swapping, 7200)
{
	static const char *const bad_log[] = {
		"soft lockup", "detected stall", "self-detected stall",
		"hard LOCKUP", "BUG:", "WARNING:", NULL
	};
	unsigned long n = nr_refs(), k, x, bad, rounds0, pushed0;
	struct tesseract_disk_info info;
	long long writes0, writes, hold_us, batch;
	double t0, t_load, t_flat;
	__u64 disk_bytes, cleaned;
	const char *found;
	struct store s;
	size_t left;
	char needle[96];
	char *page, *buf;
	int kmsg;

	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, ioctl(self->disk_fd, BLKGETSIZE64, &disk_bytes));
	ASSERT_LE(n * PAGE, disk_bytes);

	/* A few references the ordinary way: the disk's BIND, on the store. */
	ASSERT_EQ(0, ts_swap_up("backing=" STORE));
	ASSERT_EQ(0, attach(&self->dev, self->disk_fd));
	page = vblk_alloc(&self->dev, FIRST_PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, page);
	left = ts_fill_and_push(CGROUP, page, FIRST_PAGES, TAG, 0);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, page,
				   FIRST_PAGES, false));
	ASSERT_EQ(0, ts_disk_info(DISK_ID, &info));
	ASSERT_LT(0ULL, info.references)
		TH_LOG("%zu of %lu pages left resident", left, FIRST_PAGES);
	vblk_close(&self->dev);
	ts_swap_down();

	/* N references instead, a sample of their blocks with a pattern. */
	self->store_fd = open(STORE, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->store_fd);
	ASSERT_EQ(0, store_read(self->store_fd, &s));
	ASSERT_LE(n + 1, le32toh(s.sb.max_refs));
	ASSERT_LE(n, le32toh(s.sb.data_blocks));
	ASSERT_LE((n + 1 + TS_CKPT_RECORDS - 1) / TS_CKPT_RECORDS,
		  le64toh(s.sb.ckpt_blocks) - 1);
	t0 = ts_now();
	ASSERT_EQ(0, store_write_ckpt(self->store_fd, &s, n));
	buf = page_alloc(1);
	ASSERT_NE(NULL, buf);
	for (k = 0; k < SAMPLES; k++) {
		x = sample(k, n);
		ts_fill_page(buf, TAG, x, 1);
		ASSERT_EQ(0, rw_blocks(self->store_fd, true, buf, 1,
				       le64toh(s.sb.data_start) +
				       block_of(x, n)));
		/* The image holds something else there until the flatten. */
		memset(buf, 0, PAGE);
		ASSERT_EQ(0, rw_blocks(self->disk_fd, true, buf, 1, x));
	}
	ASSERT_EQ(0, fdatasync(self->store_fd));
	close(self->store_fd);
	self->store_fd = -1;
	TH_LOG("%lu references written in %.1f s (checkpoint slot %d)", n,
	       ts_now() - t0, !s.slot);
	/* What the offline checker makes of it. */
	EXPECT_EQ(0, ts_tool("check " STORE " >" OUT " 2>&1"));
	ts_system("sed 's/^/# /' " OUT);

	/* Loaded, the disk attached again: it has all of them. */
	kmsg = ts_kmsg_open();
	ASSERT_LE(0, kmsg);
	t0 = ts_now();
	ASSERT_EQ(0, ts_swap_up_on_store("backing=" STORE));
	t_load = ts_now() - t0;
	snprintf(needle, sizeof(needle), "in slot %d, journal up to %llu, %lu references",
		 !s.slot, (unsigned long long)le64toh(s.hdr.seq) + 1, n + 1);
	EXPECT_TRUE(ts_kmsg_contains(kmsg, needle)) TH_LOG("no '%s'", needle);
	ASSERT_EQ(0, attach(&self->dev, self->disk_fd));
	ASSERT_EQ(0, ts_disk_info(DISK_ID, &info));
	ASSERT_EQ((unsigned long long)n, info.references);
	/* Reads of referenced blocks are served from the store. */
	page = vblk_alloc(&self->dev, PAGE, PAGE);
	ASSERT_NE(NULL, page);
	for (k = bad = 0; k < SAMPLES; k += SAMPLES / 16) {
		x = sample(k, n);
		ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN,
				     x * SECTORS, page, PAGE, 0, false));
		bad += !ts_check_page(page, TAG, x, 1);
	}
	EXPECT_EQ(0UL, bad);

	/* Swapping in another process all along. */
	self->swapper = fork();
	ASSERT_LE(0, self->swapper);
	if (!self->swapper)
		swapper_run(self->sw);
	while (!atomic_load(&self->sw->rounds) &&
	       !atomic_load(&self->sw->error))
		usleep(10 * 1000);
	ASSERT_EQ(0, atomic_load(&self->sw->error));
	rounds0 = atomic_load(&self->sw->rounds);
	pushed0 = atomic_load(&self->sw->pushed);
	writes0 = ts_swapdev_counter("writes");

	t0 = ts_now();
	EXPECT_EQ(0, flatten(DISK_ID, &cleaned));
	t_flat = ts_now() - t0;
	writes = ts_swapdev_counter("writes") - writes0;

	atomic_store(&self->sw->stop, true);
	ASSERT_EQ(self->swapper, waitpid(self->swapper, NULL, 0));
	self->swapper = -1;
	TH_LOG("%lu references: loaded in %.1f s, flattened in %.1f s (%.0f MiB/s)",
	       n, t_load, t_flat, n * PAGE / t_flat / (1 << 20));
	TH_LOG("meanwhile %lu swap rounds, %lu pages pushed, %lld swap writes",
	       atomic_load(&self->sw->rounds) - rounds0,
	       atomic_load(&self->sw->pushed) - pushed0, writes);
	hold_us = ts_swapdev_counter("release_hold_max_us");
	batch = ts_swapdev_counter("release_batch_max");
	TH_LOG("store lock giving blocks back: at most %lld blocks and %lld us a hold",
	       batch, hold_us);

	/* Every reference cleaned, none left. */
	EXPECT_EQ((__u64)n, cleaned);
	ASSERT_EQ(0, ts_disk_info(DISK_ID, &info));
	EXPECT_EQ(0ULL, info.references);
	EXPECT_EQ(0, ts_debugfs_disk(DISK_ID, "references"));
	/* The image alone holds what the blocks held. */
	for (k = bad = 0; k < SAMPLES; k++) {
		x = sample(k, n);
		ASSERT_EQ(0, rw_blocks(self->disk_fd, false, buf, 1, x));
		if (!ts_check_page(buf, TAG, x, 1) && !bad++)
			TH_LOG("disk block %lu (store block %u) lacks its pattern",
			       x, block_of(x, n));
	}
	EXPECT_EQ(0UL, bad);
	free(buf);
	/* The swapping went on, and read back what it wrote. */
	EXPECT_LT(0, writes);
	EXPECT_EQ(0UL, atomic_load(&self->sw->bad));
	/* Bounded work per hold of the store's lock, however many go. */
	EXPECT_LT(0, batch);
	EXPECT_GE(BATCH_LIMIT, batch);
	EXPECT_LE(0, hold_us);
	EXPECT_GT(HOLD_LIMIT_US, hold_us);
	/* No lockup, stall or warning. */
	found = kmsg_find(kmsg, bad_log);
	EXPECT_EQ(NULL, found) TH_LOG("kernel log: %s", found);
	close(kmsg);
}

TEST_HARNESS_MAIN
