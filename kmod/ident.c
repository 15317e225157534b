// SPDX-License-Identifier: GPL-2.0
/*
 * Disk identity: what a guest disk's references are bound to. A disk id is
 * only a name, and names get reused: inode numbers after a delete, device
 * numbers after lvremove or a reboot, and any id a VMM cares to pass. The
 * store therefore records with a disk's references a fingerprint of the
 * backend they were taken with, and reconcile.c gives them back only to a
 * backend with the same fingerprint (see the admin guide).
 *
 * What identifies a backend, so that it is not reused:
 *  - an image file: its filesystem's UUID, inode number and inode
 *    generation. ext4, xfs, btrfs and tmpfs draw i_generation at random
 *    for every new inode, so a file that reuses a deleted one's inode
 *    number still differs (1 in 2^32 that it does not); tmpfs draws its
 *    UUID at every mount. A filesystem without a UUID contributes its
 *    device number instead, which is not stable across reboots: such a
 *    disk attaches empty after one (the safe side).
 *  - a block device: the disk sequence number of its gendisk, which the
 *    kernel never hands out twice in a boot (a new dm or loop device, or
 *    new media, gets a new one), and its device number for the partition.
 *    Not stable across reboots either: VMMs whose block-device disks must
 *    keep references across a reboot give a token.
 *  - a token the VMM presents with the id (VHOST_BLK_SET_DISK_IDENTITY).
 */
#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/kdev_t.h>
#include <linux/siphash.h>
#include <linux/string.h>
#include <linux/uuid.h>
#include <uapi/linux/tesseract_store.h>

#include "tesseract.h"

/*
 * What is hashed, 40 bytes (Documentation/store-format.rst): the kind, a
 * flag, 16 bytes of UUID or token, two little-endian 64-bit numbers.
 */
struct ts_ident_input {
	u8 kind;
	u8 no_uuid;		/* a file on a filesystem without a UUID */
	u8 zero[6];
	u8 uuid[16];		/* or the filesystem's device number, or token */
	__le64 a;		/* inode number; disk sequence number */
	__le64 b;		/* inode generation; device number */
};

/*
 * Fixed keys: a fingerprint names an identity and hides nothing (what is
 * hashed and the store are root's to read anyway). Two SipHash-2-4 keys
 * give 128 bits, of which 96 are recorded.
 */
static const siphash_key_t ts_ident_keys[2] = {
	{{ 0x7465737365726163ULL, 0x742d6964656e7431ULL }},
	{{ 0x7465737365726163ULL, 0x742d6964656e7432ULL }},
};

static void ts_ident_hash(const struct ts_ident_input *in,
			  struct ts_ident *ident)
{
	BUILD_BUG_ON(sizeof(*in) != 40);
	ident->kind = in->kind;
	ident->fp_hi = siphash(in, sizeof(*in), &ts_ident_keys[0]);
	ident->fp_lo = lower_32_bits(siphash(in, sizeof(*in),
					     &ts_ident_keys[1]));
}

/* The identity of @file, an image file or a block device. */
void ts_ident_of_backend(struct file *file, struct ts_ident *ident)
{
	struct inode *host = file->f_mapping->host;
	struct ts_ident_input in = { 0 };

	if (S_ISBLK(host->i_mode)) {
		struct block_device *bdev = I_BDEV(host);

		in.kind = TS_IDENT_BDEV;
		in.a = cpu_to_le64(bdev->bd_disk->diskseq);
		in.b = cpu_to_le64(new_encode_dev(bdev->bd_dev));
	} else {
		struct super_block *sb = host->i_sb;

		in.kind = TS_IDENT_FILE;
		if (uuid_is_null(&sb->s_uuid)) {
			__le32 dev = cpu_to_le32(new_encode_dev(sb->s_dev));

			in.no_uuid = 1;
			memcpy(in.uuid, &dev, sizeof(dev));
		} else {
			memcpy(in.uuid, &sb->s_uuid, sizeof(in.uuid));
		}
		in.a = cpu_to_le64(host->i_ino);
		in.b = cpu_to_le64(host->i_generation);
	}
	ts_ident_hash(&in, ident);
}

/* The identity of a token of @len (VHOST_BLK_TOKEN_BYTES) bytes. */
void ts_ident_of_token(const u8 *token, unsigned int len,
		       struct ts_ident *ident)
{
	struct ts_ident_input in = { .kind = TS_IDENT_TOKEN };

	memcpy(in.uuid, token, min_t(unsigned int, len, sizeof(in.uuid)));
	ts_ident_hash(&in, ident);
}

/* Kind NONE (references recovered without a BIND) matches nothing. */
bool ts_ident_equal(const struct ts_ident *a, const struct ts_ident *b)
{
	return a->kind != TS_IDENT_NONE && a->kind == b->kind &&
	       a->fp_hi == b->fp_hi && a->fp_lo == b->fp_lo;
}

const char *ts_ident_kind_name(u8 kind)
{
	switch (kind) {
	case TS_IDENT_FILE:
		return "file";
	case TS_IDENT_BDEV:
		return "block device";
	case TS_IDENT_TOKEN:
		return "token";
	default:
		return "unknown";
	}
}
