// SPDX-License-Identifier: GPL-2.0
/*
 * tesseract: removes double paging on KVM hosts.
 *
 * Module entry points, load-time parameters and the debugfs root. Each part
 * of the design (store, swap device, vhost-blk, ...) lives in its own file
 * and is started from here in dependency order.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/kobject.h>
#include <linux/limits.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <uapi/linux/tesseract.h>

#include "tesseract.h"

struct dentry *ts_debugfs_root;

/* Longer would hold I/O, and whatever waits behind it, for minutes. */
#define TS_DEBUGFS_DELAY_MAX_MS	(60 * MSEC_PER_SEC)

static int ts_debugfs_delay_get(void *data, u64 *val)
{
	*val = READ_ONCE(*(u32 *)data);
	return 0;
}

static int ts_debugfs_delay_set(void *data, u64 val)
{
	if (val > TS_DEBUGFS_DELAY_MAX_MS)
		return -EINVAL;
	WRITE_ONCE(*(u32 *)data, val);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(ts_debugfs_delay_fops, ts_debugfs_delay_get,
			 ts_debugfs_delay_set, "%llu\n");

/*
 * A fault-injection delay in milliseconds, @ms, as debugfs file @name in
 * @dir: read-write for root, 0 to 60000, larger values fail with EINVAL.
 */
struct dentry *ts_debugfs_create_delay_ms(const char *name,
					  struct dentry *dir, u32 *ms)
{
	return debugfs_create_file_unsafe(name, 0600, dir, ms,
					  &ts_debugfs_delay_fops);
}

static struct ts_store *ts_store;
static struct ts_swapdev *ts_swapdev;

static char backing[PATH_MAX];

/*
 * A boolean module parameter, as the documentation promises it: 1, y or Y
 * for on, 0, n or N for off, a newline after it allowed (sysfs writes end
 * in one), and nothing (a bare name on the insmod line, with
 * KERNEL_PARAM_OPS_FL_NOARG) for on. Stricter than kstrtobool(), which
 * looks at the first character only (two for "on" and "off") and so reads
 * "mrc=foo" as off.
 */
static int ts_param_parse_bool(const char *val, bool *on)
{
	size_t len;

	if (!val) {
		*on = true;
		return 0;
	}
	len = strlen(val);
	if (len && val[len - 1] == '\n')
		len--;
	if (len != 1 || !strchr("01yYnN", val[0]))
		return -EINVAL;
	*on = !!strchr("1yY", val[0]);
	return 0;
}

/*
 * The value @val of bool module parameter @kp, strict as above, in *@on;
 * -EINVAL and a log line naming the parameter (a sysfs write's newline
 * left out of it) if it is none.
 */
int ts_param_bool_value(const char *val, const struct kernel_param *kp,
			bool *on)
{
	if (!ts_param_parse_bool(val, on))
		return 0;
	pr_err("%s=%.*s: not 0 or 1\n", kp->name, (int)strcspn(val, "\n"),
	       val);
	return -EINVAL;
}

/* The setter of a bool module parameter that needs nothing more. */
int ts_param_set_bool(const char *val, const struct kernel_param *kp)
{
	bool on;
	int ret = ts_param_bool_value(val, kp, &on);

	if (!ret)
		WRITE_ONCE(*(bool *)kp->arg, on);
	return ret;
}

const struct kernel_param_ops ts_param_ops_bool = {
	.flags = KERNEL_PARAM_OPS_FL_NOARG,
	.set = ts_param_set_bool,
	.get = param_get_bool,
};

/*
 * Reject a bad path at insmod time: later parts open it by name, and an
 * operator is better served by a failed insmod naming the parameter than by
 * a half-configured module.
 */
static int backing_set(const char *val, const struct kernel_param *kp)
{
	size_t len = strcspn(val, "\n");

	if (len >= sizeof(backing)) {
		pr_err("backing: path longer than %zu bytes\n",
		       sizeof(backing) - 1);
		return -ENAMETOOLONG;
	}
	if (len && val[0] != '/') {
		pr_err("backing=%.*s: not an absolute path\n", (int)len, val);
		return -EINVAL;
	}
	memcpy(backing, val, len);
	backing[len] = '\0';
	return 0;
}

static const struct kernel_param_ops backing_ops = {
	.set = backing_set,
	.get = param_get_string,
};

static struct kparam_string backing_param = {
	.maxlen = sizeof(backing),
	.string = backing,
};

module_param_cb(backing, &backing_ops, &backing_param, 0444);
MODULE_PARM_DESC(backing,
		 "Block device holding the store, e.g. /dev/vdb (default: none; attach one later)");

/* 16 TiB of 4 KiB slots: far beyond any swap device we expect. */
#define TS_SWAP_SIZE_MIB_MAX	(16U << 20)

static unsigned int swap_size_mib;

static int swap_size_mib_set(const char *val, const struct kernel_param *kp)
{
	unsigned int mib;
	int ret;

	ret = kstrtouint(val, 0, &mib);
	if (ret) {
		pr_err("swap_size_mib=%s: not a number\n", val);
		return ret;
	}
	if (mib > TS_SWAP_SIZE_MIB_MAX) {
		pr_err("swap_size_mib=%u: larger than the maximum %u\n",
		       mib, TS_SWAP_SIZE_MIB_MAX);
		return -ERANGE;
	}
	*(unsigned int *)kp->arg = mib;
	return 0;
}

static const struct kernel_param_ops swap_size_mib_ops = {
	.set = swap_size_mib_set,
	.get = param_get_uint,
};

module_param_cb(swap_size_mib, &swap_size_mib_ops, &swap_size_mib, 0444);
MODULE_PARM_DESC(swap_size_mib,
		 "Size of /dev/tsswap0 in MiB (default 0: one slot per store block)");

static ssize_t abi_version_show(struct module_attribute *mattr,
				struct module_kobject *mk, char *buf)
{
	return sysfs_emit(buf, "%d\n", TESSERACT_ABI_VERSION);
}

static struct module_attribute abi_version_attr = __ATTR_RO(abi_version);

static void ts_stop_store(void)
{
	ts_locality_stop();
	ts_reconcile_stop();
	ts_mapper_stop();
	if (ts_swapdev)
		ts_swapdev_destroy(ts_swapdev);
	if (ts_store)
		ts_store_close(ts_store);
	ts_swapdev = NULL;
	ts_store = NULL;
}

/* The store on the backing device and the swap device on top of it. */
static int ts_start_store(void)
{
	u64 nr_slots;
	int ret;

	ret = ts_store_open(backing, &ts_store);
	if (ret)
		return ret;
	ret = ts_reconcile_accept_store(ts_store);
	if (ret) {
		ts_store_close(ts_store);
		ts_store = NULL;
		return ret;
	}
	/* Guest disks' references come back before swap can take blocks. */
	ret = ts_journal_recover(ts_store);
	if (ret) {
		ts_disks_forget(ts_store);
		ts_store_close(ts_store);
		ts_store = NULL;
		return ret;
	}
	ts_disks_recovered(ts_store);
	nr_slots = swap_size_mib ?
		(u64)swap_size_mib << (20 - TS_BLOCK_SHIFT) :
		ts_store->nr_blocks;
	ret = ts_swapdev_create(ts_store, nr_slots, &ts_swapdev);
	if (ret) {
		ts_disks_forget(ts_store);
		ts_store_close(ts_store);
		ts_store = NULL;
		return ret;
	}
	ret = ts_mapper_start(ts_store, ts_swapdev, nr_slots);
	if (!ret)
		ret = ts_reconcile_start(ts_store, ts_swapdev);
	if (!ret)
		ret = ts_locality_start();
	if (ret) {
		ts_stop_store();
		return ret;
	}
	return 0;
}

/*
 * The device nodes, last of all: an open or an ioctl must find the store
 * recovered and every part of the module running. /dev/vhost-blk comes
 * last, and /dev/tesseract opens only after it, so that no file of either
 * is open if init fails after all.
 */
static int ts_register_nodes(void)
{
	int ret;

	if (ts_store) {
		ret = ts_control_register();
		if (ret)
			return ret;
	}
	ret = ts_vhost_blk_init();
	if (ret) {
		if (ts_store)
			ts_control_unregister();
		return ret;
	}
	if (ts_store)
		ts_control_enable();
	return 0;
}

/* The nodes go first: no new user may come while the rest stops. */
static void ts_unregister_nodes(void)
{
	ts_vhost_blk_exit();
	if (ts_store)
		ts_control_unregister();
}

static int __init tesseract_init(void)
{
	int ret;

	ret = sysfs_create_file(&THIS_MODULE->mkobj.kobj,
				&abi_version_attr.attr);
	if (ret)
		return ret;

	/* debugfs is diagnostics only: a failure here must not block loading. */
	ts_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);

	if (backing[0]) {
		ret = ts_start_store();
		if (ret)
			goto undo;
	}
	ret = ts_register_nodes();
	if (ret)
		goto stop_store;

	pr_info("loaded (ABI %d)\n", TESSERACT_ABI_VERSION);
	return 0;

stop_store:
	ts_stop_store();
undo:
	debugfs_remove_recursive(ts_debugfs_root);
	sysfs_remove_file(&THIS_MODULE->mkobj.kobj, &abi_version_attr.attr);
	return ret;
}

static void __exit tesseract_exit(void)
{
	ts_unregister_nodes();
	ts_stop_store();
	debugfs_remove_recursive(ts_debugfs_root);
	sysfs_remove_file(&THIS_MODULE->mkobj.kobj, &abi_version_attr.attr);
	pr_info("unloaded\n");
}

module_init(tesseract_init);
module_exit(tesseract_exit);

MODULE_AUTHOR("The tesseract developers");
MODULE_DESCRIPTION("Double-paging elimination for KVM hosts: swap device, refcounted store and vhost-blk");
MODULE_LICENSE("GPL");
