// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the tesseract selftests.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
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

static bool env_is_1(const char *name)
{
	const char *value = getenv(name);

	return value && !strcmp(value, "1");
}

bool ts_soak(void)
{
	return env_is_1("TS_SOAK");
}

bool ts_debug_kernel(void)
{
	return env_is_1("TS_DEBUG");
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

/*
 * Shrink every slab cache (/sys/kernel/slab/<cache>/shrink). Besides giving
 * back empty slabs, kmem_cache_shrink() empties a KASAN kernel's quarantine
 * of the cache: objects freed recently stay allocated there, and the debug
 * kernel would otherwise count them as live. Twice, a grace period apart,
 * so that objects freed by RCU callbacks (kmemleak's own metadata among
 * them) leave the quarantine too.
 */
void ts_slab_shrink_all(void)
{
	char path[PATH_MAX];
	struct dirent *d;
	int pass;
	DIR *dir;

	for (pass = 0; pass < 2; pass++) {
		dir = opendir("/sys/kernel/slab");
		if (!dir)
			return;
		while ((d = readdir(dir))) {
			if (d->d_name[0] == '.' || d->d_type == DT_LNK)
				continue;
			snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink",
				 d->d_name);
			ts_write_str(path, "1");
		}
		closedir(dir);
		if (!pass)
			usleep(200 * 1000);
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

long long ts_swapdev_counter(const char *name)
{
	char path[256];
	long long val;

	snprintf(path, sizeof(path), TS_DEBUGFS "/tsswap0/%s", name);
	return ts_read_ll(path, &val) ? -1 : val;
}

long long ts_mapper_stat(const char *name)
{
	char line[256], key[128];
	long long val, found = -1;
	FILE *f = fopen(TS_DEBUGFS "/swap_mapper", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %lld", key, &val) == 2 &&
		    !strcmp(key, name))
			found = val;
	fclose(f);
	return found;
}

int ts_vhost_devices(char *buf, size_t len)
{
	struct dirent *e;
	int found = 0;
	DIR *dir;

	dir = opendir(TS_DEBUGFS "/vhost-blk");
	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		if (buf)
			snprintf(buf, len, TS_DEBUGFS "/vhost-blk/%s",
				 e->d_name);
		found++;
	}
	closedir(dir);
	return found;
}

long long ts_vhost_counter(const char *name)
{
	char dir[512], path[1024];
	long long val;

	if (ts_vhost_devices(dir, sizeof(dir)) != 1)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return ts_read_ll(path, &val) ? -1 : val;
}

long long ts_disk_counter(__u64 id, const char *name)
{
	char dir[512], path[1024], want[32], got[32];
	long long val = -1;
	struct dirent *e;
	DIR *d;

	d = opendir(TS_DEBUGFS "/vhost-blk");
	if (!d)
		return -1;
	snprintf(want, sizeof(want), "%llx", (unsigned long long)id);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), TS_DEBUGFS "/vhost-blk/%s",
			 e->d_name);
		snprintf(path, sizeof(path), "%s/disk_id", dir);
		if (ts_read_str(path, got, sizeof(got)) || strcmp(got, want))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		ts_read_ll(path, &val);
	}
	closedir(d);
	return val;
}

int ts_disk_info(__u64 id, struct tesseract_disk_info *info)
{
	int fd, ret;

	memset(info, 0, sizeof(*info));
	info->disk_id = id;
	fd = open("/dev/tesseract", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = ioctl(fd, TESSERACT_DISK_INFO, info) ? -errno : 0;
	close(fd);
	return ret;
}

long long ts_debugfs_disk(__u64 id, const char *key)
{
	char line[512], want[32], field[64], *p;
	long long val = -1;
	FILE *f;

	f = fopen(TS_DEBUGFS "/disks", "r");
	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%llx ", (unsigned long long)id);
	snprintf(field, sizeof(field), " %s=", key);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		p = strstr(line, field);
		if (p)
			val = strtoll(p + strlen(field), NULL, 10);
		break;
	}
	fclose(f);
	return val;
}

long long ts_cleaner_counter(const char *name)
{
	char path[256];
	long long val;

	snprintf(path, sizeof(path), TS_DEBUGFS "/cleaner/%s", name);
	return ts_read_ll(path, &val) ? -1 : val;
}

int ts_cleaner_wait_idle(double timeout_s)
{
	long long start = ts_cleaner_counter("idle_passes"), now;
	double deadline = ts_now() + timeout_s;

	/*
	 * The pass under way may have looked at the disks before the caller
	 * made work; the one after it cannot have.
	 */
	while (ts_now() < deadline) {
		now = ts_cleaner_counter("idle_passes");
		if (start >= 0 && now >= start + 2)
			return 0;
		usleep(20000);
	}
	return -ETIMEDOUT;
}

int ts_param_set(const char *name, const char *val)
{
	char path[256];

	snprintf(path, sizeof(path), TS_SYSMOD "/parameters/%s", name);
	return ts_write_str(path, val);
}

long long ts_vmstat(const char *name)
{
	char key[64];
	long long val;
	FILE *f;

	f = fopen("/proc/vmstat", "r");
	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &val) == 2) {
		if (!strcmp(key, name)) {
			fclose(f);
			return val;
		}
	}
	fclose(f);
	return -1;
}

#define TS_CGROOT "/sys/fs/cgroup"

int ts_cgroup_write(const char *name, const char *file, const char *val)
{
	char path[256];

	snprintf(path, sizeof(path), TS_CGROOT "/%s/%s", name, file);
	return ts_write_str(path, val);
}

long long ts_cgroup_io_stat(const char *name, const char *dev,
			    const char *key)
{
	char line[512], want[32], path[256], *p;
	long long val = 0;
	struct stat st;
	FILE *f;

	if (stat(dev, &st))
		return -1;
	snprintf(want, sizeof(want), "%u:%u ", major(st.st_rdev),
		 minor(st.st_rdev));
	snprintf(path, sizeof(path), TS_CGROOT "/%s/io.stat", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		p = strstr(line, key);
		if (p)
			val = atoll(p + strlen(key) + 1);
	}
	fclose(f);
	return val;
}

int ts_cgroup_enter(const char *name)
{
	char path[256], pid[32];

	/* Controllers must be enabled for children of the root group. */
	ts_write_str(TS_CGROOT "/cgroup.subtree_control", "+memory");
	snprintf(path, sizeof(path), TS_CGROOT "/%s", name);
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	snprintf(pid, sizeof(pid), "%d", getpid());
	return ts_cgroup_write(name, "cgroup.procs", pid);
}

void ts_cgroup_leave(const char *name)
{
	char path[256], pid[32];

	snprintf(pid, sizeof(pid), "%d", getpid());
	ts_write_str(TS_CGROOT "/cgroup.procs", pid);
	snprintf(path, sizeof(path), TS_CGROOT "/%s", name);
	rmdir(path);
}

/* Pages of [addr, addr + len) with a present PTE (pagemap bit 63). */
size_t ts_mapped_pages(void *addr, size_t len)
{
	size_t pages = len / 4096, i, mapped = 0;
	__u64 entry;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return pages;
	for (i = 0; i < pages; i++) {
		if (pread(fd, &entry, sizeof(entry),
			  ((unsigned long)addr / 4096 + i) * sizeof(entry)) !=
		    sizeof(entry)) {
			mapped = pages;
			break;
		}
		mapped += entry >> 63;
	}
	close(fd);
	return mapped;
}

size_t ts_page_out(void *addr, size_t len)
{
	size_t mapped = ts_mapped_pages(addr, len);
	int tries;

	for (tries = 0; tries < 8 && mapped; tries++) {
		/*
		 * A page faulted in last may sit in another CPU's LRU batch,
		 * where MADV_PAGEOUT cannot isolate it (its lru_add_drain()
		 * drains only the calling CPU); compaction drains them all.
		 */
		if (tries)
			ts_write_str("/proc/sys/vm/compact_memory", "1");
		madvise(addr, len, MADV_PAGEOUT);
		mapped = ts_mapped_pages(addr, len);
	}
	return mapped;
}

size_t ts_resident_pages(void *addr, size_t len)
{
	size_t pages = len / 4096, i, resident = 0;
	unsigned char *vec = malloc(pages);

	if (!vec || mincore(addr, len, vec)) {
		free(vec);
		return pages;
	}
	for (i = 0; i < pages; i++)
		resident += vec[i] & 1;
	free(vec);
	return resident;
}

/* Why a push left pages resident: for the next reader of a failed log. */
static void ts_push_report(const char *cgroup, size_t resident, size_t pages)
{
	static const char * const keys[] = { "anon ", "anon_thp ", "swapcached ",
					     "pgscan ", "pgsteal ", NULL };
	char path[256], line[256];
	const char * const *key;
	FILE *f;

	fprintf(stderr, "# push to swap: %zu of %zu pages stayed resident\n",
		resident, pages);
	f = fopen("/proc/swaps", "r");
	while (f && fgets(line, sizeof(line), f))
		fprintf(stderr, "#   %s", line);
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), TS_CGROOT "/%s/memory.stat", cgroup);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		for (key = keys; *key; key++)
			if (!strncmp(line, *key, strlen(*key)))
				fprintf(stderr, "#   %s", line);
	if (f)
		fclose(f);
}

int ts_load_refused(const char *params, int err, const char *message)
{
	int kmsg, ret, bad = 0;

	ts_module_ensure_unloaded();
	kmsg = ts_kmsg_open();
	if (kmsg < 0)
		return -1;
	ret = ts_module_load(params);
	if (ret != err) {
		fprintf(stderr, "# insmod tesseract %s: %d, not %d\n", params,
			ret, err);
		bad = 1;
	}
	if (ts_module_loaded()) {
		fprintf(stderr, "# insmod tesseract %s: loaded\n", params);
		bad = 1;
	}
	if (!ts_kmsg_contains(kmsg, message)) {
		fprintf(stderr, "# no '%s' in the kernel log\n", message);
		bad = 1;
	}
	close(kmsg);
	ts_module_ensure_unloaded();
	return bad ? -1 : 0;
}

size_t ts_push_to_swap(const char *cgroup, void *addr, size_t len)
{
	size_t resident, before;
	int tries, stalls = 0;
	char amount[32];

	madvise(addr, len, MADV_PAGEOUT);
	resident = ts_resident_pages(addr, len);
	/* Stop after rounds without progress: the rest cannot be swapped. */
	for (tries = 0; tries < 16 && resident && stalls < 3; tries++) {
		snprintf(amount, sizeof(amount), "%zu", len + (1 << 20));
		/* EAGAIN just means less than asked for was reclaimed. */
		ts_cgroup_write(cgroup, "memory.reclaim", amount);
		before = resident;
		resident = ts_resident_pages(addr, len);
		if (resident != before) {
			stalls = 0;
			continue;
		}
		/*
		 * Pages touched last may still sit in a CPU's LRU batch, out
		 * of reach of reclaim, and a huge page held there cannot be
		 * split; compaction drains every CPU's batches. A page whose
		 * swap-out write is still in flight (the debug kernel is
		 * slow) stays in the swap cache until it ends: some time for
		 * it. Then again.
		 */
		stalls++;
		usleep(50000 << stalls);
		ts_write_str("/proc/sys/vm/compact_memory", "1");
		madvise(addr, len, MADV_PAGEOUT);
		resident = ts_resident_pages(addr, len);
		if (resident != before)
			stalls = 0;
	}
	if (resident > len / 4096 / 2)
		ts_push_report(cgroup, resident, len / 4096);
	return resident;
}

size_t ts_fill_and_push(const char *cgroup, void *p, size_t pages,
			unsigned long tag, unsigned long version)
{
	ts_fill_pages(p, pages, tag, version);
	return ts_push_to_swap(cgroup, p, pages * 4096);
}

static unsigned long ts_mix(unsigned long x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdUL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53UL;
	x ^= x >> 33;
	return x;
}

void ts_fill_page(void *page, unsigned long tag, unsigned long index,
		  unsigned long version)
{
	unsigned long *w = page, seed = ts_mix(tag * 0x9e3779b97f4a7c15UL ^
						ts_mix(index) ^ (version << 48));
	size_t i;

	w[0] = tag;
	w[1] = index;
	w[2] = version;
	for (i = 3; i < 4096 / sizeof(*w); i++)
		w[i] = ts_mix(seed + i);
}

bool ts_check_page(const void *page, unsigned long tag, unsigned long index,
		   unsigned long version)
{
	unsigned long expect[4096 / sizeof(unsigned long)];

	ts_fill_page(expect, tag, index, version);
	return !memcmp(expect, page, sizeof(expect));
}

void ts_system_quiet(const char *cmd)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s >/dev/null 2>&1", cmd);
	ts_system(buf);
}

/*
 * A device-mapper device named @name with @table; its node (from devtmpfs,
 * there is no udev in the test VM) in @path. 0 or -1.
 */
int ts_dm_create(const char *name, const char *table, char *path,
		 size_t len)
{
	char cmd[512], minor[32];
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "modprobe -q dm-mod; modprobe -q dm-delay; "
		 "dmsetup --noudevsync remove %s 2>/dev/null; "
		 "dmsetup --noudevsync create %s --table '%s'",
		 name, name, table);
	if (ts_system(cmd))
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "dmsetup info -c --noheadings -o minor %s", name);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(minor, sizeof(minor), f)) {
		pclose(f);
		return -1;
	}
	pclose(f);
	snprintf(path, len, "/dev/dm-%d", atoi(minor));
	return access(path, R_OK) ? -1 : 0;
}

int ts_dm_delay(const char *name, const char *dev, unsigned long long sectors,
		unsigned int read_ms, unsigned int write_ms)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "dmsetup --noudevsync reload %s --table '0 %llu delay %s 0 %u %s 0 %u' && dmsetup --noudevsync resume --nolockfs %s",
		 name, sectors, dev, read_ms, dev, write_ms, name);
	return ts_system(cmd);
}

void ts_dm_remove(const char *name)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "dmsetup --noudevsync remove %s", name);
	ts_system(cmd);
}

#define TS_SWAPDEV	"/dev/tsswap0"

int ts_tool(const char *args)
{
	const char *dir = getenv("TS_DIR");
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s/build/tools/tesseractctl %s",
		 dir ? dir : ".", args);
	return ts_system(cmd);
}

int ts_format_with(const char *dev, const char *format_args)
{
	char args[256];

	snprintf(args, sizeof(args), "format --force %s %s >/dev/null",
		 format_args, dev);
	return ts_tool(args) ? -EIO : 0;
}

int ts_format(const char *dev)
{
	return ts_format_with(dev, "");
}

int ts_swap_up(const char *params)
{
	return ts_swap_up_with(params, "");
}

int ts_swap_up_with(const char *params, const char *format_args)
{
	const char *backing = strstr(params, "backing=");
	char dev[128];

	/* Nothing may hold the device while it is formatted. */
	swapoff(TS_SWAPDEV);
	ts_module_ensure_unloaded();
	/* A fresh store for every test. */
	if (backing && sscanf(backing, "backing=%127s", dev) == 1 &&
	    ts_format_with(dev, format_args))
		return -EIO;
	return ts_swap_up_on_store(params);
}

int ts_swap_up_on_store(const char *params)
{
	int ret;

	/* Not through the shell: ts_system_quiet() sends stdout elsewhere. */
	ts_write_str("/sys/module/zswap/parameters/enabled", "N");
	swapoff(TS_SWAPDEV);
	ts_module_ensure_unloaded();
	ret = ts_module_load(params);
	if (ret)
		return ret;
	if (ts_system("mkswap -q " TS_SWAPDEV " >/dev/null"))
		return -EIO;
	return swapon(TS_SWAPDEV, 0) ? -errno : 0;
}

void ts_swap_down(void)
{
	swapoff(TS_SWAPDEV);
	ts_module_ensure_unloaded();
}

#define TS_REMOTE_TARGET	"\"$TS_DIR/selftests/remote_target.sh\""

int ts_remote_up(const char *transport, const char *backing,
		 const char *args, char *dev, size_t len)
{
	char cmd[256];
	FILE *f;
	int ret;

	snprintf(cmd, sizeof(cmd), TS_REMOTE_TARGET " up %s %s %s", transport,
		 backing, args);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(dev, len, f))
		dev[0] = '\0';
	ret = pclose(f);
	dev[strcspn(dev, "\n")] = '\0';
	if (WIFEXITED(ret) && WEXITSTATUS(ret) == 2)
		return 1;
	return WIFEXITED(ret) && !WEXITSTATUS(ret) && dev[0] ? 0 : -1;
}

void ts_remote_down(void)
{
	ts_system_quiet(TS_REMOTE_TARGET " down");
}

void ts_fill_pages(void *p, size_t pages, unsigned long tag,
		   unsigned long version)
{
	size_t i;

	for (i = 0; i < pages; i++)
		ts_fill_page((char *)p + i * 4096, tag, i, version);
}

size_t ts_bad_pages(const void *p, size_t pages, unsigned long tag,
		    unsigned long version)
{
	size_t i, bad = 0;

	for (i = 0; i < pages; i++)
		bad += !ts_check_page((const char *)p + i * 4096, tag, i,
				      version);
	return bad;
}

void ts_blk_stat(const char *dev, struct ts_blk_stat *b)
{
	long long f[7];
	char path[96];
	struct stat st;
	FILE *fp;

	b->read = -1;
	b->written = -1;
	b->read_ios = -1;
	b->write_ios = -1;
	if (!dev || stat(dev, &st) || !S_ISBLK(st.st_mode))
		return;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/stat",
		 major(st.st_rdev), minor(st.st_rdev));
	fp = fopen(path, "r");
	if (!fp)
		return;
	if (fscanf(fp, "%lld %lld %lld %lld %lld %lld %lld", &f[0], &f[1],
		   &f[2], &f[3], &f[4], &f[5], &f[6]) == 7) {
		b->read = f[2] * 512;
		b->written = f[6] * 512;
		b->read_ios = f[0];
		b->write_ios = f[4];
	}
	fclose(fp);
}

double ts_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int ts_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The lines of tesseractctl dump @dev that start with "  disk @disk block". */
static long long refs_in_dump(const char *dev, const char *disk)
{
	char args[256];
	long long n = -1;

	snprintf(args, sizeof(args),
		 "dump %s 2>/dev/null | grep -c '^  disk %s block' >/tmp/ts-refs",
		 dev, disk);
	ts_tool(args);
	ts_read_ll("/tmp/ts-refs", &n);
	return n;
}

long long ts_durable_refs(unsigned long long disk_id)
{
	char disk[24];

	snprintf(disk, sizeof(disk), "%016llx", disk_id);
	return refs_in_dump("/dev/vdb", disk);
}

long long ts_store_refs(const char *dev)
{
	return refs_in_dump(dev, "[0-9a-f]*");
}

int ts_mrc_read(const char *cgroup, __u32 flags, struct ts_mrc_curve *c)
{
	char path[256];
	struct stat st;
	int fd, ret;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", cgroup);
	if (stat(path, &st))
		return -errno;
	c->m.cgroup_id = st.st_ino;
	c->m.flags = flags;
	c->m.nr_buckets = TESSERACT_MRC_BUCKETS;
	c->m.buckets = (uintptr_t)c->hist;
	fd = open("/dev/tesseract", O_RDWR);
	if (fd < 0)
		return -errno;
	ret = ioctl(fd, TESSERACT_MRC, &c->m) ? -errno : 0;
	close(fd);
	return ret;
}

double ts_mrc_misses_at(const struct ts_mrc_curve *c, double extra)
{
	double lo, hi, n = 0;
	unsigned int b;

	for (b = 0; b < TESSERACT_MRC_BUCKETS; b++) {
		lo = TESSERACT_MRC_BUCKET_LO(b);
		hi = b + 1 < TESSERACT_MRC_BUCKETS ?
			TESSERACT_MRC_BUCKET_LO(b + 1) : 2 * lo;
		if (lo >= extra)
			n += c->hist[b];
		else if (hi > extra)
			n += c->hist[b] * (hi - extra) / (hi - lo);
	}
	return n;
}
