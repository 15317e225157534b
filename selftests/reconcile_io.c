// SPDX-License-Identifier: GPL-2.0
/*
 * Guest requests over references: what a failure to change a reference
 * map does to a request (fault injection), and the device's counters
 * against their definitions in Documentation/abi.rst for a known workload.
 * Same setup as reconcile.c: the store on /dev/vdb, swap on /dev/tsswap0,
 * the guest disk on /dev/vda.
 */
#include <errno.h>
#include <fcntl.h>
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
#define CGROUP		"ts-reconcile-io"
#define PAGES		128UL
#define DISK		"/dev/vda"
#define DISK_SECTORS	(16UL << 11)	/* 16 MiB, discarded at teardown */
#define GUEST_RAM	(3 * PAGES * PAGE + (4 << 20))
#define FAIL_KNOB	TS_DEBUGFS "/fail_ref_alloc"

FIXTURE(rio) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
	void *image;		/* O_DIRECT reads of the image, past the device */
};

FIXTURE_SETUP(rio)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	self->image = NULL;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
	ASSERT_EQ(0, posix_memalign(&self->image, PAGE, PAGES * PAGE));
}

FIXTURE_TEARDOWN(rio)
{
	ts_write_str(FAIL_KNOB, "0");
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	free(self->image);
}

/* The image's block @x, read past the module into @image. */
static void *image_block(int disk_fd, void *image, unsigned long x)
{
	char *p = (char *)image + (x % PAGES) * PAGE;

	if (pread(disk_fd, p, PAGE, x * PAGE) != (ssize_t)PAGE)
		memset(p, 0xff, PAGE);
	return p;
}

/* Disk block @x read through the device holds page (tag, x, version). */
static bool disk_block_is(struct vblk_dev *d, char *buf, unsigned long x,
			  unsigned long tag, unsigned long version)
{
	if (vblk_rw(d, 0, VIRTIO_BLK_T_IN, x * SECTORS, buf, PAGE, 0,
		    false) != VIRTIO_BLK_S_OK)
		return false;
	return ts_check_page(buf, tag, x, version);
}

/*
 * A request that must drop a reference and cannot get the memory to
 * record the drop fails with VIRTIO_BLK_S_IOERR, and nothing changes: the
 * block keeps its reference and its contents, the image is not written.
 */
TEST_F_TIMEOUT(rio, failed_drop_fails_the_request, 300)
{
	char before[8][PAGE];
	char *page = self->check + PAGE;
	unsigned long x;
	long long n;
	int off = 0;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, 8, 21, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   8, false));
	ASSERT_EQ(8, ts_vhost_counter("pages_referenced"));
	/* Plain writes from here: only the drops need the memory. */
	ASSERT_EQ(0, ioctl(self->dev.fd, VHOST_BLK_SET_RECONCILE, &off));
	for (x = 0; x < 8; x++)
		memcpy(before[x], image_block(self->disk_fd, self->image, x),
		       PAGE);

	/* A whole-block write over a reference. */
	ASSERT_EQ(0, ts_write_str(FAIL_KNOB, "1"));
	ts_fill_page(page, 21, 0, 2);
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT,
					      0, page, PAGE, 0, false));
	ASSERT_EQ(0, ts_read_ll(FAIL_KNOB, &n));
	EXPECT_EQ(0, n);	/* the one failure was used */
	/* Write-zeroes and discard of a referenced block. */
	ASSERT_EQ(0, ts_write_str(FAIL_KNOB, "1"));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR,
		  vblk_discard(&self->dev, VIRTIO_BLK_T_WRITE_ZEROES,
			       1 * SECTORS, SECTORS, 0));
	ASSERT_EQ(0, ts_write_str(FAIL_KNOB, "1"));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR,
		  vblk_discard(&self->dev, VIRTIO_BLK_T_DISCARD, 2 * SECTORS,
			       SECTORS, 0));
	/* A write of two referenced blocks, and one of part of a block. */
	ASSERT_EQ(0, ts_write_str(FAIL_KNOB, "1"));
	ts_fill_page(page, 21, 3, 2);
	ts_fill_page(page + PAGE, 21, 4, 2);
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT,
					      3 * SECTORS, page, 2 * PAGE, 0,
					      false));
	ASSERT_EQ(0, ts_write_str(FAIL_KNOB, "1"));
	EXPECT_EQ(VIRTIO_BLK_S_IOERR, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT,
					      5 * SECTORS + 1, page, 512, 0,
					      false));
	EXPECT_EQ(5, ts_vhost_counter("errors"));

	/* Nothing changed: references, contents, image. */
	EXPECT_EQ(8, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ(0, ts_vhost_counter("dropped_references"));
	for (x = 0; x < 8; x++) {
		EXPECT_TRUE(disk_block_is(&self->dev, self->check, x, 21, 1))
			TH_LOG("block %lu lost its contents", x);
		EXPECT_EQ(0, memcmp(before[x], image_block(self->disk_fd,
							   self->image, x),
				    PAGE))
			TH_LOG("image block %lu written", x);
	}

	/* With the memory there, the same write goes through. */
	ts_fill_page(page, 21, 0, 2);
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_OUT, 0,
					   page, PAGE, 0, false));
	EXPECT_TRUE(disk_block_is(&self->dev, self->check, 0, 21, 2));
	EXPECT_EQ(7, ts_vhost_counter("pages_referenced"));
}

static const char * const counters[] = {
	"requests_in", "requests_out", "requests_flush", "bytes_read",
	"bytes_written", "errors", "reconciled_writes", "reconciled_pages",
	"store_reads", "false_reads_avoided", "swapins_avoided",
	"data_bytes_not_written", "merged_blocks", "dropped_references",
	"fallback_not_swapped", "fallback_unaligned",
};

#define NR_COUNTERS	ARRAY_SIZE(counters)

static void read_counters(long long *v)
{
	size_t i;

	for (i = 0; i < NR_COUNTERS; i++)
		v[i] = ts_vhost_counter(counters[i]);
}

/*
 * A known workload against the definitions of Documentation/abi.rst: N
 * pages written from host swap (references), M written from resident
 * memory, all N + M read back into resident memory, D of the references
 * overwritten from resident memory, a flush.
 */
TEST_F_TIMEOUT(rio, counters_match_their_definitions, 300)
{
	const long long N = 64, M = 32, D = 8;
	long long before[NR_COUNTERS], after[NR_COUNTERS];
	const struct { const char *name; long long delta; } want[] = {
		{ "requests_out", 3 },
		{ "requests_in", 1 },
		{ "requests_flush", 1 },
		{ "errors", 0 },
		/* Guest data written to the image: references are not. */
		{ "bytes_written", (M + D) * PAGE },
		{ "data_bytes_not_written", N * PAGE },
		/* Guest data read, from the image or the store. */
		{ "bytes_read", (N + M) * PAGE },
		{ "store_reads", N },
		{ "reconciled_writes", 1 },
		{ "reconciled_pages", N },
		{ "swapins_avoided", N },
		{ "false_reads_avoided", 0 },
		{ "merged_blocks", 0 },
		{ "dropped_references", D },
		{ "fallback_not_swapped", M + D },
		{ "fallback_unaligned", 0 },
	};
	char *resident = self->check;
	size_t i, j;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, N, 22, 1));
	/* Resident for sure: faulted in after the reclaim. */
	memset(resident, 0, PAGES * PAGE);
	read_counters(before);

	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   N, false));
	ts_fill_pages(resident, N + M, 22, 1);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, N * SECTORS,
				   resident + N * PAGE, M, false));
	memset(resident, 0, (N + M) * PAGE);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_IN, 0, resident,
				   N + M, false));
	EXPECT_EQ(0UL, ts_bad_pages(resident, N + M, 22, 1));
	ts_fill_pages(resident, D, 22, 2);
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, resident,
				   D, false));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_rw(&self->dev, 0, VIRTIO_BLK_T_FLUSH, 0,
					   NULL, 0, 0, false));
	read_counters(after);

	for (i = 0; i < ARRAY_SIZE(want); i++) {
		for (j = 0; j < NR_COUNTERS; j++)
			if (!strcmp(counters[j], want[i].name))
				break;
		ASSERT_GT(NR_COUNTERS, j);
		EXPECT_EQ(want[i].delta, after[j] - before[j])
			TH_LOG("%s: %lld, by its definition %lld",
			       want[i].name, after[j] - before[j],
			       want[i].delta);
	}
	EXPECT_EQ(N - D, ts_vhost_counter("pages_referenced"));
}

TEST_HARNESS_MAIN
