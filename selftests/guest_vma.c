// SPDX-License-Identifier: GPL-2.0
/*
 * Reconciliation and false reads respect what the VMM's mappings allow:
 * a page the VMM cannot read is never referenced (a copy would fail), a
 * page it cannot write is never dropped by a false read (the copy into it
 * would fail after its contents were gone), and a range armed with
 * userfaultfd is never zapped behind its monitor's back (QEMU's background
 * snapshot tracks writes with uffd-wp; postcopy fills missing pages).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define CGROUP		"ts-guest-vma"
#define PAGES		16UL
#define DISK		"/dev/vda"
#define DISK_SECTORS	2048UL		/* 1 MiB */
#define GUEST_RAM	(4 * PAGES * PAGE + (4 << 20))

FIXTURE(gv) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
};

FIXTURE_SETUP(gv)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	/* Guard pages around buf: mprotect must not merge into the rings. */
	self->buf = vblk_alloc(&self->dev, (PAGES + 2) * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
	self->buf += PAGE;
}

FIXTURE_TEARDOWN(gv)
{
	if (self->buf)
		mprotect(self->buf, PAGES * PAGE, PROT_READ | PROT_WRITE);
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/* A guest write of pages the VMM cannot read fails, as a copy would. */
TEST_F_TIMEOUT(gv, unreadable_pages_are_never_referenced, 300)
{
	int status;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 1, 1));
	ASSERT_EQ(0, mprotect(self->buf, PAGES * PAGE, PROT_NONE));
	status = vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 0, self->buf,
			 PAGES * PAGE, 0, false);
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, status);
	EXPECT_EQ(0, ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	EXPECT_LE((long long)PAGES / 2, ts_vhost_counter("fallback_no_access"));
	ASSERT_EQ(0, mprotect(self->buf, PAGES * PAGE, PROT_READ | PROT_WRITE));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 1, 1));
}

/*
 * A guest read into pages the VMM cannot write fails, and leaves them as
 * they were: no false-read drop of their swapped-out contents.
 */
TEST_F_TIMEOUT(gv, read_only_pages_keep_their_contents, 300)
{
	int status;

	ts_fill_pages(self->check, PAGES, 2, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->check,
				   PAGES, false));
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 3, 1));
	ASSERT_EQ(0, mprotect(self->buf, PAGES * PAGE, PROT_READ));
	status = vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, 0, self->buf,
			 PAGES * PAGE, 0, false);
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, status);
	EXPECT_EQ(0, ts_vhost_counter("false_reads_avoided"));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 3, 1));
}

struct uffd_monitor {
	int uffd;
	char *base;
	atomic_bool stop;
	atomic_ulong wp_faults;
};

/* Record each write-protect fault, then let the write through. */
static void *uffd_monitor_thread(void *p)
{
	struct uffd_monitor *m = p;
	struct uffdio_writeprotect wp;
	struct uffd_msg msg;
	struct pollfd pfd = { .fd = m->uffd, .events = POLLIN };

	while (!atomic_load(&m->stop)) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(m->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT ||
		    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
			continue;
		atomic_fetch_add(&m->wp_faults, 1);
		wp.range.start = msg.arg.pagefault.address & ~(PAGE - 1);
		wp.range.len = PAGE;
		wp.mode = 0;
		ioctl(m->uffd, UFFDIO_WRITEPROTECT, &wp);
	}
	return NULL;
}

/*
 * Pages under uffd write protection (QEMU's background snapshot) swapped
 * out, then overwritten by a guest read: every write must reach the
 * monitor, which a zap of the swap entry would have hidden.
 */
TEST_F_TIMEOUT(gv, userfaultfd_ranges_are_not_zapped, 300)
{
	struct uffd_monitor m = { .base = self->buf };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (unsigned long)self->buf, PAGES * PAGE },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect wp = {
		.range = { (unsigned long)self->buf, PAGES * PAGE },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	pthread_t thread;
	int status;

	ts_fill_pages(self->check, PAGES, 4, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->check,
				   PAGES, false));
	ts_fill_pages(self->buf, PAGES, 5, 1);

	m.uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (m.uffd < 0)
		SKIP(return, "no userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(m.uffd, UFFDIO_API, &api));
	if (ioctl(m.uffd, UFFDIO_REGISTER, &reg))
		SKIP(return, "no uffd-wp on anonymous memory: %s",
		     strerror(errno));
	ASSERT_EQ(0, ioctl(m.uffd, UFFDIO_WRITEPROTECT, &wp));
	ASSERT_GT(PAGES / 4, ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE));
	ASSERT_EQ(0, pthread_create(&thread, NULL, uffd_monitor_thread, &m));

	status = vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, 0, self->buf,
			 PAGES * PAGE, 0, false);
	atomic_store(&m.stop, true);
	pthread_join(thread, NULL);
	close(m.uffd);

	EXPECT_EQ(0, status);
	EXPECT_EQ(0, ts_vhost_counter("false_reads_avoided"));
	/* Every page was written under the monitor's eyes. */
	EXPECT_EQ(PAGES, atomic_load(&m.wp_faults));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 4, 1));
}

TEST_HARNESS_MAIN
