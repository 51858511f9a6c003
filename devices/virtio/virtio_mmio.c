/*
 * virtio-mmio version 2 (virtio 1.x, 4.2.2). Registers are 32 bits wide and only 4-byte
 * aligned 4-byte accesses reach them; anything else reads as all-ones and writes are dropped.
 * The config space at 0x100 takes any access size. Write-only registers read back the value
 * last written (QueueNum, the ring addresses), which the spec leaves undefined.
 *
 * Queue registers act on the queue QueueSel selects; a selector >= num_queues selects nothing
 * (QueueNumMax reads 0, writes are dropped). Once DRIVER_OK is set the queue registers are
 * frozen until a reset: the layout vq_activate checked is the one the device uses.
 */
#include "devices/virtio/virtio_mmio.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/log.h"

/* The queue QueueSel names, or NULL when it names none. Under dev->lock. */
static struct virtqueue *selected_queue(const struct virtio_mmio *t)
{
	struct virtio_dev *dev = t->dev;

	return t->queue_sel < dev->ops->num_queues ? &dev->queues[t->queue_sel] : NULL;
}

static uint32_t queue_reg_read(const struct virtio_mmio *t, uint64_t offset)
{
	const struct virtqueue *vq = selected_queue(t);

	if (!vq)
		return 0;
	switch (offset) {
	case VIRTIO_MMIO_REG_QUEUE_NUM_MAX:
		return t->dev->ops->max_queue_size;
	case VIRTIO_MMIO_REG_QUEUE_NUM:
		return vq->size;
	case VIRTIO_MMIO_REG_QUEUE_READY:
		return vq->ready;
	case VIRTIO_MMIO_REG_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_REG_QUEUE_DESC_HIGH:
		return (uint32_t)(vq->desc_addr >> (offset & 4 ? 32 : 0));
	case VIRTIO_MMIO_REG_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_REG_QUEUE_DRIVER_HIGH:
		return (uint32_t)(vq->avail_addr >> (offset & 4 ? 32 : 0));
	case VIRTIO_MMIO_REG_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_REG_QUEUE_DEVICE_HIGH:
		return (uint32_t)(vq->used_addr >> (offset & 4 ? 32 : 0));
	default:
		return 0; /* reserved or write-only */
	}
}

static uint32_t reg_read(const struct virtio_mmio *t, uint64_t offset)
{
	const struct virtio_dev *dev = t->dev;

	switch (offset) {
	case VIRTIO_MMIO_REG_MAGIC:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_REG_VERSION:
		return VIRTIO_MMIO_VERSION;
	case VIRTIO_MMIO_REG_DEVICE_ID:
		return dev->ops->device_id;
	case VIRTIO_MMIO_REG_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR_ID;
	case VIRTIO_MMIO_REG_DEVICE_FEATURES:
		if (t->device_features_sel > 1)
			return 0;
		return (uint32_t)(dev->device_features >> (32 * t->device_features_sel));
	case VIRTIO_MMIO_REG_INTERRUPT_STATUS:
		return dev->isr;
	case VIRTIO_MMIO_REG_STATUS:
		return dev->status;
	case VIRTIO_MMIO_REG_CONFIG_GENERATION:
		return dev->config_generation;
	case VIRTIO_MMIO_REG_SHM_LEN_LOW:
	case VIRTIO_MMIO_REG_SHM_LEN_HIGH:
	case VIRTIO_MMIO_REG_SHM_BASE_LOW:
	case VIRTIO_MMIO_REG_SHM_BASE_HIGH:
		/* No shared memory regions: a length of -1 says so (4.2.2); 0 would be one. */
		return 0xffffffff;
	default:
		return queue_reg_read(t, offset);
	}
}

/* Replaces the low or high half of @addr. */
static void set_half(uint64_t *addr, bool high, uint32_t v)
{
	if (high)
		*addr = (*addr & 0xffffffffULL) | (uint64_t)v << 32;
	else
		*addr = (*addr & ~0xffffffffULL) | v;
}

static void queue_reg_write(struct virtio_mmio *t, uint64_t offset, uint32_t v)
{
	struct virtqueue *vq = selected_queue(t);

	if (!vq || (t->dev->status & VIRTIO_STATUS_DRIVER_OK)) {
		log_ratelimited(LOG_DEBUG, "%s: queue register %#llx write (queue %u) dropped",
		                t->dev->ops->name, (unsigned long long)offset, t->queue_sel);
		return;
	}
	switch (offset) {
	case VIRTIO_MMIO_REG_QUEUE_NUM:
		vq->size = (uint16_t)MIN(v, UINT16_MAX); /* vq_activate checks it */
		break;
	case VIRTIO_MMIO_REG_QUEUE_READY:
		vq->ready = v & 1;
		break;
	case VIRTIO_MMIO_REG_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_REG_QUEUE_DESC_HIGH:
		set_half(&vq->desc_addr, offset & 4, v);
		break;
	case VIRTIO_MMIO_REG_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_REG_QUEUE_DRIVER_HIGH:
		set_half(&vq->avail_addr, offset & 4, v);
		break;
	case VIRTIO_MMIO_REG_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_REG_QUEUE_DEVICE_HIGH:
		set_half(&vq->used_addr, offset & 4, v);
		break;
	default:
		log_ratelimited(LOG_DEBUG, "%s: write to register %#llx dropped", t->dev->ops->name,
		                (unsigned long long)offset);
		break;
	}
}

/* Everything but QueueNotify; under dev->lock. */
static void reg_write(struct virtio_mmio *t, uint64_t offset, uint32_t v)
{
	struct virtio_dev *dev = t->dev;

	switch (offset) {
	case VIRTIO_MMIO_REG_DEVICE_FEATURES_SEL:
		t->device_features_sel = v;
		break;
	case VIRTIO_MMIO_REG_DRIVER_FEATURES:
		virtio_write_driver_features(dev, t->driver_features_sel, v);
		break;
	case VIRTIO_MMIO_REG_DRIVER_FEATURES_SEL:
		t->driver_features_sel = v;
		break;
	case VIRTIO_MMIO_REG_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case VIRTIO_MMIO_REG_INTERRUPT_ACK:
		dev->isr &= ~v;
		break;
	case VIRTIO_MMIO_REG_STATUS:
		virtio_write_status(dev, (uint8_t)v);
		break;
	default:
		queue_reg_write(t, offset, v);
		break;
	}
}

static int mmio_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct virtio_mmio *t = opaque;
	uint32_t v;

	if (offset >= VIRTIO_MMIO_REG_CONFIG) {
		pthread_mutex_lock(&t->dev->lock);
		virtio_read_config(t->dev, offset - VIRTIO_MMIO_REG_CONFIG, data, size);
		pthread_mutex_unlock(&t->dev->lock);
		return 0;
	}
	if (size != 4 || offset % 4) {
		log_ratelimited(LOG_DEBUG, "%s: %u-byte read at %#llx", t->dev->ops->name, size,
		                (unsigned long long)offset);
		memset(data, 0xff, size);
		return 0;
	}
	pthread_mutex_lock(&t->dev->lock);
	v = htole32(reg_read(t, offset));
	pthread_mutex_unlock(&t->dev->lock);
	memcpy(data, &v, 4);
	return 0;
}

static int mmio_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct virtio_mmio *t = opaque;
	uint32_t v;

	if (offset >= VIRTIO_MMIO_REG_CONFIG) {
		pthread_mutex_lock(&t->dev->lock);
		virtio_write_config(t->dev, offset - VIRTIO_MMIO_REG_CONFIG, data, size);
		pthread_mutex_unlock(&t->dev->lock);
		return 0;
	}
	if (size != 4 || offset % 4) {
		log_ratelimited(LOG_DEBUG, "%s: %u-byte write at %#llx dropped", t->dev->ops->name,
		                size, (unsigned long long)offset);
		return 0;
	}
	memcpy(&v, data, 4);
	v = le32toh(v);
	if (offset == VIRTIO_MMIO_REG_QUEUE_NOTIFY) {
		/* No ioeventfd matched: served on the event loop like the others. */
		virtio_doorbell_ring(&t->doorbell, v);
		return 0;
	}
	pthread_mutex_lock(&t->dev->lock);
	reg_write(t, offset, v);
	pthread_mutex_unlock(&t->dev->lock);
	return 0;
}

static const struct bus_ops mmio_ops = {
        .read = mmio_read,
        .write = mmio_write,
};

/* transport.interrupt: the ISR bit is set already; any thread, no lock taken. */
static void mmio_interrupt(void *opaque, int q)
{
	struct virtio_mmio *t = opaque;
	int r;

	if (t->irq.irqfd >= 0) {
		r = irq_trigger(&t->irq);
		if (r < 0)
			log_ratelimited(LOG_WARN, "%s: interrupt: %s", t->dev->ops->name,
			                strerror(-r));
	} else if (t->test_interrupt) {
		t->test_interrupt(t->test_opaque, q);
	}
}

/* An ioeventfd fired: the guest wrote queue n->q to QueueNotify. Event-loop thread. */
static void notify_event(void *opaque, uint32_t events)
{
	struct virtio_mmio_notify *n = opaque;
	uint64_t count;

	(void)events;
	if (read(n->ev.fd, &count, sizeof(count)) != (ssize_t)sizeof(count))
		return; /* spurious wake-up: nothing pending */
	virtio_notify_queue(n->t->dev, n->q);
}

static int add_notifiers(struct virtio_mmio *t)
{
	for (unsigned q = 0; q < t->dev->ops->num_queues; q++) {
		struct virtio_mmio_notify *n = &t->notify[q];
		int r = ioeventfd_add(&n->ev, t->vm_fd, t->base + VIRTIO_MMIO_REG_QUEUE_NOTIFY, 4,
		                      false, true, q);

		if (r < 0)
			return r;
		n->src =
		        (struct event_source){.fd = n->ev.fd, .handler = notify_event, .opaque = n};
		r = event_loop_add(t->loop, &n->src, EPOLLIN);
		if (r < 0)
			return r;
		n->watched = true;
	}
	return 0;
}

int virtio_mmio_attach(struct virtio_mmio *t, struct virtio_dev *dev, struct bus *mmio_bus,
                       uint64_t base, int vm_fd, unsigned gsi, struct event_loop *loop)
{
	int r;

	if (!dev->ops || dev->ops->num_queues > VIRTIO_MAX_QUEUES ||
	    dev->config_size > VIRTIO_MMIO_SIZE - VIRTIO_MMIO_REG_CONFIG || !loop)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	t->dev = dev;
	t->base = base;
	t->vm_fd = vm_fd;
	t->loop = loop;
	t->irq = (struct irq_line){.vm_fd = vm_fd, .gsi = gsi, .irqfd = -1};
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->notify[q] = (struct virtio_mmio_notify){.t = t, .q = q, .ev.fd = -1};
	r = virtio_doorbell_init(&t->doorbell, dev, loop);
	if (r == 0 && vm_fd >= 0) {
		r = irq_line_use_irqfd(&t->irq);
		if (r == 0)
			r = add_notifiers(t);
	}
	if (r == 0) {
		pthread_mutex_lock(&dev->lock);
		dev->transport =
		        (struct virtio_transport){.interrupt = mmio_interrupt, .opaque = t};
		pthread_mutex_unlock(&dev->lock);
		r = bus_register(mmio_bus, base, VIRTIO_MMIO_SIZE, &mmio_ops, t, dev->ops->name);
	}
	if (r < 0)
		virtio_mmio_detach(t);
	return r;
}

void virtio_mmio_detach(struct virtio_mmio *t)
{
	struct virtio_dev *dev = t->dev;

	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtio_mmio_notify *n = &t->notify[q];

		if (n->watched)
			event_loop_del(t->loop, &n->src);
		n->watched = false;
		ioeventfd_remove(&n->ev);
	}
	virtio_doorbell_destroy(&t->doorbell);
	irq_line_release(&t->irq);
	pthread_mutex_lock(&dev->lock);
	if (dev->transport.opaque == t)
		dev->transport = (struct virtio_transport){0};
	pthread_mutex_unlock(&dev->lock);
}

void virtio_mmio_set_test_interrupt(struct virtio_mmio *t, void (*fn)(void *opaque, int q),
                                    void *opaque)
{
	t->test_interrupt = fn;
	t->test_opaque = opaque;
}

/* The transport's registers and the device's core state, one part per device. */
static void mmio_quiesce(void *opaque)
{
	struct virtio_mmio *t = opaque;

	if (t->dev->ops->quiesce)
		t->dev->ops->quiesce(t->dev);
}

static int mmio_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct virtio_mmio *t = opaque;

	(void)err;
	(void)errlen;
	pthread_mutex_lock(&t->dev->lock);
	snap_put_u32(w, t->device_features_sel);
	snap_put_u32(w, t->driver_features_sel);
	snap_put_u32(w, t->queue_sel);
	virtio_dev_save(t->dev, w);
	pthread_mutex_unlock(&t->dev->lock);
	return 0;
}

static int mmio_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct virtio_mmio *t = opaque;
	uint32_t device_sel = snap_get_u32(c), driver_sel = snap_get_u32(c);
	uint32_t queue_sel = snap_get_u32(c);
	int ret = virtio_dev_load(t->dev, c, err, errlen);

	if (ret)
		return ret;
	pthread_mutex_lock(&t->dev->lock);
	t->device_features_sel = device_sel;
	t->driver_features_sel = driver_sel;
	t->queue_sel = queue_sel;
	pthread_mutex_unlock(&t->dev->lock);
	virtio_dev_resume(t->dev, &t->doorbell);
	return 0;
}

int virtio_mmio_snapshot_add(struct virtio_mmio *t, struct snapshot_parts *parts, uint32_t instance)
{
	if (!t->dev->ops->snapshots) {
		snapshot_unsupported(parts, t->dev->ops->name);
		return 0;
	}
	return snapshot_add_quiescing(parts, "VMMI", instance, mmio_quiesce, mmio_save, mmio_load,
	                              t);
}

/*
 * A window with no device: the magic and version of a virtio-mmio device with device ID 0,
 * which drivers take for a placeholder ("no function") and leave unbound; everything else
 * reads as zero, writes are dropped.
 */
static int placeholder_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	uint32_t value = 0;

	(void)opaque;
	if (offset == VIRTIO_MMIO_REG_MAGIC && size == 4)
		value = htole32(VIRTIO_MMIO_MAGIC);
	else if (offset == VIRTIO_MMIO_REG_VERSION && size == 4)
		value = htole32(VIRTIO_MMIO_VERSION);
	memset(data, 0, size);
	if (size == 4)
		memcpy(data, &value, 4);
	return 0;
}

static int placeholder_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	(void)opaque;
	(void)offset;
	(void)data;
	(void)size;
	return 0;
}

static const struct bus_ops placeholder_ops = {.read = placeholder_read,
                                               .write = placeholder_write};

int virtio_mmio_add_placeholder(struct bus *mmio_bus, uint64_t base)
{
	return bus_register(mmio_bus, base, VIRTIO_MMIO_SIZE, &placeholder_ops, NULL,
	                    "virtio-mmio-spare");
}
