// SPDX-License-Identifier: GPL-2.0
/*
 * Reconciliation on memfd guest RAM, as stock QEMU gives a vhost-user
 * back-end (memory-backend-memfd, share=on): a swapped-out shmem page has
 * no PTE, its swap entry sits in the memfd's page cache. Guest writes of
 * such pages become references, full-page reads drop the entry (a hole
 * punched in the memfd) instead of swapping it in, and nothing stale ever
 * reaches the disk, also against a thread that swaps the pages in and out,
 * and with large (THP) swap entries where the kernel makes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define HUGE		(2UL << 20)
#define CGROUP		"ts-reconcile-shmem"
#define PAGES		512UL		/* 2 MiB of guest buffers */
#define DISK		"/dev/vda"
#define DISK_SECTORS	(64UL << 11)	/* 64 MiB, dropped at teardown */
#define GUEST_RAM	(3 * PAGES * PAGE + (6UL << 20))
#define THP		"/sys/kernel/mm/transparent_hugepage"
#define SHMEM_ENABLED	THP "/shmem_enabled"
#define SHMEM_PMD	THP "/hugepages-2048kB/shmem_enabled"

FIXTURE(shm) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
	char shmem_enabled[64], shmem_pmd[64];
};

/* The huge-page policy of memfds: never, or always (2 MiB folios). */
FIXTURE_VARIANT(shm) {
	bool huge;
};

FIXTURE_VARIANT_ADD(shm, small) {
	.huge = false,
};

FIXTURE_VARIANT_ADD(shm, huge) {
	.huge = true,
};

/* The selected word of a "[always] never ..." sysfs file. */
static void thp_policy(const char *path, char *out, size_t len)
{
	char text[256], *open, *close;

	out[0] = '\0';
	if (ts_read_str(path, text, sizeof(text)))
		return;
	open = strchr(text, '[');
	close = open ? strchr(open, ']') : NULL;
	if (!close || (size_t)(close - open) >= len)
		return;
	memcpy(out, open + 1, close - open - 1);
	out[close - open - 1] = '\0';
}

FIXTURE_SETUP(shm)
{
	thp_policy(SHMEM_ENABLED, self->shmem_enabled,
		   sizeof(self->shmem_enabled));
	thp_policy(SHMEM_PMD, self->shmem_pmd, sizeof(self->shmem_pmd));
	ts_write_str(SHMEM_ENABLED, variant->huge ? "always" : "never");
	/* 6.12 has a policy per size; the 2 MiB one follows the global. */
	if (self->shmem_pmd[0])
		ts_write_str(SHMEM_PMD, "inherit");

	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	vblk_memfd_ram = true;
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, HUGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, HUGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(shm)
{
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	vblk_memfd_ram = false;
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	if (self->shmem_enabled[0])
		ts_write_str(SHMEM_ENABLED, self->shmem_enabled);
	if (self->shmem_pmd[0])
		ts_write_str(SHMEM_PMD, self->shmem_pmd);
}

/* Does this kernel swap large shmem folios out whole (6.10 and later)? */
static bool large_shmem_swap(void)
{
	unsigned int major = 0, minor = 0;
	struct utsname u;

	if (uname(&u) || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 10);
}

/* What the memfd holds at @page of guest RAM, read through the file. */
static bool file_page_is(struct vblk_dev *d, const char *page,
			 unsigned long tag, unsigned long index,
			 unsigned long version)
{
	static char copy[PAGE];

	if (pread(d->ram_fd, copy, PAGE, page - (const char *)d->ram) != PAGE)
		return false;
	return ts_check_page(copy, tag, index, version);
}

/*
 * The core case on shmem: every swapped-out page written by the guest
 * becomes a reference with no swap-in and no data write; the disk keeps
 * those contents when the pages change afterwards, through this mapping
 * or another mapping of the memfd.
 */
TEST_F_TIMEOUT(shm, writes_of_swapped_pages_become_references, 300)
{
	long long pswpin0, written0, thp0 = ts_vmstat("thp_swpout");
	unsigned long i, bad;
	char *other;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 1, 1));
	EXPECT_EQ(0UL, ts_mapped_pages(self->buf, PAGES * PAGE));
	EXPECT_LE((long long)PAGES,
		  ts_vhost_counter("guest_pages_in_host_swap"));
	TH_LOG("%s: %lld huge pages swapped out whole", variant->huge ?
	       "huge" : "small", ts_vmstat("thp_swpout") - thp0);
	/*
	 * Since 6.10 shmem swaps a large folio out whole, and each page's
	 * slot is its offset in the large entry; 6.1 splits the folio.
	 */
	if (variant->huge && large_shmem_swap())
		EXPECT_LT(thp0, ts_vmstat("thp_swpout"));

	/* Rings and request headers in, so that the write swaps nothing. */
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, DISK_SECTORS,
			     self->check, PAGE, 0, false));
	written0 = ts_vhost_counter("bytes_written");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(pswpin0, ts_vmstat("pswpin"));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ(written0, ts_vhost_counter("bytes_written"));
	EXPECT_EQ(0UL, ts_mapped_pages(self->buf, PAGES * PAGE));

	/* Each block references the slot of its own page. */
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));

	/* Changed through the guest's mapping: the disk keeps version 1. */
	ts_fill_pages(self->buf, PAGES / 2, 1, 2);
	/* ... and through another mapping of the memfd. */
	other = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		     self->dev.ram_fd, (char *)self->buf -
				       (char *)self->dev.ram);
	ASSERT_NE(MAP_FAILED, other);
	for (i = PAGES / 2; i < PAGES; i++)
		ts_fill_page(other + i * PAGE, 1, i, 3);
	munmap(other, PAGES * PAGE);
	ASSERT_GT(PAGES / 20, ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES / 2, 1, 2));
	for (i = PAGES / 2, bad = 0; i < PAGES; i++)
		bad += !ts_check_page(self->buf + i * PAGE, 1, i, 3);
	EXPECT_EQ(0UL, bad);
}

/*
 * A read over swapped-out shmem pages punches them out of the memfd and
 * fills fresh ones: no swap-in, and the file (every mapper's view) holds
 * what was read. Large entries are not punched (a page-sized hole would
 * have to split them): they swap in as before.
 */
TEST_F_TIMEOUT(shm, false_reads_punch_the_memfd, 300)
{
	long long pswpin0, false0, thp0 = ts_vmstat("thp_swpout");
	bool whole;

	ts_fill_pages(self->check, PAGES, 7, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->check,
				   PAGES, false));
	memset(self->buf, 0x5a, PAGES * PAGE);
	ASSERT_EQ(0UL, ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE));
	whole = ts_vmstat("thp_swpout") > thp0;
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, DISK_SECTORS,
			     self->check, PAGE, 0, false));

	false0 = ts_vhost_counter("false_reads_avoided");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 7, 1));
	EXPECT_TRUE(file_page_is(&self->dev, self->buf, 7, 0, 1));
	EXPECT_TRUE(file_page_is(&self->dev, self->buf + (PAGES - 1) * PAGE, 7,
				 PAGES - 1, 1));
	if (whole) {
		TH_LOG("large swap entries: swapped in, not punched");
		EXPECT_LT(pswpin0, ts_vmstat("pswpin"));
	} else {
		EXPECT_EQ(pswpin0, ts_vmstat("pswpin"));
		EXPECT_EQ(false0 + (long long)PAGES,
			  ts_vhost_counter("false_reads_avoided"));
	}
}

/* A memfd sealed against writes refuses the hole: the page swaps in. */
TEST_F_TIMEOUT(shm, sealed_memfd_swaps_in, 300)
{
	long long pswpin0, false0;

	if (variant->huge)
		SKIP(return, "the small variant covers it");
	ts_fill_pages(self->check, 16, 8, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->check,
				   16, false));
	memset(self->buf, 0x5a, 16 * PAGE);
	/* Writable mappings that exist stay so; holes are refused. */
	ASSERT_EQ(0, fcntl(self->dev.ram_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
	ASSERT_EQ(0UL, ts_push_to_swap(CGROUP, self->buf, 16 * PAGE));
	ASSERT_EQ(0, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, DISK_SECTORS,
			     self->check, PAGE, 0, false));

	false0 = ts_vhost_counter("false_reads_avoided");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, self->buf,
				   16, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, 16, 8, 1));
	EXPECT_EQ(false0, ts_vhost_counter("false_reads_avoided"));
	EXPECT_LE(pswpin0 + 16, ts_vmstat("pswpin"));
}

/*
 * DESIGN section 4's race on shmem: a thread swaps pages in, dirties them
 * and pages them out again while the guest writes them. What reaches the
 * disk must be the version each page had when its write was submitted.
 */
#define RACE_PAGES	32
#define RACE_ROUNDS	200

struct race {
	char *pages;
	pthread_mutex_t lock[RACE_PAGES];
	atomic_ulong version[RACE_PAGES];
	atomic_bool stop;
	atomic_ulong torn;	/* pages that swapped in wrong */
};

static void *churn_thread(void *p)
{
	struct race *r = p;
	unsigned long i = 0, v;

	while (!atomic_load(&r->stop)) {
		char *page = r->pages + (i % RACE_PAGES) * PAGE;

		pthread_mutex_lock(&r->lock[i % RACE_PAGES]);
		v = atomic_load(&r->version[i % RACE_PAGES]);
		if (!ts_check_page(page, 4, i % RACE_PAGES, v))
			atomic_fetch_add(&r->torn, 1);
		v++;
		ts_fill_page(page, 4, i % RACE_PAGES, v);
		atomic_store(&r->version[i % RACE_PAGES], v);
		pthread_mutex_unlock(&r->lock[i % RACE_PAGES]);
		madvise(page, PAGE, MADV_PAGEOUT);
		if (!(++i % RACE_PAGES))
			ts_cgroup_write(CGROUP, "memory.reclaim", "8M");
	}
	return NULL;
}

TEST_F_TIMEOUT(shm, stale_slot_race_in_a_loop, 600)
{
	struct race *r = calloc(1, sizeof(*r));
	unsigned long i, v, stale = 0, wrong = 0;
	pthread_t thread;

	if (variant->huge)
		SKIP(return, "the small variant covers it");
	ASSERT_NE(NULL, r);
	r->pages = self->buf;
	for (i = 0; i < RACE_PAGES; i++) {
		pthread_mutex_init(&r->lock[i], NULL);
		ts_fill_page(r->pages + i * PAGE, 4, i, 0);
	}
	ASSERT_EQ(0, pthread_create(&thread, NULL, churn_thread, r));
	for (i = 0; i < RACE_ROUNDS * RACE_PAGES; i++) {
		unsigned long p = (i * 7) % RACE_PAGES;

		pthread_mutex_lock(&r->lock[p]);
		v = atomic_load(&r->version[p]);
		if (vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, p * SECTORS,
			    r->pages + p * PAGE, PAGE, 0, false))
			wrong++;
		pthread_mutex_unlock(&r->lock[p]);
		if (vblk_rw(&self->dev, 0, VIRTIO_BLK_T_IN, p * SECTORS,
			    self->check, PAGE, 0, false))
			wrong++;
		else if (!ts_check_page(self->check, 4, p, v))
			stale++;
	}
	atomic_store(&r->stop, true);
	pthread_join(thread, NULL);
	TH_LOG("%lu writes: %lld reconciled, %lld swap-cache fallbacks, %lld incomplete",
	       i, ts_vhost_counter("reconciled_pages"),
	       ts_vhost_counter("fallback_swapcache"),
	       ts_vhost_counter("fallback_slot_incomplete"));
	EXPECT_EQ(0UL, wrong);
	EXPECT_EQ(0UL, stale);
	EXPECT_EQ(0UL, atomic_load(&r->torn));
	/* The race was run, not avoided. */
	EXPECT_LT(0, ts_vhost_counter("reconciled_pages"));
	free(r);
}

TEST_HARNESS_MAIN
