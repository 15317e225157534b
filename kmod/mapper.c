// SPDX-License-Identifier: GPL-2.0
/*
 * The swap mapper: a page swapped out to /dev/tsswap0 whose bytes are those
 * of a block X of an attached guest disk's image maps its slot to (disk, X)
 * and is not written; its swap-in reads X from the image. The argument for
 * why a mapped slot always swaps in with the bytes its page had is in
 * Documentation/swap-mapper.rst (invariants M1 to M6); the comments below
 * name the invariant each piece keeps.
 *
 * Three things are kept, all under one spinlock (mapper->lock, taken
 * before store->lock, interrupts off: swap_slot_free_notify may run with
 * them off):
 *
 *  - fingerprints: block X of disk d held these bytes (xxh64 to find them,
 *    SHA-256 to decide) when the guest read it into a page of this memory
 *    cgroup, and no write of X has begun since (a write frees them);
 *  - per disk, generations of writes: counters of writes begun and running
 *    per bucket of blocks, which tell a read, a window or a swap-out that
 *    a write of X may have run meanwhile, or runs now (M2, M6);
 *  - the slots mapped to images: slot -> (disk, X) and the xxh64 of the
 *    page, and back, so that a write of X first gives every slot mapped
 *    to it a copy in the store (M3), and a swap-in checks what it read;
 *  - per disk, the swap-ins reading it now, which a write waits for (M4).
 *
 * Nothing of this is journalled: swap does not survive a reboot.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <crypto/hash.h>
#include <crypto/sha2.h>
#include <linux/bio.h>
#include <linux/cgroup.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/hash.h>
#include <linux/highmem.h>
#include <linux/magic.h>
#include <linux/memcontrol.h>
#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/moduleparam.h>
#include <linux/random.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xxhash.h>

#include "tesseract.h"
#include "trace.h"

/* Disks the mapper follows at once; more attach without it. */
#define TS_MAP_MAX_DISKS	64

/* Buckets of blocks per disk that write generations are counted in. */
#define TS_MAP_GEN_SHIFT	10
#define TS_MAP_GENS		BIT(TS_MAP_GEN_SHIFT)

/* A slot's mapping: the disk's index + 1 above, the block below. */
#define TS_MAP_X_BITS		48
#define TS_MAP_X_MASK		GENMASK_ULL(TS_MAP_X_BITS - 1, 0)

#define TS_MAP_NONE		U32_MAX

/* Candidates a swap-out compares its SHA-256 with, at most. */
#define TS_MAP_CANDIDATES	4

/*
 * Entries of a fingerprint bucket looked at, at most, under the lock with
 * interrupts off: many blocks may share bytes (and so a bucket), and the
 * bucket is keyed so that a guest cannot choose it. A bucket of blocks
 * takes no entry beyond this many, so that a write walks no more.
 */
#define TS_MAP_WALK_MAX		16

/* Slots, or fingerprints, of a table scanned in one hold of the lock. */
#define TS_MAP_SCAN_BATCH	4096

/* Image reads of mapped slots kept in reserve for swap-in under pressure. */
#define TS_MAP_READ_POOL	16

/* Blocks of a copy range looked up one by one; more: scan the slots. */
#define TS_MAP_COPY_LOOKUP_MAX	4096

/*
 * Slots a copy takes over, and slots of a pair bucket walked, in one hold
 * of the lock (irqs off).
 */
#define TS_MAP_COPY_BATCH	64
#define TS_MAP_WALK_BATCH	256

/*
 * Blocks a swap-in reads from an image at once (M6): the one it needs and
 * those after it, which the swap-ins of a range the guest read in order
 * ask for next, whatever order the host swapped the range out in. A read
 * that goes on where the last one ended takes the most; any other, few,
 * so that scattered swap-ins do not read much more than they need.
 */
#define TS_MAP_WINDOW		32
#define TS_MAP_WINDOW_START	4

bool ts_swap_mapper_param;

module_param_cb(swap_mapper, &ts_param_ops_bool, &ts_swap_mapper_param, 0444);
__MODULE_PARM_TYPE(swap_mapper, "bool");
MODULE_PARM_DESC(swap_mapper,
		 "Map swap-outs of pages read unchanged from a guest disk to the disk's blocks instead of writing them (default off)");

#define TS_MAP_MIB_DEFAULT	16
#define TS_MAP_MIB_MAX		4096

static unsigned int swap_mapper_mib = TS_MAP_MIB_DEFAULT;

static int swap_mapper_mib_set(const char *val, const struct kernel_param *kp)
{
	unsigned int mib;
	int ret;

	ret = kstrtouint(val, 0, &mib);
	if (ret) {
		pr_err("swap_mapper_mib=%s: not a number\n", val);
		return ret;
	}
	if (!mib || mib > TS_MAP_MIB_MAX) {
		pr_err("swap_mapper_mib=%u: not between 1 and %u\n", mib,
		       TS_MAP_MIB_MAX);
		return -ERANGE;
	}
	*(unsigned int *)kp->arg = mib;
	return 0;
}

static const struct kernel_param_ops swap_mapper_mib_ops = {
	.set = swap_mapper_mib_set,
	.get = param_get_uint,
};

module_param_cb(swap_mapper_mib, &swap_mapper_mib_ops, &swap_mapper_mib, 0444);
MODULE_PARM_DESC(swap_mapper_mib,
		 "Memory for the swap mapper's fingerprints in MiB, 1 to 4096; the oldest go first (default 16)");

/*
 * Block x of a disk held bytes of this xxh64 and SHA-256 when the guest
 * read it into a page charged to owner, a memory cgroup (its id), and
 * holds them still: a write of x frees the entry when it begins (M2).
 */
struct ts_fp {
	u64 xxh;
	u64 x;
	u64 owner;
	u32 next, prev;			/* in its bucket, or TS_MAP_NONE */
	u32 block_next, block_prev;	/* in its bucket of blocks */
	u32 incarnation;		/* of the disk's index */
	u16 disk;			/* index + 1; 0: the entry is free */
	u8 sha[SHA256_DIGEST_SIZE];
};

/*
 * Blocks [first, first + nr) of an image, as a swap-in read them (M6).
 * Block first + i holds those bytes still while the write generation of
 * its bucket is gen[i] and the disk's incarnation is the window's: no
 * write of it was running when the read began, and none has begun since.
 * The pages are filled and read under @lock; first, nr, gen and
 * incarnation change under mapper->lock too, which a swap-in holds to
 * look.
 */
struct ts_map_window {
	struct mutex lock;		/* serializes fills and reads of pages */
	u64 first;
	unsigned int nr;
	u32 incarnation;
	unsigned int span;		/* blocks the last fill asked for */
	u64 next;			/* the block after the last read */
	u64 gen[TS_MAP_WINDOW];
	struct page *pages[TS_MAP_WINDOW];	/* from the first fill on */
	struct bio_vec bv[TS_MAP_WINDOW];	/* of the pages */
};

/* A disk's image, shared by the attachments of one inode. */
struct ts_map_disk {
	struct file *image;
	struct inode *inode;		/* of image->f_mapping */
	unsigned int users;		/* attachments; under mapper->lock */
	unsigned int index;
	u32 incarnation;
	bool dead;			/* detaching: nothing maps to it */
	/*
	 * Detaches copying its slots now: more than one if it was attached
	 * again and detached while the first still copied.
	 */
	unsigned int removers;
	struct mutex copy_lock;		/* one copy of its blocks at a time */
	unsigned long nr_mapped;	/* slots mapped to it */
	struct list_head reads;		/* swap-ins reading it now */
	u64 begun[TS_MAP_GENS];		/* writes begun, per bucket */
	u32 running[TS_MAP_GENS];	/* writes not yet ended, per bucket */
	struct ts_map_window window;
};

struct ts_map_stats {
	atomic64_t mapped;		/* swap-outs mapped, not written */
	atomic64_t image_reads;		/* swap-ins served from an image */
	atomic64_t image_read_ios;	/* the reads of images they took */
	atomic64_t image_read_errors;
	atomic64_t mismatches;		/* ... that read other bytes */
	atomic64_t copies;		/* blocks copied before a write */
	atomic64_t copied_slots;	/* slots those copies served */
	atomic64_t copy_errors;		/* writes failed: no copy made */
	atomic64_t fps_added;
	atomic64_t fps_evicted;		/* overwritten, oldest first */
	atomic64_t stale;		/* matches refused: X was written */
	atomic64_t hash_ns;		/* CPU time spent hashing */
};

struct ts_mapper {
	struct ts_swapdev_mapper ops;	/* what the swap device calls */
	struct ts_store *store;
	struct ts_swapdev *swapdev;
	u64 nr_slots;

	spinlock_t lock;		/* everything below; see the top */

	/*
	 * Slots mapped to images: slot_map[slot] (written with release, see
	 * ts_swapdev_read_mapped()), the xxh64 of the slot's page, and back
	 * by (disk, x).
	 */
	u64 *slot_map;			/* encoded (disk, x), 0: unmapped */
	u64 *slot_xxh;
	u32 *slot_next, *slot_prev;	/* in its pair bucket */
	u32 *pair_head;
	u32 pair_shift;
	u64 pair_seed;			/* keys the buckets: see there */
	unsigned long nr_mapped;
	/* A write waits here for the swap-ins of its blocks (M4). */
	wait_queue_head_t read_wq;

	struct ts_fp *fps;
	u32 nr_fps, fp_cursor, nr_fps_used;
	u32 *fp_head;			/* by xxh64 */
	u32 *fp_block_head;		/* by (disk, x) */
	u32 fp_shift;
	u64 fp_seed;			/* keys the xxh64, and so the buckets */
	u64 fp_block_seed;
	/*
	 * SHA-256 through the crypto API, which picks the CPU's fastest
	 * (SHA-NI, AVX2, ...); NULL: the library's generic sha256().
	 */
	struct crypto_shash *sha_tfm;

	struct ts_map_disk *disks[TS_MAP_MAX_DISKS];
	u32 incarnations;

	mempool_t *read_pool;
	mempool_t *page_pool;		/* their bounce pages */
	struct workqueue_struct *wq;
	/* Lets go of detached images whose last slot went. */
	struct work_struct reap_work;
	struct dentry *debugfs, *debugfs_delay_reads, *debugfs_delay_copies;
	/*
	 * Fault injection for tests (debugfs swap_mapper_delay_reads_ms and
	 * _copies_ms): a swap-in sleeps this long before it reads the image,
	 * so that a test can write the block meanwhile (M4); a copy, before
	 * it reads its block, so that a test can attach the image while a
	 * detach copies.
	 */
	u32 delay_reads_ms, delay_copies_ms;
	struct ts_map_stats stats;
};

/* One swap-in of a mapped slot, read from the image by a worker. */
struct ts_map_read {
	struct work_struct work;
	struct list_head node;		/* in md->reads, under mapper->lock */
	struct ts_mapper *mapper;
	struct ts_map_disk *md;
	struct bio *upper;
	struct bvec_iter iter;		/* the slot's 4 KiB in upper */
	u64 slot;
	u64 x;
	u64 xxh;			/* what the page held */
};

static struct ts_mapper *ts_mapper;

static u64 ts_map_encode(const struct ts_map_disk *md, u64 x)
{
	return (u64)(md->index + 1) << TS_MAP_X_BITS | x;
}

static struct ts_map_disk *ts_map_decode(struct ts_mapper *mapper, u64 code,
					 u64 *x)
{
	*x = code & TS_MAP_X_MASK;
	return mapper->disks[(code >> TS_MAP_X_BITS) - 1];
}

static u32 ts_map_gen_bucket(u64 x)
{
	return hash_64(x, TS_MAP_GEN_SHIFT);
}

/*
 * Keyed, so that a guest cannot choose blocks whose slots share a bucket;
 * all slots mapped to one block share one, however long.
 */
static u32 ts_map_pair_bucket(struct ts_mapper *mapper, u64 code)
{
	return hash_64(code ^ mapper->pair_seed, mapper->pair_shift);
}

static u32 *ts_map_fp_bucket(struct ts_mapper *mapper, u64 xxh)
{
	return &mapper->fp_head[hash_64(xxh, mapper->fp_shift)];
}

/*
 * By the entry's disk field (index + 1), not its ts_map_disk: an entry may
 * outlive the attachment it was taken in until a purge or reuse frees it.
 * Keyed too: a guest must not make a write walk a long bucket.
 */
static u32 *ts_map_fp_block_bucket(struct ts_mapper *mapper, u16 disk, u64 x)
{
	return &mapper->fp_block_head[hash_64(((u64)disk << TS_MAP_X_BITS | x) ^
					      mapper->fp_block_seed,
					      mapper->fp_shift)];
}

static u64 ts_map_xxh(struct ts_mapper *mapper, const void *data)
{
	return xxh64(data, TS_BLOCK_SIZE, mapper->fp_seed);
}

/*
 * The fastest SHA-256 of the crypto API: "sha256" alone finds the generic
 * one, built in, and loads no module with a faster one; asked for by
 * driver name, the architecture's modules load (x86: sha256_ssse3).
 */
static struct crypto_shash *ts_map_sha_tfm(void)
{
	static const char * const drivers[] = {
		"sha256-ni", "sha256-avx2", "sha256-avx", "sha256-ssse3",
		"sha256",
	};
	struct crypto_shash *tfm;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(drivers); i++) {
		tfm = crypto_alloc_shash(drivers[i], 0, 0);
		if (!IS_ERR(tfm))
			return tfm;
	}
	return NULL;
}

static void ts_map_sha256(struct ts_mapper *mapper, const void *data,
			  u8 *out)
{
	if (!mapper->sha_tfm ||
	    crypto_shash_tfm_digest(mapper->sha_tfm, data, TS_BLOCK_SIZE, out))
		sha256(data, TS_BLOCK_SIZE, out);
}

/* The memory cgroup a folio is charged to, by id (ids are not reused). */
static u64 ts_map_owner(struct folio *folio)
{
	struct mem_cgroup *memcg = folio_memcg(folio);

	return memcg ? cgroup_id(memcg->css.cgroup) : 0;
}

/* Under mapper->lock: add @delta to the writes running over [first, last]. */
static void ts_map_gens_locked(struct ts_map_disk *md, u64 first, u64 last,
			       int delta)
{
	u64 x;
	u32 b;

	if (last - first >= TS_MAP_GENS - 1) {
		for (b = 0; b < TS_MAP_GENS; b++) {
			md->begun[b] += delta > 0;
			md->running[b] += delta;
		}
		return;
	}
	for (x = first; x <= last; x++) {
		b = ts_map_gen_bucket(x);
		md->begun[b] += delta > 0;
		md->running[b] += delta;
	}
}

/*
 * Under mapper->lock: @slot maps to no image any more. Its store block,
 * if a copy gave it one, is set already. Returns its image.
 */
static struct ts_map_disk *ts_map_unlink_locked(struct ts_mapper *mapper,
						u64 slot)
{
	u64 code = mapper->slot_map[slot], x;
	u32 next = mapper->slot_next[slot], prev = mapper->slot_prev[slot];
	u32 *link = prev == TS_MAP_NONE ?
		&mapper->pair_head[ts_map_pair_bucket(mapper, code)] :
		&mapper->slot_next[prev];
	struct ts_map_disk *md;

	/*
	 * Doubly linked: a bucket may hold a million slots of one block. A
	 * broken chain would hide mapped slots from the copies before a
	 * write (stale data), so check it as list debugging does; an
	 * unlinked slot points nowhere.
	 */
	WARN_ONCE(*link != slot || (next != TS_MAP_NONE &&
				    mapper->slot_prev[next] != slot),
		  "swap mapper: slot %llu's pair chain is broken\n", slot);
	*link = next;
	if (next != TS_MAP_NONE)
		mapper->slot_prev[next] = prev;
	mapper->slot_next[slot] = TS_MAP_NONE;
	mapper->slot_prev[slot] = TS_MAP_NONE;
	md = ts_map_decode(mapper, code, &x);
	md->nr_mapped--;
	mapper->nr_mapped--;
	/*
	 * Pairs with the acquire in ts_map_read(): a swap-in that finds the
	 * slot unmapped finds the store block a copy gave it before.
	 */
	smp_store_release(&mapper->slot_map[slot], 0);
	return md;
}

/* Under mapper->lock: nothing holds a detached image any more. */
static bool ts_map_disk_unused_locked(struct ts_map_disk *md)
{
	return md->dead && !md->users && !md->removers && !md->nr_mapped &&
	       list_empty(&md->reads);
}

/* Under mapper->lock: map @slot to @code. */
static void ts_map_link_locked(struct ts_mapper *mapper, u64 slot,
			       struct ts_map_disk *md, u64 code, u64 xxh)
{
	u32 *head = &mapper->pair_head[ts_map_pair_bucket(mapper, code)];

	mapper->slot_xxh[slot] = xxh;
	mapper->slot_map[slot] = code;
	mapper->slot_next[slot] = *head;
	mapper->slot_prev[slot] = TS_MAP_NONE;
	if (*head != TS_MAP_NONE)
		mapper->slot_prev[*head] = slot;
	*head = slot;
	md->nr_mapped++;
	mapper->nr_mapped++;
}

/*
 * A slot is freed, discarded, written as no swap-out, or its page begins
 * another swap-out: it maps to no image, and gives back the store block it
 * kept in reserve for its copy.
 */
static void ts_map_forget(struct ts_swapdev_mapper *ops, u64 slot)
{
	struct ts_mapper *mapper = container_of(ops, struct ts_mapper, ops);
	struct ts_map_disk *md = NULL;
	unsigned long flags;
	bool reap = false;

	if (slot >= mapper->nr_slots || !READ_ONCE(mapper->slot_map[slot]))
		return;
	spin_lock_irqsave(&mapper->lock, flags);
	if (mapper->slot_map[slot]) {
		md = ts_map_unlink_locked(mapper, slot);
		ts_swapdev_unreserve(mapper->swapdev, slot);
		reap = ts_map_disk_unused_locked(md);
	}
	spin_unlock_irqrestore(&mapper->lock, flags);
	if (reap)
		queue_work(mapper->wq, &mapper->reap_work);
}

/*
 * Under mapper->lock: the fingerprint @e still says what block x of its
 * disk holds (M2): its disk is the same attachment and follows it, and no
 * write of x runs now. A write that began since the read freed the entry
 * (ts_map_fp_drop_range()); until that write ends, its bucket's running
 * count covers the entries it has not reached yet.
 */
static struct ts_map_disk *ts_map_fp_valid_locked(struct ts_mapper *mapper,
						  const struct ts_fp *e)
{
	struct ts_map_disk *md = mapper->disks[e->disk - 1];

	if (!md || md->dead || md->incarnation != e->incarnation)
		return NULL;
	if (md->running[ts_map_gen_bucket(e->x)])
		return NULL;
	return md;
}

/*
 * A swap-out of @page to @slot: map the slot to a disk block that holds
 * the page's bytes, if a fingerprint proves one (M1, M2), instead of
 * writing it. The folio is under writeback, no longer locked (the swap
 * code unlocks it before it submits the bio): a fault may map it again and
 * a write change it, even between the two hashes. Then the folio is dirty
 * and stays in the swap cache, where swap-ins find it, until it is written
 * again, whose hook forgets this mapping first, or its slot is freed. True
 * if the slot is mapped; no I/O is needed then.
 *
 * Only anonymous pages: a shmem folio here has left its file already
 * (shmem_writepage()), and it might be a page of an image on tmpfs, which
 * must never map to its own block. KSM pages neither: one backs pages of
 * several processes, of several guests.
 */
static bool ts_map_swap_out(struct ts_swapdev_mapper *ops, struct page *page,
			    u64 slot)
{
	struct ts_mapper *mapper = container_of(ops, struct ts_mapper, ops);
	struct folio *folio = page_folio(page);
	u32 cand[TS_MAP_CANDIDATES], i, nr = 0, walked = 0, e_idx;
	u8 sha[SHA256_DIGEST_SIZE];
	struct ts_map_disk *md;
	bool mapped = false, stale = false;
	unsigned long flags;
	struct ts_fp *e;
	u64 t0, xxh, owner;
	void *data;

	if (slot >= mapper->nr_slots)
		return false;
	/* Whatever happens now, its earlier mapping is over. */
	ts_map_forget(ops, slot);
	if (!READ_ONCE(mapper->nr_fps_used) || !folio_test_anon(folio) ||
	    folio_test_ksm(folio))
		return false;

	owner = ts_map_owner(folio);
	t0 = ktime_get_ns();
	data = kmap_local_page(page);
	xxh = ts_map_xxh(mapper, data);

	spin_lock_irqsave(&mapper->lock, flags);
	for (e_idx = *ts_map_fp_bucket(mapper, xxh);
	     e_idx != TS_MAP_NONE && nr < TS_MAP_CANDIDATES &&
	     walked++ < TS_MAP_WALK_MAX;
	     e_idx = mapper->fps[e_idx].next) {
		e = &mapper->fps[e_idx];
		if (e->xxh != xxh || e->owner != owner)
			continue;
		/* A stale one is not worth a SHA-256; checked again after. */
		if (ts_map_fp_valid_locked(mapper, e))
			cand[nr++] = e_idx;
		else
			stale = true;
	}
	spin_unlock_irqrestore(&mapper->lock, flags);
	if (nr)
		ts_map_sha256(mapper, data, sha);
	kunmap_local(data);
	atomic64_add(ktime_get_ns() - t0, &mapper->stats.hash_ns);
	if (!nr)
		goto out;

	spin_lock_irqsave(&mapper->lock, flags);
	for (i = 0; i < nr && !mapped; i++) {
		e = &mapper->fps[cand[i]];
		/* The entry may have been reused meanwhile: check it all. */
		if (!e->disk || e->xxh != xxh || e->owner != owner ||
		    memcmp(e->sha, sha, sizeof(sha)))
			continue;
		md = ts_map_fp_valid_locked(mapper, e);
		if (!md) {
			stale = true;
			continue;
		}
		/* A free block in reserve for the copy a write of x needs. */
		if (!ts_swapdev_slot_to_image(mapper->swapdev, slot))
			break;
		ts_map_link_locked(mapper, slot, md, ts_map_encode(md, e->x),
				   xxh);
		trace_tesseract_swap_map(slot, md->index, e->x);
		mapped = true;
	}
	spin_unlock_irqrestore(&mapper->lock, flags);
	if (mapped)
		atomic64_inc(&mapper->stats.mapped);
out:
	if (!mapped && stale)
		atomic64_inc(&mapper->stats.stale);
	return mapped;
}

/* Copy the 4 KiB of @iter in @bio from @src. */
static void ts_map_copy_to_bio(struct bio *bio, struct bvec_iter iter,
			       const void *src)
{
	unsigned int done = 0, len;
	struct bio_vec bv;

	while (done < TS_BLOCK_SIZE) {
		bv = bio_iter_iovec(bio, iter);
		len = min_t(unsigned int, TS_BLOCK_SIZE - done, bv.bv_len);
		memcpy_to_page(bv.bv_page, bv.bv_offset, src + done, len);
		bio_advance_iter_single(bio, &iter, len);
		done += len;
	}
}

/*
 * Read blocks [@x, @x + @nr) of @md's image into the pages of @bv, for a
 * swap-in or a copy: from any task's worker, so through the file's own
 * read_iter, as the loop driver does, and not vfs_iocb_iter_read(): its
 * fsnotify permission event could wait for a listener that waits for this
 * very swap-in. A block device is always read direct, however it was
 * opened: a buffered read of it takes its inode's i_rwsem, which a
 * buffered guest write holds while it faults the guest's buffer in, and
 * that buffer may be the page being swapped in; a direct read takes no
 * lock, writes back the range's dirty cache first, and cannot leave the
 * older bytes of a block being written in the cache either. Returns the
 * number of whole blocks read, at least one (fewer than @nr at the end of
 * the image), or -errno.
 */
static int ts_map_read_blocks(struct ts_map_disk *md, u64 x,
			      struct bio_vec *bv, unsigned int nr)
{
	struct file *image = md->image;
	struct iov_iter iter;
	struct kiocb kiocb;
	ssize_t ret;

	iov_iter_bvec(&iter, ITER_DEST, bv, nr, (size_t)nr << TS_BLOCK_SHIFT);
	ts_init_image_kiocb(&kiocb, image, x << TS_BLOCK_SHIFT);
	if (S_ISBLK(md->inode->i_mode))
		kiocb.ki_flags |= IOCB_DIRECT;
	else
		kiocb.ki_flags &= ~IOCB_DIRECT;
	ret = image->f_op->read_iter(&kiocb, &iter);
	if (ret < 0)
		return ret;
	return ret < TS_BLOCK_SIZE ? -EIO : ret >> TS_BLOCK_SHIFT;
}

static int ts_map_read_image(struct ts_map_disk *md, u64 x, struct page *page)
{
	struct bio_vec bv;
	int ret;

	bvec_set_page(&bv, page, TS_BLOCK_SIZE, 0);
	ret = ts_map_read_blocks(md, x, &bv, 1);
	return ret < 0 ? ret : 0;
}

/*
 * Under mapper->lock: the window of @md holds block @x as the image has it
 * now (M6).
 */
static bool ts_map_window_holds_locked(struct ts_map_disk *md, u64 x)
{
	struct ts_map_window *w = &md->window;

	return w->nr && x >= w->first && x - w->first < w->nr &&
	       w->incarnation == md->incarnation && !md->dead &&
	       md->begun[ts_map_gen_bucket(x)] == w->gen[x - w->first];
}

static bool ts_map_window_holds(struct ts_mapper *mapper,
				struct ts_map_disk *md, u64 x)
{
	unsigned long flags;
	bool held;

	spin_lock_irqsave(&mapper->lock, flags);
	held = ts_map_window_holds_locked(md, x);
	spin_unlock_irqrestore(&mapper->lock, flags);
	return held;
}

/*
 * Under mapper->lock: a read of the window from @x on follows the last
 * one, less than a window after where it ended, or rereads part of what
 * it asked for: swap-ins in order (readahead's may come a few at once, and
 * some of them alone).
 */
static bool ts_map_window_in_order_locked(struct ts_map_window *w, u64 x)
{
	return (w->next != U64_MAX && x >= w->next &&
		x - w->next < TS_MAP_WINDOW) ||
	       (x >= w->first && x - w->first < w->span);
}

/*
 * Under w->lock: the window's pages, allocated at its first fill; false
 * if there is no memory for them (the swap-in reads its block alone).
 */
static bool ts_map_window_pages(struct ts_map_window *w)
{
	unsigned int i;

	for (i = 0; i < TS_MAP_WINDOW; i++) {
		if (w->pages[i])
			continue;
		w->pages[i] = alloc_page(GFP_NOIO | __GFP_NORETRY |
					 __GFP_NOWARN);
		if (!w->pages[i])
			return false;
		bvec_set_page(&w->bv[i], w->pages[i], TS_BLOCK_SIZE, 0);
	}
	return true;
}

/*
 * Under w->lock: read the image from @x on into the window, as far as no
 * write is running on a block; false if none could be (the image is
 * detached, a write is running on x's bucket, or the read failed).
 */
static bool ts_map_window_fill(struct ts_mapper *mapper,
			       struct ts_map_disk *md, u64 x)
{
	struct ts_map_window *w = &md->window;
	u64 size = i_size_read(md->inode) >> TS_BLOCK_SHIFT;
	unsigned int nr, i = 0;
	unsigned long flags;
	int ret;
	u32 b;

	if (x >= size)
		return false;
	spin_lock_irqsave(&mapper->lock, flags);
	nr = ts_map_window_in_order_locked(w, x) ? TS_MAP_WINDOW :
						   TS_MAP_WINDOW_START;
	nr = min_t(u64, nr, size - x);
	for (i = 0; i < nr && !md->dead; i++) {
		b = ts_map_gen_bucket(x + i);
		if (md->running[b])
			break;
		w->gen[i] = md->begun[b];
	}
	w->first = x;
	w->nr = 0;
	w->span = i;
	w->incarnation = md->incarnation;
	spin_unlock_irqrestore(&mapper->lock, flags);
	if (!i)
		return false;

	ret = ts_map_read_blocks(md, x, w->bv, i);
	atomic64_inc(&mapper->stats.image_read_ios);
	spin_lock_irqsave(&mapper->lock, flags);
	if (ret > 0) {
		w->nr = ret;
		w->next = x + ret;
	} else {
		/* The next fill reads few blocks, not a failing range. */
		w->span = 0;
		w->next = U64_MAX;
	}
	spin_unlock_irqrestore(&mapper->lock, flags);
	return ret > 0;
}

/*
 * Block @x of @md's image into @page for a swap-in: from the window, read
 * anew from x on if it does not hold x. Alone if the image is no block
 * device (a file's reads go through its page cache, which reads ahead on
 * its own), if another swap-in fills the window with blocks far from x
 * now (they run in parallel), or if there is no memory for the window.
 */
static int ts_map_read_for_swap_in(struct ts_mapper *mapper,
				   struct ts_map_disk *md, u64 x,
				   struct page *page)
{
	struct ts_map_window *w = &md->window;
	bool near, held = false;
	unsigned long flags;

	if (!S_ISBLK(md->inode->i_mode))
		goto alone;
	if (!mutex_trylock(&w->lock)) {
		spin_lock_irqsave(&mapper->lock, flags);
		/* In what it reads, or what the next fill will. */
		near = x >= w->first &&
		       x - w->first < w->span + TS_MAP_WINDOW;
		spin_unlock_irqrestore(&mapper->lock, flags);
		if (!near)
			goto alone;
		mutex_lock(&w->lock);
	}
	if (!ts_map_window_pages(w))
		goto unlock;
	held = ts_map_window_holds(mapper, md, x) ||
	       (ts_map_window_fill(mapper, md, x) &&
		ts_map_window_holds(mapper, md, x));
	if (held)
		copy_highpage(page, w->pages[x - w->first]);
unlock:
	mutex_unlock(&w->lock);
	if (held)
		return 0;
alone:
	atomic64_inc(&mapper->stats.image_read_ios);
	return ts_map_read_image(md, x, page);
}

static void ts_map_read_work(struct work_struct *work)
{
	struct ts_map_read *rd = container_of(work, struct ts_map_read, work);
	struct ts_mapper *mapper = rd->mapper;
	u32 delay_ms = READ_ONCE(mapper->delay_reads_ms);
	struct ts_map_disk *md = rd->md;
	struct bio *upper = rd->upper;
	unsigned long flags;
	unsigned int noio;
	struct page *page;
	bool reap;
	int ret;

	if (unlikely(delay_ms))
		msleep(delay_ms);
	/* Memory for the read must not wait on swap I/O of this device. */
	noio = memalloc_noio_save();
	page = mempool_alloc(mapper->page_pool, GFP_NOIO);
	ret = ts_map_read_for_swap_in(mapper, md, rd->x, page);
	/*
	 * The bytes the page had, or an error: never other bytes, whoever
	 * wrote the image behind the module's back.
	 */
	if (!ret && ts_map_xxh(mapper, page_address(page)) != rd->xxh) {
		atomic64_inc(&mapper->stats.mismatches);
		pr_err_ratelimited("swap mapper: block %llu of a disk image changed behind the module's back: swap-in of slot %llu fails\n",
				   rd->x, rd->slot);
		ret = -EIO;
	}
	if (!ret)
		ts_map_copy_to_bio(upper, rd->iter, page_address(page));
	mempool_free(page, mapper->page_pool);
	memalloc_noio_restore(noio);
	trace_tesseract_swap_map_read(rd->slot, rd->x, ret);
	if (ret) {
		atomic64_inc(&mapper->stats.image_read_errors);
		upper->bi_status = BLK_STS_IOERR;
	} else {
		atomic64_inc(&mapper->stats.image_reads);
		ts_swapdev_mapped_read_done(mapper->swapdev, upper, rd->iter,
					    rd->slot);
	}
	spin_lock_irqsave(&mapper->lock, flags);
	list_del(&rd->node);
	reap = ts_map_disk_unused_locked(md);
	spin_unlock_irqrestore(&mapper->lock, flags);
	wake_up_all(&mapper->read_wq);
	if (reap)
		queue_work(mapper->wq, &mapper->reap_work);
	mempool_free(rd, mapper->read_pool);
	bio_endio(upper);
}

/*
 * A read of @slot at @iter of @upper: if the slot is mapped, read it from
 * the image, asynchronously (the upper bio completes when that is done),
 * and return true. The read joins its image's list under the lock that a
 * write takes to begin, so that the write waits for it before it changes
 * the block (M4).
 */
static bool ts_map_read(struct ts_swapdev_mapper *ops, struct bio *upper,
			struct bvec_iter iter, u64 slot)
{
	struct ts_mapper *mapper = container_of(ops, struct ts_mapper, ops);
	struct ts_map_read *rd;
	unsigned long flags;
	u64 code;

	if (slot >= mapper->nr_slots)
		return false;
	/* Unmapped: the block a copy gave it is seen (ts_swapdev_rw()). */
	if (!smp_load_acquire(&mapper->slot_map[slot]))
		return false;
	rd = mempool_alloc(mapper->read_pool, GFP_NOIO);
	spin_lock_irqsave(&mapper->lock, flags);
	code = mapper->slot_map[slot];
	if (!code) {
		spin_unlock_irqrestore(&mapper->lock, flags);
		mempool_free(rd, mapper->read_pool);
		return false;
	}
	rd->md = ts_map_decode(mapper, code, &rd->x);
	rd->xxh = mapper->slot_xxh[slot];
	list_add_tail(&rd->node, &rd->md->reads);
	spin_unlock_irqrestore(&mapper->lock, flags);

	INIT_WORK(&rd->work, ts_map_read_work);
	rd->mapper = mapper;
	rd->upper = upper;
	rd->iter = iter;
	rd->slot = slot;
	bio_inc_remaining(upper);
	queue_work(mapper->wq, &rd->work);
	return true;
}

/* True if a swap-in reads a block of [@first, @last] of @md now. */
static bool ts_map_reading(struct ts_mapper *mapper, struct ts_map_disk *md,
			   u64 first, u64 last)
{
	struct ts_map_read *rd;
	unsigned long flags;
	bool found = false;

	spin_lock_irqsave(&mapper->lock, flags);
	list_for_each_entry(rd, &md->reads, node) {
		if (rd->x >= first && rd->x <= last) {
			found = true;
			break;
		}
	}
	spin_unlock_irqrestore(&mapper->lock, flags);
	return found;
}

/*
 * Under mapper->lock: where a walk of pair bucket @b that stopped before
 * slot @s goes on, @s if it is still in the bucket, else the bucket's
 * head. Slots that a walk passed over stay behind it, or come back at the
 * head, where the walk starts again: it misses none of a block that no
 * slot can map to anew (a write of it runs).
 */
static u32 ts_map_walk_resume_locked(struct ts_mapper *mapper, u32 b, u32 s)
{
	u64 code;

	if (s == TS_MAP_NONE)
		return mapper->pair_head[b];
	code = mapper->slot_map[s];
	if (code && ts_map_pair_bucket(mapper, code) == b)
		return s;
	return mapper->pair_head[b];
}

/*
 * Whether a slot maps to @code, a block that no slot can map to anew: its
 * bucket walked TS_MAP_WALK_BATCH slots per hold of the lock (all slots
 * of one block share a bucket, and there may be a million). With @block,
 * the copy's store block is taken in the same hold of the lock as the
 * slot is found (near @x), so that its reservation, and so a free block,
 * is still there: slots freed meanwhile give theirs back (M3). *@block is
 * TS_NO_BLOCK if none is found.
 */
static bool ts_map_code_mapped_alloc(struct ts_mapper *mapper, u64 code,
				     u64 x, u32 *block)
{
	u32 b = ts_map_pair_bucket(mapper, code), s = TS_MAP_NONE, seen;
	unsigned long flags;
	bool found = false;

	if (block)
		*block = TS_NO_BLOCK;
	do {
		spin_lock_irqsave(&mapper->lock, flags);
		s = ts_map_walk_resume_locked(mapper, b, s);
		for (seen = 0; s != TS_MAP_NONE && seen < TS_MAP_WALK_BATCH;
		     seen++, s = mapper->slot_next[s]) {
			if (mapper->slot_map[s] == code) {
				found = true;
				break;
			}
		}
		/* The slot's reservation guarantees one: a bug if not. */
		if (found && block &&
		    WARN_ON_ONCE(!ts_swapdev_alloc_copy(mapper->swapdev, x,
							block)))
			*block = TS_NO_BLOCK;
		spin_unlock_irqrestore(&mapper->lock, flags);
		if (!found && s != TS_MAP_NONE)
			cond_resched();
	} while (!found && s != TS_MAP_NONE);
	return found;
}

static bool ts_map_code_mapped(struct ts_mapper *mapper, u64 code)
{
	return ts_map_code_mapped_alloc(mapper, code, 0, NULL);
}

/*
 * Give every slot mapped to block @x of @md its own copy in the store (M3):
 * read x once, write it to a store block that the slots' reservations
 * provide, and point the slots at it. x does not change meanwhile: the
 * caller's write has begun (no slot maps to it anew) and not yet started
 * its I/O. A slot whose page held other bytes than x now does (the image
 * was written behind the module's back) keeps its mapping, and its
 * swap-in fails rather than return them: *@foreign counts them.
 *
 * Copies of one image run one at a time: a second writer of x must find
 * the slots copied, not take a second block, which their reservations do
 * not provide. The slots go over to the copy a batch per hold of the
 * lock: a guest may read one block into a million pages.
 */
static int ts_map_copy_block(struct ts_mapper *mapper, struct ts_map_disk *md,
			     u64 x, unsigned int *foreign)
{
	u64 code = ts_map_encode(md, x), xxh;
	u32 b = ts_map_pair_bucket(mapper, code), block, s, next, seen;
	u32 delay_ms = READ_ONCE(mapper->delay_copies_ms);
	unsigned int nr = 0, batch;
	unsigned long flags;
	struct bio_vec bv;
	struct page *page;
	int ret = 0;

	*foreign = 0;
	/* Most writes: no slot maps to the block, and no copy waits. */
	if (!ts_map_code_mapped(mapper, code))
		return 0;
	mutex_lock(&md->copy_lock);
	/* Another writer of the image may have copied it meanwhile. */
	if (!ts_map_code_mapped(mapper, code))
		goto unlock;
	if (unlikely(delay_ms))
		msleep(delay_ms);

	page = alloc_page(GFP_KERNEL);
	if (!page) {
		ret = -ENOMEM;
		goto unlock;
	}
	ret = ts_map_read_image(md, x, page);
	if (ret)
		goto free;
	xxh = ts_map_xxh(mapper, page_address(page));
	/* The image read took long: the slots may all be gone by now. */
	if (!ts_map_code_mapped_alloc(mapper, code, x, &block))
		goto free;
	if (block == TS_NO_BLOCK) {
		ret = -ENOSPC;
		goto free;
	}
	bvec_set_page(&bv, page, TS_BLOCK_SIZE, 0);
	ret = ts_store_rw(mapper->store, block, &bv, 1, REQ_OP_WRITE);
	s = TS_MAP_NONE;
	while (!ret) {
		batch = 0;
		spin_lock_irqsave(&mapper->lock, flags);
		s = ts_map_walk_resume_locked(mapper, b, s);
		for (seen = 0; s != TS_MAP_NONE && seen < TS_MAP_WALK_BATCH &&
		     batch < TS_MAP_COPY_BATCH; seen++, s = next) {
			next = mapper->slot_next[s];
			if (mapper->slot_map[s] != code)
				continue;	/* another block's slot */
			if (mapper->slot_xxh[s] != xxh) {
				++*foreign;
				continue;
			}
			/* The block first: see ts_swapdev_rw(). */
			ts_swapdev_slot_to_block(mapper->swapdev, s, block);
			ts_map_unlink_locked(mapper, s);
			batch++;
		}
		spin_unlock_irqrestore(&mapper->lock, flags);
		nr += batch;
		if (s == TS_MAP_NONE)
			break;
		cond_resched();
	}
	/* The copy's own reference: the slots took theirs. */
	ts_swapdev_put_block(mapper->swapdev, block);
	if (!ret && *foreign)
		pr_err_ratelimited("swap mapper: block %llu of a disk image changed behind the module's back: %u swapped-out pages lost their bytes\n",
				   x, *foreign);
	if (!ret && nr) {
		atomic64_inc(&mapper->stats.copies);
		atomic64_add(nr, &mapper->stats.copied_slots);
		trace_tesseract_swap_map_copy(md->index, x, nr, block);
	}
free:
	__free_page(page);
unlock:
	mutex_unlock(&md->copy_lock);
	return ret;
}

/*
 * The lowest block in [@first, @last] of @md that a slot maps to, scanning
 * the slots from *@scan a batch at a time; false if none is left.
 */
static bool ts_map_next_mapped(struct ts_mapper *mapper,
			       struct ts_map_disk *md, u64 *scan, u64 first,
			       u64 last, u64 *x)
{
	unsigned long flags;
	u64 code, bx, end;
	bool found = false;

	while (!found && *scan < mapper->nr_slots) {
		end = min(*scan + TS_MAP_SCAN_BATCH, mapper->nr_slots);
		spin_lock_irqsave(&mapper->lock, flags);
		if (!md->nr_mapped)
			*scan = end = mapper->nr_slots;
		for (; *scan < end; ++*scan) {
			code = mapper->slot_map[*scan];
			if (!code || ts_map_decode(mapper, code, &bx) != md ||
			    bx < first || bx > last)
				continue;
			*x = bx;
			found = true;
			break;
		}
		spin_unlock_irqrestore(&mapper->lock, flags);
		cond_resched();
	}
	return found;
}

/*
 * Blocks that a copy of a range could not copy, or left foreign slots of
 * (see ts_map_copy_block()), remembered so that its scan of the slots
 * does not try them again for each slot.
 */
#define TS_MAP_SKIP_MAX		32

static bool ts_map_skipped(const u64 *skip, unsigned int nr, u64 x)
{
	while (nr--)
		if (skip[nr] == x)
			return true;
	return false;
}

/*
 * Copy every block of [@first, @last] that slots map to (M3). A write
 * (@detach NULL) fails at the first block it cannot copy. The last detach
 * of incarnation *@detach copies all it can and returns the first error;
 * it stops when the image is attached again (the new attachment's last
 * detach copies then), or after TS_MAP_SKIP_MAX blocks that it could not
 * copy (a dying image: the slots left swap in from it, or fail, one by
 * one).
 */
static int ts_map_copy_range(struct ts_mapper *mapper, struct ts_map_disk *md,
			     u64 first, u64 last, const u32 *detach)
{
	bool lookup = last - first < TS_MAP_COPY_LOOKUP_MAX;
	u64 x = first, scan = 0, skip[TS_MAP_SKIP_MAX];
	unsigned int nr_skip = 0, foreign;
	int ret, first_err = 0;

	for (;; x++) {
		if (detach && READ_ONCE(md->incarnation) != *detach)
			break;
		if (lookup) {
			if (x > last || !READ_ONCE(md->nr_mapped))
				break;
		} else {
			/* A large range (a discard of the disk): scan the slots. */
			if (!ts_map_next_mapped(mapper, md, &scan, first, last,
						&x))
				break;
			scan++;
			if (ts_map_skipped(skip, nr_skip, x))
				continue;
		}
		ret = ts_map_copy_block(mapper, md, x, &foreign);
		if (ret && !first_err)
			first_err = ret;
		if (ret && !detach)
			break;
		if (lookup || (!ret && !foreign))
			continue;
		if (nr_skip < TS_MAP_SKIP_MAX)
			skip[nr_skip++] = x;
		else if (ret)
			break;
	}
	return first_err;
}

/* Under mapper->lock: take entry @idx out of its two buckets. */
static void ts_map_fp_unlink_locked(struct ts_mapper *mapper, u32 idx)
{
	struct ts_fp *e = &mapper->fps[idx];

	if (e->prev == TS_MAP_NONE)
		*ts_map_fp_bucket(mapper, e->xxh) = e->next;
	else
		mapper->fps[e->prev].next = e->next;
	if (e->next != TS_MAP_NONE)
		mapper->fps[e->next].prev = e->prev;
	if (e->block_prev == TS_MAP_NONE)
		*ts_map_fp_block_bucket(mapper, e->disk, e->x) =
			e->block_next;
	else
		mapper->fps[e->block_prev].block_next = e->block_next;
	if (e->block_next != TS_MAP_NONE)
		mapper->fps[e->block_next].block_prev = e->block_prev;
}

/* Under mapper->lock: entry @idx goes back to the free ones. */
static void ts_map_fp_free_locked(struct ts_mapper *mapper, u32 idx)
{
	ts_map_fp_unlink_locked(mapper, idx);
	mapper->fps[idx].disk = 0;
	mapper->nr_fps_used--;
}

/*
 * Free the fingerprints that disk @disk (index + 1) took as @incarnation
 * of blocks [@first, @last], scanning the whole table a batch per hold of
 * the lock.
 */
static void ts_map_fp_scan_free(struct ts_mapper *mapper, u16 disk,
				u32 incarnation, u64 first, u64 last)
{
	u32 idx = 0, end;
	unsigned long flags;
	struct ts_fp *e;

	while (idx < mapper->nr_fps) {
		end = min_t(u32, idx + TS_MAP_SCAN_BATCH, mapper->nr_fps);
		spin_lock_irqsave(&mapper->lock, flags);
		for (; idx < end; idx++) {
			e = &mapper->fps[idx];
			if (e->disk == disk && e->incarnation == incarnation &&
			    e->x >= first && e->x <= last)
				ts_map_fp_free_locked(mapper, idx);
		}
		spin_unlock_irqrestore(&mapper->lock, flags);
		cond_resched();
	}
}

/*
 * Free the fingerprints of blocks [@first, @last] of @md: a write of them
 * begins (M2), whose running count keeps them from matching until it
 * ends, so they may go a batch at a time. One block's entries share a
 * bucket of blocks (at most TS_MAP_WALK_MAX entries); a range of more
 * blocks than the table has entries scans the table instead.
 */
static void ts_map_fp_drop_range(struct ts_mapper *mapper,
				 struct ts_map_disk *md, u64 first, u64 last)
{
	u32 idx, next, n;
	unsigned long flags;
	struct ts_fp *e;
	u64 x = first;

	if (!READ_ONCE(mapper->nr_fps_used))
		return;
	/* The disk is attached while its write runs: its incarnation holds. */
	if (last - first >= mapper->nr_fps) {
		ts_map_fp_scan_free(mapper, md->index + 1,
				    READ_ONCE(md->incarnation), first, last);
		return;
	}
	while (x <= last) {
		spin_lock_irqsave(&mapper->lock, flags);
		for (n = 0; x <= last && n < TS_MAP_COPY_BATCH; x++, n++) {
			idx = *ts_map_fp_block_bucket(mapper, md->index + 1,
						       x);
			for (; idx != TS_MAP_NONE; idx = next) {
				e = &mapper->fps[idx];
				next = e->block_next;
				if (e->x == x && e->disk == md->index + 1 &&
				    e->incarnation == md->incarnation)
					ts_map_fp_free_locked(mapper, idx);
			}
		}
		spin_unlock_irqrestore(&mapper->lock, flags);
		cond_resched();
	}
}

/*
 * A write, discard, write-zeroes or cleaning of blocks [@first, @last] of
 * @md's image is about to start: fingerprints of them are stale from now
 * (M2), slots mapped to them get copies first (M3), and swap-ins still
 * reading them from the image finish first (M4). If a copy fails, the
 * write must not happen: -errno, and the caller fails it. Either way
 * ts_map_write_end() follows, when the write is over.
 */
int ts_map_write_begin(struct ts_map_disk *md, u64 first, u64 last)
{
	struct ts_mapper *mapper = ts_mapper;
	unsigned long flags;
	bool mapped, reading;
	int ret = 0;

	if (!md)
		return 0;
	spin_lock_irqsave(&mapper->lock, flags);
	ts_map_gens_locked(md, first, last, 1);
	mapped = md->nr_mapped;
	reading = !list_empty(&md->reads);
	spin_unlock_irqrestore(&mapper->lock, flags);
	ts_map_fp_drop_range(mapper, md, first, last);
	if (mapped)
		ret = ts_map_copy_range(mapper, md, first, last, NULL);
	if (ret) {
		atomic64_inc(&mapper->stats.copy_errors);
		pr_warn_ratelimited("swap mapper: no copy of blocks %llu..%llu of a disk for its swapped-out pages (%d): the write fails\n",
				    first, last, ret);
	}
	/*
	 * Another writer of the image may have copied the slots, with their
	 * reads still running: wait whether or not this one found any.
	 */
	if (mapped || reading)
		wait_event(mapper->read_wq,
			   !ts_map_reading(mapper, md, first, last));
	return ret;
}

void ts_map_write_end(struct ts_map_disk *md, u64 first, u64 last)
{
	unsigned long flags;

	if (!md)
		return;
	spin_lock_irqsave(&ts_mapper->lock, flags);
	ts_map_gens_locked(md, first, last, -1);
	spin_unlock_irqrestore(&ts_mapper->lock, flags);
}

/*
 * A read of block @x of @md's image into a whole guest page begins: true,
 * with the write generation of x in *@gen, if no write of x is running;
 * only then can what it reads become a fingerprint.
 */
bool ts_map_read_begin(struct ts_map_disk *md, u64 x, u64 *gen)
{
	unsigned long flags;
	u32 b = ts_map_gen_bucket(x);
	bool ok;

	if (!md)
		return false;
	spin_lock_irqsave(&ts_mapper->lock, flags);
	ok = !md->dead && !md->running[b];
	*gen = md->begun[b];
	spin_unlock_irqrestore(&ts_mapper->lock, flags);
	return ok;
}

/* Under mapper->lock: take the oldest entry for a new fingerprint. */
static struct ts_fp *ts_map_fp_alloc_locked(struct ts_mapper *mapper)
{
	u32 idx = mapper->fp_cursor;
	struct ts_fp *e = &mapper->fps[idx];

	mapper->fp_cursor = (idx + 1) % mapper->nr_fps;
	if (!e->disk) {
		mapper->nr_fps_used++;
		return e;
	}
	ts_map_fp_unlink_locked(mapper, idx);
	atomic64_inc(&mapper->stats.fps_evicted);
	return e;
}

/*
 * Free the fingerprints that @md took as @incarnation, which a detach
 * ended: none can match again (ts_map_fp_valid_locked()), and while the
 * table holds any, every swap-out on the host hashes its page to look.
 * No new one comes: ts_map_read_end() adds none for a dead disk, and an
 * attachment of the image meanwhile is a new incarnation.
 */
static void ts_map_fp_purge(struct ts_mapper *mapper,
			    const struct ts_map_disk *md, u32 incarnation)
{
	ts_map_fp_scan_free(mapper, md->index + 1, incarnation, 0,
			    TS_MAP_X_MASK);
}

/*
 * The read of block @x (@gen from ts_map_read_begin()) returned @data, the
 * image's bytes (never the guest page's, which the guest may change at
 * any time: M1), now copied into @dest, a guest page. Remember them, if
 * no write of x began meanwhile. Zeroes are not worth it: 6.12 keeps a
 * zero page without a write anyway (the zeromap), and a disk has many.
 */
void ts_map_read_end(struct ts_map_disk *md, u64 x, u64 gen, const void *data,
		     struct page *dest)
{
	struct ts_mapper *mapper = ts_mapper;
	u32 b = ts_map_gen_bucket(x), idx, next, walked = 0, *head, *block_head;
	u8 sha[SHA256_DIGEST_SIZE];
	unsigned long flags;
	struct ts_fp *e;
	u64 t0, xxh, owner;

	if (!md || !memchr_inv(data, 0, TS_BLOCK_SIZE))
		return;
	owner = ts_map_owner(page_folio(dest));
	t0 = ktime_get_ns();
	xxh = ts_map_xxh(mapper, data);
	ts_map_sha256(mapper, data, sha);
	atomic64_add(ktime_get_ns() - t0, &mapper->stats.hash_ns);

	spin_lock_irqsave(&mapper->lock, flags);
	if (md->dead || md->begun[b] != gen || md->running[b])
		goto unlock;
	/*
	 * Read again: one entry per block and owner. Other bytes than its
	 * entry says can only have come from a writer of the image other
	 * than the module: that entry goes. A full bucket of blocks takes
	 * no more (see TS_MAP_WALK_MAX).
	 */
	block_head = ts_map_fp_block_bucket(mapper, md->index + 1, x);
	for (idx = *block_head; idx != TS_MAP_NONE && walked < TS_MAP_WALK_MAX;
	     idx = next) {
		e = &mapper->fps[idx];
		next = e->block_next;
		if (e->x != x || e->owner != owner ||
		    e->disk != md->index + 1 ||
		    e->incarnation != md->incarnation) {
			walked++;
			continue;
		}
		if (e->xxh == xxh && !memcmp(e->sha, sha, sizeof(sha)))
			goto unlock;
		ts_map_fp_free_locked(mapper, idx);
	}
	if (walked >= TS_MAP_WALK_MAX)
		goto unlock;
	head = ts_map_fp_bucket(mapper, xxh);
	e = ts_map_fp_alloc_locked(mapper);
	e->xxh = xxh;
	e->x = x;
	e->owner = owner;
	e->disk = md->index + 1;
	e->incarnation = md->incarnation;
	memcpy(e->sha, sha, sizeof(sha));
	/* At the head: the newest are found first. */
	idx = e - mapper->fps;
	e->prev = TS_MAP_NONE;
	e->next = *head;
	if (*head != TS_MAP_NONE)
		mapper->fps[*head].prev = idx;
	*head = idx;
	e->block_prev = TS_MAP_NONE;
	e->block_next = *block_head;
	if (*block_head != TS_MAP_NONE)
		mapper->fps[*block_head].block_prev = idx;
	*block_head = idx;
	atomic64_inc(&mapper->stats.fps_added);
unlock:
	spin_unlock_irqrestore(&mapper->lock, flags);
}

static void ts_map_disk_free(struct ts_map_disk *md)
{
	unsigned int i;

	if (!md)
		return;
	for (i = 0; i < TS_MAP_WINDOW; i++)
		if (md->window.pages[i])
			__free_page(md->window.pages[i]);
	mutex_destroy(&md->window.lock);
	mutex_destroy(&md->copy_lock);
	kvfree(md);
}

static struct ts_map_disk *ts_map_disk_alloc(void)
{
	struct ts_map_disk *md = kvzalloc(sizeof(*md), GFP_KERNEL);

	if (!md)
		return NULL;
	mutex_init(&md->window.lock);
	mutex_init(&md->copy_lock);
	md->window.next = U64_MAX;
	return md;
}

/* Let go of detached images that nothing holds any more. */
static void ts_map_reap(struct ts_mapper *mapper)
{
	struct ts_map_disk *reaped[TS_MAP_MAX_DISKS];
	unsigned int i, n = 0;
	unsigned long flags;

	spin_lock_irqsave(&mapper->lock, flags);
	for (i = 0; i < TS_MAP_MAX_DISKS; i++) {
		struct ts_map_disk *md = mapper->disks[i];

		if (md && ts_map_disk_unused_locked(md)) {
			mapper->disks[i] = NULL;
			reaped[n++] = md;
		}
	}
	spin_unlock_irqrestore(&mapper->lock, flags);
	for (i = 0; i < n; i++) {
		fput(reaped[i]->image);
		ts_map_disk_free(reaped[i]);
	}
}

static void ts_map_reap_work(struct work_struct *work)
{
	ts_map_reap(container_of(work, struct ts_mapper, reap_work));
}

/*
 * Whether a swap-in may read @inode's blocks. It does so from a worker,
 * while the task that faulted may hold any lock, including the image's
 * own: a guest write through vhost-blk faults its buffer in with the
 * image's i_rwsem held (generic_perform_write()). A read of a block
 * device, and a buffered read of ext4 and of tmpfs, take no lock that a
 * writer holds over such a fault; XFS's takes its iolock, and others were
 * not checked. ext4 on DAX is not safe either: its reads take i_rwsem
 * shared, and its writes copy from the guest's pages holding it
 * (ext4_dax_read_iter(), ext4_dax_write_iter()). ext2 and ext3 share
 * ext4's magic number.
 */
static bool ts_map_image_readable_anytime(struct inode *inode)
{
	if (S_ISBLK(inode->i_mode))
		return true;
	if (!S_ISREG(inode->i_mode) || IS_DAX(inode))
		return false;
	switch (inode->i_sb->s_magic) {
	case EXT4_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

/*
 * An image attached to a guest disk: the mapper follows it, shared with
 * other attachments of the same inode (a write through any of them is a
 * write of the one image). NULL if the mapper is off, cannot read the
 * image at swap-in, or follows too many.
 */
struct ts_map_disk *ts_map_disk_add(struct file *image)
{
	struct ts_mapper *mapper = ts_mapper;
	struct inode *inode = image->f_mapping->host;
	struct ts_map_disk *md, *fresh;
	unsigned long flags;
	int i, free = -1;

	if (!mapper || !ts_map_image_readable_anytime(inode))
		return NULL;
	ts_map_reap(mapper);
	/* Without it, another attachment of the image is still joined. */
	fresh = ts_map_disk_alloc();
	spin_lock_irqsave(&mapper->lock, flags);
	for (i = 0; i < TS_MAP_MAX_DISKS; i++) {
		md = mapper->disks[i];
		if (!md) {
			if (free < 0)
				free = i;
			continue;
		}
		if (md->inode != inode)
			continue;
		/*
		 * Another attachment, or a detached one whose slots could
		 * not all be copied: they need the copies before writes
		 * that this attachment makes. Fingerprints taken before the
		 * detach may be stale: the image was not followed.
		 */
		if (md->dead) {
			md->dead = false;
			/* A detach still copying stops: see there. */
			WRITE_ONCE(md->incarnation, ++mapper->incarnations);
		}
		md->users++;
		goto unlock;
	}
	md = NULL;
	if (free < 0 || !fresh)
		goto unlock;
	md = fresh;
	fresh = NULL;
	md->image = get_file(image);
	md->inode = inode;
	md->users = 1;
	md->index = free;
	md->incarnation = ++mapper->incarnations;
	INIT_LIST_HEAD(&md->reads);
	mapper->disks[free] = md;
unlock:
	spin_unlock_irqrestore(&mapper->lock, flags);
	ts_map_disk_free(fresh);
	if (!md && free < 0)
		pr_warn_once("swap mapper: more than %d disk images at once; the others are not mapped\n",
			     TS_MAP_MAX_DISKS);
	return md;
}

/*
 * An attachment of @md ends. The last one copies every slot mapped to the
 * image into the store, and waits for its swap-ins, before it lets go of
 * the file (M5). A copy that fails (the image unreadable) leaves the image
 * open for the slots it could not copy, which keep swapping in from it,
 * each checked against its page's xxh64, until they are gone.
 */
void ts_map_disk_remove(struct ts_map_disk *md)
{
	struct ts_mapper *mapper = ts_mapper;
	unsigned long flags;
	u32 incarnation;
	bool last;
	int ret;

	if (!md)
		return;
	spin_lock_irqsave(&mapper->lock, flags);
	last = !--md->users;
	if (last) {
		md->dead = true;
		md->removers++;
		incarnation = md->incarnation;
	}
	spin_unlock_irqrestore(&mapper->lock, flags);
	if (!last)
		return;
	ret = ts_map_copy_range(mapper, md, 0, TS_MAP_X_MASK, &incarnation);
	wait_event(mapper->read_wq,
		   READ_ONCE(md->incarnation) != incarnation ||
		   !ts_map_reading(mapper, md, 0, TS_MAP_X_MASK));
	if (ret)
		pr_err("swap mapper: %lu swapped-out pages of a detached disk could not be copied (%d): its image stays open for them until they are swapped in or freed\n",
		       READ_ONCE(md->nr_mapped), ret);
	ts_map_fp_purge(mapper, md, incarnation);
	spin_lock_irqsave(&mapper->lock, flags);
	md->removers--;
	spin_unlock_irqrestore(&mapper->lock, flags);
	ts_map_reap(mapper);
}

static int ts_map_stats_show(struct seq_file *m, void *v)
{
	struct ts_mapper *mapper = m->private;
	struct ts_map_stats *st = &mapper->stats;
	unsigned long flags, mapped;
	u32 held;

	spin_lock_irqsave(&mapper->lock, flags);
	mapped = mapper->nr_mapped;
	held = mapper->nr_fps_used;
	spin_unlock_irqrestore(&mapper->lock, flags);
	seq_printf(m, "swap_outs_mapped %lld\n", atomic64_read(&st->mapped));
	seq_printf(m, "data_bytes_not_written %lld\n",
		   atomic64_read(&st->mapped) * TS_BLOCK_SIZE);
	seq_printf(m, "slots_mapped %lu\n", mapped);
	seq_printf(m, "swap_ins_from_images %lld\n",
		   atomic64_read(&st->image_reads));
	seq_printf(m, "swap_in_errors %lld\n",
		   atomic64_read(&st->image_read_errors));
	seq_printf(m, "swap_in_read_ios %lld\n",
		   atomic64_read(&st->image_read_ios));
	seq_printf(m, "swap_in_mismatches %lld\n",
		   atomic64_read(&st->mismatches));
	seq_printf(m, "copies_before_writes %lld\n",
		   atomic64_read(&st->copies));
	seq_printf(m, "slots_copied %lld\n", atomic64_read(&st->copied_slots));
	seq_printf(m, "copy_failures %lld\n", atomic64_read(&st->copy_errors));
	seq_printf(m, "fingerprints_held %u\n", held);
	seq_printf(m, "fingerprints_capacity %u\n", mapper->nr_fps);
	seq_printf(m, "fingerprints_added %lld\n",
		   atomic64_read(&st->fps_added));
	seq_printf(m, "fingerprints_evicted %lld\n",
		   atomic64_read(&st->fps_evicted));
	seq_printf(m, "matches_stale %lld\n", atomic64_read(&st->stale));
	seq_printf(m, "hash_ns %lld\n", atomic64_read(&st->hash_ns));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ts_map_stats);

static void ts_mapper_free(struct ts_mapper *mapper)
{
	if (mapper->sha_tfm)
		crypto_free_shash(mapper->sha_tfm);
	if (mapper->wq)
		destroy_workqueue(mapper->wq);
	mempool_destroy(mapper->read_pool);
	mempool_destroy(mapper->page_pool);
	kvfree(mapper->slot_map);
	kvfree(mapper->slot_xxh);
	kvfree(mapper->slot_next);
	kvfree(mapper->slot_prev);
	kvfree(mapper->pair_head);
	kvfree(mapper->fps);
	kvfree(mapper->fp_head);
	kvfree(mapper->fp_block_head);
	kfree(mapper);
}

/*
 * Start the mapper on @swapdev's @nr_slots slots, if the swap_mapper
 * parameter asks for it. Its memory: 24 bytes a slot, up to 8 more for
 * the hash heads, plus the fingerprints (swap_mapper_mib).
 */
int ts_mapper_start(struct ts_store *store, struct ts_swapdev *swapdev,
		    u64 nr_slots)
{
	struct ts_mapper *mapper;
	u64 i, nr_fps;

	if (!ts_swap_mapper_param)
		return 0;
	if (nr_slots >= TS_MAP_NONE) {
		pr_err("swap_mapper: %llu slots, more than it can follow (%u)\n",
		       nr_slots, TS_MAP_NONE - 1);
		return -E2BIG;
	}
	mapper = kzalloc(sizeof(*mapper), GFP_KERNEL);
	if (!mapper)
		return -ENOMEM;
	spin_lock_init(&mapper->lock);
	init_waitqueue_head(&mapper->read_wq);
	INIT_WORK(&mapper->reap_work, ts_map_reap_work);
	mapper->store = store;
	mapper->swapdev = swapdev;
	mapper->nr_slots = nr_slots;
	mapper->pair_shift = ilog2(roundup_pow_of_two(max_t(u64, nr_slots, 2)));
	nr_fps = ((u64)swap_mapper_mib << 20) / sizeof(struct ts_fp);
	mapper->nr_fps = nr_fps;
	mapper->fp_shift = ilog2(roundup_pow_of_two(nr_fps));
	mapper->fp_seed = get_random_u64();
	mapper->fp_block_seed = get_random_u64();
	mapper->pair_seed = get_random_u64();
	mapper->sha_tfm = ts_map_sha_tfm();

	mapper->slot_map = kvcalloc(nr_slots, sizeof(u64), GFP_KERNEL);
	mapper->slot_xxh = kvcalloc(nr_slots, sizeof(u64), GFP_KERNEL);
	mapper->slot_next = kvcalloc(nr_slots, sizeof(u32), GFP_KERNEL);
	mapper->slot_prev = kvcalloc(nr_slots, sizeof(u32), GFP_KERNEL);
	mapper->pair_head = kvmalloc_array(BIT(mapper->pair_shift),
					   sizeof(u32), GFP_KERNEL);
	mapper->fps = kvcalloc(nr_fps, sizeof(struct ts_fp), GFP_KERNEL);
	mapper->fp_head = kvmalloc_array(BIT(mapper->fp_shift), sizeof(u32),
					 GFP_KERNEL);
	mapper->fp_block_head = kvmalloc_array(BIT(mapper->fp_shift),
					       sizeof(u32), GFP_KERNEL);
	mapper->read_pool =
		mempool_create_kmalloc_pool(TS_MAP_READ_POOL,
					    sizeof(struct ts_map_read));
	mapper->page_pool = mempool_create_page_pool(TS_MAP_READ_POOL, 0);
	mapper->wq = alloc_workqueue("tesseract_swap_map", WQ_MEM_RECLAIM, 0);
	if (!mapper->slot_map || !mapper->slot_xxh || !mapper->slot_next ||
	    !mapper->slot_prev || !mapper->pair_head || !mapper->fps ||
	    !mapper->fp_head || !mapper->fp_block_head ||
	    !mapper->read_pool || !mapper->page_pool || !mapper->wq) {
		pr_err("swap_mapper: no memory for its tables (swap_mapper_mib=%u)\n",
		       swap_mapper_mib);
		ts_mapper_free(mapper);
		return -ENOMEM;
	}
	for (i = 0; i < BIT(mapper->pair_shift); i++)
		mapper->pair_head[i] = TS_MAP_NONE;
	for (i = 0; i < BIT(mapper->fp_shift); i++) {
		mapper->fp_head[i] = TS_MAP_NONE;
		mapper->fp_block_head[i] = TS_MAP_NONE;
	}

	mapper->ops.swap_out = ts_map_swap_out;
	mapper->ops.forget = ts_map_forget;
	mapper->ops.read = ts_map_read;
	if (!IS_ERR_OR_NULL(ts_debugfs_root)) {
		mapper->debugfs = debugfs_create_file("swap_mapper", 0444,
						      ts_debugfs_root, mapper,
						      &ts_map_stats_fops);
		mapper->debugfs_delay_reads =
			ts_debugfs_create_delay_ms("swap_mapper_delay_reads_ms",
						   ts_debugfs_root,
						   &mapper->delay_reads_ms);
		mapper->debugfs_delay_copies =
			ts_debugfs_create_delay_ms("swap_mapper_delay_copies_ms",
						   ts_debugfs_root,
						   &mapper->delay_copies_ms);
	}
	ts_mapper = mapper;
	ts_swapdev_set_mapper(swapdev, &mapper->ops);
	pr_info("swap mapper on: %u fingerprints in %u MiB, SHA-256 by %s\n",
		mapper->nr_fps, swap_mapper_mib,
		mapper->sha_tfm ?
		crypto_shash_driver_name(mapper->sha_tfm) : "the library");
	return 0;
}

/*
 * Every disk is detached and the swap area is off (the module is going):
 * no slot maps to an image any more, nor reads one.
 */
void ts_mapper_stop(void)
{
	struct ts_mapper *mapper = ts_mapper;
	int i;

	if (!mapper)
		return;
	ts_swapdev_set_mapper(mapper->swapdev, NULL);
	flush_workqueue(mapper->wq);
	ts_map_reap(mapper);
	for (i = 0; i < TS_MAP_MAX_DISKS; i++)
		WARN_ON(mapper->disks[i]);
	WARN_ON(mapper->nr_mapped);
	debugfs_remove(mapper->debugfs);
	debugfs_remove(mapper->debugfs_delay_reads);
	debugfs_remove(mapper->debugfs_delay_copies);
	ts_mapper = NULL;
	ts_mapper_free(mapper);
}
