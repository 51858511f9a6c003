/*
 * A virtio-pci function in a snapshot, one part per device: its config space (BARs, command,
 * capabilities), MSI-X table and PBA, INTx, the transport's selectors and vectors, then the
 * virtio core (virtio_snapshot.c). Loaded in that order before the VM runs: the BAR decodes
 * where the guest had put it (its doorbells follow once the event loop runs), the vectors are
 * routed again, and every live queue gets an interrupt and a notification (virtio_dev_resume).
 * Before anything is saved, the device finishes what it has in flight (ops->quiesce).
 */
#include <errno.h>
#include <stdio.h>

#include "devices/virtio/virtio_pci.h"
#include "vmm/snapshot.h"

static void pci_quiesce(void *opaque)
{
	struct virtio_pci *t = opaque;

	if (t->dev->ops->quiesce)
		t->dev->ops->quiesce(t->dev);
}

static int pci_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct virtio_pci *t = opaque;

	(void)err;
	(void)errlen;
	pci_device_save(t->host, &t->pci, w);
	msix_save(&t->msix, w);
	pthread_mutex_lock(&t->intx_lock);
	snap_put_u8(w, t->intx_pending);
	pthread_mutex_unlock(&t->intx_lock);
	pthread_mutex_lock(&t->dev->lock);
	snap_put_u32(w, t->device_features_sel);
	snap_put_u32(w, t->driver_features_sel);
	snap_put_u16(w, t->queue_sel);
	snap_put_u16(w, t->config_vector);
	for (unsigned q = 0; q < t->dev->ops->num_queues; q++)
		snap_put_u16(w, t->queue_vector[q]);
	virtio_dev_save(t->dev, w);
	pthread_mutex_unlock(&t->dev->lock);
	return 0;
}

static int pci_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct virtio_pci *t = opaque;
	unsigned queues = t->dev->ops->num_queues;
	uint16_t vectors[VIRTIO_MAX_QUEUES];
	uint32_t device_sel, driver_sel;
	uint16_t queue_sel, config_vector;
	bool intx_pending;
	int ret = pci_device_load(t->host, &t->pci, c, err, errlen);

	if (!ret)
		ret = msix_load(&t->msix, c, err, errlen);
	if (ret)
		return ret;
	intx_pending = snap_get_u8(c) != 0;
	device_sel = snap_get_u32(c);
	driver_sel = snap_get_u32(c);
	queue_sel = snap_get_u16(c);
	config_vector = snap_get_u16(c);
	for (unsigned q = 0; q < queues; q++)
		vectors[q] = snap_get_u16(c);
	ret = virtio_dev_load(t->dev, c, err, errlen);
	if (ret)
		return ret;
	virtio_pci_intx_restore(t, intx_pending);
	pthread_mutex_lock(&t->dev->lock);
	t->device_features_sel = device_sel;
	t->driver_features_sel = driver_sel;
	t->queue_sel = queue_sel;
	/* Read by pci_interrupt without the lock: as set_vector stores them. */
	__atomic_store_n(&t->config_vector, config_vector, __ATOMIC_RELAXED);
	for (unsigned q = 0; q < queues; q++)
		__atomic_store_n(&t->queue_vector[q], vectors[q], __ATOMIC_RELAXED);
	pthread_mutex_unlock(&t->dev->lock);
	virtio_dev_resume(t->dev, &t->doorbell);
	return 0;
}

int virtio_pci_snapshot_add(struct virtio_pci *t, struct snapshot_parts *parts, uint32_t instance)
{
	if (!t->dev->ops->snapshots) {
		snapshot_unsupported(parts, t->dev->ops->name);
		return 0;
	}
	return snapshot_add_quiescing(parts, "VPCI", instance, pci_quiesce, pci_save, pci_load, t);
}
