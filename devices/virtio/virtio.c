/*
 * The virtio device model shared by the transports (virtio 1.x, 2.1-2.4 and 3.1).
 *
 * Status machine. The driver only ever adds bits; the device owns NEEDS_RESET.
 *   - Writing 0 resets the device: ops->reset, every queue forgotten, features, status and ISR
 *     cleared. The config generation is kept (the config space does not change on reset).
 *   - NEEDS_RESET in a written value is ignored; the device's own NEEDS_RESET is kept.
 *   - Any other write that would clear a bit the driver set earlier is ignored (and logged):
 *     the spec forbids it and the only way back is a reset.
 *   - FEATURES_OK is kept only when the driver's features are a subset of the offer and
 *     include VERSION_1; otherwise the bit stays clear and the driver sees the refusal when
 *     it reads the status back (3.1.1 step 6).
 *   - DRIVER_OK is kept only after FEATURES_OK. Setting it checks every ready queue with
 *     vq_activate (the transport passes queue fields through unchecked) and then calls
 *     ops->activate; either failing sets NEEDS_RESET with a config interrupt.
 *
 * Locking: dev->lock guards the driver-visible state (features, status, ISR, queues, config).
 * The transport holds it around register accesses, so ops->activate, ops->reset and
 * ops->config_written run with it held. The transport's interrupt callback may be called with
 * or without it and must not take it.
 *
 * Threads: register accesses (and so activate, reset, config_written) come from vCPU threads.
 * ops->queue_notify runs without dev->lock and only on the event-loop thread: ioeventfds are
 * watched by the loop, and a doorbell that reaches a transport on the bus is handed to the loop
 * by struct virtio_doorbell (a bit per queue in an atomic word plus an eventfd the loop
 * watches). Devices rely on this: their queue work and their back-end completions share the
 * loop's thread (blk_uring has no lock of its own).
 */
#include "devices/virtio/virtio.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/util.h"

void virtio_dev_init(struct virtio_dev *dev, const struct virtio_device_ops *ops,
                     const struct guest_memory *mem, uint64_t device_features, void *config,
                     uint32_t config_size)
{
	memset(dev, 0, sizeof(*dev));
	dev->ops = ops;
	dev->mem = mem;
	dev->device_features = device_features | 1ULL << VIRTIO_F_VERSION_1;
	dev->config = config;
	dev->config_size = config ? config_size : 0;
	pthread_mutex_init(&dev->lock, NULL);
}

void virtio_dev_destroy(struct virtio_dev *dev)
{
	pthread_mutex_destroy(&dev->lock);
}

bool virtio_has_feature(const struct virtio_dev *dev, unsigned bit)
{
	return bit < 64 && (dev->driver_features >> bit) & 1;
}

void virtio_write_driver_features(struct virtio_dev *dev, unsigned sel, uint32_t value)
{
	unsigned shift = 32 * sel;

	if (dev->status & VIRTIO_STATUS_FEATURES_OK) {
		log_ratelimited(LOG_DEBUG, "%s: feature write after FEATURES_OK ignored",
		                dev->ops->name);
		return;
	}
	if (sel > 1)
		return; /* no feature bits above 63 exist; the offer there reads as 0 */
	dev->driver_features &= ~(0xffffffffULL << shift);
	dev->driver_features |= (uint64_t)value << shift;
}

static void interrupt(struct virtio_dev *dev, int q)
{
	if (dev->transport.interrupt)
		dev->transport.interrupt(dev->transport.opaque, q);
}

/*
 * Sets NEEDS_RESET; with the lock held. Returns true when the driver must get a config
 * interrupt (DRIVER_OK set and NEEDS_RESET newly set, 2.1.2), which the caller raises.
 */
static bool needs_reset_locked(struct virtio_dev *dev)
{
	bool was_set = dev->status & VIRTIO_STATUS_NEEDS_RESET;

	dev->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (was_set || !(dev->status & VIRTIO_STATUS_DRIVER_OK))
		return false;
	dev->isr |= VIRTIO_ISR_CONFIG;
	return true;
}

void virtio_set_needs_reset(struct virtio_dev *dev, const char *why)
{
	bool notify;

	log_ratelimited(LOG_WARN, "%s; device needs reset", why);
	pthread_mutex_lock(&dev->lock);
	notify = needs_reset_locked(dev);
	pthread_mutex_unlock(&dev->lock);
	if (notify)
		interrupt(dev, -1);
}

void virtio_config_changed(struct virtio_dev *dev)
{
	bool notify;

	pthread_mutex_lock(&dev->lock);
	dev->config_generation++;
	notify = dev->status & VIRTIO_STATUS_DRIVER_OK;
	if (notify)
		dev->isr |= VIRTIO_ISR_CONFIG;
	pthread_mutex_unlock(&dev->lock);
	if (notify)
		interrupt(dev, -1);
}

static void reset_locked(struct virtio_dev *dev)
{
	if (dev->ops->reset)
		dev->ops->reset(dev);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vq_reset(&dev->queues[q]);
	dev->driver_features = 0;
	dev->status = 0;
	dev->isr = 0;
}

static bool features_acceptable(const struct virtio_dev *dev)
{
	return !(dev->driver_features & ~dev->device_features) &&
	       virtio_has_feature(dev, VIRTIO_F_VERSION_1);
}

int virtio_activate_queue(struct virtio_dev *dev, unsigned q)
{
	struct virtqueue *vq = &dev->queues[q];

	vq->mem = dev->mem;
	vq->event_idx = virtio_has_feature(dev, VIRTIO_F_EVENT_IDX);
	vq->indirect = virtio_has_feature(dev, VIRTIO_F_INDIRECT_DESC);
	return vq_activate(vq, dev->ops->max_queue_size);
}

/* DRIVER_OK was just set: check the ready queues, then start the device. */
static void activate_locked(struct virtio_dev *dev)
{
	const struct virtio_device_ops *ops = dev->ops;
	bool notify = false;

	for (unsigned q = 0; q < ops->num_queues && q < VIRTIO_MAX_QUEUES; q++) {
		struct virtqueue *vq = &dev->queues[q];

		if (!vq->ready)
			continue;
		if (virtio_activate_queue(dev, q) < 0) {
			log_ratelimited(LOG_WARN,
			                "%s: queue %u: size %u, rings %#llx/%#llx/%#llx refused at "
			                "DRIVER_OK; device needs reset",
			                ops->name, q, vq->size, (unsigned long long)vq->desc_addr,
			                (unsigned long long)vq->avail_addr,
			                (unsigned long long)vq->used_addr);
			notify = needs_reset_locked(dev);
			goto out;
		}
	}
	if (ops->activate && ops->activate(dev) < 0) {
		log_ratelimited(LOG_WARN, "%s: activation failed; device needs reset", ops->name);
		notify = needs_reset_locked(dev);
	}
out:
	if (notify)
		interrupt(dev, -1);
}

void virtio_write_status(struct virtio_dev *dev, uint8_t status)
{
	uint8_t old = dev->status & (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	uint8_t added;

	if (status == 0) {
		reset_locked(dev);
		return;
	}
	status &= (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	if (old & ~status) {
		log_ratelimited(LOG_WARN, "%s: status %#x -> %#x clears bits; ignored",
		                dev->ops->name, old, status);
		return;
	}
	added = status & (uint8_t)~old;
	if ((added & VIRTIO_STATUS_FEATURES_OK) && !features_acceptable(dev)) {
		log_ratelimited(LOG_INFO, "%s: features %#llx refused (offer %#llx)",
		                dev->ops->name, (unsigned long long)dev->driver_features,
		                (unsigned long long)dev->device_features);
		status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
		added &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_FEATURES_OK)) {
		log_ratelimited(LOG_WARN, "%s: DRIVER_OK before FEATURES_OK ignored",
		                dev->ops->name);
		status &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
		added &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	}
	dev->status = status | (dev->status & VIRTIO_STATUS_NEEDS_RESET);
	if (added & VIRTIO_STATUS_DRIVER_OK)
		activate_locked(dev);
}

void virtio_read_config(struct virtio_dev *dev, uint64_t offset, void *data, unsigned size)
{
	memset(data, 0, size);
	if (offset >= dev->config_size)
		return;
	memcpy(data, dev->config + offset, MIN((uint64_t)size, dev->config_size - offset));
}

void virtio_write_config(struct virtio_dev *dev, uint64_t offset, const void *data, unsigned size)
{
	if (!dev->ops->config_written || offset >= dev->config_size) {
		log_ratelimited(LOG_DEBUG, "%s: config write of %u bytes at %#llx dropped",
		                dev->ops->name, size, (unsigned long long)offset);
		return;
	}
	size = (unsigned)MIN((uint64_t)size, dev->config_size - offset);
	memcpy(dev->config + offset, data, size);
	dev->ops->config_written(dev, offset, size);
}

void virtio_queue_done(struct virtio_dev *dev, unsigned q)
{
	bool notify = false;

	if (q >= VIRTIO_MAX_QUEUES)
		return;
	pthread_mutex_lock(&dev->lock);
	if ((dev->status & VIRTIO_STATUS_DRIVER_OK) && vq_should_notify(&dev->queues[q])) {
		dev->isr |= VIRTIO_ISR_QUEUE;
		notify = true;
	}
	pthread_mutex_unlock(&dev->lock);
	if (notify)
		interrupt(dev, (int)q);
}

void virtio_queue_interrupt(struct virtio_dev *dev, unsigned q)
{
	bool notify;

	if (q >= VIRTIO_MAX_QUEUES)
		return;
	pthread_mutex_lock(&dev->lock);
	notify = dev->status & VIRTIO_STATUS_DRIVER_OK;
	if (notify)
		dev->isr |= VIRTIO_ISR_QUEUE;
	pthread_mutex_unlock(&dev->lock);
	if (notify)
		interrupt(dev, (int)q);
}

/* ---- queue notifications ---- */

static_assert(VIRTIO_MAX_QUEUES <= 32, "one pending bit per queue in a uint32_t");

void virtio_notify_queue(struct virtio_dev *dev, uint64_t q)
{
	const struct virtio_device_ops *ops = dev->ops;

	if (q >= ops->num_queues) {
		log_ratelimited(LOG_DEBUG, "%s: notify for queue %llu ignored", ops->name,
		                (unsigned long long)q);
		return;
	}
	if (ops->queue_notify)
		ops->queue_notify(dev, (unsigned)q);
}

/* The loop's handler: serves every queue rung since the last run. Event-loop thread. */
static void doorbell_event(void *opaque, uint32_t events)
{
	struct virtio_doorbell *db = opaque;
	uint64_t count;
	uint32_t pending;

	(void)events;
	/*
	 * Drain the eventfd before taking the bits: a ring after this read set its bit before
	 * its write, so either the exchange below sees the bit or the eventfd stays readable.
	 */
	if (read(db->src.fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_ERROR, "%s: doorbell eventfd: %s", db->dev->ops->name,
		                strerror(errno));
	/* Acquire: pairs with the release in virtio_doorbell_ring (the driver's ring writes). */
	pending = __atomic_exchange_n(&db->pending, 0, __ATOMIC_ACQUIRE);
	while (pending) {
		unsigned q = (unsigned)__builtin_ctz(pending);

		pending &= pending - 1;
		virtio_notify_queue(db->dev, q);
	}
}

int virtio_doorbell_init(struct virtio_doorbell *db, struct virtio_dev *dev,
                         struct event_loop *loop)
{
	int r;

	memset(db, 0, sizeof(*db));
	if (!loop || dev->ops->num_queues > VIRTIO_MAX_QUEUES)
		return -EINVAL;
	db->src = (struct event_source){.handler = doorbell_event, .opaque = db};
	db->src.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (db->src.fd < 0) {
		r = -errno;
		memset(db, 0, sizeof(*db));
		return r;
	}
	r = event_loop_add(loop, &db->src, EPOLLIN);
	if (r < 0) {
		close(db->src.fd);
		memset(db, 0, sizeof(*db));
		return r;
	}
	db->dev = dev;
	db->loop = loop;
	return 0;
}

void virtio_doorbell_ring(struct virtio_doorbell *db, uint64_t q)
{
	uint64_t one = 1;

	if (!db->dev || q >= db->dev->ops->num_queues) {
		log_ratelimited(LOG_DEBUG, "%s: doorbell for queue %llu ignored",
		                db->dev ? db->dev->ops->name : "virtio", (unsigned long long)q);
		return;
	}
	/*
	 * Release, paired with the handler's acquire: what the ringing thread wrote before (the
	 * driver's ring updates, when that thread wrote them) is visible to the queue's work.
	 */
	__atomic_fetch_or(&db->pending, 1u << q, __ATOMIC_RELEASE);
	/* EAGAIN: the counter is saturated, so the loop has a wake-up pending anyway. */
	if (write(db->src.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_ERROR, "%s: doorbell eventfd: %s", db->dev->ops->name,
		                strerror(errno));
}

void virtio_doorbell_destroy(struct virtio_doorbell *db)
{
	if (!db->dev)
		return;
	event_loop_del(db->loop, &db->src);
	close(db->src.fd);
	memset(db, 0, sizeof(*db));
}
