// SPDX-License-Identifier: GPL-2.0
/*
 * logreplay: read and replay a dm-log-writes log (see logwrites.h).
 *
 *   logreplay list LOG
 *   logreplay replay LOG TARGET [--from M] [--to N] [--cursor FILE]
 *   logreplay points LOG [--random K] [--seed S]
 *
 * list prints "# entries E sectorsize S" and then one line an entry:
 * "INDEX FLAGS SECTOR SECTORS [MARK]", FLAGS being FLUSH, FUA, DISCARD, MARK
 * and META joined by '|', or '-' for a plain write; SECTOR and SECTORS are
 * in units of the log's sector size.
 *
 * replay applies entries M..N-1 (by default all, from the first) in log
 * order onto TARGET, a block device or a file: writes are written, discards
 * become writes of zeroes (BLKZEROOUT on a block device), so that a replay
 * is deterministic. TARGET is synced before replay exits. With --cursor, the
 * position in the log after entry N-1 is saved in FILE and a later replay
 * --from N starts reading there instead of skipping N entries from the start.
 *
 * A crash point P is the disk after entries 0..P-1, which "replay --to P"
 * produces. points prints, in increasing order, the points after each FLUSH,
 * FUA or MARK entry and the last point (the whole log), leaving out any whose
 * disk is that of the point before it (no write or discard in between; point
 * 0 is the disk before the log); with --random, K more points chosen at
 * random (seeded by S) among the other ones.
 *
 * The log is read sequentially, in large reads.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logwrites.h"

static struct lw_log wlog;

static void bad_usage(void)
{
	fprintf(stderr,
		"usage: logreplay list LOG\n"
		"       logreplay replay LOG TARGET [--from M] [--to N] [--cursor FILE]\n"
		"       logreplay points LOG [--random K] [--seed S]\n");
	exit(2);
}

static int failed(void)
{
	fprintf(stderr, "logreplay: %s\n", wlog.err);
	return 1;
}

static __u64 parse_u64(const char *s)
{
	unsigned long long val;
	char *end;

	errno = 0;
	val = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		bad_usage();
	return val;
}

static int cmd_list(int argc, char **argv)
{
	static struct lw_entry e;
	char flags[64];
	int ret;

	if (argc != 1)
		bad_usage();
	if (lw_open(&wlog, argv[0]))
		return failed();
	printf("# entries %llu sectorsize %u\n",
	       (unsigned long long)wlog.nr_entries, wlog.sectorsize);
	while ((ret = lw_next(&wlog, &e)) > 0) {
		printf("%llu %s %llu %llu%s%s\n", (unsigned long long)e.index,
		       lw_flags_str(e.flags, flags, sizeof(flags)),
		       (unsigned long long)e.sector,
		       (unsigned long long)e.nr_sectors, e.mark[0] ? " " : "",
		       e.mark);
		lw_skip_data(&wlog, &e);
	}
	if (ret < 0)
		return failed();
	return fflush(stdout) ? 1 : 0;
}

static void cursor_load(const char *path, __u64 from)
{
	unsigned long long entry, off;
	FILE *f = fopen(path, "r");
	int n;

	if (!f)
		return;
	n = fscanf(f, "%llu %llu", &entry, &off);
	fclose(f);
	/* A cursor that does not fit is ignored: the replay reads from 0. */
	if (n == 2 && entry <= from && lw_seek(&wlog, entry, off))
		lw_seek(&wlog, 0, wlog.sectorsize);
}

static int cursor_save(const char *path)
{
	char tmp[PATH_MAX];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%llu %llu\n", (unsigned long long)wlog.cur,
		(unsigned long long)lw_tell(&wlog));
	if (fclose(f) || rename(tmp, path))
		return -1;
	return 0;
}

static int cmd_replay(int argc, char **argv)
{
	__u64 from = 0, to = ULLONG_MAX;
	const char *cursor = NULL;
	struct lw_target t;
	int i;

	if (argc < 2)
		bad_usage();
	for (i = 2; i < argc; i += 2) {
		if (i + 1 == argc)
			bad_usage();
		if (!strcmp(argv[i], "--from"))
			from = parse_u64(argv[i + 1]);
		else if (!strcmp(argv[i], "--to"))
			to = parse_u64(argv[i + 1]);
		else if (!strcmp(argv[i], "--cursor"))
			cursor = argv[i + 1];
		else
			bad_usage();
	}
	if (lw_open(&wlog, argv[0]))
		return failed();
	if (to == ULLONG_MAX)
		to = wlog.nr_entries;
	if (cursor)
		cursor_load(cursor, from);
	if (lw_target_open(&t, argv[1], &wlog) ||
	    lw_replay(&wlog, &t, from, to) || lw_target_close(&t, &wlog))
		return failed();
	if (cursor && cursor_save(cursor)) {
		perror("logreplay: cannot save the cursor");
		return 1;
	}
	return 0;
}

static int cmd_points(int argc, char **argv)
{
	__u64 nrandom = 0, seed = 1, *points;
	size_t n, i;
	int j;

	if (argc < 1)
		bad_usage();
	for (j = 1; j < argc; j += 2) {
		if (j + 1 == argc)
			bad_usage();
		if (!strcmp(argv[j], "--random"))
			nrandom = parse_u64(argv[j + 1]);
		else if (!strcmp(argv[j], "--seed"))
			seed = parse_u64(argv[j + 1]);
		else
			bad_usage();
	}
	if (lw_open(&wlog, argv[0]) || lw_points(&wlog, nrandom, seed, &points, &n))
		return failed();
	for (i = 0; i < n; i++)
		printf("%llu\n", (unsigned long long)points[i]);
	free(points);
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
