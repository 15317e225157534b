// SPDX-License-Identifier: GPL-2.0
/*
 * Guest RAM behind /dev/vhost-blk stays swappable: after I/O its pages can
 * be pushed to host swap, and guest I/O from and into swapped-out buffers
 * moves the right data. Without reconciliation, a guest write of a swapped
 * page costs the host a swap-in: the double paging this project removes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define CGROUP		"ts-guest-ram"
#define BUF_PAGES	1024UL		/* 4 MiB of guest buffers */
#define DISK		"/dev/vda"

FIXTURE(guest) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
};

FIXTURE_SETUP(guest)
{
	__u64 features = 1ULL << VIRTIO_RING_F_INDIRECT_DESC;

	vblk_init(&self->dev);
	self->disk_fd = -1;
	/* The baseline: plain vhost-blk, no reconciliation. */
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb reconcile=0"));
	/* Guest RAM is charged to the group that first touches it. */
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	ASSERT_EQ(0, vblk_open(&self->dev, 3 * BUF_PAGES * PAGE + (4 << 20),
			       1, 128, features));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_set_backend(&self->dev, self->disk_fd));
	self->buf = vblk_alloc(&self->dev, BUF_PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, BUF_PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(guest)
{
	vblk_close(&self->dev);
	if (self->disk_fd >= 0)
		close(self->disk_fd);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

TEST_F_TIMEOUT(guest, buffers_swap_out_after_io, 300)
{
	ts_fill_pages(self->buf, BUF_PAGES, 1, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   BUF_PAGES, true));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   BUF_PAGES, true));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, BUF_PAGES, 1, 1));

	/* Nothing of the I/O keeps the buffers pinned in host memory. */
	EXPECT_GT(BUF_PAGES / 20,
		  ts_push_to_swap(CGROUP, self->buf, BUF_PAGES * PAGE));
	EXPECT_GT(BUF_PAGES / 20,
		  ts_push_to_swap(CGROUP, self->check, BUF_PAGES * PAGE));
}

/*
 * The guest writes pages the host has swapped out, as a guest paging to its
 * own disk does. The data reaches the disk intact; today that costs a
 * swap-in per page (the ordinary path, which reconciliation will replace).
 */
TEST_F_TIMEOUT(guest, write_of_swapped_buffers, 300)
{
	long long pswpin0;

	ts_fill_pages(self->buf, BUF_PAGES, 2, 1);
	ASSERT_GT(BUF_PAGES / 20,
		  ts_push_to_swap(CGROUP, self->buf, BUF_PAGES * PAGE));

	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 1 << 20,
				   self->buf, BUF_PAGES, true));
	TH_LOG("swap-ins during the guest write: %lld",
	       ts_vmstat("pswpin") - pswpin0);
	EXPECT_LE(pswpin0 + (long long)BUF_PAGES * 9 / 10, ts_vmstat("pswpin"));

	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 1 << 20,
				   self->check, BUF_PAGES, true));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, BUF_PAGES, 2, 1));
}

/* A guest read lands in buffers that were swapped out. */
TEST_F_TIMEOUT(guest, read_into_swapped_buffers, 300)
{
	ts_fill_pages(self->check, BUF_PAGES, 3, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 2 << 20,
				   self->check, BUF_PAGES, true));
	memset(self->buf, 0xa5, BUF_PAGES * PAGE);
	ASSERT_GT(BUF_PAGES / 20,
		  ts_push_to_swap(CGROUP, self->buf, BUF_PAGES * PAGE));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 2 << 20,
				   self->buf, BUF_PAGES, true));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, BUF_PAGES, 3, 1));
}

TEST_HARNESS_MAIN
