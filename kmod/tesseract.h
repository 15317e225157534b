/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tesseract: declarations shared by the parts of the module.
 */
#ifndef _TESSERACT_H
#define _TESSERACT_H

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/blk_types.h>
#include <linux/fs.h>
#include <linux/limits.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/sizes.h>
#include <linux/spinlock.h>
#include <linux/types.h>

#include "compat.h"

struct dentry;

/* Root of /sys/kernel/debug/tesseract/; an ERR_PTR if debugfs is off. */
extern struct dentry *ts_debugfs_root;
struct dentry *ts_debugfs_create_delay_ms(const char *name,
					  struct dentry *dir, u32 *ms);
/* A bool module parameter's value, @val NULL for a bare name: 0 or -EINVAL. */
int ts_param_bool_value(const char *val, const struct kernel_param *kp,
			bool *on);
int ts_param_set_bool(const char *val, const struct kernel_param *kp);
extern const struct kernel_param_ops ts_param_ops_bool;

/* Store blocks and swap slots are 4 KiB, whatever the page size. */
#define TS_BLOCK_SHIFT		12
#define TS_BLOCK_SIZE		SZ_4K
#define TS_SECTORS_PER_BLOCK	(TS_BLOCK_SIZE >> SECTOR_SHIFT)

/* Marks a slot that maps to no block. */
#define TS_NO_BLOCK		U32_MAX

/* Smallest usable store, in blocks: room for mkswap and a few pages. */
#define TS_STORE_MIN_BLOCKS	256

/*
 * The allocator looks for free blocks a chunk at a time (128 MiB of store,
 * 4 KiB of bitmap), skipping full chunks by their free count: the search
 * runs under the store's lock with interrupts off, and must take the same
 * short time on a large, nearly full store as on an empty one.
 */
#define TS_STORE_CHUNK_SHIFT	15
#define TS_STORE_CHUNK		BIT(TS_STORE_CHUNK_SHIFT)

/* Chunks a search for a run of free blocks looks at, at most. */
#define TS_STORE_RUN_SEARCH_CHUNKS	8

/* Work done under the store's lock at a time by loops over many blocks. */
#define TS_STORE_LOCK_BATCH	256

/*
 * The refcounted block store on the backing device. Block numbers count
 * data blocks from data_start; blocks before it are reserved for the
 * on-disk metadata (superblock, journal).
 *
 * lock protects refcount, the allocator and everything that maps names
 * (swap slots) to blocks. It is taken in the swap write path, in
 * swap_slot_free_notify, which runs in atomic context, and in the
 * completion of swap writes, which may run in interrupt context: always
 * with interrupts off, and never sleep or allocate under it.
 */
/* The journal's position; under lock. See journal.c. */
struct ts_journal {
	struct mutex lock;		/* serializes journal and checkpoints */
	u64 seq;			/* last used, by a block or checkpoint */
	u64 next;			/* ring index of the next one */
	u64 since_ckpt;			/* blocks written since the checkpoint */
	int ckpt_slot;			/* slot of the newest checkpoint */
};

struct ts_store {
	struct ts_bdev_handle backing;
	char path[PATH_MAX];
	/* Geometry, from the superblock, in 4 KiB blocks of the device. */
	u8 uuid[16];
	u64 journal_start, journal_blocks;
	u64 ckpt_start[2], ckpt_blocks;
	u64 data_start;			/* first data block */
	u32 nr_blocks;			/* data blocks */
	u32 max_refs;			/* guest-disk references, at most */
	bool volatile_device;		/* TS_SB_INCOMPAT_VOLATILE */

	spinlock_t lock;		/* see above */
	u32 *refcount;			/* per data block; 0 = free */
	unsigned long *in_use;		/* bitmap: refcount != 0 */
	u32 *chunk_free;		/* free blocks per TS_STORE_CHUNK */
	u32 nr_chunks;
	u32 blocks_in_use;
	/*
	 * Free blocks promised: one per swap slot that the swap mapper
	 * mapped to a guest-disk block, for the copy a write of that block
	 * needs first (mapper.c). Only ts_store_alloc_reserved_locked() may
	 * take them.
	 */
	u32 reserved;
	/*
	 * Most blocks given back in one hold of the lock, and the longest
	 * such hold in ns, since load (debugfs release_batch_max and
	 * release_hold_max_us): the work per hold is bounded
	 * (TS_STORE_LOCK_BATCH), and a test checks it.
	 */
	u32 release_batch_max;
	u64 release_hold_max_ns;
	/*
	 * Checkpoint records in use: guest-disk references, plus one for
	 * each disk that holds an identity (its TS_REC_BIND). At most
	 * max_refs, what a checkpoint slot holds.
	 */
	u32 nr_refs;

	struct ts_journal journal;
};

/* A checkpoint being written (journal.c), record by record. */
struct ts_ckpt_writer {
	struct ts_store *store;
	struct page *page;
	struct ts_record *recs;		/* page_address(page) */
	u64 block;			/* where the page goes when full */
	u64 nr;
	u32 crc;
};

struct ts_record;

int ts_store_open(const char *path, struct ts_store **storep);
void ts_store_close(struct ts_store *store);

bool ts_store_alloc_locked(struct ts_store *store, u64 near, u32 *block);
bool ts_store_alloc_reserved_locked(struct ts_store *store, u64 near,
				    u32 *block);
void ts_store_claim_locked(struct ts_store *store, u32 block);
void ts_store_get_locked(struct ts_store *store, u32 block);
void ts_store_put_locked(struct ts_store *store, u32 block);
bool ts_store_alloc_run_locked(struct ts_store *store, u64 near,
			       unsigned int nr, u32 *first);
u32 ts_store_spare_locked(struct ts_store *store);
int ts_store_rw(struct ts_store *store, u32 block, const struct bio_vec *bv,
		unsigned int nr_bv, enum req_op op);
void ts_store_submit_read(struct ts_store *store, u32 block,
			  const struct bio_vec *bv, unsigned int nr_bv,
			  bio_end_io_t *end_io, void *private);
int ts_store_read_blocks(struct ts_store *store, const u32 *blocks,
			 const struct bio_vec *bv, unsigned int nr);

static inline sector_t ts_store_sector(const struct ts_store *store, u32 block)
{
	return (store->data_start + block) * TS_SECTORS_PER_BLOCK;
}

/*
 * What became of one 4 KiB piece of a guest write: referenced, or the
 * reason it took the ordinary path (reconcile.c).
 */
enum ts_outcome {
	TS_OUTCOME_REFERENCED,
	TS_OUTCOME_UNALIGNED,		/* not a whole, aligned page */
	TS_OUTCOME_NOT_SWAPPED,		/* the guest page is not in swap */
	TS_OUTCOME_OTHER_SWAPDEV,	/* in swap, not on our device */
	TS_OUTCOME_SWAP_CACHED,		/* a swap-cache folio exists */
	TS_OUTCOME_SLOT_INCOMPLETE,	/* its swap-out has not completed */
	TS_OUTCOME_STORE_FULL,		/* store reserve reached */
	TS_OUTCOME_NO_MEMORY,		/* no memory for the reference map */
	TS_OUTCOME_FLATTENING,		/* the disk is being flattened */
	TS_OUTCOME_NO_ACCESS,		/* the VMM may not read the page */
	TS_OUTCOME_DISK_QUOTA,		/* the disk holds disk_max_refs */
	TS_OUTCOME_IDENTITY,		/* its id's references are another's */
	TS_OUTCOME_COMMIT_BEHIND,	/* the disk's commits fell behind */
	TS_OUTCOME_SWAP_MAPPED,		/* its slot maps to a disk block */
	TS_NR_OUTCOMES
};

/* The metadata on the backing device (journal.c). */
int ts_store_load_sb(struct ts_store *store);
int ts_journal_recover(struct ts_store *store);
int ts_journal_commit(struct ts_store *store, const struct ts_record *recs,
		      unsigned int nr);
/* Gives every reference of a checkpoint to @w (ts_checkpoint()). */
typedef int (*ts_ckpt_fill_fn)(struct ts_ckpt_writer *w, void *arg);
int ts_checkpoint(struct ts_store *store, ts_ckpt_fill_fn fill, void *arg);
int ts_ckpt_add(struct ts_ckpt_writer *w, u64 disk_id, u64 x, u32 block);

/*
 * The identity of a disk's backend that its references are bound to
 * (ident.c): a kind (enum ts_ident_kind) and a 96-bit fingerprint. Kind
 * TS_IDENT_NONE matches nothing.
 */
struct ts_ident {
	u8 kind;
	u32 fp_lo;
	u64 fp_hi;
};

void ts_ident_of_backend(struct file *file, struct ts_ident *ident);
void ts_ident_of_token(const u8 *token, unsigned int len,
		       struct ts_ident *ident);
bool ts_ident_equal(const struct ts_ident *a, const struct ts_ident *b);
const char *ts_ident_kind_name(u8 kind);
int ts_ckpt_bind(struct ts_ckpt_writer *w, u64 disk_id,
		 const struct ts_ident *ident);
void ts_record_bind(struct ts_record *rec, u64 disk_id,
		    const struct ts_ident *ident);

struct ts_swapdev;

/*
 * What the swap device asks the swap mapper (mapper.c), which embeds it:
 * whether a swap-out maps its slot to a disk block instead of being
 * written (called for every swap-out slot, with no lock held); that a slot
 * maps to nothing any more (freed, discarded, or written as no swap-out;
 * any context); and, for a read of a mapped slot, to serve it from the
 * image (true: it holds @upper, bio_inc_remaining(), until it has, and
 * calls ts_swapdev_mapped_read_done() first if the read succeeded).
 */
struct ts_swapdev_mapper {
	bool (*swap_out)(struct ts_swapdev_mapper *m, struct page *page,
			 u64 slot);
	void (*forget)(struct ts_swapdev_mapper *m, u64 slot);
	bool (*read)(struct ts_swapdev_mapper *m, struct bio *upper,
		     struct bvec_iter iter, u64 slot);
};

void ts_swapdev_set_mapper(struct ts_swapdev *swapdev,
			   struct ts_swapdev_mapper *mapper);
bool ts_swapdev_slot_to_image(struct ts_swapdev *swapdev, u64 slot);
void ts_swapdev_unreserve(struct ts_swapdev *swapdev, u64 slot);
void ts_swapdev_mapped_read_done(struct ts_swapdev *swapdev,
				 struct bio *upper, struct bvec_iter iter,
				 u64 slot);
bool ts_swapdev_alloc_copy(struct ts_swapdev *swapdev, u64 near, u32 *block);
void ts_swapdev_put_block(struct ts_swapdev *swapdev, u32 block);
void ts_swapdev_slot_to_block(struct ts_swapdev *swapdev, u64 slot,
			      u32 block);

int ts_swapdev_create(struct ts_store *store, u64 nr_slots,
		      struct ts_swapdev **swapdevp);
void ts_swapdev_destroy(struct ts_swapdev *swapdev);
bool ts_swapdev_owns(struct ts_swapdev *swapdev, swp_entry_t entry);
bool ts_swapdev_sees_all_swap_outs(struct ts_swapdev *swapdev);
enum ts_outcome ts_swapdev_reference(struct ts_swapdev *swapdev,
				     swp_entry_t entry, u32 *block);

/*
 * The swap mapper (mapper.c): swap-outs of pages that hold a guest-disk
 * block's bytes map to the block instead of being written. Every write of
 * a followed image goes between ts_map_write_begin() and
 * ts_map_write_end(); a NULL ts_map_disk (the mapper off) is valid
 * everywhere and does nothing.
 */
struct ts_map_disk;

extern bool ts_swap_mapper_param;

int ts_mapper_start(struct ts_store *store, struct ts_swapdev *swapdev,
		    u64 nr_slots);
void ts_mapper_stop(void);
struct ts_map_disk *ts_map_disk_add(struct file *image);
void ts_map_disk_remove(struct ts_map_disk *md);
int ts_map_write_begin(struct ts_map_disk *md, u64 first, u64 last);
void ts_map_write_end(struct ts_map_disk *md, u64 first, u64 last);
bool ts_map_read_begin(struct ts_map_disk *md, u64 x, u64 *gen);
void ts_map_read_end(struct ts_map_disk *md, u64 x, u64 gen, const void *data,
		     struct page *dest);

/*
 * Miss-ratio curves per memory cgroup from swap traffic (mrc.c): stamps
 * when a page leaves memory, eviction distances when it comes back. A NULL
 * ts_mrc (module parameter mrc=0, or no hooks) is valid everywhere and
 * records nothing.
 */
struct ts_mrc;
struct tesseract_mrc;
struct folio;

int ts_mrc_create(u64 nr_slots, struct ts_mrc **mrcp);
void ts_mrc_destroy(struct ts_mrc *mrc);
void ts_mrc_evicted(struct ts_mrc *mrc, struct folio *folio, u64 first,
		    unsigned long nr);
void ts_mrc_swap_in_begins(struct ts_mrc *mrc, u64 slot, bool from_device);
void ts_mrc_swap_in(struct ts_mrc *mrc, u64 slot, struct folio *folio,
		    bool readahead);
void ts_mrc_slot_freed(struct ts_mrc *mrc, u64 slot);
int ts_mrc_ioctl(struct tesseract_mrc *m);

/*
 * Reconciliation (reconcile.c): guest disks and their references into the
 * store. A disk is known by its id; references belong to the id, so they
 * outlive the device that attached it.
 */
struct ts_disk;
struct mm_struct;

extern bool ts_reconcile_param;

int ts_reconcile_accept_store(const struct ts_store *store);
int ts_reconcile_start(struct ts_store *store, struct ts_swapdev *swapdev);
void ts_reconcile_stop(void);
bool ts_reconcile_available(void);

struct ts_disk *ts_disk_attach(u64 id, struct file *image,
			       const struct ts_ident *ident);
bool ts_disk_identity_mismatch(struct ts_disk *disk);
int ts_disk_detach(struct ts_disk *disk);
int ts_disk_sync(struct ts_disk *disk);
int ts_disk_flush(struct ts_disk *disk);
void ts_disk_commit_later(struct ts_disk *disk);
int ts_disk_recover_ref(struct ts_store *store, u64 id, u64 x, u32 block);
int ts_disk_recover_drop(struct ts_store *store, u64 id, u64 x);
int ts_disk_recover_bind(struct ts_store *store, u64 id,
			 const struct ts_ident *ident);
int ts_disk_recover_forget(struct ts_store *store, u64 id);
void ts_disks_recovered(struct ts_store *store);
int ts_disk_forget(u64 id, u64 *references);
void ts_disks_forget(struct ts_store *store);
u64 ts_disk_id(const struct ts_disk *disk);
struct ts_map_disk *ts_disk_map(struct ts_disk *disk);
unsigned long ts_disk_nr_refs(struct ts_disk *disk);
u64 ts_disk_refs_changes(struct ts_disk *disk);
bool ts_disk_refs_changed(struct ts_disk *disk, u64 changes,
			  unsigned long *nr);
bool ts_disk_has_refs(struct ts_disk *disk, u64 first, u64 last);
bool ts_disk_next_ref(struct ts_disk *disk, u64 *x, u64 last);
/*
 * Store blocks that serve a guest read of @nr disk blocks from @x, held
 * (against reuse) from ts_disk_hold_run() to ts_disk_release_run().
 */
struct ts_held_run {
	u64 x;
	u32 first;			/* store block of x, the others follow */
	unsigned int nr;
};

int ts_disk_hold_run(struct ts_disk *disk, u64 x, u64 last, unsigned int max,
		     struct ts_held_run *run);
int ts_disk_read_held(const struct ts_held_run *run, const struct bio_vec *bv,
		      unsigned int nr_bv);
void ts_disk_submit_read_held(const struct ts_held_run *run,
			      const struct bio_vec *bv, unsigned int nr_bv,
			      bio_end_io_t *end_io, void *private);
void ts_disk_release_run(const struct ts_held_run *run);
int ts_disk_drop(struct ts_disk *disk, u64 x);
void ts_disk_note_io(struct ts_disk *disk);
void ts_disk_replace_begin(struct ts_disk *disk);
void ts_disk_replace_end(struct ts_disk *disk);

enum ts_outcome ts_reconcile_probe(struct mm_struct *mm, unsigned long uaddr);
enum ts_outcome ts_reconcile_page(struct ts_disk *disk, struct mm_struct *mm,
				  unsigned long uaddr, u64 x);
bool ts_reconcile_false_read(struct ts_disk *disk, struct mm_struct *mm,
			     unsigned long uaddr);
unsigned long ts_reconcile_count_swapped(struct mm_struct *mm,
					 unsigned long start,
					 unsigned long end);

/*
 * Locality recovery: referenced blocks copied back into the image
 * (cleaning) or into guest order in the store (compaction), a run of at
 * most TS_RUN_MAX blocks (256 KiB) at a time. The mechanics, under the
 * disk's lock, are in reconcile.c; when and how fast, the background
 * worker, flatten and /dev/tesseract in locality.c.
 */
#define TS_RUN_MAX	64

struct ts_locality_stats {
	atomic64_t cleaned;		/* blocks copied back */
	atomic64_t compacted;		/* blocks moved into guest order */
	atomic64_t bytes_moved;
};

extern struct ts_locality_stats ts_locality_totals;

/* Disk identity events since load (debugfs). */
extern atomic64_t ts_identity_mismatches;
extern atomic64_t ts_disks_forgotten;

struct ts_disk *ts_disk_get(u64 id);
struct ts_disk *ts_disk_next_attached(struct ts_disk *prev);
void ts_disk_put(struct ts_disk *disk);
bool ts_disk_attached(struct ts_disk *disk);
unsigned long ts_disk_idle_jiffies(struct ts_disk *disk);
const struct ts_locality_stats *ts_disk_stats(struct ts_disk *disk);
void ts_disk_flatten_begin(struct ts_disk *disk);
void ts_disk_flatten_end(struct ts_disk *disk);
bool ts_disk_flattening(struct ts_disk *disk);
void ts_disks_for_each(void (*fn)(struct ts_disk *disk, void *arg),
		       void *arg);
unsigned long ts_disks_nr_refs(void);
int ts_disk_clean(struct ts_disk *disk, u64 *x, u64 last, unsigned int max);
int ts_disk_compact(struct ts_disk *disk, unsigned int scan);

/*
 * A synchronous kiocb for I/O on a guest image at @pos. The attach refuses
 * an O_APPEND file, but the VMM can set O_APPEND on it later (fcntl), and
 * IOCB_APPEND would move every write to the end of the file.
 */
static inline void ts_init_image_kiocb(struct kiocb *kiocb, struct file *file,
				       loff_t pos)
{
	init_sync_kiocb(kiocb, file);
	kiocb->ki_flags &= ~IOCB_APPEND;
	kiocb->ki_pos = pos;
}

int ts_locality_start(void);
void ts_locality_stop(void);
int ts_control_register(void);
void ts_control_enable(void);
void ts_control_unregister(void);

/* /dev/vhost-blk (vhost_blk.c). */
int ts_vhost_blk_init(void);
void ts_vhost_blk_exit(void);

#endif /* _TESSERACT_H */
