/*
 * virtio-pci modern transport. Common configuration fields take accesses of their own width
 * (the 64-bit ring addresses also as two 32-bit halves); anything else reads as zeros and
 * writes are dropped. Queue fields act on queue_select; a selector >= num_queues selects none
 * (queue_size reads 0). Queue fields are frozen once DRIVER_OK is set, until a reset.
 *
 * Threads (see virtio_pci.h): register accesses on vCPU threads; the doorbell ioeventfds and
 * their watches only on the event-loop thread (place_doorbells), or once it stopped (detach).
 */
#include "devices/virtio/virtio_pci.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/log.h"

#define CAP_LEN         16
#define NOTIFY_CAP_LEN  20
#define PCI_CFG_CAP_LEN 20
/* Offsets inside a virtio_pci_cap. */
#define CAP_CFG_TYPE 3
#define CAP_BAR      4
#define CAP_OFFSET   8
#define CAP_LENGTH   12
#define CAP_DATA     16 /* notify_off_multiplier, or pci_cfg_data */

static struct virtqueue *selected_queue(struct virtio_pci *t)
{
	return t->queue_sel < t->dev->ops->num_queues ? &t->dev->queues[t->queue_sel] : NULL;
}

/* Vectors are written under dev->lock and read without it by pci_interrupt. */
static void set_vector(uint16_t *slot, uint16_t vector)
{
	__atomic_store_n(slot, vector, __ATOMIC_RELAXED);
}

static void reset_transport(struct virtio_pci *t)
{
	t->device_features_sel = 0;
	t->driver_features_sel = 0;
	t->queue_sel = 0;
	set_vector(&t->config_vector, VIRTIO_PCI_NO_VECTOR);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		set_vector(&t->queue_vector[q], VIRTIO_PCI_NO_VECTOR);
}

/* Drives the line to pending && !masked if it is not there yet. Under intx_lock. */
static void intx_update(struct virtio_pci *t)
{
	bool level = t->intx_pending && !t->intx_masked;

	/* Interrupt Status: the INTx interrupt is pending, masked or not (PCI 3.0, 6.2.3). */
	pci_device_set_interrupt_status(&t->pci, t->intx_pending);

	if (level == t->intx_level)
		return;
	t->intx_level = level;
	if (t->vm_fd >= 0) {
		int r = irq_set_level(&t->intx, level);
		if (r < 0)
			log_ratelimited(LOG_WARN, "%s: INTx: %s", t->dev->ops->name, strerror(-r));
	} else if (t->test_intx) {
		t->test_intx(t->test_opaque, level);
	}
}

/* Raises (an interrupt) or acknowledges (ISR read, reset) the INTx interrupt. Any thread. */
static void intx_set_pending(struct virtio_pci *t, bool pending)
{
	pthread_mutex_lock(&t->intx_lock);
	t->intx_pending = pending;
	intx_update(t);
	pthread_mutex_unlock(&t->intx_lock);
}

/* Interrupt Disable or MSI-X Enable changed. Host lock held. */
static void intx_set_masked(struct virtio_pci *t, bool masked)
{
	pthread_mutex_lock(&t->intx_lock);
	t->intx_masked = masked;
	intx_update(t);
	pthread_mutex_unlock(&t->intx_lock);
}

void virtio_pci_intx_restore(struct virtio_pci *t, bool pending)
{
	/* Before intx_lock, a leaf lock: msix_enabled takes the MSI-X lock. */
	bool masked = (pci_config_read16(&t->pci, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) ||
	              msix_enabled(&t->msix);

	pthread_mutex_lock(&t->intx_lock);
	t->intx_pending = pending;
	t->intx_masked = masked;
	t->intx_level = false; /* the restored irqchip does not know the line's level */
	intx_update(t);
	pthread_mutex_unlock(&t->intx_lock);
}

/* ---- common configuration ---- */

static uint64_t common_read(struct virtio_pci *t, unsigned offset)
{
	struct virtio_dev *dev = t->dev;
	struct virtqueue *vq = selected_queue(t);

	switch (offset) {
	case VIRTIO_PCI_DFSELECT:
		return t->device_features_sel;
	case VIRTIO_PCI_DF:
		return t->device_features_sel > 1
		               ? 0
		               : (uint32_t)(dev->device_features >> (32 * t->device_features_sel));
	case VIRTIO_PCI_GFSELECT:
		return t->driver_features_sel;
	case VIRTIO_PCI_GF:
		return t->driver_features_sel > 1
		               ? 0
		               : (uint32_t)(dev->driver_features >> (32 * t->driver_features_sel));
	case VIRTIO_PCI_MSIX_CONFIG:
		return t->config_vector;
	case VIRTIO_PCI_NUM_QUEUES:
		return dev->ops->num_queues;
	case VIRTIO_PCI_STATUS:
		return dev->status;
	case VIRTIO_PCI_CFG_GEN:
		return (uint8_t)dev->config_generation;
	case VIRTIO_PCI_Q_SELECT:
		return t->queue_sel;
	case VIRTIO_PCI_Q_SIZE:
		return vq ? (vq->size ? vq->size : dev->ops->max_queue_size) : 0;
	case VIRTIO_PCI_Q_MSIX:
		return vq ? t->queue_vector[t->queue_sel] : VIRTIO_PCI_NO_VECTOR;
	case VIRTIO_PCI_Q_ENABLE:
		return vq ? vq->ready : 0;
	case VIRTIO_PCI_Q_NOTIFY_OFF:
		return vq ? t->queue_sel : 0;
	case VIRTIO_PCI_Q_DESC:
		return vq ? vq->desc_addr : 0;
	case VIRTIO_PCI_Q_AVAIL:
		return vq ? vq->avail_addr : 0;
	case VIRTIO_PCI_Q_USED:
		return vq ? vq->used_addr : 0;
	default:
		return 0;
	}
}

/* The width of the field at @offset (the ring addresses also take 4-byte halves), or 0. */
static unsigned field_size(unsigned offset, unsigned size)
{
	switch (offset) {
	case VIRTIO_PCI_DFSELECT:
	case VIRTIO_PCI_DF:
	case VIRTIO_PCI_GFSELECT:
	case VIRTIO_PCI_GF:
		return 4;
	case VIRTIO_PCI_STATUS:
	case VIRTIO_PCI_CFG_GEN:
		return 1;
	case VIRTIO_PCI_Q_DESC:
	case VIRTIO_PCI_Q_AVAIL:
	case VIRTIO_PCI_Q_USED:
		return size == 4 ? 4 : 8;
	case VIRTIO_PCI_Q_DESC + 4:
	case VIRTIO_PCI_Q_AVAIL + 4:
	case VIRTIO_PCI_Q_USED + 4:
		return 4;
	default:
		/* The 16-bit fields; odd offsets are in the middle of one. */
		return offset < VIRTIO_PCI_Q_DESC && offset % 2 == 0 ? 2 : 0;
	}
}

static uint16_t checked_vector(const struct virtio_pci *t, uint32_t v)
{
	return v < t->msix.nr ? (uint16_t)v : VIRTIO_PCI_NO_VECTOR;
}

static void set_ring_address(uint64_t *addr, unsigned offset, unsigned size, uint64_t v)
{
	if (size == 8)
		*addr = v;
	else if (offset & 4)
		*addr = (*addr & 0xffffffffULL) | v << 32;
	else
		*addr = (*addr & ~0xffffffffULL) | (uint32_t)v;
}

static void queue_write(struct virtio_pci *t, unsigned offset, unsigned size, uint64_t v)
{
	struct virtqueue *vq = selected_queue(t);

	if (!vq || (t->dev->status & VIRTIO_STATUS_DRIVER_OK)) {
		log_ratelimited(LOG_DEBUG, "%s: queue field %#x write (queue %u) dropped",
		                t->dev->ops->name, offset, t->queue_sel);
		return;
	}
	switch (offset & ~7u) {
	case VIRTIO_PCI_Q_DESC:
		set_ring_address(&vq->desc_addr, offset, size, v);
		return;
	case VIRTIO_PCI_Q_AVAIL:
		set_ring_address(&vq->avail_addr, offset, size, v);
		return;
	case VIRTIO_PCI_Q_USED:
		set_ring_address(&vq->used_addr, offset, size, v);
		return;
	}
	switch (offset) {
	case VIRTIO_PCI_Q_SIZE:
		vq->size = (uint16_t)v; /* vq_activate checks it */
		break;
	case VIRTIO_PCI_Q_MSIX:
		set_vector(&t->queue_vector[t->queue_sel], checked_vector(t, (uint32_t)v));
		break;
	case VIRTIO_PCI_Q_ENABLE:
		/* Writing 0 is not allowed (4.1.4.3.2); only a reset disables a queue. */
		if (v == 1) {
			if (!vq->size)
				vq->size = t->dev->ops->max_queue_size;
			vq->ready = true;
		}
		break;
	}
}

/* Under dev->lock. */
static void common_write(struct virtio_pci *t, unsigned offset, unsigned size, uint64_t v)
{
	struct virtio_dev *dev = t->dev;

	switch (offset) {
	case VIRTIO_PCI_DFSELECT:
		t->device_features_sel = (uint32_t)v;
		break;
	case VIRTIO_PCI_GFSELECT:
		t->driver_features_sel = (uint32_t)v;
		break;
	case VIRTIO_PCI_GF:
		virtio_write_driver_features(dev, t->driver_features_sel, (uint32_t)v);
		break;
	case VIRTIO_PCI_MSIX_CONFIG:
		set_vector(&t->config_vector, checked_vector(t, (uint32_t)v));
		break;
	case VIRTIO_PCI_STATUS:
		virtio_write_status(dev, (uint8_t)v);
		if (v == 0) {
			reset_transport(t);
			intx_set_pending(t, false);
		}
		break;
	case VIRTIO_PCI_Q_SELECT:
		t->queue_sel = (uint16_t)v;
		break;
	case VIRTIO_PCI_DF:
	case VIRTIO_PCI_NUM_QUEUES:
	case VIRTIO_PCI_CFG_GEN:
	case VIRTIO_PCI_Q_NOTIFY_OFF:
		break; /* read-only */
	default:
		queue_write(t, offset, size, v);
		break;
	}
}

/* ---- the BAR ---- */

static bool in_region(uint64_t offset, unsigned size, uint64_t start, uint64_t len)
{
	return offset >= start && offset - start < len && size <= len - (offset - start);
}

static int bar_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct virtio_pci *t = opaque;
	struct virtio_dev *dev = t->dev;
	uint64_t v = 0;

	memset(data, 0, size);
	if (in_region(offset, size, VIRTIO_PCI_MSIX_TABLE, t->msix.nr * MSIX_ENTRY_SIZE)) {
		msix_table_read(&t->msix, offset - VIRTIO_PCI_MSIX_TABLE, data, size);
		return 0;
	}
	if (in_region(offset, size, VIRTIO_PCI_MSIX_PBA, 8)) {
		msix_pba_read(&t->msix, offset - VIRTIO_PCI_MSIX_PBA, data, size);
		return 0;
	}
	pthread_mutex_lock(&dev->lock);
	if (in_region(offset, size, VIRTIO_PCI_COMMON, VIRTIO_PCI_COMMON_SIZE)) {
		unsigned off = (unsigned)offset;
		/* A ring address's high half is read at its field's offset + 4. */
		unsigned field = off >= VIRTIO_PCI_Q_DESC ? off & ~7u : off;

		if (field_size(off, size) == size) {
			v = htole64(common_read(t, field) >> (8 * (off - field)));
			memcpy(data, &v, size);
		}
	} else if (in_region(offset, size, VIRTIO_PCI_ISR, 4)) {
		if (offset == VIRTIO_PCI_ISR) {
			/* Reading the ISR acknowledges it and lowers INTx (4.1.4.5). */
			*(uint8_t *)data = (uint8_t)dev->isr;
			dev->isr = 0;
			intx_set_pending(t, false);
		}
	} else if (in_region(offset, size, VIRTIO_PCI_DEVICE, VIRTIO_PCI_DEVICE_SIZE)) {
		virtio_read_config(dev, offset - VIRTIO_PCI_DEVICE, data, size);
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static int bar_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct virtio_pci *t = opaque;
	struct virtio_dev *dev = t->dev;
	uint64_t v = 0;

	if (in_region(offset, size, VIRTIO_PCI_MSIX_TABLE, t->msix.nr * MSIX_ENTRY_SIZE)) {
		msix_table_write(&t->msix, offset - VIRTIO_PCI_MSIX_TABLE, data, size);
		return 0;
	}
	if (in_region(offset, size, VIRTIO_PCI_NOTIFY,
	              (uint64_t)dev->ops->num_queues * VIRTIO_PCI_NOTIFY_MULT)) {
		/*
		 * A doorbell no ioeventfd caught, on a vCPU thread: served on the event loop like
		 * the others. The queue is the doorbell's, not the value written.
		 */
		virtio_doorbell_ring(&t->doorbell,
		                     (offset - VIRTIO_PCI_NOTIFY) / VIRTIO_PCI_NOTIFY_MULT);
		return 0;
	}
	memcpy(&v, data, size);
	v = le64toh(v);
	pthread_mutex_lock(&dev->lock);
	if (in_region(offset, size, VIRTIO_PCI_COMMON, VIRTIO_PCI_COMMON_SIZE)) {
		if (field_size((unsigned)offset, size) == size)
			common_write(t, (unsigned)offset, size, v);
	} else if (in_region(offset, size, VIRTIO_PCI_DEVICE, VIRTIO_PCI_DEVICE_SIZE)) {
		virtio_write_config(dev, offset - VIRTIO_PCI_DEVICE, data, size);
	}
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

const struct bus_ops virtio_pci_bar_ops = {.read = bar_read, .write = bar_write};

/* ---- interrupts ---- */

/* transport.interrupt: the ISR bit is set already; any thread, dev->lock not taken here. */
static void pci_interrupt(void *opaque, int q)
{
	struct virtio_pci *t = opaque;

	if (msix_enabled(&t->msix)) {
		/* The vectors are only written under dev->lock; a stale read picks either. */
		uint16_t vector = __atomic_load_n(q < 0 ? &t->config_vector : &t->queue_vector[q],
		                                  __ATOMIC_RELAXED);

		if (vector != VIRTIO_PCI_NO_VECTOR)
			msix_notify(&t->msix, vector);
		return;
	}
	intx_set_pending(t, true);
}

/* ---- doorbells ---- */

/* An ioeventfd doorbell fired. Event-loop thread (as everything about the ioeventfds). */
static void notify_event(void *opaque, uint32_t events)
{
	struct virtio_pci_notify *n = opaque;
	uint64_t count;

	(void)events;
	if (read(n->ev.fd, &count, sizeof(count)) != (ssize_t)sizeof(count))
		return;
	virtio_notify_queue(n->t->dev, n->q);
}

/*
 * Unwatches and releases the ioeventfds. With @serve (the BAR moved), each queue is served once
 * more: a ring KVM signalled until the deassign may be in the eventfd just closed, and must not
 * be lost (a spurious notification at worst, which devices take). Event-loop thread, or the loop
 * stopped. An event epoll already reported for one of them in this round is still dispatched:
 * its struct stays valid and its fd is -1 or a fresh eventfd of the same queue.
 */
static void remove_doorbells(struct virtio_pci *t, bool serve)
{
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtio_pci_notify *n = &t->notify[q];

		if (!n->registered)
			continue;
		event_loop_del(t->loop, &n->src);
		ioeventfd_remove(&n->ev);
		n->registered = false;
		if (serve)
			virtio_notify_queue(t->dev, q);
	}
}

/*
 * t->place_work, on the event-loop thread: puts the doorbells where the BAR decodes now (none
 * when it decodes nowhere). Until this ran, a doorbell write at the new address exits to its
 * vCPU and reaches bar_write (virtio_doorbell_ring), and the old address's ioeventfds still
 * serve this device.
 */
static void place_doorbells(void *opaque)
{
	struct virtio_pci *t = opaque;
	uint64_t bar_addr;

	pthread_mutex_lock(&t->dev->lock);
	bar_addr = t->bar_addr;
	pthread_mutex_unlock(&t->dev->lock);
	if (bar_addr == t->placed_addr)
		return;
	remove_doorbells(t, true);
	t->placed_addr = bar_addr;
	if (!bar_addr)
		return;
	for (unsigned q = 0; q < t->dev->ops->num_queues; q++) {
		struct virtio_pci_notify *n = &t->notify[q];
		uint64_t addr = bar_addr + VIRTIO_PCI_NOTIFY + q * VIRTIO_PCI_NOTIFY_MULT;
		int r = ioeventfd_add(&n->ev, t->vm_fd, addr, 2, false, false, 0);

		if (r == 0) {
			n->src = (struct event_source){
			        .fd = n->ev.fd, .handler = notify_event, .opaque = n};
			r = event_loop_add(t->loop, &n->src, EPOLLIN);
			if (r < 0)
				ioeventfd_remove(&n->ev);
		}
		if (r < 0) {
			/* The doorbell still works: a vCPU exit, then t->doorbell hands it over. */
			log_ratelimited(LOG_WARN, "%s: ioeventfd for queue %u: %s",
			                t->dev->ops->name, q, strerror(-r));
			continue;
		}
		n->registered = true;
	}
}

/* ---- config space hooks ---- */

/* The PCI configuration access capability: a window onto the BAR through config space. */
static bool cfg_window(struct virtio_pci *t, uint64_t *offset, unsigned *len)
{
	const struct pci_device *d = &t->pci;
	uint32_t length = pci_config_read32(d, t->cfg_cap + CAP_LENGTH);

	*offset = pci_config_read32(d, t->cfg_cap + CAP_OFFSET);
	*len = length;
	return d->config[t->cfg_cap + CAP_BAR] == VIRTIO_PCI_BAR &&
	       (length == 1 || length == 2 || length == 4) && *offset % length == 0 &&
	       *offset + length <= VIRTIO_PCI_BAR_SIZE;
}

static bool touches_cfg_data(const struct virtio_pci *t, unsigned offset, unsigned size)
{
	return offset < t->cfg_cap + CAP_DATA + 4 && offset + size > t->cfg_cap + CAP_DATA;
}

static void config_read(struct pci_device *d, unsigned offset, unsigned size)
{
	struct virtio_pci *t = d->opaque;
	uint64_t bar_offset;
	uint8_t value[4] = {0};
	unsigned len;

	if (!touches_cfg_data(t, offset, size) || !cfg_window(t, &bar_offset, &len))
		return;
	bar_read(t, bar_offset, value, len);
	memcpy(d->config + t->cfg_cap + CAP_DATA, value, 4);
}

static void config_written(struct pci_device *d, unsigned offset, unsigned size)
{
	struct virtio_pci *t = d->opaque;
	uint64_t bar_offset;
	unsigned len;

	msix_config_written(&t->msix, offset, size);
	/* The window's data register reads the BAR when read: such reads must reach config_read. */
	if (offset < t->cfg_cap + CAP_DATA + 4 && offset + size > t->cfg_cap)
		pci_device_trap_config_reads(d);
	/*
	 * Interrupt Disable or MSI-X Enable lower an asserted INTx; clearing them re-raises one
	 * still pending (PCI 3.0, 6.2.2 and 6.8.2).
	 */
	intx_set_masked(t, (pci_config_read16(d, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) ||
	                           msix_enabled(&t->msix));
	if (!touches_cfg_data(t, offset, size) || !cfg_window(t, &bar_offset, &len))
		return;
	bar_write(t, bar_offset, d->config + t->cfg_cap + CAP_DATA, len);
}

/*
 * The BAR decodes at @addr now (0: nowhere). Host lock held, on a vCPU thread (or at set-up):
 * the event loop, which owns the ioeventfds, moves them (place_doorbells).
 */
static void bar_moved(struct pci_device *d, unsigned bar, uint64_t addr)
{
	struct virtio_pci *t = d->opaque;

	if (bar != VIRTIO_PCI_BAR || t->vm_fd < 0)
		return;
	pthread_mutex_lock(&t->dev->lock);
	t->bar_addr = addr;
	pthread_mutex_unlock(&t->dev->lock);
	event_loop_post(t->loop, &t->place_work);
}

static const struct pci_device_ops virtio_pci_device_ops = {
        .config_read = config_read,
        .config_written = config_written,
        .bar_moved = bar_moved,
};

/* ---- set-up ---- */

static uint32_t class_of(uint32_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_BLOCK:
		return 0x018000;
	case VIRTIO_ID_NET:
		return 0x020000;
	case VIRTIO_ID_CONSOLE:
		return 0x078000;
	case VIRTIO_ID_RNG:
		return 0x00ff00;
	default:
		return 0xff0000;
	}
}

static int add_cap(struct virtio_pci *t, uint8_t type, uint32_t offset, uint32_t length,
                   uint32_t extra, unsigned cap_len, const uint8_t *wmask)
{
	uint8_t cap[PCI_CFG_CAP_LEN] = {PCI_CAP_ID_VNDR, 0, (uint8_t)cap_len, type, VIRTIO_PCI_BAR};

	memcpy(cap + CAP_OFFSET, &(uint32_t){htole32(offset)}, 4);
	memcpy(cap + CAP_LENGTH, &(uint32_t){htole32(length)}, 4);
	memcpy(cap + CAP_DATA, &(uint32_t){htole32(extra)}, 4);
	return pci_device_add_capability(&t->pci, cap, cap_len, wmask);
}

static int add_caps(struct virtio_pci *t)
{
	const struct virtio_dev *dev = t->dev;
	uint8_t cfg_wmask[PCI_CFG_CAP_LEN] = {[CAP_BAR] = 0xff};
	int r;

	/* The access window's bar, offset, length and data are the driver's to write. */
	memset(cfg_wmask + CAP_OFFSET, 0xff, PCI_CFG_CAP_LEN - CAP_OFFSET);

	if ((r = add_cap(t, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON, VIRTIO_PCI_COMMON_SIZE, 0,
	                 CAP_LEN, NULL)) < 0 ||
	    (r = add_cap(t, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR, 1, 0, CAP_LEN, NULL)) < 0 ||
	    (r = add_cap(t, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY,
	                 dev->ops->num_queues * VIRTIO_PCI_NOTIFY_MULT, VIRTIO_PCI_NOTIFY_MULT,
	                 NOTIFY_CAP_LEN, NULL)) < 0)
		return r;
	if (dev->config_size && (r = add_cap(t, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE,
	                                     dev->config_size, 0, CAP_LEN, NULL)) < 0)
		return r;
	r = add_cap(t, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, PCI_CFG_CAP_LEN, cfg_wmask);
	if (r < 0)
		return r;
	t->cfg_cap = (unsigned)r;
	return 0;
}

int virtio_pci_attach(struct virtio_pci *t, struct virtio_dev *dev, struct pci_host *host,
                      int vm_fd, struct msi_router *router, unsigned intx_gsi,
                      struct event_loop *loop)
{
	unsigned id;
	int r;

	if (!dev->ops || dev->ops->num_queues > VIRTIO_MAX_QUEUES ||
	    dev->config_size > VIRTIO_PCI_DEVICE_SIZE || !loop || (vm_fd >= 0 && !router) ||
	    intx_gsi > 0xff)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->intx_lock, NULL);
	t->dev = dev;
	t->host = host;
	t->vm_fd = vm_fd;
	t->loop = loop;
	event_work_init(&t->place_work, place_doorbells, t);
	t->intx = (struct irq_line){.vm_fd = vm_fd, .gsi = intx_gsi, .irqfd = -1};
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->notify[q] = (struct virtio_pci_notify){.t = t, .q = q, .ev.fd = -1};
	reset_transport(t);
	id = dev->ops->device_id;
	pci_device_init(&t->pci, VIRTIO_PCI_VENDOR_ID, (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + id),
	                class_of(id), 1, VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_SUBSYS_ID,
	                &virtio_pci_device_ops, t);
	pci_device_set_intx(&t->pci, 1, (uint8_t)intx_gsi);
	r = virtio_doorbell_init(&t->doorbell, dev, loop);
	if (r == 0)
		r = pci_device_add_bar(&t->pci, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE,
		                       PCI_BAR_64BIT | PCI_BAR_PREFETCH, &virtio_pci_bar_ops, t);
	if (r == 0)
		r = add_caps(t);
	if (r == 0)
		r = msix_init(&t->msix, &t->pci, dev->ops->num_queues + 1, VIRTIO_PCI_BAR,
		              VIRTIO_PCI_MSIX_TABLE, VIRTIO_PCI_MSIX_PBA,
		              vm_fd >= 0 ? router : NULL);
	if (r == 0) {
		pthread_mutex_lock(&dev->lock);
		dev->transport = (struct virtio_transport){.interrupt = pci_interrupt, .opaque = t};
		pthread_mutex_unlock(&dev->lock);
		r = pci_host_add_device(host, &t->pci);
	}
	if (r < 0)
		virtio_pci_detach(t);
	return r;
}

void virtio_pci_detach(struct virtio_pci *t)
{
	struct virtio_dev *dev = t->dev;

	/* The loop is not running: a re-placement still queued is dropped, not raced. */
	if (t->loop)
		event_loop_cancel(t->loop, &t->place_work);
	remove_doorbells(t, false);
	virtio_doorbell_destroy(&t->doorbell);
	msix_destroy(&t->msix);
	if (!dev)
		return;
	pthread_mutex_lock(&dev->lock);
	if (dev->transport.opaque == t)
		dev->transport = (struct virtio_transport){0};
	pthread_mutex_unlock(&dev->lock);
	pthread_mutex_destroy(&t->intx_lock);
}

void virtio_pci_set_test_interrupts(struct virtio_pci *t, void (*intx)(void *opaque, int level),
                                    void (*msi)(void *opaque, uint64_t address, uint32_t data),
                                    void *opaque)
{
	t->test_intx = intx;
	t->test_opaque = opaque;
	t->msix.test_deliver = msi;
	t->msix.test_opaque = opaque;
}
