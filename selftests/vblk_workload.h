/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Guest workloads of the reconciliation tests, shared by reconcile.c
 * (anonymous guest RAM) and reconcile_shmem.c (memfd guest RAM):
 * - vblk_race(): DESIGN section 4's race, unforced, in a loop: one thread
 *   swaps guest pages in, dirties them and swaps them out again while the
 *   guest writes them to its disk and reads them back;
 * - vblk_isolated_guest(): one of several guests under memory pressure,
 *   each of which must only ever read back its own pages.
 */
#ifndef _VBLK_WORKLOAD_H
#define _VBLK_WORKLOAD_H

#include "vblk_guest.h"

#define VBLK_RACE_PAGES	32

struct vblk_race_result {
	unsigned long writes;
	unsigned long wrong;	/* requests that failed */
	unsigned long stale;	/* blocks read back not as written */
	unsigned long torn;	/* pages that swapped in wrong */
};

/*
 * @rounds rounds over VBLK_RACE_PAGES pages at @pages (guest RAM of @d),
 * written to sectors 0 on and read back into @check (one page), while a
 * thread churns the pages (reclaiming @cgroup every round). The guest
 * never changes a page under its own write, so what reaches the disk must
 * be exactly the version the page had when the write was submitted.
 * 0, or -errno if the thread could not start.
 */
int vblk_race(struct vblk_dev *d, char *pages, char *check,
	      const char *cgroup, unsigned int rounds,
	      struct vblk_race_result *res);

/*
 * @ops random operations of guest @owner on @pages pages of its RAM
 * (allocated from @d, each tagged with @owner, its index and a version):
 * change a page, write it to the disk at @base, or read a written block
 * back and check it is this guest's page at the version written; then
 * every written block once more. With @pageout_every, all of the pages
 * are paged out every that many operations. The pages that read back
 * wrong (or whose request failed), or -1 if memory ran out.
 */
long vblk_isolated_guest(struct vblk_dev *d, int owner, __u64 base,
			 unsigned long pages, unsigned int ops,
			 unsigned int pageout_every);

#endif /* _VBLK_WORKLOAD_H */
