/*
 * virtio-rng (virtio 1.x, section 5.4): one request queue, no config space, no device features.
 * Each chain the driver posts is filled with bytes from getrandom(2) and returned.
 */
#ifndef VMM_DEVICES_VIRTIO_RNG_H
#define VMM_DEVICES_VIRTIO_RNG_H

#include <sys/types.h>

#include "devices/virtio/virtio.h"

#define VIRTIO_RNG_QUEUE_SIZE 64
#define VIRTIO_RNG_CHAIN_MAX  (64 * 1024) /* bytes given per chain at most (5.4.6: MAY use less) */

struct virtio_rng {
	struct virtio_dev vdev; /* the ops find us with container_of */
	/* The entropy source, getrandom(2) by default (tests replace it); non-blocking use. */
	ssize_t (*source)(void *buf, size_t len, unsigned flags);
	struct vq_chain chain; /* scratch, under vdev.lock */
};

/* Sets up the device; the caller then attaches rng->vdev to a transport. */
void virtio_rng_init(struct virtio_rng *rng, const struct guest_memory *mem);
void virtio_rng_destroy(struct virtio_rng *rng);

#endif
