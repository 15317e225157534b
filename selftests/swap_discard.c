// SPDX-License-Identifier: GPL-2.0
/*
 * BLKDISCARD of the active swap device (root can) while pages swap out
 * through it and a guest writes them: a discard may unmap a slot whose
 * write is still in flight. That write must neither mark the slot
 * complete (a later reference would then take a slot that maps no block)
 * nor let its block be reused before it lands. The store's accounting
 * must come out exact once everything is let go.
 */
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define CGROUP		"ts-swap-discard"
#define PAGES		256UL
#define ROUNDS		24
#define DISK		"/dev/vda"
#define DISK_SECTORS	(PAGES * PAGE / 512)
#define GUEST_RAM	(2 * PAGES * PAGE + (4 << 20))
#define TSSWAP		"/dev/tsswap0"

struct discarder {
	int fd;
	__u64 size;
	atomic_bool stop;
	atomic_ulong discards, failures;
};

/* Discard the whole device, then single slots, over and over. */
static void *discard_thread(void *p)
{
	struct discarder *d = p;
	__u64 range[2], i = 0;

	while (!atomic_load(&d->stop)) {
		if (i % 8) {
			/* Slot 0 is the swap header: leave it. */
			range[0] = (1 + (i * 97) % (d->size / PAGE - 1)) * PAGE;
			range[1] = PAGE;
		} else {
			range[0] = PAGE;
			range[1] = d->size - PAGE;
		}
		if (ioctl(d->fd, BLKDISCARD, range))
			atomic_fetch_add(&d->failures, 1);
		else
			atomic_fetch_add(&d->discards, 1);
		i++;
		usleep(200);
	}
	return NULL;
}

FIXTURE(sd) {
};

FIXTURE_SETUP(sd)
{
}

FIXTURE_TEARDOWN(sd)
{
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

TEST_F_TIMEOUT(sd, discards_race_swap_outs_and_references, 600)
{
	struct discarder d = { .fd = -1 };
	struct vblk_dev dev;
	pthread_t thread;
	unsigned long round;
	char *buf;
	int disk_fd;

	vblk_init(&dev);
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&dev, GUEST_RAM, disk_fd, 0));
	buf = vblk_alloc(&dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, buf);
	/*
	 * Discards destroy what the slots hold: only buf may be in swap, not
	 * the rings, the requests or this program's own memory.
	 */
	ASSERT_EQ(0, mlockall(MCL_CURRENT | MCL_FUTURE));
	ASSERT_EQ(0, munlock(buf, PAGES * PAGE));

	d.fd = open(TSSWAP, O_RDWR);
	ASSERT_LE(0, d.fd);
	ASSERT_EQ(0, ioctl(d.fd, BLKGETSIZE64, &d.size));
	ASSERT_EQ(0, pthread_create(&thread, NULL, discard_thread, &d));

	for (round = 0; round < ROUNDS; round++) {
		/* Write faults: discarded slots read back as zeros, fine. */
		ts_fill_pages(buf, PAGES, 1, round);
		ts_push_to_swap(CGROUP, buf, PAGES * PAGE);
		/* Whatever is referenced or not, no request may fail. */
		EXPECT_EQ(0, vblk_io_pages(&dev, VIRTIO_BLK_T_OUT, 0, buf,
					   PAGES, false));
	}
	atomic_store(&d.stop, true);
	pthread_join(thread, NULL);
	close(d.fd);
	TH_LOG("%lu discards (%lu refused) in %d rounds", atomic_load(&d.discards),
	       atomic_load(&d.failures), ROUNDS);
	TH_LOG("%lld slots written, %lld discarded, %lld referenced",
	       ts_swapdev_counter("writes"), ts_swapdev_counter("discards"),
	       ts_vhost_counter("reconciled_pages"));
	EXPECT_LT(0UL, atomic_load(&d.discards));

	munlockall();
	/* Let go of everything: the store must be empty again. */
	vblk_close_disk(&dev, disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ASSERT_EQ(0, swapoff(TSSWAP));
	/* Only mkswap's header is left, in one block. */
	EXPECT_GE(1, ts_swapdev_counter("slots_in_use"));
	EXPECT_EQ(ts_swapdev_counter("slots_in_use"),
		  ts_swapdev_counter("blocks_in_use"));
	ts_swap_down();
}

TEST_HARNESS_MAIN
