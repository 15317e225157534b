// SPDX-License-Identifier: GPL-2.0
/*
 * Guest requests over references: the device's counters against their
 * definitions in Documentation/abi.rst for a known workload.
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

FIXTURE(rio) {
	struct vblk_dev dev;
	int disk_fd;
	char *buf, *check;
};

FIXTURE_SETUP(rio)
{
	vblk_init(&self->dev);
	self->disk_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->disk_fd, 0));
	self->buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(rio)
{
	vblk_close_disk(&self->dev, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
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
