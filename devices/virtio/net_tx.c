/*
 * virtio-net's transmit path (net.h, net.c): each chain's readable buffers are one packet,
 * header first, written to the pair's backend in one call. When the backend is full the chain
 * is held (tx_chain) and sent first once the fd is writable, so nothing is lost or reordered. A
 * chain with writable buffers or shorter than the header is malformed: it is returned unsent and
 * counted, so one bad packet does not stop the device (there is no status byte to report it).
 * Everything here runs under vdev.lock, on the event-loop thread (net.c's notifications and
 * backend events) or, for a pair the driver gives up, wherever net_set_pairs runs.
 *
 * Polling (virtio_net_set_poll): a transmit ring found empty is looked at again by the loop
 * (net.c's posted tx_look) for the pair's adaptive window, with the driver's notifications
 * off, so a steady stream of packets costs no notification exits; the window's end turns them
 * on and looks once more. As for virtio-blk (blk.c), whose window rule (poll_window.h) this is.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio/iov.h"
#include "devices/virtio/net.h"
#include "devices/virtio/net_internal.h"
#include "vmm/log.h"

#define TX_BATCH 256

/*
 * Sends tx_chain; false when the backend is full and the chain must be kept. A malformed chain
 * or a backend error drops the packet (counted, logged) and the chain is returned.
 */
static bool tx_send(struct virtio_net_pair *p)
{
	const struct vq_chain *c = &p->tx_chain;
	const char *why;
	uint8_t gso = VIRTIO_NET_HDR_GSO_NONE;
	ssize_t r;

	if (c->nr_in || c->out_len < VIRTIO_NET_HDR_LEN) {
		why = c->nr_in ? "chain with device-writable buffers"
		               : "chain shorter than the header";
	} else {
		r = p->be.ops->send(p->be.opaque, c->iov, (int)c->nr_out);
		if (r == -EAGAIN)
			return false;
		if (r >= 0) {
			iov_to_buf(c->iov, c->nr_out, 1, &gso, 1);
			p->stats.tx_packets++;
			p->stats.tx_gso_packets += gso != VIRTIO_NET_HDR_GSO_NONE;
			p->stats.tx_bytes += c->out_len - VIRTIO_NET_HDR_LEN;
			p->stats.tx_max_bytes =
			        MAX(p->stats.tx_max_bytes, c->out_len - VIRTIO_NET_HDR_LEN);
			return true;
		}
		why = r == -EIO ? "input/output error (is the TAP up?)" : strerror((int)-r);
	}
	log_ratelimited(LOG_WARN, "net '%s': transmit: %s; packet dropped", p->net->name, why);
	p->stats.tx_dropped++;
	return true;
}

int net_tx_run(struct virtio_net_pair *p, struct work *w)
{
	struct virtqueue *vq = &p->net->vdev.queues[tx_queue(p)];
	bool popped = false;
	int r = 1;

	p->tx_more = false;
	for (unsigned i = 0; i < TX_BATCH && p->enabled && queue_live(p->net, tx_queue(p)); i++) {
		if (!p->tx_held) {
			r = vq_pop_chain(vq, &p->tx_chain);
			if (r <= 0)
				break;
			if (!popped && p->tx_poll.win.max_ns)
				poll_window_work(&p->tx_poll.win, poll_window_now());
			popped = true;
			p->tx_held = true;
		}
		if (!tx_send(p)) {
			p->tx_blocked = true;
			return 1;
		}
		p->tx_held = false;
		if (vq_push_used(vq, p->tx_chain.head, 0) == 0)
			w->pushed |= 1u << tx_queue(p);
		p->tx_more = i + 1 == TX_BATCH;
		r = 1;
	}
	if (r < 0)
		w->bad = "virtio-net: malformed transmit chain";
	return r;
}

void net_tx_idle(struct virtio_net_pair *p)
{
	struct virtqueue *vq = &p->net->vdev.queues[tx_queue(p)];
	bool off = !p->tx_poll.win.max_ns;

	if (vq_poll_idle(&p->tx_poll, vq, off ? 0 : poll_window_now(), off))
		event_loop_post(p->net->loop, &p->tx_poll.work);
}

void net_tx_discard(struct virtio_net_pair *p, struct work *w)
{
	struct virtqueue *vq = &p->net->vdev.queues[tx_queue(p)];
	unsigned dropped = 0;
	int r = 0;

	for (unsigned i = 0; i < VIRTIO_NET_QUEUE_SIZE && queue_live(p->net, tx_queue(p)); i++) {
		if (!p->tx_held) {
			r = vq_pop_chain(vq, &p->tx_chain);
			if (r <= 0)
				break;
		}
		p->tx_held = false;
		dropped++;
		if (vq_push_used(vq, p->tx_chain.head, 0) == 0)
			w->pushed |= 1u << tx_queue(p);
	}
	p->tx_held = p->tx_blocked = p->tx_more = false;
	p->stats.tx_dropped += dropped;
	if (dropped)
		log_ratelimited(LOG_DEBUG, "net '%s': %u packets on disabled pair %u dropped",
		                p->net->name, dropped, p->index);
	if (r < 0)
		w->bad = "virtio-net: malformed transmit chain";
}
