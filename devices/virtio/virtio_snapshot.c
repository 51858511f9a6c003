/*
 * The virtio core's state in a snapshot (virtio.h): negotiated features, status, ISR, config
 * space and every queue's layout and device-side indices, then the device's own (ops->save).
 * Saved by the transport's snapshot part under dev->lock; loaded before the vCPUs and the event
 * loop run, when a device that was live (DRIVER_OK) gets its rings checked and translated again
 * (vq_activate), its indices back, and ops->activate, as if the driver had just set DRIVER_OK.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/virtio/virtio.h"
#include "vmm/snapshot_file.h"

void virtio_dev_save(struct virtio_dev *dev, struct snap_writer *w)
{
	const struct virtio_device_ops *ops = dev->ops;

	snap_put_u64(w, dev->driver_features);
	snap_put_u8(w, dev->status);
	snap_put_u32(w, dev->config_generation);
	snap_put_u32(w, dev->isr);
	snap_put_u32(w, dev->config_size);
	if (dev->config_size)
		snap_put_bytes(w, dev->config, dev->config_size);
	snap_put_u32(w, ops->num_queues);
	for (unsigned q = 0; q < ops->num_queues; q++) {
		const struct virtqueue *vq = &dev->queues[q];

		snap_put_u16(w, vq->size);
		snap_put_u8(w, vq->ready);
		snap_put_u64(w, vq->desc_addr);
		snap_put_u64(w, vq->avail_addr);
		snap_put_u64(w, vq->used_addr);
		/* held chains are untaken: the ring keeps their entries until they are used */
		snap_put_u16(w, (uint16_t)(vq->last_avail_idx -
		                           (ops->chains_held ? ops->chains_held(dev, q) : 0)));
		snap_put_u16(w, vq->used_idx);
		snap_put_u16(w, vq->signalled_used);
		snap_put_u8(w, vq->signalled_used_valid);
	}
	if (ops->save)
		ops->save(dev, w);
}

/* Device-side indices, which vq_activate zeroes. */
struct saved_indices {
	uint16_t last_avail, used, signalled;
	bool signalled_valid;
};

static int fail(char *err, size_t errlen, int ret, const char *fmt, unsigned a, unsigned b)
{
	snprintf(err, errlen, fmt, a, b);
	return ret;
}

/* Checks and installs a live device's rings, as DRIVER_OK would. Under dev->lock. */
static int activate(struct virtio_dev *dev, const struct saved_indices *saved, char *err,
                    size_t errlen)
{
	const struct virtio_device_ops *ops = dev->ops;

	for (unsigned q = 0; q < ops->num_queues; q++) {
		struct virtqueue *vq = &dev->queues[q];

		if (!vq->ready)
			continue;
		if (virtio_activate_queue(dev, q) < 0)
			return fail(err, errlen, -EINVAL,
			            "queue %u: its size %u or rings do not fit this machine", q,
			            vq->size);
		vq->last_avail_idx = saved[q].last_avail;
		vq->used_idx = saved[q].used;
		vq->signalled_used = saved[q].signalled;
		vq->signalled_used_valid = saved[q].signalled_valid;
	}
	if (ops->activate && ops->activate(dev) < 0) {
		snprintf(err, errlen, "the device did not start");
		return -EIO;
	}
	return 0;
}

void virtio_dev_resume(struct virtio_dev *dev, struct virtio_doorbell *db)
{
	for (unsigned q = 0; q < dev->ops->num_queues; q++) {
		bool live;

		pthread_mutex_lock(&dev->lock);
		live = dev->queues[q].active;
		pthread_mutex_unlock(&dev->lock);
		if (!live)
			continue;
		virtio_queue_interrupt(dev, q);
		virtio_doorbell_ring(db, q);
	}
}

int virtio_dev_load(struct virtio_dev *dev, struct snap_cursor *c, char *err, size_t errlen)
{
	const struct virtio_device_ops *ops = dev->ops;
	struct saved_indices saved[VIRTIO_MAX_QUEUES] = {{0}};
	uint64_t features = snap_get_u64(c);
	uint8_t status = snap_get_u8(c);
	uint32_t generation = snap_get_u32(c), isr = snap_get_u32(c);
	uint32_t config_size = snap_get_u32(c), queues;
	uint8_t config[256];
	int ret;

	if (c->overrun) /* a section cut short: say so, not what the zeros read as */
		return snap_cursor_finish(c, err, errlen);
	if (config_size != dev->config_size || config_size > sizeof(config))
		return fail(err, errlen, -EINVAL, "config space of %u bytes, this device has %u",
		            config_size, dev->config_size);
	snap_get_bytes(c, config, config_size);
	queues = snap_get_u32(c);
	if (queues != ops->num_queues)
		return fail(err, errlen, -EINVAL, "%u queues, this device has %u", queues,
		            ops->num_queues);
	pthread_mutex_lock(&dev->lock);
	for (unsigned q = 0; q < queues; q++) {
		struct virtqueue *vq = &dev->queues[q];

		vq->size = snap_get_u16(c);
		vq->ready = snap_get_u8(c) != 0;
		vq->desc_addr = snap_get_u64(c);
		vq->avail_addr = snap_get_u64(c);
		vq->used_addr = snap_get_u64(c);
		saved[q].last_avail = snap_get_u16(c);
		saved[q].used = snap_get_u16(c);
		saved[q].signalled = snap_get_u16(c);
		saved[q].signalled_valid = snap_get_u8(c) != 0;
	}
	ret = ops->load ? ops->load(dev, c, err, errlen) : 0;
	if (!ret)
		ret = snap_cursor_finish(c, err, errlen);
	if (!ret && (features & ~dev->device_features))
		ret = fail(err, errlen, -EINVAL, "features %#x%08x beyond this device's offer",
		           (unsigned)(features >> 32), (unsigned)features);
	if (!ret) {
		dev->driver_features = features;
		dev->status = status;
		dev->config_generation = generation;
		dev->isr = isr & (VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
		if (config_size) /* a device without config space has config NULL */
			memcpy(dev->config, config, config_size);
		if ((status & VIRTIO_STATUS_DRIVER_OK) && !(status & VIRTIO_STATUS_NEEDS_RESET))
			ret = activate(dev, saved, err, errlen);
	}
	pthread_mutex_unlock(&dev->lock);
	return ret;
}
