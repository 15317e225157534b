// SPDX-License-Identifier: GPL-2.0
/*
 * A power cut under a reconciling guest (run-tests' two-boot tests,
 * powercut.list).
 *
 * Phase 1 (TS_PHASE=1): a store on /dev/vdb, swap on /dev/tsswap0, a guest
 * disk on /dev/vda. In batches, the guest changes some pages of its RAM,
 * the host swaps them out, the guest writes them (reconciled) and flushes;
 * once the flush completes, the batch number is recorded far out on
 * /dev/vda (O_DSYNC). After a few batches it asks for the cut and goes on
 * until QEMU is killed.
 *
 * Phase 2 (TS_PHASE=2), booted again on the same disks: the module loads
 * the store and the guest attaches its disk by id. Replaying the
 * workload's random choices, each block must hold exactly the version it
 * had after the recorded batch k, or one that batch k + 1 wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/tesseract.h>
#include <linux/types.h>

#include "kselftest.h"
#include "powercut_util.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define STORE		"/dev/vdb"
#define IMAGE		"/dev/vda"
#define RECORD_OFF	0x40000000ULL	/* of IMAGE, far from the guest's */
#define CGROUP		"ts-power-cut"
#define BLOCKS		256
#define MAX_BATCH	32
#define ARM_AFTER	3
#define TAG		0x7043UL
#define SEED		0x5eed7e55U
#define MAGIC		0x74737063757474ULL
#define DISK_ID		0x9c07ULL
#define MAX_SECONDS	300

static const struct pc_workload workload = {
	.name = "power_cut",
	.magic = MAGIC,
	.seed = SEED,
	.blocks = BLOCKS,
	.max_batch = MAX_BATCH,
	.tag = TAG,
};

static int open_guest(struct vblk_dev *d, int fd)
{
	/*
	 * A block device's own identity changes with every boot: the token
	 * carries the references over the power cut.
	 */
	struct vhost_blk_disk_identity ident = {
		.disk_id = DISK_ID,
		.token = "power-cut",
	};
	int ret;

	ret = vblk_open(d, (BLOCKS + 64) * PAGE + (4 << 20), 1, 128, 0);
	if (ret)
		return ret;
	if (ioctl(d->fd, VHOST_BLK_SET_DISK_IDENTITY, &ident))
		return -errno;
	return vblk_set_backend(d, fd);
}

static int fail(const char *what, int err)
{
	printf("# power_cut: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return 1;
}

static int phase1(void)
{
	unsigned int *versions = calloc(BLOCKS, sizeof(*versions));
	unsigned int blocks[MAX_BATCH], state = SEED, i, n, cut_ms;
	time_t start = time(NULL);
	struct vblk_dev d;
	int image, rec, ret;
	char *ram, *buf;
	__u64 batch;

	ret = ts_swap_up("backing=" STORE);
	if (ret)
		return fail("store and swap", ret);
	if (ts_cgroup_enter(CGROUP))
		return fail("cgroup", errno);
	image = open(IMAGE, O_RDWR | O_DIRECT);
	rec = open(IMAGE, O_RDWR | O_DIRECT | O_DSYNC);
	if (!versions || image < 0 || rec < 0)
		return fail("open", errno);
	vblk_init(&d);
	ret = open_guest(&d, image);
	if (ret)
		return fail("guest", ret);
	ram = vblk_alloc(&d, BLOCKS * PAGE, PAGE);
	buf = vblk_alloc(&d, PAGE, PAGE);
	if (!ram || !buf || pc_record_write(&workload, rec, RECORD_OFF, buf, 0))
		return fail("setup", EIO);
	srand(time(NULL) ^ getpid());
	cut_ms = 500 + rand() % 4000;

	for (batch = 1; time(NULL) - start < MAX_SECONDS; batch++) {
		n = pc_batch(&workload, &state, blocks);
		for (i = 0; i < n; i++)
			ts_fill_page(ram + blocks[i] * PAGE, TAG, blocks[i],
				     ++versions[blocks[i]]);
		ts_push_to_swap(CGROUP, ram, BLOCKS * PAGE);
		for (i = 0; i < n; i++)
			if (vblk_rw(&d, 0, VIRTIO_BLK_T_OUT,
				    blocks[i] * SECTORS,
				    ram + blocks[i] * PAGE, PAGE, 0, false))
				return fail("guest write", EIO);
		if (vblk_rw(&d, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0, false) ||
		    pc_record_write(&workload, rec, RECORD_OFF, buf, batch))
			return fail("flush", EIO);
		if (batch == ARM_AFTER) {
			printf("# power_cut: %d batches acknowledged, %lld pages reconciled\n",
			       ARM_AFTER, ts_vhost_counter("reconciled_pages"));
			printf("# power_cut: power cut in %u ms\n", cut_ms);
			printf("# tesseract-cut-after: %u\n", cut_ms);
			fflush(stdout);
		}
	}
	printf("# power_cut: still running %d s after asking for the cut\n",
	       MAX_SECONDS);
	return 1;
}

static int phase2(void)
{
	unsigned int *lo = calloc(BLOCKS, sizeof(*lo));
	unsigned int *hi = calloc(BLOCKS, sizeof(*hi));
	char *pages = aligned_alloc(PAGE, PAGE);
	unsigned int newer, bad;
	struct vblk_dev d;
	long long k, refs;
	int fd;

	ksft_print_header();
	ksft_set_plan(1);
	fd = open(IMAGE, O_RDWR | O_DIRECT);
	k = fd < 0 || !pages ? -1 :
	    pc_record_read(&workload, fd, RECORD_OFF, pages);
	if (!lo || !hi || k < ARM_AFTER)
		ksft_exit_fail_msg("no valid record of phase 1 (%lld)\n", k);
	pc_expected(&workload, k, lo, hi);

	/* The store as the cut left it: recovered, not formatted. */
	if (ts_module_load("backing=" STORE))
		ksft_exit_fail_msg("the store does not load after the cut\n");
	vblk_init(&d);
	if (open_guest(&d, fd))
		ksft_exit_fail_msg("the disk does not attach\n");
	refs = ts_vhost_counter("pages_referenced");
	pages = vblk_alloc(&d, BLOCKS * PAGE, PAGE);
	if (!pages || vblk_rw(&d, 0, VIRTIO_BLK_T_IN, 0, pages, BLOCKS * PAGE,
			      0, false))
		ksft_exit_fail_msg("cannot read the disk\n");
	bad = pc_verify(&workload, pages, lo, hi, &newer);
	ksft_print_msg("cut after batch %lld: %lld references recovered, %u blocks newer, %u bad\n",
		       k, refs, newer, bad);
	vblk_close(&d);
	close(fd);
	ts_module_ensure_unloaded();
	ksft_test_result(!bad && refs > 0,
			 "power_cut: acknowledged writes and references survive the cut\n");
	if (bad || refs <= 0)
		ksft_exit_fail();
	ksft_exit_pass();
	return 0;
}

int main(void)
{
	return pc_main(&workload, phase1, phase2);
}
