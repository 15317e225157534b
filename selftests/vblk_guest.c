// SPDX-License-Identifier: GPL-2.0
/*
 * Userspace virtio-blk driver for /dev/vhost-blk (see vblk_guest.h).
 *
 * Ring protocol as in the virtio 1.x spec, split rings: the driver fills
 * descriptors, then (write barrier) publishes the head in avail->ring, then
 * (write barrier) bumps avail->idx; before deciding whether to kick it needs
 * a full barrier so that its idx store is ordered before the load of the
 * device's avail_event / used flags. On the used side, the load of used->idx
 * is followed by a read barrier before the elements are read.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/vhost.h>
#include <linux/tesseract.h>

#include "vblk_guest.h"

#define VBLK_DEV_PATH	"/dev/vhost-blk"
#define VBLK_RING_ALIGN	4096

#define vblk_wmb()	__atomic_thread_fence(__ATOMIC_RELEASE)
#define vblk_rmb()	__atomic_thread_fence(__ATOMIC_ACQUIRE)
#define vblk_mb()	__atomic_thread_fence(__ATOMIC_SEQ_CST)

static __u64 vblk_gpa(const void *p)
{
	return (__u64)(uintptr_t)p;	/* 1:1 memory table */
}

void *vblk_alloc(struct vblk_dev *d, size_t size, size_t align)
{
	size_t off = (d->ram_used + align - 1) & ~(align - 1);

	if (off > d->ram_size || size > d->ram_size - off)
		return NULL;
	d->ram_used = off + size;
	return d->ram + off;
}

bool vblk_has_feature(const struct vblk_dev *d, unsigned int bit)
{
	return d->features & (1ULL << bit);
}

static int vblk_ioctl(struct vblk_dev *d, unsigned long req, void *arg)
{
	if (d->transport)
		return d->transport(d, req, arg);
	return ioctl(d->fd, req, arg) ? -errno : 0;
}

int vblk_set_memory_table(struct vblk_dev *d)
{
	struct {
		struct vhost_memory mem;
		struct vhost_memory_region region;
	} table;

	memset(&table, 0, sizeof(table));
	table.mem.nregions = 1;
	table.region.guest_phys_addr = vblk_gpa(d->ram);
	table.region.userspace_addr = vblk_gpa(d->ram);
	table.region.memory_size = d->ram_size;
	return vblk_ioctl(d, VHOST_SET_MEM_TABLE, &table);
}

static int vblk_queue_setup(struct vblk_dev *d, struct vblk_queue *q,
			    unsigned int index, unsigned int num)
{
	unsigned int i;
	void *ring;

	q->index = index;
	q->num = num;
	q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->err_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->kick_fd < 0 || q->call_fd < 0 || q->err_fd < 0)
		return -errno;

	ring = vblk_alloc(d, vring_size(num, VBLK_RING_ALIGN), VBLK_RING_ALIGN);
	q->indirect = vblk_alloc(d, (size_t)num * VBLK_INDIRECT_MAX *
				 sizeof(struct vring_desc), 16);
	q->cookie = calloc(num, sizeof(*q->cookie));
	q->chain_descs = calloc(num, sizeof(*q->chain_descs));
	if (!ring || !q->indirect || !q->cookie || !q->chain_descs)
		return -ENOMEM;
	vring_init(&q->vring, num, ring, VBLK_RING_ALIGN);
	for (i = 0; i < num; i++)
		q->vring.desc[i].next = htole16((i + 1) % num);
	q->free_head = 0;
	q->num_free = num;
	return vblk_queue_start(d, q, 0);
}

int vblk_queue_start(struct vblk_dev *d, struct vblk_queue *q, __u16 base)
{
	struct vhost_vring_state state = { .index = q->index };
	struct vhost_vring_file file = { .index = q->index };
	struct vhost_vring_addr addr = { .index = q->index };
	int ret;

	state.num = q->num;
	ret = vblk_ioctl(d, VHOST_SET_VRING_NUM, &state);
	if (ret)
		return ret;
	state.num = base;
	ret = vblk_ioctl(d, VHOST_SET_VRING_BASE, &state);
	if (ret)
		return ret;
	addr.desc_user_addr = vblk_gpa(q->vring.desc);
	addr.avail_user_addr = vblk_gpa(q->vring.avail);
	addr.used_user_addr = vblk_gpa(q->vring.used);
	ret = vblk_ioctl(d, VHOST_SET_VRING_ADDR, &addr);
	if (ret)
		return ret;
	file.fd = q->kick_fd;
	ret = vblk_ioctl(d, VHOST_SET_VRING_KICK, &file);
	if (ret)
		return ret;
	file.fd = q->call_fd;
	ret = vblk_ioctl(d, VHOST_SET_VRING_CALL, &file);
	if (ret)
		return ret;
	file.fd = q->err_fd;
	return vblk_ioctl(d, VHOST_SET_VRING_ERR, &file);
}

void vblk_init(struct vblk_dev *d)
{
	unsigned int i;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	d->ram_fd = -1;
	d->vu_inflight_fd = -1;
	for (i = 0; i < VBLK_MAX_QUEUES; i++) {
		d->q[i].kick_fd = -1;
		d->q[i].call_fd = -1;
		d->q[i].err_fd = -1;
	}
}

bool vblk_memfd_ram;

int vblk_map_ram(struct vblk_dev *d, size_t ram_size, bool memfd)
{
	const size_t align = 2UL << 20;
	char *area, *ram;

	if (!memfd) {
		ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (ram == MAP_FAILED)
			return -errno;
		d->ram = (__u8 *)ram;
		d->ram_size = ram_size;
		return 0;
	}
	d->ram_fd = memfd_create("vblk-guest-ram",
				 MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (d->ram_fd < 0 || ftruncate(d->ram_fd, ram_size))
		return -errno;
	/*
	 * At a 2 MiB boundary, as QEMU aligns RAM blocks: a huge page of the
	 * file can then be mapped whole.
	 */
	area = mmap(NULL, ram_size + align, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return -errno;
	ram = (char *)(((unsigned long)area + align - 1) & ~(align - 1));
	if (ram > area)
		munmap(area, ram - area);
	munmap(ram + ram_size, area + align - ram);
	if (mmap(ram, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 d->ram_fd, 0) == MAP_FAILED) {
		munmap(ram, ram_size);
		return -errno;
	}
	d->ram = (__u8 *)ram;
	d->ram_size = ram_size;
	return 0;
}

int vblk_open_dev(struct vblk_dev *d, size_t ram_size)
{
	int ret;

	vblk_init(d);
	ret = vblk_map_ram(d, ram_size, vblk_memfd_ram);
	if (ret)
		return ret;
	d->fd = open(VBLK_DEV_PATH, O_RDWR | O_CLOEXEC);
	return d->fd < 0 ? -errno : 0;
}

int vblk_setup(struct vblk_dev *d, unsigned int nqueues, unsigned int qsize,
	       __u64 want_features)
{
	__u64 offered;
	unsigned int i;
	int ret;

	if (!nqueues || nqueues > VBLK_MAX_QUEUES)
		return -EINVAL;
	ret = vblk_ioctl(d, VHOST_SET_OWNER, NULL);
	if (ret)
		return ret;
	ret = vblk_ioctl(d, VHOST_GET_FEATURES, &offered);
	if (ret)
		return ret;
	d->features = (want_features | (1ULL << VIRTIO_F_VERSION_1)) & offered;
	/* Set before the rings: event idx changes the ring sizes checked. */
	ret = vblk_ioctl(d, VHOST_SET_FEATURES, &d->features);
	if (ret)
		return ret;
	ret = vblk_set_memory_table(d);
	if (ret)
		return ret;
	d->nqueues = nqueues;
	for (i = 0; i < nqueues; i++) {
		ret = vblk_queue_setup(d, &d->q[i], i, qsize);
		if (ret)
			return ret;
	}
	return 0;
}

int vblk_open(struct vblk_dev *d, size_t ram_size, unsigned int nqueues,
	      unsigned int qsize, __u64 want_features)
{
	int ret = vblk_open_dev(d, ram_size);

	return ret ?: vblk_setup(d, nqueues, qsize, want_features);
}

int vblk_set_backend(struct vblk_dev *d, int fd)
{
	struct vhost_vring_file backend = { .index = 0, .fd = fd };

	return vblk_ioctl(d, VHOST_BLK_SET_BACKEND, &backend);
}

int vblk_set_serial(struct vblk_dev *d, const char serial[20])
{
	char buf[VHOST_BLK_SERIAL_BYTES];

	memcpy(buf, serial, sizeof(buf));
	return vblk_ioctl(d, VHOST_BLK_SET_SERIAL, buf);
}

void vblk_close(struct vblk_dev *d)
{
	unsigned int i;

	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	for (i = 0; i < VBLK_MAX_QUEUES; i++) {
		struct vblk_queue *q = &d->q[i];

		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->call_fd >= 0)
			close(q->call_fd);
		if (q->err_fd >= 0)
			close(q->err_fd);
		q->kick_fd = -1;
		q->call_fd = -1;
		q->err_fd = -1;
		free(q->cookie);
		free(q->chain_descs);
		free(d->sync_req[i]);
		d->sync_req[i] = NULL;
		d->sync_seg[i] = NULL;
		q->cookie = NULL;
		q->chain_descs = NULL;
	}
	if (d->ram)
		munmap(d->ram, d->ram_size);
	d->ram = NULL;
	if (d->ram_fd >= 0)
		close(d->ram_fd);
	d->ram_fd = -1;
	if (d->vu_inflight_fd >= 0)
		close(d->vu_inflight_fd);
	d->vu_inflight_fd = -1;
}

static void vblk_fill_desc(struct vring_desc *desc, const struct vblk_buf *b,
			   __u16 next, bool last)
{
	__u16 flags = b->device_writes ? VRING_DESC_F_WRITE : 0;

	if (!last)
		flags |= VRING_DESC_F_NEXT;
	desc->addr = htole64(vblk_gpa(b->addr));
	desc->len = htole32(b->len);
	desc->flags = htole16(flags);
	desc->next = htole16(next);
}

void vblk_post_head(struct vblk_dev *d, unsigned int qi, __u16 head)
{
	struct vblk_queue *q = &d->q[qi];

	q->vring.avail->ring[q->avail_idx % q->num] = htole16(head);
	/* The device must see the ring entry before the index covering it. */
	vblk_wmb();
	q->avail_idx++;
	__atomic_store_n(&q->vring.avail->idx, htole16(q->avail_idx),
			 __ATOMIC_RELEASE);
}

int vblk_post(struct vblk_dev *d, unsigned int qi, const struct vblk_buf *bufs,
	      unsigned int n, bool indirect, void *cookie)
{
	struct vblk_queue *q = &d->q[qi];
	unsigned int need = indirect ? 1 : n, i;
	__u16 head, idx;

	if (!n || (indirect && n > VBLK_INDIRECT_MAX))
		return -EINVAL;
	if (q->num_free < need)
		return -ENOSPC;

	head = q->free_head;
	if (indirect) {
		struct vring_desc *table = q->indirect +
					   (size_t)head * VBLK_INDIRECT_MAX;
		struct vring_desc *desc = &q->vring.desc[head];

		for (i = 0; i < n; i++)
			vblk_fill_desc(&table[i], &bufs[i], i + 1, i == n - 1);
		q->free_head = le16toh(desc->next);
		desc->addr = htole64(vblk_gpa(table));
		desc->len = htole32(n * sizeof(*table));
		desc->flags = htole16(VRING_DESC_F_INDIRECT);
	} else {
		idx = head;
		for (i = 0; i < n; i++) {
			struct vring_desc *desc = &q->vring.desc[idx];
			__u16 next = le16toh(desc->next);

			vblk_fill_desc(desc, &bufs[i], next, i == n - 1);
			idx = next;
		}
		q->free_head = idx;
	}
	q->num_free -= need;
	q->chain_descs[head] = need;
	q->cookie[head] = cookie;
	q->in_flight++;
	vblk_post_head(d, qi, head);
	return head;
}

int vblk_post_raw(struct vblk_dev *d, unsigned int qi,
		  const struct vring_desc *descs, unsigned int n,
		  bool indirect, __u32 table_len, void *cookie)
{
	struct vblk_queue *q = &d->q[qi];
	unsigned int need = indirect ? 1 : n, i;
	__u16 pos[VBLK_INDIRECT_MAX], head, idx;
	struct vring_desc *table;

	if (!n || n > VBLK_INDIRECT_MAX)
		return -EINVAL;
	if (q->num_free < need)
		return -ENOSPC;

	head = q->free_head;
	if (indirect) {
		table = q->indirect + (size_t)head * VBLK_INDIRECT_MAX;
		for (i = 0; i < n; i++)
			pos[i] = i;
		q->free_head = le16toh(q->vring.desc[head].next);
	} else {
		table = q->vring.desc;
		for (i = 0, idx = head; i < n; i++) {
			pos[i] = idx;
			idx = le16toh(q->vring.desc[idx].next);
		}
		q->free_head = idx;
	}
	for (i = 0; i < n; i++) {
		__u16 next = descs[i].next;

		table[pos[i]].addr = htole64(descs[i].addr);
		table[pos[i]].len = htole32(descs[i].len);
		table[pos[i]].flags = htole16(descs[i].flags);
		table[pos[i]].next = htole16(next < n ? pos[next] : next);
	}
	if (indirect) {
		struct vring_desc *desc = &q->vring.desc[head];

		desc->addr = htole64(vblk_gpa(table));
		desc->len = htole32(table_len ?: n * sizeof(*table));
		desc->flags = htole16(VRING_DESC_F_INDIRECT);
	}
	q->num_free -= need;
	q->chain_descs[head] = need;
	q->cookie[head] = cookie;
	q->in_flight++;
	vblk_post_head(d, qi, head);
	return head;
}

bool vblk_kick(struct vblk_dev *d, unsigned int qi)
{
	struct vblk_queue *q = &d->q[qi];
	__u16 old = q->kicked_idx, new = q->avail_idx;
	__u64 one = 1;
	bool kick;

	/* Our avail->idx store must be visible before we read its event. */
	vblk_mb();
	if (vblk_has_feature(d, VIRTIO_RING_F_EVENT_IDX))
		kick = vring_need_event(le16toh(vring_avail_event(&q->vring)),
					new, old);
	else
		kick = !(le16toh(q->vring.used->flags) & VRING_USED_F_NO_NOTIFY);
	q->kicked_idx = new;
	if (kick && write(q->kick_fd, &one, sizeof(one)) != sizeof(one))
		abort();
	return kick;
}

/* Return a finished chain's descriptors to the free list. */
static void vblk_free_chain(struct vblk_queue *q, __u16 head)
{
	__u16 idx = head, n = q->chain_descs[head];

	while (--n)
		idx = le16toh(q->vring.desc[idx].next);
	q->vring.desc[idx].next = htole16(q->free_head);
	q->free_head = head;
	q->num_free += q->chain_descs[head];
	q->chain_descs[head] = 0;
	q->cookie[head] = NULL;
	q->in_flight--;
}

int vblk_get_used(struct vblk_dev *d, unsigned int qi, void **cookie,
		  __u32 *len)
{
	struct vblk_queue *q = &d->q[qi];
	struct vring_used_elem *e;
	__u16 used_idx;
	__u32 id;

	used_idx = le16toh(__atomic_load_n(&q->vring.used->idx,
					   __ATOMIC_ACQUIRE));
	if (used_idx == q->last_used) {
		/*
		 * Ask for an interrupt at the next completion, then look again:
		 * one may have slipped in before the device saw the request.
		 */
		if (vblk_has_feature(d, VIRTIO_RING_F_EVENT_IDX))
			vring_used_event(&q->vring) = htole16(q->last_used);
		vblk_mb();
		used_idx = le16toh(__atomic_load_n(&q->vring.used->idx,
						   __ATOMIC_ACQUIRE));
		if (used_idx == q->last_used)
			return 0;
	}
	/* Read the element only after the index that published it. */
	vblk_rmb();
	e = &q->vring.used->ring[q->last_used % q->num];
	id = le32toh(e->id);
	if (id >= q->num || !q->chain_descs[id])
		abort();	/* the device returned a head we never posted */
	*cookie = q->cookie[id];
	*len = le32toh(e->len);
	q->last_used++;
	vblk_free_chain(q, id);
	return 1;
}

int vblk_wait(struct vblk_dev *d, unsigned int qi, int timeout_ms)
{
	struct pollfd pfd = { .fd = d->q[qi].call_fd, .events = POLLIN };
	__u64 count;
	int ret;

	ret = poll(&pfd, 1, timeout_ms);
	if (ret > 0 && read(pfd.fd, &count, sizeof(count)) < 0)
		return -errno;
	return ret < 0 ? -errno : ret;
}

bool vblk_queue_error(struct vblk_dev *d, unsigned int qi)
{
	__u64 count;

	return read(d->q[qi].err_fd, &count, sizeof(count)) == sizeof(count);
}

struct vblk_req *vblk_req_alloc(struct vblk_dev *d)
{
	struct vblk_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->hdr = vblk_alloc(d, sizeof(*r->hdr), 16);
	r->status = vblk_alloc(d, 1, 1);
	if (!r->hdr || !r->status) {
		free(r);
		return NULL;
	}
	return r;
}

int vblk_req_submit(struct vblk_dev *d, unsigned int qi, struct vblk_req *r,
		    __u32 type, __u64 sector, void *data, size_t len,
		    size_t seg_max, bool indirect)
{
	struct vblk_buf bufs[VBLK_INDIRECT_MAX];
	bool device_writes = type == VIRTIO_BLK_T_IN ||
			     type == VIRTIO_BLK_T_GET_ID;
	unsigned int n = 0;
	size_t off = 0;
	int head;

	if (!seg_max)
		seg_max = len ? len : 1;
	r->hdr->type = htole32(type);
	r->hdr->ioprio = 0;
	r->hdr->sector = htole64(sector);
	*r->status = 0xff;	/* the device must overwrite it */
	r->data = data;
	r->len = len;
	r->type = type;
	r->done = false;
	r->used_len = 0;

	bufs[n++] = (struct vblk_buf){ r->hdr, sizeof(*r->hdr), false };
	while (off < len) {
		size_t seg = len - off < seg_max ? len - off : seg_max;

		if (n >= VBLK_INDIRECT_MAX - 1)
			return -E2BIG;
		bufs[n++] = (struct vblk_buf){ (__u8 *)data + off, seg,
					       device_writes };
		off += seg;
	}
	bufs[n++] = (struct vblk_buf){ r->status, 1, true };
	head = vblk_post(d, qi, bufs, n, indirect, r);
	return head < 0 ? head : 0;
}

static long long vblk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int vblk_req_wait(struct vblk_dev *d, unsigned int qi, struct vblk_req *r,
		  int timeout_ms)
{
	long long deadline = vblk_now_ms() + timeout_ms;
	struct vblk_req *done;
	__u32 len;

	while (!r->done) {
		if (vblk_get_used(d, qi, (void **)&done, &len)) {
			if (done) {
				done->used_len = len;
				done->done = true;
			}
			continue;
		}
		long long left = deadline - vblk_now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		vblk_wait(d, qi, left > 100 ? 100 : (int)left);
	}
	return *r->status;
}

static int vblk_prepare_queue(struct vblk_dev *d, unsigned int qi)
{
	if (!d->sync_req[qi])
		d->sync_req[qi] = vblk_req_alloc(d);
	if (!d->sync_seg[qi])
		d->sync_seg[qi] = vblk_alloc(d, sizeof(*d->sync_seg[qi]), 16);
	return d->sync_req[qi] && d->sync_seg[qi] ? 0 : -ENOMEM;
}

int vblk_prepare_queues(struct vblk_dev *d)
{
	unsigned int qi;
	int ret;

	for (qi = 0; qi < d->nqueues; qi++) {
		ret = vblk_prepare_queue(d, qi);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * How long a synchronous request may take: 10 s, times $TS_TIMEOUT_SCALE
 * as the tests' own timeouts (ts_timeout.c): in the debug kernel, a read
 * of a few hundred references under load can take longer.
 */
static int vblk_sync_timeout_ms(void)
{
	const char *env = getenv("TS_TIMEOUT_SCALE");
	unsigned long scale = env ? strtoul(env, NULL, 10) : 1;

	return 10000 * (scale > 1 && scale < 100 ? (int)scale : 1);
}

int vblk_rw(struct vblk_dev *d, unsigned int qi, __u32 type,
	    __u64 sector, void *data, size_t len, size_t seg_max,
	    bool indirect)
{
	struct vblk_req *r = d->sync_req[qi];
	int ret;

	if (!r) {
		r = vblk_req_alloc(d);
		if (!r)
			return -ENOMEM;
		d->sync_req[qi] = r;
	}
	ret = vblk_req_submit(d, qi, r, type, sector, data, len, seg_max,
			      indirect);
	if (ret)
		return ret;
	vblk_kick(d, qi);
	ret = vblk_req_wait(d, qi, r, vblk_sync_timeout_ms());
	/* Still owned by the device: never reuse (nor free) it. */
	if (ret == -ETIMEDOUT) {
		d->sync_req[qi] = NULL;
		d->sync_seg[qi] = NULL;
	}
	return ret;
}

int vblk_discard_q(struct vblk_dev *d, unsigned int qi, __u32 type,
		   __u64 sector, __u32 sectors, __u32 flags)
{
	struct virtio_blk_discard_write_zeroes *seg;
	int ret;

	ret = vblk_prepare_queue(d, qi);
	if (ret)
		return ret;
	seg = d->sync_seg[qi];
	seg->sector = htole64(sector);
	seg->num_sectors = htole32(sectors);
	seg->flags = htole32(flags);
	/* The segments are the device-readable payload after the header. */
	return vblk_rw(d, qi, type, 0, seg, sizeof(*seg), 0, false);
}

int vblk_discard(struct vblk_dev *d, __u32 type, __u64 sector, __u32 sectors,
		 __u32 flags)
{
	return vblk_discard_q(d, 0, type, sector, sectors, flags);
}

int vblk_io_pages(struct vblk_dev *d, __u32 type, __u64 sector, void *data,
		  size_t pages, bool indirect)
{
	size_t done, n;
	int status;

	for (done = 0; done < pages; done += n) {
		n = pages - done < VBLK_IO_PAGES ? pages - done : VBLK_IO_PAGES;
		status = vblk_rw(d, 0, type, sector + done * 8,
				 (char *)data + done * 4096, n * 4096, 0,
				 indirect);
		if (status)
			return status;
	}
	return 0;
}

int vblk_open_disk_mq(struct vblk_dev *d, size_t ram_size,
		      unsigned int nqueues, int disk_fd, __u64 disk_id)
{
	int ret;

	ret = vblk_open(d, ram_size, nqueues, 128, 0);
	if (ret)
		return ret;
	if (disk_id && ioctl(d->fd, VHOST_BLK_SET_DISK_ID, &disk_id))
		return -errno;
	return vblk_set_backend(d, disk_fd);
}

int vblk_open_disk(struct vblk_dev *d, size_t ram_size, int disk_fd,
		   __u64 disk_id)
{
	return vblk_open_disk_mq(d, ram_size, 1, disk_fd, disk_id);
}

int vblk_open_disk_token(struct vblk_dev *d, size_t ram_size, int disk_fd,
			 __u64 disk_id, const char *token)
{
	struct vhost_blk_disk_identity ident = { .disk_id = disk_id };
	size_t len = strlen(token);
	int ret;

	memcpy(ident.token, token, len < sizeof(ident.token) ?
				   len : sizeof(ident.token));
	ret = vblk_open(d, ram_size, 1, 128, 0);
	if (ret)
		return ret;
	if (ioctl(d->fd, VHOST_BLK_SET_DISK_IDENTITY, &ident))
		return -errno;
	return vblk_set_backend(d, disk_fd);
}

void vblk_close_disk(struct vblk_dev *d, int disk_fd, __u64 sectors)
{
	if (d->fd >= 0)
		vblk_discard(d, VIRTIO_BLK_T_DISCARD, 0, sectors, 0);
	vblk_close(d);
	if (disk_fd >= 0)
		close(disk_fd);
}
