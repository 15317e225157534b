// SPDX-License-Identifier: GPL-2.0
/*
 * swapbench: swap-out and swap-in throughput of the active swap device.
 *
 *   swapbench MIB ROUNDS [RECLAIMERS]
 *
 * RECLAIMERS processes (default 1), each in a memory cgroup of its own,
 * fill MIB / RECLAIMERS of anonymous memory each, then all at once push it
 * to swap (MADV_PAGEOUT, then memory.reclaim of their cgroup), and then
 * all at once read it back (swap-in) and verify it, ROUNDS times. Several
 * reclaimers put several CPUs in the swap-out path at the same time, which
 * is where a lock of the swap device would show. Throughput is MIB over
 * the wall time from the start signal until the last reclaimer is done.
 * Prints one line per round and a last line
 * "swapbench mib_s=<median MiB/s over out+in>".
 *
 * To profile one phase alone, run it under "perf record -D -1 --control
 * fifo:CTL,ACK" with SWAPBENCH_PERF=out (or in) and SWAPBENCH_PERF_CTL=
 * CTL,ACK in the environment: perf records during that phase only.
 */
#include <signal.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "ts_util.h"

#define PAGE		4096UL
#define MAX_RECLAIMERS	16

/* Shared by the parent and the reclaimers: the phase and who is done. */
struct swapbench_sync {
	int phase;		/* what the reclaimers may do now, see below */
	int done;		/* reclaimers done with the current phase */
	int failed;
};

enum { PHASE_FILL, PHASE_OUT, PHASE_IN, PHASE_EXIT };

static void wait_phase(struct swapbench_sync *sync, int phase)
{
	while (__atomic_load_n(&sync->phase, __ATOMIC_ACQUIRE) < phase)
		usleep(200);
}

/* False if a reclaimer failed: the others may never finish the phase. */
static bool wait_done(struct swapbench_sync *sync, int n)
{
	while (__atomic_load_n(&sync->done, __ATOMIC_ACQUIRE) < n) {
		if (__atomic_load_n(&sync->failed, __ATOMIC_ACQUIRE))
			return false;
		usleep(200);
	}
	return true;
}

static void fail(struct swapbench_sync *sync)
{
	__atomic_store_n(&sync->failed, 1, __ATOMIC_RELEASE);
}

static void next_phase(struct swapbench_sync *sync, int phase)
{
	__atomic_store_n(&sync->done, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&sync->phase, phase, __ATOMIC_RELEASE);
}

static void mark_done(struct swapbench_sync *sync)
{
	__atomic_add_fetch(&sync->done, 1, __ATOMIC_ACQ_REL);
}

/* perf record's control and acknowledgment FIFOs, if a phase is profiled. */
static int perf_ctl = -1, perf_ack = -1, perf_phase = -1;

static int perf_open(void)
{
	const char *phase = getenv("SWAPBENCH_PERF");
	const char *ctl = getenv("SWAPBENCH_PERF_CTL");
	char path[256], *comma;

	if (!phase || !ctl)
		return 0;
	perf_phase = !strcmp(phase, "out") ? PHASE_OUT :
		     !strcmp(phase, "in") ? PHASE_IN : -1;
	snprintf(path, sizeof(path), "%s", ctl);
	comma = strchr(path, ',');
	if (perf_phase < 0 || !comma)
		return -1;
	*comma = '\0';
	perf_ctl = open(path, O_WRONLY);
	perf_ack = open(comma + 1, O_RDONLY);
	return perf_ctl < 0 || perf_ack < 0 ? -1 : 0;
}

/* Send @cmd to perf record and wait for its acknowledgment. */
static void perf_command(int phase, const char *cmd)
{
	char ack[16];

	if (phase != perf_phase)
		return;
	if (write(perf_ctl, cmd, strlen(cmd)) < 0 ||
	    read(perf_ack, ack, sizeof(ack)) <= 0)
		fprintf(stderr, "swapbench: perf control failed\n");
}

/* One reclaimer: its own cgroup and memory, phase by phase, round by round. */
static int run_reclaimer(struct swapbench_sync *sync, int id, size_t pages,
			 int rounds)
{
	size_t resident, bad;
	char cgroup[64];
	char *mem;
	int r;

	snprintf(cgroup, sizeof(cgroup), "ts-swapbench%d", id);
	if (ts_cgroup_enter(cgroup)) {
		fprintf(stderr, "swapbench: cannot join cgroup %s\n", cgroup);
		fail(sync);
		return 1;
	}
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fail(sync);
		return 1;
	}
	for (r = 0; r < rounds; r++) {
		wait_phase(sync, r * PHASE_EXIT + PHASE_FILL);
		ts_fill_pages(mem, pages, 7 + id, r);
		mark_done(sync);

		wait_phase(sync, r * PHASE_EXIT + PHASE_OUT);
		resident = ts_push_to_swap(cgroup, mem, pages * PAGE);
		mark_done(sync);

		wait_phase(sync, r * PHASE_EXIT + PHASE_IN);
		bad = ts_bad_pages(mem, pages, 7 + id, r);
		if (bad || resident > pages / 20) {
			fprintf(stderr, "swapbench: #%d: %zu bad pages, %zu of %zu resident\n",
				id, bad, resident, pages);
			fail(sync);
		}
		mark_done(sync);
	}
	munmap(mem, pages * PAGE);
	ts_cgroup_leave(cgroup);
	return 0;
}

/* The line that swap.sh and plot.py read. */
static void print_round(int r, int n, double out, double in, double both)
{
	printf("round %d: reclaimers %d, out %.1f MiB/s, in %.1f MiB/s, out+in %.1f MiB/s\n",
	       r, n, out, in, both);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int rounds, r, n, i, status, failed = 0;
	pid_t pids[MAX_RECLAIMERS];
	struct swapbench_sync *sync;
	double t0, t1, t2, *rates;
	size_t mib;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: swapbench MIB ROUNDS [RECLAIMERS]\n");
		return 2;
	}
	mib = strtoul(argv[1], NULL, 0);
	rounds = atoi(argv[2]);
	n = argc == 4 ? atoi(argv[3]) : 1;
	if (!mib || rounds < 1 || n < 1 || n > MAX_RECLAIMERS ||
	    (mib << 8) % n) {
		fprintf(stderr, "swapbench: MIB must split into 1..%d reclaimers, ROUNDS >= 1\n",
			MAX_RECLAIMERS);
		return 2;
	}
	if (perf_open()) {
		fprintf(stderr, "swapbench: SWAPBENCH_PERF=out|in, SWAPBENCH_PERF_CTL=CTL,ACK\n");
		return 2;
	}
	rates = calloc(rounds, sizeof(*rates));
	sync = mmap(NULL, sizeof(*sync), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!rates || sync == MAP_FAILED)
		return 1;
	sync->phase = PHASE_FILL;
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			n = i;
			failed = 1;
			break;
		}
		if (!pids[i])
			_exit(run_reclaimer(sync, i, (mib << 8) / n, rounds));
	}

	for (r = 0; r < rounds && !failed; r++) {
		if (!wait_done(sync, n))	/* filled */
			break;
		perf_command(PHASE_OUT, "enable\n");
		t0 = ts_now();
		next_phase(sync, r * PHASE_EXIT + PHASE_OUT);
		if (!wait_done(sync, n))
			break;
		t1 = ts_now();
		perf_command(PHASE_OUT, "disable\n");
		perf_command(PHASE_IN, "enable\n");
		next_phase(sync, r * PHASE_EXIT + PHASE_IN);
		if (!wait_done(sync, n))
			break;
		t2 = ts_now();
		perf_command(PHASE_IN, "disable\n");
		rates[r] = 2.0 * mib / (t2 - t0);
		print_round(r, n, mib / (t1 - t0), mib / (t2 - t1), rates[r]);
		next_phase(sync, (r + 1) * PHASE_EXIT + PHASE_FILL);
	}
	failed |= __atomic_load_n(&sync->failed, __ATOMIC_ACQUIRE);
	for (i = 0; failed && i < n; i++)
		kill(pids[i], SIGKILL);
	for (i = 0; i < n; i++)
		if (wait(&status) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed = 1;
	if (failed)
		return 1;
	qsort(rates, rounds, sizeof(*rates), ts_cmp_double);
	printf("swapbench mib_s=%.1f\n", rates[rounds / 2]);
	return 0;
}
