// SPDX-License-Identifier: GPL-2.0
/*
 * Module lifecycle: load and unload, parameters and their defaults, refusal
 * of bad parameter values with a message, and no leaks over many cycles.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
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

/* modinfo must describe every parameter, as operators rely on it. */
TEST(parameters_described)
{
	static const char * const params[] = { "backing", "swap_size_mib" };
	char cmd[4096];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(params); i++) {
		snprintf(cmd, sizeof(cmd),
			 "modinfo -F parm '%s' | grep -q '^%s:..'",
			 ts_module_path(), params[i]);
		EXPECT_EQ(0, ts_system(cmd)) TH_LOG("%s undescribed", params[i]);
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
};

TEST(bad_parameters_refused)
{
	size_t i;
	int kmsg;

	ts_module_ensure_unloaded();
	for (i = 0; i < ARRAY_SIZE(bad_params); i++) {
		kmsg = ts_kmsg_open();
		ASSERT_LE(0, kmsg);
		EXPECT_EQ(bad_params[i].err, ts_module_load(bad_params[i].params))
			TH_LOG("insmod tesseract %s", bad_params[i].params);
		EXPECT_FALSE(ts_module_loaded());
		EXPECT_TRUE(ts_kmsg_contains(kmsg, bad_params[i].message))
			TH_LOG("no '%s' in the kernel log", bad_params[i].message);
		close(kmsg);
		ts_module_ensure_unloaded();
	}
}

static long long slab_after_cycles(int cycles, struct __test_metadata *_metadata)
{
	int i;

	for (i = 0; i < cycles; i++) {
		ASSERT_EQ(0, ts_module_load("")) TH_LOG("cycle %d", i);
		ASSERT_EQ(0, ts_module_unload()) TH_LOG("cycle %d", i);
	}
	ts_write_str("/proc/sys/vm/drop_caches", "3");
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
