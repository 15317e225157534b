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

struct record {
	__u64 magic;
	__u64 seed;
	__u64 batches;		/* acknowledged */
	__u64 check;		/* magic ^ seed ^ batches */
};

static unsigned int rnd(unsigned int *state)
{
	*state = *state * 1103515245U + 12345U;
	return (*state >> 8) & 0xffffff;
}

/* The blocks the next batch writes, drawn from the generator's state. */
static unsigned int batch_blocks(unsigned int *state, unsigned int *blocks)
{
	unsigned int i, n = 1 + rnd(state) % MAX_BATCH;

	for (i = 0; i < n; i++)
		blocks[i] = rnd(state) % BLOCKS;
	return n;
}

static int write_record(int fd, void *buf, __u64 batches)
{
	struct record *r = buf;

	memset(buf, 0, PAGE);
	r->magic = MAGIC;
	r->seed = SEED;
	r->batches = batches;
	r->check = MAGIC ^ SEED ^ batches;
	return pwrite(fd, buf, PAGE, RECORD_OFF) == PAGE ? 0 : -1;
}

static int open_guest(struct vblk_dev *d, int fd)
{
	__u64 id = DISK_ID;
	int ret;

	ret = vblk_open(d, (BLOCKS + 64) * PAGE + (4 << 20), 1, 128, 0);
	if (ret)
		return ret;
	if (ioctl(d->fd, VHOST_BLK_SET_DISK_ID, &id))
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
	if (!ram || !buf || write_record(rec, buf, 0))
		return fail("setup", EIO);
	srand(time(NULL) ^ getpid());
	cut_ms = 500 + rand() % 4000;

	for (batch = 1; time(NULL) - start < MAX_SECONDS; batch++) {
		n = batch_blocks(&state, blocks);
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
		    write_record(rec, buf, batch))
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
	unsigned int blocks[MAX_BATCH], state, i, n, b, v, newer = 0, bad = 0;
	long long refs;
	struct vblk_dev d;
	struct record r;
	char *pages;
	__u64 batch;
	int fd;

	ksft_print_header();
	ksft_set_plan(1);
	fd = open(IMAGE, O_RDWR | O_DIRECT);
	pages = aligned_alloc(PAGE, PAGE);
	if (!lo || !hi || !pages || fd < 0 ||
	    pread(fd, pages, PAGE, RECORD_OFF) != PAGE)
		ksft_exit_fail_msg("cannot read the record: %s\n",
				   strerror(errno));
	memcpy(&r, pages, sizeof(r));
	if (r.magic != MAGIC || r.check != (MAGIC ^ r.seed ^ r.batches) ||
	    r.batches < ARM_AFTER)
		ksft_exit_fail_msg("no valid record of phase 1 (batches %llu)\n",
				   (unsigned long long)r.batches);

	/* The versions after batch k (lo) and after batch k + 1 (hi). */
	state = r.seed;
	for (batch = 1; batch <= r.batches + 1; batch++) {
		n = batch_blocks(&state, blocks);
		for (i = 0; i < n; i++)
			hi[blocks[i]]++;
		if (batch == r.batches)
			memcpy(lo, hi, BLOCKS * sizeof(*lo));
	}

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
	for (b = 0; b < BLOCKS; b++) {
		const unsigned long *page = (void *)(pages + b * PAGE);
		bool zero = true;

		for (i = 0; i < PAGE / sizeof(*page) && zero; i++)
			zero = !page[i];
		v = zero ? 0 : page[2];
		if (v >= lo[b] && v <= hi[b] &&
		    (zero || ts_check_page(page, TAG, b, v))) {
			newer += v > lo[b];
			continue;
		}
		if (bad++ < 10)
			ksft_print_msg("block %u: %s %u, expected %u..%u\n",
				       b, zero ? "zeroes," :
				       ts_check_page(page, TAG, b, v) ?
				       "version" : "garbage, version field",
				       v, lo[b], hi[b]);
	}
	ksft_print_msg("cut after batch %llu: %lld references recovered, %u blocks newer, %u bad\n",
		       (unsigned long long)r.batches, refs, newer, bad);
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
	const char *phase = getenv("TS_PHASE");

	if (phase && !strcmp(phase, "1"))
		return phase1();
	if (phase && !strcmp(phase, "2"))
		return phase2();
	ksft_print_header();
	ksft_set_plan(1);
	ksft_test_result_skip("power_cut: run by run-tests in two boots (TS_PHASE)\n");
	ksft_exit_skip("not in a power-cut phase\n");
	return 4;
}
