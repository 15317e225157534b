// SPDX-License-Identifier: GPL-2.0
/*
 * The store's metadata on the backing device: the superblock, a journal of
 * reference records and two checkpoint slots (format in
 * include/uapi/linux/tesseract_store.h). Guest-disk references are the
 * only durable names of store blocks; swap slots are rebuilt empty at
 * every load.
 *
 * Ordering. A record that adds a reference is written after the data of
 * its block is on stable media (the backing device is flushed first); a
 * commit returns after its journal blocks are (FUA). A block whose
 * reference is dropped stays allocated until the drop is committed, so
 * that a crash before that point finds its old contents intact.
 *
 * Generations. Journal blocks and checkpoints draw their sequence numbers
 * from one counter: a checkpoint takes a number of its own, so that of two
 * checkpoints the later one always has the larger number, even when no
 * journal block was written between them (a commit too big for the journal
 * is a checkpoint instead), and journal blocks written after it have
 * larger numbers still. Two valid checkpoints with one number are
 * corruption.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/highmem.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <uapi/linux/tesseract_store.h>

#include "tesseract.h"

static u32 ts_crc(const void *buf, size_t len)
{
	return ~crc32c(~0U, buf, len);
}

/* The crc of a metadata block whose crc field is at @crc. */
static u32 ts_block_crc(void *block, __le32 *crc)
{
	__le32 saved = *crc;
	u32 sum;

	*crc = 0;
	sum = ts_crc(block, TS_STORE_BLOCK_SIZE);
	*crc = saved;
	return sum;
}

static int ts_meta_io(struct ts_store *store, u64 block, struct page *page,
		      blk_opf_t opf)
{
	struct bio *bio;
	int ret;

	bio = bio_alloc(store->backing.bdev, 1, opf, GFP_KERNEL);
	bio->bi_iter.bi_sector = block * TS_SECTORS_PER_BLOCK;
	__bio_add_page(bio, page, TS_STORE_BLOCK_SIZE, 0);
	ret = submit_bio_wait(bio);
	bio_put(bio);
	return ret;
}

static int ts_meta_read(struct ts_store *store, u64 block, struct page *page)
{
	return ts_meta_io(store, block, page, REQ_OP_READ);
}

static int ts_meta_write(struct ts_store *store, u64 block, struct page *page)
{
	return ts_meta_io(store, block, page,
			  REQ_OP_WRITE | REQ_SYNC | REQ_FUA);
}

/* Regions of the superblock, in order, inside the device. */
static const char *ts_sb_geometry_error(const struct ts_sb *sb, u64 blocks)
{
	u64 js = le64_to_cpu(sb->journal_start);
	u64 jb = le64_to_cpu(sb->journal_blocks);
	u64 c0 = le64_to_cpu(sb->ckpt_start[0]);
	u64 c1 = le64_to_cpu(sb->ckpt_start[1]);
	u64 cb = le64_to_cpu(sb->ckpt_blocks);
	u64 ds = le64_to_cpu(sb->data_start);
	u64 db = le32_to_cpu(sb->data_blocks);
	u64 refs = le32_to_cpu(sb->max_refs);

	if (le32_to_cpu(sb->block_size) != TS_STORE_BLOCK_SIZE)
		return "block size is not 4096";
	if (js != 1 || !jb || c0 != js + jb || !cb || c1 != c0 + cb ||
	    ds != c1 + cb)
		return "regions out of order";
	if (db < TS_STORE_MIN_BLOCKS || ds + db > blocks ||
	    le64_to_cpu(sb->device_blocks) > blocks)
		return "data area beyond the end of the device";
	if (!refs || refs > db ||
	    cb - 1 < DIV_ROUND_UP(refs, TS_CKPT_RECORDS))
		return "checkpoint slots too small";
	return NULL;
}

/*
 * Read and check the superblock; fills in the store's geometry. Refuses
 * with a message naming the problem.
 */
static int ts_sb_load_page(struct ts_store *store, struct page *page)
{
	u64 blocks = bdev_nr_bytes(store->backing.bdev) >> TS_BLOCK_SHIFT;
	struct ts_sb *sb = page_address(page);
	const char *why;
	int ret;

	ret = ts_meta_read(store, 0, page);
	if (ret) {
		pr_err("backing=%s: cannot read the superblock (%d)\n",
		       store->path, ret);
		return ret;
	}
	if (le64_to_cpu(sb->magic) != TS_SB_MAGIC) {
		pr_err("backing=%s: not a tesseract store (no superblock); format it with tesseractctl format\n",
		       store->path);
		return -EINVAL;
	}
	if (ts_block_crc(sb, &sb->crc) != le32_to_cpu(sb->crc)) {
		pr_err("backing=%s: superblock checksum mismatch (torn or corrupted)\n",
		       store->path);
		return -EUCLEAN;
	}
	if (le32_to_cpu(sb->version) < TS_SB_VERSION) {
		/*
		 * Its checkpoints may share a sequence number, and its
		 * references name no backend: they could go to any.
		 */
		pr_err("backing=%s: store format version %u, this module reads %u: its checkpoints may share a sequence number and its references name no backend; flatten its disks with the module that wrote it, then tesseractctl format\n",
		       store->path, le32_to_cpu(sb->version), TS_SB_VERSION);
		return -EINVAL;
	}
	if (le32_to_cpu(sb->version) != TS_SB_VERSION) {
		pr_err("backing=%s: store format version %u, this module reads %u\n",
		       store->path, le32_to_cpu(sb->version), TS_SB_VERSION);
		return -EINVAL;
	}
	if (le32_to_cpu(sb->incompat_features) & ~TS_SB_INCOMPAT_KNOWN) {
		pr_err("backing=%s: unknown incompatible features %#x\n",
		       store->path, le32_to_cpu(sb->incompat_features) &
		       ~TS_SB_INCOMPAT_KNOWN);
		return -EINVAL;
	}
	store->volatile_device = le32_to_cpu(sb->incompat_features) &
				 TS_SB_INCOMPAT_VOLATILE;
	why = ts_sb_geometry_error(sb, blocks);
	if (why) {
		pr_err("backing=%s: bad superblock: %s\n", store->path, why);
		return -EUCLEAN;
	}
	memcpy(store->uuid, sb->uuid, sizeof(store->uuid));
	store->journal_start = le64_to_cpu(sb->journal_start);
	store->journal_blocks = le64_to_cpu(sb->journal_blocks);
	store->ckpt_start[0] = le64_to_cpu(sb->ckpt_start[0]);
	store->ckpt_start[1] = le64_to_cpu(sb->ckpt_start[1]);
	store->ckpt_blocks = le64_to_cpu(sb->ckpt_blocks);
	store->data_start = le64_to_cpu(sb->data_start);
	store->nr_blocks = le32_to_cpu(sb->data_blocks);
	store->max_refs = le32_to_cpu(sb->max_refs);
	return 0;
}

/* A record as read from the device: well formed, block in range. */
static bool ts_record_valid(const struct ts_store *store,
			    const struct ts_record *rec)
{
	const struct ts_bind_record *bind = (const void *)rec;

	if (rec->type == TS_REC_BIND)
		return bind->kind >= TS_IDENT_FILE &&
		       bind->kind <= TS_IDENT_TOKEN &&
		       !bind->pad[0] && !bind->pad[1];
	if (rec->pad[0] || rec->pad[1] || rec->pad[2])
		return false;
	if (rec->type == TS_REC_ADD)
		return le32_to_cpu(rec->data_block) < store->nr_blocks;
	if (rec->type == TS_REC_FORGET)
		return !rec->data_block && !rec->disk_block;
	return rec->type == TS_REC_DROP && !rec->data_block;
}

/* The record of a disk's identity (ts_bind_record). */
void ts_record_bind(struct ts_record *rec, u64 disk_id,
		    const struct ts_ident *ident)
{
	struct ts_bind_record *bind = (void *)rec;

	BUILD_BUG_ON(sizeof(*bind) != sizeof(*rec));
	memset(bind, 0, sizeof(*bind));
	bind->type = TS_REC_BIND;
	bind->kind = ident->kind;
	bind->fp_lo = cpu_to_le32(ident->fp_lo);
	bind->disk_id = cpu_to_le64(disk_id);
	bind->fp_hi = cpu_to_le64(ident->fp_hi);
}

static int ts_record_apply(struct ts_store *store, const struct ts_record *rec)
{
	const struct ts_bind_record *bind = (const void *)rec;
	u64 id = le64_to_cpu(rec->disk_id), x = le64_to_cpu(rec->disk_block);
	struct ts_ident ident;

	switch (rec->type) {
	case TS_REC_ADD:
		return ts_disk_recover_ref(store, id, x,
					   le32_to_cpu(rec->data_block));
	case TS_REC_BIND:
		ident.kind = bind->kind;
		ident.fp_lo = le32_to_cpu(bind->fp_lo);
		ident.fp_hi = le64_to_cpu(bind->fp_hi);
		return ts_disk_recover_bind(store, id, &ident);
	case TS_REC_FORGET:
		return ts_disk_recover_forget(store, id);
	default:
		return ts_disk_recover_drop(store, id, x);
	}
}

/* Checkpoint slot @slot's header if valid, into @hdr. */
static int ts_ckpt_load_header(struct ts_store *store, int slot,
			       struct page *page, struct ts_ckpt_header *hdr)
{
	struct ts_ckpt_header *h = page_address(page);
	int ret;

	ret = ts_meta_read(store, store->ckpt_start[slot], page);
	if (ret)
		return ret;
	if (le64_to_cpu(h->magic) != TS_CKPT_MAGIC ||
	    ts_block_crc(h, &h->crc) != le32_to_cpu(h->crc) ||
	    memcmp(h->uuid, store->uuid, sizeof(h->uuid)) ||
	    le64_to_cpu(h->nr_refs) > store->max_refs ||
	    le64_to_cpu(h->journal_next) >= store->journal_blocks)
		return -EUCLEAN;
	*hdr = *h;
	return 0;
}

/* Apply the records of checkpoint @slot. */
static int ts_ckpt_apply(struct ts_store *store, int slot,
			 const struct ts_ckpt_header *hdr, struct page *page)
{
	u64 nr = le64_to_cpu(hdr->nr_refs), i;
	struct ts_record *recs = page_address(page);
	u32 crc = ~0U;
	int ret;

	/*
	 * Each record is checked before it is applied, the crc of them all
	 * at the end: on any error the caller drops what was loaded.
	 */
	for (i = 0; i < nr; i++) {
		unsigned int r = i % TS_CKPT_RECORDS;

		if (!r) {
			ret = ts_meta_read(store, store->ckpt_start[slot] + 1 +
					   i / TS_CKPT_RECORDS, page);
			if (ret)
				return ret;
		}
		crc = crc32c(crc, &recs[r], sizeof(recs[r]));
		if ((recs[r].type != TS_REC_ADD &&
		     recs[r].type != TS_REC_BIND) ||
		    !ts_record_valid(store, &recs[r]))
			return -EUCLEAN;
		ret = ts_record_apply(store, &recs[r]);
		if (ret)
			return ret;
	}
	return ~crc == le32_to_cpu(hdr->entries_crc) ? 0 : -EUCLEAN;
}

/*
 * The journal ended at ring index @pos, where block @seq was expected. If
 * the block after it is the valid block seq + 1, the end was not where a
 * crash left it but damage: say so, since the commits after it are lost.
 */
static void ts_journal_warn_hole(struct ts_store *store, struct page *page,
				 u64 pos, u64 seq)
{
	struct ts_journal_block *jb = page_address(page);

	pos = (pos + 1) % store->journal_blocks;
	if (ts_meta_read(store, store->journal_start + pos, page))
		return;
	if (le64_to_cpu(jb->magic) == TS_JOURNAL_MAGIC &&
	    le64_to_cpu(jb->seq) == seq + 1 &&
	    ts_block_crc(jb, &jb->crc) == le32_to_cpu(jb->crc))
		pr_warn("backing=%s: journal block %llu is damaged and later ones are valid: commits after it are lost (tesseractctl check)\n",
			store->path, seq);
}

/*
 * Replay the journal after the checkpoint: blocks in sequence from
 * journal_next, until one is missing, torn or out of sequence, which is
 * where the last commit before the crash ended.
 */
static int ts_journal_replay(struct ts_store *store, struct page *page)
{
	struct ts_journal_block *jb = page_address(page);
	u64 pos = store->journal.next, n, seq = store->journal.seq + 1;
	unsigned int i, nr;
	int ret;

	for (n = 0; n < store->journal_blocks; n++, seq++) {
		ret = ts_meta_read(store, store->journal_start + pos, page);
		if (ret)
			return ret;
		nr = le32_to_cpu(jb->nr_records);
		if (le64_to_cpu(jb->magic) != TS_JOURNAL_MAGIC ||
		    le64_to_cpu(jb->seq) != seq ||
		    ts_block_crc(jb, &jb->crc) != le32_to_cpu(jb->crc) ||
		    nr > TS_JOURNAL_RECORDS)
			break;
		for (i = 0; i < nr; i++) {
			struct ts_record *rec = &jb->records[i];

			if (!ts_record_valid(store, rec)) {
				pr_err("backing=%s: journal block %llu: bad record %u\n",
				       store->path, seq, i);
				return -EUCLEAN;
			}
			ret = ts_record_apply(store, rec);
			if (ret)
				return ret;
		}
		store->journal.seq = seq;
		pos = (pos + 1) % store->journal_blocks;
	}
	store->journal.next = pos;
	store->journal.since_ckpt = n;
	ts_journal_warn_hole(store, page, pos, seq);
	return 0;
}

/* Read and check the superblock: the store's geometry. */
int ts_store_load_sb(struct ts_store *store)
{
	struct page *page = alloc_page(GFP_KERNEL);
	int ret;

	if (!page)
		return -ENOMEM;
	ret = ts_sb_load_page(store, page);
	__free_page(page);
	return ret;
}

/*
 * Load the newest valid checkpoint and the journal after it: the
 * references of every guest disk, handed to reconcile.c, which owns them
 * from now on. On failure, ts_disks_forget() drops what was loaded.
 */
int ts_journal_recover(struct ts_store *store)
{
	struct ts_ckpt_header hdr[2];
	struct page *page;
	int valid[2], slot, ret;

	mutex_init(&store->journal.lock);
	page = alloc_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	for (slot = 0; slot < 2; slot++)
		valid[slot] = !ts_ckpt_load_header(store, slot, page,
						   &hdr[slot]);
	if (!valid[0] && !valid[1]) {
		pr_err("backing=%s: no valid checkpoint (both slots corrupted)\n",
		       store->path);
		ret = -EUCLEAN;
		goto out;
	}
	/* Every checkpoint has a number of its own: neither is newer. */
	if (valid[0] && valid[1] && hdr[0].seq == hdr[1].seq) {
		pr_err("backing=%s: both checkpoint slots claim seq %llu: corrupted\n",
		       store->path, le64_to_cpu(hdr[0].seq));
		ret = -EUCLEAN;
		goto out;
	}
	slot = valid[0] && (!valid[1] || le64_to_cpu(hdr[0].seq) >
			    le64_to_cpu(hdr[1].seq)) ? 0 : 1;
	/*
	 * Entries are on stable media before their header: bad entries under
	 * a good header are corruption, not a crash. The older slot is no way
	 * out, the journal after it may be overwritten.
	 */
	ret = ts_ckpt_apply(store, slot, &hdr[slot], page);
	if (ret == -EUCLEAN) {
		pr_err("backing=%s: checkpoint %llu: references corrupted\n",
		       store->path, le64_to_cpu(hdr[slot].seq));
		goto out;
	}
	if (ret) {
		pr_err("backing=%s: cannot load checkpoint %llu (%d)\n",
		       store->path, le64_to_cpu(hdr[slot].seq), ret);
		goto out;
	}
	store->journal.ckpt_slot = slot;
	store->journal.seq = le64_to_cpu(hdr[slot].seq);
	store->journal.next = le64_to_cpu(hdr[slot].journal_next);
	ret = ts_journal_replay(store, page);
	if (ret)
		goto out;
	pr_info("store on %s: checkpoint %llu in slot %d, journal up to %llu, %u references\n",
		store->path, le64_to_cpu(hdr[slot].seq), slot,
		store->journal.seq, store->nr_refs);
out:
	__free_page(page);
	return ret;
}

/*
 * Write @nr records to the journal and return once they are on stable
 * media, after the data blocks they name are. Journal lock held.
 */
static int ts_journal_write_locked(struct ts_store *store,
				   const struct ts_record *recs,
				   unsigned int nr)
{
	struct ts_journal *j = &store->journal;
	struct ts_journal_block *jb;
	struct page *page;
	unsigned int n;
	int ret;

	lockdep_assert_held(&j->lock);
	/* The data of added references first. */
	ret = blkdev_issue_flush(store->backing.bdev);
	if (ret)
		return ret;
	page = alloc_page(GFP_KERNEL);
	if (!page)
		return -ENOMEM;
	jb = page_address(page);
	while (nr) {
		n = min_t(unsigned int, nr, TS_JOURNAL_RECORDS);
		memset(jb, 0, TS_STORE_BLOCK_SIZE);
		jb->magic = cpu_to_le64(TS_JOURNAL_MAGIC);
		jb->seq = cpu_to_le64(j->seq + 1);
		jb->nr_records = cpu_to_le32(n);
		memcpy(jb->records, recs, n * sizeof(*recs));
		jb->crc = cpu_to_le32(ts_block_crc(jb, &jb->crc));
		ret = ts_meta_write(store, store->journal_start + j->next,
				    page);
		if (ret)
			break;
		j->seq++;
		j->next = (j->next + 1) % store->journal_blocks;
		j->since_ckpt++;
		recs += n;
		nr -= n;
	}
	__free_page(page);
	return ret;
}

/* Journal blocks @nr records take. */
static u64 ts_journal_blocks_for(unsigned int nr)
{
	return DIV_ROUND_UP(nr, TS_JOURNAL_RECORDS);
}

/*
 * Write a checkpoint of every reference into the slot not in use, then
 * switch to it (see ts_checkpoint()). Journal lock held.
 */
static int ts_checkpoint_locked(struct ts_store *store,
				ts_ckpt_fill_fn fill, void *arg)
{
	struct ts_journal *j = &store->journal;
	int slot = !j->ckpt_slot, ret;
	struct ts_ckpt_header *hdr;
	struct ts_ckpt_writer w = {
		.store = store,
		.block = store->ckpt_start[slot] + 1,
		.crc = ~0U,
	};

	lockdep_assert_held(&j->lock);
	w.page = alloc_page(GFP_KERNEL);
	if (!w.page)
		return -ENOMEM;
	w.recs = page_address(w.page);
	memset(w.recs, 0, TS_STORE_BLOCK_SIZE);
	ret = fill(&w, arg);
	if (!ret && w.nr % TS_CKPT_RECORDS)
		ret = ts_meta_write(store, w.block, w.page);
	if (ret)
		goto out;

	hdr = page_address(w.page);
	memset(hdr, 0, TS_STORE_BLOCK_SIZE);
	hdr->magic = cpu_to_le64(TS_CKPT_MAGIC);
	/* A number of its own: newer than any checkpoint or block before. */
	hdr->seq = cpu_to_le64(j->seq + 1);
	hdr->entries_crc = cpu_to_le32(~w.crc);
	hdr->nr_refs = cpu_to_le64(w.nr);
	hdr->journal_next = cpu_to_le64(j->next);
	memcpy(hdr->uuid, store->uuid, sizeof(hdr->uuid));
	hdr->crc = cpu_to_le32(ts_block_crc(hdr, &hdr->crc));
	/* The entries (FUA each) are down: now the header. */
	ret = ts_meta_write(store, store->ckpt_start[slot], w.page);
	if (ret) {
		/*
		 * The header may be on the media or not. A journal block
		 * numbered after it would not follow the old checkpoint's
		 * blocks, one numbered as before would not follow it: no
		 * commit until a checkpoint succeeds.
		 */
		j->since_ckpt = store->journal_blocks;
		goto out;
	}
	j->seq++;
	j->ckpt_slot = slot;
	j->since_ckpt = 0;
out:
	__free_page(w.page);
	return ret;
}

/* The next record of a checkpoint being written, or NULL if it is full. */
static struct ts_record *ts_ckpt_next(struct ts_ckpt_writer *w)
{
	if (w->nr >= w->store->max_refs)
		return NULL;
	return &w->recs[w->nr % TS_CKPT_RECORDS];
}

/* The record ts_ckpt_next() gave is filled in: into the checkpoint. */
static int ts_ckpt_put(struct ts_ckpt_writer *w, struct ts_record *rec)
{
	int ret;

	w->crc = crc32c(w->crc, rec, sizeof(*rec));
	if (++w->nr % TS_CKPT_RECORDS)
		return 0;
	ret = ts_meta_write(w->store, w->block++, w->page);
	memset(w->recs, 0, TS_STORE_BLOCK_SIZE);
	return ret;
}

/* Add one reference to a checkpoint being written (a ts_ckpt_fill_fn). */
int ts_ckpt_add(struct ts_ckpt_writer *w, u64 disk_id, u64 x, u32 block)
{
	struct ts_record *rec = ts_ckpt_next(w);

	if (!rec)
		return -ENOSPC;
	rec->type = TS_REC_ADD;
	rec->data_block = cpu_to_le32(block);
	rec->disk_id = cpu_to_le64(disk_id);
	rec->disk_block = cpu_to_le64(x);
	return ts_ckpt_put(w, rec);
}

/* The identity of the disk whose references follow (a ts_ckpt_fill_fn). */
int ts_ckpt_bind(struct ts_ckpt_writer *w, u64 disk_id,
		 const struct ts_ident *ident)
{
	struct ts_record *rec = ts_ckpt_next(w);

	if (!rec)
		return -ENOSPC;
	ts_record_bind(rec, disk_id, ident);
	return ts_ckpt_put(w, rec);
}

/*
 * Make @nr records durable, after the data they name; -ENOSPC if the
 * journal has no room for them before a checkpoint.
 */
int ts_journal_commit(struct ts_store *store, const struct ts_record *recs,
		      unsigned int nr)
{
	struct ts_journal *j = &store->journal;
	int ret;

	if (!nr)
		return 0;
	mutex_lock(&j->lock);
	if (j->since_ckpt + ts_journal_blocks_for(nr) >= store->journal_blocks)
		ret = -ENOSPC;
	else
		ret = ts_journal_write_locked(store, recs, nr);
	mutex_unlock(&j->lock);
	if (ret && ret != -ENOSPC)
		pr_err_ratelimited("%s: journal write failed (%d)\n",
				   store->path, ret);
	return ret;
}

/*
 * A checkpoint of the references @fill gives (ts_ckpt_add(), ts_ckpt_bind()
 * for each): a state the guests may find after a crash, that replaces the
 * journal. The caller keeps it from changing until this returns.
 */
int ts_checkpoint(struct ts_store *store, ts_ckpt_fill_fn fill, void *arg)
{
	int ret;

	ret = blkdev_issue_flush(store->backing.bdev);
	if (ret)
		return ret;
	mutex_lock(&store->journal.lock);
	ret = ts_checkpoint_locked(store, fill, arg);
	mutex_unlock(&store->journal.lock);
	if (ret)
		pr_err("%s: checkpoint failed (%d)\n", store->path, ret);
	return ret;
}
