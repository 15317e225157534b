/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The vhost-user protocol as the back-end of a block device sees it:
 * message numbers, flags and payloads, written from the specification
 * (QEMU's docs/interop/vhost-user.rst). All numbers are in the host's byte
 * order. Shared by the daemon and by the selftests' front-end.
 *
 * The payloads have no padding but struct vu_inflight's tail, which is
 * part of the message (QEMU sends 24 bytes). The header is read and sent
 * apart from the payload, so struct vu_msg's own padding goes nowhere.
 */
#ifndef TS_VHOST_USER_H
#define TS_VHOST_USER_H

#include <linux/types.h>

/* Front-end requests. */
enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SET_BACKEND_REQ_FD = 21,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_RESET_DEVICE = 34,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
	VU_REQUEST_MAX = 64,
};

/* Header flags: the version in the low two bits, then reply, need-reply. */
#define VU_VERSION		0x1u
#define VU_VERSION_MASK		0x3u
#define VU_FLAG_REPLY		0x4u
#define VU_FLAG_NEED_REPLY	0x8u

/* A virtio feature bit that virtio devices never offer. */
#define VU_F_PROTOCOL_FEATURES	30

/* Protocol feature bits. */
#define VU_PROTOCOL_F_MQ		0
#define VU_PROTOCOL_F_REPLY_ACK		3
#define VU_PROTOCOL_F_CONFIG		9
#define VU_PROTOCOL_F_INFLIGHT_SHMFD	12
#define VU_PROTOCOL_F_RESET_DEVICE	13
#define VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

/* Low byte of SET_VRING_KICK/CALL/ERR: the ring; bit 8: no fd sent. */
#define VU_VRING_IDX_MASK	0xffu
#define VU_VRING_NOFD		0x100u

/* Descriptors in one message's ancillary data, and regions of a table. */
#define VU_MAX_FDS		8
#define VU_MAX_REGIONS		8

/* Largest configuration space access (virtio-blk's is 60 bytes). */
#define VU_CONFIG_MAX		256

struct vu_header {
	__u32 request;
	__u32 flags;
	__u32 size;	/* of the payload that follows */
};

struct vu_vring_state {
	__u32 index;
	__u32 num;
};

struct vu_vring_addr {
	__u32 index;
	__u32 flags;		/* bit 0: log the used ring; unsupported */
	__u64 desc;		/* front-end user addresses */
	__u64 used;
	__u64 avail;
	__u64 log;
};

struct vu_region {
	__u64 guest_addr;
	__u64 size;
	__u64 user_addr;	/* where the front-end maps it */
	__u64 mmap_offset;	/* of the region in the fd sent with it */
};

struct vu_mem_table {
	__u32 nregions;
	__u32 padding;
	struct vu_region regions[VU_MAX_REGIONS];
};

struct vu_single_region {
	__u64 padding;
	struct vu_region region;
};

struct vu_config {
	__u32 offset;
	__u32 size;
	__u32 flags;
	__u8 payload[VU_CONFIG_MAX];
};

#define VU_CONFIG_HDR_SIZE	12

struct vu_inflight {
	__u64 mmap_size;
	__u64 mmap_offset;
	__u16 num_queues;
	__u16 queue_size;
};

/*
 * The in-flight region of a split ring, as the specification lays it out:
 * a header per queue, then one entry per descriptor. The region is the
 * back-end's, kept by the front-end across reconnections.
 */
struct vu_inflight_desc {
	__u8 inflight;
	__u8 padding[5];
	__u16 next;
	__u64 counter;
};

struct vu_inflight_queue {
	__u64 features;
	__u16 version;
	__u16 desc_num;
	__u16 last_batch_head;
	__u16 used_idx;
	struct vu_inflight_desc desc[];
};

#define VU_INFLIGHT_VERSION	1

union vu_payload {
	__u64 u64;
	struct vu_vring_state state;
	struct vu_vring_addr addr;
	struct vu_mem_table mem;
	struct vu_single_region reg;
	struct vu_config config;
	struct vu_inflight inflight;
};

struct vu_msg {
	struct vu_header hdr;
	union vu_payload payload;
};

#endif /* TS_VHOST_USER_H */
