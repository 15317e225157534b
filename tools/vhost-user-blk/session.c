// SPDX-License-Identifier: GPL-2.0
/*
 * One vhost-user front-end connection, handed to /dev/vhost-blk.
 *
 * The front-end's requests build a shadow of the device: its features,
 * its memory table and, per ring, size, base, addresses and eventfds. The
 * kernel device gets a ring only once the front-end has started it (sent
 * its kick fd) and enabled it; the shadow is pushed then, with the
 * front-end's addresses translated into ours (we map every region of guest
 * memory), and the image is attached. A request that stops a ring, or
 * changes what the kernel has, detaches the image first: the kernel then
 * waits for every request in flight to be completed into the used ring,
 * so that the rings stand still while they change.
 *
 * Every message is checked before anything acts on it: its size, its file
 * descriptors, its ring index, its addresses. A bad one is refused with a
 * log line; the session ends unless the front-end asked for an answer
 * (REPLY_ACK), which then says that it failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "daemon.h"
#include "vhost_user.h"

#define MAX_RINGS		VHOST_BLK_MAX_QUEUES
#define MAX_RING_SIZE		32768
#define PAGE_MASK_4K		4095ULL

/* Discards and write-zeroes: 1 GiB a segment, in 4 KiB units. */
#define MAX_UNMAP_SECTORS	0x200000u
#define UNMAP_ALIGN_SECTORS	8

/* What we offer: QEMU's vhost-user-blk needs CONFIG, and MQ for queues. */
static const __u64 protocol_features = (1ULL << VU_PROTOCOL_F_MQ) |
				       (1ULL << VU_PROTOCOL_F_REPLY_ACK) |
				       (1ULL << VU_PROTOCOL_F_CONFIG) |
				       (1ULL << VU_PROTOCOL_F_INFLIGHT_SHMFD);

struct region {
	struct vu_region vu;	/* as the front-end described it */
	void *map;		/* our mapping of the fd */
	size_t map_len;
	__u8 *base;		/* guest_addr in our mapping */
};

struct ring {
	__u32 num;
	__u32 base;
	struct vu_vring_addr addr;	/* the front-end's addresses */
	bool has_num, has_addr;
	bool started;			/* kick fd received, not stopped */
	bool enabled;
	bool in_kernel;			/* pushed to the device */
	bool resumed;			/* past the front-end's base: signal */
	int kick_fd, call_fd, err_fd;
	__u16 *used_idx;		/* in our mapping, while in_kernel */
	__u16 used_seen;		/* *used_idx when it was pushed */
};

struct session {
	struct vu_disk *disk;
	int sock;
	int vfd;			/* /dev/vhost-blk */
	bool owner;
	__u64 offered;		/* virtio features we offer */
	__u64 features;		/* acknowledged, 0 until SET_FEATURES */
	bool has_features;
	__u64 protocol;		/* acknowledged protocol features */
	struct region regions[VU_MAX_REGIONS];
	unsigned int nregions;
	struct ring rings[MAX_RINGS];
	bool attached;
	/* The device and the shadow may disagree: the session must end. */
	bool broken;

	/* The in-flight region, kept by the front-end across reconnects. */
	__u8 *inflight;
	size_t inflight_len;
	__u16 inflight_queues, inflight_queue_size;

	/* The message being handled. */
	struct vu_msg msg;
	int fds[VU_MAX_FDS];
	unsigned int nfds;
};

static const char *request_name(__u32 req)
{
	static const char *const names[VU_REQUEST_MAX] = {
		[VU_GET_FEATURES] = "GET_FEATURES",
		[VU_SET_FEATURES] = "SET_FEATURES",
		[VU_SET_OWNER] = "SET_OWNER",
		[VU_RESET_OWNER] = "RESET_OWNER",
		[VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VU_SET_LOG_BASE] = "SET_LOG_BASE",
		[VU_SET_LOG_FD] = "SET_LOG_FD",
		[VU_SET_VRING_NUM] = "SET_VRING_NUM",
		[VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[VU_SET_VRING_BASE] = "SET_VRING_BASE",
		[VU_GET_VRING_BASE] = "GET_VRING_BASE",
		[VU_SET_VRING_KICK] = "SET_VRING_KICK",
		[VU_SET_VRING_CALL] = "SET_VRING_CALL",
		[VU_SET_VRING_ERR] = "SET_VRING_ERR",
		[VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
		[VU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
		[VU_GET_CONFIG] = "GET_CONFIG",
		[VU_SET_CONFIG] = "SET_CONFIG",
		[VU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
		[VU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
		[VU_RESET_DEVICE] = "RESET_DEVICE",
		[VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
		[VU_ADD_MEM_REG] = "ADD_MEM_REG",
		[VU_REM_MEM_REG] = "REM_MEM_REG",
	};

	if (req < VU_REQUEST_MAX && names[req])
		return names[req];
	return "unknown request";
}

/* Refuse the current message: always a log line saying why. */
static int refuse(struct session *s, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	vu_log("%s (%u) refused: %s", request_name(s->msg.hdr.request),
	       s->msg.hdr.request, why);
	return -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Takes the message's one descriptor; -1 if it has none. */
static int take_fd(struct session *s)
{
	int fd;

	if (!s->nfds)
		return -1;
	fd = s->fds[0];
	s->fds[0] = -1;
	return fd;
}

static void drop_fds(struct session *s)
{
	unsigned int i;

	for (i = 0; i < s->nfds; i++)
		close_fd(&s->fds[i]);
	s->nfds = 0;
}

/* ---- the socket ---- */

static int recv_all(int sock, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n;

		if (vu_wait(sock, -1) < 0)
			return -1;
		n = recv(sock, (char *)buf + done, len - done, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

/*
 * One message: the header and, in the same sendmsg() as QEMU sends it, the
 * descriptors, then the payload. 0 on success, 1 on a clean hang-up, -1 on
 * a message that cannot be read (the session ends).
 */
static int recv_msg(struct session *s)
{
	union {
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} control;
	struct iovec iov = {
		.iov_base = &s->msg.hdr,
		.iov_len = sizeof(s->msg.hdr),
	};
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.buf,
		.msg_controllen = sizeof(control.buf),
	};
	struct cmsghdr *cmsg;
	ssize_t n;

	s->nfds = 0;
	do {
		if (vu_wait(s->sock, -1) < 0)
			return 1;
		n = recvmsg(s->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && (errno == EINTR || errno == EAGAIN));
	if (n == 0)
		return 1;
	if (n < 0) {
		vu_log("reading the socket: %s", strerror(errno));
		return -1;
	}
	for (cmsg = CMSG_FIRSTHDR(&mh); cmsg; cmsg = CMSG_NXTHDR(&mh, cmsg)) {
		size_t bytes;
		unsigned int i;

		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		bytes = cmsg->cmsg_len - CMSG_LEN(0);
		for (i = 0; i < bytes / sizeof(int); i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int),
			       sizeof(fd));
			if (s->nfds < VU_MAX_FDS)
				s->fds[s->nfds++] = fd;
			else
				close(fd);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		vu_log("a message came with more than %d descriptors",
		       VU_MAX_FDS);
		return -1;
	}
	if ((size_t)n < sizeof(s->msg.hdr) &&
	    recv_all(s->sock, (char *)&s->msg.hdr + n,
		     sizeof(s->msg.hdr) - n)) {
		vu_log("a message header was cut short");
		return -1;
	}
	if ((s->msg.hdr.flags & VU_VERSION_MASK) != VU_VERSION) {
		vu_log("%s: protocol version %u, not %u",
		       request_name(s->msg.hdr.request),
		       s->msg.hdr.flags & VU_VERSION_MASK, VU_VERSION);
		return -1;
	}
	if (s->msg.hdr.size > sizeof(s->msg.payload)) {
		vu_log("%s: a payload of %u bytes, more than any request has",
		       request_name(s->msg.hdr.request), s->msg.hdr.size);
		return -1;
	}
	memset(&s->msg.payload, 0, sizeof(s->msg.payload));
	if (recv_all(s->sock, &s->msg.payload, s->msg.hdr.size)) {
		vu_log("%s: the payload was cut short",
		       request_name(s->msg.hdr.request));
		return -1;
	}
	return 0;
}

static int send_reply(struct session *s, const void *payload, __u32 size,
		      int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	struct vu_header hdr = {
		.request = s->msg.hdr.request,
		.flags = VU_VERSION | VU_FLAG_REPLY,
		.size = size,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)payload, .iov_len = size },
	};
	struct msghdr mh = {
		.msg_iov = iov,
		.msg_iovlen = size ? 2 : 1,
	};
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cmsg;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		cmsg = CMSG_FIRSTHDR(&mh);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	do {
		n = sendmsg(s->sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(sizeof(hdr) + size)) {
		vu_log("%s: cannot reply: %s", request_name(hdr.request),
		       n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

static int reply_u64(struct session *s, __u64 value)
{
	return send_reply(s, &value, sizeof(value), -1);
}

/* ---- guest memory ---- */

/* Our address of front-end user address @uaddr, @len bytes; NULL: none. */
static void *map_user_addr(struct session *s, __u64 uaddr, __u64 len)
{
	unsigned int i;

	for (i = 0; i < s->nregions; i++) {
		struct vu_region *r = &s->regions[i].vu;

		if (uaddr >= r->user_addr &&
		    uaddr - r->user_addr <= r->size &&
		    len <= r->size - (uaddr - r->user_addr))
			return s->regions[i].base + (uaddr - r->user_addr);
	}
	return NULL;
}

static void unmap_regions(struct session *s)
{
	unsigned int i;

	for (i = 0; i < s->nregions; i++)
		munmap(s->regions[i].map, s->regions[i].map_len);
	s->nregions = 0;
}

static bool ranges_overlap(__u64 a, __u64 alen, __u64 b,
			   __u64 blen)
{
	return a < b + blen && b < a + alen;
}

/* Checks one region of a table against itself and the ones before it. */
static int check_region(struct session *s, const struct vu_region *r,
			const struct vu_region *prev, unsigned int nprev,
			int fd)
{
	struct stat st;
	unsigned int i;

	if (!r->size)
		return refuse(s, "a region of no size");
	if (r->guest_addr + r->size < r->guest_addr ||
	    r->user_addr + r->size < r->user_addr ||
	    r->mmap_offset + r->size < r->mmap_offset)
		return refuse(s, "a region wraps around the address space");
	if ((r->guest_addr | r->size | r->user_addr) & PAGE_MASK_4K)
		return refuse(s, "a region not aligned to 4 KiB");
	for (i = 0; i < nprev; i++) {
		if (ranges_overlap(r->guest_addr, r->size, prev[i].guest_addr,
				   prev[i].size))
			return refuse(s, "regions overlap in guest addresses");
		if (ranges_overlap(r->user_addr, r->size, prev[i].user_addr,
				   prev[i].size))
			return refuse(s, "regions overlap in user addresses");
	}
	if (fstat(fd, &st))
		return refuse(s, "fstat of a region's fd: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return refuse(s, "a region's fd is not a memory file");
	/* A mapping past the file's end faults (SIGBUS) when touched. */
	if ((__u64)st.st_size < r->mmap_offset + r->size)
		return refuse(s, "a region runs past the end of its fd");
	return 0;
}

/* ---- the kernel device ---- */

static int dev_ioctl(struct session *s, unsigned long req, void *arg,
		     const char *what)
{
	if (ioctl(s->vfd, req, arg) == 0)
		return 0;
	vu_log("/dev/vhost-blk %s: %s", what, strerror(errno));
	return -1;
}

/* Detach the image: the kernel completes every request it took first. */
static int dev_detach(struct session *s)
{
	struct vhost_vring_file backend = { .index = 0, .fd = -1 };

	if (!s->attached)
		return 0;
	if (dev_ioctl(s, VHOST_BLK_SET_BACKEND, &backend, "detach")) {
		s->broken = true;
		return -1;
	}
	s->attached = false;
	return 0;
}

static struct vu_inflight_queue *inflight_queue(struct session *s,
						unsigned int index);

/*
 * Guest memory and the in-flight region are files the front-end can shrink
 * after we mapped them: a touch past the end would kill the daemon with
 * SIGBUS. The few places that touch them jump back instead.
 */
static sigjmp_buf *guest_fault;

static void on_sigbus(int sig)
{
	if (guest_fault)
		siglongjmp(*guest_fault, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * What an earlier back-end left of ring @ring (the in-flight region @q of
 * @qsize entries): -1 if none ran it (the region is marked for the next);
 * else the entries still marked in flight, the used index in used_seen.
 */
static int read_ring_state(struct vu_inflight_queue *q, __u16 qsize,
			   struct ring *ring)
{
	int i, pending = 0;

	if (q->version != VU_INFLIGHT_VERSION) {
		q->version = VU_INFLIGHT_VERSION;
		q->desc_num = qsize;
		return -1;
	}
	for (i = 0; i < q->desc_num && i < qsize; i++)
		pending += q->desc[i].inflight != 0;
	ring->used_seen = __atomic_load_n(ring->used_idx, __ATOMIC_ACQUIRE);
	return pending;
}

/*
 * Where a ring resumes, in *@base. A front-end that lost its back-end
 * without a GET_VRING_BASE answer (the daemon died or was restarted) takes
 * the used index it read from guest memory then; but the kernel device may
 * have completed requests after that, until its release had drained them
 * all (the image claim, which the device holds until then, kept us from
 * starting before). Every request it took is completed now, so the used
 * index in guest memory is where the ring stands. The in-flight region,
 * which the front-end keeps until the device is reset, says whether an
 * earlier back-end ran this ring; a fresh ring keeps the front-end's base.
 * Those late completions raised no interrupt the guest saw (the front-end
 * had taken its notifier down): ring->resumed asks for one. -1 if guest
 * memory is gone from under us.
 */
static int resume_base(struct session *s, unsigned int index,
		       struct ring *ring, __u32 *base)
{
	struct vu_inflight_queue *q = inflight_queue(s, index);
	__u16 used, ahead;
	sigjmp_buf env;
	int pending;

	*base = ring->base;
	if (!q)
		return 0;
	if (sigsetjmp(env, 1)) {
		guest_fault = NULL;
		vu_log("ring %u: guest memory or the in-flight region shrank under us",
		       index);
		return -1;
	}
	guest_fault = &env;
	pending = read_ring_state(q, s->inflight_queue_size, ring);
	guest_fault = NULL;
	if (pending < 0)
		return 0;
	used = ring->used_seen;

	if (pending)
		vu_log("ring %u: cannot resubmit %d requests another back-end left in flight",
		       index, pending);
	ahead = (__u16)(used - ring->base);
	if (!ahead)
		return 0;
	if (ahead > ring->num) {
		vu_log("ring %u: used index %u is %u past base %u, over a ring: base kept",
		       index, used, ahead, ring->base);
		return 0;
	}
	vu_log("ring %u: resuming at used index %u, not %u (%u done by the old device)",
	       index, used, ring->base, ahead);
	*base = used;
	ring->resumed = true;
	return 0;
}

static int push_ring(struct session *s, unsigned int index)
{
	struct ring *ring = &s->rings[index];
	__u64 num = ring->num;
	struct vhost_vring_addr addr = {
		.index = index,
	};
	struct vhost_vring_state state = { .index = index };
	struct vhost_vring_file file = { .index = index };
	void *desc, *avail, *used;

	/* Whatever fails below leaves the ring half set up. */
	s->broken = true;
	desc = map_user_addr(s, ring->addr.desc, 16 * num);
	avail = map_user_addr(s, ring->addr.avail, 6 + 2 * num);
	used = map_user_addr(s, ring->addr.used, 6 + 8 * num);
	if (!desc || !avail || !used) {
		vu_log("ring %u: its addresses are not in guest memory",
		       index);
		return -1;
	}
	addr.desc_user_addr = (uintptr_t)desc;
	addr.avail_user_addr = (uintptr_t)avail;
	addr.used_user_addr = (uintptr_t)used;
	ring->used_idx = (__u16 *)((__u8 *)used + 2);

	state.num = ring->num;
	if (dev_ioctl(s, VHOST_SET_VRING_NUM, &state, "SET_VRING_NUM") ||
	    resume_base(s, index, ring, &state.num) ||
	    dev_ioctl(s, VHOST_SET_VRING_BASE, &state, "SET_VRING_BASE") ||
	    dev_ioctl(s, VHOST_SET_VRING_ADDR, &addr, "SET_VRING_ADDR"))
		return -1;
	file.fd = ring->kick_fd;
	if (dev_ioctl(s, VHOST_SET_VRING_KICK, &file, "SET_VRING_KICK"))
		return -1;
	file.fd = ring->call_fd;
	if (dev_ioctl(s, VHOST_SET_VRING_CALL, &file, "SET_VRING_CALL"))
		return -1;
	file.fd = ring->err_fd;
	if (dev_ioctl(s, VHOST_SET_VRING_ERR, &file, "SET_VRING_ERR"))
		return -1;
	ring->in_kernel = true;
	s->broken = false;
	return 0;
}

/* Take a ring out of the device; the image is detached. */
static int pull_ring(struct session *s, unsigned int index)
{
	struct ring *ring = &s->rings[index];
	struct vhost_vring_state state = { .index = index };
	struct vhost_vring_addr addr = { .index = index };
	struct vhost_vring_file file = { .index = index, .fd = -1 };

	if (!ring->in_kernel)
		return 0;
	/* No descriptor table: the device no longer serves the ring. */
	if (dev_ioctl(s, VHOST_GET_VRING_BASE, &state, "GET_VRING_BASE") ||
	    dev_ioctl(s, VHOST_SET_VRING_ADDR, &addr, "SET_VRING_ADDR") ||
	    dev_ioctl(s, VHOST_SET_VRING_KICK, &file, "SET_VRING_KICK")) {
		s->broken = true;
		return -1;
	}
	ring->base = state.num;
	ring->in_kernel = false;
	ring->used_idx = NULL;
	return 0;
}

/* Stop a ring the kernel serves: detached (drained), then taken out. */
static int stop_ring(struct session *s, unsigned int index)
{
	if (!s->rings[index].in_kernel)
		return 0;
	return dev_detach(s) || pull_ring(s, index) ? -1 : 0;
}

static bool ring_runs(struct session *s, const struct ring *ring)
{
	bool enabled = ring->enabled ||
		       !(s->features & (1ULL << VU_F_PROTOCOL_FEATURES));

	return ring->started && enabled && ring->has_num && ring->has_addr &&
	       s->has_features && s->nregions;
}

/*
 * The interrupt that completions made while no back-end ran did not raise
 * (resume_base()), once the ring runs again and has its call fd.
 */
static void signal_resumed(struct session *s, unsigned int index)
{
	struct ring *ring = &s->rings[index];
	__u64 one = 1;

	if (!ring->resumed || !ring->in_kernel || !s->attached ||
	    ring->call_fd < 0)
		return;
	ring->resumed = false;
	if (write(ring->call_fd, &one, sizeof(one)) != sizeof(one))
		vu_log("ring %u: signalling the guest: %s", index,
		       strerror(errno));
}

/*
 * Bring the device in line with the shadow: detach if a ring must go in or
 * out, move the rings, attach if any runs.
 */
static int sync_device(struct session *s)
{
	struct vhost_vring_file backend = { .index = 0 };
	bool change = false, any = false;
	unsigned int i;

	for (i = 0; i < MAX_RINGS; i++) {
		bool runs = ring_runs(s, &s->rings[i]);

		change |= runs != s->rings[i].in_kernel;
		any |= runs;
	}
	if (!change && (s->attached || !any))
		return 0;
	if (dev_detach(s))
		return -1;
	for (i = 0; i < MAX_RINGS; i++) {
		if (ring_runs(s, &s->rings[i])) {
			if (!s->rings[i].in_kernel && push_ring(s, i))
				return -1;
		} else if (pull_ring(s, i)) {
			return -1;
		}
	}
	if (!any)
		return 0;
	backend.fd = s->disk->image_fd;
	if (dev_ioctl(s, VHOST_BLK_SET_BACKEND, &backend, "attach")) {
		s->broken = true;
		return -1;
	}
	s->attached = true;
	for (i = 0; i < MAX_RINGS; i++)
		signal_resumed(s, i);
	return 0;
}

/* Everything out of the device, as at a stop; the memory stays mapped. */
static int stop_device(struct session *s)
{
	unsigned int i;

	if (dev_detach(s))
		return -1;
	for (i = 0; i < MAX_RINGS; i++)
		if (pull_ring(s, i))
			return -1;
	return 0;
}

static int open_device(struct session *s)
{
	__u64 features;

	s->vfd = open(s->disk->vhost_dev, O_RDWR | O_CLOEXEC);
	if (s->vfd < 0) {
		vu_log("%s: %s", s->disk->vhost_dev, strerror(errno));
		return -1;
	}
	if (ioctl(s->vfd, VHOST_GET_FEATURES, &features)) {
		vu_log("%s: VHOST_GET_FEATURES: %s", s->disk->vhost_dev,
		       strerror(errno));
		return -1;
	}
	/* Read-only is ours to say: the kernel adds it once attached. */
	features &= ~(1ULL << VIRTIO_BLK_F_RO);
	if (s->disk->read_only)
		features |= 1ULL << VIRTIO_BLK_F_RO;
	s->offered = features | (1ULL << VU_F_PROTOCOL_FEATURES);
	return 0;
}

/* What the command line asks of the device, once we own it. */
static int configure_device(struct session *s)
{
	struct vu_disk *d = s->disk;

	if (d->has_serial &&
	    dev_ioctl(s, VHOST_BLK_SET_SERIAL, d->serial, "SET_SERIAL"))
		return -1;
	if (d->has_token) {
		struct vhost_blk_disk_identity ident = { .disk_id = d->disk_id };

		memcpy(ident.token, d->token, sizeof(ident.token));
		if (dev_ioctl(s, VHOST_BLK_SET_DISK_IDENTITY, &ident,
			      "SET_DISK_IDENTITY"))
			return -1;
	} else if (d->disk_id &&
		   dev_ioctl(s, VHOST_BLK_SET_DISK_ID, &d->disk_id,
			     "SET_DISK_ID")) {
		return -1;
	}
	if (d->reconcile >= 0 &&
	    dev_ioctl(s, VHOST_BLK_SET_RECONCILE, &d->reconcile,
		      "SET_RECONCILE"))
		return -1;
	return 0;
}

/* ---- the in-flight region ---- */

static size_t inflight_queue_bytes(__u16 queue_size)
{
	size_t bytes = sizeof(struct vu_inflight_queue) +
		       (size_t)queue_size * sizeof(struct vu_inflight_desc);

	return (bytes + 63) & ~(size_t)63;
}

static struct vu_inflight_queue *inflight_queue(struct session *s,
						unsigned int index)
{
	if (!s->inflight || index >= s->inflight_queues ||
	    s->rings[index].num > s->inflight_queue_size)
		return NULL;
	return (struct vu_inflight_queue *)
	       (s->inflight + index * inflight_queue_bytes(s->inflight_queue_size));
}

static void unmap_inflight(struct session *s)
{
	if (s->inflight)
		munmap(s->inflight, s->inflight_len);
	s->inflight = NULL;
}

static int check_inflight_shape(struct session *s,
				const struct vu_inflight *in)
{
	if (!in->num_queues || in->num_queues > s->disk->num_queues)
		return refuse(s, "%u queues, the device has %u",
			      in->num_queues, s->disk->num_queues);
	if (!in->queue_size || in->queue_size > MAX_RING_SIZE ||
	    (in->queue_size & (in->queue_size - 1)))
		return refuse(s, "queue size %u", in->queue_size);
	return 0;
}

static int get_inflight_fd(struct session *s)
{
	struct vu_inflight in = s->msg.payload.inflight;
	size_t len;
	void *map;
	int fd;

	if (check_inflight_shape(s, &in))
		return -1;
	len = in.num_queues * inflight_queue_bytes(in.queue_size);
	fd = memfd_create("tesseract-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return refuse(s, "memfd_create: %s", strerror(errno));
	if (ftruncate(fd, len) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)) {
		close(fd);
		return refuse(s, "sizing the in-flight region: %s",
			      strerror(errno));
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		close(fd);
		return refuse(s, "mapping the in-flight region: %s",
			      strerror(errno));
	}
	unmap_inflight(s);
	s->inflight = map;
	s->inflight_len = len;
	s->inflight_queues = in.num_queues;
	s->inflight_queue_size = in.queue_size;
	in.mmap_size = len;
	in.mmap_offset = 0;
	if (send_reply(s, &in, sizeof(in), fd)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 1;	/* answered */
}

static int set_inflight_fd(struct session *s)
{
	struct vu_inflight in = s->msg.payload.inflight;
	int fd = take_fd(s);
	struct stat st;
	void *map;

	if (check_inflight_shape(s, &in))
		goto err;
	if (in.mmap_size != in.num_queues * inflight_queue_bytes(in.queue_size)) {
		refuse(s, "an in-flight region of %llu bytes for %u queues of %u",
		       (unsigned long long)in.mmap_size, in.num_queues,
		       in.queue_size);
		goto err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    in.mmap_offset & PAGE_MASK_4K ||
	    (__u64)st.st_size < in.mmap_offset + in.mmap_size) {
		refuse(s, "the in-flight region's fd does not hold it");
		goto err;
	}
	map = mmap(NULL, in.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   in.mmap_offset);
	if (map == MAP_FAILED) {
		refuse(s, "mapping the in-flight region: %s", strerror(errno));
		goto err;
	}
	close(fd);
	unmap_inflight(s);
	s->inflight = map;
	s->inflight_len = in.mmap_size;
	s->inflight_queues = in.num_queues;
	s->inflight_queue_size = in.queue_size;
	return 0;
err:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---- requests ---- */

static int set_mem_table(struct session *s)
{
	struct vu_mem_table *t = &s->msg.payload.mem;
	struct region fresh[VU_MAX_REGIONS];
	struct vhost_memory *km;
	unsigned int i, n = t->nregions;

	if (!n || n > VU_MAX_REGIONS)
		return refuse(s, "%u regions (1 to %d)", n, VU_MAX_REGIONS);
	if (s->msg.hdr.size != offsetof(struct vu_mem_table, regions) +
			       n * sizeof(struct vu_region))
		return refuse(s, "%u bytes for %u regions", s->msg.hdr.size, n);
	if (s->nfds != n)
		return refuse(s, "%u descriptors for %u regions", s->nfds, n);
	for (i = 0; i < n; i++)
		if (check_region(s, &t->regions[i], t->regions, i, s->fds[i]))
			return -1;

	memset(fresh, 0, sizeof(fresh));
	for (i = 0; i < n; i++) {
		struct vu_region *r = &t->regions[i];
		__u64 skew = r->mmap_offset & PAGE_MASK_4K;

		fresh[i].vu = *r;
		fresh[i].map_len = r->size + skew;
		fresh[i].map = mmap(NULL, fresh[i].map_len,
				    PROT_READ | PROT_WRITE, MAP_SHARED,
				    s->fds[i], r->mmap_offset - skew);
		if (fresh[i].map == MAP_FAILED) {
			refuse(s, "mapping region %u: %s", i, strerror(errno));
			goto unmap;
		}
		fresh[i].base = (__u8 *)fresh[i].map + skew;
	}

	km = calloc(1, sizeof(*km) + n * sizeof(km->regions[0]));
	if (!km) {
		refuse(s, "out of memory");
		goto unmap;
	}
	km->nregions = n;
	for (i = 0; i < n; i++) {
		km->regions[i].guest_phys_addr = fresh[i].vu.guest_addr;
		km->regions[i].memory_size = fresh[i].vu.size;
		km->regions[i].userspace_addr = (uintptr_t)fresh[i].base;
	}
	/* The rings move with the memory: out, and back in below. */
	if (stop_device(s) ||
	    dev_ioctl(s, VHOST_SET_MEM_TABLE, km, "SET_MEM_TABLE")) {
		free(km);
		goto unmap;
	}
	free(km);
	unmap_regions(s);
	memcpy(s->regions, fresh, sizeof(fresh));
	s->nregions = n;
	drop_fds(s);
	return sync_device(s);

unmap:
	while (i--)
		munmap(fresh[i].map, fresh[i].map_len);
	return -1;
}

static struct ring *ring_of(struct session *s, __u32 index)
{
	if (index >= s->disk->num_queues) {
		refuse(s, "ring %u, the device has %u", index,
		       s->disk->num_queues);
		return NULL;
	}
	return &s->rings[index];
}

static int set_vring_num(struct session *s)
{
	struct vu_vring_state *st = &s->msg.payload.state;
	struct ring *ring = ring_of(s, st->index);

	if (!ring)
		return -1;
	if (!st->num || st->num > MAX_RING_SIZE || (st->num & (st->num - 1)))
		return refuse(s, "ring size %u", st->num);
	if (ring->in_kernel)
		return refuse(s, "ring %u is running", st->index);
	ring->num = st->num;
	ring->has_num = true;
	return 0;
}

static int set_vring_base(struct session *s)
{
	struct vu_vring_state *st = &s->msg.payload.state;
	struct ring *ring = ring_of(s, st->index);

	if (!ring)
		return -1;
	if (st->num > 0xffff)
		return refuse(s, "base %u of a split ring", st->num);
	if (ring->in_kernel)
		return refuse(s, "ring %u is running", st->index);
	ring->base = st->num;
	return 0;
}

static int set_vring_addr(struct session *s)
{
	struct vu_vring_addr *a = &s->msg.payload.addr;
	struct ring *ring = ring_of(s, a->index);

	if (!ring)
		return -1;
	if (a->flags)
		return refuse(s, "ring %u: flags %#x (no dirty logging)",
			      a->index, a->flags);
	if ((a->desc & 15) || (a->avail & 1) || (a->used & 3))
		return refuse(s, "ring %u: misaligned addresses", a->index);
	ring->addr = *a;
	ring->has_addr = true;
	/* A running ring moves: stop it, sync_device() takes it back. */
	if (stop_ring(s, a->index))
		return -1;
	return sync_device(s);
}

static int set_vring_fd(struct session *s)
{
	__u64 value = s->msg.payload.u64;
	__u32 index = value & VU_VRING_IDX_MASK;
	bool nofd = value & VU_VRING_NOFD;
	struct ring *ring;
	int fd, *slot;

	if (value & ~(__u64)(VU_VRING_IDX_MASK | VU_VRING_NOFD))
		return refuse(s, "unknown bits in %#llx",
			      (unsigned long long)value);
	ring = ring_of(s, index);
	if (!ring)
		return -1;
	if (s->nfds != (nofd ? 0u : 1u))
		return refuse(s, "%u descriptors with%s the no-fd flag",
			      s->nfds, nofd ? "" : "out");
	fd = take_fd(s);
	switch (s->msg.hdr.request) {
	case VU_SET_VRING_KICK:
		if (nofd)
			return refuse(s, "ring %u: polling without a kick fd is not supported",
				      index);
		slot = &ring->kick_fd;
		break;
	case VU_SET_VRING_CALL:
		slot = &ring->call_fd;
		break;
	default:
		slot = &ring->err_fd;
		break;
	}
	close_fd(slot);
	*slot = fd;
	if (s->msg.hdr.request == VU_SET_VRING_KICK) {
		/* The specification's start of a ring. */
		ring->started = true;
		if (stop_ring(s, index))
			return -1;
		return sync_device(s);
	}
	if (ring->in_kernel) {
		struct vhost_vring_file file = { .index = index, .fd = fd };

		if (dev_ioctl(s, s->msg.hdr.request == VU_SET_VRING_CALL ?
			      VHOST_SET_VRING_CALL : VHOST_SET_VRING_ERR,
			      &file, request_name(s->msg.hdr.request)))
			return -1;
		signal_resumed(s, index);
	}
	return 0;
}

static int get_vring_base(struct session *s)
{
	struct vu_vring_state st = s->msg.payload.state;
	struct ring *ring = ring_of(s, st.index);

	if (!ring)
		return -1;
	/* The ring stops: every request it took completes first. */
	if (stop_ring(s, st.index))
		return -1;
	ring->started = false;
	close_fd(&ring->kick_fd);
	st.num = ring->base;
	if (send_reply(s, &st, sizeof(st), -1))
		return -1;
	/* Other rings that run go on. */
	if (sync_device(s))
		return -1;
	return 1;
}

static int set_vring_enable(struct session *s)
{
	struct vu_vring_state *st = &s->msg.payload.state;
	struct ring *ring = ring_of(s, st->index);

	if (!ring)
		return -1;
	if (st->num > 1)
		return refuse(s, "ring %u: enable %u", st->index, st->num);
	if (!(s->features & (1ULL << VU_F_PROTOCOL_FEATURES)))
		return refuse(s, "protocol features were not negotiated");
	ring->enabled = st->num;
	return sync_device(s);
}

static int set_features(struct session *s)
{
	__u64 features = s->msg.payload.u64;
	__u64 kernel = features & ~(1ULL << VU_F_PROTOCOL_FEATURES);

	if (!s->owner)
		return refuse(s, "before SET_OWNER");
	/*
	 * QEMU passes on bits of the guest's it does not filter (legacy
	 * ANY_LAYOUT, say): ignored, as a device ignores what it did not
	 * offer.
	 */
	if (features & ~s->offered) {
		vu_log("ignoring features %#llx that were not offered",
		       (unsigned long long)(features & ~s->offered));
		features &= s->offered;
		kernel = features & ~(1ULL << VU_F_PROTOCOL_FEATURES);
	}
	if (s->disk->read_only && !(features & (1ULL << VIRTIO_BLK_F_RO)))
		vu_log("the driver ignores that the disk is read-only: its writes fail");
	if (dev_ioctl(s, VHOST_SET_FEATURES, &kernel, "SET_FEATURES"))
		return -1;
	s->features = features;
	s->has_features = true;
	return sync_device(s);
}

static int get_config(struct session *s)
{
	struct vu_config *c = &s->msg.payload.config;
	struct virtio_blk_config cfg;
	struct vu_disk *d = s->disk;
	__u8 space[VU_CONFIG_MAX];

	if (s->msg.hdr.size < VU_CONFIG_HDR_SIZE ||
	    c->size > VU_CONFIG_MAX || c->offset > VU_CONFIG_MAX ||
	    c->offset + c->size > VU_CONFIG_MAX ||
	    s->msg.hdr.size != VU_CONFIG_HDR_SIZE + c->size) {
		refuse(s, "a config access of %u bytes at %u", c->size,
		       c->offset);
		/* The specification's error answer: no payload. */
		return send_reply(s, NULL, 0, -1) ? -1 : 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.capacity = d->capacity >> 9;
	cfg.size_max = VHOST_BLK_SIZE_MAX;
	cfg.seg_max = d->seg_max;
	cfg.blk_size = d->blk_size;
	cfg.num_queues = d->num_queues;
	cfg.max_discard_sectors = MAX_UNMAP_SECTORS;
	cfg.max_discard_seg = VHOST_BLK_MAX_DISCARD_SEG;
	cfg.discard_sector_alignment = UNMAP_ALIGN_SECTORS;
	cfg.max_write_zeroes_sectors = MAX_UNMAP_SECTORS;
	cfg.max_write_zeroes_seg = VHOST_BLK_MAX_WRITE_ZEROES_SEG;
	cfg.write_zeroes_may_unmap = 1;
	/* Fields newer than ours read as zero, as their features are off. */
	memset(space, 0, sizeof(space));
	memcpy(space, &cfg, sizeof(cfg));
	memcpy(c->payload, space + c->offset, c->size);
	return send_reply(s, c, VU_CONFIG_HDR_SIZE + c->size, -1) ? -1 : 1;
}

/* Payload sizes of fixed-size requests; -1: checked by the handler. */
static int expected_size(__u32 req)
{
	switch (req) {
	case VU_GET_FEATURES:
	case VU_GET_PROTOCOL_FEATURES:
	case VU_GET_QUEUE_NUM:
	case VU_SET_OWNER:
	case VU_RESET_OWNER:
		return 0;
	case VU_SET_FEATURES:
	case VU_SET_PROTOCOL_FEATURES:
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		return sizeof(__u64);
	case VU_SET_VRING_NUM:
	case VU_SET_VRING_BASE:
	case VU_GET_VRING_BASE:
	case VU_SET_VRING_ENABLE:
		return sizeof(struct vu_vring_state);
	case VU_SET_VRING_ADDR:
		return sizeof(struct vu_vring_addr);
	case VU_GET_INFLIGHT_FD:
	case VU_SET_INFLIGHT_FD:
		return sizeof(struct vu_inflight);
	default:
		return -1;
	}
}

/* Descriptors a request comes with; -1: checked by the handler. */
static int expected_fds(__u32 req)
{
	switch (req) {
	case VU_SET_MEM_TABLE:
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		return -1;
	case VU_SET_INFLIGHT_FD:
		return 1;
	default:
		return 0;
	}
}

/*
 * One request. Returns 1 if it was answered, 0 if it succeeded without an
 * answer of its own, -1 if it was refused or failed.
 */
static int handle(struct session *s)
{
	__u32 req = s->msg.hdr.request;
	int size = expected_size(req), fds = expected_fds(req);

	if (size >= 0 && s->msg.hdr.size != (__u32)size)
		return refuse(s, "a payload of %u bytes, not %d",
			      s->msg.hdr.size, size);
	if (fds >= 0 && s->nfds != (unsigned int)fds)
		return refuse(s, "%u descriptors, not %d", s->nfds, fds);
	if (req != VU_GET_FEATURES && req != VU_GET_PROTOCOL_FEATURES &&
	    req != VU_SET_PROTOCOL_FEATURES && req != VU_SET_OWNER &&
	    req != VU_GET_QUEUE_NUM && req != VU_GET_CONFIG && !s->owner)
		return refuse(s, "before SET_OWNER");

	switch (req) {
	case VU_GET_FEATURES:
		return reply_u64(s, s->offered) ? -1 : 1;
	case VU_SET_FEATURES:
		return set_features(s);
	case VU_GET_PROTOCOL_FEATURES:
		return reply_u64(s, protocol_features) ? -1 : 1;
	case VU_SET_PROTOCOL_FEATURES:
		if (s->msg.payload.u64 & ~protocol_features)
			return refuse(s, "protocol features %#llx that were not offered",
				      (unsigned long long)
				      (s->msg.payload.u64 & ~protocol_features));
		s->protocol = s->msg.payload.u64;
		return 0;
	case VU_SET_OWNER:
		if (s->owner)
			return refuse(s, "the session has an owner");
		if (dev_ioctl(s, VHOST_SET_OWNER, NULL, "SET_OWNER") ||
		    configure_device(s))
			return -1;
		s->owner = true;
		return 0;
	case VU_RESET_OWNER:
		/* Deprecated; the specification suggests: stop every ring. */
		return stop_device(s);
	case VU_GET_QUEUE_NUM:
		return reply_u64(s, s->disk->num_queues) ? -1 : 1;
	case VU_SET_MEM_TABLE:
		return set_mem_table(s);
	case VU_SET_VRING_NUM:
		return set_vring_num(s);
	case VU_SET_VRING_BASE:
		return set_vring_base(s);
	case VU_SET_VRING_ADDR:
		return set_vring_addr(s);
	case VU_GET_VRING_BASE:
		return get_vring_base(s);
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		return set_vring_fd(s);
	case VU_SET_VRING_ENABLE:
		return set_vring_enable(s);
	case VU_GET_CONFIG:
		return get_config(s);
	case VU_SET_CONFIG:
		return refuse(s, "the configuration space is read-only");
	case VU_GET_INFLIGHT_FD:
		return get_inflight_fd(s);
	case VU_SET_INFLIGHT_FD:
		return set_inflight_fd(s);
	default:
		return refuse(s, "not supported");
	}
}

static void session_end(struct session *s)
{
	unsigned int i;

	/*
	 * The device first: its release waits for every request in flight
	 * and completes it into the used ring, while guest memory is still
	 * mapped, before the front-end sees the socket close.
	 */
	if (s->vfd >= 0)
		close(s->vfd);
	s->vfd = -1;
	for (i = 0; i < MAX_RINGS; i++) {
		close_fd(&s->rings[i].kick_fd);
		close_fd(&s->rings[i].call_fd);
		close_fd(&s->rings[i].err_fd);
	}
	unmap_regions(s);
	unmap_inflight(s);
	drop_fds(s);
}

void vu_serve(struct vu_disk *disk, int sock)
{
	struct session *s;
	unsigned int i;

	s = calloc(1, sizeof(*s));
	if (!s) {
		vu_log("out of memory for a session");
		return;
	}
	s->disk = disk;
	s->sock = sock;
	for (i = 0; i < MAX_RINGS; i++) {
		s->rings[i].kick_fd = -1;
		s->rings[i].call_fd = -1;
		s->rings[i].err_fd = -1;
	}
	for (i = 0; i < VU_MAX_FDS; i++)
		s->fds[i] = -1;
	if (open_device(s))
		goto out;
	signal(SIGBUS, on_sigbus);

	while (!vu_stopping()) {
		bool ack;
		int ret;

		ret = recv_msg(s);
		if (ret) {
			if (ret > 0)
				vu_log("the front-end hung up");
			break;
		}
		ack = (s->protocol & (1ULL << VU_PROTOCOL_F_REPLY_ACK)) &&
		      (s->msg.hdr.flags & VU_FLAG_NEED_REPLY);
		ret = handle(s);
		drop_fds(s);
		if (ret < 0 && (!ack || s->broken)) {
			if (ack)
				reply_u64(s, 1);
			vu_log("ending the session");
			break;
		}
		if (ret <= 0 && ack && reply_u64(s, ret < 0))
			break;
	}
out:
	session_end(s);
	free(s);
}
