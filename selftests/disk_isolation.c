// SPDX-License-Identifier: GPL-2.0
/*
 * One guest cannot stall another: guest A zeroes a range that holds
 * references on a slow backend (dm-delay), which keeps its request between
 * dropping them and writing the zeroes for seconds; guest B's FLUSHes
 * meanwhile take about as long as when A is idle. And one disk cannot take
 * every reference of the store: disk_max_refs caps each. Nor can a guest
 * whose request waits on a fault in its memory (userfaultfd) hold up
 * another's FLUSH when the journal is full and a checkpoint is due; the
 * checkpoint still keeps the references that request dropped, since the
 * data replacing them is not written.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define CGROUP		"ts-disk-isolation"
#define PAGES		64UL
#define SLOW_DISK	"/dev/vda"
#define SLOW_SECTORS	(128UL * 2048)	/* 128 MiB */
#define DELAY_MS	1500
#define ZERO_SECTORS	(32UL * 2048)	/* 32 MiB */
#define B_IMAGE		"/tmp/ts-isolation-b.img"
#define GUEST_RAM	(2 * PAGES * PAGE + (4 << 20))
#define ID_A		1001
#define ID_B		1002
#define A_IMAGE		"/tmp/ts-isolation-a.img"
/* A small journal: a few commits of B fill it. */
#define JOURNAL_BLOCKS	"4"
#define B_ROUNDS	8
#define STUCK_LIMIT	20.0	/* seconds a FLUSH may take before it is stuck */

FIXTURE(di) {
	struct vblk_dev a, b;
	int a_fd, b_fd;
	char *buf;
};

FIXTURE_SETUP(di)
{
	char table[128], path[64];

	vblk_init(&self->a);
	vblk_init(&self->b);
	self->a_fd = -1;
	self->b_fd = -1;
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	snprintf(table, sizeof(table), "0 %lu delay %s 0 %d", SLOW_SECTORS,
		 SLOW_DISK, DELAY_MS);
	if (ts_dm_create("ts-isolation-slow", table, path, sizeof(path)))
		TS_SETUP_SKIP("no device-mapper delay target");
	self->a_fd = open(path, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->a_fd);
	ASSERT_EQ(0, vblk_open_disk(&self->a, GUEST_RAM, self->a_fd, ID_A));
	self->b_fd = open(B_IMAGE, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, self->b_fd);
	ASSERT_EQ(0, ftruncate(self->b_fd, 16 << 20));
	ASSERT_EQ(0, vblk_open_disk(&self->b, GUEST_RAM, self->b_fd, ID_B));
	self->buf = vblk_alloc(&self->a, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->buf);
}

FIXTURE_TEARDOWN(di)
{
	ts_param_set("disk_max_refs", "0");
	vblk_close_disk(&self->a, self->a_fd, PAGES * PAGE / 512);
	vblk_close_disk(&self->b, self->b_fd, 0);
	ts_dm_remove("ts-isolation-slow");
	unlink(B_IMAGE);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

struct zeroer {
	struct vblk_dev *dev;
	atomic_bool running;
	double seconds;
	int status;
};

static void *zero_thread(void *p)
{
	struct zeroer *z = p;
	double t0 = ts_now();

	z->status = vblk_discard(z->dev, VIRTIO_BLK_T_WRITE_ZEROES, 0,
				 ZERO_SECTORS, 0);
	z->seconds = ts_now() - t0;
	atomic_store(&z->running, false);
	return NULL;
}

static double timed_flush(struct vblk_dev *d, int *status)
{
	double t0 = ts_now();

	*status = vblk_rw(d, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, 0, false);
	return ts_now() - t0;
}

TEST_F_TIMEOUT(di, flushes_do_not_wait_for_another_disk, 300)
{
	struct zeroer z = { .dev = &self->a };
	double idle_max = 0, busy_max = 0, t;
	unsigned int i, busy_flushes = 0;
	pthread_t thread;
	int status;

	/* References in A's range, so that zeroing it replaces them. */
	ASSERT_GT(PAGES / 2, ts_fill_and_push(CGROUP, self->buf, PAGES, 1, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	ASSERT_LT(0, ts_disk_counter(ID_A, "reconciled_pages"));

	for (i = 0; i < 5; i++) {
		t = timed_flush(&self->b, &status);
		ASSERT_EQ(VIRTIO_BLK_S_OK, status);
		idle_max = t > idle_max ? t : idle_max;
	}

	atomic_store(&z.running, true);
	ASSERT_EQ(0, pthread_create(&thread, NULL, zero_thread, &z));
	usleep(300000);
	while (atomic_load(&z.running)) {
		t = timed_flush(&self->b, &status);
		EXPECT_EQ(VIRTIO_BLK_S_OK, status);
		busy_max = t > busy_max ? t : busy_max;
		busy_flushes++;
		usleep(50000);
	}
	pthread_join(thread, NULL);
	TH_LOG("A zeroed for %.3f s; B's FLUSH: worst %.1f ms idle,",
	       z.seconds, idle_max * 1e3);
	TH_LOG("%.1f ms over %u while A was zeroing", busy_max * 1e3,
	       busy_flushes);
	ASSERT_EQ(VIRTIO_BLK_S_OK, z.status);
	/* The case was set up: A's request took the delay and then some. */
	ASSERT_LE(DELAY_MS / 1000.0, z.seconds);
	ASSERT_LT(0U, busy_flushes);
	/* Wide margins: TCG is slow and noisy, a wait for A is not. */
	EXPECT_GT(z.seconds / 4, busy_max);
	EXPECT_GT(idle_max * 20 + 0.2, busy_max);
}

/* disk_max_refs caps one disk's references; the rest are written. */
TEST_F_TIMEOUT(di, disk_max_refs_caps_one_disk, 300)
{
	long long refs, quota, swapped;

	ASSERT_EQ(0, ts_param_set("disk_max_refs", "16"));
	/* Pages still in an LRU batch may stay resident: they are written. */
	swapped = PAGES - ts_fill_and_push(CGROUP, self->buf, PAGES, 2, 1);
	ASSERT_LE(32, swapped);
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	refs = ts_disk_counter(ID_A, "pages_referenced");
	quota = ts_disk_counter(ID_A, "fallback_disk_quota");
	TH_LOG("%lld referenced, %lld over the quota", refs, quota);
	EXPECT_EQ(16, refs);
	EXPECT_EQ(swapped - 16, quota);
	/* The data is all there, whichever way it went. */
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_IN, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 2, 1));
}

/* Two guests on image files, a journal of a few blocks. */
FIXTURE(dj) {
	struct vblk_dev a, b;
	int a_fd, b_fd;
	char *abuf, *stuck, *bbuf;
};

FIXTURE_SETUP(dj)
{
	vblk_init(&self->a);
	vblk_init(&self->b);
	self->a_fd = -1;
	self->b_fd = -1;
	ASSERT_EQ(0, ts_swap_up_with("backing=/dev/vdb",
				     "--journal-blocks " JOURNAL_BLOCKS));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	self->a_fd = open(A_IMAGE, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, self->a_fd);
	ASSERT_EQ(0, ftruncate(self->a_fd, 16 << 20));
	ASSERT_EQ(0, vblk_open_disk(&self->a, 3 * PAGES * PAGE + (4 << 20),
				    self->a_fd, ID_A));
	self->b_fd = open(B_IMAGE, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, self->b_fd);
	ASSERT_EQ(0, ftruncate(self->b_fd, 16 << 20));
	ASSERT_EQ(0, vblk_open_disk(&self->b, GUEST_RAM, self->b_fd, ID_B));
	self->abuf = vblk_alloc(&self->a, PAGES * PAGE, PAGE);
	self->stuck = vblk_alloc(&self->a, PAGES * PAGE, PAGE);
	self->bbuf = vblk_alloc(&self->b, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, self->abuf);
	ASSERT_NE(NULL, self->stuck);
	ASSERT_NE(NULL, self->bbuf);
}

FIXTURE_TEARDOWN(dj)
{
	vblk_close_disk(&self->a, self->a_fd, 0);
	vblk_close_disk(&self->b, self->b_fd, 0);
	unlink(A_IMAGE);
	unlink(B_IMAGE);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/* The sequence number of the store's durable checkpoint. */
static long long durable_ckpt_seq(void)
{
	long long seq = -1;

	ts_tool("dump /dev/vdb 2>/dev/null | awk '/checkpoint seq/ {print $NF}' >/tmp/ts-seq");
	ts_read_ll("/tmp/ts-seq", &seq);
	return seq;
}

struct flusher {
	struct vblk_dev *dev;
	char *buf;
	atomic_bool done;
	atomic_uint rounds;
	atomic_llong flush_began;	/* in ms; 0 while none is under way */
	double worst;
	long long swapped, least_swapped;
	int status;
};

/* B: rounds of reconciled writes, each flushed: the journal fills. */
static void *flush_thread(void *p)
{
	struct flusher *f = p;
	long long swapped;
	unsigned int r;
	double t;

	f->least_swapped = PAGES;
	for (r = 1; r <= B_ROUNDS && !f->status; r++) {
		swapped = PAGES - ts_fill_and_push(CGROUP, f->buf, PAGES, 4, r);
		f->swapped += swapped;
		if (swapped < f->least_swapped)
			f->least_swapped = swapped;
		f->status = vblk_io_pages(f->dev, VIRTIO_BLK_T_OUT, 0, f->buf,
					  PAGES, false);
		if (f->status)
			break;
		t = ts_now();
		atomic_store(&f->flush_began, (long long)(t * 1e3));
		f->status = vblk_rw(f->dev, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0,
				    0, false);
		atomic_store(&f->flush_began, 0);
		t = ts_now() - t;
		f->worst = t > f->worst ? t : f->worst;
		atomic_store(&f->rounds, r);
	}
	atomic_store(&f->done, true);
	return NULL;
}

TEST_F_TIMEOUT(dj, full_journal_flush_does_not_wait_for_a_stuck_guest, 600)
{
	struct flusher f = { .dev = &self->b, .buf = self->bbuf };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (unsigned long)self->stuck, PAGES * PAGE },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct uffdio_copy copy = {
		.dst = (unsigned long)self->stuck,
		.len = PAGES * PAGE,
	};
	long long a_refs, a_durable_stuck, b_refs, seq, seq_stuck;
	struct vblk_req *req;
	bool stuck = false;
	pthread_t thread;
	char *fill;
	long long began;
	int uffd;

	/* A holds durable references, then rewrites their blocks... */
	ASSERT_GT(PAGES / 2, ts_fill_and_push(CGROUP, self->abuf, PAGES, 3, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_OUT, 0, self->abuf,
				   PAGES, false));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_rw(&self->a, 0, VIRTIO_BLK_T_FLUSH, 0,
					   NULL, 0, 0, false));
	a_refs = ts_disk_counter(ID_A, "pages_referenced");
	ASSERT_LT(0, a_refs);
	ASSERT_EQ(a_refs, ts_durable_refs(ID_A));
	seq = durable_ckpt_seq();
	ASSERT_LE(0, seq);

	/* ... from memory whose fault nobody answers: its request waits. */
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		SKIP(return, "no userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	ASSERT_EQ(0, madvise(self->stuck, PAGES * PAGE, MADV_DONTNEED));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));
	req = vblk_req_alloc(&self->a);
	ASSERT_NE(NULL, req);
	ASSERT_EQ(0, vblk_req_submit(&self->a, 0, req, VIRTIO_BLK_T_OUT, 0,
				     self->stuck, PAGES * PAGE, 0, false));
	vblk_kick(&self->a, 0);
	usleep(500000);
	ASSERT_EQ(-ETIMEDOUT, vblk_req_wait(&self->a, 0, req, 0));

	/* B fills the journal: its FLUSHes take checkpoints. */
	ASSERT_EQ(0, pthread_create(&thread, NULL, flush_thread, &f));
	while (!atomic_load(&f.done)) {
		usleep(100000);
		began = atomic_load(&f.flush_began);
		if (began && ts_now() * 1e3 - began > STUCK_LIMIT * 1e3) {
			stuck = true;
			break;
		}
	}
	/* The durable state while A's request still waits. */
	a_durable_stuck = ts_durable_refs(ID_A);
	seq_stuck = durable_ckpt_seq();

	/* Answer the fault: A's request completes with these contents. */
	fill = malloc(PAGES * PAGE);
	ASSERT_NE(NULL, fill);
	ts_fill_pages(fill, PAGES, 5, 1);
	copy.src = (unsigned long)fill;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_COPY, &copy));
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_req_wait(&self->a, 0, req, 60000));
	pthread_join(thread, NULL);
	close(uffd);

	b_refs = ts_disk_counter(ID_B, "pages_referenced");
	TH_LOG("A: %lld references, %lld durable while its request waited",
	       a_refs, a_durable_stuck);
	TH_LOG("B: %u rounds, %lld pages swapped (%lld at least), %lld referenced",
	       atomic_load(&f.rounds), f.swapped, f.least_swapped, b_refs);
	TH_LOG("worst FLUSH %.1f ms%s; checkpoint seq %lld, then %lld",
	       f.worst * 1e3, stuck ? " (stuck)" : "", seq, seq_stuck);
	ASSERT_FALSE(stuck);
	ASSERT_EQ(0, f.status);
	ASSERT_EQ(B_ROUNDS, (int)atomic_load(&f.rounds));
	/* Each round's commit took a journal block: it ran full. */
	ASSERT_LT(0, f.least_swapped);
	ASSERT_LT(seq, seq_stuck);
	/* The checkpoints kept what A dropped: its new data is not written. */
	EXPECT_EQ(a_refs, a_durable_stuck);

	/* Both disks hold what was written last, durably. */
	ASSERT_EQ(VIRTIO_BLK_S_OK, vblk_rw(&self->a, 0, VIRTIO_BLK_T_FLUSH, 0,
					   NULL, 0, 0, false));
	EXPECT_EQ(0, ts_durable_refs(ID_A));
	ASSERT_EQ(0, vblk_io_pages(&self->a, VIRTIO_BLK_T_IN, 0, self->abuf,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->abuf, PAGES, 5, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->b, VIRTIO_BLK_T_IN, 0, self->bbuf,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->bbuf, PAGES, 4, B_ROUNDS));
	free(fill);
}

TEST_HARNESS_MAIN
