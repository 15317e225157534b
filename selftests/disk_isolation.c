// SPDX-License-Identifier: GPL-2.0
/*
 * One guest cannot stall another: guest A zeroes a range that holds
 * references on a slow backend (dm-delay), which keeps its request between
 * dropping them and writing the zeroes for seconds; guest B's FLUSHes
 * meanwhile take about as long as when A is idle. And one disk cannot take
 * every reference of the store: disk_max_refs caps each.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define CGROUP		"ts-disk-isolation"
#define PAGES		64UL
#define SLOW_DISK	"/dev/vda"
#define SLOW_SECTORS	(128UL * 2048)	/* 128 MiB */
#define DELAY_MS	1500
#define ZERO_SECTORS	(32UL * 2048)	/* 32 MiB */
#define B_IMAGE		"/tmp/ts-isolation-b.img"
#define GUEST_RAM	(2 * PAGES * PAGE + (4 << 20))
#define ID_A		1001
#define ID_B		1002

FIXTURE(di) {
	struct vblk_dev a, b;
	int a_fd, b_fd;
	char *buf;
};

FIXTURE_SETUP(di)
{
	char table[128], path[64];

	vblk_init(&self->a);
	vblk_init(&self->b);
	self->a_fd = -1;
	self->b_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	snprintf(table, sizeof(table), "0 %lu delay %s 0 %d", SLOW_SECTORS,
		 SLOW_DISK, DELAY_MS);
	if (ts_dm_create("ts-isolation-slow", table, path, sizeof(path)))
		SKIP(return, "no device-mapper delay target");
	self->a_fd = open(path, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->a_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->a, GUEST_RAM, self->a_fd, ID_A));
	self->b_fd = open(B_IMAGE, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, self->b_fd);
	ASSERT_EQ(0, ftruncate(self->b_fd, 16 << 20));
	ASSERT_EQ(0, vblk_open_disk(&self->b, GUEST_RAM, self->b_fd, ID_B));
	self->buf = vblk_alloc(&self->a, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(di)
{
	ts_param_set("disk_max_refs", "0");
	vblk_close_disk(&self->a, self->a_fd, PAGES * PAGE / 512);
	vblk_close_disk(&self->b, self->b_fd, 0);
	ts_dm_remove("ts-isolation-slow");
	unlink(B_IMAGE);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

struct zeroer {
	struct vblk_dev *dev;
	atomic_bool running;
	double seconds;
	int status;
};

static void *zero_thread(void *p)
{
	struct zeroer *z = p;
	double t0 = ts_now();

	z->status = vblk_discard(z->dev, VIRTIO_BLK_T_WRITE_ZEROES, 0,
				 ZERO_SECTORS, 0);
	z->seconds = ts_now() - t0;
	atomic_store(&z->running, false);
	return NULL;
}

static double timed_flush(struct vblk_dev *d, int *status)
{
	double t0 = ts_now();

	*status = vblk_rw(d, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0, false);
	return ts_now() - t0;
}

TEST_F_TIMEOUT(di, flushes_do_not_wait_for_another_disk, 300)
{
	struct zeroer z = { .dev = &self->a };
	double idle_max = 0, busy_max = 0, t;
	unsigned int i, busy_flushes = 0;
	pthread_t thread;
	int status;

	/* References in A's range, so that zeroing it replaces them. */
	ASSERT_GT(PAGES / 2, ts_fill_and_push(CGROUP, self->buf, PAGES, 1, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	ASSERT_LT(0, ts_disk_counter(ID_A, "reconciled_pages"));

	for (i = 0; i < 5; i++) {
		t = timed_flush(&self->b, &status);
		ASSERT_EQ(VIRTIO_BLK_S_OK, status);
		idle_max = t > idle_max ? t : idle_max;
	}

	atomic_store(&z.running, true);
	ASSERT_EQ(0, pthread_create(&thread, NULL, zero_thread, &z));
	usleep(300000);
	while (atomic_load(&z.running)) {
		t = timed_flush(&self->b, &status);
		EXPECT_EQ(VIRTIO_BLK_S_OK, status);
		busy_max = t > busy_max ? t : busy_max;
		busy_flushes++;
		usleep(50000);
	}
	pthread_join(thread, NULL);
	TH_LOG("A zeroed for %.3f s; B's FLUSH: worst %.1f ms idle,",
	       z.seconds, idle_max * 1e3);
	TH_LOG("%.1f ms over %u while A was zeroing", busy_max * 1e3,
	       busy_flushes);
	ASSERT_EQ(VIRTIO_BLK_S_OK, z.status);
	/* The case was set up: A's request took the delay and then some. */
	ASSERT_LE(DELAY_MS / 1000.0, z.seconds);
	ASSERT_LT(0U, busy_flushes);
	/* Wide margins: TCG is slow and noisy, a wait for A is not. */
	EXPECT_GT(z.seconds / 4, busy_max);
	EXPECT_GT(idle_max * 20 + 0.2, busy_max);
}

/* disk_max_refs caps one disk's references; the rest are written. */
TEST_F_TIMEOUT(di, disk_max_refs_caps_one_disk, 300)
{
	long long refs, quota, swapped;

	ASSERT_EQ(0, ts_param_set("disk_max_refs", "16"));
	/* Pages still in an LRU batch may stay resident: they are written. */
	swapped = PAGES - ts_fill_and_push(CGROUP, self->buf, PAGES, 2, 1);
	ASSERT_LE(32, swapped);
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	refs = ts_disk_counter(ID_A, "pages_referenced");
	quota = ts_disk_counter(ID_A, "fallback_disk_quota");
	TH_LOG("%lld referenced, %lld over the quota", refs, quota);
	EXPECT_EQ(16, refs);
	EXPECT_EQ(swapped - 16, quota);
	/* The data is all there, whichever way it went. */
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_IN, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 2, 1));
}

TEST_HARNESS_MAIN
