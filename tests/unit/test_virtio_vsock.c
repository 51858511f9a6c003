/*
 * virtio-vsock (devices/virtio/vsock.c) with the test as both ends: the guest's driver (packets
 * on a transmit ring, buffers on a receive ring, hand-built in fake guest memory) and the host's
 * programs (Unix sockets on PATH and PATH_<port> in a fresh temp dir). Covers host-initiated
 * streams (the CONNECT line, OK <port>, refusal, malformed or partial lines), guest-initiated
 * ones (PATH_<port>, refusal), data both ways, credit both ways (a guest past its credit is
 * reset; a slow host loses nothing and credit updates keep the guest going), shutdown and close
 * both ways, the transmit batch limit and its resume, hostile packets and chains, bounded stray
 * resets, the connection limit, receive starvation, driver reset, a restored device's transport
 * reset event, a guest RST served in the same loop round as its socket's event, and a driver
 * resetting the device from another thread while the loop serves it.
 *
 * threaded suite (TSan): reset_races_loop serves the loop on a thread of its own while the
 * main thread (as a vCPU) resets the device through its lock; every other test runs the loop
 * on the main thread (serve()).
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "tests/support/blk_ring.h"
#include "tests/support/loop_harness.h"
#include "tests/support/virtio_driver.h"
#include "tests/support/virtio_snapshot.h"
#include "tests/unit/unit.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define RXQ        VSOCK_RX_QUEUE
#define TXQ        VSOCK_TX_QUEUE
#define EVQ        VSOCK_EVENT_QUEUE
#define HDR        ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define CID        3
#define RX_BUF     4096      /* each receive buffer: a header and 4052 bytes */
#define MAX_ROUNDS 10000     /* epoll rounds serve() allows before calling the loop busy */
#define TX_AREA    (6 * MIB) /* transmit packets are written round-robin into this much */

struct pkt {
	struct virtio_vsock_hdr h; /* in host byte order */
	uint32_t used_len;
	uint8_t data[VSOCK_MAX_PAYLOAD];
};

/* The run's temp dir (each test makes one inside): removed with all in it at the end. */
static char suite_dir[32];

struct fixture {
	struct guest_memory mem;
	struct event_loop loop;
	struct virtio_vsock vs;
	struct test_ring rx, tx, ev;
	uint64_t rx_gpa[VSOCK_QUEUE_SIZE]; /* each posted receive buffer, by its head */
	uint32_t rx_len[VSOCK_QUEUE_SIZE];
	bool recycle; /* a receive buffer read back is posted again at once */
	uint64_t tx_base, tx_off;
	char dir[64], path[80];
	char extra[4][96]; /* PATH_<port> listeners the test made */
	unsigned nr_extra;
	unsigned interrupts[3], config_interrupts;
	struct pkt pkt;
	/* reset_races_loop and the same-round test: eventfds standing for the queues' ioeventfds */
	struct event_source rx_kick, tx_kick, stop;
	pthread_t loop_thread;
};

/* The guest's side of one stream. */
struct gstream {
	uint32_t gport, hport;
	uint32_t buf_alloc, fwd_cnt; /* what the guest advertises */
	uint32_t tx_cnt;             /* payload bytes the guest sent */
	uint32_t peer_buf, peer_fwd; /* the device's last advertisement */
};

static void count_interrupt(void *opaque, int q)
{
	struct fixture *f = opaque;

	if (q < 0)
		__atomic_fetch_add(&f->config_interrupts, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&f->interrupts[q], 1, __ATOMIC_RELAXED);
}

/* Under the device's lock: features, the three rings (receive, transmit, event), DRIVER_OK. */
static void driver_up_locked(struct fixture *f)
{
	struct virtio_dev *dev = &f->vs.vdev;
	uint8_t st = test_virtio_negotiate(dev, dev->device_features);

	test_ring_init(&f->rx, &f->mem, 0x10000, 0x3f0000, VSOCK_QUEUE_SIZE, &dev->queues[RXQ]);
	test_ring_init(&f->tx, &f->mem, 0x400000, 0x800000, VSOCK_QUEUE_SIZE, &dev->queues[TXQ]);
	test_ring_init(&f->ev, &f->mem, 0xc00000, 0x10000, 8, &dev->queues[EVQ]);
	f->tx_base = test_ring_alloc(&f->tx, TX_AREA);
	f->tx_off = 0;
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET),
	                  VIRTIO_STATUS_DRIVER_OK);
}

static void driver_up(struct fixture *f)
{
	pthread_mutex_lock(&f->vs.vdev.lock);
	driver_up_locked(f);
	pthread_mutex_unlock(&f->vs.vdev.lock);
}

static struct fixture *setup(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	ck_assert_ptr_nonnull(f);
	log_set_level(LOG_ERROR); /* hostile packets warn */
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 16 * MIB), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	snprintf(f->dir, sizeof(f->dir), "%s/t-XXXXXX", suite_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	ck_assert_msg(
	        virtio_vsock_init(&f->vs, f->path, CID, &f->mem, &f->loop, err, sizeof(err)) == 0,
	        "%s", err);
	f->vs.vdev.transport = (struct virtio_transport){count_interrupt, f};
	f->recycle = true;
	f->stop.fd = f->rx_kick.fd = f->tx_kick.fd = -1;
	driver_up(f);
	return f;
}

static void teardown(struct fixture *f)
{
	virtio_vsock_destroy(&f->vs);
	event_loop_free(&f->loop);
	if (f->stop.fd >= 0)
		close(f->stop.fd);
	if (f->rx_kick.fd >= 0)
		close(f->rx_kick.fd);
	if (f->tx_kick.fd >= 0)
		close(f->tx_kick.fd);
	unlink(f->path); /* the device leaves its socket file (see vsock.h) */
	for (unsigned i = 0; i < f->nr_extra; i++)
		unlink(f->extra[i]);
	ck_assert_int_eq(rmdir(f->dir), 0);
	guest_memory_free(&f->mem);
	free(f);
}

/*
 * Serves what the loop has ready, as its thread would, until nothing is (test_loop_serve's
 * job, but bounded: a loop that never goes idle, an fd ready forever, fails the test instead of
 * hanging it).
 */
static void serve(struct fixture *f)
{
	struct epoll_event ev[8];
	unsigned rounds = 0;
	int n;

	while ((n = epoll_wait(f->loop.epoll_fd, ev, ARRAY_SIZE(ev), 0)) > 0) {
		ck_assert_msg(++rounds < MAX_ROUNDS,
		              "the event loop never goes idle: a busy loop on a ready fd");
		for (int i = 0; i < n; i++) {
			struct event_source *src = ev[i].data.ptr;

			src->handler(src->opaque, ev[i].events);
		}
	}
	ck_assert_int_eq(n, 0);
}

static void notify(struct fixture *f, unsigned q)
{
	f->vs.vdev.ops->queue_notify(&f->vs.vdev, q);
}

static bool needs_reset(struct fixture *f)
{
	return f->vs.vdev.status & VIRTIO_STATUS_NEEDS_RESET;
}

/* ---- the guest's driver ---- */

static void rx_add(struct fixture *f, uint64_t gpa, uint32_t len)
{
	struct test_buf b = {gpa, len, true};
	uint16_t head = test_ring_add(&f->rx, &b, 1);

	f->rx_gpa[head] = gpa;
	f->rx_len[head] = len;
}

/* Posts @n new receive buffers of @len bytes (no notification). */
static void rx_post_len(struct fixture *f, unsigned n, uint32_t len)
{
	for (unsigned i = 0; i < n; i++)
		rx_add(f, test_ring_alloc(&f->rx, len), len);
}

/* Posts @n receive buffers and notifies the receive queue, as a driver does. */
static void rx_post(struct fixture *f, unsigned n)
{
	rx_post_len(f, n, RX_BUF);
	notify(f, RXQ);
}

/* The next packet the device returned on the receive ring, into f->pkt; false when none. */
static bool rx_next(struct fixture *f)
{
	struct pkt *p = &f->pkt;
	uint32_t id, len;
	uint64_t gpa;

	if (!test_ring_used(&f->rx, &id, &len))
		return false;
	ck_assert_uint_lt(id, VSOCK_QUEUE_SIZE);
	gpa = f->rx_gpa[id];
	ck_assert_uint_ne(gpa, 0);
	ck_assert_uint_ge(len, HDR);
	ck_assert_uint_le(len, f->rx_len[id]);
	memcpy(&p->h, test_ring_host(&f->rx, gpa, HDR), HDR);
	p->h.src_cid = le64toh(p->h.src_cid);
	p->h.dst_cid = le64toh(p->h.dst_cid);
	p->h.src_port = le32toh(p->h.src_port);
	p->h.dst_port = le32toh(p->h.dst_port);
	p->h.len = le32toh(p->h.len);
	p->h.type = le16toh(p->h.type);
	p->h.op = le16toh(p->h.op);
	p->h.flags = le32toh(p->h.flags);
	p->h.buf_alloc = le32toh(p->h.buf_alloc);
	p->h.fwd_cnt = le32toh(p->h.fwd_cnt);
	p->used_len = len;
	/* Every packet is addressed from the host to this guest, and says its length right. */
	ck_assert_uint_eq(p->h.src_cid, VSOCK_HOST_CID);
	ck_assert_uint_eq(p->h.dst_cid, CID);
	ck_assert_uint_eq(p->h.type, VSOCK_TYPE_STREAM);
	ck_assert_uint_eq(p->h.len, len - HDR);
	ck_assert_uint_le(p->h.len, VSOCK_MAX_PAYLOAD);
	ck_assert_uint_eq(p->h.buf_alloc, VSOCK_BUF_ALLOC);
	if (p->h.op != VSOCK_OP_RW)
		ck_assert_uint_eq(p->h.len, 0);
	memcpy(p->data, test_ring_host(&f->rx, gpa + HDR, p->h.len ? p->h.len : 1), p->h.len);
	f->rx_gpa[id] = 0;
	if (f->recycle)
		rx_add(f, gpa, f->rx_len[id]);
	return true;
}

static const char *op_name(unsigned op)
{
	static const char *const names[] = {
	        "?",        "REQUEST", "RESPONSE",      "RST",
	        "SHUTDOWN", "RW",      "CREDIT_UPDATE", "CREDIT_REQUEST"};

	return op < ARRAY_SIZE(names) ? names[op] : "?";
}

/* The next packet, which must be @op. */
static struct pkt *rx_expect(struct fixture *f, unsigned op)
{
	ck_assert_msg(rx_next(f), "no packet for the guest, expected %s", op_name(op));
	ck_assert_msg(f->pkt.h.op == op, "packet %s, expected %s", op_name(f->pkt.h.op),
	              op_name(op));
	return &f->pkt;
}

static void rx_expect_none(struct fixture *f)
{
	ck_assert_msg(!rx_next(f), "unexpected %s packet (%u:%u -> %u)", op_name(f->pkt.h.op),
	              f->pkt.h.src_port, f->pkt.h.dst_port, f->pkt.h.len);
}

/* A packet @op for @s's ports, in the guest's byte order. */
static struct virtio_vsock_hdr ghdr(const struct gstream *s, uint16_t op, uint32_t flags,
                                    uint32_t len)
{
	return (struct virtio_vsock_hdr){
	        .src_cid = htole64(CID),
	        .dst_cid = htole64(VSOCK_HOST_CID),
	        .src_port = htole32(s->gport),
	        .dst_port = htole32(s->hport),
	        .len = htole32(len),
	        .type = htole16(VSOCK_TYPE_STREAM),
	        .op = htole16(op),
	        .flags = htole32(flags),
	        .buf_alloc = htole32(s->buf_alloc),
	        .fwd_cnt = htole32(s->fwd_cnt),
	};
}

/* @len bytes of the transmit area (reused round-robin: the device is done with old packets). */
static uint64_t tx_alloc(struct fixture *f, uint32_t len)
{
	uint64_t gpa;

	len = ALIGN_UP(len ? len : 1, 16);
	ck_assert_uint_le(len, TX_AREA);
	if (f->tx_off + len > TX_AREA)
		f->tx_off = 0;
	gpa = f->tx_base + f->tx_off;
	f->tx_off += len;
	return gpa;
}

static struct test_buf tx_data(struct fixture *f, const void *data, uint32_t len)
{
	struct test_buf b = {tx_alloc(f, len), len, false};

	if (len)
		memcpy(test_ring_host(&f->tx, b.gpa, len), data, len);
	return b;
}

/* Publishes header @h and @len payload bytes as a two-buffer chain (as Linux sends them). */
static void tx_publish(struct fixture *f, const struct virtio_vsock_hdr *h, const void *data,
                       uint32_t len)
{
	struct test_buf b[2] = {tx_data(f, h, HDR), tx_data(f, data, len)};

	test_ring_add(&f->tx, b, len ? 2 : 1);
}

/* Reads back the transmit ring's used entries (each with length 0); returns how many. */
static unsigned tx_reap(struct fixture *f)
{
	uint32_t id, len;
	unsigned n = 0;

	while (test_ring_used(&f->tx, &id, &len)) {
		ck_assert_uint_eq(len, 0);
		n++;
	}
	return n;
}

/* Sends one packet: publish, notify, serve the loop; the chain must come back. */
static void tx_send(struct fixture *f, const struct virtio_vsock_hdr *h, const void *data,
                    uint32_t len)
{
	tx_publish(f, h, data, len);
	notify(f, TXQ);
	serve(f);
	ck_assert_uint_eq(tx_reap(f), 1);
}

static void gsend(struct fixture *f, struct gstream *s, uint16_t op, uint32_t flags,
                  const void *data, uint32_t len)
{
	struct virtio_vsock_hdr h = ghdr(s, op, flags, len);

	tx_send(f, &h, data, len);
	if (op == VSOCK_OP_RW)
		s->tx_cnt += len;
}

/* What the guest may still send on @s by the device's last word. */
static uint32_t gcredit(const struct gstream *s)
{
	uint32_t in_flight = s->tx_cnt - s->peer_fwd;

	return in_flight > s->peer_buf ? 0 : s->peer_buf - in_flight;
}

/* ---- the host's programs ---- */

static int unix_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static struct sockaddr_un unix_addr(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	ck_assert_uint_lt(strlen(path), sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	return a;
}

/* A host program's connection to PATH. */
static int host_dial(struct fixture *f)
{
	struct sockaddr_un a = unix_addr(f->path);
	int fd = unix_socket();

	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void host_write(int fd, const void *buf, size_t len)
{
	ck_assert_int_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void host_puts(int fd, const char *s)
{
	host_write(fd, s, strlen(s));
}

/* A listener on PATH_<port>, as a host service the guest connects to. */
static int host_listen(struct fixture *f, uint32_t port)
{
	struct sockaddr_un a;
	int fd = unix_socket();

	ck_assert_uint_lt(f->nr_extra, ARRAY_SIZE(f->extra));
	snprintf(f->extra[f->nr_extra], sizeof(f->extra[0]), "%s_%u", f->path, port);
	a = unix_addr(f->extra[f->nr_extra++]);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	return fd;
}

/* What is readable on @fd now (at most @max bytes); -1 when it ended (EOF or reset). */
static ssize_t host_read(int fd, void *buf, size_t max)
{
	size_t got = 0;

	while (got < max) {
		ssize_t n = recv(fd, (char *)buf + got, max - got, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return got ? (ssize_t)got : -1;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Exactly @s is readable on @fd now, and no more. */
static void host_expect(int fd, const void *s, size_t len)
{
	char buf[4096];

	ck_assert_uint_lt(len, sizeof(buf));
	ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), (ssize_t)len);
	ck_assert_mem_eq(buf, s, len);
}

/* @fd is open and has nothing to read. */
static void host_expect_open(int fd)
{
	char c;

	ck_assert_int_eq(recv(fd, &c, 1, MSG_DONTWAIT), -1);
	ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
}

/* vmm closed @fd's other end, after no more data: a clean EOF. */
static void host_expect_eof(int fd)
{
	char c;

	ck_assert_int_eq(recv(fd, &c, 1, MSG_DONTWAIT), 0);
}

/* vmm closed @fd's other end; a reset counts too (vmm dropped bytes @fd had sent it). */
static void host_expect_closed(int fd)
{
	char buf[256];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	ck_assert_msg(n == 0 || errno == ECONNRESET, "not closed: %s",
	              n < 0 ? strerror(errno) : "data");
}

/* Byte @i of the test streams' data. */
static uint8_t pattern(uint64_t i)
{
	return (uint8_t)(i * 7 + i / 251);
}

static void fill(uint8_t *buf, uint64_t from, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(from + i);
}

static void check_pattern(const uint8_t *buf, uint64_t from, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != pattern(from + i))
			ck_abort_msg("byte %llu differs", (unsigned long long)(from + i));
	}
}

/* ---- streams set up the ordinary way ---- */

/*
 * A host-initiated stream to guest port @port: the host writes its CONNECT line, the guest
 * answers the REQUEST with buffer @buf_alloc, the host reads its OK line. Returns the host's fd.
 */
static int open_host_stream(struct fixture *f, uint32_t port, uint32_t buf_alloc, struct gstream *s)
{
	char line[32];
	struct pkt *p;
	int fd = host_dial(f);

	snprintf(line, sizeof(line), "CONNECT %u\n", port);
	host_puts(fd, line);
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	ck_assert_uint_eq(p->h.dst_port, port);
	*s = (struct gstream){.gport = port, .hport = p->h.src_port, .buf_alloc = buf_alloc};
	s->peer_buf = p->h.buf_alloc;
	gsend(f, s, VSOCK_OP_RESPONSE, 0, NULL, 0);
	snprintf(line, sizeof(line), "OK %u\n", s->hport);
	host_expect(fd, line, strlen(line));
	return fd;
}

/*
 * A guest-initiated stream from guest port @gport to the host's listener @lfd on port @port:
 * REQUEST, RESPONSE, and the host accepts. Returns the accepted fd.
 */
static int open_guest_stream(struct fixture *f, int lfd, uint32_t gport, uint32_t port,
                             uint32_t buf_alloc, struct gstream *s)
{
	struct pkt *p;
	int fd;

	*s = (struct gstream){.gport = gport, .hport = port, .buf_alloc = buf_alloc};
	gsend(f, s, VSOCK_OP_REQUEST, 0, NULL, 0);
	p = rx_expect(f, VSOCK_OP_RESPONSE);
	ck_assert_uint_eq(p->h.src_port, port);
	ck_assert_uint_eq(p->h.dst_port, gport);
	s->peer_buf = p->h.buf_alloc;
	s->peer_fwd = p->h.fwd_cnt;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Takes in the device's packets for @s: credit updates (and data, checked and counted). */
static void take_credit(struct fixture *f, struct gstream *s, unsigned *updates)
{
	while (rx_next(f)) {
		struct pkt *p = &f->pkt;

		ck_assert_msg(p->h.op == VSOCK_OP_CREDIT_UPDATE || p->h.op == VSOCK_OP_RW,
		              "unexpected %s", op_name(p->h.op));
		ck_assert_uint_eq(p->h.dst_port, s->gport);
		s->peer_fwd = p->h.fwd_cnt;
		s->peer_buf = p->h.buf_alloc;
		if (p->h.op == VSOCK_OP_CREDIT_UPDATE && updates)
			(*updates)++;
	}
}

static bool conn_open(struct fixture *f, uint32_t gport, uint32_t hport)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct vsock_conn *c = &f->vs.conns[i];

		if (c->used && c->guest_port == gport && c->host_port == hport)
			return true;
	}
	return false;
}

/* ---- host-initiated streams ---- */

START_TEST(host_initiated_happy_path)
{
	struct fixture *f = setup();
	static const char from_host[] = "ping from the host", from_guest[] = "pong from the guest";
	struct gstream s;
	struct pkt *p;
	char ok[32];
	int fd = host_dial(f);

	rx_post(f, 16);
	host_puts(fd, "CONNECT 5000\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	ck_assert_uint_ge(p->h.src_port, 1u << 30);
	ck_assert_uint_eq(p->h.dst_port, 5000);
	ck_assert_uint_eq(p->h.len, 0);
	ck_assert_uint_eq(p->h.fwd_cnt, 0);
	ck_assert_uint_eq(p->h.flags, 0);
	ck_assert_uint_eq(p->used_len, HDR);
	ck_assert_uint_gt(f->interrupts[RXQ], 0);
	rx_expect_none(f);
	host_expect_open(fd); /* no OK before the guest accepted */

	s = (struct gstream){.gport = 5000, .hport = p->h.src_port, .buf_alloc = 65536};
	gsend(f, &s, VSOCK_OP_RESPONSE, 0, NULL, 0);
	snprintf(ok, sizeof(ok), "OK %u\n", s.hport);
	host_expect(fd, ok, strlen(ok));
	rx_expect_none(f);

	host_write(fd, from_host, sizeof(from_host));
	serve(f);
	p = rx_expect(f, VSOCK_OP_RW);
	ck_assert_uint_eq(p->h.src_port, s.hport);
	ck_assert_uint_eq(p->h.dst_port, 5000);
	ck_assert_uint_eq(p->h.len, sizeof(from_host));
	ck_assert_mem_eq(p->data, from_host, sizeof(from_host));
	rx_expect_none(f);

	gsend(f, &s, VSOCK_OP_RW, 0, from_guest, sizeof(from_guest));
	host_expect(fd, from_guest, sizeof(from_guest));
	rx_expect_none(f);
	ck_assert_uint_eq(f->vs.dropped, 0);
	close(fd);
	teardown(f);
}
END_TEST

/* Bytes written with the CONNECT line are the stream's first bytes, not lost. */
START_TEST(data_after_connect_line_kept)
{
	struct fixture *f = setup();
	struct gstream s;
	struct pkt *p;
	char ok[32];
	int fd = host_dial(f);

	rx_post(f, 8);
	host_puts(fd, "CONNECT 77\nearly bytes");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	ck_assert_uint_eq(p->h.dst_port, 77);
	rx_expect_none(f); /* no data before the guest accepted */
	s = (struct gstream){.gport = 77, .hport = p->h.src_port, .buf_alloc = 4096};
	gsend(f, &s, VSOCK_OP_RESPONSE, 0, NULL, 0);
	snprintf(ok, sizeof(ok), "OK %u\n", s.hport);
	host_expect(fd, ok, strlen(ok));
	p = rx_expect(f, VSOCK_OP_RW);
	ck_assert_uint_eq(p->h.len, 11);
	ck_assert_mem_eq(p->data, "early bytes", 11);
	close(fd);
	teardown(f);
}
END_TEST

START_TEST(connect_refused_by_guest)
{
	struct fixture *f = setup();
	struct gstream s;
	struct pkt *p;
	int fd = host_dial(f);

	rx_post(f, 8);
	host_puts(fd, "CONNECT 5001\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	s = (struct gstream){.gport = 5001, .hport = p->h.src_port};
	gsend(f, &s, VSOCK_OP_RST, 0, NULL, 0);
	host_expect_eof(fd);
	rx_expect_none(f); /* no RST answers a RST */
	ck_assert(!conn_open(f, 5001, s.hport));
	close(fd);
	teardown(f);
}
END_TEST

START_TEST(malformed_connect_lines)
{
	static const char *const bad[] = {
	        "CONNEC 1\n",
	        "CONNECT x\n",
	        "CONNECT \n",
	        "CONNECT -1\n",
	        "CONNECT 12x\n",
	        "CONNECT 4294967296\n",
	        "connect 5\n",
	        "CONNECT  5\n",
	        "\n",
	        "CONNECT 99999999999999999999999\n",
	        "CONNECT 1234567890123456789012345\n", /* no newline in the first 32 bytes */
	        "0123456789012345678901234567890123456789"};
	struct fixture *f = setup();
	struct pkt *p;
	int fd;

	rx_post(f, 8);
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		fd = host_dial(f);
		host_puts(fd, bad[i]);
		serve(f);
		host_expect_closed(fd);
		ck_assert_msg(!rx_next(f), "'%s' made a %s", bad[i], op_name(f->pkt.h.op));
		close(fd);
	}
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		ck_assert(!f->vs.conns[i].used);
	/* A good line still works, leading zeros and the largest port too. */
	fd = host_dial(f);
	host_puts(fd, "CONNECT 0007\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	ck_assert_uint_eq(p->h.dst_port, 7);
	close(fd);
	fd = host_dial(f);
	host_puts(fd, "CONNECT 4294967295\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	ck_assert_uint_eq(p->h.dst_port, 4294967295u);
	close(fd);
	teardown(f);
}
END_TEST

/*
 * A CONNECT line that arrives in pieces: the loop goes idle while the host has not finished it
 * (no busy loop on the readable socket), and the line completes.
 */
START_TEST(connect_line_in_pieces)
{
	struct fixture *f = setup();
	struct pkt *p;
	int fd = host_dial(f);

	rx_post(f, 8);
	host_puts(fd, "CONNECT 50");
	serve(f);
	rx_expect_none(f);
	host_puts(fd, "00\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	ck_assert_uint_eq(p->h.dst_port, 5000);
	close(fd);
	teardown(f);
}
END_TEST

/* The host hangs up before its line's newline: vmm closes its end; no REQUEST. */
START_TEST(connect_line_eof_before_newline)
{
	struct fixture *f = setup();
	int fd = host_dial(f);

	rx_post(f, 8);
	host_puts(fd, "CONNECT 5");
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	serve(f);
	host_expect_closed(fd);
	rx_expect_none(f);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		ck_assert(!f->vs.conns[i].used);
	close(fd);
	teardown(f);
}
END_TEST

/* ---- guest-initiated streams ---- */

START_TEST(guest_initiated)
{
	struct fixture *f = setup();
	static const char from_host[] = "hello guest", from_guest[] = "hello host";
	int lfd = host_listen(f, 6000), fd;
	struct gstream s, r;
	struct pkt *p;

	rx_post(f, 16);
	fd = open_guest_stream(f, lfd, 1234, 6000, 65536, &s);
	ck_assert_uint_eq(s.peer_fwd, 0);
	rx_expect_none(f);
	gsend(f, &s, VSOCK_OP_RW, 0, from_guest, sizeof(from_guest));
	host_expect(fd, from_guest, sizeof(from_guest));
	host_write(fd, from_host, sizeof(from_host));
	serve(f);
	p = rx_expect(f, VSOCK_OP_RW);
	ck_assert_uint_eq(p->h.src_port, 6000);
	ck_assert_uint_eq(p->h.dst_port, 1234);
	ck_assert_mem_eq(p->data, from_host, sizeof(from_host));
	ck_assert_uint_eq(p->h.fwd_cnt, sizeof(from_guest));

	/* Nobody listens on 6001: refused. */
	r = (struct gstream){.gport = 1235, .hport = 6001, .buf_alloc = 65536};
	gsend(f, &r, VSOCK_OP_REQUEST, 0, NULL, 0);
	p = rx_expect(f, VSOCK_OP_RST);
	ck_assert_uint_eq(p->h.src_port, 6001);
	ck_assert_uint_eq(p->h.dst_port, 1235);
	rx_expect_none(f);
	ck_assert(!conn_open(f, 1235, 6001));
	/* The first stream is unharmed. */
	gsend(f, &s, VSOCK_OP_RW, 0, "x", 1);
	host_expect(fd, "x", 1);
	close(fd);
	close(lfd);
	teardown(f);
}
END_TEST

/* ---- credit ---- */

/* The device sends no more than the guest's buffer allows, and more as it reports progress. */
START_TEST(credit_limits_host_to_guest)
{
	struct fixture *f = setup();
	uint8_t data[5000];
	uint32_t got = 0;
	struct gstream s;
	int fd;

	rx_post(f, 32);
	fd = open_host_stream(f, 5000, 1000, &s);
	fill(data, 0, sizeof(data));
	host_write(fd, data, sizeof(data));
	serve(f);
	while (got < sizeof(data)) {
		uint32_t round = 0;

		while (rx_next(f)) {
			struct pkt *p = &f->pkt;

			ck_assert_uint_eq(p->h.op, VSOCK_OP_RW);
			check_pattern(p->data, got, p->h.len);
			got += p->h.len;
			round += p->h.len;
		}
		/* Exactly the guest's free buffer: 1000 bytes in flight, then nothing. */
		ck_assert_uint_eq(round, MIN(1000, sizeof(data) - (got - round)));
		/* The guest consumed them: its CREDIT_UPDATE lets the next 1000 through. */
		s.fwd_cnt = got;
		gsend(f, &s, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
	}
	rx_expect_none(f);
	/* A guest that shrinks its buffer gets nothing past the new size. */
	s.buf_alloc = 100;
	gsend(f, &s, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
	host_write(fd, data, 500);
	serve(f);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RW)->h.len, 100);
	rx_expect_none(f);
	close(fd);
	teardown(f);
}
END_TEST

/* Sends within credit on @s until the device's word leaves the guest none (host not reading). */
static void fill_credit(struct fixture *f, struct gstream *s, uint8_t *buf)
{
	for (unsigned i = 0; gcredit(s) > 0; i++) {
		uint32_t n = MIN(gcredit(s), VSOCK_MAX_PAYLOAD);

		ck_assert_uint_lt(i, 1000);
		fill(buf, s->tx_cnt, n);
		gsend(f, s, VSOCK_OP_RW, 0, buf, n);
		take_credit(f, s, NULL);
	}
}

/* A guest past the credit the device gave it is reset; up to it, it is not. */
START_TEST(guest_past_credit_reset)
{
	struct fixture *f = setup();
	uint8_t *buf = malloc(VSOCK_MAX_PAYLOAD);
	int lfd = host_listen(f, 6000), fd;
	struct gstream s;
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	rx_post(f, 32);
	fd = open_guest_stream(f, lfd, 1000, 6000, 65536, &s);
	ck_assert_uint_eq(s.peer_buf, VSOCK_BUF_ALLOC);
	fill_credit(f, &s, buf);
	/* The exact credit (the device reports fwd_cnt at every threshold only): ask for it. */
	for (;;) {
		gsend(f, &s, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
		ck_assert_uint_eq(rx_expect(f, VSOCK_OP_CREDIT_UPDATE)->h.dst_port, 1000);
		s.peer_fwd = f->pkt.h.fwd_cnt;
		rx_expect_none(f);
		if (!gcredit(&s))
			break;
		fill_credit(f, &s, buf);
	}
	ck_assert_uint_eq(s.tx_cnt - s.peer_fwd, VSOCK_BUF_ALLOC); /* all of it held for the host */
	ck_assert(conn_open(f, 1000, 6000));
	/* One byte more than the guest may send. */
	fill(buf, s.tx_cnt, 1);
	gsend(f, &s, VSOCK_OP_RW, 0, buf, 1);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 1000);
	rx_expect_none(f);
	/* The host gets every byte that was forwarded, in order, then the end. */
	buf = realloc(buf, 1 << 20);
	ck_assert_ptr_nonnull(buf);
	n = host_read(fd, buf, 1 << 20);
	ck_assert_int_eq(n, s.peer_fwd);
	check_pattern(buf, 0, (size_t)n);
	host_expect_closed(fd);
	close(fd);
	close(lfd);
	free(buf);
	teardown(f);
}
END_TEST

/*
 * A slow host: the guest sends 1 MiB within its credit while the host does not read; once the
 * host reads, every byte arrives in order, and credit updates keep the guest from getting stuck.
 */
START_TEST(slow_host_loses_nothing)
{
	enum { TOTAL = 1 << 20 };
	struct fixture *f = setup();
	uint8_t *buf = malloc(TOTAL);
	int lfd = host_listen(f, 6000), fd;
	uint32_t received = 0, stalled_at = 0;
	unsigned updates = 0, idle = 0;
	bool host_reads = false;
	struct gstream s;

	ck_assert_ptr_nonnull(buf);
	rx_post(f, 64);
	fd = open_guest_stream(f, lfd, 1000, 6000, 65536, &s);
	for (unsigned iter = 0; received < TOTAL; iter++) {
		bool progress = false;

		ck_assert_uint_lt(iter, 100000);
		if (s.tx_cnt < TOTAL && gcredit(&s) > 0) {
			uint32_t n = MIN(MIN(gcredit(&s), VSOCK_MAX_PAYLOAD), TOTAL - s.tx_cnt);

			fill(buf, s.tx_cnt, n);
			gsend(f, &s, VSOCK_OP_RW, 0, buf, n);
			progress = true;
		} else if (!host_reads) {
			/* The guest is out of credit and the host has not read a byte yet. */
			host_reads = true;
			stalled_at = s.tx_cnt;
		}
		if (host_reads) {
			ssize_t n = host_read(fd, buf, TOTAL);

			ck_assert_int_ge(n, 0);
			check_pattern(buf, received, (size_t)n);
			received += (uint32_t)n;
			progress |= n > 0;
			serve(f); /* the socket has room: vmm flushes what waits */
		}
		take_credit(f, &s, &updates);
		idle = progress ? 0 : idle + 1;
		ck_assert_msg(idle < 3, "stuck: %u sent, %u received, credit %u", s.tx_cnt,
		              received, gcredit(&s));
	}
	ck_assert_uint_ge(stalled_at, VSOCK_BUF_ALLOC); /* the device held the guest's credit */
	ck_assert_uint_lt(stalled_at, TOTAL);
	ck_assert_uint_gt(updates, 0);
	ck_assert_uint_eq(s.tx_cnt, TOTAL);
	ck_assert_int_eq(host_read(fd, buf, TOTAL), 0);
	rx_expect_none(f);
	close(fd);
	close(lfd);
	free(buf);
	teardown(f);
}
END_TEST

/* ---- shutdown and close ---- */

/* The host closes: its last bytes reach the guest, then SHUTDOWN(SEND); the guest's RST ends it. */
START_TEST(host_close_after_data)
{
	struct fixture *f = setup();
	struct gstream s;
	struct pkt *p;
	int fd;

	rx_post(f, 8);
	fd = open_host_stream(f, 5000, 65536, &s);
	host_puts(fd, "last words");
	close(fd);
	serve(f);
	p = rx_expect(f, VSOCK_OP_RW);
	ck_assert_mem_eq(p->data, "last words", 10);
	p = rx_expect(f, VSOCK_OP_SHUTDOWN);
	ck_assert_uint_eq(p->h.flags, VSOCK_SHUTDOWN_SEND);
	ck_assert_uint_eq(p->h.dst_port, 5000);
	rx_expect_none(f);
	gsend(f, &s, VSOCK_OP_RST, 0, NULL, 0);
	rx_expect_none(f);
	ck_assert(!conn_open(f, 5000, s.hport));
	teardown(f);
}
END_TEST

/* The guest shuts both ways: its data first, then the host sees EOF and the guest a RST. */
START_TEST(guest_shutdown_both)
{
	struct fixture *f = setup();
	int lfd = host_listen(f, 6000), fd;
	struct gstream s;

	rx_post(f, 8);
	fd = open_guest_stream(f, lfd, 1000, 6000, 65536, &s);
	gsend(f, &s, VSOCK_OP_RW, 0, "bye", 3);
	gsend(f, &s, VSOCK_OP_SHUTDOWN, 0, NULL, 0); /* no flags: nothing changes */
	ck_assert(conn_open(f, 1000, 6000));
	rx_expect_none(f);
	gsend(f, &s, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND, NULL, 0);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 1000);
	rx_expect_none(f);
	host_expect(fd, "bye", 3);
	host_expect_eof(fd);
	close(fd);
	close(lfd);
	teardown(f);
}
END_TEST

/* SHUTDOWN(SEND) alone is a half close: the host sees EOF and may still send. */
START_TEST(guest_shutdown_send_half_close)
{
	struct fixture *f = setup();
	int lfd = host_listen(f, 6000), fd;
	struct gstream s;
	struct pkt *p;

	rx_post(f, 8);
	fd = open_guest_stream(f, lfd, 1000, 6000, 65536, &s);
	gsend(f, &s, VSOCK_OP_RW, 0, "done", 4);
	gsend(f, &s, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, NULL, 0);
	rx_expect_none(f);
	host_expect(fd, "done", 4);
	host_expect_eof(fd);
	host_puts(fd, "still here");
	serve(f);
	p = rx_expect(f, VSOCK_OP_RW);
	ck_assert_mem_eq(p->data, "still here", 10);
	/* Data after its own SHUTDOWN(SEND) is hostile: reset. */
	gsend(f, &s, VSOCK_OP_RW, 0, "more", 4);
	rx_expect(f, VSOCK_OP_RST);
	rx_expect_none(f);
	host_expect_closed(fd);
	close(fd);
	close(lfd);
	teardown(f);
}
END_TEST

/* SHUTDOWN(SEND) while the guest's data still waits for the host: the EOF comes after it. */
START_TEST(guest_shutdown_after_pending_data)
{
	struct fixture *f = setup();
	uint8_t *buf = malloc(1 << 20);
	int lfd = host_listen(f, 6000), fd;
	uint32_t received = 0;
	struct gstream s;

	ck_assert_ptr_nonnull(buf);
	rx_post(f, 32);
	fd = open_guest_stream(f, lfd, 1000, 6000, 65536, &s);
	fill_credit(f, &s, buf);
	gsend(f, &s, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, NULL, 0);
	for (unsigned i = 0; received < s.tx_cnt; i++) {
		ssize_t n = host_read(fd, buf, 1 << 20);

		ck_assert_uint_lt(i, 1000);
		ck_assert_msg(n >= 0, "EOF after %u of %u bytes", received, s.tx_cnt);
		check_pattern(buf, received, (size_t)n);
		received += (uint32_t)n;
		serve(f);
	}
	host_expect_eof(fd);
	close(fd);
	close(lfd);
	free(buf);
	teardown(f);
}
END_TEST

/* 100 packets at once: a batch of 64 now, the rest from the loop; every byte in order. */
START_TEST(tx_batch_limit_resumes)
{
	struct fixture *f = setup();
	int lfd = host_listen(f, 6000), fd;
	uint8_t buf[100 * 10];
	struct gstream s;

	rx_post(f, 8);
	fd = open_guest_stream(f, lfd, 1000, 6000, 65536, &s);
	fill(buf, 0, sizeof(buf));
	for (unsigned i = 0; i < 100; i++) {
		struct virtio_vsock_hdr h = ghdr(&s, VSOCK_OP_RW, 0, 10);

		tx_publish(f, &h, buf + 10 * i, 10);
	}
	notify(f, TXQ);
	ck_assert_uint_eq(tx_reap(f), 64);
	serve(f);
	ck_assert_uint_eq(tx_reap(f), 36);
	host_expect(fd, buf, sizeof(buf));
	/* The event queue's notifications are no work: its buffers stay. */
	{
		struct test_buf b = {test_ring_alloc(&f->ev, 8), 8, true};
		uint32_t id, len;

		test_ring_add(&f->ev, &b, 1);
		notify(f, EVQ);
		serve(f);
		ck_assert(!test_ring_used(&f->ev, &id, &len));
	}
	close(fd);
	close(lfd);
	teardown(f);
}
END_TEST

/* Resets owed for packets of no stream wait for buffers, a bounded number of them. */
START_TEST(stray_resets_bounded)
{
	struct fixture *f = setup();
	unsigned n = 0;

	for (uint32_t i = 0; i < 40; i++) {
		struct gstream s = {.gport = 100 + i, .hport = 7000};

		gsend(f, &s, VSOCK_OP_RW, 0, "x", 1);
	}
	rx_post(f, 64);
	serve(f);
	while (rx_next(f)) {
		ck_assert_uint_eq(f->pkt.h.op, VSOCK_OP_RST);
		ck_assert_uint_eq(f->pkt.h.src_port, 7000);
		ck_assert_uint_eq(f->pkt.h.dst_port, 100 + n); /* in order */
		n++;
	}
	ck_assert_uint_eq(n, ARRAY_SIZE(f->vs.stray_rst));
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

/* ---- hostile packets ---- */

/* Publishes @bufs as one transmit chain and serves it; it must come back. */
static void tx_chain(struct fixture *f, const struct test_buf *bufs, unsigned n)
{
	test_ring_add(&f->tx, bufs, n);
	notify(f, TXQ);
	serve(f);
	ck_assert_uint_eq(tx_reap(f), 1);
}

START_TEST(hostile_packets_dropped)
{
	static const uint16_t ops[] = {99, 0, VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE};
	static uint8_t big[VSOCK_MAX_PAYLOAD + 1];
	struct fixture *f = setup();
	int lfd = host_listen(f, 6000), fd;
	struct virtio_vsock_hdr h;
	struct gstream s, other;
	uint64_t dropped;

	rx_post(f, 16);
	fd = open_guest_stream(f, lfd, 1000, 6000, 65536, &s);
	dropped = f->vs.dropped;

	h = ghdr(&s, VSOCK_OP_RW, 0, 3);
	h.src_cid = htole64(CID + 1); /* another guest's address */
	tx_send(f, &h, "abc", 3);
	h = ghdr(&s, VSOCK_OP_RW, 0, 3);
	h.dst_cid = htole64(5); /* not the host */
	tx_send(f, &h, "abc", 3);
	h = ghdr(&s, VSOCK_OP_RW, 0, 100); /* longer than the chain */
	tx_send(f, &h, "abcdefghij", 10);
	h = ghdr(&s, VSOCK_OP_RW, 0, sizeof(big)); /* longer than any packet */
	tx_send(f, &h, big, sizeof(big));
	h = ghdr(&s, VSOCK_OP_RW, 0, 0xffffffff);
	tx_send(f, &h, "abc", 3);
	h = ghdr(&s, VSOCK_OP_RW, 0, 3);
	{ /* a device-writable buffer on the transmit queue */
		struct test_buf b[2] = {tx_data(f, &h, HDR), {tx_alloc(f, 16), 16, true}};

		tx_chain(f, b, 2);
	}
	{ /* a header cut short */
		struct test_buf b = tx_data(f, &h, 20);

		tx_chain(f, &b, 1);
	}
	ck_assert_uint_eq(f->vs.dropped, dropped + 7);
	rx_expect_none(f);
	host_expect_open(fd);

	/* The stream is unharmed; a header over three buffers and an indirect chain are fine. */
	h = ghdr(&s, VSOCK_OP_RW, 0, 6);
	{
		struct test_buf b[3] = {tx_data(f, &h, 10),
		                        tx_data(f, (uint8_t *)&h + 10, HDR - 10),
		                        tx_data(f, "split!", 6)};

		tx_chain(f, b, 3);
		test_ring_add_indirect(&f->tx, b, 3);
		notify(f, TXQ);
		serve(f);
		ck_assert_uint_eq(tx_reap(f), 1);
	}
	host_expect(fd, "split!split!", 12);
	ck_assert_uint_eq(f->vs.dropped, dropped + 7);

	/* Packets for no stream: data is answered with a RST, a RST is not. */
	other = (struct gstream){.gport = 999, .hport = 6000, .buf_alloc = 65536};
	gsend(f, &other, VSOCK_OP_RW, 0, "abc", 3);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 999);
	ck_assert_uint_eq(f->pkt.h.src_port, 6000);
	gsend(f, &other, VSOCK_OP_RST, 0, NULL, 0);
	gsend(f, &other, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 999);
	rx_expect_none(f);
	host_expect_open(fd);

	/* A CREDIT_REQUEST is answered with the exact count. */
	gsend(f, &s, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_CREDIT_UPDATE)->h.fwd_cnt, 12);

	/* A seqpacket packet on a stream resets it. */
	h = ghdr(&s, VSOCK_OP_RW, 0, 3);
	h.type = htole16(2);
	tx_send(f, &h, "abc", 3);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 1000);
	rx_expect_none(f);
	host_expect_eof(fd);
	close(fd);
	ck_assert(!conn_open(f, 1000, 6000));
	/* ... and one for no stream gets a RST too (but a RST does not). */
	h = ghdr(&other, VSOCK_OP_REQUEST, 0, 0);
	h.type = htole16(2);
	tx_send(f, &h, NULL, 0);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 999);
	h.op = htole16(VSOCK_OP_RST);
	tx_send(f, &h, NULL, 0);
	rx_expect_none(f);
	ck_assert(!conn_open(f, 999, 6000));

	/* An unknown op, a second REQUEST and a RESPONSE on a guest-initiated stream reset it. */
	for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
		fd = open_guest_stream(f, lfd, 2000 + i, 6000, 65536, &s);
		gsend(f, &s, ops[i], 0, NULL, 0);
		ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 2000 + i);
		rx_expect_none(f);
		host_expect_eof(fd);
		close(fd);
	}
	close(lfd);
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

/* Before the guest's RESPONSE a host-initiated stream carries no data: RW then is a reset. */
START_TEST(data_before_response_resets)
{
	struct fixture *f = setup();
	struct gstream s;
	struct pkt *p;
	int fd = host_dial(f);

	rx_post(f, 8);
	host_puts(fd, "CONNECT 42\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	s = (struct gstream){.gport = 42, .hport = p->h.src_port, .buf_alloc = 4096};
	gsend(f, &s, VSOCK_OP_RW, 0, "early", 5);
	rx_expect(f, VSOCK_OP_RST);
	rx_expect_none(f);
	host_expect_eof(fd); /* no OK line, no data */
	close(fd);
	teardown(f);
}
END_TEST

START_TEST(looping_tx_chain_needs_reset)
{
	struct fixture *f = setup();
	struct gstream s = {.gport = 1, .hport = 6000};
	struct virtio_vsock_hdr h = ghdr(&s, VSOCK_OP_REQUEST, 0, 0);
	struct test_buf b = tx_data(f, &h, HDR);

	test_ring_set_desc(&f->tx, 0, b.gpa, b.len, TEST_DESC_F_NEXT, 1);
	test_ring_set_desc(&f->tx, 1, b.gpa, b.len, TEST_DESC_F_NEXT, 0);
	test_ring_publish(&f->tx, 0);
	notify(f, TXQ);
	serve(f);
	ck_assert(needs_reset(f));
	ck_assert_uint_eq(f->config_interrupts, 1);
	teardown(f);
}
END_TEST

/* A receive chain the device cannot use (readable, or no room past the header): reset. */
START_TEST(bad_rx_chain_needs_reset)
{
	for (unsigned kind = 0; kind < 2; kind++) {
		struct fixture *f = setup();
		struct test_buf b = {test_ring_alloc(&f->rx, RX_BUF), kind ? HDR : RX_BUF,
		                     kind == 1};
		int fd = host_dial(f);

		test_ring_add(&f->rx, &b, 1);
		notify(f, RXQ);
		host_puts(fd, "CONNECT 5\n");
		serve(f);
		ck_assert_msg(needs_reset(f), "kind %u", kind);
		ck_assert_uint_eq(f->config_interrupts, 1);
		close(fd);
		teardown(f);
	}
}
END_TEST

/* ---- limits ---- */

START_TEST(connection_limit)
{
	struct fixture *f = setup();
	int fds[VSOCK_MAX_CONNS], extra, lfd = host_listen(f, 6000), afd;
	struct gstream s = {.gport = 1000, .hport = 6000, .buf_alloc = 4096};
	struct gstream streams[VSOCK_MAX_CONNS];

	rx_post(f, 128);
	/* 64 working streams, each with a host port of its own. */
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		fds[i] = open_host_stream(f, 100 + i, 4096, &streams[i]);
		ck_assert_uint_ge(streams[i].hport, 1u << 30);
		for (unsigned j = 0; j < i; j++)
			ck_assert_uint_ne(streams[j].hport, streams[i].hport);
	}
	extra = host_dial(f);
	serve(f);
	host_expect_eof(extra); /* the one too many is closed */
	close(extra);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		host_expect_open(fds[i]);
	/* A guest connection past the limit is refused (and the host's socket closed). */
	gsend(f, &s, VSOCK_OP_REQUEST, 0, NULL, 0);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_RST)->h.dst_port, 1000);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	ck_assert_int_ge(afd, 0);
	host_expect_eof(afd);
	close(afd);
	rx_expect_none(f);
	/* The guest ends one: its slot takes a new stream. */
	gsend(f, &streams[0], VSOCK_OP_RST, 0, NULL, 0);
	host_expect_eof(fds[0]);
	gsend(f, &s, VSOCK_OP_REQUEST, 0, NULL, 0);
	rx_expect(f, VSOCK_OP_RESPONSE);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	ck_assert_int_ge(afd, 0);
	host_expect_open(afd);
	close(afd);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		close(fds[i]);
	close(lfd);
	teardown(f);
}
END_TEST

/*
 * Host clients that connect and stall (no CONNECT line, or no RESPONSE from the guest) hold
 * at most VSOCK_MAX_HANDSHAKES slots: past that the oldest is closed, with a RST to the guest
 * when it had been asked to accept it, and the streams that work are untouched.
 */
START_TEST(stalled_handshakes_bounded)
{
	struct fixture *f = setup();
	int fds[VSOCK_MAX_HANDSHAKES + 2], working;
	struct gstream ok, asked;
	struct pkt *p;

	rx_post(f, 64);
	working = open_host_stream(f, 99, 4096, &ok);
	/* The oldest handshake: a CONNECT line the guest never answers. */
	fds[0] = host_dial(f);
	host_puts(fds[0], "CONNECT 7\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	asked = (struct gstream){.gport = 7, .hport = p->h.src_port};
	for (unsigned i = 1; i < VSOCK_MAX_HANDSHAKES; i++) {
		fds[i] = host_dial(f);
		serve(f);
	}
	for (unsigned i = 0; i < VSOCK_MAX_HANDSHAKES; i++)
		host_expect_open(fds[i]);
	/* One more: the oldest goes, and the guest hears it is gone. */
	fds[VSOCK_MAX_HANDSHAKES] = host_dial(f);
	serve(f);
	host_expect_closed(fds[0]);
	p = rx_expect(f, VSOCK_OP_RST);
	ck_assert_uint_eq(p->h.dst_port, asked.gport);
	ck_assert_uint_eq(p->h.src_port, asked.hport);
	ck_assert(!conn_open(f, asked.gport, asked.hport));
	/* And one more: the next oldest, which never sent its line, goes without a packet. */
	fds[VSOCK_MAX_HANDSHAKES + 1] = host_dial(f);
	serve(f);
	host_expect_closed(fds[1]);
	rx_expect_none(f);
	for (unsigned i = 2; i < VSOCK_MAX_HANDSHAKES + 2; i++)
		host_expect_open(fds[i]);
	host_expect_open(working);
	/* The newest still connects. */
	host_puts(fds[VSOCK_MAX_HANDSHAKES + 1], "CONNECT 8\n");
	serve(f);
	ck_assert_uint_eq(rx_expect(f, VSOCK_OP_REQUEST)->h.dst_port, 8);
	for (unsigned i = 0; i < VSOCK_MAX_HANDSHAKES + 2; i++)
		close(fds[i]);
	close(working);
	teardown(f);
}
END_TEST

/* No receive buffers: host data waits (the loop idles), and flows once buffers come. */
START_TEST(rx_starvation)
{
	struct fixture *f = setup();
	uint8_t data[10000];
	uint32_t got = 0;
	struct gstream s;
	int fd;

	f->recycle = false;
	rx_post(f, 1); /* for the REQUEST */
	fd = open_host_stream(f, 5000, 65536, &s);
	fill(data, 0, sizeof(data));
	host_write(fd, data, sizeof(data));
	serve(f); /* returns: no busy loop over the readable socket */
	serve(f);
	rx_expect_none(f);
	for (unsigned round = 0; got < sizeof(data); round++) {
		ck_assert_uint_lt(round, 4);
		rx_post(f, 2);
		serve(f);
		for (unsigned i = 0; i < 2 && got < sizeof(data); i++) {
			struct pkt *p = rx_expect(f, VSOCK_OP_RW);

			ck_assert_uint_eq(p->h.len, MIN(RX_BUF - HDR, sizeof(data) - got));
			check_pattern(p->data, got, p->h.len);
			got += p->h.len;
		}
		rx_expect_none(f);
	}
	ck_assert_uint_eq(got, sizeof(data));
	close(fd);
	teardown(f);
}
END_TEST

/* ---- snapshots ---- */

/*
 * A device restored from a snapshot (its streams were host sockets, not in it) tells the
 * driver its transport was reset, once, in the first event buffer; the snapshotted device
 * sends nothing.
 */
START_TEST(restore_sends_transport_reset)
{
	struct fixture *f = setup();
	struct virtio_vsock *copy = calloc(1, sizeof(*copy));
	struct test_buf ev[2] = {{test_ring_alloc(&f->ev, 8), 8, true},
	                         {test_ring_alloc(&f->ev, 8), 8, true}};
	struct test_snapshot snap;
	char path[96], err[256] = "";
	uint32_t head, used_len, id;

	test_ring_add(&f->ev, &ev[0], 1);
	test_ring_add(&f->ev, &ev[1], 1);
	f->vs.vdev.ops->queue_notify(&f->vs.vdev, EVQ);
	ck_assert(!test_ring_used(&f->ev, &head, &used_len));

	test_snapshot_take(&f->vs.vdev, &snap);

	ck_assert_ptr_nonnull(copy);
	snprintf(path, sizeof(path), "%s/restored.sock", f->dir);
	ck_assert_msg(virtio_vsock_init(copy, path, CID, &f->mem, &f->loop, err, sizeof(err)) == 0,
	              "%s", err);
	copy->vdev.transport = (struct virtio_transport){count_interrupt, f};
	ck_assert_msg(virtio_dev_load(&copy->vdev, &snap.section, err, sizeof(err)) == 0, "%s",
	              err);
	copy->vdev.ops->queue_notify(&copy->vdev, EVQ);
	ck_assert(test_ring_used(&f->ev, &head, &used_len));
	ck_assert_uint_eq(head, 0);
	ck_assert_uint_eq(used_len, 4);
	memcpy(&id, test_ring_host(&f->ev, ev[0].gpa, 4), 4);
	ck_assert_uint_eq(le32toh(id), VSOCK_EVENT_TRANSPORT_RESET);
	ck_assert_uint_eq(f->interrupts[EVQ], 1);
	copy->vdev.ops->queue_notify(&copy->vdev, EVQ); /* owed once */
	ck_assert(!test_ring_used(&f->ev, &head, &used_len));

	test_snapshot_free(&snap);
	virtio_vsock_destroy(copy);
	free(copy);
	unlink(path);
	teardown(f);
}
END_TEST

/* ---- reset ---- */

START_TEST(driver_reset_closes_streams)
{
	struct fixture *f = setup();
	int lfd = host_listen(f, 6000), h1, h2, h3, a4;
	struct gstream s1, s4;
	struct pkt *p;

	rx_post(f, 16);
	h1 = open_host_stream(f, 5000, 65536, &s1); /* established */
	h2 = host_dial(f);                          /* waiting for the guest's RESPONSE */
	host_puts(h2, "CONNECT 5001\n");
	h3 = host_dial(f); /* no CONNECT line yet */
	serve(f);
	rx_expect(f, VSOCK_OP_REQUEST);
	a4 = open_guest_stream(f, lfd, 1000, 6000, 65536, &s4);
	gsend(f, &s1, VSOCK_OP_RW, 0, "to h1", 5);
	host_expect(h1, "to h1", 5);

	pthread_mutex_lock(&f->vs.vdev.lock);
	virtio_write_status(&f->vs.vdev, 0);
	pthread_mutex_unlock(&f->vs.vdev.lock);
	host_expect_eof(h1);
	host_expect_eof(h2);
	host_expect_eof(h3);
	host_expect_eof(a4);
	serve(f);
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		ck_assert(!f->vs.conns[i].used);

	/* The driver comes back; a new host stream works. */
	driver_up(f);
	rx_post(f, 4);
	close(h1);
	h1 = host_dial(f);
	host_puts(h1, "CONNECT 5002\n");
	serve(f);
	p = rx_expect(f, VSOCK_OP_REQUEST);
	ck_assert_uint_eq(p->h.dst_port, 5002);
	close(h1);
	close(h2);
	close(h3);
	close(a4);
	close(lfd);
	teardown(f);
}
END_TEST

/* ---- the loop's rounds ---- */

static void on_tx_kick(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->tx_kick.fd);
	notify(f, TXQ);
}

static void on_rx_kick(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->rx_kick.fd);
	notify(f, RXQ);
}

/*
 * The guest's RST for a stream is served (through the transmit queue's ioeventfd) in the same
 * epoll round as that stream's socket event: the event arrives after the stream was freed, and
 * must be ignored.
 */
START_TEST(guest_rst_and_socket_event_in_one_round)
{
	struct fixture *f = setup();
	struct virtio_vsock_hdr h;
	struct gstream s;
	int fd;

	test_loop_add_eventfd(&f->loop, &f->tx_kick, on_tx_kick, f);
	rx_post(f, 8);
	fd = open_host_stream(f, 5000, 65536, &s);
	h = ghdr(&s, VSOCK_OP_RST, 0, 0);
	tx_publish(f, &h, NULL, 0);
	test_eventfd_kick(f->tx_kick.fd); /* ready first: served first in the round */
	host_puts(fd, "data");
	serve(f);
	ck_assert_uint_eq(tx_reap(f), 1);
	rx_expect_none(f);
	ck_assert(!conn_open(f, 5000, s.hport));
	host_expect_closed(fd);
	close(fd);
	teardown(f);
}
END_TEST

static void on_stop(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->stop.fd);
	event_loop_stop(&f->loop);
}

static void *loop_main(void *opaque)
{
	struct fixture *f = opaque;

	ck_assert_int_eq(event_loop_run(&f->loop), 0);
	return NULL;
}

/*
 * Two threads: the loop serves streams on its thread while the main thread, as a vCPU, brings
 * the driver up and resets it through the device's lock again and again, with host streams
 * being opened, written and guest requests coming in between.
 */
START_TEST(reset_races_loop)
{
	struct fixture *f = setup();
	struct virtio_dev *dev = &f->vs.vdev;
	int lfd = host_listen(f, 6000);

	ck_assert_int_eq(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
	test_loop_add_eventfd(&f->loop, &f->tx_kick, on_tx_kick, f);
	test_loop_add_eventfd(&f->loop, &f->rx_kick, on_rx_kick, f);
	test_loop_add_eventfd(&f->loop, &f->stop, on_stop, f);
	ck_assert_int_eq(pthread_create(&f->loop_thread, NULL, loop_main, f), 0);
	for (unsigned iter = 0; iter < 40; iter++) {
		int fds[4];

		/* Ring writes under the lock: the device reads the rings only under it. */
		pthread_mutex_lock(&dev->lock);
		virtio_write_status(dev, 0);
		driver_up_locked(f);
		rx_post_len(f, 16, RX_BUF);
		for (uint32_t i = 0; i < 3; i++) {
			struct gstream s = {.gport = 100 + i, .hport = 6000, .buf_alloc = 65536};
			struct virtio_vsock_hdr h = ghdr(&s, VSOCK_OP_REQUEST, 0, 0);

			tx_publish(f, &h, NULL, 0);
		}
		pthread_mutex_unlock(&dev->lock);
		test_eventfd_kick(f->rx_kick.fd);
		test_eventfd_kick(f->tx_kick.fd);
		for (unsigned i = 0; i < ARRAY_SIZE(fds); i++) {
			char line[32];

			fds[i] = host_dial(f);
			snprintf(line, sizeof(line), "CONNECT %u\nsome data", 5000 + i);
			host_puts(fds[i], line);
		}
		poll(NULL, 0, iter % 3); /* let the loop get at them (or not) */
		pthread_mutex_lock(&dev->lock);
		virtio_write_status(dev, 0);
		pthread_mutex_unlock(&dev->lock);
		for (unsigned i = 0; i < ARRAY_SIZE(fds); i++)
			close(fds[i]);
		for (int a; (a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;)
			close(a);
	}
	test_eventfd_kick(f->stop.fd);
	ck_assert_int_eq(pthread_join(f->loop_thread, NULL), 0);
	/* The loop did serve the device meanwhile (a REQUEST or RST for the guest at least). */
	ck_assert_uint_gt(__atomic_load_n(&f->interrupts[RXQ], __ATOMIC_RELAXED), 0);
	close(lfd);
	teardown(f);
}
END_TEST

static Suite *vsock_suite(void)
{
	Suite *s = suite_create("virtio_vsock");
	TCase *host = tcase_create("host_initiated");
	TCase *guest = tcase_create("guest_initiated");
	TCase *flow = tcase_create("flow");
	TCase *hostile = tcase_create("hostile");
	TCase *limits = tcase_create("limits");
	TCase *threads = tcase_create("threads");

	tcase_add_test(host, host_initiated_happy_path);
	tcase_add_test(host, data_after_connect_line_kept);
	tcase_add_test(host, connect_refused_by_guest);
	tcase_add_test(host, malformed_connect_lines);
	tcase_add_test(host, connect_line_in_pieces);
	tcase_add_test(host, connect_line_eof_before_newline);
	tcase_add_test(host, stalled_handshakes_bounded);
	tcase_add_test(guest, guest_initiated);
	tcase_add_test(flow, credit_limits_host_to_guest);
	tcase_add_test(flow, guest_past_credit_reset);
	tcase_add_test(flow, slow_host_loses_nothing);
	tcase_add_test(flow, host_close_after_data);
	tcase_add_test(flow, guest_shutdown_both);
	tcase_add_test(flow, guest_shutdown_send_half_close);
	tcase_add_test(flow, guest_shutdown_after_pending_data);
	tcase_set_timeout(flow, 30);
	tcase_add_test(flow, tx_batch_limit_resumes);
	tcase_add_test(hostile, stray_resets_bounded);
	tcase_add_test(hostile, hostile_packets_dropped);
	tcase_add_test(hostile, data_before_response_resets);
	tcase_add_test(hostile, looping_tx_chain_needs_reset);
	tcase_add_test(hostile, bad_rx_chain_needs_reset);
	tcase_add_test(limits, connection_limit);
	tcase_add_test(limits, rx_starvation);
	tcase_add_test(limits, driver_reset_closes_streams);
	tcase_add_test(limits, restore_sends_transport_reset);
	tcase_add_test(limits, guest_rst_and_socket_event_in_one_round);
	tcase_set_timeout(limits, 30);
	tcase_add_test(threads, reset_races_loop);
	tcase_set_timeout(threads, 30);
	suite_add_tcase(s, host);
	suite_add_tcase(s, guest);
	suite_add_tcase(s, flow);
	suite_add_tcase(s, hostile);
	suite_add_tcase(s, limits);
	suite_add_tcase(s, threads);
	return s;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	int ret;

	snprintf(suite_dir, sizeof(suite_dir), "/tmp/vsock-test-XXXXXX");
	if (!mkdtemp(suite_dir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	ret = unit_run(vsock_suite());
	/* What failed or crashed tests left behind. */
	nftw(suite_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	return ret;
}
