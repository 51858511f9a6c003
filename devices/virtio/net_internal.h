/*
 * What net.c (the device, events, queue pairs), net_tx.c (transmit), net_rx.c (receive) and
 * net_ctrl.c (the control queue) share; not for other files. Everything here runs under the
 * device's vdev.lock.
 */
#ifndef VMM_DEVICES_VIRTIO_NET_INTERNAL_H
#define VMM_DEVICES_VIRTIO_NET_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/net.h"

#define BOUNCE_LEN (VIRTIO_NET_MAX_PACKET + 1) /* a longer packet shows as cut */

static inline unsigned rx_queue(const struct virtio_net_pair *p)
{
	return 2 * p->index;
}

static inline unsigned tx_queue(const struct virtio_net_pair *p)
{
	return 2 * p->index + 1;
}

/* Where the driver finds the control queue (5.1.2): after every pair with MQ, else at 2. */
static inline unsigned ctrl_queue(const struct virtio_net *n)
{
	return n->mq ? 2 * n->nr_pairs : 2;
}

/* What queue work left to do once the lock is dropped. */
struct work {
	uint32_t pushed; /* bit q: queue q got used entries */
	const char *bad; /* a malformed chain: the device needs a reset */
	bool link_down;
};

static inline bool queue_live(const struct virtio_net *n, unsigned q)
{
	const struct virtio_dev *dev = &n->vdev;

	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && dev->queues[q].ready;
}

/* The backends are gone: stop watching them, link down (net.c). */
void net_backend_fail(struct virtio_net *n, struct work *w, const char *why);
/*
 * Uses the first @pairs pairs (1 to nr_pairs): attaches and watches those newly enabled, sends
 * what the ones to be disabled hold, then detaches them and forgets their stash (net.c).
 * Returns 0, or -errno when a backend refused (the pairs then stay as they were, as far as
 * the backends allow).
 */
int net_set_pairs(struct virtio_net *n, unsigned pairs, struct work *w);
/*
 * Sends pair @p's transmit chains in ring order, held chain first, up to a batch. Returns 0
 * when it found the ring empty (the caller on the loop then calls net_tx_idle), 1 when it
 * stopped otherwise (a full backend, the batch limit, a disabled pair), -EINVAL for a malformed
 * chain (w->bad set) (net_tx.c).
 */
int net_tx_run(struct virtio_net_pair *p, struct work *w);
/*
 * Pair @p's transmit ring was found empty (event-loop thread): polls it for the pair's
 * window, notifications off, with tx_poll.work posted; else turns notifications on, posting
 * it when chains came meanwhile (net_tx.c).
 */
void net_tx_idle(struct virtio_net_pair *p);
/*
 * A disabled pair's transmit chains (and one it held) go back unsent: the driver may not use
 * the pair (5.1.6.5.5). At most a ring's worth, so the driver's next kick finds the rest
 * (net_tx.c).
 */
void net_tx_discard(struct virtio_net_pair *p, struct work *w);
/* Serves the control queue (net_ctrl.c). */
void net_ctrl_run(struct virtio_net *n, struct work *w);
/* Receives up to a batch of packets into pair @p's receive ring (net_rx.c). */
void net_rx_run(struct virtio_net_pair *p, struct work *w);
/*
 * Forgets @p's stashed receive chains, giving them back to the ring when @give_back (the
 * driver then finds them again, a pair disabled), and a packet in hand (counted as dropped)
 * (net_rx.c).
 */
void net_rx_forget(struct virtio_net_pair *p, bool give_back);

#endif
