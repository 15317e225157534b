// SPDX-License-Identifier: GPL-2.0
/*
 * Reading and replaying a dm-log-writes log: see logwrites.h.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logwrites.h"

/* From drivers/md/dm-log-writes.c. */
#define WRITE_LOG_VERSION	1ULL
#define WRITE_LOG_MAGIC		0x6a736677736872ULL

struct log_write_super {
	__le64 magic;
	__le64 version;
	__le64 nr_entries;
	__le32 sectorsize;
};

struct log_write_entry {
	__le64 sector;
	__le64 nr_sectors;
	__le64 flags;
	__le64 data_len;
};

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

#define RBUF_SIZE	(4UL << 20)
#define ZERO_CHUNK	(1024 * 1024UL)
#define MAX_SECTORSIZE	65536U

static int lw_fail(struct lw_log *log, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(log->err, sizeof(log->err), fmt, ap);
	va_end(ap);
	return err;
}

__u64 lw_tell(const struct lw_log *log)
{
	return log->off + log->pos;
}

static void rd_seek(struct lw_log *log, __u64 off)
{
	if (off >= log->off && off <= log->off + log->len) {
		log->pos = off - log->off;
		return;
	}
	log->off = off;
	log->len = 0;
	log->pos = 0;
}

/*
 * Make at least @want bytes (at most RBUF_SIZE) available at the read
 * position; returns how many are, fewer only at the end of the log.
 */
static ssize_t rd_fill(struct lw_log *log, size_t want)
{
	ssize_t n;

	if (log->len - log->pos >= want)
		return log->len - log->pos;
	memmove(log->buf, log->buf + log->pos, log->len - log->pos);
	log->off += log->pos;
	log->len -= log->pos;
	log->pos = 0;
	while (log->len < want) {
		n = pread(log->fd, log->buf + log->len, RBUF_SIZE - log->len,
			  log->off + log->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return lw_fail(log, -errno, "cannot read the log: %s",
				       strerror(errno));
		}
		if (n == 0)
			break;
		log->len += n;
	}
	return log->len;
}

void lw_close(struct lw_log *log)
{
	if (log->fd >= 0)
		close(log->fd);
	log->fd = -1;
	free(log->buf);
	log->buf = NULL;
}

int lw_open(struct lw_log *log, const char *path)
{
	struct log_write_super super;
	struct stat st;
	ssize_t n;
	int ret;

	memset(log, 0, sizeof(*log));
	log->fd = open(path, O_RDONLY);
	if (log->fd < 0)
		return lw_fail(log, -errno, "cannot open %s: %s", path,
			       strerror(errno));
	if (fstat(log->fd, &st)) {
		ret = lw_fail(log, -errno, "cannot stat %s", path);
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		/*
		 * The log is written by the kernel below the page cache of
		 * the device: drop whatever an earlier reader left there.
		 */
		ioctl(log->fd, BLKFLSBUF, 0);
		if (ioctl(log->fd, BLKGETSIZE64, &log->size)) {
			ret = lw_fail(log, -errno, "cannot size %s", path);
			goto fail;
		}
	} else {
		log->size = st.st_size;
	}
	posix_fadvise(log->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	log->buf = aligned_alloc(4096, RBUF_SIZE);
	if (!log->buf) {
		ret = lw_fail(log, -ENOMEM, "out of memory");
		goto fail;
	}

	n = rd_fill(log, sizeof(super));
	if (n < 0) {
		ret = n;
		goto fail;
	}
	ret = lw_fail(log, -EINVAL, "%s: not a dm-log-writes log", path);
	if ((size_t)n < sizeof(super))
		goto fail;
	memcpy(&super, log->buf, sizeof(super));
	if (le64toh(super.magic) != WRITE_LOG_MAGIC ||
	    le64toh(super.version) != WRITE_LOG_VERSION)
		goto fail;
	log->nr_entries = le64toh(super.nr_entries);
	log->sectorsize = le32toh(super.sectorsize);
	if (log->sectorsize < 512 || log->sectorsize > MAX_SECTORSIZE ||
	    (log->sectorsize & (log->sectorsize - 1)))
		goto fail;
	log->err[0] = '\0';
	rd_seek(log, log->sectorsize);
	log->cur = 0;
	return 0;
fail:
	lw_close(log);
	return ret;
}

int lw_seek(struct lw_log *log, __u64 entry, __u64 offset)
{
	if (entry > log->nr_entries || offset < log->sectorsize ||
	    offset > log->size)
		return lw_fail(log, -EINVAL, "bad log position %llu@%llu",
			       (unsigned long long)entry,
			       (unsigned long long)offset);
	rd_seek(log, offset);
	log->cur = entry;
	return 0;
}

/* Bytes of data following the header of an entry in the log. */
static __u64 data_bytes(const struct lw_log *log, const struct lw_entry *e)
{
	if (e->flags & LW_DISCARD)
		return 0;
	return e->nr_sectors * log->sectorsize;
}

int lw_next(struct lw_log *log, struct lw_entry *e)
{
	struct log_write_entry raw;
	const char *text;
	__u64 len, i;
	ssize_t n;

	if (log->cur >= log->nr_entries)
		return 0;
	n = rd_fill(log, log->sectorsize);
	if (n < 0)
		return n;
	if (n < log->sectorsize)
		return lw_fail(log, -EINVAL, "the log ends inside entry %llu",
			       (unsigned long long)log->cur);
	memcpy(&raw, log->buf + log->pos, sizeof(raw));
	e->index = log->cur;
	e->sector = le64toh(raw.sector);
	e->nr_sectors = le64toh(raw.nr_sectors);
	e->flags = le64toh(raw.flags);
	e->mark[0] = '\0';
	if (e->flags & LW_MARK) {
		text = log->buf + log->pos + sizeof(raw);
		len = le64toh(raw.data_len);
		if (len > log->sectorsize - sizeof(raw))
			len = log->sectorsize - sizeof(raw);
		if (len > LW_MARK_MAX - 1)
			len = LW_MARK_MAX - 1;
		for (i = 0; i < len; i++)
			e->mark[i] = (text[i] > ' ' && text[i] < 127) ?
				     text[i] : '_';
		e->mark[len] = '\0';
	}
	if ((!(e->flags & LW_DISCARD) && e->nr_sectors > log->size) ||
	    lw_tell(log) + log->sectorsize + data_bytes(log, e) > log->size)
		return lw_fail(log, -EINVAL, "the log ends inside entry %llu",
			       (unsigned long long)log->cur);
	log->pos += log->sectorsize;
	log->cur++;
	return 1;
}

void lw_skip_data(struct lw_log *log, const struct lw_entry *e)
{
	rd_seek(log, lw_tell(log) + data_bytes(log, e));
}

const char *lw_flags_str(__u64 flags, char *buf, size_t len)
{
	static const struct {
		__u64 flag;
		const char *name;
	} names[] = {
		{ LW_FLUSH, "FLUSH" },
		{ LW_FUA, "FUA" },
		{ LW_DISCARD, "DISCARD" },
		{ LW_MARK, "MARK" },
		{ LW_META, "META" },
	};
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(names) && n < len; i++) {
		if (!(flags & names[i].flag))
			continue;
		n += snprintf(buf + n, len - n, "%s%s", n ? "|" : "",
			      names[i].name);
		flags &= ~names[i].flag;
	}
	if (flags && n < len)
		n += snprintf(buf + n, len - n, "%s0x%llx", n ? "|" : "",
			      (unsigned long long)flags);
	if (!n)
		snprintf(buf, len, "-");
	return buf;
}

int lw_target_open(struct lw_target *t, const char *path, struct lw_log *log)
{
	struct stat st;

	memset(t, 0, sizeof(*t));
	t->fd = open(path, O_WRONLY);
	if (t->fd < 0 || fstat(t->fd, &st))
		return lw_fail(log, -errno, "cannot open %s: %s", path,
			       strerror(errno));
	t->blkdev = S_ISBLK(st.st_mode);
	if (t->blkdev && ioctl(t->fd, BLKGETSIZE64, &t->size))
		return lw_fail(log, -errno, "cannot size %s", path);
	if (!t->blkdev)
		t->size = st.st_size;
	return 0;
}

int lw_target_close(struct lw_target *t, struct lw_log *log)
{
	int ret = 0;

	if (t->fd < 0)
		return 0;
	if (fsync(t->fd))
		ret = lw_fail(log, -errno, "cannot sync the target: %s",
			      strerror(errno));
	close(t->fd);
	t->fd = -1;
	free(t->zeroes);
	t->zeroes = NULL;
	return ret;
}

static int target_write(struct lw_target *t, struct lw_log *log,
			const char *buf, size_t len, __u64 off)
{
	ssize_t n;

	while (len) {
		n = pwrite(t->fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return lw_fail(log, n < 0 ? -errno : -ENOSPC,
				       "cannot write the target at %llu: %s",
				       (unsigned long long)off,
				       n < 0 ? strerror(errno) : "full");
		buf += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int target_zero(struct lw_target *t, struct lw_log *log, __u64 off,
		       __u64 len)
{
	__u64 range[2] = { off, len };
	size_t n;
	int ret;

	if (!len)
		return 0;
	if (t->blkdev && !ioctl(t->fd, BLKZEROOUT, range))
		return 0;
	if (!t->blkdev && !fallocate(t->fd, FALLOC_FL_ZERO_RANGE, off, len))
		return 0;
	if (!t->zeroes) {
		t->zeroes = calloc(1, ZERO_CHUNK);
		if (!t->zeroes)
			return lw_fail(log, -ENOMEM, "out of memory");
	}
	while (len) {
		n = len < ZERO_CHUNK ? len : ZERO_CHUNK;
		ret = target_write(t, log, t->zeroes, n, off);
		if (ret)
			return ret;
		off += n;
		len -= n;
	}
	return 0;
}

int lw_target_zero(struct lw_target *t, struct lw_log *log)
{
	return target_zero(t, log, 0, t->size);
}

/* Apply the entry just read (the read position is at its data). */
static int apply(struct lw_log *log, const struct lw_entry *e,
		 struct lw_target *t)
{
	__u64 off = e->sector * log->sectorsize;
	__u64 len = e->nr_sectors * log->sectorsize;
	size_t chunk;
	ssize_t n;
	int ret;

	if (len && t->blkdev && off + len > t->size)
		return lw_fail(log, -ENOSPC,
			       "entry %llu goes beyond the end of the target",
			       (unsigned long long)e->index);
	if (e->flags & LW_DISCARD)
		return target_zero(t, log, off, len);
	while (len) {
		n = rd_fill(log, 1);
		if (n < 0)
			return n;
		if (n == 0)
			return lw_fail(log, -EINVAL,
				       "the log ends inside entry %llu",
				       (unsigned long long)e->index);
		chunk = (__u64)n < len ? (size_t)n : len;
		ret = target_write(t, log, log->buf + log->pos, chunk, off);
		if (ret)
			return ret;
		log->pos += chunk;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

int lw_replay(struct lw_log *log, struct lw_target *t, __u64 from, __u64 to)
{
	static struct lw_entry e;
	int ret;

	if (from > to || to > log->nr_entries)
		return lw_fail(log, -EINVAL,
			       "cannot replay %llu..%llu: the log has %llu entries",
			       (unsigned long long)from,
			       (unsigned long long)to,
			       (unsigned long long)log->nr_entries);
	if (log->cur > from)
		lw_seek(log, 0, log->sectorsize);
	while (log->cur < to) {
		ret = lw_next(log, &e);
		if (ret == 0)
			ret = lw_fail(log, -EINVAL, "the log is short");
		if (ret < 0)
			return ret;
		if (e.index < from) {
			lw_skip_data(log, &e);
			continue;
		}
		ret = apply(log, &e, t);
		if (ret)
			return ret;
	}
	if (fsync(t->fd))
		return lw_fail(log, -errno, "cannot sync the target: %s",
			       strerror(errno));
	return 0;
}

/* splitmix64: a small, seedable generator, the same everywhere. */
static __u64 next_random(__u64 *state)
{
	__u64 z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int lw_points(struct lw_log *log, __u64 nrandom, __u64 seed,
	      __u64 **points, size_t *n)
{
	static struct lw_entry e;
	__u64 candidates = 0, k, p, r;
	unsigned char *pick;
	bool changed = false;
	int ret;

	*points = NULL;
	*n = 0;
	/* pick[p]: 1 for a point worth checking, 2 for a random one. */
	pick = calloc(log->nr_entries + 1, 1);
	if (!pick)
		return lw_fail(log, -ENOMEM, "out of memory");
	lw_seek(log, 0, log->sectorsize);
	while ((ret = lw_next(log, &e)) > 0) {
		if (e.nr_sectors)
			changed = true;
		if ((e.flags & (LW_FLUSH | LW_FUA | LW_MARK)) && changed) {
			pick[e.index + 1] = 1;
			changed = false;
		}
		lw_skip_data(log, &e);
	}
	if (ret < 0)
		goto out;
	if (changed)
		pick[log->nr_entries] = 1;

	for (p = 1; p <= log->nr_entries; p++)
		candidates += !pick[p];
	if (nrandom > candidates)
		nrandom = candidates;
	for (k = 0; k < nrandom; k++) {
		/* The (r + 1)-th point not picked yet. */
		r = next_random(&seed) % candidates;
		for (p = 1; p <= log->nr_entries; p++) {
			if (!pick[p] && !r--)
				break;
		}
		pick[p] = 2;
		candidates--;
	}

	for (p = 1; p <= log->nr_entries; p++)
		*n += !!pick[p];
	*points = malloc((*n ? *n : 1) * sizeof(**points));
	if (!*points) {
		ret = lw_fail(log, -ENOMEM, "out of memory");
		goto out;
	}
	for (k = 0, p = 1; p <= log->nr_entries; p++) {
		if (pick[p])
			(*points)[k++] = p;
	}
	ret = 0;
out:
	free(pick);
	if (ret)
		*n = 0;
	return ret;
}
