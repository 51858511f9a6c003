/*
 * virtio-rng. Queue work runs in queue_notify on the event-loop thread under vdev.lock; the
 * only other taker of the lock is the transport (register accesses from vCPU threads).
 * getrandom(2) is called with GRND_NONBLOCK, so the lock is never held across a wait for
 * entropy: when the host pool cannot serve (only before it is initialised), a request gets the
 * bytes obtained so far, possibly none, and the driver asks again.
 *
 * The driver posts only device-writable buffers (5.4.6.1); a chain with a device-readable one
 * is treated as malformed, like a bad chain: DEVICE_NEEDS_RESET and no further processing.
 * Each chain gets at most VIRTIO_RNG_CHAIN_MAX bytes, so a guest posting huge buffers cannot
 * keep the event loop busy generating randomness.
 */
#include "devices/virtio/rng.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "vmm/log.h"
#include "vmm/util.h"

static ssize_t default_source(void *buf, size_t len, unsigned flags)
{
	return getrandom(buf, len, flags);
}

/* Fills @buf; returns how many bytes the source gave (fewer when it ran dry). */
static size_t fill(struct virtio_rng *rng, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = rng->source(buf + done, len - done, GRND_NONBLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (size_t)n > len - done) {
			log_ratelimited(LOG_WARN, "virtio-rng: getrandom: %s",
			                n < 0 ? strerror(errno) : "no bytes");
			break;
		}
		done += (size_t)n; /* a short read: ask again for the rest */
	}
	return done;
}

/* Fills the chain's writable buffers in order; returns the bytes written. */
static uint32_t serve_chain(struct virtio_rng *rng)
{
	const struct vq_chain *c = &rng->chain;
	size_t budget = VIRTIO_RNG_CHAIN_MAX, total = 0;

	for (unsigned i = c->nr_out; i < c->nr_out + c->nr_in && budget; i++) {
		size_t want = MIN(c->iov[i].iov_len, budget);
		size_t got = fill(rng, c->iov[i].iov_base, want);

		total += got;
		budget -= got;
		if (got < want)
			break;
	}
	return (uint32_t)total;
}

static bool queue_live(const struct virtio_dev *dev)
{
	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && dev->queues[0].ready;
}

static void rng_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct virtio_rng *rng = container_of(dev, struct virtio_rng, vdev);
	struct virtqueue *vq = &dev->queues[0];
	const char *why = "virtio-rng: malformed descriptor chain";
	bool pushed = false;
	int r = 0;

	if (q != 0)
		return;
	pthread_mutex_lock(&dev->lock);
	while (queue_live(dev) && (r = vq_pop_chain(vq, &rng->chain)) > 0) {
		if (rng->chain.nr_out) {
			why = "virtio-rng: request with a device-readable buffer";
			r = -EINVAL;
			break;
		}
		if (vq_push_used(vq, rng->chain.head, serve_chain(rng)) == 0)
			pushed = true;
	}
	pthread_mutex_unlock(&dev->lock);
	if (r < 0)
		virtio_set_needs_reset(dev, why);
	if (pushed)
		virtio_queue_done(dev, 0);
}

static const struct virtio_device_ops rng_ops = {
        .name = "virtio-rng",
        .device_id = VIRTIO_ID_RNG,
        .num_queues = 1,
        .max_queue_size = VIRTIO_RNG_QUEUE_SIZE,
        .queue_notify = rng_queue_notify,
};

void virtio_rng_init(struct virtio_rng *rng, const struct guest_memory *mem)
{
	memset(rng, 0, sizeof(*rng));
	rng->source = default_source;
	virtio_dev_init(&rng->vdev, &rng_ops, mem,
	                1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << VIRTIO_F_EVENT_IDX, NULL, 0);
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	virtio_dev_destroy(&rng->vdev);
}
