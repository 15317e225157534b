// SPDX-License-Identifier: GPL-2.0
/*
 * mapperbench: the swap mapper's benchmark (bench-mapper, issue #15).
 *
 *   mapperbench [-p PROFILE] [-m off|on] [-c RANGE_MIB] [-l READ_KIB]
 *               [-s STORE_DEV] [-a] IMAGE_DEV
 *
 * One "guest" (the userspace virtio-blk driver of selftests/) with IMAGE_DEV
 * as its disk and its RAM in a cgroup of its own; reconciliation is off for
 * its /dev/vhost-blk device, so that only the swap mapper acts, and the
 * mapper is off (-m off) or on (-m on) for it (VHOST_BLK_SET_SWAP_MAPPER;
 * the module must have been loaded with swap_mapper=1). Phases:
 *
 *   write    the guest writes RANGE_MIB of distinct pages (a tag and the
 *            page's index: every page checkable) to the start of its disk,
 *            1 MiB per request from a scratch buffer, which it then frees;
 *   read     it reads the range sequentially, READ_KIB per request, one at
 *            a time, into its "page cache", an area of whole aligned pages,
 *            and checks every page;
 *   swapout  the host swaps that area out to /dev/tsswap0: MADV_PAGEOUT
 *            page by page in a random order (-a: in address order), then
 *            memory.reclaim of the cgroup until no page of the area is
 *            resident (the writes of unmapped pages complete later);
 *   swapin   with the caches dropped, the guest reads one byte of each page
 *            of the area in address order, each first touch timed; then
 *            every page is checked.
 *
 * Then it frees the area and discards the range. Each phase prints a line
 * "# mapper PROFILE MODE PHASE key=value..." (time, throughput, latency,
 * CPU time, /proc/vmstat pswpin and pswpout, bytes and requests on
 * IMAGE_DEV and STORE_DEV from /sys/dev/block/M:m/stat) and a line
 * "# mapper PROFILE MODE PHASE stats key=value..." with every line of
 * debugfs tesseract/swap_mapper (its change over the phase; levels as they
 * are) and tsswap0's counters (swapdev_*).
 *
 * CPU time: cpu_sys_ms and cpu_user_ms are getrusage(RUSAGE_SELF) of this
 * process, all its threads (on 6.12 the vhost worker is one of them, on
 * 6.1 it is a kernel thread of its own, not counted): the scheduler's
 * runtime, split by the ticks' user/system ratio, a clock as hash_ns is
 * (both count alike whatever the host takes from the vCPU); kernel_cpu_ms
 * is system, irq and softirq time of all CPUs (/proc/stat), whoever ran,
 * counted in timer ticks, which a vCPU under TCG loses when its host is
 * busy: it can read far below cpu_sys_ms. hash_pct, in the swapout line,
 * is 100 * the change of debugfs hash_ns over the phase / cpu_sys_ms: the
 * share of the process's kernel time during the swap-out (the swap-out
 * writes run in the task that reclaims) that the mapper spent hashing
 * pages.
 *
 * Exits non-zero, after a line "# mapper: FAILED: ...", if a request fails,
 * a page is wrong, or the mapper counted a swap-in error or mismatch.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS_PER_PAGE	(PAGE / 512)
#define CGROUP		"ts-mapperbench"
#define QSIZE		128
#define META_BYTES	(4UL << 20)	/* rings, request headers */
#define SCRATCH_PAGES	VBLK_IO_PAGES	/* one write request */
#define MAPPER_STATS	TS_DEBUGFS "/swap_mapper"
#define PARAMS		"/sys/module/tesseract/parameters"
#define MAX_STATS	64
#define SWAPOUT_SECS	300		/* the area not out by then: give up */
#define DRAIN_STALLS	10		/* rounds with no progress: drain LRUs */

struct mb_opts {
	const char *profile;
	const char *image;
	const char *store;
	bool mapper;
	bool address_order;	/* -a */
	size_t pages;		/* the range, in pages */
	size_t read_len;	/* bytes per read request */
};

/* A line "name value" of debugfs swap_mapper. */
struct mb_stat {
	char name[48];
	long long val;
};

/* tsswap0's debugfs counters reported, as swapdev_<name>. */
static const char * const swapdev_counters[] = {
	"writes", "reads", "zero_reads", "store_full", "write_errors",
	"read_errors",
};

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define NR_SWAPDEV	ARRAY_SIZE(swapdev_counters)

struct mb_snap {
	double time;
	struct rusage ru;
	long long kernel_ticks;		/* /proc/stat system + irq + softirq */
	long long pswpin, pswpout;
	struct ts_blk_stat image, store;
	struct mb_stat map[MAX_STATS];
	size_t nr_map;
	long long swapdev[NR_SWAPDEV];
};

static struct mb_opts opts = {
	.profile = "test",
	.pages = 64 << 8,
	.read_len = 256 << 10,
};

static void print_head(const char *phase)
{
	printf("# mapper %s %s %s", opts.profile, opts.mapper ? "on" : "off",
	       phase);
}

/* The line that says the run failed, and why. */
static void failed(const char *fmt, ...)
{
	va_list ap;

	printf("# mapper: FAILED: %s %s: ", opts.profile,
	       opts.mapper ? "on" : "off");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* The @pct percentile of @n values (sorted in place), nearest rank. */
static double percentile(double *v, size_t n, double pct)
{
	size_t rank;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), ts_cmp_double);
	rank = (size_t)(pct / 100 * n + 0.999999);
	if (rank < 1)
		rank = 1;
	return v[(rank > n ? n : rank) - 1];
}

/* Every "name value" line of debugfs swap_mapper into @s. */
static void read_map_stats(struct mb_snap *s)
{
	FILE *f = fopen(MAPPER_STATS, "r");
	char line[160];

	s->nr_map = 0;
	if (!f)
		return;
	while (s->nr_map < MAX_STATS && fgets(line, sizeof(line), f)) {
		struct mb_stat *st = &s->map[s->nr_map];

		if (sscanf(line, "%47s %lld", st->name, &st->val) == 2)
			s->nr_map++;
	}
	fclose(f);
}

/* A swap_mapper value of @s, or -1 if it has no such line. */
static long long map_stat(const struct mb_snap *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nr_map; i++)
		if (!strcmp(s->map[i].name, name))
			return s->map[i].val;
	return -1;
}

/* Lines of swap_mapper that are levels, not running totals. */
static bool map_stat_is_level(const char *name)
{
	return !strcmp(name, "slots_mapped") ||
	       !strcmp(name, "fingerprints_held") ||
	       !strcmp(name, "fingerprints_capacity");
}

/* System, irq and softirq time of all CPUs so far, in clock ticks. */
static long long kernel_ticks(void)
{
	long long user, nice, sys, idle, iowait, irq, softirq;
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld", &user, &nice,
		   &sys, &idle, &iowait, &irq, &softirq);
	fclose(f);
	return n == 7 ? sys + irq + softirq : -1;
}

/*
 * The counters at the start (@end false) or the end of a phase. Its time
 * and the process's CPU time are taken last at the start and first at the
 * end: they leave out the reading of the others.
 */
static void snapshot(struct mb_snap *s, bool end)
{
	size_t i;

	if (end) {
		s->time = ts_now();
		getrusage(RUSAGE_SELF, &s->ru);
	}
	s->kernel_ticks = kernel_ticks();
	s->pswpin = ts_vmstat("pswpin");
	s->pswpout = ts_vmstat("pswpout");
	ts_blk_stat(opts.image, &s->image);
	ts_blk_stat(opts.store, &s->store);
	read_map_stats(s);
	for (i = 0; i < NR_SWAPDEV; i++)
		s->swapdev[i] = ts_swapdev_counter(swapdev_counters[i]);
	if (!end) {
		getrusage(RUSAGE_SELF, &s->ru);
		s->time = ts_now();
	}
}

static double tv_ms(const struct timeval *a, const struct timeval *b)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_usec - a->tv_usec) / 1e3;
}

static double cpu_sys_ms(const struct mb_snap *a, const struct mb_snap *b)
{
	return tv_ms(&a->ru.ru_stime, &b->ru.ru_stime);
}

/*
 * The part of a phase's line that every phase has: CPU time, swap traffic
 * and the two devices' I/O between @a and @b; then the stats line.
 */
static void print_delta(const char *phase, const struct mb_snap *a,
			const struct mb_snap *b)
{
	long long ticks = sysconf(_SC_CLK_TCK);
	size_t i;

	printf(" cpu_sys_ms=%.0f cpu_user_ms=%.0f", cpu_sys_ms(a, b),
	       tv_ms(&a->ru.ru_utime, &b->ru.ru_utime));
	if (a->kernel_ticks >= 0 && b->kernel_ticks >= 0 && ticks > 0)
		printf(" kernel_cpu_ms=%lld",
		       (b->kernel_ticks - a->kernel_ticks) * 1000 / ticks);
	printf(" major_faults=%ld pswpin=%lld pswpout=%lld",
	       b->ru.ru_majflt - a->ru.ru_majflt, b->pswpin - a->pswpin,
	       b->pswpout - a->pswpout);
	printf(" image_read=%lld image_read_ios=%lld image_written=%lld",
	       b->image.read - a->image.read,
	       b->image.read_ios - a->image.read_ios,
	       b->image.written - a->image.written);
	if (opts.store) {
		printf(" store_read=%lld store_read_ios=%lld",
		       b->store.read - a->store.read,
		       b->store.read_ios - a->store.read_ios);
		printf(" store_written=%lld store_write_ios=%lld",
		       b->store.written - a->store.written,
		       b->store.write_ios - a->store.write_ios);
	}
	printf("\n");

	print_head(phase);
	printf(" stats");
	for (i = 0; i < b->nr_map; i++) {
		const struct mb_stat *st = &b->map[i];
		long long before = map_stat(a, st->name);

		printf(" %s=%lld", st->name,
		       map_stat_is_level(st->name) || before < 0 ?
		       st->val : st->val - before);
	}
	if (!b->nr_map)
		printf(" swap_mapper=unreadable");
	for (i = 0; i < NR_SWAPDEV; i++)
		if (b->swapdev[i] >= 0 && a->swapdev[i] >= 0)
			printf(" swapdev_%s=%lld", swapdev_counters[i],
			       b->swapdev[i] - a->swapdev[i]);
	printf("\n");
	fflush(stdout);
}

/* Write the range's pages to the disk, from a scratch buffer. 0 or -1. */
static int write_range(struct vblk_dev *d, unsigned char *scratch,
		       unsigned long tag)
{
	size_t first, n, i;
	struct mb_snap a, b;
	int status;

	snapshot(&a, false);
	for (first = 0; first < opts.pages; first += n) {
		n = opts.pages - first < SCRATCH_PAGES ? opts.pages - first :
							 SCRATCH_PAGES;
		for (i = 0; i < n; i++)
			ts_fill_page(scratch + i * PAGE, tag, first + i, 0);
		status = vblk_io_pages(d, VIRTIO_BLK_T_OUT,
				       first * SECTORS_PER_PAGE, scratch, n,
				       false);
		if (status) {
			failed("write of page %zu: status %d", first, status);
			return -1;
		}
	}
	snapshot(&b, true);
	/* The guest's copies are gone: only the disk has these bytes. */
	madvise(scratch, SCRATCH_PAGES * PAGE, MADV_DONTNEED);
	print_head("write");
	printf(" mib=%.1f secs=%.3f", opts.pages * PAGE / 1048576.0,
	       b.time - a.time);
	print_delta("write", &a, &b);
	return 0;
}

/* Pages of @area that lack their pattern. */
static size_t bad_pages(const unsigned char *area, unsigned long tag)
{
	size_t i, bad = 0;

	for (i = 0; i < opts.pages; i++)
		bad += !ts_check_page(area + i * PAGE, tag, i, 0);
	return bad;
}

/* Read the range sequentially into @area, one request at a time. */
static int read_range(struct vblk_dev *d, unsigned char *area,
		      unsigned long tag)
{
	size_t per_req = opts.read_len / PAGE, nreq = opts.pages / per_req, i;
	double mib = opts.pages * PAGE / 1048576.0, t0, secs;
	double *lat = calloc(nreq, sizeof(*lat));
	struct mb_snap a, b;
	size_t bad;
	int status;

	if (!lat)
		return -1;
	sync();
	ts_write_str("/proc/sys/vm/drop_caches", "3");
	snapshot(&a, false);
	for (i = 0; i < nreq; i++) {
		t0 = ts_now();
		status = vblk_rw(d, 0, VIRTIO_BLK_T_IN,
				 i * per_req * SECTORS_PER_PAGE,
				 area + i * per_req * PAGE, opts.read_len, 0,
				 false);
		lat[i] = ts_now() - t0;
		if (status) {
			failed("read request %zu: status %d", i, status);
			free(lat);
			return -1;
		}
	}
	snapshot(&b, true);
	secs = b.time - a.time;
	bad = bad_pages(area, tag);
	print_head("read");
	printf(" mib=%.1f secs=%.3f mib_s=%.3f read_kib=%zu requests=%zu",
	       mib, secs, mib / secs, opts.read_len >> 10, nreq);
	printf(" p50_ms=%.3f max_ms=%.3f bad_pages=%zu",
	       1e3 * percentile(lat, nreq, 50),
	       1e3 * percentile(lat, nreq, 100), bad);
	print_delta("read", &a, &b);
	free(lat);
	if (bad) {
		failed("%zu pages read wrong", bad);
		return -1;
	}
	return 0;
}

/* /proc/meminfo's Writeback: KiB of pages under writeback, or -1. */
static long long writeback_kib(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	long long kib = -1;
	char line[128];

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Writeback: %lld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Wait until no page is under writeback, or @until. */
static void wait_writeback(double until)
{
	while (writeback_kib() > 0 && ts_now() < until)
		usleep(5000);
}

/*
 * The host swaps @area out: MADV_PAGEOUT of each page in a random order
 * (slots, and so store blocks, are handed out in reclaim order), then
 * memory.reclaim of the cgroup until no page of the area is resident. A
 * page the mapper maps is freed by its MADV_PAGEOUT (its swap-out needs no
 * I/O); a page that is written stays in the swap cache until its write has
 * completed and reclaim comes back for it: each round first waits until no
 * page is under writeback, so that reclaim finds the area's pages
 * reclaimable (at the tail of the LRU) and takes them, not others of the
 * cgroup. Rounds with no progress sleep 10 ms; every DRAIN_STALLS of them
 * in a row, compaction drains the CPUs' LRU batches, where a page is out
 * of reach of reclaim (@drains counts them). Returns the pages still
 * resident.
 */
static size_t swap_out(unsigned char *area, unsigned int seed,
		       unsigned int *drains, unsigned int *rounds)
{
	size_t len = opts.pages * PAGE, resident, before, *order, i, j, t;
	double end = ts_now() + SWAPOUT_SECS;
	unsigned int stalls = 0;
	char amount[32];

	*drains = 0;
	*rounds = 0;
	order = malloc(opts.pages * sizeof(*order));
	if (!order)
		return opts.pages;
	for (i = 0; i < opts.pages; i++)
		order[i] = i;
	if (!opts.address_order) {
		srandom(seed);
		for (i = opts.pages - 1; i > 0; i--) {
			j = (size_t)random() % (i + 1);
			t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
	}
	for (i = 0; i < opts.pages; i++)
		madvise(area + order[i] * PAGE, PAGE, MADV_PAGEOUT);
	free(order);

	resident = ts_resident_pages(area, len);
	while (resident && ts_now() < end) {
		wait_writeback(end);
		snprintf(amount, sizeof(amount), "%zu", resident * PAGE);
		/* EAGAIN: less than asked for was reclaimed. */
		ts_cgroup_write(CGROUP, "memory.reclaim", amount);
		(*rounds)++;
		before = resident;
		resident = ts_resident_pages(area, len);
		if (resident < before) {
			stalls = 0;
			continue;
		}
		/* Writes still in flight: give them time. */
		usleep(10000);
		if (++stalls % DRAIN_STALLS == 0) {
			ts_write_str("/proc/sys/vm/compact_memory", "1");
			(*drains)++;
		}
	}
	return resident;
}

static int swapout_phase(unsigned char *area, unsigned int seed)
{
	unsigned int drains, rounds;
	struct mb_snap a, b;
	long long hash_ns, out;
	size_t resident;
	double sys_ms;

	snapshot(&a, false);
	resident = swap_out(area, seed, &drains, &rounds);
	snapshot(&b, true);
	out = b.pswpout - a.pswpout;
	sys_ms = cpu_sys_ms(&a, &b);
	hash_ns = map_stat(&b, "hash_ns") - map_stat(&a, "hash_ns");
	print_head("swapout");
	printf(" pages=%zu order=%s secs=%.3f resident=%zu reclaim_rounds=%u drains=%u",
	       opts.pages, opts.address_order ? "address" : "random",
	       b.time - a.time, resident, rounds, drains);
	if (map_stat(&b, "hash_ns") >= 0) {
		printf(" hash_ms=%.1f", hash_ns / 1e6);
		if (sys_ms > 0)
			printf(" hash_pct=%.2f", 100 * hash_ns / 1e6 / sys_ms);
	}
	print_delta("swapout", &a, &b);
	if (out <= 0) {
		failed("nothing was swapped out (pswpout %lld)", out);
		return -1;
	}
	if (resident)
		printf("# mapper: %zu pages of the area stayed resident\n",
		       resident);
	return 0;
}

/*
 * The guest touches its area again, one page at a time, in address order:
 * a read of its first byte, timed (a swap-in, or a hit on a page swap
 * readahead brought in with an earlier one). Then every page is checked.
 */
static int swapin_phase(unsigned char *area, unsigned long tag)
{
	double mib = opts.pages * PAGE / 1048576.0, secs, t0;
	double *lat = calloc(opts.pages, sizeof(*lat));
	long long errors, mismatches;
	struct mb_snap a, b;
	size_t i, bad;

	if (!lat)
		return -1;
	/* Nothing may come from a cache but the swap cache's readahead. */
	sync();
	ts_write_str("/proc/sys/vm/drop_caches", "3");
	snapshot(&a, false);
	for (i = 0; i < opts.pages; i++) {
		t0 = ts_now();
		__atomic_load_n(area + i * PAGE, __ATOMIC_RELAXED);
		lat[i] = ts_now() - t0;
	}
	snapshot(&b, true);
	secs = b.time - a.time;
	bad = bad_pages(area, tag);
	errors = map_stat(&b, "swap_in_errors") - map_stat(&a, "swap_in_errors");
	mismatches = map_stat(&b, "swap_in_mismatches") -
		     map_stat(&a, "swap_in_mismatches");
	print_head("swapin");
	printf(" mib=%.1f secs=%.3f mib_s=%.3f", mib, secs, mib / secs);
	printf(" p50_ms=%.3f p99_ms=%.3f max_ms=%.3f bad_pages=%zu",
	       1e3 * percentile(lat, opts.pages, 50),
	       1e3 * percentile(lat, opts.pages, 99),
	       1e3 * percentile(lat, opts.pages, 100), bad);
	print_delta("swapin", &a, &b);
	free(lat);
	if (bad || errors > 0 || mismatches > 0) {
		failed("%zu pages swapped in wrong, %lld swap-in errors, %lld mismatches",
		       bad, errors, mismatches);
		return -1;
	}
	return 0;
}

/* Reconciliation off, the mapper as asked, for the device. 0 or -1. */
static int set_device(struct vblk_dev *d)
{
	int off = 0, on = opts.mapper;
	char dir[512], path[600], rec[16] = "?", map[16] = "?";

	if (ioctl(d->fd, VHOST_BLK_SET_RECONCILE, &off) &&
	    errno != ENOTTY && errno != EINVAL) {
		failed("VHOST_BLK_SET_RECONCILE 0: %s", strerror(errno));
		return -1;
	}
	if (ioctl(d->fd, VHOST_BLK_SET_SWAP_MAPPER, &on)) {
		failed("VHOST_BLK_SET_SWAP_MAPPER %d: %s", on, strerror(errno));
		return -1;
	}
	if (ts_vhost_devices(dir, sizeof(dir)) == 1) {
		snprintf(path, sizeof(path), "%s/reconcile", dir);
		ts_read_str(path, rec, sizeof(rec));
		snprintf(path, sizeof(path), "%s/swap_mapper", dir);
		ts_read_str(path, map, sizeof(map));
	}
	printf("# mapper: device reconcile=%s swap_mapper=%s\n", rec, map);
	return 0;
}

/* The guest's phases, then the area freed and the range discarded. */
static int bench(struct vblk_dev *d)
{
	unsigned long tag = ((unsigned long)getpid() << 20) ^
			    (unsigned long)time(NULL);
	unsigned char *scratch, *area;
	char param[16] = "?";
	struct mb_snap s;
	int ret, status, this_cpu;
	cpu_set_t cpu;

	scratch = vblk_alloc(d, SCRATCH_PAGES * PAGE, PAGE);
	area = vblk_alloc(d, opts.pages * PAGE, PAGE);
	if (!scratch || !area) {
		failed("guest RAM exhausted");
		return -1;
	}
	ts_read_str(PARAMS "/swap_mapper", param, sizeof(param));
	read_map_stats(&s);
	print_head("setup");
	printf(" pages=%zu read_kib=%zu order=%s", opts.pages,
	       opts.read_len >> 10, opts.address_order ? "address" : "random");
	printf(" module_swap_mapper=%s fingerprints_capacity=%lld\n", param,
	       map_stat(&s, "fingerprints_capacity"));
	/*
	 * One CPU for this thread from here: the pages it faults in sit in
	 * its CPU's LRU batch for a while, which MADV_PAGEOUT drains only on
	 * the CPU it runs on.
	 */
	this_cpu = sched_getcpu();
	CPU_ZERO(&cpu);
	CPU_SET(this_cpu > 0 ? this_cpu : 0, &cpu);
	sched_setaffinity(0, sizeof(cpu), &cpu);
	/* The page cache's pages exist before the guest reads into them. */
	memset(area, 0, opts.pages * PAGE);

	ret = write_range(d, scratch, tag);
	if (!ret)
		ret = read_range(d, area, tag);
	if (!ret)
		ret = swapout_phase(area, (unsigned int)tag);
	if (!ret)
		ret = swapin_phase(area, tag);

	/* Freed first: a discard of blocks mapped slots map to copies them. */
	madvise(area, opts.pages * PAGE, MADV_DONTNEED);
	status = vblk_discard(d, VIRTIO_BLK_T_DISCARD, 0,
			      opts.pages * SECTORS_PER_PAGE, 0);
	if (status) {
		failed("discard: status %d", status);
		ret = -1;
	}
	return ret;
}

static void bad_usage(void)
{
	fprintf(stderr,
		"usage: mapperbench [-p PROFILE] [-m off|on] [-c RANGE_MIB] [-l READ_KIB]\n"
		"                   [-s STORE_DEV] [-a] IMAGE_DEV\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "p:m:c:l:s:a")) != -1) {
		switch (c) {
		case 'p':
			opts.profile = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				bad_usage();
			opts.mapper = !strcmp(optarg, "on");
			break;
		case 'c':
			opts.pages = strtoul(optarg, NULL, 0) << 8;
			break;
		case 'l':
			opts.read_len = strtoul(optarg, NULL, 0) << 10;
			break;
		case 's':
			opts.store = optarg;
			break;
		case 'a':
			opts.address_order = true;
			break;
		default:
			bad_usage();
		}
	}
	if (optind != argc - 1)
		bad_usage();
	opts.image = argv[optind];
	if (!opts.pages || !opts.read_len || opts.read_len % PAGE ||
	    opts.read_len > VHOST_BLK_SIZE_MAX ||
	    (opts.pages * PAGE) % opts.read_len) {
		fprintf(stderr, "mapperbench: bad sizes\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	__u64 features = (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			 (1ULL << VIRTIO_BLK_F_DISCARD);
	int image_fd = -1, ret = 1, err;
	struct vblk_dev d;
	size_t ram;

	parse(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	vblk_init(&d);
	/* Guest RAM is charged to the group of the task that first touches it. */
	if (ts_cgroup_enter(CGROUP)) {
		failed("cannot join cgroup %s", CGROUP);
		return 1;
	}
	ram = META_BYTES + (SCRATCH_PAGES + opts.pages) * PAGE;
	err = vblk_open_dev(&d, ram);
	if (err) {
		failed("/dev/vhost-blk: %s", strerror(-err));
		goto out;
	}
	/* 4 KiB pages, as a host that swaps a guest's RAM ends up with. */
	madvise(d.ram, ram, MADV_NOHUGEPAGE);
	err = vblk_setup(&d, 1, QSIZE, features);
	if (err) {
		failed("vhost-blk setup: %s", strerror(-err));
		goto out;
	}
	image_fd = open(opts.image, O_RDWR | O_DIRECT | O_CLOEXEC);
	err = image_fd < 0 ? -errno : vblk_set_backend(&d, image_fd);
	if (err) {
		failed("%s: %s", opts.image, strerror(-err));
		goto out;
	}
	if (set_device(&d))
		goto out;
	ret = bench(&d) ? 1 : 0;
out:
	vblk_close(&d);
	if (image_fd >= 0)
		close(image_fd);
	ts_cgroup_leave(CGROUP);
	return ret;
}
