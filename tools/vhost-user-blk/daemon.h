/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tesseract-vhost-user-blk: a vhost-user-blk back-end whose data plane is
 * the kernel's /dev/vhost-blk. daemon.c holds the process (options, the
 * disk image, the socket, signals); session.c one front-end connection.
 */
#ifndef TS_VU_DAEMON_H
#define TS_VU_DAEMON_H

#include <stdbool.h>
#include <linux/types.h>
#include <linux/tesseract.h>

struct vu_disk {
	/* Command line. */
	const char *image_path;
	bool read_only;
	bool direct;			/* O_DIRECT: asynchronous in the kernel */
	unsigned int num_queues;
	unsigned int seg_max;
	char serial[VHOST_BLK_SERIAL_BYTES];
	bool has_serial;
	__u64 disk_id;		/* 0: the kernel derives one */
	bool has_token;
	__u8 token[VHOST_BLK_TOKEN_BYTES];
	int reconcile;			/* -1: the device's default */
	const char *vhost_dev;		/* /dev/vhost-blk */

	/* The image, opened and locked once for the daemon's life. */
	int image_fd;
	__u64 capacity;		/* bytes, a multiple of 512 */
	__u32 blk_size;
};

void vu_log(const char *fmt, ...);

/* Set by the signal handler: finish the session and exit. */
bool vu_stopping(void);

/*
 * Wait until @fd (-1: none) is readable or @timeout_ms (-1: no limit)
 * passed, with SIGTERM and SIGINT let in only here, so that one that
 * comes between a check of vu_stopping() and the wait is not missed.
 * 1 readable, 0 timed out, -1 stopping or an error.
 */
int vu_wait(int fd, int timeout_ms);

/*
 * Serve one front-end on the connected socket @sock until it hangs up,
 * breaks the protocol or vu_stop is set. Every request the kernel took is
 * completed before this returns (the device is closed first), so that a
 * front-end that reconnects finds the rings as the device left them.
 */
void vu_serve(struct vu_disk *disk, int sock);

#endif /* TS_VU_DAEMON_H */
