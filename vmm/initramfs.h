/*
 * A newc ("070701") cpio writer into a growable heap buffer, for the initramfs vmm builds in
 * memory for --run. Pure: no I/O. One struct cpio belongs to the one thread that builds it.
 */
#ifndef VMM_VMM_INITRAMFS_H
#define VMM_VMM_INITRAMFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

struct cpio {
	uint8_t *buf;      /* the archive so far; owned, freed by cpio_free() */
	size_t len, cap;   /* bytes written, bytes allocated */
	uint32_t next_ino; /* inode number of the next entry (1, 2, ...) */
	int err;           /* first error, sticky: later adds do nothing */
	bool finished;     /* the trailer is written; later adds fail with -EINVAL */
};

/*
 * Entry names are relative paths ("init", "vmm/modules/x.ko"): not empty, no leading '/', no
 * empty, "." or ".." component, shorter than PATH_MAX. Modes are permission bits only (07777);
 * the type bits come from the function. Every entry has uid/gid 0 and mtime 0, so the same
 * calls give the same bytes. An add that fails records its error in c->err and adds nothing.
 */
void cpio_init(struct cpio *c);
void cpio_add_dir(struct cpio *c, const char *name, unsigned mode);
/* @len must be below 4 GiB (the newc size field is 32 bits). @data may be NULL when @len is 0. */
void cpio_add_file(struct cpio *c, const char *name, unsigned mode, const void *data, size_t len);
/* @major < 4096 and @minor < 2^20, what the kernel's dev_t holds. */
void cpio_add_chardev(struct cpio *c, const char *name, unsigned mode, unsigned major,
                      unsigned minor);
/*
 * Adds every parent directory of @path not yet in the archive (mode 0755; "vmm" then
 * "vmm/modules" for "vmm/modules/a.ko"), then the file. A parent that exists but is not a
 * directory fails with -ENOTDIR.
 */
void cpio_add_file_with_parents(struct cpio *c, const char *path, unsigned mode, const void *data,
                                size_t len);
/*
 * Appends the TRAILER!!! entry and zero-pads the archive to a multiple of 512 bytes. Returns 0,
 * or the first error of any call on @c: -ENOMEM, -EINVAL (a bad name or mode, a file of 4 GiB
 * or more, a device number out of range, an add after finish), -ENOTDIR, -EOVERFLOW (inode
 * numbers used up). The archive is c->buf[0..c->len) once this returns 0.
 */
int cpio_finish(struct cpio *c) MUST_CHECK;
/* Frees the buffer; @c can be cpio_init()ed again. */
void cpio_free(struct cpio *c);

#endif
