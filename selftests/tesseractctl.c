// SPDX-License-Identifier: GPL-2.0
/*
 * tools/tesseractctl on the scratch device: format and its refusals, and
 * check's verdict (exit status) and dump's report on stores whose
 * superblock, checkpoints and journal this test writes or damages itself,
 * crcs computed here by a CRC-32C of its own (bit by bit, where the tool's
 * is table driven). $TS_CTL_DEV names another device or image file.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/tesseract_store.h>

#include "kselftest_harness.h"
#include "ts_crc.h"
#include "ts_util.h"

#define BLOCK		TS_STORE_BLOCK_SIZE
#define SCRATCH		"/dev/vdb"
#define OUT		"/tmp/tesseractctl.out"
#define ERR		"/tmp/tesseractctl.err"
#define SHOW		"cat " OUT " " ERR

/* Exit status of check and dump. */
#define ST_SB		1
#define ST_CKPT		2
#define ST_JOURNAL	4
#define ST_MAP		8
#define ST_IO		16

static const char *dev;

/* Set the crc field of a metadata block. */
static void seal(void *block, __le32 *crc)
{
	*crc = htole32(ts_block_crc(block, (char *)crc - (char *)block));
}

/* The store's geometry, in host order. */
struct geom {
	__u64 blocks;		/* of the device */
	__u64 journal_start;
	__u64 journal_blocks;
	__u64 ckpt[2];
	__u64 ckpt_blocks;
	__u64 data_start;
	__u32 data_blocks;
	__u32 max_refs;
	__u8 uuid[16];
};

/* The device under test. */
struct scratch {
	int fd;
	void *blk;		/* one block, aligned for O_DIRECT */
	struct geom g;
};

FIXTURE(ctl) {
	struct scratch s;
};

static int blk_read(int fd, __u64 nr, void *buf)
{
	return pread(fd, buf, BLOCK, nr * BLOCK) == BLOCK ? 0 : -EIO;
}

static int blk_write(int fd, __u64 nr, const void *buf)
{
	return pwrite(fd, buf, BLOCK, nr * BLOCK) == BLOCK ? 0 : -EIO;
}

/* tesseractctl @args DEVICE, output in OUT and ERR: its exit status. */
static int ctl(const char *args)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s %s >" OUT " 2>" ERR, args, dev);
	return ts_tool(cmd);
}

static bool file_has(const char *path, const char *needle)
{
	static char buf[1 << 16];
	size_t n;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle);
}

static bool out_has(const char *needle)
{
	return file_has(OUT, needle);
}

static bool err_has(const char *needle)
{
	return file_has(ERR, needle);
}

/* Does check's summary line say this? */
static bool summary(const char *verdict, unsigned int refs,
		    unsigned int blocks, unsigned int disks,
		    unsigned int jblocks, unsigned int seq)
{
	char line[256];
	int n;

	n = snprintf(line, sizeof(line),
		     "%s: %u references to %u blocks from %u disks, ",
		     verdict, refs, blocks, disks);
	snprintf(line + n, sizeof(line) - n,
		 "journal %u blocks after checkpoint seq %u\n", jblocks, seq);
	return out_has(line);
}

/* Read the superblock tesseractctl format wrote. */
static int load_geom(int fd, void *blk, struct geom *g)
{
	const struct ts_sb *sb = blk;
	off_t end = lseek(fd, 0, SEEK_END);

	if (end < 0 || blk_read(fd, 0, blk))
		return -EIO;
	g->blocks = end / BLOCK;
	g->journal_start = le64toh(sb->journal_start);
	g->journal_blocks = le64toh(sb->journal_blocks);
	g->ckpt[0] = le64toh(sb->ckpt_start[0]);
	g->ckpt[1] = le64toh(sb->ckpt_start[1]);
	g->ckpt_blocks = le64toh(sb->ckpt_blocks);
	g->data_start = le64toh(sb->data_start);
	g->data_blocks = le32toh(sb->data_blocks);
	g->max_refs = le32toh(sb->max_refs);
	memcpy(g->uuid, sb->uuid, sizeof(g->uuid));
	return 0;
}

/* tesseractctl format @args: a fresh store, its geometry in sc->g. */
static int fresh_store(struct scratch *sc, const char *args)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "format %s", args);
	if (ctl(cmd))
		return -EIO;
	return load_geom(sc->fd, sc->blk, &sc->g);
}

static struct ts_record add(__u64 disk, __u64 x, __u32 data)
{
	struct ts_record r = {
		.type = TS_REC_ADD,
		.data_block = htole32(data),
		.disk_id = htole64(disk),
		.disk_block = htole64(x),
	};

	return r;
}

static struct ts_record drop(__u64 disk, __u64 x)
{
	struct ts_record r = {
		.type = TS_REC_DROP,
		.disk_id = htole64(disk),
		.disk_block = htole64(x),
	};

	return r;
}

/* Journal block @seq at ring index @pos. */
static int put_journal(struct scratch *sc, __u64 pos, __u64 seq,
		       const struct ts_record *recs, unsigned int nr)
{
	struct ts_journal_block *jb = sc->blk;

	memset(jb, 0, BLOCK);
	jb->magic = htole64(TS_JOURNAL_MAGIC);
	jb->seq = htole64(seq);
	jb->nr_records = htole32(nr);
	memcpy(jb->records, recs, nr * sizeof(*recs));
	seal(jb, &jb->crc);
	return blk_write(sc->fd, sc->g.journal_start + pos, jb);
}

/* A checkpoint in @slot: its records (one block of them), then header. */
static int put_ckpt(struct scratch *sc, int slot, __u64 seq,
		    __u64 next, const struct ts_record *recs, unsigned int nr)
{
	struct ts_ckpt_header *h = sc->blk;
	__u32 crc = ~ts_crc32c(~0U, recs, nr * sizeof(*recs));

	memset(sc->blk, 0, BLOCK);
	memcpy(sc->blk, recs, nr * sizeof(*recs));
	if (nr && blk_write(sc->fd, sc->g.ckpt[slot] + 1, sc->blk))
		return -EIO;
	memset(h, 0, BLOCK);
	h->magic = htole64(TS_CKPT_MAGIC);
	h->seq = htole64(seq);
	h->entries_crc = htole32(crc);
	h->nr_refs = htole64(nr);
	h->journal_next = htole64(next);
	memcpy(h->uuid, sc->g.uuid, sizeof(h->uuid));
	seal(h, &h->crc);
	return blk_write(sc->fd, sc->g.ckpt[slot], h);
}

/* Flip one bit of byte @off of block @nr: crc, contents, anything. */
static int flip(struct scratch *sc, __u64 nr, size_t off)
{
	if (blk_read(sc->fd, nr, sc->blk))
		return -EIO;
	((__u8 *)sc->blk)[off] ^= 0x10;
	return blk_write(sc->fd, nr, sc->blk);
}

FIXTURE_SETUP(ctl)
{
	const char *dir = getenv("TS_DIR");
	char tool[512];

	snprintf(tool, sizeof(tool), "%s/build/tools/tesseractctl",
		 dir ? dir : ".");
	self->s.fd = -1;
	if (access(tool, X_OK))
		TS_SETUP_SKIP("%s not built", tool);
	dev = getenv("TS_CTL_DEV") ? getenv("TS_CTL_DEV") : SCRATCH;
	/* A loaded module would hold the device. */
	ts_module_ensure_unloaded();
	self->s.blk = aligned_alloc(BLOCK, BLOCK);
	ASSERT_NE(NULL, self->s.blk);
	self->s.fd = open(dev, O_RDWR | O_DIRECT);
	ASSERT_LE(0, self->s.fd) TH_LOG("%s: %s", dev, strerror(errno));
	/* Whatever an earlier test left: format refuses it. */
	memset(self->s.blk, 0, BLOCK);
	ASSERT_EQ(0, blk_write(self->s.fd, 0, self->s.blk));
}

FIXTURE_TEARDOWN(ctl)
{
	if (self->s.fd >= 0)
		close(self->s.fd);
	free(self->s.blk);
}

TEST_F(ctl, crc32c_test_vector)
{
	EXPECT_EQ(0xe3069283, ~ts_crc32c(~0U, "123456789", 9));
}

TEST_F(ctl, help_and_usage)
{
	EXPECT_EQ(0, ts_tool("--help >" OUT));
	EXPECT_TRUE(file_has(OUT, "format")) ts_system(SHOW);
	EXPECT_EQ(0, ts_tool("check --help >" OUT));
	EXPECT_TRUE(file_has(OUT, "usage: tesseractctl check"));
	EXPECT_EQ(0, ts_tool("dump -h >" OUT));
	EXPECT_TRUE(file_has(OUT, "usage: tesseractctl dump"));
	EXPECT_EQ(0, ts_tool("format --help >" OUT));
	EXPECT_TRUE(file_has(OUT, "--journal-blocks"));
	EXPECT_EQ(64, ts_tool("frobnicate 2>/dev/null"));
	EXPECT_EQ(64, ts_tool("check 2>/dev/null"));
	EXPECT_EQ(64, ctl("format --journal-blocks x"));
	EXPECT_EQ(16, ts_tool("check /nonexistent 2>/dev/null"));
}

/* The layout of the format, and an empty store that checks clean. */
TEST_F(ctl, format_then_check)
{
	const struct ts_sb *sb = self->s.blk;
	const struct ts_ckpt_header *h = self->s.blk;
	const struct geom *g = &self->s.g;
	__u64 jb, data, i;
	__le32 crc;
	__u8 uuid[16];

	ASSERT_EQ(0, fresh_store(&self->s, "")) ts_system(SHOW);
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 0, 0, 0, 0, 0)) ts_system(SHOW);
	EXPECT_EQ(0, ctl("dump")) ts_system(SHOW);
	EXPECT_TRUE(out_has("references: 0\n")) ts_system(SHOW);
	EXPECT_TRUE(out_has("checkpoint slot 0 (block")) ts_system(SHOW);

	/* The superblock. */
	ASSERT_EQ(0, blk_read(self->s.fd, 0, self->s.blk));
	EXPECT_EQ(TS_SB_MAGIC, le64toh(sb->magic));
	EXPECT_EQ((__u32)TS_SB_VERSION, le32toh(sb->version));
	EXPECT_EQ(4096U, le32toh(sb->block_size));
	EXPECT_EQ(0U, sb->incompat_features);
	EXPECT_EQ(g->blocks, le64toh(sb->device_blocks));
	crc = sb->crc;
	seal(self->s.blk, &((struct ts_sb *)self->s.blk)->crc);
	EXPECT_EQ(le32toh(crc), le32toh(sb->crc));
	jb = g->blocks / 64 < 16 ? 16 : g->blocks / 64 > 1024 ? 1024 :
	     g->blocks / 64;
	EXPECT_EQ(1ULL, g->journal_start);
	EXPECT_EQ(jb, g->journal_blocks);
	EXPECT_EQ(1 + jb, g->ckpt[0]);
	EXPECT_EQ(g->ckpt[0] + g->ckpt_blocks, g->ckpt[1]);
	EXPECT_EQ(g->ckpt[1] + g->ckpt_blocks, g->data_start);
	data = g->blocks - 1 - jb - 2 * g->ckpt_blocks;
	EXPECT_EQ(data, g->data_blocks);
	EXPECT_EQ(g->data_blocks, g->max_refs);
	EXPECT_EQ(1 + (data + TS_CKPT_RECORDS - 1) / TS_CKPT_RECORDS,
		  g->ckpt_blocks);

	/* Slot 0: seq 0, nothing; slot 1 and the journal zeroed. */
	ASSERT_EQ(0, blk_read(self->s.fd, g->ckpt[0], self->s.blk));
	EXPECT_EQ(TS_CKPT_MAGIC, le64toh(h->magic));
	EXPECT_EQ(0ULL, h->seq);
	EXPECT_EQ(0ULL, h->nr_refs);
	EXPECT_EQ(0ULL, h->journal_next);
	EXPECT_EQ(0U, h->entries_crc);
	EXPECT_EQ(0, memcmp(h->uuid, g->uuid, sizeof(h->uuid)));
	crc = h->crc;
	seal(self->s.blk, &((struct ts_ckpt_header *)self->s.blk)->crc);
	EXPECT_EQ(le32toh(crc), le32toh(h->crc));
	ASSERT_EQ(0, blk_read(self->s.fd, g->ckpt[1], self->s.blk));
	EXPECT_EQ(0ULL, h->magic);
	for (i = 0; i < g->journal_blocks; i += g->journal_blocks - 1) {
		ASSERT_EQ(0, blk_read(self->s.fd, g->journal_start + i,
				      self->s.blk));
		EXPECT_EQ(0ULL, ((struct ts_journal_block *)
				 self->s.blk)->magic);
	}

	/* A store is formatted again without --force, a new uuid. */
	memcpy(uuid, g->uuid, sizeof(uuid));
	ASSERT_EQ(0, fresh_store(&self->s, "--journal-blocks 16")) ts_system(SHOW);
	EXPECT_TRUE(out_has("replacing the store")) ts_system(SHOW);
	EXPECT_EQ(16ULL, g->journal_blocks);
	EXPECT_NE(0, memcmp(uuid, g->uuid, sizeof(uuid)));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
}

/* Block 0 that is neither zero nor a store: format wants --force. */
TEST_F(ctl, format_refuses_foreign_data)
{
	__u8 *b = self->s.blk, before[BLOCK];
	unsigned int i, x = 12345;
	struct stat st;
	int fd;

	/* An ext4 superblock: at 1024, magic 0xef53 at 1024 + 56. */
	memset(b, 0, BLOCK);
	b[1024] = 0x80;			/* s_inodes_count */
	b[1028] = 0x20;			/* s_blocks_count */
	b[1080] = 0x53;
	b[1081] = 0xef;
	ASSERT_EQ(0, blk_write(self->s.fd, 0, b));
	EXPECT_EQ(1, ctl("format")) ts_system(SHOW);
	EXPECT_TRUE(err_has("ext2/ext3/ext4")) ts_system(SHOW);
	EXPECT_TRUE(err_has("--force")) ts_system(SHOW);
	ASSERT_EQ(0, blk_read(self->s.fd, 0, b));
	EXPECT_EQ(0xef53, b[1080] | b[1081] << 8);
	EXPECT_EQ(ST_SB, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("not a tesseract store")) ts_system(SHOW);
	EXPECT_EQ(0, ctl("format --force")) ts_system(SHOW);
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);

	/* Random bytes. */
	for (i = 0; i < BLOCK; i++) {
		x = x * 1103515245 + 12345;
		b[i] = x >> 16;
	}
	b[510] = 0;			/* no boot sector signature */
	b[1080] = 0;
	memcpy(before, b, BLOCK);
	ASSERT_EQ(0, blk_write(self->s.fd, 0, b));
	EXPECT_EQ(1, ctl("format")) ts_system(SHOW);
	EXPECT_TRUE(err_has("has a file system or other data"))
		ts_system(SHOW);
	ASSERT_EQ(0, blk_read(self->s.fd, 0, b));
	EXPECT_EQ(0, memcmp(before, b, BLOCK));
	EXPECT_EQ(0, ctl("format --force")) ts_system(SHOW);
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);

	/* A device in use (held open exclusively) is refused. */
	ASSERT_EQ(0, stat(dev, &st));
	if (!S_ISBLK(st.st_mode))
		return;
	fd = open(dev, O_RDONLY | O_EXCL);
	ASSERT_LE(0, fd);
	EXPECT_EQ(1, ctl("format --force")) ts_system(SHOW);
	EXPECT_TRUE(err_has("in use")) ts_system(SHOW);
	EXPECT_EQ(ST_IO, ctl("check")) ts_system(SHOW);
	EXPECT_EQ(0, ctl("dump")) ts_system(SHOW);
	close(fd);
}

TEST_F(ctl, superblock_bit_flip)
{
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, flip(&self->s, 0, offsetof(struct ts_sb, device_blocks)));
	EXPECT_EQ(ST_SB, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("superblock: crc")) ts_system(SHOW);
	EXPECT_EQ(ST_SB, ctl("dump")) ts_system(SHOW);

	/* Past the fields, still under the crc. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, flip(&self->s, 0, 3000));
	EXPECT_EQ(ST_SB, ctl("check")) ts_system(SHOW);

	/* A good crc over a bad geometry. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, blk_read(self->s.fd, 0, self->s.blk));
	((struct ts_sb *)self->s.blk)->max_refs =
		htole32(self->s.g.data_blocks + 1);
	seal(self->s.blk, &((struct ts_sb *)self->s.blk)->crc);
	ASSERT_EQ(0, blk_write(self->s.fd, 0, self->s.blk));
	EXPECT_EQ(ST_SB, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("max_refs")) ts_system(SHOW);
}

TEST_F(ctl, checkpoint_headers_corrupted)
{
	const struct ts_record recs[] = { add(1, 1, 10), add(1, 2, 11) };
	size_t off = offsetof(struct ts_ckpt_header, nr_refs);

	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_ckpt(&self->s, 1, 7, 5, recs, 2));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 2, 2, 1, 0, 7)) ts_system(SHOW);

	/* A torn newer header: the older checkpoint, as after a crash. */
	ASSERT_EQ(0, flip(&self->s, self->s.g.ckpt[1], off));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 0, 0, 0, 0, 0)) ts_system(SHOW);

	ASSERT_EQ(0, flip(&self->s, self->s.g.ckpt[0], off));
	EXPECT_EQ(ST_CKPT, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("no valid checkpoint")) ts_system(SHOW);
	EXPECT_EQ(ST_CKPT, ctl("dump")) ts_system(SHOW);
	EXPECT_TRUE(out_has("torn or corrupt header")) ts_system(SHOW);

	/* The newest header good, its entries not: corruption. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_ckpt(&self->s, 1, 7, 5, recs, 2));
	ASSERT_EQ(0, flip(&self->s, self->s.g.ckpt[1] + 1, 30));
	EXPECT_EQ(ST_CKPT, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("entries corrupt")) ts_system(SHOW);
	EXPECT_TRUE(err_has("falling back to slot 0")) ts_system(SHOW);
}

/*
 * Three journal blocks after the checkpoint of the format: ADD, DROP,
 * replacing ADD, DROP of nothing, a block shared by two references.
 */
static int put_three(struct scratch *sc)
{
	const struct ts_record b1[] = {
		add(1, 10, 5), add(1, 11, 6), add(2, 10, 5),
	};
	const struct ts_record b2[] = {
		drop(1, 11), add(1, 10, 7), drop(3, 99),
	};
	const struct ts_record b3[] = { add(2, 20, 8), add(3, 1, 5) };

	return put_journal(sc, 0, 1, b1, 3) ||
	       put_journal(sc, 1, 2, b2, 3) ||
	       put_journal(sc, 2, 3, b3, 2);
}

TEST_F(ctl, journal_replay)
{
	const struct ts_record stale[] = { add(9, 9, 9) };
	size_t rec0 = sizeof(struct ts_journal_block);

	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_three(&self->s));
	/* After them, a block out of sequence: the end, not an error. */
	ASSERT_EQ(0, put_journal(&self->s, 3, 1, stale, 1));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 4, 3, 3, 3, 0)) ts_system(SHOW);
	EXPECT_TRUE(out_has("info: 1 data blocks shared")) ts_system(SHOW);

	EXPECT_EQ(0, ctl("dump")) ts_system(SHOW);
	EXPECT_TRUE(out_has("  seq 1 ring 0 (block 1): 3 records\n"))
		ts_system(SHOW);
	EXPECT_TRUE(out_has("  seq 2 ring 1 (block 2): 3 records\n"
			    "    DROP disk 0000000000000001 block 11\n"))
		ts_system(SHOW);
	EXPECT_TRUE(out_has("out of sequence")) ts_system(SHOW);
	EXPECT_TRUE(out_has("references: 4\n"
			    "  disk 0000000000000001 block 10 -> data 7\n"
			    "  disk 0000000000000002 block 10 -> data 5\n"
			    "  disk 0000000000000002 block 20 -> data 8\n"
			    "  disk 0000000000000003 block 1 -> data 5\n"))
		ts_system(SHOW);

	/* The last block torn: the journal ends before it. */
	ASSERT_EQ(0, flip(&self->s, self->s.g.journal_start + 2, rec0 + 4));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 2, 2, 2, 2, 0)) ts_system(SHOW);
	EXPECT_EQ(0, ctl("dump")) ts_system(SHOW);
	EXPECT_TRUE(out_has("torn (crc mismatch)")) ts_system(SHOW);
	EXPECT_TRUE(out_has("disk 0000000000000002 block 10 -> data 5\n"))
		ts_system(SHOW);
	EXPECT_FALSE(out_has("block 20 ->")) ts_system(SHOW);

	/* A torn block in the middle, valid ones after it: corruption. */
	ASSERT_EQ(0, put_three(&self->s));
	ASSERT_EQ(0, flip(&self->s, self->s.g.journal_start + 1, rec0 + 4));
	EXPECT_EQ(ST_JOURNAL, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("journal corrupt: seq 2 (ring 1) torn (crc mismatch), yet seq 3"))
		ts_system(SHOW);
	EXPECT_EQ(ST_JOURNAL, ctl("dump")) ts_system(SHOW);

	/* A bad record in a good block. */
	ASSERT_EQ(0, put_three(&self->s));
	ASSERT_EQ(0, blk_read(self->s.fd, self->s.g.journal_start + 1, self->s.blk));
	((struct ts_journal_block *)self->s.blk)->records[0].data_block =
		htole32(1);		/* a DROP with a data block */
	seal(self->s.blk, &((struct ts_journal_block *)self->s.blk)->crc);
	ASSERT_EQ(0, blk_write(self->s.fd, self->s.g.journal_start + 1, self->s.blk));
	EXPECT_EQ(ST_JOURNAL, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("DROP with a data block")) ts_system(SHOW);
}

/*
 * The module reads what the tool reads: the same references from a good
 * journal, the state before a torn block, a refusal for a bad record.
 */
TEST_F_TIMEOUT(ctl, module_recovers_the_same_state, 120)
{
	const struct ts_record ck[] = { add(1, 1, 1), add(1, 2, 2) };
	size_t rec0 = sizeof(struct ts_journal_block);
	char params[128];
	int kmsg;

	if (getenv("TS_CTL_DEV"))
		SKIP(return, "the module needs the test VM");
	snprintf(params, sizeof(params), "backing=%s", dev);

	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_three(&self->s));
	kmsg = ts_kmsg_open();
	ASSERT_EQ(0, ts_module_load(params));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "journal up to 3, 4 references"));
	close(kmsg);
	ASSERT_EQ(0, ts_module_unload());
	/*
	 * Unloading wrote a checkpoint of the same map, into slot 1, with a
	 * number of its own after journal block 3.
	 */
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(out_has("checkpoint: slot 1, seq 4, 4 references\n"))
		ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 4, 3, 3, 0, 4)) ts_system(SHOW);

	/* Torn in the middle: the state before it, and a warning. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_three(&self->s));
	ASSERT_EQ(0, flip(&self->s, self->s.g.journal_start + 1, rec0 + 4));
	kmsg = ts_kmsg_open();
	ASSERT_EQ(0, ts_module_load(params));
	/* In the order they are logged: the reader moves on. */
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "later ones are valid"));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "journal up to 1, 3 references"));
	close(kmsg);
	ASSERT_EQ(0, ts_module_unload());

	/* A bad record in a good block: refused, naming it. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_three(&self->s));
	ASSERT_EQ(0, blk_read(self->s.fd, self->s.g.journal_start + 1,
			      self->s.blk));
	((struct ts_journal_block *)self->s.blk)->records[0].type = 7;
	seal(self->s.blk, &((struct ts_journal_block *)self->s.blk)->crc);
	ASSERT_EQ(0, blk_write(self->s.fd, self->s.g.journal_start + 1,
			       self->s.blk));
	kmsg = ts_kmsg_open();
	EXPECT_NE(0, ts_module_load(params));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "journal block 2: bad record 0"));
	close(kmsg);
	ts_module_ensure_unloaded();

	/* A newer checkpoint whose references no longer match their crc. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_ckpt(&self->s, 1, 5, 0, ck, 2));
	ASSERT_EQ(0, flip(&self->s, self->s.g.ckpt[1] + 1, 8));
	kmsg = ts_kmsg_open();
	EXPECT_NE(0, ts_module_load(params));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "checkpoint 5: references corrupted"));
	close(kmsg);
	ts_module_ensure_unloaded();
}

/*
 * Which checkpoint is read: the tool and the module take the slot with the
 * higher seq, whichever slot that is, and refuse two with the same seq
 * (every checkpoint takes a number of its own).
 */
TEST_F_TIMEOUT(ctl, checkpoint_generations, 120)
{
	const struct ts_record old[] = { add(1, 1, 1), add(1, 2, 2) };
	const struct ts_record new[] = { add(1, 1, 3) };
	char params[128];
	bool module = !getenv("TS_CTL_DEV");
	int kmsg;

	snprintf(params, sizeof(params), "backing=%s", dev);

	/* The newer one in slot 0. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_ckpt(&self->s, 1, 8, 0, old, 2));
	ASSERT_EQ(0, put_ckpt(&self->s, 0, 9, 0, new, 1));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(out_has("checkpoint: slot 0, seq 9, 1 references\n"))
		ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 1, 1, 1, 0, 9)) ts_system(SHOW);
	if (module) {
		kmsg = ts_kmsg_open();
		ASSERT_EQ(0, ts_module_load(params));
		EXPECT_TRUE(ts_kmsg_contains(kmsg, "checkpoint 9 in slot 0, journal up to 9,"));
		close(kmsg);
		ASSERT_EQ(0, ts_module_unload());
		/* Its own checkpoint went to slot 1, numbered after 9. */
		EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
		EXPECT_TRUE(out_has("checkpoint: slot 1, seq 10, 1 references\n"))
			ts_system(SHOW);
	}

	/* The same seq in both slots, whatever their contents: corrupt. */
	ASSERT_EQ(0, put_ckpt(&self->s, 1, 10, 0, new, 1));
	ASSERT_EQ(0, put_ckpt(&self->s, 0, 10, 0, old, 2));
	EXPECT_EQ(ST_CKPT, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("checkpoint slots 0 and 1 both claim seq 10"))
		ts_system(SHOW);
	EXPECT_FALSE(out_has("checkpoint: slot")) ts_system(SHOW);
	EXPECT_EQ(ST_CKPT, ctl("dump")) ts_system(SHOW);
	if (module) {
		kmsg = ts_kmsg_open();
		EXPECT_NE(0, ts_module_load(params));
		EXPECT_TRUE(ts_kmsg_contains(kmsg, "slots claim seq 10: corrupted"));
		close(kmsg);
		ts_module_ensure_unloaded();
	}

	/* A torn header does not count: the other one is read. */
	ASSERT_EQ(0, flip(&self->s, self->s.g.ckpt[1], 200));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(out_has("checkpoint: slot 0, seq 10, 2 references\n"))
		ts_system(SHOW);
}

/* Version 1 stores, whose checkpoints could share a seq, are refused. */
TEST_F(ctl, version_1_is_refused)
{
	struct ts_sb *sb = self->s.blk;
	char params[128];
	int kmsg;

	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, blk_read(self->s.fd, 0, sb));
	sb->version = htole32(1);
	seal(sb, &sb->crc);
	ASSERT_EQ(0, blk_write(self->s.fd, 0, sb));
	EXPECT_EQ(ST_SB, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("version 1, this tool reads 2: its checkpoints may share"))
		ts_system(SHOW);
	if (getenv("TS_CTL_DEV"))
		return;
	snprintf(params, sizeof(params), "backing=%s", dev);
	kmsg = ts_kmsg_open();
	EXPECT_NE(0, ts_module_load(params));
	EXPECT_TRUE(ts_kmsg_contains(kmsg, "this module reads 2: its checkpoints may share"));
	close(kmsg);
	ts_module_ensure_unloaded();
}

/* A checkpoint in slot 1 whose journal wraps around the ring. */
TEST_F(ctl, journal_wraps_after_checkpoint)
{
	const struct ts_record ck[] = { add(1, 1, 1), add(1, 2, 2) };
	const struct ts_record j1[] = { drop(1, 1) };
	const struct ts_record j2[] = { add(1, 3, 3) };

	ASSERT_EQ(0, fresh_store(&self->s, "--journal-blocks 16"));
	ASSERT_EQ(0, put_ckpt(&self->s, 1, 40, 15, ck, 2));
	ASSERT_EQ(0, put_journal(&self->s, 15, 41, j1, 1));
	ASSERT_EQ(0, put_journal(&self->s, 0, 42, j2, 1));
	ASSERT_EQ(0, put_journal(&self->s, 1, 43 - 16, j2, 1));
	EXPECT_EQ(0, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(summary("consistent", 2, 2, 1, 2, 40)) ts_system(SHOW);
	EXPECT_EQ(0, ctl("dump")) ts_system(SHOW);
	EXPECT_TRUE(out_has("  seq 42 ring 0 (block 1): 1 records\n"))
		ts_system(SHOW);
	EXPECT_TRUE(out_has("references: 2\n"
			    "  disk 0000000000000001 block 2 -> data 2\n"
			    "  disk 0000000000000001 block 3 -> data 3\n"))
		ts_system(SHOW);
}

TEST_F(ctl, data_block_out_of_range)
{
	struct ts_record recs[] = { add(1, 1, 0), add(1, 2, 0) };
	struct ts_sb *sb = self->s.blk;

	ASSERT_EQ(0, fresh_store(&self->s, ""));
	recs[1] = add(1, 2, self->s.g.data_blocks);
	ASSERT_EQ(0, put_journal(&self->s, 0, 1, recs, 2));
	EXPECT_EQ(ST_MAP, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("data block out of range")) ts_system(SHOW);
	EXPECT_TRUE(summary("inconsistent", 2, 2, 1, 1, 0)) ts_system(SHOW);

	/* In a checkpoint, the record spoils the slot. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, put_ckpt(&self->s, 1, 3, 0, recs, 2));
	EXPECT_EQ(ST_CKPT, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("malformed")) ts_system(SHOW);

	/* More references than a checkpoint could hold. */
	ASSERT_EQ(0, fresh_store(&self->s, ""));
	ASSERT_EQ(0, blk_read(self->s.fd, 0, self->s.blk));
	sb->max_refs = htole32(1);
	seal(sb, &sb->crc);
	ASSERT_EQ(0, blk_write(self->s.fd, 0, sb));
	recs[1] = add(1, 2, 1);
	ASSERT_EQ(0, put_journal(&self->s, 0, 1, recs, 2));
	EXPECT_EQ(ST_MAP, ctl("check")) ts_system(SHOW);
	EXPECT_TRUE(err_has("more than max_refs")) ts_system(SHOW);
}

TEST_HARNESS_MAIN
