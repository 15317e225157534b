/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tesseract: every difference between the supported kernels (Debian 6.1 and
 * 6.12) lives here, so that the .c files read the same on both.
 */
#ifndef _TESSERACT_COMPAT_H
#define _TESSERACT_COMPAT_H

#include <linux/fs.h>
#include <linux/uio.h>

#include "vhost.h"

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

#endif /* _TESSERACT_COMPAT_H */
