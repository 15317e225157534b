/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A virtio-blk driver in userspace for /dev/vhost-blk: the "guest" of the
 * selftests (and of tools later). Guest RAM is an anonymous mapping of this
 * process registered with a 1:1 memory table (guest physical address ==
 * our virtual address), as a VMM would register its guest's RAM. Rings live
 * in that RAM; requests are split-ring chains of direct or indirect
 * descriptors, kicks and interrupts are eventfds.
 *
 * Not thread safe: one thread drives a device.
 */
#ifndef _VBLK_GUEST_H
#define _VBLK_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#define VBLK_MAX_QUEUES		8
/* Entries of the indirect table each head owns. */
#define VBLK_INDIRECT_MAX	256

struct vblk_queue {
	unsigned int index;
	unsigned int num;
	struct vring vring;		/* in guest RAM */
	int kick_fd, call_fd, err_fd;
	__u16 free_head;		/* free descriptors, linked by next */
	unsigned int num_free;
	__u16 avail_idx;		/* next avail->idx to publish */
	__u16 kicked_idx;		/* avail->idx at the last kick */
	__u16 last_used;
	void **cookie;			/* per head, NULL if free */
	__u16 *chain_descs;		/* descriptors a head's chain holds */
	struct vring_desc *indirect;	/* num tables of VBLK_INDIRECT_MAX */
	unsigned int in_flight;
};

struct vblk_req;

struct vblk_dev {
	int fd;
	/*
	 * How device requests travel: NULL, ioctls on /dev/vhost-blk;
	 * else messages to a vhost-user back-end on socket fd
	 * (vblk_vhost_user.h), with guest RAM in the memfd ram_fd.
	 */
	int (*transport)(struct vblk_dev *d, unsigned long req, void *arg);
	int ram_fd;
	__u64 vu_protocol;		/* protocol features negotiated */
	/*
	 * The in-flight region: with vu_inflight_queues set, the memory
	 * table goes with GET_INFLIGHT_FD (no fd kept yet) or
	 * SET_INFLIGHT_FD (the fd kept across back-ends), as QEMU does.
	 */
	int vu_inflight_fd;
	__u64 vu_inflight_size;
	__u16 vu_inflight_queues, vu_inflight_qsize;
	__u8 *ram;
	size_t ram_size;
	size_t ram_used;		/* bump allocator */
	__u64 features;		/* negotiated */
	unsigned int nqueues;
	struct vblk_queue q[VBLK_MAX_QUEUES];
	struct vblk_req *sync_req[VBLK_MAX_QUEUES];	/* for vblk_rw() */
	/* The segment vblk_discard_q() sends on each queue, in guest RAM. */
	struct virtio_blk_discard_write_zeroes *sync_seg[VBLK_MAX_QUEUES];
};

/* A guest buffer; device_writes marks the ones the device fills in. */
struct vblk_buf {
	void *addr;
	__u32 len;
	bool device_writes;
};

/*
 * Open /dev/vhost-blk, become its owner, negotiate @want_features (those the
 * device offers; VIRTIO_F_VERSION_1 is always asked for) and set up @nqueues
 * rings of @qsize entries in @ram_size bytes of guest RAM. 0 or -errno.
 */
int vblk_open(struct vblk_dev *d, size_t ram_size, unsigned int nqueues,
	      unsigned int qsize, __u64 want_features);
/*
 * vblk_open() in two steps, for device ioctls that must come before
 * VHOST_SET_OWNER: map guest RAM and open the device, then the rest.
 */
int vblk_open_dev(struct vblk_dev *d, size_t ram_size);
/*
 * Guest RAM of @ram_size bytes for @d: private anonymous memory, or with
 * @memfd a memfd (sealable, in d->ram_fd) mapped shared at a 2 MiB
 * boundary, as QEMU's memory-backend-memfd maps it for vhost-user.
 */
int vblk_map_ram(struct vblk_dev *d, size_t ram_size, bool memfd);
/* Which of the two vblk_open_dev() maps: false (the default), anonymous. */
extern bool vblk_memfd_ram;
int vblk_setup(struct vblk_dev *d, unsigned int nqueues, unsigned int qsize,
	       __u64 want_features);
/*
 * Allocate what vblk_rw() and vblk_discard_q() use on each queue now: the
 * guest RAM allocator is not thread safe, and afterwards each queue can be
 * driven by a thread of its own. 0 or -ENOMEM.
 */
int vblk_prepare_queues(struct vblk_dev *d);
/* The memory table again (all of guest RAM), for a new back-end. */
int vblk_set_memory_table(struct vblk_dev *d);
/*
 * (Re)start ring @q on the device with its state as it is in guest RAM,
 * the device taking requests from avail index @base. 0 or -errno.
 */
int vblk_queue_start(struct vblk_dev *d, struct vblk_queue *q, __u16 base);
/* Attach a backend (fd -1 detaches). 0 or -errno. */
int vblk_set_backend(struct vblk_dev *d, int fd);
int vblk_set_serial(struct vblk_dev *d, const char serial[20]);
/* An unopened device that vblk_close() may be called on. */
void vblk_init(struct vblk_dev *d);
/* Close the device and free guest RAM; safe on a half-opened device. */
void vblk_close(struct vblk_dev *d);
bool vblk_has_feature(const struct vblk_dev *d, unsigned int bit);

/* Guest RAM, zeroed, @align a power of 2; NULL when exhausted. */
void *vblk_alloc(struct vblk_dev *d, size_t size, size_t align);

/*
 * Post one chain (device-readable buffers first) on queue @qi, through an
 * indirect table if @indirect. Returns the head or -ENOSPC / -EINVAL. The
 * chain is visible to the device at once; vblk_kick() notifies it.
 */
int vblk_post(struct vblk_dev *d, unsigned int qi, const struct vblk_buf *bufs,
	      unsigned int n, bool indirect, void *cookie);
/*
 * Post a hand-made chain on @qi: @n descriptors whose addr, len and flags
 * (CPU byte order) are written as they are, and whose next, when below @n,
 * names the entry of @descs it links to (any other value is written as it
 * is). Through an indirect table if @indirect, whose head descriptor then
 * claims @table_len bytes (0: the table's size). For hostile chains: the
 * device may break the queue on it; one that comes back must have linked
 * all @n descriptors from the first, for vblk_get_used() to free them.
 * Returns the head or -ENOSPC / -EINVAL.
 */
int vblk_post_raw(struct vblk_dev *d, unsigned int qi,
		  const struct vring_desc *descs, unsigned int n,
		  bool indirect, __u32 table_len, void *cookie);
/* Publish a raw head in the avail ring (for hand-crafted, hostile chains). */
void vblk_post_head(struct vblk_dev *d, unsigned int qi, __u16 head);
/*
 * Notify the device if it asked for it (event idx or used flags): true if
 * it was notified.
 */
bool vblk_kick(struct vblk_dev *d, unsigned int qi);
/*
 * Take one completed chain: 1 and its cookie and used length, or 0 if none
 * is ready. Re-arms the interrupt (used_event) when the ring is empty.
 */
int vblk_get_used(struct vblk_dev *d, unsigned int qi, void **cookie,
		  __u32 *len);
/* Wait up to @timeout_ms for a completion on @qi; 1 ready, 0 timeout. */
int vblk_wait(struct vblk_dev *d, unsigned int qi, int timeout_ms);
/* True if the device signalled the vring error eventfd of @qi. */
bool vblk_queue_error(struct vblk_dev *d, unsigned int qi);

/* A virtio-blk request laid out in guest RAM. */
struct vblk_req {
	struct virtio_blk_outhdr *hdr;
	__u8 *status;
	void *data;			/* caller's buffer, in guest RAM */
	size_t len;
	__u32 type;
	__u32 used_len;
	bool done;
};

/* Allocate the header and status of a request in guest RAM. */
struct vblk_req *vblk_req_alloc(struct vblk_dev *d);
/*
 * Queue a request of @type at @sector on @qi. The data (if @len) is split into
 * segments of at most @seg_max bytes (0: one segment). 0 or -errno.
 */
int vblk_req_submit(struct vblk_dev *d, unsigned int qi, struct vblk_req *r,
		    __u32 type, __u64 sector, void *data, size_t len,
		    size_t seg_max, bool indirect);
/*
 * Reap completions on @qi until @r is done or @timeout_ms passes: its status,
 * or -ETIMEDOUT.
 */
int vblk_req_wait(struct vblk_dev *d, unsigned int qi, struct vblk_req *r,
		  int timeout_ms);
/* Submit, kick and wait: the status, or -errno. */
int vblk_rw(struct vblk_dev *d, unsigned int qi, __u32 type,
	    __u64 sector, void *data, size_t len, size_t seg_max,
	    bool indirect);

/*
 * One-segment VIRTIO_BLK_T_DISCARD or VIRTIO_BLK_T_WRITE_ZEROES (@type) of
 * @sectors at @sector on queue @qi: the status, or -errno.
 */
int vblk_discard_q(struct vblk_dev *d, unsigned int qi, __u32 type,
		   __u64 sector, __u32 sectors, __u32 flags);
/* vblk_discard_q() on queue 0. */
int vblk_discard(struct vblk_dev *d, __u32 type, __u64 sector, __u32 sectors,
		 __u32 flags);

/*
 * Move @pages 4 KiB pages at @data to or from (@type) the disk at @sector
 * on queue 0, in requests of up to VBLK_IO_PAGES pages (1 MiB), each one
 * segment (direct, or through an indirect table if @indirect): 0, or the
 * first bad status or -errno.
 */
#define VBLK_IO_PAGES	256
int vblk_io_pages(struct vblk_dev *d, __u32 type, __u64 sector, void *data,
		  size_t pages, bool indirect);
/*
 * vblk_open() with one ring of 128 entries and @ram_size bytes of guest
 * RAM, disk id @disk_id (0: derived from the backend), backend @disk_fd.
 */
int vblk_open_disk(struct vblk_dev *d, size_t ram_size, int disk_fd,
		   __u64 disk_id);
/*
 * vblk_open_disk() with an identity token (VHOST_BLK_SET_DISK_IDENTITY):
 * the references follow the token, for images that come back as other
 * devices (a crash replay, a reboot).
 */
int vblk_open_disk_token(struct vblk_dev *d, size_t ram_size, int disk_fd,
			 __u64 disk_id, const char *token);
/*
 * Undo vblk_open_disk(): discard sectors [0, @sectors) first, so that the
 * disk leaves no references to the next test's store; close @disk_fd.
 */
void vblk_close_disk(struct vblk_dev *d, int disk_fd, __u64 sectors);
/* vblk_open_disk() with @nqueues rings. */
int vblk_open_disk_mq(struct vblk_dev *d, size_t ram_size,
		      unsigned int nqueues, int disk_fd, __u64 disk_id);

#endif /* _VBLK_GUEST_H */
