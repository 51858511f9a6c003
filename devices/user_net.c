/* User-mode networking through libslirp: see user_net.h. */
#include "devices/user_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/iov.h"
#include "devices/virtio/net.h"
#include "vmm/log.h"

/* A frame for the guest that virtio-net has not taken yet. */
struct frame {
	struct frame *next;
	size_t len;
	uint8_t data[];
};

/* A libslirp timer (it asks for one, for IPv6 router advertisements). */
struct user_timer {
	struct user_timer *next;
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
};

/* One of libslirp's sockets on the event loop. */
struct slirp_fd {
	struct event_source src;
	struct user_net *u;
	uint32_t watching; /* the epoll events registered (0: not on the loop) */
	uint32_t wanted;   /* what libslirp asked for in the latest fill */
	uint32_t revents;  /* what epoll reported, until libslirp has seen it */
};

struct user_net {
	Slirp *slirp;
	struct event_loop *loop;
	struct event_source frames_ready; /* eventfd: readable while frames wait (backend fd) */
	struct event_source timer;        /* timerfd: libslirp's next timeout */
	struct event_work sync_work;      /* one sync_loop after a round's guest frames */
	struct slirp_fd **fds;            /* by fd number */
	unsigned nr_fds;
	int *polled; /* fd of each index libslirp got from the latest fill */
	unsigned nr_polled, cap_polled;
	struct user_timer *timers;
	struct frame *queue, **queue_tail;
	size_t queued_bytes;
	uint64_t dropped;
	uint8_t buf[VIRTIO_NET_MAX_PACKET]; /* a guest frame (libslirp's are <= 1518 bytes) */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- frames to the guest: libslirp's send_packet, virtio-net's recv -------------------------- */

static void signal_frames(struct user_net *u, bool ready)
{
	uint64_t v = 1;

	if (ready ? write(u->frames_ready.fd, &v, sizeof(v)) < 0
	          : read(u->frames_ready.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_ERROR, "net user: eventfd: %s", strerror(errno));
}

static ssize_t slirp_send(const void *data, size_t len, void *opaque)
{
	struct user_net *u = opaque;
	struct frame *f;

	if (u->queued_bytes + len > USER_NET_QUEUE_BYTES || !(f = malloc(sizeof(*f) + len))) {
		u->dropped++;
		log_ratelimited(LOG_WARN, "net user: frame for the guest dropped: %s",
		                u->queued_bytes + len > USER_NET_QUEUE_BYTES
		                        ? "the guest is not reading"
		                        : "out of memory");
		return (ssize_t)len;
	}
	f->next = NULL;
	f->len = len;
	memcpy(f->data, data, len);
	if (!u->queue)
		signal_frames(u, true);
	*u->queue_tail = f;
	u->queue_tail = &f->next;
	u->queued_bytes += len;
	return (ssize_t)len;
}

/* virtio-net's recv: the oldest frame behind a zero header (libslirp's are whole and checked). */
static ssize_t backend_recv(void *opaque, const struct iovec *iov, int iovcnt)
{
	static const uint8_t header[VIRTIO_NET_HDR_LEN];
	struct user_net *u = opaque;
	struct frame *f = u->queue;
	uint64_t n;

	if (!f) {
		signal_frames(u, false);
		return -EAGAIN;
	}
	n = iov_from_buf(iov, (unsigned)iovcnt, 0, header, VIRTIO_NET_HDR_LEN);
	n += iov_from_buf(iov, (unsigned)iovcnt, VIRTIO_NET_HDR_LEN, f->data, f->len);
	u->queue = f->next;
	if (!u->queue)
		u->queue_tail = &u->queue;
	u->queued_bytes -= f->len;
	free(f);
	return (ssize_t)n;
}

/* ---- libslirp's sockets and timers on the event loop ----------------------------------------- */

static void slirp_fd_event(void *opaque, uint32_t events);

static struct slirp_fd *fd_slot(struct user_net *u, int fd)
{
	if ((unsigned)fd >= u->nr_fds) {
		unsigned n = MAX((unsigned)fd + 1, 2 * u->nr_fds);
		struct slirp_fd **fds = realloc(u->fds, n * sizeof(*fds));

		if (!fds)
			return NULL;
		memset(fds + u->nr_fds, 0, (n - u->nr_fds) * sizeof(*fds));
		u->fds = fds;
		u->nr_fds = n;
	}
	if (!u->fds[fd]) {
		u->fds[fd] = calloc(1, sizeof(**u->fds));
		if (!u->fds[fd])
			return NULL;
		u->fds[fd]->src = (struct event_source){
		        .fd = fd, .handler = slirp_fd_event, .opaque = u->fds[fd]};
		u->fds[fd]->u = u;
	}
	return u->fds[fd];
}

static int slirp_add_poll(int fd, int events, void *opaque)
{
	struct user_net *u = opaque;
	struct slirp_fd *s = fd >= 0 ? fd_slot(u, fd) : NULL;

	if (!s || (u->nr_polled == u->cap_polled &&
	           !(u->polled = reallocarray(u->polled, u->cap_polled = 2 * u->cap_polled + 16,
	                                      sizeof(*u->polled))))) {
		log_ratelimited(LOG_ERROR, "net user: out of memory");
		return -1;
	}
	s->wanted |= (events & SLIRP_POLL_IN ? EPOLLIN : 0) |
	             (events & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
	             (events & SLIRP_POLL_PRI ? EPOLLPRI : 0);
	u->polled[u->nr_polled] = fd;
	return (int)u->nr_polled++;
}

static int slirp_get_revents(int idx, void *opaque)
{
	struct user_net *u = opaque;
	uint32_t ev;

	if (idx < 0 || (unsigned)idx >= u->nr_polled || !u->fds[u->polled[idx]])
		return 0;
	ev = u->fds[u->polled[idx]]->revents;
	return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
	       (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
	       (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

/* Puts @s on the loop for @events (none: off it). A number libslirp closed and reused is
 * registered afresh: the kernel dropped the old file from the epoll set when it closed. */
static void watch_fd(struct user_net *u, struct slirp_fd *s, uint32_t events)
{
	int r = 0;

	if (events == s->watching)
		return;
	if (!events)
		event_loop_del(u->loop, &s->src);
	else if (s->watching && (r = event_loop_modify(u->loop, &s->src, events)) == -ENOENT)
		r = event_loop_add(u->loop, &s->src, events);
	else if (!s->watching && (r = event_loop_add(u->loop, &s->src, events)) == -EEXIST)
		r = event_loop_modify(u->loop, &s->src, events);
	if (r)
		log_ratelimited(LOG_ERROR, "net user: epoll: %s", strerror(-r));
	s->watching = r ? 0 : events;
}

/* libslirp closes a socket: off the loop before its number is reused. */
static void slirp_unregister_fd(int fd, void *opaque)
{
	struct user_net *u = opaque;

	if (fd >= 0 && (unsigned)fd < u->nr_fds && u->fds[fd]) {
		watch_fd(u, u->fds[fd], 0);
		u->fds[fd]->revents = 0;
	}
}

static void slirp_register_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

/*
 * After libslirp ran: asks it which sockets it wants polled and for what (it may have opened
 * or closed some), brings the loop's registrations in line, and arms the timer for its next
 * timeout or ours, whichever comes first.
 */
static void sync_loop(struct user_net *u)
{
	uint32_t timeout = UINT32_MAX;
	int64_t now = now_ms();
	struct itimerspec when = {0};

	for (unsigned fd = 0; fd < u->nr_fds; fd++) {
		if (u->fds[fd])
			u->fds[fd]->wanted = u->fds[fd]->revents = 0;
	}
	u->nr_polled = 0;
	slirp_pollfds_fill(u->slirp, &timeout, slirp_add_poll, u);
	for (unsigned fd = 0; fd < u->nr_fds; fd++) {
		if (u->fds[fd])
			watch_fd(u, u->fds[fd], u->fds[fd]->wanted);
	}
	for (const struct user_timer *t = u->timers; t; t = t->next) {
		if (t->expire_ms >= 0)
			timeout = (uint32_t)MIN((int64_t)timeout, MAX(t->expire_ms - now, 0));
	}
	if (timeout != UINT32_MAX) {
		when.it_value.tv_sec = timeout / 1000;
		when.it_value.tv_nsec = (long)(timeout % 1000) * 1000000 + 1; /* 0 would disarm */
	}
	if (timerfd_settime(u->timer.fd, 0, &when, NULL) < 0)
		log_ratelimited(LOG_ERROR, "net user: timerfd: %s", strerror(errno));
}

static void sync_work(void *opaque)
{
	sync_loop(opaque);
}

/* libslirp's turn: it reads what the sockets reported, runs its TCP timers, then re-sync. */
static void run_slirp(struct user_net *u)
{
	slirp_pollfds_poll(u->slirp, 0, slirp_get_revents, u);
	sync_loop(u);
}

static void slirp_fd_event(void *opaque, uint32_t events)
{
	struct slirp_fd *s = opaque;

	s->revents = events;
	run_slirp(s->u);
}

static void timer_event(void *opaque, uint32_t events)
{
	struct user_net *u = opaque;
	int64_t now = now_ms();
	uint64_t expirations;
	bool fired;

	(void)events;
	if (read(u->timer.fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_ERROR, "net user: timerfd: %s", strerror(errno));
	/* A callback may free or re-arm timers: restart the walk after each. */
	do {
		fired = false;
		for (struct user_timer *t = u->timers; t; t = t->next) {
			if (t->expire_ms >= 0 && t->expire_ms <= now) {
				t->expire_ms = -1;
				slirp_handle_timer(u->slirp, t->id, t->cb_opaque);
				fired = true;
				break;
			}
		}
	} while (fired);
	run_slirp(u);
}

static void *slirp_timer_new(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct user_net *u = opaque;
	struct user_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	*t = (struct user_timer){
	        .next = u->timers, .id = id, .cb_opaque = cb_opaque, .expire_ms = -1};
	u->timers = t;
	return t;
}

static void slirp_timer_free(void *timer, void *opaque)
{
	struct user_net *u = opaque;

	for (struct user_timer **t = &u->timers; *t; t = &(*t)->next) {
		if (*t == timer) {
			*t = (*t)->next;
			free(timer);
			return;
		}
	}
}

/* Takes effect at the next sync_loop, which follows every entry into libslirp. */
static void slirp_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	((struct user_timer *)timer)->expire_ms = expire_ms;
}

static int64_t slirp_clock_ns(void *opaque)
{
	struct timespec ts;

	(void)opaque;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void slirp_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_ratelimited(LOG_WARN, "net user: guest error: %s", msg);
}

/* libslirp runs only on the loop's thread, which syncs after each entry: nothing to wake. */
static void slirp_notify(void *opaque)
{
	(void)opaque;
}

static const SlirpCb slirp_callbacks = {
        .send_packet = slirp_send,
        .guest_error = slirp_guest_error,
        .clock_get_ns = slirp_clock_ns,
        .timer_free = slirp_timer_free,
        .timer_mod = slirp_timer_mod,
        .register_poll_fd = slirp_register_fd,
        .unregister_poll_fd = slirp_unregister_fd,
        .notify = slirp_notify,
        .timer_new_opaque = slirp_timer_new,
};

/* ---- frames from the guest: virtio-net's send ------------------------------------------------ */

static ssize_t backend_send(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct user_net *u = opaque;
	uint64_t len = iov_to_buf(iov, (unsigned)iovcnt, 0, u->buf, sizeof(u->buf));

	/* The header says nothing without offloads; a frame past the buffer is cut (and bad). */
	if (len > VIRTIO_NET_HDR_LEN) {
		slirp_input(u->slirp, u->buf + VIRTIO_NET_HDR_LEN, (int)(len - VIRTIO_NET_HDR_LEN));
		/* Once after the loop's round, not once per frame of a TX batch. */
		event_loop_post(u->loop, &u->sync_work);
	}
	return (ssize_t)len;
}

static const struct virtio_net_backend_ops backend_ops = {
        .send = backend_send,
        .recv = backend_recv,
};

void user_net_backend(struct user_net *u, struct virtio_net_backend *be)
{
	*be = (struct virtio_net_backend){
	        .ops = &backend_ops, .opaque = u, .fd = u->frames_ready.fd};
}

/* ---- set-up and teardown --------------------------------------------------------------------- */

static Slirp *new_slirp(struct user_net *u)
{
	SlirpConfig cfg = {
	        .version = 4,
	        .in_enabled = true,
	        .vnetwork.s_addr = htonl(USER_NET_PREFIX),
	        .vnetmask.s_addr = htonl(USER_NET_MASK),
	        .vhost.s_addr = htonl(USER_NET_HOST),
	        .vdhcp_start.s_addr = htonl(USER_NET_GUEST),
	        .vnameserver.s_addr = htonl(USER_NET_DNS),
	        .in6_enabled = true,
	        .vprefix_len = 64,
	};

	/* IPv6 as QEMU: fec0::/64, the host fec0::2, DNS fec0::3. */
	inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
	inet_pton(AF_INET6, "fec0::2", &cfg.vhost6);
	inet_pton(AF_INET6, "fec0::3", &cfg.vnameserver6);
	return slirp_new(&cfg, &slirp_callbacks, u);
}

static int add_forwards(struct user_net *u, const struct user_net_config *cfg, char *err,
                        size_t errlen)
{
	for (unsigned i = 0; i < cfg->nr_forwards; i++) {
		const struct user_net_forward *f = &cfg->forwards[i];
		char text[64];

		errno = 0;
		if (slirp_add_hostfwd(u->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr,
		                      f->guest_port) < 0) {
			user_net_format_forward(f, text, sizeof(text));
			snprintf(err, errlen, "--net user: cannot forward %s: %s", text,
			         errno ? strerror(errno) : "libslirp refused it");
			return -EADDRINUSE;
		}
	}
	return 0;
}

struct user_net *user_net_open(const struct user_net_config *cfg, struct event_loop *loop,
                               char *err, size_t errlen)
{
	struct user_net *u = calloc(1, sizeof(*u));
	int r;

	if (!u) {
		snprintf(err, errlen, "--net user: out of memory");
		return NULL;
	}
	u->loop = loop;
	u->queue_tail = &u->queue;
	event_work_init(&u->sync_work, sync_work, u);
	u->frames_ready = (struct event_source){.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	u->timer = (struct event_source){
	        .fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK),
	        .handler = timer_event,
	        .opaque = u};
	r = u->frames_ready.fd < 0 || u->timer.fd < 0 ? -errno
	                                              : event_loop_add(loop, &u->timer, EPOLLIN);
	if (r) {
		snprintf(err, errlen, "--net user: %s", strerror(-r));
		user_net_close(u);
		return NULL;
	}
	u->slirp = new_slirp(u);
	if (!u->slirp) {
		snprintf(err, errlen, "--net user: libslirp could not set up the network");
		user_net_close(u);
		return NULL;
	}
	if (add_forwards(u, cfg, err, errlen)) {
		user_net_close(u);
		return NULL;
	}
	sync_loop(u);
	return u;
}

uint64_t user_net_dropped(const struct user_net *u)
{
	return u->dropped;
}

void user_net_close(struct user_net *u)
{
	if (!u)
		return;
	event_loop_cancel(u->loop, &u->sync_work);
	if (u->slirp)
		slirp_cleanup(u->slirp); /* unregisters and closes its sockets */
	for (unsigned fd = 0; fd < u->nr_fds; fd++) {
		if (u->fds[fd])
			watch_fd(u, u->fds[fd], 0);
		free(u->fds[fd]);
	}
	free(u->fds);
	free(u->polled);
	while (u->timers)
		slirp_timer_free(u->timers, u);
	while (u->queue) {
		struct frame *f = u->queue;

		u->queue = f->next;
		free(f);
	}
	if (u->timer.fd >= 0) {
		event_loop_del(u->loop, &u->timer);
		close(u->timer.fd);
	}
	if (u->frames_ready.fd >= 0)
		close(u->frames_ready.fd);
	free(u);
}
