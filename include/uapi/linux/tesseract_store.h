/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tesseract: the on-disk format of the store, shared by the module and
 * tools/tesseractctl. All integers are little endian. The unit is the 4 KiB
 * block; block numbers below are absolute on the backing device unless
 * they say "data block" (counted from data_start).
 *
 * Layout:
 *   block 0                        superblock
 *   [journal_start, +journal_blocks)  journal, a ring of record blocks
 *   [ckpt_start[i], +ckpt_blocks)     checkpoint slot i (i = 0, 1)
 *   [data_start, +data_blocks)        data blocks (swap slots, references)
 *
 * Every metadata block carries a crc: the standard CRC-32C (Castagnoli, as
 * RFC 3720 defines it: initial value ~0, result inverted; in the kernel
 * ~crc32c(~0, buf, len)) of the whole 4 KiB block with its crc field zero.
 *
 * What is durable: the references of guest disks (disk id, disk block) to
 * data blocks. Swap slots are not: after a crash every data block that no
 * reference names is free.
 *
 * The reference map is the newest valid checkpoint plus the journal blocks
 * written after it: journal block sequence numbers continue from the
 * checkpoint's, one per block, and replay stops at the first block that is
 * missing, torn (bad crc) or out of sequence.
 *
 * Checkpoints and journal blocks take their sequence numbers from one
 * counter, a checkpoint a number of its own (since version 2): of two
 * checkpoints the later has the larger, even with no journal block between
 * them, and two valid slots with the same one are corruption.
 */
#ifndef _UAPI_LINUX_TESSERACT_STORE_H
#define _UAPI_LINUX_TESSERACT_STORE_H

#include <linux/types.h>

#define TS_STORE_BLOCK_SIZE	4096

#define TS_SB_MAGIC		0x31524f5453525354ULL	/* "TSRSTOR1" */
#define TS_SB_VERSION		2	/* 1: checkpoints without own seq */
#define TS_JOURNAL_MAGIC	0x4c4e524a53525354ULL	/* "TSRSJRNL" */
#define TS_CKPT_MAGIC		0x54504b4353525354ULL	/* "TSRSCKPT" */

/* Block 0. */
struct ts_sb {
	__le64 magic;
	__le32 version;
	__le32 crc;			/* of the whole block */
	__u8 uuid[16];
	__le32 block_size;		/* TS_STORE_BLOCK_SIZE */
	__le32 incompat_features;	/* none defined: must be 0 */
	__le64 device_blocks;		/* size of the device at format */
	__le64 journal_start;
	__le64 journal_blocks;
	__le64 ckpt_start[2];
	__le64 ckpt_blocks;		/* each slot, header included */
	__le64 data_start;
	__le32 data_blocks;
	__le32 max_refs;		/* references a checkpoint can hold */
};

/* A journal or checkpoint record: 24 bytes. */
enum ts_record_type {
	TS_REC_ADD = 1,		/* (disk_id, disk_block) -> data_block */
	TS_REC_DROP = 2,	/* (disk_id, disk_block) has no reference */
};

struct ts_record {
	__u8 type;			/* enum ts_record_type */
	__u8 pad[3];			/* zero */
	__le32 data_block;		/* TS_REC_ADD only */
	__le64 disk_id;
	__le64 disk_block;		/* 4 KiB block of the guest disk */
};

/* Header of every journal block; records follow. */
struct ts_journal_block {
	__le64 magic;
	__le64 seq;			/* 1 + the previous block's or
					 * checkpoint's
					 */
	__le32 crc;
	__le32 nr_records;
	__le64 reserved;		/* zero */
	struct ts_record records[];
};

#define TS_JOURNAL_RECORDS						\
	((TS_STORE_BLOCK_SIZE - sizeof(struct ts_journal_block)) /	\
	 sizeof(struct ts_record))

/*
 * First block of a checkpoint slot. The map it holds is every reference
 * after the journal blocks before it; @seq is one more than the last
 * sequence number used before it (journal block or checkpoint) and the
 * journal resumes at seq + 1, in ring position journal_next. nr_refs
 * TS_REC_ADD records follow in the slot's next blocks, packed
 * TS_CKPT_RECORDS to a block (the rest of the last block zero);
 * entries_crc is the CRC-32C of all nr_refs records' bytes, in order. The
 * newer of the two valid slots (by seq, never equal) is the checkpoint; a
 * freshly formatted store has one with seq 0 and no references in slot 0,
 * and its journal starts at ring index 0 with seq 1.
 */
struct ts_ckpt_header {
	__le64 magic;
	__le64 seq;
	__le32 crc;			/* of the header block */
	__le32 entries_crc;
	__le64 nr_refs;
	__le64 journal_next;		/* ring index of block seq + 1 */
	__u8 uuid[16];			/* the superblock's */
};

#define TS_CKPT_RECORDS	(TS_STORE_BLOCK_SIZE / sizeof(struct ts_record))

#endif /* _UAPI_LINUX_TESSERACT_STORE_H */
