/*
 * virtio-net: the device, its queue pairs and events over packet backends (net_tx.c transmits,
 * net_rx.c receives, net_ctrl.c serves the control queue).
 *
 * Queue pairs: pair k has its own backend (a multi-queue TAP gives one fd per pair), receive
 * stash and transmit state; only the first curr_pairs are used, 1 until the driver's MQ
 * VQ_PAIRS_SET (5.1.6.5.5). The others are disabled: their backend detached (set_queue), so
 * the host steers nothing to them, their fd off the loop and their receive stash given back to
 * the ring. A transmit chain on a disabled pair is
 * returned unsent and counted: the driver may only use enabled pairs.
 *
 * Transmit (net_tx.c): each chain's readable buffers are one packet, written to the pair's
 * backend in one call; a full backend keeps the chain until its fd is writable. A ring found
 * empty may be polled for a while (tx_look, posted on the loop), notifications off.
 *
 * Receive (net_rx.c): chains are taken from the ring into the pair's stash until it holds a
 * largest packet, and the backend reads the next packet straight into them, with a bounce
 * buffer behind for what does not fit; see there.
 *
 * Threads and locking: vdev.lock guards everything marked so in struct virtio_net and its
 * pairs. Queue notifications and backend events run on the event-loop thread (the transports
 * hand a notification that missed its ioeventfd to the loop) and do all their work under the
 * lock; activate and reset run under it from a vCPU thread, and they (like the control
 * command on the loop) attach, detach and (un)watch pairs: epoll_ctl may come from any thread,
 * and an event the loop had already collected for a pair disabled since finds it disabled
 * under the lock and is ignored. Interrupts and needs-reset are raised after unlocking, one
 * interrupt per queue per batch. Batches are bounded so one busy queue cannot starve the loop:
 * receive relies on EPOLLIN staying level-triggered, transmit asks for EPOLLOUT to come back.
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
#include "vmm/log.h"
#include "vmm/snapshot_file.h"

static_assert(sizeof(struct virtio_net_config) == 10, "config layout");
static_assert(VIRTIO_NET_HDR_LEN == TAP_VNET_HDR_LEN, "TAP header size");
static_assert(2 * VIRTIO_NET_MAX_PAIRS + 1 <= VIRTIO_MAX_QUEUES, "queues");
static_assert(VIRTIO_MAX_QUEUES <= 32, "struct work's pushed bits");

static struct virtio_net *to_net(struct virtio_dev *dev)
{
	return container_of(dev, struct virtio_net, vdev);
}

static void set_watch(struct virtio_net_pair *p, uint32_t events)
{
	int r;

	if (!p->registered || events == p->watching)
		return;
	r = event_loop_modify(p->net->loop, &p->src, events);
	if (r < 0)
		log_ratelimited(LOG_WARN, "net '%s': cannot watch the backend of pair %u: %s",
		                p->net->name, p->index, strerror(-r));
	else
		p->watching = events;
}

/*
 * Asks the loop for what each pair's queues wait on: nothing once @w found a malformed chain
 * (the device is about to need a reset).
 */
static void update_watch(struct virtio_net *n, const struct work *w)
{
	for (unsigned i = 0; i < n->nr_pairs; i++) {
		struct virtio_net_pair *p = &n->pairs[i];
		uint32_t events = 0;

		if (p->enabled && queue_live(n, rx_queue(p)) && !p->rx_stalled)
			events |= EPOLLIN;
		if (p->enabled && queue_live(n, tx_queue(p)) && (p->tx_blocked || p->tx_more))
			events |= EPOLLOUT;
		set_watch(p, w && w->bad ? 0 : events);
	}
}

static void unregister(struct virtio_net_pair *p)
{
	if (p->registered)
		event_loop_del(p->net->loop, &p->src);
	p->registered = false;
	p->watching = 0;
}

/* The backend is gone: stop watching it (epoll would report the error forever), link down. */
void net_backend_fail(struct virtio_net *n, struct work *w, const char *why)
{
	if (n->backend_failed)
		return;
	log_error("net '%s': backend failed (%s); the guest's link is down", n->name, why);
	n->backend_failed = true;
	for (unsigned i = 0; i < n->nr_pairs; i++)
		unregister(&n->pairs[i]);
	n->config.status = htole16(0);
	w->link_down = true;
}

/* ---- Queue pairs ---- */

/* Attaches and watches pair @p (0 or -errno, nothing changed). */
static int pair_enable(struct virtio_net_pair *p)
{
	int r;

	if (p->be.ops->set_queue) {
		r = p->be.ops->set_queue(p->be.opaque, true);
		if (r < 0)
			return r;
	}
	r = event_loop_add(p->net->loop, &p->src, 0);
	if (r < 0) {
		if (p->be.ops->set_queue)
			(void)p->be.ops->set_queue(p->be.opaque, false);
		return r;
	}
	p->registered = true;
	p->enabled = true;
	p->rx_stalled = p->tx_blocked = p->tx_more = false;
	return 0;
}

/*
 * Sends what pair @p has (a batch), then stops watching it and detaches it; its receive stash
 * goes back to the ring, a transmit chain it still holds back to the driver unsent.
 */
static void pair_disable(struct virtio_net_pair *p, struct work *w)
{
	struct virtqueue *txq = &p->net->vdev.queues[tx_queue(p)];
	int r;

	/* A poll ends: notifications back on, for when the driver uses the pair again. */
	if (txq->notify_off && vq_notify_on(txq))
		log_debug("net '%s': transmit chains came as pair %u was disabled", p->net->name,
		          p->index);
	if (!p->tx_blocked)
		(void)net_tx_run(p, w);
	unregister(p);
	p->enabled = false;
	if (p->be.ops->set_queue) {
		r = p->be.ops->set_queue(p->be.opaque, false);
		if (r < 0)
			log_ratelimited(LOG_WARN, "net '%s': cannot detach queue %u of the TAP: %s",
			                p->net->name, p->index, strerror(-r));
	}
	net_rx_forget(p, true);
	if (p->tx_held)
		net_tx_discard(p, w);
	p->tx_held = p->tx_blocked = p->tx_more = false;
}

int net_set_pairs(struct virtio_net *n, unsigned pairs, struct work *w)
{
	unsigned i;
	int r = 0;

	if (pairs < 1 || pairs > n->nr_pairs)
		return -EINVAL;
	for (i = 0; i < pairs && !n->backend_failed; i++) {
		if (!n->pairs[i].enabled) {
			r = pair_enable(&n->pairs[i]);
			if (r < 0)
				break;
		}
	}
	if (r < 0) {
		log_ratelimited(LOG_WARN, "net '%s': cannot use queue pair %u: %s", n->name, i,
		                strerror(-r));
		while (i-- > n->curr_pairs)
			pair_disable(&n->pairs[i], w);
		return r;
	}
	for (i = pairs; i < n->nr_pairs; i++) {
		if (n->pairs[i].enabled)
			pair_disable(&n->pairs[i], w);
	}
	n->curr_pairs = pairs;
	return 0;
}

/* ---- Events ---- */

/* After unlocking: needs-reset, config change, one interrupt per queue used. */
static void work_done(struct virtio_net *n, const struct work *w)
{
	if (w->bad)
		virtio_set_needs_reset(&n->vdev, w->bad);
	if (w->link_down)
		virtio_config_changed(&n->vdev);
	for (unsigned q = 0; q < n->vdev.ops->num_queues; q++) {
		if (w->pushed & (1u << q))
			virtio_queue_done(&n->vdev, q);
	}
}

/* A pair's backend fd is ready (event-loop thread). */
static void backend_event(void *opaque, uint32_t events)
{
	struct virtio_net_pair *p = opaque;
	struct virtio_net *n = p->net;
	struct work w = {0};

	pthread_mutex_lock(&n->vdev.lock);
	if (!p->enabled || !p->registered) {
		/* collected before the pair was disabled */
	} else if (events & (EPOLLERR | EPOLLHUP)) {
		net_backend_fail(n, &w, "error or hang-up on its fd");
	} else {
		if (events & EPOLLOUT) {
			p->tx_blocked = false;
			if (net_tx_run(p, &w) == 0)
				net_tx_idle(p);
		}
		if ((events & EPOLLIN) && !p->rx_stalled)
			net_rx_run(p, &w);
	}
	update_watch(n, &w);
	pthread_mutex_unlock(&n->vdev.lock);
	work_done(n, &w);
}

/* The pair whose queue @q is under the negotiated layout, or NULL (the control queue, none). */
static struct virtio_net_pair *queue_pair(struct virtio_net *n, unsigned q)
{
	unsigned i = q / 2;

	if (q == ctrl_queue(n) || i >= n->nr_pairs || (i && !n->mq))
		return NULL;
	return &n->pairs[i];
}

static void net_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct virtio_net *n = to_net(dev);
	struct virtio_net_pair *p;
	struct work w = {0};

	pthread_mutex_lock(&dev->lock);
	p = queue_pair(n, q);
	/* Not stalled: EPOLLIN is on. Blocked: EPOLLOUT resumes transmit. */
	if (p && q == rx_queue(p) && p->enabled && p->rx_stalled)
		net_rx_run(p, &w);
	if (p && q == tx_queue(p) && p->enabled && !p->tx_blocked && net_tx_run(p, &w) == 0)
		net_tx_idle(p);
	if (p && q == tx_queue(p) && !p->enabled)
		net_tx_discard(p, &w);
	if (q == ctrl_queue(n))
		net_ctrl_run(n, &w);
	update_watch(n, &w);
	pthread_mutex_unlock(&dev->lock);
	work_done(n, &w);
}

/*
 * One look at a polled transmit queue (posted work, event-loop thread): sends what arrived, or
 * posts itself again until the window ends, then turns notifications on (sending what came in
 * the meantime). Stops for a pair disabled or reset since, or blocked (EPOLLOUT resumes it).
 */
static void tx_look(void *opaque)
{
	struct virtio_net_pair *p = opaque;
	struct virtio_net *n = p->net;
	struct work w = {0};
	bool serve = false, again = false;

	pthread_mutex_lock(&n->vdev.lock);
	if (p->enabled && queue_live(n, tx_queue(p)) && !p->tx_blocked)
		serve = vq_poll_look(&p->tx_poll, &n->vdev.queues[tx_queue(p)], &again);
	if (again)
		event_loop_post(n->loop, &p->tx_poll.work);
	if (serve && net_tx_run(p, &w) == 0)
		net_tx_idle(p);
	update_watch(n, &w);
	pthread_mutex_unlock(&n->vdev.lock);
	work_done(n, &w);
}

/*
 * Before a snapshot (the loop's thread, vCPUs paused): transmit notifications back on (the
 * snapshot holds the rings as they are, and a restored device starts with them on), chains that
 * came during a poll sent. No poll starts meanwhile: net_tx_run does not start one, and a
 * posted look runs on this thread, after the snapshot.
 */
static void net_quiesce(struct virtio_dev *dev)
{
	struct virtio_net *n = to_net(dev);
	struct work w = {0};

	pthread_mutex_lock(&dev->lock);
	for (unsigned i = 0; i < n->nr_pairs; i++) {
		struct virtio_net_pair *p = &n->pairs[i];
		struct virtqueue *vq = &dev->queues[tx_queue(p)];

		if (vq->notify_off && vq_notify_on(vq) && p->enabled && !p->tx_blocked)
			(void)net_tx_run(p, &w);
	}
	update_watch(n, &w);
	pthread_mutex_unlock(&dev->lock);
	work_done(n, &w);
}

/*
 * Under vdev.lock: the TAP may hand us exactly the offloads the driver took; the pairs a
 * snapshot had in use (1 at DRIVER_OK) are attached.
 */
static int net_activate(struct virtio_dev *dev)
{
	struct virtio_net *n = to_net(dev);
	struct virtio_net_pair *p0 = &n->pairs[0];
	struct work w = {0};
	int r;

	n->mq = virtio_has_feature(dev, VIRTIO_NET_F_MQ);
	n->mrg_rxbuf = virtio_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF);
	n->guest_csum = virtio_has_feature(dev, VIRTIO_NET_F_GUEST_CSUM);
	n->guest_tso4 = n->guest_csum && virtio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO4);
	n->guest_tso6 = n->guest_csum && virtio_has_feature(dev, VIRTIO_NET_F_GUEST_TSO6);
	if (p0->be.offloads && !n->backend_failed) {
		r = p0->be.ops->set_offload(p0->be.opaque, n->guest_csum, n->guest_tso4,
		                            n->guest_tso6);
		if (r < 0) {
			log_ratelimited(LOG_ERROR, "net '%s': cannot set the TAP's offloads: %s",
			                n->name, strerror(-r));
			return r;
		}
	}
	if (!n->mq)
		n->curr_pairs = 1;
	r = net_set_pairs(n, n->curr_pairs, &w);
	if (r < 0)
		return r;
	update_watch(n, NULL);
	return 0;
}

/* Under vdev.lock: stashed chains and a packet in hand belong to the old rings; pair 0 only. */
static void net_reset(struct virtio_dev *dev)
{
	struct virtio_net *n = to_net(dev);

	for (unsigned i = 0; i < n->nr_pairs; i++) {
		struct virtio_net_pair *p = &n->pairs[i];

		if (i && p->enabled) {
			unregister(p);
			p->enabled = false;
			if (p->be.ops->set_queue && p->be.ops->set_queue(p->be.opaque, false) < 0)
				log_ratelimited(LOG_WARN,
				                "net '%s': cannot detach queue %u of the TAP",
				                n->name, i);
		}
		net_rx_forget(p, false);
		p->tx_held = p->tx_blocked = p->tx_more = false;
		set_watch(p, 0);
	}
	n->curr_pairs = 1;
	n->mq = false;
	n->promisc = n->allmulti = false;
	n->mrg_rxbuf = n->guest_csum = n->guest_tso4 = n->guest_tso6 = false;
}

/*
 * Under vdev.lock: the receive chains in a pair's stash (with a packet in hand, that packet is
 * lost to a restore, as on a wire) and a transmit chain the back-end has not taken.
 */
static unsigned net_chains_held(struct virtio_dev *dev, unsigned q)
{
	struct virtio_net *n = to_net(dev);
	const struct virtio_net_pair *p = queue_pair(n, q);

	if (!p)
		return 0;
	return q == rx_queue(p) ? p->rx_nr : p->tx_held;
}

/* The device's own state after the core's: the pairs in use. */
static void net_save(struct virtio_dev *dev, struct snap_writer *w)
{
	snap_put_u16(w, (uint16_t)to_net(dev)->curr_pairs);
}

static int net_load(struct virtio_dev *dev, struct snap_cursor *c, char *err, size_t errlen)
{
	struct virtio_net *n = to_net(dev);
	uint16_t pairs = snap_get_u16(c);

	if (c->overrun)
		return 0; /* snap_cursor_finish says so */
	if (pairs < 1 || pairs > n->nr_pairs) {
		snprintf(err, errlen, "%u queue pairs in use, this device has %u", pairs,
		         n->nr_pairs);
		return -EINVAL;
	}
	n->curr_pairs = pairs;
	return 0;
}

#define NET_OPS(pairs)                                                                             \
	{                                                                                          \
		.name = "virtio-net", .device_id = VIRTIO_ID_NET, .num_queues = 2 * (pairs) + 1,   \
		.max_queue_size = VIRTIO_NET_QUEUE_SIZE, .activate = net_activate,                 \
		.reset = net_reset, .queue_notify = net_queue_notify, .quiesce = net_quiesce,      \
		.chains_held = net_chains_held, .save = net_save, .load = net_load,                \
		.snapshots = true, /* control chains are served whole */                           \
	}

/* Indexed by the number of queue pairs less one. */
static const struct virtio_device_ops net_ops[VIRTIO_NET_MAX_PAIRS] = {
        NET_OPS(1), NET_OPS(2), NET_OPS(3), NET_OPS(4),
        NET_OPS(5), NET_OPS(6), NET_OPS(7), NET_OPS(8),
};
static_assert(VIRTIO_NET_MAX_PAIRS == 8, "one net_ops entry per pair count");

static const uint64_t net_features = 1ULL << VIRTIO_NET_F_MAC | 1ULL << VIRTIO_NET_F_MRG_RXBUF |
                                     1ULL << VIRTIO_NET_F_STATUS | 1ULL << VIRTIO_NET_F_CTRL_VQ |
                                     1ULL << VIRTIO_NET_F_CTRL_RX | 1ULL << VIRTIO_F_INDIRECT_DESC |
                                     1ULL << VIRTIO_F_EVENT_IDX;

/*
 * Only over a backend that passes partial checksums and TSO frames (a TAP). HOST_ECN lets the
 * guest hand over TSO frames of a connection that uses ECN too, instead of segmenting them
 * itself (a TAP takes VIRTIO_NET_HDR_GSO_ECN).
 */
static const uint64_t offload_features =
        1ULL << VIRTIO_NET_F_CSUM | 1ULL << VIRTIO_NET_F_GUEST_CSUM |
        1ULL << VIRTIO_NET_F_GUEST_TSO4 | 1ULL << VIRTIO_NET_F_GUEST_TSO6 |
        1ULL << VIRTIO_NET_F_HOST_TSO4 | 1ULL << VIRTIO_NET_F_HOST_TSO6 |
        1ULL << VIRTIO_NET_F_HOST_ECN;

/* The device part shared by open and init; @n is zeroed, its tap fds set. */
static int setup(struct virtio_net *n, const char *name, const uint8_t mac[6],
                 const struct guest_memory *mem, struct event_loop *loop,
                 const struct virtio_net_backend *be, unsigned nr_pairs)
{
	uint64_t features = net_features;
	int r;

	snprintf(n->name, sizeof(n->name), "%s", name ? name : "");
	if (nr_pairs < 1 || nr_pairs > VIRTIO_NET_MAX_PAIRS)
		return -EINVAL;
	n->loop = loop;
	n->nr_pairs = nr_pairs;
	n->curr_pairs = 1;
	memcpy(n->config.mac, mac, sizeof(n->config.mac));
	n->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	n->config.max_virtqueue_pairs = htole16((uint16_t)nr_pairs);
	if (be[0].offloads)
		features |= offload_features;
	if (nr_pairs > 1)
		features |= 1ULL << VIRTIO_NET_F_MQ;
	virtio_dev_init(&n->vdev, &net_ops[nr_pairs - 1], mem, features, &n->config,
	                sizeof(n->config));
	n->pairs = calloc(nr_pairs, sizeof(n->pairs[0]));
	if (!n->pairs)
		return -ENOMEM;
	for (unsigned i = 0; i < nr_pairs; i++) {
		struct virtio_net_pair *p = &n->pairs[i];

		p->net = n;
		p->index = i;
		p->be = be[i];
		p->src = (struct event_source){
		        .fd = be[i].fd, .handler = backend_event, .opaque = p};
		event_work_init(&p->tx_poll.work, tx_look, p);
		p->bounce = malloc(BOUNCE_LEN);
		if (!p->bounce)
			return -ENOMEM;
		/* A multi-queue TAP attaches every fd it opens: the driver starts on pair 0. */
		if (i && be[i].ops->set_queue) {
			r = be[i].ops->set_queue(be[i].opaque, false);
			if (r < 0)
				return r;
		}
	}
	r = event_loop_add(loop, &n->pairs[0].src, 0);
	n->pairs[0].registered = r == 0;
	n->pairs[0].enabled = r == 0;
	return r;
}

int virtio_net_init(struct virtio_net *n, const char *name, const uint8_t mac[6],
                    const struct guest_memory *mem, struct event_loop *loop,
                    const struct virtio_net_backend *be, unsigned pairs)
{
	int r;

	memset(n, 0, sizeof(*n));
	r = setup(n, name, mac, mem, loop, be, pairs);
	if (r < 0)
		virtio_net_close(n);
	return r;
}

int virtio_net_open(struct virtio_net *n, const char *tap_name, unsigned pairs, bool exact,
                    const uint8_t mac[6], const struct guest_memory *mem, struct event_loop *loop,
                    char *err, size_t errlen)
{
	struct virtio_net_backend be[VIRTIO_NET_MAX_PAIRS];
	int r;

	memset(n, 0, sizeof(*n));
	if (pairs < 1 || pairs > VIRTIO_NET_MAX_PAIRS) {
		snprintf(err, errlen, "TAP '%s': %u queue pairs, 1 to %d", tap_name, pairs,
		         VIRTIO_NET_MAX_PAIRS);
		return -EINVAL;
	}
	r = tap_open(tap_name, pairs, exact, n->tap_fds, err, errlen);
	if (r < 0)
		return r;
	n->nr_tap_fds = (unsigned)r;
	if (n->nr_tap_fds < pairs)
		log_info("TAP '%s' is single-queue: the NIC gets one queue pair, not %u (for more, "
		         "recreate it with: ip tuntap add dev %s mode tap multi_queue)",
		         tap_name, pairs, tap_name);
	for (unsigned i = 0; i < n->nr_tap_fds; i++)
		tap_net_backend(&be[i], &n->tap_fds[i], n->nr_tap_fds > 1);
	r = setup(n, tap_name, mac, mem, loop, be, n->nr_tap_fds);
	if (r < 0) {
		snprintf(err, errlen, "TAP '%s': %s", tap_name, strerror(-r));
		virtio_net_close(n);
	}
	return r;
}

void virtio_net_get_stats(struct virtio_net *n, unsigned pair, struct virtio_net_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (pair >= n->nr_pairs)
		return;
	pthread_mutex_lock(&n->vdev.lock);
	*out = n->pairs[pair].stats;
	pthread_mutex_unlock(&n->vdev.lock);
}

int virtio_net_set_poll(struct virtio_net *n, uint32_t max_ns)
{
	if (max_ns > POLL_WINDOW_MAX_NS)
		return -EINVAL;
	pthread_mutex_lock(&n->vdev.lock);
	for (unsigned i = 0; i < n->nr_pairs; i++)
		poll_window_init(&n->pairs[i].tx_poll.win, max_ns);
	pthread_mutex_unlock(&n->vdev.lock);
	return 0;
}

void virtio_net_close(struct virtio_net *n)
{
	for (unsigned i = 0; n->pairs && i < n->nr_pairs; i++) {
		if (n->loop)
			event_loop_cancel(n->loop, &n->pairs[i].tx_poll.work);
		unregister(&n->pairs[i]);
		free(n->pairs[i].bounce);
	}
	free(n->pairs);
	n->pairs = NULL;
	n->nr_pairs = 0;
	for (unsigned i = 0; i < n->nr_tap_fds; i++)
		close(n->tap_fds[i]);
	n->nr_tap_fds = 0;
	if (n->vdev.ops)
		virtio_dev_destroy(&n->vdev);
	n->vdev.ops = NULL;
}
