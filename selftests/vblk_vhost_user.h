/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The selftests' guest driver as a vhost-user front-end: the same rings and
 * requests as vblk_guest.h, with guest RAM in a memfd and the device set up
 * through messages to a back-end (tesseract-vhost-user-blk) as QEMU sets
 * up its vhost-user-blk device, instead of ioctls on /dev/vhost-blk.
 */
#ifndef _VBLK_VHOST_USER_H
#define _VBLK_VHOST_USER_H

#include <stdint.h>
#include <sys/types.h>

#include "vblk_guest.h"
#include "vhost_user.h"

/*
 * vblk_open_dev() for a back-end listening on @socket_path: guest RAM of
 * @ram_size bytes in a memfd, the socket connected (retrying for up to
 * @wait_ms while the back-end starts), protocol features negotiated
 * (MQ, REPLY_ACK, CONFIG, INFLIGHT_SHMFD). vblk_setup() and the rest then
 * work as with the kernel device; VHOST_BLK_SET_BACKEND is the back-end's
 * own (an fd is ignored, -1 stops every ring). 0 or -errno.
 */
int vblk_vu_connect(struct vblk_dev *d, const char *socket_path,
		    size_t ram_size, int wait_ms);

/*
 * A new connection for a device already set up, as QEMU reconnects to a
 * restarted back-end: guest RAM and rings stay as they are; the opening,
 * owner, features, memory table (and in-flight region) and every ring are
 * sent again, ring i resuming at avail index @bases[i]. 0 or -errno.
 */
int vblk_vu_reconnect(struct vblk_dev *d, const char *socket_path,
		      const __u16 *bases, int wait_ms);

/*
 * One request and its answer: @payload of @size bytes out, with @fd (-1:
 * none); the answer's payload into @reply (up to @reply_size bytes) and its
 * descriptor into @reply_fd when given. REPLY_ACK is asked for requests
 * that have no answer of their own. Returns the answer's payload size, 0,
 * or -errno (-EIO: the back-end said it failed; -ECONNRESET: it hung up).
 */
int vblk_vu_call(struct vblk_dev *d, __u32 request, const void *payload,
		 __u32 size, int fd, void *reply, __u32 reply_size,
		 int *reply_fd);

/*
 * Send one message: header @hdr, then @bytes of @payload (which may differ
 * from hdr->size, for hostile tests), with @nfds descriptors (at most
 * VBLK_VU_MAX_SEND_FDS). 0 or -errno (-ECONNRESET: the back-end hung up).
 */
#define VBLK_VU_MAX_SEND_FDS	16
int vblk_vu_send(int sock, const struct vu_header *hdr, const void *payload,
		 __u32 bytes, const int *fds, unsigned int nfds);

/* The back-end's configuration space (virtio_blk_config): 0 or -errno. */
int vblk_vu_get_config(struct vblk_dev *d, void *config, __u32 size);

/*
 * GET_INFLIGHT_FD then SET_INFLIGHT_FD, as QEMU does at a start: the region
 * (memfd) the back-end created, in *@inflight_fd for a later reconnect.
 */
int vblk_vu_inflight(struct vblk_dev *d, __u16 nqueues, __u16 qsize,
		     int *inflight_fd, __u64 *inflight_size);
/* SET_INFLIGHT_FD with a region kept from an earlier back-end. */
int vblk_vu_set_inflight(struct vblk_dev *d, int inflight_fd,
			 __u64 inflight_size, __u16 nqueues,
			 __u16 qsize);

/*
 * Start tesseract-vhost-user-blk with @argv (NULL terminated, argv[0]
 * ignored) with its standard error into @log_path: its pid, or -errno.
 */
pid_t vblk_vu_spawn(const char *const *argv, const char *log_path);

#endif /* _VBLK_VHOST_USER_H */
