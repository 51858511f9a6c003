/* User-mode networking through libslirp: see user_net.h. */
#include "devices/user_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

/* The network QEMU's -netdev user plays, which guests and scripts already expect. */
#define NET_PREFIX   0x0a000200u /* 10.0.2.0/24 */
#define NET_MASK     0xffffff00u
#define NET_HOST     0x0a000202u /* gateway; the host's loopback */
#define NET_DNS      0x0a000203u
#define NET_GUEST    0x0a00020fu /* the first DHCP address */
#define NET_HDR_LEN  12          /* struct virtio_net_hdr_mrg_rxbuf, all zero here */
#define FRAME_MAX    65550       /* a hostile guest's longest frame; slirp's are <= 1518 */
#define GUEST_BATCH  64          /* guest packets per poll round, so slirp's sockets get a turn */
#define SOCKET_BYTES (1 << 20)   /* asked of each end of the pair (the kernel caps it) */

/* ---- hostfwd syntax (always built: --net is parsed even without libslirp) --------------- */

/* Takes the text up to @sep from *@p into @out (at most @outlen - 1 bytes). */
static bool take_field(const char **p, char sep, char *out, size_t outlen)
{
	const char *end = sep ? strchr(*p, sep) : *p + strlen(*p);
	size_t len;

	if (!end)
		return false;
	len = (size_t)(end - *p);
	if (len >= outlen)
		return false;
	memcpy(out, *p, len);
	out[len] = 0;
	*p = *end ? end + 1 : end;
	return true;
}

static bool parse_port(const char *text, uint16_t *out)
{
	unsigned long v;
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (*end || errno || v == 0 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static int forward_error(char *err, size_t errlen, const char *text, const char *why)
{
	snprintf(err, errlen,
	         "hostfwd '%s': %s (want [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)",
	         text, why);
	return -EINVAL;
}

int user_net_parse_forward(const char *text, struct user_net_forward *out, char *err, size_t errlen)
{
	char proto[8], host[16], hport[8], guest[16], gport[8];
	const char *p = text;

	memset(out, 0, sizeof(*out));
	if (!take_field(&p, ':', proto, sizeof(proto)) ||
	    !take_field(&p, ':', host, sizeof(host)) ||
	    !take_field(&p, '-', hport, sizeof(hport)) ||
	    !take_field(&p, ':', guest, sizeof(guest)) || !take_field(&p, 0, gport, sizeof(gport)))
		return forward_error(err, errlen, text, "malformed");
	if (!strcmp(proto, "udp"))
		out->udp = true;
	else if (proto[0] && strcmp(proto, "tcp"))
		return forward_error(err, errlen, text, "the protocol is not tcp or udp");
	out->host_addr.s_addr = htonl(INADDR_ANY);
	if (host[0] && inet_pton(AF_INET, host, &out->host_addr) != 1)
		return forward_error(err, errlen, text,
		                     "the host address is not a dotted IPv4 address");
	out->guest_addr.s_addr = htonl(NET_GUEST);
	if (guest[0] && inet_pton(AF_INET, guest, &out->guest_addr) != 1)
		return forward_error(err, errlen, text,
		                     "the guest address is not a dotted IPv4 address");
	if ((ntohl(out->guest_addr.s_addr) & NET_MASK) != NET_PREFIX)
		return forward_error(err, errlen, text, "the guest address is outside 10.0.2.0/24");
	if (!parse_port(hport, &out->host_port) || !parse_port(gport, &out->guest_port))
		return forward_error(err, errlen, text, "a port is not a number from 1 to 65535");
	return 0;
}

void user_net_format_forward(const struct user_net_forward *f, char *out, size_t outlen)
{
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
	inet_ntop(AF_INET, &f->guest_addr, guest, sizeof(guest));
	snprintf(out, outlen, "%s:%s:%u-%s:%u", f->udp ? "udp" : "tcp", host, f->host_port, guest,
	         f->guest_port);
}

#if VMM_HAVE_SLIRP

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <slirp/libslirp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vmm/sandbox.h"

/* A frame for the guest that did not fit the socket pair yet. */
struct pending {
	struct pending *next;
	size_t len;
	uint8_t frame[];
};

/* A libslirp timer (it asks for one, for IPv6 router advertisements). */
struct user_timer {
	struct user_timer *next;
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
};

struct user_net {
	int guest_fd;  /* the NIC's end: the event-loop thread reads and writes it */
	int slirp_fd;  /* ours */
	int wake_fd;   /* eventfd: user_net_close asks the thread to stop */
	bool stopping; /* atomic */
	pthread_t thread;
	bool started;
	uint64_t dropped; /* atomic: written by the thread, read by anyone */

	/* The user-net thread's once it runs (set-up before, teardown after): */
	Slirp *slirp;
	struct pollfd *fds;
	unsigned nr_fds, cap_fds;
	struct user_timer *timers;
	struct pending *queue, **queue_tail;
	size_t queued_bytes;
	uint8_t buf[NET_HDR_LEN + FRAME_MAX];
};

static const uint8_t zero_header[NET_HDR_LEN];

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void count_drop(struct user_net *u, const char *why)
{
	__atomic_add_fetch(&u->dropped, 1, __ATOMIC_RELAXED);
	log_ratelimited(LOG_WARN, "net user: frame for the guest dropped: %s", why);
}

/* ---- frames to the guest ---------------------------------------------------------------- */

static bool write_frame(struct user_net *u, const void *frame, size_t len)
{
	struct iovec iov[2] = {{(void *)zero_header, NET_HDR_LEN}, {(void *)frame, len}};

	return writev(u->slirp_fd, iov, 2) >= 0;
}

/* Hands queued frames to the NIC until the socket is full again. */
static void flush_queue(struct user_net *u)
{
	while (u->queue) {
		struct pending *p = u->queue;

		if (!write_frame(u, p->frame, p->len)) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			count_drop(u, strerror(errno));
		}
		u->queue = p->next;
		u->queued_bytes -= p->len;
		free(p);
	}
	u->queue_tail = &u->queue;
}

/* libslirp's send_packet: a frame for the guest. */
static ssize_t slirp_send(const void *frame, size_t len, void *opaque)
{
	struct user_net *u = opaque;
	struct pending *p;

	if (!u->queue) {
		if (write_frame(u, frame, len))
			return (ssize_t)len;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			count_drop(u, strerror(errno));
			return (ssize_t)len;
		}
	}
	if (u->queued_bytes + len > USER_NET_QUEUE_BYTES) {
		count_drop(u, "the guest is not reading (queue full)");
		return (ssize_t)len;
	}
	p = malloc(sizeof(*p) + len);
	if (!p) {
		count_drop(u, "out of memory");
		return (ssize_t)len;
	}
	p->next = NULL;
	p->len = len;
	memcpy(p->frame, frame, len);
	*u->queue_tail = p;
	u->queue_tail = &p->next;
	u->queued_bytes += len;
	return (ssize_t)len;
}

/* Up to GUEST_BATCH packets from the NIC into slirp. */
static void from_guest(struct user_net *u)
{
	for (unsigned i = 0; i < GUEST_BATCH; i++) {
		ssize_t n = recv(u->slirp_fd, u->buf, sizeof(u->buf), MSG_DONTWAIT | MSG_TRUNC);

		if (n < 0)
			return;
		if ((size_t)n > sizeof(u->buf) || n <= NET_HDR_LEN) {
			log_ratelimited(LOG_WARN, "net user: guest frame of %zd bytes ignored", n);
			continue;
		}
		slirp_input(u->slirp, u->buf + NET_HDR_LEN, (int)(n - NET_HDR_LEN));
	}
}

/* ---- libslirp's callbacks ---------------------------------------------------------------- */

static void slirp_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_ratelimited(LOG_WARN, "net user: guest error: %s", msg);
}

static int64_t slirp_clock_ns(void *opaque)
{
	(void)opaque;
	return now_ns();
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

static void slirp_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	((struct user_timer *)timer)->expire_ms = expire_ms;
}

/* Sockets are polled afresh each round (slirp_pollfds_fill), not registered. */
static void slirp_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

/* slirp calls this from its own thread only: the loop goes round anyway. */
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
        .register_poll_fd = slirp_poll_fd,
        .unregister_poll_fd = slirp_poll_fd,
        .notify = slirp_notify,
        .timer_new_opaque = slirp_timer_new,
};

static int add_fd(struct user_net *u, int fd, short events)
{
	if (u->nr_fds == u->cap_fds) {
		unsigned cap = u->cap_fds ? 2 * u->cap_fds : 16;
		struct pollfd *fds = realloc(u->fds, cap * sizeof(*fds));

		if (!fds)
			return -1;
		u->fds = fds;
		u->cap_fds = cap;
	}
	u->fds[u->nr_fds] = (struct pollfd){.fd = fd, .events = events};
	return (int)u->nr_fds++;
}

static int slirp_add_poll(int fd, int events, void *opaque)
{
	short ev = 0;

	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	return add_fd(opaque, fd, ev);
}

static int slirp_get_revents(int idx, void *opaque)
{
	struct user_net *u = opaque;
	short rev;
	int events = 0;

	if (idx < 0 || (unsigned)idx >= u->nr_fds)
		return 0;
	rev = u->fds[idx].revents;
	if (rev & POLLIN)
		events |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		events |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		events |= SLIRP_POLL_PRI;
	if (rev & POLLERR)
		events |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		events |= SLIRP_POLL_HUP;
	return events;
}

/* ---- the thread -------------------------------------------------------------------------- */

/* @timeout (ms, UINT32_MAX: none) shortened to the next armed timer. */
static uint32_t timers_timeout(const struct user_net *u, uint32_t timeout)
{
	int64_t now = now_ns() / 1000000;

	for (const struct user_timer *t = u->timers; t; t = t->next) {
		if (t->expire_ms < 0)
			continue;
		if (t->expire_ms <= now)
			return 0;
		timeout = (uint32_t)MIN((int64_t)timeout, t->expire_ms - now);
	}
	return timeout;
}

static void run_timers(struct user_net *u)
{
	int64_t now = now_ns() / 1000000;
	bool fired;

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
}

static void *user_net_thread(void *opaque)
{
	struct user_net *u = opaque;

	if (sandbox_thread_enter(SANDBOX_USER_NET)) {
		log_error("seccomp: cannot filter the user-net thread; its NIC gets no traffic");
		return NULL;
	}
	while (!__atomic_load_n(&u->stopping, __ATOMIC_ACQUIRE)) {
		uint32_t timeout = UINT32_MAX;
		int n;

		u->nr_fds = 0;
		if (add_fd(u, u->wake_fd, POLLIN) < 0 ||
		    add_fd(u, u->slirp_fd, POLLIN | (u->queue ? POLLOUT : 0)) < 0) {
			log_error("net user: out of memory");
			break;
		}
		slirp_pollfds_fill(u->slirp, &timeout, slirp_add_poll, u);
		timeout = timers_timeout(u, timeout);
		n = poll(u->fds, u->nr_fds,
		         timeout == UINT32_MAX ? -1 : (int)MIN(timeout, INT_MAX));
		if (n < 0 && errno != EINTR) {
			log_error("net user: poll: %s", strerror(errno));
			break;
		}
		slirp_pollfds_poll(u->slirp, n < 0, slirp_get_revents, u);
		if (n > 0 && (u->fds[1].revents & POLLOUT))
			flush_queue(u);
		if (n > 0 && (u->fds[1].revents & POLLIN))
			from_guest(u);
		run_timers(u);
	}
	return NULL;
}

/* ---- set-up and teardown ----------------------------------------------------------------- */

static void set_buffers(int fd)
{
	int bytes = SOCKET_BYTES;

	/* Best effort: the kernel caps both at net.core.{w,r}mem_max. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

static Slirp *new_slirp(struct user_net *u)
{
	SlirpConfig cfg = {
	        .version = 4,
	        .in_enabled = true,
	        .vnetwork.s_addr = htonl(NET_PREFIX),
	        .vnetmask.s_addr = htonl(NET_MASK),
	        .vhost.s_addr = htonl(NET_HOST),
	        .vdhcp_start.s_addr = htonl(NET_GUEST),
	        .vnameserver.s_addr = htonl(NET_DNS),
	        .in6_enabled = true,
	        .vprefix_len = 64,
	};

	/* IPv6 as QEMU: fec0::/64, the host fec0::2, DNS fec0::3. */
	inet_pton(AF_INET6, "fec0::", &cfg.vprefix_addr6);
	inet_pton(AF_INET6, "fec0::2", &cfg.vhost6);
	inet_pton(AF_INET6, "fec0::3", &cfg.vnameserver6);
	return slirp_new(&cfg, &slirp_callbacks, u);
}

struct user_net *user_net_open(const struct user_net_config *cfg, char *err, size_t errlen)
{
	struct user_net *u = calloc(1, sizeof(*u));
	int pair[2];

	if (!u) {
		snprintf(err, errlen, "--net user: out of memory");
		return NULL;
	}
	u->guest_fd = u->slirp_fd = -1;
	u->queue_tail = &u->queue;
	u->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->wake_fd < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0) {
		snprintf(err, errlen, "--net user: %s", strerror(errno));
		user_net_close(u);
		return NULL;
	}
	u->guest_fd = pair[0];
	u->slirp_fd = pair[1];
	set_buffers(u->guest_fd);
	set_buffers(u->slirp_fd);
	u->slirp = new_slirp(u);
	if (!u->slirp) {
		snprintf(err, errlen, "--net user: libslirp could not set up the network");
		user_net_close(u);
		return NULL;
	}
	for (unsigned i = 0; i < cfg->nr_forwards; i++) {
		const struct user_net_forward *f = &cfg->forwards[i];
		char text[64];

		errno = 0;
		if (slirp_add_hostfwd(u->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr,
		                      f->guest_port) < 0) {
			user_net_format_forward(f, text, sizeof(text));
			snprintf(err, errlen, "--net user: cannot forward %s: %s", text,
			         errno ? strerror(errno) : "libslirp refused it");
			user_net_close(u);
			return NULL;
		}
	}
	return u;
}

int *user_net_guest_fd(struct user_net *u)
{
	return &u->guest_fd;
}

int user_net_start(struct user_net *u)
{
	int ret = -pthread_create(&u->thread, NULL, user_net_thread, u);

	u->started = ret == 0;
	return ret;
}

uint64_t user_net_dropped(const struct user_net *u)
{
	return __atomic_load_n(&u->dropped, __ATOMIC_RELAXED);
}

void user_net_close(struct user_net *u)
{
	if (!u)
		return;
	if (u->started) {
		uint64_t one = 1;

		__atomic_store_n(&u->stopping, true, __ATOMIC_RELEASE);
		if (write(u->wake_fd, &one, sizeof(one)) < 0)
			log_debug("net user: eventfd: %s", strerror(errno));
		pthread_join(u->thread, NULL);
	}
	if (u->slirp)
		slirp_cleanup(u->slirp);
	while (u->timers)
		slirp_timer_free(u->timers, u);
	while (u->queue) {
		struct pending *p = u->queue;

		u->queue = p->next;
		free(p);
	}
	free(u->fds);
	if (u->guest_fd >= 0)
		close(u->guest_fd);
	if (u->slirp_fd >= 0)
		close(u->slirp_fd);
	if (u->wake_fd >= 0)
		close(u->wake_fd);
	free(u);
}

#else /* !VMM_HAVE_SLIRP: a build without libslirp (the static aarch64 cross build) */

struct user_net *user_net_open(const struct user_net_config *cfg, char *err, size_t errlen)
{
	(void)cfg;
	snprintf(err, errlen, "--net user: this vmm was built without libslirp");
	return NULL;
}

int *user_net_guest_fd(struct user_net *u)
{
	(void)u;
	return NULL;
}

int user_net_start(struct user_net *u)
{
	(void)u;
	return -ENOSYS;
}

uint64_t user_net_dropped(const struct user_net *u)
{
	(void)u;
	return 0;
}

void user_net_close(struct user_net *u)
{
	(void)u;
}

#endif
