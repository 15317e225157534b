/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tesseract: declarations shared by the parts of the module.
 */
#ifndef _TESSERACT_H
#define _TESSERACT_H

#include <linux/types.h>

struct dentry;

/* Root of /sys/kernel/debug/tesseract/, NULL if debugfs is unavailable. */
extern struct dentry *ts_debugfs_root;

/* /dev/vhost-blk (vhost_blk.c). */
int ts_vhost_blk_init(void);
void ts_vhost_blk_exit(void);

#endif /* _TESSERACT_H */
