// SPDX-License-Identifier: GPL-2.0
/*
 * The store: 4 KiB blocks on a backing block device, each with a reference
 * count. Swap slots and guest-disk blocks are names that point at blocks; a
 * block whose last reference goes returns to the free pool. The metadata
 * that makes guest-disk references durable is in journal.c.
 *
 * All state lives in memory that is allocated once, when the store is
 * opened, so that the swap write path, which runs under memory reclaim,
 * never allocates to find or free a block.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/completion.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "tesseract.h"

static u32 ts_chunk_start(u32 chunk)
{
	return chunk << TS_STORE_CHUNK_SHIFT;
}

static u32 ts_chunk_end(const struct ts_store *store, u32 chunk)
{
	return min_t(u64, (u64)(chunk + 1) << TS_STORE_CHUNK_SHIFT,
		     store->nr_blocks);
}

/* A free block gets its first reference. */
static void ts_store_take_locked(struct ts_store *store, u32 block)
{
	__set_bit(block, store->in_use);
	store->refcount[block] = 1;
	store->blocks_in_use++;
	store->chunk_free[block >> TS_STORE_CHUNK_SHIFT]--;
}

static const char *ts_open_error(int err)
{
	switch (err) {
	case -ENOENT:
		return "no such file";
	case -ENOTBLK:
		return "not a block device";
	case -EBUSY:
		return "in use (mounted, active swap, or claimed by another driver)";
	case -EACCES:
	case -EROFS:
		return "read-only or not accessible for writing";
	case -ENXIO:
		return "no such device";
	default:
		return "cannot open";
	}
}

static int ts_store_check_backing(struct ts_store *store)
{
	struct block_device *bdev = store->backing.bdev;

	if (bdev_read_only(bdev)) {
		pr_err("backing=%s: read-only\n", store->path);
		return -EROFS;
	}
	if (bdev_logical_block_size(bdev) > TS_BLOCK_SIZE) {
		pr_err("backing=%s: logical block size %u is larger than %u\n",
		       store->path, bdev_logical_block_size(bdev),
		       TS_BLOCK_SIZE);
		return -EINVAL;
	}
	/* The geometry is the superblock's (tesseractctl format). */
	return ts_store_load_sb(store);
}

int ts_store_open(const char *path, struct ts_store **storep)
{
	struct ts_store *store;
	u32 i;
	int ret;

	store = kzalloc(sizeof(*store), GFP_KERNEL);
	if (!store)
		return -ENOMEM;
	strscpy(store->path, path, sizeof(store->path));
	spin_lock_init(&store->lock);

	ret = ts_bdev_open(path, store, &store->backing);
	if (ret) {
		pr_err("backing=%s: %s (%d)\n", path, ts_open_error(ret), ret);
		goto free_store;
	}
	ret = ts_store_check_backing(store);
	if (ret)
		goto close_backing;

	store->refcount = kvcalloc(store->nr_blocks, sizeof(*store->refcount),
				   GFP_KERNEL);
	store->in_use = kvcalloc(BITS_TO_LONGS(store->nr_blocks),
				 sizeof(unsigned long), GFP_KERNEL);
	store->nr_chunks = DIV_ROUND_UP(store->nr_blocks, TS_STORE_CHUNK);
	store->chunk_free = kvcalloc(store->nr_chunks,
				     sizeof(*store->chunk_free), GFP_KERNEL);
	if (!store->refcount || !store->in_use || !store->chunk_free) {
		pr_err("backing=%s: no memory for %u block reference counts\n",
		       path, store->nr_blocks);
		ret = -ENOMEM;
		goto free_refcount;
	}
	for (i = 0; i < store->nr_chunks; i++)
		store->chunk_free[i] = ts_chunk_end(store, i) -
				       ts_chunk_start(i);
	pr_info("store on %s: %u blocks of %u bytes\n", path,
		store->nr_blocks, TS_BLOCK_SIZE);
	*storep = store;
	return 0;

free_refcount:
	kvfree(store->chunk_free);
	kvfree(store->in_use);
	kvfree(store->refcount);
close_backing:
	ts_bdev_close(&store->backing);
free_store:
	kfree(store);
	return ret;
}

void ts_store_close(struct ts_store *store)
{
	WARN_ON(store->blocks_in_use);
	kvfree(store->chunk_free);
	kvfree(store->in_use);
	kvfree(store->refcount);
	ts_bdev_close(&store->backing);
	kfree(store);
}

/*
 * Take a free block, the first one at or after @near (modulo the store
 * size), wrapping around. Callers pass the block they would like best: the
 * swap device asks for the block with its slot's number, so that a swap
 * area keeps the layout of a plain swap partition and neighbouring slots
 * stay neighbours on the backing device, where their I/O can be merged.
 */
static bool ts_store_search_locked(struct ts_store *store, u64 near,
				   u32 *block)
{
	u32 start = near % store->nr_blocks;
	u32 chunk = start >> TS_STORE_CHUNK_SHIFT;
	unsigned long b, from, end;
	u32 i;

	lockdep_assert_held(&store->lock);
	/* The first chunk twice: from @near, and at last from its start. */
	for (i = 0; i <= store->nr_chunks; i++) {
		if (store->chunk_free[chunk]) {
			from = i ? ts_chunk_start(chunk) : start;
			end = ts_chunk_end(store, chunk);
			b = find_next_zero_bit(store->in_use, end, from);
			if (b < end) {
				ts_store_take_locked(store, b);
				*block = b;
				return true;
			}
		}
		chunk = (chunk + 1) % store->nr_chunks;
	}
	return false;
}

/* Free blocks that no reservation holds. */
static u32 ts_store_unreserved_locked(struct ts_store *store)
{
	u32 free = store->nr_blocks - store->blocks_in_use;

	return free > store->reserved ? free - store->reserved : 0;
}

bool ts_store_alloc_locked(struct ts_store *store, u64 near, u32 *block)
{
	lockdep_assert_held(&store->lock);
	return ts_store_unreserved_locked(store) &&
	       ts_store_search_locked(store, near, block);
}

/*
 * Allocate a block that a reservation held (see reserved): the caller
 * takes one off it.
 */
bool ts_store_alloc_reserved_locked(struct ts_store *store, u64 near,
				    u32 *block)
{
	lockdep_assert_held(&store->lock);
	return ts_store_search_locked(store, near, block);
}

/* Take a reference on @block, free or not (recovery). */
void ts_store_claim_locked(struct ts_store *store, u32 block)
{
	lockdep_assert_held(&store->lock);
	if (store->refcount[block])
		store->refcount[block]++;
	else
		ts_store_take_locked(store, block);
}

void ts_store_get_locked(struct ts_store *store, u32 block)
{
	lockdep_assert_held(&store->lock);
	WARN_ON_ONCE(!store->refcount[block]);
	store->refcount[block]++;
}

void ts_store_put_locked(struct ts_store *store, u32 block)
{
	lockdep_assert_held(&store->lock);
	if (WARN_ON_ONCE(!store->refcount[block]))
		return;
	if (!--store->refcount[block]) {
		__clear_bit(block, store->in_use);
		store->blocks_in_use--;
		store->chunk_free[block >> TS_STORE_CHUNK_SHIFT]++;
	}
}

/*
 * Take @nr free blocks in a row, the first run at or after @near that is
 * long enough (wrapping around), for data that is read in that order.
 * Runs are looked for within a chunk, in chunks with room enough, and in
 * a few such chunks only: a free count says nothing of fragmentation, and
 * the search runs with interrupts off. The caller tries again later.
 */
bool ts_store_alloc_run_locked(struct ts_store *store, u64 near,
			       unsigned int nr, u32 *first)
{
	u32 start = near % store->nr_blocks;
	u32 chunk = start >> TS_STORE_CHUNK_SHIFT;
	unsigned long b, from, end;
	u32 i, k, searched = 0;

	lockdep_assert_held(&store->lock);
	if (ts_store_unreserved_locked(store) < nr)
		return false;
	for (i = 0; i <= store->nr_chunks &&
	     searched < TS_STORE_RUN_SEARCH_CHUNKS; i++) {
		if (store->chunk_free[chunk] >= nr) {
			searched++;
			from = i ? ts_chunk_start(chunk) : start;
			end = ts_chunk_end(store, chunk);
			b = bitmap_find_next_zero_area(store->in_use, end, from,
						       nr, 0);
			if (b + nr <= end) {
				for (k = 0; k < nr; k++)
					ts_store_take_locked(store, b + k);
				*first = b;
				return true;
			}
		}
		chunk = (chunk + 1) % store->nr_chunks;
	}
	return false;
}

/* Free blocks, not counting a reserve that the swap device needs most. */
u32 ts_store_spare_locked(struct ts_store *store)
{
	u32 reserve = store->nr_blocks / 16;
	u32 free = ts_store_unreserved_locked(store);

	lockdep_assert_held(&store->lock);
	return free > reserve ? free - reserve : 0;
}

/*
 * Read or write (@op) the blocks from @block into or from the memory of
 * @bv (whole blocks, @nr_bv pieces), in one bio, and wait for it. The
 * caller holds a reference on each block, so that none can be freed and
 * reused under the I/O.
 */
static struct bio *ts_store_bio(struct ts_store *store, u32 block,
				const struct bio_vec *bv, unsigned int nr_bv,
				enum req_op op)
{
	struct bio *bio;
	unsigned int i;

	bio = bio_alloc(store->backing.bdev, nr_bv, op, GFP_KERNEL);
	bio->bi_iter.bi_sector = ts_store_sector(store, block);
	for (i = 0; i < nr_bv; i++)
		__bio_add_page(bio, bv[i].bv_page, bv[i].bv_len,
			       bv[i].bv_offset);
	return bio;
}

int ts_store_rw(struct ts_store *store, u32 block, const struct bio_vec *bv,
		unsigned int nr_bv, enum req_op op)
{
	struct bio *bio;
	int ret;

	if (WARN_ON_ONCE(!nr_bv || nr_bv > BIO_MAX_VECS))
		return -EINVAL;
	bio = ts_store_bio(store, block, bv, nr_bv, op);
	ret = submit_bio_wait(bio);
	bio_put(bio);
	return ret;
}

/*
 * Start a read of the blocks from @block on into the memory of @bv, as
 * ts_store_rw() does, without waiting: @end_io gets the bio, with
 * @private in bi_private, when it ends (in any context), and puts it.
 */
void ts_store_submit_read(struct ts_store *store, u32 block,
			  const struct bio_vec *bv, unsigned int nr_bv,
			  bio_end_io_t *end_io, void *private)
{
	struct bio *bio = ts_store_bio(store, block, bv, nr_bv, REQ_OP_READ);

	bio->bi_private = private;
	bio->bi_end_io = end_io;
	submit_bio(bio);
}

/* Reads in flight for ts_store_read_blocks(). */
struct ts_store_reads {
	atomic_t pending;
	blk_status_t status;		/* of a failed one, if any */
	struct completion done;
};

static void ts_store_read_end(struct bio *bio)
{
	struct ts_store_reads *reads = bio->bi_private;

	if (bio->bi_status)
		WRITE_ONCE(reads->status, bio->bi_status);
	bio_put(bio);
	if (atomic_dec_and_test(&reads->pending))
		complete(&reads->done);
}

/*
 * Read @blocks[i] into @bv[i] (4 KiB each) for @nr blocks: a bio for each
 * stretch of blocks that follow each other, all in flight at once, so that
 * scattered blocks cost the device's concurrency rather than one latency
 * each. References held by the caller, as for ts_store_rw().
 */
int ts_store_read_blocks(struct ts_store *store, const u32 *blocks,
			 const struct bio_vec *bv, unsigned int nr)
{
	struct ts_store_reads reads = { .status = BLK_STS_OK };
	unsigned int i, n, k;
	struct blk_plug plug;
	struct bio *bio;

	atomic_set(&reads.pending, 1);
	init_completion(&reads.done);
	blk_start_plug(&plug);
	for (i = 0; i < nr; i += n) {
		for (n = 1; i + n < nr && blocks[i + n] == blocks[i] + n; n++)
			;
		bio = bio_alloc(store->backing.bdev, n, REQ_OP_READ,
				GFP_KERNEL);
		bio->bi_iter.bi_sector = ts_store_sector(store, blocks[i]);
		for (k = i; k < i + n; k++)
			__bio_add_page(bio, bv[k].bv_page, bv[k].bv_len,
				       bv[k].bv_offset);
		bio->bi_private = &reads;
		bio->bi_end_io = ts_store_read_end;
		atomic_inc(&reads.pending);
		submit_bio(bio);
	}
	blk_finish_plug(&plug);
	if (!atomic_dec_and_test(&reads.pending))
		wait_for_completion_io(&reads.done);
	return blk_status_to_errno(READ_ONCE(reads.status));
}
