// SPDX-License-Identifier: GPL-2.0
/*
 * swapbench: swap-out + swap-in throughput of the active swap device.
 *
 *   swapbench MIB ROUNDS
 *
 * Fills MIB of anonymous memory, pushes it all to swap (MADV_PAGEOUT, then
 * memory.reclaim of a cgroup of its own), reads it back (swap-in) and
 * verifies it, ROUNDS times. Prints one line per round and a last line
 * "swapbench mib_s=<median MiB/s over out+in>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "ts_util.h"

#define PAGE	4096UL
#define CGROUP	"ts-swapbench"

int main(int argc, char **argv)
{
	size_t mib, pages, resident, bad;
	double t0, t1, t2, *rates;
	int rounds, r;
	char *mem;

	if (argc != 3) {
		fprintf(stderr, "usage: swapbench MIB ROUNDS\n");
		return 2;
	}
	mib = strtoul(argv[1], NULL, 0);
	rounds = atoi(argv[2]);
	pages = mib << 8;
	rates = calloc(rounds, sizeof(*rates));
	if (!rates || ts_cgroup_enter(CGROUP)) {
		fprintf(stderr, "swapbench: cannot join cgroup %s\n", CGROUP);
		return 1;
	}
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return 1;

	for (r = 0; r < rounds; r++) {
		ts_fill_pages(mem, pages, 7, r);
		t0 = ts_now();
		resident = ts_push_to_swap(CGROUP, mem, pages * PAGE);
		t1 = ts_now();
		bad = ts_bad_pages(mem, pages, 7, r);
		t2 = ts_now();
		if (bad || resident > pages / 20) {
			fprintf(stderr, "swapbench: %zu bad pages, %zu stayed resident\n",
				bad, resident);
			return 1;
		}
		rates[r] = 2.0 * mib / (t2 - t0);
		printf("round %d: out %.1f MiB/s, in %.1f MiB/s, out+in %.1f MiB/s\n",
		       r, mib / (t1 - t0), mib / (t2 - t1), rates[r]);
	}
	qsort(rates, rounds, sizeof(*rates), ts_cmp_double);
	printf("swapbench mib_s=%.1f\n", rates[rounds / 2]);
	munmap(mem, pages * PAGE);
	ts_cgroup_leave(CGROUP);
	return 0;
}
