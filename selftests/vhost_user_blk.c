// SPDX-License-Identifier: GPL-2.0
/*
 * tesseract-vhost-user-blk: the selftests' guest driver as a vhost-user
 * front-end (vblk_vhost_user.h), speaking to the daemon over its socket as
 * QEMU does, with the data plane in the kernel's /dev/vhost-blk.
 *
 * - data_path: requests on two rings reach the image, through the kernel
 *   device (its counters), and the configuration space describes the disk.
 * - stop_and_resume: a stop (GET_VRING_BASE, as at a VM pause) answers the
 *   index every taken request was completed up to; the rings resume there.
 * - restart.under_io: the daemon is killed with a slow write in flight and
 *   later requests completed out of order; the front-end takes, as QEMU
 *   does, the used index it sees at the hang-up. The restarted daemon must
 *   resume where the device really stopped: no request lost, none twice.
 * - image_lock: a second daemon on the same image waits for the first.
 * - nested.qemu_guest: the host's QEMU boots this kernel again with a
 *   vhost-user-blk-pci disk served by the daemon; what it writes is in
 *   the image, and double paging in it is reconciled. Variant qemu starts
 *   QEMU with the admin guide's command line, variant libvirt through
 *   libvirtd from the admin guide's example domain.
 * - hostile.front_end: malformed, oversized, truncated and out-of-order
 *   messages, bad descriptors and overlapping regions are refused with a
 *   log line; the daemon goes on serving.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"
#include "vblk_vhost_user.h"

#define BDEV		"/dev/vdb"
#define SOCK		"/run/tsvu.sock"
#define SOCK2		"/run/tsvu2.sock"
#define LOG		"/run/tsvu.log"
#define RAM_SIZE	(16UL << 20)
#define SECTOR		512
#define QSIZE		64
#define SLOW_DM		"tsvu-slow"

static const __u64 features = (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
			      (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			      (1ULL << VIRTIO_BLK_F_FLUSH) |
			      (1ULL << VIRTIO_BLK_F_MQ);

static void module_ready(void)
{
	if (!ts_module_loaded())
		ts_module_load("");
}

static __u64 bdev_bytes(const char *path)
{
	__u64 bytes = 0;
	int fd = open(path, O_RDONLY);

	if (fd >= 0) {
		ioctl(fd, BLKGETSIZE64, &bytes);
		close(fd);
	}
	return bytes;
}

/* The daemon's log, into the test's output: what it did and refused. */
static void show_log(struct __test_metadata *_metadata)
{
	char line[512];
	FILE *f = fopen(LOG, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		TH_LOG("daemon: %s", line);
	}
	fclose(f);
}

static bool log_has(const char *text)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(LOG, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text);
	fclose(f);
	return found;
}

/* Start the daemon on @image with @extra arguments (NULL ended). */
static pid_t start_daemon(const char *image, const char *const *extra)
{
	char blk[256];
	const char *argv[16] = { "tesseract-vhost-user-blk",
				 "--socket-path=" SOCK };
	int n = 2;

	snprintf(blk, sizeof(blk), "--blk-file=%s", image);
	argv[n++] = blk;
	while (extra && *extra && n < 15)
		argv[n++] = *extra++;
	argv[n] = NULL;
	return vblk_vu_spawn(argv, LOG);
}

/*
 * Daemons a failed test left behind (they hold the image and the socket):
 * every process named so, killed.
 */
static void kill_leftovers(void)
{
	struct dirent *de;
	DIR *proc = opendir("/proc");

	while (proc && (de = readdir(proc))) {
		char path[64], comm[32] = "";
		pid_t pid = atoi(de->d_name);
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) &&
		    !strncmp(comm, "tesseract-vhost", 15)) {
			int i;

			kill(pid, SIGKILL);
			/* Not always our child: gone once its release ran. */
			waitpid(pid, NULL, WNOHANG);
			for (i = 0; i < 1000 && !kill(pid, 0); i++) {
				usleep(10000);
				waitpid(pid, NULL, WNOHANG);
			}
		}
		fclose(f);
	}
	if (proc)
		closedir(proc);
	ts_dm_remove(SLOW_DM);
	unlink(SOCK2);
}

static bool alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

/* SIGTERM, and its clean exit. */
static int stop_daemon(pid_t pid)
{
	int status;

	/* kill(-1) would signal every process: never for "no daemon". */
	if (pid <= 0)
		return -1;
	if (kill(pid, SIGTERM) || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void fill(void *buf, size_t len, unsigned int seed)
{
	unsigned int *p = buf;
	size_t i;

	for (i = 0; i < len / sizeof(*p); i++)
		p[i] = seed * 2654435761u + i;
}

FIXTURE(daemon) {
	pid_t pid, second;
	struct vblk_dev d;
	__u64 bytes;
};

FIXTURE_SETUP(daemon)
{
	static const char * const args[] = { "--serial=tsvu-serial",
					     "--num-queues=2", NULL };

	kill_leftovers();
	module_ready();
	unlink(LOG);
	vblk_init(&self->d);
	self->pid = -1;
	self->second = -1;
	self->bytes = bdev_bytes(BDEV);
	if (!self->bytes)
		TS_SETUP_SKIP("no %s", BDEV);
	self->pid = start_daemon(BDEV, args);
	ASSERT_LT(0, self->pid);
	ASSERT_EQ(0, vblk_vu_connect(&self->d, SOCK, RAM_SIZE, 10000));
}

FIXTURE_TEARDOWN(daemon)
{
	vblk_close(&self->d);
	if (self->pid > 0)
		EXPECT_EQ(0, stop_daemon(self->pid));
	if (self->second > 0)
		EXPECT_EQ(0, stop_daemon(self->second));
	show_log(_metadata);
	ts_module_unload();
}

TEST_F(daemon, data_path)
{
	struct virtio_blk_config cfg;
	char id[VIRTIO_BLK_ID_BYTES + 1] = "";
	void *out, *in;
	unsigned int qi;
	int disk;

	ASSERT_EQ(0, vblk_vu_get_config(&self->d, &cfg, sizeof(cfg)));
	EXPECT_EQ(self->bytes / SECTOR, cfg.capacity);
	EXPECT_EQ(2, (int)cfg.num_queues);
	EXPECT_LT(0, (int)cfg.seg_max);
	EXPECT_EQ(512, (int)cfg.blk_size);

	ASSERT_EQ(0, vblk_setup(&self->d, 2, QSIZE, features));
	/* The kernel device is serving: it is in debugfs, as the only one. */
	EXPECT_EQ(1, ts_vhost_devices(NULL, 0));
	out = vblk_alloc(&self->d, 64 << 10, 4096);
	in = vblk_alloc(&self->d, 64 << 10, 4096);
	ASSERT_TRUE(out && in);
	for (qi = 0; qi < 2; qi++) {
		fill(out, 64 << 10, qi + 1);
		memset(in, 0, 64 << 10);
		ASSERT_EQ(VIRTIO_BLK_S_OK,
			  vblk_rw(&self->d, qi, VIRTIO_BLK_T_OUT, qi * 1024,
				  out, 64 << 10, 4096, qi));
		ASSERT_EQ(VIRTIO_BLK_S_OK,
			  vblk_rw(&self->d, qi, VIRTIO_BLK_T_IN, qi * 1024,
				  in, 64 << 10, 0, false));
		EXPECT_EQ(0, memcmp(in, out, 64 << 10));
	}
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_rw(&self->d, 0, VIRTIO_BLK_T_FLUSH, 0,
					   NULL, 0, 0, false));
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_rw(&self->d, 1, VIRTIO_BLK_T_GET_ID, 0,
					   in, VIRTIO_BLK_ID_BYTES, 0, false));
	memcpy(id, in, VIRTIO_BLK_ID_BYTES);
	EXPECT_STREQ("tsvu-serial", id);
	EXPECT_EQ(2, ts_vhost_counter("requests_out"));
	EXPECT_LE(2, ts_vhost_counter("requests_in"));

	/* What the guest wrote is in the image, for anyone to read. */
	vblk_close(&self->d);
	disk = open(BDEV, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, disk);
	in = aligned_alloc(4096, 64 << 10);
	ASSERT_NE(NULL, in);
	ASSERT_EQ(64 << 10, pread(disk, in, 64 << 10, 1024 * SECTOR));
	out = malloc(64 << 10);
	fill(out, 64 << 10, 2);
	EXPECT_EQ(0, memcmp(in, out, 64 << 10));
	free(in);
	free(out);
	close(disk);
}

/*
 * A VM pause: the front-end stops every ring and keeps the answers, then
 * starts them again at those indexes.
 */
TEST_F(daemon, stop_and_resume)
{
	struct vu_vring_state st;
	__u16 bases[2];
	void *buf;
	unsigned int qi, i;

	ASSERT_EQ(0, vblk_setup(&self->d, 2, QSIZE, features));
	buf = vblk_alloc(&self->d, 4096, 4096);
	ASSERT_NE(NULL, buf);
	for (i = 0; i < 5; i++)
		for (qi = 0; qi < 2; qi++)
			ASSERT_EQ(VIRTIO_BLK_S_OK,
				  vblk_rw(&self->d, qi, VIRTIO_BLK_T_IN,
					  8 * i, buf, 4096, 0, false));
	for (qi = 0; qi < 2; qi++) {
		st.index = qi;
		st.num = 0;
		ASSERT_EQ((int)sizeof(st),
			  vblk_vu_call(&self->d, VU_GET_VRING_BASE, &st,
				       sizeof(st), -1, &st, sizeof(st), NULL));
		EXPECT_EQ(5, (int)st.num);
		EXPECT_EQ(5, le16toh(self->d.q[qi].vring.used->idx));
		bases[qi] = st.num;
	}
	/* Stopped: the kernel has the image detached. */
	EXPECT_EQ(0, ts_vhost_counter("in_flight"));
	for (qi = 0; qi < 2; qi++)
		ASSERT_EQ(0, vblk_queue_start(&self->d, &self->d.q[qi],
					      bases[qi]));
	for (qi = 0; qi < 2; qi++)
		EXPECT_EQ(VIRTIO_BLK_S_OK,
			  vblk_rw(&self->d, qi, VIRTIO_BLK_T_IN, 0, buf, 4096,
				  0, false));
	EXPECT_EQ(12, ts_vhost_counter("requests_in"));
}

/*
 * The front-end truncates guest memory under a stopped ring, then starts it
 * again: the daemon, which reads the ring's used index then, must not die
 * of SIGBUS; it ends the session and serves the next.
 */
TEST_F(daemon, guest_memory_shrinks)
{
	__u16 base = 0;
	int ret;

	self->d.vu_inflight_queues = 1;
	self->d.vu_inflight_qsize = QSIZE;
	ASSERT_EQ(0, vblk_setup(&self->d, 1, QSIZE, features));
	ASSERT_EQ(0, vblk_set_backend(&self->d, -1));
	ASSERT_EQ(0, ftruncate(self->d.ram_fd, 0));
	ret = vblk_queue_start(&self->d, &self->d.q[0], base);
	EXPECT_NE(0, ret);
	EXPECT_TRUE(alive(self->pid));
	EXPECT_TRUE(log_has("shrank under us"));
	/* Guest RAM is gone: no unmapping of it at close. */
	munmap(self->d.ram, self->d.ram_size);
	self->d.ram = NULL;
	vblk_close(&self->d);
	ASSERT_EQ(0, vblk_vu_connect(&self->d, SOCK, RAM_SIZE, 10000));
	ASSERT_EQ(0, vblk_setup(&self->d, 1, QSIZE, features));
}

/*
 * A second daemon on an image in use waits for it: the lock is how a
 * restarted daemon knows that the kernel device of the one before has
 * completed all it took.
 */
TEST_F(daemon, image_lock)
{
	static const char * const argv[] = {
		"tesseract-vhost-user-blk", "--socket-path=" SOCK2,
		"--blk-file=" BDEV, NULL
	};
	struct vblk_dev d2;
	int i;

	ASSERT_EQ(0, vblk_setup(&self->d, 1, QSIZE, features));
	self->second = vblk_vu_spawn(argv, LOG);
	ASSERT_LT(0, self->second);
	for (i = 0; i < 500 && !log_has("in use by another back-end"); i++)
		usleep(10000);
	EXPECT_TRUE(log_has("in use by another back-end"));
	EXPECT_TRUE(alive(self->second));
	/* Not listening yet. */
	EXPECT_NE(0, access(SOCK2, F_OK));

	vblk_close(&self->d);
	EXPECT_EQ(0, stop_daemon(self->pid));
	self->pid = -1;
	ASSERT_EQ(0, vblk_vu_connect(&d2, SOCK2, RAM_SIZE, 10000));
	ASSERT_EQ(0, vblk_setup(&d2, 1, QSIZE, features));
	EXPECT_TRUE(log_has("the other back-end is gone"));
	vblk_close(&d2);
}

/*
 * BDEV behind dm-delay: writes take @write_ms, reads none. Its path in
 * @path; 0 or -errno.
 */
static int slow_writes(unsigned int write_ms, char *path, size_t len)
{
	char table[256];
	__u64 sectors = bdev_bytes(BDEV) / SECTOR;

	snprintf(table, sizeof(table), "0 %llu delay %s 0 0 %s 0 %u",
		 (unsigned long long)sectors, BDEV, BDEV, write_ms);
	return ts_dm_create(SLOW_DM, table, path, len) ? -EOPNOTSUPP : 0;
}

#define READS	8

static __u16 used_idx(struct vblk_dev *d)
{
	return le16toh(__atomic_load_n(&d->q[0].vring.used->idx,
				       __ATOMIC_ACQUIRE));
}

FIXTURE(restart) {
	pid_t first, second;
	struct vblk_dev d;
	char path[64];
};

FIXTURE_SETUP(restart)
{
	kill_leftovers();
	module_ready();
	unlink(LOG);
	vblk_init(&self->d);
	self->first = -1;
	self->second = -1;
	if (!bdev_bytes(BDEV))
		TS_SETUP_SKIP("no %s", BDEV);
	if (slow_writes(5000, self->path, sizeof(self->path)))
		TS_SETUP_SKIP("no device-mapper delay target");
}

FIXTURE_TEARDOWN(restart)
{
	vblk_close(&self->d);
	if (self->first > 0) {
		kill(self->first, SIGKILL);
		waitpid(self->first, NULL, 0);
	}
	if (self->second > 0)
		EXPECT_EQ(0, stop_daemon(self->second));
	show_log(_metadata);
	ts_dm_remove(SLOW_DM);
	ts_module_unload();
}

/*
 * The daemon dies while a slow write is in flight and later reads have
 * completed. The front-end, as QEMU does when the socket closes, takes the
 * used index it sees as the next ring base, though the device goes on to
 * complete the write while it is released. The restarted daemon must
 * resume at the used index that guest memory holds once the old device is
 * gone: the write completed once, no read done again, and the next write,
 * to the same block, is what the block holds.
 */
TEST_F_TIMEOUT(restart, under_io, 120)
{
	struct vblk_req *write1, *write2, *reads[READS];
	static const char * const args[] = { "--num-queues=1", NULL };
	struct vblk_dev *d = &self->d;
	void *a, *b, *rbuf, *check;
	struct pollfd call;
	__u16 stale_base;
	unsigned int i;
	__u64 count;

	self->first = start_daemon(self->path, args);
	ASSERT_LT(0, self->first);
	ASSERT_EQ(0, vblk_vu_connect(d, SOCK, RAM_SIZE, 10000));
	d->vu_inflight_queues = 1;
	d->vu_inflight_qsize = QSIZE;
	ASSERT_EQ(0, vblk_setup(d, 1, QSIZE, features));
	a = vblk_alloc(d, 4096, 4096);
	b = vblk_alloc(d, 4096, 4096);
	rbuf = vblk_alloc(d, READS * 4096, 4096);
	check = vblk_alloc(d, 4096, 4096);
	write1 = vblk_req_alloc(d);
	write2 = vblk_req_alloc(d);
	ASSERT_TRUE(a && b && rbuf && check && write1 && write2);
	fill(a, 4096, 11);
	fill(b, 4096, 22);
	call.fd = d->q[0].call_fd;
	call.events = POLLIN;

	/* avail[0]: the slow write; avail[1..8]: reads that overtake it. */
	ASSERT_EQ(0, vblk_req_submit(d, 0, write1, VIRTIO_BLK_T_OUT, 64, a,
				     4096, 0, false));
	for (i = 0; i < READS; i++) {
		reads[i] = vblk_req_alloc(d);
		ASSERT_NE(NULL, reads[i]);
		ASSERT_EQ(0, vblk_req_submit(d, 0, reads[i], VIRTIO_BLK_T_IN,
					     1024 + 8 * i,
					     (char *)rbuf + 4096 * i, 4096, 0,
					     false));
	}
	vblk_kick(d, 0);
	for (i = 0; i < READS; i++)
		ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_req_wait(d, 0, reads[i], 10000));
	/* The hang-up, as QEMU sees it: the ring base is the used index. */
	stale_base = used_idx(d);
	EXPECT_EQ(READS, stale_base);
	/* The write is still in flight when its owner dies. */
	ASSERT_FALSE(write1->done);
	ASSERT_EQ(1, ts_vhost_counter("in_flight"));
	ASSERT_EQ(0, kill(self->first, SIGKILL));
	/* At once: it must wait for the image, until the old device is gone. */
	self->second = start_daemon(self->path, args);
	ASSERT_LT(0, self->second);
	ASSERT_EQ(self->first, waitpid(self->first, NULL, 0));
	self->first = -1;

	/* The old device completed the write while it was released. */
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_req_wait(d, 0, write1, 20000));
	/* Its interrupt, as QEMU's notifier was down, is not the guest's. */
	while (read(d->q[0].call_fd, &count, sizeof(count)) > 0)
		;
	/* The guest writes the block again, with no back-end yet. */
	ASSERT_EQ(0, vblk_req_submit(d, 0, write2, VIRTIO_BLK_T_OUT, 64, b,
				     4096, 0, false));

	ASSERT_EQ(0, vblk_vu_reconnect(d, SOCK, &stale_base, 10000));
	/* The guest hears of the request completed behind its back. */
	EXPECT_EQ(1, poll(&call, 1, 5000));
	vblk_kick(d, 0);
	/*
	 * One used entry per request posted: a request taken again would
	 * add one (the driver would not know its head: checked before).
	 */
	for (i = 0; i < 500 && used_idx(d) != READS + 2; i++)
		usleep(10000);
	usleep(500000);
	EXPECT_EQ(0, ts_vhost_counter("broken_queues"));
	ASSERT_EQ(READS + 2, used_idx(d));
	EXPECT_EQ(READS + 2, d->q[0].avail_idx);
	EXPECT_TRUE(log_has("resuming at used index 9, not 8"));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_req_wait(d, 0, write2, 5000));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_rw(d, 0, VIRTIO_BLK_T_IN, 64, check,
					   4096, 0, false));
	EXPECT_EQ(0, memcmp(check, b, 4096));
}

/* ---- hostile front-ends ---- */

static int raw_connect(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX, .sun_path = SOCK };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int i;

	for (i = 0; fd >= 0 && i < 1000; i++) {
		if (!connect(fd, (struct sockaddr *)&addr, sizeof(addr)))
			return fd;
		usleep(10000);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A message as given: @claimed in the header, @size bytes sent. */
static int raw_send(int sock, __u32 req, __u32 flags, const void *p,
		    __u32 size, __u32 claimed, const int *fds,
		    unsigned int nfds)
{
	struct vu_header hdr = { .request = req, .flags = flags,
				 .size = claimed };

	return vblk_vu_send(sock, &hdr, p, size, fds, nfds);
}

/*
 * The answer to a request sent with NEED_REPLY: 0 success, 1 refused,
 * -1 the connection closed (or the answer was malformed).
 */
static int raw_ack(int sock)
{
	struct vu_header hdr;
	__u64 status;
	char ans[sizeof(hdr) + sizeof(status)];
	struct timeval tv = { .tv_sec = 10 };

	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (recv(sock, ans, sizeof(ans), MSG_WAITALL) != sizeof(ans))
		return -1;
	memcpy(&hdr, ans, sizeof(hdr));
	memcpy(&status, ans + sizeof(hdr), sizeof(status));
	if (hdr.size != sizeof(status))
		return -1;
	return status ? 1 : 0;
}

/*
 * True once the daemon has closed @sock: an end of file, or a reset when
 * it left some of what we sent unread.
 */
static bool closed_by_daemon(int sock)
{
	struct timeval tv = { .tv_sec = 10 };
	ssize_t n;
	char c;

	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(sock, &c, 1, 0);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

#define ACK	(VU_VERSION | VU_FLAG_NEED_REPLY)

/* A connection that owns the device and negotiated REPLY_ACK. */
static int owned_session(struct __test_metadata *_metadata)
{
	__u64 proto = 1ULL << VU_PROTOCOL_F_REPLY_ACK;
	int sock = raw_connect();

	if (sock < 0)
		return -1;
	if (raw_send(sock, VU_SET_PROTOCOL_FEATURES, VU_VERSION, &proto,
		     sizeof(proto), sizeof(proto), NULL, 0) ||
	    raw_send(sock, VU_SET_OWNER, ACK, NULL, 0, 0, NULL, 0) ||
	    raw_ack(sock) != 0) {
		close(sock);
		return -1;
	}
	return sock;
}

/* Each refused with REPLY_ACK's failure, the session going on. */
static void refused_requests(struct __test_metadata *_metadata, int ram_fd)
{
	struct vu_mem_table t = { .nregions = 2 };
	struct vu_vring_state st;
	struct vu_vring_addr addr = { 0 };
	__u64 u;
	int sock, pipefd[2], fds[2];
	struct vu_inflight in = { .mmap_size = 1, .num_queues = 1,
				  .queue_size = 64 };

	sock = owned_session(_metadata);
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, pipe(pipefd));

	/* Regions overlapping in guest addresses. */
	t.regions[0] = (struct vu_region){ 0, 1 << 20, 0x10000000, 0 };
	t.regions[1] = (struct vu_region){ 0x80000, 1 << 20, 0x20000000, 0 };
	fds[0] = ram_fd;
	fds[1] = ram_fd;
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, ACK, &t,
			      8 + 2 * sizeof(t.regions[0]),
			      8 + 2 * sizeof(t.regions[0]), fds, 2));
	EXPECT_EQ(1, raw_ack(sock));
	/* Overlapping in user addresses. */
	t.regions[1] = (struct vu_region){ 0x200000, 1 << 20, 0x10080000, 0 };
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, ACK, &t,
			      8 + 2 * sizeof(t.regions[0]),
			      8 + 2 * sizeof(t.regions[0]), fds, 2));
	EXPECT_EQ(1, raw_ack(sock));
	/* Two regions, one descriptor. */
	t.regions[1] = (struct vu_region){ 0x200000, 1 << 20, 0x20000000, 0 };
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, ACK, &t,
			      8 + 2 * sizeof(t.regions[0]),
			      8 + 2 * sizeof(t.regions[0]), fds, 1));
	EXPECT_EQ(1, raw_ack(sock));
	/* A region past the end of its memfd (it would fault when touched). */
	t.nregions = 1;
	t.regions[0].size = 64 << 20;
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, ACK, &t,
			      8 + sizeof(t.regions[0]),
			      8 + sizeof(t.regions[0]), fds, 1));
	EXPECT_EQ(1, raw_ack(sock));
	/* A pipe for memory. */
	t.regions[0].size = 1 << 20;
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, ACK, &t,
			      8 + sizeof(t.regions[0]),
			      8 + sizeof(t.regions[0]), pipefd, 1));
	EXPECT_EQ(1, raw_ack(sock));
	/* Nine regions. */
	t.nregions = 9;
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, ACK, &t,
			      8 + sizeof(t.regions[0]),
			      8 + sizeof(t.regions[0]), fds, 1));
	EXPECT_EQ(1, raw_ack(sock));

	/* Rings: out of range, a size not a power of 2, too large. */
	st = (struct vu_vring_state){ 200, 64 };
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_NUM, ACK, &st, sizeof(st),
			      sizeof(st), NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	st = (struct vu_vring_state){ 0, 100 };
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_NUM, ACK, &st, sizeof(st),
			      sizeof(st), NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	st = (struct vu_vring_state){ 0, 65536 };
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_NUM, ACK, &st, sizeof(st),
			      sizeof(st), NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	/* Dirty logging asked of a ring. */
	addr.flags = 1;
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_ADDR, ACK, &addr,
			      sizeof(addr), sizeof(addr), NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	/* A kick without its descriptor, one with two. */
	u = 0;
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_KICK, ACK, &u, sizeof(u),
			      sizeof(u), NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_KICK, ACK, &u, sizeof(u),
			      sizeof(u), pipefd, 2));
	EXPECT_EQ(1, raw_ack(sock));
	/* Polling (no kick fd), unknown bits in the index word. */
	u = VU_VRING_NOFD;
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_KICK, ACK, &u, sizeof(u),
			      sizeof(u), NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	u = 1ULL << 40;
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_CALL, ACK, &u, sizeof(u),
			      sizeof(u), pipefd, 1));
	EXPECT_EQ(1, raw_ack(sock));
	/* Features never offered are ignored, as QEMU passes some on. */
	u = 1ULL << 63;
	ASSERT_EQ(0, raw_send(sock, VU_SET_FEATURES, ACK, &u, sizeof(u),
			      sizeof(u), NULL, 0));
	EXPECT_EQ(0, raw_ack(sock));
	/* A second owner; a read-only config. */
	ASSERT_EQ(0, raw_send(sock, VU_SET_OWNER, ACK, NULL, 0, 0, NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	ASSERT_EQ(0, raw_send(sock, VU_SET_CONFIG, ACK, &in, 16, 16, NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	/* An in-flight region of the wrong size; an unknown request. */
	ASSERT_EQ(0, raw_send(sock, VU_SET_INFLIGHT_FD, ACK, &in, sizeof(in),
			      sizeof(in), &ram_fd, 1));
	EXPECT_EQ(1, raw_ack(sock));
	ASSERT_EQ(0, raw_send(sock, 55, ACK, NULL, 0, 0, NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	/* A size that does not match the request's. */
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_NUM, ACK, &u, sizeof(u),
			      sizeof(u), NULL, 0));
	EXPECT_EQ(1, raw_ack(sock));
	close(pipefd[0]);
	close(pipefd[1]);
	close(sock);
}

/* Each ends the session: the stream cannot be trusted after it. */
static void fatal_requests(struct __test_metadata *_metadata, int ram_fd)
{
	struct vu_config config = { .offset = 200, .size = 100 };
	struct vu_header hdr;
	char big[64] = { 0 };
	int fds[16], sock, i;
	__u64 u = 0;

	/* Another protocol version. */
	sock = raw_connect();
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, raw_send(sock, VU_GET_FEATURES, 2, NULL, 0, 0, NULL, 0));
	EXPECT_TRUE(closed_by_daemon(sock));
	close(sock);
	/* A payload larger than any request's. */
	sock = raw_connect();
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, VU_VERSION, big,
			      sizeof(big), 1 << 20, NULL, 0));
	EXPECT_TRUE(closed_by_daemon(sock));
	close(sock);
	/* A payload cut short by a hang-up. */
	sock = raw_connect();
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, raw_send(sock, VU_SET_FEATURES, VU_VERSION, &u, 4, 8,
			      NULL, 0));
	close(sock);
	/* More descriptors than a message carries. */
	sock = raw_connect();
	ASSERT_LE(0, sock);
	for (i = 0; i < 16; i++)
		fds[i] = ram_fd;
	ASSERT_EQ(0, raw_send(sock, VU_SET_MEM_TABLE, VU_VERSION, big, 8, 8,
			      fds, 16));
	EXPECT_TRUE(closed_by_daemon(sock));
	close(sock);
	/* Configuring before owning, with no REPLY_ACK to say so. */
	sock = raw_connect();
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, raw_send(sock, VU_SET_VRING_NUM, VU_VERSION, big, 8, 8,
			      NULL, 0));
	EXPECT_TRUE(closed_by_daemon(sock));
	close(sock);
	/* A config read larger than the space has: an empty answer. */
	sock = raw_connect();
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, raw_send(sock, VU_GET_CONFIG, VU_VERSION, &config,
			      12 + 100, 12 + 100, NULL, 0));
	ASSERT_EQ((ssize_t)sizeof(hdr),
		  recv(sock, &hdr, sizeof(hdr), MSG_WAITALL));
	EXPECT_EQ(0, (int)hdr.size);
	close(sock);
}

FIXTURE(hostile) {
	pid_t pid;
	int ram_fd;
};

FIXTURE_SETUP(hostile)
{
	static const char * const args[] = { "--num-queues=1", NULL };

	kill_leftovers();
	module_ready();
	unlink(LOG);
	self->pid = -1;
	self->ram_fd = -1;
	if (!bdev_bytes(BDEV))
		TS_SETUP_SKIP("no %s", BDEV);
	self->pid = start_daemon(BDEV, args);
	ASSERT_LT(0, self->pid);
	self->ram_fd = memfd_create("hostile", MFD_CLOEXEC);
	ASSERT_LE(0, self->ram_fd);
	ASSERT_EQ(0, ftruncate(self->ram_fd, 4 << 20));
}

FIXTURE_TEARDOWN(hostile)
{
	if (self->ram_fd >= 0)
		close(self->ram_fd);
	if (self->pid > 0)
		EXPECT_EQ(0, stop_daemon(self->pid));
	show_log(_metadata);
	ts_module_unload();
}

TEST_F(hostile, front_end)
{
	struct vblk_dev d;
	void *buf;

	refused_requests(_metadata, self->ram_fd);
	EXPECT_TRUE(alive(self->pid));
	fatal_requests(_metadata, self->ram_fd);
	EXPECT_TRUE(alive(self->pid));
	EXPECT_TRUE(log_has("regions overlap in guest addresses"));
	EXPECT_TRUE(log_has("regions overlap in user addresses"));
	EXPECT_TRUE(log_has("runs past the end of its fd"));
	EXPECT_TRUE(log_has("more than any request has"));
	EXPECT_TRUE(log_has("ignoring features 0x8000000000000000"));

	/* And after all that, a proper front-end is served. */
	ASSERT_EQ(0, vblk_vu_connect(&d, SOCK, RAM_SIZE, 10000));
	ASSERT_EQ(0, vblk_setup(&d, 1, QSIZE, features));
	buf = vblk_alloc(&d, 4096, 4096);
	ASSERT_NE(NULL, buf);
	EXPECT_EQ(VIRTIO_BLK_S_OK, vblk_rw(&d, 0, VIRTIO_BLK_T_IN, 0, buf,
					   4096, 0, false));
	vblk_close(&d);
}

/* ---- a real guest: QEMU's vhost-user-blk-pci ---- */

#define NESTED_INITRD	"/tmp/nested.cpio.gz"
#define NESTED_CONSOLE	"/run/nested-console.log"
#define NESTED_LINE	"tesseract-nested\n"
#define NESTED_STORE	"/dev/vdc"
#define NESTED_DISK_ID	"4242"	/* hex, as tesseractctl takes it */
#define NESTED_CGROUP	"ts-nested-qemu"
/* Double paging (tools/vm/nested-dp.c): where, how much, the signals. */
#define DP_OFFSET	(8UL << 20)
#define DP_PAGES	4096UL
#define DP_SIGNAL	(4UL << 20)

/*
 * TS_NESTED_RECONCILE=0 (make demo VM=1 runs both): the daemon runs with
 * --no-reconcile, and double paging must then show the waste: nothing
 * reconciled, every page swapped in.
 */
static bool reconcile_off(void)
{
	const char *v = getenv("TS_NESTED_RECONCILE");

	return v && !strcmp(v, "0");
}

#define NESTED_DOMAIN	"ts-nested"
#define NESTED_XML	"/run/ts-nested.xml"
/* A command as libvirt runs QEMU: user libvirt-qemu, with its groups. */
#define AS_LIBVIRT_QEMU	"setpriv --reuid=libvirt-qemu --regid=libvirt-qemu --init-groups "

/* tools/vm/libvirtd.sh start or stop: its exit status. */
static int libvirtd_sh(const char *action)
{
	const char *dir = getenv("TS_DIR") ?: ".";
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "sh %s/tools/vm/libvirtd.sh %s", dir,
		 action);
	return ts_system(cmd);
}

FIXTURE(nested) {
	pid_t daemon;
	bool libvirtd;			/* started by the test */
	char kernel[256];
	char cgroup[512];		/* QEMU's, for memory.reclaim */
};

/*
 * How the nested guest is started: by the test with the admin guide's QEMU
 * command line, or by libvirtd from the admin guide's example domain
 * (tools/vm/libvirt-domain.py says what the test adapts, and why).
 */
FIXTURE_VARIANT(nested) {
	bool libvirt;
};

FIXTURE_VARIANT_ADD(nested, qemu) {
	.libvirt = false,
};

FIXTURE_VARIANT_ADD(nested, libvirt) {
	.libvirt = true,
};

/* Whether the running kernel is older than @major.@minor. */
static bool older_than(const struct utsname *u, int major, int minor)
{
	int ma, mi;

	if (sscanf(u->release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma < major || (ma == major && mi < minor);
}

FIXTURE_SETUP(nested)
{
	static const char * const args[] = { "--num-queues=2",
					     "--disk-id=0x" NESTED_DISK_ID,
					     "--socket-mode=0660", NULL };
	static const char * const args_off[] = { "--num-queues=2",
						 "--disk-id=0x" NESTED_DISK_ID,
						 "--socket-mode=0660",
						 "--no-reconcile", NULL };
	const char *dir = getenv("TS_DIR");
	char cmd[1024], self_dir[512];
	struct group *kvm;
	struct utsname u;
	ssize_t n;
	gid_t egid;

	kill_leftovers();
	module_ready();
	unlink(LOG);
	unlink(NESTED_CONSOLE);
	self->daemon = -1;
	self->libvirtd = false;
	snprintf(self->cgroup, sizeof(self->cgroup), NESTED_CGROUP);
	/* Its modules are not at /lib/modules: the nested guest needs them. */
	if (ts_debug_kernel())
		TS_SETUP_SKIP("the debug kernel (its data path is tested above)");
	if (!bdev_bytes(BDEV))
		TS_SETUP_SKIP("no %s", BDEV);
	if (access("/usr/bin/qemu-system-x86_64", X_OK))
		TS_SETUP_SKIP("no qemu-system-x86_64");
	if (variant->libvirt && access("/usr/sbin/libvirtd", X_OK))
		TS_SETUP_SKIP("no libvirtd (libvirt-daemon-system)");
	ASSERT_EQ(0, uname(&u));
	snprintf(self->kernel, sizeof(self->kernel), "/boot/vmlinuz-%s",
		 u.release);
	if (access(self->kernel, R_OK))
		TS_SETUP_SKIP("no %s for the nested guest", self->kernel);
	/*
	 * A nested boot is minutes of make check's hour: make check boots
	 * one, under libvirt (Debian 12's way to run QEMU) on the newest
	 * kernel; make soak boots both variants on every kernel. Both go
	 * through the same QEMU device and the same daemon; the kernel
	 * paths under them are the other programs' on every kernel.
	 */
	if (!ts_soak() && (!variant->libvirt || older_than(&u, 6, 12)))
		TS_SETUP_SKIP("make check: libvirt on the newest kernel (the rest: soak)");
	/* nested-dp is built next to this program. */
	n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
	ASSERT_LT(0, n);
	self_dir[n] = '\0';
	*strrchr(self_dir, '/') = '\0';
	/* Swap on tsswap0, the store on the third disk: double paging. */
	ASSERT_EQ(0, ts_swap_up("backing=" NESTED_STORE));
	snprintf(cmd, sizeof(cmd),
		 "TS_INITRAMFS_BINS=%s/nested-dp %s/tools/vm/mkinitramfs.sh %s %s /lib/modules/%s %s/tools/vm/nested-init virtio_pci virtio_blk",
		 self_dir, dir ? dir : ".", u.release, NESTED_INITRD,
		 u.release, dir ? dir : ".");
	ASSERT_EQ(0, system(cmd));
	/*
	 * The daemon runs as the systemd unit runs it: root, group kvm, its
	 * socket 0660, which lets libvirt's QEMU (libvirt-qemu, in the group
	 * kvm) in.
	 */
	kvm = getgrnam("kvm");
	ASSERT_NE(NULL, kvm);
	egid = getegid();
	ASSERT_EQ(0, setegid(kvm->gr_gid));
	self->daemon = start_daemon(BDEV, reconcile_off() ? args_off : args);
	ASSERT_EQ(0, setegid(egid));
	ASSERT_LT(0, self->daemon);
}

static bool console_has(const char *text);

FIXTURE_TEARDOWN(nested)
{
	char line[512];
	bool all;
	FILE *f;

	/* It destroys the domain; its definition goes with libvirt's tmpfs. */
	if (self->libvirtd)
		EXPECT_EQ(0, libvirtd_sh("stop"));
	if (self->daemon > 0)
		EXPECT_EQ(0, stop_daemon(self->daemon));
	show_log(_metadata);
	/* The guest's console: its verdict, or all of it if it has none. */
	all = !console_has("nested: readback ok");
	f = fopen(NESTED_CONSOLE, "r");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (all || strstr(line, "nested:"))
			TH_LOG("guest: %s", line);
	}
	if (f)
		fclose(f);
	ts_cgroup_leave(NESTED_CGROUP);
	ts_swap_down();
}

static bool console_has(const char *text)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(NESTED_CONSOLE, "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, text);
	if (f)
		fclose(f);
	return found;
}

/*
 * The nested guest's QEMU: our child (the qemu variant), or one libvirtd
 * started (the libvirt variant), whose end is the domain's: shut off, and
 * how.
 */
struct nested_qemu {
	pid_t pid;
	bool libvirt;
	bool exited;
	bool clean;		/* QEMU exited 0: the guest powered off */
};

static void nested_poll(struct nested_qemu *q)
{
	int status;

	if (q->exited)
		return;
	if (!q->libvirt) {
		if (waitpid(q->pid, &status, WNOHANG) != q->pid)
			return;
		q->clean = WIFEXITED(status) && !WEXITSTATUS(status);
	} else {
		/*
		 * Gone (PID 1 reaps it), and then shut off once libvirtd's
		 * monitor has seen it go.
		 */
		if (!kill(q->pid, 0) ||
		    ts_system("LC_ALL=C virsh -q domstate " NESTED_DOMAIN
			      " | grep -q '^shut off'"))
			return;
		/* "(shutdown)": the guest powered off itself. */
		q->clean = !ts_system("LC_ALL=C virsh -q domstate --reason "
				      NESTED_DOMAIN
				      " | grep -q 'shut off (shutdown)'");
	}
	q->exited = true;
}

static void nested_kill(struct nested_qemu *q)
{
	if (q->exited)
		return;
	if (q->libvirt) {
		ts_system_quiet("virsh -q destroy " NESTED_DOMAIN);
	} else {
		kill(q->pid, SIGKILL);
		waitpid(q->pid, NULL, 0);
	}
}

/* Wait for @text on the nested console while QEMU runs, until @deadline. */
static bool wait_console(const char *text, struct nested_qemu *q,
			 time_t deadline)
{
	while (!console_has(text)) {
		if (q->exited || time(NULL) >= deadline)
			return false;
		nested_poll(q);
		/* What it printed last may be what we wait for. */
		if (q->exited)
			return console_has(text);
		sleep(1);
	}
	return true;
}

/* libvirtd up, and the example domain adapted for booting @kernel. */
static int libvirt_up(const char *kernel)
{
	const char *dir = getenv("TS_DIR") ?: ".";
	char cmd[1024];

	if (libvirtd_sh("start"))
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 %s/tools/vm/libvirt-domain.py %s/Documentation/examples/libvirt-domain.xml "
		 NESTED_XML " " NESTED_DOMAIN " " SOCK " %s "
		 NESTED_INITRD " " NESTED_CONSOLE, dir, dir, kernel);
	return ts_system(cmd) ? -1 : 0;
}

/*
 * Start the guest through libvirtd: its QEMU's pid, and in @cgroup the
 * cgroup libvirt put it in (v2: the machine's group, not the emulator or
 * vcpu group below it, since vcpu threads fault in guest RAM too).
 */
static pid_t libvirt_start(char *cgroup, size_t size)
{
	char line[512];
	pid_t pid = -1;
	size_t len;
	FILE *f;

	/*
	 * QEMU as libvirt runs it must be let in by the socket's mode: else
	 * it waits for the socket for ever (reconnect), and so does start.
	 */
	if (ts_system(AS_LIBVIRT_QEMU "test -w " SOCK)) {
		printf("# libvirt-qemu may not connect to " SOCK "\n");
		return -1;
	}
	if (ts_system("virsh -q define " NESTED_XML " >/dev/null") ||
	    ts_system("timeout 300 virsh -q start " NESTED_DOMAIN))
		return -1;
	f = fopen("/run/libvirt/qemu/" NESTED_DOMAIN ".pid", "r");
	if (!f || fscanf(f, "%d", &pid) != 1)
		pid = -1;
	if (f)
		fclose(f);
	snprintf(line, sizeof(line), "/proc/%d/cgroup", pid);
	f = pid > 0 ? fopen(line, "r") : NULL;
	cgroup[0] = '\0';
	while (f && !cgroup[0] && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::/", 4))
			continue;
		line[strcspn(line, "\n")] = '\0';
		len = strlen(line);
		if (len > 13 && !strcmp(line + len - 9, "/emulator"))
			line[len - 9] = '\0';
		snprintf(cgroup, size, "%s", line + 4);
	}
	if (f)
		fclose(f);
	return cgroup[0] ? pid : -1;
}

/* The user QEMU runs as, by name ("" if unknown). */
static void process_user(pid_t pid, char *name, size_t size)
{
	char path[64], line[256];
	struct passwd *pw = NULL;
	unsigned int uid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	while (f && !pw && fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u", &uid) == 1)
			pw = getpwuid(uid);
	if (f)
		fclose(f);
	snprintf(name, size, "%s", pw ? pw->pw_name : "");
}

/* Tell nested-dp to go on: @word at DP_SIGNAL of the image. */
static int dp_signal(const char *word)
{
	char *buf = aligned_alloc(4096, 4096);
	int fd = open(BDEV, O_WRONLY | O_DIRECT), ret = -1;

	if (buf && fd >= 0) {
		memset(buf, 0, 4096);
		memcpy(buf, word, strlen(word));
		ret = pwrite(fd, buf, 4096, DP_SIGNAL) == 4096 ? 0 : -1;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* Pages of nested-dp's buffer that the image does not hold as it wrote. */
static unsigned long dp_bad_pages(void)
{
	char *image = aligned_alloc(4096, DP_PAGES * 4096), page[4096], tag[32];
	unsigned long i, bad = DP_PAGES;
	int fd = open(BDEV, O_RDONLY | O_DIRECT), len;
	size_t off;

	if (image && fd >= 0 &&
	    pread(fd, image, DP_PAGES * 4096, DP_OFFSET) ==
	    (ssize_t)(DP_PAGES * 4096)) {
		for (i = 0, bad = 0; i < DP_PAGES; i++) {
			len = snprintf(tag, sizeof(tag), "tesseract-dp %08lu\n",
				       i);
			for (off = 0; off + len <= 4096; off += len)
				memcpy(page + off, tag, len);
			memset(page + off, '.', 4096 - off);
			bad += !!memcmp(image + i * 4096, page, 4096);
		}
	}
	if (fd >= 0)
		close(fd);
	free(image);
	return bad;
}

/*
 * The host's own QEMU boots this kernel again, as a guest whose disk is a
 * vhost-user-blk-pci device served by the daemon, and whose RAM is a
 * memfd. (a) What the guest writes with direct I/O and reads back is in
 * the image, at the offset it wrote. (b) Double paging: the guest fills
 * 16 MiB of tagged pages, the host reclaims QEMU's cgroup so that they sit
 * in tsswap0, the guest writes them to its disk with direct I/O: they are
 * reconciled, not swapped in, the guest reads them back right, and after a
 * flatten the image holds them.
 */
TEST_F_TIMEOUT(nested, qemu_guest, 800)
{
	static const char * const qemu_args[] = {
		"qemu-system-x86_64", "-accel", "tcg", "-cpu", "qemu64,-cx16",
		"-smp", "1", "-m", "256M", "-nodefaults", "-display", "none",
		"-no-reboot",
		"-object", "memory-backend-memfd,id=mem,size=256M,share=on",
		"-machine", "pc,memory-backend=mem",
		"-chardev", "socket,id=disk0,path=" SOCK,
		"-device", "vhost-user-blk-pci,chardev=disk0,num-queues=2",
		"-serial", "file:" NESTED_CONSOLE,
		"-initrd", NESTED_INITRD,
		"-append", "console=ttyS0 loglevel=4 panic=-1 no_timer_check",
		"-kernel",
	};
	const char *argv[ARRAY_SIZE(qemu_args) + 2];
	long long reconciled, pswpin, swapped;
	/* Within the program's 900 s (guest-run.sh), the other cases run. */
	time_t start = time(NULL), deadline = start + 720;
	struct nested_qemu q = { .libvirt = variant->libvirt };
	char user[64];
	size_t i, len = strlen(NESTED_LINE);
	bool filled, written;
	char *image, *expect;
	int disk;

	memcpy(argv, qemu_args, sizeof(qemu_args));
	argv[ARRAY_SIZE(qemu_args)] = self->kernel;
	argv[ARRAY_SIZE(qemu_args) + 1] = NULL;
	ASSERT_EQ(0, dp_signal("wait"));
	if (variant->libvirt) {
		/* Here, not in the setup: the teardown stops it. */
		self->libvirtd = true;
		ASSERT_EQ(0, libvirt_up(self->kernel));
		q.pid = libvirt_start(self->cgroup, sizeof(self->cgroup));
		ASSERT_LT(0, q.pid);
		process_user(q.pid, user, sizeof(user));
		TH_LOG("libvirt started QEMU %d as %s in cgroup %s", q.pid,
		       user, self->cgroup);
		/* As on a Debian host: what the socket's mode must let in. */
		EXPECT_STREQ("libvirt-qemu", user);
		EXPECT_EQ(0, strncmp(self->cgroup, "machine/", 8));
	} else {
		q.pid = fork();
		ASSERT_LE(0, q.pid);
		if (!q.pid) {
			int null = open("/dev/null", O_RDWR);

			/* Its guest RAM is charged here, to reclaim. */
			if (ts_cgroup_enter(NESTED_CGROUP))
				_exit(126);
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			execv("/usr/bin/qemu-system-x86_64", (char **)argv);
			_exit(127);
		}
	}
	/* Nested TCG: a few minutes to boot and do (a). */
	filled = wait_console("nested: dp filled", &q, deadline);
	TH_LOG("the nested guest filled its pages after %ld s",
	       (long)(time(NULL) - start));
	EXPECT_TRUE(console_has("nested: readback ok"));
	EXPECT_TRUE(console_has("nested: vda"));

	if (filled) {
		/* The whole guest out to tsswap0, its buffer with it. */
		for (i = 0; i < 3; i++)
			ts_cgroup_write(self->cgroup, "memory.reclaim", "256M");
		/*
		 * The guest, polling for the signal, faults back what it
		 * runs: wait until that settles (fewer than 16 swap-ins in
		 * 3 s), so that what is swapped in after the signal is what
		 * the write needs. Its buffer stays out: nothing touches it.
		 */
		for (i = 0; i < 40; i++) {
			pswpin = ts_vmstat("pswpin");
			sleep(3);
			if (ts_vmstat("pswpin") - pswpin < 16)
				break;
		}
		swapped = ts_vhost_counter("guest_pages_in_host_swap");
		reconciled = ts_vhost_counter("reconciled_pages");
		pswpin = ts_vmstat("pswpin");
		ASSERT_EQ(0, dp_signal("go"));
		written = wait_console("nested: dp written", &q, deadline);
		reconciled = ts_vhost_counter("reconciled_pages") - reconciled;
		pswpin = ts_vmstat("pswpin") - pswpin;
		TH_LOG("double paging: %lld guest pages in host swap",
		       swapped);
		TH_LOG("double paging: %lld reconciled, %lld swapped in during the write",
		       reconciled, pswpin);
		EXPECT_TRUE(written);
		if (reconcile_off()) {
			EXPECT_EQ(0, reconciled);
			EXPECT_LE((long long)DP_PAGES, pswpin);
		} else {
			/* Most references; nowhere near all swapped in. */
			EXPECT_LE((long long)DP_PAGES / 2, reconciled);
			EXPECT_GT((long long)DP_PAGES / 2, pswpin);
		}
		ASSERT_EQ(0, dp_signal("check"));
		EXPECT_TRUE(wait_console("nested: dp readback ok", &q,
					 deadline));
		/* Self-contained: the image has the pages themselves. */
		EXPECT_EQ(0, ts_tool("flatten -q " NESTED_DISK_ID));
		EXPECT_EQ(0UL, dp_bad_pages());
		ASSERT_EQ(0, dp_signal("end"));
	} else {
		EXPECT_TRUE(filled);
	}
	while (!q.exited && time(NULL) < deadline) {
		nested_poll(&q);
		if (!q.exited)
			sleep(1);
	}
	nested_kill(&q);
	TH_LOG("the nested guest ran for %ld s", (long)(time(NULL) - start));
	ASSERT_TRUE(q.exited);
	EXPECT_TRUE(q.clean);
	EXPECT_TRUE(log_has("a front-end connected"));
	EXPECT_FALSE(log_has("refused"));

	/* (a) in the image, where the guest put it. */
	EXPECT_EQ(0, stop_daemon(self->daemon));
	self->daemon = -1;
	disk = open(BDEV, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, disk);
	image = aligned_alloc(4096, 1 << 20);
	expect = malloc(1 << 20);
	ASSERT_TRUE(image && expect);
	for (i = 0; i < (1 << 20); i++)
		expect[i] = NESTED_LINE[i % len];
	ASSERT_EQ(1 << 20, pread(disk, image, 1 << 20, 1 << 20));
	EXPECT_EQ(0, memcmp(image, expect, 1 << 20));
	free(image);
	free(expect);
	close(disk);
}

/*
 * The admin guide's libvirt domain: valid for the libvirt the host has
 * (virt-xml-validate, libvirt's own schema), with the two things this
 * path needs, a vhost-user disk on the socket the systemd unit makes and
 * shared memfd RAM.
 */
TEST(libvirt_example_validates)
{
	static const char * const needed[] = {
		"<disk type='vhostuser' device='disk'>",
		"<source type='unix' path='/run/tesseract/vm1-disk0.sock'>",
		"<source type='memfd'/>",
		"<access mode='shared'/>",
	};
	const char *dir = getenv("TS_DIR");
	char xml[512], cmd[1024], text[8192];
	unsigned int i, missing = 0;
	ssize_t n;
	int fd;

	snprintf(xml, sizeof(xml), "%s/Documentation/examples/libvirt-domain.xml",
		 dir ? dir : ".");
	snprintf(cmd, sizeof(cmd), "virt-xml-validate %s domain", xml);
	ASSERT_EQ(0, ts_system(cmd));
	fd = open(xml, O_RDONLY);
	ASSERT_LE(0, fd);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	ASSERT_LT(0, n);
	text[n] = '\0';
	for (i = 0; i < ARRAY_SIZE(needed); i++)
		if (!strstr(text, needed[i])) {
			fprintf(stderr, "# missing: %s\n", needed[i]);
			missing++;
		}
	EXPECT_EQ(0U, missing);
}

TEST_HARNESS_MAIN
