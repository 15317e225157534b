/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tesseract: the one place for differences between the kernels we support
 * (Debian 6.1 and 6.12). Everything else calls these helpers. The TS_HAVE_*
 * feature macros are probed in the kernel headers by Kbuild.
 */
#ifndef _TESSERACT_COMPAT_H
#define _TESSERACT_COMPAT_H

#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/ftrace.h>
#include <linux/mm.h>
#include <linux/pgtable.h>
#include <linux/swap.h>
#include <linux/uio.h>

#include "vhost.h"

/*
 * An exclusively opened backing block device. 6.12 hands out a struct file
 * for it (bdev_file_open_by_path), 6.1 the block_device itself.
 */
struct ts_bdev_handle {
#ifdef TS_HAVE_BDEV_FILE
	struct file *file;
#endif
	struct block_device *bdev;
};

#ifdef TS_HAVE_BDEV_FILE

static inline int ts_bdev_open(const char *path, void *holder,
			       struct ts_bdev_handle *h)
{
	struct file *file;

	file = bdev_file_open_by_path(path, BLK_OPEN_READ | BLK_OPEN_WRITE,
				      holder, NULL);
	if (IS_ERR(file))
		return PTR_ERR(file);
	h->file = file;
	h->bdev = file_bdev(file);
	return 0;
}

static inline void ts_bdev_close(struct ts_bdev_handle *h)
{
	/* bdev_fput releases the exclusive claim now, not at the last fput. */
	bdev_fput(h->file);
	h->file = NULL;
	h->bdev = NULL;
}

#else /* !TS_HAVE_BDEV_FILE */

#define TS_BDEV_MODE	(FMODE_READ | FMODE_WRITE | FMODE_EXCL)

static inline int ts_bdev_open(const char *path, void *holder,
			       struct ts_bdev_handle *h)
{
	struct block_device *bdev;

	bdev = blkdev_get_by_path(path, TS_BDEV_MODE, holder);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	h->bdev = bdev;
	return 0;
}

static inline void ts_bdev_close(struct ts_bdev_handle *h)
{
	blkdev_put(h->bdev, TS_BDEV_MODE);
	h->bdev = NULL;
}

#endif /* TS_HAVE_BDEV_FILE */

/*
 * The page cache of a block device, what a file opened on it has as
 * f_mapping (6.10 replaced bd_inode with bd_mapping).
 */
static inline struct address_space *ts_bdev_mapping(struct block_device *bdev)
{
#ifdef TS_HAVE_BD_MAPPING
	return bdev->bd_mapping;
#else
	return bdev->bd_inode->i_mapping;
#endif
}

/*
 * A bio-based disk of 4 KiB blocks with discard, non-rotational. Never
 * synchronous (BLK_FEAT_SYNCHRONOUS, QUEUE_FLAG_SYNCHRONOUS): swap would
 * then give it SWP_SYNCHRONOUS_IO, and swap-ins that skip the swap cache,
 * which reconciliation relies on to see a swap-in in progress (DESIGN
 * section 4).
 */
#ifdef TS_HAVE_QUEUE_LIMITS_ALLOC

static inline struct gendisk *ts_alloc_disk(unsigned int max_discard_sectors)
{
	struct queue_limits lim = {
		.logical_block_size	= PAGE_SIZE,
		.physical_block_size	= PAGE_SIZE,
		.io_min			= PAGE_SIZE,
		.io_opt			= PAGE_SIZE,
		.max_hw_discard_sectors	= max_discard_sectors,
		.discard_granularity	= PAGE_SIZE,
	};

	return blk_alloc_disk(&lim, NUMA_NO_NODE);
}

#else /* !TS_HAVE_QUEUE_LIMITS_ALLOC */

static inline struct gendisk *ts_alloc_disk(unsigned int max_discard_sectors)
{
	struct gendisk *disk = blk_alloc_disk(NUMA_NO_NODE);
	struct request_queue *q;

	if (!disk)
		return ERR_PTR(-ENOMEM);
	q = disk->queue;
	blk_queue_logical_block_size(q, PAGE_SIZE);
	blk_queue_physical_block_size(q, PAGE_SIZE);
	blk_queue_io_min(q, PAGE_SIZE);
	blk_queue_io_opt(q, PAGE_SIZE);
	q->limits.discard_granularity = PAGE_SIZE;
	blk_queue_max_discard_sectors(q, max_discard_sectors);
	/* Swap clusters and THP swap-out need a non-rotational device. */
	blk_queue_flag_set(QUEUE_FLAG_NONROT, q);
	return disk;
}

#endif /* TS_HAVE_QUEUE_LIMITS_ALLOC */

/*
 * 6.4 gave each virtqueue its own worker (probed in Kbuild); before, works
 * went to the one worker of the device, which exists from VHOST_SET_OWNER until cleanup.
 * Returns false only when no worker will ever run the work (6.12: the
 * vhost_task was killed together with its owner).
 */
static inline bool ts_vhost_queue_work(struct vhost_virtqueue *vq,
				       struct vhost_work *work)
{
#ifdef TS_HAVE_VHOST_VQ_WORK_QUEUE
	return vhost_vq_work_queue(vq, work);
#else
	vhost_work_queue(vq->dev, work);
	return true;
#endif
}

/* Whether @vq's worker has work queued (6.4 gave each ring a worker). */
static inline bool ts_vhost_has_work(struct vhost_virtqueue *vq)
{
#ifdef TS_HAVE_VHOST_VQ_HAS_WORK
	return vhost_vq_has_work(vq);
#else
	return vhost_has_work(vq->dev);
#endif
}

/*
 * Freeze protection of writes: since 6.6 vfs_iocb_iter_write() takes it
 * itself and leaves only its release after an asynchronous completion to the
 * caller; before, the caller took and released it all, as aio did (regular
 * files only). Pair ts_kiocb_end_async_write() with an -EIOCBQUEUED return.
 */
static inline ssize_t ts_vfs_iocb_write(struct file *file, struct kiocb *iocb,
					struct iov_iter *iter)
{
#ifdef TS_HAVE_VFS_WRITE_FREEZE_PROTECTION
	return vfs_iocb_iter_write(file, iocb, iter);
#else
	bool regular = S_ISREG(file_inode(file)->i_mode);
	ssize_t ret;

	if (regular)
		kiocb_start_write(iocb);
	ret = vfs_iocb_iter_write(file, iocb, iter);
	if (regular && ret != -EIOCBQUEUED)
		kiocb_end_write(iocb);
	return ret;
#endif
}

static inline void ts_kiocb_end_async_write(struct kiocb *iocb)
{
#ifdef TS_HAVE_VFS_WRITE_FREEZE_PROTECTION
	kiocb_end_write(iocb);
#else
	if (S_ISREG(file_inode(iocb->ki_filp)->i_mode))
		kiocb_end_write(iocb);
#endif
}

/*
 * block_device_operations.release lost its mode argument in 6.5. Defines
 * @name, a release method that calls @fn(disk).
 */
#ifdef TS_HAVE_BDEV_RELEASE_WITHOUT_MODE
#define TS_DEFINE_BDEV_RELEASE(name, fn)				\
	static void name(struct gendisk *disk)				\
	{								\
		fn(disk);						\
	}
#else
#define TS_DEFINE_BDEV_RELEASE(name, fn)				\
	static void name(struct gendisk *disk, fmode_t mode)		\
	{								\
		fn(disk);						\
	}
#endif

/*
 * Where the read of every swap-in begins: swap_read_folio() since 6.10,
 * swap_readpage() before, tried in turn (mm/swap.h, which declares them,
 * is not among the headers we build with).
 */
#define TS_SWAP_IN_FUNCTIONS	{ "swap_read_folio", "swap_readpage" }

/*
 * Hooks on function entry (ftrace) read their function's arguments. Where
 * ftrace saves the argument registers for every callback
 * (DYNAMIC_FTRACE_WITH_ARGS, x86 since 5.11) a hook needs no full pt_regs,
 * whose saving takes ftrace's slower trampoline on every call of a hot
 * function (the swap paths'). 6.1 has no accessor, but its ftrace_regs are
 * a pt_regs holding the arguments.
 */
#ifdef CONFIG_DYNAMIC_FTRACE_WITH_ARGS
#define TS_FTRACE_HOOK_FLAGS	FTRACE_OPS_FL_PERMANENT

static inline unsigned long ts_ftrace_arg(struct ftrace_regs *fregs,
					  unsigned int n)
{
#if defined(ftrace_regs_get_argument)
	return ftrace_regs_get_argument(fregs, n);
#elif defined(CONFIG_X86)
	return regs_get_kernel_argument(&fregs->regs, n);
#else
#error "ts_ftrace_arg: no way to read an ftrace hook's arguments here"
#endif
}
#else
#define TS_FTRACE_HOOK_FLAGS	(FTRACE_OPS_FL_SAVE_REGS | \
				 FTRACE_OPS_FL_PERMANENT)

/* Registered with FTRACE_OPS_FL_SAVE_REGS: NULL only if ftrace broke it. */
static inline unsigned long ts_ftrace_arg(struct ftrace_regs *fregs,
					  unsigned int n)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);

	return WARN_ON_ONCE(!regs) ? 0 : regs_get_kernel_argument(regs, n);
}
#endif

/* The swap entry of a swap-cache folio's first page (6.6 made it a field). */
static inline swp_entry_t ts_folio_swap_entry(struct folio *folio)
{
#ifdef TS_HAVE_FOLIO_SWAP
	return folio->swap;
#else
	return folio_swap_entry(folio);
#endif
}

/*
 * A pmd read without the page-table lock, whole even where it is two words
 * (6.1 called it pmd_read_atomic).
 */
static inline pmd_t ts_pmdp_get_lockless(pmd_t *pmdp)
{
#ifdef TS_HAVE_PMDP_GET_LOCKLESS
	return pmdp_get_lockless(pmdp);
#else
	return pmd_read_atomic(pmdp);
#endif
}

/* Unmap one page of a VMA (mmap lock held); zap_page_range went in 6.3. */
static inline void ts_zap_page(struct vm_area_struct *vma, unsigned long addr)
{
#ifdef TS_HAVE_ZAP_PAGE_RANGE
	zap_page_range(vma, addr, PAGE_SIZE);
#else
	zap_page_range_single(vma, addr, PAGE_SIZE, NULL);
#endif
}

/*
 * Drop a file reference from a vhost worker. fput() leaves the last one to
 * task work in any task that is not a kernel thread, and 6.12's vhost task
 * runs task work only when it gets a signal or exits: a guest RAM memfd
 * unmapped and closed meanwhile would stay pinned until then. 6.1's worker
 * is a kernel thread, whose fput() hands the release to a workqueue.
 */
static inline void ts_worker_fput(struct file *file)
{
	if (current->flags & PF_KTHREAD)
		fput(file);
	else
		__fput_sync(file);
}

#endif /* _TESSERACT_COMPAT_H */
