/*
 * Host files read whole into memory: the kernel and initrd as read-only buffers (the form every
 * arch's loader takes), and the one whole-file reader vmm uses for every file a user names
 * (kernel, initrd, kernel modules, modules.dep). Files are read, never mapped, so a file
 * truncated while vmm loads it is an error, not a SIGBUS. No state: any thread.
 */
#ifndef VMM_VMM_BOOT_IMAGE_H
#define VMM_VMM_BOOT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

/* The largest kernel or initrd vmm reads (x86 places an initrd below 4 GiB anyway). */
#define BOOT_IMAGE_MAX (4 * GIB)

struct boot_image {
	const uint8_t *data;
	size_t size;
};

/*
 * Reads the regular file @path whole into a heap buffer with a NUL after its @len bytes; the
 * caller frees *@out. The open does not block on a FIFO (O_NONBLOCK) and anything but a
 * regular file is refused. Returns 0 or -errno: -EISDIR (a directory), -EINVAL (not a regular
 * file: FIFO, device, socket), -EFBIG (over @max bytes), -EIO (the file shrank while being
 * read), -ENOMEM, or what open(), fstat() or pread() said.
 */
int boot_image_read_file(const char *path, uint64_t max, uint8_t **out, size_t *len) MUST_CHECK;

/*
 * Reads the whole regular file @path (at most BOOT_IMAGE_MAX bytes) into @out, a heap copy. On
 * failure prints one line naming @what ("kernel", "initrd") and the path ("kernel 'fifo': not a
 * regular file (a FIFO)") and returns -errno as boot_image_read_file() does, or -ENODATA for an
 * empty file (no kernel or initrd is empty). (Named for the mmap it once was; the copy cannot
 * change under the loader.)
 */
int boot_image_map(const char *what, const char *path, struct boot_image *out) MUST_CHECK;
/* Frees @img; safe on a zeroed struct and twice. */
void boot_image_unmap(struct boot_image *img);

#endif
