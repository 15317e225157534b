// SPDX-License-Identifier: GPL-2.0
/*
 * The fio ioengine (tools/fio/vhostblk.c): fio verify jobs through
 * /dev/vhost-blk against a file and a block device.
 */
#include <stdio.h>
#include <stdlib.h>

#include "kselftest_harness.h"
#include "ts_util.h"

#define FIO_VERIFY	"--verify=crc32c --do_verify=1 --verify_fatal=1"
#define FIO_REPORT	"--output-format=json --output=/tmp/fio.json"
/* Deep queue, several sizes: many requests of each size in flight. */
#define MIXED		"--iodepth=32 --size=32M --bssplit=4k/50:16k/25:64k/25"

static char engine[512], job_ok[512];

/* One fio verify job through the engine: 0 only if it ran without error. */
static int run_fio(const char *args)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "fio --name=verify --ioengine=external:%s %s %s %s >/tmp/fio.out 2>&1 && %s /tmp/fio.json",
		 engine, FIO_VERIFY, FIO_REPORT, args, job_ok);
	return ts_system(cmd);
}

FIXTURE(fio) {
	int unused;
};

FIXTURE_SETUP(fio)
{
	const char *dir = getenv("TS_DIR");

	snprintf(engine, sizeof(engine), "%s/build/tools/fio-vhostblk.so",
		 dir ? dir : ".");
	snprintf(job_ok, sizeof(job_ok), "%s/selftests/fio_job_ok.py",
		 dir ? dir : ".");
	if (access(engine, R_OK))
		TS_SETUP_SKIP("%s not built", engine);
	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_module_load(""));
}

FIXTURE_TEARDOWN(fio)
{
	ts_module_ensure_unloaded();
	unlink("/tmp/fio.img");
}

TEST_F_TIMEOUT(fio, verify_file_backend, 300)
{
	ASSERT_EQ(0, ts_system("truncate -s 64M /tmp/fio.img"));
	/* Buffered, one request at a time, then direct and deep. */
	EXPECT_EQ(0, run_fio("--filename=/tmp/fio.img --rw=randwrite --bs=4k --size=16M"))
		ts_system("cat /tmp/fio.out /tmp/fio.json");
	EXPECT_EQ(0, run_fio("--filename=/tmp/fio.img --rw=randrw " MIXED))
		ts_system("cat /tmp/fio.out /tmp/fio.json");
}

TEST_F_TIMEOUT(fio, verify_block_device_direct_mixed_sizes, 300)
{
	EXPECT_EQ(0, run_fio("--filename=/dev/vdb --direct=1 --rw=randwrite " MIXED))
		ts_system("cat /tmp/fio.out /tmp/fio.json");
}

/* Without the module there is no /dev/vhost-blk: the engine must fail. */
TEST_F_TIMEOUT(fio, fails_without_device, 120)
{
	ts_module_ensure_unloaded();
	ASSERT_EQ(0, ts_system("truncate -s 8M /tmp/fio.img"));
	EXPECT_NE(0, run_fio("--filename=/tmp/fio.img --rw=write --bs=4k --size=4M"));
}

TEST_HARNESS_MAIN
