/*
 * A virtio device for the transport fuzz targets: two queues of at most 64 entries and a
 * 12-byte config space whose first 8 bytes are writable. A notify serves up to 16 chains of the
 * queue as a simple device would (fills the writable buffers, pushes them used, interrupts), or
 * sets NEEDS_RESET for a malformed chain, so guest-built rings reach the virtqueue and the core.
 * One thread: the fuzz target's (notify takes dev->lock as the event loop's would).
 */
#ifndef VMM_TESTS_FUZZ_FAKE_VIRTIO_H
#define VMM_TESTS_FUZZ_FAKE_VIRTIO_H

#include "devices/virtio/virtio.h"

#define FAKE_VIRTIO_QUEUES 2

struct fake_virtio {
	struct virtio_dev vdev;
	uint8_t config[12];
	struct vq_chain chain;
	unsigned activates, resets, notifies, config_writes;
};

/* Initialises @f over @mem (virtio_dev_init; undo with virtio_dev_destroy). */
void fake_virtio_init(struct fake_virtio *f, const struct guest_memory *mem);

#endif
