/* Kernel and initrd files as read-only buffers, the form every arch's loader takes. */
#ifndef VMM_VMM_BOOT_IMAGE_H
#define VMM_VMM_BOOT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

struct boot_image {
	const uint8_t *data;
	size_t size;
};

/*
 * Maps the whole regular file @path read-only into @out (an empty file gives size 0 and no
 * mapping). On failure prints one line naming @what ("kernel", "initrd") and the path, and
 * returns -errno.
 */
int boot_image_map(const char *what, const char *path, struct boot_image *out) MUST_CHECK;
/* Unmaps @img; safe on a zeroed struct. */
void boot_image_unmap(struct boot_image *img);

#endif
