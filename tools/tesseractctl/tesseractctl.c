// SPDX-License-Identifier: GPL-2.0
/*
 * tesseractctl: format, check and dump the store of tesseract on its
 * backing device; show and flatten the guest disks of the loaded module.
 *
 *   tesseractctl format [--journal-blocks N] [--force] DEVICE
 *   tesseractctl check DEVICE
 *   tesseractctl dump DEVICE
 *   tesseractctl disk DISK-ID
 *   tesseractctl flatten [-q] DISK-ID
 *
 * The on-disk format is include/uapi/linux/tesseract_store.h; the man page,
 * tesseractctl.8, says what each command does and what check's exit status
 * means. Everything is read and written with O_DIRECT where the device
 * allows it, so that check and dump see what is on the device, not stale
 * page cache of the backing device. disk and flatten use the ioctls of
 * /dev/tesseract (include/uapi/linux/tesseract.h).
 */
#include <ctype.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/tesseract.h>
#include <linux/tesseract_store.h>

#include "ts_crc.h"

#define BLOCK		TS_STORE_BLOCK_SIZE
#define ZERO_CHUNK	256		/* blocks zeroed per write */
#define MIN_DATA_BLOCKS	257		/* format refuses fewer */
#define MIN_STORE_BLOCKS 256		/* data blocks: fewer are refused */
#define MAX_PROBLEMS	50		/* lines; then only counted */
#define BTRFS_SB_BLOCK	16		/* its superblock is at 64 KiB */
#define BTRFS_MAGIC_OFF	64
#define U32_MAX		0xffffffffULL

/* Exit status of check and dump: one bit per kind of problem. */
#define ST_SB		1	/* superblock invalid: nothing else checked */
#define ST_CKPT		2	/* no valid checkpoint, or the newest corrupt */
#define ST_JOURNAL	4	/* a hole in the journal, or a bad record */
#define ST_MAP		8	/* reference map invalid */
#define ST_IO		16	/* I/O error: the check is incomplete */
#define EXIT_USAGE	64	/* bad command line, every command */

static const char *prog = "tesseractctl";

static void err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void *xalloc(size_t size)
{
	void *p;

	if (posix_memalign(&p, BLOCK, size ? size : 1)) {
		err("out of memory");
		exit(ST_IO);
	}
	memset(p, 0, size);
	return p;
}

/* Blocks of a checkpoint slot that holds @refs references. */
static __u64 ckpt_need(__u64 refs)
{
	return 1 + (refs + TS_CKPT_RECORDS - 1) / TS_CKPT_RECORDS;
}

static bool is_zero(const void *buf, size_t len)
{
	const __u8 *p = buf;

	while (len--)
		if (*p++)
			return false;
	return true;
}

static void uuid_str(const __u8 *u, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	unsigned int i;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*buf++ = '-';
		*buf++ = hex[u[i] >> 4];
		*buf++ = hex[u[i] & 15];
	}
	*buf = '\0';
}

/* The backing device (or an image file). */

struct dev {
	const char *path;
	int fd;
	bool bdev;
	__u64 blocks;		/* whole 4 KiB blocks */
};

static int dev_open(struct dev *d, const char *path, bool rw, bool excl)
{
	int flags = (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	__u64 bytes;
	struct stat st;

	d->path = path;
	if (stat(path, &st)) {
		err("%s: %s", path, strerror(errno));
		return -1;
	}
	d->bdev = S_ISBLK(st.st_mode);
	if (!d->bdev && !S_ISREG(st.st_mode)) {
		err("%s: neither a block device nor a regular file", path);
		return -1;
	}
	/* O_EXCL: refused while mounted, swapped on or held by a module. */
	if (d->bdev && excl)
		flags |= O_EXCL;
	d->fd = open(path, flags | O_DIRECT);
	if (d->fd < 0 && errno == EINVAL)	/* no O_DIRECT (tmpfs) */
		d->fd = open(path, flags);
	if (d->fd < 0) {
		if (errno == EBUSY)
			err("%s: in use (mounted, swapped on or held by the tesseract module)",
			    path);
		else
			err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (d->bdev) {
		if (ioctl(d->fd, BLKGETSIZE64, &bytes)) {
			err("%s: cannot get its size: %s", path,
			    strerror(errno));
			close(d->fd);
			return -1;
		}
	} else {
		bytes = st.st_size;
	}
	d->blocks = bytes / BLOCK;
	return 0;
}

static int dev_io(struct dev *d, __u64 block, void *buf, size_t nr,
		  bool write)
{
	size_t len = nr * BLOCK, done = 0;
	off_t pos = (off_t)(block * BLOCK);
	ssize_t n;

	while (done < len) {
		if (write)
			n = pwrite(d->fd, (char *)buf + done, len - done,
				   pos + done);
		else
			n = pread(d->fd, (char *)buf + done, len - done,
				  pos + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err("%s: %s block %llu: %s", d->path,
			    write ? "cannot write" : "cannot read",
			    block + done / BLOCK,
			    n ? strerror(errno) : "beyond the end");
			return -1;
		}
		done += n;
	}
	return 0;
}

static int dev_read(struct dev *d, __u64 block, void *buf)
{
	return dev_io(d, block, buf, 1, false);
}

/* fsync (a cache flush of the device), then drop its page cache. */
static int dev_sync(struct dev *d)
{
	if (fsync(d->fd)) {
		err("%s: fsync: %s", d->path, strerror(errno));
		return -1;
	}
	if (d->bdev && ioctl(d->fd, BLKFLSBUF, 0))
		err("%s: warning: BLKFLSBUF: %s", d->path, strerror(errno));
	return 0;
}

/* The reference map: (disk id, disk block) -> data block. */

struct ref {
	__u64 disk_id;
	__u64 disk_block;
	__u32 data_block;
	__u32 used;
};

/* Open addressing with linear probing; cap is a power of two. */
struct refmap {
	struct ref *tab;
	size_t cap;
	size_t nr;
};

static size_t ref_hash(__u64 id, __u64 blk)
{
	__u64 h = id * 0x9e3779b97f4a7c15ULL ^ blk;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (size_t)h;
}

static void map_init(struct refmap *m)
{
	m->cap = 64;
	m->nr = 0;
	m->tab = xalloc(m->cap * sizeof(*m->tab));
}

static void map_free(struct refmap *m)
{
	free(m->tab);
	m->tab = NULL;
	m->cap = 0;
	m->nr = 0;
}

static struct ref *map_slot(const struct refmap *m, __u64 id, __u64 blk)
{
	size_t i = ref_hash(id, blk) & (m->cap - 1);

	while (m->tab[i].used && (m->tab[i].disk_id != id ||
				  m->tab[i].disk_block != blk))
		i = (i + 1) & (m->cap - 1);
	return &m->tab[i];
}

static void map_grow(struct refmap *m)
{
	struct refmap old = *m;
	size_t i;

	m->cap *= 2;
	m->tab = xalloc(m->cap * sizeof(*m->tab));
	for (i = 0; i < old.cap; i++)
		if (old.tab[i].used)
			*map_slot(m, old.tab[i].disk_id,
				  old.tab[i].disk_block) = old.tab[i];
	free(old.tab);
}

/* Add or replace; true if the key had a reference already. */
static bool map_add(struct refmap *m, __u64 id, __u64 blk, __u32 data)
{
	struct ref *r;

	if ((m->nr + 1) * 2 > m->cap)
		map_grow(m);
	r = map_slot(m, id, blk);
	r->data_block = data;
	if (r->used)
		return true;
	r->disk_id = id;
	r->disk_block = blk;
	r->used = 1;
	m->nr++;
	return false;
}

/* Remove (backward shift deletion); false if there was no reference. */
static bool map_drop(struct refmap *m, __u64 id, __u64 blk)
{
	size_t mask = m->cap - 1, i, j, k;
	struct ref *r = map_slot(m, id, blk);

	if (!r->used)
		return false;
	i = r - m->tab;
	for (j = (i + 1) & mask; m->tab[j].used; j = (j + 1) & mask) {
		k = ref_hash(m->tab[j].disk_id, m->tab[j].disk_block) & mask;
		/* The entry at j stays if its home k lies in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		m->tab[i] = m->tab[j];
		i = j;
	}
	m->tab[i].used = 0;
	m->nr--;
	return true;
}

/* References of disk @id. */
static size_t map_disk_refs(const struct refmap *m, __u64 id)
{
	size_t i, n = 0;

	for (i = 0; i < m->cap; i++)
		n += m->tab[i].used && m->tab[i].disk_id == id;
	return n;
}

/* Drop every reference of disk @id (a FORGET). */
static void map_forget(struct refmap *m, __u64 id)
{
	struct refmap old = *m;
	size_t i;

	map_init(m);
	for (i = 0; i < old.cap; i++)
		if (old.tab[i].used && old.tab[i].disk_id != id)
			map_add(m, old.tab[i].disk_id, old.tab[i].disk_block,
				old.tab[i].data_block);
	free(old.tab);
}

static int cmp_key(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->disk_id != y->disk_id)
		return x->disk_id < y->disk_id ? -1 : 1;
	if (x->disk_block != y->disk_block)
		return x->disk_block < y->disk_block ? -1 : 1;
	return 0;
}

static int cmp_data(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->data_block != y->data_block)
		return x->data_block < y->data_block ? -1 : 1;
	return 0;
}

/* The references as an array sorted by disk id and disk block. */
static struct ref *map_sorted(const struct refmap *m)
{
	struct ref *v = xalloc(m->nr * sizeof(*v));
	size_t i, n = 0;

	for (i = 0; i < m->cap; i++)
		if (m->tab[i].used)
			v[n++] = m->tab[i];
	qsort(v, n, sizeof(*v), cmp_key);
	return v;
}

/* Disk identities: disk id -> the identity its references belong to. */

struct ident {
	__u64 disk_id;
	__u8 kind;
	__u32 fp_lo;
	__u64 fp_hi;
};

struct idents {
	struct ident *v;
	size_t nr, cap;
};

static struct ident *ident_find(struct idents *ids, __u64 id)
{
	size_t i;

	for (i = 0; i < ids->nr; i++)
		if (ids->v[i].disk_id == id)
			return &ids->v[i];
	return NULL;
}

/* Bind @id to the identity of BIND record @rec. */
static void ident_set(struct idents *ids, const struct ts_bind_record *rec)
{
	__u64 id = le64toh(rec->disk_id);
	struct ident *d = ident_find(ids, id);

	if (!d) {
		if (ids->nr == ids->cap) {
			ids->cap = ids->cap ? 2 * ids->cap : 16;
			ids->v = realloc(ids->v, ids->cap * sizeof(*ids->v));
			if (!ids->v) {
				err("out of memory");
				exit(ST_IO);
			}
		}
		d = &ids->v[ids->nr++];
	}
	d->disk_id = id;
	d->kind = rec->kind;
	d->fp_lo = le32toh(rec->fp_lo);
	d->fp_hi = le64toh(rec->fp_hi);
}

static void ident_drop(struct idents *ids, __u64 id)
{
	struct ident *d = ident_find(ids, id);

	if (d)
		*d = ids->v[--ids->nr];
}

static const char *ident_kind_str(__u8 kind)
{
	switch (kind) {
	case TS_IDENT_FILE:
		return "file";
	case TS_IDENT_BDEV:
		return "bdev";
	case TS_IDENT_TOKEN:
		return "token";
	default:
		return "none";
	}
}

/* Records. */

enum rec_error { REC_OK, REC_TYPE, REC_PAD, REC_DROP_DATA, REC_RANGE,
		 REC_KIND, REC_FORGET_DATA };

static const char * const rec_error_str[] = {
	[REC_OK] = "ok",
	[REC_TYPE] = "unknown type",
	[REC_PAD] = "pad not zero",
	[REC_DROP_DATA] = "DROP with a data block",
	[REC_RANGE] = "data block out of range",
	[REC_KIND] = "BIND of an unknown identity kind",
	[REC_FORGET_DATA] = "FORGET with a data or disk block",
};

/* A checkpoint holds ADD and BIND records only. */
static enum rec_error rec_check(const struct ts_record *rec, bool ckpt,
				__u32 data_blocks)
{
	const struct ts_bind_record *bind = (const void *)rec;

	if (rec->type == TS_REC_BIND) {
		if (bind->pad[0] || bind->pad[1])
			return REC_PAD;
		return bind->kind >= TS_IDENT_FILE &&
		       bind->kind <= TS_IDENT_TOKEN ? REC_OK : REC_KIND;
	}
	if (rec->type != TS_REC_ADD &&
	    (ckpt || (rec->type != TS_REC_DROP && rec->type != TS_REC_FORGET)))
		return REC_TYPE;
	if (rec->pad[0] || rec->pad[1] || rec->pad[2])
		return REC_PAD;
	if (rec->type == TS_REC_FORGET)
		return rec->data_block || rec->disk_block ? REC_FORGET_DATA :
		       REC_OK;
	if (rec->type == TS_REC_DROP)
		return rec->data_block ? REC_DROP_DATA : REC_OK;
	return le32toh(rec->data_block) < data_blocks ? REC_OK : REC_RANGE;
}

static void rec_str(const struct ts_record *rec, char *buf, size_t len)
{
	const struct ts_bind_record *bind = (const void *)rec;
	unsigned long long id = le64toh(rec->disk_id);
	unsigned long long blk = le64toh(rec->disk_block);

	if (rec->type == TS_REC_BIND)
		snprintf(buf, len, "BIND disk %016llx identity %s %08x%016llx",
			 id, ident_kind_str(bind->kind), le32toh(bind->fp_lo),
			 (unsigned long long)le64toh(bind->fp_hi));
	else if (rec->type == TS_REC_FORGET)
		snprintf(buf, len, "FORGET disk %016llx", id);
	else if (rec->type == TS_REC_ADD)
		snprintf(buf, len, "ADD  disk %016llx block %llu -> data %u",
			 id, blk, le32toh(rec->data_block));
	else if (rec->type == TS_REC_DROP)
		snprintf(buf, len, "DROP disk %016llx block %llu", id, blk);
	else
		snprintf(buf, len, "type %u disk %016llx block %llu data %u",
			 rec->type, id, blk, le32toh(rec->data_block));
}

/* The store as check and dump see it. */

struct geom {
	__u64 device_blocks;
	__u64 journal_start;
	__u64 journal_blocks;
	__u64 ckpt_start[2];
	__u64 ckpt_blocks;
	__u64 data_start;
	__u32 data_blocks;
	__u32 max_refs;
	__u32 incompat;		/* TS_SB_INCOMPAT_* */
	__u8 uuid[16];
};

struct slot {
	bool hdr_ok;		/* magic, crc, uuid and fields in range */
	bool ok;		/* and its entries: usable */
	bool malformed;		/* crcs good, contents not: a writer bug */
	char why[256];		/* why not ok */
	struct ts_ckpt_header h;
	__u64 seq;
	__u64 nr_refs;
	__u64 next;
	struct refmap map;
	struct idents ids;
};

struct store {
	struct dev dev;
	bool dump;
	int status;
	unsigned int problems;
	struct geom g;
	struct slot slot[2];
	int cur;		/* the checkpoint slot in use */
	struct refmap *map;
	struct idents *ids;	/* the identities of its disks */
	__u64 replayed;		/* journal blocks after the checkpoint */
	void *buf;		/* one block */
};

/* A problem: a line on stderr and a bit of the exit status. */
static void problem(struct store *s, int bit, const char *fmt, ...)
{
	va_list ap;

	s->status |= bit;
	if (++s->problems > MAX_PROBLEMS)
		return;
	fflush(stdout);		/* in order with dump's lines */
	fprintf(stderr, "%s: ", s->dev.path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void warn_about(struct store *s, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: warning: ", s->dev.path);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The format wants what follows the first @used bytes of a block zero. */
static void check_tail(struct store *s, const void *block, size_t used,
		       const char *what, __u64 n)
{
	if (!is_zero((const __u8 *)block + used, BLOCK - used))
		warn_about(s, "%s %llu: not zero after its %zu bytes", what, n,
			   used);
}

/* Superblock. */

/* What block 0 looks like when it is not a superblock. */
static const char *block0_kind(const __u8 *b)
{
	if (is_zero(b, BLOCK))
		return "is zeroed";
	if (!memcmp(b, "LUKS\xba\xbe", 6))
		return "has a LUKS header";
	if (!memcmp(b, "XFSB", 4))
		return "has an XFS file system";
	if (!memcmp(b, "hsqs", 4))
		return "has a squashfs file system";
	if (b[1080] == 0x53 && b[1081] == 0xef)
		return "has an ext2/ext3/ext4 file system";
	if (!memcmp(b + BLOCK - 10, "SWAPSPACE2", 10) ||
	    !memcmp(b + BLOCK - 10, "SWAP-SPACE", 10))
		return "is a swap area (mkswap)";
	if (!memcmp(b + 512, "LABELONE", 8))
		return "is an LVM physical volume";
	if (!memcmp(b + 512, "EFI PART", 8))
		return "has a GPT partition table";
	if (b[510] == 0x55 && b[511] == 0xaa)
		return "has a partition table or boot sector";
	return "has a file system or other data";
}

static void geom_from_sb(struct geom *g, const struct ts_sb *sb)
{
	g->device_blocks = le64toh(sb->device_blocks);
	g->journal_start = le64toh(sb->journal_start);
	g->journal_blocks = le64toh(sb->journal_blocks);
	g->ckpt_start[0] = le64toh(sb->ckpt_start[0]);
	g->ckpt_start[1] = le64toh(sb->ckpt_start[1]);
	g->ckpt_blocks = le64toh(sb->ckpt_blocks);
	g->data_start = le64toh(sb->data_start);
	g->data_blocks = le32toh(sb->data_blocks);
	g->max_refs = le32toh(sb->max_refs);
	g->incompat = le32toh(sb->incompat_features);
	memcpy(g->uuid, sb->uuid, sizeof(g->uuid));
}

static void sb_from_geom(struct ts_sb *sb, const struct geom *g)
{
	memset(sb, 0, sizeof(*sb));
	sb->magic = htole64(TS_SB_MAGIC);
	sb->version = htole32(TS_SB_VERSION);
	memcpy(sb->uuid, g->uuid, sizeof(sb->uuid));
	sb->block_size = htole32(BLOCK);
	sb->device_blocks = htole64(g->device_blocks);
	sb->journal_start = htole64(g->journal_start);
	sb->journal_blocks = htole64(g->journal_blocks);
	sb->ckpt_start[0] = htole64(g->ckpt_start[0]);
	sb->ckpt_start[1] = htole64(g->ckpt_start[1]);
	sb->ckpt_blocks = htole64(g->ckpt_blocks);
	sb->data_start = htole64(g->data_start);
	sb->data_blocks = htole32(g->data_blocks);
	sb->max_refs = htole32(g->max_refs);
	sb->incompat_features = htole32(g->incompat);
}

static const char * const region_name[] = {
	"journal", "checkpoint slot 0", "checkpoint slot 1", "data area",
};

/* Regions inside [1, device_blocks), not overlapping; the rest sound. */
static void sb_check_geometry(struct store *s)
{
	const struct geom *g = &s->g;
	__u64 start[4] = { g->journal_start, g->ckpt_start[0],
			   g->ckpt_start[1], g->data_start };
	__u64 len[4] = { g->journal_blocks, g->ckpt_blocks, g->ckpt_blocks,
			 g->data_blocks };
	unsigned int i, j;
	bool inside = true;

	if (g->device_blocks > s->dev.blocks)
		problem(s, ST_SB, "superblock: device_blocks %llu, but the device has %llu blocks",
			g->device_blocks, s->dev.blocks);
	for (i = 0; i < 4; i++) {
		if (!len[i]) {
			problem(s, ST_SB, "superblock: the %s is empty",
				region_name[i]);
			inside = false;
		} else if (!start[i] || start[i] >= g->device_blocks ||
			   len[i] > g->device_blocks - start[i]) {
			problem(s, ST_SB, "superblock: %s [%llu, +%llu) not inside [1, %llu)",
				region_name[i], start[i], len[i],
				g->device_blocks);
			inside = false;
		}
	}
	for (i = 0; inside && i < 4; i++)
		for (j = i + 1; j < 4; j++)
			if (start[i] < start[j] + len[j] &&
			    start[j] < start[i] + len[i])
				problem(s, ST_SB,
					"superblock: %s [%llu, +%llu) overlaps %s [%llu, +%llu)",
					region_name[i], start[i], len[i],
					region_name[j], start[j], len[j]);
	/* Documentation/store-format.rst: in this order, without gaps. */
	if (inside && (g->journal_start != 1 ||
		       g->ckpt_start[0] != g->journal_start + g->journal_blocks ||
		       g->ckpt_start[1] != g->ckpt_start[0] + g->ckpt_blocks ||
		       g->data_start != g->ckpt_start[1] + g->ckpt_blocks))
		problem(s, ST_SB,
			"superblock: regions not journal from 1, slot 0, slot 1, data, without gaps");
	if (g->data_blocks < MIN_STORE_BLOCKS)
		problem(s, ST_SB, "superblock: data_blocks %u < %u",
			g->data_blocks, MIN_STORE_BLOCKS);
	if (g->max_refs > g->data_blocks)
		problem(s, ST_SB, "superblock: max_refs %u > data_blocks %u",
			g->max_refs, g->data_blocks);
	if (g->ckpt_blocks < ckpt_need(g->max_refs))
		problem(s, ST_SB, "superblock: ckpt_blocks %llu, max_refs %u need %llu",
			g->ckpt_blocks, g->max_refs, ckpt_need(g->max_refs));
}

static void sb_print(const struct store *s, const struct ts_sb *sb,
		     __u32 crc)
{
	const struct geom *g = &s->g;
	char uuid[37];

	uuid_str(g->uuid, uuid);
	printf("superblock (block 0)\n");
	printf("  magic           0x%016llx\n",
	       (unsigned long long)le64toh(sb->magic));
	printf("  version         %u\n", le32toh(sb->version));
	printf("  crc             0x%08x (%s 0x%08x)\n", le32toh(sb->crc),
	       crc == le32toh(sb->crc) ? "ok, computed" : "bad, computed",
	       crc);
	printf("  uuid            %s\n", uuid);
	printf("  block_size      %u\n", le32toh(sb->block_size));
	printf("  incompat        0x%08x%s\n", le32toh(sb->incompat_features),
	       le32toh(sb->incompat_features) & TS_SB_INCOMPAT_VOLATILE ?
	       " (volatile: swap only, no references)" : "");
	printf("  device_blocks   %llu (the device has %llu)\n",
	       g->device_blocks, s->dev.blocks);
	printf("  journal         blocks %llu..%llu (%llu)\n",
	       g->journal_start, g->journal_start + g->journal_blocks - 1,
	       g->journal_blocks);
	printf("  checkpoint 0    blocks %llu..%llu (%llu)\n",
	       g->ckpt_start[0], g->ckpt_start[0] + g->ckpt_blocks - 1,
	       g->ckpt_blocks);
	printf("  checkpoint 1    blocks %llu..%llu (%llu)\n",
	       g->ckpt_start[1], g->ckpt_start[1] + g->ckpt_blocks - 1,
	       g->ckpt_blocks);
	printf("  data            blocks %llu..%llu (%u)\n", g->data_start,
	       g->data_start + g->data_blocks - 1, g->data_blocks);
	printf("  max_refs        %u\n", g->max_refs);
}

static int sb_load(struct store *s)
{
	struct ts_sb *sb = s->buf;
	__u32 crc;

	if (!s->dev.blocks) {
		problem(s, ST_SB, "smaller than one block: not a tesseract store");
		return -1;
	}
	if (dev_read(&s->dev, 0, s->buf)) {
		s->status |= ST_IO;
		return -1;
	}
	if (le64toh(sb->magic) != TS_SB_MAGIC) {
		problem(s, ST_SB, "not a tesseract store: block 0 %s",
			block0_kind(s->buf));
		return -1;
	}
	geom_from_sb(&s->g, sb);
	crc = ts_block_crc(sb, offsetof(struct ts_sb, crc));
	if (s->dump)
		sb_print(s, sb, crc);
	if (crc != le32toh(sb->crc))
		problem(s, ST_SB, "superblock: crc 0x%08x, computed 0x%08x (torn or corrupt)",
			le32toh(sb->crc), crc);
	if (le32toh(sb->version) < TS_SB_VERSION)
		problem(s, ST_SB,
			"superblock: version %u, this tool reads %u: its checkpoints may share a sequence number; flatten its disks with the module that wrote it, then format it again",
			le32toh(sb->version), TS_SB_VERSION);
	else if (le32toh(sb->version) != TS_SB_VERSION)
		problem(s, ST_SB, "superblock: version %u, this tool reads %u",
			le32toh(sb->version), TS_SB_VERSION);
	if (le32toh(sb->block_size) != BLOCK)
		problem(s, ST_SB, "superblock: block_size %u, not %u",
			le32toh(sb->block_size), BLOCK);
	if (le32toh(sb->incompat_features) & ~TS_SB_INCOMPAT_KNOWN)
		problem(s, ST_SB, "superblock: unknown incompatible features 0x%08x",
			le32toh(sb->incompat_features) & ~TS_SB_INCOMPAT_KNOWN);
	if (crc == le32toh(sb->crc))
		check_tail(s, sb, sizeof(*sb), "superblock, block", 0);
	sb_check_geometry(s);
	return s->status ? -1 : 0;
}

/* Checkpoint slots. */

static int slot_bad(struct slot *sl, bool malformed, const char *fmt, ...)
{
	va_list ap;

	sl->ok = false;
	sl->malformed = malformed;
	va_start(ap, fmt);
	vsnprintf(sl->why, sizeof(sl->why), fmt, ap);
	va_end(ap);
	return 0;
}

/* The entries of a slot whose header is good: into sl->map. */
static int slot_load_entries(struct store *s, int i)
{
	struct slot *sl = &s->slot[i];
	const struct ts_record *recs = s->buf, *rec;
	char str[128], first[256] = "";
	__u64 n, bad = 0, block, tail = 0;
	enum rec_error e;
	unsigned int r;
	__u32 crc = ~0U;

	map_init(&sl->map);
	for (n = 0; n < sl->nr_refs; n++) {
		r = n % TS_CKPT_RECORDS;
		block = s->g.ckpt_start[i] + 1 + n / TS_CKPT_RECORDS;
		if (!r && dev_read(&s->dev, block, s->buf))
			return -1;
		rec = &recs[r];
		crc = ts_crc32c(crc, rec, sizeof(*rec));
		rec_str(rec, str, sizeof(str));
		e = rec_check(rec, true, s->g.data_blocks);
		if (e != REC_OK) {
			if (!bad++)
				snprintf(first, sizeof(first),
					 "record %llu: %s: %s", n,
					 rec_error_str[e], str);
		} else if (rec->type == TS_REC_BIND) {
			ident_set(&sl->ids, (const void *)rec);
		} else if (map_add(&sl->map, le64toh(rec->disk_id),
				   le64toh(rec->disk_block),
				   le32toh(rec->data_block))) {
			if (!bad++)
				snprintf(first, sizeof(first),
					 "record %llu: a second reference: %s",
					 n, str);
		}
		/* What follows the block's records is zero. */
		if ((r == TS_CKPT_RECORDS - 1 || n == sl->nr_refs - 1) &&
		    !tail && !is_zero(&recs[r + 1],
				      BLOCK - (r + 1) * sizeof(*rec)))
			tail = block;
	}
	if (~crc != le32toh(sl->h.entries_crc)) {
		map_free(&sl->map);
		return slot_bad(sl, false,
				"entries corrupt (entries_crc 0x%08x, computed 0x%08x)",
				le32toh(sl->h.entries_crc), ~crc);
	}
	if (bad) {
		map_free(&sl->map);
		return slot_bad(sl, true, "%s (%llu bad records)", first, bad);
	}
	if (tail)
		warn_about(s, "checkpoint entries block %llu: not zero after its records",
			   tail);
	sl->ok = true;
	return 0;
}

/* 0, or -1 on an I/O error; the slot's verdict is in s->slot[i]. */
static int slot_load(struct store *s, int i)
{
	struct slot *sl = &s->slot[i];
	const struct ts_ckpt_header *h = s->buf;
	char uuid[37];
	__u32 crc;

	if (dev_read(&s->dev, s->g.ckpt_start[i], s->buf))
		return -1;
	memcpy(&sl->h, h, sizeof(*h));
	sl->seq = le64toh(h->seq);
	sl->nr_refs = le64toh(h->nr_refs);
	sl->next = le64toh(h->journal_next);
	if (le64toh(h->magic) != TS_CKPT_MAGIC)
		return slot_bad(sl, false, is_zero(h, BLOCK) ?
				"empty (zeroed)" : "no checkpoint (bad magic)");
	crc = ts_block_crc(h, offsetof(struct ts_ckpt_header, crc));
	if (crc != le32toh(h->crc))
		return slot_bad(sl, false,
				"torn or corrupt header (crc 0x%08x, computed 0x%08x)",
				le32toh(h->crc), crc);
	if (memcmp(h->uuid, s->g.uuid, sizeof(h->uuid))) {
		uuid_str(h->uuid, uuid);
		return slot_bad(sl, false, "of another store (uuid %s)", uuid);
	}
	if (sl->nr_refs > s->g.max_refs)
		return slot_bad(sl, true, "nr_refs %llu > max_refs %u",
				sl->nr_refs, s->g.max_refs);
	if (sl->next >= s->g.journal_blocks)
		return slot_bad(sl, true, "journal_next %llu >= journal_blocks %llu",
				sl->next, s->g.journal_blocks);
	sl->hdr_ok = true;
	check_tail(s, h, sizeof(*h), "checkpoint header block",
		   s->g.ckpt_start[i]);
	return slot_load_entries(s, i);
}

static void slot_print(const struct store *s, int i)
{
	const struct slot *sl = &s->slot[i];
	char uuid[37];

	printf("checkpoint slot %d (block %llu): %s%s\n", i,
	       s->g.ckpt_start[i], sl->ok ? "valid" : "invalid: ",
	       sl->ok ? "" : sl->why);
	if (le64toh(sl->h.magic) != TS_CKPT_MAGIC)
		return;
	uuid_str(sl->h.uuid, uuid);
	printf("  seq %llu, nr_refs %llu, journal_next %llu, crc 0x%08x, entries_crc 0x%08x\n",
	       sl->seq, sl->nr_refs, sl->next, le32toh(sl->h.crc),
	       le32toh(sl->h.entries_crc));
	printf("  uuid %s\n", uuid);
}

/*
 * The newest slot with a good header is the checkpoint, by the module's
 * rule (ts_journal_recover()): the higher seq. Every checkpoint takes a
 * sequence number of its own, so two good headers with one seq are
 * corruption, and neither can be said to be the newer. A header is written
 * after its entries are on stable media, so bad entries under a good
 * header are corruption, not a torn write; the older slot is then shown if
 * it can be (the module refuses the store), and references committed
 * after it may be lost. An older slot with bad entries is normal: a
 * checkpoint was being written over it.
 */
static int slot_pick(struct store *s)
{
	struct slot *sl = s->slot;
	int i, newest, cur;

	for (i = 0; i < 2; i++)
		if (sl[i].malformed)
			problem(s, ST_CKPT, "checkpoint slot %d (seq %llu): malformed: %s",
				i, sl[i].seq, sl[i].why);
	if (!sl[0].hdr_ok && !sl[1].hdr_ok) {
		problem(s, ST_CKPT, "no valid checkpoint: slot 0 %s; slot 1 %s",
			sl[0].why, sl[1].why);
		return -1;
	}
	if (sl[0].hdr_ok && sl[1].hdr_ok && sl[0].seq == sl[1].seq) {
		problem(s, ST_CKPT,
			"checkpoint slots 0 and 1 both claim seq %llu: corrupt, neither is the newest",
			sl[0].seq);
		return -1;
	}
	if (!sl[0].hdr_ok || !sl[1].hdr_ok)
		newest = sl[1].hdr_ok;
	else
		newest = sl[1].seq > sl[0].seq;
	cur = newest;
	if (!sl[newest].ok) {
		if (!sl[newest].malformed)
			problem(s, ST_CKPT, "checkpoint slot %d (seq %llu), the newest: %s",
				newest, sl[newest].seq, sl[newest].why);
		cur = !newest;
		if (!sl[cur].ok) {
			problem(s, ST_CKPT, "no valid checkpoint: slot %d %s",
				cur, sl[cur].why);
			return -1;
		}
		problem(s, ST_CKPT,
			"falling back to slot %d (seq %llu): later references may be lost",
			cur, sl[cur].seq);
	}
	s->cur = cur;
	s->map = &sl[cur].map;
	s->ids = &sl[cur].ids;
	/* Both commands say which slot they read: the module logs its own. */
	printf("checkpoint: slot %d, seq %llu, %llu references\n", s->cur,
	       sl[s->cur].seq, sl[s->cur].nr_refs);
	return 0;
}

/* Journal. */

enum jb_state { JB_OK, JB_ZERO, JB_MAGIC, JB_SEQ, JB_TORN };

static enum jb_state jb_state(const struct ts_journal_block *jb, __u64 seq)
{
	if (le64toh(jb->magic) != TS_JOURNAL_MAGIC)
		return is_zero(jb, BLOCK) ? JB_ZERO : JB_MAGIC;
	if (le64toh(jb->seq) != seq)
		return JB_SEQ;
	if (ts_block_crc(jb, offsetof(struct ts_journal_block, crc)) !=
	    le32toh(jb->crc))
		return JB_TORN;
	return JB_OK;
}

static const char * const jb_state_str[] = {
	[JB_OK] = "valid",
	[JB_ZERO] = "zeroed",
	[JB_MAGIC] = "bad magic",
	[JB_SEQ] = "out of sequence",
	[JB_TORN] = "torn (crc mismatch)",
};

/*
 * Does BIND @b give a disk that has references another identity? The
 * module binds anew only a disk without any (it refuses such a store).
 */
static bool jb_rebinds(struct store *s, const struct ts_bind_record *b)
{
	struct ident *d = ident_find(s->ids, le64toh(b->disk_id));

	return d && (d->kind != b->kind || d->fp_lo != le32toh(b->fp_lo) ||
		     d->fp_hi != le64toh(b->fp_hi)) &&
	       map_disk_refs(s->map, d->disk_id);
}

/* Apply the records of a valid journal block with sequence @seq. */
static void jb_apply(struct store *s, const struct ts_journal_block *jb,
		     __u64 seq, __u64 pos)
{
	unsigned int i, nr = le32toh(jb->nr_records);
	const struct ts_record *rec;
	enum rec_error e;
	char str[128];

	for (i = 0; i < nr; i++) {
		rec = &jb->records[i];
		e = rec_check(rec, false, s->g.data_blocks);
		rec_str(rec, str, sizeof(str));
		if (s->dump)
			printf("    %s%s%s\n", str, e ? "  <- " : "",
			       e ? rec_error_str[e] : "");
		if (e == REC_RANGE)
			problem(s, ST_MAP, "journal seq %llu (ring %llu) record %u: %s: %s",
				seq, pos, i, rec_error_str[e], str);
		else if (e != REC_OK)
			problem(s, ST_JOURNAL, "journal seq %llu (ring %llu) record %u: %s: %s",
				seq, pos, i, rec_error_str[e], str);
		if (e != REC_OK && e != REC_RANGE)
			continue;
		if (rec->type == TS_REC_BIND && jb_rebinds(s, (const void *)rec))
			problem(s, ST_JOURNAL, "journal seq %llu (ring %llu) record %u: %s: %s",
				seq, pos, i, "rebinds a disk with references",
				str);
		if (rec->type == TS_REC_BIND) {
			ident_set(s->ids, (const void *)rec);
		} else if (rec->type == TS_REC_FORGET) {
			map_forget(s->map, le64toh(rec->disk_id));
			ident_drop(s->ids, le64toh(rec->disk_id));
		} else if (rec->type == TS_REC_ADD) {
			map_add(s->map, le64toh(rec->disk_id),
				le64toh(rec->disk_block),
				le32toh(rec->data_block));
		} else {
			map_drop(s->map, le64toh(rec->disk_id),
				 le64toh(rec->disk_block));
		}
	}
}

/*
 * Is there a hole before the end found at ring index @pos, where block
 * @seq was expected: a valid block further on that continues the
 * sequence? Journal blocks are written one at a time, each after the
 * previous one is on stable media, so a crash leaves at most the last
 * one torn: a valid block after a bad one is corruption (or a lost write).
 */
static int jb_hole(struct store *s, __u64 pos, __u64 seq,
		   enum jb_state why)
{
	const struct ts_journal_block *jb = s->buf;
	__u64 jblocks = s->g.journal_blocks, i, p;

	for (i = 1; s->replayed + i < jblocks; i++) {
		p = (pos + i) % jblocks;
		if (dev_read(&s->dev, s->g.journal_start + p, s->buf))
			return -1;
		if (jb_state(jb, seq + i) != JB_OK)
			continue;
		problem(s, ST_JOURNAL,
			"journal corrupt: seq %llu (ring %llu) %s, yet seq %llu follows (ring %llu)",
			seq, pos, jb_state_str[why], seq + i, p);
		break;
	}
	return 0;
}

static int journal_replay(struct store *s)
{
	const struct ts_journal_block *jb = s->buf;
	__u64 jblocks = s->g.journal_blocks, pos, seq;
	const struct slot *sl = &s->slot[s->cur];
	enum jb_state st = JB_OK;
	unsigned int nr;

	pos = sl->next;
	seq = sl->seq + 1;
	if (s->dump)
		printf("journal: from ring index %llu, seq %llu\n", pos, seq);
	for (s->replayed = 0; s->replayed < jblocks; s->replayed++) {
		if (dev_read(&s->dev, s->g.journal_start + pos, s->buf))
			return -1;
		st = jb_state(jb, seq);
		if (st != JB_OK)
			break;
		nr = le32toh(jb->nr_records);
		if (s->dump)
			printf("  seq %llu ring %llu (block %llu): %u records\n",
			       seq, pos, s->g.journal_start + pos, nr);
		if (nr > TS_JOURNAL_RECORDS) {
			problem(s, ST_JOURNAL, "journal seq %llu (ring %llu): nr_records %u > %zu",
				seq, pos, nr, TS_JOURNAL_RECORDS);
			return 0;
		}
		if (jb->reserved)
			warn_about(s, "journal seq %llu (ring %llu): reserved not zero",
				   seq, pos);
		check_tail(s, jb, sizeof(*jb) + nr * sizeof(jb->records[0]),
			   "journal block", s->g.journal_start + pos);
		jb_apply(s, jb, seq, pos);
		seq++;
		pos = (pos + 1) % jblocks;
	}
	if (s->replayed == jblocks) {
		if (s->dump)
			printf("  end: the whole ring replayed\n");
		return 0;
	}
	if (s->dump) {
		printf("  end at ring %llu (block %llu): %s", pos,
		       s->g.journal_start + pos, jb_state_str[st]);
		if (st == JB_SEQ)
			printf(" (seq %llu, expected %llu)",
			       (unsigned long long)le64toh(jb->seq), seq);
		printf("\n");
	}
	return jb_hole(s, pos, seq, st);
}

/*
 * The final map: no more references than a checkpoint can hold (each
 * record's data block was checked as it was read). Refcounts are counted
 * from the references, so they match them by construction; blocks with
 * more than one are worth a line of information, not an error.
 */
static void map_verify(struct store *s)
{
	const struct slot *sl = &s->slot[s->cur];
	size_t n = s->map->nr, i, j, disks = 0, blocks = 0, shared = 0;
	struct ref *v = map_sorted(s->map);
	size_t max_refs = 0;
	__u32 max_block = 0;

	size_t bound = 0, unbound = 0;
	struct ident *d;

	for (i = 0; i < n; i++) {
		if (i && v[i].disk_id == v[i - 1].disk_id)
			continue;
		disks++;
		d = ident_find(s->ids, v[i].disk_id);
		if (d)
			bound++;
		else
			unbound++;
	}
	/* A checkpoint holds each bound disk's BIND besides the ADDs. */
	if (n + bound > s->g.max_refs)
		problem(s, ST_MAP, "%zu references and %zu disk identities, more than max_refs %u",
			n, bound, s->g.max_refs);
	if (unbound)
		warn_about(s, "%zu disks have references but no identity (no backend gets them)",
			   unbound);
	if (s->dump)
		printf("references: %zu\n", n);
	for (i = 0; i < n; i++) {
		if (s->dump)
			printf("  disk %016llx block %llu -> data %u\n",
			       v[i].disk_id, v[i].disk_block, v[i].data_block);
	}
	if (s->dump)
		printf("identities: %zu\n", bound);
	for (i = 0; s->dump && i < n; i++) {
		if (i && v[i].disk_id == v[i - 1].disk_id)
			continue;
		d = ident_find(s->ids, v[i].disk_id);
		if (d)
			printf("  disk %016llx %s %08x%016llx\n", v[i].disk_id,
			       ident_kind_str(d->kind), d->fp_lo,
			       (unsigned long long)d->fp_hi);
	}
	qsort(v, n, sizeof(*v), cmp_data);
	for (i = 0; i < n; i = j) {
		j = i + 1;
		while (j < n && v[j].data_block == v[i].data_block)
			j++;
		blocks++;
		if (j - i > 1)
			shared++;
		if (j - i > max_refs) {
			max_refs = j - i;
			max_block = v[i].data_block;
		}
	}
	if (shared)
		printf("info: %zu data blocks shared (most: data block %u, %zu references)\n",
		       shared, max_block, max_refs);
	printf("%s: %zu references to %zu blocks from %zu disks, ",
	       s->status ? "inconsistent" : "consistent", n, blocks, disks);
	printf("journal %llu blocks after checkpoint seq %llu\n",
	       s->replayed, sl->seq);
	free(v);
}

static int store_run(const char *path, bool dump)
{
	struct store s = { .dump = dump, .cur = -1 };
	int i, ret = 0;

	/* check is offline: it refuses a device in use; dump may look. */
	if (dev_open(&s.dev, path, false, !dump))
		return ST_IO;
	s.buf = xalloc(BLOCK);
	if (sb_load(&s))
		goto out;
	for (i = 0; i < 2 && !ret; i++)
		ret = slot_load(&s, i);
	if (ret) {
		s.status |= ST_IO;
		goto out;
	}
	if (dump) {
		slot_print(&s, 0);
		slot_print(&s, 1);
	}
	if (slot_pick(&s))
		goto out;
	if (journal_replay(&s)) {
		s.status |= ST_IO;
		goto out;
	}
	map_verify(&s);
out:
	if (s.status & (ST_SB | ST_IO) || s.cur < 0)
		printf("inconsistent: %s\n", s.status & ST_IO ?
		       "the check did not complete (I/O error)" :
		       s.status & ST_SB ? "superblock invalid" :
		       "no checkpoint to load");
	if (s.problems > MAX_PROBLEMS)
		fprintf(stderr, "%s: %u more problems not shown\n", path,
			s.problems - MAX_PROBLEMS);
	map_free(&s.slot[0].map);
	map_free(&s.slot[1].map);
	free(s.slot[0].ids.v);
	free(s.slot[1].ids.v);
	free(s.buf);
	close(s.dev.fd);
	return s.status;
}

/* format */

/* Data blocks beside checkpoint slots of @ckpt blocks; 0 if none. */
static __u64 data_left(__u64 blocks, __u64 jblocks, __u64 ckpt)
{
	__u64 meta = 1 + jblocks + 2 * ckpt;

	if (meta >= blocks)
		return 0;
	return blocks - meta < U32_MAX ? blocks - meta : U32_MAX;
}

/*
 * The layout of a device of @blocks blocks: the smallest checkpoint slots
 * that hold a reference for every data block they leave (data_blocks is
 * capped at 2^32 - 1, the rest of a larger device stays unused).
 */
static int layout(struct geom *g, __u64 blocks, __u64 jblocks)
{
	__u64 ckpt = 1, data;

	if (!jblocks)
		jblocks = blocks / 64 < 16 ? 16 : blocks / 64 > 1024 ?
			  1024 : blocks / 64;
	if (jblocks >= blocks) {
		err("%llu journal blocks do not fit in %llu blocks", jblocks,
		    blocks);
		return -1;
	}
	/* ckpt_need(data_left(c)) <= c holds from some c on: the least. */
	while (ckpt_need(data_left(blocks, jblocks, ckpt)) > ckpt)
		ckpt = ckpt_need(data_left(blocks, jblocks, ckpt));
	while (ckpt > 1 &&
	       ckpt_need(data_left(blocks, jblocks, ckpt - 1)) <= ckpt - 1)
		ckpt--;
	data = data_left(blocks, jblocks, ckpt);
	if (data < MIN_DATA_BLOCKS) {
		err("too small: %llu blocks leave %llu data blocks, fewer than %u",
		    blocks, data, MIN_DATA_BLOCKS);
		return -1;
	}
	g->device_blocks = blocks;
	g->journal_start = 1;
	g->journal_blocks = jblocks;
	g->ckpt_blocks = ckpt;
	g->ckpt_start[0] = 1 + jblocks;
	g->ckpt_start[1] = g->ckpt_start[0] + ckpt;
	g->data_start = g->ckpt_start[1] + ckpt;
	g->data_blocks = (__u32)data;
	g->max_refs = (__u32)data;
	return 0;
}

static int fill_uuid(__u8 *uuid)
{
	size_t done = 0;
	ssize_t n;

	while (done < 16) {
		n = getrandom(uuid + done, 16 - done, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err("getrandom: %s", strerror(errno));
			return -1;
		}
		done += n;
	}
	uuid[6] = (uuid[6] & 0x0f) | 0x40;	/* RFC 4122 version 4 */
	uuid[8] = (uuid[8] & 0x3f) | 0x80;
	return 0;
}

/*
 * Block 0 is zeroed first, so that a format cut short leaves no superblock
 * over half-written metadata, and written last, after everything else is
 * on stable media.
 */
static int format_write(struct dev *d, const struct geom *g, void *zero)
{
	struct ts_ckpt_header *h = xalloc(BLOCK);
	struct ts_sb *sb = xalloc(BLOCK);
	__u64 done, n;
	int ret = -1;

	if (dev_io(d, 0, zero, 1, true) || dev_sync(d))
		goto out;
	for (done = 0; done < g->journal_blocks; done += n) {
		n = g->journal_blocks - done;
		if (n > ZERO_CHUNK)
			n = ZERO_CHUNK;
		if (dev_io(d, g->journal_start + done, zero, n, true))
			goto out;
	}
	if (dev_io(d, g->ckpt_start[1], zero, 1, true))
		goto out;
	/* Slot 0: seq 0, no references (entries_crc of nothing: 0). */
	h->magic = htole64(TS_CKPT_MAGIC);
	h->seq = 0;
	h->entries_crc = htole32(~ts_crc32c(~0U, NULL, 0));
	h->nr_refs = 0;
	h->journal_next = 0;
	memcpy(h->uuid, g->uuid, sizeof(h->uuid));
	h->crc = htole32(ts_block_crc(h, offsetof(struct ts_ckpt_header, crc)));
	if (dev_io(d, g->ckpt_start[0], h, 1, true) || dev_sync(d))
		goto out;
	sb_from_geom(sb, g);
	sb->crc = htole32(ts_block_crc(sb, offsetof(struct ts_sb, crc)));
	if (dev_io(d, 0, sb, 1, true) || dev_sync(d))
		goto out;
	ret = 0;
out:
	free(sb);
	free(h);
	return ret;
}

static const char format_usage[] =
	"usage: tesseractctl format [--journal-blocks N] [--volatile] [--force] DEVICE\n"
	"\n"
	"Write a new, empty store on DEVICE: superblock, checkpoint slot 0 with\n"
	"no references, slot 1 invalid, the journal zeroed. The data area is\n"
	"not touched. Every reference of the store DEVICE held is lost.\n"
	"\n"
	"  --journal-blocks N  journal ring of N blocks (at least 2; default\n"
	"                      DEVICE blocks / 64, between 16 and 1024)\n"
	"  --volatile          DEVICE keeps nothing over its own restart (another\n"
	"                      machine's RAM over NBD or NVMe/TCP): the module\n"
	"                      swaps to it but refuses reconcile=1, whose\n"
	"                      references would not survive it\n"
	"  --force             format even if block 0 holds something that is\n"
	"                      not a tesseract superblock (a file system, ...)\n"
	"  -h, --help          this text\n";

static int cmd_format(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "journal-blocks", required_argument, NULL, 'j' },
		{ "force", no_argument, NULL, 'f' },
		{ "volatile", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long jblocks = 0;
	struct geom g = { 0 };
	struct dev d;
	bool force = false, volatile_device = false, store;
	char uuid[37], *end;
	const char *what;
	void *zero;
	int c, ret = 1;

	while ((c = getopt_long(argc, argv, "j:fVh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			errno = 0;
			jblocks = strtoull(optarg, &end, 0);
			if (errno || *end || !*optarg || optarg[0] == '-' ||
			    jblocks < 2) {
				err("format: --journal-blocks: '%s' is not a number of at least 2",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case 'f':
			force = true;
			break;
		case 'V':
			volatile_device = true;
			break;
		case 'h':
			fputs(format_usage, stdout);
			return 0;
		default:
			fputs(format_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(format_usage, stderr);
		return EXIT_USAGE;
	}
	if (dev_open(&d, argv[optind], true, true))
		return 1;
	zero = xalloc(ZERO_CHUNK * BLOCK);
	if (!d.blocks) {
		err("%s: too small: less than one block", d.path);
		goto out;
	}
	if (dev_read(&d, 0, zero))
		goto out;
	store = le64toh(((struct ts_sb *)zero)->magic) == TS_SB_MAGIC;
	what = store || is_zero(zero, BLOCK) ? NULL : block0_kind(zero);
	/* A btrfs superblock is at 64 KiB: block 0 of btrfs is zeroed. */
	if (!what && !store && d.blocks > BTRFS_SB_BLOCK) {
		if (dev_read(&d, BTRFS_SB_BLOCK, zero))
			goto out;
		if (!memcmp((char *)zero + BTRFS_MAGIC_OFF, "_BHRfS_M", 8))
			what = "has a btrfs file system";
	}
	if (what && !force) {
		err("%s %s: not formatting it without --force", d.path, what);
		goto out;
	}
	if (layout(&g, d.blocks, jblocks) || fill_uuid(g.uuid))
		goto out;
	if (volatile_device)
		g.incompat |= TS_SB_INCOMPAT_VOLATILE;
	if (store) {
		uuid_str(((struct ts_sb *)zero)->uuid, uuid);
		printf("%s: replacing the store %s\n", d.path, uuid);
	}
	memset(zero, 0, ZERO_CHUNK * BLOCK);
	if (format_write(&d, &g, zero))
		goto out;
	uuid_str(g.uuid, uuid);
	printf("%s: store %s: %u data blocks (%llu MiB), ", d.path, uuid,
	       g.data_blocks, (unsigned long long)g.data_blocks * BLOCK >> 20);
	printf("journal %llu blocks, checkpoint slots of %llu blocks%s\n",
	       g.journal_blocks, g.ckpt_blocks,
	       volatile_device ? "; volatile" : "");
	ret = 0;
out:
	free(zero);
	close(d.fd);
	return ret;
}

/* check, dump */

static const char check_usage[] =
	"usage: tesseractctl check DEVICE\n"
	"\n"
	"Check the store on DEVICE, which must not be in use: superblock,\n"
	"checkpoint slots, the journal after the newest valid checkpoint and\n"
	"the reference map they make. Prints one summary line, and each\n"
	"problem on a line of its own to standard error. The exit status is 0\n"
	"if the store is consistent, else the sum of:\n"
	"   1  superblock invalid (nothing else is checked)\n"
	"   2  no valid checkpoint, or the newest one corrupt or malformed\n"
	"   4  journal corrupt: a hole in the sequence, or a bad record\n"
	"   8  reference map invalid: data block out of range, too many\n"
	"  16  I/O error: the check did not complete\n"
	"and 64 for a bad command line.\n";

static const char dump_usage[] =
	"usage: tesseractctl dump DEVICE\n"
	"\n"
	"Print the store on DEVICE: the superblock, both checkpoint headers,\n"
	"the journal blocks replayed after the checkpoint with their records,\n"
	"and the final reference map, sorted by disk id and disk block.\n"
	"Problems go to standard error; the exit status is that of check.\n"
	"Unlike check, dump also reads a device in use (what it shows may then\n"
	"be changing under it).\n";

static int cmd_store(int argc, char **argv, bool dump)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *usage = dump ? dump_usage : check_usage;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return store_run(argv[optind], dump);
}

/* disk, flatten: guest disks of the loaded module, through /dev/tesseract */

#define CTL_NODE	"/dev/tesseract"
#define EXIT_FAIL	1	/* disk, flatten: the command failed */

/* A disk id as debugfs disk_id prints it: hex, "0x" allowed. */
static int parse_disk_id(const char *s, __u64 *id)
{
	char *end;

	errno = 0;
	*id = strtoull(s, &end, 16);
	if (errno || *end || !*s || !isxdigit((unsigned char)*s)) {
		err("'%s' is not a disk id (hex, as debugfs disk_id prints it)",
		    s);
		return -1;
	}
	return 0;
}

static int ctl_open(int flags)
{
	int fd = open(CTL_NODE, flags | O_CLOEXEC);

	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		err("%s: no such file: is the tesseract module loaded with a store (backing=)?",
		    CTL_NODE);
	else if (errno == EACCES || errno == EPERM)
		err("%s: %s (root only)", CTL_NODE, strerror(errno));
	else
		err("%s: %s", CTL_NODE, strerror(errno));
	return -1;
}

/* What an errno of TESSERACT_DISK_INFO or TESSERACT_FLATTEN means. */
static void disk_error(__u64 id, int e)
{
	const char *why;

	switch (e) {
	case ENOENT:
		why = "no such disk (a disk is known while it is attached or has references)";
		break;
	case ENXIO:
		why = "not attached: flatten writes into its image, attach it (start its VM)";
		break;
	case EROFS:
		why = "its image is read-only: attach it writable to flatten it";
		break;
	case EBUSY:
		why = "attached, flattening or being forgotten: stop its VM first";
		break;
	case EINTR:
		why = "interrupted; the blocks cleaned so far stay cleaned";
		break;
	case EIO:
		why = "I/O error (see the kernel log); the blocks cleaned so far stay cleaned";
		break;
	case ENOTTY:
	case EINVAL:
		err("disk %llx: %s: the module does not know this request (ABI %d expected)",
		    id, strerror(e), TESSERACT_ABI_VERSION);
		return;
	default:
		why = strerror(e);
	}
	err("disk %llx: %s", id, why);
}

static int disk_info(int fd, __u64 id, struct tesseract_disk_info *info)
{
	memset(info, 0, sizeof(*info));
	info->disk_id = id;
	return ioctl(fd, TESSERACT_DISK_INFO, info) ? -errno : 0;
}

static const char disk_usage[] =
	"usage: tesseractctl disk DISK-ID\n"
	"       tesseractctl disk forget DISK-ID\n"
	"\n"
	"Print what the loaded module knows about the guest disk DISK-ID (hex,\n"
	"as /sys/kernel/debug/tesseract/vhost-blk-N/disk_id prints it; 0x is\n"
	"allowed): whether it is attached or being flattened, its references\n"
	"and what the cleaner and the compactor did to it.\n"
	"\n"
	"forget drops every reference of the detached disk DISK-ID, and the\n"
	"backend identity they belong to, durably, and frees their store blocks.\n"
	"What they held is lost: for references whose image is gone, or that\n"
	"another backend's disk cannot take (identity_mismatch).\n"
	"\n"
	"Exit status: 0, 1 if the disk is unknown, attached (forget) or the\n"
	"module cannot be asked, 64 for a bad command line.\n";

static int disk_forget(__u64 id)
{
	struct tesseract_disk_forget f = { .disk_id = id };
	int fd, ret;

	fd = ctl_open(O_RDWR);
	if (fd < 0)
		return EXIT_FAIL;
	ret = ioctl(fd, TESSERACT_DISK_FORGET, &f) ? errno : 0;
	close(fd);
	if (ret) {
		disk_error(id, ret);
		return EXIT_FAIL;
	}
	printf("disk %llx: forgot %llu references\n", id, f.references);
	return 0;
}

static int cmd_disk(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tesseract_disk_info info;
	__u64 id;
	int c, fd, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(disk_usage, stdout);
			return 0;
		}
		fputs(disk_usage, stderr);
		return EXIT_USAGE;
	}
	if (optind == argc - 2 && !strcmp(argv[optind], "forget")) {
		if (parse_disk_id(argv[optind + 1], &id))
			return EXIT_USAGE;
		return disk_forget(id);
	}
	if (optind != argc - 1) {
		fputs(disk_usage, stderr);
		return EXIT_USAGE;
	}
	if (parse_disk_id(argv[optind], &id))
		return EXIT_USAGE;
	fd = ctl_open(O_RDONLY);
	if (fd < 0)
		return EXIT_FAIL;
	ret = disk_info(fd, id, &info);
	close(fd);
	if (ret) {
		disk_error(id, -ret);
		return EXIT_FAIL;
	}
	printf("disk_id: %llx\n", info.disk_id);
	printf("attached: %s\n",
	       info.flags & TESSERACT_DISK_ATTACHED ? "yes" : "no");
	printf("flattening: %s\n",
	       info.flags & TESSERACT_DISK_FLATTENING ? "yes" : "no");
	printf("references: %llu\n", info.references);
	printf("blocks_cleaned: %llu\n", info.blocks_cleaned);
	printf("blocks_compacted: %llu\n", info.blocks_compacted);
	printf("bytes_moved: %llu\n", info.bytes_moved);
	return 0;
}

/* The flatten call, run by a thread of its own while main reports. */
struct flatten_job {
	int fd;
	struct tesseract_flatten arg;
	int error;		/* errno of the ioctl, 0 if it succeeded */
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void *flatten_thread(void *p)
{
	struct flatten_job *job = p;
	int e;

	e = ioctl(job->fd, TESSERACT_FLATTEN, &job->arg) ? errno : 0;
	pthread_mutex_lock(&job->lock);
	job->error = e;
	job->done = true;
	pthread_cond_signal(&job->cond);
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait up to a second for the job; true once it is done. */
static bool flatten_wait(struct flatten_job *job)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec++;
	pthread_mutex_lock(&job->lock);
	while (!job->done &&
	       pthread_cond_timedwait(&job->cond, &job->lock, &ts) != ETIMEDOUT)
		;
	done = job->done;
	pthread_mutex_unlock(&job->lock);
	return done;
}

static const char flatten_usage[] =
	"usage: tesseractctl flatten [-q] DISK-ID\n"
	"\n"
	"Copy every referenced block of the attached guest disk DISK-ID (hex, as\n"
	"debugfs disk_id prints it; 0x is allowed) back into its image and drop\n"
	"the references, so that the image is correct on its own, e.g. before\n"
	"it is copied or the VM migrated. The VM may keep running; the disk\n"
	"takes no new references meanwhile (but may again afterwards: turn\n"
	"reconciliation off for its device to prevent that). Progress goes to\n"
	"standard error about once a second, a summary line to standard output.\n"
	"\n"
	"  -q, --quiet  no progress lines\n"
	"  -h, --help   this text\n"
	"\n"
	"Exit status: 0 flattened, 1 failed (no such disk, not attached,\n"
	"read-only image, I/O error, ...), 64 bad command line. Killed (by\n"
	"Ctrl-C, say), the blocks cleaned so far stay cleaned.\n";

static int cmd_flatten(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct flatten_job job = { .fd = -1 };
	struct tesseract_disk_info start, info;
	pthread_condattr_t attr;
	bool quiet = false;
	pthread_t thread;
	double t0;
	int c, ret;
	__u64 id;

	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			quiet = true;
			break;
		case 'h':
			fputs(flatten_usage, stdout);
			return 0;
		default:
			fputs(flatten_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(flatten_usage, stderr);
		return EXIT_USAGE;
	}
	if (parse_disk_id(argv[optind], &id))
		return EXIT_USAGE;
	job.fd = ctl_open(O_RDWR);
	if (job.fd < 0)
		return EXIT_FAIL;
	/* Where the counters start, and ENOENT before any work. */
	ret = disk_info(job.fd, id, &start);
	if (ret) {
		disk_error(id, -ret);
		close(job.fd);
		return EXIT_FAIL;
	}
	job.arg.disk_id = id;
	pthread_mutex_init(&job.lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&job.cond, &attr);
	t0 = now();
	ret = pthread_create(&thread, NULL, flatten_thread, &job);
	if (ret) {
		err("cannot start a thread: %s", strerror(ret));
		close(job.fd);
		return EXIT_FAIL;
	}
	while (!flatten_wait(&job)) {
		if (quiet || disk_info(job.fd, id, &info))
			continue;
		/* blocks_cleaned counts the background cleaner's too. */
		fprintf(stderr, "%s: disk %llx: %llu references left, %llu cleaned, %.0f s\n",
			prog, id, info.references,
			info.blocks_cleaned - start.blocks_cleaned,
			now() - t0);
	}
	pthread_join(thread, NULL);
	if (job.error) {
		disk_error(id, job.error);
		close(job.fd);
		return EXIT_FAIL;
	}
	printf("disk %llx: flattened: %llu blocks cleaned in %.1f s",
	       id, job.arg.blocks_cleaned, now() - t0);
	/* New references may come as soon as the call returned. */
	if (!disk_info(job.fd, id, &info))
		printf(", %llu references now (%llu before)",
		       info.references, start.references);
	printf("\n");
	close(job.fd);
	return 0;
}

#define CGROOT		"/sys/fs/cgroup"
#define MRC_ROWS	20	/* table rows when no --step is given */
#define MIB_PAGES	256.0	/* 4 KiB pages per MiB */

struct mrc_curve {
	struct tesseract_mrc m;
	__u64 hist[TESSERACT_MRC_BUCKETS];
};

static int mrc_get(int fd, __u64 cgroup_id, __u32 flags, struct mrc_curve *c)
{
	memset(c, 0, sizeof(*c));
	c->m.cgroup_id = cgroup_id;
	c->m.flags = flags;
	c->m.nr_buckets = TESSERACT_MRC_BUCKETS;
	c->m.buckets = (uintptr_t)c->hist;
	return ioctl(fd, TESSERACT_MRC, &c->m) ? -errno : 0;
}

static double mrc_bucket_hi(unsigned int b)
{
	return b + 1 < TESSERACT_MRC_BUCKETS ?
		(double)TESSERACT_MRC_BUCKET_LO(b + 1) :
		2.0 * TESSERACT_MRC_BUCKET_LO(b);
}

/*
 * Swap-ins that would still have happened with @extra more pages: those
 * of eviction distance @extra or more, spread evenly over each bucket.
 */
static double mrc_misses_at(const struct mrc_curve *c, double extra)
{
	double lo, hi, n = 0;
	unsigned int b;

	for (b = 0; b < TESSERACT_MRC_BUCKETS; b++) {
		lo = TESSERACT_MRC_BUCKET_LO(b);
		hi = mrc_bucket_hi(b);
		if (lo >= extra)
			n += c->hist[b];
		else if (hi > extra)
			n += c->hist[b] * (hi - extra) / (hi - lo);
	}
	return n;
}

/* The largest distance seen, in pages (0: none). */
static double mrc_max_distance(const struct mrc_curve *c)
{
	unsigned int b;

	for (b = TESSERACT_MRC_BUCKETS; b--;)
		if (c->hist[b])
			return mrc_bucket_hi(b);
	return 0;
}

/* A step of 1, 2 or 5 times a power of ten, about @span / @rows. */
static double nice_step(double span, int rows)
{
	double raw = span / rows, p = 1;

	while (p * 10 <= raw)
		p *= 10;
	while (p > raw && p > 0.001)
		p /= 10;
	if (raw > 5 * p)
		return 10 * p;
	if (raw > 2 * p)
		return 5 * p;
	if (raw > p)
		return 2 * p;
	return p;
}

/* The path of the cgroup with id (inode number) @id, found by a walk. */
static __u64 path_walk_id;
static char path_walk_found[PATH_MAX];

static int path_walk_fn(const char *path, const struct stat *st, int type,
			struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_D || st->st_ino != path_walk_id)
		return 0;
	snprintf(path_walk_found, sizeof(path_walk_found), "%s", path);
	return 1;
}

static const char *cgroup_path(__u64 id)
{
	path_walk_id = id;
	if (nftw(CGROOT, path_walk_fn, 16, FTW_PHYS | FTW_MOUNT) != 1)
		return "(gone)";
	if (!strcmp(path_walk_found, CGROOT))
		return "/";
	return path_walk_found + strlen(CGROOT);
}

/* CGROUP: a cgroup v2 path (absolute, or under /sys/fs/cgroup) or an id. */
static int cgroup_id_of(const char *arg, __u64 *id)
{
	char path[PATH_MAX], *end;
	struct stat st;

	if (arg[0] == '/' && !strncmp(arg, CGROOT, strlen(CGROOT)))
		snprintf(path, sizeof(path), "%s", arg);
	else
		snprintf(path, sizeof(path), CGROOT "/%s",
			 arg + (arg[0] == '/'));
	if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
		*id = st.st_ino;
		return 0;
	}
	errno = 0;
	*id = strtoull(arg, &end, 0);
	if (!errno && !*end && *arg && isdigit((unsigned char)*arg))
		return 0;
	err("'%s': no such cgroup (a path under %s, or a cgroup id)", arg,
	    CGROOT);
	return -1;
}

static void mrc_summary(const struct mrc_curve *c)
{
	double secs = c->m.window_ns / 1e9;

	if (secs <= 0)
		secs = 1;
	printf("cgroup %s (id %llu): %.1f s of traffic, %.1f MiB in swap now\n",
	       cgroup_path(c->m.cgroup_id), c->m.cgroup_id, secs,
	       c->m.in_swap / MIB_PAGES);
	printf("  evictions %.1f/s, swap-ins %.1f/s (%.1f/s not from the device)\n",
	       c->m.evictions / secs, c->m.faults / secs,
	       c->m.bypassed / secs);
	printf("  not on the curve: %.1f/s of unknown distance, %.1f/s read ahead\n",
	       c->m.unstamped_faults / secs, c->m.readahead_reads / secs);
}

/* Draw the curve with matplotlib, as the benchmark plots are drawn. */
static int mrc_plot(const struct mrc_curve *c, const char *file)
{
	static const char script[] =
		"import sys\n"
		"import matplotlib\n"
		"matplotlib.use('Agg')\n"
		"import matplotlib.pyplot as plt\n"
		"out, title = sys.argv[1], sys.argv[2]\n"
		"xs, ys = [], []\n"
		"for line in sys.stdin:\n"
		"    x, y = line.split()\n"
		"    xs.append(float(x))\n"
		"    ys.append(float(y))\n"
		"fig, ax = plt.subplots(figsize=(7, 4))\n"
		"ax.plot(xs, ys, color='tab:blue')\n"
		"ax.set_xlabel('extra memory (MiB)')\n"
		"ax.set_ylabel('predicted swap-ins per second')\n"
		"ax.set_title(title)\n"
		"ax.set_ylim(bottom=0)\n"
		"ax.grid(True, alpha=0.3)\n"
		"fig.tight_layout()\n"
		"fig.savefig(out, dpi=100)\n";
	double secs = c->m.window_ns / 1e9, max = mrc_max_distance(c), x;
	char title[PATH_MAX + 64], tmp[] = "/tmp/tesseractctl-plot-XXXXXX";
	int fd, pipefd[2], status;
	FILE *f, *py;
	pid_t pid;

	fd = mkstemp(tmp);
	f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f) {
		err("plot: %s", strerror(errno));
		return -1;
	}
	fputs(script, f);
	fclose(f);
	/*
	 * No shell: cgroup names are chosen by whoever may create cgroups
	 * (delegated subtrees), and must not become commands run as root.
	 */
	snprintf(title, sizeof(title), "miss-ratio curve of cgroup %s",
		 cgroup_path(c->m.cgroup_id));
	if (pipe(pipefd)) {
		err("plot: %s", strerror(errno));
		unlink(tmp);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		dup2(pipefd[0], STDIN_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		execlp("python3", "python3", tmp, file, title, (char *)NULL);
		_exit(127);
	}
	close(pipefd[0]);
	py = pid < 0 ? NULL : fdopen(pipefd[1], "w");
	if (!py) {
		err("plot: cannot run python3: %s", strerror(errno));
		close(pipefd[1]);
		if (pid > 0)
			waitpid(pid, NULL, 0);
		unlink(tmp);
		return -1;
	}
	if (secs <= 0)
		secs = 1;
	for (x = 0; x <= max * 1.05; x += max > 400 ? max / 400 : 1)
		fprintf(py, "%f %f\n", x / MIB_PAGES,
			mrc_misses_at(c, x) / secs);
	fclose(py);
	status = -1;
	waitpid(pid, &status, 0);
	unlink(tmp);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		err("plot: python3 with matplotlib failed (status %d)", status);
		return -1;
	}
	return 0;
}

static const char mrc_usage[] =
	"usage: tesseractctl mrc [--step MIB] [--plot FILE] [--reset] [CGROUP]\n"
	"\n"
	"The miss-ratio curve of a cgroup, measured by /dev/tsswap0: how many\n"
	"swap-ins per second it would still have with more memory. Each\n"
	"swap-in is counted at its eviction distance, the cgroup's pages that\n"
	"went to swap after it and were still there: with that much more\n"
	"memory it would have been a hit. The counts cover the last one to\n"
	"two windows of the module parameter mrc_window_s.\n"
	"\n"
	"CGROUP is a cgroup v2 path (under /sys/fs/cgroup, or absolute) or a\n"
	"cgroup id. Without it, every cgroup with swap traffic is listed.\n"
	"\n"
	"  --step MIB   one table row every MIB of extra memory (default:\n"
	"               about 20 rows up to the largest distance)\n"
	"  --plot FILE  also draw the curve into FILE (PNG; needs python3\n"
	"               with matplotlib)\n"
	"  --reset      clear the curve after reading it\n"
	"\n"
	"Exit status: 0, 1 if the cgroup has no curve or the module cannot be\n"
	"asked, 64 for a bad command line.\n";

static int cmd_mrc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "step", required_argument, NULL, 's' },
		{ "plot", required_argument, NULL, 'p' },
		{ "reset", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *plot = NULL;
	struct mrc_curve c;
	double step = 0, secs, max, x, now_rate;
	__u32 flags = 0;
	__u64 id = 0;
	int opt, fd, ret;
	char *end;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			step = strtod(optarg, &end);
			if (*end || !(step > 0)) {
				err("--step %s: not a positive number of MiB",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		case 'p':
			plot = optarg;
			break;
		case 'r':
			flags |= TESSERACT_MRC_RESET;
			break;
		case 'h':
			fputs(mrc_usage, stdout);
			return 0;
		default:
			fputs(mrc_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc - 1 || (optind == argc && plot)) {
		fputs(mrc_usage, stderr);
		return EXIT_USAGE;
	}
	if (optind == argc - 1 && cgroup_id_of(argv[optind], &id))
		return EXIT_USAGE;
	fd = ctl_open(flags & TESSERACT_MRC_RESET ? O_RDWR : O_RDONLY);
	if (fd < 0)
		return EXIT_FAIL;

	if (optind == argc) {
		/* Every tracked group, by id. */
		for (id = 0; !(ret = mrc_get(fd, id, flags | TESSERACT_MRC_NEXT,
					     &c)); id = c.m.cgroup_id)
			mrc_summary(&c);
		close(fd);
		if (ret == -ENOENT)
			return 0;
		err("%s", ret == -EOPNOTSUPP ?
		    "miss-ratio curves are off (module parameter mrc=0)" :
		    strerror(-ret));
		return EXIT_FAIL;
	}

	ret = mrc_get(fd, id, flags, &c);
	close(fd);
	if (ret) {
		if (ret == -ENOENT)
			err("cgroup %s has no curve: it never swapped to /dev/tsswap0",
			    argv[optind]);
		else if (ret == -EOPNOTSUPP)
			err("miss-ratio curves are off (module parameter mrc=0)");
		else
			err("%s", strerror(-ret));
		return EXIT_FAIL;
	}
	mrc_summary(&c);
	secs = c.m.window_ns > 0 ? c.m.window_ns / 1e9 : 1;
	max = mrc_max_distance(&c) / MIB_PAGES;
	if (!step)
		step = nice_step(max > 0 ? max : 1, MRC_ROWS);
	now_rate = c.m.faults / secs;
	printf("%12s  %14s  %9s\n", "extra MiB", "swap-ins/s", "of now");
	for (x = 0; x <= max + step / 2; x += step) {
		double rate = mrc_misses_at(&c, x * MIB_PAGES) / secs;

		printf("%12.1f  %14.2f  %8.1f%%\n", x, rate,
		       now_rate > 0 ? 100 * rate / now_rate : 0);
	}
	if (plot && mrc_plot(&c, plot))
		return EXIT_FAIL;
	return 0;
}

static const char usage[] =
	"usage: tesseractctl COMMAND [OPTIONS] DEVICE|DISK-ID\n"
	"\n"
	"Format, check and inspect the store of tesseract on its backing\n"
	"device; show and flatten guest disks of the loaded module.\n"
	"\n"
	"  format [--journal-blocks N] [--force] DEVICE\n"
	"                 write a new, empty store\n"
	"  check DEVICE   offline consistency check (the exit status says\n"
	"                 what is wrong)\n"
	"  dump DEVICE    print the superblock, checkpoints, journal and\n"
	"                 references\n"
	"  disk DISK-ID   a guest disk's state: attached, references, what\n"
	"                 the cleaner and the compactor did\n"
	"  disk forget DISK-ID\n"
	"                 drop a detached disk's references and free their\n"
	"                 blocks\n"
	"  flatten [-q] DISK-ID\n"
	"                 copy a disk's referenced blocks back into its\n"
	"                 image and drop the references\n"
	"  mrc [--step MIB] [--plot FILE] [CGROUP]\n"
	"                 a cgroup's miss-ratio curve: swap-ins per second\n"
	"                 it would have with more memory\n"
	"\n"
	"'tesseractctl COMMAND --help' describes a command; see also\n"
	"tesseractctl(8).\n";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (~ts_crc32c(~0U, "123456789", 9) != 0xe3069283) {
		err("internal error: CRC-32C self-test failed");
		return 1;
	}
	if (!strcmp(cmd, "format"))
		return cmd_format(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return cmd_store(argc - 1, argv + 1, false);
	if (!strcmp(cmd, "dump"))
		return cmd_store(argc - 1, argv + 1, true);
	if (!strcmp(cmd, "disk"))
		return cmd_disk(argc - 1, argv + 1);
	if (!strcmp(cmd, "flatten"))
		return cmd_flatten(argc - 1, argv + 1);
	if (!strcmp(cmd, "mrc"))
		return cmd_mrc(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (*cmd)
		err("unknown command '%s'", cmd);
	fputs(usage, stderr);
	return EXIT_USAGE;
}
