/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CRC-32C of the store's metadata (include/uapi/linux/tesseract_store.h),
 * for tools/tesseractctl and the selftests.
 */
#ifndef _TS_CRC_H
#define _TS_CRC_H

#include <stddef.h>
#include <linux/types.h>

/* The raw update, as the kernel's crc32c(): no inversion either way. */
__u32 ts_crc32c(__u32 crc, const void *buf, size_t len);
/*
 * The crc of a 4 KiB metadata block whose crc field is at byte @off, taken
 * as zero: the standard CRC-32C, ~ts_crc32c(~0, ...).
 */
__u32 ts_block_crc(const void *block, size_t off);

#endif /* _TS_CRC_H */
