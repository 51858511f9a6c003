/*
 * virtio-vsock over host Unix sockets: see vsock.h. This is the device half: the queues, the
 * packets each way and the credit they carry. The host half of each stream (its socket, the
 * listener, CONNECT lines) is vsock_stream.c.
 */
#include "devices/virtio/vsock.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/virtio/iov.h"
#include "devices/virtio/vsock_stream.h"
#include "vmm/log.h"

#define BATCH 64 /* packets each way per run, then the loop gets a turn */

static_assert(sizeof(struct virtio_vsock_hdr) == 44, "virtio_vsock_hdr layout");

static struct virtio_vsock *to_vsock(struct virtio_dev *dev)
{
	return container_of(dev, struct virtio_vsock, vdev);
}

static uint64_t guest_cid(const struct virtio_vsock *v)
{
	return le64toh(v->config.guest_cid);
}

static bool queue_live(const struct virtio_vsock *v, unsigned q)
{
	const struct virtio_dev *dev = &v->vdev;

	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && dev->queues[q].active;
}

static void guest_connect(struct virtio_vsock *v, const struct virtio_vsock_hdr *h)
{
	uint32_t guest_port = le32toh(h->src_port), host_port = le32toh(h->dst_port);
	int fd = stream_connect_host(v, host_port);
	struct vsock_conn *c = fd >= 0 ? stream_new(v, fd) : NULL;

	if (!c) {
		if (fd >= 0) {
			log_ratelimited(LOG_WARN,
			                "virtio-vsock: %d streams open; connection refused",
			                VSOCK_MAX_CONNS);
			close(fd);
		}
		stream_stray_rst(v, guest_port, host_port);
		return;
	}
	c->guest_port = guest_port;
	c->host_port = host_port;
	c->connected = true;
	c->send_response = true;
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
}

static void guest_packet_op(struct vsock_conn *c, const struct virtio_vsock_hdr *h,
                            const struct vq_chain *chain)
{
	uint32_t len = le32toh(h->len);

	switch (le16toh(h->op)) {
	case VSOCK_OP_RESPONSE:
		if (c->host_initiated && c->send_request == false && !c->connected)
			stream_host_connected(c);
		else
			stream_reset(c);
		break;
	case VSOCK_OP_RST:
		stream_free(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->guest_shut_rcv |= !!(le32toh(h->flags) & VSOCK_SHUTDOWN_RCV);
		c->guest_shut_send |= !!(le32toh(h->flags) & VSOCK_SHUTDOWN_SEND);
		stream_apply_shutdown(c);
		break;
	case VSOCK_OP_RW:
		/* Past its credit, after its own shutdown, or before the handshake: hostile. */
		if (!c->connected || c->guest_shut_send ||
		    len > VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt))
			stream_reset(c);
		else if (len)
			stream_guest_data(c, chain, len);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the header's credit was taken already */
	case VSOCK_OP_CREDIT_REQUEST:
		c->send_credit = true;
		break;
	default: /* REQUEST on a live stream, or an unknown op */
		stream_reset(c);
		break;
	}
}

/* One packet from the transmit queue. */
static void guest_packet(struct virtio_vsock *v, const struct vq_chain *chain)
{
	struct virtio_vsock_hdr h;
	struct vsock_conn *c;
	uint32_t len;

	if (chain->nr_in ||
	    iov_to_buf(chain->iov, chain->nr_out, 0, &h, VSOCK_HDR_LEN) < VSOCK_HDR_LEN)
		goto drop;
	len = le32toh(h.len);
	if (len > VSOCK_MAX_PAYLOAD || len > chain->out_len - VSOCK_HDR_LEN ||
	    le64toh(h.src_cid) != guest_cid(v) || le64toh(h.dst_cid) != VSOCK_HOST_CID)
		goto drop;
	c = stream_find(v, le32toh(h.src_port), le32toh(h.dst_port));
	if (le16toh(h.type) != VSOCK_TYPE_STREAM) {
		if (c)
			stream_reset(c);
		else if (le16toh(h.op) != VSOCK_OP_RST)
			stream_stray_rst(v, le32toh(h.src_port), le32toh(h.dst_port));
		return;
	}
	if (!c) {
		if (le16toh(h.op) == VSOCK_OP_REQUEST)
			guest_connect(v, &h);
		else if (le16toh(h.op) != VSOCK_OP_RST)
			stream_stray_rst(v, le32toh(h.src_port), le32toh(h.dst_port));
		return;
	}
	c->peer_buf_alloc = le32toh(h.buf_alloc);
	c->peer_fwd_cnt = le32toh(h.fwd_cnt);
	if (c->send_rst)
		return; /* already ending: only our RST is left to say */
	guest_packet_op(c, &h, chain);
	return;
drop:
	v->dropped++;
	log_ratelimited(LOG_WARN, "virtio-vsock: malformed or misaddressed packet dropped");
}

/* Serves up to BATCH transmit chains; returns whether any was used, *@more at the limit. */
static bool tx_run(struct virtio_vsock *v, bool *more, const char **why)
{
	struct virtqueue *vq = &v->vdev.queues[VSOCK_TX_QUEUE];
	bool pushed = false;

	for (unsigned n = 0; queue_live(v, VSOCK_TX_QUEUE); n++) {
		int r;

		if (n == BATCH) {
			*more = true;
			break;
		}
		r = vq_pop_chain(vq, &v->tx_chain);
		if (r < 0)
			*why = "virtio-vsock: malformed transmit chain";
		if (r <= 0)
			break;
		guest_packet(v, &v->tx_chain);
		pushed |= vq_push_used(vq, v->tx_chain.head, 0) == 0;
	}
	return pushed;
}

/* ---- host to guest --------------------------------------------------------------------------- */

/* A receive chain in hand (taken now or kept from before); false when the ring is empty. */
static bool take_rx_chain(struct virtio_vsock *v, const char **why)
{
	int r;

	if (v->rx_held)
		return true;
	r = vq_pop_chain(&v->vdev.queues[VSOCK_RX_QUEUE], &v->rx_chain);
	/* Room for the header and some data: a header-only buffer could never carry a byte. */
	if (r > 0 && (v->rx_chain.nr_out || v->rx_chain.in_len <= VSOCK_HDR_LEN))
		r = -EINVAL;
	if (r < 0)
		*why = "virtio-vsock: malformed receive chain";
	v->rx_held = r > 0;
	return v->rx_held;
}

static struct virtio_vsock_hdr header(const struct virtio_vsock *v, const struct vsock_conn *c,
                                      uint16_t op, uint32_t len, uint32_t flags)
{
	return (struct virtio_vsock_hdr){
	        .src_cid = htole64(VSOCK_HOST_CID),
	        .dst_cid = htole64(guest_cid(v)),
	        .src_port = htole32(c->host_port),
	        .dst_port = htole32(c->guest_port),
	        .len = htole32(len),
	        .type = htole16(VSOCK_TYPE_STREAM),
	        .op = htole16(op),
	        .flags = htole32(flags),
	        .buf_alloc = htole32(VSOCK_BUF_ALLOC),
	        .fwd_cnt = htole32(c->fwd_cnt),
	};
}

/* Hands the held chain to the guest with @h and @len payload bytes already in place. */
static bool put_packet(struct virtio_vsock *v, const struct virtio_vsock_hdr *h, uint32_t len)
{
	iov_from_buf(v->rx_chain.iov, v->rx_chain.nr_in, 0, h, VSOCK_HDR_LEN);
	v->rx_held = false;
	return vq_push_used(&v->vdev.queues[VSOCK_RX_QUEUE], v->rx_chain.head,
	                    VSOCK_HDR_LEN + len) == 0;
}

/* The control packet @c owes first, with the held chain; false when it owes none. */
static bool put_control(struct virtio_vsock *v, struct vsock_conn *c, bool *pushed)
{
	struct virtio_vsock_hdr h;

	if (c->send_rst) {
		h = header(v, c, VSOCK_OP_RST, 0, 0);
		*pushed |= put_packet(v, &h, 0);
		stream_free(c);
		return true;
	}
	if (c->send_request)
		h = header(v, c, VSOCK_OP_REQUEST, 0, 0);
	else if (c->send_response)
		h = header(v, c, VSOCK_OP_RESPONSE, 0, 0);
	else if (c->send_shutdown)
		h = header(v, c, VSOCK_OP_SHUTDOWN, 0, VSOCK_SHUTDOWN_SEND);
	else if (c->send_credit)
		h = header(v, c, VSOCK_OP_CREDIT_UPDATE, 0, 0);
	else
		return false;
	if (c->send_request)
		c->send_request = false;
	else if (c->send_response)
		c->send_response = false;
	else if (c->send_shutdown)
		c->send_shutdown = false;
	else
		c->send_credit = false;
	c->fwd_reported = c->fwd_cnt;
	*pushed |= put_packet(v, &h, 0);
	return true;
}

/* Reads from @c's socket straight into the held chain. */
static void put_data(struct virtio_vsock *v, struct vsock_conn *c, bool *pushed)
{
	uint64_t room = MIN(v->rx_chain.in_len - VSOCK_HDR_LEN,
	                    MIN(stream_peer_credit(c), VSOCK_MAX_PAYLOAD));
	struct iovec iov[VQ_MAX_IOV];
	uint64_t covered;
	unsigned n = iov_slice(v->rx_chain.iov, v->rx_chain.nr_in, VSOCK_HDR_LEN, room, iov,
	                       VQ_MAX_IOV, &covered);
	struct virtio_vsock_hdr h;
	ssize_t got = readv(c->src.fd, iov, (int)n);

	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->readable = false;
		return;
	}
	if (got < 0) {
		stream_reset(c);
		return;
	}
	if (got == 0) { /* the host will send no more */
		c->readable = false;
		c->host_eof = true;
		c->send_shutdown = true;
		return;
	}
	c->tx_cnt += (uint32_t)got;
	c->send_credit = false; /* this packet carries fwd_cnt too */
	c->fwd_reported = c->fwd_cnt;
	h = header(v, c, VSOCK_OP_RW, (uint32_t)got, 0);
	*pushed |= put_packet(v, &h, (uint32_t)got);
}

static bool owes_control(const struct vsock_conn *c)
{
	return c->send_rst || c->send_request || c->send_response || c->send_shutdown ||
	       c->send_credit;
}

static bool has_data(const struct vsock_conn *c)
{
	return c->connected && c->readable && !c->host_eof && !c->guest_shut_rcv &&
	       stream_peer_credit(c) > 0;
}

/* The next stream with something for the guest, round robin; NULL when none has. */
static struct vsock_conn *next_with_work(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[(v->next_conn + i) % VSOCK_MAX_CONNS];

		if (c->used && !c->reading_line && (owes_control(c) || has_data(c))) {
			v->next_conn = (v->next_conn + i + 1) % VSOCK_MAX_CONNS;
			return c;
		}
	}
	return NULL;
}

/* Fills up to BATCH receive chains; returns whether any was used, *@more at the limit. */
static bool rx_run(struct virtio_vsock *v, bool *more, const char **why)
{
	bool pushed = false;

	for (unsigned n = 0; queue_live(v, VSOCK_RX_QUEUE) && !*why; n++) {
		struct vsock_conn *c;

		if (n == BATCH) {
			*more = true;
			break;
		}
		if (v->nr_stray_rst) {
			struct vsock_conn stray = {.guest_port = v->stray_rst[0].guest_port,
			                           .host_port = v->stray_rst[0].host_port};
			struct virtio_vsock_hdr h = header(v, &stray, VSOCK_OP_RST, 0, 0);

			if (!take_rx_chain(v, why))
				goto starved;
			pushed |= put_packet(v, &h, 0);
			memmove(v->stray_rst, v->stray_rst + 1,
			        --v->nr_stray_rst * sizeof(v->stray_rst[0]));
			continue;
		}
		c = next_with_work(v);
		if (!c)
			break;
		if (!take_rx_chain(v, why))
			goto starved;
		if (!put_control(v, c, &pushed))
			put_data(v, c, &pushed);
	}
	return pushed;
starved:
	v->rx_starved = true;
	return pushed;
}

/* ---- the device's runs ----------------------------------------------------------------------- */

/*
 * Under the lock: serves the transmit queue, then fills receive chains, and sets each socket's
 * watch. Returns which queues want an interrupt; *@more when a batch limit stopped it.
 */
static void vsock_run(struct virtio_vsock *v, bool tx, bool *tx_pushed, bool *rx_pushed, bool *more,
                      const char **why)
{
	if (tx)
		*tx_pushed = tx_run(v, more, why);
	if (!*why)
		*rx_pushed = rx_run(v, more, why);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (v->conns[i].used)
			stream_update_watch(&v->conns[i]);
	}
}

/* Under the lock: what a socket event says about @c's host socket. */
static void note_socket_event(struct vsock_conn *c, uint32_t events)
{
	if (!c->used || c->src.fd < 0)
		return; /* closed by a reset since epoll reported it */
	if (c->reading_line) {
		stream_read_line(c);
		return;
	}
	if (events & EPOLLOUT)
		stream_flush(c);
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->src.fd >= 0)
		c->readable = true;
}

/*
 * Takes the lock, notes @c's socket @events (when @c), runs, and after dropping the lock
 * interrupts, flags a bad ring or posts the rest.
 */
static void vsock_run_locked(struct virtio_vsock *v, bool tx, bool rx_notified,
                             struct vsock_conn *c, uint32_t events)
{
	bool tx_pushed = false, rx_pushed = false, more = false;
	const char *why = NULL;

	pthread_mutex_lock(&v->vdev.lock);
	if (rx_notified)
		v->rx_starved = false;
	if (c)
		note_socket_event(c, events);
	vsock_run(v, tx, &tx_pushed, &rx_pushed, &more, &why);
	pthread_mutex_unlock(&v->vdev.lock);
	if (why)
		virtio_set_needs_reset(&v->vdev, why);
	if (tx_pushed)
		virtio_queue_done(&v->vdev, VSOCK_TX_QUEUE);
	if (rx_pushed)
		virtio_queue_done(&v->vdev, VSOCK_RX_QUEUE);
	if (more)
		event_loop_post(v->loop, &v->resume);
}

static void resume(void *opaque)
{
	vsock_run_locked(opaque, true, false, NULL, 0);
}

/*
 * Under the lock: a TRANSPORT_RESET event in the driver's next event buffer, so it drops the
 * streams a restore did not bring back. True when one was sent; without a buffer it stays owed.
 */
static bool send_transport_reset(struct virtio_vsock *v, const char **why)
{
	struct virtqueue *vq = &v->vdev.queues[VSOCK_EVENT_QUEUE];
	const uint32_t id = htole32(VSOCK_EVENT_TRANSPORT_RESET);
	int r;

	if (!v->reset_owed || !vq->active)
		return false;
	r = vq_pop_chain(vq, &v->tx_chain);
	if (r > 0 && v->tx_chain.in_len < sizeof(id))
		r = -EINVAL;
	if (r < 0)
		*why = "virtio-vsock: malformed event chain";
	if (r <= 0)
		return false;
	iov_from_buf(v->tx_chain.iov + v->tx_chain.nr_out, v->tx_chain.nr_in, 0, &id, sizeof(id));
	v->reset_owed = false;
	return vq_push_used(vq, v->tx_chain.head, sizeof(id)) == 0;
}

static void vsock_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct virtio_vsock *v = to_vsock(dev);
	const char *why = NULL;
	bool pushed;

	if (q == VSOCK_TX_QUEUE || q == VSOCK_RX_QUEUE) {
		vsock_run_locked(v, q == VSOCK_TX_QUEUE, q == VSOCK_RX_QUEUE, NULL, 0);
		return;
	}
	/* The event queue's buffers are kept for the one event there is, after a restore. */
	pthread_mutex_lock(&dev->lock);
	pushed = send_transport_reset(v, &why);
	pthread_mutex_unlock(&dev->lock);
	if (why)
		virtio_set_needs_reset(dev, why);
	if (pushed)
		virtio_queue_done(dev, VSOCK_EVENT_QUEUE);
}

/* A socket event: noted, then the same run as a notification. */
static void conn_event(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;

	vsock_run_locked(c->dev, false, false, c, events);
}

static int vsock_activate(struct virtio_dev *dev)
{
	(void)dev;
	return 0;
}

/* Under vdev.lock: the driver reset the device; every stream ends with it. */
static void vsock_reset(struct virtio_dev *dev)
{
	struct virtio_vsock *v = to_vsock(dev);

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (v->conns[i].used)
			stream_free(&v->conns[i]);
	}
	v->nr_stray_rst = 0;
	v->rx_held = v->rx_starved = v->reset_owed = false;
}

/* Under vdev.lock: a receive chain taken and not filled goes back to the ring. */
static unsigned vsock_chains_held(struct virtio_dev *dev, unsigned q)
{
	return q == VSOCK_RX_QUEUE && to_vsock(dev)->rx_held;
}

/*
 * Streams are host sockets, which no snapshot holds: nothing of them is saved, and a restored
 * device owes the driver a transport reset, as after a migration, which it sends once the
 * event queue is notified (virtio_dev_resume does). Under vdev.lock.
 */
static int vsock_load(struct virtio_dev *dev, struct snap_cursor *c, char *err, size_t errlen)
{
	(void)c;
	(void)err;
	(void)errlen;
	to_vsock(dev)->reset_owed = true;
	return 0;
}

static const struct virtio_device_ops vsock_ops = {
        .name = "virtio-vsock",
        .device_id = VIRTIO_ID_VSOCK,
        .num_queues = 3,
        .max_queue_size = VSOCK_QUEUE_SIZE,
        .activate = vsock_activate,
        .reset = vsock_reset,
        .queue_notify = vsock_queue_notify,
        .chains_held = vsock_chains_held,
        .load = vsock_load,
        .snapshots = true,
};

int virtio_vsock_init(struct virtio_vsock *v, const char *path, uint64_t cid,
                      const struct guest_memory *mem, struct event_loop *loop, char *err,
                      size_t errlen)
{
	memset(v, 0, sizeof(*v));
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		c->dev = v;
		c->src = (struct event_source){.fd = -1, .handler = conn_event, .opaque = c};
	}
	v->listener.fd = -1;
	if (cid < 3 || cid > 0xfffffffeULL) {
		snprintf(err, errlen, "--vsock: cid %" PRIu64 " is not from 3 to 4294967294", cid);
		return -EINVAL;
	}
	if (snprintf(v->path, sizeof(v->path), "%s", path) >= (int)sizeof(v->path) || !path[0]) {
		snprintf(err, errlen, "--vsock: '%s' is not a usable Unix socket path", path);
		return -EINVAL;
	}
	v->loop = loop;
	v->config.guest_cid = htole64(cid);
	event_work_init(&v->resume, resume, v);
	virtio_dev_init(&v->vdev, &vsock_ops, mem,
	                1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << VIRTIO_F_EVENT_IDX, &v->config,
	                sizeof(v->config));
	return vsock_listen(v, err, errlen);
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (v->conns[i].used)
			stream_free(&v->conns[i]);
	}
	/* The socket file stays (no unlink under the sandbox); the next start replaces it. */
	if (v->listening) {
		event_loop_del(v->loop, &v->listener);
		close(v->listener.fd);
		v->listening = false;
	}
	if (v->loop)
		event_loop_cancel(v->loop, &v->resume);
	if (v->vdev.ops)
		virtio_dev_destroy(&v->vdev);
	v->vdev.ops = NULL;
}
