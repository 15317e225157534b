// SPDX-License-Identifier: GPL-2.0
/*
 * tesseract-vhost-user-blk: serve one disk image to QEMU's (or any
 * vhost-user front-end's) vhost-user-blk device through the kernel's
 * /dev/vhost-blk. The daemon speaks the control plane of vhost-user on a
 * Unix socket and hands the data plane to the kernel: guest requests never
 * pass through it.
 *
 *   tesseract-vhost-user-blk --socket-path=PATH | --fd=N
 *                            --blk-file=IMAGE [--read-only]
 *                            [--num-queues=N] [--cache=none|writeback]
 *                            [--serial=S] [--disk-id=N [--disk-token=HEX]]
 *                            [--no-reconcile] [--socket-mode=OCTAL]
 *                            [--device=/dev/vhost-blk]
 *   tesseract-vhost-user-blk --print-capabilities
 *
 * One daemon serves one image, to one front-end at a time; when the
 * front-end goes, the next connection is served. The image is the
 * daemon's alone (flock, or O_EXCL for a block device) for its life: a
 * second daemon on the same image waits,
 * which is also how a restarted daemon waits for the kernel to finish the
 * requests of its predecessor. SIGTERM and SIGINT end it cleanly: the
 * kernel completes every request in flight before the socket closes.
 * The program follows the back-end conventions of the vhost-user
 * specification: it does not daemonize, and logs to standard error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#include "daemon.h"

#define EXIT_USAGE	64

static int stop_requested;

bool vu_stopping(void)
{
	return __atomic_load_n(&stop_requested, __ATOMIC_RELAXED);
}

static void vu_vlog(const char *fmt, va_list ap)
{
	fputs("tesseract-vhost-user-blk: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void vu_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vu_vlog(fmt, ap);
	va_end(ap);
}

/* The signal mask while waiting: SIGTERM and SIGINT let in. */
static sigset_t wait_mask;

int vu_wait(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct timespec ts = {
		.tv_sec = timeout_ms / 1000,
		.tv_nsec = (long)(timeout_ms % 1000) * 1000000,
	};
	int n;

	for (;;) {
		if (vu_stopping())
			return -1;
		n = ppoll(fd >= 0 ? &pfd : NULL, fd >= 0, timeout_ms < 0 ?
			  NULL : &ts, &wait_mask);
		if (n >= 0)
			return n > 0;
		if (errno != EINTR)
			return -1;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	__atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED);
}

static void print_usage(FILE *f)
{
	fputs("usage: tesseract-vhost-user-blk --socket-path=PATH | --fd=N --blk-file=IMAGE\n"
	      "         [--read-only] [--num-queues=N] [--cache=none|writeback]\n"
	      "         [--serial=S] [--disk-id=N [--disk-token=HEX]] [--no-reconcile]\n"
	      "         [--socket-mode=OCTAL] [--device=PATH]\n"
	      "       tesseract-vhost-user-blk --print-capabilities\n", f);
}

static int bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vu_vlog(fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

static int parse_u64(const char *s, __u64 *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return -1;
	*out = v;
	return 0;
}

static int parse_token(const char *hex, __u8 *token)
{
	unsigned int i;

	if (strlen(hex) != 2 * VHOST_BLK_TOKEN_BYTES)
		return -1;
	for (i = 0; i < VHOST_BLK_TOKEN_BYTES; i++) {
		unsigned int byte;

		if (sscanf(hex + 2 * i, "%2x", &byte) != 1 ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i]) ||
		    !strchr("0123456789abcdefABCDEF", hex[2 * i + 1]))
			return -1;
		token[i] = byte;
	}
	return 0;
}

/*
 * The image is the daemon's alone while it runs, and stays so until the
 * kernel device that a previous daemon attached has completed everything
 * it took: a regular file is locked (flock), a block device opened
 * exclusively (O_EXCL, the kernel's claim across every node of the
 * device); both belong to the open file, which the kernel device holds
 * while attached and puts only after it drained. -1 on an error, 0 once
 * held, 1 if busy.
 */
static int claim_image(struct vu_disk *d, int flags, bool blockdev)
{
	if (blockdev) {
		d->image_fd = open(d->image_path, flags | O_EXCL);
		if (d->image_fd >= 0)
			return 0;
		return errno == EBUSY ? 1 : -1;
	}
	if (d->image_fd < 0) {
		d->image_fd = open(d->image_path, flags);
		if (d->image_fd < 0)
			return -1;
	}
	if (!flock(d->image_fd, LOCK_EX | LOCK_NB))
		return 0;
	return errno == EWOULDBLOCK ? 1 : -1;
}

/* Open and claim the image, and learn its size: once, at start. */
static int open_image(struct vu_disk *d)
{
	int flags = (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	bool waited = false;
	struct stat st;
	int ret;

	if (d->direct)
		flags |= O_DIRECT;
	if (stat(d->image_path, &st)) {
		vu_log("%s: %s", d->image_path, strerror(errno));
		return -1;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		vu_log("%s: neither a file nor a block device", d->image_path);
		return -1;
	}
	while ((ret = claim_image(d, flags, S_ISBLK(st.st_mode))) == 1) {
		if (!waited)
			vu_log("%s is in use by another back-end; waiting for it",
			       d->image_path);
		waited = true;
		if (vu_wait(-1, 100) < 0)
			return -1;
	}
	if (ret) {
		vu_log("%s: %s%s", d->image_path, strerror(errno),
		       errno == EINVAL && d->direct ?
		       " (its file system has no O_DIRECT: --cache=writeback)" : "");
		return -1;
	}
	if (waited)
		vu_log("%s: the other back-end is gone", d->image_path);

	if (fstat(d->image_fd, &st)) {
		vu_log("%s: %s", d->image_path, strerror(errno));
		return -1;
	}
	if (S_ISBLK(st.st_mode)) {
		int lbs;

		if (ioctl(d->image_fd, BLKGETSIZE64, &d->capacity) ||
		    ioctl(d->image_fd, BLKSSZGET, &lbs)) {
			vu_log("%s: %s", d->image_path, strerror(errno));
			return -1;
		}
		d->blk_size = lbs;
	} else {
		d->capacity = st.st_size;
		d->blk_size = 512;
	}
	if (d->capacity % 512)
		vu_log("%s: the guest does not see its last %llu bytes (not a sector)",
		       d->image_path, (unsigned long long)(d->capacity % 512));
	d->capacity -= d->capacity % 512;
	return 0;
}

static int listen_on(const char *path, mode_t mode)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		vu_log("%s: socket path too long", path);
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		vu_log("socket: %s", strerror(errno));
		return -1;
	}
	/* A socket file left by a daemon that died is ours to replace. */
	unlink(path);
	/* Created with the mode it keeps: no moment with wider access. */
	old_mask = umask(~mode & 0777);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		vu_log("%s: bind: %s", path, strerror(errno));
		umask(old_mask);
		close(fd);
		return -1;
	}
	umask(old_mask);
	if (listen(fd, 1)) {
		vu_log("%s: listen: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket-path", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, 'f' },
		{ "blk-file", required_argument, NULL, 'b' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "num-queues", required_argument, NULL, 'q' },
		{ "cache", required_argument, NULL, 'c' },
		{ "serial", required_argument, NULL, 'S' },
		{ "disk-id", required_argument, NULL, 'i' },
		{ "disk-token", required_argument, NULL, 't' },
		{ "no-reconcile", no_argument, NULL, 'R' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "device", required_argument, NULL, 'd' },
		{ "print-capabilities", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct vu_disk disk = {
		.num_queues = VHOST_BLK_MAX_QUEUES,
		.direct = true,
		.reconcile = -1,
		.vhost_dev = "/dev/vhost-blk",
		.image_fd = -1,
	};
	const char *socket_path = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t stop_signals;
	int listen_fd = -1, opt;
	bool by_path, by_fd;
	mode_t mode = 0600;
	__u64 v;

	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			socket_path = optarg;
			break;
		case 'f':
			if (parse_u64(optarg, &v) || v > INT_MAX)
				return bad("--fd=%s: not a descriptor", optarg);
			listen_fd = v;
			break;
		case 'b':
			disk.image_path = optarg;
			break;
		case 'r':
			disk.read_only = true;
			break;
		case 'q':
			if (parse_u64(optarg, &v) || !v ||
			    v > VHOST_BLK_MAX_QUEUES)
				return bad("--num-queues=%s: 1 to %d", optarg,
					   VHOST_BLK_MAX_QUEUES);
			disk.num_queues = v;
			break;
		case 'c':
			if (!strcmp(optarg, "none"))
				disk.direct = true;
			else if (!strcmp(optarg, "writeback"))
				disk.direct = false;
			else
				return bad("--cache=%s: none or writeback",
					   optarg);
			break;
		case 'S':
			if (strlen(optarg) > VHOST_BLK_SERIAL_BYTES)
				return bad("--serial: at most %d bytes",
					   VHOST_BLK_SERIAL_BYTES);
			memcpy(disk.serial, optarg, strlen(optarg));
			disk.has_serial = true;
			break;
		case 'i':
			if (parse_u64(optarg, &v) || !v ||
			    (v & VHOST_BLK_DISK_ID_DERIVED))
				return bad("--disk-id=%s: a number from 1 to 2^63-1",
					   optarg);
			disk.disk_id = v;
			break;
		case 't':
			if (parse_token(optarg, disk.token))
				return bad("--disk-token: %d hex digits",
					   2 * VHOST_BLK_TOKEN_BYTES);
			disk.has_token = true;
			break;
		case 'R':
			disk.reconcile = 0;
			break;
		case 'm':
			if (parse_u64(optarg, &v) || v > 0777)
				return bad("--socket-mode=%s: octal permissions",
					   optarg);
			mode = v;
			break;
		case 'd':
			disk.vhost_dev = optarg;
			break;
		case 'p':
			/* The specification's capabilities, for management. */
			puts("{\n  \"type\": \"block\",\n"
			     "  \"features\": [\n    \"read-only\",\n"
			     "    \"blk-file\"\n  ]\n}");
			return 0;
		case 'h':
			print_usage(stdout);
			return 0;
		default:
			print_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return bad("unexpected argument %s", argv[optind]);
	if (!disk.image_path)
		return bad("--blk-file is required");
	by_path = socket_path;
	by_fd = listen_fd >= 0;
	if (by_path == by_fd)
		return bad("one of --socket-path and --fd is required");
	if (disk.has_token && !disk.disk_id)
		return bad("--disk-token needs --disk-id");
	/*
	 * Segments a request may carry. QEMU's virtio-blk uses its ring size
	 * less two (the header and the status); 128 is its default ring.
	 */
	disk.seg_max = 126;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Let in only while waiting: vu_wait(). */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGINT);
	sigprocmask(SIG_BLOCK, &stop_signals, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);

	if (open_image(&disk))
		return 1;
	if (socket_path) {
		listen_fd = listen_on(socket_path, mode);
		if (listen_fd < 0)
			return 1;
	}
	vu_log("serving %s (%llu bytes%s) on %s", disk.image_path,
	       (unsigned long long)disk.capacity,
	       disk.read_only ? ", read-only" : "",
	       socket_path ? socket_path : "the given socket");

	while (vu_wait(listen_fd, -1) > 0) {
		int sock;

		sock = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			vu_log("accept: %s", strerror(errno));
			break;
		}
		vu_log("a front-end connected");
		vu_serve(&disk, sock);
		close(sock);
	}
	close(listen_fd);
	if (socket_path)
		unlink(socket_path);
	close(disk.image_fd);
	vu_log("stopped");
	return 0;
}
