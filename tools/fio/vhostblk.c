// SPDX-License-Identifier: GPL-2.0
/*
 * fio external ioengine driving /dev/vhost-blk as a guest would.
 *
 *   fio --ioengine=external:build/tools/fio-vhostblk.so \
 *       --filename=<image file or block device> ...
 *
 * Each job opens its own /dev/vhost-blk, attaches the file as the backend
 * (with O_DIRECT if the job asks for direct=1) and drives one virtqueue with
 * the userspace guest driver of selftests/vblk_guest.c. fio's I/O buffers
 * are allocated inside the registered guest RAM (iomem_alloc), so every
 * request carries guest addresses, as a virtio-blk driver's would.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "fio.h"
#include "optgroup.h"

#include "vblk_guest.h"

/* Guest RAM beyond fio's buffers: rings, indirect tables, headers. */
#define VHOSTBLK_RAM_EXTRA	(16UL << 20)
#define VHOSTBLK_QUEUE		0

struct vhostblk_req {
	struct virtio_blk_outhdr *hdr;
	__u8 *status;
};

struct vhostblk_data {
	struct vblk_dev dev;
	bool opened;
	int backend_fd;
	unsigned int qsize;
	struct io_u **events;
	unsigned int nr_events;
};

static unsigned int vhostblk_qsize(struct thread_data *td)
{
	unsigned int n = 16;

	/* Each request is one indirect descriptor; the ring needs a power of 2. */
	while (n < td->o.iodepth && n < 32768)
		n <<= 1;
	return n;
}

/*
 * fio initialises per-I/O engine data before it allocates the I/O buffers,
 * so guest RAM is sized here for the buffers fio will ask for: at most its
 * largest block size times the queue depth, plus alignment.
 */
static size_t vhostblk_buffer_bytes(struct thread_data *td)
{
	unsigned long long max_bs = 0;
	int ddir;

	for (ddir = 0; ddir < DDIR_RWDIR_CNT; ddir++)
		if (td->o.max_bs[ddir] > max_bs)
			max_bs = td->o.max_bs[ddir];
	return max_bs * td->o.iodepth + td->o.mem_align + 2 * 4096;
}

static int vhostblk_init(struct thread_data *td)
{
	__u64 features = (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
			 (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			 (1ULL << VIRTIO_BLK_F_FLUSH);
	struct vhostblk_data *vd = calloc(1, sizeof(*vd));
	int ret;

	if (!vd)
		return 1;
	vblk_init(&vd->dev);
	vd->backend_fd = -1;
	vd->qsize = vhostblk_qsize(td);
	vd->events = calloc(td->o.iodepth, sizeof(*vd->events));
	td->io_ops_data = vd;
	if (!vd->events)
		return 1;

	ret = vblk_open(&vd->dev, vhostblk_buffer_bytes(td) + VHOSTBLK_RAM_EXTRA,
			1, vd->qsize, features);
	if (ret) {
		log_err("vhostblk: cannot set up /dev/vhost-blk: %s\n",
			strerror(-ret));
		return 1;
	}
	vd->opened = true;
	return 0;
}

/* fio's I/O buffers go in guest RAM, where a guest's buffers would be. */
static int vhostblk_iomem_alloc(struct thread_data *td, size_t total_mem)
{
	struct vhostblk_data *vd = td->io_ops_data;

	td->orig_buffer = vblk_alloc(&vd->dev, total_mem, 4096);
	if (!td->orig_buffer) {
		log_err("vhostblk: no guest RAM for %zu bytes of buffers\n",
			total_mem);
		return 1;
	}
	return 0;
}

static void vhostblk_iomem_free(struct thread_data *td)
{
	/* The buffers live in guest RAM, freed with the device. */
	td->orig_buffer = NULL;
}

static int vhostblk_io_u_init(struct thread_data *td, struct io_u *io_u)
{
	struct vhostblk_data *vd = td->io_ops_data;
	struct vhostblk_req *req = calloc(1, sizeof(*req));

	if (!req)
		return 1;
	req->hdr = vblk_alloc(&vd->dev, sizeof(*req->hdr), 16);
	req->status = vblk_alloc(&vd->dev, 1, 1);
	if (!req->hdr || !req->status) {
		free(req);
		return 1;
	}
	io_u->engine_data = req;
	return 0;
}

static void vhostblk_io_u_free(struct thread_data *td, struct io_u *io_u)
{
	free(io_u->engine_data);
	io_u->engine_data = NULL;
}

static int vhostblk_get_file_size(struct thread_data *td, struct fio_file *f)
{
	unsigned long long bytes;
	struct stat st;
	int fd, ret = 0;

	fd = open(f->file_name, O_RDONLY);
	if (fd < 0) {
		td_verror(td, errno, "open");
		return 1;
	}
	if (fstat(fd, &st)) {
		ret = errno;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &bytes))
			ret = errno;
		else
			f->real_file_size = bytes;
	} else {
		f->real_file_size = st.st_size;
	}
	close(fd);
	if (ret) {
		td_verror(td, ret, "size");
		return 1;
	}
	fio_file_set_size_known(f);
	return 0;
}

static int vhostblk_open_file(struct thread_data *td, struct fio_file *f)
{
	struct vhostblk_data *vd = td->io_ops_data;
	int flags = td_write(td) ? O_RDWR : O_RDONLY;
	int ret;

	if (td->o.odirect)
		flags |= O_DIRECT;
	vd->backend_fd = open(f->file_name, flags);
	if (vd->backend_fd < 0) {
		td_verror(td, errno, "open");
		return 1;
	}
	ret = vblk_set_backend(&vd->dev, vd->backend_fd);
	if (ret) {
		td_verror(td, -ret, "VHOST_BLK_SET_BACKEND");
		close(vd->backend_fd);
		vd->backend_fd = -1;
		return 1;
	}
	f->fd = vd->backend_fd;
	return 0;
}

static int vhostblk_close_file(struct thread_data *td, struct fio_file *f)
{
	struct vhostblk_data *vd = td->io_ops_data;

	if (vd->backend_fd >= 0) {
		/* Waits for the requests in flight, then detaches. */
		vblk_set_backend(&vd->dev, -1);
		close(vd->backend_fd);
		vd->backend_fd = -1;
	}
	f->fd = -1;
	return 0;
}

static enum fio_q_status vhostblk_queue(struct thread_data *td,
					struct io_u *io_u)
{
	struct vhostblk_data *vd = td->io_ops_data;
	struct vhostblk_req *req = io_u->engine_data;
	struct vblk_buf bufs[3];
	unsigned int n = 0;
	__u32 type;

	fio_ro_check(td, io_u);
	switch (io_u->ddir) {
	case DDIR_READ:
		type = VIRTIO_BLK_T_IN;
		break;
	case DDIR_WRITE:
		type = VIRTIO_BLK_T_OUT;
		break;
	case DDIR_SYNC:
	case DDIR_DATASYNC:
		type = VIRTIO_BLK_T_FLUSH;
		break;
	default:
		io_u->error = EINVAL;
		return FIO_Q_COMPLETED;
	}
	if (io_u->offset % 512 || io_u->xfer_buflen % 512) {
		io_u->error = EINVAL;
		return FIO_Q_COMPLETED;
	}
	req->hdr->type = htole32(type);
	req->hdr->ioprio = 0;
	req->hdr->sector = htole64(type == VIRTIO_BLK_T_FLUSH ? 0 :
				   io_u->offset / 512);
	*req->status = 0xff;
	bufs[n++] = (struct vblk_buf){ req->hdr, sizeof(*req->hdr), false };
	if (type != VIRTIO_BLK_T_FLUSH)
		bufs[n++] = (struct vblk_buf){ io_u->xfer_buf,
					       io_u->xfer_buflen,
					       type == VIRTIO_BLK_T_IN };
	bufs[n++] = (struct vblk_buf){ req->status, 1, true };
	if (vblk_post(&vd->dev, VHOSTBLK_QUEUE, bufs, n, true, io_u) < 0)
		return FIO_Q_BUSY;
	return FIO_Q_QUEUED;
}

static int vhostblk_commit(struct thread_data *td)
{
	struct vhostblk_data *vd = td->io_ops_data;

	vblk_kick(&vd->dev, VHOSTBLK_QUEUE);
	return 0;
}

static void vhostblk_reap(struct vhostblk_data *vd, unsigned int max)
{
	struct vhostblk_req *req;
	struct io_u *io_u;
	__u32 len;

	while (vd->nr_events < max &&
	       vblk_get_used(&vd->dev, VHOSTBLK_QUEUE, (void **)&io_u, &len)) {
		if (!io_u)
			continue;
		req = io_u->engine_data;
		io_u->error = *req->status == VIRTIO_BLK_S_OK ? 0 :
			      *req->status == VIRTIO_BLK_S_UNSUPP ? EOPNOTSUPP :
			      EIO;
		io_u->resid = 0;
		vd->events[vd->nr_events++] = io_u;
	}
}

static int vhostblk_getevents(struct thread_data *td, unsigned int min,
			      unsigned int max, const struct timespec *t)
{
	struct vhostblk_data *vd = td->io_ops_data;
	int timeout_ms = t ? t->tv_sec * 1000 + t->tv_nsec / 1000000 : -1;
	int woken;

	vd->nr_events = 0;
	vhostblk_reap(vd, max);
	while (vd->nr_events < min) {
		woken = vblk_wait(&vd->dev, VHOSTBLK_QUEUE,
				  timeout_ms < 0 ? 1000 : timeout_ms);
		vhostblk_reap(vd, max);
		if (vd->nr_events >= min)
			break;
		/*
		 * Only a wait that brought too little may mean a stopped
		 * queue: a system call less per request at queue depth 1.
		 */
		if (vblk_queue_error(&vd->dev, VHOSTBLK_QUEUE)) {
			log_err("vhostblk: the device stopped the queue\n");
			return -EIO;
		}
		if (!woken && timeout_ms >= 0)
			break;
	}
	return vd->nr_events;
}

static struct io_u *vhostblk_event(struct thread_data *td, int event)
{
	struct vhostblk_data *vd = td->io_ops_data;

	return vd->events[event];
}

static void vhostblk_cleanup(struct thread_data *td)
{
	struct vhostblk_data *vd = td->io_ops_data;

	if (!vd)
		return;
	if (vd->backend_fd >= 0)
		close(vd->backend_fd);
	if (vd->opened)
		vblk_close(&vd->dev);
	free(vd->events);
	free(vd);
	td->io_ops_data = NULL;
}

/* fio looks external engines up by this symbol name. */
struct ioengine_ops ioengine = {
	.name			= "vhostblk",
	.version		= FIO_IOOPS_VERSION,
	.flags			= FIO_DISKLESSIO | FIO_NOEXTEND | FIO_NODISKUTIL,
	.init			= vhostblk_init,
	.iomem_alloc		= vhostblk_iomem_alloc,
	.iomem_free		= vhostblk_iomem_free,
	.io_u_init		= vhostblk_io_u_init,
	.io_u_free		= vhostblk_io_u_free,
	.get_file_size		= vhostblk_get_file_size,
	.open_file		= vhostblk_open_file,
	.close_file		= vhostblk_close_file,
	.queue			= vhostblk_queue,
	.commit			= vhostblk_commit,
	.getevents		= vhostblk_getevents,
	.event			= vhostblk_event,
	.cleanup		= vhostblk_cleanup,
};
