// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded fuzzer of /dev/vhost-blk and /dev/tesseract (issue 13).
 *
 * One guest (vblk_guest.c) drives a disk of 32 MiB and 5 sectors (a
 * dm-linear device over /dev/vda, so that its last 4 KiB block is partial)
 * with the module loaded on a store on /dev/vdb, swap on /dev/tsswap0 and
 * the guest's RAM in a memory cgroup, so that its writes of pages pushed
 * to swap become references, and with the swap mapper on, so that pages it
 * read and that go to swap map to its disk's blocks, which its writes,
 * discards and detaches must copy first. Each operation is drawn from the
 * seed:
 *
 * - a batch of up to MAX_BATCH requests on two queues, every request type
 *   and unknown ones, random sectors (many near or past the capacity),
 *   lengths, segmentations, buffer alignments, direct or indirect chains,
 *   header or status sharing a buffer with the data, data in the wrong
 *   direction, short headers; write buffers pushed to swap first;
 * - one request whose guest RAM is unmapped, made PROT_NONE or moved
 *   before the kick or while the device works on it;
 * - a batch while another thread runs swapoff and swapon,
 *   memory.reclaim, TESSERACT_FLATTEN or compaction;
 * - ioctls on the device (serial, reconciliation and the swap mapper
 *   toggled, hostile arguments), on scratch devices (random sequences out
 *   of order with
 *   hostile sizes, indices and fds, kicks of garbage rings in scratch
 *   memory) and on /dev/tesseract;
 * - module parameters (reconcile, cleaner, compactor, disk_max_refs);
 * - the disk detached with a request pending and attached again, or the
 *   device closed and opened anew;
 * - a hostile chain that breaks a queue (the other one must keep working,
 *   then the device is opened anew).
 *
 * A model holds, per sector, the version of the data the disk must contain
 * (0: zeroes; UNKNOWN after a discard or a write whose guest RAM went
 * away). Every status is predicted from the chain, as the device's
 * checks define it (Documentation/abi.rst), and every completed read is
 * compared with the model, as is the whole disk at the end. A mismatch
 * names the operation, the request, the sector and the seed.
 *
 * TS_FUZZ_SEED=<seed> replays a run, TS_FUZZ_OPS=<n> sets the number of
 * operations (default SHORT_OPS, ten times that with TS_SOAK=1), and
 * TS_FUZZ_SECONDS=<n> (not 0) runs for that long instead. Timing decides
 * the outcome of races (a moved page, a concurrent swapoff), never what
 * is drawn: the same seed makes the same operations.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <time.h>
#include <unistd.h>
#include <linux/tesseract.h>
#include <linux/vhost.h>

#include "kselftest.h"
#include "ts_util.h"
#include "vblk_guest.h"

#define CGROUP		"ts-fuzz"
#define DM_NAME		"ts-fuzz-disk"
#define IMAGE		"/dev/vda"
/* The swap mapper on: guest reads leave fingerprints, writes copy first. */
#define STORE_PARAMS	"backing=/dev/vdb swap_mapper=1"
#define SWAPDEV		"/dev/tsswap0"
#define CONTROL		"/dev/tesseract"
#define SCRATCH_FILE	"/tmp/ts-fuzz-scratch.img"
#define DISK_ID		0xf022eULL

#define SECTOR		512U
#define PAGE		4096UL
#define CAP		(65536ULL + 5)	/* sectors */
#define NQUEUES		2
#define QSIZE		256
#define MAX_BATCH	6
/* A batch slot's window of guest RAM: the largest request and slack. */
#define WIN		((1UL << 20) + (64UL << 10))
#define MAX_LEN		((1U << 20) + 4096)
#define GUEST_RAM	(16UL << 20)
#define MAX_SEGS	200
#define MAX_DWZ		18
/* Room for rings of 32768 entries anywhere in its first half. */
#define SCRATCH_SIZE	(4UL << 20)
#define TIMEOUT_MS	60000

#define SHORT_OPS	1000

/* What the last FZ_HISTORY operations did: shown when a request hangs. */
#define FZ_HISTORY	32
#define FZ_NOTE_BYTES	2048

#define TAG_ZERO	0U
#define TAG_UNKNOWN	0xffffffffU

static const __u64 features =
	(1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
	(1ULL << VIRTIO_BLK_F_MQ) | (1ULL << VIRTIO_BLK_F_FLUSH) |
	(1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES) |
	(1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_SIZE_MAX);

enum op_kind {
	OP_BATCH, OP_VERIFY, OP_PERTURB, OP_BACKGROUND, OP_DEV_IOCTL,
	OP_SCRATCH_IOCTL, OP_CONTROL_IOCTL, OP_PARAMS, OP_REATTACH,
	OP_HOSTILE_CHAIN, OP_NR
};

static const char * const op_names[OP_NR] = {
	"batch", "verify", "perturb", "background", "dev_ioctl",
	"scratch_ioctl", "control_ioctl", "params", "reattach",
	"hostile_chain",
};

/* Relative weights of the operations. */
static const unsigned int op_weights[OP_NR] = {
	50, 4, 8, 5, 5, 5, 4, 3, 3, 2,
};

enum req_kind { K_IN, K_OUT, K_FLUSH, K_GET_ID, K_DISCARD, K_WZ, K_UNKNOWN };

static const char * const kind_names[] = {
	"IN", "OUT", "FLUSH", "GET_ID", "DISCARD", "WRITE_ZEROES", "UNKNOWN",
};

/* How a request's chain is laid out, beyond its data segments. */
#define L_MERGE_HDR	0x1U	/* header and first data: one buffer */
#define L_MERGE_STATUS	0x2U	/* last data and status: one buffer */
#define L_WRONG_DIR	0x4U	/* data the other way round */
#define L_SHORT_HDR	0x8U	/* an 8-byte header */

/* What happens to a request's guest RAM (OP_PERTURB). */
enum perturb {
	P_NONE, P_UNMAP, P_PROT_NONE, P_MOVE, P_UNMAP_RACE, P_PROT_NONE_RACE,
	P_MOVE_RACE, P_NR
};

static const char * const perturb_names[P_NR] = {
	"none", "unmap", "prot_none", "move", "unmap_race", "prot_none_race",
	"move_race",
};

struct fz_req {
	enum req_kind kind;
	__u32 type;
	__u64 sector;
	__u32 len;			/* data bytes */
	unsigned int nsegs;
	__u32 seg[MAX_SEGS];
	unsigned int ndwz;
	struct virtio_blk_discard_write_zeroes dwz[MAX_DWZ];	/* CPU order */
	__u32 dwz_bytes;		/* of the payload sent */
	__u64 fp_start, fp_end;		/* sectors it may touch */
	unsigned int layout;
	bool indirect, swap_buf;
	unsigned int qi;
	__u8 *buf;			/* data or payload, in guest RAM */
	__u8 *hdr, *status;
	__u32 tag;			/* of the data an OUT writes */
	int expect;
	__u32 expect_used;
	bool done;
	__u32 used;
};

struct fz_note {
	unsigned long op;
	bool used;
	size_t len;
	char text[FZ_NOTE_BYTES];
};

struct fuzz {
	__u64 seed, rng;
	unsigned long op;
	enum op_kind kind;
	struct vblk_dev d;
	char disk[64];
	int disk_fd;
	bool attached;
	__u8 *win[MAX_BATCH];
	__u8 *hdr[MAX_BATCH], *status[MAX_BATCH];
	__u32 *model;
	__u32 next_tag;
	char serial[VHOST_BLK_SERIAL_BYTES];
	int ctl_fd;
	__u8 *scratch;			/* scratch devices' memory */
	bool swap_on;
	unsigned long count[OP_NR];
	unsigned long reqs, status_ok, sectors_checked;
	long long reconciled, max_refs;
	bool failed;
	const char *phase;		/* what runs outside the operations */
	struct fz_note history[FZ_HISTORY];
};

/* xorshift64*: every choice comes from the seed. */
static __u64 rnd(struct fuzz *f)
{
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545f4914f6cdd1dULL;
}

static __u64 rnd_below(struct fuzz *f, __u64 n)
{
	return n ? rnd(f) % n : 0;
}

/* True with a probability of @pct percent. */
static bool chance(struct fuzz *f, unsigned int pct)
{
	return rnd_below(f, 100) < pct;
}

static void fz_fail(struct fuzz *f, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (f->phase)
		ksft_print_msg("FAIL %s: %s; seed=0x%llx\n", f->phase, msg,
			       (unsigned long long)f->seed);
	else
		ksft_print_msg("FAIL op %lu (%s): %s; seed=0x%llx\n", f->op,
			       op_names[f->kind], msg,
			       (unsigned long long)f->seed);
	f->failed = true;
}

/* Add to the current operation's entry of the history. */
static void fz_note(struct fuzz *f, const char *fmt, ...)
{
	struct fz_note *e = &f->history[f->op % FZ_HISTORY];
	va_list ap;
	int n;

	if (!e->used || e->op != f->op) {
		e->used = true;
		e->op = f->op;
		e->len = 0;
		e->text[0] = 0;
	}
	if (e->len >= sizeof(e->text) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(e->text + e->len, sizeof(e->text) - e->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		e->len += n;
	if (e->len > sizeof(e->text) - 1)
		e->len = sizeof(e->text) - 1;
}

static const char *req_str(const struct fz_req *r, char *buf, size_t len)
{
	unsigned int i;
	size_t n;

	n = snprintf(buf, len,
		     "%s type=0x%x sector=%llu len=%u segs=%u layout=0x%x %s q%u%s",
		     kind_names[r->kind], r->type,
		     (unsigned long long)r->sector, r->len, r->nsegs,
		     r->layout, r->indirect ? "indirect" : "direct", r->qi,
		     r->swap_buf ? " swapped" : "");
	/* Discard and write-zeroes: the segments sent. */
	for (i = 0; i < r->dwz_bytes / sizeof(r->dwz[0]) && n < len; i++)
		n += snprintf(buf + n, len - n, " [%llu+%u f%x]",
			      (unsigned long long)r->dwz[i].sector,
			      r->dwz[i].num_sectors, r->dwz[i].flags);
	return buf;
}

/* The data of version @tag at @sector: every word names both. */
static __u64 pattern_word(__u32 tag, __u64 sector, unsigned int i)
{
	__u64 x = ((__u64)tag << 32) ^ (sector << 6) ^ i;

	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill_sector(__u8 *p, __u32 tag, __u64 sector)
{
	unsigned int i;

	if (tag == TAG_ZERO) {
		memset(p, 0, SECTOR);
		return;
	}
	for (i = 0; i < SECTOR / 8; i++) {
		__u64 w = pattern_word(tag, sector, i);

		memcpy(p + i * 8, &w, 8);
	}
}

static bool sector_is(const __u8 *p, __u32 tag, __u64 sector)
{
	__u8 want[SECTOR];

	fill_sector(want, tag, sector);
	return !memcmp(p, want, SECTOR);
}

static void model_set(struct fuzz *f, __u64 start, __u64 n, __u32 tag)
{
	__u64 s;

	for (s = start; s < start + n && s < CAP; s++)
		f->model[s] = tag;
}

/*
 * Compare @len bytes read from @sector with the model: true if they match
 * (unknown sectors match anything).
 */
static bool model_check(struct fuzz *f, const struct fz_req *r,
			const __u8 *data, __u64 sector, __u32 len)
{
	char desc[512];
	__u64 i;

	for (i = 0; i < len / SECTOR; i++) {
		__u32 tag = f->model[sector + i];
		unsigned int got;

		if (tag == TAG_UNKNOWN)
			continue;
		f->sectors_checked++;
		if (sector_is(data + i * SECTOR, tag, sector + i))
			continue;
		/* Which version it holds, if one of ours: a hint. */
		for (got = 0; got < f->next_tag; got++)
			if (sector_is(data + i * SECTOR, got, sector + i))
				break;
		fz_fail(f,
			"read mismatch at sector %llu: model version %u, disk has %s%u; request %s",
			(unsigned long long)(sector + i), tag,
			got < f->next_tag ? "version " : "none of ",
			got < f->next_tag ? got : f->next_tag,
			r ? req_str(r, desc, sizeof(desc)) : "final read");
		return false;
	}
	return true;
}

/* Allocations in guest RAM after the device is opened. */
static int fz_alloc_ram(struct fuzz *f)
{
	unsigned int i;

	for (i = 0; i < MAX_BATCH; i++) {
		f->win[i] = vblk_alloc(&f->d, WIN, PAGE);
		f->hdr[i] = vblk_alloc(&f->d, 64, 64);
		f->status[i] = vblk_alloc(&f->d, 64, 64);
		if (!f->win[i] || !f->hdr[i] || !f->status[i])
			return -ENOMEM;
	}
	return 0;
}

static int fz_attach(struct fuzz *f, bool direct)
{
	int ret;

	f->disk_fd = open(f->disk, O_RDWR | O_CLOEXEC |
			  (direct ? O_DIRECT : 0));
	if (f->disk_fd < 0)
		return -errno;
	ret = vblk_set_backend(&f->d, f->disk_fd);
	fz_note(f, "; attach%s: %d", direct ? " direct" : "", ret);
	if (ret) {
		close(f->disk_fd);
		f->disk_fd = -1;
		return ret;
	}
	f->attached = true;
	return 0;
}

static void fz_detach(struct fuzz *f)
{
	if (f->attached)
		fz_note(f, "; detach: %d", vblk_set_backend(&f->d, -1));
	f->attached = false;
	if (f->disk_fd >= 0)
		close(f->disk_fd);
	f->disk_fd = -1;
}

/* Open and set up the device, the disk attached: 0 or -errno. */
static int fz_open(struct fuzz *f)
{
	__u64 want = features, id = DISK_ID;
	int ret;

	if (chance(f, 50))
		want |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	ret = vblk_open(&f->d, GUEST_RAM, NQUEUES, QSIZE, want);
	fz_note(f, "; open%s: %d", (want & (1ULL << VIRTIO_RING_F_EVENT_IDX)) ?
		" event_idx" : "", ret);
	if (ret)
		return ret;
	ret = fz_alloc_ram(f);
	if (ret)
		return ret;
	if (ioctl(f->d.fd, VHOST_BLK_SET_DISK_ID, &id))
		return -errno;
	memset(f->serial, 0, sizeof(f->serial));
	return fz_attach(f, chance(f, 50));
}

static void fz_close(struct fuzz *f)
{
	long long n = ts_vhost_counter("reconciled_pages");

	/* Pages this device made references of (it is the only one). */
	if (n > 0)
		f->reconciled += n;
	fz_detach(f);
	vblk_close(&f->d);
}

static int fz_reopen(struct fuzz *f)
{
	fz_close(f);
	return fz_open(f);
}

/*
 * What the last operations did and both sides' view of the rings: shown
 * when a request never completes.
 */
static void fz_dump(struct fuzz *f)
{
	static const char * const counters[] = {
		"in_flight", "broken_queues", "errors", "requests_in",
		"requests_out", "requests_unsupported",
	};
	unsigned long op = f->op >= FZ_HISTORY ? f->op - FZ_HISTORY + 1 : 0;
	bool event_idx = vblk_has_feature(&f->d, VIRTIO_RING_F_EVENT_IDX);
	unsigned int i;

	ksft_print_msg("the last %d operations:\n", FZ_HISTORY);
	for (; op <= f->op; op++) {
		const struct fz_note *e = &f->history[op % FZ_HISTORY];

		if (e->used && e->op == op)
			ksft_print_msg("  op %lu: %s\n", op, e->text);
	}
	for (i = 0; i < f->d.nqueues; i++) {
		struct vblk_queue *q = &f->d.q[i];
		struct vring *v = &q->vring;

		ksft_print_msg("  q%u driver: avail %u kicked %u used %u in_flight %u free %u\n",
			       i, q->avail_idx, q->kicked_idx, q->last_used,
			       q->in_flight, q->num_free);
		ksft_print_msg("  q%u ring: avail idx %u flags 0x%x, used idx %u flags 0x%x",
			       i, le16toh(v->avail->idx),
			       le16toh(v->avail->flags), le16toh(v->used->idx),
			       le16toh(v->used->flags));
		if (event_idx)
			printf(" used_event %u avail_event %u",
			       le16toh(vring_used_event(v)),
			       le16toh(vring_avail_event(v)));
		printf("\n");
	}
	for (i = 0; i < ARRAY_SIZE(counters); i++)
		ksft_print_msg("  device %s %lld\n", counters[i],
			       ts_vhost_counter(counters[i]));
}

/*
 * Reap until @r completes: 0, -ETIMEDOUT, or -EPIPE if the device stopped
 * the queue (its vring error eventfd): it will never answer then.
 */
static int fz_wait(struct fuzz *f, struct fz_req *r)
{
	long long deadline = ts_now() * 1000 + TIMEOUT_MS;
	struct fz_req *done;
	__u32 len;

	while (!r->done) {
		if (vblk_get_used(&f->d, r->qi, (void **)&done, &len)) {
			if (done) {
				done->used = len;
				done->done = true;
				fz_note(f, "; q%u done %p status %d used %u",
					r->qi, (void *)done, *done->status,
					len);
			}
			continue;
		}
		if (vblk_queue_error(&f->d, r->qi)) {
			fz_note(f, "; q%u stopped by the device", r->qi);
			fz_dump(f);
			return -EPIPE;
		}
		if (ts_now() * 1000 > deadline) {
			fz_dump(f);
			return -ETIMEDOUT;
		}
		vblk_wait(&f->d, r->qi, 100);
	}
	return 0;
}

/* ---- Building requests ---- */

/* A sector for a request of @n sectors: anywhere, near the end, or past. */
static __u64 pick_sector(struct fuzz *f, __u64 n, bool aligned)
{
	__u64 s;

	switch (rnd_below(f, 20)) {
	case 0 ... 9:
		s = rnd_below(f, CAP);
		break;
	case 10 ... 13:		/* the first MiB: overlap, references */
		s = rnd_below(f, 2048);
		break;
	case 14 ... 17:		/* ending near the capacity */
		s = CAP - n + rnd_below(f, 9) - 4;
		break;
	case 18:		/* past it */
		s = CAP + rnd_below(f, 64) - 1;
		break;
	default:		/* far past it, wrapping around */
		s = ~0ULL - rnd_below(f, 4096);
		if (chance(f, 50))
			s = (~0ULL >> 9) - rnd_below(f, 16);
		break;
	}
	if (aligned)
		s &= ~7ULL;
	return s;
}

static __u32 pick_len(struct fuzz *f)
{
	switch (rnd_below(f, 20)) {
	case 0 ... 9:
		return (1 + rnd_below(f, 16)) * SECTOR;
	case 10 ... 14:
		return (1 + rnd_below(f, 64)) * PAGE;
	case 15 ... 16:
		return (1 + rnd_below(f, MAX_LEN / SECTOR)) * SECTOR;
	case 17:
		return rnd_below(f, 2) ? MAX_LEN : (1U << 20) + SECTOR;
	case 18:		/* not whole sectors */
		return 1 + rnd_below(f, 8 * SECTOR);
	default:
		return 0;
	}
}

/* Split @len bytes into segments (some of them possibly empty). */
static void pick_segments(struct fuzz *f, struct fz_req *r)
{
	unsigned int max, i;
	__u32 left = r->len;

	if (!r->len) {
		r->nsegs = 0;
		return;
	}
	switch (rnd_below(f, 10)) {
	case 0 ... 4:
		max = 1;
		break;
	case 5 ... 7:
		max = 2 + rnd_below(f, 8);
		break;
	case 8:
		max = 10 + rnd_below(f, 60);
		break;
	default:
		max = 70 + rnd_below(f, MAX_SEGS - 70);
		break;
	}
	/* A chain's descriptors must fit its table or the ring. */
	if (max > MAX_SEGS)
		max = MAX_SEGS;
	for (i = 0; i < max - 1 && left; i++) {
		__u32 cut;

		if (chance(f, 3)) {
			r->seg[i] = 0;
			continue;
		}
		cut = chance(f, 50) ? (__u32)rnd_below(f, left + 1) :
		      (__u32)(rnd_below(f, left / SECTOR + 1) * SECTOR);
		if (cut > (1U << 20) && chance(f, 80))
			cut = 1U << 20;
		r->seg[i] = cut;
		left -= cut;
	}
	r->seg[i++] = left;
	r->nsegs = i;
}

/* Offset of a request's data in its window: page, sector, odd. */
static size_t pick_offset(struct fuzz *f, bool page_aligned)
{
	size_t off = 64 + rnd_below(f, 8) * PAGE;

	if (page_aligned)
		return PAGE + rnd_below(f, 8) * PAGE;
	switch (rnd_below(f, 4)) {
	case 0:
		return off - 64 + PAGE;
	case 1:
		return off + rnd_below(f, 8) * SECTOR;
	case 2:
		return off + rnd_below(f, PAGE / 8) * 8;
	default:
		return off + rnd_below(f, PAGE);
	}
}

static void pick_dwz(struct fuzz *f, struct fz_req *r)
{
	bool zeroes = r->kind == K_WZ;
	__u64 span = 1 + rnd_below(f, chance(f, 20) ? 8192 : 256);
	unsigned int i, n = 1 + rnd_below(f, chance(f, 10) ? MAX_DWZ : 4);
	__u64 base = pick_sector(f, span, chance(f, 40));

	r->fp_start = base;
	r->fp_end = base + span;
	r->ndwz = n;
	for (i = 0; i < n; i++) {
		struct virtio_blk_discard_write_zeroes *s = &r->dwz[i];
		__u64 off = rnd_below(f, span);

		s->sector = base + off;
		s->num_sectors = rnd_below(f, span - off + 1);
		s->flags = 0;
		if (zeroes && chance(f, 30))
			s->flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		if (chance(f, 2))
			s->flags |= 1U << rnd_below(f, 32);
		if (chance(f, 2))
			s->num_sectors = ~0U - rnd_below(f, 4);
	}
	r->dwz_bytes = n * sizeof(r->dwz[0]);
	if (chance(f, 3))
		r->dwz_bytes = chance(f, 50) ? 0 : rnd_below(f, r->dwz_bytes);
}

static __u32 unknown_type(struct fuzz *f)
{
	static const __u32 types[] = {
		2, 3, 5, 6, 7, 9, 10, 12, 14, 16, 17, 18, 19, 0x80000000U,
		0x80000001U, 0x80000004U, 0xffffffffU,
	};
	__u32 t;

	if (chance(f, 70))
		return types[rnd_below(f, ARRAY_SIZE(types))];
	do {
		t = rnd(f);
	} while (t == VIRTIO_BLK_T_IN || t == VIRTIO_BLK_T_OUT ||
		 t == VIRTIO_BLK_T_FLUSH || t == VIRTIO_BLK_T_GET_ID ||
		 t == VIRTIO_BLK_T_DISCARD || t == VIRTIO_BLK_T_WRITE_ZEROES);
	return t;
}

/* Draw a request (its kind and shape; nothing in guest RAM yet). */
static void pick_req(struct fuzz *f, struct fz_req *r, enum req_kind kind)
{
	static const __u32 types[] = {
		VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
		VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD,
		VIRTIO_BLK_T_WRITE_ZEROES, 0,
	};

	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->type = kind == K_UNKNOWN ? unknown_type(f) : types[kind];
	r->qi = rnd_below(f, NQUEUES);
	r->indirect = chance(f, 40);
	switch (kind) {
	case K_IN:
	case K_OUT:
		r->len = pick_len(f);
		/* References need whole pages at page offsets. */
		r->swap_buf = kind == K_OUT ? chance(f, 30) : chance(f, 10);
		r->sector = pick_sector(f, (r->len + SECTOR - 1) / SECTOR,
					r->swap_buf || chance(f, 30));
		pick_segments(f, r);
		break;
	case K_GET_ID:
		r->len = rnd_below(f, 41);
		pick_segments(f, r);
		break;
	case K_FLUSH:
	case K_UNKNOWN:
		r->len = chance(f, 80) ? 0 : (1 + rnd_below(f, 8)) * SECTOR;
		pick_segments(f, r);
		r->sector = rnd_below(f, CAP);
		break;
	case K_DISCARD:
	case K_WZ:
		pick_dwz(f, r);
		break;
	}
	if (kind == K_IN || kind == K_OUT) {
		r->fp_start = r->sector;
		r->fp_end = r->sector + (r->len + SECTOR - 1) / SECTOR;
	} else if (kind != K_DISCARD && kind != K_WZ) {
		r->fp_start = 0;
		r->fp_end = 0;
	}
	if (chance(f, 15))
		r->layout |= L_MERGE_HDR;
	if (chance(f, 15))
		r->layout |= L_MERGE_STATUS;
	if (chance(f, 3))
		r->layout |= L_WRONG_DIR;
	if (chance(f, 2))
		r->layout |= L_SHORT_HDR;
}

/* Which way the request's data goes: true if the device writes it. */
static bool data_device_writes(const struct fz_req *r)
{
	bool in = r->kind == K_IN || r->kind == K_GET_ID ||
		  (r->kind == K_UNKNOWN && (r->type & 1) == 0) ||
		  (r->kind == K_FLUSH && (r->sector & 1));

	return (r->layout & L_WRONG_DIR) ? !in : in;
}

/*
 * The status (and used length) the device must answer @r with, from what
 * the chain holds: the checks of kmod/vhost_blk.c as the ABI describes
 * them.
 */
static void predict(struct fz_req *r)
{
	bool dw = data_device_writes(r);
	__u32 hdr = (r->layout & L_SHORT_HDR) ? 8 : 16;
	__u32 data = (r->kind == K_DISCARD || r->kind == K_WZ) ?
		     r->dwz_bytes : r->len;
	__u64 out_len = hdr + (dw ? 0 : data);
	__u64 in_len = 1 + (dw ? data : 0);
	unsigned int i, segs = 0, ndwz;
	bool seg_ok = true;
	__u64 n;

	r->expect = VIRTIO_BLK_S_IOERR;
	r->expect_used = 1;
	if (out_len < 16)
		return;
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (r->type == VIRTIO_BLK_T_IN ? out_len != 16 : in_len != 1)
			return;
		for (i = 0; i < r->nsegs; i++) {
			if (!r->seg[i])
				continue;
			segs++;
			if (r->seg[i] > VHOST_BLK_SIZE_MAX)
				seg_ok = false;
		}
		n = r->len / SECTOR;
		if (!r->len || r->len % SECTOR || !seg_ok ||
		    segs > VHOST_BLK_SEG_MAX || r->sector > CAP ||
		    n > CAP - r->sector)
			return;
		r->expect = VIRTIO_BLK_S_OK;
		if (r->type == VIRTIO_BLK_T_IN)
			r->expect_used = 1 + r->len;
		return;
	case VIRTIO_BLK_T_FLUSH:
		if (out_len == 16 && in_len == 1)
			r->expect = VIRTIO_BLK_S_OK;
		return;
	case VIRTIO_BLK_T_GET_ID:
		if (out_len != 16)
			return;
		r->expect = VIRTIO_BLK_S_OK;
		r->expect_used = 1 + (in_len - 1 < VHOST_BLK_SERIAL_BYTES ?
				      in_len - 1 : VHOST_BLK_SERIAL_BYTES);
		return;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		ndwz = r->dwz_bytes / sizeof(r->dwz[0]);
		if (in_len != 1 || !r->dwz_bytes ||
		    r->dwz_bytes % sizeof(r->dwz[0]) ||
		    ndwz > VHOST_BLK_MAX_DISCARD_SEG)
			return;
		for (i = 0; i < ndwz; i++) {
			__u32 allowed = r->type == VIRTIO_BLK_T_WRITE_ZEROES ?
					VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;

			if (r->dwz[i].flags & ~allowed) {
				r->expect = VIRTIO_BLK_S_UNSUPP;
				return;
			}
			if (r->dwz[i].sector > CAP ||
			    r->dwz[i].num_sectors > CAP - r->dwz[i].sector)
				return;
		}
		r->expect = VIRTIO_BLK_S_OK;
		return;
	default:
		r->expect = VIRTIO_BLK_S_UNSUPP;
		return;
	}
}

/* Put @r's data in slot @slot of guest RAM (before swapping, if asked). */
static void place_req(struct fuzz *f, struct fz_req *r, unsigned int slot)
{
	bool aligned = r->swap_buf || chance(f, 30);
	size_t off = pick_offset(f, aligned);
	__u8 *win = f->win[slot];
	__u32 i;

	r->buf = win + off;
	r->hdr = (r->layout & L_MERGE_HDR) ? r->buf - 16 : f->hdr[slot];
	r->status = f->status[slot];
	if (r->kind == K_DISCARD || r->kind == K_WZ) {
		for (i = 0; i < r->ndwz; i++) {
			struct virtio_blk_discard_write_zeroes le = {
				.sector = htole64(r->dwz[i].sector),
				.num_sectors = htole32(r->dwz[i].num_sectors),
				.flags = htole32(r->dwz[i].flags),
			};

			memcpy(r->buf + i * sizeof(le), &le, sizeof(le));
		}
	} else if (r->kind == K_OUT) {
		r->tag = f->next_tag++;
		for (i = 0; i < r->len / SECTOR; i++)
			fill_sector(r->buf + i * SECTOR, r->tag, r->sector + i);
		if (r->len % SECTOR)
			memset(r->buf + r->len - r->len % SECTOR, 0x3c,
			       r->len % SECTOR);
	} else {
		/* Poison: what was not read must not look read. */
		memset(r->buf, 0xa5, r->len);
	}
	if (r->layout & L_MERGE_STATUS)
		r->status = r->buf + ((r->kind == K_DISCARD ||
				       r->kind == K_WZ) ?
				      r->dwz_bytes : r->len);
	memset(r->hdr, 0, 16);
	((struct virtio_blk_outhdr *)r->hdr)->type = htole32(r->type);
	((struct virtio_blk_outhdr *)r->hdr)->sector = htole64(r->sector);
	*r->status = 0xee;
}

/* The chain: readable buffers, then writable ones. */
static int post_req(struct fuzz *f, struct fz_req *r)
{
	struct vblk_buf bufs[MAX_SEGS + 4];
	bool dw = data_device_writes(r);
	bool dwz = r->kind == K_DISCARD || r->kind == K_WZ;
	__u32 hdr_len = (r->layout & L_SHORT_HDR) ? 8 : 16;
	char desc[512];
	unsigned int n = 0, i, nsegs = dwz ? 1 : r->nsegs;
	__u8 *p = r->buf;
	int head;

	bufs[n++] = (struct vblk_buf){ r->hdr, hdr_len, false };
	for (i = 0; i < nsegs; i++) {
		__u32 len = dwz ? r->dwz_bytes : r->seg[i];

		/* The header shares the first readable buffer. */
		if (i == 0 && !dw && (r->layout & L_MERGE_HDR) &&
		    !(r->layout & L_SHORT_HDR)) {
			bufs[0].len += len;
		} else {
			bufs[n++] = (struct vblk_buf){ p, len, dw };
		}
		p += len;
	}
	if (dw && nsegs && r->status == p)
		bufs[n - 1].len++;
	else
		bufs[n++] = (struct vblk_buf){ r->status, 1, true };
	/*
	 * Only op_hostile_chain() posts what the device cannot answer: a
	 * buffer outside guest RAM would stop the queue, not fail the request.
	 */
	for (i = 0; i < n; i++) {
		uintptr_t a = (uintptr_t)bufs[i].addr;

		if (a < (uintptr_t)f->d.ram ||
		    bufs[i].len > (uintptr_t)f->d.ram + f->d.ram_size - a) {
			fz_fail(f, "fuzzer bug: buffer %u (%u bytes) outside guest RAM; request %s",
				i, bufs[i].len, req_str(r, desc, sizeof(desc)));
			return -EFAULT;
		}
	}
	/* A ring too full for a direct chain takes an indirect one. */
	if (!r->indirect && f->d.q[r->qi].num_free < n)
		r->indirect = true;
	head = vblk_post(&f->d, r->qi, bufs, n, r->indirect, r);
	fz_note(f, "; post %p head %d avail %u: %s, buffers", (void *)r, head,
		f->d.q[r->qi].avail_idx, req_str(r, desc, sizeof(desc)));
	for (i = 0; i < n && i < 8; i++)
		fz_note(f, " %u%s", bufs[i].len, bufs[i].device_writes ? "w" : "");
	if (n > 8)
		fz_note(f, " ... (%u)", n);
	return head < 0 ? head : 0;
}

/*
 * The status byte shares a data buffer only where the chain puts the
 * data last and writable; otherwise it is the slot's own.
 */
static void fix_layout(struct fuzz *f, struct fz_req *r, unsigned int slot)
{
	bool dwz = r->kind == K_DISCARD || r->kind == K_WZ;

	/* A short header is all there is to read (else data fills it up). */
	if (!data_device_writes(r) && (dwz ? r->dwz_bytes : r->len))
		r->layout &= ~L_SHORT_HDR;
	if (!data_device_writes(r) || dwz || !r->len)
		r->status = f->status[slot];
	if ((r->layout & L_MERGE_HDR) &&
	    (data_device_writes(r) || (r->layout & L_SHORT_HDR) ||
	     !(dwz ? r->dwz_bytes : r->len)))
		r->hdr = f->hdr[slot];
	if (r->hdr == f->hdr[slot]) {
		memset(r->hdr, 0, 16);
		((struct virtio_blk_outhdr *)r->hdr)->type = htole32(r->type);
		((struct virtio_blk_outhdr *)r->hdr)->sector =
			htole64(r->sector);
	}
	*r->status = 0xee;
}

/* Check a completed request against the prediction and the model. */
static void complete_req(struct fuzz *f, struct fz_req *r)
{
	int st = *r->status;
	char desc[512];
	unsigned int i;

	f->reqs++;
	if (st != r->expect || r->used != r->expect_used) {
		fz_fail(f, "status %d used %u, expected %d used %u; request %s",
			st, r->used, r->expect, r->expect_used,
			req_str(r, desc, sizeof(desc)));
		return;
	}
	if (st != VIRTIO_BLK_S_OK)
		return;
	f->status_ok++;
	switch (r->kind) {
	case K_IN:
		model_check(f, r, r->buf, r->sector, r->len);
		break;
	case K_OUT:
		model_set(f, r->sector, r->len / SECTOR, r->tag);
		break;
	case K_GET_ID:
		if (memcmp(r->buf, f->serial, r->used - 1))
			fz_fail(f, "GET_ID returned another serial");
		break;
	case K_DISCARD:
	case K_WZ:
		/* Discarded contents are unspecified; zeroes are zeroes. */
		for (i = 0; i < r->ndwz; i++)
			model_set(f, r->dwz[i].sector, r->dwz[i].num_sectors,
				  r->kind == K_WZ ? TAG_ZERO : TAG_UNKNOWN);
		break;
	default:
		break;
	}
}

static void push_buf(struct fuzz *f, struct fz_req *r)
{
	__u8 *start = (__u8 *)((uintptr_t)r->buf & ~(PAGE - 1));
	size_t len = (r->buf + r->len - start + PAGE - 1) & ~(PAGE - 1);

	if (r->len)
		ts_push_to_swap(CGROUP, start, len);
}

static bool overlaps(const struct fz_req *a, const struct fz_req *b)
{
	return a->fp_start < b->fp_end && b->fp_start < a->fp_end;
}

static enum req_kind pick_kind(struct fuzz *f)
{
	switch (rnd_below(f, 40)) {
	case 0 ... 13:
		return K_IN;
	case 14 ... 29:
		return K_OUT;
	case 30 ... 31:
		return K_FLUSH;
	case 32 ... 33:
		return K_GET_ID;
	case 34 ... 35:
		return K_DISCARD;
	case 36 ... 38:
		return K_WZ;
	default:
		return K_UNKNOWN;
	}
}

/*
 * Draw up to @max requests whose sectors do not overlap (their order in
 * the device is not defined), place them in guest RAM: how many.
 */
static unsigned int build_batch(struct fuzz *f, struct fz_req *reqs,
				unsigned int max)
{
	unsigned int n = 0, i, tries;

	while (n < max) {
		for (tries = 0; tries < 8; tries++) {
			pick_req(f, &reqs[n], pick_kind(f));
			for (i = 0; i < n; i++)
				if (overlaps(&reqs[i], &reqs[n]))
					break;
			if (i == n)
				break;
		}
		if (tries == 8)
			break;
		place_req(f, &reqs[n], n);
		fix_layout(f, &reqs[n], n);
		predict(&reqs[n]);
		n++;
	}
	return n;
}

static void fz_kick(struct fuzz *f, unsigned int qi)
{
	__u16 old = f->d.q[qi].kicked_idx;
	bool kicked = vblk_kick(&f->d, qi);

	fz_note(f, "; kick q%u %u..%u%s", qi, old, f->d.q[qi].avail_idx,
		kicked ? "" : " (not needed)");
}

/* Push, post and kick a batch built by build_batch(): 0 or -errno. */
static int start_batch(struct fuzz *f, struct fz_req *reqs, unsigned int n)
{
	bool kick[NQUEUES] = { false };
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++)
		if (reqs[i].swap_buf)
			push_buf(f, &reqs[i]);
	for (i = 0; i < n; i++) {
		ret = post_req(f, &reqs[i]);
		if (ret) {
			fz_fail(f, "cannot post request %u: %d", i, ret);
			return ret;
		}
		kick[reqs[i].qi] = true;
	}
	for (i = 0; i < NQUEUES; i++)
		if (kick[i])
			fz_kick(f, i);
	return 0;
}

static void finish_batch(struct fuzz *f, struct fz_req *reqs, unsigned int n)
{
	char desc[512];
	unsigned int i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = fz_wait(f, &reqs[i]);
		if (ret) {
			fz_fail(f, "%s: %s", ret == -EPIPE ?
				"queue stopped by the device (vring error) with a request pending" :
				"request timed out",
				req_str(&reqs[i], desc, sizeof(desc)));
			return;
		}
	}
	for (i = 0; i < n && !f->failed; i++)
		complete_req(f, &reqs[i]);
}

/* ---- Operations ---- */

static void op_batch(struct fuzz *f)
{
	struct fz_req reqs[MAX_BATCH];
	unsigned int n = build_batch(f, reqs, 1 + rnd_below(f, MAX_BATCH));

	if (!start_batch(f, reqs, n))
		finish_batch(f, reqs, n);
}

/*
 * The read of op_verify(): @pages pages at @sector in up to @nsegs
 * segments, the last ones a page each and the first what remains. Never
 * more segments than pages: the first one's length would wrap around to
 * nearly 4 GiB, a buffer no guest memory holds, a chain the device cannot
 * answer at all (it stops the queue, as it must).
 */
static void verify_req(struct fuzz *f, struct fz_req *r, __u32 pages,
		       __u64 sector, unsigned int nsegs, unsigned int qi,
		       bool indirect)
{
	unsigned int i;

	memset(r, 0, sizeof(*r));
	r->kind = K_IN;
	r->type = VIRTIO_BLK_T_IN;
	r->len = pages * PAGE;
	r->sector = sector;
	r->nsegs = nsegs < pages ? nsegs : pages;
	r->seg[0] = r->len - (r->nsegs - 1) * PAGE;
	for (i = 1; i < r->nsegs; i++)
		r->seg[i] = PAGE;
	r->qi = qi;
	r->indirect = indirect;
	r->fp_start = r->sector;
	r->fp_end = r->sector + r->len / SECTOR;
	r->buf = f->win[0];
	r->hdr = f->hdr[0];
	r->status = f->status[0];
	memset(r->buf, 0xa5, r->len);
	memset(r->hdr, 0, 16);
	((struct virtio_blk_outhdr *)r->hdr)->type = htole32(r->type);
	((struct virtio_blk_outhdr *)r->hdr)->sector = htole64(r->sector);
	*r->status = 0xee;
	predict(r);
}

/* Read a range and compare it: the model over more than one request. */
static void op_verify(struct fuzz *f)
{
	__u32 pages = 1 + rnd_below(f, 256);
	__u64 sector = rnd_below(f, CAP - pages * (PAGE / SECTOR) + 1);
	unsigned int nsegs = 1 + rnd_below(f, 4);
	unsigned int qi = rnd_below(f, NQUEUES);
	struct fz_req r;

	verify_req(f, &r, pages, sector, nsegs, qi, chance(f, 50));
	if (!start_batch(f, &r, 1))
		finish_batch(f, &r, 1);
}

/*
 * Before the first operation: reads as op_verify() draws them, of one to
 * four pages in one to four segments, direct and indirect, on both
 * queues, must all complete OK with the zeroes setup wrote. Seed
 * 0x6b0f8ce219fdb8cc drew one page in four segments at operation 934:
 * the device stopped the queue on the first segment, 2^32 - 3 pages long,
 * and the fuzzer waited for the read until it timed out.
 */
static void check_verify_shapes(struct fuzz *f)
{
	unsigned int pages, nsegs, qi;
	struct fz_req r;

	f->phase = "verify shapes";
	for (pages = 1; pages <= 4; pages++) {
		for (nsegs = 1; nsegs <= 4; nsegs++) {
			for (qi = 0; qi < NQUEUES && !f->failed; qi++) {
				verify_req(f, &r, pages, 64 * pages, nsegs, qi,
					   (nsegs + qi) & 1);
				if (!start_batch(f, &r, 1))
					finish_batch(f, &r, 1);
				/* Answered as predicted, and OK was predicted. */
				if (!f->failed && r.expect != VIRTIO_BLK_S_OK)
					fz_fail(f, "%u pages in %u segments: status %d predicted",
						pages, nsegs, r.expect);
			}
		}
	}
	f->phase = NULL;
}

struct moved {
	__u8 *start, *spare;
	size_t len;
};

/* Change the guest RAM under @start..+len as @p says. */
static int perturb_ram(struct fuzz *f, enum perturb p, struct moved *m,
		       struct fz_req *r)
{
	void *fresh;
	__u64 i;

	switch (p) {
	case P_UNMAP:
	case P_UNMAP_RACE:
		return munmap(m->start, m->len);
	case P_PROT_NONE:
	case P_PROT_NONE_RACE:
		return mprotect(m->start, m->len, PROT_NONE);
	case P_MOVE:
	case P_MOVE_RACE:
		/* The pages go elsewhere; fresh ones take their place. */
		fresh = mremap(m->start, m->len, m->len,
			       MREMAP_MAYMOVE | MREMAP_FIXED, m->spare);
		if (fresh == MAP_FAILED)
			return -1;
		fresh = mmap(m->start, m->len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (fresh == MAP_FAILED)
			return -1;
		/* An OUT now writes a new version, an IN reads into poison. */
		if (r->kind == K_OUT) {
			r->tag = f->next_tag++;
			for (i = 0; i < r->len / SECTOR; i++)
				fill_sector(r->buf + i * SECTOR, r->tag,
					    r->sector + i);
		} else {
			memset(r->buf, 0xa5, r->len);
		}
		return 0;
	default:
		return 0;
	}
}

static int restore_ram(enum perturb p, struct moved *m)
{
	void *back;

	switch (p) {
	case P_UNMAP:
	case P_UNMAP_RACE:
		back = mmap(m->start, m->len, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		return back == MAP_FAILED ? -1 : 0;
	case P_PROT_NONE:
	case P_PROT_NONE_RACE:
		return mprotect(m->start, m->len, PROT_READ | PROT_WRITE);
	case P_MOVE:
	case P_MOVE_RACE:
		back = mremap(m->spare, m->len, m->len,
			      MREMAP_MAYMOVE | MREMAP_FIXED, m->start);
		return back == MAP_FAILED ? -1 : 0;
	default:
		return 0;
	}
}

/*
 * One IN or OUT whose guest RAM (some of its pages) is unmapped, made
 * PROT_NONE or moved away and replaced, before the kick or right after
 * it. Before the kick, a request whose RAM is gone must fail and one
 * whose RAM moved must see the new pages; in a race, it may fail or
 * succeed, and a write that failed leaves its range unknown.
 */
static void op_perturb(struct fuzz *f)
{
	enum perturb p = 1 + rnd_below(f, P_NR - 1);
	bool race = p >= P_UNMAP_RACE;
	struct fz_req r;
	struct moved m;
	__u64 first, last, pages;
	char desc[512];
	unsigned int i;
	int st;

	pick_req(f, &r, chance(f, 50) ? K_IN : K_OUT);
	r.layout = 0;
	r.len = (1 + rnd_below(f, 32)) * PAGE;
	r.nsegs = 1 + rnd_below(f, 4);
	r.seg[0] = r.len - (r.nsegs - 1) * SECTOR;
	for (i = 1; i < r.nsegs; i++)
		r.seg[i] = SECTOR;
	r.sector = rnd_below(f, CAP - r.len / SECTOR + 1);
	if (r.swap_buf)
		r.sector &= ~7ULL;
	r.fp_start = r.sector;
	r.fp_end = r.sector + r.len / SECTOR;
	place_req(f, &r, 0);
	r.hdr = f->hdr[0];
	r.status = f->status[0];
	fix_layout(f, &r, 0);
	predict(&r);

	/* Some of the buffer's pages. */
	pages = ((uintptr_t)(r.buf + r.len - 1) / PAGE) -
		((uintptr_t)r.buf / PAGE) + 1;
	first = rnd_below(f, pages);
	last = first + rnd_below(f, pages - first);
	m.start = (__u8 *)((uintptr_t)r.buf & ~(PAGE - 1)) + first * PAGE;
	m.len = (last - first + 1) * PAGE;
	m.spare = mmap(NULL, m.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (m.spare == MAP_FAILED) {
		fz_fail(f, "mmap: %s", strerror(errno));
		return;
	}
	fz_note(f, " %s", perturb_names[p]);
	if (r.swap_buf)
		push_buf(f, &r);
	if (post_req(f, &r)) {
		fz_fail(f, "cannot post");
		return;
	}
	if (!race && perturb_ram(f, p, &m, &r)) {
		fz_fail(f, "%s: %s", perturb_names[p], strerror(errno));
		return;
	}
	fz_kick(f, r.qi);
	if (race && perturb_ram(f, p, &m, &r)) {
		fz_fail(f, "%s: %s", perturb_names[p], strerror(errno));
		return;
	}
	if (fz_wait(f, &r)) {
		fz_fail(f, "request not answered (%s): %s", perturb_names[p],
			req_str(&r, desc, sizeof(desc)));
		return;
	}
	st = *r.status;
	if (p != P_MOVE)
		f->reqs++;
	if (p == P_MOVE) {
		/* Fresh pages under the same addresses: all as usual. */
		complete_req(f, &r);
	} else if (st != VIRTIO_BLK_S_OK && st != VIRTIO_BLK_S_IOERR) {
		fz_fail(f, "status %d after %s: %s", st, perturb_names[p],
			req_str(&r, desc, sizeof(desc)));
	} else if (!race && st == VIRTIO_BLK_S_OK) {
		fz_fail(f, "status OK with its RAM %s: %s", perturb_names[p],
			req_str(&r, desc, sizeof(desc)));
	} else if (r.kind == K_OUT) {
		/* Which version, or how much of it, is not known. */
		if (st != VIRTIO_BLK_S_OK || p == P_MOVE_RACE)
			model_set(f, r.sector, r.len / SECTOR, TAG_UNKNOWN);
		else
			model_set(f, r.sector, r.len / SECTOR, r.tag);
	}
	if (restore_ram(p, &m))
		fz_fail(f, "restoring after %s: %s", perturb_names[p],
			strerror(errno));
	/* Data that landed in pages still there is checked. */
	if (!f->failed && st == VIRTIO_BLK_S_OK && r.kind == K_IN &&
	    p == P_PROT_NONE_RACE)
		model_check(f, &r, r.buf, r.sector, r.len);
	munmap(m.spare, m.len);
}

enum bg_action { BG_SWAPOFF, BG_RECLAIM, BG_FLATTEN, BG_COMPACT, BG_NR };

static const char * const bg_names[BG_NR] = {
	"swapoff", "reclaim", "flatten", "compact",
};

struct bg {
	enum bg_action action;
	struct fuzz *f;
	int ret, ret2;
};

static void *bg_thread(void *p)
{
	struct bg *bg = p;
	struct tesseract_flatten fl = { .disk_id = DISK_ID };

	switch (bg->action) {
	case BG_SWAPOFF:
		bg->ret = swapoff(SWAPDEV) ? -errno : 0;
		bg->ret2 = swapon(SWAPDEV, 0) ? -errno : 0;
		break;
	case BG_RECLAIM:
		bg->ret = ts_cgroup_write(CGROUP, "memory.reclaim", "8M");
		break;
	case BG_FLATTEN:
		bg->ret = ioctl(bg->f->ctl_fd, TESSERACT_FLATTEN, &fl) ?
			  -errno : 0;
		break;
	default:
		bg->ret = ts_write_str("/proc/sys/vm/compact_memory", "1");
		break;
	}
	return NULL;
}

/* A batch while another thread changes what is under it. */
static void op_background(struct fuzz *f)
{
	struct fz_req reqs[MAX_BATCH];
	struct bg bg = { .action = rnd_below(f, BG_NR), .f = f };
	unsigned int n = build_batch(f, reqs, 1 + rnd_below(f, MAX_BATCH));
	pthread_t thread;

	fz_note(f, " %s", bg_names[bg.action]);
	if (pthread_create(&thread, NULL, bg_thread, &bg)) {
		fz_fail(f, "pthread_create");
		return;
	}
	if (!start_batch(f, reqs, n))
		finish_batch(f, reqs, n);
	pthread_join(thread, NULL);
	if ((bg.action == BG_SWAPOFF && (bg.ret || bg.ret2)) ||
	    (bg.action == BG_FLATTEN && bg.ret))
		fz_fail(f, "%s under guest I/O: %d, %d", bg_names[bg.action],
			bg.ret, bg.ret2);
}

/* A pointer argument: mostly @good, sometimes hostile. */
static void *arg_ptr(struct fuzz *f, void *good)
{
	switch (rnd_below(f, 20)) {
	case 0:
		return NULL;
	case 1:
		return (void *)1;
	case 2:
		return (void *)0xffffffff81000000ULL;
	default:
		return good;
	}
}

/* Ioctls on the running device: they must not disturb its data. */
static void op_dev_ioctl(struct fuzz *f)
{
	char serial[VHOST_BLK_SERIAL_BYTES];
	__u64 id = 0, got = 0;
	int fd = f->d.fd, on, ret;
	unsigned int i, what = rnd_below(f, 8);

	fz_note(f, " %u", what);
	switch (what) {
	case 0:
		for (i = 0; i < sizeof(serial); i++)
			serial[i] = rnd(f);
		if (vblk_set_serial(&f->d, serial))
			fz_fail(f, "SET_SERIAL failed");
		memcpy(f->serial, serial, sizeof(serial));
		break;
	case 1:
		on = rnd_below(f, 4);
		if (ioctl(fd, on < 2 ? VHOST_BLK_SET_RECONCILE :
				       VHOST_BLK_SET_SWAP_MAPPER, &(int){ on & 1 }))
			fz_fail(f, "SET_%s %d: %s",
				on < 2 ? "RECONCILE" : "SWAP_MAPPER", on & 1,
				strerror(errno));
		break;
	case 2:
		on = chance(f, 50) ? 2 : -1 - (int)rnd_below(f, 100);
		if (!ioctl(fd, VHOST_BLK_SET_RECONCILE, &on) ||
		    errno != EINVAL)
			fz_fail(f, "SET_RECONCILE %d: not EINVAL", on);
		break;
	case 3:
		ret = ioctl(fd, VHOST_BLK_GET_DISK_ID, &id);
		if (ret || id != (f->attached ? DISK_ID : 0))
			fz_fail(f, "GET_DISK_ID: %d, id 0x%llx", ret,
				(unsigned long long)id);
		break;
	case 4:
		id = rnd(f) & ~VHOST_BLK_DISK_ID_DERIVED;
		if (!ioctl(fd, VHOST_BLK_SET_DISK_ID, &id) || errno != EBUSY)
			fz_fail(f, "SET_DISK_ID while attached: not EBUSY");
		break;
	case 5:
		ret = ioctl(fd, VHOST_GET_FEATURES, &got);
		if (ret || !(got & (1ULL << VIRTIO_F_VERSION_1)))
			fz_fail(f, "GET_FEATURES: %d", ret);
		break;
	case 6: {
		/* Hostile pointers: EFAULT, nothing else. */
		static const unsigned long cmds[] = {
			VHOST_BLK_SET_BACKEND, VHOST_BLK_SET_SERIAL,
			VHOST_BLK_SET_DISK_ID, VHOST_BLK_GET_DISK_ID,
			VHOST_BLK_SET_RECONCILE, VHOST_GET_FEATURES,
			VHOST_SET_FEATURES, VHOST_BLK_SET_DISK_IDENTITY,
			VHOST_BLK_SET_SWAP_MAPPER,
		};
		unsigned long cmd = cmds[rnd_below(f, ARRAY_SIZE(cmds))];
		void *bad = chance(f, 50) ? NULL : (void *)1;

		if (!ioctl(fd, cmd, bad) || errno != EFAULT)
			fz_fail(f, "ioctl 0x%lx with a bad pointer: %s", cmd,
				strerror(errno));
		break;
	}
	default: {
		/* Unknown commands and known ones with another size. */
		__u8 arg[256];
		unsigned long cmd;

		memset(arg, 0, sizeof(arg));
		cmd = _IOC(rnd_below(f, 4), VHOST_VIRTIO,
			   chance(f, 50) ? 0xf0 + rnd_below(f, 16) :
			   0x80 + rnd_below(f, 0x60),
			   rnd_below(f, sizeof(arg)));
		/* Skip the real ones: with a zeroed argument they act. */
		if (cmd == VHOST_BLK_SET_BACKEND ||
		    cmd == VHOST_BLK_SET_SERIAL ||
		    cmd == VHOST_BLK_SET_DISK_ID ||
		    cmd == VHOST_BLK_GET_DISK_ID ||
		    cmd == VHOST_BLK_SET_RECONCILE ||
		    cmd == VHOST_BLK_SET_SWAP_MAPPER ||
		    cmd == VHOST_BLK_SET_DISK_IDENTITY)
			break;
		ioctl(fd, cmd, arg);
		break;
	}
	}
}

/* One random ioctl on a scratch device, in any order, any arguments. */
static void scratch_ioctl(struct fuzz *f, int fd, int efd, int file_fd)
{
	static const unsigned int nums[] = {
		0, 1, 2, 3, 64, 256, 1024, 32768, 65535, 65536,
	};
	static const unsigned long state_cmds[] = {
		VHOST_SET_VRING_NUM, VHOST_SET_VRING_BASE, VHOST_GET_VRING_BASE,
	};
	static const unsigned long file_cmds[] = {
		VHOST_SET_VRING_KICK, VHOST_SET_VRING_CALL, VHOST_SET_VRING_ERR,
	};
	__u8 *mem = f->scratch;
	union {
		struct vhost_vring_state state;
		struct vhost_vring_file file;
		struct vhost_vring_addr addr;
		struct vhost_blk_disk_identity ident;
		struct {
			struct vhost_memory mem;
			struct vhost_memory_region regions[4];
		} table;
		__u8 raw[4096];
		__u64 u64;
		int i;
	} a;
	int fds[] = { efd, -1, file_fd, 12345, 0 };
	unsigned int i;
	unsigned long cmd = 0;

	memset(&a, 0, sizeof(a));
	switch (rnd_below(f, 19)) {
	case 0:
		cmd = VHOST_SET_OWNER;
		break;
	case 1:
		cmd = VHOST_RESET_OWNER;
		break;
	case 2:
		cmd = VHOST_GET_FEATURES;
		break;
	case 3:
		cmd = VHOST_SET_FEATURES;
		a.u64 = chance(f, 70) ? features & rnd(f) :
			1ULL << rnd_below(f, 64);
		break;
	case 4:
		cmd = VHOST_SET_MEM_TABLE;
		a.table.mem.nregions = chance(f, 90) ? rnd_below(f, 5) :
				       (__u32)rnd(f);
		for (i = 0; i < 4; i++) {
			struct vhost_memory_region *reg = &a.table.regions[i];
			__u64 off = rnd_below(f, SCRATCH_SIZE);

			reg->guest_phys_addr = chance(f, 80) ?
					       rnd_below(f, 4) * SCRATCH_SIZE :
					       rnd(f);
			/*
			 * Never past the scratch memory: the device would
			 * write guest buffers there.
			 */
			reg->memory_size = chance(f, 80) ?
					   SCRATCH_SIZE - off :
					   rnd_below(f, SCRATCH_SIZE - off);
			reg->userspace_addr = (uintptr_t)mem + off;
			if (chance(f, 10))
				reg->userspace_addr = 0xffff888000000000ULL;
		}
		break;
	case 5:
	case 6:
	case 7:
		cmd = state_cmds[rnd_below(f, ARRAY_SIZE(state_cmds))];
		a.state.index = chance(f, 80) ? rnd_below(f, 10) : rnd(f);
		a.state.num = nums[rnd_below(f, ARRAY_SIZE(nums))];
		break;
	case 8:
		cmd = VHOST_SET_VRING_ADDR;
		a.addr.index = chance(f, 80) ? rnd_below(f, 10) : rnd(f);
		a.addr.flags = chance(f, 90) ? 0 : rnd(f);
		/* Rings the device may write: in scratch memory only. */
		a.addr.desc_user_addr = (uintptr_t)mem +
					rnd_below(f, SCRATCH_SIZE / 2);
		a.addr.avail_user_addr = (uintptr_t)mem +
					 rnd_below(f, SCRATCH_SIZE / 2);
		a.addr.used_user_addr = (uintptr_t)mem +
					rnd_below(f, SCRATCH_SIZE / 2);
		if (chance(f, 50)) {
			a.addr.desc_user_addr &= ~15ULL;
			a.addr.avail_user_addr &= ~1ULL;
			a.addr.used_user_addr &= ~3ULL;
		}
		if (chance(f, 10))
			a.addr.used_user_addr = 0xffff888000000000ULL;
		break;
	case 9:
		cmd = file_cmds[rnd_below(f, ARRAY_SIZE(file_cmds))];
		a.file.index = chance(f, 80) ? rnd_below(f, 10) : rnd(f);
		a.file.fd = fds[rnd_below(f, ARRAY_SIZE(fds))];
		break;
	case 10:
		cmd = VHOST_BLK_SET_BACKEND;
		a.file.index = rnd(f);
		a.file.fd = fds[rnd_below(f, ARRAY_SIZE(fds))];
		break;
	case 11:
		cmd = VHOST_BLK_SET_SERIAL;
		for (i = 0; i < VHOST_BLK_SERIAL_BYTES; i++)
			a.raw[i] = rnd(f);
		break;
	case 12:
		cmd = chance(f, 50) ? VHOST_BLK_SET_DISK_ID :
		      VHOST_BLK_GET_DISK_ID;
		/* Never ours: another device must not take its references. */
		a.u64 = chance(f, 30) ? 0 : rnd(f) | VHOST_BLK_DISK_ID_DERIVED;
		if (chance(f, 30))
			a.u64 = 0x5c7a0000 + rnd_below(f, 4);
		break;
	case 13:
		cmd = VHOST_BLK_SET_DISK_IDENTITY;
		a.ident.disk_id = 0x5c7a0000 + rnd_below(f, 4);
		if (chance(f, 70))
			a.ident.token[rnd_below(f, VHOST_BLK_TOKEN_BYTES)] = 1;
		break;
	case 14:
		cmd = VHOST_BLK_SET_RECONCILE;
		a.i = (int)rnd_below(f, 4) - 1;
		break;
	case 15:
		cmd = chance(f, 50) ? VHOST_GET_BACKEND_FEATURES :
		      VHOST_SET_BACKEND_FEATURES;
		a.u64 = chance(f, 50) ? 0 : rnd(f);
		break;
	case 16: {
		/* Kick: whatever is in the scratch rings gets served. */
		__u64 one = 1;

		for (i = 0; i < SCRATCH_SIZE / 8; i++)
			((__u64 *)mem)[i] = chance(f, 50) ? 0 : rnd(f);
		if (write(efd, &one, sizeof(one)) != sizeof(one))
			fz_fail(f, "eventfd write");
		return;
	}
	case 17: {
		/* A known number with another size or direction. */
		static const unsigned int known[] = {
			0xFF, 0xFE, 0xF0, 0xF1, 0xF2, 0xF3, 0x00, 0x10, 0x11,
		};
		unsigned int nr = known[rnd_below(f, ARRAY_SIZE(known))];

		cmd = _IOC(rnd_below(f, 4), VHOST_VIRTIO, nr,
			   rnd_below(f, 512));
		for (i = 0; i < 512; i++)
			a.raw[i] = chance(f, 50) ? 0 : rnd(f);
		break;
	}
	default:
		cmd = _IOC(rnd_below(f, 4), chance(f, 70) ? VHOST_VIRTIO :
			   rnd_below(f, 256), rnd_below(f, 256),
			   rnd_below(f, 4096));
		break;
	}
	ioctl(fd, cmd, arg_ptr(f, &a));
}

/*
 * A scratch /dev/vhost-blk: random ioctl sequences (setup out of order,
 * hostile sizes, indices and fds, kicks of garbage rings), then closed.
 * Its memory, rings and backend are scratch ones: whatever it serves
 * cannot touch the fuzzer's guest or disk.
 */
static void op_scratch_ioctl(struct fuzz *f)
{
	unsigned int i, n = 1 + rnd_below(f, 40);
	int fd, efd, file_fd;

	fd = open("/dev/vhost-blk", O_RDWR | O_CLOEXEC);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	file_fd = open(SCRATCH_FILE, chance(f, 70) ? O_RDWR : O_RDONLY);
	if (fd < 0 || efd < 0 || file_fd < 0) {
		fz_fail(f, "scratch device: %s", strerror(errno));
		return;
	}
	if (chance(f, 70))
		ioctl(fd, VHOST_SET_OWNER, NULL);
	for (i = 0; i < n; i++)
		scratch_ioctl(f, fd, efd, file_fd);
	/* Close with whatever it has in flight. */
	close(fd);
	close(efd);
	close(file_fd);
}

/* /dev/tesseract: the answers its ABI gives. */
static void op_control_ioctl(struct fuzz *f)
{
	static const unsigned long ctl_cmds[] = {
		TESSERACT_DISK_INFO, TESSERACT_FLATTEN, TESSERACT_DISK_FORGET,
	};
	struct tesseract_disk_info info = { .disk_id = DISK_ID };
	struct tesseract_flatten fl = { .disk_id = DISK_ID };
	struct tesseract_disk_forget fg = { .disk_id = DISK_ID };
	__u64 other = 0x100000 + rnd_below(f, 1ULL << 40);
	int fd = f->ctl_fd, ret;
	unsigned long cmd;
	__u8 raw[256];
	void *arg;

	switch (rnd_below(f, 7)) {
	case 0:
		ret = ioctl(fd, TESSERACT_DISK_INFO, &info);
		if (ret || !(info.flags & TESSERACT_DISK_ATTACHED) !=
			   !f->attached)
			fz_fail(f, "DISK_INFO: %d, flags 0x%llx", ret,
				(unsigned long long)info.flags);
		if ((long long)info.references > f->max_refs)
			f->max_refs = info.references;
		break;
	case 1:
		ret = ioctl(fd, TESSERACT_FLATTEN, &fl);
		if (ret) {
			fz_fail(f, "FLATTEN: %s", strerror(errno));
			break;
		}
		ret = ioctl(fd, TESSERACT_DISK_INFO, &info);
		if (ret || info.references)
			fz_fail(f, "after FLATTEN: %d, %llu references", ret,
				(unsigned long long)info.references);
		break;
	case 2:
		if (!ioctl(fd, TESSERACT_DISK_FORGET, &fg) || errno != EBUSY)
			fz_fail(f, "FORGET of an attached disk: not EBUSY");
		break;
	case 3:
		info.disk_id = other;
		fl.disk_id = other;
		fg.disk_id = other;
		cmd = ctl_cmds[rnd_below(f, ARRAY_SIZE(ctl_cmds))];
		arg = cmd == TESSERACT_DISK_INFO ? (void *)&info :
		      cmd == TESSERACT_FLATTEN ? (void *)&fl : (void *)&fg;
		if (!ioctl(fd, cmd, arg) || errno != ENOENT)
			fz_fail(f, "ioctl 0x%lx of unknown disk 0x%llx: %s",
				cmd, (unsigned long long)other,
				strerror(errno));
		break;
	case 4:
		cmd = ctl_cmds[rnd_below(f, ARRAY_SIZE(ctl_cmds))];
		if (!ioctl(fd, cmd, chance(f, 50) ? NULL : (void *)1) ||
		    errno != EFAULT)
			fz_fail(f, "ioctl 0x%lx with a bad pointer: %s", cmd,
				strerror(errno));
		break;
	default:
		/* Wrong sizes, directions, numbers. */
		memset(raw, 0, sizeof(raw));
		memcpy(raw, &other, sizeof(other));
		do {
			cmd = _IOC(rnd_below(f, 4), chance(f, 80) ?
				   TESSERACT_IOC_MAGIC : rnd_below(f, 256),
				   rnd_below(f, 8), rnd_below(f, sizeof(raw)));
		} while (cmd == TESSERACT_DISK_INFO ||
			 cmd == TESSERACT_FLATTEN ||
			 cmd == TESSERACT_DISK_FORGET);
		if (!ioctl(fd, cmd, arg_ptr(f, raw)))
			fz_fail(f, "ioctl 0x%lx on %s succeeded", cmd, CONTROL);
		break;
	}
}

/* Module parameters that change the paths requests take. */
static void op_params(struct fuzz *f)
{
	static const char * const refs[] = { "0", "0", "1", "16", "256" };
	const char *on = chance(f, 50) ? "1" : "0";
	int ret;

	switch (rnd_below(f, 4)) {
	case 0:
		ret = ts_param_set("reconcile", on);
		break;
	case 1:
		ret = ts_param_set("cleaner", on);
		break;
	case 2:
		ret = ts_param_set("compactor", on);
		break;
	default:
		ret = ts_param_set("disk_max_refs",
				   refs[rnd_below(f, ARRAY_SIZE(refs))]);
		break;
	}
	if (ret)
		fz_fail(f, "module parameter: %d", ret);
}

/*
 * Detach and attach the disk again, with a request kicked meanwhile that
 * must be served once it is back; or close the device and open a new one
 * (the disk's references come back with its id).
 */
static void op_reattach(struct fuzz *f)
{
	struct fz_req r;
	int ret;

	if (chance(f, 30)) {
		ret = fz_reopen(f);
		if (ret)
			fz_fail(f, "reopen: %d", ret);
		return;
	}
	fz_detach(f);
	pick_req(f, &r, chance(f, 50) ? K_IN : K_OUT);
	place_req(f, &r, 0);
	fix_layout(f, &r, 0);
	predict(&r);
	if (chance(f, 50) && start_batch(f, &r, 1))
		return;
	ret = fz_attach(f, chance(f, 50));
	if (ret) {
		fz_fail(f, "attach again: %d", ret);
		return;
	}
	if (f->d.q[r.qi].in_flight)
		finish_batch(f, &r, 1);
}

/* Chains no driver writes: each must break its queue or fail. */
static void op_hostile_chain(struct fuzz *f)
{
	struct vring_desc c[8];
	unsigned int qi = rnd_below(f, NQUEUES), n = 0, kind;
	struct vblk_queue *q = &f->d.q[qi];
	__u64 hdr = (uintptr_t)f->hdr[0], st = (uintptr_t)f->status[0];
	__u64 buf = (uintptr_t)f->win[0];
	bool indirect = false;
	__u32 table_len = 0;
	struct fz_req check;
	double deadline;
	__u64 one = 1;
	int ret;

	memset(c, 0, sizeof(c));
	memset(f->hdr[0], 0, 16);
	((struct virtio_blk_outhdr *)f->hdr[0])->type =
		htole32(rnd_below(f, 2));
	kind = rnd_below(f, 11);
	fz_note(f, " kind %u q%u", kind, qi);
	c[n++] = (struct vring_desc){ hdr, 16, VRING_DESC_F_NEXT, 1 };
	switch (kind) {
	case 0:		/* no status byte */
		c[n++] = (struct vring_desc){ buf, 512, 0, 0 };
		break;
	case 1:		/* a loop */
		c[n++] = (struct vring_desc){ buf, 512, VRING_DESC_F_NEXT |
					      VRING_DESC_F_WRITE, 0 };
		break;
	case 2:		/* next past the ring */
		c[n++] = (struct vring_desc){ buf, 512, VRING_DESC_F_NEXT |
					      VRING_DESC_F_WRITE,
					      QSIZE + rnd_below(f, 1000) };
		break;
	case 3:		/* outside guest memory */
		c[n++] = (struct vring_desc){ (uintptr_t)f->scratch, 4096,
					      VRING_DESC_F_NEXT |
					      VRING_DESC_F_WRITE, 2 };
		c[n++] = (struct vring_desc){ st, 1, VRING_DESC_F_WRITE, 0 };
		break;
	case 4:		/* readable after writable */
		c[n++] = (struct vring_desc){ st, 1, VRING_DESC_F_NEXT |
					      VRING_DESC_F_WRITE, 2 };
		c[n++] = (struct vring_desc){ buf, 512, 0, 0 };
		break;
	case 5:		/* nested indirect */
		indirect = true;
		c[n++] = (struct vring_desc){ buf, 64, VRING_DESC_F_INDIRECT |
					      VRING_DESC_F_NEXT, 2 };
		c[n++] = (struct vring_desc){ st, 1, VRING_DESC_F_WRITE, 0 };
		break;
	case 6:		/* an indirect table of a bad length */
		indirect = true;
		c[n++] = (struct vring_desc){ st, 1, VRING_DESC_F_WRITE, 0 };
		table_len = chance(f, 50) ? 2 * 16 + 1 + rnd_below(f, 15) :
			    0x10000 * 16;
		break;
	case 7:		/* lengths that overflow 32 bits */
		c[n++] = (struct vring_desc){ (uintptr_t)f->d.ram, 0xffffffff,
					      VRING_DESC_F_NEXT, 2 };
		c[n++] = (struct vring_desc){ (uintptr_t)f->d.ram, 0xffffffff,
					      VRING_DESC_F_NEXT, 3 };
		c[n++] = (struct vring_desc){ st, 1, VRING_DESC_F_WRITE, 0 };
		break;
	case 8:		/* a status that is not writable */
		c[n++] = (struct vring_desc){ st, 1, 0, 0 };
		break;
	default:
		break;
	}
	if (kind == 9) {	/* avail->idx far ahead */
		__atomic_store_n(&q->vring.avail->idx,
				 htole16(q->avail_idx + QSIZE + 5),
				 __ATOMIC_RELEASE);
	} else if (kind == 10) {	/* a head past the ring */
		vblk_post_head(&f->d, qi, QSIZE + rnd_below(f, 1000));
	} else {
		*f->status[0] = 0xee;
		ret = vblk_post_raw(&f->d, qi, c, n, indirect, table_len, NULL);
		if (ret < 0) {
			fz_fail(f, "vblk_post_raw: %d", ret);
			return;
		}
	}
	if (write(q->kick_fd, &one, sizeof(one)) != sizeof(one)) {
		fz_fail(f, "kick");
		return;
	}
	/* Broken, or answered with an error: never OK, never a hang. */
	deadline = ts_now() + TIMEOUT_MS / 1000;
	while (ts_now() < deadline) {
		__u16 used = le16toh(__atomic_load_n(&q->vring.used->idx,
						     __ATOMIC_ACQUIRE));

		if (used != q->last_used) {
			if (kind < 9 && *f->status[0] == VIRTIO_BLK_S_OK)
				fz_fail(f, "hostile chain %u: status OK", kind);
			break;
		}
		if (vblk_queue_error(&f->d, qi))
			break;
		usleep(1000);
	}
	if (ts_now() >= deadline)
		fz_fail(f, "hostile chain %u: neither answered nor broken",
			kind);
	/* The other queue goes on serving. */
	memset(&check, 0, sizeof(check));
	check.kind = K_IN;
	check.type = VIRTIO_BLK_T_IN;
	check.qi = !qi;
	check.len = PAGE;
	check.nsegs = 1;
	check.seg[0] = PAGE;
	check.sector = rnd_below(f, CAP - 8);
	check.buf = f->win[1];
	check.hdr = f->hdr[1];
	check.status = f->status[1];
	((struct virtio_blk_outhdr *)check.hdr)->type = htole32(check.type);
	((struct virtio_blk_outhdr *)check.hdr)->sector = htole64(check.sector);
	predict(&check);
	if (!f->failed && !start_batch(f, &check, 1))
		finish_batch(f, &check, 1);
	/* The broken queue needs a new device. */
	ret = fz_reopen(f);
	if (ret)
		fz_fail(f, "reopen: %d", ret);
}

/* ---- The run ---- */

static enum op_kind pick_op(struct fuzz *f)
{
	unsigned int total = 0, i;
	__u64 x;

	for (i = 0; i < OP_NR; i++)
		total += op_weights[i];
	x = rnd_below(f, total);
	for (i = 0; i < OP_NR; i++) {
		if (x < op_weights[i])
			return i;
		x -= op_weights[i];
	}
	return OP_BATCH;
}

static void run_op(struct fuzz *f, enum op_kind kind)
{
	f->kind = kind;
	f->count[kind]++;
	/* A fresh entry (setup may have noted things as operation 0). */
	f->history[f->op % FZ_HISTORY].used = false;
	fz_note(f, "%s", op_names[kind]);
	switch (kind) {
	case OP_BATCH:
		op_batch(f);
		break;
	case OP_VERIFY:
		op_verify(f);
		break;
	case OP_PERTURB:
		op_perturb(f);
		break;
	case OP_BACKGROUND:
		op_background(f);
		break;
	case OP_DEV_IOCTL:
		op_dev_ioctl(f);
		break;
	case OP_SCRATCH_IOCTL:
		op_scratch_ioctl(f);
		break;
	case OP_CONTROL_IOCTL:
		op_control_ioctl(f);
		break;
	case OP_PARAMS:
		op_params(f);
		break;
	case OP_REATTACH:
		op_reattach(f);
		break;
	default:
		op_hostile_chain(f);
		break;
	}
}

/* The whole disk, read back and compared: 0 or -1. */
static int check_disk(struct fuzz *f)
{
	__u64 s, n;
	int st;

	for (s = 0; s < CAP && !f->failed; s += n) {
		n = CAP - s < 2048 ? CAP - s : 2048;
		memset(f->win[0], 0xa5, n * SECTOR);
		st = vblk_rw(&f->d, 0, VIRTIO_BLK_T_IN, s, f->win[0],
			     n * SECTOR, 0, false);
		if (st) {
			fz_fail(f, "final read at sector %llu: status %d",
				(unsigned long long)s, st);
			break;
		}
		model_check(f, NULL, f->win[0], s, n * SECTOR);
	}
	return f->failed ? -1 : 0;
}

static __u64 env_u64(const char *name, __u64 def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static int setup(struct fuzz *f)
{
	char table[128];
	int fd, ret;

	f->disk_fd = -1;
	f->ctl_fd = -1;
	f->next_tag = 1;
	f->model = calloc(CAP, sizeof(*f->model));
	f->scratch = mmap(NULL, SCRATCH_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!f->model || f->scratch == MAP_FAILED)
		return -ENOMEM;
	fd = open(SCRATCH_FILE, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 1 << 20))
		return -errno;
	close(fd);
	ret = ts_swap_up(STORE_PARAMS);
	if (ret)
		return ret;
	ts_param_set("cleaner_idle_ms", "0");
	ts_param_set("cleaner_rate_kib", "0");
	snprintf(table, sizeof(table), "0 %llu linear %s 0",
		 (unsigned long long)CAP, IMAGE);
	if (ts_dm_create(DM_NAME, table, f->disk, sizeof(f->disk)))
		return -EIO;
	f->ctl_fd = open(CONTROL, O_RDWR | O_CLOEXEC);
	if (f->ctl_fd < 0)
		return -errno;
	/* Guest RAM is charged to the group that first touches it. */
	ret = ts_cgroup_enter(CGROUP);
	if (ret)
		return ret;
	ret = fz_open(f);
	if (ret)
		return ret;
	/* A known start: zeroes everywhere. */
	ret = vblk_discard(&f->d, VIRTIO_BLK_T_WRITE_ZEROES, 0, CAP, 0);
	return ret ? -EIO : 0;
}

static void teardown(struct fuzz *f)
{
	if (f->d.fd >= 0 && f->attached)
		vblk_discard(&f->d, VIRTIO_BLK_T_DISCARD, 0, CAP, 0);
	fz_close(f);
	ts_cgroup_leave(CGROUP);
	if (f->ctl_fd >= 0)
		close(f->ctl_fd);
	ts_swap_down();
	ts_dm_remove(DM_NAME);
	unlink(SCRATCH_FILE);
}

int main(void)
{
	static struct fuzz fz;
	struct fuzz *f = &fz;
	__u64 seconds = env_u64("TS_FUZZ_SECONDS", 0);
	__u64 ops = env_u64("TS_FUZZ_OPS", env_u64("TS_SOAK", 0) == 1 ?
			    10 * SHORT_OPS : SHORT_OPS);
	double start, elapsed;
	unsigned int i;
	int ret;

	ksft_print_header();
	ksft_set_plan(1);
	f->seed = env_u64("TS_FUZZ_SEED", 0);
	if (!f->seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		f->seed = ((__u64)ts.tv_sec << 32) ^ ts.tv_nsec ^ getpid();
	}
	f->rng = f->seed | 1;
	ksft_print_msg("seed=0x%llx ops=%llu seconds=%llu\n",
		       (unsigned long long)f->seed, (unsigned long long)ops,
		       (unsigned long long)seconds);
	vblk_init(&f->d);

	ret = setup(f);
	if (ret) {
		teardown(f);
		ksft_exit_fail_msg("setup: %d\n", ret);
	}
	check_verify_shapes(f);
	start = ts_now();
	for (f->op = 0; !f->failed; f->op++) {
		elapsed = ts_now() - start;
		if (seconds ? elapsed >= seconds : f->op >= ops)
			break;
		run_op(f, pick_op(f));
	}
	elapsed = ts_now() - start;
	if (!f->failed)
		check_disk(f);

	ksft_print_msg("tesseract-fuzz: seconds=%.0f ops=%lu\n", elapsed,
		       f->op);
	for (i = 0; i < OP_NR; i++)
		ksft_print_msg("  %-16s %lu\n", op_names[i], f->count[i]);
	ksft_print_msg("requests %lu (%lu OK), %lu sectors checked, %.1f ops/s\n",
		       f->reqs, f->status_ok, f->sectors_checked,
		       elapsed > 0 ? f->op / elapsed : 0.0);
	teardown(f);
	ksft_print_msg("pages reconciled %lld, most references seen %lld\n",
		       f->reconciled, f->max_refs);
	ksft_test_result(!f->failed, "fuzz_vhost_blk seed=0x%llx ops=%lu\n",
			 (unsigned long long)f->seed, f->op);
	if (f->failed)
		ksft_exit_fail();
	ksft_exit_pass();
}
