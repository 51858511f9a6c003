/*
 * What net.c (the device, transmit, control, events) and net_rx.c (the receive path) share;
 * not for other files. Everything here runs under the device's vdev.lock.
 */
#ifndef VMM_DEVICES_VIRTIO_NET_INTERNAL_H
#define VMM_DEVICES_VIRTIO_NET_INTERNAL_H

#include <stdbool.h>

#include "devices/virtio/net.h"

#define RXQ  VIRTIO_NET_RX_QUEUE
#define TXQ  VIRTIO_NET_TX_QUEUE
#define CTLQ VIRTIO_NET_CTRL_QUEUE

#define BOUNCE_LEN (VIRTIO_NET_MAX_PACKET + 1) /* a longer packet shows as cut */

/* What queue work left to do once the lock is dropped. */
struct work {
	bool pushed[3];
	const char *bad; /* a malformed chain: the device needs a reset */
	bool link_down;
};

static inline bool queue_live(const struct virtio_net *n, unsigned q)
{
	const struct virtio_dev *dev = &n->vdev;

	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && dev->queues[q].ready;
}

/* The backend is gone: stop watching it, link down (net.c). */
void net_backend_fail(struct virtio_net *n, struct work *w, const char *why);
/* Receives up to a batch of packets into the receive ring (net_rx.c). */
void net_rx_run(struct virtio_net *n, struct work *w);

#endif
