// SPDX-License-Identifier: GPL-2.0
/*
 * vhost-user transport of the selftests' guest driver (vblk_vhost_user.h).
 * The driver's device requests (the ioctls of vblk_guest.c) become the
 * vhost-user messages QEMU sends for them; guest RAM is a memfd, so that
 * the back-end can map it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/tesseract.h>

#include "vblk_vhost_user.h"

#define WANT_PROTOCOL	((1ULL << VU_PROTOCOL_F_MQ) |			\
			 (1ULL << VU_PROTOCOL_F_REPLY_ACK) |		\
			 (1ULL << VU_PROTOCOL_F_CONFIG) |		\
			 (1ULL << VU_PROTOCOL_F_INFLIGHT_SHMFD))

static int vu_open_socket(struct vblk_dev *d, const char *socket_path,
			  int wait_ms);

static bool has_answer(__u32 request)
{
	switch (request) {
	case VU_GET_FEATURES:
	case VU_GET_PROTOCOL_FEATURES:
	case VU_GET_VRING_BASE:
	case VU_GET_QUEUE_NUM:
	case VU_GET_CONFIG:
	case VU_GET_INFLIGHT_FD:
		return true;
	default:
		return false;
	}
}

int vblk_vu_send(int sock, const struct vu_header *hdr, const void *payload,
		 __u32 bytes, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(VBLK_VU_MAX_SEND_FDS * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov[2] = {
		{ .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
		{ .iov_base = (void *)payload, .iov_len = bytes },
	};
	struct msghdr mh = {
		.msg_iov = iov,
		.msg_iovlen = bytes ? 2 : 1,
	};
	ssize_t n;

	if (nfds > VBLK_VU_MAX_SEND_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *cmsg;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
	}
	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	return n == (ssize_t)(sizeof(*hdr) + bytes) ? 0 : -EIO;
}

static int recv_answer(int sock, __u32 request, void *reply,
		       __u32 reply_size, int *reply_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct vu_header hdr;
	struct iovec iov = { .iov_base = &hdr, .iov_len = sizeof(hdr) };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;
	char sink[512];
	ssize_t n;

	n = recvmsg(sock, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	if (n == 0)
		return -ECONNRESET;
	if (n != sizeof(hdr))
		return n < 0 ? -errno : -EPROTO;
	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		int fd;

		if (cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		memcpy(&fd, CMSG_DATA(cmsg), sizeof(fd));
		if (reply_fd)
			*reply_fd = fd;
		else
			close(fd);
	}
	if (hdr.request != request ||
	    hdr.flags != (VU_VERSION | VU_FLAG_REPLY) ||
	    hdr.size > sizeof(sink))
		return -EPROTO;
	if (hdr.size && recv(sock, sink, hdr.size, MSG_WAITALL) !=
	    (ssize_t)hdr.size)
		return -EPROTO;
	memcpy(reply, sink, hdr.size < reply_size ? hdr.size : reply_size);
	return hdr.size;
}

int vblk_vu_call(struct vblk_dev *d, __u32 request, const void *payload,
		 __u32 size, int fd, void *reply, __u32 reply_size,
		 int *reply_fd)
{
	struct vu_header hdr = {
		.request = request,
		.flags = VU_VERSION,
		.size = size,
	};
	bool ack = !has_answer(request) &&
		   (d->vu_protocol & (1ULL << VU_PROTOCOL_F_REPLY_ACK));
	__u64 status;
	int ret;

	if (ack)
		hdr.flags |= VU_FLAG_NEED_REPLY;
	ret = vblk_vu_send(d->fd, &hdr, payload, size, &fd, fd >= 0);
	if (ret)
		return ret;
	if (has_answer(request))
		return recv_answer(d->fd, request, reply, reply_size, reply_fd);
	if (!ack)
		return 0;
	ret = recv_answer(d->fd, request, &status, sizeof(status), NULL);
	if (ret < 0)
		return ret;
	return ret == sizeof(status) && !status ? 0 : -EIO;
}

static int call_u64(struct vblk_dev *d, __u32 request, __u64 *value)
{
	int ret = vblk_vu_call(d, request, NULL, 0, -1, value, sizeof(*value),
			       NULL);

	return ret < 0 ? ret : ret == sizeof(*value) ? 0 : -EPROTO;
}

static int set_mem_table(struct vblk_dev *d, const struct vhost_memory *km)
{
	struct vu_mem_table t = { .nregions = 1 };
	const struct vhost_memory_region *r = &km->regions[0];

	/* vblk_guest.c registers all of guest RAM as one region. */
	if (km->nregions != 1)
		return -EINVAL;
	if (d->vu_inflight_queues) {
		int ret;

		if (d->vu_inflight_fd < 0)
			ret = vblk_vu_inflight(d, d->vu_inflight_queues,
					       d->vu_inflight_qsize,
					       &d->vu_inflight_fd,
					       (__u64 *)&d->vu_inflight_size);
		else
			ret = vblk_vu_set_inflight(d, d->vu_inflight_fd,
						   d->vu_inflight_size,
						   d->vu_inflight_queues,
						   d->vu_inflight_qsize);
		if (ret)
			return ret;
	}
	t.regions[0].guest_addr = r->guest_phys_addr;
	t.regions[0].size = r->memory_size;
	t.regions[0].user_addr = r->userspace_addr;
	t.regions[0].mmap_offset = r->userspace_addr - (uintptr_t)d->ram;
	return vblk_vu_call(d, VU_SET_MEM_TABLE, &t,
			    offsetof(struct vu_mem_table, regions) +
			    sizeof(t.regions[0]), d->ram_fd, NULL, 0, NULL);
}

static int set_vring_fd(struct vblk_dev *d, __u32 request,
			const struct vhost_vring_file *f)
{
	__u64 value = f->index;

	if (f->fd < 0)
		value |= VU_VRING_NOFD;
	return vblk_vu_call(d, request, &value, sizeof(value), f->fd, NULL, 0,
			    NULL);
}

/* Stop every ring the driver set up, as QEMU does at a stop. */
static int stop_rings(struct vblk_dev *d)
{
	unsigned int i;

	for (i = 0; i < d->nqueues; i++) {
		struct vu_vring_state st = { .index = i };
		int ret = vblk_vu_call(d, VU_GET_VRING_BASE, &st, sizeof(st),
				       -1, &st, sizeof(st), NULL);

		if (ret < 0)
			return ret;
	}
	return 0;
}

static int vu_transport(struct vblk_dev *d, unsigned long req, void *arg)
{
	struct vhost_vring_state *state = arg;
	__u64 features;
	int ret;

	switch (req) {
	case VHOST_SET_OWNER:
		return vblk_vu_call(d, VU_SET_OWNER, NULL, 0, -1, NULL, 0,
				    NULL);
	case VHOST_GET_FEATURES:
		ret = call_u64(d, VU_GET_FEATURES, &features);
		if (!ret)
			*(__u64 *)arg = features &
					~(1ULL << VU_F_PROTOCOL_FEATURES);
		return ret;
	case VHOST_SET_FEATURES:
		features = *(__u64 *)arg | (1ULL << VU_F_PROTOCOL_FEATURES);
		return vblk_vu_call(d, VU_SET_FEATURES, &features,
				    sizeof(features), -1, NULL, 0, NULL);
	case VHOST_SET_MEM_TABLE:
		return set_mem_table(d, arg);
	case VHOST_SET_VRING_NUM:
		return vblk_vu_call(d, VU_SET_VRING_NUM, state, sizeof(*state),
				    -1, NULL, 0, NULL);
	case VHOST_SET_VRING_BASE:
		return vblk_vu_call(d, VU_SET_VRING_BASE, state,
				    sizeof(*state), -1, NULL, 0, NULL);
	case VHOST_GET_VRING_BASE:
		ret = vblk_vu_call(d, VU_GET_VRING_BASE, state, sizeof(*state),
				   -1, state, sizeof(*state), NULL);
		return ret < 0 ? ret : 0;
	case VHOST_SET_VRING_ADDR:
		/* struct vhost_vring_addr is laid out as the message's. */
		return vblk_vu_call(d, VU_SET_VRING_ADDR, arg,
				    sizeof(struct vu_vring_addr), -1, NULL, 0,
				    NULL);
	case VHOST_SET_VRING_KICK: {
		const struct vhost_vring_file *f = arg;
		struct vu_vring_state on = { .index = f->index, .num = 1 };

		ret = set_vring_fd(d, VU_SET_VRING_KICK, f);
		return ret ?: vblk_vu_call(d, VU_SET_VRING_ENABLE, &on,
					   sizeof(on), -1, NULL, 0, NULL);
	}
	case VHOST_SET_VRING_CALL:
		return set_vring_fd(d, VU_SET_VRING_CALL, arg);
	case VHOST_SET_VRING_ERR:
		return set_vring_fd(d, VU_SET_VRING_ERR, arg);
	case VHOST_BLK_SET_BACKEND:
		/* The back-end serves the image it was started with. */
		return ((struct vhost_vring_file *)arg)->fd < 0 ?
		       stop_rings(d) : 0;
	default:
		return -EOPNOTSUPP;
	}
}

int vblk_vu_connect(struct vblk_dev *d, const char *socket_path,
		    size_t ram_size, int wait_ms)
{
	int ret;

	vblk_init(d);
	ret = vblk_map_ram(d, ram_size, true);
	return ret ?: vu_open_socket(d, socket_path, wait_ms);
}

static int vu_open_socket(struct vblk_dev *d, const char *socket_path,
			  int wait_ms)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	__u64 features, protocol;
	int ret, waited = 0;

	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);
	d->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->fd < 0)
		return -errno;
	while (connect(d->fd, (struct sockaddr *)&addr, sizeof(addr))) {
		if ((errno != ENOENT && errno != ECONNREFUSED) ||
		    waited >= wait_ms)
			return -errno;
		usleep(10000);
		waited += 10;
	}
	d->transport = vu_transport;
	d->vu_protocol = 0;

	/* QEMU's opening: features, then the protocol's. */
	ret = call_u64(d, VU_GET_FEATURES, &features);
	if (ret)
		return ret;
	if (!(features & (1ULL << VU_F_PROTOCOL_FEATURES)))
		return -EPROTO;
	ret = call_u64(d, VU_GET_PROTOCOL_FEATURES, &protocol);
	if (ret)
		return ret;
	protocol &= WANT_PROTOCOL;
	ret = vblk_vu_call(d, VU_SET_PROTOCOL_FEATURES, &protocol,
			   sizeof(protocol), -1, NULL, 0, NULL);
	if (ret)
		return ret;
	d->vu_protocol = protocol;
	return 0;
}

int vblk_vu_reconnect(struct vblk_dev *d, const char *socket_path,
		      const __u16 *bases, int wait_ms)
{
	unsigned int i;
	int ret;

	close(d->fd);
	ret = vu_open_socket(d, socket_path, wait_ms);
	if (ret)
		return ret;
	ret = vu_transport(d, VHOST_SET_OWNER, NULL);
	if (ret)
		return ret;
	ret = vu_transport(d, VHOST_SET_FEATURES, &d->features);
	if (ret)
		return ret;
	ret = vblk_set_memory_table(d);
	if (ret)
		return ret;
	for (i = 0; i < d->nqueues; i++) {
		ret = vblk_queue_start(d, &d->q[i], bases[i]);
		if (ret)
			return ret;
	}
	return 0;
}

int vblk_vu_get_config(struct vblk_dev *d, void *config, __u32 size)
{
	struct vu_config c = { .offset = 0, .size = size };
	int ret;

	if (size > VU_CONFIG_MAX)
		return -EINVAL;
	ret = vblk_vu_call(d, VU_GET_CONFIG, &c, VU_CONFIG_HDR_SIZE + size, -1,
			   &c, sizeof(c), NULL);
	if (ret < 0)
		return ret;
	if (ret != (int)(VU_CONFIG_HDR_SIZE + size))
		return -EIO;
	memcpy(config, c.payload, size);
	return 0;
}

int vblk_vu_set_inflight(struct vblk_dev *d, int inflight_fd,
			 __u64 inflight_size, __u16 nqueues,
			 __u16 qsize)
{
	struct vu_inflight in = {
		.mmap_size = inflight_size,
		.num_queues = nqueues,
		.queue_size = qsize,
	};

	return vblk_vu_call(d, VU_SET_INFLIGHT_FD, &in, sizeof(in),
			    inflight_fd, NULL, 0, NULL);
}

int vblk_vu_inflight(struct vblk_dev *d, __u16 nqueues, __u16 qsize,
		     int *inflight_fd, __u64 *inflight_size)
{
	struct vu_inflight in = { .num_queues = nqueues, .queue_size = qsize };
	int ret;

	*inflight_fd = -1;
	ret = vblk_vu_call(d, VU_GET_INFLIGHT_FD, &in, sizeof(in), -1, &in,
			   sizeof(in), inflight_fd);
	if (ret < 0)
		return ret;
	if (ret != sizeof(in) || *inflight_fd < 0)
		return -EPROTO;
	*inflight_size = in.mmap_size;
	return vblk_vu_set_inflight(d, *inflight_fd, in.mmap_size, nqueues,
				    qsize);
}

pid_t vblk_vu_spawn(const char *const *argv, const char *log_path)
{
	const char *dir = getenv("TS_DIR");
	char path[4096];
	pid_t pid;

	snprintf(path, sizeof(path), "%s/build/tools/tesseract-vhost-user-blk",
		 dir ? dir : ".");
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (log >= 0) {
			dup2(log, STDERR_FILENO);
			close(log);
		}
		execv(path, (char *const *)argv);
		_exit(127);
	}
	return pid;
}
