// SPDX-License-Identifier: GPL-2.0
/*
 * Miss-ratio curves from swap traffic (TESSERACT_MRC): a cgroup's swap-ins
 * counted by eviction distance predict how many of them more memory would
 * have saved. Known access patterns under a memory.max give known curves;
 * the bookkeeping around them (reset, off, isolation between cgroups,
 * freed slots, swap-outs that skip the device, readahead) is checked too.
 *
 * Swap readahead is off (vm.page-cluster=0) except where it is the point:
 * a page read ahead and used later is a fault the device never sees.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"

#define PAGE		4096UL
#define CGROOT		"/sys/fs/cgroup"
#define GROUP_A		"ts-mrc-a"
#define GROUP_B		"ts-mrc-b"
#define BACKING		"/dev/vdb"
#define PARAMS		"backing=" BACKING " mrc_window_s=0"
#define PAGE_CLUSTER	"/proc/sys/vm/page-cluster"
#define WINDOW_PARAM	"/sys/module/tesseract/parameters/mrc_window_s"
#define SWAPDEV		"/dev/tsswap0"
#define ZSWAP		"/sys/module/zswap/parameters/"

/* Swap-ins with a distance in [from, to) pages. */
static double faults_between(const struct ts_mrc_curve *c, double from, double to)
{
	return ts_mrc_misses_at(c, from) - ts_mrc_misses_at(c, to);
}

static void log_curve(struct __test_metadata *_metadata, const char *name,
		      const struct ts_mrc_curve *c)
{
	char line[1024];
	unsigned int b;
	int len = 0;

	TH_LOG("%s: evictions %llu faults %llu unstamped %llu", name,
	       c->m.evictions, c->m.faults, c->m.unstamped_faults);
	TH_LOG("%s: readahead %llu bypassed %llu in_swap %llu", name,
	       c->m.readahead_reads, c->m.bypassed, c->m.in_swap);
	for (b = 0; b < TESSERACT_MRC_BUCKETS && len < 900; b++)
		if (c->hist[b])
			len += snprintf(line + len, sizeof(line) - len,
					" %llu:%llu",
					TESSERACT_MRC_BUCKET_LO(b), c->hist[b]);
	line[len] = 0;
	TH_LOG("%s: distance:faults%s", name, line);
}

/* Write one byte of each page of [p, p + pages): every eviction is a write. */
static void touch(char *p, size_t pages, int round)
{
	size_t i;

	for (i = 0; i < pages; i++)
		p[i * PAGE] = (char)(round + i);
}

static char *map_pages(size_t pages)
{
	char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* A huge page would leave as one folio and come back as 512. */
	madvise(p, pages * PAGE, MADV_NOHUGEPAGE);
	return p;
}

/*
 * In a forked child: join cgroup @group, fill @pages pages with round @fill
 * (-1: zeroes) and push them to swap, at most a tenth left resident. The
 * pages, or the child exits with 10, 11 or 12.
 */
static char *child_pages_in_swap(const char *group, size_t pages, int fill)
{
	char *mem;

	if (ts_cgroup_enter(group))
		_exit(10);
	mem = map_pages(pages);
	if (!mem)
		_exit(11);
	if (fill < 0)
		memset(mem, 0, pages * PAGE);
	else
		touch(mem, pages, fill);
	if (ts_push_to_swap(group, mem, pages * PAGE) > pages / 10)
		_exit(12);
	return mem;
}

/*
 * In a child in cgroup @group: fill @pages pages with round @fill (-1:
 * zeroes), push them to swap (at most a tenth left resident), touch them
 * again with round @fault. The child's exit status, -1 if none.
 */
static int swap_out_and_back(const char *group, size_t pages, int fill,
			     int fault)
{
	int status;
	char *mem;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		mem = child_pages_in_swap(group, pages, fill);
		touch(mem, pages, fault);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * In a child in cgroup @name limited to @max_pages: run @fn(@arg) for
 * @warmup rounds, reset the group's curve (if there were any), run
 * @rounds more.
 */
typedef void (*workload_fn)(char *mem, int round, void *arg);

struct workload {
	const char *name;
	size_t max_pages;
	size_t pages;
	int warmup, rounds;
	workload_fn fn;
	void *arg;
};

static pid_t workload_start(const struct workload *w)
{
	struct ts_mrc_curve c;
	char max[32];
	pid_t pid;
	char *mem;
	int r;

	pid = fork();
	if (pid)
		return pid;
	if (ts_cgroup_enter(w->name))
		_exit(10);
	snprintf(max, sizeof(max), "%zu", w->max_pages * PAGE);
	if (ts_cgroup_write(w->name, "memory.max", max))
		_exit(11);
	mem = map_pages(w->pages);
	if (!mem)
		_exit(12);
	for (r = 0; r < w->warmup + w->rounds; r++) {
		if (r == w->warmup && r &&
		    ts_mrc_read(w->name, TESSERACT_MRC_RESET, &c))
			_exit(13);
		w->fn(mem, r, w->arg);
	}
	_exit(0);
}

static int workload_wait(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int workload_run(const struct workload *w)
{
	return workload_wait(workload_start(w));
}

/* Cycle over all pages in order. */
static void cyclic(char *mem, int round, void *arg)
{
	touch(mem, *(size_t *)arg, round);
}

/* Read one byte of each page of [p, p + pages): nothing gets dirty. */
static unsigned long read_pages(const char *p, size_t pages)
{
	unsigned long sum = 0;
	size_t i;

	for (i = 0; i < pages; i++)
		sum += __atomic_load_n(p + i * PAGE, __ATOMIC_RELAXED);
	return sum;
}

/* Written once, then read in cycles: every eviction after the first clean. */
static void cyclic_reads(char *mem, int round, void *arg)
{
	if (!round)
		touch(mem, *(size_t *)arg, round);
	else
		read_pages(mem, *(size_t *)arg);
}

/*
 * Hot set A (the first a pages), then A and B together: A's pages come
 * back after a - 1 others in the second sweep and after a + b - 1 in the
 * first, B's after a + b - 1.
 */
struct two_sets {
	size_t a, b;
};

static void two_sets(char *mem, int round, void *arg)
{
	struct two_sets *s = arg;

	touch(mem, s->a, round);
	touch(mem, s->a + s->b, round);
}

/* Group A cycles over 1536 pages with room for 1024, @rounds times. */
static size_t small_cycle_pages = 1536;

static struct workload small_cycle(int rounds)
{
	return (struct workload){
		.name = GROUP_A, .max_pages = 1024,
		.pages = small_cycle_pages, .rounds = rounds, .fn = cyclic,
		.arg = &small_cycle_pages,
	};
}

/* The curve of @group counts no eviction and no fault. */
static void expect_nothing_counted(struct __test_metadata *_metadata,
				   const char *group, struct ts_mrc_curve *c)
{
	ASSERT_EQ(0, ts_mrc_read(group, 0, c));
	EXPECT_EQ(0ULL, c->m.faults);
	EXPECT_EQ(0ULL, c->m.evictions);
}

static void remove_group(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), CGROOT "/%s", name);
	rmdir(path);
}

FIXTURE(mrc) {
	char page_cluster[16];
	char zswap_enabled[8];
};

FIXTURE_SETUP(mrc)
{
	ASSERT_EQ(0, ts_read_str(PAGE_CLUSTER, self->page_cluster,
				 sizeof(self->page_cluster)));
	ASSERT_EQ(0, ts_write_str(PAGE_CLUSTER, "0"));
	if (ts_read_str(ZSWAP "enabled", self->zswap_enabled,
			sizeof(self->zswap_enabled)))
		self->zswap_enabled[0] = 0;
	/* Off: the tests count the device's reads; one turns it on. */
	ts_write_str(ZSWAP "enabled", "N");
	ASSERT_EQ(0, ts_swap_up(PARAMS));
	ASSERT_EQ(0, ts_write_str(CGROOT "/cgroup.subtree_control",
				  "+memory"));
}

FIXTURE_TEARDOWN(mrc)
{
	remove_group(GROUP_A);
	remove_group(GROUP_B);
	if (self->zswap_enabled[0])
		ts_write_str(ZSWAP "enabled", self->zswap_enabled);
	ts_swap_down();
	ts_write_str(PAGE_CLUSTER, self->page_cluster);
}

/* Cycles over N pages with room for M, @fn doing each round. */
#define CYCLE_N		4096UL
#define CYCLE_M		2048UL
#define CYCLE_GAP	(CYCLE_N - CYCLE_M)
#define CYCLE_ROUNDS	3

/*
 * Run the cycle in group A and read its curve. Every access faults after
 * N - M other pages went to swap: the curve puts ~all swap-ins at
 * + (N - M) and none below. The group's own page tables and stack share
 * memory.max, so the step may sit a little above N - M, never below.
 */
static void check_cycle(struct __test_metadata *_metadata, workload_fn fn,
			struct ts_mrc_curve *c)
{
	size_t n = CYCLE_N, gap = CYCLE_GAP;
	struct workload w = {
		.name = GROUP_A, .max_pages = CYCLE_M, .pages = n,
		.warmup = 2, .rounds = CYCLE_ROUNDS, .fn = fn, .arg = &n,
	};
	long long pswpin = ts_vmstat("pswpin");
	double all;

	ASSERT_EQ(0, workload_run(&w));
	pswpin = ts_vmstat("pswpin") - pswpin;
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, c));
	log_curve(_metadata, GROUP_A, c);
	all = c->m.faults;
	TH_LOG("pswpin %lld; misses predicted at +%zu pages: %.0f, at +%zu: %.0f, at +%zu: %.0f",
	       pswpin, gap * 85 / 100, ts_mrc_misses_at(c, gap * 0.85), gap,
	       ts_mrc_misses_at(c, gap), gap * 125 / 100, ts_mrc_misses_at(c, gap * 1.25));
	/* Every round faults about N - M pages back in. */
	ASSERT_LE(w.rounds * gap * 8 / 10, c->m.faults);
	EXPECT_LE(c->m.unstamped_faults, c->m.faults / 50);
	/*
	 * The device read them: no page in one byte was zero-filled (a
	 * few of the child's own pages are, which 6.12's zeromap keeps).
	 */
	EXPECT_LE(c->m.bypassed, c->m.faults / 50);
	/*
	 * Reclaim is not exact LRU (6.12 put up to 9 % of a run a quarter
	 * below the step), but nothing comes back much earlier.
	 */
	EXPECT_LE(0.85 * all, ts_mrc_misses_at(c, gap * 0.85));
	EXPECT_LE(0.97 * all, ts_mrc_misses_at(c, gap * 0.5));
	/*
	 * Reclaim at memory.max overshoots in batches, more so on a busy
	 * host: a few pages wait behind more than N - M others.
	 */
	EXPECT_GE(0.1 * all, ts_mrc_misses_at(c, gap * 1.25));
	EXPECT_GE(0.03 * all, ts_mrc_misses_at(c, gap * 1.5));
}

/* Written at each access: every eviction is a write. */
TEST_F_TIMEOUT(mrc, cyclic_access_predicts_the_missing_memory, 300)
{
	struct ts_mrc_curve c;

	check_cycle(_metadata, cyclic, &c);

	/* The operator's view of the same curve: a table, and a plot. */
	unlink("/tmp/ts-mrc.png");
	EXPECT_EQ(0, ts_tool("mrc --step 1 " GROUP_A " >/tmp/ts-mrc.txt"));
	EXPECT_EQ(0, ts_system("grep -q 'extra MiB' /tmp/ts-mrc.txt"));
	EXPECT_EQ(0, ts_tool("mrc --plot /tmp/ts-mrc.png " GROUP_A
			     " >/dev/null"));
	EXPECT_EQ(0, access("/tmp/ts-mrc.png", R_OK));
	EXPECT_EQ(0, ts_tool("mrc | grep -q " GROUP_A));
	EXPECT_EQ(1, ts_tool("mrc 999999999 2>/dev/null"));
}

/*
 * The same cycle read: a page read back keeps its swap slot and later
 * leaves memory clean, with no write to the device. Those evictions must
 * be seen as well (mem_cgroup_swapout()), or every fault of a read-mostly
 * guest would have no distance.
 */
TEST_F_TIMEOUT(mrc, clean_evictions_are_seen, 300)
{
	long long writes = ts_swapdev_counter("writes");
	struct ts_mrc_curve c;

	check_cycle(_metadata, cyclic_reads, &c);
	writes = ts_swapdev_counter("writes") - writes;
	TH_LOG("device writes %lld", writes);
	/* The reads after the warm-up left memory clean: no writes. */
	EXPECT_GT((long long)(CYCLE_N + CYCLE_N / 2), writes);
	EXPECT_LE(CYCLE_ROUNDS * CYCLE_GAP * 8 / 10, c.m.evictions);
}

/*
 * In a child in GROUP_A: @pages pages leave memory in address order, then
 * every @step-th of them comes back, from the newest down (the last one
 * first). The order: pages read back from swap keep their slots and are
 * clean, so MADV_PAGEOUT of one page evicts it at once, with no write. The
 * curve is reset in between, and read into @c at the end. 0 or the
 * child's failure.
 */
static int evict_in_order_fault_newest_first(size_t pages, size_t step,
					     struct ts_mrc_curve *c)
{
	size_t i;
	int status;
	char *mem;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		mem = child_pages_in_swap(GROUP_A, pages, 1);
		read_pages(mem, pages);
		for (i = 0; i < pages; i++)
			madvise(mem + i * PAGE, PAGE, MADV_PAGEOUT);
		if (ts_resident_pages(mem, pages * PAGE) > pages / 100)
			_exit(13);
		if (ts_mrc_read(GROUP_A, TESSERACT_MRC_RESET, c))
			_exit(14);
		for (i = pages - step; i < pages; i -= step)
			read_pages(mem + i * PAGE, 1);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	if (WEXITSTATUS(status))
		return WEXITSTATUS(status);
	return ts_mrc_read(GROUP_A, 0, c) ? -1 : 0;
}

/*
 * Pages evicted in a known order and faulted back newest first: each
 * comes back after every page evicted later already did, at distance 0.
 * Old stamps share wide spans; a span must not count its own pages that
 * are back already (up to a quarter of its width).
 */
TEST_F_TIMEOUT(mrc, reverse_order_faults_are_near, 300)
{
	size_t pages = 8192;
	struct ts_mrc_curve c;

	ASSERT_EQ(0, evict_in_order_fault_newest_first(pages, 1, &c));
	log_curve(_metadata, GROUP_A, &c);
	ASSERT_LE(pages * 8 / 10, c.m.faults);
	EXPECT_GE(0.05 * c.m.faults, ts_mrc_misses_at(&c, 8));
}

/*
 * A distance counts exactly the group's pages in swap that left after the
 * page, in its own span and in every newer one. Pages leave in address
 * order, then every other one comes back from the newest down: the k-th
 * fault has the k odd pages above it still in swap, so the distances are
 * 1 to pages / 2, once each. The newest spans are narrow and exact, so a
 * count that missed a span of the page's own width, or a newer one, is off
 * by pages here.
 */
TEST_F_TIMEOUT(mrc, distances_count_every_newer_page, 300)
{
	size_t pages = 4096;
	struct ts_mrc_curve c;
	double d, got;

	ASSERT_EQ(0, evict_in_order_fault_newest_first(pages, 2, &c));
	log_curve(_metadata, GROUP_A, &c);
	ASSERT_LE(pages / 2 * 99 / 100, c.m.faults);
	/* d faults with a distance in [d, 2d), one at each. */
	for (d = 1; d < pages / 2; d *= 2) {
		got = faults_between(&c, d, 2 * d);
		EXPECT_GE(0.1 * d + 2, got > d ? got - d : d - got)
			TH_LOG("%.0f faults at %.0f to %.0f pages, want %.0f",
			       got, d, 2 * d - 1, d);
	}
}

/*
 * Swapoff reads every page back, needed or not: no fault of the group's.
 * Its pages leave the group's swap all the same.
 */
TEST_F_TIMEOUT(mrc, swapoff_reads_are_not_faults, 300)
{
	size_t pages = 2048;
	struct ts_mrc_curve before, after;
	int ready[2], go[2], status;
	char c = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		child_pages_in_swap(GROUP_A, pages, 1);
		/* In swap until the parent has turned swap off. */
		if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(13);
		_exit(0);
	}
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &before));
	EXPECT_EQ(0, swapoff(SWAPDEV));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &after));
	EXPECT_EQ(1, write(go[1], &c, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, swapon(SWAPDEV, 0));
	log_curve(_metadata, "before swapoff", &before);
	log_curve(_metadata, "after swapoff", &after);
	ASSERT_EQ(0, WEXITSTATUS(status));
	EXPECT_LE(pages * 9 / 10, before.m.in_swap);
	EXPECT_EQ(0ULL, after.m.in_swap);
	EXPECT_EQ(before.m.faults, after.m.faults);
	EXPECT_EQ(before.m.unstamped_faults, after.m.unstamped_faults);
	EXPECT_EQ(before.m.readahead_reads, after.m.readahead_reads);
}

/*
 * A group's first eviction comes in reclaim, where memory for its ~7 KiB
 * is scarce: a spare made beforehand tracks it, and the next is made at
 * once. With every allocation in reclaim failing, two new groups one
 * after the other are still both tracked.
 */
TEST_F_TIMEOUT(mrc, new_groups_need_no_allocation_in_reclaim, 300)
{
	const char *fail = TS_DEBUGFS "/mrc/fail_group_alloc";
	long long untracked0, untracked;
	struct ts_mrc_curve a, b;
	size_t pages = 1024;

	ASSERT_EQ(0, ts_read_ll(TS_DEBUGFS "/mrc/untracked", &untracked0));
	ASSERT_EQ(0, ts_write_str(fail, "Y"));
	ASSERT_EQ(0, swap_out_and_back(GROUP_A, pages, 1, 2));
	/* The refill is a work item queued at once: ample time for it. */
	sleep(1);
	ASSERT_EQ(0, swap_out_and_back(GROUP_B, pages, 1, 2));
	ASSERT_EQ(0, ts_write_str(fail, "N"));
	ASSERT_EQ(0, ts_read_ll(TS_DEBUGFS "/mrc/untracked", &untracked));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &a));
	ASSERT_EQ(0, ts_mrc_read(GROUP_B, 0, &b));
	EXPECT_LE(pages * 9 / 10, a.m.evictions);
	EXPECT_LE(pages * 9 / 10, b.m.evictions);
	EXPECT_EQ(untracked0, untracked);
}

/* A hot set inside a larger one: two steps, at a - M and a + b - M. */
TEST_F_TIMEOUT(mrc, two_hot_sets_show_two_steps, 300)
{
	struct two_sets s = { .a = 2560, .b = 2048 };
	size_t m = 1024, step1 = s.a - m, step2 = s.a + s.b - m;
	struct workload w = {
		.name = GROUP_A, .max_pages = m, .pages = s.a + s.b,
		.warmup = 1, .rounds = 2, .fn = two_sets, .arg = &s,
	};
	double all, first, second, between;
	struct ts_mrc_curve c;

	ASSERT_EQ(0, workload_run(&w));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &c));
	log_curve(_metadata, GROUP_A, &c);
	all = c.m.faults;
	first = faults_between(&c, step1 * 0.85, step1 * 1.2);
	second = faults_between(&c, step2 * 0.85, step2 * 1.2);
	between = faults_between(&c, step1 * 1.2, step2 * 0.85);
	TH_LOG("faults %.0f: near +%zu %.0f, near +%zu %.0f, between %.0f",
	       all, step1, first, step2, second, between);
	ASSERT_LE(w.rounds * (s.a + s.b) / 2, all);
	/* A in the second sweep: a third of the faults; the rest: the other. */
	EXPECT_LE(0.2 * all, first);
	EXPECT_LE(0.5 * all, second);
	EXPECT_GE(0.1 * all, between);
	EXPECT_GE(0.05 * all, ts_mrc_misses_at(&c, step2 * 1.2));
}

/*
 * debugfs mrc/groups holds @c's group as the ABI page says: its line, then
 * "<distance>:<faults>" pairs separated by single spaces, no space first,
 * the same buckets and counts as the ioctl.
 */
static void groups_file_matches(struct __test_metadata *_metadata,
				const struct ts_mrc_curve *c)
{
	char hist[16384], head[64], *tok, *save;
	unsigned long long lo, n;
	unsigned int b = 0, pairs = 0;
	bool found = false, got;
	int fields;
	FILE *f;

	snprintf(head, sizeof(head), "cgroup %llu memcg ",
		 (unsigned long long)c->m.cgroup_id);
	f = fopen(TS_DEBUGFS "/mrc/groups", "r");
	ASSERT_NE(NULL, f);
	/* Histogram lines never start with "cgroup". */
	while (!found && fgets(hist, sizeof(hist), f))
		found = !strncmp(hist, head, strlen(head));
	got = found && fgets(hist, sizeof(hist), f);
	fclose(f);
	ASSERT_TRUE(got) TH_LOG("no lines for cgroup %llu",
				(unsigned long long)c->m.cgroup_id);
	hist[strcspn(hist, "\n")] = '\0';
	EXPECT_NE(' ', hist[0]) TH_LOG("histogram line: \"%.40s\"", hist);
	EXPECT_EQ(NULL, strstr(hist, "  "));
	for (tok = strtok_r(hist, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		fields = sscanf(tok, "%llu:%llu", &lo, &n);
		ASSERT_EQ(2, fields) TH_LOG("%s", tok);
		while (b < TESSERACT_MRC_BUCKETS && !c->hist[b])
			b++;
		ASSERT_GT((unsigned int)TESSERACT_MRC_BUCKETS, b);
		EXPECT_EQ((unsigned long long)TESSERACT_MRC_BUCKET_LO(b), lo);
		EXPECT_EQ((unsigned long long)c->hist[b], n);
		b++;
		pairs++;
	}
	while (b < TESSERACT_MRC_BUCKETS && !c->hist[b])
		b++;
	EXPECT_EQ((unsigned int)TESSERACT_MRC_BUCKETS, b)
		TH_LOG("after %u pairs", pairs);
	EXPECT_LT(0U, pairs);
}

/* A reset empties the curve and leaves the pages in swap counted. */
TEST_F_TIMEOUT(mrc, reset_clears_the_curve, 300)
{
	struct workload w = small_cycle(3);
	pid_t pid;
	struct ts_mrc_curve c;
	unsigned int b;
	__u64 sum = 0;

	pid = workload_start(&w);
	ASSERT_EQ(0, workload_wait(pid));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &c));
	groups_file_matches(_metadata, &c);
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, TESSERACT_MRC_RESET, &c));
	log_curve(_metadata, "before reset", &c);
	ASSERT_LT(0ULL, c.m.faults);
	ASSERT_LT(0ULL, c.m.evictions);
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &c));
	for (b = 0; b < TESSERACT_MRC_BUCKETS; b++)
		sum += c.hist[b];
	EXPECT_EQ(0ULL, c.m.faults);
	EXPECT_EQ(0ULL, c.m.evictions);
	EXPECT_EQ(0ULL, sum);

	/* The debugfs reset (0: every group) does the same. */
	w.rounds = 2;
	ASSERT_EQ(0, workload_run(&w));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &c));
	ASSERT_LT(0ULL, c.m.faults);
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/mrc/reset", "0"));
	expect_nothing_counted(_metadata, GROUP_A, &c);
}

/*
 * With a window of a second, two idle seconds and more leave nothing: an
 * idle group reads as idle, not as its last busy window.
 */
TEST_F_TIMEOUT(mrc, window_forgets_an_idle_past, 300)
{
	struct workload w = small_cycle(3);
	struct ts_mrc_curve c;

	ASSERT_EQ(0, ts_write_str(WINDOW_PARAM, "1"));
	ASSERT_EQ(0, workload_run(&w));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &c));
	log_curve(_metadata, "busy", &c);
	ASSERT_LT(0ULL, c.m.evictions + c.m.faults);
	sleep(3);
	expect_nothing_counted(_metadata, GROUP_A, &c);
	EXPECT_LE(1000000000ULL, c.m.window_ns);
}

/*
 * mrc=0: no stamps, no curves, no debugfs directory; swap works as ever.
 * Bad values of the parameters fail insmod, saying why.
 */
TEST_F_TIMEOUT(mrc, off_records_nothing, 300)
{
	struct workload w = small_cycle(2);
	struct ts_mrc_curve c;
	struct stat st;
	int kmsg;

	ts_swap_down();
	kmsg = ts_kmsg_open();
	ASSERT_LE(0, kmsg);
	EXPECT_EQ(-EINVAL, ts_module_load("mrc=2"));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "mrc=2: not 0 or 1"));
	EXPECT_EQ(-EINVAL, ts_module_load("mrc_window_s=99999999"));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "mrc_window_s=99999999: not a number of seconds"));
	close(kmsg);

	ASSERT_EQ(0, ts_swap_up(PARAMS " mrc=0"));
	ASSERT_EQ(0, workload_run(&w));
	EXPECT_LT(0, ts_swapdev_counter("reads"));
	EXPECT_EQ(-EOPNOTSUPP, ts_mrc_read(GROUP_A, 0, &c));
	EXPECT_NE(0, stat(TS_DEBUGFS "/mrc", &st));
}

/*
 * Two cgroups swapping at the same time, each with its own step: neither
 * group's swap-ins show up in the other's curve.
 */
TEST_F_TIMEOUT(mrc, cgroups_are_isolated, 300)
{
	size_t na = 3072, nb = 2048, ma = 1024, mb = 1536;
	struct workload wa = {
		.name = GROUP_A, .max_pages = ma, .pages = na,
		.warmup = 1, .rounds = 3, .fn = cyclic, .arg = &na,
	};
	struct workload wb = {
		.name = GROUP_B, .max_pages = mb, .pages = nb,
		.warmup = 1, .rounds = 6, .fn = cyclic, .arg = &nb,
	};
	struct ts_mrc_curve a, b;
	pid_t pa, pb;

	pa = workload_start(&wa);
	pb = workload_start(&wb);
	ASSERT_EQ(0, workload_wait(pa));
	ASSERT_EQ(0, workload_wait(pb));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &a));
	ASSERT_EQ(0, ts_mrc_read(GROUP_B, 0, &b));
	log_curve(_metadata, GROUP_A, &a);
	log_curve(_metadata, GROUP_B, &b);
	ASSERT_NE(a.m.cgroup_id, b.m.cgroup_id);
	ASSERT_LE(wa.rounds * (na - ma) * 8 / 10, a.m.faults);
	ASSERT_LE(wb.rounds * (nb - mb) * 8 / 10, b.m.faults);
	/* A's step is at +2048, B's at +512: nothing of one near the other. */
	EXPECT_GE(0.05 * a.m.faults, ts_mrc_misses_at(&a, 0) - ts_mrc_misses_at(&a, 1500));
	EXPECT_GE(0.05 * b.m.faults, ts_mrc_misses_at(&b, 1000));
	/* Each group's evictions are its own pages only. */
	EXPECT_GE((wa.warmup + wa.rounds) * na * 12 / 10, a.m.evictions);
	EXPECT_GE((wb.warmup + wb.rounds) * nb * 12 / 10, b.m.evictions);
}

/*
 * A slot freed with its page must lose its stamp, and the page's group
 * its count of pages in swap; the slot's next user starts clean.
 */
TEST_F_TIMEOUT(mrc, freed_slots_keep_no_stamp, 300)
{
	size_t pages = 2048, resident;
	long long stamped;
	__u64 faults_a;
	struct ts_mrc_curve a, b;
	char *mem;
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (ts_cgroup_enter(GROUP_A))
			_exit(10);
		mem = map_pages(pages);
		if (!mem)
			_exit(11);
		touch(mem, pages, 1);
		resident = ts_push_to_swap(GROUP_A, mem, pages * PAGE);
		if (resident > pages / 10)
			_exit(12);
		if (ts_mrc_read(GROUP_A, 0, &a) || a.m.in_swap < pages * 9 / 10)
			_exit(13);
		/* Exit frees every slot: no swap-in. */
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, WEXITSTATUS(status));
	/* Freed slots wait in per-CPU caches; swapoff hands them all back. */
	ASSERT_EQ(0, swapoff(SWAPDEV));
	ASSERT_EQ(0, ts_read_ll(TS_DEBUGFS "/mrc/stamped_slots", &stamped));
	EXPECT_EQ(0, stamped);
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &a));
	log_curve(_metadata, GROUP_A, &a);
	EXPECT_EQ(0ULL, a.m.in_swap);
	/* Only what reclaim took of the child's own stack came back. */
	EXPECT_GE(pages / 50, a.m.faults);
	faults_a = a.m.faults;
	ASSERT_EQ(0, swapon(SWAPDEV, 0));

	/* Group B reuses the slots: its pages, its distances. */
	ASSERT_EQ(0, swap_out_and_back(GROUP_B, pages, 2, 3));
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &a));
	ASSERT_EQ(0, ts_mrc_read(GROUP_B, 0, &b));
	log_curve(_metadata, GROUP_B, &b);
	EXPECT_EQ(faults_a, a.m.faults);
	EXPECT_EQ(0ULL, a.m.in_swap);
	EXPECT_LE(pages * 8 / 10, b.m.faults);
	EXPECT_EQ(0ULL, b.m.unstamped_faults);
	/* Pushed all at once, read back in order: none waited beyond pages. */
	EXPECT_EQ(0, ts_mrc_misses_at(&b, pages));
}

/*
 * Zero-filled pages: 6.12 keeps them in the swap area's zeromap, with no
 * write to the device and no read back, 6.1 writes them. Either way each
 * is an eviction, and each swap-in takes its page out of the group's swap
 * at once; one the device never read counts as a fault that "bypassed"
 * it when its slot is freed.
 */
TEST_F_TIMEOUT(mrc, bypassed_swap_outs_are_counted, 300)
{
	size_t pages = 1024;
	long long writes, reads;
	struct ts_mrc_curve a;
	int status;
	char *mem;
	pid_t pid;

	writes = ts_swapdev_counter("writes");
	reads = ts_swapdev_counter("reads");
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		mem = child_pages_in_swap(GROUP_A, pages, -1);
		/* Read back: the slots stay, but the pages are in memory. */
		read_pages(mem, pages);
		if (ts_mrc_read(GROUP_A, 0, &a) || a.m.in_swap > pages / 10)
			_exit(13);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(0, swapoff(SWAPDEV));
	writes = ts_swapdev_counter("writes") - writes;
	reads = ts_swapdev_counter("reads") - reads;
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &a));
	log_curve(_metadata, GROUP_A, &a);
	TH_LOG("device writes %lld reads %lld", writes, reads);
	EXPECT_LE(pages * 9 / 10, a.m.evictions);
	EXPECT_EQ(0ULL, a.m.in_swap);
	/* Every eviction came back as a fault, from the device or not. */
	EXPECT_LE(a.m.evictions * 95 / 100, a.m.faults);
	EXPECT_GE(a.m.evictions, a.m.faults);
	EXPECT_GE(a.m.faults, a.m.bypassed);
	/* The rest the device read. */
	EXPECT_GE(reads, (long long)(a.m.faults - a.m.bypassed));
	if (writes < (long long)pages / 10)
		/* The zeromap kept them: the device saw none come back. */
		EXPECT_LE(pages * 9 / 10, a.m.bypassed);
	ASSERT_EQ(0, swapon(SWAPDEV, 0));
}

/*
 * zswap keeps pages compressed in RAM (these compress: one byte each in
 * zeroes), so the device never reads them back. Each swap-in counts as a
 * fault that bypassed the device when it begins, before its slot is freed
 * or evicted again: the child reads its curve with every slot still
 * allocated.
 */
TEST_F_TIMEOUT(mrc, zswap_swap_ins_count_as_they_begin, 300)
{
	size_t pages = 1024;
	long long writes, reads;
	struct ts_mrc_curve a;
	int status;
	char *mem;
	pid_t pid;

	if (ts_write_str(ZSWAP "enabled", "Y"))
		SKIP(return, "no zswap in this kernel");
	/* The defaults: room for the pages, none written back early. */
	ts_write_str(ZSWAP "max_pool_percent", "20");
	ts_write_str(ZSWAP "shrinker_enabled", "N");
	writes = ts_swapdev_counter("writes");
	reads = ts_swapdev_counter("reads");
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		mem = child_pages_in_swap(GROUP_A, pages, 1);
		read_pages(mem, pages);
		if (ts_mrc_read(GROUP_A, 0, &a))
			_exit(13);
		log_curve(_metadata, GROUP_A, &a);
		_exit(a.m.bypassed >= pages * 9 / 10 &&
		      a.m.faults >= a.m.bypassed ? 0 : 14);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ts_write_str(ZSWAP "enabled", "N");
	writes = ts_swapdev_counter("writes") - writes;
	reads = ts_swapdev_counter("reads") - reads;
	TH_LOG("device writes %lld reads %lld", writes, reads);
	if (writes >= (long long)pages / 10)
		SKIP(return, "zswap did not keep the pages (%lld written)",
		     writes);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_GT((long long)pages / 10, reads);
}

/*
 * With readahead on, the pages read beyond the faulting one are counted
 * apart: faults match the kernel's swap-ins minus its readahead.
 */
TEST_F_TIMEOUT(mrc, readahead_is_not_a_fault, 300)
{
	long long pswpin, swap_ra;
	size_t pages = 2048;
	struct ts_mrc_curve a;

	ASSERT_EQ(0, ts_write_str(PAGE_CLUSTER, "3"));
	pswpin = ts_vmstat("pswpin");
	swap_ra = ts_vmstat("swap_ra");
	ASSERT_EQ(0, swap_out_and_back(GROUP_A, pages, 1, 2));
	pswpin = ts_vmstat("pswpin") - pswpin;
	swap_ra = ts_vmstat("swap_ra") - swap_ra;
	ASSERT_EQ(0, ts_mrc_read(GROUP_A, 0, &a));
	log_curve(_metadata, GROUP_A, &a);
	TH_LOG("pswpin %lld swap_ra %lld", pswpin, swap_ra);
	ASSERT_LT((long long)pages / 4, swap_ra);
	EXPECT_LE(swap_ra * 9 / 10, (long long)a.m.readahead_reads);
	EXPECT_GE(swap_ra * 11 / 10, (long long)a.m.readahead_reads);
	EXPECT_GE((pswpin - swap_ra) * 11 / 10 + 8, (long long)a.m.faults);
	EXPECT_LE((pswpin - swap_ra) * 9 / 10, (long long)a.m.faults);
}

TEST_HARNESS_MAIN
