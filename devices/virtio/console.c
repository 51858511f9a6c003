/*
 * virtio-console, single port. Transmit: every readable buffer of a transmitq chain goes to
 * backend.write in order and the chain is returned with length 0 (writable buffers there are
 * ignored). Receive: host input fills the writable buffers of receiveq chains; each chain is
 * returned as soon as the input runs out or it is full, with the number of bytes written.
 *
 * Locking: vdev.lock guards the queues and rx_wanted. Both queues are processed on the
 * event-loop thread (notifications and host input arrive there); activate and reset run under
 * the lock from a vCPU thread. backend.write runs with the lock held, like the UART's.
 */
#include "devices/virtio/console.h"

#include <string.h>

#include "vmm/util.h"

static struct virtio_console *to_console(struct virtio_dev *dev)
{
	return container_of(dev, struct virtio_console, vdev);
}

static bool queue_live(const struct virtio_dev *dev, unsigned q)
{
	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && dev->queues[q].ready;
}

/* Sends every pending transmit chain to the backend. Returns -errno for a bad chain. */
static int transmit(struct virtio_console *c, bool *pushed)
{
	struct virtqueue *vq = &c->vdev.queues[VIRTIO_CONSOLE_TX_QUEUE];
	struct vq_chain *chain = &c->tx_chain;
	int r;

	while ((r = vq_pop_chain(vq, chain)) > 0) {
		for (unsigned i = 0; i < chain->nr_out; i++) {
			if (chain->iov[i].iov_len && c->backend.write)
				c->backend.write(c->backend.opaque, chain->iov[i].iov_base,
				                 chain->iov[i].iov_len);
		}
		if (vq_push_used(vq, chain->head, 0) == 0)
			*pushed = true;
	}
	return r;
}

/* Copies up to @len bytes into the writable buffers of @chain; returns the count. */
static size_t fill_chain(const struct vq_chain *chain, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = chain->nr_out; i < chain->nr_out + chain->nr_in && done < len; i++) {
		size_t part = MIN(chain->iov[i].iov_len, len - done);

		memcpy(chain->iov[i].iov_base, buf + done, part);
		done += part;
	}
	return done;
}

/* Fills receive chains with @buf; sets *err for a bad chain. Returns the bytes accepted. */
static size_t fill_receive(struct virtio_console *c, const uint8_t *buf, size_t len, bool *pushed,
                           int *err)
{
	struct virtqueue *vq = &c->vdev.queues[VIRTIO_CONSOLE_RX_QUEUE];
	size_t done = 0;

	while (done < len) {
		size_t n;
		int r = vq_pop_chain(vq, &c->rx_chain);

		if (r <= 0) {
			*err = r;
			break;
		}
		n = fill_chain(&c->rx_chain, buf + done, len - done);
		done += n;
		if (vq_push_used(vq, c->rx_chain.head, (uint32_t)n) == 0)
			*pushed = true;
	}
	return done;
}

size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len)
{
	struct virtio_dev *dev = &c->vdev;
	bool pushed = false;
	size_t done = 0;
	int err = 0;

	pthread_mutex_lock(&dev->lock);
	if (queue_live(dev, VIRTIO_CONSOLE_RX_QUEUE))
		done = fill_receive(c, buf, len, &pushed, &err);
	if (done < len)
		c->rx_wanted = true;
	pthread_mutex_unlock(&dev->lock);
	if (err < 0)
		virtio_set_needs_reset(dev, "virtio-console: malformed receive chain");
	if (pushed)
		virtio_queue_done(dev, VIRTIO_CONSOLE_RX_QUEUE);
	return done;
}

/* The driver posted receive buffers: let the host offer input again if it was refused. */
static void rx_notified(struct virtio_console *c)
{
	bool wanted;

	pthread_mutex_lock(&c->vdev.lock);
	wanted = c->rx_wanted;
	c->rx_wanted = false;
	pthread_mutex_unlock(&c->vdev.lock);
	if (wanted && c->backend.rx_space)
		c->backend.rx_space(c->backend.opaque);
}

static void tx_notified(struct virtio_console *c)
{
	struct virtio_dev *dev = &c->vdev;
	bool pushed = false;
	int r = 0;

	pthread_mutex_lock(&dev->lock);
	if (queue_live(dev, VIRTIO_CONSOLE_TX_QUEUE))
		r = transmit(c, &pushed);
	pthread_mutex_unlock(&dev->lock);
	if (r < 0)
		virtio_set_needs_reset(dev, "virtio-console: malformed transmit chain");
	if (pushed)
		virtio_queue_done(dev, VIRTIO_CONSOLE_TX_QUEUE);
}

static void console_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct virtio_console *c = to_console(dev);

	if (q == VIRTIO_CONSOLE_RX_QUEUE)
		rx_notified(c);
	else if (q == VIRTIO_CONSOLE_TX_QUEUE)
		tx_notified(c);
}

/* Under vdev.lock. Buffers posted before DRIVER_OK may have gone unnotified: offer input. */
static int console_activate(struct virtio_dev *dev)
{
	struct virtio_console *c = to_console(dev);

	if (c->rx_wanted && c->backend.rx_space) {
		c->rx_wanted = false;
		c->backend.rx_space(c->backend.opaque);
	}
	return 0;
}

static void console_reset(struct virtio_dev *dev)
{
	(void)dev; /* no state besides the queues, which the core resets */
}

static const struct virtio_device_ops console_ops = {
        .name = "virtio-console",
        .device_id = VIRTIO_ID_CONSOLE,
        .num_queues = 2,
        .max_queue_size = VIRTIO_CONSOLE_QUEUE_SIZE,
        .activate = console_activate,
        .reset = console_reset,
        .queue_notify = console_queue_notify,
};

void virtio_console_init(struct virtio_console *c, const struct guest_memory *mem,
                         const struct virtio_console_backend *backend)
{
	memset(c, 0, sizeof(*c));
	c->backend = *backend;
	virtio_dev_init(&c->vdev, &console_ops, mem,
	                1ull << VIRTIO_F_INDIRECT_DESC | 1ull << VIRTIO_F_EVENT_IDX, &c->config,
	                sizeof(c->config));
}

void virtio_console_destroy(struct virtio_console *c)
{
	virtio_dev_destroy(&c->vdev);
}
