// SPDX-License-Identifier: GPL-2.0
/* Guest workloads of the reconciliation tests: see vblk_workload.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "ts_util.h"
#include "vblk_workload.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define TAG		4

struct race {
	char *pages;
	const char *cgroup;
	pthread_mutex_t lock[VBLK_RACE_PAGES];
	atomic_ulong version[VBLK_RACE_PAGES];
	atomic_bool stop;
	atomic_ulong torn;
};

static void *churn_thread(void *p)
{
	struct race *r = p;
	unsigned long i = 0, n, v;

	while (!atomic_load(&r->stop)) {
		char *page;

		n = i % VBLK_RACE_PAGES;
		page = r->pages + n * PAGE;
		pthread_mutex_lock(&r->lock[n]);
		v = atomic_load(&r->version[n]);
		/* Read fault first, so that the slot survives the dirtying. */
		if (!ts_check_page(page, TAG, n, v))
			atomic_fetch_add(&r->torn, 1);
		v++;
		ts_fill_page(page, TAG, n, v);
		atomic_store(&r->version[n], v);
		pthread_mutex_unlock(&r->lock[n]);
		madvise(page, PAGE, MADV_PAGEOUT);
		if (!(++i % VBLK_RACE_PAGES))
			ts_cgroup_write(r->cgroup, "memory.reclaim", "8M");
	}
	return NULL;
}

int vblk_race(struct vblk_dev *d, char *pages, char *check,
	      const char *cgroup, unsigned int rounds,
	      struct vblk_race_result *res)
{
	struct race *r = calloc(1, sizeof(*r));
	unsigned long i, p, v;
	pthread_t thread;

	if (!r)
		return -ENOMEM;
	*res = (struct vblk_race_result){ 0 };
	r->pages = pages;
	r->cgroup = cgroup;
	for (i = 0; i < VBLK_RACE_PAGES; i++) {
		pthread_mutex_init(&r->lock[i], NULL);
		ts_fill_page(pages + i * PAGE, TAG, i, 0);
	}
	if (pthread_create(&thread, NULL, churn_thread, r)) {
		free(r);
		return -EAGAIN;
	}
	for (i = 0; i < (unsigned long)rounds * VBLK_RACE_PAGES; i++) {
		p = (i * 7) % VBLK_RACE_PAGES;
		pthread_mutex_lock(&r->lock[p]);
		v = atomic_load(&r->version[p]);
		if (vblk_rw(d, 0, VIRTIO_BLK_T_OUT, p * SECTORS,
			    pages + p * PAGE, PAGE, 0, false))
			res->wrong++;
		pthread_mutex_unlock(&r->lock[p]);
		if (vblk_rw(d, 0, VIRTIO_BLK_T_IN, p * SECTORS, check, PAGE, 0,
			    false))
			res->wrong++;
		else if (!ts_check_page(check, TAG, p, v))
			res->stale++;
	}
	atomic_store(&r->stop, true);
	pthread_join(thread, NULL);
	res->writes = i;
	res->torn = atomic_load(&r->torn);
	free(r);
	return 0;
}

static unsigned long xorshift(unsigned long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

long vblk_isolated_guest(struct vblk_dev *d, int owner, __u64 base,
			 unsigned long pages, unsigned int ops,
			 unsigned int pageout_every)
{
	unsigned long seed = 0x9e3779b97f4a7c15UL * (owner + 1);
	unsigned long *ver, *disk_ver, i, op;
	char *ram, *scratch;
	unsigned int n;
	long bad = 0;

	ram = vblk_alloc(d, pages * PAGE, PAGE);
	scratch = vblk_alloc(d, PAGE, PAGE);
	ver = calloc(pages, sizeof(*ver));
	disk_ver = calloc(pages, sizeof(*disk_ver));
	if (!ram || !scratch || !ver || !disk_ver) {
		free(ver);
		free(disk_ver);
		return -1;
	}
	for (i = 0; i < pages; i++) {
		ver[i] = 1;
		ts_fill_page(ram + i * PAGE, owner, i, 1);
	}
	for (n = 0; n < ops; n++) {
		i = xorshift(&seed) % pages;
		op = xorshift(&seed) % 8;
		if (op < 2) {
			ts_fill_page(ram + i * PAGE, owner, i, ++ver[i]);
		} else if (op < 6) {
			if (vblk_rw(d, 0, VIRTIO_BLK_T_OUT, base + i * SECTORS,
				    ram + i * PAGE, PAGE, 0, false))
				bad++;
			disk_ver[i] = ver[i];
		} else if (disk_ver[i]) {
			if (vblk_rw(d, 0, VIRTIO_BLK_T_IN, base + i * SECTORS,
				    scratch, PAGE, 0, false) ||
			    !ts_check_page(scratch, owner, i, disk_ver[i]))
				bad++;
		}
		if (pageout_every && !(n % pageout_every))
			madvise(ram, pages * PAGE, MADV_PAGEOUT);
	}
	for (i = 0; i < pages; i++)
		if (disk_ver[i] &&
		    (vblk_rw(d, 0, VIRTIO_BLK_T_IN, base + i * SECTORS,
			     scratch, PAGE, 0, false) ||
		     !ts_check_page(scratch, owner, i, disk_ver[i])))
			bad++;
	free(ver);
	free(disk_ver);
	return bad;
}
