// SPDX-License-Identifier: GPL-2.0
/*
 * The shared half of the power-cut tests: see powercut_util.h.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest.h"
#include "powercut_util.h"
#include "ts_util.h"

#define PAGE	4096UL

struct pc_record {
	__u64 magic;
	__u64 seed;
	__u64 batches;		/* acknowledged */
	__u64 check;		/* magic ^ seed ^ batches */
};

static unsigned int pc_rnd(unsigned int *state)
{
	*state = *state * 1103515245U + 12345U;
	return (*state >> 8) & 0xffffff;
}

unsigned int pc_batch(const struct pc_workload *w, unsigned int *state,
		      unsigned int *blocks)
{
	unsigned int i, n = 1 + pc_rnd(state) % w->max_batch;

	for (i = 0; i < n; i++)
		blocks[i] = pc_rnd(state) % w->blocks;
	return n;
}

int pc_record_write(const struct pc_workload *w, int fd, off_t off, void *buf,
		    __u64 batches)
{
	struct pc_record *r = buf;

	memset(buf, 0, PAGE);
	r->magic = w->magic;
	r->seed = w->seed;
	r->batches = batches;
	r->check = w->magic ^ w->seed ^ batches;
	return pwrite(fd, buf, PAGE, off) == PAGE ? 0 : -1;
}

long long pc_record_read(const struct pc_workload *w, int fd, off_t off,
			 void *buf)
{
	struct pc_record r;

	if (pread(fd, buf, PAGE, off) != PAGE)
		return -1;
	memcpy(&r, buf, sizeof(r));
	if (r.magic != w->magic || r.seed != w->seed ||
	    r.check != (w->magic ^ w->seed ^ r.batches))
		return -1;
	return r.batches;
}

void pc_expected(const struct pc_workload *w, __u64 k, unsigned int *lo,
		 unsigned int *hi)
{
	unsigned int *blocks = calloc(w->max_batch, sizeof(*blocks));
	unsigned int state = w->seed, i, n;
	__u64 batch;

	memset(hi, 0, w->blocks * sizeof(*hi));
	for (batch = 1; blocks && batch <= k + 1; batch++) {
		n = pc_batch(w, &state, blocks);
		for (i = 0; i < n; i++)
			hi[blocks[i]]++;
		if (batch == k)
			memcpy(lo, hi, w->blocks * sizeof(*lo));
	}
	if (!k)
		memset(lo, 0, w->blocks * sizeof(*lo));
	free(blocks);
}

unsigned int pc_verify(const struct pc_workload *w, const char *pages,
		       const unsigned int *lo, const unsigned int *hi,
		       unsigned int *newer)
{
	unsigned int b, i, v, bad = 0;

	*newer = 0;
	for (b = 0; b < w->blocks; b++) {
		const unsigned long *page = (const void *)(pages + b * PAGE);
		bool zero = true;

		for (i = 0; i < PAGE / sizeof(*page) && zero; i++)
			zero = !page[i];
		v = zero ? 0 : page[2];
		if (v >= lo[b] && v <= hi[b] &&
		    (zero || ts_check_page(page, w->tag, b, v))) {
			*newer += v > lo[b];
			continue;
		}
		if (bad++ < 10)
			ksft_print_msg("%s: block %u: %s %u, expected %u..%u\n",
				       w->name, b, zero ? "zeroes," :
				       ts_check_page(page, w->tag, b, v) ?
				       "version" : "garbage, version field",
				       v, lo[b], hi[b]);
	}
	return bad;
}

int pc_main(const struct pc_workload *w, int (*phase1)(void),
	    int (*phase2)(void))
{
	const char *phase = getenv("TS_PHASE");

	if (phase && !strcmp(phase, "1"))
		return phase1();
	if (phase && !strcmp(phase, "2"))
		return phase2();
	ksft_print_header();
	ksft_set_plan(1);
	ksft_test_result_skip("%s: run by run-tests in two boots (TS_PHASE)\n",
			      w->name);
	ksft_exit_skip("not in a power-cut phase\n");
	return 4;
}
