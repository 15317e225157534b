// SPDX-License-Identifier: GPL-2.0
/*
 * nested-dp DEVICE OFFSET PAGES SIGNAL: the guest's half of double paging,
 * run by tools/vm/nested-init in the nested guest of selftests/
 * vhost_user_blk.c (linked statically into its initramfs).
 *
 * It fills PAGES pages of memory, each with its own tag, says so on its
 * standard output, and waits until the host (which meanwhile swaps the
 * guest's RAM out) writes "go" at byte SIGNAL of DEVICE. Then it writes the
 * pages to DEVICE at OFFSET with direct I/O and flushes; on "check" (the
 * host has read its counters) it reads them back and says whether they
 * are right; and it waits for "end" (the host flattens the disk and reads
 * the image meanwhile) before it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE		4096UL
#define WAIT_SECONDS	900

/* Page @i: its tag over and over, as the host test checks it. */
static void fill(char *page, unsigned long i)
{
	char tag[32];
	int len = snprintf(tag, sizeof(tag), "tesseract-dp %08lu\n", i);
	size_t off;

	for (off = 0; off + len <= PAGE; off += len)
		memcpy(page + off, tag, len);
	memset(page + off, '.', PAGE - off);
}

/* Wait until @word is at @signal of @fd: 0, or -1 after WAIT_SECONDS. */
static int wait_for(int fd, off_t signal, const char *word, char *buf)
{
	const struct timespec nap = { 0, 200 * 1000 * 1000 };
	int i;

	for (i = 0; i < WAIT_SECONDS * 5; i++) {
		if (pread(fd, buf, PAGE, signal) == (ssize_t)PAGE &&
		    !strncmp(buf, word, strlen(word)))
			return 0;
		nanosleep(&nap, NULL);
	}
	return -1;
}

int main(int argc, char **argv)
{
	unsigned long pages, i, bad = 0;
	off_t offset, signal;
	char *buf, *back, *sig;
	size_t len;
	int fd;

	if (argc != 5) {
		fprintf(stderr, "usage: nested-dp DEVICE OFFSET PAGES SIGNAL\n");
		return 2;
	}
	offset = strtoll(argv[2], NULL, 0);
	pages = strtoul(argv[3], NULL, 0);
	signal = strtoll(argv[4], NULL, 0);
	len = pages * PAGE;
	fd = open(argv[1], O_RDWR | O_DIRECT);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	back = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sig = aligned_alloc(PAGE, PAGE);
	if (fd < 0 || buf == MAP_FAILED || back == MAP_FAILED || !sig) {
		printf("nested: dp setup FAILED: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < pages; i++)
		fill(buf + i * PAGE, i);
	printf("nested: dp filled %lu pages\n", pages);
	fflush(stdout);

	if (wait_for(fd, signal, "go", sig)) {
		printf("nested: dp no go\n");
		return 1;
	}
	if (pwrite(fd, buf, len, offset) != (ssize_t)len || fdatasync(fd)) {
		printf("nested: dp write FAILED: %s\n", strerror(errno));
		return 1;
	}
	printf("nested: dp written\n");
	fflush(stdout);
	if (wait_for(fd, signal, "check", sig)) {
		printf("nested: dp no check\n");
		return 1;
	}
	if (pread(fd, back, len, offset) != (ssize_t)len) {
		printf("nested: dp read FAILED: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < pages; i++)
		bad += !!memcmp(back + i * PAGE, buf + i * PAGE, PAGE);
	printf(bad ? "nested: dp readback FAILED: %lu pages\n" :
		     "nested: dp readback ok\n", bad);
	fflush(stdout);
	if (wait_for(fd, signal, "end", sig))
		printf("nested: dp no end\n");
	return bad ? 1 : 0;
}
