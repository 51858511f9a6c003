/*
 * virtio-blk's image file, for blk_open: opening it (O_DIRECT for cache=none where the filesystem
 * allows it), locking and sizing it, and the block size O_DIRECT needs. Each returns 0 or -errno
 * with one line in @err. Internal to devices/virtio/blk*.c; set-up only, before the device runs.
 */
#ifndef VMM_DEVICES_VIRTIO_BLK_IMAGE_H
#define VMM_DEVICES_VIRTIO_BLK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/blk.h"

/* Opens @opts->path into b->fd; *@direct says whether with O_DIRECT. */
int blk_image_open(struct blk_dev *b, const struct blk_options *opts, bool *direct, char *err,
                   size_t errlen);
/* Locks the image against other VMs (shared when @read_only) and sizes it into *@size. */
int blk_image_lock_and_size(struct blk_dev *b, bool read_only, uint64_t *size, char *err,
                            size_t errlen);
/* cache=none: advertises the host's block size, or falls back to the page cache. */
int blk_image_set_direct_block_size(struct blk_dev *b, char *err, size_t errlen);

#endif
