/*
 * The fuzz targets' virtio device (see fake_virtio.h). Its state is under vdev.lock.
 */
#include "tests/fuzz/fake_virtio.h"

#include <string.h>

#include "vmm/util.h"

#define BATCH 16

static struct fake_virtio *to_fake(struct virtio_dev *dev)
{
	return container_of(dev, struct fake_virtio, vdev);
}

static int fake_activate(struct virtio_dev *dev)
{
	to_fake(dev)->activates++;
	return 0;
}

static void fake_reset(struct virtio_dev *dev)
{
	to_fake(dev)->resets++;
}

static void fake_config_written(struct virtio_dev *dev, uint64_t offset, unsigned size)
{
	struct fake_virtio *f = to_fake(dev);

	f->config_writes++;
	if (offset + size > 8) /* the last 4 bytes are read-only: put them back */
		memset(f->config + 8, 0xcc, 4);
}

/* Fills the chain's writable buffers (every byte: ASan checks the whole range). */
static uint32_t serve(const struct vq_chain *c)
{
	uint64_t len = 0;

	for (unsigned i = c->nr_out; i < c->nr_out + c->nr_in; i++) {
		memset(c->iov[i].iov_base, 0x5a, c->iov[i].iov_len);
		len += c->iov[i].iov_len;
	}
	return (uint32_t)len;
}

static void fake_notify(struct virtio_dev *dev, unsigned q)
{
	struct fake_virtio *f = to_fake(dev);
	struct virtqueue *vq = &dev->queues[q];
	bool pushed = false, bad = false;

	pthread_mutex_lock(&dev->lock);
	f->notifies++;
	for (unsigned n = 0; n < BATCH && (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	                     !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && vq->ready;
	     n++) {
		int r = vq_pop_chain(vq, &f->chain);

		if (r < 0)
			bad = true;
		if (r <= 0)
			break;
		if (vq_push_used(vq, f->chain.head, serve(&f->chain)) == 0)
			pushed = true;
	}
	pthread_mutex_unlock(&dev->lock);
	if (bad)
		virtio_set_needs_reset(dev, "fuzz: malformed descriptor chain");
	if (pushed)
		virtio_queue_done(dev, q);
}

static const struct virtio_device_ops fake_ops = {
        .name = "fuzz",
        .device_id = 42,
        .num_queues = FAKE_VIRTIO_QUEUES,
        .max_queue_size = 64,
        .config_written = fake_config_written,
        .activate = fake_activate,
        .reset = fake_reset,
        .queue_notify = fake_notify,
};

void fake_virtio_init(struct fake_virtio *f, const struct guest_memory *mem)
{
	memset(f, 0, sizeof(*f));
	virtio_dev_init(&f->vdev, &fake_ops, mem,
	                1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << 3,
	                f->config, sizeof(f->config));
	for (unsigned i = 0; i < sizeof(f->config); i++)
		f->config[i] = (uint8_t)(0xc0 + i);
}
