// SPDX-License-Identifier: GPL-2.0
/*
 * Reconciliation on memfd guest RAM, as stock QEMU gives a vhost-user
 * back-end (memory-backend-memfd, share=on): a swapped-out shmem page has
 * no PTE, its swap entry sits in the memfd's page cache. Guest writes of
 * such pages become references, full-page reads drop the entry (a hole
 * punched in the memfd) instead of swapping it in, and nothing stale ever
 * reaches the disk, also against a thread that swaps the pages in and out,
 * and with large (THP) swap entries where the kernel makes them. The
 * vhost_user variant runs the guest through tesseract-vhost-user-blk, as
 * QEMU would: the kernel device then looks at the daemon's mapping of the
 * memfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/tesseract.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"
#include "vblk_workload.h"
#include "vblk_vhost_user.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define HUGE		(2UL << 20)
#define CGROUP		"ts-reconcile-shmem"
#define PAGES		512UL		/* 2 MiB of guest buffers */
#define DISK		"/dev/vda"
#define DISK_SECTORS	(64UL << 11)	/* 64 MiB, dropped at teardown */
/* What a first request reads, so that later ones swap nothing in. */
#define WARM_SECTOR	(DISK_SECTORS - SECTORS)
#define GUEST_RAM	(3 * PAGES * PAGE + (6UL << 20))
#define THP		"/sys/kernel/mm/transparent_hugepage"
#define SHMEM_ENABLED	THP "/shmem_enabled"
#define SHMEM_PMD	THP "/hugepages-2048kB/shmem_enabled"
#define SOCK		"/run/ts-shm%d.sock"
#define LOG		"/run/ts-shm%d.log"
/* The vhost_user variant's disks: its daemons claim them exclusively. */
#define DM_DISK		"ts-shm-disk%d"

/* A guest on memfd RAM, through /dev/vhost-blk or a vhost-user daemon. */
struct guest {
	struct vblk_dev dev;
	int disk_fd;
	pid_t daemon;
	int id;
};

FIXTURE(shm) {
	struct guest g;
	char *buf, *check;
	char shmem_enabled[64], shmem_pmd[64];
};

/*
 * The huge-page policy of memfds (never, or always: 2 MiB folios), and
 * whether the guest goes through tesseract-vhost-user-blk.
 */
FIXTURE_VARIANT(shm) {
	bool huge;
	bool vhost_user;
};

FIXTURE_VARIANT_ADD(shm, small) {
	.huge = false,
	.vhost_user = false,
};

FIXTURE_VARIANT_ADD(shm, huge) {
	.huge = true,
	.vhost_user = false,
};

FIXTURE_VARIANT_ADD(shm, vhost_user) {
	.huge = false,
	.vhost_user = true,
};

/* Kill the daemon, if any, whose command line names socket @sock. */
static void kill_daemon_on(const char *sock)
{
	char path[64], cmdline[512];
	struct dirent *de;
	DIR *proc = opendir("/proc");
	ssize_t n, i;
	pid_t pid;
	int fd;

	while (proc && (de = readdir(proc))) {
		pid = atoi(de->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		n = read(fd, cmdline, sizeof(cmdline) - 1);
		close(fd);
		if (n <= 0)
			continue;
		/* Arguments are separated by NULs. */
		for (i = 0; i < n; i++)
			if (!cmdline[i])
				cmdline[i] = ' ';
		cmdline[n] = '\0';
		if (strstr(cmdline, "tesseract-vhost-user-blk") &&
		    strstr(cmdline, sock)) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
	if (proc)
		closedir(proc);
}

/*
 * Remove device-mapper device @name once nothing holds it: a daemon that
 * exited leaves its image to the kernel device until that has drained,
 * and one a failed test left behind on @sock is killed. Said in the log
 * if it stays: it would hold DISK for the programs after this one.
 */
static void dm_remove_settled(const char *name, const char *sock)
{
	char cmd[256];
	int i;

	kill_daemon_on(sock);
	snprintf(cmd, sizeof(cmd), "dmsetup info %s >/dev/null 2>&1", name);
	if (ts_system(cmd))
		return;
	snprintf(cmd, sizeof(cmd), "dmsetup --noudevsync remove %s 2>/dev/null",
		 name);
	for (i = 0; i < 300; i++) {
		if (!ts_system(cmd))
			return;
		usleep(100000);
	}
	fprintf(stderr, "# %s: still busy after 30 s, removal deferred\n", name);
	snprintf(cmd, sizeof(cmd), "dmsetup --noudevsync remove --deferred %s",
		 name);
	ts_system(cmd);
}

/*
 * Guest @id (1, 2, ...) with @ram bytes of memfd RAM and disk id 100 + @id:
 * on DISK directly, or (@vhost_user) through a daemon serving a device of
 * its own, DISK_SECTORS of DISK from (@id - 1) * DISK_SECTORS. 0 or -errno.
 */
static int guest_open(struct guest *g, int id, size_t ram, bool vhost_user)
{
	char name[32], dev[64], sock[64], log[64], table[128];
	char sock_arg[80], blk_arg[80], id_arg[32];
	const char *argv[5] = { "tesseract-vhost-user-blk" };

	vblk_init(&g->dev);
	g->disk_fd = -1;
	g->daemon = -1;
	g->id = id;
	if (!vhost_user) {
		vblk_memfd_ram = true;
		g->disk_fd = open(DISK, O_RDWR | O_DIRECT);
		if (g->disk_fd < 0)
			return -errno;
		return vblk_open_disk(&g->dev, ram, g->disk_fd, 100 + id);
	}
	snprintf(table, sizeof(table), "0 %lu linear " DISK " %lu",
		 DISK_SECTORS, (id - 1) * DISK_SECTORS);
	snprintf(sock, sizeof(sock), SOCK, id);
	snprintf(log, sizeof(log), LOG, id);
	snprintf(name, sizeof(name), DM_DISK, id);
	/* A daemon of a test that died half-way may still hold the disk. */
	dm_remove_settled(name, sock);
	if (ts_dm_create(name, table, dev, sizeof(dev)))
		return -ENODEV;
	snprintf(sock_arg, sizeof(sock_arg), "--socket-path=%s", sock);
	snprintf(blk_arg, sizeof(blk_arg), "--blk-file=%s", dev);
	snprintf(id_arg, sizeof(id_arg), "--disk-id=%d", 100 + id);
	argv[1] = sock_arg;
	argv[2] = blk_arg;
	argv[3] = id_arg;
	unlink(log);
	g->daemon = vblk_vu_spawn(argv, log);
	if (g->daemon < 0)
		return g->daemon;
	return vblk_vu_connect(&g->dev, sock, ram, 10000) ?:
	       vblk_setup(&g->dev, 1, 128, 0);
}

/*
 * Discard @sectors from @start, which the guest wrote, and close it (and
 * its daemon).
 */
static void guest_close(struct guest *g, __u64 start, __u64 sectors)
{
	char path[64], line[256];
	int status;
	FILE *f;

	if (g->dev.fd >= 0)
		vblk_discard(&g->dev, VIRTIO_BLK_T_DISCARD, start, sectors, 0);
	vblk_close(&g->dev);
	if (g->disk_fd >= 0)
		close(g->disk_fd);
	g->disk_fd = -1;
	vblk_memfd_ram = false;
	if (g->daemon <= 0)
		return;
	kill(g->daemon, SIGTERM);
	waitpid(g->daemon, &status, 0);
	snprintf(path, sizeof(path), LOG, g->id);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		fprintf(stderr, "# daemon %d: %s", g->id, line);
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), DM_DISK, g->id);
	snprintf(line, sizeof(line), SOCK, g->id);
	dm_remove_settled(path, line);
}

/* The selected word of a "[always] never ..." sysfs file. */
static void thp_policy(const char *path, char *out, size_t len)
{
	char text[256], *open, *close;

	out[0] = '\0';
	if (ts_read_str(path, text, sizeof(text)))
		return;
	open = strchr(text, '[');
	close = open ? strchr(open, ']') : NULL;
	if (!close || (size_t)(close - open) >= len)
		return;
	memcpy(out, open + 1, close - open - 1);
	out[close - open - 1] = '\0';
}

FIXTURE_SETUP(shm)
{
	thp_policy(SHMEM_ENABLED, self->shmem_enabled,
		   sizeof(self->shmem_enabled));
	thp_policy(SHMEM_PMD, self->shmem_pmd, sizeof(self->shmem_pmd));
	ts_write_str(SHMEM_ENABLED, variant->huge ? "always" : "never");
	/* 6.12 has a policy per size; the 2 MiB one follows the global. */
	if (self->shmem_pmd[0])
		ts_write_str(SHMEM_PMD, "inherit");

	self->g.daemon = -1;
	self->g.disk_fd = -1;
	vblk_init(&self->g.dev);
	ASSERT_EQ(0, ts_swap_up("backing=/dev/vdb"));
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
	ASSERT_EQ(0, guest_open(&self->g, 1, GUEST_RAM, variant->vhost_user));
	self->buf = vblk_alloc(&self->g.dev, PAGES * PAGE, HUGE);
	self->check = vblk_alloc(&self->g.dev, PAGES * PAGE, HUGE);
	ASSERT_NE(NULL, self->buf);
	ASSERT_NE(NULL, self->check);
}

FIXTURE_TEARDOWN(shm)
{
	char name[32], sock[64], cmd[96];
	int id;

	guest_close(&self->g, 0, DISK_SECTORS);
	/* Those of two_guests_never_see_each_other, if a guest died. */
	for (id = 2; id <= 3; id++) {
		snprintf(name, sizeof(name), DM_DISK, id);
		snprintf(sock, sizeof(sock), SOCK, id);
		dm_remove_settled(name, sock);
	}
	/* Nothing may hold DISK for the programs after this one. */
	for (id = 1; id <= 3; id++) {
		snprintf(cmd, sizeof(cmd), "dmsetup info " DM_DISK
			 " >/dev/null 2>&1", id);
		EXPECT_NE(0, ts_system(cmd)) TH_LOG("ts-shm-disk%d left", id);
	}
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
	if (self->shmem_enabled[0])
		ts_write_str(SHMEM_ENABLED, self->shmem_enabled);
	if (self->shmem_pmd[0])
		ts_write_str(SHMEM_PMD, self->shmem_pmd);
}

/* Does this kernel swap large shmem folios out whole (6.10 and later)? */
static bool large_shmem_swap(void)
{
	unsigned int major = 0, minor = 0;
	struct utsname u;

	if (uname(&u) || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 10);
}

/* What the memfd holds at @page of guest RAM, read through the file. */
static bool file_page_is(struct vblk_dev *d, const char *page,
			 unsigned long tag, unsigned long index,
			 unsigned long version)
{
	static char copy[PAGE];

	if (pread(d->ram_fd, copy, PAGE, page - (const char *)d->ram) != PAGE)
		return false;
	return ts_check_page(copy, tag, index, version);
}

/*
 * The core case on shmem: every swapped-out page written by the guest
 * becomes a reference with no swap-in and no data write; the disk keeps
 * those contents when the pages change afterwards, through this mapping
 * or another mapping of the memfd.
 */
TEST_F_TIMEOUT(shm, writes_of_swapped_pages_become_references, 300)
{
	long long pswpin0, written0, cache_fallbacks0;
	long long thp0 = ts_vmstat("thp_swpout");
	unsigned long i, bad;
	size_t cached;
	char *other;

	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, PAGES, 1, 1));
	EXPECT_EQ(0UL, ts_mapped_pages(self->buf, PAGES * PAGE));
	EXPECT_LE((long long)PAGES,
		  ts_vhost_counter("guest_pages_in_host_swap"));
	TH_LOG("%s: %lld huge pages swapped out whole", variant->huge ?
	       "huge" : "small", ts_vmstat("thp_swpout") - thp0);
	/*
	 * Since 6.10 shmem swaps a large folio out whole, and each page's
	 * slot is its offset in the large entry; 6.1 splits the folio.
	 */
	if (variant->huge && large_shmem_swap())
		EXPECT_LT(thp0, ts_vmstat("thp_swpout"));

	/* Rings and request headers in, so that the write swaps nothing. */
	ASSERT_EQ(0, vblk_rw(&self->g.dev, 0, VIRTIO_BLK_T_IN, WARM_SECTOR,
			     self->check, PAGE, 0, false));
	/*
	 * Swap readahead around the rings' slots may have read a few of the
	 * buffer's pages back into the swap cache (mincore() counts them):
	 * such a page must not be referenced (DESIGN 4, step 3) and is
	 * copied instead. Seen once in the debug kernel: 1 of 512.
	 */
	cached = ts_resident_pages(self->buf, PAGES * PAGE);
	if (cached)
		TH_LOG("%zu pages back in the swap cache", cached);
	ASSERT_GE(PAGES / 8, cached);
	cache_fallbacks0 = ts_vhost_counter("fallback_swapcache");
	written0 = ts_vhost_counter("bytes_written");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_OUT, 0, self->buf,
				   PAGES, false));
	EXPECT_EQ(pswpin0, ts_vmstat("pswpin"));
	EXPECT_EQ((long long)(PAGES - cached),
		  ts_vhost_counter("reconciled_pages"));
	EXPECT_EQ(cache_fallbacks0 + (long long)cached,
		  ts_vhost_counter("fallback_swapcache"));
	EXPECT_EQ(written0 + (long long)(cached * PAGE),
		  ts_vhost_counter("bytes_written"));
	EXPECT_EQ(0UL, ts_mapped_pages(self->buf, PAGES * PAGE));

	/* Each block references the slot of its own page. */
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));

	/* Changed through the guest's mapping: the disk keeps version 1. */
	ts_fill_pages(self->buf, PAGES / 2, 1, 2);
	/* ... and through another mapping of the memfd. */
	other = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		     self->g.dev.ram_fd, (char *)self->buf -
				       (char *)self->g.dev.ram);
	ASSERT_NE(MAP_FAILED, other);
	for (i = PAGES / 2; i < PAGES; i++)
		ts_fill_page(other + i * PAGE, 1, i, 3);
	munmap(other, PAGES * PAGE);
	ASSERT_GT(PAGES / 20, ts_push_to_swap(CGROUP, self->buf, PAGES * PAGE));
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_IN, 0, self->check,
				   PAGES, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->check, PAGES, 1, 1));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES / 2, 1, 2));
	for (i = PAGES / 2, bad = 0; i < PAGES; i++)
		bad += !ts_check_page(self->buf + i * PAGE, 1, i, 3);
	EXPECT_EQ(0UL, bad);
}

/*
 * Before a false read of @pages pages at @buf: the disk holds them with
 * @tag, version 1 (written from @check), the buffer something else and is
 * pushed out to swap, and what a request touches is warm, so that the
 * read itself swaps nothing else in. 0, or -1.
 */
static int swapped_buffer_over_disk_data(struct guest *g, char *buf,
					 char *check, unsigned long pages,
					 unsigned long tag)
{
	ts_fill_pages(check, pages, tag, 1);
	if (vblk_io_pages(&g->dev, VIRTIO_BLK_T_OUT, 0, check, pages, false))
		return -1;
	memset(buf, 0x5a, pages * PAGE);
	if (ts_push_to_swap(CGROUP, buf, pages * PAGE))
		return -1;
	return vblk_rw(&g->dev, 0, VIRTIO_BLK_T_IN, WARM_SECTOR, check, PAGE,
		       0, false) ? -1 : 0;
}

/*
 * A read over swapped-out shmem pages punches them out of the memfd and
 * fills fresh ones: no swap-in, and the file (every mapper's view) holds
 * what was read. Large entries are not punched (a page-sized hole would
 * have to split them): they swap in as before.
 */
TEST_F_TIMEOUT(shm, false_reads_punch_the_memfd, 300)
{
	long long pswpin0, pswpin, false0, thp0 = ts_vmstat("thp_swpout");
	bool whole;

	ASSERT_EQ(0, swapped_buffer_over_disk_data(&self->g, self->buf,
						   self->check, PAGES, 7));
	whole = ts_vmstat("thp_swpout") > thp0;

	false0 = ts_vhost_counter("false_reads_avoided");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_IN, 0, self->buf,
				   PAGES, false));
	/* Before anything else of ours that reclaim may have swapped out. */
	pswpin = ts_vmstat("pswpin");
	if (whole) {
		TH_LOG("large swap entries: swapped in, not punched");
		EXPECT_LT(pswpin0, pswpin);
	} else {
		EXPECT_EQ(pswpin0, pswpin);
		EXPECT_EQ(false0 + (long long)PAGES,
			  ts_vhost_counter("false_reads_avoided"));
	}
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, PAGES, 7, 1));
	EXPECT_TRUE(file_page_is(&self->g.dev, self->buf, 7, 0, 1));
	EXPECT_TRUE(file_page_is(&self->g.dev, self->buf + (PAGES - 1) * PAGE,
				 7, PAGES - 1, 1));
}

/* A memfd sealed against writes refuses the hole: the page swaps in. */
TEST_F_TIMEOUT(shm, sealed_memfd_swaps_in, 300)
{
	long long pswpin0, false0;

	if (variant->huge)
		SKIP(return, "the other variants cover it");
	/* Writable mappings that exist stay so; holes are refused. */
	ASSERT_EQ(0, fcntl(self->g.dev.ram_fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE));
	ASSERT_EQ(0, swapped_buffer_over_disk_data(&self->g, self->buf,
						   self->check, 16, 8));

	false0 = ts_vhost_counter("false_reads_avoided");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_IN, 0, self->buf,
				   16, false));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, 16, 8, 1));
	EXPECT_EQ(false0, ts_vhost_counter("false_reads_avoided"));
	EXPECT_LE(pswpin0 + 16, ts_vmstat("pswpin"));
}

/*
 * Another mapping of the memfd registered with userfaultfd (as QEMU's
 * would be for postcopy): its monitor must not see pages it filled go
 * missing, so no hole is punched; the pages swap in.
 */
TEST_F_TIMEOUT(shm, false_reads_respect_userfaultfd_elsewhere, 300)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	long long pswpin0, false0;
	char *other;
	int uffd;

	if (variant->huge)
		SKIP(return, "the other variants cover it");
	uffd = syscall(__NR_userfaultfd, O_CLOEXEC);
	if (uffd < 0)
		SKIP(return, "no userfaultfd: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	other = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		     self->g.dev.ram_fd, self->buf - (char *)self->g.dev.ram);
	ASSERT_NE(MAP_FAILED, other);
	reg.range.start = (unsigned long)other;
	reg.range.len = 16 * PAGE;
	ASSERT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));

	ASSERT_EQ(0, swapped_buffer_over_disk_data(&self->g, self->buf,
						   self->check, 16, 9));

	false0 = ts_vhost_counter("false_reads_avoided");
	pswpin0 = ts_vmstat("pswpin");
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_IN, 0, self->buf,
				   16, false));
	EXPECT_LE(pswpin0 + 16, ts_vmstat("pswpin"));
	EXPECT_EQ(false0, ts_vhost_counter("false_reads_avoided"));
	EXPECT_EQ(0UL, ts_bad_pages(self->buf, 16, 9, 1));
	munmap(other, 16 * PAGE);
	close(uffd);
}

/*
 * DESIGN section 4's race on shmem: a thread swaps pages in, dirties them
 * and pages them out again while the guest writes them. What reaches the
 * disk must be the version each page had when its write was submitted.
 */
TEST_F_TIMEOUT(shm, stale_slot_race_in_a_loop, 600)
{
	struct vblk_race_result res;

	/* Through the daemon: shmem's race, with a second mapper. */
	if (!variant->vhost_user)
		SKIP(return, "the vhost_user variant covers it");
	ASSERT_EQ(0, vblk_race(&self->g.dev, self->buf, self->check, CGROUP,
			       200, &res));
	TH_LOG("%lu writes: %lld reconciled, %lld swap-cache fallbacks, %lld incomplete",
	       res.writes, ts_vhost_counter("reconciled_pages"),
	       ts_vhost_counter("fallback_swapcache"),
	       ts_vhost_counter("fallback_slot_incomplete"));
	EXPECT_EQ(0UL, res.wrong);
	EXPECT_EQ(0UL, res.stale);
	EXPECT_EQ(0UL, res.torn);
	/* The race was run, not avoided. */
	EXPECT_LT(0, ts_vhost_counter("reconciled_pages"));
}

/* Partial writes, discards and write-zeroes over referenced blocks. */
TEST_F_TIMEOUT(shm, partial_writes_discards_and_zeroes_merge, 300)
{
	char *expect = malloc(16 * PAGE);
	char *c = self->check;

	if (!variant->vhost_user)
		SKIP(return, "the vhost_user variant covers it");
	ASSERT_NE(NULL, expect);
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, self->buf, 16, 5, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_OUT, 0,
				   self->buf, 16, false));
	ASSERT_EQ(16, ts_vhost_counter("pages_referenced"));
	ts_fill_pages(expect, 16, 5, 1);

	/* 512 bytes into block 1: the rest of the block is kept. */
	memset(c, 0x11, 512);
	ASSERT_EQ(0, vblk_rw(&self->g.dev, 0, VIRTIO_BLK_T_OUT, SECTORS + 1, c,
			     512, 0, false));
	memset(expect + PAGE + 512, 0x11, 512);
	/* A write straddling blocks 2 and 3 from an unaligned buffer. */
	memset(c + 100, 0x22, PAGE);
	ASSERT_EQ(0, vblk_rw(&self->g.dev, 0, VIRTIO_BLK_T_OUT,
			     2 * SECTORS + 4, c + 100, PAGE, 0, false));
	memset(expect + 2 * PAGE + 2048, 0x22, PAGE);
	/* Write-zeroes of half of block 4, all of block 5. */
	ASSERT_EQ(0, vblk_discard(&self->g.dev, VIRTIO_BLK_T_WRITE_ZEROES,
				  4 * SECTORS + 4, 4 + SECTORS, 0));
	memset(expect + 4 * PAGE + 2048, 0, 2048 + PAGE);
	/* Discard of block 6: its reference goes. */
	ASSERT_EQ(0, vblk_discard(&self->g.dev, VIRTIO_BLK_T_DISCARD,
				  6 * SECTORS, SECTORS, 0));

	/* Blocks 1 to 6 lost their references. */
	EXPECT_EQ(16 - 6, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ(4, ts_vhost_counter("merged_blocks"));
	ASSERT_EQ(0, vblk_io_pages(&self->g.dev, VIRTIO_BLK_T_IN, 0, c, 16,
				   false));
	/* Block 6 was discarded: its contents are undefined. */
	EXPECT_EQ(0, memcmp(c, expect, 6 * PAGE));
	EXPECT_EQ(0, memcmp(c + 7 * PAGE, expect + 7 * PAGE, 9 * PAGE));
	free(expect);
}

/*
 * Two guests, each with its own memfd RAM, device and disk id (and, in
 * the vhost_user variant, daemon), in cgroups of 3 MiB: every page tagged
 * with its owner and version. Nothing foreign or stale is read back.
 */
#define ISO_PAGES	1024UL
#define ISO_OPS		4000

static int isolated_guest(int owner, bool vhost_user)
{
	__u64 base = (__u64)(owner - 1) * ISO_PAGES * SECTORS;
	long long reconciled;
	struct guest g;
	char group[48];
	long bad;

	snprintf(group, sizeof(group), CGROUP "-%d", owner);
	if (ts_cgroup_enter(group) ||
	    ts_cgroup_write(group, "memory.max", "3M"))
		return 2;
	if (guest_open(&g, owner, GUEST_RAM, vhost_user))
		return 2;
	bad = vblk_isolated_guest(&g.dev, owner, base, ISO_PAGES, ISO_OPS, 0);
	if (bad < 0)
		return 2;
	reconciled = ts_disk_counter(100 + owner, "reconciled_pages");
	printf("# guest %d: %ld bad pages, %lld writes reconciled\n", owner,
	       bad, reconciled);
	guest_close(&g, base, ISO_PAGES * SECTORS);
	ts_cgroup_leave(group);
	/* A 3 MiB cgroup must have made the guest's writes reconcile. */
	return bad || reconciled <= 0 ? 1 : 0;
}

TEST_F_TIMEOUT(shm, two_guests_never_see_each_other, 900)
{
	int owner, status, failed = 0;
	pid_t pid[2];

	/* reconcile.c runs it on /dev/vhost-blk directly. */
	if (!variant->vhost_user)
		SKIP(return, "the vhost_user variant covers it");
	for (owner = 0; owner < 2; owner++) {
		pid[owner] = fork();
		ASSERT_LE(0, pid[owner]);
		if (!pid[owner])
			_exit(isolated_guest(owner + 2, variant->vhost_user));
	}
	for (owner = 0; owner < 2; owner++) {
		ASSERT_EQ(pid[owner], waitpid(pid[owner], &status, 0));
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	EXPECT_EQ(0, failed);
	EXPECT_EQ(0, ts_swapdev_counter("write_errors"));
}

TEST_HARNESS_MAIN
