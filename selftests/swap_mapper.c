// SPDX-License-Identifier: GPL-2.0
/*
 * The swap mapper: a guest page that holds, unchanged, what the guest read
 * from its disk swaps out to /dev/tsswap0 with no write and swaps back in
 * from the disk image; whatever happens to the disk block meanwhile (a
 * write, discard, write-zeroes, detach) and whatever happens to the page
 * (a change since the read), the page swaps in with the bytes it had; and
 * a page of another memory cgroup is never mapped to this guest's disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define CGROUP		"ts-mapper"
#define OTHER_CGROUP	"ts-mapper-other"
#define PAGES		256UL		/* 1 MiB of guest buffers */
#define DISK		"/dev/vda"
#define DISK_SECTORS	(80UL << 11)	/* 80 MiB used, discarded after */
#define HUGE		(2UL << 20)
/* Buffers, a huge page aligned, rings and requests. */
#define GUEST_RAM	(2 * PAGES * PAGE + 2 * HUGE + (4 << 20))
#define STORE		"/dev/vdb"
#define PARAMS		"backing=" STORE " swap_mapper=1"
#define TAG		0x5eed
#define TMPFS		"/run/ts-mapper-tmpfs"

#define PAGE_CLUSTER	"/proc/sys/vm/page-cluster"

FIXTURE(map) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
	char page_cluster[16];	/* swap readahead, which a test turns off */
};

FIXTURE_SETUP(map)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_read_str(PAGE_CLUSTER, self->page_cluster,
				 sizeof(self->page_cluster)));
	ASSERT_EQ(0, ts_swap_up(PARAMS));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(map)
{
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	EXPECT_EQ(0, ts_write_str(PAGE_CLUSTER, self->page_cluster));
}

/*
 * Write version @ver of the pattern to the disk at @sector, through vhost.
 * @buf then holds other bytes: a page with the disk's bytes maps to the
 * disk whether the guest read it or not, and the tests count mappings.
 */
static int disk_write(struct vblk_dev *d, char *buf, __u64 sector,
		      unsigned long ver)
{
	int ret;

	ts_fill_pages(buf, PAGES, TAG + sector, ver);
	ret = vblk_io_pages(d, VIRTIO_BLK_T_OUT, sector, buf, PAGES, false);
	ts_fill_pages(buf, PAGES, TAG + sector, ~ver);
	return ret;
}

/* What the guest has on disk at @sector, read into @check: fingerprinted. */
static int disk_read(struct vblk_dev *d, char *check, __u64 sector)
{
	return vblk_io_pages(d, VIRTIO_BLK_T_IN, sector, check, PAGES, false);
}

/*
 * Page out @len bytes at @p alone (MADV_PAGEOUT, not the whole cgroup:
 * the tests count the writes of these pages). True if none stayed mapped.
 */
static bool page_out(void *p, size_t len)
{
	return !ts_page_out(p, len);
}

/*
 * Read what was written at @sector into the check buffer and push it out
 * to swap: every page maps to its disk block, none is written, and none
 * stays in memory (a swap-out with no write is over at once).
 */
static void read_and_swap_out(struct __test_metadata *_metadata,
			      struct vblk_dev *d, char *buf, char *check,
			      __u64 sector, unsigned long ver)
{
	struct ts_blk_stat store0, store1;
	long long mapped0, writes0;

	ASSERT_EQ(0, disk_write(d, buf, sector, ver));
	ASSERT_EQ(0, disk_read(d, check, sector));
	ASSERT_EQ(0UL, ts_bad_pages(check, PAGES, TAG + sector, ver));
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	writes0 = ts_swapdev_counter("writes");
	ts_blk_stat(STORE, &store0);
	ASSERT_TRUE(page_out(check, PAGES * PAGE));
	ts_blk_stat(STORE, &store1);
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_EQ(0, ts_swapdev_counter("writes") - writes0);
	/* The store's own device: no data, at most a journal block or so. */
	ASSERT_LE(0, store0.written);
	EXPECT_GT((long long)(PAGES * PAGE / 16),
		  store1.written - store0.written);
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("slots_mapped"));
	EXPECT_EQ(0UL, ts_resident_pages(check, PAGES * PAGE));
}

/*
 * The core case: pages the guest read swap out with no write, and swap in
 * from the disk with the same bytes.
 */
TEST_F_TIMEOUT(map, read_pages_swap_out_with_no_write_and_in_from_disk, 300)
{
	long long from_images0, bytes0, writes0;

	bytes0 = ts_mapper_stat("data_bytes_not_written");
	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	EXPECT_EQ((long long)(PAGES * PAGE),
		  ts_mapper_stat("data_bytes_not_written") - bytes0);
	from_images0 = ts_mapper_stat("swap_ins_from_images");
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("swap_ins_from_images") - from_images0);
	EXPECT_EQ(0, ts_mapper_stat("swap_in_errors"));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_mismatches"));
	/*
	 * Unchanged, they go out again with no write: from the swap cache,
	 * whose slot still maps to the disk, or mapped anew.
	 */
	writes0 = ts_swapdev_counter("writes");
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ(0, ts_swapdev_counter("writes") - writes0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

/*
 * A swap-in from the image is one for the cgroup's miss-ratio curve too:
 * counted when its read completes, as a read of the store is (a fault or
 * a page read ahead), not left for the slot's free, which would count it
 * late as a fault that bypassed the device.
 */
TEST_F_TIMEOUT(map, swap_ins_from_images_count_in_the_curve, 300)
{
	struct ts_mrc_curve before, after;
	unsigned long long seen;

	/* One window for the whole test: no rotation between the reads. */
	ASSERT_EQ(0, ts_param_set("mrc_window_s", "0"));
	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	ASSERT_EQ(0, ts_mrc_read(CGROUP, 0, &before));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	ASSERT_EQ(0, ts_mrc_read(CGROUP, 0, &after));
	seen = after.m.faults + after.m.unstamped_faults +
	       after.m.readahead_reads - before.m.faults -
	       before.m.unstamped_faults - before.m.readahead_reads;
	TH_LOG("%lu pages swapped in from the image: %llu faults and reads ahead, %llu bypassed",
	       PAGES, seen, after.m.bypassed - before.m.bypassed);
	EXPECT_LE(PAGES * 9 / 10, seen);
	EXPECT_EQ(before.m.bypassed, after.m.bypassed);
}

/*
 * A guest write of a block that swapped-out pages map to: the pages get a
 * copy of the old bytes first, and swap in with them; the disk has the
 * new ones.
 */
TEST_F_TIMEOUT(map, a_write_of_the_block_copies_it_first, 300)
{
	long long copies0 = ts_mapper_stat("copies_before_writes");

	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 2));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("copies_before_writes") - copies0);
	EXPECT_EQ(0, ts_mapper_stat("slots_mapped"));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 2));
}

/* Swap-in of one page of @check; its contents as version @ver of block @i. */
static bool swap_in_page(char *check, unsigned long i, unsigned long ver)
{
	return ts_check_page(check + i * PAGE, TAG, i, ver);
}

/*
 * Swap-ins of a range read in order read the image ahead into a window
 * (M6): one read of the image serves the pages after it. A block of the
 * window written since, then read into another page and mapped anew,
 * swaps in with its new bytes, not the window's (which would fail the
 * xxh64 check: an I/O error, SIGBUS). Swap readahead off, so that the
 * test decides which page swaps in when.
 */
TEST_F_TIMEOUT(map, read_ahead_blocks_written_since_are_not_used, 300)
{
	const unsigned long target = 20;
	char *page = self->buf + (PAGES - 1) * PAGE;
	long long ios0, from_images0, copies0;
	unsigned long i;

	ASSERT_EQ(0, ts_write_str(PAGE_CLUSTER, "0"));
	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	/* 0 reads 4 blocks; 4 goes on where that ended: 32, to 35. */
	ios0 = ts_mapper_stat("swap_in_read_ios");
	from_images0 = ts_mapper_stat("swap_ins_from_images");
	EXPECT_TRUE(swap_in_page(self->check, 0, 1));
	for (i = 4; i < target; i++)
		EXPECT_TRUE(swap_in_page(self->check, i, 1));
	EXPECT_EQ(2, ts_mapper_stat("swap_in_read_ios") - ios0);
	EXPECT_EQ((long long)(target - 3),
		  ts_mapper_stat("swap_ins_from_images") - from_images0);
	/* It holds block 21 too, and so 20: no read of the image for it. */
	EXPECT_TRUE(swap_in_page(self->check, target + 1, 1));
	EXPECT_EQ(2, ts_mapper_stat("swap_in_read_ios") - ios0);

	/* The guest writes block 20, and reads it. */
	copies0 = ts_mapper_stat("copies_before_writes");
	ts_fill_page(page, TAG, target, 2);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT,
				   target * SECTORS, page, 1, false));
	EXPECT_EQ(1, ts_mapper_stat("copies_before_writes") - copies0);
	memset(page, 0, PAGE);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN,
				   target * SECTORS, page, 1, false));
	ASSERT_TRUE(ts_check_page(page, TAG, target, 2));
	ASSERT_TRUE(page_out(page, PAGE));
	EXPECT_EQ(0UL, ts_resident_pages(page, PAGE));

	/* The window still has 20, as it was: read anew. */
	from_images0 = ts_mapper_stat("swap_ins_from_images");
	ios0 = ts_mapper_stat("swap_in_read_ios");
	EXPECT_TRUE(ts_check_page(page, TAG, target, 2));
	EXPECT_EQ(1, ts_mapper_stat("swap_ins_from_images") - from_images0);
	EXPECT_EQ(1, ts_mapper_stat("swap_in_read_ios") - ios0);
	EXPECT_TRUE(swap_in_page(self->check, target, 1));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_errors"));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_mismatches"));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

#define DELAY_READS	TS_DEBUGFS "/swap_mapper_delay_reads_ms"

struct swap_in {
	const char *page;
	unsigned long index;
	pid_t tid;		/* atomic */
	bool ok;
};

static void *swap_in_thread(void *arg)
{
	struct swap_in *in = arg;

	__atomic_store_n(&in->tid, gettid(), __ATOMIC_RELEASE);
	in->ok = ts_check_page(in->page, TAG, in->index, 1);
	return NULL;
}

/* Thread @tid's state letter (R, S, D, ...), or 0. */
static char task_state(pid_t tid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	if (ts_read_str(path, buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * M4: a write of a block that a swap-in reads from the image now waits
 * for that read. The swap-in sleeps before it reads (debugfs
 * swap_mapper_delay_reads_ms), its thread waiting for the page (state
 * D); the guest writes the block meanwhile. A write that did not wait
 * would change the block before the read: the swap-in would fail its
 * xxh64 check, and the thread get SIGBUS.
 */
TEST_F_TIMEOUT(map, a_write_waits_for_a_swap_in_of_its_block, 300)
{
	struct swap_in in = { .index = 7 };
	char *page = self->buf + (PAGES - 1) * PAGE;
	long long copies0;
	pthread_t thread;
	double t0, waited;
	pid_t tid = 0;
	int i;

	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	in.page = self->check + in.index * PAGE;
	ASSERT_EQ(0, ts_write_str(DELAY_READS, "1500"));
	ASSERT_EQ(0, pthread_create(&thread, NULL, swap_in_thread, &in));
	for (i = 0; i < 500; i++) {
		tid = __atomic_load_n(&in.tid, __ATOMIC_ACQUIRE);
		if (tid && task_state(tid) == 'D')
			break;
		usleep(2000);
	}
	ASSERT_GT(500, i);

	copies0 = ts_mapper_stat("copies_before_writes");
	ts_fill_page(page, TAG, in.index, 2);
	t0 = ts_now();
	EXPECT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT,
				   in.index * SECTORS, page, 1, false));
	waited = ts_now() - t0;
	pthread_join(thread, NULL);
	ts_write_str(DELAY_READS, "0");
	TH_LOG("the write took %.3f s", waited);
	EXPECT_TRUE(in.ok);
	EXPECT_LE(0.5, waited);
	EXPECT_EQ(1, ts_mapper_stat("copies_before_writes") - copies0);
	EXPECT_EQ(0, ts_mapper_stat("swap_in_errors"));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_mismatches"));
	memset(page, 0, PAGE);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN,
				   in.index * SECTORS, page, 1, false));
	EXPECT_TRUE(ts_check_page(page, TAG, in.index, 2));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

/* The same for discard and write-zeroes, each over half of the blocks. */
TEST_F_TIMEOUT(map, discard_and_write_zeroes_copy_first, 300)
{
	long long copies0 = ts_mapper_stat("copies_before_writes");
	__u32 half = PAGES / 2 * SECTORS;

	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	EXPECT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_DISCARD, 0, half,
				  0));
	EXPECT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_WRITE_ZEROES, half,
				  half, 0));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("copies_before_writes") - copies0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

/*
 * Pages the guest changed after the read are not the disk's bytes: they
 * are written as usual, and swap in with their changes.
 */
TEST_F_TIMEOUT(map, pages_changed_after_the_read_are_written, 300)
{
	long long mapped0, writes0;
	unsigned long i;

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	for (i = 0; i < PAGES; i += 2)
		ts_fill_page(self->check + i * PAGE, TAG, i, 3);
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	writes0 = ts_swapdev_counter("writes");
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ((long long)PAGES / 2, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_EQ((long long)PAGES / 2, ts_swapdev_counter("writes") - writes0);
	for (i = 0; i < PAGES; i++)
		EXPECT_TRUE(ts_check_page(self->check + i * PAGE, TAG, i,
					  i % 2 ? 1 : 3)) TH_LOG("page %lu", i);
}

/*
 * A block written after the guest read it no longer holds what the read
 * saw: the write frees its fingerprint, and a page that still holds the
 * old bytes is written to swap, not mapped.
 */
TEST_F_TIMEOUT(map, a_block_written_since_the_read_is_not_mapped, 300)
{
	long long mapped0, writes0, held;

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	held = ts_mapper_stat("fingerprints_held");
	ASSERT_LE((long long)PAGES, held);
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 2));
	EXPECT_EQ(held - (long long)PAGES, ts_mapper_stat("fingerprints_held"));
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	writes0 = ts_swapdev_counter("writes");
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ(0, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_LE((long long)PAGES, ts_swapdev_counter("writes") - writes0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

/*
 * A guest that writes its disk all the time (its own paging, say) keeps
 * the fingerprints of the blocks it does not write: writes of 4096 other
 * blocks, one request each as a pager writes, touch every bucket of the
 * write generations, and the pages read before still map. A block read
 * twice has one fingerprint.
 */
TEST_F_TIMEOUT(map, writes_of_other_blocks_keep_fingerprints, 300)
{
	unsigned long i, other = PAGES * SECTORS;
	long long mapped0, writes0, added0;

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	added0 = ts_mapper_stat("fingerprints_added");
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	/* Read again: one entry per block still. */
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("fingerprints_added") - added0);
	for (i = 0; i < 4096; i++)
		ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT,
					   other + i * SECTORS,
					   self->buf + (i % PAGES) * PAGE, 1,
					   false));
	ASSERT_LE((long long)PAGES, ts_mapper_stat("fingerprints_held"));
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	writes0 = ts_swapdev_counter("writes");
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_EQ(0, ts_swapdev_counter("writes") - writes0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

/*
 * Detaching the disk gives its mapped pages copies: the image may then
 * change through anybody, and the pages keep their bytes. Its
 * fingerprints go too: with none left, a swap-out hashes nothing.
 */
TEST_F_TIMEOUT(map, detach_copies_mapped_pages, 300)
{
	long long copied0 = ts_mapper_stat("slots_copied"), hash0;
	char *zero;

	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	ASSERT_LT(0, ts_mapper_stat("fingerprints_held"));
	ASSERT_EQ(0, vblk_set_backend(&self->dev, -1));
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("slots_copied") - copied0);
	EXPECT_EQ(0, ts_mapper_stat("slots_mapped"));
	EXPECT_EQ(0, ts_mapper_stat("fingerprints_held"));
	hash0 = ts_mapper_stat("hash_ns");
	ts_fill_pages(self->buf, PAGES, TAG, 1);
	ASSERT_TRUE(page_out(self->buf, PAGES * PAGE));
	EXPECT_EQ(hash0, ts_mapper_stat("hash_ns"));
	zero = aligned_alloc(PAGE, PAGES * PAGE);
	ASSERT_NE(NULL, zero);
	memset(zero, 0, PAGES * PAGE);
	ASSERT_EQ((ssize_t)(PAGES * PAGE),
		  pwrite(self->disk_fd, zero, PAGES * PAGE, 0));
	free(zero);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	ASSERT_EQ(0, vblk_set_backend(&self->dev, self->disk_fd));
}

/*
 * One block read into every page: all their slots map to it, in one
 * bucket. Half the pages are freed (their slots leave the middle of the
 * bucket), then a write of the block copies it once for the other half,
 * a batch of slots at a time; each keeps the block's old bytes.
 */
TEST_F_TIMEOUT(map, one_block_in_many_pages, 300)
{
	long long copies0, copied0, copied, mapped;
	cpu_set_t one, all;
	unsigned long i;

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	for (i = 0; i < PAGES; i++)
		ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0,
					   self->check + i * PAGE, 1, false));
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	ASSERT_EQ((long long)PAGES, ts_mapper_stat("slots_mapped"));
	/*
	 * The kernel frees slots in batches of 64 per CPU (its swap slot
	 * cache): on one CPU, at least 64 of the 128 reach the device.
	 */
	ASSERT_EQ(0, sched_getaffinity(0, sizeof(all), &all));
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	for (i = 0; i < PAGES; i += 2)
		ASSERT_EQ(0, madvise(self->check + i * PAGE, PAGE,
				     MADV_DONTNEED));
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(all), &all));
	mapped = ts_mapper_stat("slots_mapped");
	EXPECT_LE((long long)PAGES / 2, mapped);
	EXPECT_GE((long long)(PAGES - 64), mapped);
	copies0 = ts_mapper_stat("copies_before_writes");
	copied0 = ts_mapper_stat("slots_copied");
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 2));
	EXPECT_EQ(1, ts_mapper_stat("copies_before_writes") - copies0);
	/* And the slots the cache holds yet, as many as it flushed since. */
	copied = ts_mapper_stat("slots_copied") - copied0;
	EXPECT_LE((long long)PAGES / 2, copied);
	EXPECT_GE(mapped, copied);
	EXPECT_EQ(0, ts_mapper_stat("slots_mapped"));
	for (i = 1; i < PAGES; i += 2)
		EXPECT_TRUE(ts_check_page(self->check + i * PAGE, TAG, 0, 1));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_mismatches"));
}

static void *detach_thread(void *arg)
{
	struct vblk_dev *d = arg;

	return (void *)(long)vblk_set_backend(d, -1);
}

/*
 * Pages read and swapped out, then the disk detached in thread @tid with
 * each copy slowed by debugfs swap_mapper_delay_copies_ms: back once the
 * detach has copied a block (it copies now).
 */
static void slow_detach_begins(struct __test_metadata *_metadata,
			       struct vblk_dev *d, char *buf, char *check,
			       pthread_t *tid)
{
	long long copied0;
	int i;

	read_and_swap_out(_metadata, d, buf, check, 0, 1);
	copied0 = ts_mapper_stat("slots_copied");
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/swap_mapper_delay_copies_ms",
				  "20"));
	ASSERT_EQ(0, pthread_create(tid, NULL, detach_thread, d));
	for (i = 0; i < 3000 && ts_mapper_stat("slots_copied") == copied0;
	     i++)
		usleep(10000);
}

/*
 * The image attached again, through another device, while its last
 * detach copies (each copy delayed through debugfs), and detached again:
 * the first detach stops, and the second copies the rest. Every page
 * keeps its bytes, and nothing stays mapped.
 */
TEST_F_TIMEOUT(map, attach_and_detach_during_a_detach, 300)
{
	long long copied0 = ts_mapper_stat("slots_copied");
	struct vblk_dev other;
	pthread_t tid;
	void *ret;
	int fd;

	slow_detach_begins(_metadata, &self->dev, self->buf, self->check,
			   &tid);
	fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd);
	vblk_init(&other);
	ASSERT_EQ(0, vblk_open_disk(&other, 4 << 20, fd, 0x5eed0002));
	/* The detach had begun, and had not finished. */
	EXPECT_LT(copied0, ts_mapper_stat("slots_copied"));
	EXPECT_LT(0, ts_mapper_stat("slots_mapped"));
	vblk_close_disk(&other, fd, 0);
	ASSERT_EQ(0, pthread_join(tid, &ret));
	ASSERT_EQ(NULL, ret);
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/swap_mapper_delay_copies_ms",
				  "0"));
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("slots_copied") - copied0);
	EXPECT_EQ(0, ts_mapper_stat("slots_mapped"));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_mismatches"));
	ASSERT_EQ(0, vblk_set_backend(&self->dev, self->disk_fd));
}

/*
 * The pages freed while their image's detach copies them (each copy
 * delayed through debugfs): the last slot freed leaves the image unused,
 * but the detach still walks it, so the image must outlive the detach
 * (a use after free in the debug kernel's KASAN otherwise). The kernel
 * hands freed slots to the device 64 at a time per CPU (its swap slot
 * cache): on one CPU, freeing more pages after them pushes the last
 * ones out.
 */
TEST_F_TIMEOUT(map, pages_freed_during_a_detach, 300)
{
	long long copied0 = ts_mapper_stat("slots_copied");
	cpu_set_t one, all;
	pthread_t tid;
	void *ret;

	slow_detach_begins(_metadata, &self->dev, self->buf, self->check,
			   &tid);
	ASSERT_EQ(0, sched_getaffinity(0, sizeof(all), &all));
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(one), &one));
	ASSERT_EQ(0, madvise(self->check, PAGES * PAGE, MADV_DONTNEED));
	ts_fill_pages(self->buf, PAGES, TAG, 2);
	ASSERT_TRUE(page_out(self->buf, PAGES * PAGE));
	ASSERT_EQ(0, madvise(self->buf, PAGES * PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(all), &all));
	/* The frees overtook the copies: the detach had not finished. */
	EXPECT_GT((long long)PAGES / 2, ts_mapper_stat("slots_copied") -
					copied0);
	ASSERT_EQ(0, pthread_join(tid, &ret));
	ASSERT_EQ(NULL, ret);
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/swap_mapper_delay_copies_ms",
				  "0"));
	EXPECT_EQ(0, ts_mapper_stat("slots_mapped"));
	ASSERT_EQ(0, vblk_set_backend(&self->dev, self->disk_fd));
	/* The image is followed again, from scratch. */
	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  3);
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("slots_mapped"));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 3));
}

/*
 * Swapoff reads every slot in: the mapped ones from the image.
 */
TEST_F_TIMEOUT(map, swapoff_reads_mapped_pages_from_the_image, 300)
{
	long long from_images0;

	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	from_images0 = ts_mapper_stat("swap_ins_from_images");
	ASSERT_EQ(0, swapoff("/dev/tsswap0"));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("swap_ins_from_images") - from_images0);
	EXPECT_EQ(0, ts_mapper_stat("slots_mapped"));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	ASSERT_EQ(0, swapon("/dev/tsswap0", 0));
}

/*
 * A page of another memory cgroup (another VM) that holds the same bytes
 * as this guest's disk block is written as usual: a VM's pages map only to
 * disks read into pages of its own cgroup.
 */
TEST_F_TIMEOUT(map, another_cgroups_identical_page_is_not_mapped, 300)
{
	long long mapped0, writes0;
	int status;
	pid_t pid;

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	writes0 = ts_swapdev_counter("writes");
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		char *p;

		if (ts_cgroup_enter(OTHER_CGROUP))
			_exit(2);
		p = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			_exit(3);
		ts_fill_pages(p, PAGES, TAG, 1);
		if (ts_push_to_swap(OTHER_CGROUP, p, PAGES * PAGE))
			_exit(4);
		_exit(ts_bad_pages(p, PAGES, TAG, 1) ? 5 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ts_cgroup_leave(OTHER_CGROUP);
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child status %#x", status);
	EXPECT_EQ(0, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_LE((long long)PAGES, ts_swapdev_counter("writes") - writes0);
	/* The guest's own pages, the same bytes, do map. */
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

/*
 * Two blocks with the same bytes: a page read from either may map to
 * either, and writes of both leave both pages their bytes.
 */
TEST_F_TIMEOUT(map, two_blocks_with_the_same_bytes, 300)
{
	__u64 other = PAGES * SECTORS * 4;
	char *twin = self->buf;
	long long copies0;

	/* The same pattern (tag and version) at 0 and at other. */
	ts_fill_pages(self->buf, PAGES, TAG, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, other,
				   self->buf, PAGES, false));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	ASSERT_EQ(0, disk_read(&self->dev, twin, other));
	copies0 = ts_mapper_stat("copies_before_writes");
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	ASSERT_TRUE(page_out(twin, PAGES * PAGE));
	EXPECT_EQ((long long)(2 * PAGES), ts_mapper_stat("slots_mapped"));
	/* Zeroes over both, through the guest. */
	EXPECT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_WRITE_ZEROES, 0,
				  PAGES * SECTORS, 0));
	EXPECT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_WRITE_ZEROES, other,
				  PAGES * SECTORS, 0));
	EXPECT_EQ(0, ts_mapper_stat("slots_mapped"));
	EXPECT_LE((long long)PAGES, ts_mapper_stat("copies_before_writes") - copies0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	EXPECT_EQ(0UL, ts_bad_pages(twin, PAGES, TAG, 1));
}

/*
 * Two devices on one image (two ids, one inode): a write through either
 * copies the pages mapped through the other first.
 */
TEST_F_TIMEOUT(map, a_write_through_another_device_of_the_image_copies, 300)
{
	struct vblk_dev other;
	long long copies0;
	char *obuf;
	int fd;

	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd);
	vblk_init(&other);
	ASSERT_EQ(0, vblk_open_disk(&other, GUEST_RAM, fd, 0x5eed0001));
	obuf = vblk_alloc(&other, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, obuf);
	copies0 = ts_mapper_stat("copies_before_writes");
	ts_fill_pages(obuf, PAGES, TAG, 2);
	EXPECT_EQ(0, vblk_io_pages(&other, VIRTIO_BLK_T_OUT, 0, obuf, PAGES,
				   false));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("copies_before_writes") - copies0);
	vblk_close_disk(&other, fd, 0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_mismatches"));
}

/*
 * A guest write of swapped-out pages that map to disk blocks takes the
 * ordinary path (their bytes are in no store block to reference), and
 * writes what the pages hold.
 */
TEST_F_TIMEOUT(map, reconciliation_falls_back_for_mapped_pages, 300)
{
	__u64 other = PAGES * SECTORS * 8;
	long long fallback0 = ts_vhost_counter("fallback_swap_mapped");

	read_and_swap_out(_metadata, &self->dev, self->buf, self->check, 0,
			  1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, other,
				   self->check, PAGES, false));
	EXPECT_EQ((long long)PAGES,
		  ts_vhost_counter("fallback_swap_mapped") - fallback0);
	EXPECT_EQ(0, ts_vhost_counter("reconciled_pages"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, other,
				   self->buf, PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, TAG, 1));
}

/*
 * Guest RAM in a memfd (vhost-user's) is not mapped: at swap-out a shmem
 * page has left its file, and could be a page of a tmpfs image itself,
 * which must never map to its own block. Its pages are written, and come
 * back whole.
 */
TEST_F_TIMEOUT(map, memfd_guest_ram_is_written, 300)
{
	long long mapped0, writes0;

	vblk_close(&self->dev);
	vblk_init(&self->dev);
	vblk_memfd_ram = true;
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	vblk_memfd_ram = false;
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->check);

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	EXPECT_LT(0, ts_mapper_stat("fingerprints_held"));
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	writes0 = ts_swapdev_counter("writes");
	ASSERT_EQ(0UL, ts_push_to_swap(CGROUP, self->check, PAGES * PAGE));
	EXPECT_EQ(0, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_LE((long long)PAGES, ts_swapdev_counter("writes") - writes0);
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 2));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
}

/*
 * An image on tmpfs: its own pages go to swap too, as shmem, and never map
 * to themselves; guest pages read from it map, and a write copies them.
 */
TEST_F_TIMEOUT(map, tmpfs_image_maps_and_copies, 300)
{
	const char *path = TMPFS "/image";
	long long mapped0, copies0;
	int fd;

	ASSERT_EQ(0, ts_system("mkdir -p " TMPFS " && mount -t tmpfs ts-mapper " TMPFS));
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	self->disk_fd = -1;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, fd);
	unlink(path);
	ASSERT_EQ(0, ftruncate(fd, 4 * PAGES * PAGE));
	vblk_init(&self->dev);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, fd, 0));
	self->disk_fd = fd;
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->check);

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	copies0 = ts_mapper_stat("copies_before_writes");
	/* The whole group: the image's own pages go to swap as well. */
	ASSERT_EQ(0UL, ts_push_to_swap(CGROUP, self->check, PAGES * PAGE));
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("swap_outs_mapped") - mapped0);
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 2));
	EXPECT_EQ((long long)PAGES,
		  ts_mapper_stat("copies_before_writes") - copies0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 2));
	EXPECT_EQ(0, ts_mapper_stat("swap_in_mismatches"));
	/* Lazily: the image is open until the device closes. */
	ts_system_quiet("umount -l " TMPFS);
}

/* True if a huge page maps @p (the "AnonHugePages" of its mapping). */
static bool huge_page_at(void *p)
{
	unsigned long start, end, kb;
	bool in = false, found = false;
	char line[256];
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			in = (unsigned long)p >= start && (unsigned long)p < end;
		else if (in && sscanf(line, "AnonHugePages: %lu kB", &kb) == 1)
			found = kb >= HUGE >> 10;
	}
	fclose(f);
	return found;
}

/*
 * A huge page of guest RAM that the guest filled from its disk: each of
 * its pages maps on its own, whether the huge page goes out whole or
 * split, and a write of the blocks copies every one.
 */
TEST_F_TIMEOUT(map, huge_pages_map_page_by_page, 300)
{
	const unsigned long pages = HUGE / PAGE, half = pages / 2;
	long long mapped0, copies0;
	char *raw, *p;

	if (ts_system("grep -q '\\[never\\]' /sys/kernel/mm/transparent_hugepage/enabled") == 0)
		SKIP(return, "transparent huge pages are disabled");
	raw = vblk_alloc(&self->dev, 2 * HUGE, PAGE);
	ASSERT_NE(NULL, raw);
	p = (char *)(((unsigned long)raw + HUGE - 1) & ~(HUGE - 1));
	ASSERT_EQ(0, madvise(p, HUGE, MADV_HUGEPAGE));
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, half * SECTORS, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, p, pages,
				   false));
	if (!huge_page_at(p))
		SKIP(return, "no huge page backs the buffer");
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	copies0 = ts_mapper_stat("copies_before_writes");
	ASSERT_TRUE(page_out(p, HUGE));
	EXPECT_EQ((long long)pages, ts_mapper_stat("swap_outs_mapped") - mapped0);
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 2));
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, half * SECTORS, 2));
	EXPECT_EQ((long long)pages,
		  ts_mapper_stat("copies_before_writes") - copies0);
	EXPECT_EQ(0UL, ts_bad_pages(p, half, TAG, 1));
	EXPECT_EQ(0UL, ts_bad_pages(p + half * PAGE, half,
				    TAG + half * SECTORS, 1));
}

/*
 * VHOST_BLK_SET_SWAP_MAPPER: off, the device's reads leave no
 * fingerprints, so nothing maps; values other than 0 and 1 are refused.
 */
TEST_F_TIMEOUT(map, the_device_switch_turns_fingerprints_off, 300)
{
	long long added0, mapped0;
	int on = 0;

	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_SET_SWAP_MAPPER, &on));
	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	added0 = ts_mapper_stat("fingerprints_added");
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	EXPECT_EQ(0, ts_mapper_stat("fingerprints_added") - added0);
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ(0, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, TAG, 1));
	/* On again: the same read leaves fingerprints, and the pages map. */
	on = 1;
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_SET_SWAP_MAPPER, &on));
	ASSERT_EQ(0, disk_read(&self->dev, self->check, 0));
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("fingerprints_added") - added0);
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("swap_outs_mapped") - mapped0);
	on = 2;
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_SWAP_MAPPER, &on));
	EXPECT_EQ(EINVAL, errno);
}

/*
 * The fingerprints take the memory swap_mapper_mib gives them and no
 * more: the oldest go first, and the newest still map.
 */
TEST_F_TIMEOUT(map, fingerprints_are_bounded_oldest_first, 600)
{
	long long cap, added0, mapped0;
	unsigned long rounds, i;

	/* Again, with the smallest table. */
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_swap_down();
	ASSERT_EQ(0, ts_swap_up(PARAMS " swap_mapper_mib=1"));
	vblk_init(&self->dev);
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->check);

	cap = ts_mapper_stat("fingerprints_capacity");
	ASSERT_LT(1000, cap);
	ASSERT_GT(20000, cap);
	rounds = (cap + PAGES - 1) / PAGES + 2;
	ASSERT_GE(DISK_SECTORS, rounds * PAGES * SECTORS);
	added0 = ts_mapper_stat("fingerprints_added");
	for (i = 0; i < rounds; i++) {
		ASSERT_EQ(0, disk_write(&self->dev, self->buf,
					i * PAGES * SECTORS, 1));
		ASSERT_EQ(0, disk_read(&self->dev, self->check,
				       i * PAGES * SECTORS));
	}
	EXPECT_EQ((long long)(rounds * PAGES),
		  ts_mapper_stat("fingerprints_added") - added0);
	EXPECT_EQ(cap, ts_mapper_stat("fingerprints_held"));
	EXPECT_EQ((long long)(rounds * PAGES) - cap,
		  ts_mapper_stat("fingerprints_evicted"));
	/* The last read is the newest: it maps. */
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	ASSERT_TRUE(page_out(self->check, PAGES * PAGE));
	EXPECT_EQ((long long)PAGES, ts_mapper_stat("swap_outs_mapped") - mapped0);
	/* The first read's went: pages with those bytes are written. */
	ts_fill_pages(self->buf, PAGES, TAG, 1);
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	ASSERT_TRUE(page_out(self->buf, PAGES * PAGE));
	EXPECT_EQ(0, ts_mapper_stat("swap_outs_mapped") - mapped0);
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, TAG, 1));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES,
				    TAG + (rounds - 1) * PAGES * SECTORS, 1));
	/* A discard of more blocks than the table has scans it: all go. */
	ASSERT_LT(0, ts_mapper_stat("fingerprints_held"));
	ASSERT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_DISCARD, 0,
				  rounds * PAGES * SECTORS, 0));
	EXPECT_EQ(0, ts_mapper_stat("fingerprints_held"));
}

static const struct {
	const char *params;
	int err;
	const char *message;
} bad_params[] = {
	{ "swap_mapper_mib=0", -ERANGE, "swap_mapper_mib=0: not between 1 and" },
	{ "swap_mapper_mib=4097", -ERANGE,
	  "swap_mapper_mib=4097: not between 1 and 4096" },
	{ "swap_mapper_mib=lots", -EINVAL, "swap_mapper_mib=lots: not a number" },
};

TEST(bad_parameters_refused)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_params); i++)
		EXPECT_EQ(0, ts_load_refused(bad_params[i].params,
					     bad_params[i].err,
					     bad_params[i].message));
}

/*
 * The image behind dm-delay, whose reads can be made slow, and a guest
 * with two queues.
 */
#define SLOW_IMAGE	"ts-map-image"
#define SLOW_READ_MS	1000

FIXTURE(slow_image) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf;
	unsigned long long sectors;
};

FIXTURE_SETUP(slow_image)
{
	unsigned long long bytes = 0;
	char table[128], image[64];
	int fd;

	vblk_init(&self->dev);
	self->disk_fd = -1;
	fd = open(DISK, O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, BLKGETSIZE64, &bytes));
	close(fd);
	snprintf(table, sizeof(table), "0 %llu delay " DISK " 0 0", bytes >> 9);
	ASSERT_EQ(0, ts_dm_create(SLOW_IMAGE, table, image, sizeof(image)));
	self->sectors = bytes >> 9;
	ASSERT_EQ(0, ts_swap_up(PARAMS));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(image, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk_mq(&self->dev, GUEST_RAM, 2,
				       self->disk_fd, 0));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(slow_image)
{
	if (self->sectors)
		ts_dm_delay(SLOW_IMAGE, DISK, self->sectors, 0, 0);
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	ts_dm_remove(SLOW_IMAGE);
}

struct queued_read {
	struct vblk_dev *dev;
	int queue;
	char *buf;		/* reads block @queue into it */
	double end;
	int ret;
};

static void *queued_read_thread(void *arg)
{
	struct queued_read *r = arg;

	r->ret = vblk_rw(r->dev, r->queue, VIRTIO_BLK_T_IN, r->queue * SECTORS,
			 r->buf, PAGE, 0, false);
	r->end = ts_now();
	return NULL;
}

/*
 * A read the mapper follows goes through bounce pages, a synchronous read
 * of the image. Served in the vhost worker, such reads ran one at a time
 * and held up every queue of the device. Two of them on two queues, each
 * a second long: they overlap, and both pages were fingerprinted (they
 * swap out with no write).
 */
TEST_F_TIMEOUT(slow_image, fingerprinted_reads_run_side_by_side, 120)
{
	struct queued_read r[2];
	pthread_t thread[2];
	long long added, mapped;
	double start, first, last;
	int i;

	ASSERT_EQ(0, disk_write(&self->dev, self->buf, 0, 1));
	ASSERT_EQ(0, ts_dm_delay(SLOW_IMAGE, DISK, self->sectors,
				 SLOW_READ_MS, 0));
	added = ts_mapper_stat("fingerprints_added");
	start = ts_now();
	for (i = 0; i < 2; i++) {
		r[i] = (struct queued_read){
			.dev = &self->dev, .queue = i,
			.buf = self->buf + i * PAGE,
		};
		ASSERT_EQ(0, pthread_create(&thread[i], NULL,
					    queued_read_thread, &r[i]));
	}
	for (i = 0; i < 2; i++)
		pthread_join(thread[i], NULL);
	EXPECT_EQ(0, ts_dm_delay(SLOW_IMAGE, DISK, self->sectors, 0, 0));
	first = (r[0].end < r[1].end ? r[0].end : r[1].end) - start;
	last = (r[0].end < r[1].end ? r[1].end : r[0].end) - start;
	TH_LOG("reads done after %.3f and %.3f s", first, last);

	ASSERT_EQ(0, r[0].ret);
	ASSERT_EQ(0, r[1].ret);
	EXPECT_LE(SLOW_READ_MS / 1000.0 * 0.9, first);
	EXPECT_GT(SLOW_READ_MS / 1000.0 * 1.5, last);
	EXPECT_EQ(added + 2, ts_mapper_stat("fingerprints_added"));
	EXPECT_TRUE(ts_check_page(self->buf, TAG, 0, 1));
	EXPECT_TRUE(ts_check_page(self->buf + PAGE, TAG, 1, 1));
	mapped = ts_mapper_stat("swap_outs_mapped");
	EXPECT_TRUE(page_out(self->buf, 2 * PAGE));
	EXPECT_EQ(mapped + 2, ts_mapper_stat("swap_outs_mapped"));
}

TEST_HARNESS_MAIN
