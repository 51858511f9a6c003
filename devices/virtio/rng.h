/*
 * virtio-rng (virtio 1.x, section 5.4): one request queue, no config space, no device features.
 * Each chain the driver posts is filled with bytes from getrandom(2) and returned.
 */
#ifndef VMM_DEVICES_VIRTIO_RNG_H
#define VMM_DEVICES_VIRTIO_RNG_H

#include <sys/types.h>

#include "devices/virtio/virtio.h"
#include "vmm/event_loop.h"

#define VIRTIO_RNG_QUEUE_SIZE 64
#define VIRTIO_RNG_CHAIN_MAX  (64 * 1024)  /* bytes given per chain at most (5.4.6: MAY use less) */
#define VIRTIO_RNG_BATCH      64           /* chains served per run on the event loop at most */
#define VIRTIO_RNG_BATCH_MAX  (256 * 1024) /* bytes per run (ends after the chain passing it) */

struct virtio_rng {
	struct virtio_dev vdev; /* the ops find us with container_of */
	/* The entropy source, getrandom(2) by default (tests replace it); non-blocking use. */
	ssize_t (*source)(void *buf, size_t len, unsigned flags);
	struct vq_chain chain;    /* scratch, under vdev.lock */
	struct event_loop *loop;  /* see virtio_rng_set_loop; NULL: runs are not bounded */
	struct event_work resume; /* posted to @loop when a run stopped at its batch limit */
};

/* Sets up the device; the caller then attaches rng->vdev to a transport. */
void virtio_rng_init(struct virtio_rng *rng, const struct guest_memory *mem);
/*
 * Bounds the work per queue notification, set before the transport is attached: a run serves
 * at most VIRTIO_RNG_BATCH chains and about VIRTIO_RNG_BATCH_MAX bytes, and when it stops with
 * chains possibly left (which the driver will not notify again, see vq_pop_chain) the device
 * posts itself to @loop and goes on there, after the fds ready meanwhile were served. Without
 * a loop (tests) a notification serves chains until the ring is empty.
 */
void virtio_rng_set_loop(struct virtio_rng *rng, struct event_loop *loop);
/* After the event loop stopped (drops a posted resume). */
void virtio_rng_destroy(struct virtio_rng *rng);

#endif
