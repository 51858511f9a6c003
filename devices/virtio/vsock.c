/*
 * virtio-vsock over host Unix sockets: see vsock.h. The device side (this file's first half)
 * turns guest packets into socket operations and socket data into packets for the guest; the
 * host side (second half) is the listener and the CONNECT line of host-initiated streams.
 */
#include "devices/virtio/vsock.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/iov.h"
#include "vmm/log.h"

#define HDR_LEN          ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define BATCH            64 /* packets each way per run, then the loop gets a turn */
#define ACCEPT_BATCH     16
#define FIRST_HOST_PORT  (1u << 30) /* host-initiated streams' host ports count up from here */
#define CREDIT_THRESHOLD (VSOCK_BUF_ALLOC / 4)
/* The guest's bytes in flight (its credit) and vmm's own "OK <port>\n" before them. */
#define PENDING_SIZE (VSOCK_BUF_ALLOC + VSOCK_CONNECT_MAX)

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

/* Bytes the guest has room for: its buffer less what we sent and it did not consume yet. */
static uint32_t peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* ---- connections ---------------------------------------------------------------------------- */

static struct vsock_conn *find_conn(struct virtio_vsock *v, uint32_t guest_port, uint32_t host_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->used && !c->reading_line && c->guest_port == guest_port &&
		    c->host_port == host_port)
			return c;
	}
	return NULL;
}

static void conn_event(void *opaque, uint32_t events);
static void host_read_line(struct vsock_conn *c);
static int host_connect(struct virtio_vsock *v, uint32_t port);

/* Back to a free slot; the fields set once per slot stay (see struct vsock_conn). */
static void conn_clear(struct vsock_conn *c)
{
	size_t keep = offsetof(struct vsock_conn, used);

	memset((char *)c + keep, 0, sizeof(*c) - keep);
	c->src.fd = -1;
}

/* A free slot for a stream on the open socket @fd, not yet watched; NULL when all are taken. */
static struct vsock_conn *conn_new(struct virtio_vsock *v, int fd)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->used)
			continue;
		conn_clear(c);
		c->used = true;
		c->src.fd = fd;
		return c;
	}
	return NULL;
}

static void set_watch(struct vsock_conn *c, uint32_t events)
{
	struct event_loop *loop = c->dev->loop;
	int r = 0;

	if (c->src.fd < 0 || (c->registered && events == c->watching))
		return;
	/* Unwatched, not merely asking for no events: epoll reports a hang-up regardless. */
	if (!events) {
		if (c->registered)
			event_loop_del(loop, &c->src);
		c->registered = false;
	} else if (c->registered) {
		r = event_loop_modify(loop, &c->src, events);
	} else {
		r = event_loop_add(loop, &c->src, events);
		c->registered = r == 0;
	}
	if (r)
		log_ratelimited(LOG_ERROR, "virtio-vsock: epoll: %s", strerror(-r));
	c->watching = events;
}

/* What the socket should wake us for, from the stream's state. */
static void update_watch(struct vsock_conn *c)
{
	uint32_t events = 0;

	if (c->reading_line)
		events |= EPOLLIN;
	else if (c->connected && !c->readable && !c->host_eof && !c->guest_shut_rcv &&
	         !c->dev->rx_starved && peer_credit(c) > 0)
		events |= EPOLLIN;
	if (c->pending_len)
		events |= EPOLLOUT;
	set_watch(c, events);
}

static void close_socket(struct vsock_conn *c)
{
	set_watch(c, 0);
	if (c->src.fd >= 0)
		close(c->src.fd);
	c->src.fd = -1;
	free(c->pending);
	c->pending = NULL;
	c->pending_len = 0;
}

static void conn_free(struct vsock_conn *c)
{
	close_socket(c);
	conn_clear(c);
}

/* Ends the stream: the socket closes now, the guest gets a RST (then the slot is free). */
static void conn_reset(struct vsock_conn *c)
{
	close_socket(c);
	c->connected = c->readable = false;
	c->send_request = c->send_response = c->send_shutdown = c->send_credit = false;
	c->send_rst = true;
}

/* A RST for a packet that matches no stream (dropped when too many are owed). */
static void stray_rst(struct virtio_vsock *v, uint32_t guest_port, uint32_t host_port)
{
	if (v->nr_stray_rst == ARRAY_SIZE(v->stray_rst)) {
		log_ratelimited(LOG_WARN, "virtio-vsock: too many resets owed; one dropped");
		return;
	}
	v->stray_rst[v->nr_stray_rst].guest_port = guest_port;
	v->stray_rst[v->nr_stray_rst].host_port = host_port;
	v->nr_stray_rst++;
}

/* ---- guest to host ----------------------------------------------------------------------------
 */

static ssize_t send_iov(int fd, struct iovec *iov, unsigned n)
{
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};

	/* MSG_NOSIGNAL: a host peer that went away is EPIPE, not SIGPIPE. */
	return sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* @n bytes of the ring reached the host: the guest's count toward fwd_cnt, vmm's own do not. */
static void forwarded(struct vsock_conn *c, uint32_t n)
{
	uint32_t own = MIN(n, c->own_bytes);

	c->own_bytes -= own;
	c->fwd_cnt += n - own;
	if (c->fwd_cnt - c->fwd_reported >= CREDIT_THRESHOLD)
		c->send_credit = true;
}

/* The guest's shutdowns take effect once its data reached the host socket. */
static void apply_guest_shutdown(struct vsock_conn *c)
{
	if (c->pending_len || c->src.fd < 0)
		return;
	if (c->guest_shut_send && c->guest_shut_rcv)
		conn_reset(c); /* both ways: the guest closed, and expects our RST */
	else if (c->guest_shut_send)
		shutdown(c->src.fd, SHUT_WR);
}

/* Writes what waits in the pending ring while the socket takes it. */
static void flush_pending(struct vsock_conn *c)
{
	while (c->pending_len) {
		uint32_t first = MIN(c->pending_len, PENDING_SIZE - c->pending_head);
		struct iovec iov[2] = {{c->pending + c->pending_head, first},
		                       {c->pending, c->pending_len - first}};
		ssize_t n = send_iov(c->src.fd, iov, c->pending_len > first ? 2 : 1);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_reset(c);
			return;
		}
		c->pending_head = (c->pending_head + (uint32_t)n) % PENDING_SIZE;
		c->pending_len -= (uint32_t)n;
		forwarded(c, (uint32_t)n);
	}
	apply_guest_shutdown(c);
}

/* An RW packet's @len payload bytes (after the header in @chain) to the host socket. */
static void guest_data(struct vsock_conn *c, const struct vq_chain *chain, uint32_t len)
{
	struct iovec iov[VQ_MAX_IOV];
	uint64_t covered;
	unsigned n;
	ssize_t sent = 0;

	c->rx_cnt += len;
	if (!c->pending_len) {
		n = iov_slice(chain->iov, chain->nr_out, HDR_LEN, len, iov, VQ_MAX_IOV, &covered);
		sent = send_iov(c->src.fd, iov, n);
		if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_reset(c);
			return;
		}
		sent = MAX(sent, 0);
		forwarded(c, (uint32_t)sent);
	}
	if ((uint32_t)sent == len)
		return;
	if (!c->pending && !(c->pending = malloc(PENDING_SIZE))) {
		log_ratelimited(LOG_ERROR, "virtio-vsock: out of memory");
		conn_reset(c);
		return;
	}
	/* Fits: the guest may only send what its credit allows (checked by the caller). */
	for (uint32_t off = (uint32_t)sent; off < len;) {
		uint32_t tail = (c->pending_head + c->pending_len) % PENDING_SIZE;
		uint32_t room = MIN(PENDING_SIZE - c->pending_len, PENDING_SIZE - tail);
		uint32_t take = MIN(room, len - off);

		iov_to_buf(chain->iov, chain->nr_out, HDR_LEN + off, c->pending + tail, take);
		c->pending_len += take;
		off += take;
	}
}

/* A guest REQUEST for host port @h->dst_port: connect to PATH_<port>, else refuse. */
static void guest_connect(struct virtio_vsock *v, const struct virtio_vsock_hdr *h)
{
	uint32_t guest_port = le32toh(h->src_port), host_port = le32toh(h->dst_port);
	int fd = host_connect(v, host_port);
	struct vsock_conn *c = fd >= 0 ? conn_new(v, fd) : NULL;

	if (!c) {
		if (fd >= 0) {
			log_ratelimited(LOG_WARN,
			                "virtio-vsock: %d streams open; connection refused",
			                VSOCK_MAX_CONNS);
			close(fd);
		}
		stray_rst(v, guest_port, host_port);
		return;
	}
	c->guest_port = guest_port;
	c->host_port = host_port;
	c->connected = true;
	c->send_response = true;
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
}

/* The host side learns the guest accepted: "OK <hostport>\n", then data flows. */
static void host_connected(struct vsock_conn *c)
{
	char ok[24];
	int len = snprintf(ok, sizeof(ok), "OK %" PRIu32 "\n", c->host_port);

	c->connected = true;
	c->pending = malloc(PENDING_SIZE);
	if (!c->pending) {
		conn_reset(c);
		return;
	}
	memcpy(c->pending, ok, (size_t)len);
	c->pending_head = 0;
	c->pending_len = c->own_bytes = (uint32_t)len;
	flush_pending(c);
}

static void guest_packet_op(struct vsock_conn *c, const struct virtio_vsock_hdr *h,
                            const struct vq_chain *chain)
{
	uint32_t len = le32toh(h->len);

	switch (le16toh(h->op)) {
	case VSOCK_OP_RESPONSE:
		if (c->host_initiated && c->send_request == false && !c->connected)
			host_connected(c);
		else
			conn_reset(c);
		break;
	case VSOCK_OP_RST:
		conn_free(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		c->guest_shut_rcv |= !!(le32toh(h->flags) & VSOCK_SHUTDOWN_RCV);
		c->guest_shut_send |= !!(le32toh(h->flags) & VSOCK_SHUTDOWN_SEND);
		apply_guest_shutdown(c);
		break;
	case VSOCK_OP_RW:
		/* Past its credit, after its own shutdown, or before the handshake: hostile. */
		if (!c->connected || c->guest_shut_send ||
		    len > VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt))
			conn_reset(c);
		else if (len)
			guest_data(c, chain, len);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break; /* the header's credit was taken already */
	case VSOCK_OP_CREDIT_REQUEST:
		c->send_credit = true;
		break;
	default: /* REQUEST on a live stream, or an unknown op */
		conn_reset(c);
		break;
	}
}

/* One packet from the transmit queue. */
static void guest_packet(struct virtio_vsock *v, const struct vq_chain *chain)
{
	struct virtio_vsock_hdr h;
	struct vsock_conn *c;
	uint32_t len;

	if (chain->nr_in || iov_to_buf(chain->iov, chain->nr_out, 0, &h, HDR_LEN) < HDR_LEN)
		goto drop;
	len = le32toh(h.len);
	if (len > VSOCK_MAX_PAYLOAD || len > chain->out_len - HDR_LEN ||
	    le64toh(h.src_cid) != guest_cid(v) || le64toh(h.dst_cid) != VSOCK_HOST_CID)
		goto drop;
	c = find_conn(v, le32toh(h.src_port), le32toh(h.dst_port));
	if (le16toh(h.type) != VSOCK_TYPE_STREAM) {
		if (c)
			conn_reset(c);
		else if (le16toh(h.op) != VSOCK_OP_RST)
			stray_rst(v, le32toh(h.src_port), le32toh(h.dst_port));
		return;
	}
	if (!c) {
		if (le16toh(h.op) == VSOCK_OP_REQUEST)
			guest_connect(v, &h);
		else if (le16toh(h.op) != VSOCK_OP_RST)
			stray_rst(v, le32toh(h.src_port), le32toh(h.dst_port));
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

/* ---- host to guest ----------------------------------------------------------------------------
 */

/* A receive chain in hand (taken now or kept from before); false when the ring is empty. */
static bool take_rx_chain(struct virtio_vsock *v, const char **why)
{
	int r;

	if (v->rx_held)
		return true;
	r = vq_pop_chain(&v->vdev.queues[VSOCK_RX_QUEUE], &v->rx_chain);
	/* Room for the header and some data: a header-only buffer could never carry a byte. */
	if (r > 0 && (v->rx_chain.nr_out || v->rx_chain.in_len <= HDR_LEN))
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
	iov_from_buf(v->rx_chain.iov, v->rx_chain.nr_in, 0, h, HDR_LEN);
	v->rx_held = false;
	return vq_push_used(&v->vdev.queues[VSOCK_RX_QUEUE], v->rx_chain.head, HDR_LEN + len) == 0;
}

/* The control packet @c owes first, with the held chain; false when it owes none. */
static bool put_control(struct virtio_vsock *v, struct vsock_conn *c, bool *pushed)
{
	struct virtio_vsock_hdr h;

	if (c->send_rst) {
		h = header(v, c, VSOCK_OP_RST, 0, 0);
		*pushed |= put_packet(v, &h, 0);
		conn_free(c);
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
	uint64_t room = MIN(v->rx_chain.in_len - HDR_LEN, MIN(peer_credit(c), VSOCK_MAX_PAYLOAD));
	struct iovec iov[VQ_MAX_IOV];
	uint64_t covered;
	unsigned n = iov_slice(v->rx_chain.iov, v->rx_chain.nr_in, HDR_LEN, room, iov, VQ_MAX_IOV,
	                       &covered);
	struct virtio_vsock_hdr h;
	ssize_t got = readv(c->src.fd, iov, (int)n);

	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->readable = false;
		return;
	}
	if (got < 0) {
		conn_reset(c);
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
	       peer_credit(c) > 0;
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

/* ---- the device's runs ------------------------------------------------------------------------
 */

/*
 * Under the lock: serves the transmit queue, then fills receive chains, and sets each socket's
 * watch. Returns which queues want an interrupt; *@more when a batch limit stopped it.
 */
static void run(struct virtio_vsock *v, bool tx, bool *tx_pushed, bool *rx_pushed, bool *more,
                const char **why)
{
	if (tx)
		*tx_pushed = tx_run(v, more, why);
	if (!*why)
		*rx_pushed = rx_run(v, more, why);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (v->conns[i].used)
			update_watch(&v->conns[i]);
	}
}

/* Takes the lock, runs, and after dropping it interrupts, flags a bad ring or posts the rest. */
static void run_locked(struct virtio_vsock *v, bool tx, bool rx_notified)
{
	bool tx_pushed = false, rx_pushed = false, more = false;
	const char *why = NULL;

	pthread_mutex_lock(&v->vdev.lock);
	if (rx_notified)
		v->rx_starved = false;
	run(v, tx, &tx_pushed, &rx_pushed, &more, &why);
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
	run_locked(opaque, true, false);
}

static void vsock_queue_notify(struct virtio_dev *dev, unsigned q)
{
	/* The event queue's buffers are kept: no event is ever sent (no migration here). */
	if (q == VSOCK_TX_QUEUE || q == VSOCK_RX_QUEUE)
		run_locked(to_vsock(dev), q == VSOCK_TX_QUEUE, q == VSOCK_RX_QUEUE);
}

/* A socket event: note it, then the same run as a notification. */
static void conn_event(void *opaque, uint32_t events)
{
	struct vsock_conn *c = opaque;
	struct virtio_vsock *v = c->dev;
	bool tx_pushed = false, rx_pushed = false, more = false;
	const char *why = NULL;

	pthread_mutex_lock(&v->vdev.lock);
	if (c->used && c->src.fd >= 0) { /* not closed by a reset since epoll reported it */
		if (c->reading_line) {
			host_read_line(c);
		} else {
			if (events & EPOLLOUT)
				flush_pending(c);
			if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->src.fd >= 0)
				c->readable = true;
		}
	}
	run(v, false, &tx_pushed, &rx_pushed, &more, &why);
	pthread_mutex_unlock(&v->vdev.lock);
	if (why)
		virtio_set_needs_reset(&v->vdev, why);
	if (rx_pushed)
		virtio_queue_done(&v->vdev, VSOCK_RX_QUEUE);
	if (more)
		event_loop_post(v->loop, &v->resume);
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
			conn_free(&v->conns[i]);
	}
	v->nr_stray_rst = 0;
	v->rx_held = v->rx_starved = false;
}

static const struct virtio_device_ops vsock_ops = {
        .name = "virtio-vsock",
        .device_id = VIRTIO_ID_VSOCK,
        .num_queues = 3,
        .max_queue_size = VSOCK_QUEUE_SIZE,
        .activate = vsock_activate,
        .reset = vsock_reset,
        .queue_notify = vsock_queue_notify,
};

/* ---- the host side: the listener, CONNECT lines, PATH_<port> ----------------------------------
 */

/* Another stream already joins @c's guest and host ports. */
static bool pair_taken(struct virtio_vsock *v, const struct vsock_conn *c)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct vsock_conn *o = &v->conns[i];

		if (o != c && o->used && !o->reading_line && o->guest_port == c->guest_port &&
		    o->host_port == c->host_port)
			return true;
	}
	return false;
}

/*
 * The CONNECT line of a host-initiated stream, taken as it arrives (in pieces too) up to its
 * newline and no further: bytes after it are the stream's first data.
 */
static void host_read_line(struct vsock_conn *c)
{
	struct virtio_vsock *v = c->dev;
	struct iovec iov = {c->line + c->line_len, VSOCK_CONNECT_MAX - c->line_len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = recvmsg(c->src.fd, &msg, MSG_PEEK | MSG_DONTWAIT);
	char *nl, *end;
	unsigned long port;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_free(c); /* the host went away (or failed) before its line ended */
		return;
	}
	nl = memchr(c->line + c->line_len, '\n', (size_t)n);
	iov.iov_len = nl ? (size_t)(nl - (c->line + c->line_len)) + 1 : (size_t)n;
	if (recvmsg(c->src.fd, &msg, MSG_DONTWAIT) != (ssize_t)iov.iov_len) {
		conn_free(c);
		return;
	}
	c->line_len += (unsigned)iov.iov_len;
	if (!nl) {
		if (c->line_len == VSOCK_CONNECT_MAX)
			conn_free(c); /* no line where one must be */
		return;
	}
	*nl = 0;
	errno = 0;
	port = strncmp(c->line, "CONNECT ", 8) ? 0 : strtoul(c->line + 8, &end, 10);
	if (strncmp(c->line, "CONNECT ", 8) || c->line[8] < '0' || c->line[8] > '9' || *end ||
	    errno || port > UINT32_MAX) {
		log_ratelimited(LOG_WARN,
		                "virtio-vsock: host connection closed: expected "
		                "'CONNECT <port>', got '%.*s'",
		                VSOCK_CONNECT_MAX, c->line);
		conn_free(c);
		return;
	}
	c->reading_line = false;
	c->guest_port = (uint32_t)port;
	do
		c->host_port = v->next_host_port++ | FIRST_HOST_PORT;
	while (pair_taken(v, c));
	c->send_request = true;
	c->peer_buf_alloc = 0; /* no credit until the guest's RESPONSE says its buffer */
}

static void on_listener(void *opaque, uint32_t events)
{
	struct virtio_vsock *v = opaque;

	(void)events;
	pthread_mutex_lock(&v->vdev.lock);
	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(v->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_conn *c;

		if (fd < 0)
			break;
		c = conn_new(v, fd);
		if (!c) {
			log_ratelimited(LOG_WARN,
			                "virtio-vsock: %d streams open; host connection "
			                "closed",
			                VSOCK_MAX_CONNS);
			close(fd);
			continue;
		}
		c->host_initiated = c->reading_line = true;
		update_watch(c);
	}
	pthread_mutex_unlock(&v->vdev.lock);
}

/* A connected socket to PATH_<port>, or -errno (nobody listens there). */
static int host_connect(struct virtio_vsock *v, uint32_t port)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd;

	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s_%" PRIu32, v->path, port) >=
	    sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int listen_on(struct virtio_vsock *v, char *err, size_t errlen)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, r;

	/* Room for "_<port>" too: guest-initiated streams go to PATH_<port>. */
	if (strlen(v->path) + 11 >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "--vsock: '%s' is too long for a Unix socket path", v->path);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, v->path, strlen(v->path) + 1);
	if (lstat(v->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "--vsock: '%s' exists and is not a socket", v->path);
			return -EEXIST;
		}
		unlink(v->path); /* a stale socket of an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		snprintf(err, errlen, "--vsock: cannot listen on '%s': %s", v->path, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	v->listener = (struct event_source){.fd = fd, .handler = on_listener, .opaque = v};
	r = event_loop_add(v->loop, &v->listener, EPOLLIN);
	if (r) {
		snprintf(err, errlen, "--vsock: %s", strerror(-r));
		close(fd);
		unlink(v->path);
		return r;
	}
	v->listening = true;
	return 0;
}

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
	return listen_on(v, err, errlen);
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		if (v->conns[i].used)
			conn_free(&v->conns[i]);
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
