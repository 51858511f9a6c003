/*
 * Split virtqueues (virtio 1.x, section 2.7): the one module that reads descriptor tables and
 * rings from guest memory. Every index, address and length comes from the guest and is
 * checked here: heads and next indices below the queue size, chains bounded by the queue size
 * (no loops), indirect tables only when negotiated, not nested, a multiple of 16 bytes, and
 * every buffer translated through gpa_to_hva for its whole length.
 */
#ifndef VMM_DEVICES_VIRTIO_VIRTQUEUE_H
#define VMM_DEVICES_VIRTIO_VIRTQUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/memory.h"
#include "vmm/util.h"

#define VQ_MAX_SIZE 1024 /* largest queue size a device may offer (power of two) */
#define VQ_MAX_IOV  260  /* buffers per chain a device may get (>= seg_max + 2 for blk) */

struct virtqueue {
	const struct guest_memory *mem;
	uint16_t size; /* set by the driver, a power of two <= max */
	bool ready;    /* the driver enabled the queue */
	uint64_t desc_addr, avail_addr, used_addr;
	bool event_idx; /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool indirect;  /* VIRTIO_F_INDIRECT_DESC negotiated */
	/* Device-side state. */
	bool active; /* vq_activate accepted the layout: the host views below are valid */
	uint8_t *desc_hva, *avail_hva, *used_hva; /* the rings, translated once for their length */
	uint16_t last_avail_idx;
	uint16_t used_idx;
	uint16_t signalled_used;
	bool signalled_used_valid;
	bool notify_off; /* vq_notify_off: the device polls, the driver need not notify */
};

/* One request: device-readable buffers first, then device-writable ones. */
struct vq_chain {
	uint16_t head;
	unsigned nr_out, nr_in;   /* iov[0..nr_out) readable, iov[nr_out..nr_out+nr_in) writable */
	uint64_t out_len, in_len; /* total bytes of each kind */
	struct iovec iov[VQ_MAX_IOV];
};

/*
 * Checks a queue the driver enabled (@vq->mem, size and ring addresses set, all
 * guest-controlled but mem): size a power of two and <= @max_size (<= VQ_MAX_SIZE), rings
 * aligned (desc 16, avail 2, used 4) and each wholly inside one RAM region. Keeps host views
 * of the rings and resets the device-side indices. Returns 0 or -EINVAL (queue left inactive).
 *
 * Threads: the vq_* functions on one queue must not run concurrently; devices call them
 * under their dev->lock. Guest memory is read with single fetches and the barriers of 2.7.
 */
int vq_activate(struct virtqueue *vq, uint16_t max_size);
/* Forgets everything (device reset). */
void vq_reset(struct virtqueue *vq);

/*
 * Takes the next available chain into @chain. Returns 1 when a chain was taken, 0 when the
 * ring is empty, -EINVAL for a malformed ring or chain (bad index, loop, nested or misaligned
 * indirect table, too many buffers, readable after writable) and -EFAULT for a buffer outside guest
 * RAM; after an error the device should set DEVICE_NEEDS_RESET (the chain is not consumed). Returns
 * 0 for a queue that is not active. Zero-length buffers are kept (iov_len 0) but their address must
 * still lie in guest RAM; a chain of more than 2^32 bytes in total is malformed (2.7.5).
 *
 * With EVENT_IDX the driver is asked to notify only when this finds the ring empty (avail_event
 * is left behind while chains remain, as vhost does), so a driver filling the ring during a
 * batch does not kick for every chain. A device that stops taking chains with some left must
 * therefore come back to them by itself (batch limit, backend ready), not wait for a kick.
 */
int vq_pop_chain(struct virtqueue *vq, struct vq_chain *chain);

/*
 * Returns @head to the driver with @len bytes written: writes the used entry, then publishes
 * the new used idx (release). Returns 0, or -EINVAL when the queue is not active or @head is
 * not below its size (a device bug).
 */
int vq_push_used(struct virtqueue *vq, uint16_t head, uint32_t len);

/*
 * The two halves of vq_push_used, for entries the driver must see together (a packet spread
 * over several chains): vq_add_used writes an entry without publishing it (same returns),
 * vq_publish_used then publishes every entry added so far at once.
 */
int vq_add_used(struct virtqueue *vq, uint16_t head, uint32_t len);
void vq_publish_used(struct virtqueue *vq);

/*
 * The driver's available index as published (acquire), or last_avail_idx for a queue that is
 * not active: chains the driver made available up to now end there.
 */
uint16_t vq_avail_idx(struct virtqueue *vq);

/*
 * Polling (a device that looks at the ring by itself for a while): vq_notify_off asks the driver
 * not to notify, with VRING_USED_F_NO_NOTIFY, or with EVENT_IDX by putting avail_event behind
 * the chains taken (so the driver's next ones do not cross it; vq_pop_chain stops moving it up
 * when it finds the ring empty). A driver may still notify; that is harmless. vq_notify_on asks
 * for notifications again and then looks at the ring once more: true means chains arrived that
 * the driver may not have notified (it published them before it saw the request), so the
 * device must serve them without waiting for a notification. No-ops on an inactive queue.
 */
void vq_notify_off(struct virtqueue *vq);
bool vq_notify_on(struct virtqueue *vq) MUST_CHECK;
/* True when the driver has made chains available that were not taken yet (polling's check). */
bool vq_has_avail(struct virtqueue *vq);

/*
 * True when the driver wants an interrupt for the used entries pushed since the last call
 * (used_event with EVENT_IDX, else the NO_INTERRUPT flag); false when nothing was pushed since
 * or the queue is not active. Issues a full barrier before reading the driver's fields.
 */
bool vq_should_notify(struct virtqueue *vq);

#endif
