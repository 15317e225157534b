// SPDX-License-Identifier: GPL-2.0
/*
 * Swap-outs that never reach /dev/tsswap0: 6.12's zeromap keeps
 * zero-filled folios as a bit in the swap area, and zswap keeps folios
 * compressed in RAM. A page that kept its slot after a read fault, was
 * rewritten and then swapped out that way leaves the slot holding its old
 * contents. A guest write of that page must never reference them: the
 * guest disk must read back what the page held when it was written.
 *
 * Each test runs twice: as it is, and with the swap mapper on and version
 * 1 read from the guest's disk, so that the slots map to its blocks when
 * version 2 goes round the device; version 2 must come back all the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define CGROUP		"ts-bypass"
#define PAGES		256UL
#define ROUNDS		2
#define DISK		"/dev/vda"
#define DISK_SECTORS	(8UL << 11)	/* 8 MiB */
#define GUEST_RAM	(2 * PAGES * PAGE + (4 << 20))
#define ZSWAP		"/sys/module/zswap/parameters/"
#define V1_SECTOR	(4UL << 11)	/* where the mapper variant reads it */

FIXTURE(bp) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
};

FIXTURE_VARIANT(bp) {
	const char *params;
	bool mapper;
};

FIXTURE_VARIANT_ADD(bp, plain) {
	.params = "backing=/dev/vdb",
};

FIXTURE_VARIANT_ADD(bp, mapper) {
	.params = "backing=/dev/vdb swap_mapper=1",
	.mapper = true,
};

FIXTURE_SETUP(bp)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_swap_up(variant->params));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(bp)
{
	ts_system("echo N > " ZSWAP "enabled; "
			"echo 20 > " ZSWAP "max_pool_percent");
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/* Pages zswap holds now. */
static long long zswap_stored(void)
{
	long long n = -1;

	ts_read_ll("/sys/kernel/debug/zswap/stored_pages", &n);
	return n;
}

/*
 * zswap on, for small folios: it rejects large ones (THP, guest RAM's
 * default here), which then go to our device as usual.
 */
static bool zswap_small_folios(char *buf, size_t len)
{
	return access(ZSWAP "enabled", W_OK) == 0 &&
	       !madvise(buf, len, MADV_NOHUGEPAGE);
}

static size_t nonzero_pages(const char *p, size_t pages)
{
	static const char zero[PAGE];
	size_t i, bad = 0;

	for (i = 0; i < pages; i++)
		bad += memcmp(p + i * PAGE, zero, PAGE) != 0;
	return bad;
}

/*
 * Version @v of page @i: a header naming it, then one repeated byte, so
 * that zswap keeps it (it rejects pages that do not compress).
 */
static void fill_compressible_page(char *p, unsigned long tag, size_t i,
				   unsigned long v)
{
	unsigned long *hdr = (unsigned long *)p;

	memset(p, (int)(tag * 31 + i * 7 + v), PAGE);
	hdr[0] = tag;
	hdr[1] = i;
	hdr[2] = v;
}

static void fill_compressible(char *p, size_t pages, unsigned long tag,
			      unsigned long v)
{
	size_t i;

	for (i = 0; i < pages; i++)
		fill_compressible_page(p + i * PAGE, tag, i, v);
}

static size_t bad_compressible(const char *p, size_t pages, unsigned long tag,
			       unsigned long v)
{
	static char want[PAGE];
	size_t i, bad = 0;

	for (i = 0; i < pages; i++) {
		fill_compressible_page(want, tag, i, v);
		bad += memcmp(p + i * PAGE, want, PAGE) != 0;
	}
	return bad;
}

/*
 * Version 1 of the pages into their slots on our device. With the swap
 * mapper on, the guest reads it from its disk first: the slots map to the
 * disk's blocks, and no data goes to the store.
 */
static void version_one_out(struct __test_metadata *_metadata,
			    struct vblk_dev *dev, char *buf, unsigned long tag,
			    bool from_disk)
{
	long long mapped0;

	if (!from_disk) {
		ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, buf, PAGES, tag, 1));
		return;
	}
	ts_fill_pages(buf, PAGES, tag, 1);
	ASSERT_EQ(0, vblk_io_pages(dev, VIRTIO_BLK_T_OUT, V1_SECTOR, buf,
				   PAGES, false));
	memset(buf, 0, PAGES * PAGE);
	ASSERT_EQ(0, vblk_io_pages(dev, VIRTIO_BLK_T_IN, V1_SECTOR, buf,
				   PAGES, false));
	ASSERT_EQ(0UL, ts_bad_pages(buf, PAGES, tag, 1));
	mapped0 = ts_mapper_stat("swap_outs_mapped");
	ASSERT_LE(0, mapped0);
	ASSERT_EQ(0UL, ts_push_to_swap(CGROUP, buf, PAGES * PAGE));
	ASSERT_LE((long long)PAGES * 9 / 10,
		  ts_mapper_stat("swap_outs_mapped") - mapped0);
}

enum second_version {
	ZEROES,		/* 6.12: zeromap */
	PATTERN,	/* anything else, compressible */
};

/*
 * Put version 1 of the pages in their slots on our device, read them back
 * in (they keep their slots), give them version 2 in place and reclaim
 * them again with @before_reclaim in force, e.g. zswap on. Then the guest
 * writes them to its disk, which must read back version 2.
 */
static void stale_slot_round(struct __test_metadata *_metadata,
			     struct vblk_dev *dev, char *buf, char *check,
			     unsigned long round, bool from_disk,
			     enum second_version v2, const char *before_reclaim,
			     const char *after_reclaim)
{
	unsigned long tag = 10 + round;
	long long stored;
	size_t bad;

	ts_system("echo N > " ZSWAP "enabled");
	version_one_out(_metadata, dev, buf, tag, from_disk);
	/* Read faults: each folio keeps its slot, which holds version 1. */
	ASSERT_EQ(0UL, ts_bad_pages(buf, PAGES, tag, 1));
	if (v2 == ZEROES)
		memset(buf, 0, PAGES * PAGE);
	else
		fill_compressible(buf, PAGES, tag, 2);
	if (before_reclaim)
		ts_system(before_reclaim);
	stored = zswap_stored();
	ASSERT_GT(PAGES / 20, ts_push_to_swap(CGROUP, buf, PAGES * PAGE));
	/* zswap (if on) took them: 6.12 keeps zero-filled ones before it. */
	if (before_reclaim && v2 == PATTERN)
		ASSERT_LE(stored + (long long)PAGES * 9 / 10, zswap_stored())
			ts_system("grep -r . /sys/kernel/debug/zswap "
				  ZSWAP " >&2");
	/* The PTEs hold entries of our device again: the case to test. */
	ASSERT_LE((long long)PAGES * 95 / 100,
		  ts_vhost_counter("guest_pages_in_host_swap"));
	if (after_reclaim) {
		ts_system(after_reclaim);
		/* Other pages for zswap, which has no room: it writes back. */
		ASSERT_GT(PAGES / 20, ts_fill_and_push(CGROUP, check,
						       PAGES, 99, 1));
		usleep(500000);
	}

	ASSERT_EQ(0, vblk_io_pages(dev, VIRTIO_BLK_T_OUT, 0, buf,
				   PAGES, false));
	ASSERT_EQ(0, vblk_io_pages(dev, VIRTIO_BLK_T_IN, 0, check,
				   PAGES, false));
	bad = v2 == ZEROES ? nonzero_pages(check, PAGES) :
			     bad_compressible(check, PAGES, tag, 2);
	TH_LOG("round %lu: %zu of %lu pages stale; %lld referenced, %lld incomplete",
	       round, bad, PAGES, ts_vhost_counter("reconciled_pages"),
	       ts_vhost_counter("fallback_slot_incomplete"));
	EXPECT_EQ(0UL, bad);
	/* Every swap-out write passed the hook: no false alarm. */
	EXPECT_EQ(0, ts_swapdev_counter("unseen_swap_outs"));
}

/* 6.12 keeps zero-filled folios in the swap area's zeromap: no write. */
TEST_F_TIMEOUT(bp, zero_filled_swap_out_is_never_referenced, 600)
{
	unsigned long round;

	for (round = 0; round < ROUNDS; round++)
		stale_slot_round(_metadata, &self->dev, self->buf,
				 self->check, round, variant->mapper, ZEROES,
				 NULL, NULL);
}

/* zswap keeps folios compressed in RAM: no write either. */
TEST_F_TIMEOUT(bp, zswap_swap_out_is_never_referenced, 600)
{
	unsigned long round;

	if (!zswap_small_folios(self->buf, PAGES * PAGE))
		SKIP(return, "no zswap in this kernel");
	for (round = 0; round < ROUNDS; round++) {
		stale_slot_round(_metadata, &self->dev, self->buf,
				 self->check, round, variant->mapper, PATTERN,
				 "echo Y > " ZSWAP "enabled", NULL);
		stale_slot_round(_metadata, &self->dev, self->buf,
				 self->check, round, variant->mapper, ZEROES,
				 "echo Y > " ZSWAP "enabled", NULL);
	}
}

/*
 * zswap with no room left writes what it keeps back to our device (the
 * folio through the swap cache, a real swap-out, with the PTE untouched):
 * then the slot holds version 2 and may be referenced again; never
 * version 1.
 */
TEST_F_TIMEOUT(bp, zswap_writeback_is_a_swap_out, 600)
{
	long long writes0;
	unsigned long round;

	if (!zswap_small_folios(self->buf, PAGES * PAGE) ||
	    !zswap_small_folios(self->check, PAGES * PAGE))
		SKIP(return, "no zswap in this kernel");
	for (round = 0; round < ROUNDS; round++) {
		writes0 = ts_swapdev_counter("writes");
		stale_slot_round(_metadata, &self->dev, self->buf,
				 self->check, round, variant->mapper, PATTERN,
				 "echo 20 > " ZSWAP "max_pool_percent; "
				 "echo Y > " ZSWAP "enabled",
				 "echo 0 > " ZSWAP "max_pool_percent");
		TH_LOG("round %lu: %lld slots written", round,
		       ts_swapdev_counter("writes") - writes0);
	}
}

/* The debugfs state of the swap-out hook ("watching", "lost", "off"). */
static void hook_state(char *buf, size_t len)
{
	if (ts_read_str(TS_DEBUGFS "/tsswap0/swap_out_hook", buf, len))
		snprintf(buf, len, "unreadable");
}

/*
 * ftrace can stop calling the swap-out hook after it was placed (an
 * ftrace anomaly calls ftrace_kill(), and nobody tells the module).
 * fail_swap_out_hook makes the hook return at once, as if that had
 * happened. The next swap-out that reaches the device unannounced must
 * turn reconciliation off: then a later swap-out that bypasses the device
 * (zswap, 6.12's zeromap), which the dead hook cannot see, must not leave
 * a slot that a guest write references with its old contents.
 */
TEST_F_TIMEOUT(bp, lost_hook_turns_reconciliation_off, 600)
{
	bool zswap = zswap_small_folios(self->buf, PAGES * PAGE);
	enum second_version v2 = zswap ? PATTERN : ZEROES;
	unsigned long tag = 40;
	long long stored;
	char state[64];
	int kmsg;
	size_t bad;

	kmsg = ts_kmsg_open();
	ASSERT_LE(0, kmsg);
	hook_state(state, sizeof(state));
	ASSERT_STREQ("watching", state);

	/* Version 1 in the slots, complete. */
	version_one_out(_metadata, &self->dev, self->buf, tag,
			variant->mapper);

	/*
	 * ftrace "dies"; other pages still go to the device, unannounced
	 * (before the read faults below: memory.reclaim evicts the whole
	 * group, and would write version 2 out to the device too).
	 */
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/fail_swap_out_hook",
				  "1"));
	ASSERT_GT(PAGES / 20, ts_fill_and_push(CGROUP, self->check, PAGES,
					       99, 1));

	/* Read faults: the pages keep their slots, which hold version 1. */
	ASSERT_EQ(0UL, ts_bad_pages(self->buf, PAGES, tag, 1));
	if (v2 == ZEROES)
		memset(self->buf, 0, PAGES * PAGE);
	else
		fill_compressible(self->buf, PAGES, tag, 2);

	/* Version 2 bypasses the device, unseen by the dead hook. */
	if (zswap)
		ts_system("echo Y > " ZSWAP "enabled");
	stored = zswap_stored();
	ASSERT_GT(PAGES / 20, ts_push_to_swap(CGROUP, self->buf,
					      PAGES * PAGE));
	if (zswap)
		ASSERT_LE(stored + (long long)PAGES * 9 / 10, zswap_stored());
	ASSERT_LE((long long)PAGES * 95 / 100,
		  ts_vhost_counter("guest_pages_in_host_swap"));
	/* ftrace does not come back, nor does reconciliation. */
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/fail_swap_out_hook",
				  "0"));

	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	bad = v2 == ZEROES ? nonzero_pages(self->check, PAGES) :
			     bad_compressible(self->check, PAGES, tag, 2);
	hook_state(state, sizeof(state));
	TH_LOG("%s: %zu of %lu pages stale; %lld referenced; hook %s, %lld unseen swap-outs",
	       zswap ? "zswap" : "zeromap", bad, PAGES,
	       ts_vhost_counter("reconciled_pages"), state,
	       ts_swapdev_counter("unseen_swap_outs"));
	EXPECT_EQ(0UL, bad);
	EXPECT_EQ(0, ts_vhost_counter("reconciled_pages"));
	EXPECT_STREQ("lost", state);
	EXPECT_LT(0, ts_swapdev_counter("unseen_swap_outs"));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "did not pass the hook"));
	close(kmsg);
}

TEST_HARNESS_MAIN
