/*
 * User networking (devices/user_net.c) through its virtio-net backend, as the device would use
 * it: hand-made frames in (send), libslirp's frames out (recv when the backend fd is readable).
 * A thread runs the event loop under the event-loop thread's seccomp filter (sandbox_enter
 * first; Check forks each test), so a syscall libslirp needs and the filter lacks ends the
 * test; the test's thread hands it frames through posted work. Also the hostfwd syntax.
 * Threads: the fixture's lock guards the frames in both directions.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "devices/user_net.h"
#include "devices/virtio/net.h"
#include "tests/unit/unit.h"
#include "vmm/sandbox.h"

#define HDR    12 /* the virtio-net header before every frame */
#define WAIT_S 10

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---- frames ------------------------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static size_t eth(uint8_t *f, const uint8_t dst[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, type);
	return 14;
}

static uint16_t ip_checksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* An IPv4/UDP frame (UDP checksum 0: none) with @len bytes of @payload; returns its length. */
static size_t udp_frame(uint8_t *f, const uint8_t dst_mac[6], uint32_t src, uint16_t sport,
                        uint32_t dst, uint16_t dport, const void *payload, size_t len)
{
	size_t off = eth(f, dst_mac, 0x0800);
	uint8_t *ip = f + off, *udp = ip + 20;

	memset(ip, 0, 28);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(28 + len));
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, ip_checksum(ip, 20));
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(8 + len));
	memcpy(udp + 8, payload, len);
	return off + 28 + len;
}

struct fixture {
	struct event_loop loop;
	struct user_net *u;
	struct virtio_net_backend be;
	struct event_source frames;
	struct event_work send_work, stop_work;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	/* Under lock: */
	bool entered;
	int enter_ret;
	uint8_t out[HDR + 2048]; /* the frame to send, with its header */
	size_t out_len;
	bool out_pending;
	uint8_t in[64][HDR + 2048]; /* frames for the guest, received in order */
	size_t in_len[64];
	unsigned in_head, in_count;
};

/* Loop thread: whatever the backend fd says is ready, as virtio-net would take it. */
static void on_frames(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;
	uint8_t buf[HDR + 2048];

	(void)events;
	for (;;) {
		struct iovec iov = {buf, sizeof(buf)};
		ssize_t n = f->be.ops->recv(f->be.opaque, &iov, 1);

		if (n < 0)
			return;
		pthread_mutex_lock(&f->lock);
		if (f->in_count < 64) {
			unsigned slot = (f->in_head + f->in_count++) % 64;

			memcpy(f->in[slot], buf, (size_t)n);
			f->in_len[slot] = (size_t)n;
		}
		pthread_cond_broadcast(&f->changed);
		pthread_mutex_unlock(&f->lock);
	}
}

/* Loop thread: the pending frame into the backend. */
static void do_send(void *opaque)
{
	struct fixture *f = opaque;
	struct iovec iov;

	pthread_mutex_lock(&f->lock);
	iov = (struct iovec){f->out, f->out_len};
	pthread_mutex_unlock(&f->lock);
	ck_assert_int_eq(f->be.ops->send(f->be.opaque, &iov, 1), (ssize_t)iov.iov_len);
	pthread_mutex_lock(&f->lock);
	f->out_pending = false;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
}

static void do_stop(void *opaque)
{
	event_loop_stop(opaque);
}

static void *loop_thread(void *opaque)
{
	struct fixture *f = opaque;
	int r = sandbox_thread_enter(SANDBOX_MAIN);

	pthread_mutex_lock(&f->lock);
	f->entered = true;
	f->enter_ret = r;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
	if (!r)
		event_loop_run(&f->loop);
	return NULL;
}

/* Waits on the fixture's condition until @done or WAIT_S; the lock is held around it. */
static bool wait_until(struct fixture *f, bool (*done)(const struct fixture *f))
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_S;
	while (!done(f)) {
		if (pthread_cond_timedwait(&f->changed, &f->lock, &deadline))
			return done(f);
	}
	return true;
}

static bool sent(const struct fixture *f)
{
	return !f->out_pending;
}

static bool has_frame(const struct fixture *f)
{
	return f->in_count > 0;
}

static void send_frame(struct fixture *f, const uint8_t *frame, size_t len)
{
	pthread_mutex_lock(&f->lock);
	memset(f->out, 0, HDR);
	memcpy(f->out + HDR, frame, len);
	f->out_len = HDR + len;
	f->out_pending = true;
	pthread_mutex_unlock(&f->lock);
	event_loop_post(&f->loop, &f->send_work);
	pthread_mutex_lock(&f->lock);
	ck_assert_msg(wait_until(f, sent), "the loop did not take the frame in %d s", WAIT_S);
	pthread_mutex_unlock(&f->lock);
}

/* The next frame for the guest within WAIT_S, without its header; returns its length. */
static size_t next_frame(struct fixture *f, uint8_t *buf, size_t cap)
{
	size_t n;
	unsigned slot;

	pthread_mutex_lock(&f->lock);
	ck_assert_msg(wait_until(f, has_frame), "no frame for the guest in %d s", WAIT_S);
	slot = f->in_head;
	f->in_head = (f->in_head + 1) % 64;
	f->in_count--;
	n = f->in_len[slot];
	ck_assert_uint_gt(n, HDR + 14);
	for (int i = 0; i < HDR; i++)
		ck_assert_msg(f->in[slot][i] == 0, "header byte %d is %u", i, f->in[slot][i]);
	ck_assert_uint_le(n - HDR, cap);
	memcpy(buf, f->in[slot] + HDR, n - HDR);
	pthread_mutex_unlock(&f->lock);
	return n - HDR;
}

/* Frames until one of EtherType @type whose IPv4 protocol (when IPv4) is @proto. */
static size_t wait_frame(struct fixture *fx, uint16_t type, uint8_t proto, uint8_t *buf, size_t cap)
{
	for (;;) {
		size_t len = next_frame(fx, buf, cap);

		if (get16(buf + 12) == type && (type != 0x0800 || buf[14 + 9] == proto))
			return len;
	}
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* The network of @cfg on a loop run by a sandboxed thread. */
static struct fixture *start(const struct user_net_config *cfg)
{
	const char *fork_mode = getenv("CK_FORK");
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256] = "";

	ck_assert_ptr_nonnull(f);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->changed, NULL);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	f->u = user_net_open(cfg, &f->loop, err, sizeof(err));
	ck_assert_msg(f->u, "user_net_open: %s", err);
	user_net_backend(f->u, &f->be);
	ck_assert(!f->be.offloads && f->be.fd >= 0);
	f->frames = (struct event_source){.fd = f->be.fd, .handler = on_frames, .opaque = f};
	ck_assert_int_eq(event_loop_add(&f->loop, &f->frames, EPOLLIN), 0);
	event_work_init(&f->send_work, do_send, f);
	event_work_init(&f->stop_work, do_stop, &f->loop);
	/* Forked (Check's default), each test is its own process to drop privileges in. */
	if (!fork_mode || strcmp(fork_mode, "no")) {
		sandbox_allow_user_net();
		ck_assert_msg(sandbox_enter(true, err, sizeof(err)) == 0, "sandbox_enter: %s", err);
	}
	ck_assert_int_eq(pthread_create(&f->thread, NULL, loop_thread, f), 0);
	pthread_mutex_lock(&f->lock);
	while (!f->entered)
		pthread_cond_wait(&f->changed, &f->lock);
	ck_assert_int_eq(f->enter_ret, 0);
	pthread_mutex_unlock(&f->lock);
	return f;
}

static void stop(struct fixture *f)
{
	event_loop_post(&f->loop, &f->stop_work);
	pthread_join(f->thread, NULL);
	event_loop_del(&f->loop, &f->frames);
	user_net_close(f->u);
	event_loop_free(&f->loop);
	free(f);
}

/* Asks who has 10.0.2.2 (which also tells slirp the guest's MAC); returns the answer's MAC. */
static void arp_gateway(struct fixture *fx, uint8_t mac_out[6])
{
	uint8_t f[64] = {0}, r[2048];
	size_t off = eth(f, broadcast, 0x0806);

	put16(f + off, 1);          /* Ethernet */
	put16(f + off + 2, 0x0800); /* IPv4 */
	f[off + 4] = 6;
	f[off + 5] = 4;
	put16(f + off + 6, 1); /* request */
	memcpy(f + off + 8, guest_mac, 6);
	put32(f + off + 14, 0x0a00020f);
	put32(f + off + 24, 0x0a000202);
	send_frame(fx, f, 60);
	wait_frame(fx, 0x0806, 0, r, sizeof(r));
	ck_assert_uint_eq(get16(r + 14 + 6), 2); /* reply */
	ck_assert_uint_eq(get32(r + 14 + 14), 0x0a000202);
	ck_assert_mem_eq(r + 14 + 18, guest_mac, 6);
	memcpy(mac_out, r + 14 + 8, 6);
}

/* ---- tests ---------------------------------------------------------------------------------- */

START_TEST(arp_answers_for_the_gateway)
{
	struct user_net_config cfg = {0};
	struct fixture *fx = start(&cfg);
	uint8_t mac[6];

	arp_gateway(fx, mac);
	ck_assert_msg(mac[0] & 2 && !(mac[0] & 1), "the gateway's MAC is not locally administered");
	stop(fx);
}
END_TEST

START_TEST(dhcp_offers_10_0_2_15_with_gateway_and_dns)
{
	struct user_net_config cfg = {0};
	struct fixture *fx = start(&cfg);
	uint8_t bootp[300] = {0}, f[400], r[2048];
	const uint8_t *reply, *opt;
	uint32_t router = 0, dns = 0;
	size_t len;

	bootp[0] = 1; /* BOOTREQUEST */
	bootp[1] = 1;
	bootp[2] = 6;
	put32(bootp + 4, 0x1234abcd);
	memcpy(bootp + 28, guest_mac, 6);
	put32(bootp + 236, 0x63825363); /* magic cookie */
	bootp[240] = 53;                /* message type: DISCOVER */
	bootp[241] = 1;
	bootp[242] = 1;
	bootp[243] = 255;
	len = udp_frame(f, broadcast, 0, 68, 0xffffffff, 67, bootp, sizeof(bootp));
	send_frame(fx, f, len);
	for (;;) {
		len = wait_frame(fx, 0x0800, 17, r, sizeof(r));
		if (get16(r + 14 + 20) == 67 && get16(r + 14 + 22) == 68)
			break;
	}
	reply = r + 14 + 28;
	ck_assert_uint_ge(len, 14 + 28 + 240);
	ck_assert_uint_eq(reply[0], 2);                   /* BOOTREPLY */
	ck_assert_uint_eq(get32(reply + 4), 0x1234abcd);  /* our xid */
	ck_assert_uint_eq(get32(reply + 16), 0x0a00020f); /* yiaddr 10.0.2.15 */
	for (opt = reply + 240; opt + 2 <= r + len && *opt != 255; opt += opt[1] + 2) {
		if (*opt == 0) {
			opt -= 1; /* pad: one byte */
			continue;
		}
		if (*opt == 3 && opt[1] >= 4)
			router = get32(opt + 2);
		if (*opt == 6 && opt[1] >= 4)
			dns = get32(opt + 2);
	}
	ck_assert_uint_eq(router, 0x0a000202);
	ck_assert_uint_eq(dns, 0x0a000203);
	stop(fx);
}
END_TEST

/* A host UDP socket on 127.0.0.1; returns its fd and port. */
static int udp_listener(uint16_t *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return s;
}

START_TEST(udp_reaches_the_host_loopback_and_back)
{
	struct user_net_config cfg = {0};
	struct fixture *fx = start(&cfg);
	int host;
	uint8_t gw[6], f[200], r[2048];
	char got[64];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	struct pollfd p;
	uint16_t port;
	ssize_t n;
	size_t len;

	host = udp_listener(&port);
	arp_gateway(fx, gw);
	len = udp_frame(f, gw, 0x0a00020f, 4000, 0x0a000202, port, "to the host", 11);
	send_frame(fx, f, len);
	p = (struct pollfd){.fd = host, .events = POLLIN};
	ck_assert_msg(poll(&p, 1, WAIT_S * 1000) == 1, "nothing reached the host's UDP socket");
	n = recvfrom(host, got, sizeof(got), 0, (struct sockaddr *)&from, &flen);
	ck_assert_int_eq(n, 11);
	ck_assert_mem_eq(got, "to the host", 11);
	ck_assert_int_eq(sendto(host, "to the guest", 12, 0, (struct sockaddr *)&from, flen), 12);
	for (;;) {
		len = wait_frame(fx, 0x0800, 17, r, sizeof(r));
		if (get16(r + 14 + 22) == 4000)
			break;
	}
	ck_assert_uint_eq(get32(r + 14 + 12), 0x0a000202); /* from the gateway */
	ck_assert_uint_eq(get32(r + 14 + 16), 0x0a00020f);
	ck_assert_uint_eq(get16(r + 14 + 20), port);
	ck_assert_uint_eq(len, 14 + 28 + 12);
	ck_assert_mem_eq(r + 14 + 28, "to the guest", 12);
	ck_assert_mem_eq(r, guest_mac, 6);
	close(host);
	stop(fx);
}
END_TEST

/* A free TCP port on 127.0.0.1 (bound, then released). */
static uint16_t free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	close(s);
	return ntohs(a.sin_port);
}

START_TEST(hostfwd_connection_arrives_as_a_syn)
{
	struct user_net_config cfg = {.nr_forwards = 1};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct fixture *fx;
	uint8_t gw[6], r[2048];
	char err[160];
	int c;

	ck_assert_int_eq(
	        user_net_parse_forward("tcp:127.0.0.1:1-:22", &cfg.forwards[0], err, sizeof(err)),
	        0);
	cfg.forwards[0].host_port = free_port();
	fx = start(&cfg);
	arp_gateway(fx, gw);
	a.sin_port = htons(cfg.forwards[0].host_port);
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	ck_assert(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	wait_frame(fx, 0x0800, 6, r, sizeof(r));
	ck_assert_uint_eq(get32(r + 14 + 16), 0x0a00020f);
	ck_assert_uint_eq(get16(r + 14 + 20 + 2), 22);   /* to the guest's port 22 */
	ck_assert_uint_eq(r[14 + 20 + 13] & 0x12, 0x02); /* SYN without ACK */
	close(c);
	stop(fx);
}
END_TEST

START_TEST(dns_query_keeps_the_thread_alive)
{
	/* 10.0.2.3 makes libslirp read the host's /etc/resolv.conf under the thread's filter. */
	static const uint8_t query[] = {0x12, 0x34, 1,   0,   0,   1,   0,   0,   0,   0,
	                                0,    0,    7,   'e', 'x', 'a', 'm', 'p', 'l', 'e',
	                                3,    'c',  'o', 'm', 0,   0,   1,   0,   1};
	struct user_net_config cfg = {0};
	struct fixture *fx = start(&cfg);
	uint8_t gw[6], f[200];
	size_t len;

	arp_gateway(fx, gw);
	len = udp_frame(f, gw, 0x0a00020f, 4001, 0x0a000203, 53, query, sizeof(query));
	send_frame(fx, f, len);
	arp_gateway(fx, gw); /* still answering */
	stop(fx);
}
END_TEST

START_TEST(taken_host_port_is_refused_at_open)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct user_net_config cfg = {.nr_forwards = 1};
	struct event_loop loop;
	socklen_t alen = sizeof(a);
	char err[256] = "";
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s, 1), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	ck_assert_int_eq(
	        user_net_parse_forward("tcp:127.0.0.1:1-:22", &cfg.forwards[0], err, sizeof(err)),
	        0);
	cfg.forwards[0].host_port = ntohs(a.sin_port);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	ck_assert_ptr_null(user_net_open(&cfg, &loop, err, sizeof(err)));
	event_loop_free(&loop);
	ck_assert_msg(strstr(err, "cannot forward tcp:127.0.0.1:") &&
	                      strstr(err, "Address already in use"),
	              "%s", err);
	close(s);
}
END_TEST

START_TEST(forward_syntax)
{
	struct user_net_forward f;
	char err[200], text[64];
	static const char *bad[] = {
	        "tcp::22",
	        "icmp::1-:2",
	        "tcp::0-:22",
	        "tcp::65536-:22",
	        "tcp::22-10.0.3.15:22",
	        "tcp:1.2.3:22-:22",
	        "tcp::22-:22x",
	        "",
	        "tcp::-:22",
	        "tcp:::22-:22",
	        "tcp::22-:22:1",
	        "udp::2 2-:22",
	};

	ck_assert_int_eq(user_net_parse_forward("tcp::8022-:22", &f, err, sizeof(err)), 0);
	user_net_format_forward(&f, text, sizeof(text));
	ck_assert_str_eq(text, "tcp:0.0.0.0:8022-10.0.2.15:22");
	ck_assert_int_eq(
	        user_net_parse_forward("udp:127.0.0.1:5353-10.0.2.20:53", &f, err, sizeof(err)), 0);
	user_net_format_forward(&f, text, sizeof(text));
	ck_assert_str_eq(text, "udp:127.0.0.1:5353-10.0.2.20:53");
	ck_assert_int_eq(user_net_parse_forward("::2-:3", &f, err, sizeof(err)), 0);
	ck_assert(!f.udp);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(user_net_parse_forward(bad[i], &f, err, sizeof(err)) == -EINVAL &&
		                      strstr(err, "hostfwd"),
		              "'%s' accepted", bad[i]);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("user_net");
	TCase *t = tcase_create("user_net");

	tcase_set_timeout(t, 30);
	tcase_add_test(t, forward_syntax);
	tcase_add_test(t, taken_host_port_is_refused_at_open);
	tcase_add_test(t, arp_answers_for_the_gateway);
	tcase_add_test(t, dhcp_offers_10_0_2_15_with_gateway_and_dns);
	tcase_add_test(t, udp_reaches_the_host_loopback_and_back);
	tcase_add_test(t, hostfwd_connection_arrives_as_a_syn);
	tcase_add_test(t, dns_query_keeps_the_thread_alive);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return unit_run(suite());
}
