/*
 * The host half of virtio-vsock's streams (see vsock.h): the table of streams, each one's Unix
 * socket and how the loop watches it, the guest's bytes on their way to it (with the ring
 * they wait in while it is full), and the listener, CONNECT lines and PATH_<port> connects.
 * vsock.c, the device half, turns packets into these calls. Threads: as vsock.h: the
 * event-loop thread, under the device lock.
 */
#include "devices/virtio/vsock_stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/iov.h"
#include "vmm/log.h"
#include "vmm/unix_listen.h"

#define ACCEPT_BATCH     16
#define FIRST_HOST_PORT  (1u << 30) /* host-initiated streams' host ports count up from here */
#define CREDIT_THRESHOLD (VSOCK_BUF_ALLOC / 4)
/* The guest's bytes in flight (its credit) and vmm's own "OK <port>\n" before them. */
#define PENDING_SIZE (VSOCK_BUF_ALLOC + VSOCK_CONNECT_MAX)

/* ---- connections ---------------------------------------------------------------------------- */

struct vsock_conn *stream_find(struct virtio_vsock *v, uint32_t guest_port, uint32_t host_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->used && !c->reading_line && c->guest_port == guest_port &&
		    c->host_port == host_port)
			return c;
	}
	return NULL;
}

/* Back to a free slot; the fields set once per slot stay (see struct vsock_conn). */
static void conn_clear(struct vsock_conn *c)
{
	size_t keep = offsetof(struct vsock_conn, used);

	memset((char *)c + keep, 0, sizeof(*c) - keep);
	c->src.fd = -1;
}

/* A free slot for a stream on the open socket @fd, not yet watched; NULL when all are taken. */
struct vsock_conn *stream_new(struct virtio_vsock *v, int fd)
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
void stream_update_watch(struct vsock_conn *c)
{
	uint32_t events = 0;

	if (c->reading_line)
		events |= EPOLLIN;
	else if (c->connected && !c->readable && !c->host_eof && !c->guest_shut_rcv &&
	         !c->dev->rx_starved && stream_peer_credit(c) > 0)
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

void stream_free(struct vsock_conn *c)
{
	close_socket(c);
	conn_clear(c);
}

/* Ends the stream: the socket closes now, the guest gets a RST (then the slot is free). */
void stream_reset(struct vsock_conn *c)
{
	close_socket(c);
	c->connected = c->readable = false;
	c->send_request = c->send_response = c->send_shutdown = c->send_credit = false;
	c->send_rst = true;
}

/* A RST for a packet that matches no stream (dropped when too many are owed). */
void stream_stray_rst(struct virtio_vsock *v, uint32_t guest_port, uint32_t host_port)
{
	if (v->nr_stray_rst == ARRAY_SIZE(v->stray_rst)) {
		log_ratelimited(LOG_WARN, "virtio-vsock: too many resets owed; one dropped");
		return;
	}
	v->stray_rst[v->nr_stray_rst].guest_port = guest_port;
	v->stray_rst[v->nr_stray_rst].host_port = host_port;
	v->nr_stray_rst++;
}

/* ---- guest to host --------------------------------------------------------------------------- */

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
void stream_apply_shutdown(struct vsock_conn *c)
{
	if (c->pending_len || c->src.fd < 0)
		return;
	if (c->guest_shut_send && c->guest_shut_rcv)
		stream_reset(c); /* both ways: the guest closed, and expects our RST */
	else if (c->guest_shut_send)
		shutdown(c->src.fd, SHUT_WR);
}

/* Writes what waits in the pending ring while the socket takes it. */
void stream_flush(struct vsock_conn *c)
{
	while (c->pending_len) {
		uint32_t first = MIN(c->pending_len, PENDING_SIZE - c->pending_head);
		struct iovec iov[2] = {{c->pending + c->pending_head, first},
		                       {c->pending, c->pending_len - first}};
		ssize_t n = send_iov(c->src.fd, iov, c->pending_len > first ? 2 : 1);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				stream_reset(c);
			return;
		}
		c->pending_head = (c->pending_head + (uint32_t)n) % PENDING_SIZE;
		c->pending_len -= (uint32_t)n;
		forwarded(c, (uint32_t)n);
	}
	stream_apply_shutdown(c);
}

/* An RW packet's @len payload bytes (after the header in @chain) to the host socket. */
void stream_guest_data(struct vsock_conn *c, const struct vq_chain *chain, uint32_t len)
{
	struct iovec iov[VQ_MAX_IOV];
	uint64_t covered;
	unsigned n;
	ssize_t sent = 0;

	c->rx_cnt += len;
	if (!c->pending_len) {
		n = iov_slice(chain->iov, chain->nr_out, VSOCK_HDR_LEN, len, iov, VQ_MAX_IOV,
		              &covered);
		sent = send_iov(c->src.fd, iov, n);
		if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			stream_reset(c);
			return;
		}
		sent = MAX(sent, 0);
		forwarded(c, (uint32_t)sent);
	}
	if ((uint32_t)sent == len)
		return;
	if (!c->pending && !(c->pending = malloc(PENDING_SIZE))) {
		log_ratelimited(LOG_ERROR, "virtio-vsock: out of memory");
		stream_reset(c);
		return;
	}
	/* Fits: the guest may only send what its credit allows (checked by the caller). */
	for (uint32_t off = (uint32_t)sent; off < len;) {
		uint32_t tail = (c->pending_head + c->pending_len) % PENDING_SIZE;
		uint32_t room = MIN(PENDING_SIZE - c->pending_len, PENDING_SIZE - tail);
		uint32_t take = MIN(room, len - off);

		iov_to_buf(chain->iov, chain->nr_out, VSOCK_HDR_LEN + off, c->pending + tail, take);
		c->pending_len += take;
		off += take;
	}
}

/* A guest REQUEST for host port @h->dst_port: connect to PATH_<port>, else refuse. */
/* ---- the host side: the listener, CONNECT lines, PATH_<port> --------------------------------- */

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
void stream_read_line(struct vsock_conn *c)
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
		stream_free(c); /* the host went away (or failed) before its line ended */
		return;
	}
	nl = memchr(c->line + c->line_len, '\n', (size_t)n);
	iov.iov_len = nl ? (size_t)(nl - (c->line + c->line_len)) + 1 : (size_t)n;
	if (recvmsg(c->src.fd, &msg, MSG_DONTWAIT) != (ssize_t)iov.iov_len) {
		stream_free(c);
		return;
	}
	c->line_len += (unsigned)iov.iov_len;
	if (!nl) {
		if (c->line_len == VSOCK_CONNECT_MAX)
			stream_free(c); /* no line where one must be */
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
		stream_free(c);
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

/*
 * Makes room for one more host connection in its handshake: past VSOCK_MAX_HANDSHAKES, the
 * oldest is closed (with a RST to the guest if it was asked to accept it). True when a RST is
 * owed.
 */
static bool evict_stalled_handshake(struct virtio_vsock *v)
{
	struct vsock_conn *oldest = NULL;
	unsigned n = 0;

	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (!c->used || !c->host_initiated || c->connected || c->send_rst)
			continue;
		n++;
		if (!oldest || c->accepted < oldest->accepted)
			oldest = c;
	}
	if (n < VSOCK_MAX_HANDSHAKES)
		return false;
	log_ratelimited(LOG_WARN,
	                "virtio-vsock: %d host connections in their handshake; the "
	                "oldest is closed",
	                VSOCK_MAX_HANDSHAKES);
	if (oldest->reading_line) {
		stream_free(oldest); /* the guest never heard of it */
		return false;
	}
	stream_reset(oldest);
	return true;
}

static void on_listener(void *opaque, uint32_t events)
{
	struct virtio_vsock *v = opaque;
	bool rst_owed = false;

	(void)events;
	pthread_mutex_lock(&v->vdev.lock);
	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(v->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_conn *c;

		if (fd < 0)
			break;
		rst_owed |= evict_stalled_handshake(v);
		c = stream_new(v, fd);
		if (!c) {
			log_ratelimited(LOG_WARN,
			                "virtio-vsock: %d streams open; host connection "
			                "closed",
			                VSOCK_MAX_CONNS);
			close(fd);
			continue;
		}
		c->host_initiated = c->reading_line = true;
		c->accepted = v->next_accept++;
		stream_update_watch(c);
	}
	pthread_mutex_unlock(&v->vdev.lock);
	if (rst_owed)
		event_loop_post(v->loop, &v->resume);
}

/* A connected socket to PATH_<port>, or -errno (nobody listens there). */
int stream_connect_host(struct virtio_vsock *v, uint32_t port)
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

int vsock_listen(struct virtio_vsock *v, char *err, size_t errlen)
{
	/* Room for "_<port>" too: guest-initiated streams go to PATH_<port>. */
	int fd = unix_listen(v->path, 11, 0, "--vsock", err, errlen), r;

	if (fd < 0)
		return fd;
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

void stream_host_connected(struct vsock_conn *c)
{
	char ok[24];
	int len = snprintf(ok, sizeof(ok), "OK %" PRIu32 "\n", c->host_port);

	c->connected = true;
	c->pending = malloc(PENDING_SIZE);
	if (!c->pending) {
		stream_reset(c);
		return;
	}
	memcpy(c->pending, ok, (size_t)len);
	c->pending_head = 0;
	c->pending_len = c->own_bytes = (uint32_t)len;
	stream_flush(c);
}
