// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/tsswap0: a bio-based block device for host swap whose 4 KiB slots
 * map to store blocks. It is the module's hook on host swap-out: every page
 * swapped out to it lands in the store, and swap_slot_free_notify tells it
 * when a slot dies.
 *
 * Runs under memory reclaim: the I/O path allocates only from the device's
 * bio_set (mempool-backed, GFP_NOIO) and waits for nothing but the backing
 * device. A full store fails the write; the kernel then keeps the page.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/highmem.h>
#include <linux/ftrace.h>
#include <linux/pagemap.h>
#include <linux/percpu.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/xarray.h>

#include "tesseract.h"

#define TS_SWAPDEV_NAME		"tsswap0"

/* Lower bios kept in reserve so that swap-out progresses under pressure. */
#define TS_SWAPDEV_BIO_POOL	64

#define TS_SWAPDEV_MAX_HOLDS	64

/* Where every swap-out of a folio begins: see swap_out_ops. */
#define TS_SWAP_OUT_FUNCTION	"swap_writepage"

/*
 * The swap cache has one address_space per 2^14 slots of a swap area
 * (SWAP_ADDRESS_SPACE_SHIFT, private to mm/).
 */
#define TS_SWAP_CACHE_REGION_SHIFT	14

/*
 * Blocks reconciliation leaves free for swap: guest-disk references pin
 * blocks that swap would otherwise reuse, and a swap device whose store is
 * full fails every swap-out.
 */
#define TS_RECONCILE_RESERVE_SHIFT	5	/* 1/32 of the store */
#define TS_RECONCILE_RESERVE_MIN	64

/* The device's counters (debugfs), see ts_swapdev_counter_names. */
enum ts_swapdev_counter {
	TS_SWAPDEV_WRITES,		/* slots written */
	TS_SWAPDEV_READS,		/* slots read from the store */
	TS_SWAPDEV_ZERO_READS,		/* slots read that were never written */
	TS_SWAPDEV_FREES,		/* slots freed by swap_slot_free_notify */
	TS_SWAPDEV_DISCARDS,		/* slots freed by discard */
	TS_SWAPDEV_REDIRECTED_WRITES,	/* writes moved off a shared block */
	TS_SWAPDEV_STORE_FULL,		/* writes refused: no free block */
	TS_SWAPDEV_WRITE_ERRORS,	/* backing device write failures */
	TS_SWAPDEV_READ_ERRORS,		/* backing device read failures */
	TS_SWAPDEV_SWAP_OUTS_SEEN,	/* slots whose swap-out began */
	TS_SWAPDEV_UNSEEN_SWAP_OUTS,	/* swap-out writes the hook missed */
	TS_SWAPDEV_NR_COUNTERS
};

static const char *const ts_swapdev_counter_names[] = {
	[TS_SWAPDEV_WRITES]		= "writes",
	[TS_SWAPDEV_READS]		= "reads",
	[TS_SWAPDEV_ZERO_READS]		= "zero_reads",
	[TS_SWAPDEV_FREES]		= "frees",
	[TS_SWAPDEV_DISCARDS]		= "discards",
	[TS_SWAPDEV_REDIRECTED_WRITES]	= "redirected_writes",
	[TS_SWAPDEV_STORE_FULL]		= "store_full",
	[TS_SWAPDEV_WRITE_ERRORS]	= "write_errors",
	[TS_SWAPDEV_READ_ERRORS]	= "read_errors",
	[TS_SWAPDEV_SWAP_OUTS_SEEN]	= "swap_outs_seen",
	[TS_SWAPDEV_UNSEEN_SWAP_OUTS]	= "unseen_swap_outs",
};

/*
 * Per CPU, summed when read: every swap-out and swap-in counts, on every
 * CPU that reclaims or faults, and a shared cache line of atomics would
 * bounce between them.
 */
struct ts_swapdev_stats {
	u64 count[TS_SWAPDEV_NR_COUNTERS];
};

/*
 * Where the swap cache of one region of slots lives, learnt from the
 * swap-cache folios that swap-out writes carry: the kernel does not export
 * the lookup. A slot's swap-cache index is its offset minus index_base
 * (0 on 6.1, the region's first slot on 6.12).
 */
struct ts_swap_cache_region {
	struct address_space *mapping;
	pgoff_t index_base;
};

struct ts_swapdev {
	struct ts_store *store;
	struct gendisk *disk;
	int major;
	u64 nr_slots;

	/*
	 * The block of each slot, TS_NO_BLOCK if unmapped: written under
	 * store->lock (WRITE_ONCE), read without it by the read path, see
	 * ts_swapdev_map_reads().
	 */
	u32 *slot_block;
	u64 slots_in_use;		/* under store->lock */

	/*
	 * Set when the slot's block holds the data of the last swap-out of
	 * its page, a completed write to this device; cleared when another
	 * swap-out of the page begins, whether or not it will reach us, and
	 * while a write is in flight or failed. Reconciliation may reference
	 * a slot's block only while this is set.
	 *
	 * This bitmap, slot_announced and slot_mapped are written only under
	 * store->lock, so with the non-atomic bit operations: a locked
	 * read-modify-write costs several plain ones, and a swap-out of a
	 * huge page changes three bits of each of its 512 slots. A reader
	 * without the lock (the swap-in hook) loads a word whole.
	 */
	unsigned long *slot_complete;

	/*
	 * Not every swap-out reaches this device: 6.12 keeps zero-filled
	 * folios as a bit in the swap area's zeromap, and zswap keeps folios
	 * compressed in RAM. A function-entry hook (ftrace) on
	 * swap_writepage(), the one function every swap-out of a folio goes
	 * through before the kernel decides where its data goes, clears
	 * slot_complete first. It is registered permanent: nothing (such as
	 * the ftrace_enabled sysctl) can turn it off while it is needed.
	 * Without it, reconciliation stays off.
	 */
	struct ftrace_ops swap_out_ops;
	bool watching_swap_outs;

	/*
	 * For the miss-ratio curves: hooks where a page leaves memory to
	 * this device's swap (mem_cgroup_swapout(), written or not: a clean
	 * page goes without a write), and where its swap-in read begins
	 * (TS_SWAP_IN_FUNCTIONS: whether its data then comes from the device
	 * or not, it begins there). Without both there are no curves.
	 */
	struct ftrace_ops evict_ops;
	struct ftrace_ops swap_in_ops;

	/*
	 * ftrace can still stop calling the hook without telling anyone:
	 * ftrace_kill(), on an ftrace anomaly, disables it kernel-wide. So
	 * the hook proves that it is alive: it marks every slot of the folio
	 * whose swap-out begins "announced", and the write of that swap-out
	 * to this device consumes the mark. A swap-out write to a slot that
	 * is not announced passed swap_writepage() unseen: the hook is lost
	 * (hook_lost), and reconciliation stays off until the module is
	 * reloaded. Both under store->lock. The mark of a slot that the swap
	 * code frees unwritten (zswap, the zeromap) goes with the slot. The
	 * curves read it too, at a swap-in: a slot still announced has its
	 * data elsewhere, and the device will not read it.
	 */
	unsigned long *slot_announced;
	bool hook_lost;

	/*
	 * The swap mapper, if it runs (mapper.c), and the slots it mapped
	 * to a guest-disk block instead of a store block: they map to no
	 * store block (TS_NO_BLOCK) and are read through the mapper. The
	 * bits are under store->lock.
	 */
	struct ts_swapdev_mapper *mapper;
	unsigned long *slot_mapped;

	/*
	 * The page cache of this device's block device, which
	 * swapcache_mapping() returns for a swap-cache folio whose swap entry
	 * is on this device, whether or not its swap type is known yet.
	 */
	struct address_space *bdev_mapping;

	/*
	 * The swap type the kernel gave this device at swapon (-1: not seen
	 * yet) and its swap-cache regions; written by swap-out, forgotten when
	 * the last exclusive opener (swapon) lets go.
	 */
	int swap_type;
	struct ts_swap_cache_region *regions;
	unsigned long nr_regions;

	/* Lower bios to the backing device, usable from reclaim. */
	struct bio_set bio_set;

	/*
	 * Extra references taken through debugfs ("hold"), standing in for
	 * the guest-disk references that reconciliation takes, so that
	 * redirect-on-write can be exercised on its own. Under store->lock.
	 */
	u32 holds[TS_SWAPDEV_MAX_HOLDS];
	unsigned int nr_holds;

	/*
	 * Fault injection for tests (debugfs "delay_writes_ms"): hold each
	 * write before it maps its slots. A swap-out then sits between its
	 * unmap (the PTE is a swap entry) and its write, the window in which
	 * the slot holds older data than the dirty swap-cache folio.
	 */
	unsigned int delay_writes_ms;

	/*
	 * Fault injection for tests (debugfs "fail_swap_out_hook"): while
	 * set, the swap-out hook returns at once, as it would if ftrace had
	 * stopped calling it.
	 */
	bool fail_swap_out_hook;

	/* Miss-ratio curves of the cgroups that swap here (mrc.c). */
	struct ts_mrc *mrc;

	struct ts_swapdev_stats __percpu *stats;
	struct dentry *debugfs;
};

/* Slots of an upper bio on consecutive store blocks: one lower bio. */
struct ts_swap_run {
	/*
	 * Where the run begins in the upper bio's bvecs; kept, since the
	 * lower driver consumes the lower bio's own iterator.
	 */
	struct bvec_iter start;
	u64 first_slot;
	u32 first_block;
	u32 nr_slots;
	bool swap_out;			/* carries swap-cache folios */
};

/*
 * One lower bio: a clone of the upper bio that shares its pages and covers
 * the run's part of them.
 */
struct ts_swap_io {
	struct ts_swapdev *swapdev;
	struct bio *upper;
	struct ts_swap_run run;
	struct bio bio;			/* must be last: bio_set front_pad */
};

static void ts_swapdev_count(struct ts_swapdev *swapdev,
			     enum ts_swapdev_counter counter, u64 n)
{
	this_cpu_add(swapdev->stats->count[counter], n);
}

static struct ts_swapdev *ts_swapdev_of(struct bio *bio)
{
	return bio->bi_bdev->bd_disk->private_data;
}

/*
 * Slots handled under one hold of store->lock, which is taken with
 * interrupts off: reclaim writes a folio in one bio, up to 512 slots of a
 * huge page, and the completion of its write may run in an interrupt.
 */
#define TS_LOCK_BATCH	32

/* Slots whose bits are cleared under one hold of store->lock at swapoff. */
#define TS_CLEAR_BATCH	SZ_64K

/*
 * The write of @run is over. A slot becomes complete only if the write was
 * a swap-out, succeeded, and the slot still maps the block written: a
 * discard (BLKDISCARD by root on the active swap device) may have unmapped
 * it meanwhile. The reference each slot's write has held since
 * ts_swapdev_map_write_locked() kept its block from being reused by
 * another slot until now.
 */
static void ts_swapdev_written(struct ts_swapdev *swapdev,
			       const struct ts_swap_run *run, bool ok)
{
	struct ts_store *store = swapdev->store;
	u32 i, end, block;
	unsigned long flags;
	u64 slot;

	for (i = 0; i < run->nr_slots; i = end) {
		end = min_t(u32, i + TS_LOCK_BATCH, run->nr_slots);
		spin_lock_irqsave(&store->lock, flags);
		for (; i < end; i++) {
			slot = run->first_slot + i;
			block = run->first_block + i;
			if (ok && run->swap_out && !swapdev->hook_lost &&
			    swapdev->slot_block[slot] == block)
				__set_bit(slot, swapdev->slot_complete);
			ts_store_put_locked(store, block);
		}
		spin_unlock_irqrestore(&store->lock, flags);
	}
}

/* @slot maps to no guest-disk block any more, if the swap mapper runs. */
static void ts_swapdev_mapper_forget(struct ts_swapdev *swapdev, u64 slot)
{
	struct ts_swapdev_mapper *mapper = READ_ONCE(swapdev->mapper);

	if (mapper)
		mapper->forget(mapper, slot);
}

/*
 * True if @page, read or written at @slot, is the swap-cache page of that
 * slot: the I/O is a swap-in or a swap-out, not a plain read or write.
 * Stable: the folio is locked (and under writeback for a write).
 */
static bool ts_swap_cache_page_of_slot(struct page *page, u64 slot)
{
	struct folio *folio = page_folio(page);

	return folio_test_swapcache(folio) &&
	       swp_offset(ts_folio_swap_entry(folio)) +
	       folio_page_idx(folio, page) == slot;
}

/* @page was read from @slot: if it is a swap-in, tell the curves. */
static void ts_swapdev_count_swap_in(struct ts_swapdev *swapdev,
				     struct page *page, u64 slot)
{
	struct folio *folio;

	if (!ts_swap_cache_page_of_slot(page, slot))
		return;
	folio = page_folio(page);
	ts_mrc_swap_in(swapdev->mrc, slot, folio, folio_test_readahead(folio));
}

/*
 * A read of @io's slots completed: tell the curves which were swap-ins.
 * Swap readahead marks the folios it reads beyond the faulting one only
 * after it submitted them, so the mark is looked at here, not at submit.
 * The folios stay locked until the upper bio completes.
 */
static void ts_swap_io_read_done(struct ts_swap_io *io)
{
	struct bvec_iter iter = io->run.start;
	u64 slot = io->run.first_slot;
	u32 i;

	for (i = 0; i < io->run.nr_slots; i++, slot++) {
		/* The page that holds the slot's first byte. */
		ts_swapdev_count_swap_in(io->swapdev,
					 bio_iter_page(&io->bio, iter), slot);
		bio_advance_iter(&io->bio, &iter, TS_BLOCK_SIZE);
	}
}

/*
 * The swap mapper read @slot, at @iter of @upper, from a disk image: a
 * swap-in for the curves as much as a read of the store is. Called before
 * the mapper ends its part of @upper: the folio is still locked.
 */
void ts_swapdev_mapped_read_done(struct ts_swapdev *swapdev,
				 struct bio *upper, struct bvec_iter iter,
				 u64 slot)
{
	if (swapdev->mrc)
		ts_swapdev_count_swap_in(swapdev, bio_iter_page(upper, iter),
					 slot);
}

static void ts_swap_io_endio(struct bio *bio)
{
	struct ts_swap_io *io = container_of(bio, struct ts_swap_io, bio);
	struct ts_swapdev *swapdev = io->swapdev;
	struct bio *upper = io->upper;
	bool write = op_is_write(bio_op(bio));

	if (bio->bi_status) {
		ts_swapdev_count(swapdev, write ? TS_SWAPDEV_WRITE_ERRORS :
						  TS_SWAPDEV_READ_ERRORS,
				 io->run.nr_slots);
		/* Racy like bio_chain's own propagation: any error will do. */
		if (!upper->bi_status)
			upper->bi_status = bio->bi_status;
	}
	if (write)
		ts_swapdev_written(swapdev, &io->run, !bio->bi_status);
	else if (swapdev->mrc && !bio->bi_status)
		ts_swap_io_read_done(io);
	bio_put(bio);
	bio_endio(upper);
}

/*
 * The swap type of this device's swap area, from one of its entries.
 * Written only when it changes: every swap-out and every eviction hook
 * reads the line it shares with the device's other read-mostly fields.
 */
static void ts_swapdev_learn_swap_type(struct ts_swapdev *swapdev,
				       swp_entry_t entry)
{
	if (READ_ONCE(swapdev->swap_type) != (int)swp_type(entry))
		WRITE_ONCE(swapdev->swap_type, swp_type(entry));
}

/*
 * True if @page, written to @slot, is the swap-cache page of that slot:
 * a swap-out. Learns this device's swap type and where the swap cache of
 * the slot's region lives. Only such writes make a slot complete: data
 * that a plain writer (mkswap, dd) puts in a slot is no page's contents.
 */
static bool ts_swapdev_note_swap_out(struct ts_swapdev *swapdev,
				     struct page *page, u64 slot)
{
	struct folio *folio = page_folio(page);
	struct ts_swap_cache_region *region;
	swp_entry_t entry;

	if (!ts_swap_cache_page_of_slot(page, slot))
		return false;
	entry = ts_folio_swap_entry(folio);
	region = &swapdev->regions[slot >> TS_SWAP_CACHE_REGION_SHIFT];
	if (!READ_ONCE(region->mapping)) {
		WRITE_ONCE(region->index_base,
			   swp_offset(entry) - folio_index(folio));
		WRITE_ONCE(region->mapping, folio_mapping(folio));
	}
	ts_swapdev_learn_swap_type(swapdev, entry);
	return true;
}

/* Swapoff (or mkswap) is over: the swap type may go to another device. */
static void ts_swapdev_forget_swap_cache(struct gendisk *disk)
{
	struct ts_swapdev *swapdev = disk->private_data;
	struct ts_store *store = swapdev->store;
	unsigned long i, n;

	if (disk->part0->bd_holder)
		return;
	WRITE_ONCE(swapdev->swap_type, -1);
	/*
	 * Swapoff freed every slot, which cleared their bits; clear them
	 * anyway, since the hook cannot tell our swap-outs from others'
	 * until a write teaches it the next swap type. Nothing sets them
	 * now: the swap area is gone. Under the lock all the same, as every
	 * write of them is (see slot_complete), a bounded piece at a time.
	 */
	for (i = 0; i < swapdev->nr_slots; i += TS_CLEAR_BATCH) {
		n = min_t(u64, TS_CLEAR_BATCH, swapdev->nr_slots - i);
		spin_lock_irq(&store->lock);
		bitmap_clear(swapdev->slot_complete, i, n);
		bitmap_clear(swapdev->slot_announced, i, n);
		bitmap_clear(swapdev->slot_mapped, i, n);
		spin_unlock_irq(&store->lock);
		cond_resched();
	}
	for (i = 0; i < swapdev->nr_regions; i++)
		WRITE_ONCE(swapdev->regions[i].mapping, NULL);
}

TS_DEFINE_BDEV_RELEASE(ts_swapdev_release, ts_swapdev_forget_swap_cache)

/*
 * The folio of @page, the first argument of a swap function an ftrace
 * hook sits on, if it is in this device's swap cache: NULL if not. Its
 * slots are *@first on, *@nr of them. The folio is locked in the swap
 * cache where the hooks sit, which keeps its swap entry and mapping.
 */
static struct folio *ts_swapdev_hooked_folio(struct ts_swapdev *swapdev,
					     struct page *page, u64 *first,
					     u64 *nr)
{
	struct folio *folio;

	if (!page)
		return NULL;
	folio = page_folio(page);
	if (!folio_test_swapcache(folio) ||
	    swapcache_mapping(folio) != READ_ONCE(swapdev->bdev_mapping))
		return NULL;
	*first = swp_offset(ts_folio_swap_entry(folio));
	if (*first >= swapdev->nr_slots)
		return NULL;
	*nr = min_t(u64, folio_nr_pages(folio), swapdev->nr_slots - *first);
	return folio;
}

/*
 * At the entry of swap_writepage(@page, wbc): a swap-out of @page's folio
 * begins, locked, in the swap cache, with its PTEs already swap entries.
 * Whether its data then reaches this device or stays in zswap or the
 * zeromap, its slots no longer hold its contents until a write of them
 * completes. The folio stays in the swap cache until that decision is
 * carried out, so reconciliation, which checks the swap cache and then
 * slot_complete under store->lock, sees one or the other.
 *
 * The slots are announced for the write that may follow, now or (zswap
 * writing the folio back later) after the folio left the swap cache: see
 * slot_announced. Which device the folio's slots are on is known without
 * the swap type, which only a first write teaches: swapcache_mapping()
 * (the swap area's file, stable while the folio is locked in the swap
 * cache) is this block device's.
 */
static void ts_swapdev_swap_out_begins(unsigned long ip,
				       unsigned long parent_ip,
				       struct ftrace_ops *ops,
				       struct ftrace_regs *fregs)
{
	struct ts_swapdev *swapdev = container_of(ops, struct ts_swapdev,
						  swap_out_ops);
	struct ts_store *store = swapdev->store;
	struct folio *folio;
	unsigned long flags;
	u64 first, nr, i;

	if (unlikely(READ_ONCE(swapdev->fail_swap_out_hook)))
		return;
	folio = ts_swapdev_hooked_folio(swapdev,
					(struct page *)ts_ftrace_arg(fregs, 0),
					&first, &nr);
	if (!folio)
		return;

	spin_lock_irqsave(&store->lock, flags);
	bitmap_clear(swapdev->slot_complete, first, nr);
	bitmap_set(swapdev->slot_announced, first, nr);
	spin_unlock_irqrestore(&store->lock, flags);
	/*
	 * Nor do their disk blocks, if the swap mapper mapped them: the
	 * folio is dirty, and zswap or the zeromap may keep it with no write
	 * that would tell the mapper.
	 */
	for (i = 0; i < nr; i++)
		ts_swapdev_mapper_forget(swapdev, first + i);
	ts_swapdev_count(swapdev, TS_SWAPDEV_SWAP_OUTS_SEEN, nr);
	/* Even if no write follows (the zeromap): the eviction hook needs it. */
	ts_swapdev_learn_swap_type(swapdev, ts_folio_swap_entry(folio));
}

/*
 * At the entry of mem_cgroup_swapout(@folio, @entry): reclaim is taking
 * @folio out of memory, its data in swap at @entry (written now, earlier,
 * or kept by the zeromap or zswap), under the swap cache's lock, so that
 * no swap-in of the entry can begin before this returns. 6.12 calls it
 * after the folio left the swap cache, 6.1 before: @entry says where.
 */
static void ts_swapdev_folio_evicted(unsigned long ip, unsigned long parent_ip,
				     struct ftrace_ops *ops,
				     struct ftrace_regs *fregs)
{
	struct ts_swapdev *swapdev = container_of(ops, struct ts_swapdev,
						  evict_ops);
	struct folio *folio;
	swp_entry_t entry;

	folio = (struct folio *)ts_ftrace_arg(fregs, 0);
	entry.val = ts_ftrace_arg(fregs, 1);
	if (!folio || (int)swp_type(entry) != READ_ONCE(swapdev->swap_type))
		return;
	ts_mrc_evicted(swapdev->mrc, folio, swp_offset(entry),
		       folio_nr_pages(folio));
}

/*
 * At the entry of the swap-in read (TS_SWAP_IN_FUNCTIONS): the folio is
 * locked in the swap cache, its data not read yet. Its first argument is
 * the folio, or on 6.1 its head page, which is the same address.
 *
 * Whether the device will read a slot, or zswap or the zeromap hold its
 * data, is known here: a swap-out that does not reach this device leaves
 * its slots announced (see slot_announced), and a write consumes the mark.
 * Stable while the folio is locked in the swap cache: no swap-out, write
 * or free of its slots can run. A slot that was never announced, with the
 * hook off, counts as read by the device, and if it was not, counts when
 * it is next evicted or freed (ts_mrc_settle()).
 */
static void ts_swapdev_swap_in_begins(unsigned long ip,
				      unsigned long parent_ip,
				      struct ftrace_ops *ops,
				      struct ftrace_regs *fregs)
{
	struct ts_swapdev *swapdev = container_of(ops, struct ts_swapdev,
						  swap_in_ops);
	u64 first, nr, i;

	if (!ts_swapdev_hooked_folio(swapdev,
				     (struct page *)ts_ftrace_arg(fregs, 0),
				     &first, &nr))
		return;
	for (i = 0; i < nr; i++)
		ts_mrc_swap_in_begins(swapdev->mrc, first + i,
				      !test_bit(first + i,
						swapdev->slot_announced));
}

/*
 * Call @func at the entry of the first of @names this kernel has (ftrace):
 * 0, or the error of the last one tried.
 */
static int ts_swapdev_hook(struct ftrace_ops *ops, ftrace_func_t func,
			   const char *const *names, unsigned int nr_names)
{
	unsigned int i;
	int ret = -ENOENT;

	ops->func = func;
	ops->flags = TS_FTRACE_HOOK_FLAGS;
	for (i = 0; i < nr_names && ret; i++)
		ret = ftrace_set_filter(ops, (unsigned char *)names[i],
					strlen(names[i]), 1);
	if (!ret)
		ret = register_ftrace_function(ops);
	if (ret)
		ftrace_free_filter(ops);
	return ret;
}

static void ts_swapdev_unhook(struct ftrace_ops *ops)
{
	unregister_ftrace_function(ops);
	ftrace_free_filter(ops);
}

/* The curves' hooks, or no curves. */
static void ts_swapdev_watch_evictions(struct ts_swapdev *swapdev)
{
	static const char *const evict[] = { "mem_cgroup_swapout" };
	static const char *const swap_in[] = TS_SWAP_IN_FUNCTIONS;
	int ret;

	if (!swapdev->mrc)
		return;
	ret = ts_swapdev_hook(&swapdev->evict_ops, ts_swapdev_folio_evicted,
			      evict, ARRAY_SIZE(evict));
	if (!ret) {
		ret = ts_swapdev_hook(&swapdev->swap_in_ops,
				      ts_swapdev_swap_in_begins, swap_in,
				      ARRAY_SIZE(swap_in));
		if (ret)
			ts_swapdev_unhook(&swapdev->evict_ops);
	}
	if (ret) {
		pr_warn("%s: cannot watch evictions and swap-ins (ftrace: %d): miss-ratio curves off\n",
			TS_SWAPDEV_NAME, ret);
		ts_mrc_destroy(swapdev->mrc);
		swapdev->mrc = NULL;
	}
}

static void ts_swapdev_unwatch_evictions(struct ts_swapdev *swapdev)
{
	if (!swapdev->mrc)
		return;
	ts_swapdev_unhook(&swapdev->swap_in_ops);
	ts_swapdev_unhook(&swapdev->evict_ops);
}

/* Reconciliation is safe only while this device sees every swap-out. */
static bool ts_swapdev_sees_all_swap_outs_locked(struct ts_swapdev *swapdev)
{
	return swapdev->watching_swap_outs && !swapdev->hook_lost;
}

bool ts_swapdev_sees_all_swap_outs(struct ts_swapdev *swapdev)
{
	return swapdev->watching_swap_outs && !READ_ONCE(swapdev->hook_lost);
}

/*
 * Under store->lock: a swap-out write of @slot begins. True if it shows
 * that the hook has just been lost: the slot was not announced.
 */
static bool ts_swapdev_consume_announce_locked(struct ts_swapdev *swapdev,
					       u64 slot)
{
	if (!swapdev->watching_swap_outs ||
	    __test_and_clear_bit(slot, swapdev->slot_announced))
		return false;
	ts_swapdev_count(swapdev, TS_SWAPDEV_UNSEEN_SWAP_OUTS, 1);
	if (swapdev->hook_lost)
		return false;
	/* Nothing marks a slot complete from now on, nor references it. */
	WRITE_ONCE(swapdev->hook_lost, true);
	return true;
}

static void ts_swapdev_report_lost_hook(struct ts_swapdev *swapdev, u64 slot)
{
	pr_warn("%s: a swap-out of slot %llu did not pass the hook on %s (ftrace stopped calling it): reconciliation off until the module is reloaded\n",
		TS_SWAPDEV_NAME, slot, TS_SWAP_OUT_FUNCTION);
}

static void ts_swapdev_watch_swap_outs(struct ts_swapdev *swapdev)
{
	static const char *const swap_out[] = { TS_SWAP_OUT_FUNCTION };
	int ret;

	ret = ts_swapdev_hook(&swapdev->swap_out_ops,
			      ts_swapdev_swap_out_begins, swap_out,
			      ARRAY_SIZE(swap_out));
	if (ret) {
		pr_warn("%s: cannot watch swap-outs (ftrace on %s: %d): reconciliation stays off, since swap-outs to zswap or the zeromap would leave stale slots\n",
			TS_SWAPDEV_NAME, TS_SWAP_OUT_FUNCTION, ret);
		return;
	}
	swapdev->watching_swap_outs = true;
}

static void ts_swapdev_unwatch_swap_outs(struct ts_swapdev *swapdev)
{
	if (!swapdev->watching_swap_outs)
		return;
	ts_swapdev_unhook(&swapdev->swap_out_ops);
	swapdev->watching_swap_outs = false;
}

/*
 * Reference the store block that holds the swapped-out page of @entry, for
 * a guest disk. Called under the page-table lock of a PTE that holds
 * @entry, which keeps the slot from being freed and reused meanwhile; the
 * reference is taken only if the block holds exactly that page's contents.
 */
enum ts_outcome ts_swapdev_reference(struct ts_swapdev *swapdev,
				     swp_entry_t entry, u32 *block)
{
	struct ts_store *store = swapdev->store;
	struct ts_swap_cache_region *region;
	u64 slot = swp_offset(entry);
	enum ts_outcome state;
	u32 reserve;
	void *cached;
	unsigned long flags;

	if ((int)swp_type(entry) != READ_ONCE(swapdev->swap_type) ||
	    !slot || slot >= swapdev->nr_slots)
		return TS_OUTCOME_OTHER_SWAPDEV;
	region = &swapdev->regions[slot >> TS_SWAP_CACHE_REGION_SHIFT];
	reserve = max_t(u32, store->nr_blocks >> TS_RECONCILE_RESERVE_SHIFT,
			TS_RECONCILE_RESERVE_MIN);

	spin_lock_irqsave(&store->lock, flags);
	/* Its page's bytes are a guest-disk block's, not a store block's. */
	if (test_bit(slot, swapdev->slot_mapped)) {
		state = TS_OUTCOME_SWAP_MAPPED;
		goto unlock;
	}
	/*
	 * Complete first: only a completed swap-out of this slot since swapon
	 * proves that region->mapping belongs to the live swap area.
	 */
	if (!ts_swapdev_sees_all_swap_outs_locked(swapdev) ||
	    !test_bit(slot, swapdev->slot_complete) ||
	    !READ_ONCE(region->mapping)) {
		state = TS_OUTCOME_SLOT_INCOMPLETE;
		goto unlock;
	}
	/*
	 * A folio in the swap cache is being swapped in, or holds newer
	 * contents than the slot (dirtied and not yet written back).
	 */
	rcu_read_lock();
	cached = xa_load(&region->mapping->i_pages,
			 slot - READ_ONCE(region->index_base));
	rcu_read_unlock();
	if (cached && !xa_is_value(cached)) {
		state = TS_OUTCOME_SWAP_CACHED;
		goto unlock;
	}
	if (store->nr_blocks - store->blocks_in_use < reserve ||
	    store->nr_refs >= store->max_refs) {
		state = TS_OUTCOME_STORE_FULL;
		goto unlock;
	}
	*block = swapdev->slot_block[slot];
	/* A complete slot maps the block its last write went to. */
	if (WARN_ON_ONCE(*block == TS_NO_BLOCK)) {
		state = TS_OUTCOME_SLOT_INCOMPLETE;
		goto unlock;
	}
	ts_store_get_locked(store, *block);
	store->nr_refs++;
	state = TS_OUTCOME_REFERENCED;
unlock:
	spin_unlock_irqrestore(&store->lock, flags);
	return state;
}

/* True if @entry is a slot of this swap device. */
bool ts_swapdev_owns(struct ts_swapdev *swapdev, swp_entry_t entry)
{
	return swapdev &&
	       (int)swp_type(entry) == READ_ONCE(swapdev->swap_type);
}

/*
 * Choose the block a write to @slot goes to, TS_NO_BLOCK if the store is
 * full. A block referenced only by this slot is overwritten in place; one
 * that something else also references keeps its contents for them and the
 * slot moves to a fresh block (redirect-on-write). The write holds a
 * reference of its own on the block until it completes. A @swap_out
 * consumes the slot's announcement; *@lost is set if it showed that the
 * hook was lost. *@full is set once a search for a free block failed: in
 * the same hold of the lock, nothing frees one.
 */
static u32 ts_swapdev_map_write_locked(struct ts_swapdev *swapdev, u64 slot,
				       bool swap_out, bool *lost, bool *full)
{
	struct ts_store *store = swapdev->store;
	u32 old, block;

	lockdep_assert_held(&store->lock);
	if (swap_out && ts_swapdev_consume_announce_locked(swapdev, slot))
		*lost = true;
	old = swapdev->slot_block[slot];
	__clear_bit(slot, swapdev->slot_complete);
	__clear_bit(slot, swapdev->slot_mapped);
	if (old != TS_NO_BLOCK && store->refcount[old] == 1) {
		block = old;
	} else {
		/* No block freed since the last search: do not search again. */
		if (*full || !ts_store_alloc_locked(store, slot, &block)) {
			*full = true;
			return TS_NO_BLOCK;
		}
		if (old != TS_NO_BLOCK) {
			ts_store_put_locked(store, old);
			ts_swapdev_count(swapdev,
					 TS_SWAPDEV_REDIRECTED_WRITES, 1);
		} else {
			swapdev->slots_in_use++;
		}
		/* Read without the lock: see ts_swapdev_map_reads(). */
		WRITE_ONCE(swapdev->slot_block[slot], block);
	}
	/* The write's own, until it completes: see ts_swapdev_written(). */
	ts_store_get_locked(store, block);
	return block;
}

/*
 * Whether the swap mapper takes the swap-out of @page to @slot: it does
 * only whole pages, as swap-outs are.
 */
static bool ts_swapdev_map_to_image(struct ts_swapdev *swapdev,
				    struct ts_swapdev_mapper *mapper,
				    struct bio *upper, struct bvec_iter iter,
				    u64 slot)
{
	struct bio_vec bv = bio_iter_iovec(upper, iter);

	if (bv.bv_offset || bv.bv_len < TS_BLOCK_SIZE) {
		mapper->forget(mapper, slot);
		return false;
	}
	return mapper->swap_out(mapper, bv.bv_page, slot);
}

/*
 * Map the writes of the @n slots from @slot, whose data starts at @iter of
 * @upper, to blocks (@blocks; TS_NO_BLOCK: the store is full, or the slot
 * is in *@mapped: the swap mapper took it, and it needs no write). Returns
 * the slots that are swap-outs, a bit each.
 */
static unsigned long ts_swapdev_map_writes(struct ts_swapdev *swapdev,
					   struct bio *upper,
					   struct bvec_iter iter, u64 slot,
					   unsigned int n, u32 *blocks,
					   unsigned long *mapped)
{
	struct ts_swapdev_mapper *mapper = READ_ONCE(swapdev->mapper);
	struct ts_store *store = swapdev->store;
	unsigned long swap_outs = 0, flags;
	bool lost = false, full = false;
	u64 lost_slot = U64_MAX;
	unsigned int i, nospc = 0;

	BUILD_BUG_ON(TS_LOCK_BATCH > BITS_PER_LONG);
	*mapped = 0;
	for (i = 0; i < n; i++) {
		if (ts_swapdev_note_swap_out(swapdev, bio_iter_page(upper, iter),
					     slot + i)) {
			__set_bit(i, &swap_outs);
			if (mapper &&
			    ts_swapdev_map_to_image(swapdev, mapper, upper,
						    iter, slot + i))
				__set_bit(i, mapped);
		} else if (mapper) {
			mapper->forget(mapper, slot + i);
		}
		bio_advance_iter(upper, &iter, TS_BLOCK_SIZE);
	}

	spin_lock_irqsave(&store->lock, flags);
	for (i = 0; i < n; i++) {
		if (test_bit(i, mapped)) {
			blocks[i] = TS_NO_BLOCK;
			continue;
		}
		blocks[i] = ts_swapdev_map_write_locked(swapdev, slot + i,
							test_bit(i, &swap_outs),
							&lost, &full);
		if (lost && lost_slot == U64_MAX)
			lost_slot = slot + i;
		nospc += blocks[i] == TS_NO_BLOCK;
	}
	spin_unlock_irqrestore(&store->lock, flags);

	if (unlikely(lost))
		ts_swapdev_report_lost_hook(swapdev, lost_slot);
	if (unlikely(nospc))
		ts_swapdev_count(swapdev, TS_SWAPDEV_STORE_FULL, nospc);
	ts_swapdev_count(swapdev, TS_SWAPDEV_WRITES,
			 n - nospc - hweight_long(*mapped));
	return swap_outs;
}

/*
 * The blocks that reads of the @n slots from @slot come from (TS_NO_BLOCK:
 * unmapped, reads as zeroes, unless the swap mapper mapped it: see
 * ts_swapdev_rw()). No lock: the lock never covered the read's I/O, only
 * the load of the block number, which READ_ONCE makes just as whole. What
 * keeps a swap-in's block in place until its read completes is its folio,
 * locked in the swap cache: no swap-out, free or zswap writeback touches
 * the slot meanwhile. A discard or zero-out by root on the active swap
 * device still can, as it always could.
 */
static void ts_swapdev_map_reads(struct ts_swapdev *swapdev, u64 slot,
				 unsigned int n, u32 *blocks)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		blocks[i] = READ_ONCE(swapdev->slot_block[slot + i]);
}

/*
 * A read of @slot, which maps to no store block: the swap mapper serves it
 * if it mapped the slot (true). If it did not, or no longer does, the slot
 * is loaded again: a copy before a write of the disk block gives the slot
 * its store block before it unmaps it from the disk block, under the
 * mapper's lock, which the mapper took here.
 */
static bool ts_swapdev_read_mapped(struct ts_swapdev *swapdev,
				   struct bio *upper, struct bvec_iter iter,
				   u64 slot, u32 *block)
{
	struct ts_swapdev_mapper *mapper = READ_ONCE(swapdev->mapper);

	if (!mapper)
		return false;
	if (mapper->read(mapper, upper, iter, slot))
		return true;
	*block = READ_ONCE(swapdev->slot_block[slot]);
	return false;
}

/* Drop @slot's block; false if the slot mapped to none. */
static bool ts_swapdev_unmap_locked(struct ts_swapdev *swapdev, u64 slot)
{
	u32 block = swapdev->slot_block[slot];

	__clear_bit(slot, swapdev->slot_complete);
	__clear_bit(slot, swapdev->slot_mapped);
	if (block == TS_NO_BLOCK)
		return false;
	WRITE_ONCE(swapdev->slot_block[slot], TS_NO_BLOCK);
	swapdev->slots_in_use--;
	ts_store_put_locked(swapdev->store, block);
	return true;
}

/*
 * The swap mapper maps @slot, whose swap-out begins, to a guest-disk block
 * (called under its lock): true if the store has a free block to reserve
 * for the copy that a write of that disk block needs first, beyond
 * reconciliation's reserve. The slot's store block, if any, goes, and the
 * swap-out counts as seen by the hook, as its write would.
 */
bool ts_swapdev_slot_to_image(struct ts_swapdev *swapdev, u64 slot)
{
	struct ts_store *store = swapdev->store;
	bool lost = false, room;
	unsigned long flags;
	u32 reserve;

	reserve = max_t(u32, store->nr_blocks >> TS_RECONCILE_RESERVE_SHIFT,
			TS_RECONCILE_RESERVE_MIN);
	spin_lock_irqsave(&store->lock, flags);
	room = store->nr_blocks - store->blocks_in_use >
	       (u64)reserve + store->reserved;
	if (room) {
		lost = ts_swapdev_consume_announce_locked(swapdev, slot);
		ts_swapdev_unmap_locked(swapdev, slot);
		__set_bit(slot, swapdev->slot_mapped);
		store->reserved++;
	}
	spin_unlock_irqrestore(&store->lock, flags);
	if (unlikely(lost))
		ts_swapdev_report_lost_hook(swapdev, slot);
	return room;
}

/*
 * Mapped @slot went without a copy (freed, or swapped out anew): its
 * reservation goes with it, and it maps to no image any more.
 */
void ts_swapdev_unreserve(struct ts_swapdev *swapdev, u64 slot)
{
	struct ts_store *store = swapdev->store;
	unsigned long flags;

	spin_lock_irqsave(&store->lock, flags);
	__clear_bit(slot, swapdev->slot_mapped);
	if (!WARN_ON_ONCE(!store->reserved))
		store->reserved--;
	spin_unlock_irqrestore(&store->lock, flags);
}

/*
 * A block for the copy of a disk block that mapped slots need, from their
 * reservations (which ts_swapdev_slot_to_block() then gives back).
 */
bool ts_swapdev_alloc_copy(struct ts_swapdev *swapdev, u64 near, u32 *block)
{
	struct ts_store *store = swapdev->store;
	unsigned long flags;
	bool ok;

	spin_lock_irqsave(&store->lock, flags);
	ok = ts_store_alloc_reserved_locked(store, near, block);
	spin_unlock_irqrestore(&store->lock, flags);
	return ok;
}

/* Drop the copier's own reference on @block (see ts_swapdev_alloc_copy()). */
void ts_swapdev_put_block(struct ts_swapdev *swapdev, u32 block)
{
	struct ts_store *store = swapdev->store;
	unsigned long flags;

	spin_lock_irqsave(&store->lock, flags);
	ts_store_put_locked(store, block);
	spin_unlock_irqrestore(&store->lock, flags);
}

/*
 * A copy of the guest-disk block that @slot maps to is in store block
 * @block (called under the mapper's lock): the slot maps to it now, with a
 * reference of its own, and its reservation is used up. Not complete:
 * reconciliation references only what a swap-out wrote.
 */
void ts_swapdev_slot_to_block(struct ts_swapdev *swapdev, u64 slot, u32 block)
{
	struct ts_store *store = swapdev->store;
	unsigned long flags;

	spin_lock_irqsave(&store->lock, flags);
	if (WARN_ON_ONCE(swapdev->slot_block[slot] != TS_NO_BLOCK))
		ts_swapdev_unmap_locked(swapdev, slot);
	__clear_bit(slot, swapdev->slot_mapped);
	if (!WARN_ON_ONCE(!store->reserved))
		store->reserved--;
	ts_store_get_locked(store, block);
	swapdev->slots_in_use++;
	WRITE_ONCE(swapdev->slot_block[slot], block);
	spin_unlock_irqrestore(&store->lock, flags);
}

/* The mapper starts (@mapper) or stops (NULL) with no swap area on. */
void ts_swapdev_set_mapper(struct ts_swapdev *swapdev,
			   struct ts_swapdev_mapper *mapper)
{
	WRITE_ONCE(swapdev->mapper, mapper);
}

static void ts_zero_slot(struct bio *bio, struct bvec_iter iter)
{
	unsigned int bytes = TS_BLOCK_SIZE, len;
	struct bio_vec bv;

	while (bytes) {
		bv = bio_iter_iovec(bio, iter);
		len = min(bytes, bv.bv_len);
		memzero_page(bv.bv_page, bv.bv_offset, len);
		bio_advance_iter_single(bio, &iter, len);
		bytes -= len;
	}
}

/*
 * Send @run (if any) to the backing device: a clone of @upper, which
 * shares its pages, trimmed to the run and remapped onto the run's blocks,
 * as a stacking driver remaps a bio, with no page copied or added. It
 * holds a reference on @upper (bio_inc_remaining) until it completes.
 */
static void ts_swap_run_submit(struct ts_swapdev *swapdev, struct bio *upper,
			       struct ts_swap_run *run)
{
	struct ts_store *store = swapdev->store;
	struct ts_swap_io *io;
	struct bio *bio;

	if (!run->nr_slots)
		return;
	bio = bio_alloc_clone(store->backing.bdev, upper, GFP_NOIO,
			      &swapdev->bio_set);
	/*
	 * From a mempool-backed bio_set with GFP_NOIO, a clone fails only to
	 * copy an integrity payload, which swap I/O does not carry.
	 */
	if (WARN_ON_ONCE(!bio)) {
		bool write = op_is_write(bio_op(upper));

		upper->bi_status = BLK_STS_RESOURCE;
		ts_swapdev_count(swapdev, write ? TS_SWAPDEV_WRITE_ERRORS :
						  TS_SWAPDEV_READ_ERRORS,
				 run->nr_slots);
		if (write)
			ts_swapdev_written(swapdev, run, false);
		run->nr_slots = 0;
		return;
	}
	io = container_of(bio, struct ts_swap_io, bio);
	io->swapdev = swapdev;
	io->upper = upper;
	io->run = *run;
	run->nr_slots = 0;
	bio_inc_remaining(upper);
	/*
	 * The lower bio is the swap I/O of the upper one's cgroup (the clone
	 * keeps its blkg), on the device that really does it: charged to
	 * that cgroup (swap-out runs in whoever reclaims, often kswapd) and,
	 * as REQ_SWAP, treated the way the block layer treats swap on a
	 * plain device (io.max charges swap writes but does not hold them up
	 * behind reclaim).
	 */
	bio->bi_opf = bio_op(upper) | (upper->bi_opf & (REQ_SYNC | REQ_SWAP));
	bio->bi_iter = io->run.start;
	bio->bi_iter.bi_size = io->run.nr_slots * TS_BLOCK_SIZE;
	bio->bi_iter.bi_sector = ts_store_sector(store, io->run.first_block);
	bio->bi_end_io = ts_swap_io_endio;
	submit_bio_noacct(bio);
}

/*
 * Split a read or write into lower bios, one per run of slots whose blocks
 * are consecutive in the store (one in all, when a swap area keeps the
 * layout of a plain partition). Each lower bio holds a reference on the
 * upper one, so the upper bio completes when the last of them and this
 * function are done.
 */
static void ts_swapdev_rw(struct ts_swapdev *swapdev, struct bio *upper)
{
	bool write = op_is_write(bio_op(upper));
	struct bvec_iter iter = upper->bi_iter;
	u64 slot = iter.bi_sector / TS_SECTORS_PER_BLOCK;
	struct ts_swap_run run = { .nr_slots = 0 };
	u32 blocks[TS_LOCK_BATCH];
	unsigned long swap_outs = 0, mapped = 0;
	unsigned int i, n, reads = 0, zero_reads = 0;
	bool swap_out;

	if (!IS_ALIGNED(iter.bi_sector, TS_SECTORS_PER_BLOCK) ||
	    !IS_ALIGNED(iter.bi_size, TS_BLOCK_SIZE)) {
		bio_io_error(upper);
		return;
	}
	if (write && unlikely(READ_ONCE(swapdev->delay_writes_ms)))
		msleep(READ_ONCE(swapdev->delay_writes_ms));

	while (iter.bi_size) {
		n = min_t(unsigned int, TS_LOCK_BATCH,
			  iter.bi_size / TS_BLOCK_SIZE);
		if (write)
			swap_outs = ts_swapdev_map_writes(swapdev, upper, iter,
							  slot, n, blocks,
							  &mapped);
		else
			ts_swapdev_map_reads(swapdev, slot, n, blocks);

		for (i = 0; i < n; i++, slot++) {
			swap_out = test_bit(i, &swap_outs);
			if ((write && test_bit(i, &mapped)) ||
			    (!write && blocks[i] == TS_NO_BLOCK &&
			     ts_swapdev_read_mapped(swapdev, upper, iter, slot,
						    &blocks[i]))) {
				/* No I/O here: none, or the mapper's. */
				ts_swap_run_submit(swapdev, upper, &run);
				bio_advance_iter(upper, &iter, TS_BLOCK_SIZE);
				continue;
			}
			if (!write && blocks[i] == TS_NO_BLOCK)
				zero_reads++;
			else if (!write)
				reads++;
			if (run.nr_slots &&
			    (blocks[i] != run.first_block + run.nr_slots ||
			     swap_out != run.swap_out))
				ts_swap_run_submit(swapdev, upper, &run);
			if (blocks[i] == TS_NO_BLOCK) {
				if (write)
					upper->bi_status = BLK_STS_NOSPC;
				else
					ts_zero_slot(upper, iter);
			} else {
				if (!run.nr_slots) {
					run.start = iter;
					run.first_slot = slot;
					run.first_block = blocks[i];
					run.swap_out = swap_out;
				}
				run.nr_slots++;
			}
			bio_advance_iter(upper, &iter, TS_BLOCK_SIZE);
		}
	}
	ts_swap_run_submit(swapdev, upper, &run);
	if (zero_reads)
		ts_swapdev_count(swapdev, TS_SWAPDEV_ZERO_READS, zero_reads);
	if (reads)
		ts_swapdev_count(swapdev, TS_SWAPDEV_READS, reads);
	bio_endio(upper);
}

static void ts_swapdev_discard(struct ts_swapdev *swapdev, struct bio *bio)
{
	u64 first = DIV_ROUND_UP_ULL(bio->bi_iter.bi_sector,
				     TS_SECTORS_PER_BLOCK);
	u64 end = bio_end_sector(bio) / TS_SECTORS_PER_BLOCK;
	struct ts_store *store = swapdev->store;
	unsigned long flags;
	u64 slot;

	/* Only whole slots can be dropped; partial ones keep their data. */
	for (slot = first; slot < end; slot++) {
		ts_swapdev_mapper_forget(swapdev, slot);
		spin_lock_irqsave(&store->lock, flags);
		if (ts_swapdev_unmap_locked(swapdev, slot))
			ts_swapdev_count(swapdev, TS_SWAPDEV_DISCARDS, 1);
		spin_unlock_irqrestore(&store->lock, flags);
		cond_resched();
	}
	bio_endio(bio);
}

static void ts_swapdev_submit_bio(struct bio *bio)
{
	struct ts_swapdev *swapdev = ts_swapdev_of(bio);

	switch (bio_op(bio)) {
	case REQ_OP_READ:
	case REQ_OP_WRITE:
		ts_swapdev_rw(swapdev, bio);
		break;
	case REQ_OP_DISCARD:
		ts_swapdev_discard(swapdev, bio);
		break;
	default:
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		break;
	}
}

/*
 * Called by the swap code, under swap_lock and sometimes a page-table lock,
 * with interrupts possibly off, once per slot that becomes free.
 */
static void ts_swapdev_slot_free_notify(struct block_device *bdev,
					unsigned long slot)
{
	struct ts_swapdev *swapdev = bdev->bd_disk->private_data;
	struct ts_store *store = swapdev->store;
	unsigned long flags;

	if (slot >= swapdev->nr_slots)
		return;
	/* First: a copy remaps a slot only while the mapper maps it. */
	ts_swapdev_mapper_forget(swapdev, slot);
	spin_lock_irqsave(&store->lock, flags);
	/*
	 * Announced and never written (zswap, the zeromap, or a folio whose
	 * swap was freed in swap_writepage()): nothing writes it now. A slot
	 * cannot be freed between the hook and the write: the folio in the
	 * swap cache holds it.
	 */
	__clear_bit(slot, swapdev->slot_announced);
	if (ts_swapdev_unmap_locked(swapdev, slot))
		ts_swapdev_count(swapdev, TS_SWAPDEV_FREES, 1);
	spin_unlock_irqrestore(&store->lock, flags);
	ts_mrc_slot_freed(swapdev->mrc, slot);
}

static const struct block_device_operations ts_swapdev_fops = {
	.owner			= THIS_MODULE,
	.submit_bio		= ts_swapdev_submit_bio,
	.swap_slot_free_notify	= ts_swapdev_slot_free_notify,
	.release		= ts_swapdev_release,
};

static ssize_t backing_show(struct device *dev, struct device_attribute *attr,
			    char *buf)
{
	struct ts_swapdev *swapdev = dev_to_disk(dev)->private_data;

	return sysfs_emit(buf, "%s\n", swapdev->store->path);
}
static DEVICE_ATTR_RO(backing);

static ssize_t slots_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	struct ts_swapdev *swapdev = dev_to_disk(dev)->private_data;

	return sysfs_emit(buf, "%llu\n", swapdev->nr_slots);
}
static DEVICE_ATTR_RO(slots);

static ssize_t store_blocks_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct ts_swapdev *swapdev = dev_to_disk(dev)->private_data;

	return sysfs_emit(buf, "%u\n", swapdev->store->nr_blocks);
}
static DEVICE_ATTR_RO(store_blocks);

static ssize_t block_size_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", TS_BLOCK_SIZE);
}
static DEVICE_ATTR_RO(block_size);

static struct attribute *ts_swapdev_attrs[] = {
	&dev_attr_backing.attr,
	&dev_attr_slots.attr,
	&dev_attr_store_blocks.attr,
	&dev_attr_block_size.attr,
	NULL,
};

static const struct attribute_group ts_swapdev_attr_group = {
	.name	= "tesseract",
	.attrs	= ts_swapdev_attrs,
};

static const struct attribute_group *ts_swapdev_attr_groups[] = {
	&ts_swapdev_attr_group,
	NULL,
};

/* One counter of ts_swapdev_stats: @data is its address on every CPU. */
static int ts_percpu_counter_get(void *data, u64 *val)
{
	u64 __percpu *counter = (u64 __percpu __force *)data;
	const u64 *mine;
	u64 sum = 0;
	int cpu;

	/* Racing with the adds, as any counter read is. */
	for_each_possible_cpu(cpu) {
		mine = per_cpu_ptr(counter, cpu);
		sum += READ_ONCE(*mine);
	}
	*val = sum;
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_percpu_counter_fops, ts_percpu_counter_get, NULL,
			 "%llu\n");

static int ts_slots_in_use_get(void *data, u64 *val)
{
	struct ts_swapdev *swapdev = data;
	unsigned long flags;

	spin_lock_irqsave(&swapdev->store->lock, flags);
	*val = swapdev->slots_in_use;
	spin_unlock_irqrestore(&swapdev->store->lock, flags);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_slots_in_use_fops, ts_slots_in_use_get, NULL,
			 "%llu\n");

static int ts_blocks_in_use_get(void *data, u64 *val)
{
	struct ts_store *store = data;
	unsigned long flags;

	spin_lock_irqsave(&store->lock, flags);
	*val = store->blocks_in_use;
	spin_unlock_irqrestore(&store->lock, flags);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_blocks_in_use_fops, ts_blocks_in_use_get, NULL,
			 "%llu\n");

static int ts_release_hold_max_get(void *data, u64 *val)
{
	struct ts_store *store = data;

	*val = div_u64(READ_ONCE(store->release_hold_max_ns), NSEC_PER_USEC);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_release_hold_max_fops, ts_release_hold_max_get,
			 NULL, "%llu\n");

/* Writing a slot number takes a reference on the block it maps to. */
static int ts_hold_set(void *data, u64 slot)
{
	struct ts_swapdev *swapdev = data;
	struct ts_store *store = swapdev->store;
	int ret = 0;
	u32 block;
	unsigned long flags;

	if (slot >= swapdev->nr_slots)
		return -EINVAL;
	spin_lock_irqsave(&store->lock, flags);
	block = swapdev->slot_block[slot];
	if (block == TS_NO_BLOCK) {
		ret = -ENODATA;
	} else if (swapdev->nr_holds == TS_SWAPDEV_MAX_HOLDS) {
		ret = -ENOSPC;
	} else {
		ts_store_get_locked(store, block);
		swapdev->holds[swapdev->nr_holds++] = block;
	}
	spin_unlock_irqrestore(&store->lock, flags);
	return ret;
}

static int ts_hold_get(void *data, u64 *val)
{
	struct ts_swapdev *swapdev = data;
	unsigned long flags;

	spin_lock_irqsave(&swapdev->store->lock, flags);
	*val = swapdev->nr_holds;
	spin_unlock_irqrestore(&swapdev->store->lock, flags);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_hold_fops, ts_hold_get, ts_hold_set, "%llu\n");

static void ts_swapdev_release_holds(struct ts_swapdev *swapdev)
{
	struct ts_store *store = swapdev->store;
	unsigned long flags;

	spin_lock_irqsave(&store->lock, flags);
	while (swapdev->nr_holds)
		ts_store_put_locked(store, swapdev->holds[--swapdev->nr_holds]);
	spin_unlock_irqrestore(&store->lock, flags);
}

/* Whatever is written: a number is not needed to say "all". */
static ssize_t ts_release_holds_write(struct file *file,
				      const char __user *buf, size_t len,
				      loff_t *ppos)
{
	ts_swapdev_release_holds(file->private_data);
	return len;
}

static const struct file_operations ts_release_holds_fops = {
	.owner	= THIS_MODULE,
	.open	= simple_open,
	.write	= ts_release_holds_write,
	.llseek	= noop_llseek,
};

static int ts_swap_out_hook_show(struct seq_file *m, void *v)
{
	struct ts_swapdev *swapdev = m->private;
	const char *state = "off";

	if (swapdev->watching_swap_outs)
		state = READ_ONCE(swapdev->hook_lost) ? "lost" : "watching";
	seq_printf(m, "%s\n", state);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ts_swap_out_hook);

static void ts_swapdev_debugfs_init(struct ts_swapdev *swapdev)
{
	struct dentry *dir;
	size_t i;

	dir = debugfs_create_dir(TS_SWAPDEV_NAME, ts_debugfs_root);
	swapdev->debugfs = dir;
	BUILD_BUG_ON(ARRAY_SIZE(ts_swapdev_counter_names) !=
		     TS_SWAPDEV_NR_COUNTERS);
	for (i = 0; i < TS_SWAPDEV_NR_COUNTERS; i++)
		debugfs_create_file_unsafe(ts_swapdev_counter_names[i], 0444,
					   dir, (void __force *)
					   &swapdev->stats->count[i],
					   &ts_percpu_counter_fops);
	debugfs_create_file_unsafe("slots_in_use", 0444, dir, swapdev,
				   &ts_slots_in_use_fops);
	debugfs_create_file_unsafe("blocks_in_use", 0444, dir, swapdev->store,
				   &ts_blocks_in_use_fops);
	debugfs_create_u64("slots_total", 0444, dir, &swapdev->nr_slots);
	debugfs_create_u32("blocks_total", 0444, dir,
			   &swapdev->store->nr_blocks);
	debugfs_create_file_unsafe("release_hold_max_us", 0444, dir,
				   swapdev->store, &ts_release_hold_max_fops);
	debugfs_create_u32("release_batch_max", 0444, dir,
			   &swapdev->store->release_batch_max);
	debugfs_create_file_unsafe("hold", 0600, dir, swapdev, &ts_hold_fops);
	debugfs_create_file("release_holds", 0200, dir, swapdev,
			    &ts_release_holds_fops);
	ts_debugfs_create_delay_ms("delay_writes_ms", dir,
				   &swapdev->delay_writes_ms);
	debugfs_create_bool("fail_swap_out_hook", 0600, dir,
			    &swapdev->fail_swap_out_hook);
	debugfs_create_file("swap_out_hook", 0444, dir, swapdev,
			    &ts_swap_out_hook_fops);
}

int ts_swapdev_create(struct ts_store *store, u64 nr_slots,
		      struct ts_swapdev **swapdevp)
{
	struct ts_swapdev *swapdev;
	struct gendisk *disk;
	int ret;

	swapdev = kzalloc(sizeof(*swapdev), GFP_KERNEL);
	if (!swapdev)
		return -ENOMEM;
	swapdev->store = store;
	swapdev->nr_slots = nr_slots;
	swapdev->swap_type = -1;
	swapdev->nr_regions = DIV_ROUND_UP_ULL(nr_slots,
					       1UL << TS_SWAP_CACHE_REGION_SHIFT);
	swapdev->regions = kvcalloc(swapdev->nr_regions,
				    sizeof(*swapdev->regions), GFP_KERNEL);

	swapdev->slot_block = kvmalloc_array(nr_slots,
					     sizeof(*swapdev->slot_block),
					     GFP_KERNEL);
	swapdev->slot_complete = kvcalloc(BITS_TO_LONGS(nr_slots),
					  sizeof(unsigned long), GFP_KERNEL);
	swapdev->slot_mapped = kvcalloc(BITS_TO_LONGS(nr_slots),
					sizeof(unsigned long), GFP_KERNEL);
	swapdev->slot_announced = kvcalloc(BITS_TO_LONGS(nr_slots),
					   sizeof(unsigned long), GFP_KERNEL);
	swapdev->stats = alloc_percpu(struct ts_swapdev_stats);
	if (!swapdev->slot_block || !swapdev->slot_complete ||
	    !swapdev->slot_announced || !swapdev->slot_mapped ||
	    !swapdev->regions || !swapdev->stats) {
		pr_err("%s: no memory for a table of %llu slots\n",
		       TS_SWAPDEV_NAME, nr_slots);
		ret = -ENOMEM;
		goto free_tables;
	}
	memset(swapdev->slot_block, 0xff,
	       nr_slots * sizeof(*swapdev->slot_block));

	/* The rescuer keeps bios flowing when allocated inside submit_bio. */
	ret = bioset_init(&swapdev->bio_set, TS_SWAPDEV_BIO_POOL,
			  offsetof(struct ts_swap_io, bio),
			  BIOSET_NEED_RESCUER);
	if (ret)
		goto free_tables;

	/* Before the hooks, which stamp slots. */
	ret = ts_mrc_create(nr_slots, &swapdev->mrc);
	if (ret)
		goto free_bioset;
	ts_swapdev_watch_evictions(swapdev);

	/* Before the device exists: no swap-out may go unseen. */
	ts_swapdev_watch_swap_outs(swapdev);

	ret = register_blkdev(0, "tsswap");
	if (ret < 0)
		goto unwatch;
	swapdev->major = ret;

	disk = ts_alloc_disk(UINT_MAX);
	if (IS_ERR(disk)) {
		ret = PTR_ERR(disk);
		goto unregister;
	}
	disk->major = swapdev->major;
	disk->first_minor = 0;
	disk->minors = 1;
	disk->flags |= GENHD_FL_NO_PART;
	disk->fops = &ts_swapdev_fops;
	disk->private_data = swapdev;
	strscpy(disk->disk_name, TS_SWAPDEV_NAME, DISK_NAME_LEN);
	set_capacity(disk, nr_slots * TS_SECTORS_PER_BLOCK);
	swapdev->disk = disk;
	/* Nothing can swapon the device before it is added. */
	WRITE_ONCE(swapdev->bdev_mapping, ts_bdev_mapping(disk->part0));

	ret = device_add_disk(NULL, disk, ts_swapdev_attr_groups);
	if (ret)
		goto put_disk;

	ts_swapdev_debugfs_init(swapdev);
	pr_info("%s: %llu slots of %u bytes on %s\n", TS_SWAPDEV_NAME,
		nr_slots, TS_BLOCK_SIZE, store->path);
	*swapdevp = swapdev;
	return 0;

put_disk:
	put_disk(disk);
unregister:
	unregister_blkdev(swapdev->major, "tsswap");
unwatch:
	ts_swapdev_unwatch_swap_outs(swapdev);
	ts_swapdev_unwatch_evictions(swapdev);
	ts_mrc_destroy(swapdev->mrc);
free_bioset:
	bioset_exit(&swapdev->bio_set);
free_tables:
	kvfree(swapdev->regions);
	kvfree(swapdev->slot_announced);
	kvfree(swapdev->slot_mapped);
	kvfree(swapdev->slot_complete);
	kvfree(swapdev->slot_block);
	free_percpu(swapdev->stats);
	kfree(swapdev);
	return ret;
}

void ts_swapdev_destroy(struct ts_swapdev *swapdev)
{
	struct ts_store *store = swapdev->store;
	u64 slot;
	unsigned long flags;

	debugfs_remove(swapdev->debugfs);
	del_gendisk(swapdev->disk);
	put_disk(swapdev->disk);
	unregister_blkdev(swapdev->major, "tsswap");
	ts_swapdev_unwatch_swap_outs(swapdev);
	ts_swapdev_unwatch_evictions(swapdev);
	ts_mrc_destroy(swapdev->mrc);

	ts_swapdev_release_holds(swapdev);
	/* Whatever mkswap or a plain writer left behind. */
	for (slot = 0; slot < swapdev->nr_slots; slot++) {
		spin_lock_irqsave(&store->lock, flags);
		ts_swapdev_unmap_locked(swapdev, slot);
		spin_unlock_irqrestore(&store->lock, flags);
		if (!(slot % 4096))
			cond_resched();
	}

	bioset_exit(&swapdev->bio_set);
	kvfree(swapdev->regions);
	kvfree(swapdev->slot_announced);
	kvfree(swapdev->slot_mapped);
	kvfree(swapdev->slot_complete);
	kvfree(swapdev->slot_block);
	free_percpu(swapdev->stats);
	kfree(swapdev);
}
