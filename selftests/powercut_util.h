/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The shared half of the power-cut tests (powercut.list): a workload of
 * batches of versioned blocks drawn from a seeded generator, a record of
 * the last acknowledged batch, and the check after the cut: each block
 * holds its version after the recorded batch k, or one batch k + 1 wrote.
 */
#ifndef _POWERCUT_UTIL_H
#define _POWERCUT_UTIL_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>

struct pc_workload {
	const char *name;		/* for messages */
	__u64 magic;			/* of its record */
	unsigned int seed;
	unsigned int blocks;		/* blocks 0 .. blocks - 1 are written */
	unsigned int max_batch;		/* at most this many per batch */
	unsigned long tag;		/* ts_fill_page() tag */
};

/* The blocks the next batch writes, from the generator's @state. */
unsigned int pc_batch(const struct pc_workload *w, unsigned int *state,
		      unsigned int *blocks);
/* Record @batches acknowledged, at @off of @fd (one 4 KiB @buf). */
int pc_record_write(const struct pc_workload *w, int fd, off_t off, void *buf,
		    __u64 batches);
/* The batches a valid record at @off of @fd says, or -1. */
long long pc_record_read(const struct pc_workload *w, int fd, off_t off,
			 void *buf);
/* Each block's version after batch @k (@lo) and after batch k + 1 (@hi). */
void pc_expected(const struct pc_workload *w, __u64 k, unsigned int *lo,
		 unsigned int *hi);
/*
 * Blocks of @pages (block b at b * 4 KiB) holding neither; the first few
 * are named with ksft_print_msg(). *@newer counts blocks of batch k + 1.
 */
unsigned int pc_verify(const struct pc_workload *w, const char *pages,
		       const unsigned int *lo, const unsigned int *hi,
		       unsigned int *newer);
/* main(): the phase TS_PHASE names, or a skip outside run-tests. */
int pc_main(const struct pc_workload *w, int (*phase1)(void),
	    int (*phase2)(void));

#endif /* _POWERCUT_UTIL_H */
