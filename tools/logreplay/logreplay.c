// SPDX-License-Identifier: GPL-2.0
/*
 * logreplay: read and replay a dm-log-writes log.
 *
 *   logreplay list LOG
 *   logreplay replay LOG TARGET [--from M] [--to N] [--cursor FILE]
 *   logreplay points LOG [--random K] [--seed S]
 *
 * The log format is the one drivers/md/dm-log-writes.c writes: a super block
 * in the first sector, then for each entry a sector holding the entry header
 * (and the text of a mark) followed by the data written, nr_sectors sectors
 * (none for a discard). A "sector" is the logical block size of the logged
 * device, recorded in the super block; entry sectors count in that unit.
 *
 * list prints "# entries E sectorsize S" and then one line an entry:
 * "INDEX FLAGS SECTOR SECTORS [MARK]", FLAGS being FLUSH, FUA, DISCARD, MARK
 * and META joined by '|', or '-' for a plain write.
 *
 * replay applies entries M..N-1 (by default all, from the first) in log order
 * onto TARGET, a block device or a file: writes are written, discards become
 * writes of zeroes (BLKZEROOUT on a block device), so that a replay is
 * deterministic. TARGET is synced before replay exits. With --cursor, the
 * position in the log after entry N-1 is saved in FILE and a later replay
 * --from N starts reading there instead of skipping N entries from the start.
 *
 * A crash point P is the state after entries 0..P-1, which "replay --to P"
 * produces. points prints, in increasing order, the points after each FLUSH,
 * FUA or MARK entry and the last point (the whole log), leaving out any whose
 * state equals that of the point before it (no write or discard in between;
 * point 0 is the state before the log); with --random, K more points chosen
 * at random (seeded by S) among the other ones. The log is read sequentially,
 * in large reads.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/types.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIT(n)			(1UL << (n))
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))

/* From drivers/md/dm-log-writes.c. */
#define LOG_FLUSH_FLAG		BIT(0)
#define LOG_FUA_FLAG		BIT(1)
#define LOG_DISCARD_FLAG	BIT(2)
#define LOG_MARK_FLAG		BIT(3)
#define LOG_METADATA_FLAG	BIT(4)

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

#define RBUF_SIZE	(4UL << 20)
#define ZERO_CHUNK	(1024 * 1024UL)
#define MAX_SECTORSIZE	65536U

/* A sequential reader of the log, in large reads. */
struct reader {
	int fd;
	char *buf;
	size_t len;		/* bytes valid in buf */
	size_t pos;		/* bytes of buf consumed */
	__u64 off;		/* log offset of buf[0] */
	__u64 size;		/* size of the log */
};

struct entry {
	__u64 index;
	__u64 sector;
	__u64 nr_sectors;
	__u64 flags;
	char mark[MAX_SECTORSIZE];
};

struct log {
	struct reader rd;
	const char *path;
	__u64 nr_entries;
	__u32 sectorsize;
	__u64 cur;		/* index of the entry at the read position */
};

static const char *prog = "logreplay";

static void bad_usage(void)
{
	fprintf(stderr,
		"usage: logreplay list LOG\n"
		"       logreplay replay LOG TARGET [--from M] [--to N] [--cursor FILE]\n"
		"       logreplay points LOG [--random K] [--seed S]\n");
	exit(2);
}

static __u64 rd_tell(const struct reader *rd)
{
	return rd->off + rd->pos;
}

static void rd_seek(struct reader *rd, __u64 off)
{
	if (off >= rd->off && off <= rd->off + rd->len) {
		rd->pos = off - rd->off;
		return;
	}
	rd->off = off;
	rd->len = 0;
	rd->pos = 0;
}

/*
 * Make at least @want bytes (at most RBUF_SIZE) available at the read
 * position; returns how many are, fewer only at the end of the log.
 */
static ssize_t rd_fill(struct reader *rd, size_t want)
{
	ssize_t n;

	if (rd->len - rd->pos >= want)
		return rd->len - rd->pos;
	memmove(rd->buf, rd->buf + rd->pos, rd->len - rd->pos);
	rd->off += rd->pos;
	rd->len -= rd->pos;
	rd->pos = 0;
	while (rd->len < want) {
		n = pread(rd->fd, rd->buf + rd->len, RBUF_SIZE - rd->len,
			  rd->off + rd->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		rd->len += n;
	}
	return rd->len;
}

static void die(const char *fmt, const char *arg, int err)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(1);
}

static __u64 parse_u64(const char *opt, const char *s)
{
	unsigned long long val;
	char *end;

	errno = 0;
	val = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		die("bad number for %s", opt, 0);
	return val;
}

static void log_open(struct log *log, const char *path)
{
	struct log_write_super super;
	struct stat st;
	ssize_t n;

	memset(log, 0, sizeof(*log));
	log->path = path;
	log->rd.fd = open(path, O_RDONLY);
	if (log->rd.fd < 0)
		die("cannot open %s", path, errno);
	if (fstat(log->rd.fd, &st))
		die("cannot stat %s", path, errno);
	if (S_ISBLK(st.st_mode)) {
		/*
		 * The log is written by the kernel below the page cache of
		 * the device: drop whatever an earlier reader left there.
		 */
		ioctl(log->rd.fd, BLKFLSBUF, 0);
		if (ioctl(log->rd.fd, BLKGETSIZE64, &log->rd.size))
			die("cannot size %s", path, errno);
	} else {
		log->rd.size = st.st_size;
	}
	posix_fadvise(log->rd.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	log->rd.buf = aligned_alloc(4096, RBUF_SIZE);
	if (!log->rd.buf)
		die("%s: out of memory", path, 0);

	n = rd_fill(&log->rd, sizeof(super));
	if (n < 0)
		die("cannot read %s", path, -n);
	if ((size_t)n < sizeof(super))
		die("%s: too short for a log", path, 0);
	memcpy(&super, log->rd.buf, sizeof(super));
	if (le64toh(super.magic) != WRITE_LOG_MAGIC)
		die("%s: not a dm-log-writes log (bad magic)", path, 0);
	if (le64toh(super.version) != WRITE_LOG_VERSION)
		die("%s: unknown log version", path, 0);
	log->nr_entries = le64toh(super.nr_entries);
	log->sectorsize = le32toh(super.sectorsize);
	if (log->sectorsize < 512 || log->sectorsize > MAX_SECTORSIZE ||
	    (log->sectorsize & (log->sectorsize - 1)))
		die("%s: bad sector size in the super block", path, 0);
	rd_seek(&log->rd, log->sectorsize);
	log->cur = 0;
}

/* Bytes of data following the header of an entry in the log. */
static __u64 entry_data_bytes(const struct log *log, const struct entry *e)
{
	if (e->flags & LOG_DISCARD_FLAG)
		return 0;
	return e->nr_sectors * log->sectorsize;
}

/*
 * Read the header of the next entry; the read position is then at its data.
 * Returns false at the end of the log.
 */
static bool log_next(struct log *log, struct entry *e)
{
	struct log_write_entry raw;
	__u64 len;
	ssize_t n;
	size_t i;
	char c;

	if (log->cur >= log->nr_entries)
		return false;
	n = rd_fill(&log->rd, log->sectorsize);
	if (n < 0)
		die("cannot read %s", log->path, -n);
	if (n < log->sectorsize)
		die("%s: log ends inside an entry header", log->path, 0);
	memcpy(&raw, log->rd.buf + log->rd.pos, sizeof(raw));
	e->index = log->cur;
	e->sector = le64toh(raw.sector);
	e->nr_sectors = le64toh(raw.nr_sectors);
	e->flags = le64toh(raw.flags);
	e->mark[0] = '\0';
	if (e->flags & LOG_MARK_FLAG) {
		len = le64toh(raw.data_len);
		if (len > log->sectorsize - sizeof(raw))
			len = log->sectorsize - sizeof(raw);
		for (i = 0; i < len; i++) {
			c = log->rd.buf[log->rd.pos + sizeof(raw) + i];
			e->mark[i] = (c > ' ' && c < 127) ? c : '_';
		}
		e->mark[len] = '\0';
	}
	if (e->nr_sectors > (log->rd.size >> 9))
		die("%s: corrupt entry (size)", log->path, 0);
	log->rd.pos += log->sectorsize;
	if (rd_tell(&log->rd) + entry_data_bytes(log, e) > log->rd.size)
		die("%s: log ends inside the data of an entry", log->path, 0);
	log->cur++;
	return true;
}

static void log_skip_data(struct log *log, const struct entry *e)
{
	rd_seek(&log->rd, rd_tell(&log->rd) + entry_data_bytes(log, e));
}

static void flags_str(__u64 flags, char *buf, size_t len)
{
	static const struct {
		__u64 flag;
		const char *name;
	} names[] = {
		{ LOG_FLUSH_FLAG, "FLUSH" },
		{ LOG_FUA_FLAG, "FUA" },
		{ LOG_DISCARD_FLAG, "DISCARD" },
		{ LOG_MARK_FLAG, "MARK" },
		{ LOG_METADATA_FLAG, "META" },
	};
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (!(flags & names[i].flag))
			continue;
		n += snprintf(buf + n, len - n, "%s%s", n ? "|" : "",
			      names[i].name);
		flags &= ~names[i].flag;
	}
	if (flags)
		n += snprintf(buf + n, len - n, "%s0x%llx", n ? "|" : "",
			      (unsigned long long)flags);
	if (!n)
		snprintf(buf, len, "-");
}

static int cmd_list(int argc, char **argv)
{
	static struct entry e;
	struct log log;
	char flags[64];

	if (argc != 1)
		bad_usage();
	log_open(&log, argv[0]);
	printf("# entries %llu sectorsize %u\n",
	       (unsigned long long)log.nr_entries, log.sectorsize);
	while (log_next(&log, &e)) {
		flags_str(e.flags, flags, sizeof(flags));
		printf("%llu %s %llu %llu%s%s\n", (unsigned long long)e.index,
		       flags, (unsigned long long)e.sector,
		       (unsigned long long)e.nr_sectors, e.mark[0] ? " " : "",
		       e.mark);
		log_skip_data(&log, &e);
	}
	return fflush(stdout) ? 1 : 0;
}

struct target {
	int fd;
	const char *path;
	bool blkdev;
	__u64 size;
	char *zeroes;
};

static void target_write(struct target *t, const char *buf, size_t len,
			 __u64 off)
{
	ssize_t n;

	while (len) {
		n = pwrite(t->fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("cannot write %s", t->path, n < 0 ? errno : ENOSPC);
		buf += n;
		len -= n;
		off += n;
	}
}

static void target_zero(struct target *t, __u64 off, __u64 len)
{
	__u64 range[2] = { off, len };
	size_t n;

	if (!len)
		return;
	if (t->blkdev && !ioctl(t->fd, BLKZEROOUT, range))
		return;
	if (!t->blkdev && !fallocate(t->fd, FALLOC_FL_ZERO_RANGE, off, len))
		return;
	if (!t->zeroes) {
		t->zeroes = calloc(1, ZERO_CHUNK);
		if (!t->zeroes)
			die("%s: out of memory", t->path, 0);
	}
	while (len) {
		n = len < ZERO_CHUNK ? len : ZERO_CHUNK;
		target_write(t, t->zeroes, n, off);
		off += n;
		len -= n;
	}
}

/* Apply the entry just read (the read position is at its data). */
static void replay_entry(struct log *log, const struct entry *e,
			 struct target *t)
{
	__u64 off = e->sector * log->sectorsize;
	__u64 len = e->nr_sectors * log->sectorsize;
	ssize_t n;
	size_t chunk;

	if (len && t->blkdev && off + len > t->size)
		die("%s: entry beyond the end of the target", t->path, 0);
	if (e->flags & LOG_DISCARD_FLAG) {
		target_zero(t, off, len);
		return;
	}
	while (len) {
		n = rd_fill(&log->rd, 1);
		if (n < 0)
			die("cannot read %s", log->path, -n);
		if (n == 0)
			die("%s: log ends inside the data of an entry",
			    log->path, 0);
		chunk = (__u64)n < len ? (size_t)n : len;
		target_write(t, log->rd.buf + log->rd.pos, chunk, off);
		log->rd.pos += chunk;
		off += chunk;
		len -= chunk;
	}
}

static void cursor_load(struct log *log, const char *path, __u64 from)
{
	unsigned long long entry, off;
	FILE *f = fopen(path, "r");
	int n;

	if (!f)
		return;
	n = fscanf(f, "%llu %llu", &entry, &off);
	fclose(f);
	if (n != 2 || entry > from || entry > log->nr_entries ||
	    off > log->rd.size || off < log->sectorsize)
		return;
	rd_seek(&log->rd, off);
	log->cur = entry;
}

static void cursor_save(struct log *log, const char *path)
{
	char tmp[PATH_MAX];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		die("cannot write %s", tmp, errno);
	fprintf(f, "%llu %llu\n", (unsigned long long)log->cur,
		(unsigned long long)rd_tell(&log->rd));
	if (fclose(f) || rename(tmp, path))
		die("cannot write %s", path, errno);
}

static int cmd_replay(int argc, char **argv)
{
	static struct entry e;
	const char *cursor = NULL;
	__u64 from = 0, to = ULLONG_MAX;
	struct target t = { 0 };
	struct stat st;
	struct log log;
	int i;

	if (argc < 2)
		bad_usage();
	for (i = 2; i < argc; i++) {
		if (i + 1 == argc)
			bad_usage();
		if (!strcmp(argv[i], "--from"))
			from = parse_u64(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--to"))
			to = parse_u64(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--cursor"))
			cursor = argv[i + 1];
		else
			bad_usage();
		i++;
	}
	log_open(&log, argv[0]);
	if (to == ULLONG_MAX)
		to = log.nr_entries;
	if (from > to || to > log.nr_entries) {
		fprintf(stderr, "%s: --from %llu --to %llu: the log has %llu entries\n",
			prog, (unsigned long long)from, (unsigned long long)to,
			(unsigned long long)log.nr_entries);
		return 1;
	}

	t.path = argv[1];
	t.fd = open(t.path, O_WRONLY);
	if (t.fd < 0 || fstat(t.fd, &st))
		die("cannot open %s", t.path, errno);
	t.blkdev = S_ISBLK(st.st_mode);
	if (t.blkdev && ioctl(t.fd, BLKGETSIZE64, &t.size))
		die("cannot size %s", t.path, errno);

	if (cursor)
		cursor_load(&log, cursor, from);
	while (log.cur < from) {
		if (!log_next(&log, &e))
			die("%s: log shorter than its super block says",
			    log.path, 0);
		log_skip_data(&log, &e);
	}
	while (log.cur < to) {
		if (!log_next(&log, &e))
			die("%s: log shorter than its super block says",
			    log.path, 0);
		replay_entry(&log, &e, &t);
	}
	if (fsync(t.fd))
		die("cannot sync %s", t.path, errno);
	close(t.fd);
	if (cursor)
		cursor_save(&log, cursor);
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

static int cmd_points(int argc, char **argv)
{
	static struct entry e;
	__u64 nrandom = 0, seed = 1, candidates, k, p;
	bool changed = false;
	unsigned char *pick;
	struct log log;
	int i;

	if (argc < 1)
		bad_usage();
	for (i = 1; i < argc; i++) {
		if (i + 1 == argc)
			bad_usage();
		if (!strcmp(argv[i], "--random"))
			nrandom = parse_u64(argv[i], argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = parse_u64(argv[i], argv[i + 1]);
		else
			bad_usage();
		i++;
	}
	log_open(&log, argv[0]);
	/* pick[p]: 1 for a point worth checking, 2 for a random one. */
	pick = calloc(log.nr_entries + 1, 1);
	if (!pick)
		die("%s: out of memory", log.path, 0);
	while (log_next(&log, &e)) {
		if (e.nr_sectors)
			changed = true;
		if ((e.flags & (LOG_FLUSH_FLAG | LOG_FUA_FLAG | LOG_MARK_FLAG)) &&
		    changed) {
			pick[e.index + 1] = 1;
			changed = false;
		}
		log_skip_data(&log, &e);
	}
	if (changed)
		pick[log.nr_entries] = 1;

	/* Random points among those not picked: 1..nr_entries. */
	candidates = 0;
	for (p = 1; p <= log.nr_entries; p++)
		candidates += !pick[p];
	if (nrandom > candidates)
		nrandom = candidates;
	for (k = 0; k < nrandom; k++) {
		/* The (r+1)-th unpicked point, r uniform in [0, candidates). */
		__u64 r = next_random(&seed) % candidates;

		for (p = 1; p <= log.nr_entries; p++) {
			if (!pick[p] && !r--)
				break;
		}
		pick[p] = 2;
		candidates--;
	}
	for (p = 1; p <= log.nr_entries; p++) {
		if (pick[p])
			printf("%llu\n", (unsigned long long)p);
	}
	free(pick);
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		bad_usage();
	if (!strcmp(argv[1], "list"))
		return cmd_list(argc - 2, argv + 2);
	if (!strcmp(argv[1], "replay"))
		return cmd_replay(argc - 2, argv + 2);
	if (!strcmp(argv[1], "points"))
		return cmd_points(argc - 2, argv + 2);
	bad_usage();
	return 2;
}
