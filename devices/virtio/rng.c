/*
 * virtio-rng. Queue work runs in queue_notify on the event-loop thread under vdev.lock, and in
 * the resume work the device posts to the loop (virtio_rng_set_loop); the only other taker of
 * the lock is the transport (register accesses from vCPU threads).
 * getrandom(2) is called with GRND_NONBLOCK, so the lock is never held across a wait for
 * entropy: when the host pool cannot serve (only before it is initialised), a request gets the
 * bytes obtained so far, possibly none, and the driver asks again.
 *
 * The driver posts only device-writable buffers (5.4.6.1); a chain with a device-readable one
 * is treated as malformed, like a bad chain: DEVICE_NEEDS_RESET and no further processing.
 * Each chain gets at most VIRTIO_RNG_CHAIN_MAX bytes, and with a loop a run serves at most
 * VIRTIO_RNG_BATCH chains and about VIRTIO_RNG_BATCH_MAX bytes before it yields to the loop,
 * so neither huge buffers nor a driver that re-publishes chains as fast as they are returned
 * keep the event loop from signals, timers and the other devices.
 */
#include "devices/virtio/rng.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
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

/*
 * One run: serves chains until the ring is empty or, with a loop, the batch limit; then posts
 * the resume when it stopped at the limit. Takes the lock; interrupts after dropping it.
 */
static void rng_run(struct virtio_rng *rng)
{
	struct virtio_dev *dev = &rng->vdev;
	struct virtqueue *vq = &dev->queues[0];
	unsigned chains = rng->loop ? VIRTIO_RNG_BATCH : UINT_MAX;
	size_t bytes = 0, limit = rng->loop ? VIRTIO_RNG_BATCH_MAX : SIZE_MAX;
	const char *why = NULL;
	bool pushed = false, more = false;

	pthread_mutex_lock(&dev->lock);
	while (queue_live(dev)) {
		uint32_t len;
		int r;

		if (!chains-- || bytes >= limit) {
			more = true;
			break;
		}
		r = vq_pop_chain(vq, &rng->chain);
		if (r < 0)
			why = "virtio-rng: malformed descriptor chain";
		else if (r > 0 && rng->chain.nr_out)
			why = "virtio-rng: request with a device-readable buffer";
		if (r <= 0 || why)
			break;
		len = serve_chain(rng);
		bytes += len;
		if (vq_push_used(vq, rng->chain.head, len) == 0)
			pushed = true;
	}
	pthread_mutex_unlock(&dev->lock);
	if (why)
		virtio_set_needs_reset(dev, why);
	if (pushed)
		virtio_queue_done(dev, 0);
	if (more)
		event_loop_post(rng->loop, &rng->resume);
}

static void rng_resume(void *opaque)
{
	rng_run(opaque);
}

static void rng_queue_notify(struct virtio_dev *dev, unsigned q)
{
	if (q == 0)
		rng_run(container_of(dev, struct virtio_rng, vdev));
}

static const struct virtio_device_ops rng_ops = {
        .name = "virtio-rng",
        .device_id = VIRTIO_ID_RNG,
        .num_queues = 1,
        .max_queue_size = VIRTIO_RNG_QUEUE_SIZE,
        .queue_notify = rng_queue_notify,
        .snapshots = true, /* each notify serves and returns whole chains */
};

void virtio_rng_init(struct virtio_rng *rng, const struct guest_memory *mem)
{
	memset(rng, 0, sizeof(*rng));
	rng->source = default_source;
	event_work_init(&rng->resume, rng_resume, rng);
	virtio_dev_init(&rng->vdev, &rng_ops, mem,
	                1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << VIRTIO_F_EVENT_IDX, NULL, 0);
}

void virtio_rng_set_loop(struct virtio_rng *rng, struct event_loop *loop)
{
	rng->loop = loop;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	if (rng->loop)
		event_loop_cancel(rng->loop, &rng->resume);
	virtio_dev_destroy(&rng->vdev);
}
