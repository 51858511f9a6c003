/*
 * libFuzzer target: virtio-vsock (devices/virtio/vsock.c) with both of its ends driven by the
 * input: the guest's driver (packets on the transmit ring, buffers on the receive ring) and the
 * host's programs (real non-blocking Unix sockets on PATH and the PATH_6000, PATH_6001
 * listeners, in a temp dir made once), on 256 KiB of guest RAM and an event loop served only
 * when the input says so (bounded: a busy fd is not a hang here; the unit tests catch those).
 *
 * The input: a byte of driver features (bit 0 INDIRECT_DESC, bit 1 EVENT_IDX; VERSION_1 always),
 * three bytes of queue size (log2, modulo 9) for the receive, transmit and event rings (at
 * 0x1000, 0x4000, 0x7000; data buffers from 0x10000, reused round-robin), then fz_run_bus
 * operations: RAM writes and hooks (a byte, modulo 13):
 *  0 notify a queue (a byte) as its ioeventfd's handler would;
 *  1 kick a queue's eventfd (a byte), served with the loop's other fds;
 *  2 a guest packet, its fields in this order: a byte of shape (bit 0 raw src_cid, 1 raw
 *    dst_cid, 2 raw len, 3 raw type, 4 indirect, 5 header split, 6 a writable buffer too, 7 raw
 *    buf_alloc and fwd_cnt); a byte of ports (below 0x80, once there is one: a stream seen so
 *    far; else guest port 1000 + n % 4 to host port 6000, 6001, 6002 or a le32 that follows);
 *    le64 src_cid, le64 dst_cid (bits 0, 1); a byte of op (modulo 9); a byte of flags; le16
 *    type (bit 3); le32 buf_alloc, le32 fwd_cnt (bit 7); le16 payload length (modulo 64 KiB +
 *    64); le32 len (bit 2); the payload (zero-padded); the split's offset (a byte, bit 5);
 *  3 receive buffers: a byte (count modulo 8, plus 1) and a byte of size (modulo 6: 45, 64,
 *    300, 4096, 44, 70000; bit 7 readable);
 *  4 a host connection to PATH;
 *  5 a host socket (a byte) writes "CONNECT <port>\n" (a byte: below 0x80 port 1000 + n % 4,
 *    else a le32);
 *  6 a host socket (a byte) writes raw bytes (a byte of length, then them);
 *  7 a host socket (a byte) writes le16 zero bytes;
 *  8 a host socket (a byte) closes, or shuts down writing or reading (a byte, modulo 3);
 *  9 a host socket (a byte) reads all it can;
 *  10 a PATH_<port> listener (a byte) accepts;
 *  11 serve the loop (a byte: rounds modulo 16, plus 1);
 *  12 reset the device and bring the driver up again.
 * After every hook the guest reads back its receive ring (REQUESTs and RESPONSEs become streams
 * the packets can name, RW bytes its fwd_cnt). ASan checks every buffer the device touches.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define RAM         (256 * KIB)
#define RING_BASE   0x1000
#define RING_STRIDE 0x3000
#define DATA_BASE   0x10000
#define HDR         ((uint32_t)sizeof(struct virtio_vsock_hdr))
#define CID         3
#define MAX_HOST    8  /* host sockets at once */
#define MAX_STREAMS 16 /* streams the guest remembers */
#define BIG_WRITE   (64 * KIB)

#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define DESC_F_INDIRECT 4

static struct guest_memory mem;
static struct event_loop loop;
static struct virtio_vsock vs;
static char dir[32], path[64], listen_path[2][80];
static int listeners[2];
static struct event_source kicks[3]; /* the queues' "ioeventfds" */
static uint8_t zeros[BIG_WRITE];
static uint8_t scratch[VSOCK_MAX_PAYLOAD + 64];

/* The driver's side of a ring, placed where fz_virtio_driver_up put it. */
struct dring {
	uint64_t desc, avail, used;
	uint16_t size, next_desc, avail_idx, used_seen;
	uint64_t gpa[256]; /* receive ring: each posted buffer by its head */
};

static struct dring rings[3];
static uint16_t qsize[3];
static uint64_t features, data_next;
static int host[MAX_HOST];
static struct {
	uint32_t gport, hport, fwd;
} streams[MAX_STREAMS];
static unsigned nr_streams;

static void no_interrupt(void *opaque, int q)
{
	(void)opaque;
	(void)q;
}

static void on_kick(void *opaque, uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(kicks[(uintptr_t)opaque].fd, &v, sizeof(v)) < 0)
		return;
	virtio_notify_queue(&vs.vdev, (uintptr_t)opaque);
}

/* The temp dir goes when the fuzzer exits. */
static void remove_dir(void)
{
	unlink(path);
	for (unsigned i = 0; i < 2; i++)
		unlink(listen_path[i]);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_virtio_setup(&mem, RAM, &loop);
	snprintf(dir, sizeof(dir), "/tmp/fuzz-vsock-XXXXXX");
	fz_must(!mkdtemp(dir), "mkdtemp");
	atexit(remove_dir);
	snprintf(path, sizeof(path), "%s/v.sock", dir);
	for (unsigned i = 0; i < 2; i++) {
		struct sockaddr_un a = {.sun_family = AF_UNIX};

		snprintf(listen_path[i], sizeof(listen_path[i]), "%s_%u", path, 6000 + i);
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", listen_path[i]);
		listeners[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		fz_must(listeners[i] < 0, "socket");
		fz_must(bind(listeners[i], (struct sockaddr *)&a, sizeof(a)), "bind");
		fz_must(listen(listeners[i], 16), "listen");
	}
	for (uintptr_t q = 0; q < 3; q++) {
		kicks[q] = (struct event_source){.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
		                                 .handler = on_kick,
		                                 .opaque = (void *)q};
		fz_must(kicks[q].fd < 0, "eventfd");
		fz_must(event_loop_add(&loop, &kicks[q], EPOLLIN), "event_loop_add");
	}
	for (unsigned i = 0; i < MAX_HOST; i++)
		host[i] = -1;
	return 0;
}

static void *at(uint64_t gpa, uint64_t len)
{
	return gpa_to_hva(&mem, gpa, len);
}

static void put16(uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(at(gpa, 2), &v, 2);
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, at(gpa, 2), 2);
	return le16toh(v);
}

/* What a driver does: negotiate, place the three rings, DRIVER_OK (which may be refused). */
static void driver_up(void)
{
	fz_virtio_driver_up(&vs.vdev, features, qsize, 3, RING_BASE, RING_STRIDE);
	for (unsigned q = 0; q < 3; q++) {
		struct dring *r = &rings[q];

		*r = (struct dring){.size = qsize[q]};
		r->desc = RING_BASE + q * RING_STRIDE;
		r->avail = r->desc + 16ULL * qsize[q];
		r->used = ALIGN_UP(r->avail + 6 + 2ULL * qsize[q], 4);
	}
	nr_streams = 0;
}

/* @len bytes of the data area, reused round-robin. */
static uint64_t data_alloc(uint32_t len)
{
	uint64_t gpa;

	len = ALIGN_UP(len ? len : 1, 16);
	if (data_next + len > RAM)
		data_next = DATA_BASE;
	gpa = data_next;
	data_next += len;
	return gpa;
}

struct dbuf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static void write_desc(uint64_t table, uint16_t i, const struct dbuf *b, uint16_t flags,
                       uint16_t next)
{
	uint8_t d[16];
	uint64_t a = htole64(b->gpa);
	uint32_t l = htole32(b->len);

	flags = htole16(flags | (b->writable ? DESC_F_WRITE : 0));
	next = htole16(next);
	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
	memcpy(at(table + 16ULL * i, 16), d, 16);
}

/* Publishes @n buffers as one chain (direct, or through an indirect table); returns the head. */
static uint16_t ring_add(struct dring *r, const struct dbuf *bufs, unsigned n, bool indirect)
{
	uint16_t head = r->next_desc;

	if (indirect) {
		uint64_t table = data_alloc(16 * n);
		struct dbuf t = {table, 16 * n, false};

		for (unsigned k = 0; k < n; k++)
			write_desc(table, (uint16_t)k, &bufs[k], k + 1 < n ? DESC_F_NEXT : 0,
			           (uint16_t)(k + 1 < n ? k + 1 : 0));
		write_desc(r->desc, head, &t, DESC_F_INDIRECT, 0);
		r->next_desc = (uint16_t)((head + 1) % r->size);
	} else {
		for (unsigned k = 0; k < n; k++) {
			uint16_t i = (uint16_t)((head + k) % r->size);

			write_desc(r->desc, i, &bufs[k], k + 1 < n ? DESC_F_NEXT : 0,
			           (uint16_t)((i + 1) % r->size));
		}
		r->next_desc = (uint16_t)((head + n) % r->size);
	}
	put16(r->avail + 4 + 2ULL * (r->avail_idx % r->size), head);
	r->avail_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	put16(r->avail + 2, r->avail_idx);
	return head;
}

static void remember(uint32_t gport, uint32_t hport)
{
	streams[nr_streams % MAX_STREAMS].gport = gport;
	streams[nr_streams % MAX_STREAMS].hport = hport;
	streams[nr_streams % MAX_STREAMS].fwd = 0;
	nr_streams++;
}

/* The guest reads its receive ring: streams from REQUESTs and RESPONSEs, fwd_cnt from RW. */
static void rx_scan(void)
{
	struct dring *r = &rings[VSOCK_RX_QUEUE];
	uint16_t idx = get16(r->used + 2);

	for (unsigned n = 0; r->used_seen != idx && n < r->size; n++, r->used_seen++) {
		uint64_t e = r->used + 4 + 8ULL * (r->used_seen % r->size);
		uint32_t id, len;
		struct virtio_vsock_hdr h;

		memcpy(&id, at(e, 4), 4);
		memcpy(&len, at(e + 4, 4), 4);
		id = le32toh(id);
		if (id >= r->size || !r->gpa[id] || le32toh(len) < HDR)
			continue;
		memcpy(&h, at(r->gpa[id], HDR), HDR);
		r->gpa[id] = 0;
		if (le16toh(h.op) == VSOCK_OP_REQUEST || le16toh(h.op) == VSOCK_OP_RESPONSE)
			remember(le32toh(h.dst_port), le32toh(h.src_port));
		for (unsigned s = 0; le16toh(h.op) == VSOCK_OP_RW && s < MAX_STREAMS; s++) {
			if (streams[s].gport == le32toh(h.dst_port) &&
			    streams[s].hport == le32toh(h.src_port))
				streams[s].fwd += le32toh(h.len);
		}
	}
}

static void guest_packet(struct fz *f)
{
	uint8_t shape = fz_u8(f), ports = fz_u8(f);
	struct virtio_vsock_hdr h = {
	        .src_cid = htole64(CID),
	        .dst_cid = htole64(VSOCK_HOST_CID),
	        .type = htole16(VSOCK_TYPE_STREAM),
	        .buf_alloc = htole32(VSOCK_BUF_ALLOC),
	};
	static const uint32_t hports[] = {6000, 6001, 6002};
	uint32_t len, fwd = 0;
	struct dbuf b[4];
	unsigned n = 0;
	uint64_t gpa;

	if (ports < 0x80 && nr_streams) {
		unsigned s = ports % MIN(nr_streams, MAX_STREAMS);

		h.src_port = htole32(streams[s].gport);
		h.dst_port = htole32(streams[s].hport);
		fwd = streams[s].fwd;
	} else {
		h.src_port = htole32(1000 + ports % 4);
		h.dst_port = htole32((ports >> 2) % 4 < 3 ? hports[(ports >> 2) % 4] : fz_u32(f));
	}
	h.fwd_cnt = htole32(fwd);
	if (shape & 1)
		h.src_cid = htole64(fz_u64(f));
	if (shape & 2)
		h.dst_cid = htole64(fz_u64(f));
	h.op = htole16(fz_u8(f) % 9);
	h.flags = htole32(fz_u8(f));
	if (shape & 8)
		h.type = htole16(fz_u16(f));
	if (shape & 128) {
		h.buf_alloc = htole32(fz_u32(f));
		h.fwd_cnt = htole32(fz_u32(f));
	}
	len = fz_u16(f) % (VSOCK_MAX_PAYLOAD + 64);
	h.len = htole32(shape & 4 ? fz_u32(f) : len);
	if (le16toh(h.op) == VSOCK_OP_REQUEST && !(shape & 0x83))
		remember(le32toh(h.src_port), le32toh(h.dst_port));
	memset(scratch, 0, len);
	fz_bytes(f, scratch, len);
	/* The header, whole or split, then the payload. */
	gpa = data_alloc(HDR + len);
	memcpy(at(gpa, HDR), &h, HDR);
	if (len)
		memcpy(at(gpa + HDR, len), scratch, len);
	if (shape & 32) {
		uint32_t cut = fz_u8(f) % HDR;

		b[n++] = (struct dbuf){gpa, cut, false};
		b[n++] = (struct dbuf){gpa + cut, HDR - cut + len, false};
	} else {
		b[n++] = (struct dbuf){gpa, HDR + len, false};
	}
	if (shape & 64)
		b[n++] = (struct dbuf){data_alloc(64), 64, true};
	ring_add(&rings[VSOCK_TX_QUEUE], b, n, shape & 16);
}

static void rx_buffers(struct fz *f)
{
	static const uint32_t sizes[] = {HDR + 1, 64, 300, 4096, HDR, 70000};
	unsigned count = fz_u8(f) % 8 + 1;
	uint8_t sel = fz_u8(f);
	struct dring *r = &rings[VSOCK_RX_QUEUE];

	for (unsigned i = 0; i < count; i++) {
		struct dbuf b = {0, sizes[(sel & 0x7f) % ARRAY_SIZE(sizes)], !(sel & 0x80)};
		uint16_t head;

		b.gpa = data_alloc(b.len);
		head = ring_add(r, &b, 1, false);
		r->gpa[head] = b.gpa;
	}
}

static int *host_slot(struct fz *f)
{
	return &host[fz_u8(f) % MAX_HOST];
}

static void host_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void host_connect(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int *slot = NULL, fd;

	for (unsigned i = 0; i < MAX_HOST && !slot; i++) {
		if (host[i] < 0)
			slot = &host[i];
	}
	if (!slot)
		return;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return;
	}
	*slot = fd;
}

static void host_send(int fd, const void *buf, size_t len)
{
	if (fd >= 0 && len)
		(void)!send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void host_drain(int fd)
{
	if (fd < 0)
		return;
	for (unsigned i = 0; i < 16; i++) {
		if (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) <= 0)
			break;
	}
}

static void host_accept(struct fz *f)
{
	int lfd = listeners[fz_u8(f) % 2];
	int *slot = NULL, fd;

	for (unsigned i = 0; i < MAX_HOST && !slot; i++) {
		if (host[i] < 0)
			slot = &host[i];
	}
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0 && slot)
		*slot = fd;
	else if (fd >= 0)
		close(fd);
}

/* Serves up to @rounds rounds of what the loop has ready, as its thread would. */
static void serve(unsigned rounds)
{
	struct epoll_event ev[8];

	for (unsigned i = 0; i < rounds; i++) {
		int n = epoll_wait(loop.epoll_fd, ev, ARRAY_SIZE(ev), 0);

		if (n <= 0)
			return;
		for (int k = 0; k < n; k++) {
			struct event_source *src = ev[k].data.ptr;

			src->handler(src->opaque, ev[k].events);
		}
	}
}

static void hook(void *opaque, struct fz *f)
{
	char line[32];
	uint8_t b;
	int *fd;

	(void)opaque;
	switch (fz_u8(f) % 13) {
	case 0:
		virtio_notify_queue(&vs.vdev, fz_u8(f) % 3);
		break;
	case 1:
		(void)!write(kicks[fz_u8(f) % 3].fd, &(uint64_t){1}, sizeof(uint64_t));
		break;
	case 2:
		guest_packet(f);
		break;
	case 3:
		rx_buffers(f);
		break;
	case 4:
		host_connect();
		break;
	case 5:
		fd = host_slot(f);
		b = fz_u8(f);
		snprintf(line, sizeof(line), "CONNECT %u\n", b < 0x80 ? 1000 + b % 4 : fz_u32(f));
		host_send(*fd, line, strlen(line));
		break;
	case 6:
		fd = host_slot(f);
		b = fz_u8(f);
		host_send(*fd, scratch, fz_bytes(f, scratch, b));
		break;
	case 7:
		fd = host_slot(f);
		host_send(*fd, zeros, fz_u16(f) % (BIG_WRITE + 1));
		break;
	case 8:
		fd = host_slot(f);
		b = fz_u8(f) % 3;
		if (b == 0)
			host_close(fd);
		else if (*fd >= 0)
			shutdown(*fd, b == 1 ? SHUT_WR : SHUT_RD);
		break;
	case 9:
		host_drain(*host_slot(f));
		break;
	case 10:
		host_accept(f);
		break;
	case 11:
		serve(fz_u8(f) % 16 + 1);
		break;
	default:
		driver_up();
		break;
	}
	rx_scan();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	const struct fz_bus b = {.mem = &mem, .mem_span = RAM, .hook = hook};
	uint8_t feat;
	char err[256];

	fz_memory_clear(&mem);
	feat = fz_u8(&f);
	features = 1ULL << VIRTIO_F_VERSION_1 | (feat & 1 ? 1ULL << VIRTIO_F_INDIRECT_DESC : 0) |
	           (feat & 2 ? 1ULL << VIRTIO_F_EVENT_IDX : 0);
	for (unsigned q = 0; q < 3; q++)
		qsize[q] = (uint16_t)(1u << fz_u8(&f) % 9);
	data_next = DATA_BASE;
	if (virtio_vsock_init(&vs, path, CID, &mem, &loop, err, sizeof(err))) {
		fprintf(stderr, "fuzz: %s\n", err);
		abort();
	}
	vs.vdev.transport = (struct virtio_transport){no_interrupt, NULL};
	driver_up();
	fz_run_bus(&b, &f);
	/* Between inputs: the host's sockets close, the device goes, the loop's fds are drained. */
	for (unsigned i = 0; i < MAX_HOST; i++)
		host_close(&host[i]);
	for (unsigned i = 0; i < 2; i++) {
		for (int fd; (fd = accept4(listeners[i], NULL, NULL, SOCK_CLOEXEC)) >= 0;)
			close(fd);
	}
	for (unsigned q = 0; q < 3; q++)
		(void)!read(kicks[q].fd, &(uint64_t){0}, sizeof(uint64_t));
	virtio_vsock_destroy(&vs);
	serve(4); /* the loop's own eventfd, if work was posted */
	return 0;
}
