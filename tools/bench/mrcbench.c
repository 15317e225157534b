// SPDX-License-Identifier: GPL-2.0
/*
 * mrcbench: how well a miss-ratio curve recorded at one memory size
 * predicts the swap-ins at larger ones.
 *
 *   mrcbench PAGES ACCESSES WARMUP ZIPF_S MAX_PAGES...
 *
 * A process in a cgroup of its own writes one byte of a page picked from a
 * Zipf distribution (exponent ZIPF_S) over PAGES pages, ACCESSES times
 * after WARMUP untimed accesses, with the same random sequence at each
 * memory.max in MAX_PAGES (pages). At the first size it reads the curve
 * (TESSERACT_MRC, reset after the warm-up); at every size it counts the
 * swap-ins (pswpin of /proc/vmstat, readahead off). Prints a line
 *   size MAX_PAGES pages (+MiB): predicted P measured M error E%
 * for each size
 * and last "mrcbench max_error=<worst percent>": the error is relative to
 * the measured count, or, where fewer than 1 % of the accesses missed,
 * the difference in miss ratio (as a percentage of the 0.01 allowed).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ts_util.h"

#define PAGE	4096UL
#define CGROUP	"ts-mrcbench"
#define SEED	0x6d7263ULL

static __u64 rng_state;

static __u64 rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Ranks to pages: a fixed shuffle, so that hot pages are not neighbours. */
static unsigned int *shuffle(size_t pages)
{
	unsigned int *perm = malloc(pages * sizeof(*perm));
	size_t i, j;
	unsigned int t;

	if (!perm)
		return NULL;
	for (i = 0; i < pages; i++)
		perm[i] = i;
	rng_state = SEED ^ 0x5bd1e995;
	for (i = pages - 1; i > 0; i--) {
		j = rng() % (i + 1);
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

static double *zipf_cdf(size_t pages, double s)
{
	double *cdf = malloc(pages * sizeof(*cdf)), sum = 0;
	size_t i;

	if (!cdf)
		return NULL;
	for (i = 0; i < pages; i++) {
		sum += 1.0 / pow(i + 1, s);
		cdf[i] = sum;
	}
	for (i = 0; i < pages; i++)
		cdf[i] /= sum;
	return cdf;
}

static size_t zipf_rank(const double *cdf, size_t pages)
{
	double u = (rng() >> 11) * (1.0 / 9007199254740992.0);
	size_t lo = 0, hi = pages - 1, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void run_accesses(char *mem, const double *cdf,
			 const unsigned int *perm, size_t pages, long n)
{
	long i;

	for (i = 0; i < n; i++)
		mem[(size_t)perm[zipf_rank(cdf, pages)] * PAGE] += 1;
}

/*
 * One run at memory.max = @max_pages: the child does the work, and reads
 * the curve into @c (a shared mapping) if @c. Swap-ins measured: pswpin
 * over the timed accesses, through a pipe from the child.
 */
static int run_size(size_t pages, long accesses, long warmup, double s,
		    size_t max_pages, struct ts_mrc_curve *c, long long *swapins,
		    double *secs)
{
	long long result[2];
	int fds[2], status;
	char max[32];
	pid_t pid;

	if (pipe(fds))
		return -1;
	pid = fork();
	if (!pid) {
		unsigned int *perm = shuffle(pages);
		double *cdf = zipf_cdf(pages, s);
		long long before;
		double t0;
		char *mem;

		if (!perm || !cdf || ts_cgroup_enter(CGROUP))
			_exit(2);
		snprintf(max, sizeof(max), "%zu", max_pages * PAGE);
		if (ts_cgroup_write(CGROUP, "memory.max", max))
			_exit(3);
		mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			_exit(4);
		madvise(mem, pages * PAGE, MADV_NOHUGEPAGE);
		/* Every page exists before the warm-up; the same draws everywhere. */
		memset(mem, 1, pages * PAGE);
		rng_state = SEED;
		run_accesses(mem, cdf, perm, pages, warmup);
		if (c && ts_mrc_read(CGROUP, TESSERACT_MRC_RESET, c))
			_exit(5);
		before = ts_vmstat("pswpin");
		t0 = ts_now();
		run_accesses(mem, cdf, perm, pages, accesses);
		result[0] = ts_vmstat("pswpin") - before;
		result[1] = (long long)((ts_now() - t0) * 1e6);
		if (c && ts_mrc_read(CGROUP, 0, c))
			_exit(6);
		if (write(fds[1], result, sizeof(result)) != sizeof(result))
			_exit(7);
		_exit(0);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], result, sizeof(result)) != sizeof(result)) {
		close(fds[0]);
		waitpid(pid, &status, 0);
		fprintf(stderr, "mrcbench: run at %zu pages failed\n", max_pages);
		return -1;
	}
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		return -1;
	*swapins = result[0];
	*secs = result[1] / 1e6;
	return 0;
}

int main(int argc, char **argv)
{
	long long swapins, base_swapins;
	double s, secs, predicted, err, worst = 0;
	size_t pages, base;
	long accesses, warmup;
	struct ts_mrc_curve *c;
	unsigned int b;
	int i;

	if (argc < 6) {
		fprintf(stderr, "usage: mrcbench PAGES ACCESSES WARMUP ZIPF_S MAX_PAGES...\n");
		return 2;
	}
	pages = strtoul(argv[1], NULL, 0);
	accesses = strtol(argv[2], NULL, 0);
	warmup = strtol(argv[3], NULL, 0);
	s = strtod(argv[4], NULL);
	base = strtoul(argv[5], NULL, 0);
	c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED)
		return 1;

	if (run_size(pages, accesses, warmup, s, base, c, &base_swapins,
		     &secs))
		return 1;
	printf("curve at %zu pages: %llu faults, %llu unstamped, ", base,
	       c->m.faults, c->m.unstamped_faults);
	printf("%llu readahead, %llu evictions, pswpin %lld, %.1f s\n",
	       c->m.readahead_reads, c->m.evictions, base_swapins, secs);
	printf("curve buckets:");
	for (b = 0; b < TESSERACT_MRC_BUCKETS; b++)
		if (c->hist[b])
			printf(" %llu:%llu", TESSERACT_MRC_BUCKET_LO(b),
			       c->hist[b]);
	printf("\n");
	for (i = 5; i < argc; i++) {
		size_t max_pages = strtoul(argv[i], NULL, 0);

		predicted = ts_mrc_misses_at(c, (double)(max_pages - base));
		if (i > 5 && run_size(pages, accesses, warmup, s, max_pages,
				      NULL, &swapins, &secs))
			return 1;
		if (i == 5)
			swapins = base_swapins;
		if (swapins < accesses / 100)
			/* Small counts: the miss-ratio difference, of 0.01. */
			err = fabs(predicted - swapins) / accesses / 0.01 * 10;
		else
			err = 100 * fabs(predicted - swapins) / swapins;
		if (err > worst)
			worst = err;
		printf("size %zu pages (+%zu MiB): ", max_pages,
		       (max_pages - base) >> 8);
		printf("predicted %.0f measured %lld error %.1f%% (%.1f s)\n",
		       predicted, swapins, err, secs);
		fflush(stdout);
	}
	printf("mrcbench max_error=%.1f\n", worst);
	return 0;
}
