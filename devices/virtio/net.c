/*
 * virtio-net: transmit, receive and control queues over a packet backend.
 *
 * Transmit: each chain's readable buffers are one packet, header first, written to the backend
 * in one call. When the backend is full the chain is held (tx_chain) and sent first once the
 * fd is writable, so nothing is lost or reordered. A chain with writable buffers or shorter
 * than the header is malformed: it is returned unsent and counted, so one bad packet does not
 * stop the device (there is no status byte to report it).
 *
 * Receive (net_rx.c): chains are taken from the ring into a stash until the stash holds a
 * largest packet (one chain without MRG_RXBUF), and the backend reads the next packet straight
 * into the stashed buffers, with a bounce buffer behind them for what does not fit. A packet
 * that overflowed takes more chains as the driver posts them; only then is it handed over:
 * header fix-ups, all its used entries, one interrupt per batch. Chains it did not need stay
 * stashed for the next packet. A receive chain that is readable or shorter than the header
 * breaks 5.1.6.3.1 and sets DEVICE_NEEDS_RESET.
 *
 * Threads and locking: vdev.lock guards everything below it in struct virtio_net. Queue
 * notifications and backend events run on the event-loop thread (the transports hand a
 * notification that missed its ioeventfd to the loop) and do all their work under the lock;
 * activate and reset run under it from a vCPU thread. Interrupts and needs-reset are raised after
 * unlocking. Batches are bounded so one busy queue cannot starve the loop: receive relies on
 * EPOLLIN staying level-triggered, transmit asks for EPOLLOUT to come back.
 */
#include "devices/virtio/net.h"
#include "devices/virtio/net_internal.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "devices/tap.h"
#include "devices/virtio/iov.h"
#include "vmm/log.h"

#define TX_BATCH 256

static_assert(sizeof(struct virtio_net_config) == 10, "config layout");
static_assert(VIRTIO_NET_HDR_LEN == TAP_VNET_HDR_LEN, "TAP header size");

static struct virtio_net *to_net(struct virtio_dev *dev)
{
	return container_of(dev, struct virtio_net, vdev);
}

static void set_watch(struct virtio_net *n, uint32_t events)
{
	int r;

	if (!n->registered || events == n->watching)
		return;
	r = event_loop_modify(n->loop, &n->src, events);
	if (r < 0)
		log_ratelimited(LOG_WARN, "net '%s': cannot watch the backend: %s", n->name,
		                strerror(-r));
	else
		n->watching = events;
}

/*
 * Asks the loop for what the queues wait on: nothing once @w found a malformed chain (the
 * device is about to need a reset).
 */
static void update_watch(struct virtio_net *n, const struct work *w)
{
	uint32_t events = 0;

	if (queue_live(n, RXQ) && !n->rx_stalled)
		events |= EPOLLIN;
	if (queue_live(n, TXQ) && (n->tx_blocked || n->tx_more))
		events |= EPOLLOUT;
	set_watch(n, w && w->bad ? 0 : events);
}

/* The backend is gone: stop watching it (epoll would report the error forever), link down. */
void net_backend_fail(struct virtio_net *n, struct work *w, const char *why)
{
	if (n->backend_failed)
		return;
	log_error("net '%s': backend failed (%s); the guest's link is down", n->name, why);
	n->backend_failed = true;
	if (n->registered)
		event_loop_del(n->loop, &n->src);
	n->registered = false;
	n->watching = 0;
	n->config.status = htole16(0);
	w->link_down = true;
}

/* ---- Transmit ---- */

/*
 * Sends tx_chain; false when the backend is full and the chain must be kept. A malformed chain
 * or a backend error drops the packet (counted, logged) and the chain is returned.
 */
static bool tx_send(struct virtio_net *n)
{
	const struct vq_chain *c = &n->tx_chain;
	const char *why;
	ssize_t r;

	if (c->nr_in || c->out_len < VIRTIO_NET_HDR_LEN) {
		why = c->nr_in ? "chain with device-writable buffers"
		               : "chain shorter than the header";
	} else {
		r = n->be.ops->send(n->be.opaque, c->iov, (int)c->nr_out);
		if (r == -EAGAIN)
			return false;
		if (r >= 0) {
			n->stats.tx_packets++;
			n->stats.tx_bytes += c->out_len - VIRTIO_NET_HDR_LEN;
			return true;
		}
		why = r == -EIO ? "input/output error (is the TAP up?)" : strerror((int)-r);
	}
	log_ratelimited(LOG_WARN, "net '%s': transmit: %s; packet dropped", n->name, why);
	n->stats.tx_dropped++;
	return true;
}

/* Sends transmit chains in ring order, held chain first, up to the batch limit. */
static void tx_run(struct virtio_net *n, struct work *w)
{
	struct virtqueue *vq = &n->vdev.queues[TXQ];
	int r = 0;

	n->tx_more = false;
	for (unsigned i = 0; i < TX_BATCH && queue_live(n, TXQ); i++) {
		if (!n->tx_held) {
			r = vq_pop_chain(vq, &n->tx_chain);
			if (r <= 0)
				break;
			n->tx_held = true;
		}
		if (!tx_send(n)) {
			n->tx_blocked = true;
			return;
		}
		n->tx_held = false;
		if (vq_push_used(vq, n->tx_chain.head, 0) == 0)
			w->pushed[TXQ] = true;
		n->tx_more = i + 1 == TX_BATCH;
	}
	if (r < 0)
		w->bad = "virtio-net: malformed transmit chain";
}

/* ---- Control ---- */

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

/* Runs one command; the status byte must be the only writable byte. */
static uint8_t ctrl_command(struct virtio_net *n, const struct vq_chain *c)
{
	uint8_t hdr[2] = {0xff, 0xff};
	uint8_t ack = VIRTIO_NET_ERR;

	if (c->in_len == 1 && iov_to_buf(c->iov, c->nr_out, 0, hdr, 2) == 2 &&
	    virtio_has_feature(&n->vdev, VIRTIO_NET_F_CTRL_RX)) {
		if (hdr[0] == VIRTIO_NET_CTRL_RX)
			ack = ctrl_rx(n, c, hdr[1]);
		else if (hdr[0] == VIRTIO_NET_CTRL_MAC)
			ack = ctrl_mac(c, hdr[1]);
	}
	if (ack != VIRTIO_NET_OK)
		log_ratelimited(LOG_DEBUG, "net '%s': control command %u.%u refused", n->name,
		                hdr[0], hdr[1]);
	return ack;
}

static void ctrl_run(struct virtio_net *n, struct work *w)
{
	struct virtqueue *vq = &n->vdev.queues[CTLQ];
	const struct vq_chain *c = &n->chain;
	int r = 0;

	/*
	 * A driver has at most a queue's worth of commands outstanding; more means it published
	 * heads again, and those wait for its next notification.
	 */
	for (unsigned i = 0; i < VIRTIO_NET_QUEUE_SIZE && queue_live(n, CTLQ); i++) {
		uint8_t ack;
		uint32_t len = 0;

		r = vq_pop_chain(vq, &n->chain);
		if (r <= 0)
			break;
		ack = ctrl_command(n, c);
		if (c->in_len)
			len = (uint32_t)iov_from_buf(c->iov + c->nr_out, c->nr_in, 0, &ack, 1);
		else
			log_ratelimited(LOG_WARN, "net '%s': control command without a status byte",
			                n->name);
		if (vq_push_used(vq, c->head, len) == 0)
			w->pushed[CTLQ] = true;
	}
	if (r < 0)
		w->bad = "virtio-net: malformed control chain";
}

/* ---- Events ---- */

/* After unlocking: needs-reset, config change, one interrupt per queue used. */
static void work_done(struct virtio_net *n, const struct work *w)
{
	if (w->bad)
		virtio_set_needs_reset(&n->vdev, w->bad);
	if (w->link_down)
		virtio_config_changed(&n->vdev);
	for (unsigned q = 0; q < ARRAY_SIZE(w->pushed); q++) {
		if (w->pushed[q])
			virtio_queue_done(&n->vdev, q);
	}
}

/* The backend fd is ready (event-loop thread). */
static void backend_event(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;
	struct work w = {0};

	pthread_mutex_lock(&n->vdev.lock);
	if (events & (EPOLLERR | EPOLLHUP))
		net_backend_fail(n, &w, "error or hang-up on its fd");
	if (events & EPOLLOUT) {
		n->tx_blocked = false;
		tx_run(n, &w);
	}
	if ((events & EPOLLIN) && !n->rx_stalled)
		net_rx_run(n, &w);
	update_watch(n, &w);
	pthread_mutex_unlock(&n->vdev.lock);
	work_done(n, &w);
}

static void net_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct virtio_net *n = to_net(dev);
	struct work w = {0};

	pthread_mutex_lock(&dev->lock);
	/* Not stalled: EPOLLIN is on. Blocked: EPOLLOUT resumes transmit. */
	if (q == RXQ && n->rx_stalled)
		net_rx_run(n, &w);
	if (q == TXQ && !n->tx_blocked)
		tx_run(n, &w);
	if (q == CTLQ)
		ctrl_run(n, &w);
	update_watch(n, &w);
	pthread_mutex_unlock(&dev->lock);
	work_done(n, &w);
}

/* Under vdev.lock: the TAP may hand us exactly the offloads the driver took. */
static int net_activate(struct virtio_dev *dev)
{
	struct virtio_net *n = to_net(dev);
	int r;

	n->mrg_rxbuf = virtio_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF);
	n->guest_csum = virtio_has_feature(dev, VIRTIO_NET_F_GUEST_CSUM);
	n->guest_tso4 = n->guest_csum && virtio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO4);
	n->guest_tso6 = n->guest_csum && virtio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO6);
	if (n->be.offloads && !n->backend_failed) {
		r = n->be.ops->set_offload(n->be.opaque, n->guest_csum, n->guest_tso4,
		                           n->guest_tso6);
		if (r < 0) {
			log_ratelimited(LOG_ERROR, "net '%s': cannot set the TAP's offloads: %s",
			                n->name, strerror(-r));
			return r;
		}
	}
	update_watch(n, NULL);
	return 0;
}

/* Under vdev.lock: stashed chains and a packet in hand belong to the old rings. */
static void net_reset(struct virtio_dev *dev)
{
	struct virtio_net *n = to_net(dev);

	if (n->rx_len) {
		log_debug("net '%s': packet in hand dropped by a device reset", n->name);
		n->stats.rx_dropped++;
	}
	n->rx_len = n->rx_placed = n->rx_bounce_off = 0;
	n->rx_nr = n->rx_nr_iov = 0;
	n->rx_cap = 0;
	n->rx_stalled = n->tx_held = n->tx_blocked = n->tx_more = false;
	n->promisc = n->allmulti = false;
	n->mrg_rxbuf = n->guest_csum = n->guest_tso4 = n->guest_tso6 = false;
	set_watch(n, 0);
}

/*
 * Under vdev.lock: the receive chains in the stash (with a packet in hand, that packet is lost
 * to a restore, as on a wire) and a transmit chain the back-end has not taken.
 */
static unsigned net_chains_held(struct virtio_dev *dev, unsigned q)
{
	struct virtio_net *n = to_net(dev);

	return q == RXQ ? n->rx_nr : q == TXQ ? n->tx_held : 0;
}

static const struct virtio_device_ops net_ops = {
        .name = "virtio-net",
        .device_id = VIRTIO_ID_NET,
        .num_queues = 3,
        .max_queue_size = VIRTIO_NET_QUEUE_SIZE,
        .activate = net_activate,
        .reset = net_reset,
        .queue_notify = net_queue_notify,
        .chains_held = net_chains_held,
        .snapshots = true, /* control chains are served whole */
};

static const uint64_t net_features = 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_MRG_RXBUF |
                                     1ULL << VIRTIO_NET_F_STATUS | 1ULL << VIRTIO_NET_F_CTRL_VQ |
                                     1ULL << VIRTIO_NET_F_CTRL_RX | 1ULL << VIRTIO_F_INDIRECT_DESC |
                                     1ULL << VIRTIO_F_EVENT_IDX;

/* Only over a backend that passes partial checksums and TSO frames (a TAP). */
static const uint64_t offload_features =
        1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |
        1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |
        1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6;

/* The device part shared by open and init; @n is zeroed. */
static int setup(struct virtio_net *n, const char *name, const uint8_t mac[6],
                 const struct guest_memory *mem, struct event_loop *loop,
                 const struct virtio_net_backend *be)
{
	int r;

	snprintf(n->name, sizeof(n->name), "%s", name ? name : "");
	n->be = *be;
	n->loop = loop;
	memcpy(n->config.mac, mac, sizeof(n->config.mac));
	n->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	n->config.max_virtqueue_pairs = htole16(1);
	virtio_dev_init(&n->vdev, &net_ops, mem,
	                net_features | (be->offloads ? offload_features : 0), &n->config,
	                sizeof(n->config));
	n->bounce = malloc(BOUNCE_LEN);
	if (!n->bounce)
		return -ENOMEM;
	n->src = (struct event_source){.fd = be->fd, .handler = backend_event, .opaque = n};
	r = event_loop_add(loop, &n->src, 0);
	n->registered = r == 0;
	return r;
}

int virtio_net_init(struct virtio_net *n, const char *name, const uint8_t mac[6],
                    const struct guest_memory *mem, struct event_loop *loop,
                    const struct virtio_net_backend *be)
{
	int r;

	memset(n, 0, sizeof(*n));
	r = setup(n, name, mac, mem, loop, be);
	if (r < 0)
		virtio_net_close(n);
	return r;
}

int virtio_net_open(struct virtio_net *n, const char *tap_name, const uint8_t mac[6],
                    const struct guest_memory *mem, struct event_loop *loop, char *err,
                    size_t errlen)
{
	struct virtio_net_backend be;
	int r;

	memset(n, 0, sizeof(*n));
	r = tap_open(tap_name, err, errlen);
	if (r < 0)
		return r;
	n->tap_fd = r;
	n->tap_owned = true;
	tap_net_backend(&be, &n->tap_fd);
	r = setup(n, tap_name, mac, mem, loop, &be);
	if (r < 0) {
		snprintf(err, errlen, "TAP '%s': %s", tap_name, strerror(-r));
		virtio_net_close(n);
	}
	return r;
}

void virtio_net_close(struct virtio_net *n)
{
	if (n->registered)
		event_loop_del(n->loop, &n->src);
	n->registered = false;
	if (n->tap_owned)
		close(n->tap_fd);
	n->tap_owned = false;
	free(n->bounce);
	n->bounce = NULL;
	if (n->vdev.ops)
		virtio_dev_destroy(&n->vdev);
	n->vdev.ops = NULL;
}
