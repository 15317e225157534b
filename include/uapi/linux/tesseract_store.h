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
 * data blocks, and for each disk id the identity of the backend they were
 * taken with (TS_REC_BIND). Swap slots are not: after a crash every data
 * block that no reference names is free.
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
/*
 * 2: checkpoints take a sequence number of their own; disk identities
 * (TS_REC_BIND) and TS_REC_FORGET. 1 is refused.
 */
#define TS_SB_VERSION		2
#define TS_JOURNAL_MAGIC	0x4c4e524a53525354ULL	/* "TSRSJRNL" */
#define TS_CKPT_MAGIC		0x54504b4353525354ULL	/* "TSRSCKPT" */

/* Block 0. */
struct ts_sb {
	__le64 magic;
	__le32 version;
	__le32 crc;			/* of the whole block */
	__u8 uuid[16];
	__le32 block_size;		/* TS_STORE_BLOCK_SIZE */
	__le32 incompat_features;	/* TS_SB_INCOMPAT_*, others refused */
	__le64 device_blocks;		/* size of the device at format */
	__le64 journal_start;
	__le64 journal_blocks;
	__le64 ckpt_start[2];
	__le64 ckpt_blocks;		/* each slot, header included */
	__le64 data_start;
	__le32 data_blocks;
	__le32 max_refs;		/* references a checkpoint can hold */
};

/*
 * The device keeps nothing over its own restart (another machine's RAM
 * through a network block device): swap only, never references, which
 * would outlive it. A module that does not know the bit refuses the store.
 */
#define TS_SB_INCOMPAT_VOLATILE	(1U << 0)
#define TS_SB_INCOMPAT_KNOWN	TS_SB_INCOMPAT_VOLATILE

/* A journal or checkpoint record: 24 bytes. */
enum ts_record_type {
	TS_REC_ADD = 1,		/* (disk_id, disk_block) -> data_block */
	TS_REC_DROP = 2,	/* (disk_id, disk_block) has no reference */
	TS_REC_BIND = 3,	/* disk_id's references belong to an identity */
	TS_REC_FORGET = 4,	/* disk_id has no references, no identity */
};

struct ts_record {
	__u8 type;			/* enum ts_record_type */
	__u8 pad[3];			/* zero */
	__le32 data_block;		/* TS_REC_ADD only */
	__le64 disk_id;
	__le64 disk_block;		/* 4 KiB block of the guest disk */
};

/*
 * What a disk id's references may be re-attached to: the backend they
 * were taken with, or a token the VMM presents (see the admin guide).
 */
enum ts_ident_kind {
	TS_IDENT_NONE = 0,	/* unknown: never re-attached, only forgotten */
	TS_IDENT_FILE = 1,	/* image file: fs UUID, inode, generation */
	TS_IDENT_BDEV = 2,	/* block device: disk sequence number, dev_t */
	TS_IDENT_TOKEN = 3,	/* VHOST_BLK_SET_DISK_IDENTITY's token */
};

/*
 * TS_REC_BIND, a struct ts_record of another layout: disk_id's references
 * (the ADD records that follow, until a FORGET) belong to the identity
 * whose 96-bit fingerprint is (fp_hi, fp_lo), of kind @kind. Written
 * before a disk's first ADD record, and in each checkpoint before the
 * ADD records of its disk.
 */
struct ts_bind_record {
	__u8 type;			/* TS_REC_BIND */
	__u8 kind;			/* enum ts_ident_kind, not NONE */
	__u8 pad[2];			/* zero */
	__le32 fp_lo;			/* fingerprint bits 0-31 */
	__le64 disk_id;
	__le64 fp_hi;			/* fingerprint bits 32-95 */
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
 * records follow in the slot's next blocks: for each disk with references
 * a TS_REC_BIND, then the disk's TS_REC_ADD records (ADD records with no
 * BIND before them belong to no identity). They are packed
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
