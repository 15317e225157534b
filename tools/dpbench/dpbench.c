// SPDX-License-Identifier: GPL-2.0
/*
 * dpbench: the double-paging benchmark.
 *
 *   dpbench [-p PROFILE] [-m off|on] [-c COLD_MIB] [-H HOT_MIB] [-q DEPTH]
 *           [-k PAGES] [-M MARGIN_MIB] [-s STORE_DEV] [-r] [-l READ_KIB]
 *           IMAGE_DEV
 *   dpbench -L DEV...
 *
 * One "guest" (the userspace virtio-blk driver of selftests/) with its RAM in
 * a cgroup of its own: COLD_MIB of cold pages that the host has swapped out
 * to /dev/tsswap0, HOT_MIB of hot pages a second thread keeps touching, and
 * memory.max set MARGIN_MIB above what is resident, so that the host is
 * under pressure. With reconciliation off (-m off) or on (-m on) for its
 * /dev/vhost-blk device, the guest then:
 *
 *   1. pages out: writes every cold page to its disk IMAGE_DEV, PAGES pages
 *      per request, DEPTH requests in flight; the latency of each request is
 *      taken from submission to completion;
 *   2. frees the cold pages (the host swaps them out again, if they came
 *      back) and reads them back, each disk block into another cold page,
 *      full pages (false reads), and checks every page it read;
 *   3. discards what it wrote, which drops any reference of the disk into
 *      the store, and closes the device.
 *
 * Per phase it prints a line "# dp PROFILE MODE PHASE key=value...":
 * throughput, latency percentiles, host swap-ins and swap-outs
 * (/proc/vmstat), bytes read and written on IMAGE_DEV and STORE_DEV
 * (/sys/dev/block/M:m/stat), then the device's debugfs counters. Exits
 * non-zero if any request fails or any page read back is wrong.
 *
 * -r swaps the cold pages out one by one in a random order instead of in
 * address order, so that the store blocks the host gives them, and so the
 * references the page-out makes, are scattered across the store: a host's
 * reclaim order has nothing to do with where its guest later writes a page.
 *
 * -l (locality) replaces step 2: the guest reads the range it paged out
 * sequentially, one request of READ_KIB at a time, into pages that stay
 * resident, and checks every page, with the page cache dropped first (the
 * image is O_DIRECT, the module reads the store with bios of its own). With
 * -m on it does so three times: as the page-out left the references
 * ("before"), after the module's compactor has laid them out in guest order
 * (module parameters compactor=Y, cleaner_idle_ms=0, cleaner_rate_kib=0, until
 * debugfs cleaner/idle_passes has grown by 2), and after TESSERACT_FLATTEN has
 * copied them back into the image ("cleaned"); with -m off once ("never").
 *
 * -L only measures the latency of single 4 KiB O_DIRECT reads of each DEV,
 * to show what a dm-delay profile amounts to.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS_PER_PAGE	(PAGE / 512)
#define CGROUP		"ts-dpbench"
#define QSIZE		256
#define MAX_DEPTH	64
#define META_BYTES	(4UL << 20)	/* rings, indirect tables, headers */
#define VBLK_DEBUGFS	TS_DEBUGFS "/vhost-blk"
#define HOT_PERIOD_NS	10000000L	/* one pass over the hot pages each */
#define HOT_MAX_PASSES	200000
#define STALL_SECS	120		/* no completion for this long: fail */
#define PROBE_READS	64
#define PARAMS		"/sys/module/tesseract/parameters"
#define CLEANER_DEBUGFS	TS_DEBUGFS "/cleaner"
#define COMPACT_SECS	1800		/* compaction not done by then: fail */

struct dp_opts {
	const char *profile;
	const char *image;
	const char *store;
	bool reconcile;
	size_t cold_pages, hot_pages;
	unsigned int depth, per_req;
	size_t margin;
	bool probe;
	bool scatter;		/* -r */
	size_t read_len;	/* -l, bytes per sequential read; 0: no -l */
};

/* The device's debugfs counters that dpbench reports. */
static const char * const dp_counters[] = {
	"reconciled_pages",
	"reconciled_writes",
	"pages_referenced",
	"store_reads",
	"false_reads_avoided",
	"swapins_avoided",
	"data_bytes_not_written",
	"merged_blocks",
	"dropped_references",
	"guest_pages_in_host_swap",
	"fallback_unaligned",
	"fallback_not_swapped",
	"fallback_other_swapdev",
	"fallback_swapcache",
	"fallback_slot_incomplete",
	"fallback_store_full",
	"fallback_no_memory",
	"bytes_read",
	"bytes_written",
};

/* Counters that are levels (printed as they are), not running totals. */
static bool counter_is_level(const char *name)
{
	return !strcmp(name, "pages_referenced") ||
	       !strcmp(name, "guest_pages_in_host_swap");
}

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define NR_COUNTERS	ARRAY_SIZE(dp_counters)

struct dp_stats {
	double time;
	long long pswpin, pswpout;
	struct ts_blk_stat image, store;
	long long counter[NR_COUNTERS];	/* -1: the module has no such file */
};

struct dp_hot {
	unsigned char *mem;
	size_t pages;
	bool stop;		/* atomic */
	pthread_t thread;
	double *lat;
	size_t passes;
};

static struct dp_opts opts = {
	.profile = "test",
	.cold_pages = 64 << 8,
	.hot_pages = 16 << 8,
	.depth = 8,
	.per_req = 8,
	.margin = 16UL << 20,
};

static char dev_dir[512];	/* debugfs directory of our device, or "" */

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

/* The debugfs directory of the one open /dev/vhost-blk device. */
static void find_dev_dir(void)
{
	int found = ts_vhost_devices(dev_dir, sizeof(dev_dir));

	if (found != 1) {
		printf("# dp: %d vhost-blk devices open, counters not read\n",
		       found);
		dev_dir[0] = '\0';
	}
}

static void snapshot(struct dp_stats *s)
{
	size_t i;

	s->time = ts_now();
	s->pswpin = ts_vmstat("pswpin");
	s->pswpout = ts_vmstat("pswpout");
	ts_blk_stat(opts.image, &s->image);
	ts_blk_stat(opts.store, &s->store);
	for (i = 0; i < NR_COUNTERS; i++)
		s->counter[i] = ts_vhost_counter(dp_counters[i]);
}

static void print_head(const char *phase)
{
	printf("# dp %s %s %s", opts.profile, opts.reconcile ? "on" : "off",
	       phase);
}

/* What the phase between @a and @b moved, and the device's counters. */
static void print_delta(const char *phase, const struct dp_stats *a,
			const struct dp_stats *b)
{
	bool any = false;
	size_t i;

	printf(" pswpin=%lld pswpout=%lld", b->pswpin - a->pswpin,
	       b->pswpout - a->pswpout);
	printf(" image_read=%lld image_written=%lld image_read_ios=%lld",
	       b->image.read - a->image.read,
	       b->image.written - a->image.written,
	       b->image.read_ios - a->image.read_ios);
	if (opts.store)
		printf(" store_read=%lld store_written=%lld store_read_ios=%lld",
		       b->store.read - a->store.read,
		       b->store.written - a->store.written,
		       b->store.read_ios - a->store.read_ios);
	printf("\n");

	print_head(phase);
	printf(" counters");
	for (i = 0; i < NR_COUNTERS; i++) {
		if (b->counter[i] < 0)
			continue;
		any = true;
		printf(" %s=%lld", dp_counters[i],
		       counter_is_level(dp_counters[i]) || a->counter[i] < 0 ?
		       b->counter[i] : b->counter[i] - a->counter[i]);
	}
	printf("%s\n", any ? "" : " none");
}

/*
 * The host swaps out [addr, addr + len): MADV_PAGEOUT writes the pages out
 * and leaves them in the swap cache; once their writeback has completed, a
 * second MADV_PAGEOUT frees them (memory.reclaim too, if a round makes no
 * progress). Gives up after @secs; returns the number of pages still
 * resident.
 */
static size_t push_to_swap(void *addr, size_t len, double secs)
{
	size_t resident = ts_resident_pages(addr, len), before;
	double end = ts_now() + secs;
	bool drained = false;
	char amount[32];

	while (resident && ts_now() < end) {
		madvise(addr, len, MADV_PAGEOUT);
		before = resident;
		resident = ts_resident_pages(addr, len);
		if (resident < before)
			continue;
		/*
		 * Still under writeback, or in another CPU's LRU batch, out of
		 * reach of reclaim: compaction drains those batches.
		 */
		if (!drained)
			ts_write_str("/proc/sys/vm/compact_memory", "1");
		drained = true;
		usleep(20000);
		snprintf(amount, sizeof(amount), "%zu", resident * PAGE);
		ts_cgroup_write(CGROUP, "memory.reclaim", amount);
		resident = ts_resident_pages(addr, len);
	}
	return resident;
}

/*
 * Swap @pages pages at @cold out one at a time in a random order: the swap
 * slots the host hands out, and so the store blocks, follow that order.
 * Pages that are not reclaimed here (still in another CPU's LRU batch) are
 * left to push_to_swap(). 0 or -1.
 */
static int scatter_to_swap(unsigned char *cold, size_t pages,
			   unsigned int seed)
{
	size_t *order = malloc(pages * sizeof(*order)), i, j, t;

	if (!order)
		return -1;
	for (i = 0; i < pages; i++)
		order[i] = i;
	srandom(seed);
	for (i = pages - 1; i > 0; i--) {
		j = (size_t)random() % (i + 1);
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < pages; i++)
		madvise(cold + order[i] * PAGE, PAGE, MADV_PAGEOUT);
	free(order);
	return 0;
}

/*
 * Fault every page of [addr, addr + len) back in, as hot pages would be.
 * Reads only: the rings live there too.
 */
static void touch(unsigned char *addr, size_t len)
{
	size_t off;

	for (off = 0; off < len; off += PAGE)
		__atomic_load_n(addr + off, __ATOMIC_RELAXED);
}

static void *hot_worker(void *arg)
{
	struct dp_hot *h = arg;
	struct timespec period = { 0, HOT_PERIOD_NS };
	double t0;
	size_t i;

	while (!__atomic_load_n(&h->stop, __ATOMIC_RELAXED) &&
	       h->passes < HOT_MAX_PASSES) {
		t0 = ts_now();
		for (i = 0; i < h->pages; i++)
			h->mem[i * PAGE + 64]++;
		h->lat[h->passes++] = ts_now() - t0;
		nanosleep(&period, NULL);
	}
	return NULL;
}

static int hot_start(struct dp_hot *h)
{
	h->stop = false;
	h->passes = 0;
	return pthread_create(&h->thread, NULL, hot_worker, h) ? -1 : 0;
}

static void hot_stop(struct dp_hot *h, const char *phase)
{
	__atomic_store_n(&h->stop, true, __ATOMIC_RELAXED);
	pthread_join(h->thread, NULL);
	print_head(phase);
	printf(" hot_passes=%zu hot_p50_ms=%.3f hot_p99_ms=%.3f hot_max_ms=%.3f\n",
	       h->passes, 1e3 * percentile(h->lat, h->passes, 50),
	       1e3 * percentile(h->lat, h->passes, 99),
	       1e3 * percentile(h->lat, h->passes, 100));
}

struct dp_io {
	struct vblk_dev *d;
	struct vblk_req *req[MAX_DEPTH];
	size_t req_index[MAX_DEPTH];	/* request number of a busy slot */
	double submitted[MAX_DEPTH];
	bool busy[MAX_DEPTH];
	double *lat;			/* per request, seconds */
};

/* Disk page and guest page of request @i's first page. */
static void io_target(size_t i, bool write, size_t *disk_page,
		      size_t *ram_page)
{
	size_t first = i * opts.per_req;

	*disk_page = first;
	/* Read back each block into another cold page, half the area away. */
	*ram_page = write ? first : (first + opts.cold_pages / 2) %
				    opts.cold_pages;
}

/*
 * Move every cold page to (@write) or from the disk, opts.depth requests
 * in flight. Returns 0, or -1 if a request failed or stalled.
 */
static int run_io(struct dp_io *io, unsigned char *cold, bool write)
{
	size_t nreq = opts.cold_pages / opts.per_req, next = 0, done = 0;
	size_t len = opts.per_req * PAGE, disk_page, ram_page;
	unsigned int slot, in_flight = 0;
	double last = ts_now();
	struct vblk_req *r;
	void *cookie;
	__u32 used;
	int ret;

	while (done < nreq) {
		bool posted = false;

		for (slot = 0; slot < opts.depth && next < nreq; slot++) {
			if (io->busy[slot])
				continue;
			io_target(next, write, &disk_page, &ram_page);
			io->submitted[slot] = ts_now();
			ret = vblk_req_submit(io->d, 0, io->req[slot],
					      write ? VIRTIO_BLK_T_OUT :
						      VIRTIO_BLK_T_IN,
					      disk_page * SECTORS_PER_PAGE,
					      cold + ram_page * PAGE, len, 0,
					      false);
			if (ret) {
				fprintf(stderr, "dpbench: submit: %s\n",
					strerror(-ret));
				return -1;
			}
			io->busy[slot] = true;
			io->req_index[slot] = next++;
			in_flight++;
			posted = true;
		}
		if (posted)
			vblk_kick(io->d, 0);

		ret = 0;
		while (vblk_get_used(io->d, 0, &cookie, &used)) {
			r = cookie;
			for (slot = 0; slot < opts.depth; slot++)
				if (io->req[slot] == r)
					break;
			if (slot == opts.depth || !io->busy[slot]) {
				fprintf(stderr, "dpbench: unknown completion\n");
				return -1;
			}
			if (*r->status != VIRTIO_BLK_S_OK) {
				fprintf(stderr, "dpbench: request %zu: status %u\n",
					io->req_index[slot], *r->status);
				return -1;
			}
			last = ts_now();
			io->lat[io->req_index[slot]] = last - io->submitted[slot];
			io->busy[slot] = false;
			in_flight--;
			done++;
			ret = 1;
		}
		if (ret || !in_flight)
			continue;
		if (vblk_queue_error(io->d, 0)) {
			fprintf(stderr, "dpbench: the device stopped the queue\n");
			return -1;
		}
		vblk_wait(io->d, 0, 1000);
		if (ts_now() - last > STALL_SECS) {
			fprintf(stderr, "dpbench: no completion for %d s\n",
				STALL_SECS);
			return -1;
		}
	}
	return 0;
}

/* Run one phase and print its line; 0 or -1. */
static int phase(struct dp_io *io, struct dp_hot *hot, unsigned char *cold,
		 bool write)
{
	const char *name = write ? "pageout" : "readback";
	size_t nreq = opts.cold_pages / opts.per_req, slowest = 0, i;
	double mib = opts.cold_pages * PAGE / 1048576.0, secs;
	struct dp_stats a, b;
	int ret;

	/* The hot work is going on when the guest starts paging. */
	if (hot_start(hot))
		return -1;
	usleep(50000);
	snapshot(&a);
	ret = run_io(io, cold, write);
	snapshot(&b);
	hot_stop(hot, name);
	if (ret)
		return ret;
	secs = b.time - a.time;
	for (i = 1; i < nreq; i++)
		if (io->lat[i] > io->lat[slowest])
			slowest = i;
	print_head(name);
	printf(" mib=%.1f secs=%.3f mib_s=%.3f", mib, secs, mib / secs);
	printf(" slowest_request=%zu/%zu", slowest, nreq);
	printf(" p50_ms=%.3f p99_ms=%.3f max_ms=%.3f",
	       1e3 * percentile(io->lat, nreq, 50),
	       1e3 * percentile(io->lat, nreq, 99),
	       1e3 * percentile(io->lat, nreq, 100));
	print_delta(name, &a, &b);
	fflush(stdout);
	return 0;
}

/* Discard the disk range the benchmark used: drops its store references. */
static int discard_all(struct vblk_dev *d)
{
	int status = vblk_discard(d, VIRTIO_BLK_T_DISCARD, 0,
				  opts.cold_pages * SECTORS_PER_PAGE, 0);

	if (status) {
		fprintf(stderr, "dpbench: discard: status %d\n", status);
		return -1;
	}
	return 0;
}

static int set_reconcile(struct vblk_dev *d)
{
	int on = opts.reconcile, ret;
	char val[16] = "";
	char path[600];

	ret = ioctl(d->fd, VHOST_BLK_SET_RECONCILE, &on);
	if (ret) {
		if (!opts.reconcile && (errno == ENOTTY || errno == EINVAL)) {
			printf("# dp: VHOST_BLK_SET_RECONCILE: %s: the module does not reconcile\n",
			       strerror(errno));
			return 0;
		}
		fprintf(stderr, "dpbench: VHOST_BLK_SET_RECONCILE %d: %s\n",
			on, strerror(errno));
		return -1;
	}
	if (dev_dir[0]) {
		snprintf(path, sizeof(path), "%s/reconcile", dev_dir);
		ts_read_str(path, val, sizeof(val));
	}
	printf("# dp: reconcile set to %d, debugfs reconcile=%s\n", on,
	       val[0] ? val : "?");
	return 0;
}

/*
 * Rounds of each sequential read that is compared with another; the slow
 * read of the scattered range, compared with nothing, gets one.
 */
#define SEQ_ROUNDS	3

/*
 * Read the paged-out range sequentially, one request of opts.read_len at a
 * time, into @buf, and check every page, @rounds times over: the
 * "seqread-@name" line. The throughput is that of the fastest round (the
 * others lost time to whatever else the host ran), counting the time the
 * requests took, not the checks between them; latencies are over all
 * rounds, I/O counts the sum. 0, or -1 if a request failed or a page is
 * wrong.
 */
static int seq_read(struct vblk_dev *d, unsigned char *buf, unsigned long tag,
		    const char *name, int rounds)
{
	size_t nreq = opts.cold_pages * PAGE / opts.read_len;
	size_t per_req = opts.read_len / PAGE, bad = 0, slowest = 0, i, p, k;
	double mib = opts.cold_pages * PAGE / 1048576.0, secs = 0, t0;
	double *lat = calloc(nreq * rounds, sizeof(*lat));
	double best = 0;
	struct dp_stats a, b;
	char phase[32];
	int status, r;

	if (!lat)
		return -1;
	snprintf(phase, sizeof(phase), "seqread-%s", name);
	snapshot(&a);
	for (k = 0; k < nreq * rounds; k++) {
		i = k % nreq;
		r = k / nreq;
		if (!i) {
			if (r)
				best = best && best < secs ? best : secs;
			secs = 0;
			/* Only real I/O counts: nothing may come from a cache. */
			sync();
			ts_write_str("/proc/sys/vm/drop_caches", "3");
		}
		t0 = ts_now();
		status = vblk_rw(d, 0, VIRTIO_BLK_T_IN,
				 i * per_req * SECTORS_PER_PAGE, buf,
				 opts.read_len, 0, false);
		lat[k] = ts_now() - t0;
		secs += lat[k];
		if (lat[k] > lat[slowest])
			slowest = k;
		if (status) {
			fprintf(stderr, "dpbench: %s: request %zu: status %d\n",
				phase, i, status);
			free(lat);
			return -1;
		}
		for (p = 0; p < per_req; p++)
			bad += !ts_check_page(buf + p * PAGE, tag,
					      i * per_req + p, 0);
	}
	snapshot(&b);
	best = best && best < secs ? best : secs;
	print_head(phase);
	printf(" mib=%.1f secs=%.3f mib_s=%.3f rounds=%d read_kib=%zu requests=%zu",
	       mib, best, mib / best, rounds, opts.read_len >> 10,
	       nreq * rounds);
	printf(" slowest_request=%zu p50_ms=%.3f max_ms=%.3f bad_pages=%zu",
	       slowest, 1e3 * percentile(lat, nreq * rounds, 50),
	       1e3 * percentile(lat, nreq * rounds, 100), bad);
	print_delta(phase, &a, &b);
	free(lat);
	return bad ? -1 : 0;
}

static int set_param(const char *name, const char *val)
{
	char path[128];
	int ret;

	snprintf(path, sizeof(path), PARAMS "/%s", name);
	ret = ts_write_str(path, val);
	if (ret)
		fprintf(stderr, "dpbench: %s=%s: %s\n", name, val,
			strerror(-ret));
	return ret ? -1 : 0;
}

/* Print the module's view of our disk (TESSERACT_DISK_INFO); 0 or -1. */
static int print_disk(struct vblk_dev *d, const char *phase)
{
	struct tesseract_disk_info info = { 0 };
	int fd = open("/dev/tesseract", O_RDWR | O_CLOEXEC), ret = -1;

	if (fd < 0 || ioctl(d->fd, VHOST_BLK_GET_DISK_ID, &info.disk_id) ||
	    ioctl(fd, TESSERACT_DISK_INFO, &info)) {
		perror("dpbench: disk info");
		goto out;
	}
	print_head(phase);
	printf(" disk references=%llu blocks_cleaned=%llu blocks_compacted=%llu bytes_moved=%llu\n",
	       (unsigned long long)info.references,
	       (unsigned long long)info.blocks_cleaned,
	       (unsigned long long)info.blocks_compacted,
	       (unsigned long long)info.bytes_moved);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * Let the compactor lay the disk's references out in guest order, as fast
 * as it can, and wait until it has finished: two passes of the worker that
 * found nothing to do, counted from after it was switched on. 0 or -1.
 */
static int compact(struct vblk_dev *d)
{
	long long start, passes;
	double t0 = ts_now();

	if (set_param("cleaner_idle_ms", "0") ||
	    set_param("cleaner_rate_kib", "0") ||
	    set_param("compactor", "Y") ||
	    ts_read_ll(CLEANER_DEBUGFS "/idle_passes", &start))
		return -1;
	do {
		usleep(100000);
		if (ts_read_ll(CLEANER_DEBUGFS "/idle_passes", &passes))
			return -1;
		if (ts_now() - t0 > COMPACT_SECS) {
			fprintf(stderr, "dpbench: compaction not done after %d s\n",
				COMPACT_SECS);
			return -1;
		}
	} while (passes < start + 2);
	/* Nothing may move behind the reads that follow. */
	if (set_param("compactor", "N"))
		return -1;
	print_head("compact");
	printf(" secs=%.3f\n", ts_now() - t0);
	return print_disk(d, "compact");
}

/* Copy every referenced block back into the image: TESSERACT_FLATTEN. */
static int flatten(struct vblk_dev *d)
{
	struct tesseract_flatten f = { 0 };
	int fd = open("/dev/tesseract", O_RDWR | O_CLOEXEC), ret = -1;
	double t0 = ts_now();

	if (fd < 0 || ioctl(d->fd, VHOST_BLK_GET_DISK_ID, &f.disk_id) ||
	    ioctl(fd, TESSERACT_FLATTEN, &f)) {
		perror("dpbench: TESSERACT_FLATTEN");
		goto out;
	}
	print_head("flatten");
	printf(" secs=%.3f blocks_cleaned=%llu\n", ts_now() - t0,
	       (unsigned long long)f.blocks_cleaned);
	ret = print_disk(d, "flatten");
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * -l: sequential reads of the paged-out range, with reconciliation on as
 * the page-out left it, compacted and cleaned; off, as it is. 0 or -1.
 */
static int locality(struct vblk_dev *d, unsigned char *buf, unsigned long tag)
{
	bool built = !access(PARAMS "/compactor", F_OK) &&
		     !access("/dev/tesseract", F_OK);

	/* Back in, if the page-out's pressure pushed it out. */
	memset(buf, 0, opts.read_len);
	if (!opts.reconcile)
		return seq_read(d, buf, tag, "never", SEQ_ROUNDS);
	if ((built && print_disk(d, "pageout")) ||
	    seq_read(d, buf, tag, "before", 1))
		return -1;
	if (!built) {
		printf("# dp: no compactor or /dev/tesseract: compaction, cleaning not measured\n");
		return 0;
	}
	if (compact(d) || seq_read(d, buf, tag, "compacted", SEQ_ROUNDS) ||
	    flatten(d) || seq_read(d, buf, tag, "cleaned", SEQ_ROUNDS))
		return -1;
	return 0;
}

/*
 * The latency of 4 KiB O_DIRECT reads of @dev, one at a time, from 2 GiB
 * on (a part the benchmark does not use): what the profile gives.
 */
static int probe_latency(const char *dev)
{
	double lat[PROBE_READS], t0;
	void *buf;
	int fd, i;

	fd = open(dev, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || posix_memalign(&buf, PAGE, PAGE)) {
		perror(dev);
		return -1;
	}
	for (i = 0; i < PROBE_READS; i++) {
		t0 = ts_now();
		if (pread(fd, buf, PAGE, (2LL << 30) + i * (1LL << 20)) != PAGE) {
			perror(dev);
			return -1;
		}
		lat[i] = ts_now() - t0;
	}
	close(fd);
	free(buf);
	printf("# dp probe %s read_p50_ms=%.3f read_max_ms=%.3f\n", dev,
	       1e3 * percentile(lat, PROBE_READS, 50),
	       1e3 * percentile(lat, PROBE_READS, 100));
	return 0;
}

static size_t mib_pages(const char *arg)
{
	return strtoul(arg, NULL, 0) << 8;
}

static void bad_usage(void)
{
	fprintf(stderr,
		"usage: dpbench [-p PROFILE] [-m off|on] [-c COLD_MIB] [-H HOT_MIB]\n"
		"               [-q DEPTH] [-k PAGES] [-M MARGIN_MIB] [-s STORE_DEV]\n"
		"               [-r] [-l READ_KIB] IMAGE_DEV\n"
		"       dpbench -L DEV...\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "p:m:c:H:q:k:M:s:rl:L")) != -1) {
		switch (c) {
		case 'L':
			opts.probe = true;
			break;
		case 'p':
			opts.profile = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				bad_usage();
			opts.reconcile = !strcmp(optarg, "on");
			break;
		case 'c':
			opts.cold_pages = mib_pages(optarg);
			break;
		case 'H':
			opts.hot_pages = mib_pages(optarg);
			break;
		case 'q':
			opts.depth = strtoul(optarg, NULL, 0);
			break;
		case 'k':
			opts.per_req = strtoul(optarg, NULL, 0);
			break;
		case 'M':
			opts.margin = strtoul(optarg, NULL, 0) << 20;
			break;
		case 's':
			opts.store = optarg;
			break;
		case 'r':
			opts.scatter = true;
			break;
		case 'l':
			opts.read_len = strtoul(optarg, NULL, 0) << 10;
			break;
		default:
			bad_usage();
		}
	}
	if (opts.probe ? optind == argc : optind != argc - 1)
		bad_usage();
	opts.image = argv[optind];
	/* Each request's pages, and their read-back targets, stay contiguous. */
	if (!opts.depth || opts.depth > MAX_DEPTH || !opts.per_req ||
	    opts.per_req * PAGE > VHOST_BLK_SIZE_MAX || !opts.cold_pages ||
	    opts.cold_pages % (2 * opts.per_req) || !opts.hot_pages ||
	    opts.read_len % PAGE || opts.read_len > VHOST_BLK_SIZE_MAX ||
	    (opts.read_len && (opts.cold_pages * PAGE) % opts.read_len)) {
		fprintf(stderr, "dpbench: bad sizes\n");
		exit(2);
	}
}

/* The guest RAM layout and the two phases; 0 or -1. */
static int bench(struct vblk_dev *d)
{
	unsigned long tag = ((unsigned long)getpid() << 20) ^ (unsigned long)time(NULL);
	size_t nreq = opts.cold_pages / opts.per_req, resident, bad;
	unsigned char *hot_mem, *cold, *rbuf = NULL;
	struct dp_hot hot = { 0 };
	struct dp_io io = { .d = d };
	long long current;
	char max[32];
	unsigned int i;
	double t0;

	hot_mem = vblk_alloc(d, opts.hot_pages * PAGE, PAGE);
	/* Before the cold pages: touch() keeps it resident. */
	if (opts.read_len) {
		rbuf = vblk_alloc(d, opts.read_len, PAGE);
		if (!rbuf)
			return -1;
		memset(rbuf, 0, opts.read_len);
	}
	cold = vblk_alloc(d, opts.cold_pages * PAGE, PAGE);
	io.lat = calloc(nreq, sizeof(*io.lat));
	hot.lat = calloc(HOT_MAX_PASSES, sizeof(*hot.lat));
	if (!hot_mem || !cold || !io.lat || !hot.lat)
		return -1;
	for (i = 0; i < opts.depth; i++) {
		io.req[i] = vblk_req_alloc(d);
		if (!io.req[i])
			return -1;
	}
	hot.mem = hot_mem;
	hot.pages = opts.hot_pages;

	ts_fill_pages(hot_mem, opts.hot_pages, ~tag, 0);
	ts_fill_pages(cold, opts.cold_pages, tag, 0);

	/* The host swaps the cold pages out; the guest's hot ones stay. */
	t0 = ts_now();
	if (opts.scatter && scatter_to_swap(cold, opts.cold_pages, tag))
		return -1;
	resident = push_to_swap(cold, opts.cold_pages * PAGE, 120);
	touch(d->ram, cold - d->ram);
	if (ts_read_ll("/sys/fs/cgroup/" CGROUP "/memory.current", &current))
		current = 0;
	if (opts.margin) {
		snprintf(max, sizeof(max), "%lld", current + (long long)opts.margin);
		ts_cgroup_write(CGROUP, "memory.max", max);
	}
	print_head("setup");
	printf(" cold_pages=%zu hot_pages=%zu depth=%u pages_per_request=%u",
	       opts.cold_pages, opts.hot_pages, opts.depth, opts.per_req);
	printf(" swapout_order=%s", opts.scatter ? "random" : "address");
	printf(" cold_resident=%zu swapout_secs=%.1f memory_current=%lld",
	       resident, ts_now() - t0, current);
	printf(" memory_max=%s in_host_swap=%lld\n", opts.margin ? max : "max",
	       ts_vhost_counter("guest_pages_in_host_swap"));
	fflush(stdout);

	if (phase(&io, &hot, cold, true))
		return -1;
	if (opts.read_len) {
		/* No more pressure: the read buffer must stay resident. */
		ts_cgroup_write(CGROUP, "memory.max", "max");
		return locality(d, rbuf, tag);
	}

	/*
	 * The guest frees the pages it paged out and the host swaps them out
	 * again if the page-out brought them back; then the guest reads its
	 * pages back into them.
	 */
	resident = push_to_swap(cold, opts.cold_pages * PAGE, 120);
	touch(d->ram, cold - d->ram);
	print_head("readback");
	printf(" cold_resident=%zu in_host_swap=%lld\n", resident,
	       ts_vhost_counter("guest_pages_in_host_swap"));
	if (phase(&io, &hot, cold, false))
		return -1;

	bad = 0;
	for (i = 0; i < nreq; i++) {
		size_t disk_page, ram_page, p;

		io_target(i, false, &disk_page, &ram_page);
		for (p = 0; p < opts.per_req; p++)
			bad += !ts_check_page(cold + (ram_page + p) * PAGE, tag,
					      disk_page + p, 0);
	}
	print_head("verify");
	printf(" pages=%zu bad_pages=%zu\n", opts.cold_pages, bad);
	ts_cgroup_write(CGROUP, "memory.max", "max");
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	__u64 features = (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			 (1ULL << VIRTIO_BLK_F_DISCARD);
	int image_fd = -1, ret = 1;
	struct vblk_dev d;
	long long refs;
	size_t ram;

	parse(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (opts.probe) {
		for (ret = 0; optind < argc; optind++)
			ret |= probe_latency(argv[optind]) ? 1 : 0;
		return ret;
	}
	vblk_init(&d);
	/* Guest RAM is charged to the group of the task that first touches it. */
	if (ts_cgroup_enter(CGROUP)) {
		fprintf(stderr, "dpbench: cannot join cgroup %s\n", CGROUP);
		return 1;
	}
	ram = META_BYTES + (opts.hot_pages + opts.cold_pages) * PAGE +
	      opts.read_len;
	if (vblk_open_dev(&d, ram)) {
		perror("dpbench: /dev/vhost-blk");
		goto out;
	}
	/* 4 KiB pages, as a host that swaps a guest's RAM ends up with. */
	madvise(d.ram, ram, MADV_NOHUGEPAGE);
	if (vblk_setup(&d, 1, QSIZE, features)) {
		perror("dpbench: vhost-blk setup");
		goto out;
	}
	image_fd = open(opts.image, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (image_fd < 0 || vblk_set_backend(&d, image_fd)) {
		perror(opts.image);
		goto out;
	}
	find_dev_dir();
	if (set_reconcile(&d))
		goto out;

	ret = bench(&d) ? 1 : 0;

	/* Whatever happened, drop the disk's references before closing. */
	if (discard_all(&d))
		ret = 1;
	refs = ts_vhost_counter("pages_referenced");
	print_head("discard");
	printf(" pages_referenced=%lld\n", refs);
	if (refs > 0)
		ret = 1;
out:
	vblk_close(&d);
	if (image_fd >= 0)
		close(image_fd);
	ts_cgroup_write(CGROUP, "memory.max", "max");
	ts_cgroup_leave(CGROUP);
	return ret;
}
