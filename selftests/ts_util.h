/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the tesseract selftests: loading the module under test,
 * reading sysfs/debugfs values and watching the kernel log.
 */
#ifndef _TS_UTIL_H
#define _TS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/tesseract.h>

#define TS_MODNAME	"tesseract"
#define TS_SYSMOD	"/sys/module/" TS_MODNAME
#define TS_DEBUGFS	"/sys/kernel/debug/" TS_MODNAME

/*
 * The harness arms alarm(2) with each test's timeout. The selftests are
 * linked with --wrap=alarm so that a slower kernel can scale every timeout
 * by $TS_TIMEOUT_SCALE (ts_timeout.c; the debug kernel runs with 10).
 */
unsigned int __real_alarm(unsigned int seconds);
unsigned int __wrap_alarm(unsigned int seconds);

/* Path of tesseract.ko under test ($TS_MODULE). */
const char *ts_module_path(void);

/* Load with a parameter string; 0 or -errno from finit_module(2). */
int ts_module_load(const char *params);
/* Unload; 0 or -errno from delete_module(2). */
int ts_module_unload(void);
bool ts_module_loaded(void);
/* Unload if loaded, so that each test starts from a known state. */
void ts_module_ensure_unloaded(void);
/* make soak's run (TS_SOAK=1): tests that have a longer version run it. */
bool ts_soak(void);
/* The debug kernel's run (TS_DEBUG=1). */
bool ts_debug_kernel(void);

/* Read a small file into buf, newline stripped; 0 or -errno. */
int ts_read_str(const char *path, char *buf, size_t len);
/* Read a file holding one integer; 0 or -errno. */
int ts_read_ll(const char *path, long long *val);
int ts_write_str(const char *path, const char *val);

/*
 * Kernel log watcher: opened at the current end of /dev/kmsg, it then sees
 * only messages logged afterwards.
 */
int ts_kmsg_open(void);
/* True if a message logged since ts_kmsg_open() contains needle. */
bool ts_kmsg_contains(int fd, const char *needle);

/* Sum of active objects over all slab caches (for leak checks). */
void ts_slab_shrink_all(void);
long long ts_slab_active_objects(void);

/*
 * SKIP() from a FIXTURE_SETUP. 6.12's harness then runs neither the test
 * nor the teardown; 6.1's runs both, on a fixture that was never set up
 * (a test that then stops a daemon of pid -1 signals every process).
 * Leaving the setup through the harness's own jump buffer, which both
 * harnesses set before the setup, gives both kernels 6.12's behaviour.
 */
#define TS_SETUP_SKIP(fmt, ...) \
	SKIP(longjmp(_metadata->env, 1), fmt, ##__VA_ARGS__)

/* Run a shell command; its exit status, or -1 if it did not exit. */
int ts_system(const char *cmd);

/* Run a shell command with its output discarded. */
void ts_system_quiet(const char *cmd);

/*
 * A device-mapper device @name with @table (dmsetup --noudevsync; dm-mod
 * and dm-delay loaded first); its node, from devtmpfs, in @path. 0 or -1.
 */
int ts_dm_create(const char *name, const char *table, char *path,
		 size_t len);
void ts_dm_remove(const char *name);
/*
 * Switch dm device @name to a dm-delay table over the first @sectors of
 * @dev: reads take @read_ms, writes @write_ms. 0 or the shell's status.
 */
int ts_dm_delay(const char *name, const char *dev, unsigned long long sectors,
		unsigned int read_ms, unsigned int write_ms);

/* Run build/tools/tesseractctl (under $TS_DIR) with @args: exit status. */
int ts_tool(const char *args);

/* A cgroup's miss-ratio curve, as TESSERACT_MRC reads it. */
struct ts_mrc_curve {
	struct tesseract_mrc m;
	__u64 hist[TESSERACT_MRC_BUCKETS];
};

/* TESSERACT_MRC (@flags) of the cgroup /sys/fs/cgroup/@cgroup. 0 or -errno. */
int ts_mrc_read(const char *cgroup, __u32 flags, struct ts_mrc_curve *c);
/*
 * Swap-ins the curve says would still miss with @extra more pages: those
 * of distance @extra or more (distance d needs d + 1 pages), spread
 * evenly over each bucket.
 */
double ts_mrc_misses_at(const struct ts_mrc_curve *c, double extra);
/*
 * References of disk @disk_id in the durable state of the store on
 * /dev/vdb (checkpoint and journal, as tesseractctl dump reads them).
 */
long long ts_durable_refs(unsigned long long disk_id);
/* The references of every disk in the durable state of the store on @dev. */
long long ts_store_refs(const char *dev);
/* tesseractctl format --force @dev: 0 or -EIO. */
int ts_format(const char *dev);
/* The same with more options of format (@format_args). */
int ts_format_with(const char *dev, const char *format_args);

/*
 * Format the backing device named in @params (a fresh store), load the
 * module with @params, then mkswap and swapon /dev/tsswap0 as the only
 * active swap, zswap off. 0 or -errno.
 */
int ts_swap_up(const char *params);
/* ts_swap_up() of a store formatted with @format_args ("--journal-blocks 2"). */
int ts_swap_up_with(const char *params, const char *format_args);
/*
 * ts_swap_up() of the store the backing device holds, as it is (its
 * references are loaded): no format.
 */
int ts_swap_up_on_store(const char *params);
/* swapoff /dev/tsswap0 and unload the module. */
void ts_swap_down(void);
/*
 * The store on another machine (selftests/remote_target.sh): a target in a
 * network namespace serving @backing over @transport (nvme or nbd), the
 * host connected to it (up, with its further @args): the host's block
 * device in @dev. 0; 1 if something it needs is missing here (no network,
 * module or tool: skip); -1 if it failed.
 */
int ts_remote_up(const char *transport, const char *backing,
		 const char *args, char *dev, size_t len);
/* Undo ts_remote_up(), or what an earlier test left. */
void ts_remote_down(void);

/*
 * Load the module with @params, which must fail with @err and log
 * @message: 0 if it does, else -1 (and why, on stderr). Leaves the module
 * unloaded.
 */
int ts_load_refused(const char *params, int err, const char *message);

/* A debugfs counter of /dev/tsswap0, or -1 if unreadable. */
long long ts_swapdev_counter(const char *name);
/* A line "name value" of debugfs swap_mapper, or -1 (the mapper is off). */
long long ts_mapper_stat(const char *name);
/*
 * /dev/vhost-blk devices open, by their debugfs directories; the last one
 * found in @buf (if not NULL). -errno if none can be listed.
 */
int ts_vhost_devices(char *buf, size_t len);
/* A debugfs counter of the one open vhost-blk device, or -1. */
long long ts_vhost_counter(const char *name);
/* A debugfs counter of the vhost-blk device whose disk id is @id, or -1. */
long long ts_disk_counter(__u64 id, const char *name);
/* TESSERACT_DISK_INFO of disk @id into @info: 0 or -errno. */
int ts_disk_info(__u64 id, struct tesseract_disk_info *info);
/*
 * Field @key ("references", "attached", ...) of disk @id's line in debugfs
 * tesseract/disks, or -1 if there is no such line or field.
 */
long long ts_debugfs_disk(__u64 id, const char *key);
/*
 * Background locality work (cleaner and compactor): a counter of debugfs
 * cleaner/, or -1.
 */
long long ts_cleaner_counter(const char *name);
/*
 * Wait up to @timeout_s seconds until the background worker has made two
 * passes over all disks that found nothing to do, so that whatever it had
 * to do when this was called is done (with cleaner_idle_ms=0 and
 * cleaner_rate_kib=0). 0 or -ETIMEDOUT.
 */
int ts_cleaner_wait_idle(double timeout_s);
/* Set a module parameter through sysfs. 0 or -errno. */
int ts_param_set(const char *name, const char *val);
/* A /proc/vmstat field, or -1. */
long long ts_vmstat(const char *name);

/*
 * Create a cgroup v2 group under /sys/fs/cgroup and move the caller into
 * it. Pages are charged to the group their first toucher was in, so join
 * before touching memory that is to be reclaimed. 0 or -errno.
 */
int ts_cgroup_enter(const char *name);
/* Move the caller back to the root group and remove the group. */
void ts_cgroup_leave(const char *name);
/* Write a cgroup control file of group name. 0 or -errno. */
int ts_cgroup_write(const char *name, const char *file, const char *val);
/*
 * Field @key ("wbytes", "rbytes") of block device @dev's line in group
 * @name's io.stat: 0 without a line, -1 if either cannot be read.
 */
long long ts_cgroup_io_stat(const char *name, const char *dev,
			    const char *key);

/*
 * Push [addr, addr + len) to swap: MADV_PAGEOUT starts writeback, then
 * memory.reclaim of the caller's group frees what is left in the swap
 * cache. Returns the number of pages still resident.
 */
size_t ts_push_to_swap(const char *cgroup, void *addr, size_t len);
size_t ts_resident_pages(void *addr, size_t len);
/* Pages of [addr, addr + len) mapped by a present PTE. */
size_t ts_mapped_pages(void *addr, size_t len);
/*
 * MADV_PAGEOUT of [addr, addr + len) until no page is mapped any more
 * (their swap-outs may still be in flight): how many stayed mapped.
 */
size_t ts_page_out(void *addr, size_t len);
/*
 * ts_fill_pages() of @pages pages at @p, then ts_push_to_swap() in
 * @cgroup: how many stayed resident.
 */
size_t ts_fill_and_push(const char *cgroup, void *p, size_t pages,
			unsigned long tag, unsigned long version);

/* Fill a 4 KiB page with a pattern determined by (tag, index, version). */
void ts_fill_page(void *page, unsigned long tag, unsigned long index,
		  unsigned long version);
/* True if the page holds exactly the pattern of (tag, index, version). */
bool ts_check_page(const void *page, unsigned long tag, unsigned long index,
		   unsigned long version);
/* Fill @pages pages at @p, page i with the pattern of (tag, i, version). */
void ts_fill_pages(void *p, size_t pages, unsigned long tag,
		   unsigned long version);
/* How many of the @pages pages at @p lack the ts_fill_pages() pattern. */
size_t ts_bad_pages(const void *p, size_t pages, unsigned long tag,
		    unsigned long version);

/* Seconds on the monotonic clock. */
double ts_now(void);

/*
 * A block device's totals so far, from /sys/dev/block/M:m/stat: bytes
 * read and written, reads and writes completed; -1 each if @dev is no
 * block device.
 */
struct ts_blk_stat {
	long long read, written;
	long long read_ios, write_ios;
};

void ts_blk_stat(const char *dev, struct ts_blk_stat *b);
/* qsort() comparison of doubles. */
int ts_cmp_double(const void *a, const void *b);

#endif /* _TS_UTIL_H */
