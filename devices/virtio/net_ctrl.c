/*
 * virtio-net's control queue (5.1.6.5): each chain is {u8 class; u8 command; data...} readable,
 * then the u8 ack the device writes. RX mode and MAC table commands are checked and recorded;
 * MQ VQ_PAIRS_SET changes the number of queue pairs in use (net_set_pairs). Runs under
 * vdev.lock on the event-loop thread (net.c's notifications).
 */
#include <endian.h>
#include <stdint.h>

#include "devices/virtio/iov.h"
#include "devices/virtio/net.h"
#include "devices/virtio/net_internal.h"
#include "vmm/log.h"

static uint8_t ctrl_rx(struct virtio_net *n, const struct vq_chain *c, uint8_t cmd)
{
	uint8_t on;

	if ((cmd != VIRTIO_NET_CTRL_RX_PROMISC && cmd != VIRTIO_NET_CTRL_RX_ALLMULTI) ||
	    c->out_len != 3 || iov_to_buf(c->iov, c->nr_out, 2, &on, 1) != 1)
		return VIRTIO_NET_ERR;
	if (cmd == VIRTIO_NET_CTRL_RX_PROMISC)
		n->promisc = on;
	else
		n->allmulti = on;
	return VIRTIO_NET_OK;
}

/*
 * MAC_TABLE_SET: a unicast and a multicast table, each {le32 entries; u8 mac[entries][6]}.
 * Checked and acknowledged, not applied: the TAP delivers what the host sends it, and
 * receive filtering is best effort (5.1.6.5.1).
 */
static uint8_t ctrl_mac(const struct vq_chain *c, uint8_t cmd)
{
	uint64_t off = 2;

	if (cmd != VIRTIO_NET_CTRL_MAC_TABLE_SET)
		return VIRTIO_NET_ERR;
	for (unsigned t = 0; t < 2; t++) {
		uint32_t entries;

		if (iov_to_buf(c->iov, c->nr_out, off, &entries, sizeof(entries)) != 4)
			return VIRTIO_NET_ERR;
		off += 4 + 6ULL * le32toh(entries);
		if (off > c->out_len)
			return VIRTIO_NET_ERR;
	}
	return off == c->out_len ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
}

/*
 * MQ VQ_PAIRS_SET {le16 virtqueue_pairs}: 1 to max_virtqueue_pairs, else VIRTIO_NET_ERR
 * (5.1.6.5.5). The pairs change before the ack is in the used ring, so no packet reaches a
 * receive queue beyond the count once the driver sees the ack.
 */
static uint8_t ctrl_mq(struct virtio_net *n, const struct vq_chain *c, uint8_t cmd, struct work *w)
{
	uint16_t pairs;

	if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || c->out_len != 4 ||
	    iov_to_buf(c->iov, c->nr_out, 2, &pairs, 2) != 2)
		return VIRTIO_NET_ERR;
	pairs = le16toh(pairs);
	if (pairs < 1 || pairs > n->nr_pairs) {
		log_ratelimited(LOG_WARN, "net '%s': the driver asked for %u queue pairs of %u",
		                n->name, pairs, n->nr_pairs);
		return VIRTIO_NET_ERR;
	}
	return net_set_pairs(n, pairs, w) == 0 ? VIRTIO_NET_OK : VIRTIO_NET_ERR;
}

/* Runs one command; the status byte must be the only writable byte. */
static uint8_t ctrl_command(struct virtio_net *n, const struct vq_chain *c, struct work *w)
{
	uint8_t hdr[2] = {0xff, 0xff};
	uint8_t ack = VIRTIO_NET_ERR;

	if (c->in_len == 1 && iov_to_buf(c->iov, c->nr_out, 0, hdr, 2) == 2) {
		if (hdr[0] == VIRTIO_NET_CTRL_RX &&
		    virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_RX))
			ack = ctrl_rx(n, c, hdr[1]);
		else if (hdr[0] == VIRTIO_NET_CTRL_MAC &&
		         virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_RX))
			ack = ctrl_mac(c, hdr[1]);
		else if (hdr[0] == VIRTIO_NET_CTRL_MQ && n->mq)
			ack = ctrl_mq(n, c, hdr[1], w);
	}
	if (ack != VIRTIO_NET_OK)
		log_ratelimited(LOG_DEBUG, "net '%s': control command %u.%u refused", n->name,
		                hdr[0], hdr[1]);
	return ack;
}

void net_ctrl_run(struct virtio_net *n, struct work *w)
{
	unsigned q = ctrl_queue(n);
	struct virtqueue *vq = &n->vdev.queues[q];
	const struct vq_chain *c = &n->ctrl_chain;
	int r = 0;

	/*
	 * A driver has at most a queue's worth of commands outstanding; more means it published
	 * heads again, and those wait for its next notification.
	 */
	for (unsigned i = 0; i < VIRTIO_NET_QUEUE_SIZE && queue_live(n, q); i++) {
		uint8_t ack;
		uint32_t len = 0;

		r = vq_pop_chain(vq, &n->ctrl_chain);
		if (r <= 0)
			break;
		ack = ctrl_command(n, c, w);
		if (c->in_len)
			len = (uint32_t)iov_from_buf(c->iov + c->nr_out, c->nr_in, 0, &ack, 1);
		else
			log_ratelimited(LOG_WARN, "net '%s': control command without a status byte",
			                n->name);
		if (vq_push_used(vq, c->head, len) == 0)
			w->pushed |= 1u << q;
	}
	if (r < 0)
		w->bad = "virtio-net: malformed control chain";
}
