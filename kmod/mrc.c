// SPDX-License-Identifier: GPL-2.0
/*
 * Miss-ratio curves per memory cgroup, from the swap traffic of
 * /dev/tsswap0 (Lu and Shen, USENIX ATC 2007).
 *
 * Every page a cgroup sends to swap gets an eviction stamp from the
 * cgroup's own eviction clock; when the page is read back, its eviction
 * distance is the number of the group's pages that went to swap after it
 * and are still there. Under LRU-like reclaim those pages sit between it
 * and the memory limit, so with distance + 1 more pages of memory this
 * swap-in would have been a hit. A histogram of distances per cgroup is
 * its miss-ratio curve above its current size.
 *
 * Pages evicted after this one but already read back must not count: they
 * are in memory again, and counting them would overstate the memory needed
 * by every re-fault in between. So each group keeps the pages it has in
 * swap in "spans" of consecutive stamps with a count of those still in
 * swap, merged as they age (DGIM): recent spans are a few stamps wide and
 * exact, old ones coarse. A distance is the sum of the newer spans plus an
 * even share of the page's own span: close when a span's pages come back in
 * any order but their own (within 6 % in random order), far off when the
 * newest of a wide span come back first (a reverse scan: up to its width).
 *
 * A page is stamped when reclaim takes it out of memory, at
 * mem_cgroup_swapout() (a hook in swapdev.c): after a write to the device
 * or none at all, since a page read back and never dirtied leaves again
 * clean, and the 6.12 zeromap and zswap keep their pages off the device.
 * Its distance is taken when its swap-in begins, at swap_read_folio()
 * (swap_readpage() on 6.1, another hook), whether the data then comes
 * from the device or not; the device's read of it says whether the kernel
 * faulted it or read it ahead. One that no read of the device follows (its
 * slot still announced by the swap-out hook: zswap, the zeromap) counts
 * there and then as a fault that "bypassed" the device; with the hook off,
 * when its slot is next evicted or freed. Reads by swap readahead are not
 * faults: they are counted apart, and a readahead page used later is a
 * fault the device never sees (Documentation/admin-guide.rst).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cgroup.h>
#include <linux/debugfs.h>
#include <linux/kstrtox.h>
#include <linux/ktime.h>
#include <linux/memcontrol.h>
#include <linux/moduleparam.h>
#include <linux/oom.h>
#include <linux/rcupdate.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>
#include <uapi/linux/tesseract.h>

#include "tesseract.h"

/*
 * A slot's state: the memcg id of its page's group in the top 16 bits;
 * below them the page's eviction stamp while it is in swap, or from the
 * start of its swap-in until it is counted (TS_MRC_POPPED) its eviction
 * distance: TS_MRC_NO_DISTANCE if it has none, TS_MRC_NOT_A_FAULT for a
 * read by swapoff. memcg ids start at 1, so 0 means "nothing". 47 bits of
 * clock are 2^47 evictions of one group (512 TiB) before a distance can
 * be wrong.
 */
#define TS_MRC_ID_SHIFT		48
#define TS_MRC_POPPED		BIT_ULL(47)
#define TS_MRC_CLOCK_BITS	47
#define TS_MRC_CLOCK_MASK	(BIT_ULL(TS_MRC_CLOCK_BITS) - 1)
#define TS_MRC_NO_DISTANCE	TS_MRC_CLOCK_MASK
#define TS_MRC_NOT_A_FAULT	(TS_MRC_CLOCK_MASK - 1)

/*
 * Spans of each width a group keeps before the two oldest of them merge:
 * the error of a distance is at most the share of its own span, about
 * 1 / TS_MRC_SPANS_PER_WIDTH of the newer spans' pages.
 */
#define TS_MRC_SPANS_PER_WIDTH	4
#define TS_MRC_NR_WIDTHS	(TS_MRC_CLOCK_BITS + 1)

/*
 * Groups tracked at most: about 7 KiB each. Cgroups beyond it are not
 * tracked (their evictions count in debugfs mrc/untracked) until the
 * reaper frees the entry of a cgroup that is gone.
 */
#define TS_MRC_MAX_GROUPS	1024

/* How often the reaper looks for groups whose cgroup is gone. */
#define TS_MRC_REAP_INTERVAL	(30 * HZ)

#define TS_MRC_WINDOW_S_MAX	(7 * 24 * 3600)

static bool ts_mrc_param = true;
static unsigned int ts_mrc_window_s = 60;

/* What happened to a group's pages in one window of time. */
struct ts_mrc_window {
	u64 evictions;
	u64 faults;
	u64 unstamped_faults;
	u64 readahead_reads;
	u64 bypassed;
	u64 hist[TESSERACT_MRC_BUCKETS];
};

/*
 * Stamps first..(next span's first - 1), of which live are still in swap,
 * none of them after first + newer: a page that comes back newest first
 * (a reverse scan) then has none of its span after it. 16 bytes keep a
 * group within 8 KiB: live is at most the slots (fewer than 2^32, see
 * ts_mrc_create()); newer saturates at U32_MAX, where it stops being a
 * bound: it is then never lowered, and a page beyond it counts none of
 * its span after it.
 */
struct ts_mrc_span {
	u64 first;
	u32 live;
	u32 newer;
};

/*
 * The spans of one width, 2^level stamps, oldest first from span[oldest],
 * a ring: all of them are older than every narrower span, so a group's
 * spans are its widths' in turn, the widest first. A merge takes the two
 * oldest of a width and makes them the newest of the next: no span moves.
 */
struct ts_mrc_width {
	struct ts_mrc_span span[TS_MRC_SPANS_PER_WIDTH];
	u8 oldest;
	u8 nr;
};

struct ts_mrc_group {
	struct rcu_head rcu;		/* kfree_rcu() wants it near the start */
	unsigned short memcg_id;	/* the key in ts_mrc.groups */
	u64 cgroup_id;

	spinlock_t lock;		/* everything below; irqsave */
	bool dead;			/* off the table, freed after RCU */
	u64 clock;			/* the next stamp */
	u64 in_swap;			/* sum of the spans' live */
	unsigned int nr_spans;
	unsigned int nr_widths;		/* the widest in use, plus one */
	struct ts_mrc_width width[TS_MRC_NR_WIDTHS];

	/* The current window (cur) and the one before, which lasted prev_ns. */
	struct ts_mrc_window win[2];
	unsigned int cur;
	u64 cur_start_ns;
	u64 prev_ns;
};

/* Time spent in one entry point, while debugfs mrc/time_paths is set. */
struct ts_mrc_path_time {
	atomic64_t calls;
	atomic64_t ns;
};

struct ts_mrc {
	u64 nr_slots;
	atomic64_t *slot_stamp;		/* see TS_MRC_ID_SHIFT */
	struct xarray groups;		/* by memcg id */
	atomic_t nr_groups;
	atomic64_t untracked;		/* evictions of no tracked group */
	struct delayed_work reaper;
	struct dentry *debugfs;

	/*
	 * A group comes to be in reclaim, where only an allocation that
	 * does not sleep can be made, and one of order 3 fails easily: a
	 * spare allocated in process context comes first, and is replaced
	 * there (refill). fail_group_alloc (debugfs) fails the allocations
	 * in reclaim, for tests.
	 */
	struct ts_mrc_group *spare;
	struct work_struct refill;
	bool fail_group_alloc;

	/*
	 * The cost of the swap paths, measured on demand (two clock reads a
	 * call are not free): what a swap-out and a swap-in spend here.
	 */
	bool time_paths;
	struct ts_mrc_path_time swap_out_time;
	struct ts_mrc_path_time swap_in_time;
};

/* The one swap device's curves, for /dev/tesseract; NULL when off. */
static struct ts_mrc *ts_mrc_active;

module_param_cb(mrc, &ts_param_ops_bool, &ts_mrc_param, 0444);
__MODULE_PARM_TYPE(mrc, "bool");
MODULE_PARM_DESC(mrc,
		 "Miss-ratio curves per cgroup from swap traffic: 8 bytes per swap slot (default 1: on)");

static int mrc_window_s_set(const char *val, const struct kernel_param *kp)
{
	unsigned int s;

	if (kstrtouint(val, 10, &s) || s > TS_MRC_WINDOW_S_MAX) {
		pr_err("mrc_window_s=%s: not a number of seconds from 0 to %u\n",
		       val, TS_MRC_WINDOW_S_MAX);
		return -EINVAL;
	}
	WRITE_ONCE(*(unsigned int *)kp->arg, s);
	return 0;
}

static const struct kernel_param_ops mrc_window_s_ops = {
	.set = mrc_window_s_set,
	.get = param_get_uint,
};

module_param_cb(mrc_window_s, &mrc_window_s_ops, &ts_mrc_window_s, 0644);
MODULE_PARM_DESC(mrc_window_s,
		 "Curves cover the last one to two windows of this many seconds (0: all since reset; default 60)");

/* The histogram bucket of an eviction distance (TESSERACT_MRC_BUCKET_LO). */
static unsigned int ts_mrc_bucket(u64 distance)
{
	unsigned int order;

	if (distance < 8)
		return distance;
	order = fls64(distance) - 1;
	return min_t(unsigned int, TESSERACT_MRC_BUCKETS - 1,
		     (order - 2) * 8 + ((distance >> (order - 3)) & 7));
}

static void ts_mrc_window_clear(struct ts_mrc_window *w)
{
	memset(w, 0, sizeof(*w));
}

/*
 * The clock of the windows: they last seconds, so the time of the last
 * tick will do, and reading it costs nothing on every swap-in and swap-out
 * (a clocksource read can be slow: an HPET read is an MMIO access).
 */
static u64 ts_mrc_now(void)
{
	return ktime_get_coarse_ns();
}

/*
 * Move to a new window if the current one is over. A window with nothing
 * in it still counts as time: an idle stretch of two windows or more
 * leaves both windows empty, the previous one a window long.
 */
static void ts_mrc_rotate_locked(struct ts_mrc_group *g, u64 now)
{
	u64 window_ns = (u64)READ_ONCE(ts_mrc_window_s) * NSEC_PER_SEC;
	u64 elapsed = now - g->cur_start_ns;

	if (!window_ns || elapsed < window_ns)
		return;
	if (elapsed < 2 * window_ns) {
		g->cur ^= 1;
		g->prev_ns = elapsed;
	} else {
		ts_mrc_window_clear(&g->win[g->cur ^ 1]);
		g->prev_ns = window_ns;
	}
	ts_mrc_window_clear(&g->win[g->cur]);
	g->cur_start_ns = now;
}

static struct ts_mrc_window *ts_mrc_cur_locked(struct ts_mrc_group *g)
{
	ts_mrc_rotate_locked(g, ts_mrc_now());
	return &g->win[g->cur];
}

static void ts_mrc_reset_locked(struct ts_mrc_group *g)
{
	ts_mrc_window_clear(&g->win[0]);
	ts_mrc_window_clear(&g->win[1]);
	g->prev_ns = 0;
	g->cur_start_ns = ts_mrc_now();
}

/* The @i-th oldest span of width @level. */
static struct ts_mrc_span *ts_mrc_span(struct ts_mrc_group *g,
				       unsigned int level, unsigned int i)
{
	struct ts_mrc_width *w = &g->width[level];

	return &w->span[(w->oldest + i) % TS_MRC_SPANS_PER_WIDTH];
}

/* Pages in swap of the spans @from to @to - 1 of width @level, oldest 0. */
static u64 ts_mrc_width_live(struct ts_mrc_group *g, unsigned int level,
			     unsigned int from, unsigned int to)
{
	u64 live = 0;

	for (; from < to; from++)
		live += ts_mrc_span(g, level, from)->live;
	return live;
}

/* @old takes in the next span, @new: its pages and its newest bound. */
static void ts_mrc_span_absorb(struct ts_mrc_span *old,
			       const struct ts_mrc_span *new)
{
	if (new->live)
		old->newer = min_t(u64, new->first + new->newer - old->first,
				   U32_MAX);
	old->live += new->live;
}

static void ts_mrc_spans_clear_locked(struct ts_mrc_group *g)
{
	unsigned int level;

	for (level = 0; level < g->nr_widths; level++)
		g->width[level].nr = 0;
	g->nr_widths = 0;
	g->nr_spans = 0;
}

/*
 * A new stamp joins as a span of its own, the newest of width 1. A width
 * that would hold more than TS_MRC_SPANS_PER_WIDTH spans first has its
 * two oldest merged into the newest of twice the width, which may carry
 * on up. About one merge per stamp, no span moved or looked at but the
 * two that merge: this runs for every page that leaves memory, with
 * interrupts off.
 */
static void ts_mrc_push_stamp_locked(struct ts_mrc_group *g)
{
	struct ts_mrc_span span = { .first = g->clock++, .live = 1 };
	struct ts_mrc_span merged;
	struct ts_mrc_width *w;
	unsigned int level;

	BUILD_BUG_ON(!is_power_of_2(TS_MRC_SPANS_PER_WIDTH));
	g->in_swap++;
	for (level = 0; ; level++) {
		w = &g->width[level];
		if (level == g->nr_widths) {
			w->oldest = 0;
			w->nr = 0;
			g->nr_widths++;
		}
		if (w->nr < TS_MRC_SPANS_PER_WIDTH)
			break;
		merged = *ts_mrc_span(g, level, 0);
		ts_mrc_span_absorb(&merged, ts_mrc_span(g, level, 1));
		w->oldest = (w->oldest + 2) % TS_MRC_SPANS_PER_WIDTH;
		w->nr -= 2;
		g->nr_spans--;
		*ts_mrc_span(g, level, w->nr) = span;
		w->nr++;
		if (WARN_ON_ONCE(level == TS_MRC_NR_WIDTHS - 1)) {
			/* 2^47 stamps: the merged span stays the oldest. */
			w->oldest = (w->oldest + TS_MRC_SPANS_PER_WIDTH - 1) %
				    TS_MRC_SPANS_PER_WIDTH;
			*ts_mrc_span(g, level, 0) = merged;
			w->nr++;
			g->nr_spans++;
			return;
		}
		span = merged;
	}
	*ts_mrc_span(g, level, w->nr) = span;
	w->nr++;
	g->nr_spans++;
}

/*
 * Take @stamp's page out of its group's swap. Returns its distance: the
 * group's pages still in swap that were evicted after it. U64_MAX if the
 * stamp is not in any span (the group was reset for a new cgroup).
 */
static u64 ts_mrc_pop_stamp_locked(struct ts_mrc_group *g, u64 stamp)
{
	unsigned int level, at, l, top = g->nr_widths;
	struct ts_mrc_width *w;
	struct ts_mrc_span *span = NULL;
	u64 after, newest;

	if (stamp >= g->clock)
		return U64_MAX;
	/*
	 * The newest span that begins at or before @stamp: in the narrowest
	 * width whose oldest span does.
	 */
	for (level = 0; level < top; level++) {
		w = &g->width[level];
		if (!w->nr || ts_mrc_span(g, level, 0)->first > stamp)
			continue;
		for (at = w->nr - 1; ts_mrc_span(g, level, at)->first > stamp;)
			at--;
		span = ts_mrc_span(g, level, at);
		break;
	}
	if (!span || !span->live)
		return U64_MAX;
	/*
	 * The newer spans' pages: summed, or what the older ones leave of
	 * all in swap, whichever is fewer widths to add. Pages tend to come
	 * back oldest first (a scan in the order they left), and the spans
	 * are summed with interrupts off.
	 */
	if (level <= top - 1 - level) {
		after = ts_mrc_width_live(g, level, at + 1, w->nr);
		for (l = 0; l < level; l++)
			after += ts_mrc_width_live(g, l, 0, g->width[l].nr);
	} else {
		after = g->in_swap - span->live -
			ts_mrc_width_live(g, level, 0, at);
		for (l = level + 1; l < top; l++)
			after -= ts_mrc_width_live(g, l, 0, g->width[l].nr);
	}
	/*
	 * Of the rest of its own span, an even share of those up to the
	 * newest still in swap, rounded down. The newest itself back, the
	 * one before it is the newest that may be left.
	 */
	span->live--;
	g->in_swap--;
	newest = span->first + span->newer;
	if (newest > stamp)
		after += div64_u64((u64)span->live * (newest - stamp),
				   span->newer);
	else if (newest == stamp && stamp > span->first &&
		 span->newer != U32_MAX)
		span->newer--;
	/* Spans with nothing left in swap at the old end are history. */
	while (g->nr_spans > 1) {
		w = &g->width[g->nr_widths - 1];
		if (w->nr && ts_mrc_span(g, g->nr_widths - 1, 0)->live)
			break;
		if (w->nr) {
			w->oldest = (w->oldest + 1) % TS_MRC_SPANS_PER_WIDTH;
			w->nr--;
			g->nr_spans--;
		}
		if (!w->nr)
			g->nr_widths--;
	}
	return after;
}

/* In process context: a spare group for reclaim, if it has none. */
static void ts_mrc_refill(struct work_struct *work)
{
	struct ts_mrc *mrc = container_of(work, struct ts_mrc, refill);
	struct ts_mrc_group *g;

	if (READ_ONCE(mrc->spare))
		return;
	g = kzalloc(sizeof(*g), GFP_KERNEL);
	if (g && cmpxchg(&mrc->spare, NULL, g))
		kfree(g);
}

/* A new group, in reclaim: the spare, else what GFP_NOWAIT can get. */
static struct ts_mrc_group *ts_mrc_group_alloc(struct ts_mrc *mrc,
					       unsigned short memcg_id,
					       u64 cgroup_id)
{
	struct ts_mrc_group *g = xchg(&mrc->spare, NULL);

	/* Taken, or a refill failed: make one for the next new group. */
	schedule_work(&mrc->refill);
	if (!g && !READ_ONCE(mrc->fail_group_alloc))
		g = kzalloc(sizeof(*g), GFP_NOWAIT | __GFP_NOWARN);
	if (!g)
		return NULL;
	g->memcg_id = memcg_id;
	g->cgroup_id = cgroup_id;
	spin_lock_init(&g->lock);
	g->cur_start_ns = ts_mrc_now();
	return g;
}

/*
 * The group of a memcg that swaps out, created if new: called in reclaim,
 * so only without sleeping. A group whose cgroup is gone and whose memcg
 * id went to a new cgroup has nothing in swap (swap entries pin their
 * memcg's id), and starts again for the new one. NULL: not tracked.
 * Under rcu_read_lock().
 */
static struct ts_mrc_group *ts_mrc_group_for_swap_out(struct ts_mrc *mrc,
						      unsigned short memcg_id,
						      u64 cgroup_id)
{
	struct ts_mrc_group *g, *old;
	unsigned long flags;

	g = xa_load(&mrc->groups, memcg_id);
	if (g)
		return g;
	if (atomic_inc_return(&mrc->nr_groups) > TS_MRC_MAX_GROUPS) {
		atomic_dec(&mrc->nr_groups);
		return NULL;
	}
	g = ts_mrc_group_alloc(mrc, memcg_id, cgroup_id);
	if (!g) {
		atomic_dec(&mrc->nr_groups);
		return NULL;
	}
	xa_lock_irqsave(&mrc->groups, flags);
	old = __xa_cmpxchg(&mrc->groups, memcg_id, NULL, g,
			   GFP_NOWAIT | __GFP_NOWARN);
	xa_unlock_irqrestore(&mrc->groups, flags);
	if (old) {
		/* Lost a race (a group) or no memory for the xarray (error). */
		kfree(g);
		atomic_dec(&mrc->nr_groups);
		return xa_is_err(old) ? NULL : old;
	}
	return g;
}

static u64 ts_mrc_time_start(struct ts_mrc *mrc)
{
	return READ_ONCE(mrc->time_paths) ? ktime_get_ns() : 0;
}

static void ts_mrc_time_end(struct ts_mrc_path_time *t, u64 start)
{
	if (!start)
		return;
	atomic64_add(ktime_get_ns() - start, &t->ns);
	atomic64_inc(&t->calls);
}

/*
 * Count a swap-in of @g's page at @distance (TS_MRC_NO_DISTANCE: none):
 * read ahead, or a fault, whose data came from the device or not.
 */
static void ts_mrc_count_locked(struct ts_mrc_group *g, u64 distance,
				bool readahead, bool bypassed)
{
	struct ts_mrc_window *w = ts_mrc_cur_locked(g);

	if (distance == TS_MRC_NOT_A_FAULT)
		return;
	if (bypassed)
		w->bypassed++;
	if (readahead) {
		w->readahead_reads++;
	} else if (distance == TS_MRC_NO_DISTANCE) {
		w->unstamped_faults++;
	} else {
		w->hist[ts_mrc_bucket(distance)]++;
		w->faults++;
	}
}

/*
 * A slot's old state goes: a stamp leaves its group's swap (the page was
 * freed, or the slot written over), a distance whose read never reached
 * the device (zswap, the zeromap) counts now as a fault that bypassed it.
 */
static void ts_mrc_settle(struct ts_mrc *mrc, u64 old)
{
	struct ts_mrc_group *g;
	unsigned long flags;

	rcu_read_lock();
	g = xa_load(&mrc->groups, old >> TS_MRC_ID_SHIFT);
	if (g) {
		spin_lock_irqsave(&g->lock, flags);
		if (g->dead)
			goto unlock;
		if (old & TS_MRC_POPPED)
			ts_mrc_count_locked(g, old & TS_MRC_CLOCK_MASK, false,
					    true);
		else
			ts_mrc_pop_stamp_locked(g, old & TS_MRC_CLOCK_MASK);
unlock:
		spin_unlock_irqrestore(&g->lock, flags);
	}
	rcu_read_unlock();
}

/*
 * @folio left memory from @nr slots at @first (mem_cgroup_swapout(), its
 * memcg still set). A memcg that went offline charged its swap to its
 * nearest online ancestor, which is where the pages count.
 */
static void ts_mrc_stamp_folio(struct ts_mrc *mrc, struct folio *folio,
			       u64 first, unsigned long nr)
{
	struct ts_mrc_group *g = NULL;
	struct mem_cgroup *memcg;
	unsigned short memcg_id;
	unsigned long flags, i;
	u64 old, cgid;

	/*
	 * A slot that still holds a stamp was not swapped in since: the
	 * folio came back without a swap-in read (zswap writing it back to
	 * the device), and leaves again. Its first eviction stands.
	 */
	old = atomic64_read(&mrc->slot_stamp[first]);
	if (old && !(old & TS_MRC_POPPED))
		return;
	for (i = 0; i < nr; i++) {
		/*
		 * Nothing else writes the state of a slot that reclaim is
		 * taking out of memory: no swap-in of it can begin, nor can
		 * it be freed, before put_swap_folio() drops SWAP_HAS_CACHE
		 * (6.12 calls the hook after the folio left the swap cache).
		 * An atomic exchange only where there is a state to give up.
		 */
		if (!atomic64_read(&mrc->slot_stamp[first + i]))
			continue;
		old = atomic64_xchg(&mrc->slot_stamp[first + i], 0);
		if (old)
			ts_mrc_settle(mrc, old);
	}

	rcu_read_lock();
	memcg = mem_cgroup_disabled() ? NULL : folio_memcg(folio);
	while (memcg && !mem_cgroup_online(memcg) && parent_mem_cgroup(memcg))
		memcg = parent_mem_cgroup(memcg);
	if (memcg) {
		memcg_id = mem_cgroup_id(memcg);
		cgid = cgroup_id(memcg->css.cgroup);
		g = ts_mrc_group_for_swap_out(mrc, memcg_id, cgid);
	}
	if (!g)
		goto untracked;

	spin_lock_irqsave(&g->lock, flags);
	if (g->dead) {
		spin_unlock_irqrestore(&g->lock, flags);
		goto untracked;
	}
	if (g->cgroup_id != cgid) {
		if (g->in_swap) {
			/* Cannot happen while swap entries pin memcg ids. */
			spin_unlock_irqrestore(&g->lock, flags);
			goto untracked;
		}
		g->cgroup_id = cgid;
		ts_mrc_spans_clear_locked(g);
		ts_mrc_reset_locked(g);
	}
	for (i = 0; i < nr; i++) {
		atomic64_set(&mrc->slot_stamp[first + i],
			     (u64)memcg_id << TS_MRC_ID_SHIFT |
			     (g->clock & TS_MRC_CLOCK_MASK));
		ts_mrc_push_stamp_locked(g);
	}
	ts_mrc_cur_locked(g)->evictions += nr;
	spin_unlock_irqrestore(&g->lock, flags);
	rcu_read_unlock();
	return;

untracked:
	rcu_read_unlock();
	atomic64_add(nr, &mrc->untracked);
}

void ts_mrc_evicted(struct ts_mrc *mrc, struct folio *folio, u64 first,
		    unsigned long nr)
{
	u64 start;

	if (!mrc || first >= mrc->nr_slots)
		return;
	nr = min_t(u64, nr, mrc->nr_slots - first);
	start = ts_mrc_time_start(mrc);
	ts_mrc_stamp_folio(mrc, folio, first, nr);
	ts_mrc_time_end(&mrc->swap_out_time, start);
}

/*
 * The swap-in of @slot begins (swap_read_folio(), the folio locked in the
 * swap cache: nothing evicts or frees the slot until it is over). Its page
 * leaves its group's swap now, whatever then reads its data: its stamp
 * becomes its distance, which the device's read counts when it completes
 * (ts_mrc_swap_in()). Not @from_device, its data come from zswap or the
 * zeromap and no read of the device follows: it counts now, as a fault
 * that bypassed the device (whether it was read ahead is not known).
 * Swapoff reads every page back, needed or not: those are no faults (it
 * runs as the OOM killer's origin task, see try_to_unuse()).
 */
void ts_mrc_swap_in_begins(struct ts_mrc *mrc, u64 slot, bool from_device)
{
	u64 old, distance = TS_MRC_NO_DISTANCE;
	struct ts_mrc_group *g;
	unsigned long flags;
	bool swapoff;

	if (!mrc || slot >= mrc->nr_slots)
		return;
	old = atomic64_read(&mrc->slot_stamp[slot]);
	if (!old || (old & TS_MRC_POPPED))
		return;
	swapoff = oom_task_origin(current);
	rcu_read_lock();
	g = xa_load(&mrc->groups, old >> TS_MRC_ID_SHIFT);
	if (g) {
		spin_lock_irqsave(&g->lock, flags);
		if (!g->dead) {
			distance = min_t(u64, TS_MRC_NO_DISTANCE,
					 ts_mrc_pop_stamp_locked(g, old &
							TS_MRC_CLOCK_MASK));
			if (!from_device && !swapoff)
				ts_mrc_count_locked(g, distance, false, true);
		}
		spin_unlock_irqrestore(&g->lock, flags);
	}
	rcu_read_unlock();
	if (swapoff)
		distance = TS_MRC_NOT_A_FAULT;
	atomic64_set(&mrc->slot_stamp[slot], !from_device ? 0 :
		     (old & ~TS_MRC_CLOCK_MASK) | TS_MRC_POPPED | distance);
}

/*
 * The device's read of @slot into the swap-cache @folio completed (locked:
 * charged to the memcg that gets the page). @readahead: the kernel read it
 * ahead of any fault.
 */
static void ts_mrc_count_swap_in(struct ts_mrc *mrc, u64 slot,
				 struct folio *folio, bool readahead)
{
	struct ts_mrc_group *g;
	struct mem_cgroup *memcg;
	unsigned long flags;
	u64 old, distance = TS_MRC_NO_DISTANCE;

	old = atomic64_xchg(&mrc->slot_stamp[slot], 0);

	rcu_read_lock();
	if (old) {
		g = xa_load(&mrc->groups, old >> TS_MRC_ID_SHIFT);
	} else {
		/* Left memory before the module watched: no distance. */
		memcg = mem_cgroup_disabled() ? NULL : folio_memcg(folio);
		g = memcg ? xa_load(&mrc->groups, mem_cgroup_id(memcg)) : NULL;
	}
	if (!g)
		goto out;
	spin_lock_irqsave(&g->lock, flags);
	if (g->dead)
		goto unlock;
	if (old & TS_MRC_POPPED)
		distance = old & TS_MRC_CLOCK_MASK;
	else if (old)
		distance = min_t(u64, TS_MRC_NO_DISTANCE,
				 ts_mrc_pop_stamp_locked(g, old &
							 TS_MRC_CLOCK_MASK));
	ts_mrc_count_locked(g, distance, readahead, false);
unlock:
	spin_unlock_irqrestore(&g->lock, flags);
out:
	rcu_read_unlock();
}

void ts_mrc_swap_in(struct ts_mrc *mrc, u64 slot, struct folio *folio,
		    bool readahead)
{
	u64 start;

	if (!mrc || slot >= mrc->nr_slots)
		return;
	start = ts_mrc_time_start(mrc);
	ts_mrc_count_swap_in(mrc, slot, folio, readahead);
	ts_mrc_time_end(&mrc->swap_in_time, start);
}

/* @slot is free (swap_slot_free_notify: atomic context). */
void ts_mrc_slot_freed(struct ts_mrc *mrc, u64 slot)
{
	u64 old;

	if (!mrc || slot >= mrc->nr_slots)
		return;
	old = atomic64_xchg(&mrc->slot_stamp[slot], 0);
	if (old)
		ts_mrc_settle(mrc, old);
}

/* Sum of both windows into @m (and @hist), for a reader. */
static void ts_mrc_report_locked(struct ts_mrc_group *g,
				 struct tesseract_mrc *m, u64 *hist)
{
	u64 now = ts_mrc_now();
	unsigned int b, w;

	ts_mrc_rotate_locked(g, now);
	m->cgroup_id = g->cgroup_id;
	m->window_ns = g->prev_ns + (now - g->cur_start_ns);
	m->evictions = g->win[0].evictions + g->win[1].evictions;
	m->faults = g->win[0].faults + g->win[1].faults;
	m->unstamped_faults = g->win[0].unstamped_faults +
			      g->win[1].unstamped_faults;
	m->readahead_reads = g->win[0].readahead_reads +
			     g->win[1].readahead_reads;
	m->bypassed = g->win[0].bypassed + g->win[1].bypassed;
	m->in_swap = g->in_swap;
	for (b = 0; b < TESSERACT_MRC_BUCKETS; b++)
		for (hist[b] = 0, w = 0; w < 2; w++)
			hist[b] += g->win[w].hist[b];
}

/*
 * The tracked group of @cgroup_id, or with @next the one with the
 * smallest cgroup id above it. Under rcu_read_lock().
 */
static struct ts_mrc_group *ts_mrc_find(struct ts_mrc *mrc, u64 cgroup_id,
					bool next)
{
	struct ts_mrc_group *g, *found = NULL;
	unsigned long index;

	xa_for_each(&mrc->groups, index, g) {
		if (READ_ONCE(g->dead))
			continue;
		if (!next && READ_ONCE(g->cgroup_id) == cgroup_id)
			return g;
		if (next && READ_ONCE(g->cgroup_id) > cgroup_id &&
		    (!found || g->cgroup_id < found->cgroup_id))
			found = g;
	}
	return found;
}

/* TESSERACT_MRC: see include/uapi/linux/tesseract.h. */
int ts_mrc_ioctl(struct tesseract_mrc *m)
{
	struct ts_mrc *mrc = ts_mrc_active;
	u64 __user *ubuckets = u64_to_user_ptr(m->buckets);
	struct ts_mrc_group *g;
	unsigned int nr;
	unsigned long flags;
	u64 *hist;
	int ret = 0;

	if (!mrc)
		return -EOPNOTSUPP;
	if (m->flags & ~(TESSERACT_MRC_RESET | TESSERACT_MRC_NEXT))
		return -EINVAL;
	hist = kcalloc(TESSERACT_MRC_BUCKETS, sizeof(*hist), GFP_KERNEL);
	if (!hist)
		return -ENOMEM;
	rcu_read_lock();
	g = ts_mrc_find(mrc, m->cgroup_id, m->flags & TESSERACT_MRC_NEXT);
	if (g) {
		spin_lock_irqsave(&g->lock, flags);
		ts_mrc_report_locked(g, m, hist);
		if (m->flags & TESSERACT_MRC_RESET)
			ts_mrc_reset_locked(g);
		spin_unlock_irqrestore(&g->lock, flags);
	}
	rcu_read_unlock();
	if (!g) {
		ret = -ENOENT;
		goto out;
	}
	nr = min_t(u32, m->nr_buckets, TESSERACT_MRC_BUCKETS);
	if (m->buckets && copy_to_user(ubuckets, hist, nr * sizeof(*hist)))
		ret = -EFAULT;
	m->nr_buckets = TESSERACT_MRC_BUCKETS;
	memset(m->reserved, 0, sizeof(m->reserved));
out:
	kfree(hist);
	return ret;
}

/* Reset the curve of @cgroup_id, or of every group for 0. */
static int ts_mrc_reset(struct ts_mrc *mrc, u64 cgroup_id)
{
	struct ts_mrc_group *g;
	unsigned long index, flags;
	int ret = cgroup_id ? -ENOENT : 0;

	rcu_read_lock();
	xa_for_each(&mrc->groups, index, g) {
		if (cgroup_id && READ_ONCE(g->cgroup_id) != cgroup_id)
			continue;
		spin_lock_irqsave(&g->lock, flags);
		ts_mrc_reset_locked(g);
		spin_unlock_irqrestore(&g->lock, flags);
		ret = 0;
	}
	rcu_read_unlock();
	return ret;
}

/*
 * Free the groups of cgroups that are gone and have nothing left in
 * swap: the table stays bounded while cgroups come and go.
 */
static void ts_mrc_reap(struct work_struct *work)
{
	struct ts_mrc *mrc = container_of(to_delayed_work(work), struct ts_mrc,
					  reaper);
	struct ts_mrc_group *g;
	struct cgroup *cgrp;
	unsigned long index, flags;
	u64 cgroup_id;
	bool gone;

	xa_for_each(&mrc->groups, index, g) {
		cgroup_id = READ_ONCE(g->cgroup_id);
		cgrp = cgroup_get_from_id(cgroup_id);
		if (!IS_ERR(cgrp)) {
			cgroup_put(cgrp);
			continue;
		}
		/* Unless a new cgroup took over its memcg id meanwhile. */
		spin_lock_irqsave(&g->lock, flags);
		gone = !g->in_swap && !g->dead && g->cgroup_id == cgroup_id;
		if (gone)
			g->dead = true;
		spin_unlock_irqrestore(&g->lock, flags);
		if (!gone)
			continue;
		xa_erase_irq(&mrc->groups, index);
		atomic_dec(&mrc->nr_groups);
		kfree_rcu(g, rcu);
	}
	schedule_delayed_work(&mrc->reaper, TS_MRC_REAP_INTERVAL);
}

static int ts_mrc_groups_show(struct seq_file *s, void *v)
{
	struct ts_mrc *mrc = s->private;
	struct tesseract_mrc m = {};
	struct ts_mrc_group *g;
	unsigned long index, flags;
	unsigned int b, pairs;
	bool dead;
	u64 *hist;

	hist = kcalloc(TESSERACT_MRC_BUCKETS, sizeof(*hist), GFP_KERNEL);
	if (!hist)
		return -ENOMEM;
	rcu_read_lock();
	xa_for_each(&mrc->groups, index, g) {
		spin_lock_irqsave(&g->lock, flags);
		/* Being freed: gone for the ioctl too. */
		dead = g->dead;
		if (!dead)
			ts_mrc_report_locked(g, &m, hist);
		spin_unlock_irqrestore(&g->lock, flags);
		if (dead)
			continue;
		seq_printf(s, "cgroup %llu memcg %lu window_ms %llu evictions %llu faults %llu unstamped_faults %llu readahead_reads %llu bypassed %llu in_swap %llu\n",
			   m.cgroup_id, index, div_u64(m.window_ns, NSEC_PER_MSEC),
			   m.evictions, m.faults, m.unstamped_faults,
			   m.readahead_reads, m.bypassed, m.in_swap);
		for (b = pairs = 0; b < TESSERACT_MRC_BUCKETS; b++)
			if (hist[b])
				seq_printf(s, "%s%llu:%llu", pairs++ ? " " : "",
					   TESSERACT_MRC_BUCKET_LO(b), hist[b]);
		seq_putc(s, '\n');
	}
	rcu_read_unlock();
	kfree(hist);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ts_mrc_groups);

static int ts_mrc_reset_write(void *data, u64 cgroup_id)
{
	return ts_mrc_reset(data, cgroup_id);
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_mrc_reset_fops, NULL, ts_mrc_reset_write,
			 "%llu\n");

static int ts_mrc_untracked_get(void *data, u64 *val)
{
	*val = atomic64_read(data);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_mrc_untracked_fops, ts_mrc_untracked_get, NULL,
			 "%llu\n");

static int ts_mrc_stamped_get(void *data, u64 *val)
{
	struct ts_mrc *mrc = data;
	u64 slot, n = 0;

	for (slot = 0; slot < mrc->nr_slots; slot++) {
		if (atomic64_read(&mrc->slot_stamp[slot]))
			n++;
		if (!(slot % 65536))
			cond_resched();
	}
	*val = n;
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_mrc_stamped_fops, ts_mrc_stamped_get, NULL,
			 "%llu\n");

static int ts_mrc_path_ns_show(struct seq_file *s, void *v)
{
	struct ts_mrc *mrc = s->private;
	struct {
		const char *name;
		struct ts_mrc_path_time *t;
	} paths[] = {
		{ "swap_out", &mrc->swap_out_time },
		{ "swap_in", &mrc->swap_in_time },
	};
	u64 calls;
	int i;

	for (i = 0; i < ARRAY_SIZE(paths); i++) {
		calls = atomic64_read(&paths[i].t->calls);
		seq_printf(s, "%s calls %llu ns_per_call %llu\n", paths[i].name,
			   calls, calls ? div64_u64(atomic64_read(&paths[i].t->ns),
						    calls) : 0);
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ts_mrc_path_ns);

/*
 * The curves of a swap device of @nr_slots slots; *@mrcp stays NULL when
 * they are off (module parameter mrc=0): then nothing is stamped.
 */
int ts_mrc_create(u64 nr_slots, struct ts_mrc **mrcp)
{
	struct ts_mrc *mrc;
	struct dentry *dir;

	*mrcp = NULL;
	if (!ts_mrc_param)
		return 0;
	/*
	 * Curves are named by cgroup v2 ids; with the memory controller off
	 * or on a v1 hierarchy every group would look gone to the reaper.
	 */
	if (mem_cgroup_disabled() ||
	    !cgroup_subsys_on_dfl(memory_cgrp_subsys)) {
		pr_warn("miss-ratio curves off: the memory controller is not on the cgroup v2 hierarchy\n");
		return 0;
	}
	/* A group is allocated in reclaim: no bigger than kmalloc-8k. */
	BUILD_BUG_ON(sizeof(struct ts_mrc_group) > 8192);
	/* A span's live count is 32 bits (struct ts_mrc_span). */
	if (nr_slots > U32_MAX) {
		pr_warn("miss-ratio curves off: more than %u swap slots\n",
			U32_MAX);
		return 0;
	}
	mrc = kzalloc(sizeof(*mrc), GFP_KERNEL);
	if (!mrc)
		return -ENOMEM;
	mrc->nr_slots = nr_slots;
	mrc->slot_stamp = kvcalloc(nr_slots, sizeof(*mrc->slot_stamp),
				   GFP_KERNEL);
	mrc->spare = kzalloc(sizeof(*mrc->spare), GFP_KERNEL);
	if (!mrc->slot_stamp || !mrc->spare) {
		kfree(mrc->spare);
		kvfree(mrc->slot_stamp);
		kfree(mrc);
		return -ENOMEM;
	}
	INIT_WORK(&mrc->refill, ts_mrc_refill);
	xa_init_flags(&mrc->groups, XA_FLAGS_LOCK_IRQ);
	INIT_DELAYED_WORK(&mrc->reaper, ts_mrc_reap);
	schedule_delayed_work(&mrc->reaper, TS_MRC_REAP_INTERVAL);

	dir = debugfs_create_dir("mrc", ts_debugfs_root);
	mrc->debugfs = dir;
	debugfs_create_file("groups", 0400, dir, mrc, &ts_mrc_groups_fops);
	debugfs_create_file_unsafe("reset", 0200, dir, mrc,
				   &ts_mrc_reset_fops);
	debugfs_create_file_unsafe("untracked", 0444, dir, &mrc->untracked,
				   &ts_mrc_untracked_fops);
	debugfs_create_file_unsafe("stamped_slots", 0400, dir, mrc,
				   &ts_mrc_stamped_fops);
	debugfs_create_bool("time_paths", 0600, dir, &mrc->time_paths);
	debugfs_create_bool("fail_group_alloc", 0600, dir,
			    &mrc->fail_group_alloc);
	debugfs_create_file("path_ns", 0400, dir, mrc, &ts_mrc_path_ns_fops);
	WRITE_ONCE(ts_mrc_active, mrc);
	*mrcp = mrc;
	return 0;
}

/* After the swap device stopped: nothing stamps or reads any more. */
void ts_mrc_destroy(struct ts_mrc *mrc)
{
	struct ts_mrc_group *g;
	unsigned long index;

	if (!mrc)
		return;
	WRITE_ONCE(ts_mrc_active, NULL);
	debugfs_remove_recursive(mrc->debugfs);
	cancel_delayed_work_sync(&mrc->reaper);
	cancel_work_sync(&mrc->refill);
	kfree(mrc->spare);
	xa_for_each(&mrc->groups, index, g) {
		xa_erase_irq(&mrc->groups, index);
		kfree_rcu(g, rcu);
	}
	xa_destroy(&mrc->groups);
	kvfree(mrc->slot_stamp);
	kfree(mrc);
}
