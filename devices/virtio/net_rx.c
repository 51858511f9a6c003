/*
 * virtio-net's receive path (net.h, net.c): chains taken from the receive ring into a stash,
 * the backend's next packet read straight into them (a bounce buffer behind for what does not
 * fit), more chains taken as the driver posts them for a packet that overflowed, then the
 * packet handed over: num_buffers, its used entries, one interrupt per batch. Each queue pair
 * has its own stash and packet in hand. Everything here runs under vdev.lock, on the event-loop
 * thread (net.c's notifications and backend events), but net_rx_forget (also a reset's).
 */
#include <errno.h>
#include <string.h>

#include "devices/virtio/iov.h"
#include "devices/virtio/net.h"
#include "devices/virtio/net_internal.h"
#include "vmm/log.h"

#define HDR_NUM_BUFFERS 10 /* offset of num_buffers in the header */
#define RX_BATCH        64

static bool rx_room(const struct virtio_net_pair *p)
{
	return p->rx_nr < VIRTIO_NET_QUEUE_SIZE &&
	       p->rx_nr < p->net->vdev.queues[rx_queue(p)].size &&
	       VIRTIO_NET_RX_MAX_IOV - p->rx_nr_iov >= VQ_MAX_IOV;
}

/* Moves one receive chain from the ring to the stash (rx_room first): 1, 0 or -errno. */
static int rx_stash_one(struct virtio_net_pair *p)
{
	const struct vq_chain *c = &p->chain;
	int r = vq_pop_chain(&p->net->vdev.queues[rx_queue(p)], &p->chain);

	if (r <= 0)
		return r;
	if (c->nr_out || c->in_len < VIRTIO_NET_HDR_LEN)
		return -EINVAL;
	memcpy(&p->rx_iov[p->rx_nr_iov], c->iov, c->nr_in * sizeof(c->iov[0]));
	p->rx[p->rx_nr++] = (struct virtio_net_rx_buf){
	        .len = c->in_len, .head = c->head, .nr_iov = (uint16_t)c->nr_in};
	p->rx_nr_iov += c->nr_in;
	p->rx_cap += c->in_len;
	return 1;
}

/*
 * Stashes chains until a largest packet fits, or one chain without MRG_RXBUF. While the device
 * has receive buffers it needs no notification when the driver posts more (a packet from the
 * backend is what makes it look), so they stay off until it runs out (rx_wait_buffers), as in
 * QEMU: nested, every refill notification is an exit.
 */
static int rx_fill(struct virtio_net_pair *p)
{
	int r = 0;

	vq_notify_off(&p->net->vdev.queues[rx_queue(p)]);
	while (rx_room(p) &&
	       (!p->rx_nr || (p->net->mrg_rxbuf && p->rx_cap < VIRTIO_NET_MAX_PACKET))) {
		r = rx_stash_one(p);
		if (r <= 0)
			break;
	}
	return r < 0 ? r : 0;
}

static void rx_drop(struct virtio_net_pair *p, const char *why)
{
	log_ratelimited(LOG_WARN, "net '%s': received packet of %llu bytes dropped: %s",
	                p->net->name, (unsigned long long)p->rx_len, why);
	p->stats.rx_dropped++;
	p->rx_len = 0;
}

/*
 * Offloads in the header the backend wrote that the driver did not take (packets queued
 * before the TAP learnt this driver's features) cannot be delivered. DATA_VALID alone may go
 * to any driver (in 2024 the virtio TC dropped the rule that flags be zero without
 * GUEST_CSUM). Returns why not, or NULL.
 */
static const char *rx_check_header(const struct virtio_net_pair *p)
{
	const struct virtio_net *n = p->net;
	uint8_t h[2];

	iov_to_buf(p->rx_iov, p->rx[0].nr_iov, 0, h, sizeof(h));
	if ((h[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !n->guest_csum)
		return "partial checksum not negotiated";
	if (h[1] != VIRTIO_NET_HDR_GSO_NONE &&
	    !(h[1] == VIRTIO_NET_HDR_GSO_TCPV4 && n->guest_tso4) &&
	    !(h[1] == VIRTIO_NET_HDR_GSO_TCPV6 && n->guest_tso6))
		return "segmentation offload not negotiated";
	return NULL;
}

/*
 * Reads the next packet behind the stash. Returns 1 with the packet in hand (rx_len set), 2
 * when it was dropped, 0 when none waits or the backend is gone.
 */
static int rx_read(struct virtio_net_pair *p, struct work *w)
{
	const char *why = NULL;
	ssize_t r;

	p->rx_iov[p->rx_nr_iov] = (struct iovec){.iov_base = p->bounce, .iov_len = BOUNCE_LEN};
	r = p->be.ops->recv(p->be.opaque, p->rx_iov, (int)p->rx_nr_iov + 1);
	if (r == -EAGAIN || r == -EINTR)
		return 0;
	if (r <= 0) {
		net_backend_fail(p->net, w, r ? strerror((int)-r) : "end of file");
		return 0;
	}
	p->rx_len = (uint64_t)r;
	p->rx_placed = MIN(p->rx_len, p->rx_cap);
	p->rx_bounce_off = p->rx_cap;
	if (p->rx_len < VIRTIO_NET_HDR_LEN)
		why = "shorter than the header";
	else if (p->rx_len > VIRTIO_NET_MAX_PACKET)
		why = "longer than the largest packet";
	else
		why = rx_check_header(p);
	if (why) {
		rx_drop(p, why);
		return 2;
	}
	return 1;
}

/* Hands the placed packet over: num_buffers, one used entry per chain it fills, unstash them. */
static void rx_finish(struct virtio_net_pair *p, struct work *w)
{
	struct virtqueue *vq = &p->net->vdev.queues[rx_queue(p)];
	uint64_t left = p->rx_len;
	unsigned k = 0, nr_iov = 0;
	uint16_t num;

	for (; left && k < p->rx_nr; k++)
		left -= MIN(left, p->rx[k].len); /* MIN evaluates its arguments twice */
	num = htole16((uint16_t)k);
	iov_from_buf(p->rx_iov, p->rx[0].nr_iov, HDR_NUM_BUFFERS, &num, sizeof(num));
	left = p->rx_len;
	for (unsigned i = 0; i < k; i++) {
		uint32_t len = (uint32_t)MIN(left, p->rx[i].len);

		/* All of the packet's entries become visible to the driver at once. */
		if (vq_add_used(vq, p->rx[i].head, len) == 0)
			w->pushed |= 1u << rx_queue(p);
		left -= len;
		nr_iov += p->rx[i].nr_iov;
		p->rx_cap -= p->rx[i].len;
	}
	vq_publish_used(vq);
	memmove(p->rx_iov, p->rx_iov + nr_iov, (p->rx_nr_iov - nr_iov) * sizeof(p->rx_iov[0]));
	memmove(p->rx, p->rx + k, (p->rx_nr - k) * sizeof(p->rx[0]));
	p->rx_nr -= k;
	p->rx_nr_iov -= nr_iov;
	p->stats.rx_packets++;
	p->stats.rx_bytes += p->rx_len - VIRTIO_NET_HDR_LEN;
	p->rx_len = 0;
}

/*
 * Copies the rest of the packet in hand from the bounce buffer into further chains, then
 * hands it over. Returns 1 when done (delivered or dropped), 0 when it waits for receive
 * buffers, -errno for a malformed chain.
 */
static int rx_place(struct virtio_net_pair *p, struct work *w)
{
	while (p->rx_placed < p->rx_len) {
		const struct virtio_net_rx_buf *b;
		uint64_t part;
		int r;

		if (!p->net->mrg_rxbuf) {
			rx_drop(p, "larger than the receive buffer (no MRG_RXBUF)");
			return 1;
		}
		if (!rx_room(p)) {
			rx_drop(p, "larger than all receive buffers together");
			return 1;
		}
		r = rx_stash_one(p);
		if (r <= 0)
			return r;
		b = &p->rx[p->rx_nr - 1];
		part = MIN(b->len, p->rx_len - p->rx_placed);
		iov_from_buf(&p->rx_iov[p->rx_nr_iov - b->nr_iov], b->nr_iov, 0,
		             p->bounce + (p->rx_placed - p->rx_bounce_off), part);
		p->rx_placed += part;
	}
	rx_finish(p, w);
	return 1;
}

/*
 * Out of receive buffers: notifications back on, then one more look. Returns 1 when chains came
 * meanwhile (go on; the driver may not have notified them), else 0, stalled until a notify.
 */
static int rx_wait_buffers(struct virtio_net_pair *p)
{
	if (vq_notify_on(&p->net->vdev.queues[rx_queue(p)]))
		return 1;
	p->rx_stalled = true;
	return 0;
}

/* One packet: 1 to go on, 0 to stop (backend empty, or waiting for buffers), -errno. */
static int rx_step(struct virtio_net_pair *p, struct work *w)
{
	int r;

	if (!p->rx_len) {
		r = rx_fill(p);
		if (r < 0)
			return r;
		if (!p->rx_nr)
			return rx_wait_buffers(p);
		r = rx_read(p, w);
		if (r != 1)
			return r == 2;
	}
	r = rx_place(p, w);
	return r == 0 ? rx_wait_buffers(p) : r;
}

void net_rx_run(struct virtio_net_pair *p, struct work *w)
{
	const struct virtio_net *n = p->net;
	int r = 1;

	p->rx_stalled = false;
	for (unsigned i = 0; i < RX_BATCH && r > 0 && p->enabled && queue_live(n, rx_queue(p)) &&
	                     !n->backend_failed;
	     i++)
		r = rx_step(p, w);
	if (r < 0)
		w->bad = "virtio-net: malformed receive chain";
}

void net_rx_forget(struct virtio_net_pair *p, bool give_back)
{
	struct virtqueue *vq = &p->net->vdev.queues[rx_queue(p)];

	if (p->rx_len) {
		log_debug("net '%s': packet in hand on pair %u dropped", p->net->name, p->index);
		p->stats.rx_dropped++;
	}
	/* The stash is the chains taken last (as for a snapshot): the ring has them again. */
	if (give_back && vq->active)
		vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - p->rx_nr);
	p->rx_len = p->rx_placed = p->rx_bounce_off = 0;
	p->rx_nr = p->rx_nr_iov = 0;
	p->rx_cap = 0;
	p->rx_stalled = false;
}
