// SPDX-License-Identifier: GPL-2.0
/*
 * dpe2e: Tesseract's experiment end to end. A guest that overcommits its
 * own memory runs on a host that overcommits it, and the whole workload is
 * measured: operations per second and per-operation latency.
 *
 *   dpe2e [-p PROFILE] [-m off|on|map] [-G GUEST_MIB] [-A ANON_MIB] [-F FILE_MIB]
 *         [-H HOST_MIB] [-t THREADS] [-w WARMUP_S] [-d SECONDS] [-W WRITE_PCT]
 *         [-z THETA] [-S SEED] [-s STORE_DEV] IMAGE_DEV
 *
 * The guest is the userspace virtio-blk driver of selftests/ on
 * /dev/vhost-blk, IMAGE_DEV its disk, with GUEST_MIB of guest RAM in
 * frames of 4 KiB. Its memory holds two kinds of pages, as a guest
 * kernel's does:
 *
 *   - ANON_MIB of anonymous pages, which a guest-level pager keeps on a
 *     swap area of the disk when they do not fit: a dirty page is written
 *     to its slot when evicted, a clean one that has a copy there is
 *     dropped, and a fault reads it back;
 *   - FILE_MIB of a file's pages (a range of the disk written before the
 *     run), read into frames on a miss and dropped with no write.
 *
 * One clock (second chance) over all frames picks what to evict, as an
 * LRU approximation would. THREADS threads, each with a virtqueue of its
 * own, run a closed loop: pick a page (Zipf, THETA, over anonymous and
 * file pages in a random order), read it, or for WRITE_PCT % of the
 * anonymous ones write it; every read checks the page's contents.
 *
 * The host keeps the process, guest RAM included, in a cgroup of its own
 * whose memory.max is HOST_MIB (plus the process's own memory) with
 * /dev/tsswap0 as swap: below GUEST_MIB both levels overcommit, and each
 * picks cold pages; 0 leaves memory.max at "max" (the control run). With
 * reconciliation off (-m off) or on (-m on) for the device, or on with the
 * swap mapper too (-m map: the module must have been loaded with
 * swap_mapper=1; the other modes turn it off for the device).
 *
 * After WARMUP_S seconds the counts start; the run lasts SECONDS more. It
 * prints a line per second "# e2e PROFILE MODE t=N ops=N p50_ms=N
 * p99_ms=N max_ms=N" (that second's operations and latencies) and then
 * "# e2e PROFILE MODE result key=value...": throughput, latency
 * percentiles, guest page-outs and page-ins, host swap-ins and swap-outs,
 * bytes read and written on IMAGE_DEV and STORE_DEV, the device's
 * reference counters, the swap mapper's counters and the CPU time of the
 * whole host (all CPUs, from /proc/stat: the vhost worker's included).
 * Then one line of the latency distribution (for a CDF). Exits non-zero
 * if any request fails or a page reads wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define CGROUP		"ts-dpe2e"
#define QSIZE		32
#define MAX_THREADS	VBLK_MAX_QUEUES
#define META_BYTES	(4UL << 20)	/* rings, request headers */
#define PREFILL_PAGES	64	/* 256 KiB a request */
/* Latency buckets: 20 per decade from 1 us to 1000 s. */
#define LAT_PER_DECADE	20
#define LAT_BUCKETS	(9 * LAT_PER_DECADE)

struct e2e_opts {
	const char *profile, *image, *store;
	const char *mode;	/* "off", "on" or "map" */
	bool reconcile, mapper;
	size_t guest_pages, anon_pages, file_pages, host_pages;
	unsigned int threads, warmup_s, seconds, write_pct;
	double theta;
	unsigned long long seed;
};

static struct e2e_opts opts = {
	.profile = "test",
	.mode = "off",
	.guest_pages = 64 << 8,
	.anon_pages = 96 << 8,
	.file_pages = 32 << 8,
	.host_pages = 48 << 8,
	.threads = 4,
	.warmup_s = 20,
	.seconds = 40,
	.write_pct = 30,
	.theta = 0.9,
};

/*
 * A guest page: pages [0, anon_pages) are anonymous, the rest the file's.
 * All fields under vm_lock. A busy page is being read, written, evicted
 * or faulted in by one thread; others wait for it on vm_cond.
 */
struct gpage {
	int32_t frame;		/* -1: not in guest RAM */
	uint32_t version;	/* what its contents say (file pages: 0) */
	uint8_t busy;
	uint8_t dirty;		/* differs from its copy on disk, if any */
	uint8_t on_disk;	/* an anonymous page has a copy in its slot */
	uint8_t referenced;	/* the clock's second chance */
};

static pthread_mutex_t vm_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t vm_cond = PTHREAD_COND_INITIALIZER;
static struct gpage *pages;
static int32_t *frame_page;	/* the page in each frame, or: */
#define FRAME_FREE	(-1)
#define FRAME_RESERVED	(-2)	/* taken by a fault under way */
static size_t clock_hand, nr_free;
static unsigned char *frames;	/* guest RAM */
static struct vblk_dev dev;

/* The Zipf distribution over ranks, and which page each rank is. */
static double *zipf_cdf;
static uint32_t *rank_page;

struct e2e_thread {
	pthread_t tid;
	unsigned int qi;
	uint64_t rng;
	uint64_t ops, pageouts, pageins, file_reads, bad;
	uint64_t lat[LAT_BUCKETS];
	double max_lat, max_at;	/* the slowest operation, when it began */
	int error;
} threads[MAX_THREADS];

static atomic_bool counting, stop;
static atomic_uint_fast64_t total_ops;
/* This second's latencies, for the per-second lines (see run()). */
static atomic_uint_fast64_t second_lat[LAT_BUCKETS], second_max_ns;

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double uniform(uint64_t *s)
{
	return (xorshift(s) >> 11) * (1.0 / 9007199254740992.0);
}

static size_t nr_pages(void)
{
	return opts.anon_pages + opts.file_pages;
}

static bool is_anon(size_t p)
{
	return p < opts.anon_pages;
}

/* Where page @p lives on the disk: the file first, then the swap area. */
static __u64 page_sector(size_t p)
{
	return is_anon(p) ? (opts.file_pages + p) * SECTORS :
			    (p - opts.anon_pages) * SECTORS;
}

static uint64_t word(size_t p, uint32_t version, unsigned int i)
{
	return ((uint64_t)p << 32 | version) * 0x9e3779b97f4a7c15ULL + i;
}

static void fill(unsigned char *frame, size_t p, uint32_t version)
{
	uint64_t *w = (uint64_t *)frame;
	unsigned int i;

	for (i = 0; i < PAGE / 8; i++)
		w[i] = word(p, version, i);
}

/* A few words of each cache line's worth: cheap, and catches any mixup. */
static bool check(const unsigned char *frame, size_t p, uint32_t version)
{
	const uint64_t *w = (const uint64_t *)frame;
	unsigned int i;

	for (i = 0; i < PAGE / 8; i += 61)
		if (w[i] != word(p, version, i))
			return false;
	return w[PAGE / 8 - 1] == word(p, version, PAGE / 8 - 1);
}

static int io(struct e2e_thread *t, __u32 type, size_t p, unsigned char *buf)
{
	int ret = vblk_rw(&dev, t->qi, type, page_sector(p), buf, PAGE, 0,
			  false);

	if (ret) {
		fprintf(stderr, "dpe2e: %s of page %zu: %d\n",
			type == VIRTIO_BLK_T_IN ? "read" : "write", p, ret);
		t->error = 1;
	}
	return ret;
}

/* Under vm_lock: a frame to fault into, and the page evicted from it. */
static int32_t take_frame(int32_t *victim)
{
	struct gpage *q;
	int32_t f;

	*victim = -1;
	for (;;) {
		f = (int32_t)clock_hand;
		clock_hand = (clock_hand + 1) % opts.guest_pages;
		if (frame_page[f] == FRAME_RESERVED)
			continue;
		if (frame_page[f] == FRAME_FREE) {
			nr_free--;
			frame_page[f] = FRAME_RESERVED;
			return f;
		}
		q = &pages[frame_page[f]];
		if (q->busy)
			continue;
		if (q->referenced) {
			q->referenced = 0;
			continue;
		}
		*victim = frame_page[f];
		q->busy = 1;
		frame_page[f] = FRAME_RESERVED;
		return f;
	}
}

/*
 * Under vm_lock, @p not in guest RAM and busy (ours): evict what the clock
 * picks, write it if it is dirty, and read @p in (anonymous pages with no
 * copy on disk start filled, as if the guest zeroed them). Returns with
 * vm_lock held and @p in a frame.
 */
static void fault_in(struct e2e_thread *t, size_t p)
{
	struct gpage *g = &pages[p], *q = NULL;
	int32_t victim, f = take_frame(&victim);
	unsigned char *buf = frames + (size_t)f * PAGE;
	bool write_back = false, read_in;

	if (victim >= 0) {
		q = &pages[victim];
		write_back = q->dirty;
	}
	read_in = !is_anon(p) || g->on_disk;
	pthread_mutex_unlock(&vm_lock);

	if (write_back) {
		io(t, VIRTIO_BLK_T_OUT, victim, buf);
		t->pageouts++;
	}
	if (read_in) {
		io(t, VIRTIO_BLK_T_IN, p, buf);
		if (is_anon(p))
			t->pageins++;
		else
			t->file_reads++;
	} else {
		fill(buf, p, g->version);
	}

	pthread_mutex_lock(&vm_lock);
	if (q) {
		q->frame = -1;
		if (write_back)
			q->on_disk = 1;
		q->dirty = 0;
		q->busy = 0;
	}
	g->frame = f;
	frame_page[f] = (int32_t)p;
	/* A page first filled here exists nowhere else. */
	g->dirty = !read_in;
	pthread_cond_broadcast(&vm_cond);
}

static double now(void)
{
	return ts_now();
}

static int lat_bucket(double secs)
{
	double us = secs * 1e6;
	int b = us < 1 ? 0 : (int)(log10(us) * LAT_PER_DECADE);

	return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

static void account_second(int b, double secs)
{
	uint_fast64_t ns = (uint_fast64_t)(secs * 1e9);
	uint_fast64_t old = atomic_load(&second_max_ns);

	atomic_fetch_add(&second_lat[b], 1);
	while (ns > old &&
	       !atomic_compare_exchange_weak(&second_max_ns, &old, ns))
		;
}

static void account(struct e2e_thread *t, double start, double secs)
{
	int b = lat_bucket(secs);

	account_second(b, secs);
	t->lat[b]++;
	if (secs > t->max_lat) {
		t->max_lat = secs;
		t->max_at = start;
	}
	t->ops++;
}

/* One operation: page @p read, or written (anonymous pages only). */
static void operate(struct e2e_thread *t, size_t p, bool write)
{
	struct gpage *g = &pages[p];
	unsigned char *buf;

	pthread_mutex_lock(&vm_lock);
	while (g->busy)
		pthread_cond_wait(&vm_cond, &vm_lock);
	g->busy = 1;
	if (g->frame < 0)
		fault_in(t, p);
	g->referenced = 1;
	buf = frames + (size_t)g->frame * PAGE;
	if (write) {
		g->version++;
		g->dirty = 1;
	}
	pthread_mutex_unlock(&vm_lock);

	if (write)
		fill(buf, p, g->version);
	else if (!check(buf, p, g->version))
		t->bad++;

	pthread_mutex_lock(&vm_lock);
	g->busy = 0;
	pthread_cond_broadcast(&vm_cond);
	pthread_mutex_unlock(&vm_lock);
}

static size_t pick(struct e2e_thread *t)
{
	double u = uniform(&t->rng);
	size_t lo = 0, hi = nr_pages() - 1, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (zipf_cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return rank_page[lo];
}

static void *worker(void *arg)
{
	struct e2e_thread *t = arg;
	bool counted = false;
	double t0;
	size_t p;
	bool write;

	while (!atomic_load(&stop) && !t->error) {
		if (!counted && atomic_load(&counting)) {
			/* The warm-up's operations do not count. */
			memset(t->lat, 0, sizeof(t->lat));
			t->ops = 0;
			t->pageouts = 0;
			t->pageins = 0;
			t->file_reads = 0;
			t->max_lat = 0;
			counted = true;
		}
		p = pick(t);
		write = is_anon(p) && xorshift(&t->rng) % 100 < opts.write_pct;
		t0 = now();
		operate(t, p, write);
		/* Neither the warm-up's nor those after the interval count. */
		if (!counted || !atomic_load(&counting))
			continue;
		account(t, t0, now() - t0);
		atomic_fetch_add(&total_ops, 1);
	}
	return NULL;
}

/* Zipf over ranks, and a random page for each rank. */
static int workload_init(void)
{
	size_t n = nr_pages(), i, j;
	uint64_t rng = opts.seed;
	double sum = 0;
	uint32_t tmp;

	zipf_cdf = calloc(n, sizeof(*zipf_cdf));
	rank_page = calloc(n, sizeof(*rank_page));
	if (!zipf_cdf || !rank_page)
		return -1;
	for (i = 0; i < n; i++) {
		sum += 1 / pow(i + 1, opts.theta);
		zipf_cdf[i] = sum;
		rank_page[i] = i;
	}
	for (i = 0; i < n; i++)
		zipf_cdf[i] /= sum;
	for (i = n - 1; i > 0; i--) {
		j = xorshift(&rng) % (i + 1);
		tmp = rank_page[i];
		rank_page[i] = rank_page[j];
		rank_page[j] = tmp;
	}
	return 0;
}

/*
 * Pages [@first, @end) written to their places on the disk, PREFILL_PAGES
 * to a request from the start of guest RAM (before the guest uses it), as
 * a guest's writeback clusters them: the setup takes seconds even where
 * every request waits 8 ms. Pages of one request must lie next to each
 * other on the disk: the file's do, and so do the anonymous ones.
 */
static int write_range(size_t first, size_t end, uint32_t version)
{
	struct e2e_thread *t = &threads[0];
	size_t p, n, i;

	for (p = first; p < end; p += n) {
		n = end - p < PREFILL_PAGES ? end - p : PREFILL_PAGES;
		for (i = 0; i < n; i++)
			fill(frames + i * PAGE, p + i, version);
		if (vblk_rw(&dev, t->qi, VIRTIO_BLK_T_OUT, page_sector(p),
			    frames, n * PAGE, 0, false)) {
			fprintf(stderr, "dpe2e: prefill write at page %zu\n",
				p);
			return -1;
		}
	}
	return 0;
}

/* Busy CPU time of the whole host so far, in seconds. */
static double cpu_busy(void)
{
	unsigned long long v[8] = { 0 };
	FILE *fp = fopen("/proc/stat", "r");
	int n;

	if (!fp)
		return 0;
	n = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(fp);
	if (n < 8)
		return 0;
	/* user nice system [idle iowait] irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
	       sysconf(_SC_CLK_TCK);
}

static const char * const counters[] = {
	"reconciled_pages", "store_reads", "false_reads_avoided",
	"swapins_avoided", "dropped_references", "pages_referenced",
};

/* Running totals of debugfs swap_mapper (all 0 without the mapper). */
static const char * const mapper_stats[] = {
	"swap_outs_mapped", "swap_ins_from_images", "swap_in_read_ios",
	"copies_before_writes", "swap_in_errors", "swap_in_mismatches",
	"hash_ns",
};

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define NR_COUNTERS	ARRAY_SIZE(counters)
#define NR_MAPPER_STATS	ARRAY_SIZE(mapper_stats)

struct snap {
	double time, cpu;
	long long pswpin, pswpout;
	struct ts_blk_stat image, store;
	long long counter[NR_COUNTERS];
	long long mapper[NR_MAPPER_STATS];
	long long cleaned;	/* references the cleaner wrote back */
};

static void snapshot(struct snap *s)
{
	size_t i;

	s->time = now();
	s->cpu = cpu_busy();
	s->pswpin = ts_vmstat("pswpin");
	s->pswpout = ts_vmstat("pswpout");
	ts_blk_stat(opts.image, &s->image);
	ts_blk_stat(opts.store, &s->store);
	for (i = 0; i < NR_COUNTERS; i++)
		s->counter[i] = ts_vhost_counter(counters[i]);
	for (i = 0; i < NR_MAPPER_STATS; i++) {
		s->mapper[i] = ts_mapper_stat(mapper_stats[i]);
		if (s->mapper[i] < 0)
			s->mapper[i] = 0;
	}
	if (ts_read_ll(TS_DEBUGFS "/cleaner/blocks_cleaned", &s->cleaned))
		s->cleaned = 0;
}

/* The latency below which @pct % of @n operations took, in ms. */
static double percentile(const uint64_t *lat, uint64_t n, double pct)
{
	uint64_t want = (uint64_t)ceil(pct / 100 * n), seen = 0;
	int b;

	for (b = 0; b < LAT_BUCKETS; b++) {
		seen += lat[b];
		if (seen >= want && want)
			return pow(10, (b + 1.0) / LAT_PER_DECADE) / 1000;
	}
	return 0;
}

static void report(const struct snap *a, const struct snap *b)
{
	uint64_t lat[LAT_BUCKETS] = { 0 }, ops = 0, outs = 0, ins = 0;
	uint64_t file_reads = 0, bad = 0;
	double max = 0, max_at = 0, secs = b->time - a->time;
	unsigned int i, k;

	for (i = 0; i < opts.threads; i++) {
		for (k = 0; k < LAT_BUCKETS; k++)
			lat[k] += threads[i].lat[k];
		ops += threads[i].ops;
		outs += threads[i].pageouts;
		ins += threads[i].pageins;
		file_reads += threads[i].file_reads;
		bad += threads[i].bad;
		if (threads[i].max_lat > max) {
			max = threads[i].max_lat;
			max_at = threads[i].max_at;
		}
	}
	printf("# e2e %s %s result seconds=%.1f ops=%llu ops_s=%.1f",
	       opts.profile, opts.mode, secs,
	       (unsigned long long)ops, ops / secs);
	/* When the slowest began: in the interval, and CLOCK_MONOTONIC. */
	printf(" p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f max_at_s=%.3f max_mono_s=%.6f",
	       percentile(lat, ops, 50), percentile(lat, ops, 99),
	       percentile(lat, ops, 99.9), max * 1000, max_at - a->time,
	       max_at);
	printf(" guest_pageouts=%llu guest_pageins=%llu file_reads=%llu pswpin=%lld pswpout=%lld",
	       (unsigned long long)outs, (unsigned long long)ins,
	       (unsigned long long)file_reads, b->pswpin - a->pswpin,
	       b->pswpout - a->pswpout);
	printf(" image_read=%lld image_written=%lld store_read=%lld store_written=%lld cpu_s=%.1f",
	       b->image.read - a->image.read,
	       b->image.written - a->image.written,
	       b->store.read - a->store.read,
	       b->store.written - a->store.written, b->cpu - a->cpu);
	for (i = 0; i < NR_COUNTERS; i++)
		printf(" %s=%lld", counters[i],
		       !strcmp(counters[i], "pages_referenced") ?
		       b->counter[i] : b->counter[i] - a->counter[i]);
	for (i = 0; i < NR_MAPPER_STATS; i++)
		printf(" %s=%lld", mapper_stats[i],
		       b->mapper[i] - a->mapper[i]);
	printf(" blocks_cleaned=%lld bad_pages=%llu\n",
	       b->cleaned - a->cleaned, (unsigned long long)bad);
	/* The distribution, for a CDF: upper bound in ms:operations. */
	printf("# e2e %s %s latency", opts.profile,
	       opts.mode);
	for (k = 0; k < LAT_BUCKETS; k++)
		if (lat[k])
			printf(" %.4g:%llu",
			       pow(10, (k + 1.0) / LAT_PER_DECADE) / 1000,
			       (unsigned long long)lat[k]);
	printf("\n");
}

static size_t mib_pages(const char *arg)
{
	return strtoull(arg, NULL, 0) << 8;
}

static void bad_usage(void)
{
	fprintf(stderr,
		"usage: dpe2e [-p PROFILE] [-m off|on|map] [-G GUEST_MIB] [-A ANON_MIB] [-F FILE_MIB]\n"
		"             [-H HOST_MIB] [-t THREADS] [-w WARMUP_S] [-d SECONDS] [-W WRITE_PCT]\n"
		"             [-z THETA] [-S SEED] [-s STORE_DEV] IMAGE_DEV\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "p:m:G:A:F:H:t:w:d:W:z:S:s:")) != -1) {
		switch (c) {
		case 'p':
			opts.profile = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "off") && strcmp(optarg, "on") &&
			    strcmp(optarg, "map"))
				bad_usage();
			opts.mode = optarg;
			opts.reconcile = strcmp(optarg, "off");
			opts.mapper = !strcmp(optarg, "map");
			break;
		case 'G':
			opts.guest_pages = mib_pages(optarg);
			break;
		case 'A':
			opts.anon_pages = mib_pages(optarg);
			break;
		case 'F':
			opts.file_pages = mib_pages(optarg);
			break;
		case 'H':
			opts.host_pages = mib_pages(optarg);
			break;
		case 't':
			opts.threads = atoi(optarg);
			break;
		case 'w':
			opts.warmup_s = atoi(optarg);
			break;
		case 'd':
			opts.seconds = atoi(optarg);
			break;
		case 'W':
			opts.write_pct = atoi(optarg);
			break;
		case 'z':
			opts.theta = atof(optarg);
			break;
		case 'S':
			opts.seed = strtoull(optarg, NULL, 0);
			break;
		case 's':
			opts.store = optarg;
			break;
		default:
			bad_usage();
		}
	}
	if (optind != argc - 1 || !opts.threads ||
	    opts.threads > MAX_THREADS || !opts.guest_pages ||
	    !opts.anon_pages || opts.write_pct > 100 || !opts.seconds)
		bad_usage();
	opts.image = argv[optind];
	if (!opts.seed)
		opts.seed = 0x7e55e2ac7ULL;
}

/*
 * The guest as after a long while of work, before the clock starts: the
 * file's pages on its disk; every anonymous page paged out once, so with
 * a copy on the guest's swap area; guest RAM full of the anonymous pages
 * that fit, each dirty if its last access was a write, which the workload
 * makes it with probability WRITE_PCT %. Started from all-dirty RAM (as
 * after a boot), the guest evicts nothing but dirty pages for as long as
 * it takes to turn its RAM over once: longer than a run on the HDD-like
 * profile. The warm-up is then about the workload's own working set.
 */
static int prefill(void)
{
	size_t resident = opts.anon_pages < opts.guest_pages ?
			  opts.anon_pages : opts.guest_pages;
	size_t first = opts.anon_pages - resident, p, f;
	uint64_t rng = opts.seed ^ 0x5eed;
	double t0 = now();

	if (write_range(opts.anon_pages, nr_pages(), 0) ||
	    write_range(0, opts.anon_pages, 0))
		return -1;
	for (p = 0; p < opts.anon_pages; p++)
		pages[p].on_disk = 1;
	for (f = 0, p = first; p < opts.anon_pages; p++, f++) {
		fill(frames + f * PAGE, p, 0);
		pages[p].frame = (int32_t)f;
		pages[p].dirty = xorshift(&rng) % 100 < opts.write_pct;
		frame_page[f] = (int32_t)p;
	}
	nr_free = opts.guest_pages - resident;
	memset(frames + f * PAGE, 0, nr_free * PAGE);
	/* Free frames first, as a guest kernel takes them before reclaim. */
	clock_hand = resident % opts.guest_pages;
	printf("# e2e %s %s filled seconds=%.1f written_mib=%zu\n",
	       opts.profile, opts.mode, now() - t0,
	       nr_pages() >> 8);
	return 0;
}

/*
 * The swap mapper as the mode asks, for the device. It follows the
 * device's reads only if the module was loaded with swap_mapper=1, which
 * the modes without it turn off for their device.
 */
static int set_mapper(void)
{
	char param[8] = "N";
	int on = opts.mapper;

	ts_read_str(TS_SYSMOD "/parameters/swap_mapper", param, sizeof(param));
	if (opts.mapper && param[0] != 'Y') {
		fprintf(stderr, "dpe2e: -m map: the module was not loaded with swap_mapper=1\n");
		return -1;
	}
	if (ioctl(dev.fd, VHOST_BLK_SET_SWAP_MAPPER, &on) &&
	    (opts.mapper || (errno != ENOTTY && errno != EINVAL))) {
		perror("dpe2e: VHOST_BLK_SET_SWAP_MAPPER");
		return -1;
	}
	return 0;
}

static int run(void)
{
	uint64_t lat[LAT_BUCKETS], last = 0, cur, max_ns, n;
	unsigned int i, s, k;
	struct snap a, b;
	int ret = 0;

	for (i = 0; i < opts.threads; i++) {
		threads[i].qi = i;
		threads[i].rng = opts.seed + 0x9e3779b97f4a7c15ULL * (i + 1);
		if (pthread_create(&threads[i].tid, NULL, worker, &threads[i]))
			return -1;
	}
	sleep(opts.warmup_s);
	snapshot(&a);
	atomic_store(&counting, true);
	for (s = 1; s <= opts.seconds; s++) {
		sleep(1);
		cur = atomic_load(&total_ops);
		for (n = 0, k = 0; k < LAT_BUCKETS; k++) {
			lat[k] = atomic_exchange(&second_lat[k], 0);
			n += lat[k];
		}
		max_ns = atomic_exchange(&second_max_ns, 0);
		printf("# e2e %s %s t=%u ops=%llu p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
		       opts.profile, opts.mode, s,
		       (unsigned long long)(cur - last),
		       percentile(lat, n, 50), percentile(lat, n, 99),
		       max_ns / 1e6);
		last = cur;
	}
	atomic_store(&counting, false);
	snapshot(&b);
	atomic_store(&stop, true);
	for (i = 0; i < opts.threads; i++) {
		pthread_join(threads[i].tid, NULL);
		ret |= threads[i].error ? -1 : 0;
		ret |= threads[i].bad ? -1 : 0;
	}
	report(&a, &b);
	return ret;
}

int main(int argc, char **argv)
{
	__u64 features = (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			 (1ULL << VIRTIO_BLK_F_DISCARD);
	int image_fd = -1, ret = 1, on;
	long long current;
	char max[32];
	size_t ram, p;

	parse(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	vblk_init(&dev);
	pages = calloc(nr_pages(), sizeof(*pages));
	frame_page = malloc(opts.guest_pages * sizeof(*frame_page));
	if (!pages || !frame_page || workload_init()) {
		fprintf(stderr, "dpe2e: no memory for the tables\n");
		return 1;
	}
	for (p = 0; p < nr_pages(); p++)
		pages[p].frame = -1;
	for (p = 0; p < opts.guest_pages; p++)
		frame_page[p] = FRAME_FREE;
	nr_free = opts.guest_pages;

	/* Guest RAM is charged to the group of the task that first touches it. */
	if (ts_cgroup_enter(CGROUP)) {
		fprintf(stderr, "dpe2e: cannot join cgroup %s\n", CGROUP);
		return 1;
	}
	ram = META_BYTES + opts.guest_pages * PAGE;
	if (vblk_open_dev(&dev, ram)) {
		perror("dpe2e: /dev/vhost-blk");
		goto out;
	}
	/* 4 KiB pages, as a host that swaps a guest's RAM ends up with. */
	madvise(dev.ram, ram, MADV_NOHUGEPAGE);
	if (vblk_setup(&dev, opts.threads, QSIZE, features) ||
	    vblk_prepare_queues(&dev)) {
		perror("dpe2e: vhost-blk setup");
		goto out;
	}
	frames = vblk_alloc(&dev, opts.guest_pages * PAGE, PAGE);
	image_fd = open(opts.image, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (!frames || image_fd < 0 || vblk_set_backend(&dev, image_fd)) {
		perror(opts.image);
		goto out;
	}
	on = opts.reconcile;
	if (ioctl(dev.fd, VHOST_BLK_SET_RECONCILE, &on)) {
		perror("dpe2e: VHOST_BLK_SET_RECONCILE");
		goto out;
	}
	if (set_mapper())
		goto out;
	if (prefill())
		goto out;
	/*
	 * With all of guest RAM touched (charged), the host takes back what
	 * it does not grant the guest; the process's own memory stays.
	 */
	if (opts.host_pages && opts.host_pages < opts.guest_pages) {
		if (ts_read_ll("/sys/fs/cgroup/" CGROUP "/memory.current",
			       &current)) {
			fprintf(stderr, "dpe2e: no memory.current\n");
			goto out;
		}
		snprintf(max, sizeof(max), "%llu",
			 (unsigned long long)current -
			 (opts.guest_pages - opts.host_pages) * PAGE);
		if (ts_cgroup_write(CGROUP, "memory.max", max)) {
			fprintf(stderr, "dpe2e: memory.max %s refused\n", max);
			goto out;
		}
		printf("# e2e %s %s memory.max=%s (memory.current was %lld)\n",
		       opts.profile, opts.mode, max,
		       current);
	}
	printf("# e2e %s %s config guest_mib=%zu anon_mib=%zu file_mib=%zu host_mib=%zu",
	       opts.profile, opts.mode,
	       opts.guest_pages >> 8, opts.anon_pages >> 8,
	       opts.file_pages >> 8, opts.host_pages >> 8);
	printf(" threads=%u warmup_s=%u seconds=%u write_pct=%u theta=%.2f seed=0x%llx\n",
	       opts.threads, opts.warmup_s, opts.seconds, opts.write_pct,
	       opts.theta, opts.seed);
	ret = run() ? 1 : 0;
	/*
	 * Guest RAM goes first, as at a VM's shutdown: its swapped-out frames
	 * free their slots. A discard of blocks that slots are mapped to would
	 * copy each slot first (the swap mapper), one store write each: on
	 * the HDD-like profile longer than a request may take.
	 */
	madvise(frames, opts.guest_pages * PAGE, MADV_DONTNEED);
	/* Drop the disk's references before closing: nothing to keep. */
	if (vblk_discard(&dev, VIRTIO_BLK_T_DISCARD, 0,
			 (__u32)(nr_pages() * SECTORS), 0)) {
		fprintf(stderr, "dpe2e: discard failed\n");
		ret = 1;
	}
out:
	ts_cgroup_write(CGROUP, "memory.max", "max");
	vblk_close(&dev);
	if (image_fd >= 0)
		close(image_fd);
	ts_cgroup_leave(CGROUP);
	return ret;
}
