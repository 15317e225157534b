// SPDX-License-Identifier: GPL-2.0
/*
 * Reconciliation: a guest write of pages the host swapped out to
 * /dev/tsswap0 becomes references to their store blocks, with no swap-in
 * and no data write; reads of those blocks come from the store; nothing
 * stale or foreign ever reaches a guest disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "vblk_workload.h"

#define PAGE		4096UL
#define SECTOR		512UL
#define SECTORS		(PAGE / SECTOR)
#define CGROUP		"ts-reconcile"
#define SUBTREE_CONTROL	"/sys/fs/cgroup/cgroup.subtree_control"
#define PAGES		512UL		/* 2 MiB of guest buffers */
#define DISK		"/dev/vda"
/* Disk range the tests use, dropped (discarded) at teardown. */
#define DISK_SECTORS	(64UL << 11)	/* 64 MiB */
#define SWAPDEV_DEBUGFS	TS_DEBUGFS "/tsswap0"
/* The image test's device-mapper device. */
#define ERR_DM		"ts-rc-image"
#define ERR_SECTORS	(64UL << 11)
#define ERR_OFFSET	(128UL << 11)	/* on /dev/vda, past DISK_SECTORS */
/* Guest RAM: buffers of the tests, rings and requests. */
#define GUEST_RAM	(3 * PAGES * PAGE + (4 << 20))

FIXTURE(rc) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
};

/*
 * Touch what a guest request touches (rings, request header, our stack),
 * so that a request afterwards swaps nothing of that in.
 */
static void warm_up(struct vblk_dev *d, char *scratch)
{
	vblk_rw(d, 0, VIRTIO_BLK_T_IN, DISK_SECTORS, scratch, PAGE, 0, false);
	ts_vmstat("pswpin");
}

/*
 * The guest of a test: its RAM in CGROUP (charged to the group that first
 * touches it), DISK its disk, two buffers of PAGES pages.
 */
static void guest_open(struct __test_metadata *_metadata,
		       struct vblk_dev *dev, unsigned int nqueues, int *disk_fd,
		       char **buf, char **check)
{
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	*disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, *disk_fd);
	ASSERT_EQ(0, vblk_open_disk_mq(dev, GUEST_RAM, nqueues, *disk_fd, 0));
	*buf = vblk_alloc(dev, PAGES * PAGE, PAGE);
	*check = vblk_alloc(dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, *buf);
	ASSERT_NE(NULL, *check);
}

FIXTURE_SETUP(rc)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	guest_open(_metadata, &self->dev, 1, &self->disk_fd, &self->buf,
		   &self->check);
}

FIXTURE_TEARDOWN(rc)
{
	/*
	 * The image test's device, if it stopped half-way: gone once its
	 * files close, so that it holds /dev/vda for no later program.
	 */
	ts_system_quiet("dmsetup --noudevsync remove --deferred " ERR_DM);
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/*
 * The core case: pages in host swap, written by the guest. Every page
 * becomes a reference, nothing is swapped in, no data is written, and the
 * disk reads back the same, also after the guest pages change.
 */
TEST_F_TIMEOUT(rc, writes_of_swapped_pages_become_references, 300)
{
	long long pswpin0, written0, avoided0, swapped;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 1, 1));
	swapped = ts_vhost_counter("guest_pages_in_host_swap");
	EXPECT_LE((long long)PAGES, swapped);
	warm_up(&self->dev, self->check);

	written0 = ts_vhost_counter("bytes_written");
	/* The warm-up read was a false read: count from here. */
	avoided0 = ts_vhost_counter("swapins_avoided");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	/* Not one swap-in for the guest's writes. */
	EXPECT_EQ(pswpin0, ts_vmstat("pswpin"));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ((long long)(PAGES / VBLK_IO_PAGES),
		  ts_vhost_counter("reconciled_writes"));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ((long long)(PAGES * PAGE),
		  ts_vhost_counter("data_bytes_not_written"));
	EXPECT_EQ(avoided0 + (long long)PAGES,
		  ts_vhost_counter("swapins_avoided"));
	/* Nothing of it was written to the image. */
	EXPECT_EQ(written0, ts_vhost_counter("bytes_written"));
	/* The pages are still in swap: the write did not fault them in. */
	EXPECT_EQ(PAGES, PAGES - ts_resident_pages(self->buf, PAGES * PAGE));

	/* Reads of the references come from the store. */
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("store_reads"));

	/* Swapped back in and changed: the disk keeps what was written. */
	ts_fill_pages(self->buf, PAGES, 1, 2);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));
	/* ... and out again: into other blocks, the disk's stay. */
	ASSERT_GT(PAGES / 20, ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE));
	EXPECT_LE((long long)(2 * PAGES),
		  ts_swapdev_counter("blocks_in_use"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));

	/* Written again: the new version replaces the old references. */
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	EXPECT_LE((long long)(PAGES + PAGES * 95 / 100),
		  ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("pages_referenced"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 2));
}

/* Resident pages and misaligned buffers take the ordinary path. */
TEST_F_TIMEOUT(rc, fallbacks_are_counted_by_reason, 300)
{
	long long unaligned, reconciled;

	ts_fill_pages(self->buf, PAGES, 2, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("fallback_not_swapped"));

	/* Swapped, but the buffer starts 512 bytes into a page. */
	ASSERT_GT(PAGES / 20, ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE));
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 8192,
			     self->buf + 512, 16 * PAGE, 0, false));
	EXPECT_EQ(16, ts_vhost_counter("fallback_unaligned"));
	EXPECT_EQ(0, ts_vhost_counter("reconciled_pages"));

	/* In swap, but the swap-out not finished: MADV_PAGEOUT alone. */
	ts_fill_pages(self->buf, 16, 2, 2);
	ASSERT_EQ(0UL, ts_page_out(self->buf, 16 * PAGE));
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 0, self->buf,
			     16 * PAGE, 0, false));
	EXPECT_EQ(16, ts_vhost_counter("fallback_swapcache") +
		  ts_vhost_counter("fallback_slot_incomplete"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   16, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, 16, 2, 2));

	/*
	 * A piece of less than a page counts as unaligned on the reconciling
	 * path too, as on the ordinary one: a page and a half, the page
	 * swapped out and referenced, the half page written.
	 */
	unaligned = ts_vhost_counter("fallback_unaligned");
	reconciled = ts_vhost_counter("reconciled_pages");
	ts_fill_pages(self->buf + PAGE, 1, 2, 4);
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, 1, 2, 4));
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 0, self->buf,
			     PAGE + PAGE / 2, 0, false));
	EXPECT_EQ(reconciled + 1, ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ(unaligned + 1, ts_vhost_counter("fallback_unaligned"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   2, false));
	EXPECT_EQ(0, memcmp(self->check, self->buf, PAGE + PAGE / 2));
}

/*
 * The window of DESIGN section 4, held open: a page swapped in, dirtied
 * and swapped out again to the same slot, whose PTE is already the swap
 * entry while the slot still holds the old contents. A guest write then
 * must not reference the slot.
 */
struct pageout_arg {
	char *page;
};

static void *pageout_thread(void *p)
{
	struct pageout_arg *arg = p;

	madvise(arg->page, PAGE, MADV_PAGEOUT);
	return NULL;
}

TEST_F_TIMEOUT(rc, stale_slot_is_never_referenced, 300)
{
	struct pageout_arg arg = { self->buf };
	pthread_t thread;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, 1, 3, 1));
	/* A read fault keeps the slot and the swap-cache folio ... */
	ASSERT_TRUE(ts_check_page(self->buf, 3, 0, 1));
	/* ... a write dirties it in place: the slot still holds version 1. */
	ts_fill_page(self->buf, 3, 0, 2);

	ASSERT_EQ(0, ts_write_str(SWAPDEV_DEBUGFS "/delay_writes_ms", "2000"));
	ASSERT_EQ(0, pthread_create(&thread, NULL, pageout_thread, &arg));
	/* Enough for the page to be unmapped and its write to be held. */
	usleep(500000);
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 0, self->buf,
			     PAGE, 0, false));
	ts_write_str(SWAPDEV_DEBUGFS "/delay_writes_ms", "0");
	pthread_join(thread, NULL);

	EXPECT_EQ(0, ts_vhost_counter("reconciled_pages"));
	/*
	 * Two guards see this window: the swap-out hook made the slot
	 * incomplete when the swap-out began, and the folio is still in the
	 * swap cache. The first one checked counts.
	 */
	EXPECT_EQ(1, ts_vhost_counter("fallback_slot_incomplete") +
		  ts_vhost_counter("fallback_swapcache"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   1, false));
	EXPECT_TRUE(ts_check_page(self->check, 3, 0, 2));
}

/*
 * The same race, unforced, in a loop: one thread swaps pages in, dirties
 * and swaps them out again while the guest writes them. The guest never
 * changes a page under its own write, so what reaches the disk must be
 * exactly the version the page had when the write was submitted.
 */
TEST_F_TIMEOUT(rc, stale_slot_race_in_a_loop, 600)
{
	struct vblk_race_result res;

	ASSERT_EQ(0, vblk_race(&self->dev, self->buf, self->check, CGROUP,
			       400, &res));
	TH_LOG("%lu writes: %lld reconciled, %lld swap-cache fallbacks, %lld incomplete",
	       res.writes, ts_vhost_counter("reconciled_pages"),
	       ts_vhost_counter("fallback_swapcache"),
	       ts_vhost_counter("fallback_slot_incomplete"));
	EXPECT_EQ(0UL, res.wrong);
	EXPECT_EQ(0UL, res.stale);
	EXPECT_EQ(0UL, res.torn);
	/* The race was run, not avoided. */
	EXPECT_LT(0, ts_vhost_counter("reconciled_pages"));
}

/*
 * Two guests, each with its own device and disk id, under heavy host swap:
 * every page tagged with its owner and version. Nothing foreign or stale
 * is ever read back.
 */
#define ISO_PAGES	1024UL
#define ISO_OPS		6000

static int isolated_guest(int owner)
{
	__u64 base = (__u64)owner * ISO_PAGES * SECTORS;
	long long reconciled;
	struct vblk_dev d;
	char group[32];
	long bad;
	int fd;

	snprintf(group, sizeof(group), CGROUP "-%d", owner);
	if (ts_cgroup_enter(group) ||
	    ts_cgroup_write(group, "memory.max", "3M"))
		return 2;
	fd = open(DISK, O_RDWR | O_DIRECT);
	if (fd < 0 || vblk_open_disk(&d, GUEST_RAM, fd, 100 + owner))
		return 2;
	bad = vblk_isolated_guest(&d, owner, base, ISO_PAGES, ISO_OPS, 500);
	if (bad < 0)
		return 2;
	reconciled = ts_disk_counter(100 + owner, "reconciled_pages");
	printf("# guest %d: %ld bad pages, %lld writes reconciled\n", owner,
	       bad, reconciled);
	vblk_discard(&d, VIRTIO_BLK_T_DISCARD, base, ISO_PAGES * SECTORS, 0);
	vblk_close(&d);
	close(fd);
	ts_cgroup_leave(group);
	/* Heavy swap must have made the guest's writes reconcile. */
	return bad || reconciled <= 0 ? 1 : 0;
}

TEST_F_TIMEOUT(rc, two_guests_never_see_each_other, 900)
{
	int owner, status, failed = 0;
	pid_t pid[2];

	for (owner = 0; owner < 2; owner++) {
		pid[owner] = fork();
		ASSERT_LE(0, pid[owner]);
		if (!pid[owner])
			_exit(isolated_guest(owner + 1));
	}
	for (owner = 0; owner < 2; owner++) {
		ASSERT_EQ(pid[owner], waitpid(pid[owner], &status, 0));
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	EXPECT_EQ(0, failed);
	/* Both guests' references are gone with their discards. */
	EXPECT_EQ(0, ts_swapdev_counter("write_errors"));
}

/* Partial writes, discards and write-zeroes over referenced blocks. */
TEST_F_TIMEOUT(rc, partial_writes_discards_and_zeroes_merge, 300)
{
	char *expect = malloc(16 * PAGE);
	char *c = self->check;

	ASSERT_NE(NULL, expect);
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, 16, 5, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   16, false));
	ASSERT_EQ(16, ts_vhost_counter("pages_referenced"));
	ts_fill_pages(expect, 16, 5, 1);

	/* 512 bytes into block 1: the rest of the block is kept. */
	memset(c, 0x11, 512);
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, SECTORS + 1, c,
			     512, 0, false));
	memset(expect + PAGE + 512, 0x11, 512);
	/* A write straddling blocks 2 and 3 from an unaligned buffer. */
	memset(c + 100, 0x22, PAGE);
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 2 * SECTORS + 4,
			     c + 100, PAGE, 0, false));
	memset(expect + 2 * PAGE + 2048, 0x22, PAGE);
	/* Write-zeroes of half of block 4, all of block 5. */
	ASSERT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_WRITE_ZEROES,
				  4 * SECTORS + 4, 4 + SECTORS, 0));
	memset(expect + 4 * PAGE + 2048, 0, 2048 + PAGE);
	/* Discard of block 6: its reference goes. */
	ASSERT_EQ(0, vblk_discard(&self->dev, VIRTIO_BLK_T_DISCARD,
				  6 * SECTORS, SECTORS, 0));
	/* A plain (resident) write over block 7. */
	ts_fill_page(c, 5, 7, 9);
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 7 * SECTORS, c,
			     PAGE, 0, false));
	ts_fill_page(expect + 7 * PAGE, 5, 7, 9);

	/* Blocks 1 to 5 and 7 lost their references, 6 was discarded. */
	EXPECT_EQ(16 - 7, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ(4, ts_vhost_counter("merged_blocks"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, c, 16,
				   false));
	/* Block 6 was discarded: its contents are undefined. */
	EXPECT_EQ(0, memcmp(c, expect, 6 * PAGE));
	EXPECT_EQ(0, memcmp(c + 7 * PAGE, expect + 7 * PAGE, 9 * PAGE));
	/* A read starting mid-block of a reference. */
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, 8 * SECTORS + 3,
			     c, 2 * PAGE, 0, false));
	EXPECT_EQ(0, memcmp(c, expect + 8 * PAGE + 1536, 2 * PAGE));
	free(expect);
}

/*
 * References outlive swapoff, detach, close and unload: loaded again on
 * the same store, the disk id gets them back with their contents.
 */
TEST_F_TIMEOUT(rc, references_survive_swapoff_close_and_reload, 300)
{
	struct vblk_dev d2;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 6, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	ASSERT_EQ((long long)PAGES, ts_vhost_counter("pages_referenced"));

	ASSERT_EQ(0, swapoff("/dev/tsswap0"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 6, 1));
	/* No guest flush: detaching commits the references itself. */
	ASSERT_EQ(0, vblk_set_backend(&self->dev, -1));
	vblk_close(&self->dev);
	ASSERT_EQ(0, ts_module_unload());
	ASSERT_EQ(0, ts_module_load("backing=/dev/vdb"));

	vblk_init(&d2);
	ASSERT_EQ(0, vblk_open_disk(&d2, GUEST_RAM, self->disk_fd, 0));
	self->dev = d2;
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("pages_referenced"));
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->check);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 6, 1));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("store_reads"));
}

/* Guest pages of version @version written as references at @sector. */
static void write_swapped(struct __test_metadata *_metadata,
			  struct vblk_dev *d, char *buf, __u64 sector,
			  unsigned long tag, unsigned long version)
{
	ASSERT_GT(PAGES / 20, ts_fill_and_push(CGROUP, buf, PAGES, tag,
					       version));
	ASSERT_EQ(0, vblk_io_pages(d, VIRTIO_BLK_T_OUT, sector, buf, PAGES,
				   false));
}

/*
 * A guest that never flushes: once enough changes are pending, the commit
 * worker makes them durable, not a guest request (an image fsync and a
 * journal write: the slowest requests of bench-dp when done inline).
 */
TEST_F_TIMEOUT(rc, unflushed_changes_are_committed_in_the_background, 300)
{
	__u64 id = 0;
	long long durable = 0;
	int i;

	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_GET_DISK_ID, &id));
	/*
	 * Three rounds of 512 changes, at least 95 % of them references: the
	 * 1024th comes in round 3 at the latest, when the worker commits
	 * everything pending, rounds 1 and 2 whole.
	 */
	for (i = 1; i <= 3; i++)
		write_swapped(_metadata, &self->dev, self->buf, 0, 8, i);
	EXPECT_LE((long long)(3 * PAGES * 95 / 100),
		  ts_vhost_counter("reconciled_pages"));
	for (i = 0; i < 300 && durable < (long long)(PAGES * 9 / 10); i++) {
		usleep(100 * 1000);
		durable = ts_durable_refs(id);
	}
	EXPECT_LE((long long)(PAGES * 9 / 10), durable);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 8, 3));
}

/*
 * A write that changes references runs in a kworker of the device
 * (reference_writes_do_not_stall_other_queues below), whose own I/O would
 * be the root group's: the image's I/O it does is charged to the guest's
 * group, which the vhost worker joined. Here each block of the write drops
 * a reference, and its data is written by the kworker.
 */
TEST_F_TIMEOUT(rc, reference_writes_charge_the_guests_io_cgroup, 300)
{
	long long wbytes, dropped;
	char controllers[256] = "";

	ASSERT_EQ(0, ts_read_str(SUBTREE_CONTROL, controllers,
				 sizeof(controllers)));
	ASSERT_EQ(0, ts_write_str(SUBTREE_CONTROL, "+io"));
	write_swapped(_metadata, &self->dev, self->buf, 0, 14, 1);
	ASSERT_LE((long long)(PAGES * 95 / 100),
		  ts_vhost_counter("reconciled_pages"));
	/* Resident now: a write of them drops the references. */
	ts_fill_pages(self->buf, PAGES, 14, 2);
	dropped = ts_vhost_counter("dropped_references");
	wbytes = ts_cgroup_io_stat(CGROUP, DISK, "wbytes");
	ASSERT_LE(0, wbytes);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	dropped = ts_vhost_counter("dropped_references") - dropped;
	wbytes = ts_cgroup_io_stat(CGROUP, DISK, "wbytes") - wbytes;
	TH_LOG("%lld references dropped, %lld bytes written charged to the group",
	       dropped, wbytes);
	EXPECT_LE((long long)(PAGES * 95 / 100), dropped);
	EXPECT_LE((long long)(PAGES * PAGE), wbytes);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 14, 2));
	/* As it was, for the programs after this one. */
	if (!strstr(controllers, "io"))
		EXPECT_EQ(0, ts_write_str(SUBTREE_CONTROL, "-io"));
}

/*
 * The store on a device-mapper device over /dev/vdb, whose writes or reads
 * can be made slow: a commit's journal write, or a read of a referenced
 * block, then takes seconds.
 */
#define SLOW_DM		"ts-rc-store"
#define SLOW_WRITE_MS	5000
#define SLOW_READ_MS	2000
#define QUEUES		3

FIXTURE(slow_store) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
	unsigned long long store_sectors;
};

/* Reads of the store take @read_ms, writes @write_ms. */
static int store_delay(struct _test_data_slow_store *self,
		       unsigned int read_ms, unsigned int write_ms)
{
	return ts_dm_delay(SLOW_DM, "/dev/vdb", self->store_sectors, read_ms,
			   write_ms);
}

FIXTURE_SETUP(slow_store)
{
	unsigned long long bytes = 0;
	char table[128], store[64], params[96];
	int fd;

	vblk_init(&self->dev);
	self->disk_fd = -1;
	ts_module_ensure_unloaded();
	fd = open("/dev/vdb", O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, BLKGETSIZE64, &bytes));
	close(fd);
	self->store_sectors = bytes >> 9;
	ASSERT_EQ(0, ts_format("/dev/vdb"));
	snprintf(table, sizeof(table), "0 %llu delay /dev/vdb 0 0",
		 self->store_sectors);
	ASSERT_EQ(0, ts_dm_create(SLOW_DM, table, store, sizeof(store)));
	snprintf(params, sizeof(params), "backing=%s", store);
	ASSERT_EQ(0, ts_swap_up_on_store(params));
	/* Queues for the requests side by side of the tests below. */
	guest_open(_metadata, &self->dev, QUEUES, &self->disk_fd, &self->buf,
		   &self->check);
}

FIXTURE_TEARDOWN(slow_store)
{
	if (self->store_sectors)
		store_delay(self, 0, 0);
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	ts_dm_remove(SLOW_DM);
}

/*
 * A commit writes the journal while the guest's requests go on: none waits
 * for the journal's write, however slow the store. Each change of the
 * references logs a record under the disk's mutex; a commit holding that
 * mutex over its journal write stalled every request of the disk for as
 * long (bench-dp's slowest requests).
 */
TEST_F_TIMEOUT(slow_store, requests_do_not_wait_for_the_journal, 300)
{
	const unsigned long per_req = 32, first = 448;
	const unsigned long chunks = PAGES / per_req;
	double t, worst = 0, start, committed = 0;
	int i, bad, reqs = 0, overlapped = 0;
	unsigned long p;
	__u64 id = 0;

	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_GET_DISK_ID, &id));
	/*
	 * 1 + 512 + 448 records pending, just short of the 1024 at which the
	 * commit worker starts; then 512 more, the 64th of which starts it.
	 */
	write_swapped(_metadata, &self->dev, self->buf, 0, 10, 1);
	ASSERT_GT(PAGES / 20, ts_fill_and_push(CGROUP, self->buf, PAGES, 10,
					       2));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT,
				   PAGES * SECTORS, self->buf, first, false));
	EXPECT_EQ(0, ts_durable_refs(id));
	ASSERT_GT(PAGES / 20, ts_fill_and_push(CGROUP, self->buf, PAGES, 10,
					       3));
	ts_fill_pages(self->check, PAGES, 11, 1);
	/* Reads stay fast: only the journal (and swap-outs) wait. */
	ASSERT_EQ(0, store_delay(self, 0, SLOW_WRITE_MS));

	start = ts_now();
	for (p = 0; p < PAGES; p += per_req) {
		t = ts_now();
		ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT,
				     (2 * PAGES + p) * SECTORS,
				     self->buf + p * PAGE, per_req * PAGE, 0,
				     false));
		t = ts_now() - t;
		worst = t > worst ? t : worst;
	}
	/*
	 * The worker writes the journal now, each store write SLOW_WRITE_MS.
	 * Meanwhile plain writes over the first references drop them, each
	 * drop a record logged under the disk's mutex, until the commit is
	 * seen done.
	 */
	for (i = 0; !committed && ts_now() - start < 120; i++) {
		t = ts_now();
		ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT,
				     (i % chunks) * per_req * SECTORS,
				     self->check + (i % chunks) * per_req *
						   PAGE,
				     per_req * PAGE, 0, false));
		t = ts_now() - t;
		worst = t > worst ? t : worst;
		reqs++;
		if (ts_durable_refs(id) >= (long long)(PAGES + first))
			committed = ts_now() - start;
		else if (ts_now() - start > SLOW_WRITE_MS / 1000.0)
			overlapped++;
	}
	TH_LOG("commit done after %.2f s, %d requests after its first write, slowest %.3f s",
	       committed, overlapped, worst);
	/* It was slow, and requests overlapped it: none waited for it. */
	ASSERT_LT(0, committed);
	EXPECT_LE(SLOW_WRITE_MS / 1000.0, committed);
	EXPECT_LE(3, overlapped);
	EXPECT_GT(SLOW_WRITE_MS / 1000.0 / 2, worst);

	ASSERT_EQ(0, store_delay(self, 0, 0));
	/* The disk holds what each request wrote last. */
	p = (reqs < (int)chunks ? (unsigned long)reqs : chunks) * per_req;
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, p, 11, 1));
	for (bad = 0; p < PAGES; p++)
		bad += !ts_check_page(self->buf + p * PAGE, 10, p, 1);
	EXPECT_EQ(0, bad);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN,
				   PAGES * SECTORS, self->buf, first, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, first, 10, 2));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN,
				   2 * PAGES * SECTORS, self->buf, PAGES,
				   false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 10, 3));
}

/* A request, from a thread of its own. */
struct slow_request {
	struct vblk_dev *dev;
	unsigned int queue;
	int type;		/* VIRTIO_BLK_T_IN, _OUT or _FLUSH */
	unsigned long block;
	char *buf;
	size_t len;
	double end;
	int ret;
};

static void *slow_request_thread(void *arg)
{
	struct slow_request *r = arg;

	r->ret = vblk_rw(r->dev, r->queue, r->type, r->block * SECTORS, r->buf,
			 r->len, 0, false);
	r->end = ts_now();
	return NULL;
}

/*
 * Guest pages of tag 12 written as references to blocks [0, PAGES), one
 * page of tag 13 written to the image at block 2 * PAGES: returns the
 * first block a read of which is a store read. @scratch: two pages.
 */
static unsigned long store_and_image_blocks(struct __test_metadata *_metadata,
					    struct _test_data_slow_store *self,
					    char *scratch)
{
	unsigned long block;
	long long reads;

	write_swapped(_metadata, &self->dev, self->buf, 0, 12, 1);
	EXPECT_LE((long long)(PAGES * 95 / 100),
		  ts_vhost_counter("reconciled_pages"));
	for (block = 0; block < PAGES; block++) {
		reads = ts_vhost_counter("store_reads");
		EXPECT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN,
				     block * SECTORS, scratch, PAGE, 0,
				     false));
		if (ts_vhost_counter("store_reads") > reads)
			break;
	}
	ts_fill_pages(scratch + PAGE, 1, 13, 1);
	EXPECT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT,
				   2 * PAGES * SECTORS, scratch + PAGE, 1,
				   false));
	return block;
}

/*
 * Start @r (and @also, if not NULL), whose store reads take SLOW_READ_MS,
 * and wait for them to be in flight (the device counts them), for up to
 * half of that; then read @block on the last queue into @buf. Returns the
 * count in flight seen; *@start is when @r started, *@read how long the
 * read took.
 */
static long long read_beside(struct __test_metadata *_metadata,
			     struct _test_data_slow_store *self,
			     struct slow_request *r, struct slow_request *also,
			     unsigned long block, char *buf, double *start,
			     double *read, int *ret)
{
	long long in_flight = 0, want = also ? 2 : 1;
	pthread_t thread, also_thread;
	bool also_started = false;
	double t;

	/*
	 * The store is the host's swap too: a swap-in of the guest's rings or
	 * buffers, in the worker, would now take seconds as well.
	 */
	EXPECT_EQ(0, mlock(self->dev.ram, self->dev.ram_size));
	EXPECT_EQ(0, store_delay(self, SLOW_READ_MS, 0));
	*start = ts_now();
	EXPECT_EQ(0, pthread_create(&thread, NULL, slow_request_thread, r));
	/* Served in the worker, they would never be counted in flight. */
	while (in_flight < want && ts_now() - *start < SLOW_READ_MS / 2000.0) {
		usleep(10 * 1000);
		in_flight = ts_vhost_counter("in_flight");
		/* @also after @r, once the device has taken @r. */
		if (also && in_flight == 1 && !also_started) {
			EXPECT_EQ(0, pthread_create(&also_thread, NULL,
						    slow_request_thread, also));
			also_started = true;
		}
	}
	t = ts_now();
	*ret = vblk_rw(&self->dev, QUEUES - 1, VIRTIO_BLK_T_IN, block * SECTORS,
		       buf, PAGE, 0, false);
	*read = ts_now() - t;
	pthread_join(thread, NULL);
	if (also_started)
		pthread_join(also_thread, NULL);
	munlock(self->dev.ram, self->dev.ram_size);
	EXPECT_EQ(0, store_delay(self, 0, 0));
	TH_LOG("request %.3f s, in flight at %.3f s; read beside %.3f s",
	       r->end - *start, t - *start, *read);
	return in_flight;
}

/*
 * @r took SLOW_READ_MS or more and was in flight alone; the read beside it
 * was not held up by it.
 */
static void expect_not_held_up(struct __test_metadata *_metadata,
			       const struct slow_request *r,
			       long long in_flight, double start, double read,
			       int ret)
{
	EXPECT_EQ(0, r->ret);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(1, in_flight);
	EXPECT_LE(SLOW_READ_MS / 1000.0 * 0.9, r->end - start);
	EXPECT_GT(r->end, start + read);
	EXPECT_GT(SLOW_READ_MS / 1000.0 / 4, read);
}

/*
 * A guest's page-in of a referenced block is a store read: on a disk,
 * milliseconds. One worker serves every queue of the device: waiting for
 * that read in it stalled every other request of the guest meanwhile (the
 * slowest operations of bench-dp's end-to-end workload). The store read is
 * in flight (the device counts it), and a request on another queue
 * completes before it does.
 */
TEST_F_TIMEOUT(slow_store, store_reads_do_not_stall_other_queues, 120)
{
	struct slow_request r = {
		.dev = &self->dev, .type = VIRTIO_BLK_T_IN, .buf = self->check,
		.len = PAGE,
	};
	long long reads, in_flight;
	double start, read;
	int ret;

	r.block = store_and_image_blocks(_metadata, self, self->check);
	ASSERT_GT(PAGES, r.block);
	memset(self->check, 0, 2 * PAGE);

	reads = ts_vhost_counter("store_reads");
	in_flight = read_beside(_metadata, self, &r, NULL, 2 * PAGES,
				self->check + PAGE, &start, &read, &ret);
	expect_not_held_up(_metadata, &r, in_flight, start, read, ret);
	/* It was a store read. */
	EXPECT_EQ(reads + 1, ts_vhost_counter("store_reads"));
	EXPECT_TRUE(ts_check_page(self->check, 12, r.block, 1));
	EXPECT_TRUE(ts_check_page(self->check + PAGE, 13, 0, 1));
}

/*
 * The same for a write that changes references: a write of one sector of
 * a referenced block first copies the block back from the store into the
 * image (a store read, then an image write), and a page-out with pages
 * the host swapped back in writes those to the image. The worker hands
 * such writes to a kworker: the copy is in flight, a read on another queue
 * completes before it, and the block then holds the new sector and the
 * reference's other bytes.
 */
TEST_F_TIMEOUT(slow_store, reference_writes_do_not_stall_other_queues, 120)
{
	struct slow_request r = {
		.dev = &self->dev, .type = VIRTIO_BLK_T_OUT, .buf = self->check,
		.len = SECTOR,
	};
	long long merged, in_flight;
	char expect[PAGE];
	double start, read;
	int ret;

	r.block = store_and_image_blocks(_metadata, self, self->check);
	ASSERT_GT(PAGES, r.block);
	memset(self->check, 0xa5, SECTOR);
	memset(self->check + PAGE, 0, PAGE);

	merged = ts_vhost_counter("merged_blocks");
	in_flight = read_beside(_metadata, self, &r, NULL, 2 * PAGES,
				self->check + PAGE, &start, &read, &ret);
	expect_not_held_up(_metadata, &r, in_flight, start, read, ret);
	/* It copied the block back. */
	EXPECT_EQ(merged + 1, ts_vhost_counter("merged_blocks"));
	EXPECT_TRUE(ts_check_page(self->check + PAGE, 13, 0, 1));

	ts_fill_page(expect, 12, r.block, 1);
	memset(expect, 0xa5, SECTOR);
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, r.block * SECTORS,
			     self->check, PAGE, 0, false));
	EXPECT_EQ(0, memcmp(self->check, expect, PAGE));
}

/*
 * A write that drops a block's reference writes the block's data at the
 * end of its run: until then the image holds, under the block, what was
 * there before the reference, which is neither the old contents nor the
 * new. A read of the block on another queue meanwhile must not see those
 * bytes; it waits for the write. The write here: a whole block whose
 * reference it drops, then one sector of the next referenced block, which
 * it first copies back from the (slow) store.
 */
TEST_F_TIMEOUT(slow_store, reads_wait_for_the_write_that_drops_their_references,
	       120)
{
	struct slow_request r = {
		.dev = &self->dev, .type = VIRTIO_BLK_T_OUT, .buf = self->check,
		.len = PAGE + SECTOR,
	};
	char *page = self->check + 2 * PAGE;
	long long reads, in_flight;
	double start, read;
	int ret;

	/* The image's own bytes under blocks [0, PAGES): tag 15. */
	ts_fill_pages(self->check, PAGES, 15, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0,
				   self->check, PAGES, false));
	r.block = store_and_image_blocks(_metadata, self, self->check);
	ASSERT_GT(PAGES - 1, r.block);
	reads = ts_vhost_counter("store_reads");
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN,
			     (r.block + 1) * SECTORS, page, PAGE, 0, false));
	ASSERT_LT(reads, ts_vhost_counter("store_reads"));
	ts_fill_page(self->check, 16, r.block, 1);
	memset(self->check + PAGE, 0xa5, SECTOR);
	memset(page, 0, PAGE);

	in_flight = read_beside(_metadata, self, &r, NULL, r.block, page,
				&start, &read, &ret);
	ASSERT_EQ(0, r.ret);
	ASSERT_EQ(0, ret);
	EXPECT_EQ(1, in_flight);
	EXPECT_FALSE(ts_check_page(page, 15, r.block, 1));
	EXPECT_TRUE(ts_check_page(page, 16, r.block, 1));
	/* The copy back was slow, and the read waited for it. */
	EXPECT_LE(SLOW_READ_MS / 1000.0 * 0.9, r.end - start);
	EXPECT_LE(SLOW_READ_MS / 1000.0 / 2, read);
}

/*
 * A flush waits for the write of references in flight (replace_sem) and
 * then for the image and the journal. Waiting in the worker stalled every
 * queue: it waits behind the writes, off the worker. A slow write (as
 * above), then a flush on another queue, then a read on a third: the read
 * is not held up, the flush ends after the write, and both succeed.
 */
TEST_F_TIMEOUT(slow_store, flushes_do_not_stall_other_queues, 120)
{
	struct slow_request r = {
		.dev = &self->dev, .type = VIRTIO_BLK_T_OUT, .buf = self->check,
		.len = SECTOR,
	};
	struct slow_request flush = {
		.dev = &self->dev, .queue = 1, .type = VIRTIO_BLK_T_FLUSH,
	};
	long long flushes, in_flight;
	double start, read;
	int ret;

	r.block = store_and_image_blocks(_metadata, self, self->check);
	ASSERT_GT(PAGES, r.block);
	memset(self->check, 0xa5, SECTOR);
	memset(self->check + PAGE, 0, PAGE);
	flushes = ts_vhost_counter("requests_flush");

	in_flight = read_beside(_metadata, self, &r, &flush, 2 * PAGES,
				self->check + PAGE, &start, &read, &ret);
	ASSERT_EQ(0, r.ret);
	ASSERT_EQ(0, flush.ret);
	ASSERT_EQ(0, ret);
	EXPECT_EQ(2, in_flight);
	EXPECT_EQ(flushes + 1, ts_vhost_counter("requests_flush"));
	EXPECT_LE(SLOW_READ_MS / 1000.0 * 0.9, r.end - start);
	EXPECT_LE(r.end, flush.end);
	EXPECT_GT(SLOW_READ_MS / 1000.0 / 4, read);
	EXPECT_TRUE(ts_check_page(self->check + PAGE, 13, 0, 1));
}

/*
 * Switch the image's table. --nolockfs: a suspend would otherwise sync the
 * device's dirty pages first, and fail with EIO under the error target.
 */
static int err_dm_table(const char *target)
{
	char cmd[512];

	if (!strcmp(target, "linear"))
		snprintf(cmd, sizeof(cmd),
			 "dmsetup --noudevsync reload %s --table '0 %lu linear %s %lu' && dmsetup --noudevsync resume --nolockfs %s",
			 ERR_DM, ERR_SECTORS, DISK, ERR_OFFSET, ERR_DM);
	else
		snprintf(cmd, sizeof(cmd),
			 "dmsetup --noudevsync reload %s --table '0 %lu error' && dmsetup --noudevsync resume --nolockfs %s",
			 ERR_DM, ERR_SECTORS, ERR_DM);
	return ts_system(cmd);
}

/*
 * An image write that fails in writeback is reported by one fsync of the
 * image only. When that fsync is the commit worker's, the guest must still
 * learn of it: its next flush fails (and the one after succeeds, as
 * fsync() does). Else the guest would believe lost data durable, and the
 * commit would make drops durable whose replacing data never got there.
 */
TEST_F_TIMEOUT(rc, image_error_seen_in_the_background_fails_the_flush, 300)
{
	char table[256], path[64];
	struct vblk_dev d2;
	int fd, kmsg, i;
	bool warned = false;
	__u64 id = 0;

	snprintf(table, sizeof(table), "0 %lu linear %s %lu", ERR_SECTORS,
		 DISK, ERR_OFFSET);
	ASSERT_EQ(0, ts_dm_create(ERR_DM, table, path, sizeof(path)));
	/* Buffered: the image's writes fail at writeback, not at once. */
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	vblk_init(&d2);
	ASSERT_EQ(0, vblk_open_disk(&d2, GUEST_RAM, fd, 0));
	ASSERT_EQ(0, ioctl(d2.fd, VHOST_BLK_GET_DISK_ID, &id));
	self->buf = vblk_alloc(&d2, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	kmsg = ts_kmsg_open();
	ASSERT_LE(0, kmsg);

	ASSERT_EQ(0, err_dm_table("error"));
	/* Resident pages: a plain write, into the image's page cache. */
	ts_fill_pages(self->buf, 16, 9, 1);
	ASSERT_EQ(0, vblk_rw(&d2, 0, VIRTIO_BLK_T_OUT, 4096 * SECTORS,
			     self->buf, 16 * PAGE, 0, false));
	/* Enough references for the worker to commit: its fsync fails. */
	for (i = 0; i < 3; i++)
		write_swapped(_metadata, &d2, self->buf, i * PAGES * SECTORS,
			      9, 2 + i);
	for (i = 0; i < 300 && !warned; i++) {
		usleep(100 * 1000);
		warned = ts_kmsg_contains(kmsg, "background commit failed");
	}
	EXPECT_TRUE(warned);

	/*
	 * The image works again. More changes run the worker again: its
	 * fsync finds nothing now, yet it must commit nothing before the
	 * guest has heard of the loss.
	 */
	ASSERT_EQ(0, err_dm_table("linear"));
	write_swapped(_metadata, &d2, self->buf, 3 * PAGES * SECTORS, 9, 5);
	for (i = 0, warned = false; i < 300 && !warned; i++) {
		usleep(100 * 1000);
		warned = ts_kmsg_contains(kmsg, "background commit failed");
	}
	EXPECT_TRUE(warned);
	EXPECT_EQ(0, ts_durable_refs(id));

	/* The flush's own fsync finds nothing either. */
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_rw(&d2, 0, VIRTIO_BLK_T_FLUSH, 0,
					      NULL, 0, 0, false));
	/* Reported once; then the references commit. */
	EXPECT_EQ(0, vblk_rw(&d2, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0,
			     false));
	EXPECT_LT(0, ts_durable_refs(id));
	EXPECT_EQ(ts_disk_counter(id, "pages_referenced"),
		  ts_durable_refs(id));
	close(kmsg);
	vblk_close_disk(&d2, fd, 4 * PAGES * SECTORS);
	ts_dm_remove(ERR_DM);
}

/* A disk id is the VMM's to give, once, and unique among attached disks. */
TEST_F(rc, disk_ids)
{
	struct vblk_dev d2;
	__u64 id = 0;

	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_GET_DISK_ID, &id));
	EXPECT_NE(0ULL, id & VHOST_BLK_DISK_ID_DERIVED);
	id = 42;
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_DISK_ID, &id));
	EXPECT_EQ(EBUSY, errno);

	/* Another device on the same backend: the derived id is taken. */
	vblk_init(&d2);
	EXPECT_EQ(-EBUSY, vblk_open_disk(&d2, GUEST_RAM, self->disk_fd, 0));
	vblk_close(&d2);

	/* Ids with the derived bit are the module's; others are free. */
	vblk_init(&d2);
	ASSERT_EQ(0, vblk_open(&d2, 1 << 20, 1, 16, 0));
	id = VHOST_BLK_DISK_ID_DERIVED | 1;
	EXPECT_EQ(-1, ioctl(d2.fd, VHOST_BLK_SET_DISK_ID, &id));
	EXPECT_EQ(EINVAL, errno);
	id = 42;
	EXPECT_EQ(0, ioctl(d2.fd, VHOST_BLK_SET_DISK_ID, &id));
	EXPECT_EQ(0, vblk_set_backend(&d2, self->disk_fd));
	id = 0;
	EXPECT_EQ(0, ioctl(d2.fd, VHOST_BLK_GET_DISK_ID, &id));
	EXPECT_EQ(42ULL, id);
	vblk_close(&d2);
}

/* Reads that overwrite whole swapped-out pages do not swap them in. */
TEST_F_TIMEOUT(rc, false_reads_are_avoided, 300)
{
	long long pswpin0, false0;

	ts_fill_pages(self->check, PAGES, 7, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->check,
				   PAGES, false));
	memset(self->buf, 0x5a, PAGES * PAGE);
	ASSERT_EQ(0UL, ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE));
	warm_up(&self->dev, self->check);

	false0 = ts_vhost_counter("false_reads_avoided");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(pswpin0, ts_vmstat("pswpin"));
	EXPECT_EQ(false0 + (long long)PAGES,
		  ts_vhost_counter("false_reads_avoided"));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 7, 1));
}

/* Off, globally or per device, it is plain vhost-blk. */
TEST_F_TIMEOUT(rc, reconcile_off_is_plain_vhost_blk, 300)
{
	long long pswpin0;
	int off = 0;

	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_SET_RECONCILE, &off));
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 8, 1));
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	EXPECT_LE(pswpin0 + (long long)PAGES * 9 / 10, ts_vmstat("pswpin"));
	EXPECT_EQ(0, ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ(0, ts_vhost_counter("fallback_not_swapped"));

	off = 1;
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_SET_RECONCILE, &off));
	ASSERT_EQ(0, ts_write_str(TS_SYSMOD "/parameters/reconcile", "N"));
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 8, 2));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(0, ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ(0, ts_vhost_counter("false_reads_avoided"));
	ASSERT_EQ(0, ts_write_str(TS_SYSMOD "/parameters/reconcile", "Y"));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 8, 2));
	off = 2;
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_RECONCILE, &off));
	EXPECT_EQ(EINVAL, errno);
}

/* Each decision is a tracepoint. */
#define TRACE	"/sys/kernel/debug/tracing/trace"
TEST_F_TIMEOUT(rc, decisions_are_traced, 300)
{
	const char *tr = "/sys/kernel/debug/tracing";
	char path[256];
	int ret;

	snprintf(path, sizeof(path), "%s/events/tesseract/enable", tr);
	ASSERT_EQ(0, ts_write_str(path, "1"));
	snprintf(path, sizeof(path), "%s/trace", tr);
	ts_write_str(path, "");
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, 4, 9, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   4, false));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   4, false));
	ret = ts_system("grep -q 'tesseract_reconcile:.* referenced' " TRACE) ||
	      ts_system("grep -q 'tesseract_store_read:' " TRACE);
	snprintf(path, sizeof(path), "%s/events/tesseract/enable", tr);
	ts_write_str(path, "0");
	EXPECT_EQ(0, ret);
}

TEST_HARNESS_MAIN
