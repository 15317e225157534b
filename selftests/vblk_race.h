/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DESIGN section 4's race, unforced, in a loop, for the reconciliation
 * tests (reconcile.c on anonymous RAM, reconcile_shmem.c on memfd RAM):
 * one thread swaps guest pages in, dirties them and swaps them out again
 * while the guest writes them to its disk and reads them back.
 */
#ifndef _VBLK_RACE_H
#define _VBLK_RACE_H

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

#endif /* _VBLK_RACE_H */
