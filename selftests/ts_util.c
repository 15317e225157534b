// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the tesseract selftests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ts_util.h"

const char *ts_module_path(void)
{
	const char *path = getenv("TS_MODULE");

	return path ? path : "tesseract.ko";
}

int ts_module_load(const char *params)
{
	int fd, ret;

	fd = open(ts_module_path(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params ? params : "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

int ts_module_unload(void)
{
	return syscall(SYS_delete_module, TS_MODNAME, O_NONBLOCK) ? -errno : 0;
}

bool ts_module_loaded(void)
{
	struct stat st;

	return stat(TS_SYSMOD "/initstate", &st) == 0;
}

void ts_module_ensure_unloaded(void)
{
	int tries;

	/* A device closed just now may still hold a reference briefly. */
	for (tries = 0; ts_module_loaded() && tries < 50; tries++) {
		if (ts_module_unload() == 0)
			break;
		usleep(100 * 1000);
	}
}

int ts_read_str(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int ts_read_ll(const char *path, long long *val)
{
	char buf[64], *end;
	int ret;

	ret = ts_read_str(path, buf, sizeof(buf));
	if (ret)
		return ret;
	errno = 0;
	*val = strtoll(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	return 0;
}

int ts_write_str(const char *path, const char *val)
{
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

int ts_kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

bool ts_kmsg_contains(int fd, const char *needle)
{
	char rec[8192];
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0) {
			if (errno == EPIPE)	/* overwritten records: go on */
				continue;
			return false;		/* EAGAIN: nothing more */
		}
		rec[n] = '\0';
		if (strstr(rec, needle))
			return true;
	}
}

long long ts_slab_active_objects(void)
{
	char line[512], name[128];
	long long total = 0, active;
	FILE *f;

	f = fopen("/proc/slabinfo", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%127s %lld", name, &active) == 2 &&
		    name[0] != '#')
			total += active;
	}
	fclose(f);
	return total;
}

int ts_system(const char *cmd)
{
	int ret = system(cmd);

	if (ret == -1 || !WIFEXITED(ret))
		return -1;
	return WEXITSTATUS(ret);
}
