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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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
/*
 * The rings and what is allocated before the buffers (less than 2 MiB) in
 * their own 4 MiB, the buffers, and 4 MiB for requests.
 */
#define RINGS_SPACE	(4UL << 20)
#define GUEST_RAM	(RINGS_SPACE + 2 * PAGES * PAGE + (4 << 20))

#define TSCTL		"\"$TS_DIR/build/tools/tesseractctl\""
#define TARGET		"\"$TS_DIR/selftests/remote_target.sh\""
/* A RAM disk of 128 MiB: another machine's memory. */
#define RAM_DISK	"/dev/ram0"

/*
 * How the path to the store fails: the link goes down (a cable, a switch),
 * or the target stops serving (a crashed server).
 */
enum fault { LINK_DOWN, TARGET_STOPPED };

static const char * const fault_arg[] = {
	[LINK_DOWN] = "path",
	[TARGET_STOPPED] = "target",
};

/*
 * remote_target.sh @args, in the background, its stdout to @out_fd (if not
 * -1): the shell's pid. It runs in the root cgroup: in the test's, its own
 * pages would go to the swap it is cutting off, and it could not bring the
 * path back.
 */
static pid_t target_in_root(const char *args, int out_fd)
{
	char cmd[128];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), TARGET " %s", args);
	pid = fork();
	if (!pid) {
		if (ts_write_str("/sys/fs/cgroup/cgroup.procs", "0"))
			_exit(126);
		if (out_fd >= 0 && dup2(out_fd, STDOUT_FILENO) < 0)
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* @fault on, or off: 0, or -1. */
static int set_fault(enum fault fault, bool on)
{
	char args[32];
	int status;
	pid_t pid;

	snprintf(args, sizeof(args), "fault %s %s", fault_arg[fault],
		 on ? "on" : "off");
	pid = target_in_root(args, -1);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
}

/*
 * @fault for @seconds, in the background: the shell's pid once the fault
 * is in place, or -1.
 */
static pid_t fault_for(enum fault fault, unsigned int seconds)
{
	struct pollfd pfd = { .events = POLLIN };
	char args[32], said[8] = "";
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	snprintf(args, sizeof(args), "cut %s %u", fault_arg[fault], seconds);
	pid = target_in_root(args, fds[1]);
	close(fds[1]);
	pfd.fd = fds[0];
	if (pid > 0 && poll(&pfd, 1, 30 * 1000) == 1 &&
	    read(fds[0], said, sizeof(said) - 1) > 0 &&
	    !strncmp(said, "down", 4)) {
		close(fds[0]);
		return pid;
	}
	close(fds[0]);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	set_fault(fault, false);
	return -1;
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

/*
 * The guest on disk @disk_fd, as @guest (initialised here), with two
 * buffers of PAGES pages of its memory in *@buf and *@check: 0, or -1.
 * They are of small pages, away from any huge page of the rings: the
 * tests lock all their memory but the pages they push out, and a huge
 * page across the end of an unlocked range stays locked (seen on 6.1:
 * half of the buffer never went out).
 */
static int guest_up(struct vblk_dev *guest, int disk_fd, char **buf,
		    char **check)
{
	vblk_init(guest);
	if (vblk_open_disk(guest, GUEST_RAM, disk_fd, 0) ||
	    !vblk_alloc(guest, 0, RINGS_SPACE))
		return -1;
	*buf = vblk_alloc(guest, PAGES * PAGE, PAGE);
	*check = vblk_alloc(guest, PAGES * PAGE, PAGE);
	if (!*buf || !*check ||
	    madvise(*buf, PAGES * PAGE, MADV_NOHUGEPAGE) ||
	    madvise(*check, PAGES * PAGE, MADV_NOHUGEPAGE))
		return -1;
	return 0;
}

FIXTURE(remote) {
	char dev[64];
	char params[128];
	struct vblk_dev guest;
	int disk_fd;
	char *buf, *check;
	pid_t cut;		/* fault_for()'s shell, until reaped */
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

/*
 * The module's parameters for the store on @dev: reconciliation off on a
 * volatile one.
 */
static void module_params(char *params, size_t len, const char *dev,
			  bool volatile_store)
{
	snprintf(params, len, "backing=%s%s", dev,
		 volatile_store ? " reconcile=0" : "");
}

FIXTURE_SETUP(remote)
{
	int ret;

	vblk_init(&self->guest);
	self->disk_fd = -1;
	self->cut = 0;
	/* An earlier test that died may have left the module on the device. */
	ts_swap_down();
	ts_remote_down();
	ts_system_quiet("rmmod brd");
	if (variant->volatile_store &&
	    ts_system("modprobe -q brd rd_nr=1 rd_size=131072"))
		TS_SETUP_SKIP("no brd RAM disk in this kernel");
	ret = ts_remote_up(variant->transport, variant->backing, "",
			   self->dev, sizeof(self->dev));
	if (ret) {
		ts_remote_down();
		ts_system_quiet("rmmod brd");
	}
	if (ret > 0)
		TS_SETUP_SKIP("no network, nvmet-tcp, nbd, nvme-cli or nbd-server here");
	ASSERT_EQ(0, ret);
	module_params(self->params, sizeof(self->params), self->dev,
		      variant->volatile_store);
	ASSERT_EQ(0, ts_swap_up_with(self->params, variant->volatile_store ?
				     "--volatile" : ""));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->disk_fd = open(DISK, O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, self->disk_fd);
	ASSERT_EQ(0, guest_up(&self->guest, self->disk_fd, &self->buf,
			      &self->check));
}

FIXTURE_TEARDOWN(remote)
{
	/* A test that failed in a fault: its end first, then the rest. */
	if (self->cut > 0)
		waitpid(self->cut, NULL, 0);
	if (self->disk_fd >= 0)
		vblk_close_disk(&self->guest, self->disk_fd, DISK_SECTORS);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	ts_remote_down();
	ts_system_quiet("rmmod brd");
}

/*
 * With swap off and the module unloaded: the store on @dev passes
 * tesseractctl check (over the network), the module loads from it with
 * @params, and the guest's disk @disk_fd, opened again as @guest, gives
 * its first PAGES blocks into *@check. 0, or -1 with what failed on
 * stderr.
 */
static int reload_and_read(struct vblk_dev *guest, const char *dev,
			   const char *params, int disk_fd, char **check)
{
	char cmd[256];
	int ret;

	snprintf(cmd, sizeof(cmd), TSCTL " check %s >/dev/null", dev);
	if (ts_system(cmd)) {
		fprintf(stderr, "# tesseractctl check %s fails\n", dev);
		return -1;
	}
	ret = ts_swap_up_on_store(params);
	if (ret) {
		fprintf(stderr, "# the module does not load: %d\n", ret);
		return -1;
	}
	vblk_init(guest);
	ret = vblk_open_disk(guest, GUEST_RAM, disk_fd, 0);
	*check = ret ? NULL : vblk_alloc(guest, PAGES * PAGE, PAGE);
	ret = *check ? vblk_io_pages(guest, VIRTIO_BLK_T_IN, 0, *check, PAGES,
				     false) : -1;
	if (ret) {
		fprintf(stderr, "# the guest's disk does not read back: %d\n",
			ret);
		return -1;
	}
	return 0;
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
	ASSERT_EQ(0, reload_and_read(&self->guest, self->dev, self->params,
				     self->disk_fd, &self->check));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));
	if (!variant->volatile_store) {
		EXPECT_LE((long long)PAGES * 9 / 10,
			  ts_vhost_counter("store_reads"));
	}
}

/* With the path down, I/O fails after about this long (remote_target.sh). */
#define FAIL_S		3
/* nvme-tcp notices a path down when a keep-alive times out: 5 s. */
#define KEEP_ALIVE_S	5
/*
 * The longest a request may wait with the path down: the transport's
 * timeouts (a keep-alive is sent up to KEEP_ALIVE_S after the path went
 * down, and times out KEEP_ALIVE_S later), three times for a slow TCG
 * host. Also the bound on a request across a short outage: TCP's
 * retransmission backoff and nvme-tcp's reconnect delay add seconds.
 */
#define BOUND_S		(3 * (2 * KEEP_ALIVE_S + FAIL_S))
/*
 * A short outage: shorter than every timeout of the transport. make soak's
 * is long enough for nvme-tcp's keep-alive to time out (within 2 *
 * KEEP_ALIVE_S: the controller reconnects) and short enough that a request
 * retransmitted after TCP's backoff still beats nbd's 20 s.
 */
#define SHORT_S		3
#define SOAK_SHORT_S	12
/* The guest's writes in a short outage: half its buffer. */
#define SHORT_WRITES	(PAGES / 2 / VBLK_IO_PAGES)

/* One request on queue 0 (a flush if @pages is 0), kicked: it, or NULL. */
static struct vblk_req *submit(struct vblk_dev *d, __u32 type, __u64 sector,
			       void *data, size_t pages)
{
	struct vblk_req *r = vblk_req_alloc(d);

	if (!r || vblk_req_submit(d, 0, r, type, sector, data, pages * PAGE,
				  0, false))
		return NULL;
	vblk_kick(d, 0);
	return r;
}

/* Whether the fault of fault_for() is over; once it is, *@cut is 0. */
static bool fault_over(pid_t *cut, int *status)
{
	if (*cut > 0 && waitpid(*cut, status, WNOHANG) == *cut)
		*cut = 0;
	return !*cut;
}

/* Until block device @dev has no request in flight, up to 30 s: 0, or -1. */
static int wait_idle(const char *dev)
{
	char path[96], inflight[32];
	unsigned int reads, writes;
	struct stat st;
	int i;

	if (stat(dev, &st))
		return -1;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/inflight",
		 major(st.st_rdev), minor(st.st_rdev));
	for (i = 0; i < 300; i++) {
		if (ts_read_str(path, inflight, sizeof(inflight)) ||
		    sscanf(inflight, "%u %u", &reads, &writes) != 2)
			return -1;
		if (!reads && !writes)
			return 0;
		usleep(100 * 1000);
	}
	return -1;
}

/* Pages that a thread pushes to swap while the test watches the fault. */
struct push {
	char *p;
	size_t pages, resident;
	double secs;
};

static void *push_in_background(void *arg)
{
	struct push *push = arg;
	double t0 = ts_now();

	push->resident = ts_push_to_swap(CGROUP, push->p, push->pages * PAGE);
	push->secs = ts_now() - t0;
	return NULL;
}

/*
 * @fault for SHORT_S (make soak: SOAK_SHORT_S), less than the transport
 * waits (nvme-tcp reconnects every second for 20 s; nbd's requests wait
 * 20 s). Before it, the host swapped half of the guest's pages out. During
 * it the guest writes those pages to its disk: on a durable store they
 * become references, which send nothing, and complete; the guest's FLUSH,
 * which must commit them to the store, waits; it reads the first blocks;
 * the host pushes the other half out and no write reaches the target (its
 * device's counts, in this same kernel, say so): reclaim waits or leaves
 * the pages under writeback in memory. Once the path is
 * back the flush and the read complete with OK, the references are in the
 * store's journal (read over the network before the module lets go of
 * them, which would commit them itself), nothing fails, every page comes
 * back, read from the target, and the module reloaded from the store gives
 * the flushed blocks back. On a volatile store the guest's writes are
 * data, which need the swapped-out pages back: they wait for the path.
 *
 * The tests of a fault share their bodies, which take the harness's
 * FIXTURE_DATA(remote) and FIXTURE_VARIANT(remote) spelled out: checkpatch
 * reads the macros as expressions.
 */
static void short_outage(struct __test_metadata *_metadata,
			 struct _test_data_remote *self,
			 const struct _fixture_variant_remote *variant,
			 enum fault fault)
{
	const unsigned int seconds = ts_soak() ? SOAK_SHORT_S : SHORT_S;
	const size_t half = PAGES / 2;
	long long errors0 = ts_swapdev_counter("write_errors");
	struct vblk_req *writes[SHORT_WRITES], *flush, *read;
	struct push push = { .p = self->buf + half * PAGE, .pages = half };
	struct ts_blk_stat before, during, after;
	/*
	 * Where the writes that arrived are counted: nvmet writes the
	 * target's device directly; nbd-server writes through its page
	 * cache, so the host's /dev/nbd0 counts what completed instead.
	 */
	const char *counter = strcmp(variant->transport, "nbd") ?
			      variant->backing : self->dev;
	long long committed, reconciled;
	bool counted, flush_waited, held;
	pthread_t pusher;
	double t0;
	size_t i, resident;
	int status = -1;

	/*
	 * Before: the first half of the guest's pages in swap, its writes
	 * done. Only those go to swap, and the second half in the outage:
	 * the test's own memory and the rest of the guest's (its rings)
	 * stay, or the test would wait for the path as well.
	 */
	ts_fill_pages(self->buf, PAGES, 2, 1);
	ASSERT_EQ(0, mlockall(MCL_CURRENT | MCL_FUTURE));
	ASSERT_EQ(0, munlock(self->buf, half * PAGE));
	ASSERT_GT(half / 20, push_out(self->buf, half));
	ASSERT_EQ(0, wait_idle(self->dev));
	/* 6.1's NVMe multipath head counts nothing: the target's, too. */
	if (counter != self->dev)
		ASSERT_EQ(0, wait_idle(counter));

	self->cut = fault_for(fault, seconds);
	ASSERT_LT(0, self->cut);
	t0 = ts_now();
	ts_blk_stat(counter, &before);
	counted = before.written > 0;
	/*
	 * The guest writes them: references complete at once; data (on a
	 * volatile store) needs the pages back, which waits for the path.
	 */
	for (i = 0; i < SHORT_WRITES; i++) {
		writes[i] = submit(&self->guest, VIRTIO_BLK_T_OUT,
				   i * VBLK_IO_PAGES * 8,
				   self->buf + i * VBLK_IO_PAGES * PAGE,
				   VBLK_IO_PAGES);
		ASSERT_NE(NULL, writes[i]);
	}
	if (variant->volatile_store) {
		EXPECT_EQ(-ETIMEDOUT, vblk_req_wait(&self->guest, 0, writes[0],
						    500));
		ASSERT_FALSE(fault_over(&self->cut, &status))
			TH_LOG("the fault ended before the writes were seen waiting");
	}
	for (i = 0; i < SHORT_WRITES; i++)
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_req_wait(&self->guest, 0,
							 writes[i],
							 BOUND_S * 1000));
	TH_LOG("the guest's writes: %.1f s", ts_now() - t0);
	/* Once they completed, it flushes (and reads the first blocks). */
	flush = submit(&self->guest, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	read = submit(&self->guest, VIRTIO_BLK_T_IN, 0, self->check, 8);
	ASSERT_NE(NULL, flush);
	ASSERT_NE(NULL, read);
	/*
	 * The host pushes the second half out, in a thread: reclaim may
	 * wait for the path. Halfway through the fault nothing may have
	 * reached the target, and the flush, which must commit the
	 * references to the store, still waits. The target's device counts
	 * what it wrote since the format, if it counts at all (brd does
	 * not). No ASSERT until the thread is joined: it writes to this
	 * frame.
	 */
	ASSERT_EQ(0, munlock(push.p, half * PAGE));
	ASSERT_EQ(0, pthread_create(&pusher, NULL, push_in_background, &push));
	while (ts_now() - t0 < seconds / 2.0)
		usleep(50 * 1000);
	ts_blk_stat(counter, &during);
	flush_waited = vblk_req_wait(&self->guest, 0, flush, 0) == -ETIMEDOUT;
	held = !fault_over(&self->cut, &status);
	if (self->cut > 0)
		waitpid(self->cut, &status, 0);
	self->cut = 0;
	pthread_join(pusher, NULL);
	TH_LOG("the push in the outage: %.1f s, %zu pages left resident",
	       push.secs, push.resident);
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("remote_target.sh cut: status %#x", status);
	if (!variant->volatile_store) {
		ASSERT_TRUE(held)
			TH_LOG("the fault ended before it was checked");
		EXPECT_TRUE(flush_waited);
	}
	EXPECT_TRUE(!counted || !held || before.written == during.written)
		TH_LOG("%lld bytes written during the outage",
		       during.written - before.written);

	/*
	 * Back: the requests complete (once TCP retransmits or nvme-tcp
	 * reconnects), the references are in the store's journal, and the
	 * rest goes out.
	 */
	t0 = ts_now();
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_req_wait(&self->guest, 0, flush,
						 BOUND_S * 1000));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_req_wait(&self->guest, 0, read,
						 BOUND_S * 1000));
	TH_LOG("after the outage: flush and read in %.1f s", ts_now() - t0);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, 8, 2, 1));
	if (!variant->volatile_store) {
		/* At least every page reconciled. */
		committed = ts_store_refs(self->dev);
		reconciled = ts_vhost_counter("reconciled_pages");
		TH_LOG("%lld pages reconciled, %lld references committed",
		       reconciled, committed);
		EXPECT_LE((long long)half * 9 / 10, reconciled);
		EXPECT_LE(reconciled, committed);
	}
	ASSERT_EQ(0, munlockall());
	resident = push_out(self->buf, PAGES);
	EXPECT_GT(PAGES / 20, resident);
	ts_blk_stat(counter, &after);
	EXPECT_TRUE(!counted || after.written - before.written >=
		    (long long)(half * PAGE * 9 / 10));
	EXPECT_EQ(errors0, ts_swapdev_counter("write_errors"));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 2, 1));
	ts_blk_stat(counter, &during);
	EXPECT_TRUE(!counted || during.read - after.read >=
		    (long long)(PAGES * PAGE * 9 / 10));
	EXPECT_EQ(0, ts_swapdev_counter("read_errors"));

	/* Reloaded from the store: the flushed blocks. */
	vblk_close(&self->guest);
	ts_swap_down();
	ASSERT_EQ(0, reload_and_read(&self->guest, self->dev, self->params,
				     self->disk_fd, &self->check));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, half, 2, 1));
}

/*
 * make check's time goes to the durable variants: the other machine's RAM
 * waits for a short outage as its disk does (swap_and_references_... has
 * it in make check).
 */
TEST_F_TIMEOUT(remote, a_short_outage_loses_nothing, 300)
{
	if (variant->volatile_store && !ts_soak())
		SKIP(return, "the RAM variant of this test runs in make soak");
	short_outage(_metadata, self, variant, LINK_DOWN);
}

TEST_F_TIMEOUT(remote, a_short_target_stop_loses_nothing, 300)
{
	if (!strcmp(variant->transport, "nbd"))
		SKIP(return, "an NBD connection dies with its server (the long test)");
	if (variant->volatile_store)
		SKIP(return, "the disk variant stops the same target");
	short_outage(_metadata, self, variant, TARGET_STOPPED);
}

/*
 * One request of @pages pages (at most VBLK_IO_PAGES) at @sector, or a
 * flush if @pages is 0, waited for up to @timeout_s: its status, or
 * -errno (-ETIMEDOUT); how long it took in @secs.
 */
static int timed_rw(struct vblk_dev *d, __u32 type, __u64 sector, void *data,
		    size_t pages, int timeout_s, double *secs)
{
	struct vblk_req *r = submit(d, type, sector, data, pages);
	double t0 = ts_now();
	int ret = r ? vblk_req_wait(d, 0, r, timeout_s * 1000) : -ENOMEM;

	*secs = ts_now() - t0;
	return ret;
}

/*
 * The remote device over @transport again after a long outage, I/O failing
 * after @fail_s: its path, as up gives it; what the script said, if it
 * failed.
 */
static int remote_reconnect(const char *transport, int fail_s, char *dev,
			    size_t len)
{
	char cmd[224], line[256];
	FILE *f;
	int ret;

	/* From the root cgroup, as target_in_root(). */
	snprintf(cmd, sizeof(cmd),
		 "echo $$ >/sys/fs/cgroup/cgroup.procs && exec " TARGET
		 " reconnect %s %d 2>&1", transport, fail_s);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	dev[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		snprintf(dev, len, "%s", line);
	}
	ret = pclose(f);
	if (WIFEXITED(ret) && !WEXITSTATUS(ret) && dev[0] == '/')
		return 0;
	fprintf(stderr, "# remote_target.sh reconnect: status %#x, %s\n", ret,
		dev);
	return -1;
}

/* Until the swap device counts more than @errors write errors, or BOUND_S. */
static long long wait_for_write_errors(long long errors)
{
	double t0 = ts_now();
	long long n;

	while ((n = ts_swapdev_counter("write_errors")) <= errors &&
	       ts_now() - t0 < BOUND_S)
		usleep(100 * 1000);
	return n;
}

/*
 * @fault stays for longer than the transport waits (FAIL_S after nvme
 * noticed: a keep-alive timed out, or the target closed the connection;
 * nbd's request timeout, or at once when its server died): swap-outs fail
 * and leave their pages in memory, counted; a guest FLUSH that cannot
 * commit its references fails with IOERR within the timeouts, and nothing
 * flushed before is lost: once the device works again (NVMe reconnects by
 * itself, NBD is connected again after the module let it go), the store
 * passes tesseractctl check and the module, loaded from it, reads every
 * flushed guest block back; a block whose flush failed holds its old or
 * its new bytes, nothing else.
 */
static void long_outage(struct __test_metadata *_metadata,
			struct _test_data_remote *self,
			const struct _fixture_variant_remote *variant,
			enum fault fault)
{
	const size_t half = PAGES / 2;
	long long errors0, errors;
	char args[32];
	size_t i, resident, old, new;
	double t0, secs;
	bool nvme;
	int status;

	/*
	 * The fixture's connection, again with I/O failing after FAIL_S;
	 * outside the test's cgroup, whose pages may go to the swap that
	 * dies: the files the script writes are tmpfs pages.
	 */
	vblk_close(&self->guest);
	ts_swap_down();
	ts_cgroup_leave(CGROUP);
	ts_remote_down();
	snprintf(args, sizeof(args), "50 %d", FAIL_S);
	ASSERT_EQ(0, ts_remote_up(variant->transport, variant->backing, args,
				  self->dev, sizeof(self->dev)));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	module_params(self->params, sizeof(self->params), self->dev,
		      variant->volatile_store);
	ASSERT_EQ(0, ts_swap_up_with(self->params, variant->volatile_store ?
				     "--volatile" : ""));
	ASSERT_EQ(0, guest_up(&self->guest, self->disk_fd, &self->buf,
			      &self->check));

	/*
	 * Before: the disk's blocks hold version 9 and the guest's pages,
	 * swapped out, version 1; the guest writes the first half of them
	 * to their blocks and flushes: references, on a durable store,
	 * committed.
	 */
	ts_fill_pages(self->check, PAGES, 1, 9);
	ASSERT_EQ(0, vblk_io_pages(&self->guest, VIRTIO_BLK_T_OUT, 0,
				   self->check, PAGES, false));
	ts_fill_pages(self->buf, PAGES, 1, 1);
	/*
	 * Only the guest's pages go to swap (and, with the path down, the
	 * check buffer's): a page of the test's own memory swapped out and
	 * touched while the path is down would be lost (SIGBUS).
	 */
	ASSERT_EQ(0, mlockall(MCL_CURRENT | MCL_FUTURE));
	ASSERT_EQ(0, munlock(self->buf, PAGES * PAGE));
	ASSERT_GT(PAGES / 20, push_out(self->buf, PAGES));
	ASSERT_EQ(0, vblk_io_pages(&self->guest, VIRTIO_BLK_T_OUT, 0,
				   self->buf, half, false));
	ASSERT_EQ(0, vblk_rw(&self->guest, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0,
			     0, false));
	errors0 = ts_swapdev_counter("write_errors");

	ASSERT_EQ(0, set_fault(fault, true));
	t0 = ts_now();
	/* Other pages cannot go out: they stay, and the failures count. */
	ts_fill_pages(self->check, PAGES, 3, 1);
	ASSERT_EQ(0, munlock(self->check, PAGES * PAGE));
	resident = ts_push_to_swap(CGROUP, self->check, PAGES * PAGE);
	errors = wait_for_write_errors(errors0);
	TH_LOG("with the %s down: %zu of %lu pages resident, %lld write errors after %.1f s",
	       fault_arg[fault], resident, PAGES, errors - errors0, ts_now() - t0);
	EXPECT_LT(errors0, errors);
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 3, 1));
	/*
	 * The guest writes the second half of its swapped pages (references
	 * in memory, or data on the local disk) and flushes: the commit
	 * cannot reach the store.
	 */
	for (i = half; i < PAGES; i += VBLK_IO_PAGES) {
		status = timed_rw(&self->guest, VIRTIO_BLK_T_OUT, i * 8,
				  self->buf + i * PAGE, VBLK_IO_PAGES, BOUND_S,
				  &secs);
		EXPECT_TRUE(status == VIRTIO_BLK_S_OK ||
			    status == VIRTIO_BLK_S_IOERR)
			TH_LOG("write at block %zu: status %d after %.1f s", i,
			       status, secs);
	}
	status = timed_rw(&self->guest, VIRTIO_BLK_T_FLUSH, 0, NULL, 0,
			  BOUND_S, &secs);
	TH_LOG("flush with the %s down: status %d after %.1f s",
	       fault_arg[fault], status, secs);
	/* On a volatile store nothing to commit: the guest's disk is local. */
	EXPECT_EQ(variant->volatile_store ? VIRTIO_BLK_S_OK :
		  VIRTIO_BLK_S_IOERR, status);
	/*
	 * A read of blocks that refer to the store fails too; on a volatile
	 * store there are none: the read is of the local disk.
	 */
	status = timed_rw(&self->guest, VIRTIO_BLK_T_IN, 0, self->check, 8,
			  BOUND_S, &secs);
	TH_LOG("read of referenced blocks with the %s down: status %d after %.1f s",
	       fault_arg[fault], status, secs);
	EXPECT_EQ(variant->volatile_store ? VIRTIO_BLK_S_OK :
		  VIRTIO_BLK_S_IOERR, status);
	if (!status)
		EXPECT_EQ(0UL, ts_bad_pages(self->check, 8, 1, 1));
	ts_fill_pages(self->check, 8, 3, 1);
	ASSERT_EQ(0, set_fault(fault, false));

	/*
	 * Back. The pages that never went out are all there. NVMe
	 * reconnects by itself: once it has, swap goes off, reading back
	 * what is in it. The guest's memory goes first, with its pages in
	 * swap unread (on NBD, dead until connected again, swapoff would
	 * poison them); the disk's references keep their blocks. NBD is
	 * connected again once the module let go of it.
	 */
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 3, 1));
	ASSERT_EQ(0, munlockall());
	nvme = !strcmp(variant->transport, "nvme");
	if (nvme)
		ASSERT_EQ(0, remote_reconnect(variant->transport, FAIL_S,
					      self->dev, sizeof(self->dev)));
	vblk_close(&self->guest);
	ts_swap_down();
	if (!nvme)
		ASSERT_EQ(0, remote_reconnect(variant->transport, FAIL_S,
					      self->dev, sizeof(self->dev)));
	module_params(self->params, sizeof(self->params), self->dev,
		      variant->volatile_store);
	ASSERT_EQ(0, reload_and_read(&self->guest, self->dev, self->params,
				     self->disk_fd, &self->check));
	/* Flushed: version 1. */
	EXPECT_EQ(0UL, ts_bad_pages(self->check, half, 1, 1));
	/* Not flushed: each block old (9) or new (1). */
	old = 0;
	new = 0;
	for (i = half; i < PAGES; i++) {
		const char *p = self->check + i * PAGE;

		if (ts_check_page(p, 1, i, 9))
			old++;
		else if (ts_check_page(p, 1, i, 1))
			new++;
	}
	TH_LOG("blocks whose flush failed: %zu old, %zu new", old, new);
	EXPECT_EQ(PAGES - half, old + new);
	EXPECT_EQ(0, ts_swapdev_counter("read_errors"));
}

/*
 * make check has one long fault per transport, the one each notices its
 * own way: NVMe's path down (a keep-alive times out) and NBD's stopped
 * server (the connection ends at once). What follows for the module (I/O
 * failing after FAIL_S) is the same under the other fault, which make
 * soak adds, with the other machine's RAM, which fails as its disk does
 * with nothing to commit.
 */
static bool long_fault_in_check(const struct _fixture_variant_remote *variant,
				enum fault fault)
{
	if (variant->volatile_store)
		return false;
	return fault == (strcmp(variant->transport, "nbd") ? LINK_DOWN :
			 TARGET_STOPPED);
}

TEST_F_TIMEOUT(remote, a_long_outage_fails_cleanly_and_loses_nothing_flushed,
	       600)
{
	if (!long_fault_in_check(variant, LINK_DOWN) && !ts_soak())
		SKIP(return, "this variant of the test runs in make soak");
	long_outage(_metadata, self, variant, LINK_DOWN);
}

TEST_F_TIMEOUT(remote, a_stopped_target_fails_cleanly_and_loses_nothing_flushed,
	       600)
{
	if (!long_fault_in_check(variant, TARGET_STOPPED) && !ts_soak())
		SKIP(return, "this variant of the test runs in make soak");
	long_outage(_metadata, self, variant, TARGET_STOPPED);
}

TEST_HARNESS_MAIN
