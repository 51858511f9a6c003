/*
 * virtio-net's receive path (net.h, net.c): chains taken from the receive ring into a stash,
 * the backend's next packet read straight into them (a bounce buffer behind for what does not
 * fit), more chains taken as the driver posts them for a packet that overflowed, then the
 * packet handed over: num_buffers, its used entries, one interrupt per batch. Everything here
 * runs under vdev.lock, on the event-loop thread (net.c's notifications and backend events).
 */
#include <errno.h>
#include <string.h>

#include "devices/virtio/iov.h"
#include "devices/virtio/net.h"
#include "devices/virtio/net_internal.h"
#include "vmm/log.h"

#define HDR_NUM_BUFFERS 10 /* offset of num_buffers in the header */
#define RX_BATCH        64

static bool rx_room(const struct virtio_net *n)
{
	return n->rx_nr < VIRTIO_NET_QUEUE_SIZE && n->rx_nr < n->vdev.queues[RXQ].size &&
	       VIRTIO_NET_RX_MAX_IOV - n->rx_nr_iov >= VQ_MAX_IOV;
}

/* Moves one receive chain from the ring to the stash (rx_room first): 1, 0 or -errno. */
static int rx_stash_one(struct virtio_net *n)
{
	const struct vq_chain *c = &n->chain;
	int r = vq_pop_chain(&n->vdev.queues[RXQ], &n->chain);

	if (r <= 0)
		return r;
	if (c->nr_out || c->in_len < VIRTIO_NET_HDR_LEN)
		return -EINVAL;
	memcpy(&n->rx_iov[n->rx_nr_iov], c->iov, c->nr_in * sizeof(c->iov[0]));
	n->rx[n->rx_nr++] = (struct virtio_net_rx_buf){
	        .len = c->in_len, .head = c->head, .nr_iov = (uint16_t)c->nr_in};
	n->rx_nr_iov += c->nr_in;
	n->rx_cap += c->in_len;
	return 1;
}

/* Stashes chains until a largest packet fits, or one chain without MRG_RXBUF. */
static int rx_fill(struct virtio_net *n)
{
	int r = 0;

	while (rx_room(n) && (!n->rx_nr || (n->mrg_rxbuf && n->rx_cap < VIRTIO_NET_MAX_PACKET))) {
		r = rx_stash_one(n);
		if (r <= 0)
			break;
	}
	return r < 0 ? r : 0;
}

static void rx_drop(struct virtio_net *n, const char *why)
{
	log_ratelimited(LOG_WARN, "net '%s': received packet of %llu bytes dropped: %s", n->name,
	                (unsigned long long)n->rx_len, why);
	n->stats.rx_dropped++;
	n->rx_len = 0;
}

/*
 * Offloads in the header the backend wrote that the driver did not take (packets queued
 * before the TAP learnt this driver's features) cannot be delivered. DATA_VALID alone may go
 * to any driver (in 2024 the virtio TC dropped the rule that flags be zero without
 * GUEST_CSUM). Returns why not, or NULL.
 */
static const char *rx_check_header(const struct virtio_net *n)
{
	uint8_t h[2];

	iov_to_buf(n->rx_iov, n->rx[0].nr_iov, 0, h, sizeof(h));
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
static int rx_read(struct virtio_net *n, struct work *w)
{
	const char *why = NULL;
	ssize_t r;

	n->rx_iov[n->rx_nr_iov] = (struct iovec){.iov_base = n->bounce, .iov_len = BOUNCE_LEN};
	r = n->be.ops->recv(n->be.opaque, n->rx_iov, (int)n->rx_nr_iov + 1);
	if (r == -EAGAIN || r == -EINTR)
		return 0;
	if (r <= 0) {
		net_backend_fail(n, w, r ? strerror((int)-r) : "end of file");
		return 0;
	}
	n->rx_len = (uint64_t)r;
	n->rx_placed = MIN(n->rx_len, n->rx_cap);
	n->rx_bounce_off = n->rx_cap;
	if (n->rx_len < VIRTIO_NET_HDR_LEN)
		why = "shorter than the header";
	else if (n->rx_len > VIRTIO_NET_MAX_PACKET)
		why = "longer than the largest packet";
	else
		why = rx_check_header(n);
	if (why) {
		rx_drop(n, why);
		return 2;
	}
	return 1;
}

/* Hands the placed packet over: num_buffers, one used entry per chain it fills, unstash them. */
static void rx_finish(struct virtio_net *n, struct work *w)
{
	struct virtqueue *vq = &n->vdev.queues[RXQ];
	uint64_t left = n->rx_len;
	unsigned k = 0, nr_iov = 0;
	uint16_t num;

	for (; left && k < n->rx_nr; k++)
		left -= MIN(left, n->rx[k].len); /* MIN evaluates its arguments twice */
	num = htole16((uint16_t)k);
	iov_from_buf(n->rx_iov, n->rx[0].nr_iov, HDR_NUM_BUFFERS, &num, sizeof(num));
	left = n->rx_len;
	for (unsigned i = 0; i < k; i++) {
		uint32_t len = (uint32_t)MIN(left, n->rx[i].len);

		/* All of the packet's entries become visible to the driver at once. */
		if (vq_add_used(vq, n->rx[i].head, len) == 0)
			w->pushed[RXQ] = true;
		left -= len;
		nr_iov += n->rx[i].nr_iov;
		n->rx_cap -= n->rx[i].len;
	}
	vq_publish_used(vq);
	memmove(n->rx_iov, n->rx_iov + nr_iov, (n->rx_nr_iov - nr_iov) * sizeof(n->rx_iov[0]));
	memmove(n->rx, n->rx + k, (n->rx_nr - k) * sizeof(n->rx[0]));
	n->rx_nr -= k;
	n->rx_nr_iov -= nr_iov;
	n->stats.rx_packets++;
	n->stats.rx_bytes += n->rx_len - VIRTIO_NET_HDR_LEN;
	n->rx_len = 0;
}

/*
 * Copies the rest of the packet in hand from the bounce buffer into further chains, then
 * hands it over. Returns 1 when done (delivered or dropped), 0 when it waits for receive
 * buffers, -errno for a malformed chain.
 */
static int rx_place(struct virtio_net *n, struct work *w)
{
	while (n->rx_placed < n->rx_len) {
		const struct virtio_net_rx_buf *b;
		uint64_t part;
		int r;

		if (!n->mrg_rxbuf) {
			rx_drop(n, "larger than the receive buffer (no MRG_RXBUF)");
			return 1;
		}
		if (!rx_room(n)) {
			rx_drop(n, "larger than all receive buffers together");
			return 1;
		}
		r = rx_stash_one(n);
		if (r <= 0)
			return r;
		b = &n->rx[n->rx_nr - 1];
		part = MIN(b->len, n->rx_len - n->rx_placed);
		iov_from_buf(&n->rx_iov[n->rx_nr_iov - b->nr_iov], b->nr_iov, 0,
		             n->bounce + (n->rx_placed - n->rx_bounce_off), part);
		n->rx_placed += part;
	}
	rx_finish(n, w);
	return 1;
}

/* One packet: 1 to go on, 0 to stop (backend empty, or waiting for buffers), -errno. */
static int rx_step(struct virtio_net *n, struct work *w)
{
	int r;

	if (!n->rx_len) {
		r = rx_fill(n);
		if (r < 0)
			return r;
		if (!n->rx_nr) {
			n->rx_stalled = true;
			return 0;
		}
		r = rx_read(n, w);
		if (r != 1)
			return r == 2;
	}
	r = rx_place(n, w);
	if (r == 0)
		n->rx_stalled = true;
	return r;
}

void net_rx_run(struct virtio_net *n, struct work *w)
{
	int r = 1;

	n->rx_stalled = false;
	for (unsigned i = 0; i < RX_BATCH && r > 0 && queue_live(n, RXQ) && !n->backend_failed; i++)
		r = rx_step(n, w);
	if (r < 0)
		w->bad = "virtio-net: malformed receive chain";
}
