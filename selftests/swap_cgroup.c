// SPDX-License-Identifier: GPL-2.0
/*
 * Swap I/O through /dev/tsswap0 belongs to the cgroup whose pages move:
 * the store's backing device sees it charged to that group (io.stat), as
 * a plain swap partition would, whoever does the reclaim.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"

#define PAGE		4096UL
#define CGROUP		"ts-swap-cgroup"
#define CGROOT		"/sys/fs/cgroup"
#define BACKING		"/dev/vdb"
#define MIB		(1024UL * 1024)
#define SWAP_MIB	16UL

FIXTURE(sc) {
	pid_t child;
	int to_child[2], from_child[2];
};

FIXTURE_SETUP(sc)
{
	self->child = -1;
	ASSERT_EQ(0, ts_swap_up("backing=" BACKING));
	ASSERT_EQ(0, ts_write_str(CGROOT "/cgroup.subtree_control",
				  "+memory +io"));
	ASSERT_EQ(0, pipe(self->to_child));
	ASSERT_EQ(0, pipe(self->from_child));
}

FIXTURE_TEARDOWN(sc)
{
	char path[128];

	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, NULL, 0);
	}
	snprintf(path, sizeof(path), CGROOT "/" CGROUP);
	rmdir(path);
	ts_swap_down();
}

/*
 * The child joins the group and fills memory, the parent (root group)
 * reclaims it: the swap-out runs in the parent's context. Then the child
 * reads it all back (swap-in in its own context).
 */
static void child_main(int in, int out)
{
	size_t len = SWAP_MIB * MIB, i;
	char c = 0, *p;

	if (ts_cgroup_enter(CGROUP))
		_exit(2);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(2);
	for (i = 0; i < len; i += PAGE)
		memset(p + i, (int)(i / PAGE) | 1, PAGE);
	if (write(out, "f", 1) != 1 || read(in, &c, 1) != 1)
		_exit(2);
	for (i = 0; i < len; i += PAGE)
		if (p[i] != (char)((i / PAGE) | 1))
			_exit(3);
	if (write(out, "r", 1) != 1 || read(in, &c, 1) != 1)
		_exit(2);
	_exit(0);
}

TEST_F_TIMEOUT(sc, swap_io_is_charged_to_the_swapping_group, 300)
{
	long long wbytes0, rbytes0, wbytes, rbytes, swapped;
	char c;
	int status;

	self->child = fork();
	ASSERT_LE(0, self->child);
	if (!self->child)
		child_main(self->to_child[0], self->from_child[1]);
	ASSERT_EQ(1, read(self->from_child[0], &c, 1));

	wbytes0 = ts_cgroup_io_stat(CGROUP, BACKING, "wbytes");
	rbytes0 = ts_cgroup_io_stat(CGROUP, BACKING, "rbytes");
	swapped = ts_swapdev_counter("writes");
	/* Reclaim by a process outside the group. */
	ts_cgroup_write(CGROUP, "memory.reclaim", "64M");
	ts_cgroup_write(CGROUP, "memory.reclaim", "64M");
	swapped = (ts_swapdev_counter("writes") - swapped) * PAGE;
	wbytes = ts_cgroup_io_stat(CGROUP, BACKING, "wbytes") - wbytes0;
	TH_LOG("swapped out %lld KiB; the group was charged %lld KiB of writes",
	       swapped >> 10, wbytes >> 10);
	ASSERT_LE((long long)(SWAP_MIB * MIB / 2), swapped);
	EXPECT_LE(swapped * 9 / 10, wbytes);

	ASSERT_EQ(1, write(self->to_child[1], "c", 1));
	ASSERT_EQ(1, read(self->from_child[0], &c, 1));
	rbytes = ts_cgroup_io_stat(CGROUP, BACKING, "rbytes") - rbytes0;
	TH_LOG("the group was charged %lld KiB of reads", rbytes >> 10);
	EXPECT_LE(swapped * 9 / 10, rbytes);

	ASSERT_EQ(1, write(self->to_child[1], "x", 1));
	ASSERT_EQ(self->child, waitpid(self->child, &status, 0));
	self->child = -1;
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_HARNESS_MAIN
