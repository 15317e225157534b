/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tesseract: userspace ABI (ioctls and structures shared with tools/).
 *
 * TESSERACT_ABI_VERSION changes whenever an incompatible change is made to
 * anything in this file; the module reports its value in
 * /sys/module/tesseract/abi_version.
 */
#ifndef _UAPI_LINUX_TESSERACT_H
#define _UAPI_LINUX_TESSERACT_H

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/vhost.h>

#define TESSERACT_ABI_VERSION	2

/*
 * /dev/vhost-blk: in-kernel virtio-blk backend on the kernel's vhost core.
 *
 * Setup follows the other vhost devices (VHOST_SET_OWNER, VHOST_SET_FEATURES,
 * VHOST_SET_MEM_TABLE, VHOST_SET_VRING_*), then VHOST_BLK_SET_BACKEND. The
 * two numbers below are those of the vhost-blk RFC series, so that a VMM
 * built for it can drive this device.
 *
 * VHOST_BLK_SET_BACKEND: fd of a raw image file or a block device; the index
 * is ignored and the backend serves every ring configured so far. The device
 * is read-only (writes, discards and write-zeroes fail) if the fd was opened
 * without write access or the block device is read-only. O_DIRECT on the fd
 * selects direct, asynchronous I/O. fd -1 detaches the backend after all
 * requests in flight have completed.
 */
#define VHOST_BLK_SET_BACKEND	_IOW(VHOST_VIRTIO, 0xFF, struct vhost_vring_file)

/* Serial number returned by VIRTIO_BLK_T_GET_ID, zero padded, no NUL needed. */
#define VHOST_BLK_SERIAL_BYTES	20
#define VHOST_BLK_SET_SERIAL	_IOW(VHOST_VIRTIO, 0xFE, char[VHOST_BLK_SERIAL_BYTES])

/* Rings the device serves (VIRTIO_BLK_F_MQ num_queues must not exceed it). */
#define VHOST_BLK_MAX_QUEUES	8

/*
 * Limits a VMM must advertise in the virtio-blk config space; requests over
 * them fail with VIRTIO_BLK_S_IOERR. SEG_MAX counts data segments (buffers
 * other than the header and the status byte), SIZE_MAX bytes per segment.
 */
#define VHOST_BLK_SEG_MAX		1022
#define VHOST_BLK_SIZE_MAX		(1U << 20)
#define VHOST_BLK_MAX_DISCARD_SEG	16
#define VHOST_BLK_MAX_WRITE_ZEROES_SEG	16

/*
 * Guest disk identity. References from a guest disk's blocks into the store
 * (reconciliation) belong to the disk's id, not to the device file, so that
 * they outlive a VMM that closes the device. Set before VHOST_BLK_SET_BACKEND
 * (-EBUSY while a backend is attached). 0, the default, derives the id from
 * the backend: VHOST_BLK_DISK_ID_DERIVED plus the device number of a block
 * device, or of a file's filesystem and the low 32 bits of the file's inode
 * number. Ids a VMM chooses must be non-zero and must not have
 * VHOST_BLK_DISK_ID_DERIVED set.
 * GET returns the id in use (0 if no backend is attached).
 *
 * An id is a name, not a credential: the store records with a disk's
 * references the identity of the backend they were taken with (a file's
 * filesystem UUID, inode and generation; a block device's disk sequence
 * number), and they come back only to a backend of the same identity. A
 * backend of another identity attaches empty and takes no references
 * until they are forgotten (TESSERACT_DISK_FORGET). SET_DISK_IDENTITY
 * sets an id together with a token, which then replaces the backend's
 * identity: the references follow the token to any backend (a copied
 * image, a block device after a reboot). The token must not be all zero.
 * Both SET ioctls need CAP_SYS_ADMIN (-EPERM) and the device's owner.
 */
#define VHOST_BLK_DISK_ID_DERIVED	(1ULL << 63)
#define VHOST_BLK_SET_DISK_ID	_IOW(VHOST_VIRTIO, 0xF0, __u64)
#define VHOST_BLK_GET_DISK_ID	_IOR(VHOST_VIRTIO, 0xF1, __u64)

#define VHOST_BLK_TOKEN_BYTES	16

struct vhost_blk_disk_identity {
	__u64 disk_id;
	__u8 token[VHOST_BLK_TOKEN_BYTES];
};

#define VHOST_BLK_SET_DISK_IDENTITY					\
	_IOW(VHOST_VIRTIO, 0xF3, struct vhost_blk_disk_identity)

/*
 * Reconciliation of this device (int: 1 on, the default; 0 off). It takes
 * effect only while the module parameter "reconcile" is also on. Turning it
 * off stops new references; existing ones keep being served.
 */
#define VHOST_BLK_SET_RECONCILE	_IOW(VHOST_VIRTIO, 0xF2, int)

/*
 * The swap mapper for this device (int: 1 on, the default; 0 off): while
 * the module parameter "swap_mapper" is also on, the device fingerprints
 * what the guest reads into whole pages, so that host swap-outs of those
 * pages, unchanged, map to the disk's blocks instead of being written.
 * Turning it off stops new fingerprints; writes of the image keep giving
 * pages mapped to it their copies, whatever the switch says.
 */
#define VHOST_BLK_SET_SWAP_MAPPER	_IOW(VHOST_VIRTIO, 0xF4, int)

/*
 * /dev/tesseract: the module's control node (root only; present while the
 * module has a store). Its ioctls name guest disks by id (see above).
 *
 * TESSERACT_DISK_INFO: fill in the rest of struct tesseract_disk_info for
 * disk_id. ENOENT: no such disk (a disk is known while it is attached or
 * has references).
 *
 * TESSERACT_FLATTEN: copy every referenced block of an attached disk back
 * into its image and drop the references, so that the image is correct on
 * its own (before copying it or migrating the VM). Runs to completion in the
 * caller, with the VM running; the disk takes no new references meanwhile
 * (turn reconciliation off for the device to keep it that way afterwards).
 * Everything done is committed before it returns: 0 means the disk had no
 * references left. ENOENT: no such disk; ENXIO: the disk is not attached
 * (no image to write to); EROFS: its image is read-only; EINTR: a fatal
 * signal stopped it (the blocks cleaned so far stay cleaned); EIO: an I/O
 * error. Progress can be followed with TESSERACT_DISK_INFO from another
 * thread.
 *
 * TESSERACT_DISK_FORGET: drop every reference of a detached disk and the
 * identity they belong to, durably (journalled, or in a checkpoint), then
 * free their store blocks; references tells how many went. The data they
 * held is lost: for a disk whose image is gone, or that attached with
 * another identity (its VMM's disk shows "identity_mismatch"). ENOENT: no
 * such disk; EBUSY: it is attached, being flattened or forgotten; EIO: the
 * journal could not be written (the blocks stay allocated).
 */
#define TESSERACT_DISK_ATTACHED		(1ULL << 0)
#define TESSERACT_DISK_FLATTENING	(1ULL << 1)

struct tesseract_disk_info {
	__u64 disk_id;		/* in */
	__u64 flags;		/* TESSERACT_DISK_* */
	__u64 references;	/* disk blocks that are references now */
	__u64 blocks_cleaned;	/* copied back into the image, ever */
	__u64 blocks_compacted;	/* moved into guest order in the store */
	__u64 bytes_moved;	/* by cleaning and compaction */
};

struct tesseract_flatten {
	__u64 disk_id;		/* in */
	__u64 blocks_cleaned;	/* out: by this call */
};

struct tesseract_disk_forget {
	__u64 disk_id;		/* in */
	__u64 references;	/* out: references dropped */
};

/*
 * TESSERACT_MRC: the miss-ratio curve of one memory cgroup, measured by
 * /dev/tsswap0 (Documentation/admin-guide.rst, "Miss-ratio curves").
 * cgroup_id is the cgroup's id, the inode number of its directory in the
 * cgroup v2 hierarchy. Each swap-in of one of its pages from the device
 * counts in the bucket of its eviction distance d: the pages of the group
 * that went to swap after it and were still there, so that with d + 1
 * more pages of memory it would have been a hit. Bucket b holds distances
 * from TESSERACT_MRC_BUCKET_LO(b) up to TESSERACT_MRC_BUCKET_LO(b + 1) - 1:
 * exact below 8 pages, then 8 buckets per power of two.
 *
 * The counts (buckets, evictions, faults, ...) cover the last window_ns
 * nanoseconds: the current window of the mrc_window_s module parameter
 * and the one before it (0: everything since the module loaded or the
 * group was reset). in_swap is the group's pages in swap now.
 *
 * In: cgroup_id, flags, nr_buckets and buckets (a user pointer to
 * nr_buckets __u64s, or 0). Out: everything else, and at most
 * nr_buckets buckets; nr_buckets becomes TESSERACT_MRC_BUCKETS.
 * TESSERACT_MRC_RESET clears the group's counts after reading them;
 * TESSERACT_MRC_NEXT reads the tracked group with the smallest cgroup id
 * above cgroup_id instead (start at 0 to list them all). ENOENT: no such
 * group is tracked; EOPNOTSUPP: curves are off (module parameter mrc=0).
 */
#define TESSERACT_MRC_BUCKETS		240
static __inline__ __u64 TESSERACT_MRC_BUCKET_LO(unsigned int b)
{
	return b < 8 ? b : (__u64)(8 + (b & 7)) << ((b >> 3) - 1);
}

#define TESSERACT_MRC_RESET		(1U << 0)
#define TESSERACT_MRC_NEXT		(1U << 1)

struct tesseract_mrc {
	__u64 cgroup_id;	/* in (out with TESSERACT_MRC_NEXT) */
	__u32 flags;		/* in: TESSERACT_MRC_* */
	__u32 nr_buckets;	/* in: room at buckets; out: BUCKETS */
	__u64 buckets;		/* in: __u64 *, faults per distance bucket */
	__u64 window_ns;	/* time the counts below cover */
	__u64 evictions;	/* pages that left memory for swap */
	__u64 faults;		/* swap-ins with a distance */
	__u64 unstamped_faults;	/* swap-ins of pages evicted unseen */
	__u64 readahead_reads;	/* reads by swap readahead: not faults */
	__u64 bypassed;		/* faults not read from the device (zeromap, zswap) */
	__u64 in_swap;		/* pages of the group in swap now */
	__u64 reserved[4];
};

#define TESSERACT_IOC_MAGIC	0xE7
#define TESSERACT_DISK_INFO	_IOWR(TESSERACT_IOC_MAGIC, 0x00, struct tesseract_disk_info)
#define TESSERACT_FLATTEN	_IOWR(TESSERACT_IOC_MAGIC, 0x01, struct tesseract_flatten)
#define TESSERACT_DISK_FORGET	_IOWR(TESSERACT_IOC_MAGIC, 0x02, struct tesseract_disk_forget)
#define TESSERACT_MRC		_IOWR(TESSERACT_IOC_MAGIC, 0x03, struct tesseract_mrc)

#endif /* _UAPI_LINUX_TESSERACT_H */
