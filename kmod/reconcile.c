// SPDX-License-Identifier: GPL-2.0
/*
 * Reconciliation: a guest write of a page that the host has swapped out to
 * our swap device becomes a reference from the guest disk block to the
 * store block that already holds the page, instead of a swap-in and a data
 * write. Guest disks are known by id and own their references.
 *
 * Changes of the reference maps are journalled (journal.c) when the guest
 * flushes its disk; until then they are pending in the disk.
 *
 * The decision is taken under the page-table lock of the guest page (see
 * DESIGN section 4): while the PTE holds swap entry S, slot S can be
 * neither freed nor reused for another page, so the block referenced is
 * exactly this page's contents and never another process's.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bvec.h>
#include <linux/debugfs.h>
#include <linux/falloc.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pgtable.h>
#include <linux/rwsem.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <linux/uio.h>
#include <linux/userfaultfd_k.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <uapi/linux/tesseract_store.h>

#include "tesseract.h"

#define CREATE_TRACE_POINTS
#include "trace.h"

bool ts_reconcile_param = true;

/*
 * The store's device keeps nothing over its own restart: a reference to
 * one of its blocks would outlive the block. Set and read under the
 * module's kernel_param_lock, with the parameter.
 */
static bool ts_reconcile_refused;

static int ts_reconcile_param_set(const char *val,
				  const struct kernel_param *kp)
{
	bool on;
	int ret;

	/* A bare "reconcile" at load means on, as for any bool. */
	ret = ts_param_bool_value(val, kp, &on);
	if (ret)
		return ret;
	if (on && ts_reconcile_refused) {
		pr_err("reconcile: not on: the store is formatted volatile (tesseractctl format --volatile), and references to its blocks would not survive its device\n");
		return -EINVAL;
	}
	WRITE_ONCE(*(bool *)kp->arg, on);
	return 0;
}

static const struct kernel_param_ops ts_reconcile_param_ops = {
	.flags = KERNEL_PARAM_OPS_FL_NOARG,
	.set = ts_reconcile_param_set,
	.get = param_get_bool,
};

module_param_cb(reconcile, &ts_reconcile_param_ops, &ts_reconcile_param,
		0644);
__MODULE_PARM_TYPE(reconcile, "bool");
MODULE_PARM_DESC(reconcile,
		 "Turn guest writes of host-swapped pages into references to their swap blocks (default: on; refused on a volatile store)");

/*
 * One disk's share of the store's references: without it one guest could
 * take all of them (and the blocks they pin) and leave none for the
 * others. 0: no limit but the store's.
 */
static unsigned int ts_disk_max_refs;
module_param_named(disk_max_refs, ts_disk_max_refs, uint, 0644);
MODULE_PARM_DESC(disk_max_refs,
		 "Most references one guest disk may hold, in 4 KiB blocks (default 0: no limit but the store's)");

/* Set at load, when a store and swap device exist; fixed until unload. */
static struct ts_store *ts_store;
static struct ts_swapdev *ts_swapdev;

/*
 * A guest disk. refs maps a disk block (4 KiB) to xa_mk_value(store block);
 * each entry holds one reference on its block. Every change to refs is
 * also appended to pending, the records the next commit makes durable; the
 * block whose reference a record replaced (pending_old, TS_NO_BLOCK if
 * none) stays allocated until then, so that a checkpoint taken meanwhile
 * can still name it (ts_disks_write_refs()). Disks outlive their devices,
 * to be attached again by id.
 *
 * Locality recovery (locality.c) moves referenced blocks: back into the
 * image (cleaning) or into guest order in the store (compaction). Each
 * holds the disk's move_lock over a run's I/O, so that a guest request on
 * the same blocks waits for the run instead of racing it; cleaning without
 * ts_maps_sem, so that no checkpoint waits for an image.
 *
 * A disk's references belong to the identity of the backend they were
 * taken with (ident.c), recorded before its first ADD record (a BIND).
 * A backend of another identity that attaches the id while they exist
 * gets a disk of its own, "mismatched": outside the lookups by id, empty,
 * and it takes no references, which would have to be journalled under the
 * same id. The references wait, detached, to be forgotten.
 */
struct ts_disk {
	struct list_head node;		/* in ts_disks, under ts_disks_lock */
	u64 id;
	struct file *image;		/* while attached; under ts_disks_lock */
	/*
	 * The swap mapper's view of the image, while attached (NULL: not
	 * followed). Set before the disk is attached, and cleared under
	 * move_lock, which a cleaning run holds over its write.
	 */
	struct ts_map_disk *map;
	unsigned int users;		/* pins; under ts_disks_lock */
	struct ts_ident ident;		/* set at attach, under ts_disks_lock */
	bool mismatch;			/* see above; fixed */
	bool forgetting;		/* being forgotten; under ts_disks_lock */
	bool detaching;			/* see ts_disk_detach(); ts_disks_lock */
	bool ident_logged;		/* its BIND is pending or durable */
	bool ident_unit;		/* holds a store->nr_refs unit for it */
	struct xarray refs;
	atomic_long_t nr_refs;
	atomic_t flattening;		/* flattens running: no new references */
	unsigned long last_io;		/* jiffies of the last guest request */

	/*
	 * A guest request that replaces referenced data drops the references
	 * first and writes the image after. It holds this for reading from
	 * one to the other, and a commit of this disk's changes takes it for
	 * writing to count its records, so that a commit never makes a drop
	 * durable before the data that replaces it is written. (The request is not complete, so
	 * either the old or the new contents are fine after a crash; the
	 * image's contents from before the reference are not.) Per disk, and
	 * never wanted by a checkpoint, which leaves out the drops that were
	 * not committed: a request of one guest, which may wait on its image
	 * or on faults in its memory, holds up no other guest. Taken before
	 * ts_maps_sem.
	 */
	struct rw_semaphore replace_sem;

	/*
	 * Held by every change of refs, from its decision to its record,
	 * and by a cleaning run over its copy into the image as well: a
	 * guest request on the run's blocks waits for the run instead of
	 * racing it, holding nothing a checkpoint needs. Taken after
	 * replace_sem, before ts_maps_sem.
	 */
	struct mutex move_lock;

	/*
	 * Changes of refs and pending, and what follows, under ts_maps_sem
	 * for reading; a checkpoint settles pending under it for writing.
	 */
	struct mutex lock;
	struct ts_record *pending;
	u32 *pending_old;		/* per pending record */
	unsigned int nr_pending, max_pending;
	u64 pending_base;		/* records settled before pending[0] */
	u32 *frees;			/* of a forget, until it is committed */
	unsigned int nr_frees, max_frees;
	bool ckpt_refs;			/* in the checkpoint being written */
	u64 refs_changes;		/* ever, to tell a map that changed */
	u64 compact_from;		/* where compaction goes on looking */
	u64 sweep_from;			/* refs_changes when a sweep began */
	u64 compacted_at;		/* refs_changes when one found no work */
	u32 compact_near;		/* store block after the last moved run */

	struct ts_locality_stats stats;	/* its share of ts_locality_totals */

	/*
	 * Commits of a guest that does not flush, off its requests' path
	 * (ts_disk_commit_later()). Commits of the disk take commit_lock in
	 * turn, before anything else; it guards image_error, an image fsync
	 * error that a commit other than the guest's flush saw, kept for
	 * that flush (ts_disk_sync_for()).
	 */
	struct work_struct commit_work;
	struct mutex commit_lock;	/* see above */
	int image_error;
};

/*
 * What a checkpoint is for: the records of @disk before @end (counted from
 * its first, pending_base) have their data durable.
 */
struct ts_ckpt_for {
	struct ts_disk *disk;
	u64 end;
};

/*
 * Records a disk gathers before the commit worker makes them durable, and
 * how many more before a guest request waits for a commit itself: their
 * memory stays bounded when the worker falls behind a guest that never
 * flushes.
 */
#define TS_DISK_PENDING_COMMIT	1024
#define TS_DISK_PENDING_LIMIT	(8 * TS_DISK_PENDING_COMMIT)

/*
 * The commit workers. They give the store back the blocks of dropped
 * references, which swap-outs to our device wait for under memory
 * pressure: a rescuer keeps them going when no kworker can be made.
 */
static struct workqueue_struct *ts_commit_wq;

static LIST_HEAD(ts_disks);
static DEFINE_MUTEX(ts_disks_lock);
/*
 * Held for reading by every change of a reference map or its pending
 * records, for writing by a checkpoint, which needs all of them still.
 * Nobody holds it over a guest's memory or an image's I/O. Taken before
 * ts_disks_lock and any disk's lock.
 */
static DECLARE_RWSEM(ts_maps_sem);

/* What locality recovery did since load, all disks (debugfs). */
struct ts_locality_stats ts_locality_totals;

/*
 * Fault injection for tests (debugfs fail_ref_alloc): this many of the next
 * reservations of room for reference-map changes fail as if memory were
 * short. A kvmalloc failure cannot be provoked on demand otherwise.
 */
static atomic_t ts_fail_ref_alloc;
static struct dentry *ts_fail_ref_alloc_debugfs;

static int ts_fail_ref_alloc_get(void *data, u64 *val)
{
	*val = atomic_read(&ts_fail_ref_alloc);
	return 0;
}

static int ts_fail_ref_alloc_set(void *data, u64 val)
{
	if (val > INT_MAX)
		return -EINVAL;
	atomic_set(&ts_fail_ref_alloc, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_fail_ref_alloc_fops, ts_fail_ref_alloc_get,
			 ts_fail_ref_alloc_set, "%llu\n");

/*
 * Whether reconciliation may use @store, just opened: not if its device
 * keeps nothing over its own restart. From then on the parameter refuses
 * to turn it on. 0 or -EINVAL, with the reason logged.
 */
int ts_reconcile_accept_store(const struct ts_store *store)
{
	int ret = 0;

	kernel_param_lock(THIS_MODULE);
	if (store->volatile_device && ts_reconcile_param) {
		pr_err("backing=%s: formatted volatile (tesseractctl format --volatile): references to its blocks would not survive its device; load with reconcile=0\n",
		       store->path);
		ret = -EINVAL;
	} else {
		ts_reconcile_refused = store->volatile_device;
	}
	kernel_param_unlock(THIS_MODULE);
	return ret;
}

int ts_reconcile_start(struct ts_store *store, struct ts_swapdev *swapdev)
{
	BUILD_BUG_ON(PAGE_SIZE != TS_BLOCK_SIZE);
	ts_commit_wq = alloc_workqueue("tesseract_commit",
				       WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!ts_commit_wq)
		return -ENOMEM;
	ts_store = store;
	ts_swapdev = swapdev;
	atomic_set(&ts_fail_ref_alloc, 0);
	ts_fail_ref_alloc_debugfs =
		debugfs_create_file_unsafe("fail_ref_alloc", 0600,
					   ts_debugfs_root, NULL,
					   &ts_fail_ref_alloc_fops);
	return 0;
}

/* Disk identity events since load (debugfs). */
atomic64_t ts_identity_mismatches;
atomic64_t ts_disks_forgotten;

static void ts_disk_free(struct ts_store *store, struct ts_disk *disk)
{
	unsigned long flags;

	/* Its BIND goes out of the checkpoints with it. */
	if (disk->ident_unit) {
		spin_lock_irqsave(&store->lock, flags);
		store->nr_refs--;
		spin_unlock_irqrestore(&store->lock, flags);
	}
	list_del(&disk->node);
	xa_destroy(&disk->refs);
	kvfree(disk->pending);
	kvfree(disk->pending_old);
	kvfree(disk->frees);
	kfree(disk);
}

static void ts_disk_settle(struct ts_store *store, struct ts_disk *disk,
			   unsigned int nr);
static int ts_checkpoint_all(struct ts_disk *disk, u64 end);
static int ts_disks_write_refs(struct ts_ckpt_writer *w, void *arg);

/* Drop every disk and its references, durable or not (unload, failure). */
void ts_disks_forget(struct ts_store *store)
{
	struct ts_disk *disk, *next;
	unsigned long x, n, flags;
	void *entry;

	mutex_lock(&ts_disks_lock);
	list_for_each_entry_safe(disk, next, &ts_disks, node) {
		WARN_ON(disk->image);
		n = 0;
		spin_lock_irqsave(&store->lock, flags);
		xa_for_each(&disk->refs, x, entry) {
			ts_store_put_locked(store, xa_to_value(entry));
			store->nr_refs--;
			if (!(++n % TS_STORE_LOCK_BATCH)) {
				spin_unlock_irqrestore(&store->lock, flags);
				cond_resched();
				spin_lock_irqsave(&store->lock, flags);
			}
		}
		spin_unlock_irqrestore(&store->lock, flags);
		ts_disk_settle(store, disk, disk->nr_pending);
		ts_disk_free(store, disk);
	}
	mutex_unlock(&ts_disks_lock);
}

/* Unload: a checkpoint, so that the next load replays no journal. */
void ts_reconcile_stop(void)
{
	debugfs_remove(ts_fail_ref_alloc_debugfs);
	ts_fail_ref_alloc_debugfs = NULL;
	if (ts_store) {
		ts_checkpoint_all(NULL, 0);
		ts_disks_forget(ts_store);
	}
	ts_store = NULL;
	ts_swapdev = NULL;
	/* Every disk was detached, its work cancelled: nothing is queued. */
	if (ts_commit_wq)
		destroy_workqueue(ts_commit_wq);
	ts_commit_wq = NULL;
}

/* Reconciliation needs a swap device to reference. */
bool ts_reconcile_available(void)
{
	return ts_swapdev && READ_ONCE(ts_reconcile_param) &&
	       ts_swapdev_sees_all_swap_outs(ts_swapdev);
}

/* The disk that owns @id's references (not a mismatched one). */
static struct ts_disk *ts_disk_find_locked(u64 id)
{
	struct ts_disk *disk;

	lockdep_assert_held(&ts_disks_lock);
	list_for_each_entry(disk, &ts_disks, node)
		if (disk->id == id && !disk->mismatch)
			return disk;
	return NULL;
}

/* Is @id attached, by its own disk or a mismatched one? */
static bool ts_id_attached_locked(u64 id)
{
	struct ts_disk *disk;

	lockdep_assert_held(&ts_disks_lock);
	list_for_each_entry(disk, &ts_disks, node)
		if (disk->id == id && disk->image)
			return true;
	return false;
}

static void ts_disk_commit_work(struct work_struct *work);

static struct ts_disk *ts_disk_new_locked(u64 id)
{
	struct ts_disk *disk = kzalloc(sizeof(*disk), GFP_KERNEL);

	if (!disk)
		return NULL;
	disk->id = id;
	xa_init(&disk->refs);
	init_rwsem(&disk->replace_sem);
	mutex_init(&disk->move_lock);
	mutex_init(&disk->lock);
	INIT_WORK(&disk->commit_work, ts_disk_commit_work);
	mutex_init(&disk->commit_lock);
	disk->compacted_at = U64_MAX;
	list_add(&disk->node, &ts_disks);
	return disk;
}

/*
 * Does nothing need the disk: not attached, not pinned or being forgotten,
 * with no references and nothing left to commit?
 */
static bool ts_disk_unused_locked(struct ts_disk *disk)
{
	lockdep_assert_held(&ts_disks_lock);
	return !disk->image && !disk->users && !disk->forgetting &&
	       !disk->detaching && !atomic_long_read(&disk->nr_refs) &&
	       !disk->nr_pending && !disk->nr_frees;
}

static void ts_disk_free_unused_locked(struct ts_disk *disk)
{
	if (ts_disk_unused_locked(disk))
		ts_disk_free(ts_store, disk);
}

/* Has the disk references, or changes of them not yet durable? */
static bool ts_disk_holds_refs_locked(struct ts_disk *disk)
{
	lockdep_assert_held(&ts_disks_lock);
	return atomic_long_read(&disk->nr_refs) || disk->nr_pending ||
	       disk->nr_frees;
}

/*
 * @id's references exist, of another identity than @ident: the backend
 * gets a mismatched disk of its own, and the operator a line that says
 * what to do.
 */
static struct ts_disk *ts_disk_mismatch_locked(struct ts_disk *owner,
					       const struct ts_ident *ident)
{
	struct ts_disk *disk;

	atomic64_inc(&ts_identity_mismatches);
	pr_warn("disk %llx: its %lu references belong to another backend identity (%s %08x%016llx, this one is %s %08x%016llx): attached empty, without reconciliation; they stay until tesseractctl disk forget %llx\n",
		owner->id, atomic_long_read(&owner->nr_refs),
		ts_ident_kind_name(owner->ident.kind), owner->ident.fp_lo,
		owner->ident.fp_hi, ts_ident_kind_name(ident->kind),
		ident->fp_lo, ident->fp_hi, owner->id);
	disk = ts_disk_new_locked(owner->id);
	if (disk)
		disk->mismatch = true;
	return disk;
}

/*
 * A disk by id, attached to the caller with its image (which commits make
 * durable before the records that depend on it) of identity @ident.
 * ERR_PTR(-EBUSY) if the id is attached already or being forgotten. The
 * id's references come with it only if they belong to @ident.
 */
struct ts_disk *ts_disk_attach(u64 id, struct file *image,
			       const struct ts_ident *ident)
{
	struct ts_map_disk *map = ts_map_disk_add(image);
	struct ts_disk *disk;

	mutex_lock(&ts_disks_lock);
	disk = ts_disk_find_locked(id);
	if (ts_id_attached_locked(id) ||
	    (disk && (disk->forgetting || disk->detaching))) {
		disk = ERR_PTR(-EBUSY);
	} else if (disk && !ts_disk_holds_refs_locked(disk)) {
		/* Nothing to protect: the disk is the new backend's. */
		if (!ts_ident_equal(&disk->ident, ident)) {
			disk->ident = *ident;
			disk->ident_logged = false;
			/* No commit runs on a detached disk. */
			WRITE_ONCE(disk->image_error, 0);
		}
	} else if (disk && ts_ident_equal(&disk->ident, ident)) {
		pr_info("disk %llx attached again with %lu references\n", id,
			atomic_long_read(&disk->nr_refs));
	} else if (disk) {
		disk = ts_disk_mismatch_locked(disk, ident);
	} else {
		disk = ts_disk_new_locked(id);
		if (disk)
			disk->ident = *ident;
	}
	if (!disk)
		disk = ERR_PTR(-ENOMEM);
	if (!IS_ERR(disk)) {
		disk->image = get_file(image);
		disk->map = map;
		map = NULL;
	}
	mutex_unlock(&ts_disks_lock);
	ts_map_disk_remove(map);
	return disk;
}

/* Attached with another identity than its id's references? */
bool ts_disk_identity_mismatch(struct ts_disk *disk)
{
	return disk->mismatch;
}

/*
 * Let go of a disk: its changes are committed (the device has drained its
 * requests), then it waits for its id to be attached again, or is freed if
 * it has no references.
 */
int ts_disk_detach(struct ts_disk *disk)
{
	struct ts_map_disk *map;
	struct file *image;
	int ret;

	/* No request queues it again: the device has drained them. */
	cancel_work_sync(&disk->commit_work);
	/*
	 * Not the guest's flush: an image error kept for the guest stays,
	 * for the next backend of this disk's identity to report.
	 */
	ret = ts_disk_sync(disk);
	if (ret)
		pr_err("disk %llx: changes since the last flush not committed (%d)\n",
		       disk->id, ret);
	mutex_lock(&ts_disks_lock);
	image = disk->image;
	disk->image = NULL;
	disk->detaching = true;
	mutex_unlock(&ts_disks_lock);
	/*
	 * Swapped-out pages mapped to the image get copies of their own. A
	 * cleaning run that took the image before looks again under
	 * move_lock, and finds it gone: none writes it without the map.
	 */
	mutex_lock(&disk->move_lock);
	map = disk->map;
	disk->map = NULL;
	mutex_unlock(&disk->move_lock);
	ts_map_disk_remove(map);
	mutex_lock(&ts_disks_lock);
	disk->detaching = false;
	ts_disk_free_unused_locked(disk);
	mutex_unlock(&ts_disks_lock);
	fput(image);
	return ret;
}

/*
 * The disk with id @id, pinned until ts_disk_put(); NULL if unknown. The
 * one with the id's references, else a mismatched one that is attached.
 */
struct ts_disk *ts_disk_get(u64 id)
{
	struct ts_disk *disk, *d;

	mutex_lock(&ts_disks_lock);
	disk = ts_disk_find_locked(id);
	if (!disk) {
		list_for_each_entry(d, &ts_disks, node)
			if (d->id == id && d->image)
				disk = d;
	}
	if (disk)
		disk->users++;
	mutex_unlock(&ts_disks_lock);
	return disk;
}

/*
 * The first attached disk after @prev (NULL: from the start), pinned; @prev
 * is let go. NULL at the end of the list.
 */
struct ts_disk *ts_disk_next_attached(struct ts_disk *prev)
{
	struct list_head *pos;
	struct ts_disk *disk = NULL;

	mutex_lock(&ts_disks_lock);
	for (pos = prev ? prev->node.next : ts_disks.next; pos != &ts_disks;
	     pos = pos->next) {
		disk = list_entry(pos, struct ts_disk, node);
		if (disk->image) {
			disk->users++;
			break;
		}
		disk = NULL;
	}
	if (prev) {
		prev->users--;
		ts_disk_free_unused_locked(prev);
	}
	mutex_unlock(&ts_disks_lock);
	return disk;
}

void ts_disk_replace_begin(struct ts_disk *disk)
{
	down_read(&disk->replace_sem);
}

void ts_disk_replace_end(struct ts_disk *disk)
{
	up_read(&disk->replace_sem);
}

void ts_disk_put(struct ts_disk *disk)
{
	mutex_lock(&ts_disks_lock);
	disk->users--;
	ts_disk_free_unused_locked(disk);
	mutex_unlock(&ts_disks_lock);
}

/* The disk's image, with a reference for the caller; NULL if detached. */
static struct file *ts_disk_image_get(struct ts_disk *disk)
{
	struct file *image = NULL;

	mutex_lock(&ts_disks_lock);
	if (disk->image)
		image = get_file(disk->image);
	mutex_unlock(&ts_disks_lock);
	return image;
}

bool ts_disk_attached(struct ts_disk *disk)
{
	return READ_ONCE(disk->image);
}

/* A guest request: locality recovery waits for the disk to go idle. */
void ts_disk_note_io(struct ts_disk *disk)
{
	unsigned long now = jiffies;

	if (READ_ONCE(disk->last_io) != now)
		WRITE_ONCE(disk->last_io, now);
}

unsigned long ts_disk_idle_jiffies(struct ts_disk *disk)
{
	return jiffies - READ_ONCE(disk->last_io);
}

const struct ts_locality_stats *ts_disk_stats(struct ts_disk *disk)
{
	return &disk->stats;
}

/* While a flatten runs, the disk takes no new references. */
void ts_disk_flatten_begin(struct ts_disk *disk)
{
	atomic_inc(&disk->flattening);
}

void ts_disk_flatten_end(struct ts_disk *disk)
{
	atomic_dec(&disk->flattening);
}

bool ts_disk_flattening(struct ts_disk *disk)
{
	return atomic_read(&disk->flattening);
}

/* Call @fn for every known disk, under the list lock (debugfs). */
void ts_disks_for_each(void (*fn)(struct ts_disk *disk, void *arg), void *arg)
{
	struct ts_disk *disk;

	mutex_lock(&ts_disks_lock);
	list_for_each_entry(disk, &ts_disks, node)
		fn(disk, arg);
	mutex_unlock(&ts_disks_lock);
}

/* References of all disks: what cleaning would still have to move. */
unsigned long ts_disks_nr_refs(void)
{
	struct ts_disk *disk;
	unsigned long refs = 0;

	mutex_lock(&ts_disks_lock);
	list_for_each_entry(disk, &ts_disks, node)
		refs += atomic_long_read(&disk->nr_refs);
	mutex_unlock(&ts_disks_lock);
	return refs;
}

/* The swap mapper's view of the disk's image; for its guest requests. */
struct ts_map_disk *ts_disk_map(struct ts_disk *disk)
{
	return disk->map;
}

u64 ts_disk_id(const struct ts_disk *disk)
{
	return disk->id;
}

unsigned long ts_disk_nr_refs(struct ts_disk *disk)
{
	return atomic_long_read(&disk->nr_refs);
}

/* Changes of the disk's references ever: equal twice, none in between. */
u64 ts_disk_refs_changes(struct ts_disk *disk)
{
	return READ_ONCE(disk->refs_changes);
}

/*
 * True if the references changed since ts_disk_refs_changes() returned
 * @changes; how many there are in *@nr, seen at the same time. Under
 * move_lock: a reconciliation counts its reference (nr_refs) before it
 * stores and logs it, and holds move_lock from one to the other.
 */
bool ts_disk_refs_changed(struct ts_disk *disk, u64 changes,
			  unsigned long *nr)
{
	bool changed;

	mutex_lock(&disk->move_lock);
	changed = READ_ONCE(disk->refs_changes) != changes;
	*nr = atomic_long_read(&disk->nr_refs);
	mutex_unlock(&disk->move_lock);
	return changed;
}

/* The first block from *@x to @last with a reference, into *@x; or false. */
bool ts_disk_next_ref(struct ts_disk *disk, u64 *x, u64 last)
{
	unsigned long index = *x;

	if (!atomic_long_read(&disk->nr_refs) ||
	    !xa_find(&disk->refs, &index, last, XA_PRESENT))
		return false;
	*x = index;
	return true;
}

bool ts_disk_has_refs(struct ts_disk *disk, u64 first, u64 last)
{
	return ts_disk_next_ref(disk, &first, last);
}

/*
 * Grow the array at *@p of *@max elements of @size bytes, so that @more
 * fit after the @nr in use.
 */
static int ts_grow(void **p, unsigned int nr, unsigned int more,
		   unsigned int *max, size_t size)
{
	unsigned int new_max = max(*max * 2 + 64, nr + more);
	void *grown;

	if (nr + more <= *max)
		return 0;
	grown = kvmalloc_array(new_max, size, GFP_KERNEL);
	if (!grown)
		return -ENOMEM;
	if (*p)
		memcpy(grown, *p, nr * size);
	kvfree(*p);
	*p = grown;
	*max = new_max;
	return 0;
}

/*
 * Room for @nr more records (and the disk's BIND), before changes. Disk
 * lock and ts_maps_sem held: a checkpoint reads the records.
 */
static int ts_disk_reserve(struct ts_disk *disk, unsigned int nr)
{
	unsigned int max = disk->max_pending, max_old = disk->max_pending;
	int ret;

	lockdep_assert_held(&disk->lock);
	lockdep_assert_held_read(&ts_maps_sem);
	if (atomic_add_unless(&ts_fail_ref_alloc, -1, 0))
		return -ENOMEM;
	/* Both arrays grow alike; one that grew alone is grown again. */
	ret = ts_grow((void **)&disk->pending, disk->nr_pending, nr + 1,
		      &max, sizeof(*disk->pending)) ?:
	      ts_grow((void **)&disk->pending_old, disk->nr_pending, nr + 1,
		      &max_old, sizeof(*disk->pending_old));
	if (!ret)
		disk->max_pending = max;
	return ret;
}

/*
 * Record a change of block @x: a reference to @block, or none
 * (TS_NO_BLOCK); the block of the reference @old it replaces is freed when
 * the record settles. Disk lock and ts_maps_sem held, room reserved.
 */
static void ts_disk_log(struct ts_disk *disk, u64 x, u32 block, void *old)
{
	struct ts_record *rec;

	lockdep_assert_held(&disk->lock);
	lockdep_assert_held_read(&ts_maps_sem);
	/* The identity, before the first reference that belongs to it. */
	if (block != TS_NO_BLOCK && !disk->ident_logged &&
	    disk->ident.kind != TS_IDENT_NONE) {
		disk->pending_old[disk->nr_pending] = TS_NO_BLOCK;
		ts_record_bind(&disk->pending[disk->nr_pending++], disk->id,
			       &disk->ident);
		disk->ident_logged = true;
	}
	disk->pending_old[disk->nr_pending] =
		old ? xa_to_value(old) : TS_NO_BLOCK;
	rec = &disk->pending[disk->nr_pending++];
	memset(rec, 0, sizeof(*rec));
	rec->type = block == TS_NO_BLOCK ? TS_REC_DROP : TS_REC_ADD;
	if (block != TS_NO_BLOCK)
		rec->data_block = cpu_to_le32(block);
	rec->disk_id = cpu_to_le64(disk->id);
	rec->disk_block = cpu_to_le64(x);
	disk->refs_changes++;
	if (old) {
		trace_tesseract_drop(disk->id, x, xa_to_value(old));
		atomic_long_dec(&disk->nr_refs);
	}
}

/*
 * Drop the reference of disk block @x: 1 if it had one, 0 if not, or
 * -ENOMEM if there was no memory to record the drop. Then the reference
 * stays, and reads keep serving it: the caller must fail its request
 * rather than write the block.
 */
int ts_disk_drop(struct ts_disk *disk, u64 x)
{
	void *entry;
	int ret = 0;

	if (!atomic_long_read(&disk->nr_refs))
		return 0;
	mutex_lock(&disk->move_lock);
	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	if (xa_load(&disk->refs, x)) {
		ret = ts_disk_reserve(disk, 1);
		if (!ret) {
			entry = xa_erase(&disk->refs, x);
			ts_disk_log(disk, x, TS_NO_BLOCK, entry);
			ret = 1;
		}
	}
	mutex_unlock(&disk->lock);
	up_read(&ts_maps_sem);
	mutex_unlock(&disk->move_lock);
	return ret;
}

/*
 * A guest that never flushes must not pile up changes: once enough are
 * pending, the worker commits them, so that the request that adds the
 * last waits for no image fsync and no journal write. Should the worker
 * fall far behind, the disk takes no new reference meanwhile
 * (ts_reconcile_page()): its pending records stay bounded.
 */
void ts_disk_commit_later(struct ts_disk *disk)
{
	if (READ_ONCE(disk->nr_pending) >= TS_DISK_PENDING_COMMIT)
		queue_work(ts_commit_wq, &disk->commit_work);
}

static void ts_disk_commit_work(struct work_struct *work)
{
	struct ts_disk *disk = container_of(work, struct ts_disk, commit_work);
	int ret;

	/* Queued again while it ran, for records it has committed since? */
	if (READ_ONCE(disk->nr_pending) < TS_DISK_PENDING_COMMIT)
		return;
	ret = ts_disk_sync(disk);
	if (ret)
		pr_warn_ratelimited("disk %llx: background commit failed (%d)\n",
				    disk->id, ret);
}

/*
 * Blocks whose references went back to the store, a batch per hold of its
 * lock: swap-outs and slot frees spin on it meanwhile. TS_NO_BLOCK entries
 * (records that dropped no block) are skipped, and count in neither
 * statistic: a batch of only those takes no lock.
 */
static void ts_store_release(struct ts_store *store, const u32 *blocks,
			     unsigned int nr)
{
	unsigned int i = 0, n, k, batch;
	unsigned long flags;
	u64 start, held;

	while (i < nr) {
		n = min(nr - i, TS_STORE_LOCK_BATCH);
		for (batch = 0, k = i; k < i + n; k++)
			batch += blocks[k] != TS_NO_BLOCK;
		if (!batch) {
			i += n;
			cond_resched();
			continue;
		}
		spin_lock_irqsave(&store->lock, flags);
		start = ktime_get_ns();
		if (batch > store->release_batch_max)
			WRITE_ONCE(store->release_batch_max, batch);
		for (; n; n--, i++) {
			if (blocks[i] == TS_NO_BLOCK)
				continue;
			ts_store_put_locked(store, blocks[i]);
			store->nr_refs--;
		}
		held = ktime_get_ns() - start;
		if (held > store->release_hold_max_ns)
			WRITE_ONCE(store->release_hold_max_ns, held);
		spin_unlock_irqrestore(&store->lock, flags);
		cond_resched();
	}
}

/* The blocks a forget dropped, once it is committed. Disk lock held. */
static void ts_disk_release_frees(struct ts_store *store,
				  struct ts_disk *disk)
{
	ts_store_release(store, disk->frees, disk->nr_frees);
	disk->nr_frees = 0;
}

/*
 * The first @nr pending records are durable: they go, and the blocks whose
 * references they replaced go back to the store. Disk lock and ts_maps_sem
 * held, or ts_maps_sem held for writing, or the disk is going away.
 */
static void ts_disk_settle(struct ts_store *store, struct ts_disk *disk,
			   unsigned int nr)
{
	if (WARN_ON_ONCE(nr > disk->nr_pending))
		nr = disk->nr_pending;
	ts_store_release(store, disk->pending_old, nr);
	disk->pending_base += nr;
	disk->nr_pending -= nr;
	memmove(disk->pending, disk->pending + nr,
		disk->nr_pending * sizeof(*disk->pending));
	memmove(disk->pending_old, disk->pending_old + nr,
		disk->nr_pending * sizeof(*disk->pending_old));
	if (!disk->nr_pending)
		ts_disk_release_frees(store, disk);
}

/* The pending records of @disk before @end, of all it ever had. */
static unsigned int ts_disk_pending_before(const struct ts_disk *disk,
					   u64 end)
{
	if (end <= disk->pending_base)
		return 0;
	return min_t(u64, end - disk->pending_base, disk->nr_pending);
}

/*
 * The records of @disk a checkpoint makes durable: those whose data the
 * checkpoint's disk made durable, and of every disk those before its first
 * drop not yet known to follow its data. A drop's record and those after
 * it stay pending, for its own commit.
 */
static unsigned int ts_disk_ckpt_settles(struct ts_disk *disk,
					 const struct ts_ckpt_for *ckpt)
{
	unsigned int i = 0;

	if (ckpt->disk == disk)
		i = ts_disk_pending_before(disk, ckpt->end);

	for (; i < disk->nr_pending; i++)
		if (disk->pending[i].type == TS_REC_DROP &&
		    disk->pending_old[i] != TS_NO_BLOCK)
			break;
	return i;
}

/* A record of @disk not yet settled names its identity, after any forget. */
static bool ts_disk_bind_pending(const struct ts_disk *disk)
{
	unsigned int i;

	for (i = disk->nr_pending; i--;) {
		if (disk->pending[i].type == TS_REC_BIND)
			return true;
		if (disk->pending[i].type == TS_REC_FORGET)
			return false;
	}
	return false;
}

/*
 * A checkpoint of every map, the journal's room back. It leaves out every
 * drop not committed, but those of @disk before @end (see
 * ts_disks_write_refs()): so it waits for no image and no guest request,
 * only for the changes of maps under way, which do neither (compaction's
 * store I/O aside). What it made durable is settled, without the disks'
 * locks: no map or pending record changes while ts_maps_sem is held for
 * writing. @disk NULL: for no disk in particular.
 */
static int ts_checkpoint_all(struct ts_disk *disk, u64 end)
{
	struct ts_ckpt_for ckpt = { .disk = disk, .end = end };
	struct ts_disk *d;
	int ret;

	down_write(&ts_maps_sem);
	mutex_lock(&ts_disks_lock);
	ret = ts_checkpoint(ts_store, ts_disks_write_refs, &ckpt);
	if (!ret) {
		list_for_each_entry(d, &ts_disks, node) {
			ts_disk_settle(ts_store, d,
				       ts_disk_ckpt_settles(d, &ckpt));
			/* Its BIND is in the checkpoint if it has references. */
			d->ident_logged = d->ckpt_refs || ts_disk_bind_pending(d);
		}
	}
	mutex_unlock(&ts_disks_lock);
	up_write(&ts_maps_sem);
	return ret;
}

/*
 * Where the pending records of @disk end now (see ts_disk_commit()); not
 * while a checkpoint settles them.
 */
static u64 ts_disk_pending_end(struct ts_disk *disk)
{
	u64 end;

	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	end = disk->pending_base + disk->nr_pending;
	mutex_unlock(&disk->lock);
	up_read(&ts_maps_sem);
	return end;
}

/*
 * Make the pending records of @disk before @end durable, whose data is:
 * journalled, or in a checkpoint if the journal is full. A checkpoint
 * taken meanwhile for another disk may have settled some of them.
 */
static int ts_disk_commit(struct ts_disk *disk, u64 end)
{
	struct ts_record *recs = NULL;
	unsigned int nr;
	int ret = 0;

	lockdep_assert_held(&disk->commit_lock);
	if (!ts_store)
		return 0;
	/*
	 * The journal write goes without disk->lock, which every change of
	 * refs takes to log its record: guest requests go on meanwhile. It
	 * writes a copy, since an append may move the array. ts_maps_sem
	 * keeps checkpoints out and commit_lock other commits of the disk:
	 * nothing settles these records meanwhile.
	 */
	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	nr = ts_disk_pending_before(disk, end);
	if (nr) {
		recs = kvmalloc_array(nr, sizeof(*recs), GFP_KERNEL);
		if (recs)
			memcpy(recs, disk->pending, nr * sizeof(*recs));
		else
			ret = -ENOMEM;
	}
	mutex_unlock(&disk->lock);
	if (recs) {
		ret = ts_journal_commit(ts_store, recs, nr);
		kvfree(recs);
	}
	if (nr && !ret) {
		mutex_lock(&disk->lock);
		ts_disk_settle(ts_store, disk, nr);
		mutex_unlock(&disk->lock);
	}
	up_read(&ts_maps_sem);
	return ret == -ENOSPC ? ts_checkpoint_all(disk, end) : ret;
}

/*
 * Make the disk durable: its image, then its reference changes. A dropped
 * reference must not be forgotten on stable media before the data that
 * replaced it is there. Requests between a drop and its data hold
 * replace_sem for reading: taking it for writing, only to count the
 * records, waits for those that dropped a reference before the count to
 * have written their data; cleaning logs its drops after writing the
 * image. The image flush then covers the data of every record counted;
 * records added meanwhile wait for the next commit. Guest requests go on
 * during the flush.
 *
 * A writeback error of the image is reported by one fsync of the file only
 * (errseq): one that the commit worker or the cleaner sees would be lost
 * to the guest, whose next flush would then succeed and commit drops whose
 * data never reached the image. Kept in image_error, it fails that flush
 * instead (@guest); until then no other commit flushes or commits: the
 * guest learns of the loss before a drop it may concern becomes durable.
 */
static int ts_disk_sync_for(struct ts_disk *disk, bool guest)
{
	struct file *image = ts_disk_image_get(disk);
	int ret, kept;
	u64 end;

	if (!image)
		return -ENXIO;
	mutex_lock(&disk->commit_lock);
	kept = disk->image_error;
	if (!guest && kept) {
		ret = kept;
		goto unlock;
	}
	down_write(&disk->replace_sem);
	end = ts_disk_pending_end(disk);
	up_write(&disk->replace_sem);
	ret = vfs_fsync(image, 0);
	if (guest)
		WRITE_ONCE(disk->image_error, 0);
	else if (ret)
		WRITE_ONCE(disk->image_error, ret);
	ret = ret ?: kept ?: ts_disk_commit(disk, end);
unlock:
	mutex_unlock(&disk->commit_lock);
	fput(image);
	return ret;
}

/* For the store's sake (cleaner, compaction, flatten, commit worker). */
int ts_disk_sync(struct ts_disk *disk)
{
	return ts_disk_sync_for(disk, false);
}

/*
 * For the guest (its flush, detach): fails too if the image failed a
 * writeback since the last one.
 */
int ts_disk_flush(struct ts_disk *disk)
{
	return ts_disk_sync_for(disk, true);
}

/* Load time: @x of disk @id refers to @block (journal.c). */
int ts_disk_recover_ref(struct ts_store *store, u64 id, u64 x, u32 block)
{
	struct ts_disk *disk;
	void *old;
	int ret = 0;
	unsigned long flags;

	mutex_lock(&ts_disks_lock);
	/* Without a BIND before it, the disk's identity is TS_IDENT_NONE. */
	disk = ts_disk_find_locked(id) ?: ts_disk_new_locked(id);
	if (!disk) {
		ret = -ENOMEM;
		goto unlock;
	}
	old = xa_store(&disk->refs, x, xa_mk_value(block), GFP_KERNEL);
	if (xa_is_err(old)) {
		ret = xa_err(old);
		goto unlock;
	}
	spin_lock_irqsave(&store->lock, flags);
	ts_store_claim_locked(store, block);
	if (old)
		ts_store_put_locked(store, xa_to_value(old));
	else
		store->nr_refs++;
	spin_unlock_irqrestore(&store->lock, flags);
	if (!old)
		atomic_long_inc(&disk->nr_refs);
	if (store->nr_refs > store->max_refs)
		ret = -EUCLEAN;
unlock:
	mutex_unlock(&ts_disks_lock);
	return ret;
}

/* Load time: @x of disk @id has no reference (journal.c). */
int ts_disk_recover_drop(struct ts_store *store, u64 id, u64 x)
{
	struct ts_disk *disk;
	void *old = NULL;
	unsigned long flags;

	mutex_lock(&ts_disks_lock);
	disk = ts_disk_find_locked(id);
	if (disk)
		old = xa_erase(&disk->refs, x);
	if (old) {
		spin_lock_irqsave(&store->lock, flags);
		ts_store_put_locked(store, xa_to_value(old));
		store->nr_refs--;
		spin_unlock_irqrestore(&store->lock, flags);
		atomic_long_dec(&disk->nr_refs);
	}
	mutex_unlock(&ts_disks_lock);
	return 0;
}

/* Load time: @id's references belong to @ident (journal.c). */
int ts_disk_recover_bind(struct ts_store *store, u64 id,
			 const struct ts_ident *ident)
{
	struct ts_disk *disk;
	unsigned long flags;
	int ret = 0;

	mutex_lock(&ts_disks_lock);
	disk = ts_disk_find_locked(id) ?: ts_disk_new_locked(id);
	if (!disk) {
		ret = -ENOMEM;
	} else if (atomic_long_read(&disk->nr_refs) &&
		   !ts_ident_equal(&disk->ident, ident)) {
		/* The module binds a new identity only to a disk with none. */
		pr_err("backing=%s: disk %llx bound to another identity while it has references\n",
		       store->path, id);
		ret = -EUCLEAN;
	} else {
		disk->ident = *ident;
		disk->ident_logged = true;
		if (!disk->ident_unit) {
			disk->ident_unit = true;
			spin_lock_irqsave(&store->lock, flags);
			store->nr_refs++;
			spin_unlock_irqrestore(&store->lock, flags);
		}
		if (store->nr_refs > store->max_refs)
			ret = -EUCLEAN;
	}
	mutex_unlock(&ts_disks_lock);
	return ret;
}

/* Drop every reference of @disk, into its frees. Disk lock, room made. */
static u64 ts_disk_drop_all(struct ts_disk *disk)
{
	unsigned long x;
	void *entry;
	u64 n = 0;

	xa_for_each(&disk->refs, x, entry) {
		xa_erase(&disk->refs, x);
		disk->frees[disk->nr_frees++] = xa_to_value(entry);
		atomic_long_dec(&disk->nr_refs);
		n++;
	}
	disk->refs_changes++;
	return n;
}

/* Load time: @id has no references, no identity (journal.c). */
int ts_disk_recover_forget(struct ts_store *store, u64 id)
{
	struct ts_disk *disk;
	int ret = 0;

	mutex_lock(&ts_disks_lock);
	disk = ts_disk_find_locked(id);
	if (disk) {
		mutex_lock(&disk->lock);
		ret = ts_grow((void **)&disk->frees, disk->nr_frees,
			      atomic_long_read(&disk->nr_refs),
			      &disk->max_frees, sizeof(*disk->frees));
		if (!ret) {
			ts_disk_drop_all(disk);
			ts_disk_release_frees(store, disk);
		}
		mutex_unlock(&disk->lock);
		if (!ret)
			ts_disk_free(store, disk);
	}
	mutex_unlock(&ts_disks_lock);
	return ret;
}

/* Load time, at the end: disks left without references go. */
void ts_disks_recovered(struct ts_store *store)
{
	struct ts_disk *disk, *next;

	mutex_lock(&ts_disks_lock);
	list_for_each_entry_safe(disk, next, &ts_disks, node)
		if (ts_disk_unused_locked(disk))
			ts_disk_free(store, disk);
	mutex_unlock(&ts_disks_lock);
}

/*
 * Drop every reference of the detached disk @id and its identity, durably,
 * then free their blocks; how many in *@references. -ENOENT if unknown,
 * -EBUSY if attached, being flattened or forgotten.
 */
int ts_disk_forget(u64 id, u64 *references)
{
	struct ts_record *rec;
	struct ts_disk *disk;
	u64 end = 0;
	int ret = 0;

	*references = 0;
	mutex_lock(&ts_disks_lock);
	disk = ts_disk_find_locked(id);
	if (!disk)
		ret = -ENOENT;
	else if (disk->image || disk->detaching || disk->forgetting ||
		 atomic_read(&disk->flattening))
		ret = -EBUSY;
	else
		disk->forgetting = true;
	mutex_unlock(&ts_disks_lock);
	if (ret)
		return ret;

	/* A commit of the disk still under way (its detach) ends first. */
	mutex_lock(&disk->commit_lock);
	mutex_lock(&disk->move_lock);
	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	ret = ts_disk_reserve(disk, 1) ?:
	      ts_grow((void **)&disk->frees, disk->nr_frees,
		      atomic_long_read(&disk->nr_refs), &disk->max_frees,
		      sizeof(*disk->frees));
	if (!ret) {
		*references = ts_disk_drop_all(disk);
		disk->pending_old[disk->nr_pending] = TS_NO_BLOCK;
		rec = &disk->pending[disk->nr_pending++];
		memset(rec, 0, sizeof(*rec));
		rec->type = TS_REC_FORGET;
		rec->disk_id = cpu_to_le64(id);
		/* The next references of the id need a BIND again. */
		disk->ident_logged = false;
		end = disk->pending_base + disk->nr_pending;
	}
	mutex_unlock(&disk->lock);
	up_read(&ts_maps_sem);
	mutex_unlock(&disk->move_lock);
	/* No image to flush: nothing replaces what goes. */
	if (!ret)
		ret = ts_disk_commit(disk, end);
	mutex_unlock(&disk->commit_lock);
	if (ret) {
		pr_err("disk %llx: forgetting %llu references not committed (%d); their blocks stay allocated until a checkpoint\n",
		       id, *references, ret);
	} else {
		atomic64_inc(&ts_disks_forgotten);
		pr_info("disk %llx: %llu references forgotten\n", id,
			*references);
	}

	mutex_lock(&ts_disks_lock);
	disk->forgetting = false;
	ts_disk_free_unused_locked(disk);
	mutex_unlock(&ts_disks_lock);
	return ret;
}

/*
 * The references a checkpoint keeps of @disk besides its map: those that
 * drops not settled by it took away, whose data may not be durable yet
 * (the image not flushed). The latest drop of a block names the contents
 * the block had last; its block is allocated until the drop is settled.
 * Into @restore, block -> xa_mk_value(store block). Maps held still.
 */
static int ts_disk_ckpt_restore(struct ts_disk *disk,
				const struct ts_ckpt_for *ckpt,
				struct xarray *restore)
{
	unsigned int i, first = ts_disk_ckpt_settles(disk, ckpt);
	u64 x;
	int ret;

	for (i = disk->nr_pending; i-- > first;) {
		/* What went before a forget is gone with it. */
		if (disk->pending[i].type == TS_REC_FORGET)
			break;
		if (disk->pending[i].type != TS_REC_DROP ||
		    disk->pending_old[i] == TS_NO_BLOCK)
			continue;
		x = le64_to_cpu(disk->pending[i].disk_block);
		if (xa_load(&disk->refs, x) || xa_load(restore, x))
			continue;
		ret = xa_err(xa_store(restore, x,
				      xa_mk_value(disk->pending_old[i]),
				      GFP_KERNEL));
		if (ret)
			return ret;
	}
	return 0;
}

static int ts_ckpt_add_map(struct ts_ckpt_writer *w, u64 disk_id,
			   struct xarray *map)
{
	unsigned long x;
	void *entry;
	int ret;

	xa_for_each(map, x, entry) {
		ret = ts_ckpt_add(w, disk_id, x, xa_to_value(entry));
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Every reference that is durable or may become so without a flush of an
 * image, into a checkpoint, each disk's after its identity
 * (ts_checkpoint_all(), the callback of ts_checkpoint()).
 */
static int ts_disks_write_refs(struct ts_ckpt_writer *w, void *arg)
{
	const struct ts_ckpt_for *ckpt = arg;
	struct xarray restore;
	struct ts_disk *disk;
	int ret = 0;

	lockdep_assert_held_write(&ts_maps_sem);
	xa_init(&restore);
	list_for_each_entry(disk, &ts_disks, node) {
		ret = ts_disk_ckpt_restore(disk, ckpt, &restore);
		if (ret)
			break;
		disk->ckpt_refs = atomic_long_read(&disk->nr_refs) ||
				  !xa_empty(&restore);
		if (disk->ckpt_refs && disk->ident.kind != TS_IDENT_NONE)
			ret = ts_ckpt_bind(w, disk->id, &disk->ident);
		ret = ret ?: ts_ckpt_add_map(w, disk->id, &disk->refs) ?:
		      ts_ckpt_add_map(w, disk->id, &restore);
		xa_destroy(&restore);
		if (ret)
			break;
	}
	xa_destroy(&restore);
	return ret;
}

/*
 * Hold the store blocks that serve a guest read of disk blocks from @x on:
 * as many (at most @max, none past @last) as have references to store
 * blocks that follow each other, so that one I/O reads them. 0 and the
 * blocks in *@run, or -ENOENT if @x has no reference. The caller's own
 * references on the blocks keep a write racing with the read from freeing
 * them and letting swap reuse them under it.
 */
int ts_disk_hold_run(struct ts_disk *disk, u64 x, u64 last, unsigned int max,
		     struct ts_held_run *run)
{
	unsigned int i;
	void *entry;
	unsigned long flags;

	if (!atomic_long_read(&disk->nr_refs))
		return -ENOENT;
	xa_lock(&disk->refs);
	entry = xa_load(&disk->refs, x);
	if (!entry) {
		xa_unlock(&disk->refs);
		return -ENOENT;
	}
	run->x = x;
	run->first = xa_to_value(entry);
	for (run->nr = 1; run->nr < max && x + run->nr <= last; run->nr++) {
		entry = xa_load(&disk->refs, x + run->nr);
		if (!entry || xa_to_value(entry) != run->first + run->nr)
			break;
	}
	spin_lock_irqsave(&ts_store->lock, flags);
	for (i = 0; i < run->nr; i++)
		ts_store_get_locked(ts_store, run->first + i);
	spin_unlock_irqrestore(&ts_store->lock, flags);
	xa_unlock(&disk->refs);
	trace_tesseract_store_read(disk->id, x, run->first, run->nr);
	return 0;
}

/* Read the held blocks into the memory of @bv (@nr_bv pieces). */
int ts_disk_read_held(const struct ts_held_run *run, const struct bio_vec *bv,
		      unsigned int nr_bv)
{
	return ts_store_rw(ts_store, run->first, bv, nr_bv, REQ_OP_READ);
}

/*
 * Start reading the held blocks into the memory of @bv; @end_io ends it
 * (see ts_store_submit_read()). The run stays held until then.
 */
void ts_disk_submit_read_held(const struct ts_held_run *run,
			      const struct bio_vec *bv, unsigned int nr_bv,
			      bio_end_io_t *end_io, void *private)
{
	ts_store_submit_read(ts_store, run->first, bv, nr_bv, end_io, private);
}

void ts_disk_release_run(const struct ts_held_run *run)
{
	unsigned int i;
	unsigned long flags;

	spin_lock_irqsave(&ts_store->lock, flags);
	for (i = 0; i < run->nr; i++)
		ts_store_put_locked(ts_store, run->first + i);
	spin_unlock_irqrestore(&ts_store->lock, flags);
}

/*
 * A run of consecutive disk blocks with references, being moved by
 * locality recovery, and the pages that carry their contents.
 */
struct ts_run {
	u64 x;				/* first disk block */
	unsigned int nr;
	u32 block[TS_RUN_MAX];		/* store block of x + i */
	struct page *page[TS_RUN_MAX];
	struct bio_vec bvec[TS_RUN_MAX];
};

/* Pages for the run's contents, kept for the next run of the caller. */
static int ts_run_get_pages(struct ts_run *run)
{
	unsigned int i;

	for (i = 0; i < run->nr; i++) {
		if (!run->page[i])
			run->page[i] = alloc_page(GFP_KERNEL);
		if (!run->page[i])
			return -ENOMEM;
		bvec_set_page(&run->bvec[i], run->page[i], TS_BLOCK_SIZE, 0);
	}
	return 0;
}

static void ts_run_free(struct ts_run *run)
{
	unsigned int i;

	for (i = 0; i < TS_RUN_MAX && run->page[i]; i++)
		__free_page(run->page[i]);
	kfree(run);
}

/*
 * Find the first disk block from *@x to @last with a reference and the
 * blocks after it that have one too, at most @max; into @run. False if
 * there is none. Disk lock and move_lock held: the run stays as found
 * while move_lock is.
 */
static bool ts_run_find_locked(struct ts_disk *disk, u64 *x, u64 last,
			       unsigned int max, struct ts_run *run)
{
	unsigned long index = *x;
	void *entry;

	lockdep_assert_held(&disk->lock);
	lockdep_assert_held(&disk->move_lock);
	if (!atomic_long_read(&disk->nr_refs))
		return false;
	entry = xa_find(&disk->refs, &index, last, XA_PRESENT);
	if (!entry)
		return false;
	run->x = index;
	run->nr = 0;
	do {
		run->block[run->nr++] = xa_to_value(entry);
		if (run->nr == max || run->x + run->nr > last)
			break;
		entry = xa_load(&disk->refs, run->x + run->nr);
	} while (entry);
	*x = run->x + run->nr;
	return true;
}

/* The run's contents from the store; the run stays (move_lock held). */
static int ts_run_read(struct ts_run *run)
{
	return ts_store_read_blocks(ts_store, run->block, run->bvec, run->nr);
}

/* Write the run's pages into @image at the run's own place. */
static int ts_run_write_image(struct ts_run *run, struct file *image)
{
	size_t len = (size_t)run->nr << TS_BLOCK_SHIFT;
	struct iov_iter iter;
	struct kiocb kiocb;
	ssize_t ret;

	iov_iter_bvec(&iter, ITER_SOURCE, run->bvec, run->nr, len);
	ts_init_image_kiocb(&kiocb, image, run->x << TS_BLOCK_SHIFT);
	ret = ts_vfs_iocb_write(image, &kiocb, &iter);
	if (ret == -EINVAL && (kiocb.ki_flags & IOCB_DIRECT)) {
		/* Alignment a direct write on this file wants beyond 4 KiB. */
		iov_iter_bvec(&iter, ITER_SOURCE, run->bvec, run->nr, len);
		ts_init_image_kiocb(&kiocb, image, run->x << TS_BLOCK_SHIFT);
		kiocb.ki_flags &= ~IOCB_DIRECT;
		ret = ts_vfs_iocb_write(image, &kiocb, &iter);
	}
	if (ret < 0)
		return ret;
	return (size_t)ret == len ? 0 : -EIO;
}

static void ts_disk_count_moved(struct ts_disk *disk, atomic64_t *disk_ctr,
				atomic64_t *total_ctr, unsigned int nr)
{
	atomic64_add(nr, disk_ctr);
	atomic64_add(nr, total_ctr);
	atomic64_add((u64)nr << TS_BLOCK_SHIFT, &disk->stats.bytes_moved);
	atomic64_add((u64)nr << TS_BLOCK_SHIFT,
		     &ts_locality_totals.bytes_moved);
}

/*
 * The run's contents are in the image: drop its references. The run is as
 * found (move_lock held since), and its records' room was made then.
 */
static void ts_run_drop_copied(struct ts_disk *disk, struct ts_run *run)
{
	unsigned int i;
	void *old;

	lockdep_assert_held(&disk->move_lock);
	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	for (i = 0; i < run->nr; i++) {
		old = xa_erase(&disk->refs, run->x + i);
		WARN_ON_ONCE(old != xa_mk_value(run->block[i]));
		ts_disk_log(disk, run->x + i, TS_NO_BLOCK, old);
	}
	mutex_unlock(&disk->lock);
	up_read(&ts_maps_sem);
}

/*
 * Clean the first run of referenced disk blocks from *@x to @last, at most
 * @max (TS_RUN_MAX) of them: copy their contents into the image at their
 * own offsets, then drop the references (committed after the image is
 * flushed, by the next ts_disk_sync()). *@x moves past the run. Returns the
 * blocks cleaned, 0 if no block from *@x to @last has a reference, or
 * -errno: -ENXIO if the disk is not attached, -EROFS if its image is
 * read-only.
 */
int ts_disk_clean(struct ts_disk *disk, u64 *x, u64 last, unsigned int max)
{
	struct file *image;
	struct ts_run *run;
	bool found;
	int ret;

	if (!ts_disk_has_refs(disk, *x, last))
		return 0;
	/* Not into an image that lost data the guest has not heard of. */
	if (READ_ONCE(disk->image_error))
		return -EIO;
	image = ts_disk_image_get(disk);
	if (!image)
		return -ENXIO;
	ret = -EROFS;
	if (!(image->f_mode & FMODE_WRITE))
		goto put_image;
	ret = -ENOMEM;
	run = kzalloc(sizeof(*run), GFP_KERNEL);
	if (!run)
		goto put_image;

	/*
	 * move_lock over the copy: a guest request that would change the
	 * run's references waits for it (it holds nothing a checkpoint
	 * needs meanwhile). ts_maps_sem only to find the run and make room
	 * for its records, and to drop its references after the copy: a
	 * checkpoint does not wait for this image's I/O.
	 */
	mutex_lock(&disk->move_lock);
	/* Detached meanwhile: see ts_disk_detach(). */
	if (READ_ONCE(disk->image) != image) {
		ret = -ENXIO;
		goto unlock_move;
	}
	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	found = ts_run_find_locked(disk, x, last, min(max, TS_RUN_MAX), run);
	ret = found ? ts_disk_reserve(disk, run->nr) : 0;
	mutex_unlock(&disk->lock);
	up_read(&ts_maps_sem);
	if (found && !ret)
		ret = ts_run_get_pages(run) ?: ts_run_read(run);
	if (found && !ret) {
		/* The image's blocks change, if not the disk's contents. */
		ret = ts_map_write_begin(disk->map, run->x,
					 run->x + run->nr - 1) ?:
		      ts_run_write_image(run, image);
		ts_map_write_end(disk->map, run->x, run->x + run->nr - 1);
	}
	if (found && !ret) {
		ts_run_drop_copied(disk, run);
		ts_disk_count_moved(disk, &disk->stats.cleaned,
				    &ts_locality_totals.cleaned, run->nr);
		ret = run->nr;
	}
unlock_move:
	mutex_unlock(&disk->move_lock);
	ts_run_free(run);
put_image:
	fput(image);
	return ret;
}

static bool ts_run_in_order(const struct ts_run *run)
{
	unsigned int i;

	for (i = 1; i < run->nr; i++)
		if (run->block[i] != run->block[0] + i)
			return false;
	return true;
}

/*
 * Take @run->nr store blocks in a row for a compacted run, as new guest
 * references; false if the store cannot spare them.
 */
static bool ts_run_alloc_blocks(struct ts_disk *disk, struct ts_run *run,
				u32 *first)
{
	bool ok = false;
	unsigned long flags;

	spin_lock_irqsave(&ts_store->lock, flags);
	if (ts_store_spare_locked(ts_store) >= run->nr &&
	    ts_store->nr_refs + run->nr <= ts_store->max_refs &&
	    ts_store_alloc_run_locked(ts_store, disk->compact_near, run->nr,
				      first)) {
		ts_store->nr_refs += run->nr;
		ok = true;
	}
	spin_unlock_irqrestore(&ts_store->lock, flags);
	return ok;
}

static void ts_run_free_blocks(u32 first, unsigned int nr)
{
	unsigned int i;
	unsigned long flags;

	spin_lock_irqsave(&ts_store->lock, flags);
	for (i = 0; i < nr; i++) {
		ts_store_put_locked(ts_store, first + i);
		ts_store->nr_refs--;
	}
	spin_unlock_irqrestore(&ts_store->lock, flags);
}

/*
 * Compact the next run of the disk whose store blocks are out of guest
 * order: copy them into store blocks that follow each other and switch the
 * references over (ADD records; the old blocks are freed once they are durable,
 * after the new ones). Looks at most @scan runs. Returns the
 * blocks moved, 0 if the whole disk is in order, -EAGAIN if the runs looked
 * at were in order and there are more, -ENOSPC if the store cannot spare
 * the blocks, or another -errno.
 */
int ts_disk_compact(struct ts_disk *disk, unsigned int scan)
{
	struct ts_run *run;
	unsigned int i;
	u32 first;
	void *old;
	int ret;

	if (READ_ONCE(disk->compacted_at) == READ_ONCE(disk->refs_changes))
		return 0;
	run = kzalloc(sizeof(*run), GFP_KERNEL);
	if (!run)
		return -ENOMEM;
	mutex_lock(&disk->move_lock);
	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	for (;;) {
		if (!ts_run_find_locked(disk, &disk->compact_from, ULONG_MAX,
					TS_RUN_MAX, run)) {
			/*
			 * The end of a sweep. If the map did not change since
			 * it began, all of it is in order.
			 */
			ret = -EAGAIN;
			if (disk->refs_changes == disk->sweep_from) {
				disk->compacted_at = disk->refs_changes;
				ret = 0;
			}
			disk->compact_from = 0;
			disk->sweep_from = disk->refs_changes;
			goto unlock;
		}
		if (run->nr > 1 && !ts_run_in_order(run))
			break;
		if (!--scan) {
			ret = -EAGAIN;
			goto unlock;
		}
	}
	ret = ts_disk_reserve(disk, run->nr) ?: ts_run_get_pages(run);
	if (ret)
		goto unlock;
	ret = -ENOSPC;
	if (!ts_run_alloc_blocks(disk, run, &first))
		goto unlock;
	ret = ts_run_read(run) ?:
	      ts_store_rw(ts_store, first, run->bvec, run->nr, REQ_OP_WRITE);
	if (ret) {
		ts_run_free_blocks(first, run->nr);
		goto unlock;
	}
	for (i = 0; i < run->nr; i++) {
		/* Replaces an entry: no allocation, cannot fail. */
		old = xa_store(&disk->refs, run->x + i,
			       xa_mk_value(first + i), GFP_KERNEL);
		atomic_long_inc(&disk->nr_refs);
		ts_disk_log(disk, run->x + i, first + i, old);
	}
	disk->compact_near = first + run->nr;
	ts_disk_count_moved(disk, &disk->stats.compacted,
			    &ts_locality_totals.compacted, run->nr);
	ret = run->nr;
unlock:
	mutex_unlock(&disk->lock);
	up_read(&ts_maps_sem);
	mutex_unlock(&disk->move_lock);
	ts_run_free(run);
	return ret;
}

/*
 * Call @fn with the PTE that maps @addr, under its page-table lock; false
 * if there is no page table there (nothing mapped, or a huge mapping).
 * Needs the mmap lock. Since 6.5 page tables can be freed without the mmap
 * write lock, after an RCU grace period, hence the RCU read lock and the
 * recheck of the pmd under the lock. The kernel's own helper for this is
 * not exported on 6.12, so this is its pattern.
 */
static bool ts_with_pte_locked(struct mm_struct *mm, unsigned long addr,
			       void (*fn)(pte_t *pte, void *arg), void *arg)
{
	pgd_t *pgd, pgdval;
	p4d_t *p4d, p4dval;
	pud_t *pud, pudval;
	pmd_t *pmd, pmdval;
	spinlock_t *ptl;	/* the page table's */
	pte_t *pte;

	pgd = pgd_offset(mm, addr);
	pgdval = READ_ONCE(*pgd);
	if (pgd_none(pgdval) || pgd_bad(pgdval))
		return false;
	p4d = p4d_offset(pgd, addr);
	p4dval = READ_ONCE(*p4d);
	if (p4d_none(p4dval) || p4d_bad(p4dval))
		return false;
	pud = pud_offset(p4d, addr);
	pudval = READ_ONCE(*pud);
	/* pud_bad() covers a huge pud too. */
	if (pud_none(pudval) || pud_bad(pudval))
		return false;
	pmd = pmd_offset(pud, addr);

	rcu_read_lock();
again:
	pmdval = ts_pmdp_get_lockless(pmd);
	if (pmd_none(pmdval) || !pmd_present(pmdval) ||
	    pmd_trans_huge(pmdval) || pmd_devmap(pmdval) || pmd_bad(pmdval)) {
		rcu_read_unlock();
		return false;
	}
	pte = pte_offset_kernel(&pmdval, addr);
	ptl = pte_lockptr(mm, &pmdval);
	spin_lock(ptl);
	if (unlikely(!pmd_same(pmdval, ts_pmdp_get_lockless(pmd)))) {
		/* Collapsed or freed meanwhile: look again. */
		spin_unlock(ptl);
		goto again;
	}
	fn(pte, arg);
	spin_unlock(ptl);
	rcu_read_unlock();
	return true;
}

/* The swap entry in @pte, or false if it holds none (present, migration...). */
static bool ts_pte_swap_entry(pte_t pte, swp_entry_t *entry)
{
	if (!is_swap_pte(pte))
		return false;
	*entry = pte_to_swp_entry(pte);
	return !non_swap_entry(*entry);
}

/*
 * A shared mapping of a shmem file: memfd guest RAM (which vhost-user
 * needs, so that the back-end can map it) or MAP_SHARED | MAP_ANONYMOUS.
 * Its swapped-out pages have no PTE: the swap entry is a value entry in
 * the file's page cache.
 */
static bool ts_vma_is_shared_shmem(struct vm_area_struct *vma)
{
	return (vma->vm_flags & VM_SHARED) && vma->vm_file &&
	       shmem_mapping(vma->vm_file->f_mapping);
}

/*
 * The VMA of guest RAM at @uaddr, if of a kind whose pages we take: private
 * anonymous memory (swap entries in its PTEs) or shared shmem (swap entries
 * in the file). Not a private file mapping, whose pages are the file's
 * until written and anonymous after.
 */
static struct vm_area_struct *ts_guest_vma(struct mm_struct *mm,
					   unsigned long uaddr)
{
	struct vm_area_struct *vma = vma_lookup(mm, uaddr);

	if (!vma)
		return NULL;
	if (vma_is_anonymous(vma))
		return (vma->vm_flags & VM_SHARED) ? NULL : vma;
	return ts_vma_is_shared_shmem(vma) ? vma : NULL;
}

/*
 * The swap entry in shmem page-cache slot @item, or false if it holds none
 * (a folio, nothing, or the poison entry a failed swap-in leaves).
 */
static bool ts_shmem_swap_entry(void *item, swp_entry_t *entry)
{
	if (!xa_is_value(item))
		return false;
	*entry = radix_to_swp_entry(item);
	return !non_swap_entry(*entry);
}

/*
 * Call @fn with the swap entry of the page at @uaddr of the shared shmem
 * mapping @vma, under the lock of the file's page cache; false if that page
 * is not swapped out. The lock plays the page-table lock's part (DESIGN
 * section 4): shmem replaces a swap entry there under it (swap-in,
 * swapoff) or removes it (truncate, hole punch) before it frees the slot,
 * so the slot cannot be freed and reused while we look. A swap-in puts
 * its folio in the swap cache before it replaces the entry, as for
 * anonymous memory. A large entry (a large folio swapped out whole, 6.12)
 * stands for 1 << order slots from an aligned index: the page's slot is
 * its offset in there; @fn gets the entry's order too.
 */
static bool ts_with_shmem_entry_locked(struct vm_area_struct *vma,
				       unsigned long uaddr,
				       void (*fn)(swp_entry_t entry,
						  unsigned int order,
						  void *arg),
				       void *arg)
{
	pgoff_t index = linear_page_index(vma, uaddr);
	XA_STATE(xas, &vma->vm_file->f_mapping->i_pages, index);
	swp_entry_t entry;
	unsigned int order;
	bool found = false;
	void *item;

	xas_lock_irq(&xas);
	item = xas_load(&xas);
	if (ts_shmem_swap_entry(item, &entry)) {
		order = xas_get_order(&xas);
		entry = swp_entry(swp_type(entry), swp_offset(entry) +
				  (index & ((1UL << order) - 1)));
		fn(entry, order, arg);
		found = true;
	}
	xas_unlock_irq(&xas);
	return found;
}

struct ts_locate {
	struct ts_disk *disk;		/* NULL: only look */
	enum ts_outcome outcome;
	u32 block;
};

/* Under the lock that keeps @entry's slot allocated: ts_page_locate(). */
static void ts_locate_entry(struct ts_locate *l, swp_entry_t entry)
{
	if (!ts_swapdev_owns(ts_swapdev, entry))
		l->outcome = TS_OUTCOME_OTHER_SWAPDEV;
	else if (l->disk)
		l->outcome = ts_swapdev_reference(ts_swapdev, entry, &l->block);
	else
		l->outcome = TS_OUTCOME_REFERENCED;
}

static void ts_locate_pte(pte_t *pte, void *arg)
{
	swp_entry_t entry;

	if (ts_pte_swap_entry(ptep_get(pte), &entry))
		ts_locate_entry(arg, entry);
}

static void ts_locate_shmem(swp_entry_t entry, unsigned int order, void *arg)
{
	ts_locate_entry(arg, entry);
}

/*
 * Under the mmap lock: where the page at @uaddr is. TS_OUTCOME_REFERENCED
 * means "swapped out to our device" and, with @disk, that a reference on
 * its block was taken in the same locked section (the block in *@block).
 */
static enum ts_outcome ts_page_locate(struct ts_disk *disk,
				      struct mm_struct *mm,
				      unsigned long uaddr, u32 *block)
{
	struct vm_area_struct *vma = ts_guest_vma(mm, uaddr);
	struct ts_locate l = { .disk = disk,
			       .outcome = TS_OUTCOME_NOT_SWAPPED,
			       .block = TS_NO_BLOCK };

	/*
	 * A plain copy of a page the VMM may not read fails: so must the
	 * write, rather than succeed through a reference.
	 */
	if (vma && !(vma->vm_flags & VM_READ))
		l.outcome = TS_OUTCOME_NO_ACCESS;
	else if (vma && vma_is_anonymous(vma))
		ts_with_pte_locked(mm, uaddr, ts_locate_pte, &l);
	else if (vma)
		ts_with_shmem_entry_locked(vma, uaddr, ts_locate_shmem, &l);
	*block = l.block;
	return l.outcome;
}

/*
 * Would a write of the page at @uaddr be worth trying to reconcile?
 * TS_OUTCOME_REFERENCED if it is swapped out to our device, else why not.
 * Nothing is locked on return: the answer is a hint.
 */
enum ts_outcome ts_reconcile_probe(struct mm_struct *mm, unsigned long uaddr)
{
	enum ts_outcome outcome;
	u32 unused;

	if (!ts_swapdev)
		return TS_OUTCOME_NOT_SWAPPED;
	mmap_read_lock(mm);
	outcome = ts_page_locate(NULL, mm, uaddr, &unused);
	mmap_read_unlock(mm);
	return outcome;
}

/*
 * The heart of it: make disk block @x of @disk a reference to the store
 * block that holds the swapped-out guest page at @uaddr (page-aligned, in
 * @mm, the VMM's). TS_OUTCOME_REFERENCED if done: the caller then writes
 * nothing. Otherwise the reason, and the caller writes the page as usual.
 */
enum ts_outcome ts_reconcile_page(struct ts_disk *disk, struct mm_struct *mm,
				  unsigned long uaddr, u64 x)
{
	enum ts_outcome outcome;
	u32 block = TS_NO_BLOCK;
	unsigned int max_refs;
	unsigned long flags;
	void *old;

	if (!ts_swapdev)
		return TS_OUTCOME_NOT_SWAPPED;
	mutex_lock(&disk->move_lock);
	down_read(&ts_maps_sem);
	mutex_lock(&disk->lock);
	/* No allocation may happen under the page-table lock: reserve now. */
	if (atomic_read(&disk->flattening)) {
		outcome = TS_OUTCOME_FLATTENING;
		goto unlock;
	}
	if (disk->mismatch) {
		outcome = TS_OUTCOME_IDENTITY;
		goto unlock;
	}
	max_refs = READ_ONCE(ts_disk_max_refs);
	if (max_refs && atomic_long_read(&disk->nr_refs) >= max_refs) {
		outcome = TS_OUTCOME_DISK_QUOTA;
		goto unlock;
	}
	if (disk->nr_pending >= TS_DISK_PENDING_LIMIT) {
		outcome = TS_OUTCOME_COMMIT_BEHIND;
		goto unlock;
	}
	/* Room in the checkpoints for the disk's BIND, once. */
	if (!disk->ident_unit) {
		outcome = TS_OUTCOME_STORE_FULL;
		spin_lock_irqsave(&ts_store->lock, flags);
		if (ts_store->nr_refs + 2 <= ts_store->max_refs) {
			ts_store->nr_refs++;
			disk->ident_unit = true;
		}
		spin_unlock_irqrestore(&ts_store->lock, flags);
		if (!disk->ident_unit)
			goto unlock;
	}
	if (ts_disk_reserve(disk, 1) ||
	    xa_reserve(&disk->refs, x, GFP_KERNEL)) {
		outcome = TS_OUTCOME_NO_MEMORY;
		goto unlock;
	}
	mmap_read_lock(mm);
	outcome = ts_page_locate(disk, mm, uaddr, &block);
	mmap_read_unlock(mm);
	if (outcome != TS_OUTCOME_REFERENCED) {
		/* Frees a reserved slot; leaves an existing reference alone. */
		xa_release(&disk->refs, x);
		goto unlock;
	}

	/* Cannot fail: the slot was reserved. The old reference goes. */
	atomic_long_inc(&disk->nr_refs);
	old = xa_store(&disk->refs, x, xa_mk_value(block), GFP_KERNEL);
	ts_disk_log(disk, x, block, old);
unlock:
	mutex_unlock(&disk->lock);
	up_read(&ts_maps_sem);
	mutex_unlock(&disk->move_lock);
	trace_tesseract_reconcile(disk->id, x, uaddr, outcome, block);
	return outcome;
}

static void ts_swapped_pte(pte_t *pte, void *arg)
{
	swp_entry_t entry;

	*(bool *)arg = ts_pte_swap_entry(ptep_get(pte), &entry);
}

/*
 * A hole of one page drops an order-0 entry. A large one stays: to punch
 * a hole in part of it shmem splits it and swaps that page in, which is
 * no better than the swap-in the read would cause.
 */
static void ts_swapped_shmem(swp_entry_t entry, unsigned int order, void *arg)
{
	*(bool *)arg = !order;
}

/*
 * May a hole be punched at @index of @mapping? Every mapper of the file
 * sees it, not only the VMM whose mm we were given (with vhost-user, the
 * back-end's, while QEMU maps the same memfd): none may have the page
 * locked (VM_LOCKED, which madvise(MADV_REMOVE) refuses too), map it other
 * than through the page cache, or have it registered with userfaultfd (its
 * monitor would see a page it filled go missing, or not see a write it
 * protects against). A registration after this check is not seen: it
 * takes the other mm's mmap lock, which we cannot hold.
 */
static bool ts_shmem_hole_allowed(struct address_space *mapping,
				  pgoff_t index)
{
	const vm_flags_t refused = VM_LOCKED | VM_PFNMAP | VM_MIXEDMAP | VM_IO;
	struct vm_area_struct *vma;
	struct rb_node *node;
	bool allowed = true;

	i_mmap_lock_read(mapping);
	for (node = rb_first_cached(&mapping->i_mmap); node && allowed;
	     node = rb_next(node)) {
		vma = rb_entry(node, struct vm_area_struct, shared.rb);
		if (index < vma->vm_pgoff ||
		    index >= vma->vm_pgoff + vma_pages(vma))
			continue;
		allowed = !userfaultfd_armed(vma) &&
			  !(READ_ONCE(vma->vm_flags) & refused);
	}
	i_mmap_unlock_read(mapping);
	return allowed;
}

/*
 * The false read of a shmem page: a hole punched in the file, as
 * madvise(MADV_REMOVE) does, outside the mmap lock (it takes the inode's
 * locks and unmaps the page from every mapper). A sealed file refuses it
 * (-EPERM), and then the page is swapped in as usual. The punch is the
 * file's, with its side effects: the memfd's times change, and fsnotify
 * sees a modification.
 */
static bool ts_punch_page(struct file *file, pgoff_t index)
{
	int ret;

	ret = vfs_fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			    (loff_t)index << PAGE_SHIFT, PAGE_SIZE);
	ts_worker_fput(file);
	return !ret;
}

/*
 * A full-page guest read is about to overwrite the page at @uaddr. If that
 * page is swapped out (to any device), swapping it in would be a false
 * read: drop the swap entry instead, and let the read fault in a fresh
 * page. True if an entry was dropped.
 *
 * Only where the copy into the page can succeed (VM_WRITE: otherwise the
 * contents would be gone and the read failed), and never in a range armed
 * with userfaultfd: its monitor must see the write fault (uffd-wp, as in
 * QEMU's background snapshot), and a page it already filled must not turn
 * missing again (postcopy).
 */
bool ts_reconcile_false_read(struct ts_disk *disk, struct mm_struct *mm,
			     unsigned long uaddr)
{
	struct vm_area_struct *vma;
	struct file *file = NULL;
	bool swapped = false;
	pgoff_t index = 0;

	mmap_read_lock(mm);
	vma = ts_guest_vma(mm, uaddr);
	if (!vma || !(vma->vm_flags & VM_WRITE) || userfaultfd_armed(vma))
		goto unlock;
	if (!vma_is_anonymous(vma)) {
		index = linear_page_index(vma, uaddr);
		if (ts_shmem_hole_allowed(vma->vm_file->f_mapping, index) &&
		    ts_with_shmem_entry_locked(vma, uaddr, ts_swapped_shmem,
					       &swapped) && swapped)
			file = get_file(vma->vm_file);
		goto unlock;
	}
	ts_with_pte_locked(mm, uaddr, ts_swapped_pte, &swapped);
	/*
	 * The entry may change before the zap (or the hole punch): whatever
	 * is there then goes, and the read overwrites the whole page either
	 * way.
	 */
	if (swapped)
		ts_zap_page(vma, uaddr);
unlock:
	mmap_read_unlock(mm);
	if (file)
		swapped = ts_punch_page(file, index);
	if (swapped)
		trace_tesseract_false_read(disk->id, uaddr);
	return swapped;
}

struct ts_count {
	unsigned long addr, end;	/* within one page table */
	unsigned long count;
};

static void ts_count_swapped_ptes(pte_t *pte, void *arg)
{
	struct ts_count *c = arg;
	swp_entry_t entry;

	for (; c->addr < c->end; c->addr += PAGE_SIZE, pte++)
		if (ts_pte_swap_entry(ptep_get(pte), &entry) &&
		    ts_swapdev_owns(ts_swapdev, entry))
			c->count++;
}

/*
 * Pages of [start, end) of the shared shmem mapping @vma whose swap entry
 * is on our device. A hint, under RCU only: entries may change meanwhile.
 */
static unsigned long ts_count_swapped_shmem(struct vm_area_struct *vma,
					    unsigned long start,
					    unsigned long end)
{
	pgoff_t first = linear_page_index(vma, start);
	pgoff_t last = linear_page_index(vma, end - 1);
	XA_STATE(xas, &vma->vm_file->f_mapping->i_pages, first);
	unsigned long count = 0, nr, base;
	swp_entry_t entry;
	void *item;

	rcu_read_lock();
	xas_for_each(&xas, item, last) {
		if (xas_retry(&xas, item) ||
		    !ts_shmem_swap_entry(item, &entry) ||
		    !ts_swapdev_owns(ts_swapdev, entry))
			continue;
		/* A large entry counts for its pages within the range. */
		nr = 1UL << xas_get_order(&xas);
		base = xas.xa_index & ~(nr - 1);
		count += min(base + nr - 1, last) - max(base, first) + 1;
	}
	rcu_read_unlock();
	return count;
}

/*
 * Pages of [start, end) of @mm swapped out to our device: anonymous pages
 * whose PTE is a swap entry there, and shmem pages whose file holds one.
 */
unsigned long ts_reconcile_count_swapped(struct mm_struct *mm,
					 unsigned long start,
					 unsigned long end)
{
	struct ts_count c = { .count = 0 };
	struct vm_area_struct *vma;
	unsigned long addr, next;

	if (!ts_swapdev)
		return 0;
	mmap_read_lock(mm);
	for (addr = start & PAGE_MASK; addr < end; addr = next) {
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start >= end)
			break;
		if (addr < vma->vm_start)
			addr = vma->vm_start;
		/* One page table at a time, then let others run. */
		next = min3(pmd_addr_end(addr, end), vma->vm_end, end);
		if (ts_vma_is_shared_shmem(vma)) {
			c.count += ts_count_swapped_shmem(vma, addr, next);
		} else if (vma_is_anonymous(vma)) {
			c.addr = addr;
			c.end = next;
			ts_with_pte_locked(mm, addr, ts_count_swapped_ptes, &c);
		}
		if (need_resched()) {
			mmap_read_unlock(mm);
			cond_resched();
			mmap_read_lock(mm);
		}
	}
	mmap_read_unlock(mm);
	return c.count;
}
