// SPDX-License-Identifier: GPL-2.0
/*
 * CRC-32C (Castagnoli), reflected, table driven.
 */
#include <linux/tesseract_store.h>

#include "ts_crc.h"

static __u32 ts_crc_table[256];

static void ts_crc_init(void)
{
	unsigned int i, k;
	__u32 c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78 : c >> 1;
		ts_crc_table[i] = c;
	}
}

__u32 ts_crc32c(__u32 crc, const void *buf, size_t len)
{
	const __u8 *p = buf;

	if (!ts_crc_table[1])
		ts_crc_init();
	while (len--)
		crc = ts_crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

__u32 ts_block_crc(const void *block, size_t off)
{
	static const __u8 zero[sizeof(__le32)];
	const __u8 *p = block;
	__u32 crc;

	crc = ts_crc32c(~0U, p, off);
	crc = ts_crc32c(crc, zero, sizeof(zero));
	off += sizeof(zero);
	crc = ts_crc32c(crc, p + off, TS_STORE_BLOCK_SIZE - off);
	return ~crc;
}
