/*
 * User networking (devices/user_net.c) driven from the NIC's end of its socket pair, as
 * virtio-net would: hand-made frames in, libslirp's frames out. The thread runs under its
 * seccomp filter (sandbox_enter first; Check forks each test), so a syscall libslirp needs and
 * the filter lacks ends the test. Also the hostfwd syntax.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/user_net.h"
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

static void send_frame(int fd, const uint8_t *frame, size_t len)
{
	static const uint8_t header[HDR];
	struct iovec iov[2] = {{(void *)header, HDR}, {(void *)frame, len}};

	ck_assert_int_eq(writev(fd, iov, 2), (ssize_t)(HDR + len));
}

/* The next frame for the guest within WAIT_S, without its header; returns its length. */
static size_t next_frame(int fd, uint8_t *buf, size_t cap)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	uint8_t msg[HDR + 2048];
	ssize_t n;

	ck_assert_msg(poll(&p, 1, WAIT_S * 1000) == 1, "no frame for the guest in %d s", WAIT_S);
	n = recv(fd, msg, sizeof(msg), 0);
	ck_assert_int_gt(n, HDR + 14);
	for (int i = 0; i < HDR; i++)
		ck_assert_msg(msg[i] == 0, "header byte %d is %u", i, msg[i]);
	ck_assert_uint_le((size_t)n - HDR, cap);
	memcpy(buf, msg + HDR, (size_t)n - HDR);
	return (size_t)n - HDR;
}

/* Frames until one of EtherType @type whose IPv4 protocol (when IPv4) is @proto. */
static size_t wait_frame(int fd, uint16_t type, uint8_t proto, uint8_t *buf, size_t cap)
{
	for (;;) {
		size_t len = next_frame(fd, buf, cap);

		if (get16(buf + 12) == type && (type != 0x0800 || buf[14 + 9] == proto))
			return len;
	}
}

/* ---- set-up --------------------------------------------------------------------------------- */

static struct user_net *start(const struct user_net_config *cfg)
{
	char err[256] = "";
	struct user_net *u;

	const char *fork_mode = getenv("CK_FORK");

	/* Forked (Check's default), each test is its own process to drop privileges in. */
	if (!fork_mode || strcmp(fork_mode, "no"))
		ck_assert_msg(sandbox_enter(true, err, sizeof(err)) == 0, "sandbox_enter: %s", err);
	u = user_net_open(cfg, err, sizeof(err));
	ck_assert_msg(u, "user_net_open: %s", err);
	ck_assert_int_eq(user_net_start(u), 0);
	return u;
}

/* Asks who has 10.0.2.2 (which also tells slirp the guest's MAC); returns the answer's MAC. */
static void arp_gateway(int fd, uint8_t mac_out[6])
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
	send_frame(fd, f, 60);
	wait_frame(fd, 0x0806, 0, r, sizeof(r));
	ck_assert_uint_eq(get16(r + 14 + 6), 2); /* reply */
	ck_assert_uint_eq(get32(r + 14 + 14), 0x0a000202);
	ck_assert_mem_eq(r + 14 + 18, guest_mac, 6);
	memcpy(mac_out, r + 14 + 8, 6);
}

/* ---- tests ---------------------------------------------------------------------------------- */

START_TEST(arp_answers_for_the_gateway)
{
	struct user_net_config cfg = {0};
	struct user_net *u = start(&cfg);
	uint8_t mac[6];

	arp_gateway(*user_net_guest_fd(u), mac);
	ck_assert_msg(mac[0] & 2 && !(mac[0] & 1), "the gateway's MAC is not locally administered");
	user_net_close(u);
}
END_TEST

START_TEST(dhcp_offers_10_0_2_15_with_gateway_and_dns)
{
	struct user_net_config cfg = {0};
	struct user_net *u = start(&cfg);
	int fd = *user_net_guest_fd(u);
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
	send_frame(fd, f, len);
	for (;;) {
		len = wait_frame(fd, 0x0800, 17, r, sizeof(r));
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
	user_net_close(u);
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
	struct user_net *u = start(&cfg);
	int fd = *user_net_guest_fd(u), host;
	uint8_t gw[6], f[200], r[2048];
	char got[64];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	struct pollfd p;
	uint16_t port;
	ssize_t n;
	size_t len;

	host = udp_listener(&port);
	arp_gateway(fd, gw);
	len = udp_frame(f, gw, 0x0a00020f, 4000, 0x0a000202, port, "to the host", 11);
	send_frame(fd, f, len);
	p = (struct pollfd){.fd = host, .events = POLLIN};
	ck_assert_msg(poll(&p, 1, WAIT_S * 1000) == 1, "nothing reached the host's UDP socket");
	n = recvfrom(host, got, sizeof(got), 0, (struct sockaddr *)&from, &flen);
	ck_assert_int_eq(n, 11);
	ck_assert_mem_eq(got, "to the host", 11);
	ck_assert_int_eq(sendto(host, "to the guest", 12, 0, (struct sockaddr *)&from, flen), 12);
	for (;;) {
		len = wait_frame(fd, 0x0800, 17, r, sizeof(r));
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
	user_net_close(u);
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
	struct user_net *u;
	uint8_t gw[6], r[2048];
	char err[160];
	int fd, c;

	ck_assert_int_eq(
	        user_net_parse_forward("tcp:127.0.0.1:1-:22", &cfg.forwards[0], err, sizeof(err)),
	        0);
	cfg.forwards[0].host_port = free_port();
	u = start(&cfg);
	fd = *user_net_guest_fd(u);
	arp_gateway(fd, gw);
	a.sin_port = htons(cfg.forwards[0].host_port);
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(c, 0);
	ck_assert(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	wait_frame(fd, 0x0800, 6, r, sizeof(r));
	ck_assert_uint_eq(get32(r + 14 + 16), 0x0a00020f);
	ck_assert_uint_eq(get16(r + 14 + 20 + 2), 22);   /* to the guest's port 22 */
	ck_assert_uint_eq(r[14 + 20 + 13] & 0x12, 0x02); /* SYN without ACK */
	close(c);
	user_net_close(u);
}
END_TEST

START_TEST(dns_query_keeps_the_thread_alive)
{
	/* 10.0.2.3 makes libslirp read the host's /etc/resolv.conf under the thread's filter. */
	static const uint8_t query[] = {0x12, 0x34, 1,   0,   0,   1,   0,   0,   0,   0,
	                                0,    0,    7,   'e', 'x', 'a', 'm', 'p', 'l', 'e',
	                                3,    'c',  'o', 'm', 0,   0,   1,   0,   1};
	struct user_net_config cfg = {0};
	struct user_net *u = start(&cfg);
	int fd = *user_net_guest_fd(u);
	uint8_t gw[6], f[200];
	size_t len;

	arp_gateway(fd, gw);
	len = udp_frame(f, gw, 0x0a00020f, 4001, 0x0a000203, 53, query, sizeof(query));
	send_frame(fd, f, len);
	arp_gateway(fd, gw); /* still answering */
	user_net_close(u);
}
END_TEST

START_TEST(taken_host_port_is_refused_at_open)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct user_net_config cfg = {.nr_forwards = 1};
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
	ck_assert_ptr_null(user_net_open(&cfg, err, sizeof(err)));
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
