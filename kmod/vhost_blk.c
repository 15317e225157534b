// SPDX-License-Identifier: GPL-2.0
/*
 * tesseract: vhost-blk, an in-kernel virtio-blk device on the vhost core.
 *
 * The VMM hands us its rings and guest memory layout through the usual vhost
 * ioctls and a raw image file or block device through VHOST_BLK_SET_BACKEND.
 * The vhost worker, which runs with the VMM's mm, pulls requests off the
 * rings and moves data between guest memory and the backend with kernel
 * reads and writes on the guest's own iovecs: guest pages are never pinned
 * beyond one I/O, so they stay swappable (the point of the whole module).
 *
 * With an O_DIRECT backend the reads and writes are asynchronous kiocbs; their
 * completion (often in interrupt context, without the VMM's mm) is handed
 * back to the worker, which writes the status byte and returns the buffer.
 * Otherwise a request completes in the worker before the next starts, but
 * for those that would make it wait for a disk, which kworkers serve (see
 * vhost_blk_offload_work()).
 *
 * Everything in a request comes from an untrusted guest: the vhost core
 * checks the descriptor chains and translates addresses; this file checks
 * what they mean (header, status byte, direction, sizes, sectors).
 *
 * Reconciliation (reconcile.c) hooks in here: whole guest pages of a write
 * that the host swapped out to our swap device become references to their
 * store blocks; reads of referenced blocks come from the store; full-page
 * reads into swapped-out guest pages drop the swap entry instead of
 * swapping the page in. A read that one run of store blocks serves whole,
 * into whole guest pages (a guest's page-in), is asynchronous like an
 * O_DIRECT one; other requests that touch references are served
 * synchronously, block by block, writes in a kworker; all others take the
 * ordinary path above.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": vhost-blk: " fmt

#include <linux/blkdev.h>
#include <linux/capability.h>
#include <linux/cgroup.h>
#include <linux/debugfs.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/llist.h>
#include <linux/memcontrol.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/kdev_t.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/sched/clock.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uio.h>
#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <uapi/linux/tesseract.h>

#include "compat.h"
#include "tesseract.h"
#include "vhost.h"

#define VHOST_BLK_SECTOR_SHIFT	9
#define VHOST_BLK_SECTOR_SIZE	BIT(VHOST_BLK_SECTOR_SHIFT)

/* Requests a ring handles before letting the other rings run. */
#define VHOST_BLK_PKT_WEIGHT	256
#define VHOST_BLK_BYTE_WEIGHT	0x80000

/* VIRTIO_BLK_F_RO is added while a read-only backend is attached. */
#define VHOST_BLK_FEATURES ((1ULL << VIRTIO_F_VERSION_1) |		\
			    (1ULL << VIRTIO_F_NOTIFY_ON_EMPTY) |	\
			    (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |	\
			    (1ULL << VIRTIO_RING_F_EVENT_IDX) |		\
			    (1ULL << VIRTIO_BLK_F_SIZE_MAX) |		\
			    (1ULL << VIRTIO_BLK_F_SEG_MAX) |		\
			    (1ULL << VIRTIO_BLK_F_BLK_SIZE) |		\
			    (1ULL << VIRTIO_BLK_F_FLUSH) |		\
			    (1ULL << VIRTIO_BLK_F_MQ) |			\
			    (1ULL << VIRTIO_BLK_F_DISCARD) |		\
			    (1ULL << VIRTIO_BLK_F_WRITE_ZEROES))

enum vhost_blk_io_mode {
	VHOST_BLK_IO_NONE,	/* no backend */
	VHOST_BLK_IO_BUFFERED,
	VHOST_BLK_IO_DIRECT,
};

static const char * const vhost_blk_io_mode_names[] = {
	[VHOST_BLK_IO_NONE] = "none",
	[VHOST_BLK_IO_BUFFERED] = "buffered",
	[VHOST_BLK_IO_DIRECT] = "direct",
};

enum vhost_blk_counter {
	VHOST_BLK_REQ_IN,
	VHOST_BLK_REQ_OUT,
	VHOST_BLK_REQ_FLUSH,
	VHOST_BLK_REQ_GET_ID,
	VHOST_BLK_REQ_DISCARD,
	VHOST_BLK_REQ_WRITE_ZEROES,
	VHOST_BLK_REQ_UNSUPPORTED,
	VHOST_BLK_BYTES_READ,
	VHOST_BLK_BYTES_WRITTEN,
	VHOST_BLK_ERRORS,		/* requests completed with IOERR */
	VHOST_BLK_BROKEN_QUEUES,	/* rings stopped by a malformed chain */
	VHOST_BLK_BUFFERED_FALLBACKS,	/* direct mode, served buffered */
	VHOST_BLK_RECONCILED_WRITES,	/* writes with a page referenced */
	VHOST_BLK_RECONCILED_PAGES,
	VHOST_BLK_STORE_READS,		/* blocks read from the store */
	VHOST_BLK_FALSE_READS_AVOIDED,
	VHOST_BLK_SWAPINS_AVOIDED,
	VHOST_BLK_DATA_BYTES_NOT_WRITTEN,
	VHOST_BLK_MERGED_BLOCKS,	/* partial writes merged with a reference */
	VHOST_BLK_DROPPED_REFERENCES,
	/* One per ts_outcome after TS_OUTCOME_REFERENCED, in that order. */
	VHOST_BLK_FALLBACK_UNALIGNED,
	VHOST_BLK_FALLBACK_NOT_SWAPPED,
	VHOST_BLK_FALLBACK_OTHER_SWAPDEV,
	VHOST_BLK_FALLBACK_SWAPCACHE,
	VHOST_BLK_FALLBACK_SLOT_INCOMPLETE,
	VHOST_BLK_FALLBACK_STORE_FULL,
	VHOST_BLK_FALLBACK_NO_MEMORY,
	VHOST_BLK_FALLBACK_FLATTENING,
	VHOST_BLK_FALLBACK_NO_ACCESS,
	VHOST_BLK_FALLBACK_DISK_QUOTA,
	VHOST_BLK_FALLBACK_IDENTITY,
	VHOST_BLK_FALLBACK_COMMIT_BEHIND,
	VHOST_BLK_FALLBACK_SWAP_MAPPED,
	VHOST_BLK_POLLED_REQUESTS,	/* found by busy polling, no kick */
	VHOST_BLK_POLLED_COMPLETIONS,	/* completed while busy polling */
	VHOST_BLK_NR_COUNTERS,
};

static const char * const vhost_blk_counter_names[] = {
	[VHOST_BLK_REQ_IN] = "requests_in",
	[VHOST_BLK_REQ_OUT] = "requests_out",
	[VHOST_BLK_REQ_FLUSH] = "requests_flush",
	[VHOST_BLK_REQ_GET_ID] = "requests_get_id",
	[VHOST_BLK_REQ_DISCARD] = "requests_discard",
	[VHOST_BLK_REQ_WRITE_ZEROES] = "requests_write_zeroes",
	[VHOST_BLK_REQ_UNSUPPORTED] = "requests_unsupported",
	[VHOST_BLK_BYTES_READ] = "bytes_read",
	[VHOST_BLK_BYTES_WRITTEN] = "bytes_written",
	[VHOST_BLK_ERRORS] = "errors",
	[VHOST_BLK_BROKEN_QUEUES] = "broken_queues",
	[VHOST_BLK_BUFFERED_FALLBACKS] = "buffered_fallbacks",
	[VHOST_BLK_RECONCILED_WRITES] = "reconciled_writes",
	[VHOST_BLK_RECONCILED_PAGES] = "reconciled_pages",
	[VHOST_BLK_STORE_READS] = "store_reads",
	[VHOST_BLK_FALSE_READS_AVOIDED] = "false_reads_avoided",
	[VHOST_BLK_SWAPINS_AVOIDED] = "swapins_avoided",
	[VHOST_BLK_DATA_BYTES_NOT_WRITTEN] = "data_bytes_not_written",
	[VHOST_BLK_MERGED_BLOCKS] = "merged_blocks",
	[VHOST_BLK_DROPPED_REFERENCES] = "dropped_references",
	[VHOST_BLK_FALLBACK_UNALIGNED] = "fallback_unaligned",
	[VHOST_BLK_FALLBACK_NOT_SWAPPED] = "fallback_not_swapped",
	[VHOST_BLK_FALLBACK_OTHER_SWAPDEV] = "fallback_other_swapdev",
	[VHOST_BLK_FALLBACK_SWAPCACHE] = "fallback_swapcache",
	[VHOST_BLK_FALLBACK_SLOT_INCOMPLETE] = "fallback_slot_incomplete",
	[VHOST_BLK_FALLBACK_STORE_FULL] = "fallback_store_full",
	[VHOST_BLK_FALLBACK_NO_MEMORY] = "fallback_no_memory",
	[VHOST_BLK_FALLBACK_FLATTENING] = "fallback_flattening",
	[VHOST_BLK_FALLBACK_NO_ACCESS] = "fallback_no_access",
	[VHOST_BLK_FALLBACK_DISK_QUOTA] = "fallback_disk_quota",
	[VHOST_BLK_FALLBACK_IDENTITY] = "fallback_identity",
	[VHOST_BLK_FALLBACK_COMMIT_BEHIND] = "fallback_commit_behind",
	[VHOST_BLK_FALLBACK_SWAP_MAPPED] = "fallback_swap_mapped",
	[VHOST_BLK_POLLED_REQUESTS] = "polled_requests",
	[VHOST_BLK_POLLED_COMPLETIONS] = "polled_completions",
};

/*
 * Busy polling trades CPU time for latency: where the worker would sleep
 * on an empty ring until the guest's next kick or the backend's next
 * completion wakes it, it spins for up to this long, with the guest's
 * notifications off, taking the completion and the next request itself.
 * A request at queue depth 1 then costs no wakeup of the worker and no
 * kick. A ring's own non-zero time (VHOST_SET_VRING_BUSYLOOP_TIMEOUT, the
 * vhost core's ioctl that vhost-net uses) overrides it; 0 is off. The time
 * is bounded: the worker spins holding the ring's mutex.
 */
#define VHOST_BLK_BUSY_POLL_MAX_US	(10 * USEC_PER_MSEC)

static unsigned int busy_poll_us;

static int busy_poll_us_set(const char *val, const struct kernel_param *kp)
{
	unsigned int us;

	if (kstrtouint(val, 0, &us) || us > VHOST_BLK_BUSY_POLL_MAX_US) {
		pr_err("busy_poll_us=%.*s: not a time from 0 (off) to %lu microseconds\n",
		       (int)strcspn(val, "\n"), val, VHOST_BLK_BUSY_POLL_MAX_US);
		return -EINVAL;
	}
	WRITE_ONCE(busy_poll_us, us);
	return 0;
}

static const struct kernel_param_ops busy_poll_us_ops = {
	.set = busy_poll_us_set,
	.get = param_get_uint,
};

module_param_cb(busy_poll_us, &busy_poll_us_ops, &busy_poll_us, 0644);
MODULE_PARM_DESC(busy_poll_us,
		 "vhost-blk workers spin this long on an empty ring for the next request or completion before they sleep, unless a ring sets its own (VHOST_SET_VRING_BUSYLOOP_TIMEOUT) (default: 0, off)");

/* What every ring of a device serves; immutable while attached. */
struct vhost_blk_backend {
	struct file *file;
	struct ts_disk *disk;	/* owns the references of this disk's blocks */
	u64 capacity;		/* in 512-byte sectors */
	unsigned int dio_align;	/* alignment O_DIRECT needs, a power of 2 */
	bool read_only;
	bool direct;
};

struct vhost_blk;

struct vhost_blk_queue {
	struct vhost_virtqueue vq;
	struct vhost_blk *blk;
	/* Asynchronous completions waiting for the worker. */
	struct llist_head done;
	struct vhost_work done_work;
	/* The same, once no worker will run again: vhost_blk_orphan_work(). */
	struct work_struct orphan_work;
	/* Requests taken off this ring and not yet completed. */
	atomic_t in_flight;
	/* Protected by vq.mutex. */
	bool throttled;		/* stopped at in_flight == vq.num */
	bool broken;		/* a malformed chain stopped the ring */
	/* The worker busy polls this ring: see vhost_blk_busy_poll(). */
	bool polling;
};

struct vhost_blk {
	struct vhost_dev dev;
	struct vhost_blk_queue queues[VHOST_BLK_MAX_QUEUES];
	/* Protected by dev.mutex. */
	struct vhost_blk_backend *backend;

	/* Requests in flight on all rings. */
	spinlock_t in_flight_lock;
	unsigned int in_flight;
	unsigned int max_in_flight;	/* high-water mark, for debugfs */
	wait_queue_head_t drain_wq;

	spinlock_t serial_lock;	/* serial: ioctl vs. GET_ID in the worker */
	char serial[VHOST_BLK_SERIAL_BYTES];

	u64 disk_id;		/* VHOST_BLK_SET_DISK_ID; 0: derive. dev.mutex */
	/* VHOST_BLK_SET_DISK_IDENTITY's token, if any; dev.mutex. */
	bool has_token;
	u8 token[VHOST_BLK_TOKEN_BYTES];
	bool reconcile;		/* VHOST_BLK_SET_RECONCILE; read by the worker */
	bool swap_mapper;	/* VHOST_BLK_SET_SWAP_MAPPER; read by the worker */
	/* Requests served by kworkers: see vhost_blk_offload(). */
	struct workqueue_struct *write_wq;	/* ordered */
	struct workqueue_struct *read_wq;
	/* Writes on write_wq, for reads of their blocks to wait for. */
	spinlock_t writes_lock;
	struct list_head writes;
	wait_queue_head_t writes_done;

	int id;
	int io_mode;		/* enum vhost_blk_io_mode, for debugfs */
	struct dentry *debugfs;
	atomic64_t counters[VHOST_BLK_NR_COUNTERS];
};

struct vhost_blk_req {
	struct vhost_blk_queue *queue;
	struct llist_node done_node;
	struct kiocb iocb;
	struct iov_iter iter;
	u8 __user *status;
	size_t len;		/* data bytes */
	long result;		/* bytes moved or -errno */
	u16 head;
	bool write;
	bool counted;		/* bytes_written counted as written */
	struct vhost_blk_store_read *store_read;	/* or NULL */
	/* A write's blocks, for ts_map_write_end(); map NULL: none. */
	struct ts_map_disk *map;
	u64 map_first, map_last;
	/* A request a kworker serves: vhost_blk_offload(). */
	struct work_struct work;
	struct list_head writes_node;	/* on blk->writes while it runs */
	struct vhost_blk_backend *be;
	struct cgroup_subsys_state *blkcg;	/* the worker's, or NULL */
	bool flush;
	u64 pos;		/* disk offset */
	unsigned int nr;	/* iov's segments */
	size_t skip;		/* bytes of iov before the data */
	bool reconcile;
	struct iovec iov[];
};

/*
 * An asynchronous read of store blocks into a request's guest pages: the
 * pages stay pinned and the blocks held until the worker completes it.
 */
struct vhost_blk_store_read {
	struct ts_held_run held;
	struct bio_vec bv[TS_RUN_MAX];
};

static DEFINE_IDA(vhost_blk_ida);
static struct dentry *vhost_blk_debugfs_root;

static void vhost_blk_count(struct vhost_blk *blk, enum vhost_blk_counter c,
			    u64 n)
{
	atomic64_add(n, &blk->counters[c]);
}

static void vhost_blk_in_flight_add(struct vhost_blk *blk)
{
	spin_lock_irq(&blk->in_flight_lock);
	blk->in_flight++;
	blk->max_in_flight = max(blk->max_in_flight, blk->in_flight);
	spin_unlock_irq(&blk->in_flight_lock);
}

/*
 * The last thing a completion does with @blk: once the count reaches zero
 * release may free it. The wake-up happens under in_flight_lock, and the
 * waiter in vhost_blk_drain() rechecks the count under it, so the waiter
 * cannot return before we are done touching @blk.
 */
static void vhost_blk_in_flight_sub(struct vhost_blk *blk, unsigned int n)
{
	unsigned long flags;

	spin_lock_irqsave(&blk->in_flight_lock, flags);
	blk->in_flight -= n;
	if (!blk->in_flight)
		wake_up(&blk->drain_wq);
	spin_unlock_irqrestore(&blk->in_flight_lock, flags);
}

/* Waits for every request taken off the rings to complete. */
static void vhost_blk_drain(struct vhost_blk *blk)
{
	spin_lock_irq(&blk->in_flight_lock);
	wait_event_lock_irq(blk->drain_wq, !blk->in_flight,
			    blk->in_flight_lock);
	spin_unlock_irq(&blk->in_flight_lock);
}

/*
 * A chain we cannot even answer (no status byte, a fault on the ring): stop
 * serving the ring until the VMM resets it, and tell it through the vring
 * error eventfd.
 */
static void vhost_blk_break_queue(struct vhost_blk_queue *queue,
				  const char *why)
{
	if (!queue->broken) {
		vhost_blk_count(queue->blk, VHOST_BLK_BROKEN_QUEUES, 1);
		/* Once per queue and attach: the guest cannot flood the log. */
		pr_warn_ratelimited("device %d queue %td stopped: %s\n",
				    queue->blk->id,
				    queue - queue->blk->queues, why);
	}
	queue->broken = true;
	vq_err(&queue->vq, "queue %td broken: %s\n",
	       queue - queue->blk->queues, why);
}

/*
 * Writes the status byte and returns the chain to the guest. @used_len is
 * what the device wrote into the guest's buffers, the status byte included.
 * Called with vq->mutex held in the owner's mm.
 */
static int vhost_blk_finish(struct vhost_blk_queue *queue, u16 head,
			    u8 __user *status_ptr, u8 status, u32 used_len)
{
	if (status == VIRTIO_BLK_S_IOERR)
		vhost_blk_count(queue->blk, VHOST_BLK_ERRORS, 1);
	if (put_user(status, status_ptr)) {
		vhost_blk_break_queue(queue, "status byte not writable");
		return -EFAULT;
	}
	if (vhost_add_used(&queue->vq, head, used_len)) {
		vhost_blk_break_queue(queue, "used ring not writable");
		return -EFAULT;
	}
	return 0;
}

static void vhost_blk_account_rw(struct vhost_blk *blk, bool write, long done)
{
	if (done <= 0)
		return;
	vhost_blk_count(blk, write ? VHOST_BLK_BYTES_WRITTEN :
			VHOST_BLK_BYTES_READ, done);
}

/*
 * Unpin guest pages pinned for a store read, dirty if the read filled them
 * (@filled: only in process context; clean, in any).
 */
static void vhost_blk_unpin_read(struct bio_vec *bv, unsigned int nr,
				 bool filled)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		unpin_user_pages_dirty_lock(&bv[i].bv_page, 1, filled);
}

/* Unpin the pages of an asynchronous store read and let the blocks go. */
static void vhost_blk_store_read_free(struct vhost_blk_store_read *sr,
				      bool filled)
{
	vhost_blk_unpin_read(sr->bv, sr->held.nr, filled);
	ts_disk_release_run(&sr->held);
	kfree(sr);
}

/* Completes a read or write whose result is in req->result; frees @req. */
static int vhost_blk_rw_done(struct vhost_blk_req *req)
{
	bool ok = req->result >= 0 && (size_t)req->result == req->len;
	u32 used_len = 1;
	int ret;

	if (req->store_read) {
		if (ok)
			vhost_blk_count(req->queue->blk, VHOST_BLK_STORE_READS,
					req->store_read->held.nr);
		vhost_blk_store_read_free(req->store_read, ok);
	}

	/* The write's data is in the image, or it failed: either way over. */
	ts_map_write_end(req->map, req->map_first, req->map_last);
	if (!req->counted)
		vhost_blk_account_rw(req->queue->blk, req->write,
				     req->result);
	if (ok && !req->write)
		used_len += req->len;
	ret = vhost_blk_finish(req->queue, req->head, req->status,
			       ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR,
			       used_len);
	kfree(req);
	return ret;
}

/*
 * The end of an asynchronous request: any context, no guest mm. Hand the
 * request to the worker, or, if no worker will run again (6.12: the vhost
 * task exits when its owner is killed), to a kworker: see
 * vhost_blk_orphan_work().
 */
static void vhost_blk_async_done(struct vhost_blk_req *req, long result)
{
	struct vhost_blk_queue *queue = req->queue;

	req->result = result;
	/*
	 * Once the request is on the list, a worker may complete it and
	 * release free the device before this returns: release waits for
	 * this read-side section (vhost_blk_quiesce()).
	 */
	rcu_read_lock();
	llist_add(&req->done_node, &queue->done);
	/*
	 * A polling worker takes it (llist_add() is a full barrier: the
	 * polling sees the request or this sees the flag cleared).
	 */
	if (!READ_ONCE(queue->polling) &&
	    !ts_vhost_queue_work(&queue->vq, &queue->done_work))
		queue_work(system_unbound_wq, &queue->orphan_work);
	rcu_read_unlock();
}

static void vhost_blk_iocb_complete(struct kiocb *iocb, long result)
{
	struct vhost_blk_req *req = container_of(iocb, struct vhost_blk_req,
						 iocb);

	if (req->write)
		ts_kiocb_end_async_write(iocb);
	vhost_blk_async_done(req, result);
}

static void vhost_blk_store_read_end(struct bio *bio)
{
	struct vhost_blk_req *req = bio->bi_private;
	int err = blk_status_to_errno(bio->bi_status);

	bio_put(bio);
	vhost_blk_async_done(req, err ?: (long)req->len);
}

/*
 * The worker's half of asynchronous completions: return the buffers of
 * those waiting and tell the guest. Under vq->mutex; returns how many.
 */
static unsigned int vhost_blk_complete(struct vhost_blk_queue *queue)
{
	struct vhost_virtqueue *vq = &queue->vq;
	struct vhost_blk_req *req, *next;
	struct llist_node *done;
	unsigned int n = 0;

	done = llist_del_all(&queue->done);
	llist_for_each_entry_safe(req, next, done, done_node) {
		atomic_dec(&queue->in_flight);
		vhost_blk_rw_done(req);
		n++;
	}
	if (n)
		vhost_signal(vq->dev, vq);
	if (queue->throttled && !queue->broken &&
	    atomic_read(&queue->in_flight) < vq->num) {
		queue->throttled = false;
		vhost_poll_queue(&vq->poll);
	}
	return n;
}

static void vhost_blk_done_work(struct vhost_work *work)
{
	struct vhost_blk_queue *queue = container_of(work,
						     struct vhost_blk_queue,
						     done_work);
	unsigned int n;

	mutex_lock(&queue->vq.mutex);
	n = vhost_blk_complete(queue);
	mutex_unlock(&queue->vq.mutex);
	if (n)
		vhost_blk_in_flight_sub(queue->blk, n);
}

/*
 * Completions after the owner was killed. Its worker is gone, but not
 * everyone who sees the rings: a vhost-user back-end that dies leaves the
 * VMM and its guest running, and the back-end that takes over resumes
 * each ring at its used index. So every request taken is completed into
 * the used ring all the same, from a kworker in the owner's address space,
 * which vhost keeps (mm_users) until release, and release waits for the
 * requests in flight. The drop below, without touching guest memory, is for
 * an address space already gone, which that reference rules out today.
 *
 * The guest may have reset the device meanwhile (its VMM saw the owner
 * go): these writes then land in memory its driver freed, as the data of
 * the I/O in flight would anyway. The window is the drain, bounded by the
 * backend's latency.
 */
static void vhost_blk_orphan_work(struct work_struct *work)
{
	struct vhost_blk_queue *queue = container_of(work,
						     struct vhost_blk_queue,
						     orphan_work);
	struct mm_struct *mm = queue->blk->dev.mm;
	struct vhost_blk_req *req, *next;
	struct llist_node *orphans;
	unsigned int n = 0;

	mutex_lock(&queue->vq.mutex);
	if (mm && mmget_not_zero(mm)) {
		kthread_use_mm(mm);
		n = vhost_blk_complete(queue);
		kthread_unuse_mm(mm);
		mmput(mm);
	} else {
		orphans = llist_del_all(&queue->done);
		llist_for_each_entry_safe(req, next, orphans, done_node) {
			atomic_dec(&queue->in_flight);
			if (req->store_read)
				vhost_blk_store_read_free(req->store_read,
							  false);
			ts_map_write_end(req->map, req->map_first,
					 req->map_last);
			kfree(req);
			n++;
		}
	}
	mutex_unlock(&queue->vq.mutex);
	if (n)
		vhost_blk_in_flight_sub(queue->blk, n);
}

/* Complete what polling found finished; false if that broke the ring. */
static bool vhost_blk_poll_complete(struct vhost_blk_queue *queue)
{
	unsigned int n;

	n = vhost_blk_complete(queue);
	vhost_blk_count(queue->blk, VHOST_BLK_POLLED_COMPLETIONS, n);
	vhost_blk_in_flight_sub(queue->blk, n);
	return !queue->broken;
}

/*
 * The ring is empty and the guest's notifications are off: spin for up to
 * the busy-poll time (see busy_poll_us) for what would otherwise wake the
 * worker, completing requests as they finish. A completion starts the time
 * again once, since the guest's next request tends to follow it: one call
 * spins at most twice the time. It stops at once when the worker has other
 * work (another ring's kick, a flush), since all rings of a device share
 * the worker, and when the scheduler wants the CPU. True if the ring has a
 * request to take. The caller holds vq->mutex, which the device's ioctls
 * and release then wait for.
 *
 * While queue->polling is set, asynchronous completions do not queue the
 * completion work (it would end the polling as other work); the polling
 * takes them, and looks once more after it clears the flag.
 */
static bool vhost_blk_busy_poll(struct vhost_blk_queue *queue)
{
	struct vhost_virtqueue *vq = &queue->vq;
	bool found = false, restarted = false;
	unsigned int us;
	u64 end;

	us = min_t(unsigned int, READ_ONCE(vq->busyloop_timeout) ?:
			      READ_ONCE(busy_poll_us), VHOST_BLK_BUSY_POLL_MAX_US);
	if (!us)
		return false;
	end = local_clock() + (u64)us * NSEC_PER_USEC;
	WRITE_ONCE(queue->polling, true);
	/* Pairs with the barrier of llist_add() in vhost_blk_async_done(). */
	smp_mb();
	do {
		if (!llist_empty(&queue->done)) {
			if (!vhost_blk_poll_complete(queue))
				break;
			if (!restarted) {
				end = local_clock() + (u64)us * NSEC_PER_USEC;
				restarted = true;
			}
		}
		if (!vhost_vq_avail_empty(vq->dev, vq)) {
			/* 6.12 keeps an index it then finds out of range. */
			if ((u16)(vq->avail_idx - vq->last_avail_idx) > vq->num) {
				vhost_blk_break_queue(queue,
						      "avail index out of range");
				break;
			}
			vhost_blk_count(queue->blk, VHOST_BLK_POLLED_REQUESTS, 1);
			found = true;
			break;
		}
		if (ts_vhost_has_work(vq) || need_resched() ||
		    signal_pending(current))
			break;
		cpu_relax();
	} while (local_clock() < end);
	WRITE_ONCE(queue->polling, false);
	/* A completion that saw the flag set queued no work: take it. */
	smp_mb();
	if (!llist_empty(&queue->done))
		vhost_blk_poll_complete(queue);
	return found && !queue->broken;
}

/* Where a request's pieces are in the chain vhost_get_vq_desc() returned. */
struct vhost_blk_chain {
	struct iovec *out_iov, *in_iov;
	unsigned int out, in;
	size_t out_len, in_len;
	u8 __user *status;
	u16 head;
};

/* Data segments of @count bytes from the start of @iov; 0 if over limits. */
static unsigned int vhost_blk_segments(const struct iovec *iov,
				       unsigned int nr, size_t skip,
				       size_t count)
{
	unsigned int i, segs = 0;

	for (i = 0; i < nr && count; i++) {
		size_t len = iov[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		len = min(len - skip, count);
		skip = 0;
		if (len > VHOST_BLK_SIZE_MAX || ++segs > VHOST_BLK_SEG_MAX)
			return 0;
		count -= len;
	}
	return segs;
}

static bool vhost_blk_in_capacity(const struct vhost_blk_backend *be,
				  u64 sector, u64 sectors)
{
	return sector <= be->capacity && sectors <= be->capacity - sector;
}

/*
 * Point @req's iterator at its data (after @skip header bytes of its @nr
 * iovecs) and its kiocb at @sector, ready for a first or a repeated try.
 */
static void vhost_blk_req_prepare(struct vhost_blk_req *req,
				  struct vhost_blk_backend *be,
				  unsigned int nr, size_t skip, u64 sector)
{
	/* For reads the count stops short of the status byte at the end. */
	iov_iter_init(&req->iter, req->write ? ITER_SOURCE : ITER_DEST,
		      req->iov, nr, skip + req->len);
	iov_iter_advance(&req->iter, skip);
	ts_init_image_kiocb(&req->iocb, be->file,
			    sector << VHOST_BLK_SECTOR_SHIFT);
}

static ssize_t vhost_blk_req_submit(struct vhost_blk_req *req,
				    struct vhost_blk_backend *be)
{
	if (req->write)
		return ts_vfs_iocb_write(be->file, &req->iocb, &req->iter);
	return vfs_iocb_iter_read(be->file, &req->iocb, &req->iter);
}

/* The image, then the reference changes (see ts_disk_flush()). */
static int vhost_blk_commit(struct vhost_blk_backend *be)
{
	return ts_disk_flush(be->disk);
}

static bool vhost_blk_reconciling(struct vhost_blk *blk)
{
	return READ_ONCE(blk->reconcile) && ts_reconcile_available();
}

static void vhost_blk_count_outcome(struct vhost_blk *blk,
				    enum ts_outcome outcome, u64 n)
{
	if (outcome != TS_OUTCOME_REFERENCED)
		vhost_blk_count(blk, VHOST_BLK_FALLBACK_UNALIGNED +
				outcome - TS_OUTCOME_UNALIGNED, n);
}

/* A position in a request's guest buffers, to see which pages they are. */
struct vhost_blk_cursor {
	const struct iovec *iov;
	unsigned int nr, i;
	size_t off;		/* into iov[i] */
};

static void vhost_blk_cursor_advance(struct vhost_blk_cursor *c,
				     size_t bytes)
{
	while (c->i < c->nr) {
		size_t left = c->iov[c->i].iov_len - c->off;

		if (bytes < left) {
			c->off += bytes;
			return;
		}
		bytes -= left;
		c->i++;
		c->off = 0;
	}
}

static void vhost_blk_cursor_init(struct vhost_blk_cursor *c,
				  const struct iovec *iov, unsigned int nr,
				  size_t skip)
{
	c->iov = iov;
	c->nr = nr;
	c->i = 0;
	c->off = 0;
	vhost_blk_cursor_advance(c, skip);
}

/*
 * The guest page at the cursor if the next 4 KiB of the buffers are one
 * whole, page-aligned page of guest memory; else 0.
 */
static unsigned long vhost_blk_cursor_page(const struct vhost_blk_cursor *c)
{
	unsigned long addr;

	if (c->i >= c->nr || c->iov[c->i].iov_len - c->off < PAGE_SIZE)
		return 0;
	addr = (unsigned long)c->iov[c->i].iov_base + c->off;
	return PAGE_ALIGNED(addr) ? addr : 0;
}

/* Bytes from @pos up to the end of its 4 KiB block, at most @left. */
static size_t vhost_blk_piece(u64 pos, u64 left)
{
	return min_t(u64, left, TS_BLOCK_SIZE - (pos & (TS_BLOCK_SIZE - 1)));
}

/*
 * Synchronous I/O of @iter at @pos, direct when the backend is and the
 * buffers allow it. Returns bytes moved or -errno.
 */
static ssize_t vhost_blk_sync_io(struct vhost_blk_backend *be,
				 struct iov_iter *iter, loff_t pos, bool write)
{
	struct iov_iter saved = *iter;
	struct kiocb kiocb;
	ssize_t ret;

	ts_init_image_kiocb(&kiocb, be->file, pos);
	if ((iov_iter_alignment(iter) | pos) & (be->dio_align - 1))
		kiocb.ki_flags &= ~IOCB_DIRECT;
	ret = write ? ts_vfs_iocb_write(be->file, &kiocb, iter) :
		      vfs_iocb_iter_read(be->file, &kiocb, iter);
	if (ret == -EINVAL && (kiocb.ki_flags & IOCB_DIRECT)) {
		*iter = saved;
		ts_init_image_kiocb(&kiocb, be->file, pos);
		kiocb.ki_flags &= ~IOCB_DIRECT;
		ret = write ? ts_vfs_iocb_write(be->file, &kiocb, iter) :
			      vfs_iocb_iter_read(be->file, &kiocb, iter);
	}
	return ret;
}

/* Move @len bytes of @run (a copy of the request's iterator) at @pos. */
static int vhost_blk_run_io(struct vhost_blk_backend *be, struct iov_iter *run,
			    loff_t pos, size_t len, bool write)
{
	ssize_t ret;

	if (!len)
		return 0;
	iov_iter_truncate(run, len);
	ret = vhost_blk_sync_io(be, run, pos, write);
	if (ret < 0)
		return ret;
	return (size_t)ret == len ? 0 : -EIO;
}

/*
 * Write @len bytes of guest data of @run at @pos: bytes_written counts
 * them here, as the pages that became references are not written.
 */
static int vhost_blk_write_run(struct vhost_blk *blk,
			       struct vhost_blk_backend *be,
			       struct iov_iter *run, loff_t pos, size_t len)
{
	int ret = vhost_blk_run_io(be, run, pos, len, true);

	if (!ret)
		vhost_blk_count(blk, VHOST_BLK_BYTES_WRITTEN, len);
	return ret;
}

/*
 * Write the referenced contents of block @x into the image and drop the
 * reference, so that a write of part of the block merges with them.
 */
static int vhost_blk_copy_back(struct vhost_blk *blk,
			       struct vhost_blk_backend *be, u64 x)
{
	int ret = ts_disk_clean(be->disk, &x, x, 1);

	if (ret > 0)
		vhost_blk_count(blk, VHOST_BLK_MERGED_BLOCKS, ret);
	return min(ret, 0);
}

/*
 * Before a discard or write-zeroes of [@pos, @pos + *@len): blocks it
 * covers whole lose their references; a block it covers in part is first
 * copied back, so that the rest of the block keeps its contents. If a
 * reference cannot be dropped, *@len is cut to where it starts: the caller
 * must apply the request to that much (whose references are gone) and no
 * more, and fail it.
 */
static int vhost_blk_unmap_range(struct vhost_blk *blk,
				 struct vhost_blk_backend *be, u64 pos,
				 u64 *len)
{
	u64 first = pos >> TS_BLOCK_SHIFT;
	u64 last = (pos + *len - 1) >> TS_BLOCK_SHIFT;
	u64 x;
	int ret;

	if (!ts_disk_has_refs(be->disk, first, last))
		return 0;
	if ((pos & (TS_BLOCK_SIZE - 1)) ||
	    ((pos + *len) & (TS_BLOCK_SIZE - 1))) {
		ret = (pos & (TS_BLOCK_SIZE - 1)) ?
		      vhost_blk_copy_back(blk, be, first) : 0;
		if (!ret && ((pos + *len) & (TS_BLOCK_SIZE - 1)))
			ret = vhost_blk_copy_back(blk, be, last);
		if (ret) {
			*len = 0;
			return ret;
		}
	}
	/* From reference to reference, not block by block. */
	for (x = first; ts_disk_next_ref(be->disk, &x, last); x++) {
		ret = ts_disk_drop(be->disk, x);
		if (ret < 0) {
			*len = x > first ? (x << TS_BLOCK_SHIFT) - pos : 0;
			return ret;
		}
		if (ret)
			vhost_blk_count(blk, VHOST_BLK_DROPPED_REFERENCES, 1);
		cond_resched();
	}
	return 0;
}

/*
 * A write with no reference in its range. True if one of its pages is
 * swapped out to our device, so that it is worth the reconciling path;
 * otherwise the ordinary path takes it and the reasons are counted here.
 */
static bool vhost_blk_write_worth_reconciling(struct vhost_blk *blk,
					      struct vhost_blk_req *req,
					      unsigned int nr, size_t skip,
					      u64 pos)
{
	unsigned int outcomes[TS_NR_OUTCOMES] = {};
	struct vhost_blk_cursor c;
	u64 end = pos + req->len;
	enum ts_outcome outcome;
	unsigned long uaddr;
	size_t n;
	int i;

	vhost_blk_cursor_init(&c, req->iov, nr, skip);
	for (; pos < end; pos += n) {
		n = vhost_blk_piece(pos, end - pos);
		uaddr = vhost_blk_cursor_page(&c);
		outcome = TS_OUTCOME_UNALIGNED;
		if (n == TS_BLOCK_SIZE && uaddr)
			outcome = ts_reconcile_probe(blk->dev.mm, uaddr);
		if (outcome == TS_OUTCOME_REFERENCED)
			return true;
		outcomes[outcome]++;
		vhost_blk_cursor_advance(&c, n);
	}
	for (i = TS_OUTCOME_UNALIGNED; i < TS_NR_OUTCOMES; i++)
		if (outcomes[i])
			vhost_blk_count_outcome(blk, i, outcomes[i]);
	return false;
}

/*
 * A write that reconciles or touches references, block by block: a whole
 * page swapped out to our device becomes a reference; the rest is written
 * in runs, after dropping the references it replaces (whole blocks) or
 * merging with them (partial blocks). Returns bytes written or -errno.
 */
static ssize_t vhost_blk_write_mapped(struct vhost_blk *blk,
				      struct vhost_blk_backend *be,
				      struct vhost_blk_req *req,
				      unsigned int nr, size_t skip, u64 pos,
				      bool reconcile)
{
	struct iov_iter run = req->iter;
	unsigned int referenced = 0;
	u64 end = pos + req->len;
	struct vhost_blk_cursor c;
	enum ts_outcome outcome;
	loff_t run_pos = pos;
	unsigned long uaddr;
	size_t run_len = 0;
	int ret = 0;
	size_t n;
	u64 x;

	vhost_blk_cursor_init(&c, req->iov, nr, skip);
	for (; pos < end; pos += n) {
		x = pos >> TS_BLOCK_SHIFT;
		n = vhost_blk_piece(pos, end - pos);
		if (n == TS_BLOCK_SIZE) {
			uaddr = vhost_blk_cursor_page(&c);
			outcome = TS_OUTCOME_UNALIGNED;
			if (reconcile && uaddr)
				outcome = ts_reconcile_page(be->disk,
							    blk->dev.mm,
							    uaddr, x);
			if (reconcile)
				vhost_blk_count_outcome(blk, outcome, 1);
			if (outcome == TS_OUTCOME_REFERENCED) {
				ret = vhost_blk_write_run(blk, be, &run,
							  run_pos, run_len);
				if (ret)
					goto out;
				referenced++;
				iov_iter_advance(&req->iter, n);
				vhost_blk_cursor_advance(&c, n);
				run = req->iter;
				run_pos = pos + n;
				run_len = 0;
				continue;
			}
			ret = ts_disk_drop(be->disk, x);
			if (ret < 0)
				goto fail;
			if (ret)
				vhost_blk_count(blk,
						VHOST_BLK_DROPPED_REFERENCES, 1);
			ret = 0;
		} else {
			/* As the pre-check counts it, had it taken the write. */
			if (reconcile)
				vhost_blk_count_outcome(blk, TS_OUTCOME_UNALIGNED,
							1);
			if (ts_disk_has_refs(be->disk, x, x)) {
				ret = vhost_blk_copy_back(blk, be, x);
				if (ret)
					goto fail;
			}
		}
		iov_iter_advance(&req->iter, n);
		vhost_blk_cursor_advance(&c, n);
		run_len += n;
	}
	ret = vhost_blk_write_run(blk, be, &run, run_pos, run_len);
	goto out;
fail:
	/*
	 * Block x keeps its reference and its contents, and the request
	 * fails. Blocks before it whose references went still get their new
	 * data: the image holds what was there before those references.
	 */
	vhost_blk_write_run(blk, be, &run, run_pos, run_len);
out:
	if (referenced) {
		vhost_blk_count(blk, VHOST_BLK_RECONCILED_WRITES, 1);
		vhost_blk_count(blk, VHOST_BLK_RECONCILED_PAGES, referenced);
		vhost_blk_count(blk, VHOST_BLK_SWAPINS_AVOIDED, referenced);
		vhost_blk_count(blk, VHOST_BLK_DATA_BYTES_NOT_WRITTEN,
				(u64)referenced * TS_BLOCK_SIZE);
	}
	return ret ?: req->len;
}

/* Memory a read of referenced blocks goes through: 2 KiB, hence kmalloc. */
struct vhost_blk_store_buf {
	struct bio_vec bv[TS_RUN_MAX];
	struct page *bounce[TS_RUN_MAX];	/* allocated as needed */
};

static void vhost_blk_store_buf_free(struct vhost_blk_store_buf *buf)
{
	unsigned int i;

	if (!buf)
		return;
	for (i = 0; i < TS_RUN_MAX && buf->bounce[i]; i++)
		__free_page(buf->bounce[i]);
	kfree(buf);
}

/*
 * Pin the guest pages of the next @nr blocks at the cursor for the store
 * to read into, if each is a whole, page-aligned page (as a guest's page
 * cache is). False, with nothing pinned, otherwise.
 */
static bool vhost_blk_pin_guest_pages(const struct vhost_blk_cursor *c,
				      unsigned int nr, struct bio_vec *bv)
{
	struct vhost_blk_cursor probe = *c;
	unsigned long uaddr;
	struct page *page;
	unsigned int i;

	for (i = 0; i < nr; i++) {
		uaddr = vhost_blk_cursor_page(&probe);
		if (!uaddr ||
		    pin_user_pages_fast(uaddr, 1, FOLL_WRITE, &page) != 1)
			goto unpin;
		bvec_set_page(&bv[i], page, PAGE_SIZE, 0);
		vhost_blk_cursor_advance(&probe, PAGE_SIZE);
	}
	return true;
unpin:
	while (i--)
		unpin_user_page(bv[i].bv_page);
	return false;
}

/*
 * Read @len bytes at disk offset @pos, all of them in the held store
 * blocks @held, into the request's buffers at @iter: straight into the
 * guest's pages when they are whole blocks of whole pages, else through
 * bounce pages.
 */
static int vhost_blk_read_held(const struct ts_held_run *held,
			       struct vhost_blk_store_buf *buf,
			       const struct vhost_blk_cursor *c, u64 pos,
			       size_t len, struct iov_iter *iter)
{
	size_t off, n;
	unsigned int i;
	int ret;

	if (len == (size_t)held->nr << TS_BLOCK_SHIFT &&
	    vhost_blk_pin_guest_pages(c, held->nr, buf->bv)) {
		ret = ts_disk_read_held(held, buf->bv, held->nr);
		vhost_blk_unpin_read(buf->bv, held->nr, !ret);
		if (!ret)
			iov_iter_advance(iter, len);
		return ret;
	}

	for (i = 0; i < held->nr; i++) {
		if (!buf->bounce[i])
			buf->bounce[i] = alloc_page(GFP_KERNEL);
		if (!buf->bounce[i])
			return -ENOMEM;
		bvec_set_page(&buf->bv[i], buf->bounce[i], TS_BLOCK_SIZE, 0);
	}
	ret = ts_disk_read_held(held, buf->bv, held->nr);
	for (; !ret && len; pos += n, len -= n) {
		i = (pos >> TS_BLOCK_SHIFT) - held->x;
		off = pos & (TS_BLOCK_SIZE - 1);
		n = min_t(size_t, len, TS_BLOCK_SIZE - off);
		if (copy_to_iter(page_address(buf->bounce[i]) + off, n,
				 iter) != n)
			ret = -EFAULT;
	}
	return ret;
}

/*
 * A read that one run of held store blocks serves whole, into whole guest
 * pages (a guest's page-in, or its page cache reading a file): started
 * here and completed by the worker when the store's bio ends, so that the
 * worker serves the other queues meanwhile instead of waiting for the
 * store (on a disk, milliseconds a read). False, with nothing started, if
 * the read has another shape: vhost_blk_read_mapped() serves it.
 */
static bool vhost_blk_read_store_async(struct vhost_blk *blk,
				       struct vhost_blk_backend *be,
				       struct vhost_blk_req *req,
				       unsigned int nr, u64 pos)
{
	u64 x = pos >> TS_BLOCK_SHIFT;
	unsigned int i, blocks = req->len >> TS_BLOCK_SHIFT;
	struct vhost_blk_store_read *sr;
	struct vhost_blk_cursor c;

	BUILD_BUG_ON(TS_RUN_MAX > BIO_MAX_VECS);
	if (((pos | req->len) & (TS_BLOCK_SIZE - 1)) || !blocks ||
	    blocks > TS_RUN_MAX)
		return false;
	vhost_blk_cursor_init(&c, req->iov, nr, 0);
	for (i = 0; i < blocks; i++) {
		if (!vhost_blk_cursor_page(&c))
			return false;
		vhost_blk_cursor_advance(&c, PAGE_SIZE);
	}
	sr = kmalloc(sizeof(*sr), GFP_KERNEL);
	if (!sr)
		return false;
	if (ts_disk_hold_run(be->disk, x, x + blocks - 1, blocks, &sr->held))
		goto free;
	vhost_blk_cursor_init(&c, req->iov, nr, 0);
	if (sr->held.nr != blocks ||
	    !vhost_blk_pin_guest_pages(&c, blocks, sr->bv))
		goto release;

	req->store_read = sr;
	atomic_inc(&req->queue->in_flight);
	vhost_blk_in_flight_add(blk);
	ts_disk_submit_read_held(&sr->held, sr->bv, blocks,
				 vhost_blk_store_read_end, req);
	return true;
release:
	ts_disk_release_run(&sr->held);
free:
	kfree(sr);
	return false;
}

/* Blocks a fingerprinted read moves at a time. */
#define VHOST_BLK_FP_RUN	16
/* Fingerprinted reads of a device served at once (each a kworker). */
#define VHOST_BLK_FP_READS	8

struct vhost_blk_fp_buf {
	struct bio_vec bounce[VHOST_BLK_FP_RUN];
	struct bio_vec dest[VHOST_BLK_FP_RUN];
	u64 gen[VHOST_BLK_FP_RUN];
	bool fresh[VHOST_BLK_FP_RUN];
};

static void vhost_blk_fp_buf_free(struct vhost_blk_fp_buf *buf)
{
	unsigned int i;

	for (i = 0; i < VHOST_BLK_FP_RUN && buf->bounce[i].bv_page; i++)
		__free_page(buf->bounce[i].bv_page);
	kfree(buf);
}

/*
 * A read of whole blocks, none referenced, while the swap mapper follows
 * the image: through bounce pages, so that what becomes a fingerprint is
 * the image's bytes and not the guest page's, which the guest may change
 * while we look (M1 in Documentation/swap-mapper.rst). Pieces that are not
 * whole, aligned guest pages are read as usual. Returns bytes read or
 * -errno.
 */
static ssize_t vhost_blk_read_fingerprinted(struct vhost_blk_backend *be,
					    struct vhost_blk_req *req,
					    unsigned int nr, u64 pos)
{
	struct ts_map_disk *map = ts_disk_map(be->disk);
	u64 x = pos >> TS_BLOCK_SHIFT, end = pos + req->len;
	struct vhost_blk_fp_buf *buf;
	struct vhost_blk_cursor c;
	unsigned int i, blocks;
	struct iov_iter run;
	struct page *page;
	void *data;
	ssize_t ret = 0;
	size_t n;

	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	blocks = min_t(u64, VHOST_BLK_FP_RUN, req->len >> TS_BLOCK_SHIFT);
	for (i = 0; i < blocks; i++) {
		page = alloc_page(GFP_KERNEL);
		if (!page) {
			ret = -ENOMEM;
			goto out;
		}
		bvec_set_page(&buf->bounce[i], page, TS_BLOCK_SIZE, 0);
	}

	vhost_blk_cursor_init(&c, req->iov, nr, 0);
	for (; pos < end; pos += n, x += blocks) {
		blocks = min_t(u64, VHOST_BLK_FP_RUN,
			       (end - pos) >> TS_BLOCK_SHIFT);
		n = (size_t)blocks << TS_BLOCK_SHIFT;
		run = req->iter;
		if (!vhost_blk_pin_guest_pages(&c, blocks, buf->dest)) {
			ret = vhost_blk_run_io(be, &run, pos, n, false);
			if (ret)
				break;
			goto next;
		}
		for (i = 0; i < blocks; i++)
			buf->fresh[i] = ts_map_read_begin(map, x + i,
							  &buf->gen[i]);
		iov_iter_bvec(&run, ITER_DEST, buf->bounce, blocks, n);
		ret = vhost_blk_sync_io(be, &run, pos, false);
		ret = ret < 0 ? ret : (size_t)ret == n ? 0 : -EIO;
		for (i = 0; !ret && i < blocks; i++) {
			data = page_address(buf->bounce[i].bv_page);
			memcpy_to_page(buf->dest[i].bv_page, 0, data,
				       TS_BLOCK_SIZE);
			if (buf->fresh[i])
				ts_map_read_end(map, x + i, buf->gen[i], data,
						buf->dest[i].bv_page);
		}
		vhost_blk_unpin_read(buf->dest, blocks, !ret);
		if (ret)
			break;
next:
		iov_iter_advance(&req->iter, n);
		vhost_blk_cursor_advance(&c, n);
	}
out:
	vhost_blk_fp_buf_free(buf);
	return ret ?: req->len;
}

/*
 * A read of a range with references: referenced blocks come from the
 * store, in one I/O for each stretch whose store blocks follow each other
 * (as compaction leaves them); the others from the image in runs. Returns
 * bytes read or -errno.
 */
static ssize_t vhost_blk_read_mapped(struct vhost_blk *blk,
				     struct vhost_blk_backend *be,
				     struct vhost_blk_req *req, unsigned int nr,
				     u64 pos)
{
	u64 end = pos + req->len, last = (end - 1) >> TS_BLOCK_SHIFT;
	struct vhost_blk_store_buf *buf = NULL;
	struct iov_iter run = req->iter;
	struct vhost_blk_cursor c;
	struct ts_held_run held;
	loff_t run_pos = pos;
	size_t run_len = 0;
	int ret = 0;
	size_t n;

	vhost_blk_cursor_init(&c, req->iov, nr, 0);
	for (; pos < end; pos += n) {
		if (ts_disk_hold_run(be->disk, pos >> TS_BLOCK_SHIFT, last,
				     TS_RUN_MAX, &held)) {
			n = vhost_blk_piece(pos, end - pos);
			iov_iter_advance(&req->iter, n);
			vhost_blk_cursor_advance(&c, n);
			run_len += n;
			continue;
		}
		n = min_t(u64, end, (held.x + held.nr) << TS_BLOCK_SHIFT) - pos;
		if (!buf)
			buf = kzalloc(sizeof(*buf), GFP_KERNEL);
		ret = buf ? vhost_blk_run_io(be, &run, run_pos, run_len, false) :
			    -ENOMEM;
		if (!ret)
			ret = vhost_blk_read_held(&held, buf, &c, pos, n,
						  &req->iter);
		ts_disk_release_run(&held);
		if (ret)
			break;
		vhost_blk_count(blk, VHOST_BLK_STORE_READS, held.nr);
		vhost_blk_cursor_advance(&c, n);
		run = req->iter;
		run_pos = pos + n;
		run_len = 0;
	}
	if (!ret)
		ret = vhost_blk_run_io(be, &run, run_pos, run_len, false);
	vhost_blk_store_buf_free(buf);
	return ret ?: req->len;
}

/*
 * A read is about to overwrite the guest pages it covers whole: those
 * swapped out need not be swapped in first (false reads).
 */
static void vhost_blk_avoid_false_reads(struct vhost_blk *blk,
					struct vhost_blk_backend *be,
					struct vhost_blk_req *req,
					unsigned int nr)
{
	struct vhost_blk_cursor c;
	size_t left = req->len;
	unsigned long uaddr;
	unsigned int i;
	size_t n;

	vhost_blk_cursor_init(&c, req->iov, nr, 0);
	while (left) {
		uaddr = vhost_blk_cursor_page(&c);
		if (uaddr && left >= PAGE_SIZE) {
			if (ts_reconcile_false_read(be->disk, blk->dev.mm,
						    uaddr)) {
				vhost_blk_count(blk,
						VHOST_BLK_FALSE_READS_AVOIDED, 1);
				vhost_blk_count(blk, VHOST_BLK_SWAPINS_AVOIDED,
						1);
			}
			n = PAGE_SIZE;
		} else {
			/* To the next page boundary in guest memory. */
			i = c.i;
			if (i >= c.nr)
				break;
			n = min_t(size_t, c.iov[i].iov_len - c.off,
				  PAGE_SIZE - offset_in_page(c.iov[i].iov_base +
							     c.off));
			n = min(n, left);
		}
		vhost_blk_cursor_advance(&c, n);
		left -= n;
	}
}

/*
 * A write's blocks are done with: reads of them go on. Blocks a write
 * dropped the references of hold, until its data is written, what the
 * image held before those references, which is neither the old nor the
 * new contents: a read must not see them (vhost_blk_wait_for_writes()).
 */
static void vhost_blk_write_over(struct vhost_blk *blk,
				 struct vhost_blk_req *req)
{
	spin_lock(&blk->writes_lock);
	list_del(&req->writes_node);
	spin_unlock(&blk->writes_lock);
	wake_up_all(&blk->writes_done);
}

static bool vhost_blk_writes_overlap(struct vhost_blk *blk, u64 first,
				     u64 last)
{
	struct vhost_blk_req *req;
	bool overlap = false;

	spin_lock(&blk->writes_lock);
	list_for_each_entry(req, &blk->writes, writes_node) {
		if (req->map_first <= last && first <= req->map_last) {
			overlap = true;
			break;
		}
	}
	spin_unlock(&blk->writes_lock);
	return overlap;
}

/*
 * Before a read of blocks [@first, @last]: wait for the offloaded writes
 * of any of them. The worker did not take a read while it served a write,
 * and a read that overlaps a write in flight is rare (a guest that reads
 * what it is writing), so the worker waits for it, as it used to.
 */
static void vhost_blk_wait_for_writes(struct vhost_blk *blk, u64 first,
				      u64 last)
{
	if (list_empty_careful(&blk->writes))
		return;
	wait_event(blk->writes_done,
		   !vhost_blk_writes_overlap(blk, first, last));
}

/*
 * Three kinds of request would make the worker wait for a disk: a write
 * that changes references (its runs are synchronous writes of the image;
 * a partial write of a referenced block first copies the block back from
 * the store; pages the host swapped in are faulted in), a read the swap
 * mapper fingerprints (a synchronous read of the image into bounce pages)
 * and a flush (which waits for the write holding replace_sem, and for the
 * image and the journal). On a disk that is milliseconds each, and the
 * worker serves every queue of the device: the guest's other requests
 * waited behind them (bench-dp's slowest operations; with the mapper on,
 * all its reads one at a time). So the worker hands them to kworkers and
 * goes on. Writes that change references and flushes keep their order,
 * one at a time on an ordered workqueue, as the worker ran them;
 * fingerprinted reads run side by side (a write that begins during one is
 * seen by the mapper's generations: M2 in Documentation/swap-mapper.rst).
 * A kworker works in the guest's address space, charges its I/O to the
 * worker's I/O cgroup and its kernel memory to the guest's memory cgroup,
 * as the worker would; its CPU time is the kworker's (a kthread of ours
 * in the owner's cgroups would keep that too).
 */
static void vhost_blk_offload_work(struct work_struct *work)
{
	struct vhost_blk_req *req = container_of(work, struct vhost_blk_req,
						 work);
	struct vhost_blk *blk = req->queue->blk;
	struct vhost_blk_backend *be = req->be;
	struct mm_struct *mm = blk->dev.mm;
	struct mem_cgroup *memcg, *old_memcg;
	long result = -EIO;

	if (req->flush) {
		kthread_associate_blkcg(req->blkcg);
		result = vhost_blk_commit(be) ? -EIO : 0;
		kthread_associate_blkcg(NULL);
		goto done;
	}
	/* vhost holds the owner's mm until release, which drains us. */
	if (mm && mmget_not_zero(mm)) {
		memcg = get_mem_cgroup_from_mm(mm);
		old_memcg = set_active_memcg(memcg);
		kthread_associate_blkcg(req->blkcg);
		kthread_use_mm(mm);
		if (req->write) {
			ts_disk_replace_begin(be->disk);
			result = vhost_blk_write_mapped(blk, be, req, req->nr,
							req->skip, req->pos,
							req->reconcile);
			ts_disk_replace_end(be->disk);
			ts_disk_commit_later(be->disk);
		} else {
			result = vhost_blk_read_fingerprinted(be, req, req->nr,
							      req->pos);
		}
		kthread_unuse_mm(mm);
		kthread_associate_blkcg(NULL);
		set_active_memcg(old_memcg);
		mem_cgroup_put(memcg);
		mmput(mm);
	}
	if (req->write)
		vhost_blk_write_over(blk, req);
done:
	if (req->blkcg)
		css_put(req->blkcg);
	/* Last: the worker may complete and free @req from here on. */
	vhost_blk_async_done(req, result);
}

/* The worker's I/O cgroup, with a reference; NULL without blk-cgroup. */
static struct cgroup_subsys_state *vhost_blk_current_blkcg(void)
{
#ifdef CONFIG_BLK_CGROUP
	return task_get_css(current, io_cgrp_id);
#else
	return NULL;
#endif
}

/* Queue @req for vhost_blk_offload_work(); it completes there. */
static void vhost_blk_offload(struct vhost_blk *blk,
			      struct vhost_blk_backend *be,
			      struct vhost_blk_req *req, unsigned int nr,
			      size_t skip, u64 pos, bool reconcile)
{
	req->be = be;
	req->blkcg = vhost_blk_current_blkcg();
	req->pos = pos;
	req->nr = nr;
	req->skip = skip;
	req->reconcile = reconcile;
	INIT_WORK(&req->work, vhost_blk_offload_work);
	atomic_inc(&req->queue->in_flight);
	vhost_blk_in_flight_add(blk);
	if (req->write) {
		spin_lock(&blk->writes_lock);
		list_add_tail(&req->writes_node, &blk->writes);
		spin_unlock(&blk->writes_lock);
	}
	queue_work(req->write || req->flush ? blk->write_wq : blk->read_wq,
		   &req->work);
}

/*
 * Reads and writes. Returns the status to complete with, -EINPROGRESS when
 * the request was completed here, -EAGAIN when it went asynchronous (it then
 * completes through vhost_blk_done_work()), or -EFAULT when the ring broke.
 */
static int vhost_blk_rw(struct vhost_blk_queue *queue,
			struct vhost_blk_backend *be,
			struct vhost_blk_chain *c, u64 sector, bool write)
{
	struct vhost_blk *blk = queue->blk;
	const struct iovec *src = write ? c->out_iov : c->in_iov;
	unsigned int nr = write ? c->out : c->in;
	size_t skip = write ? sizeof(struct virtio_blk_outhdr) : 0;
	struct vhost_blk_req *req;
	bool direct, reconcile;
	ssize_t ret;
	size_t len;
	u64 pos;
	int err;

	/* Counted whatever its outcome, as the other types are. */
	vhost_blk_count(blk, write ? VHOST_BLK_REQ_OUT : VHOST_BLK_REQ_IN, 1);
	/* Data only where the spec puts it: nothing extra either way. */
	if (write) {
		if (c->in_len != 1)
			return VIRTIO_BLK_S_IOERR;
		len = c->out_len - skip;
	} else {
		if (c->out_len != sizeof(struct virtio_blk_outhdr))
			return VIRTIO_BLK_S_IOERR;
		len = c->in_len - 1;
	}
	if (!len || len % VHOST_BLK_SECTOR_SIZE ||
	    !vhost_blk_segments(src, nr, skip, len) ||
	    !vhost_blk_in_capacity(be, sector, len >> VHOST_BLK_SECTOR_SHIFT))
		return VIRTIO_BLK_S_IOERR;
	if (write && be->read_only)
		return VIRTIO_BLK_S_IOERR;

	req = kmalloc(struct_size(req, iov, nr), GFP_KERNEL);
	if (!req)
		return VIRTIO_BLK_S_IOERR;
	/* vq->iov is reused by the next request: keep our own copy. */
	memcpy(req->iov, src, nr * sizeof(*src));
	req->queue = queue;
	req->status = c->status;
	req->head = c->head;
	req->len = len;
	req->write = write;
	req->counted = false;
	req->store_read = NULL;
	req->map = NULL;
	req->flush = false;
	vhost_blk_req_prepare(req, be, nr, skip, sector);
	pos = sector << VHOST_BLK_SECTOR_SHIFT;

	/* See ts_map_write_begin(): before any byte of the image changes. */
	if (write) {
		req->map = ts_disk_map(be->disk);
		req->map_first = pos >> TS_BLOCK_SHIFT;
		req->map_last = (pos + len - 1) >> TS_BLOCK_SHIFT;
		if (ts_map_write_begin(req->map, req->map_first,
				       req->map_last)) {
			req->result = -EIO;
			err = vhost_blk_rw_done(req);
			return err ?: -EINPROGRESS;
		}
	}

	if (!write)
		vhost_blk_wait_for_writes(blk, pos >> TS_BLOCK_SHIFT,
					  (pos + len - 1) >> TS_BLOCK_SHIFT);
	reconcile = vhost_blk_reconciling(blk);
	if (reconcile && !write)
		vhost_blk_avoid_false_reads(blk, be, req, nr);
	if (ts_disk_has_refs(be->disk, pos >> TS_BLOCK_SHIFT,
			     (pos + len - 1) >> TS_BLOCK_SHIFT) ||
	    (reconcile && write &&
	     vhost_blk_write_worth_reconciling(blk, req, nr, skip, pos))) {
		if (write) {
			/* Completed by vhost_blk_done_work(). */
			req->counted = true;
			vhost_blk_offload(blk, be, req, nr, skip, pos,
					  reconcile);
			return -EAGAIN;
		}
		if (!vhost_blk_read_store_async(blk, be, req, nr, pos)) {
			req->result = vhost_blk_read_mapped(blk, be, req, nr,
							    pos);
		} else {
			/* Completed by vhost_blk_done_work(). */
			ts_disk_commit_later(be->disk);
			return -EAGAIN;
		}
		ts_disk_commit_later(be->disk);
		err = vhost_blk_rw_done(req);
		return err ?: -EINPROGRESS;
	}

	if (!write && READ_ONCE(blk->swap_mapper) && ts_disk_map(be->disk) &&
	    !((pos | len) & (TS_BLOCK_SIZE - 1))) {
		/* Completed by vhost_blk_done_work(). */
		vhost_blk_offload(blk, be, req, nr, skip, pos, reconcile);
		return -EAGAIN;
	}

	direct = be->direct &&
		 !((iov_iter_alignment(&req->iter) | req->iocb.ki_pos) &
		   (be->dio_align - 1));
	if (be->direct && !direct)
		vhost_blk_count(blk, VHOST_BLK_BUFFERED_FALLBACKS, 1);

	if (direct) {
		req->iocb.ki_complete = vhost_blk_iocb_complete;
		atomic_inc(&queue->in_flight);
		vhost_blk_in_flight_add(blk);
		ret = vhost_blk_req_submit(req, be);
		if (ret == -EIOCBQUEUED)
			return -EAGAIN;
		atomic_dec(&queue->in_flight);
		vhost_blk_in_flight_sub(blk, 1);
		if (ret != -EINVAL)
			goto done;
		/* Alignment the filesystem wants beyond dio_align. */
		vhost_blk_count(blk, VHOST_BLK_BUFFERED_FALLBACKS, 1);
		vhost_blk_req_prepare(req, be, nr, skip, sector);
	}

	req->iocb.ki_flags &= ~IOCB_DIRECT;
	ret = vhost_blk_req_submit(req, be);
done:
	req->result = ret;
	err = vhost_blk_rw_done(req);
	return err ?: -EINPROGRESS;
}

static int vhost_blk_get_id(struct vhost_blk *blk, struct vhost_blk_chain *c,
			    u32 *used_len)
{
	char serial[VHOST_BLK_SERIAL_BYTES];
	struct iov_iter iter;
	size_t len;

	if (c->out_len != sizeof(struct virtio_blk_outhdr))
		return VIRTIO_BLK_S_IOERR;
	len = min_t(size_t, c->in_len - 1, sizeof(serial));
	spin_lock(&blk->serial_lock);
	memcpy(serial, blk->serial, sizeof(serial));
	spin_unlock(&blk->serial_lock);
	iov_iter_init(&iter, ITER_DEST, c->in_iov, c->in, len);
	if (copy_to_iter(serial, len, &iter) != len)
		return VIRTIO_BLK_S_IOERR;
	*used_len += len;
	return VIRTIO_BLK_S_OK;
}

/*
 * A flush waits in ts_disk_sync_for() for the write that holds replace_sem,
 * which may be an offloaded one taking milliseconds: it goes on the same
 * ordered workqueue, behind the writes taken before it, and the worker
 * goes on. Returns -EAGAIN (completed by vhost_blk_done_work()) or a status.
 */
static int vhost_blk_flush(struct vhost_blk_queue *queue,
			   struct vhost_blk_backend *be,
			   struct vhost_blk_chain *c)
{
	struct vhost_blk_req *req;

	if (c->out_len != sizeof(struct virtio_blk_outhdr) || c->in_len != 1)
		return VIRTIO_BLK_S_IOERR;
	req = kzalloc(sizeof(*req), GFP_KERNEL);
	if (!req)
		return VIRTIO_BLK_S_IOERR;
	req->queue = queue;
	req->status = c->status;
	req->head = c->head;
	req->flush = true;
	vhost_blk_offload(queue->blk, be, req, 0, 0, 0, false);
	return -EAGAIN;
}

/*
 * Zeroes a range. Block devices always manage (the block layer writes zeroes
 * if it must); filesystems without zero-range (tmpfs) get a hole, which reads
 * back as zeroes too.
 */
static int vhost_blk_zero_range(struct file *file, loff_t pos, loff_t len,
				bool unmap)
{
	bool regular = S_ISREG(file_inode(file)->i_mode);
	int ret = -EOPNOTSUPP;

	if (!(unmap && regular))
		ret = vfs_fallocate(file, FALLOC_FL_ZERO_RANGE |
				    FALLOC_FL_KEEP_SIZE, pos, len);
	if (ret == -EOPNOTSUPP && regular)
		ret = vfs_fallocate(file, FALLOC_FL_PUNCH_HOLE |
				    FALLOC_FL_KEEP_SIZE, pos, len);
	return ret;
}

/*
 * One segment of a discard or write-zeroes: references, then the image;
 * if some references could not be dropped, the image only as far as they
 * went, and an error.
 */
static int vhost_blk_unmap_segment(struct vhost_blk *blk,
				   struct vhost_blk_backend *be, loff_t pos,
				   loff_t bytes, bool write_zeroes, u32 flags)
{
	u64 len = bytes;
	int err, ret = 0;

	err = vhost_blk_unmap_range(blk, be, pos, &len);
	if (!len)
		return err;
	if (write_zeroes) {
		ret = vhost_blk_zero_range(be->file, pos, len,
					   flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	} else {
		ret = vfs_fallocate(be->file,
				    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				    pos, len);
		/* Discard is a hint: a backend may ignore it. */
		if (ret == -EOPNOTSUPP)
			ret = 0;
	}
	return err ?: ret;
}

static int vhost_blk_discard_write_zeroes(struct vhost_blk *blk,
					  struct vhost_blk_backend *be,
					  struct vhost_blk_chain *c,
					  bool write_zeroes)
{
	struct virtio_blk_discard_write_zeroes segs[VHOST_BLK_MAX_DISCARD_SEG];
	u32 allowed_flags = write_zeroes ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
	size_t len = c->out_len - sizeof(struct virtio_blk_outhdr);
	struct ts_map_disk *map = ts_disk_map(be->disk);
	unsigned int i, nr = len / sizeof(segs[0]);
	struct iov_iter iter;
	u64 first, last;
	int ret;

	BUILD_BUG_ON(VHOST_BLK_MAX_DISCARD_SEG != VHOST_BLK_MAX_WRITE_ZEROES_SEG);
	if (c->in_len != 1 || !len || len % sizeof(segs[0]) ||
	    nr > ARRAY_SIZE(segs))
		return VIRTIO_BLK_S_IOERR;
	iov_iter_init(&iter, ITER_SOURCE, c->out_iov, c->out, c->out_len);
	iov_iter_advance(&iter, sizeof(struct virtio_blk_outhdr));
	if (copy_from_iter(segs, len, &iter) != len)
		return VIRTIO_BLK_S_IOERR;

	/* All or nothing: check every segment before touching the disk. */
	for (i = 0; i < nr; i++) {
		if (le32_to_cpu(segs[i].flags) & ~allowed_flags)
			return VIRTIO_BLK_S_UNSUPP;
		if (!vhost_blk_in_capacity(be, le64_to_cpu(segs[i].sector),
					   le32_to_cpu(segs[i].num_sectors)))
			return VIRTIO_BLK_S_IOERR;
	}
	if (be->read_only)
		return VIRTIO_BLK_S_IOERR;

	for (i = 0; i < nr; i++) {
		loff_t pos = le64_to_cpu(segs[i].sector) << VHOST_BLK_SECTOR_SHIFT;
		loff_t bytes = (loff_t)le32_to_cpu(segs[i].num_sectors) <<
			       VHOST_BLK_SECTOR_SHIFT;

		if (!bytes)
			continue;
		first = pos >> TS_BLOCK_SHIFT;
		last = (pos + bytes - 1) >> TS_BLOCK_SHIFT;
		ret = ts_map_write_begin(map, first, last);
		if (!ret) {
			ts_disk_replace_begin(be->disk);
			ret = vhost_blk_unmap_segment(blk, be, pos, bytes,
						      write_zeroes,
						      le32_to_cpu(segs[i].flags));
			ts_disk_replace_end(be->disk);
		}
		ts_map_write_end(map, first, last);
		if (ret)
			return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

/*
 * One request. Returns 1 when it was completed (a used entry added), 0 when
 * it went asynchronous, -errno when the ring must stop.
 */
static int vhost_blk_handle_req(struct vhost_blk_queue *queue,
				struct vhost_blk_backend *be,
				struct vhost_blk_chain *c)
{
	struct vhost_virtqueue *vq = &queue->vq;
	struct vhost_blk *blk = queue->blk;
	struct virtio_blk_outhdr hdr;
	struct iov_iter iter;
	u32 used_len = 1;
	int status, i;
	u64 sector;

	/* The status byte is the last byte the guest let us write. */
	c->status = NULL;
	for (i = c->in - 1; i >= 0; i--) {
		if (c->in_iov[i].iov_len) {
			c->status = (u8 __user *)c->in_iov[i].iov_base +
				    c->in_iov[i].iov_len - 1;
			break;
		}
	}
	if (!c->status) {
		vhost_blk_break_queue(queue, "request without a status byte");
		return -EINVAL;
	}

	iov_iter_init(&iter, ITER_SOURCE, c->out_iov, c->out, c->out_len);
	if (c->out_len < sizeof(hdr) ||
	    copy_from_iter(&hdr, sizeof(hdr), &iter) != sizeof(hdr)) {
		status = VIRTIO_BLK_S_IOERR;
		goto finish;
	}
	sector = vhost64_to_cpu(vq, hdr.sector);

	ts_disk_note_io(be->disk);
	switch (vhost32_to_cpu(vq, hdr.type)) {
	case VIRTIO_BLK_T_IN:
		status = vhost_blk_rw(queue, be, c, sector, false);
		break;
	case VIRTIO_BLK_T_OUT:
		status = vhost_blk_rw(queue, be, c, sector, true);
		break;
	case VIRTIO_BLK_T_FLUSH:
		vhost_blk_count(blk, VHOST_BLK_REQ_FLUSH, 1);
		status = vhost_blk_flush(queue, be, c);
		break;
	case VIRTIO_BLK_T_GET_ID:
		vhost_blk_count(blk, VHOST_BLK_REQ_GET_ID, 1);
		status = vhost_blk_get_id(blk, c, &used_len);
		break;
	case VIRTIO_BLK_T_DISCARD:
		vhost_blk_count(blk, VHOST_BLK_REQ_DISCARD, 1);
		status = vhost_blk_discard_write_zeroes(blk, be, c, false);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		vhost_blk_count(blk, VHOST_BLK_REQ_WRITE_ZEROES, 1);
		status = vhost_blk_discard_write_zeroes(blk, be, c, true);
		break;
	default:
		vhost_blk_count(blk, VHOST_BLK_REQ_UNSUPPORTED, 1);
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status == -EINPROGRESS)
		return 1;
	if (status == -EAGAIN)
		return 0;
	if (status < 0)
		return status;
finish:
	return vhost_blk_finish(queue, c->head, c->status, status, used_len) ?:
	       1;
}

static void vhost_blk_handle_kick(struct vhost_work *work)
{
	struct vhost_virtqueue *vq = container_of(work, struct vhost_virtqueue,
						  poll.work);
	struct vhost_blk_queue *queue = container_of(vq, struct vhost_blk_queue,
						     vq);
	struct vhost_blk_backend *be;
	struct vhost_blk_chain c;
	int head, ret, reqs = 0;
	size_t bytes = 0;
	unsigned int out, in;
	bool added = false;

	mutex_lock(&vq->mutex);
	be = vhost_vq_get_backend(vq);
	if (!be || queue->broken)
		goto unlock;

	/* vhost_get_vq_desc() insists that notifications be off first. */
	vhost_disable_notify(vq->dev, vq);
	do {
		/* A guest may resubmit heads in flight: bound our memory. */
		if (atomic_read(&queue->in_flight) >= vq->num) {
			queue->throttled = true;
			break;
		}
		head = vhost_get_vq_desc(vq, vq->iov, ARRAY_SIZE(vq->iov),
					 &out, &in, NULL, NULL);
		if (head < 0) {
			vhost_blk_break_queue(queue, "malformed descriptor chain");
			break;
		}
		if (head == vq->num) {
			/* The guest must not wait for our polling. */
			if (added) {
				vhost_signal(vq->dev, vq);
				added = false;
			}
			if (vhost_blk_busy_poll(queue))
				continue;
			if (queue->broken)
				break;
			if (unlikely(vhost_enable_notify(vq->dev, vq))) {
				vhost_disable_notify(vq->dev, vq);
				continue;
			}
			break;
		}
		c.head = head;
		c.out_iov = vq->iov;
		c.out = out;
		c.out_len = iov_length(vq->iov, out);
		c.in_iov = vq->iov + out;
		c.in = in;
		c.in_len = iov_length(vq->iov + out, in);
		ret = vhost_blk_handle_req(queue, be, &c);
		if (ret < 0)
			break;
		added |= ret;
		bytes += c.out_len + c.in_len;
	} while (!vhost_exceeds_weight(vq, ++reqs, min_t(size_t, bytes, INT_MAX)));
	if (added)
		vhost_signal(vq->dev, vq);
unlock:
	mutex_unlock(&vq->mutex);
}

/*
 * The disk's changes are committed and it keeps its references when its
 * device lets go of it: they come back when the id is attached again.
 */
static void vhost_blk_backend_put(struct vhost_blk_backend *be)
{
	if (!be)
		return;
	if (be->disk)
		ts_disk_detach(be->disk);
	fput(be->file);
	kfree(be);
}

/*
 * A disk's id when the VMM gave none: the block device's number, or the
 * file's filesystem and inode number. Good while the backend exists; a VMM
 * that wants its disk's references back after re-creating the image file
 * must set its own id.
 */
static u64 vhost_blk_derived_disk_id(struct inode *host)
{
	u64 id;

	if (S_ISBLK(host->i_mode))
		id = (u64)new_encode_dev(I_BDEV(host)->bd_dev) << 32;
	else
		id = (u64)new_encode_dev(host->i_sb->s_dev) << 32 |
		     lower_32_bits(host->i_ino);
	return id | VHOST_BLK_DISK_ID_DERIVED;
}

/*
 * After a drain: wait until no completion is still inside
 * vhost_blk_async_done() (the last ones may have been completed by others
 * before it returned), and for the orphan works it queued, before the
 * device's memory or address space goes.
 */
static void vhost_blk_quiesce(struct vhost_blk *blk)
{
	int i;

	synchronize_rcu();
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++)
		flush_work(&blk->queues[i].orphan_work);
}

/*
 * Stops the rings from taking new requests and waits for those in flight.
 * Returns the backend for the caller to put. Called with dev.mutex held.
 */
static struct vhost_blk_backend *vhost_blk_detach(struct vhost_blk *blk)
{
	struct vhost_blk_backend *be = blk->backend;
	int i;

	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct vhost_virtqueue *vq = &blk->queues[i].vq;

		mutex_lock(&vq->mutex);
		vhost_vq_set_backend(vq, NULL);
		blk->queues[i].throttled = false;
		mutex_unlock(&vq->mutex);
	}
	vhost_blk_drain(blk);
	/* A kick handler may still run; it sees no backend but finish it. */
	vhost_dev_flush(&blk->dev);
	blk->backend = NULL;
	WRITE_ONCE(blk->io_mode, VHOST_BLK_IO_NONE);
	return be;
}

static struct vhost_blk_backend *vhost_blk_backend_open(struct vhost_blk *blk,
							int fd)
{
	struct vhost_blk_backend *be;
	struct ts_ident ident;
	struct inode *host;
	struct file *file;
	int ret = -EINVAL;

	file = fget(fd);
	if (!file)
		return ERR_PTR(-EBADF);
	host = file->f_mapping->host;
	if (!S_ISREG(host->i_mode) && !S_ISBLK(host->i_mode))
		goto err;
	if (!(file->f_mode & FMODE_READ) || !file->f_op->read_iter) {
		ret = -EBADF;
		goto err;
	}
	/* A file opened to append would take every write at its end. */
	if (file->f_flags & O_APPEND)
		goto err;

	be = kzalloc(sizeof(*be), GFP_KERNEL);
	if (!be) {
		ret = -ENOMEM;
		goto err;
	}
	be->file = file;
	/* The mapping's host, not the device node, knows a disk's size. */
	be->capacity = i_size_read(host) >> VHOST_BLK_SECTOR_SHIFT;
	be->read_only = !(file->f_mode & FMODE_WRITE) ||
			!file->f_op->write_iter;
	be->direct = file->f_flags & O_DIRECT;
	be->dio_align = VHOST_BLK_SECTOR_SIZE;
	if (S_ISBLK(host->i_mode)) {
		struct block_device *bdev = I_BDEV(host);

		be->dio_align = bdev_logical_block_size(bdev);
		be->read_only |= bdev_read_only(bdev);
	} else if (host->i_sb->s_bdev) {
		be->dio_align = bdev_logical_block_size(host->i_sb->s_bdev);
	}
	/* What the disk's references are bound to: see ident.c. */
	if (blk->has_token)
		ts_ident_of_token(blk->token, sizeof(blk->token), &ident);
	else
		ts_ident_of_backend(file, &ident);
	be->disk = ts_disk_attach(blk->disk_id ?:
				  vhost_blk_derived_disk_id(host), file,
				  &ident);
	if (IS_ERR(be->disk)) {
		ret = PTR_ERR(be->disk);
		kfree(be);
		goto err;
	}
	return be;
err:
	fput(file);
	return ERR_PTR(ret);
}

static long vhost_blk_set_backend(struct vhost_blk *blk, int fd)
{
	struct vhost_blk_backend *be;
	int i, attached = 0;
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto unlock;

	if (fd == -1) {
		vhost_blk_backend_put(vhost_blk_detach(blk));
		goto unlock;
	}
	if (blk->backend) {
		ret = -EBUSY;
		goto unlock;
	}
	be = vhost_blk_backend_open(blk, fd);
	if (IS_ERR(be)) {
		ret = PTR_ERR(be);
		goto unlock;
	}

	/* Rings the VMM has not set up (fewer queues in use) stay idle. */
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct vhost_blk_queue *queue = &blk->queues[i];
		struct vhost_virtqueue *vq = &queue->vq;

		mutex_lock(&vq->mutex);
		if (!vq->desc) {
			mutex_unlock(&vq->mutex);
			continue;
		}
		if (!vhost_vq_access_ok(vq)) {
			mutex_unlock(&vq->mutex);
			ret = -EFAULT;
			goto undo;
		}
		queue->broken = false;
		queue->throttled = false;
		vhost_vq_set_backend(vq, be);
		ret = vhost_vq_init_access(vq);
		mutex_unlock(&vq->mutex);
		if (ret)
			goto undo;
		attached++;
	}
	if (!attached) {
		ret = -EINVAL;
		goto undo;
	}
	blk->backend = be;
	WRITE_ONCE(blk->io_mode, be->direct ? VHOST_BLK_IO_DIRECT :
		   VHOST_BLK_IO_BUFFERED);
	/* Kicks that came before the backend found nothing to serve them. */
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++)
		if (blk->queues[i].vq.desc)
			vhost_poll_queue(&blk->queues[i].vq.poll);
	goto unlock;

undo:
	blk->backend = be;
	vhost_blk_backend_put(vhost_blk_detach(blk));
unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_set_features(struct vhost_blk *blk, u64 features)
{
	u64 offered = VHOST_BLK_FEATURES | (1ULL << VIRTIO_BLK_F_RO);
	long ret;
	int i;

	mutex_lock(&blk->dev.mutex);
	/* The owner's first: anyone else learns nothing of the value. */
	ret = vhost_dev_check_owner(&blk->dev);
	if (!ret && (features & ~offered))
		ret = -EOPNOTSUPP;
	if (ret)
		goto unlock;
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct vhost_virtqueue *vq = &blk->queues[i].vq;

		mutex_lock(&vq->mutex);
		vq->acked_features = features;
		mutex_unlock(&vq->mutex);
	}
unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * Our own configuring ioctls are the owner's, as the vhost core's are
 * (vhost_dev_ioctl() checks every one but VHOST_SET_OWNER): a process that
 * merely inherited or was passed the fd must not change a running disk.
 */
static long vhost_blk_set_serial(struct vhost_blk *blk,
				 const char serial[VHOST_BLK_SERIAL_BYTES])
{
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (!ret) {
		spin_lock(&blk->serial_lock);
		memcpy(blk->serial, serial, VHOST_BLK_SERIAL_BYTES);
		spin_unlock(&blk->serial_lock);
	}
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/* VHOST_BLK_SET_RECONCILE and VHOST_BLK_SET_SWAP_MAPPER: @flag to @on. */
static long vhost_blk_set_flag(struct vhost_blk *blk, bool *flag, int on)
{
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (!ret && on != 0 && on != 1)
		ret = -EINVAL;
	if (!ret)
		WRITE_ONCE(*flag, on);
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/* There are none to set, but setting none is configuring all the same. */
static long vhost_blk_set_backend_features(struct vhost_blk *blk,
					   u64 features)
{
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (!ret && features)
		ret = -EOPNOTSUPP;
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_get_features(struct vhost_blk *blk, u64 __user *argp)
{
	u64 features = VHOST_BLK_FEATURES;

	mutex_lock(&blk->dev.mutex);
	if (blk->backend && blk->backend->read_only)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	mutex_unlock(&blk->dev.mutex);
	return copy_to_user(argp, &features, sizeof(features)) ? -EFAULT : 0;
}

static long vhost_blk_reset_owner(struct vhost_blk *blk)
{
	struct vhost_iotlb *umem;
	long ret;

	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (ret)
		goto unlock;
	umem = vhost_dev_reset_owner_prepare();
	if (!umem) {
		ret = -ENOMEM;
		goto unlock;
	}
	vhost_blk_backend_put(vhost_blk_detach(blk));
	vhost_blk_quiesce(blk);
	vhost_dev_stop(&blk->dev);
	vhost_dev_reset_owner(&blk->dev, umem);
unlock:
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

/*
 * An id names references that may hold another VM's memory: only a
 * privileged owner of the device names one. @token (NULL: none) binds the
 * references to it instead of to the backend.
 */
static long vhost_blk_set_disk_id(struct vhost_blk *blk, u64 id,
				  const u8 *token)
{
	long ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	mutex_lock(&blk->dev.mutex);
	ret = vhost_dev_check_owner(&blk->dev);
	if (!ret && ((id & VHOST_BLK_DISK_ID_DERIVED) ||
		     (token && !memchr_inv(token, 0, VHOST_BLK_TOKEN_BYTES))))
		ret = -EINVAL;
	if (!ret && blk->backend)
		ret = -EBUSY;
	if (!ret) {
		blk->disk_id = id;
		blk->has_token = token;
		if (token)
			memcpy(blk->token, token, VHOST_BLK_TOKEN_BYTES);
	}
	mutex_unlock(&blk->dev.mutex);
	return ret;
}

static long vhost_blk_ioctl(struct file *f, unsigned int ioctl,
			    unsigned long arg)
{
	struct vhost_blk *blk = f->private_data;
	void __user *argp = (void __user *)arg;
	char serial[VHOST_BLK_SERIAL_BYTES];
	struct vhost_blk_disk_identity identity;
	struct vhost_vring_file backend;
	u64 features, disk_id;
	long ret;
	int on;

	switch (ioctl) {
	case VHOST_BLK_SET_BACKEND:
		if (copy_from_user(&backend, argp, sizeof(backend)))
			return -EFAULT;
		return vhost_blk_set_backend(blk, backend.fd);
	case VHOST_BLK_SET_SERIAL:
		if (copy_from_user(serial, argp, sizeof(serial)))
			return -EFAULT;
		return vhost_blk_set_serial(blk, serial);
	case VHOST_BLK_SET_DISK_ID:
		if (copy_from_user(&disk_id, argp, sizeof(disk_id)))
			return -EFAULT;
		return vhost_blk_set_disk_id(blk, disk_id, NULL);
	case VHOST_BLK_SET_DISK_IDENTITY:
		if (copy_from_user(&identity, argp, sizeof(identity)))
			return -EFAULT;
		return vhost_blk_set_disk_id(blk, identity.disk_id,
					     identity.token);
	case VHOST_BLK_GET_DISK_ID:
		mutex_lock(&blk->dev.mutex);
		disk_id = blk->backend ? ts_disk_id(blk->backend->disk) : 0;
		mutex_unlock(&blk->dev.mutex);
		return copy_to_user(argp, &disk_id, sizeof(disk_id)) ?
		       -EFAULT : 0;
	case VHOST_BLK_SET_RECONCILE:
		if (get_user(on, (int __user *)argp))
			return -EFAULT;
		return vhost_blk_set_flag(blk, &blk->reconcile, on);
	case VHOST_BLK_SET_SWAP_MAPPER:
		if (get_user(on, (int __user *)argp))
			return -EFAULT;
		return vhost_blk_set_flag(blk, &blk->swap_mapper, on);
	case VHOST_GET_FEATURES:
		return vhost_blk_get_features(blk, argp);
	case VHOST_SET_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		return vhost_blk_set_features(blk, features);
	case VHOST_RESET_OWNER:
		return vhost_blk_reset_owner(blk);
	case VHOST_GET_BACKEND_FEATURES:
		/* None: they are all about the IOTLB, which is not offered. */
		features = 0;
		return copy_to_user(argp, &features, sizeof(features)) ?
		       -EFAULT : 0;
	case VHOST_SET_BACKEND_FEATURES:
		if (copy_from_user(&features, argp, sizeof(features)))
			return -EFAULT;
		return vhost_blk_set_backend_features(blk, features);
	default:
		mutex_lock(&blk->dev.mutex);
		ret = vhost_dev_ioctl(&blk->dev, ioctl, argp);
		if (ret == -ENOIOCTLCMD)
			ret = vhost_vring_ioctl(&blk->dev, ioctl, argp);
		else
			vhost_dev_flush(&blk->dev);
		mutex_unlock(&blk->dev.mutex);
		return ret;
	}
}

static int vhost_blk_counter_get(void *data, u64 *val)
{
	*val = atomic64_read(data);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(vhost_blk_counter_fops, vhost_blk_counter_get, NULL,
			 "%llu\n");

static int vhost_blk_in_flight_show(struct seq_file *m, void *v)
{
	struct vhost_blk *blk = m->private;

	seq_printf(m, "%u\n", READ_ONCE(blk->in_flight));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vhost_blk_in_flight);

static int vhost_blk_max_in_flight_show(struct seq_file *m, void *v)
{
	struct vhost_blk *blk = m->private;

	seq_printf(m, "%u\n", READ_ONCE(blk->max_in_flight));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vhost_blk_max_in_flight);

static int vhost_blk_io_mode_show(struct seq_file *m, void *v)
{
	struct vhost_blk *blk = m->private;

	seq_printf(m, "%s\n", vhost_blk_io_mode_names[READ_ONCE(blk->io_mode)]);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vhost_blk_io_mode);

/* debugfs reconcile and swap_mapper: the per-device switches. */
static int vhost_blk_flag_get(void *data, u64 *val)
{
	*val = READ_ONCE(*(bool *)data);
	return 0;
}

static int vhost_blk_flag_set(void *data, u64 val)
{
	if (val > 1)
		return -EINVAL;
	WRITE_ONCE(*(bool *)data, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(vhost_blk_flag_fops, vhost_blk_flag_get,
			 vhost_blk_flag_set, "%llu\n");

static int vhost_blk_disk_show(struct seq_file *m, void *v)
{
	struct vhost_blk *blk = m->private;
	const char *name = file_dentry(m->file)->d_name.name;
	bool id = !strcmp(name, "disk_id");

	mutex_lock(&blk->dev.mutex);
	if (!blk->backend)
		seq_puts(m, id ? "none\n" : "0\n");
	else if (id)
		seq_printf(m, "%llx\n", ts_disk_id(blk->backend->disk));
	else if (!strcmp(name, "identity_mismatch"))
		seq_printf(m, "%d\n",
			   ts_disk_identity_mismatch(blk->backend->disk));
	else
		seq_printf(m, "%lu\n", ts_disk_nr_refs(blk->backend->disk));
	mutex_unlock(&blk->dev.mutex);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vhost_blk_disk);

/*
 * Guest RAM pages (the VMM's memory table) that sit in host swap on our
 * device now: a page-table walk of all of guest memory, on every read.
 */
static int vhost_blk_swapped_show(struct seq_file *m, void *v)
{
	struct vhost_blk *blk = m->private;
	struct vhost_iotlb_map *map;
	unsigned long pages = 0;
	struct mm_struct *mm;

	mutex_lock(&blk->dev.mutex);
	mm = blk->dev.mm;
	if (mm && blk->dev.umem && mmget_not_zero(mm)) {
		for (map = vhost_iotlb_itree_first(blk->dev.umem, 0, U64_MAX);
		     map; map = vhost_iotlb_itree_next(map, 0, U64_MAX))
			pages += ts_reconcile_count_swapped(mm, map->addr,
							    map->addr +
							    map->size);
		mmput(mm);
	}
	mutex_unlock(&blk->dev.mutex);
	seq_printf(m, "%lu\n", pages);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(vhost_blk_swapped);

static void vhost_blk_debugfs_create(struct vhost_blk *blk)
{
	char name[16];
	int i;

	snprintf(name, sizeof(name), "%d", blk->id);
	blk->debugfs = debugfs_create_dir(name, vhost_blk_debugfs_root);
	for (i = 0; i < VHOST_BLK_NR_COUNTERS; i++)
		debugfs_create_file_unsafe(vhost_blk_counter_names[i], 0400,
					   blk->debugfs, &blk->counters[i],
					   &vhost_blk_counter_fops);
	debugfs_create_file("in_flight", 0400, blk->debugfs, blk,
			    &vhost_blk_in_flight_fops);
	debugfs_create_file("max_in_flight", 0400, blk->debugfs, blk,
			    &vhost_blk_max_in_flight_fops);
	debugfs_create_file("io_mode", 0400, blk->debugfs, blk,
			    &vhost_blk_io_mode_fops);
	debugfs_create_file_unsafe("reconcile", 0600, blk->debugfs,
				   &blk->reconcile, &vhost_blk_flag_fops);
	debugfs_create_file_unsafe("swap_mapper", 0600, blk->debugfs,
				   &blk->swap_mapper, &vhost_blk_flag_fops);
	debugfs_create_file("disk_id", 0400, blk->debugfs, blk,
			    &vhost_blk_disk_fops);
	debugfs_create_file("pages_referenced", 0400, blk->debugfs, blk,
			    &vhost_blk_disk_fops);
	debugfs_create_file("identity_mismatch", 0400, blk->debugfs, blk,
			    &vhost_blk_disk_fops);
	debugfs_create_file("guest_pages_in_host_swap", 0400, blk->debugfs,
			    blk, &vhost_blk_swapped_fops);
}

static int vhost_blk_open(struct inode *inode, struct file *f)
{
	struct vhost_virtqueue **vqs;
	struct vhost_blk *blk;
	int i, ret;

	/* Large (the vqs embed their iovec arrays): let it be vmalloc'd. */
	blk = kvzalloc(sizeof(*blk), GFP_KERNEL | __GFP_RETRY_MAYFAIL);
	if (!blk)
		return -ENOMEM;
	vqs = kmalloc_array(VHOST_BLK_MAX_QUEUES, sizeof(*vqs), GFP_KERNEL);
	if (!vqs) {
		ret = -ENOMEM;
		goto err_blk;
	}
	ret = ida_alloc(&vhost_blk_ida, GFP_KERNEL);
	if (ret < 0)
		goto err_vqs;
	blk->id = ret;
	/*
	 * A rescuer: writes and flushes go on when memory is too short for a
	 * new kworker, as they would in the vhost worker.
	 */
	blk->write_wq = alloc_ordered_workqueue("vhost-blk-%d-write",
						WQ_MEM_RECLAIM, blk->id);
	/* A bound on what one guest's reads take outside its cgroups. */
	blk->read_wq = alloc_workqueue("vhost-blk-%d-read", WQ_UNBOUND,
				       VHOST_BLK_FP_READS, blk->id);
	if (!blk->write_wq || !blk->read_wq) {
		ret = -ENOMEM;
		goto err_wq;
	}

	spin_lock_init(&blk->in_flight_lock);
	init_waitqueue_head(&blk->drain_wq);
	spin_lock_init(&blk->writes_lock);
	INIT_LIST_HEAD(&blk->writes);
	init_waitqueue_head(&blk->writes_done);
	spin_lock_init(&blk->serial_lock);
	blk->reconcile = true;
	blk->swap_mapper = true;
	for (i = 0; i < VHOST_BLK_MAX_QUEUES; i++) {
		struct vhost_blk_queue *queue = &blk->queues[i];

		queue->blk = blk;
		init_llist_head(&queue->done);
		vhost_work_init(&queue->done_work, vhost_blk_done_work);
		INIT_WORK(&queue->orphan_work, vhost_blk_orphan_work);
		queue->vq.handle_kick = vhost_blk_handle_kick;
		vqs[i] = &queue->vq;
	}
	vhost_dev_init(&blk->dev, vqs, VHOST_BLK_MAX_QUEUES, UIO_MAXIOV,
		       VHOST_BLK_PKT_WEIGHT, VHOST_BLK_BYTE_WEIGHT, true, NULL);
	vhost_blk_debugfs_create(blk);
	f->private_data = blk;
	return 0;

err_wq:
	if (blk->read_wq)
		destroy_workqueue(blk->read_wq);
	if (blk->write_wq)
		destroy_workqueue(blk->write_wq);
	ida_free(&vhost_blk_ida, blk->id);
err_vqs:
	kfree(vqs);
err_blk:
	kvfree(blk);
	return ret;
}

static int vhost_blk_release(struct inode *inode, struct file *f)
{
	struct vhost_blk *blk = f->private_data;
	struct vhost_blk_backend *be;

	/* First, so that no debugfs reader holds blk while we free it. */
	debugfs_remove_recursive(blk->debugfs);

	mutex_lock(&blk->dev.mutex);
	be = vhost_blk_detach(blk);
	mutex_unlock(&blk->dev.mutex);
	vhost_blk_quiesce(blk);
	vhost_dev_stop(&blk->dev);
	vhost_blk_backend_put(be);
	vhost_dev_cleanup(&blk->dev);
	/* Empty: the drain waited for their requests. */
	destroy_workqueue(blk->read_wq);
	destroy_workqueue(blk->write_wq);
	ida_free(&vhost_blk_ida, blk->id);
	kfree(blk->dev.vqs);
	kvfree(blk);
	return 0;
}

static const struct file_operations vhost_blk_fops = {
	.owner = THIS_MODULE,
	.open = vhost_blk_open,
	.release = vhost_blk_release,
	.unlocked_ioctl = vhost_blk_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice vhost_blk_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "vhost-blk",
	.fops = &vhost_blk_fops,
	.mode = 0600,
};

int ts_vhost_blk_init(void)
{
	int ret;

	vhost_blk_debugfs_root = debugfs_create_dir("vhost-blk",
						    ts_debugfs_root);
	ret = misc_register(&vhost_blk_misc);
	if (ret)
		debugfs_remove_recursive(vhost_blk_debugfs_root);
	return ret;
}

void ts_vhost_blk_exit(void)
{
	misc_deregister(&vhost_blk_misc);
	debugfs_remove_recursive(vhost_blk_debugfs_root);
}
