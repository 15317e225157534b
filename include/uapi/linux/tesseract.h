/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tesseract: userspace ABI (ioctls and structures shared with tools/).
 *
 * TESSERACT_ABI_VERSION changes whenever an incompatible change is made to
 * anything in this file; the module reports its value in
 * /sys/module/tesseract/abi_version.
 */
#ifndef _UAPI_LINUX_TESSERACT_H
#define _UAPI_LINUX_TESSERACT_H

#include <linux/ioctl.h>
#include <linux/vhost.h>

#define TESSERACT_ABI_VERSION	1

/*
 * /dev/vhost-blk: in-kernel virtio-blk backend on the kernel's vhost core.
 *
 * Setup follows the other vhost devices (VHOST_SET_OWNER, VHOST_SET_FEATURES,
 * VHOST_SET_MEM_TABLE, VHOST_SET_VRING_*), then VHOST_BLK_SET_BACKEND. The
 * two numbers below are those of the vhost-blk RFC series, so that a VMM
 * built for it can drive this device.
 *
 * VHOST_BLK_SET_BACKEND: fd of a raw image file or a block device; the index
 * is ignored and the backend serves every ring configured so far. The device
 * is read-only (writes, discards and write-zeroes fail) if the fd was opened
 * without write access or the block device is read-only. O_DIRECT on the fd
 * selects direct, asynchronous I/O. fd -1 detaches the backend after all
 * requests in flight have completed.
 */
#define VHOST_BLK_SET_BACKEND	_IOW(VHOST_VIRTIO, 0xFF, struct vhost_vring_file)

/* Serial number returned by VIRTIO_BLK_T_GET_ID, zero padded, no NUL needed. */
#define VHOST_BLK_SERIAL_BYTES	20
#define VHOST_BLK_SET_SERIAL	_IOW(VHOST_VIRTIO, 0xFE, char[VHOST_BLK_SERIAL_BYTES])

/* Rings the device serves (VIRTIO_BLK_F_MQ num_queues must not exceed it). */
#define VHOST_BLK_MAX_QUEUES	8

/*
 * Limits a VMM must advertise in the virtio-blk config space; requests over
 * them fail with VIRTIO_BLK_S_IOERR. SEG_MAX counts data segments (buffers
 * other than the header and the status byte), SIZE_MAX bytes per segment.
 */
#define VHOST_BLK_SEG_MAX		1022
#define VHOST_BLK_SIZE_MAX		(1U << 20)
#define VHOST_BLK_MAX_DISCARD_SEG	16
#define VHOST_BLK_MAX_WRITE_ZEROES_SEG	16

#endif /* _UAPI_LINUX_TESSERACT_H */
