// SPDX-License-Identifier: GPL-2.0
/*
 * Locality recovery. References scatter a guest's sequential disk ranges
 * across the store, so that a later sequential read of them turns into
 * random store reads. Two repairs run in the background, in a kthread
 * that yields to guest I/O:
 *
 *  - cleaning copies referenced blocks back into the guest image at their
 *    own offsets and drops the references;
 *  - compaction rewrites a disk's referenced runs into store blocks that
 *    follow each other in guest order, so that they read sequentially.
 *
 * Flatten cleans one disk synchronously for an operator (before copying
 * the image or migrating the VM), through /dev/tesseract.
 *
 * The moves themselves, journalled and safe against racing guest requests,
 * are ts_disk_clean() and ts_disk_compact() in reconcile.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <uapi/linux/tesseract.h>

#include "tesseract.h"

static struct task_struct *ts_cleaner;
static DECLARE_WAIT_QUEUE_HEAD(ts_cleaner_wait);
static bool ts_cleaner_kick;
static atomic64_t ts_idle_passes;
static struct dentry *ts_cleaner_debugfs, *ts_disks_debugfs;
static struct dentry *ts_mismatches_debugfs, *ts_forgotten_debugfs;

/* A knob changed: let the worker look again now. */
static void ts_cleaner_wake(void)
{
	WRITE_ONCE(ts_cleaner_kick, true);
	wake_up(&ts_cleaner_wait);
}

static int ts_bool_knob_set(const char *val, const struct kernel_param *kp)
{
	int ret = ts_param_set_bool(val, kp);

	if (!ret)
		ts_cleaner_wake();
	return ret;
}

static int ts_uint_knob_set(const char *val, const struct kernel_param *kp)
{
	int ret = param_set_uint(val, kp);

	if (ret)
		pr_err("%s=%s: not a non-negative number\n", kp->name, val);
	else
		ts_cleaner_wake();
	return ret;
}

static const struct kernel_param_ops ts_bool_knob_ops = {
	.flags = KERNEL_PARAM_OPS_FL_NOARG,
	.set = ts_bool_knob_set,
	.get = param_get_bool,
};

static const struct kernel_param_ops ts_uint_knob_ops = {
	.set = ts_uint_knob_set,
	.get = param_get_uint,
};

static bool cleaner;
module_param_cb(cleaner, &ts_bool_knob_ops, &cleaner, 0644);
__MODULE_PARM_TYPE(cleaner, "bool");
MODULE_PARM_DESC(cleaner,
		 "Copy referenced blocks of idle disks back into their images in the background (default: off)");

static bool compactor;
module_param_cb(compactor, &ts_bool_knob_ops, &compactor, 0644);
__MODULE_PARM_TYPE(compactor, "bool");
MODULE_PARM_DESC(compactor,
		 "Rewrite referenced blocks of idle disks into guest order in the store in the background, while the cleaner is off (default: off)");

static unsigned int cleaner_idle_ms = 1000;
module_param_cb(cleaner_idle_ms, &ts_uint_knob_ops, &cleaner_idle_ms, 0644);
MODULE_PARM_DESC(cleaner_idle_ms,
		 "Background work on a disk waits until it has had no guest request for this long (default: 1000; 0: no wait)");

static unsigned int cleaner_rate_kib = 16384;
module_param_cb(cleaner_rate_kib, &ts_uint_knob_ops, &cleaner_rate_kib, 0644);
MODULE_PARM_DESC(cleaner_rate_kib,
		 "Background work moves at most this many KiB a second (default: 16384; 0: no limit)");

static int cleaner_nice = 10;

static int cleaner_nice_set(const char *val, const struct kernel_param *kp)
{
	int nice, ret;

	ret = kstrtoint(val, 0, &nice);
	if (ret || nice < MIN_NICE || nice > MAX_NICE) {
		pr_err("cleaner_nice=%s: not a nice value from %d to %d\n",
		       val, MIN_NICE, MAX_NICE);
		return -EINVAL;
	}
	WRITE_ONCE(cleaner_nice, nice);
	ts_cleaner_wake();
	return 0;
}

static const struct kernel_param_ops cleaner_nice_ops = {
	.set = cleaner_nice_set,
	.get = param_get_int,
};

module_param_cb(cleaner_nice, &cleaner_nice_ops, &cleaner_nice, 0644);
MODULE_PARM_DESC(cleaner_nice,
		 "Nice value of the background worker, -20 to 19 (default: 10)");

/* Runs a compaction step may look at before it lets go of a disk's lock. */
#define TS_COMPACT_SCAN	256

/*
 * One step of background work on @disk, if it is idle: a run cleaned or
 * compacted. Returns the blocks moved, 0 if there was nothing to do.
 */
static int ts_cleaner_step(struct ts_disk *disk)
{
	unsigned long idle = msecs_to_jiffies(READ_ONCE(cleaner_idle_ms));
	u64 x = 0;
	int ret;

	if (ts_disk_idle_jiffies(disk) < idle || ts_disk_flattening(disk))
		return 0;
	if (READ_ONCE(cleaner)) {
		ret = ts_disk_clean(disk, &x, U64_MAX, TS_RUN_MAX);
		/* Committed at once: the store gets the blocks back. */
		if (ret > 0 && ts_disk_sync(disk))
			ret = -EIO;
	} else if (READ_ONCE(compactor)) {
		ret = ts_disk_compact(disk, TS_COMPACT_SCAN);
		if (ret > 0 && ts_disk_sync(disk))
			ret = -EIO;
		if (ret == -EAGAIN)
			return 1;	/* not done: come back */
	} else {
		return 0;
	}
	/* Detached, read-only or a full store: nothing to do for now. */
	if (ret < 0 && ret != -ENXIO && ret != -EROFS && ret != -ENOSPC)
		pr_warn_ratelimited("disk %llx: %s failed (%d); will retry\n",
				    ts_disk_id(disk),
				    READ_ONCE(cleaner) ? "cleaning" :
				    "compaction", ret);
	return max(ret, 0);
}

/* Sleep for as long as moving @blocks takes at the rate limit. */
static void ts_cleaner_throttle(unsigned int blocks)
{
	unsigned int rate = READ_ONCE(cleaner_rate_kib);
	unsigned long ms;

	if (!rate || !blocks)
		return;
	ms = DIV_ROUND_UP((unsigned long)blocks * (TS_BLOCK_SIZE / SZ_1K) *
			  MSEC_PER_SEC, rate);
	wait_event_interruptible_timeout(ts_cleaner_wait,
					 kthread_should_stop(),
					 msecs_to_jiffies(ms));
}

static int ts_cleaner_fn(void *unused)
{
	struct ts_disk *disk;
	int nice = INT_MAX;
	unsigned int moved;

	while (!kthread_should_stop()) {
		if (nice != READ_ONCE(cleaner_nice)) {
			nice = READ_ONCE(cleaner_nice);
			set_user_nice(current, nice);
		}
		WRITE_ONCE(ts_cleaner_kick, false);
		moved = 0;
		/* One step per disk, round robin. */
		for (disk = ts_disk_next_attached(NULL); disk;
		     disk = ts_disk_next_attached(disk)) {
			moved += ts_cleaner_step(disk);
			cond_resched();
			if (kthread_should_stop()) {
				ts_disk_put(disk);
				break;
			}
		}
		if (moved) {
			ts_cleaner_throttle(moved);
			continue;
		}
		atomic64_inc(&ts_idle_passes);
		/* Nothing to do, or disks not idle yet: look again later. */
		wait_event_interruptible_timeout(ts_cleaner_wait,
						 READ_ONCE(ts_cleaner_kick) ||
						 kthread_should_stop(),
						 msecs_to_jiffies(clamp(READ_ONCE(cleaner_idle_ms),
									100U, 1000U)));
	}
	return 0;
}

static int ts_flatten(struct tesseract_flatten *f)
{
	struct ts_disk *disk = ts_disk_get(f->disk_id);
	int ret = 0, sync_ret;
	u64 x, swept, changes;
	unsigned long left;

	f->blocks_cleaned = 0;
	if (!disk)
		return -ENOENT;
	if (!ts_disk_attached(disk)) {
		ts_disk_put(disk);
		return -ENXIO;
	}
	ts_disk_flatten_begin(disk);
	/*
	 * Sweep until no reference is left: a guest write that was taking a
	 * reference when the flatten began may add one behind the sweep.
	 */
	while (!ret && ts_disk_nr_refs(disk)) {
		x = 0;
		swept = f->blocks_cleaned;
		changes = ts_disk_refs_changes(disk);
		while ((ret = ts_disk_clean(disk, &x, U64_MAX, TS_RUN_MAX)) > 0) {
			f->blocks_cleaned += ret;
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				break;
			}
			cond_resched();
		}
		/*
		 * References that no sweep finds would be a bug, not a loop;
		 * but a sweep may clean nothing because the references
		 * changed under it: a guest write or the background cleaner
		 * dropped the last one it was about to find, or a write that
		 * was taking one when the flatten began added it behind it
		 * (counted, and not yet stored: so the count and the changes
		 * are read together). Then sweep again, if any is left.
		 */
		if (!ret && swept == f->blocks_cleaned &&
		    !ts_disk_refs_changed(disk, changes, &left) &&
		    WARN_ON_ONCE(left))
			ret = -EIO;
	}
	/* What was cleaned stays cleaned, even if interrupted. */
	sync_ret = ts_disk_sync(disk);
	ts_disk_flatten_end(disk);
	ts_disk_put(disk);
	return ret ?: sync_ret;
}

static int ts_disk_info(struct tesseract_disk_info *info)
{
	struct ts_disk *disk = ts_disk_get(info->disk_id);
	const struct ts_locality_stats *stats;

	if (!disk)
		return -ENOENT;
	stats = ts_disk_stats(disk);
	info->flags = 0;
	if (ts_disk_attached(disk))
		info->flags |= TESSERACT_DISK_ATTACHED;
	if (ts_disk_flattening(disk))
		info->flags |= TESSERACT_DISK_FLATTENING;
	info->references = ts_disk_nr_refs(disk);
	info->blocks_cleaned = atomic64_read(&stats->cleaned);
	info->blocks_compacted = atomic64_read(&stats->compacted);
	info->bytes_moved = atomic64_read(&stats->bytes_moved);
	ts_disk_put(disk);
	return 0;
}

static long ts_control_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	void __user *argp = (void __user *)arg;
	struct tesseract_disk_forget forget;
	struct tesseract_disk_info info;
	struct tesseract_flatten f;
	struct tesseract_mrc mrc;
	int ret;

	switch (cmd) {
	case TESSERACT_DISK_INFO:
		if (copy_from_user(&info, argp, sizeof(info)))
			return -EFAULT;
		ret = ts_disk_info(&info);
		if (!ret && copy_to_user(argp, &info, sizeof(info)))
			ret = -EFAULT;
		return ret;
	case TESSERACT_FLATTEN:
		if (copy_from_user(&f, argp, sizeof(f)))
			return -EFAULT;
		ret = ts_flatten(&f);
		if (copy_to_user(argp, &f, sizeof(f)))
			ret = ret ?: -EFAULT;
		return ret;
	case TESSERACT_DISK_FORGET:
		if (copy_from_user(&forget, argp, sizeof(forget)))
			return -EFAULT;
		ret = ts_disk_forget(forget.disk_id, &forget.references);
		if (copy_to_user(argp, &forget, sizeof(forget)))
			ret = ret ?: -EFAULT;
		return ret;
	case TESSERACT_MRC:
		if (copy_from_user(&mrc, argp, sizeof(mrc)))
			return -EFAULT;
		/* Reading a curve is a look; clearing it, a change. */
		if ((mrc.flags & TESSERACT_MRC_RESET) &&
		    !(file->f_mode & FMODE_WRITE))
			return -EBADF;
		ret = ts_mrc_ioctl(&mrc);
		if (!ret && copy_to_user(argp, &mrc, sizeof(mrc)))
			ret = -EFAULT;
		return ret;
	default:
		return -ENOTTY;
	}
}

/* Set once every node of the module is registered and init cannot fail. */
static bool ts_control_live;

/*
 * An init that fails after this node was registered frees the module
 * under any file still open on it: opens wait for the module to be up.
 */
static int ts_control_open(struct inode *inode, struct file *file)
{
	if (!READ_ONCE(ts_control_live))
		return -ENODEV;
	return nonseekable_open(inode, file);
}

static const struct file_operations ts_control_fops = {
	.owner = THIS_MODULE,
	.open = ts_control_open,
	.unlocked_ioctl = ts_control_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice ts_control = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "tesseract",
	.fops = &ts_control_fops,
	.mode = 0600,
};

static void ts_disk_show(struct ts_disk *disk, void *arg)
{
	const struct ts_locality_stats *stats = ts_disk_stats(disk);

	seq_printf(arg, "%llx attached=%d references=%lu cleaned=%lld compacted=%lld bytes_moved=%lld identity_mismatch=%d\n",
		   ts_disk_id(disk), ts_disk_attached(disk),
		   ts_disk_nr_refs(disk), atomic64_read(&stats->cleaned),
		   atomic64_read(&stats->compacted),
		   atomic64_read(&stats->bytes_moved),
		   ts_disk_identity_mismatch(disk));
}

static int ts_disks_show(struct seq_file *m, void *v)
{
	ts_disks_for_each(ts_disk_show, m);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(ts_disks);

static int ts_pending_get(void *data, u64 *val)
{
	*val = ts_disks_nr_refs();
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_pending_fops, ts_pending_get, NULL, "%llu\n");

static int ts_atomic64_get(void *data, u64 *val)
{
	*val = atomic64_read(data);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_atomic64_fops, ts_atomic64_get, NULL, "%llu\n");

static void ts_locality_debugfs_create(void)
{
	static const struct {
		const char *name;
		atomic64_t *counter;
	} counters[] = {
		{ "blocks_cleaned", &ts_locality_totals.cleaned },
		{ "blocks_compacted", &ts_locality_totals.compacted },
		{ "bytes_moved", &ts_locality_totals.bytes_moved },
		{ "idle_passes", &ts_idle_passes },
	};
	unsigned int i;

	if (IS_ERR_OR_NULL(ts_debugfs_root))
		return;
	ts_disks_debugfs = debugfs_create_file("disks", 0400, ts_debugfs_root,
					       NULL, &ts_disks_fops);
	ts_mismatches_debugfs = debugfs_create_file("identity_mismatches", 0400,
						    ts_debugfs_root,
						    &ts_identity_mismatches,
						    &ts_atomic64_fops);
	ts_forgotten_debugfs = debugfs_create_file("disks_forgotten", 0400,
						   ts_debugfs_root,
						   &ts_disks_forgotten,
						   &ts_atomic64_fops);
	ts_cleaner_debugfs = debugfs_create_dir("cleaner", ts_debugfs_root);
	for (i = 0; i < ARRAY_SIZE(counters); i++)
		debugfs_create_file(counters[i].name, 0400, ts_cleaner_debugfs,
				    counters[i].counter, &ts_atomic64_fops);
	debugfs_create_file("blocks_pending", 0400, ts_cleaner_debugfs, NULL,
			    &ts_pending_fops);
}

/* With the store: the worker and the counters. */
int ts_locality_start(void)
{
	int ret;

	ts_cleaner = kthread_run(ts_cleaner_fn, NULL, "tesseract-clean");
	if (IS_ERR(ts_cleaner)) {
		ret = PTR_ERR(ts_cleaner);
		ts_cleaner = NULL;
		return ret;
	}
	ts_locality_debugfs_create();
	return 0;
}

void ts_locality_stop(void)
{
	if (!ts_cleaner)
		return;
	debugfs_remove(ts_disks_debugfs);
	debugfs_remove(ts_mismatches_debugfs);
	debugfs_remove(ts_forgotten_debugfs);
	debugfs_remove_recursive(ts_cleaner_debugfs);
	kthread_stop(ts_cleaner);
	ts_cleaner = NULL;
}

/*
 * /dev/tesseract, once the store is recovered and the worker runs (main.c
 * registers the nodes last); it opens after ts_control_enable().
 */
int ts_control_register(void)
{
	int ret = misc_register(&ts_control);

	if (ret)
		pr_err("cannot register /dev/%s (%d)\n", ts_control.name, ret);
	return ret;
}

void ts_control_enable(void)
{
	WRITE_ONCE(ts_control_live, true);
}

void ts_control_unregister(void)
{
	WRITE_ONCE(ts_control_live, false);
	misc_deregister(&ts_control);
}
