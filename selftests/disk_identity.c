// SPDX-License-Identifier: GPL-2.0
/*
 * Disk identity: references belong to a disk id *and* to the identity of
 * the backend they were taken with, recorded in the store. An id alone
 * never grants them: a new image that reuses a deleted one's inode number
 * starts empty; only a privileged owner of the device sets an id; and
 * `tesseractctl disk forget` drops a detached disk's references durably.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define PAGE		4096UL
#define SECTORS		(PAGE / 512)
#define CGROUP		"ts-ident"
#define PAGES		256UL
#define DISK		"/dev/vda"
#define STORE		"/dev/vdb"
#define MNT		"/tmp/ts-ident-mnt"
#define IMAGE_BYTES	(64UL << 20)
#define SPACER		(128UL << 10)
#define GUEST_RAM	(3 * PAGES * PAGE + (4 << 20))
#define OUT		"/tmp/ts-ident.out"
/* A small ext4, which reuses a deleted file's inode number at once. */
#define MKFS_AND_MOUNT \
	"mkfs.ext4 -q -F -b 4096 " DISK " 262144 && mkdir -p " MNT " && mount " DISK " " MNT

FIXTURE(id) {
	struct vblk_dev dev;
	int fd;
	bool mounted;
};

FIXTURE_SETUP(id)
{
	vblk_init(&self->dev);
	self->fd = -1;
	self->mounted = false;
	ASSERT_EQ(0, ts_swap_up("backing=" STORE));
	/* Guest RAM is charged to the group that first touches it. */
	ASSERT_EQ(0, ts_cgroup_enter(CGROUP));
}

FIXTURE_TEARDOWN(id)
{
	vblk_close_disk(&self->dev, self->fd, PAGES * SECTORS);
	if (self->mounted)
		ts_system_quiet("umount " MNT);
	ts_cgroup_leave(CGROUP);
	ts_swap_down();
}

/* The (only) open device's disk id. */
static __u64 disk_id(struct vblk_dev *d)
{
	__u64 id = 0;

	ioctl(d->fd, VHOST_BLK_GET_DISK_ID, &id);
	return id;
}

/*
 * Guest pages (@tag, i, 1) pushed to host swap and written to blocks
 * [0, PAGES) of the disk: the references the disk has afterwards.
 */
static long long make_refs(struct vblk_dev *d, unsigned long tag)
{
	struct tesseract_disk_info info;
	char *spacer, *buf;

	/*
	 * The request's own guest memory first, then a gap wider than swap
	 * readahead: faulting those in must not bring any of buf back into
	 * the swap cache (such pages are written, not referenced).
	 */
	if (vblk_prepare_queues(d))
		return -1;
	spacer = vblk_alloc(d, SPACER, PAGE);
	buf = vblk_alloc(d, PAGES * PAGE, PAGE);
	if (!spacer || !buf || ts_fill_and_push(CGROUP, buf, PAGES, tag, 1))
		return -1;
	/* A full-page read into the spacer touches them: the warm-up. */
	if (vblk_io_pages(d, VIRTIO_BLK_T_IN, PAGES * SECTORS, spacer, 1,
			  false) ||
	    vblk_io_pages(d, VIRTIO_BLK_T_OUT, 0, buf, PAGES, false) ||
	    ts_disk_info(disk_id(d), &info))
		return -1;
	return info.references;
}

/* Pages of [0, PAGES) of the disk that read back as the old (@tag, i, 1). */
static long long inherited_pages(struct vblk_dev *d, unsigned long tag)
{
	char *buf = vblk_alloc(d, PAGES * PAGE, PAGE);

	if (!buf || vblk_io_pages(d, VIRTIO_BLK_T_IN, 0, buf, PAGES, false))
		return -1;
	return PAGES - ts_bad_pages(buf, PAGES, tag, 1);
}

/* tesseractctl disk forget @id, output in OUT: its exit status. */
static int forget_disk(__u64 id)
{
	char args[128];

	snprintf(args, sizeof(args), "disk forget %llx >" OUT " 2>&1",
		 (unsigned long long)id);
	return ts_tool(args);
}

/* Does OUT (up to 1 MiB of it: a dump of 256 references fits) say @needle? */
static bool out_contains(const char *needle)
{
	static char buf[1 << 20];
	size_t n = 0;
	FILE *f = fopen(OUT, "r");

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return strstr(buf, needle);
}

static int make_image(const char *path, ino_t *ino)
{
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || ftruncate(fd, IMAGE_BYTES) || fstat(fd, &st))
		return -1;
	*ino = st.st_ino;
	close(fd);
	return open(path, O_RDWR | O_DIRECT);
}

/*
 * An image with references is deleted; a new one gets its inode number,
 * hence its derived id. Attached, it starts empty: nothing of the old
 * guest's memory reaches it. The old references stay, counted and logged,
 * until forgotten.
 */
TEST_F_TIMEOUT(id, reused_inode_inherits_nothing, 300)
{
	struct tesseract_disk_info info;
	ino_t ino1, ino2;
	long long n = -1;
	__u64 id;
	int kmsg;

	ASSERT_EQ(0, ts_system(MKFS_AND_MOUNT));
	self->mounted = true;
	self->fd = make_image(MNT "/a.img", &ino1);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->fd, 0));
	id = disk_id(&self->dev);
	ASSERT_EQ((long long)PAGES, make_refs(&self->dev, 11));
	vblk_close(&self->dev);
	close(self->fd);
	self->fd = -1;
	ASSERT_EQ(0, unlink(MNT "/a.img"));

	self->fd = make_image(MNT "/b.img", &ino2);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(ino1, ino2) TH_LOG("ext4 did not reuse inode %lu", ino1);
	kmsg = ts_kmsg_open();
	vblk_init(&self->dev);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->fd, 0));
	/* The same derived id: only the identity tells the images apart. */
	EXPECT_EQ(id, disk_id(&self->dev));
	EXPECT_EQ(0, inherited_pages(&self->dev, 11));
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "another backend identity"));
	EXPECT_EQ(1, ts_disk_counter(id, "identity_mismatch"));
	EXPECT_EQ(0, ts_read_ll(TS_DEBUGFS "/identity_mismatches", &n));
	EXPECT_EQ(1, n);
	close(kmsg);
	/* The old references are kept, under the old identity. */
	ASSERT_EQ(0, ts_disk_info(id, &info));
	EXPECT_EQ((long long)PAGES, (long long)info.references);
	EXPECT_EQ(0ULL, info.flags & TESSERACT_DISK_ATTACHED);
	/* Forgotten while the new image is attached: they go. */
	EXPECT_EQ(0, forget_disk(id));
	ASSERT_EQ(0, ts_disk_info(id, &info));
	EXPECT_EQ(0ULL, info.references);
	EXPECT_EQ(0, inherited_pages(&self->dev, 11));
}

/*
 * Setting a disk id takes CAP_SYS_ADMIN and the ownership of the device:
 * an id is the name of references, whoever sets it may inherit them.
 */
static int drop_cap_sys_admin(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	data[CAP_SYS_ADMIN / 32].effective &= ~(1U << (CAP_SYS_ADMIN % 32));
	data[CAP_SYS_ADMIN / 32].permitted &= ~(1U << (CAP_SYS_ADMIN % 32));
	return syscall(SYS_capset, &hdr, data);
}

/* In a child: SET_DISK_ID on @d (ours, or not if @own is false): errno. */
static int set_id_in_child(struct vblk_dev *d, bool own, bool drop_cap)
{
	int status, ret;
	__u64 id = 0x1d;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		struct vblk_dev mine;

		vblk_init(&mine);
		if (own && vblk_open(&mine, 1 << 20, 1, 16, 0))
			_exit(200);
		if (drop_cap && drop_cap_sys_admin())
			_exit(201);
		ret = ioctl(own ? mine.fd : d->fd, VHOST_BLK_SET_DISK_ID, &id);
		_exit(ret ? errno : 0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

TEST_F(id, set_disk_id_needs_cap_sys_admin_and_ownership)
{
	ASSERT_EQ(0, vblk_open(&self->dev, 1 << 20, 1, 16, 0));
	/* Its own device, without CAP_SYS_ADMIN. */
	EXPECT_EQ(EPERM, set_id_in_child(NULL, true, true));
	/* Root, but not the owner of the device. */
	EXPECT_EQ(EPERM, set_id_in_child(&self->dev, false, false));
	/* Root and owner. */
	EXPECT_EQ(0, set_id_in_child(NULL, true, false));
}

/*
 * tesseractctl disk forget: refused while the disk is attached; detached,
 * its references go durably (journalled at once, in the next checkpoint),
 * and their store blocks are free.
 */
TEST_F_TIMEOUT(id, forget_frees_blocks_and_survives_reload, 300)
{
	long long before, after;
	struct tesseract_disk_info info;
	__u64 id;

	self->fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->fd, 0));
	id = disk_id(&self->dev);
	ASSERT_EQ((long long)PAGES, make_refs(&self->dev, 12));
	EXPECT_EQ(1, forget_disk(id));
	EXPECT_TRUE(out_contains("attached"));
	EXPECT_EQ(0, ts_disk_info(id, &info));

	/* Guest RAM goes with the device: its swap slots too. */
	vblk_close(&self->dev);
	ASSERT_EQ(0, swapoff("/dev/tsswap0"));
	before = ts_swapdev_counter("blocks_in_use");
	EXPECT_LE((long long)PAGES, before);
	ASSERT_EQ(0, forget_disk(id));
	EXPECT_TRUE(out_contains("256 references"));
	EXPECT_EQ(-ENOENT, ts_disk_info(id, &info));
	after = ts_swapdev_counter("blocks_in_use");
	EXPECT_EQ(before - (long long)PAGES, after);
	EXPECT_EQ(1, forget_disk(id));
	/* In the journal now: dump reads the store in use. */
	ASSERT_EQ(0, ts_tool("dump " STORE " >" OUT " 2>&1"));
	EXPECT_TRUE(out_contains("FORGET"));
	EXPECT_TRUE(out_contains("references: 0"));

	ASSERT_EQ(0, ts_module_unload());
	EXPECT_EQ(0, ts_tool("check " STORE " >" OUT " 2>&1"));
	EXPECT_TRUE(out_contains("consistent: 0 references"));
	ASSERT_EQ(0, ts_module_load("backing=" STORE));
	EXPECT_EQ(-ENOENT, ts_disk_info(id, &info));
	EXPECT_EQ(0, ts_swapdev_counter("blocks_in_use"));
	/* The same image again: nothing comes back. */
	vblk_init(&self->dev);
	ASSERT_EQ(0, vblk_open_disk(&self->dev, GUEST_RAM, self->fd, 0));
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ(0, inherited_pages(&self->dev, 12));
}

/*
 * A device on @fd with disk id @id and @token (NULL: SET_DISK_ID alone,
 * the backend's identity): 0 or -errno.
 */
static int open_with(struct vblk_dev *d, int fd, __u64 id, const char *token)
{
	struct vhost_blk_disk_identity ident = { .disk_id = id };
	int ret;

	vblk_init(d);
	ret = vblk_open(d, GUEST_RAM, 1, 128, 0);
	if (ret)
		return ret;
	if (token) {
		memcpy(ident.token, token,
		       strnlen(token, sizeof(ident.token)));
		ret = ioctl(d->fd, VHOST_BLK_SET_DISK_IDENTITY, &ident);
	} else {
		ret = ioctl(d->fd, VHOST_BLK_SET_DISK_ID, &id);
	}
	return ret ? -errno : vblk_set_backend(d, fd);
}

/*
 * With a token, the references follow the token, not the backend: the
 * same id without it, or with another, attaches empty; with it, after a
 * reload, they come back.
 */
TEST_F_TIMEOUT(id, token_binds_references_not_the_backend, 300)
{
	struct vhost_blk_disk_identity zero = { .disk_id = 0x1d };
	struct vhost_blk_disk_identity other = {
		.disk_id = 0x1e,
		.token = "vm-1e",
	};
	char *buf;

	self->fd = open(DISK, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, open_with(&self->dev, self->fd, 0x1d, "vm-1d"));
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_DISK_IDENTITY, &other));
	EXPECT_EQ(EBUSY, errno);
	ASSERT_EQ((long long)PAGES, make_refs(&self->dev, 13));
	vblk_close(&self->dev);

	ASSERT_EQ(0, open_with(&self->dev, self->fd, 0x1d, NULL));
	EXPECT_EQ(1, ts_vhost_counter("identity_mismatch"));
	EXPECT_EQ(0, inherited_pages(&self->dev, 13));
	vblk_close(&self->dev);
	ASSERT_EQ(0, open_with(&self->dev, self->fd, 0x1d, "vm-1e"));
	EXPECT_EQ(1, ts_vhost_counter("identity_mismatch"));
	EXPECT_EQ(0, inherited_pages(&self->dev, 13));
	/* A mismatched disk takes no references: they would share the id. */
	buf = vblk_alloc(&self->dev, PAGES * PAGE, PAGE);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0UL, ts_fill_and_push(CGROUP, buf, PAGES, 14, 1));
	ASSERT_EQ(0, vblk_io_pages(&self->dev, VIRTIO_BLK_T_OUT, 0, buf, PAGES,
				   false));
	EXPECT_EQ(0, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("fallback_identity"));
	vblk_close(&self->dev);

	ASSERT_EQ(0, swapoff("/dev/tsswap0"));
	ASSERT_EQ(0, ts_module_unload());
	ASSERT_EQ(0, ts_module_load("backing=" STORE));
	ASSERT_EQ(0, open_with(&self->dev, self->fd, 0x1d, "vm-1d"));
	EXPECT_EQ(0, ts_vhost_counter("identity_mismatch"));
	EXPECT_EQ((long long)PAGES, ts_vhost_counter("pages_referenced"));
	EXPECT_EQ((long long)PAGES, inherited_pages(&self->dev, 13));
	/* A token of zeros is none. */
	vblk_close(&self->dev);
	vblk_init(&self->dev);
	ASSERT_EQ(0, vblk_open(&self->dev, GUEST_RAM, 1, 128, 0));
	EXPECT_EQ(-1, ioctl(self->dev.fd, VHOST_BLK_SET_DISK_IDENTITY, &zero));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, vblk_set_backend(&self->dev, self->fd));
}

TEST_HARNESS_MAIN
