// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/tsswap0 and the store: host swap through the module's swap device,
 * under pressure, with a full store and with a failing backing device; and
 * refusal of unusable backing devices.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"

#define PAGE		4096UL
#define SWAPDEV		"/dev/tsswap0"
#define SCRATCH		"/dev/vdb"
#define CGROUP		"ts-swap"
#define DM		"DM_DISABLE_UDEV=1 dmsetup --noudevsync "
#define DM_SECTORS	"1048576"	/* 512 MiB */

/*
 * Anonymous memory between two inaccessible guard pages, so that it never
 * merges with a neighbouring mapping: a huge page of one test region must
 * not spill into the next.
 */
static void *map_pages(size_t pages)
{
	char *p = mmap(NULL, (pages + 2) * PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p + PAGE, pages * PAGE, PROT_READ | PROT_WRITE))
		return NULL;
	return p + PAGE;
}

/*
 * Every test runs in a fixture whose teardown puts the system back (swap
 * off, module unloaded, cgroup gone), so that one failure does not cascade.
 */
FIXTURE(swap) {
	int unused;
};

/* Undo whatever an earlier test, even one killed by timeout, left behind. */
static void reset_system(void)
{
	ts_cgroup_leave(CGROUP);
	ts_cgroup_leave(CGROUP "-reader");
	swapoff(SWAPDEV);
	ts_module_ensure_unloaded();
	ts_system_quiet(DM "remove ts-back");
	ts_system_quiet(DM "remove ts-claim");
	ts_system_quiet("losetup -d /dev/loop5; losetup -d /dev/loop6; "
		     "losetup -d /dev/loop7; rm -f /tmp/*.img");
}

FIXTURE_SETUP(swap)
{
	reset_system();
}

FIXTURE_TEARDOWN(swap)
{
	reset_system();
}

#define TSCTL	"\"$TS_DIR/build/tools/tesseractctl\""
/* Shell steps for the bad stores below, on /dev/loop7. */
#define LOOP7		"rm -f /tmp/l7.img && truncate -s 16M /tmp/l7.img && losetup /dev/loop7 /tmp/l7.img"
#define FORMAT7		TSCTL " format /dev/loop7 >/dev/null"
#define DD7		"dd of=/dev/loop7 conv=notrunc,fsync status=none"
#define RANDOM_BLOCK0	"head -c 4096 /dev/urandom | " DD7
/*
 * Flips the low bit of the uuid's fifth byte (superblock offset 20). Writing
 * a constant there instead left the block unchanged whenever the random uuid
 * already held it: one format in 256 then loaded.
 */
#define FLIP_UUID	"b=$(od -An -tu1 -j20 -N1 /dev/loop7) && " \
			"printf \"\\\\$(printf %o $((b ^ 1)))\" | " DD7 " bs=1 seek=20"
#define TRASH_METADATA	"head -c 1M /dev/urandom | " DD7 " bs=4096 seek=1"

static const struct {
	const char *setup;	/* shell commands preparing the device */
	const char *params;
	const char *message;
	const char *teardown;
} bad_backings[] = {
	{ "true", "backing=/dev/ts-nonexistent",
	  "backing=/dev/ts-nonexistent: no such file", "true" },
	{ "true", "backing=/proc/version",
	  "backing=/proc/version: not a block device", "true" },
	/* Nothing on it: never formatted. */
	{ LOOP7, "backing=/dev/loop7", "backing=/dev/loop7: not a tesseract store",
	  "losetup -d /dev/loop7" },
	/* Another owner's data in block 0. */
	{ LOOP7 " && " RANDOM_BLOCK0, "backing=/dev/loop7",
	  "backing=/dev/loop7: not a tesseract store", "losetup -d /dev/loop7" },
	/* A bit flipped in the superblock (in its uuid). */
	{ LOOP7 " && " FORMAT7 " && " FLIP_UUID, "backing=/dev/loop7",
	  "backing=/dev/loop7: superblock checksum mismatch",
	  "losetup -d /dev/loop7" },
	/* Swap only: reconciliation is on by default. */
	{ LOOP7 " && " TSCTL " format --volatile /dev/loop7 >/dev/null",
	  "backing=/dev/loop7",
	  "backing=/dev/loop7: formatted volatile (tesseractctl format --volatile): references to its blocks would not survive its device; load with reconcile=0",
	  "losetup -d /dev/loop7" },
	{ LOOP7 " && " TSCTL " format --volatile /dev/loop7 >/dev/null",
	  "backing=/dev/loop7 reconcile=1",
	  "backing=/dev/loop7: formatted volatile", "losetup -d /dev/loop7" },
	/* Both checkpoints (and the journal) overwritten. */
	{ LOOP7 " && " FORMAT7 " && " TRASH_METADATA, "backing=/dev/loop7",
	  "backing=/dev/loop7: no valid checkpoint", "losetup -d /dev/loop7" },
	{ "truncate -s 16M /tmp/ro.img && losetup -r /dev/loop6 /tmp/ro.img",
	  "backing=/dev/loop6", "backing=/dev/loop6: read-only",
	  "losetup -d /dev/loop6" },
	{ DM "create ts-claim --table '0 8 linear " SCRATCH " 0'",
	  "backing=" SCRATCH, "backing=" SCRATCH ": in use",
	  DM "remove ts-claim" },
};

TEST_F_TIMEOUT(swap, unusable_backing_refused, 120)
{
	size_t i;
	int kmsg, ret;

	ts_system_quiet("modprobe loop; modprobe dm-mod");
	ts_module_ensure_unloaded();
	for (i = 0; i < ARRAY_SIZE(bad_backings); i++) {
		ASSERT_EQ(0, ts_system(bad_backings[i].setup))
			TH_LOG("setup: %s", bad_backings[i].setup);
		kmsg = ts_kmsg_open();
		ret = ts_module_load(bad_backings[i].params);
		EXPECT_NE(0, ret) TH_LOG("%s accepted", bad_backings[i].params);
		EXPECT_FALSE(ts_module_loaded());
		EXPECT_TRUE(ts_kmsg_contains(kmsg, bad_backings[i].message))
			TH_LOG("no '%s' in the kernel log",
			       bad_backings[i].message);
		close(kmsg);
		ts_module_ensure_unloaded();
		ts_system(bad_backings[i].teardown);
	}
}

static bool swap_listed(void)
{
	FILE *f = fopen("/proc/swaps", "r");
	bool found = false;
	char line[256];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		found |= !strncmp(line, SWAPDEV " ", strlen(SWAPDEV) + 1);
	fclose(f);
	return found;
}

TEST_F_TIMEOUT(swap, swapon_swapoff_unload_refused, 120)
{
	long long slots;

	ASSERT_EQ(0, ts_swap_up("backing=" SCRATCH));
	ASSERT_EQ(0, ts_read_ll("/sys/block/tsswap0/tesseract/slots", &slots));
	EXPECT_GT(slots, 1000);
	EXPECT_TRUE(swap_listed());
	/* Unloading while swap is on must be refused. */
	EXPECT_EQ(-EWOULDBLOCK, ts_module_unload());
	EXPECT_TRUE(ts_module_loaded());
	ASSERT_EQ(0, swapoff(SWAPDEV));
	EXPECT_EQ(0, ts_module_unload());
}

TEST_F_TIMEOUT(swap, pageout_comes_back_identical, 120)
{
	const size_t pages = 4096;
	long long out0, in0, writes0, reads0;
	char *p;

	ASSERT_EQ(0, ts_swap_up("backing=" SCRATCH));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	p = map_pages(pages);
	ASSERT_NE(NULL, p);
	ts_fill_pages(p, pages, 1, 1);

	out0 = ts_vmstat("pswpout");
	writes0 = ts_swapdev_counter("writes");
	EXPECT_GT(pages / 20, ts_push_to_swap(CGROUP, p, pages * PAGE));
	EXPECT_LE(out0 + (long long)pages * 95 / 100, ts_vmstat("pswpout"));
	/* Only tsswap0 is active: all that swap-out went through it. */
	EXPECT_LE(ts_vmstat("pswpout") - out0,
		  ts_swapdev_counter("writes") - writes0);

	in0 = ts_vmstat("pswpin");
	reads0 = ts_swapdev_counter("reads");
	EXPECT_EQ(0UL, ts_bad_pages(p, pages, 1, 1));
	EXPECT_LE(in0 + (long long)pages * 95 / 100, ts_vmstat("pswpin"));
	EXPECT_LE(ts_vmstat("pswpin") - in0,
		  ts_swapdev_counter("reads") - reads0);
	EXPECT_EQ(0, ts_swapdev_counter("write_errors"));
	EXPECT_EQ(0, ts_swapdev_counter("read_errors"));

	munmap(p, pages * PAGE);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/*
 * A store formatted volatile (another machine's RAM, say) holds swap, and
 * the module never reconciles on it: reconcile=1 is refused at run time
 * as at load (unusable_backing_refused), with a message saying why.
 */
TEST_F_TIMEOUT(swap, volatile_store_swaps_and_never_reconciles, 120)
{
	const char *param = TS_SYSMOD "/parameters/reconcile";
	const size_t pages = 1024;
	char val[8];
	int kmsg;
	char *p;

	ASSERT_EQ(0, ts_swap_up_with("backing=" SCRATCH " reconcile=0",
				     "--volatile"));
	kmsg = ts_kmsg_open();
	EXPECT_EQ(-EINVAL, ts_write_str(param, "Y"));
	EXPECT_EQ(-EINVAL, ts_write_str(param, "1"));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "reconcile: not on: the store is formatted volatile"));
	close(kmsg);
	ASSERT_EQ(0, ts_read_str(param, val, sizeof(val)));
	EXPECT_STREQ("N", val);
	EXPECT_EQ(0, ts_write_str(param, "N"));
	EXPECT_EQ(-EINVAL, ts_write_str(param, "maybe"));

	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	p = map_pages(pages);
	ASSERT_NE(NULL, p);
	ts_fill_pages(p, pages, 7, 1);
	EXPECT_GT(pages / 20, ts_push_to_swap(CGROUP, p, pages * PAGE));
	EXPECT_EQ(0UL, ts_bad_pages(p, pages, 7, 1));
	EXPECT_EQ(0, ts_swapdev_counter("write_errors"));
	munmap(p, pages * PAGE);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();

	EXPECT_EQ(0, ts_system(TSCTL " check " SCRATCH " >/dev/null"));
	EXPECT_EQ(0, ts_system(TSCTL " dump " SCRATCH
			       " | grep -q '^  incompat *0x00000001 (volatile'"));
	/* Formatted again without it: reconciliation may be on again. */
	ASSERT_EQ(0, ts_swap_up("backing=" SCRATCH));
	ASSERT_EQ(0, ts_read_str(param, val, sizeof(val)));
	EXPECT_STREQ("Y", val);
	EXPECT_EQ(0, ts_write_str(param, "N"));
	EXPECT_EQ(0, ts_write_str(param, "Y"));
	ts_swap_down();
}

TEST_F_TIMEOUT(swap, slot_frees_are_notified, 120)
{
	const size_t pages = 2048;
	long long base, frees0;
	char *p;

	ASSERT_EQ(0, ts_swap_up("backing=" SCRATCH));
	base = ts_swapdev_counter("slots_in_use");
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	p = map_pages(pages);
	ASSERT_NE(NULL, p);
	ts_fill_pages(p, pages, 2, 1);
	EXPECT_GT(pages / 20, ts_push_to_swap(CGROUP, p, pages * PAGE));
	EXPECT_LE(base + (long long)pages * 95 / 100,
		  ts_swapdev_counter("slots_in_use"));

	frees0 = ts_swapdev_counter("frees");
	munmap(p, pages * PAGE);
	/* Freed entries may wait in per-cpu caches of 64 per cpu. */
	EXPECT_LE(frees0 + (long long)pages * 95 / 100 - 64 * 2,
		  ts_swapdev_counter("frees"));
	ts_cgroup_leave(CGROUP);
	ASSERT_EQ(0, swapoff(SWAPDEV));
	EXPECT_EQ(base, ts_swapdev_counter("slots_in_use"));
	EXPECT_EQ(ts_swapdev_counter("slots_in_use"),
		  ts_swapdev_counter("blocks_in_use"));
	ts_module_ensure_unloaded();
}

/*
 * A block referenced by something besides its slot keeps its contents: a
 * write to the slot moves the slot to a fresh block.
 */
TEST_F_TIMEOUT(swap, redirect_on_write, 120)
{
	char *buf, *back;
	long long redirected0, used0;
	int fd;

	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_format(SCRATCH));
	ASSERT_EQ(0, ts_module_load("backing=" SCRATCH));
	fd = open(SWAPDEV, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, posix_memalign((void **)&buf, PAGE, PAGE));
	ASSERT_EQ(0, posix_memalign((void **)&back, PAGE, PAGE));

	/* A hold needs a mapped slot. */
	EXPECT_EQ(-ENODATA, ts_write_str(TS_DEBUGFS "/tsswap0/hold", "10"));

	ts_fill_page(buf, 3, 10, 1);
	ASSERT_EQ((ssize_t)PAGE, pwrite(fd, buf, PAGE, 10 * PAGE));
	used0 = ts_swapdev_counter("blocks_in_use");
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/hold", "10"));

	redirected0 = ts_swapdev_counter("redirected_writes");
	ts_fill_page(buf, 3, 10, 2);
	ASSERT_EQ((ssize_t)PAGE, pwrite(fd, buf, PAGE, 10 * PAGE));
	EXPECT_EQ(redirected0 + 1, ts_swapdev_counter("redirected_writes"));
	EXPECT_EQ(used0 + 1, ts_swapdev_counter("blocks_in_use"));
	ASSERT_EQ((ssize_t)PAGE, pread(fd, back, PAGE, 10 * PAGE));
	EXPECT_TRUE(ts_check_page(back, 3, 10, 2));

	/* Without the hold the slot's own block is rewritten in place. */
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/hold", "10"));
	EXPECT_EQ(2, ts_swapdev_counter("hold"));
	/* Anything written releases them all, a number or not. */
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/release_holds", "all\n"));
	EXPECT_EQ(0, ts_swapdev_counter("hold"));
	EXPECT_EQ(used0, ts_swapdev_counter("blocks_in_use"));
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/hold", "10"));
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/release_holds", "\n"));
	EXPECT_EQ(0, ts_swapdev_counter("hold"));
	/* A fault-injection delay is bounded: a minute, not 49 days. */
	EXPECT_EQ(-EINVAL, ts_write_str(TS_DEBUGFS "/tsswap0/delay_writes_ms",
					"60001"));
	EXPECT_EQ(-EINVAL, ts_write_str(TS_DEBUGFS "/tsswap0/delay_writes_ms",
					"4294967295"));
	EXPECT_EQ(0, ts_swapdev_counter("delay_writes_ms"));
	/* Taken anyway (a regression): the writes below must not sleep. */
	ASSERT_EQ(0, ts_write_str(TS_DEBUGFS "/tsswap0/delay_writes_ms", "0"));
	ts_fill_page(buf, 3, 10, 3);
	ASSERT_EQ((ssize_t)PAGE, pwrite(fd, buf, PAGE, 10 * PAGE));
	EXPECT_EQ(redirected0 + 1, ts_swapdev_counter("redirected_writes"));
	ASSERT_EQ((ssize_t)PAGE, pread(fd, back, PAGE, 10 * PAGE));
	EXPECT_TRUE(ts_check_page(back, 3, 10, 3));

	/* Slots never written read as zeroes. */
	ASSERT_EQ((ssize_t)PAGE, pread(fd, back, PAGE, 20 * PAGE));
	EXPECT_EQ(0, back[0] | back[PAGE - 1]);
	close(fd);
	free(buf);
	free(back);
	EXPECT_EQ(0, ts_module_unload());
}

/*
 * Huge pages go out as one multi-page bio (6.12 swaps a THP whole; 6.1
 * splits it when the device cannot take a cluster) and must come back
 * intact either way.
 */
TEST_F_TIMEOUT(swap, thp_swapout, 300)
{
	const size_t huge = 2UL << 20, pages = 8 * huge / PAGE;
	long long thp_out0, writes0;
	char *raw, *p;

	if (ts_system("grep -q '\\[never\\]' /sys/kernel/mm/transparent_hugepage/enabled") == 0)
		SKIP(return, "transparent huge pages are disabled");
	ASSERT_EQ(0, ts_swap_up("backing=" SCRATCH));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	raw = map_pages(pages + huge / PAGE);
	ASSERT_NE(NULL, raw);
	p = (char *)(((unsigned long)raw + huge - 1) & ~(huge - 1));
	ASSERT_EQ(0, madvise(p, pages * PAGE, MADV_HUGEPAGE));
	ts_fill_pages(p, pages, 8, 1);

	thp_out0 = ts_vmstat("thp_swpout") + ts_vmstat("thp_swpout_fallback");
	writes0 = ts_swapdev_counter("writes");
	EXPECT_GT(pages / 20, ts_push_to_swap(CGROUP, p, pages * PAGE));
	/* Every huge page was swapped out, whole or split. */
	EXPECT_LE(thp_out0 + 1, ts_vmstat("thp_swpout") +
		  ts_vmstat("thp_swpout_fallback"));
	EXPECT_LE(writes0 + (long long)pages * 95 / 100,
		  ts_swapdev_counter("writes"));
	EXPECT_EQ(0UL, ts_bad_pages(p, pages, 8, 1));
	EXPECT_EQ(0, ts_swapdev_counter("write_errors"));
	ts_cgroup_leave(CGROUP);
}

/*
 * Direct I/O from buffers aligned only to 512 bytes: each slot's data then
 * spans two pages, so lower bios carry several segments per slot.
 */
TEST_F_TIMEOUT(swap, raw_io_scattered_buffers, 120)
{
	enum { SLOTS = 16 };
	struct iovec iov[SLOTS];
	char *buf, *back;
	int fd, i;

	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_format(SCRATCH));
	ASSERT_EQ(0, ts_module_load("backing=" SCRATCH));
	fd = open(SWAPDEV, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, posix_memalign((void **)&buf, PAGE, (SLOTS + 1) * PAGE));
	ASSERT_EQ(0, posix_memalign((void **)&back, PAGE, SLOTS * PAGE));

	/* Starting 1536 bytes into a page, slots in reverse memory order. */
	for (i = 0; i < SLOTS; i++) {
		iov[i].iov_base = buf + 1536 + (SLOTS - 1 - i) * PAGE;
		iov[i].iov_len = PAGE;
		ts_fill_page(iov[i].iov_base, 9, 100 + i, 1);
	}
	ASSERT_EQ((ssize_t)(SLOTS * PAGE), pwritev(fd, iov, SLOTS, 100 * PAGE));

	memset(buf, 0, (SLOTS + 1) * PAGE);
	ASSERT_EQ((ssize_t)(SLOTS * PAGE), preadv(fd, iov, SLOTS, 100 * PAGE));
	for (i = 0; i < SLOTS; i++)
		EXPECT_TRUE(ts_check_page(iov[i].iov_base, 9, 100 + i, 1))
			TH_LOG("slot %d", 100 + i);
	/* And through an aligned buffer, slot by slot. */
	for (i = 0; i < SLOTS; i++) {
		ASSERT_EQ((ssize_t)PAGE, pread(fd, back, PAGE, (100 + i) * PAGE));
		EXPECT_TRUE(ts_check_page(back, 9, 100 + i, 1));
	}
	close(fd);
	free(buf);
	free(back);
}

#define STRESS_PROCS	4
#define STRESS_PAGES	8192		/* 32 MiB per process */
#define STRESS_OPS	6000
#define STRESS_SECONDS	120

/*
 * One stress worker: random reads and rewrites of its pages, each carrying
 * (owner, index, version). After its loop it tells the parent and waits for
 * swapoff, then checks every page once more. Exit status: 0 if no page was
 * ever wrong.
 */
static int stress_worker(int id, int ready_fd, int go_fd)
{
	unsigned long *version = calloc(STRESS_PAGES, sizeof(*version));
	char *p = map_pages(STRESS_PAGES);
	unsigned int seed = 1234 + id;
	time_t end = time(NULL) + STRESS_SECONDS;
	size_t i, bad = 0;
	int op;
	char c;

	if (!p || !version)
		return 2;
	for (i = 0; i < STRESS_PAGES; i++)
		ts_fill_page(p + i * PAGE, id, i, 0);
	for (op = 0; op < STRESS_OPS && time(NULL) < end; op++) {
		i = rand_r(&seed) % STRESS_PAGES;
		if (!ts_check_page(p + i * PAGE, id, i, version[i]))
			bad++;
		if (rand_r(&seed) & 1)
			ts_fill_page(p + i * PAGE, id, i, ++version[i]);
	}
	if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1)
		return 2;
	for (i = 0; i < STRESS_PAGES; i++)
		bad += !ts_check_page(p + i * PAGE, id, i, version[i]);
	if (bad)
		fprintf(stderr, "worker %d: %zu bad pages\n", id, bad);
	return bad ? 1 : 0;
}

TEST_F_TIMEOUT(swap, stress_under_memory_max, 600)
{
	int ready[2], go[2], i, status, failed = 0;
	pid_t pids[STRESS_PROCS];
	long long writes0;
	char c = 0, max[32];

	ASSERT_EQ(0, ts_swap_up("backing=" SCRATCH));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	/* A third of the working set. */
	snprintf(max, sizeof(max), "%lu",
		 STRESS_PROCS * STRESS_PAGES * PAGE / 3);
	ASSERT_EQ(0, ts_cgroup_write(CGROUP, "memory.max", max));
	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	writes0 = ts_swapdev_counter("writes");

	for (i = 0; i < STRESS_PROCS; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i])
			_exit(stress_worker(i, ready[1], go[0]));
	}
	for (i = 0; i < STRESS_PROCS; i++)
		ASSERT_EQ(1, read(ready[0], &c, 1));
	TH_LOG("swap writes during the run: %lld",
	       ts_swapdev_counter("writes") - writes0);
	EXPECT_LT(STRESS_PAGES, ts_swapdev_counter("writes") - writes0);

	/* swapoff brings every page back; give it the memory to do so. */
	ASSERT_EQ(0, ts_cgroup_write(CGROUP, "memory.max", "max"));
	EXPECT_EQ(0, swapoff(SWAPDEV));
	for (i = 0; i < STRESS_PROCS; i++)
		ASSERT_EQ(1, write(go[1], &c, 1));
	for (i = 0; i < STRESS_PROCS; i++) {
		waitpid(pids[i], &status, 0);
		failed += !WIFEXITED(status) || WEXITSTATUS(status);
	}
	EXPECT_EQ(0, failed);
	EXPECT_EQ(0, ts_swapdev_counter("write_errors"));
	EXPECT_EQ(0, ts_swapdev_counter("read_errors"));
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/* A store smaller than the swap device: writes past its end fail cleanly. */
TEST_F_TIMEOUT(swap, store_exhaustion, 600)
{
	const size_t pages = 4096;	/* 16 MiB against an 8 MiB store */
	char *p;

	ts_system_quiet("modprobe loop");
	ASSERT_EQ(0, ts_system("truncate -s 8M /tmp/store.img"));
	ASSERT_EQ(0, ts_system("losetup /dev/loop5 /tmp/store.img"));
	ASSERT_EQ(0, ts_swap_up("backing=/dev/loop5 swap_size_mib=64"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	p = map_pages(pages);
	ASSERT_NE(NULL, p);
	ts_fill_pages(p, pages, 4, 1);
	ts_push_to_swap(CGROUP, p, pages * PAGE);

	EXPECT_LT(0, ts_swapdev_counter("store_full"));
	EXPECT_EQ(ts_swapdev_counter("blocks_total"),
		  ts_swapdev_counter("blocks_in_use"));
	EXPECT_EQ(0UL, ts_bad_pages(p, pages, 4, 1));

	munmap(p, pages * PAGE);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	ts_system("losetup -d /dev/loop5; rm -f /tmp/store.img");
}

static int dm_table(const char *target)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 DM "suspend ts-back && "
		 DM "reload ts-back --table '0 " DM_SECTORS " %s' && "
		 DM "resume ts-back", target);
	return ts_system(cmd);
}

/*
 * A child whose own page sits only in swap touches it while reads fail.
 * It has a cgroup of its own so that memory.reclaim, which evicts whatever
 * the group holds, never touches the test process: the test process must
 * not depend on swap while the backing device fails. Exit status 3: the
 * page could not be pushed out, so the test would prove nothing.
 */
static void read_during_failure(int ready_fd, int go_fd)
{
	char *p, c = 0;

	if (ts_cgroup_enter(CGROUP "-reader"))
		_exit(2);
	p = map_pages(1);
	ts_fill_page(p, 6, 0, 1);
	if (ts_push_to_swap(CGROUP "-reader", p, PAGE))
		_exit(3);
	if (write(ready_fd, &c, 1) != 1 || read(go_fd, &c, 1) != 1)
		_exit(2);
	_exit(ts_check_page(p, 6, 0, 1) ? 0 : 1);
}

TEST_F_TIMEOUT(swap, failing_backing_device, 600)
{
	const size_t pages = 1024;
	int ready[2], go[2], status;
	long long writes0;
	char *a, *b, c = 0;
	pid_t child;

	ts_system_quiet("modprobe dm-mod");
	ASSERT_EQ(0, ts_system(DM "create ts-back --table '0 " DM_SECTORS
			       " linear " SCRATCH " 0'"));
	ASSERT_EQ(0, ts_swap_up("backing=/dev/mapper/ts-back"));
	a = map_pages(pages);
	b = map_pages(pages);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);

	/* MADV_PAGEOUT alone: written to swap, evicting nothing else. */
	writes0 = ts_swapdev_counter("writes");
	ts_fill_pages(a, pages, 5, 1);
	ASSERT_EQ(0, madvise(a, pages * PAGE, MADV_PAGEOUT));
	EXPECT_LE(writes0 + (long long)pages * 95 / 100,
		  ts_swapdev_counter("writes"));

	ASSERT_EQ(0, pipe(ready));
	ASSERT_EQ(0, pipe(go));
	child = fork();
	ASSERT_LE(0, child);
	if (!child)
		read_during_failure(ready[1], go[0]);
	close(ready[1]);
	close(go[0]);
	ASSERT_EQ(1, read(ready[0], &c, 1)) {
		waitpid(child, &status, 0);
		TH_LOG("reader could not put its page in swap (status %#x)",
		       status);
	}

	ASSERT_EQ(0, dm_table("error"));
	/* Writes fail: the kernel keeps these pages in memory. */
	ts_fill_pages(b, pages, 5, 2);
	ASSERT_EQ(0, madvise(b, pages * PAGE, MADV_PAGEOUT));
	EXPECT_LT(0, ts_swapdev_counter("write_errors"));
	ASSERT_EQ(1, write(go[1], &c, 1));
	waitpid(child, &status, 0);
	/* A swap-in that cannot be read kills the faulting task with SIGBUS. */
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS)
		TH_LOG("reader status %#x", status);
	EXPECT_LT(0, ts_swapdev_counter("read_errors"));

	ASSERT_EQ(0, dm_table("linear " SCRATCH " 0"));
	EXPECT_EQ(0UL, ts_bad_pages(a, pages, 5, 1));
	EXPECT_EQ(0UL, ts_bad_pages(b, pages, 5, 2));
	munmap(a, pages * PAGE);
	munmap(b, pages * PAGE);
	EXPECT_EQ(0, swapoff(SWAPDEV));
}

TEST_HARNESS_MAIN
