// SPDX-License-Identifier: GPL-2.0
/*
 * The store on another machine: a target in a network namespace of the
 * test kernel, behind a veth pair whose two ends delay each packet by
 * 50 us (tc netem), serves a device over NVMe over TCP (the kernel's
 * nvmet-tcp, the host connected with nvme-cli) or NBD (nbd-server and
 * nbd-client), and the module loads its store from the device the host
 * sees (remote_target.sh). The target's device is /dev/vdb (durable) or,
 * over NVMe, a RAM disk (brd: another machine's memory, volatile).
 * Skipped where the kernel has no network (the debug kernel) or a tool
 * is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define CGROUP		"ts-remote"
#define PAGES		1024UL		/* 4 MiB of guest buffers */
#define DISK		"/dev/vda"
#define DISK_SECTORS	(16UL << 11)	/* 16 MiB, discarded at teardown */
#define GUEST_RAM	(2 * PAGES * PAGE + (4 << 20))

#define TSCTL		"\"$TS_DIR/build/tools/tesseractctl\""
#define TARGET		"\"$TS_DIR/selftests/remote_target.sh\""
/* A RAM disk of 128 MiB: another machine's memory. */
#define RAM_DISK	"/dev/ram0"

/*
 * The target serving @backing over @transport (nvme or nbd) and the host's
 * connection to it (remote_target.sh up): the host's block device in @dev. 0; 1 if
 * something it needs is missing here (skip); -1 if it failed.
 */
static int remote_up(const char *transport, const char *backing, char *dev,
		     size_t len)
{
	char cmd[256];
	FILE *f;
	int ret;

	snprintf(cmd, sizeof(cmd), TARGET " up %s %s", transport, backing);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(dev, len, f))
		dev[0] = '\0';
	ret = pclose(f);
	dev[strcspn(dev, "\n")] = '\0';
	if (WIFEXITED(ret) && WEXITSTATUS(ret) == 2)
		return 1;
	return WIFEXITED(ret) && !WEXITSTATUS(ret) && dev[0] ? 0 : -1;
}

/*
 * Take the path down for @seconds in the background: the shell's pid.
 * It runs in the root cgroup: in the test's, its own pages would go to
 * the swap it is cutting off, and it could not bring the path back.
 */
static pid_t cut_the_path(unsigned int seconds)
{
	char cmd[128];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), TARGET " cut %u", seconds);
	pid = fork();
	if (!pid) {
		if (ts_write_str("/sys/fs/cgroup/cgroup.procs", "0"))
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/*
 * Push the guest's @pages at @p to swap until at most 5 % stay resident,
 * or 60 s: writes over the network may still be running when reclaim
 * gives up. The pages left resident.
 */
static size_t push_out(void *p, size_t pages)
{
	double t0 = ts_now();
	size_t resident;

	while ((resident = ts_push_to_swap(CGROUP, p, pages * PAGE)) >=
	       pages / 20 && ts_now() - t0 < 60)
		sleep(1);
	return resident;
}

FIXTURE(remote) {
	char dev[64];
	char params[128];
	struct vblk_dev guest;
	int disk_fd;
	char *buf, *check;
};

FIXTURE_VARIANT(remote) {
	const char *transport;	/* remote_target.sh's: nvme or nbd */
	const char *backing;	/* the target's device */
	bool volatile_store;
};

/* A durable device on the other machine: its references keep. */
FIXTURE_VARIANT_ADD(remote, disk) {
	.transport = "nvme",
	.backing = "/dev/vdb",
	.volatile_store = false,
};

/* The other machine's RAM: swap only. */
FIXTURE_VARIANT_ADD(remote, ram) {
	.transport = "nvme",
	.backing = RAM_DISK,
	.volatile_store = true,
};

/* The durable device through NBD. */
FIXTURE_VARIANT_ADD(remote, nbd) {
	.transport = "nbd",
	.backing = "/dev/vdb",
	.volatile_store = false,
};

FIXTURE_SETUP(remote)
{
	int ret;

	vblk_init(&self->guest);
	self->disk_fd = -1;
	ts_system_quiet(TARGET " down; rmmod brd");
	if (variant->volatile_store &&
	    ts_system("modprobe -q brd rd_nr=1 rd_size=131072"))
		TS_SETUP_SKIP("no brd RAM disk in this kernel");
	ret = remote_up(variant->transport, variant->backing, self->dev,
			sizeof(self->dev));
	if (ret)
		ts_system_quiet(TARGET " down; rmmod brd");
	if (ret > 0)
		TS_SETUP_SKIP("no network, nvmet-tcp, nbd, nvme-cli or nbd-server here");
	ASSERT_EQ(0, ret);
	snprintf(self->params, sizeof(self->params), "backing=%s%s",
		 self->dev, variant->volatile_store ? " reconcile=0" : "");
	ASSERT_EQ(0, ts_swap_up_with(self->params, variant->volatile_store ?
				     "--volatile" : ""));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->guest, GUEST_RAM, self->disk_fd,
				    0));
	self->buf = vblk_alloc(&self->guest, PAGES * PAGE, PAGE);
	self->check = vblk_alloc(&self->guest, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(remote)
{
	if (self->disk_fd >= 0)
		vblk_close_disk(&self->guest, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	ts_system_quiet(TARGET " down; rmmod brd");
}

/*
 * The host swaps to the remote store and reads it back; on a durable one
 * the guest's writes of swapped pages become references, which a flush
 * commits to the remote journal, and which come back after the module
 * reloads from it; a volatile one swaps and never reconciles.
 */
TEST_F_TIMEOUT(remote, swap_and_references_over_the_network, 300)
{
	long long reconciled;
	char cmd[256];

	ts_fill_pages(self->buf, PAGES, 1, 1);
	ASSERT_GT(PAGES / 20, push_out(self->buf, PAGES));
	EXPECT_LE((long long)PAGES * 9 / 10,
		  ts_vhost_counter("guest_pages_in_host_swap"));
	ASSERT_EQ(0, vblk_io_pages(&self->guest, VIRTIO_BLK_T_OUT, 0,
				   self->buf, PAGES, false));
	ASSERT_EQ(0, vblk_rw(&self->guest, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0,
			     0, false));
	reconciled = ts_vhost_counter("reconciled_pages");
	EXPECT_TRUE(variant->volatile_store ? !reconciled :
		    reconciled >= (long long)PAGES * 9 / 10)
		TH_LOG("%lld pages reconciled", reconciled);
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 1, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->guest, VIRTIO_BLK_T_IN, 0,
				   self->check, PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));
	EXPECT_EQ(0, ts_swapdev_counter("write_errors"));
	EXPECT_EQ(0, ts_swapdev_counter("read_errors"));

	/* Reloaded from the remote store: its references read back. */
	vblk_close(&self->guest);
	ts_swap_down();
	snprintf(cmd, sizeof(cmd), TSCTL " check %s >/dev/null", self->dev);
	EXPECT_EQ(0, ts_system(cmd));
	ASSERT_EQ(0, ts_swap_up_on_store(self->params));
	vblk_init(&self->guest);
	ASSERT_EQ(0, vblk_open_disk(&self->guest, GUEST_RAM, self->disk_fd,
				    0));
	self->check = vblk_alloc(&self->guest, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->check);
	ASSERT_EQ(0, vblk_io_pages(&self->guest, VIRTIO_BLK_T_IN, 0,
				   self->check, PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));
	if (!variant->volatile_store) {
		EXPECT_LE((long long)PAGES * 9 / 10,
			  ts_vhost_counter("store_reads"));
	}
}

/* Until the host's end of the path is down (remote_target.sh cut). */
static bool path_down(void)
{
	char state[16];
	int i;

	for (i = 0; i < 100; i++) {
		if (!ts_read_str("/sys/class/net/ts-h/operstate", state,
				 sizeof(state)) && !strcmp(state, "down"))
			return true;
		usleep(20 * 1000);
	}
	return false;
}

/*
 * The path to the store goes down for 3 s and the host swaps the guest
 * out meanwhile (nvme-tcp's keep-alive is 5 s, its controller-loss
 * timeout 20 s; nbd's I/O timeout 20 s): no write reaches the target
 * while the path is down (its device's counts, in this same kernel, say
 * so), reclaim waits or leaves the pages under writeback in memory; once
 * the path is back the writes complete, nothing fails, and every page
 * comes back, read from the target.
 */
TEST_F_TIMEOUT(remote, a_short_outage_loses_nothing, 300)
{
	long long errors0 = ts_swapdev_counter("write_errors");
	struct ts_blk_stat before, during, after;
	/*
	 * Where the writes that arrived are counted: nvmet writes the
	 * target's device directly; nbd-server writes through its page
	 * cache, so the host's /dev/nbd0 counts what completed instead.
	 */
	const char *counter = strcmp(variant->transport, "nbd") ?
			      variant->backing : self->dev;
	bool counted, still_down;
	double t0, waited;
	size_t resident;
	int status;
	pid_t cut;

	ts_fill_pages(self->buf, PAGES, 2, 1);
	cut = cut_the_path(3);
	ASSERT_LT(0, cut);
	ASSERT_TRUE(path_down());
	ts_blk_stat(counter, &before);
	t0 = ts_now();
	resident = ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE);
	waited = ts_now() - t0;
	ts_blk_stat(counter, &during);
	/*
	 * Still down: nothing may have reached the target. Its device
	 * counts what it wrote since the format, if it counts at all (brd
	 * does not).
	 */
	counted = before.written > 0;
	still_down = waitpid(cut, &status, WNOHANG) == 0;
	EXPECT_TRUE(!counted || !still_down ||
		    before.written == during.written)
		TH_LOG("%lld bytes written with the path down",
		       during.written - before.written);
	if (still_down)
		ASSERT_EQ(cut, waitpid(cut, &status, 0));
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("remote_target.sh cut: status %#x", status);
	TH_LOG("during the outage: %.1f s, %zu pages left resident", waited,
	       resident);
	/*
	 * Back: the writes complete (once TCP retransmits: its backoff may
	 * add seconds), and the rest goes out.
	 */
	t0 = ts_now();
	resident = push_out(self->buf, PAGES);
	TH_LOG("after the outage: %.1f s, %zu pages left resident",
	       ts_now() - t0, resident);
	EXPECT_GT(PAGES / 20, resident);
	ts_blk_stat(counter, &after);
	EXPECT_TRUE(!counted || after.written - before.written >=
		    (long long)(PAGES * PAGE * 9 / 10));
	EXPECT_EQ(errors0, ts_swapdev_counter("write_errors"));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 2, 1));
	ts_blk_stat(counter, &during);
	EXPECT_TRUE(!counted || during.read - after.read >=
		    (long long)(PAGES * PAGE * 9 / 10));
	EXPECT_EQ(0, ts_swapdev_counter("read_errors"));
}

TEST_HARNESS_MAIN
