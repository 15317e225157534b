// SPDX-License-Identifier: GPL-2.0
/*
 * A power cut on a raw device, without tesseract: the demonstration of
 * run-tests' two-boot power-cut tests (powercut.list).
 *
 * Phase 1 (TS_PHASE=1) writes batches of versioned 4 KiB blocks to /dev/vdb
 * with O_DIRECT, each batch followed by fsync; once that returns, it records
 * the batch number in a block of /dev/vda (O_DSYNC). After a few batches it
 * asks for the cut ("# tesseract-cut-after: MS") and goes on writing until
 * QEMU is killed.
 *
 * Phase 2 (TS_PHASE=2), on the same disks: the record says batch k was
 * acknowledged (the record of k + 1 may have been lost in the cut, but then
 * batch k + 2 never started). Replaying the workload's random choices, each
 * block must hold exactly the version it had after batch k, or a version
 * that batch k + 1 wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "powercut_util.h"
#include "ts_util.h"

#define PAGE		4096UL
#define DATA		"/dev/vdb"
#define RECORD		"/dev/vda"
#define BLOCKS		1024
#define MAX_BATCH	48
#define ARM_AFTER	3	/* batches acknowledged before the cut is armed */
#define TAG		0x5043UL
#define SEED		0x7e55e2a7U
#define MAGIC		0x7473706f77657263ULL
#define MAX_SECONDS	300

static const struct pc_workload workload = {
	.name = "power_cut_raw",
	.magic = MAGIC,
	.seed = SEED,
	.blocks = BLOCKS,
	.max_batch = MAX_BATCH,
	.tag = TAG,
};

static void *page_buf(size_t pages)
{
	void *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	return p;
}

static int phase1(void)
{
	unsigned int *versions = calloc(BLOCKS, sizeof(*versions));
	unsigned int blocks[MAX_BATCH], state = SEED, i, n, cut_ms;
	void *buf = page_buf(1);
	time_t start = time(NULL);
	__u64 batch;
	int data, rec;

	data = open(DATA, O_RDWR | O_DIRECT);
	rec = open(RECORD, O_RDWR | O_DIRECT | O_DSYNC);
	if (!versions || data < 0 || rec < 0) {
		printf("# power_cut_raw: cannot open the disks: %s\n",
		       strerror(errno));
		return 1;
	}
	if (pc_record_write(&workload, rec, 0, buf, 0))
		return 1;
	srand(time(NULL) ^ getpid());
	cut_ms = 300 + rand() % 2700;

	for (batch = 1; time(NULL) - start < MAX_SECONDS; batch++) {
		n = pc_batch(&workload, &state, blocks);
		for (i = 0; i < n; i++) {
			ts_fill_page(buf, TAG, blocks[i], ++versions[blocks[i]]);
			if (pwrite(data, buf, PAGE, blocks[i] * PAGE) != PAGE) {
				printf("# power_cut_raw: write: %s\n",
				       strerror(errno));
				return 1;
			}
		}
		if (fsync(data) || pc_record_write(&workload, rec, 0, buf, batch)) {
			printf("# power_cut_raw: sync: %s\n", strerror(errno));
			return 1;
		}
		if (batch == ARM_AFTER) {
			printf("# power_cut_raw: %d batches acknowledged, power cut in %u ms\n",
			       ARM_AFTER, cut_ms);
			printf("# tesseract-cut-after: %u\n", cut_ms);
			fflush(stdout);
		}
	}
	printf("# power_cut_raw: still running %d s after asking for the cut\n",
	       MAX_SECONDS);
	return 1;
}

static int phase2(void)
{
	unsigned int *lo = calloc(BLOCKS, sizeof(*lo));
	unsigned int *hi = calloc(BLOCKS, sizeof(*hi));
	char *pages = page_buf(BLOCKS);
	unsigned int newer, bad;
	long long k;
	int fd;

	ksft_print_header();
	ksft_set_plan(1);
	fd = open(RECORD, O_RDONLY | O_DIRECT);
	k = fd < 0 ? -1 : pc_record_read(&workload, fd, 0, pages);
	if (!lo || !hi || k < ARM_AFTER)
		ksft_exit_fail_msg("no valid record of phase 1 (%lld)\n", k);
	close(fd);
	pc_expected(&workload, k, lo, hi);

	fd = open(DATA, O_RDONLY | O_DIRECT);
	if (fd < 0 || pread(fd, pages, BLOCKS * PAGE, 0) != BLOCKS * PAGE)
		ksft_exit_fail_msg("cannot read %s: %s\n", DATA,
				   strerror(errno));
	close(fd);
	bad = pc_verify(&workload, pages, lo, hi, &newer);
	ksft_print_msg("cut after batch %lld was acknowledged: %u blocks newer than it, %u bad\n",
		       k, newer, bad);
	ksft_test_result(!bad, "power_cut_raw: acknowledged writes survive the cut\n");
	if (bad)
		ksft_exit_fail();
	ksft_exit_pass();
	return 0;
}

int main(void)
{
	return pc_main(&workload, phase1, phase2);
}
