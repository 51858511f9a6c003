/* virtio-blk's image file: opening, locking, sizing, O_DIRECT's block size; see blk_image.h. */
#include "devices/virtio/blk_image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/log.h"

/*
 * Opens the image, with O_DIRECT for cache=none where the filesystem allows it; *@direct says
 * whether it did.
 */
int blk_image_open(struct blk_dev *b, const struct blk_options *opts, bool *direct, char *err,
                   size_t errlen)
{
	/* O_NONBLOCK: a FIFO must not block the open (lock_and_size refuses it, then clears it). */
	int flags = (opts->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK;

	if (opts->cache == BLK_CACHE_NONE) {
		b->fd = open(b->path, flags | O_DIRECT);
		if (b->fd < 0 && errno == EINVAL)
			log_warn("disk '%s': cache=none: the filesystem does not support O_DIRECT; "
			         "using the host page cache (cache=writeback)",
			         b->path);
	}
	*direct = b->fd >= 0;
	if (b->fd < 0)
		b->fd = open(b->path, flags);
	if (b->fd < 0) {
		int e = errno;

		snprintf(err, errlen, "disk '%s': %s%s", b->path, strerror(e),
		         !opts->read_only && (e == EACCES || e == EROFS)
		                 ? " (add ,ro for a read-only disk)"
		                 : "");
		return -e;
	}
	return 0;
}

/* Locks the image against other VMs and sizes it. */
int blk_image_lock_and_size(struct blk_dev *b, bool read_only, uint64_t *size, char *err,
                            size_t errlen)
{
	struct stat st;
	off_t end;

	if (fstat(b->fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		snprintf(err, errlen, "disk '%s': not a regular file or block device", b->path);
		return -EINVAL;
	}
	if (fcntl(b->fd, F_SETFL, fcntl(b->fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		int e = errno;

		snprintf(err, errlen, "disk '%s': fcntl: %s", b->path, strerror(e));
		return -e;
	}
	if (flock(b->fd, (read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		int e = errno;

		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "disk '%s': in use by another process (locked)",
			         b->path);
		else
			snprintf(err, errlen, "disk '%s': lock: %s", b->path, strerror(e));
		return -e;
	}
	end = lseek(b->fd, 0, SEEK_END);
	if (end < 0) {
		int e = errno;

		snprintf(err, errlen, "disk '%s': size: %s", b->path, strerror(e));
		return -e;
	}
	*size = (uint64_t)end;
	if (*size % BLK_SECTOR_SIZE && *size >= BLK_SECTOR_SIZE)
		log_warn("disk '%s': size %llu is not a multiple of 512; the guest sees %llu bytes",
		         b->path, (unsigned long long)*size,
		         (unsigned long long)ALIGN_DOWN(*size, BLK_SECTOR_SIZE));
	return 0;
}

/* Turns O_DIRECT off again (the page cache then takes any alignment), with a warning. */
static int drop_direct(struct blk_dev *b, const char *why, char *err, size_t errlen)
{
	int flags = fcntl(b->fd, F_GETFL);

	if (flags < 0 || fcntl(b->fd, F_SETFL, flags & ~O_DIRECT) < 0) {
		int e = errno;

		snprintf(err, errlen, "disk '%s': cache=none: %s", b->path, strerror(e));
		return -e;
	}
	log_warn("disk '%s': cache=none: %s; using the host page cache (cache=writeback)", b->path,
	         why);
	return 0;
}

/* A file's direct-I/O offset alignment (statx STATX_DIOALIGN, Linux 6.1; 0: no direct I/O). */
static uint32_t file_dio_alignment(int fd)
{
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN))
		return stx.stx_dio_offset_align;
#else
	(void)fd;
#endif
	return BLK_SECTOR_SIZE; /* the kernel does not say: what all take on 512-byte sectors */
}

/*
 * The alignment O_DIRECT needs for file offsets and lengths on the open image, or 0 when the
 * kernel says direct I/O does not work on it: a block device's logical block size, else the
 * file's direct-I/O offset alignment.
 */
static int direct_io_alignment(struct blk_dev *b, uint32_t *align, char *err, size_t errlen)
{
	struct stat st;
	int lbs = 0;

	if (fstat(b->fd, &st) < 0 || (S_ISBLK(st.st_mode) && ioctl(b->fd, BLKSSZGET, &lbs) < 0)) {
		int e = errno;

		snprintf(err, errlen, "disk '%s': block size: %s", b->path, strerror(e));
		return -e;
	}
	*align = S_ISBLK(st.st_mode) ? (uint32_t)MAX(lbs, 0) : file_dio_alignment(b->fd);
	return 0;
}

/*
 * cache=none: advertises the host's block size, which the parser then enforces. Sizes below
 * 512 are raised to it (every request is in 512-byte sectors anyway); direct I/O the kernel
 * says is unsupported, or an alignment we cannot advertise, falls back to the page cache.
 */
int blk_image_set_direct_block_size(struct blk_dev *b, char *err, size_t errlen)
{
	char why[96];
	uint32_t align = 0;
	int r = direct_io_alignment(b, &align, err, errlen);

	if (r < 0)
		return r;
	if (align == 0)
		return drop_direct(b, "the kernel reports no direct I/O for this file", err,
		                   errlen);
	if (blk_set_block_size(b, MAX(align, BLK_SECTOR_SIZE)) == 0)
		return 0;
	snprintf(why, sizeof(why), "host block size %u is not supported", align);
	return drop_direct(b, why, err, errlen);
}
