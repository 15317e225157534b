// SPDX-License-Identifier: GPL-2.0
/*
 * Module lifecycle: load and unload, parameters and their defaults, refusal
 * of bad parameter values with a message, and no leaks over many cycles.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/tesseract.h>

#include "kselftest_harness.h"
#include "ts_util.h"

TEST(load_and_unload)
{
	char state[32];
	struct stat st;

	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_module_load(""));
	ASSERT_EQ(0, ts_read_str(TS_SYSMOD "/initstate", state, sizeof(state)));
	EXPECT_STREQ("live", state);
	ASSERT_EQ(0, stat(TS_DEBUGFS, &st));
	EXPECT_TRUE(S_ISDIR(st.st_mode));
	ASSERT_EQ(0, ts_module_unload());
	EXPECT_FALSE(ts_module_loaded());
	EXPECT_NE(0, stat(TS_DEBUGFS, &st));
}

TEST(parameter_defaults)
{
	char val[4096];
	long long n;

	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_module_load(""));
	ASSERT_EQ(0, ts_read_str(TS_SYSMOD "/parameters/backing", val,
				 sizeof(val)));
	EXPECT_STREQ("", val);
	ASSERT_EQ(0, ts_read_ll(TS_SYSMOD "/parameters/swap_size_mib", &n));
	EXPECT_EQ(0, n);
	ASSERT_EQ(0, ts_read_ll(TS_SYSMOD "/abi_version", &n));
	EXPECT_EQ(TESSERACT_ABI_VERSION, n);
	ASSERT_EQ(0, ts_module_unload());
}

TEST(parameters_set_at_load)
{
	char val[4096];
	long long n;

	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_module_load("swap_size_mib=64"));
	ASSERT_EQ(0, ts_read_ll(TS_SYSMOD "/parameters/swap_size_mib", &n));
	EXPECT_EQ(64, n);
	ASSERT_EQ(0, ts_read_str(TS_SYSMOD "/parameters/backing", val,
				 sizeof(val)));
	EXPECT_STREQ("", val);
	ASSERT_EQ(0, ts_module_unload());
}

static const char *const bool_params[] = {
	"reconcile", "cleaner", "compactor", "mrc", "swap_mapper",
};

/* Each bool parameter reads @want ("Y" or "N"). */
static void bool_params_read(struct __test_metadata *_metadata,
			     const char *want)
{
	char path[128], val[8];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bool_params); i++) {
		snprintf(path, sizeof(path), TS_SYSMOD "/parameters/%s",
			 bool_params[i]);
		ASSERT_EQ(0, ts_read_str(path, val, sizeof(val)));
		EXPECT_STREQ(want, val) TH_LOG("%s", bool_params[i]);
	}
}

/* A bool parameter named alone at load means on, whatever its setter. */
TEST(bare_bool_parameter_means_on)
{
	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_module_load("reconcile=0 cleaner=n compactor=N mrc=0 swap_mapper=0"));
	bool_params_read(_metadata, "N");
	ASSERT_EQ(0, ts_module_unload());
	ASSERT_EQ(0, ts_module_load("reconcile cleaner compactor mrc swap_mapper"));
	bool_params_read(_metadata, "Y");
	ASSERT_EQ(0, ts_module_unload());
}

/*
 * At run time a bool takes 0/1/y/n/Y/N with echo's newline, and nothing
 * else: kstrtobool() would read "foo" as off and "yes please" as on.
 */
TEST(bool_parameter_written_strictly)
{
	static const char *const bad[] = { "on\n", "true\n", "foo\n", "yes\n",
					   "2\n", "\n", "11\n" };
	const char *cleaner = TS_SYSMOD "/parameters/cleaner";
	char val[8];
	size_t i;

	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_module_load(""));
	ASSERT_EQ(0, ts_write_str(cleaner, "Y\n"));
	ASSERT_EQ(0, ts_read_str(cleaner, val, sizeof(val)));
	EXPECT_STREQ("Y", val);
	ASSERT_EQ(0, ts_write_str(cleaner, "0"));
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		EXPECT_EQ(-EINVAL, ts_write_str(cleaner, bad[i]))
			TH_LOG("cleaner <- \"%.*s\"", (int)strcspn(bad[i], "\n"),
			       bad[i]);
	ASSERT_EQ(0, ts_read_str(cleaner, val, sizeof(val)));
	EXPECT_STREQ("N", val);
	ASSERT_EQ(0, ts_module_unload());
}

/* modinfo must describe every parameter, as operators rely on it. */
TEST(parameters_described)
{
	static const char * const params[] = {
		"backing", "swap_size_mib", "swap_mapper", "swap_mapper_mib",
	};
	char cmd[4096];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(params); i++) {
		snprintf(cmd, sizeof(cmd),
			 "modinfo -F parm '%s' | grep -q '^%s:..'",
			 ts_module_path(), params[i]);
		EXPECT_EQ(0, ts_system(cmd)) TH_LOG("%s undescribed", params[i]);
	}
	/* modinfo names the type of each bool, whatever its setter. */
	for (i = 0; i < ARRAY_SIZE(bool_params); i++) {
		snprintf(cmd, sizeof(cmd),
			 "modinfo -F parm '%s' | grep -q '^%s:.* (bool)$'",
			 ts_module_path(), bool_params[i]);
		EXPECT_EQ(0, ts_system(cmd)) TH_LOG("%s: no (bool)",
						    bool_params[i]);
	}
}

/*
 * The load message names the ABI the module implements, and the admin
 * guide's example of it (and the ABI page) say the same.
 */
TEST(load_message_and_docs_name_the_abi)
{
	const char *dir = getenv("TS_DIR");
	char want[64], doc[512], cmd[1024];
	int kmsg;

	ts_module_ensure_unloaded();
	kmsg = ts_kmsg_open();
	ASSERT_LE(0, kmsg);
	ASSERT_EQ(0, ts_module_load(""));
	snprintf(want, sizeof(want), "tesseract: loaded (ABI %d)",
		 TESSERACT_ABI_VERSION);
	EXPECT_TRUE(ts_kmsg_contains(kmsg, want)) TH_LOG("no '%s'", want);
	close(kmsg);
	ASSERT_EQ(0, ts_module_unload());

	ASSERT_NE(NULL, dir);
	snprintf(doc, sizeof(doc), "%s/Documentation/admin-guide.rst", dir);
	/* The guide shows the message, with no other ABI version. */
	snprintf(cmd, sizeof(cmd), "grep -q 'loaded (ABI %d)' %s",
		 TESSERACT_ABI_VERSION, doc);
	EXPECT_EQ(0, ts_system(cmd)) TH_LOG("admin-guide.rst: not ABI %d",
					    TESSERACT_ABI_VERSION);
	snprintf(cmd, sizeof(cmd),
		 "grep 'loaded (ABI' %s | grep -qv 'loaded (ABI %d)'", doc,
		 TESSERACT_ABI_VERSION);
	EXPECT_NE(0, ts_system(cmd)) TH_LOG("admin-guide.rst: another ABI");
	snprintf(cmd, sizeof(cmd),
		 "grep -q '(ABI version %d)' %s/Documentation/abi.rst",
		 TESSERACT_ABI_VERSION, dir);
	EXPECT_EQ(0, ts_system(cmd)) TH_LOG("abi.rst: not ABI version %d",
					    TESSERACT_ABI_VERSION);
}

#define SLOW_STORE	"ts-slow-store"

struct loader {
	const char *params;	/* NULL: unload */
	int ret;
	atomic_bool done;
};

static void *loader_fn(void *p)
{
	struct loader *l = p;

	l->ret = l->params ? ts_module_load(l->params) : ts_module_unload();
	atomic_store(&l->done, true);
	return NULL;
}

static bool exists(const char *path)
{
	struct stat st;

	return !stat(path, &st);
}

/* What a poll during a load or an unload saw. */
struct node_order {
	unsigned long polls, polls_without_nodes;
	bool vblk_without_store;	/* /dev/vhost-blk, no tsswap0 */
	bool control_without_store;	/* /dev/tesseract, no tsswap0 */
	bool vblk_without_cleaner;	/* /dev/vhost-blk, no cleaner/ */
};

/* Load or unload (@params NULL) in a thread, watching the nodes. */
static int watch_nodes(const char *params, struct node_order *o)
{
	struct loader l = { .params = params };
	bool vblk, control, swapdev, cleaner;
	pthread_t thread;

	memset(o, 0, sizeof(*o));
	if (pthread_create(&thread, NULL, loader_fn, &l))
		return -1;
	while (!atomic_load(&l.done)) {
		/*
		 * Look at what must come first last, and at what must go
		 * first last: a node seen then was there throughout.
		 */
		if (params) {
			vblk = exists("/dev/vhost-blk");
			control = exists("/dev/tesseract");
		}
		swapdev = exists("/sys/block/tsswap0");
		cleaner = exists(TS_DEBUGFS "/cleaner");
		if (!params) {
			vblk = exists("/dev/vhost-blk");
			control = exists("/dev/tesseract");
		}
		o->polls++;
		if (!vblk && !control)
			o->polls_without_nodes++;
		o->vblk_without_store |= vblk && !swapdev;
		o->control_without_store |= control && !swapdev;
		o->vblk_without_cleaner |= vblk && !cleaner;
	}
	pthread_join(thread, NULL);
	return l.ret;
}

/*
 * The device nodes that let userspace reach the store appear only once it
 * is recovered and running, and go first at unload: the store sits behind
 * dm-delay, so that recovery (and the unload checkpoint) take long enough
 * to watch.
 */
FIXTURE(slow_store) {
	char dev[64];
};

FIXTURE_SETUP(slow_store)
{
	unsigned long long bytes = 0;
	char table[128];
	int fd;

	ts_module_ensure_unloaded();
	fd = open("/dev/vdb", O_RDONLY);
	if (fd < 0)
		TS_SETUP_SKIP("no /dev/vdb");
	ASSERT_EQ(0, ioctl(fd, BLKGETSIZE64, &bytes));
	close(fd);
	ASSERT_EQ(0, ts_format("/dev/vdb"));
	/* 100 ms per request: the store's few metadata reads take seconds. */
	snprintf(table, sizeof(table), "0 %llu delay /dev/vdb 0 100",
		 bytes >> 9);
	ASSERT_EQ(0, ts_dm_create(SLOW_STORE, table, self->dev,
				  sizeof(self->dev)));
}

FIXTURE_TEARDOWN(slow_store)
{
	ts_module_ensure_unloaded();
	ts_dm_remove(SLOW_STORE);
}

TEST_F_TIMEOUT(slow_store, nodes_appear_last_and_go_first, 120)
{
	struct node_order o;
	char params[128];
	double t0;

	snprintf(params, sizeof(params), "backing=%s", self->dev);
	t0 = ts_now();
	ASSERT_EQ(0, watch_nodes(params, &o));
	TH_LOG("load: %.2f s, %lu polls, %lu before any node", ts_now() - t0,
	       o.polls, o.polls_without_nodes);
	/* The window was there to see. */
	EXPECT_LT(100UL, o.polls_without_nodes);
	EXPECT_FALSE(o.vblk_without_store);
	EXPECT_FALSE(o.control_without_store);
	EXPECT_FALSE(o.vblk_without_cleaner);
	EXPECT_TRUE(exists("/dev/vhost-blk"));
	EXPECT_TRUE(exists("/dev/tesseract"));

	t0 = ts_now();
	ASSERT_EQ(0, watch_nodes(NULL, &o));
	TH_LOG("unload: %.2f s, %lu polls", ts_now() - t0, o.polls);
	EXPECT_FALSE(o.vblk_without_store);
	EXPECT_FALSE(o.control_without_store);
	EXPECT_FALSE(o.vblk_without_cleaner);
	EXPECT_FALSE(exists("/dev/vhost-blk"));
}

static const struct {
	const char *params;
	int err;
	const char *message;
} bad_params[] = {
	{ "swap_size_mib=abc", -EINVAL, "swap_size_mib=abc: not a number" },
	{ "swap_size_mib=-1", -EINVAL, "swap_size_mib=-1: not a number" },
	{ "swap_size_mib=99999999", -ERANGE,
	  "swap_size_mib=99999999: larger than the maximum" },
	{ "backing=dev/vdb", -EINVAL, "backing=dev/vdb: not an absolute path" },
	{ "cleaner_nice=20", -EINVAL, "cleaner_nice=20: not a nice value" },
	{ "busy_poll_us=10001", -EINVAL,
	  "busy_poll_us=10001: not a time from 0 (off) to 10000" },
	{ "mrc=foo", -EINVAL, "mrc=foo: not 0 or 1" },
	{ "reconcile=on", -EINVAL, "reconcile=on: not 0 or 1" },
	{ "cleaner=true", -EINVAL, "cleaner=true: not 0 or 1" },
	{ "compactor=yes", -EINVAL, "compactor=yes: not 0 or 1" },
	{ "swap_mapper=2", -EINVAL, "swap_mapper=2: not 0 or 1" },
};

TEST(bad_parameters_refused)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_params); i++)
		EXPECT_EQ(0, ts_load_refused(bad_params[i].params,
					     bad_params[i].err,
					     bad_params[i].message));
}

static long long slab_after_cycles(int cycles, struct __test_metadata *_metadata)
{
	int i;

	for (i = 0; i < cycles; i++) {
		ASSERT_EQ(0, ts_module_load("")) TH_LOG("cycle %d", i);
		ASSERT_EQ(0, ts_module_unload()) TH_LOG("cycle %d", i);
	}
	/*
	 * What an unload frees after an RCU grace period (sysfs and
	 * debugfs nodes, for one) is given time to go before the count:
	 * counted at once, three rounds on 6.1 grew by 50 to 327 objects in
	 * one make check and not at all in the one before.
	 */
	ts_write_str("/proc/sys/vm/drop_caches", "3");
	usleep(500 * 1000);
	ts_write_str("/proc/sys/vm/drop_caches", "3");
	ts_slab_shrink_all();
	return ts_slab_active_objects();
}

/*
 * A leak of even one object per cycle shows up as growth of at least
 * `cycles` objects in each of three consecutive rounds; allocator noise
 * (per-cpu slabs, module loader caches) does not repeat like that.
 */
TEST(load_unload_cycles_leak_nothing)
{
	const int cycles = 50, rounds = 3;
	long long before, after, refcnt_before = 0, refcnt_after = 0;
	bool vhost = access("/sys/module/vhost", F_OK) == 0;
	int round, growing = 0;

	ts_module_ensure_unloaded();
	if (vhost)
		ts_read_ll("/sys/module/vhost/refcnt", &refcnt_before);
	before = slab_after_cycles(5, _metadata);
	ASSERT_LT(0, before);
	for (round = 0; round < rounds; round++) {
		after = slab_after_cycles(cycles, _metadata);
		TH_LOG("round %d: slab objects %lld -> %lld", round, before,
		       after);
		if (after - before >= cycles)
			growing++;
		before = after;
	}
	EXPECT_LT(growing, rounds);
	EXPECT_FALSE(ts_module_loaded());
	if (vhost) {
		ts_read_ll("/sys/module/vhost/refcnt", &refcnt_after);
		EXPECT_EQ(refcnt_before, refcnt_after);
	}
}

TEST_HARNESS_MAIN
