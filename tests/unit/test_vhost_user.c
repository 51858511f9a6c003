/*
 * The vhost-user front-end and virtio-fs against a fake back-end thread on a socketpair. The
 * fake logs every message it receives (header, payload, fds) and answers like a back-end, or
 * misbehaves on one chosen request: closes the socket, stays silent, answers with the wrong
 * request code, flags or size, or refuses. Guest RAM is memfd-backed (shared) fake memory.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost_user/vhost_user.h"
#include "devices/virtio/fs.h"
#include "tests/support/blk_ring.h"
#include "tests/unit/unit.h"

#define LOG_MAX  64
#define RAM_SIZE (1 * MIB)

/* Features the fake offers: more than the device passes on, and bit 30. */
#define BACKEND_FEATURES                                                                           \
	(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC |                             \
	 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << VHOST_USER_F_PROTOCOL_FEATURES | 1ULL << 24 |        \
	 1ULL << 26 | 1ULL << 0)
#define BACKEND_PROTOCOL (VHOST_USER_PROTOCOL_SUPPORTED | 1ULL << 5 | 1ULL << 15)

enum fault {
	FAULT_NONE,
	FAULT_CLOSE,      /* close the socket instead of answering */
	FAULT_SILENT,     /* read the request, never answer */
	FAULT_WRONG_CODE, /* answer with another request code */
	FAULT_NO_REPLY_FLAG,
	FAULT_BAD_SIZE,
	FAULT_NACK, /* a non-zero REPLY_ACK */
};

struct msg {
	struct vhost_user_header hdr;
	union {
		uint64_t u64;
		struct vhost_user_vring_state state;
		struct vhost_user_vring_addr addr;
		struct vhost_user_memory mem;
		uint8_t raw[512];
	} p;
	int fds[VHOST_USER_MAX_REGIONS];
	unsigned nfds;
};

struct backend {
	int sock;
	pthread_t thread;
	uint64_t features, protocol, queue_num;
	uint32_t fault_on; /* request code, 0 for none */
	enum fault fault;
	pthread_mutex_t lock;
	struct msg log[LOG_MAX];
	unsigned nlog;
};

/* ---- the fake back-end ---- */

static int read_full(int fd, void *buf, size_t len, struct msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_REGIONS)];
		struct cmsghdr align;
	} ctrl;

	while (len) {
		struct iovec iov = {buf, len};
		struct msghdr mh = {.msg_iov = &iov,
		                    .msg_iovlen = 1,
		                    .msg_control = ctrl.buf,
		                    .msg_controllen = sizeof(ctrl.buf)};
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (n <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k && m->nfds < VHOST_USER_MAX_REGIONS; i++)
				memcpy(&m->fds[m->nfds++], CMSG_DATA(c) + i * sizeof(int),
				       sizeof(int));
		}
		buf = (char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_msg(int fd, struct msg *m)
{
	memset(m, 0, sizeof(*m));
	if (read_full(fd, &m->hdr, sizeof(m->hdr), m) < 0 || m->hdr.size > sizeof(m->p))
		return -1;
	return read_full(fd, &m->p, m->hdr.size, m);
}

static void reply(struct backend *b, const struct msg *m, const void *payload, uint32_t size)
{
	struct vhost_user_header h = {m->hdr.request, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
	                              size};
	uint8_t buf[sizeof(h) + 64];

	if (b->fault_on == m->hdr.request && b->fault == FAULT_WRONG_CODE)
		h.request = m->hdr.request == VHOST_USER_GET_FEATURES ? VHOST_USER_GET_QUEUE_NUM
		                                                      : VHOST_USER_GET_FEATURES;
	if (b->fault_on == m->hdr.request && b->fault == FAULT_NO_REPLY_FLAG)
		h.flags = VHOST_USER_VERSION;
	if (b->fault_on == m->hdr.request && b->fault == FAULT_BAD_SIZE)
		h.size = size = 4;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, size);
	ck_assert_int_eq(send(b->sock, buf, sizeof(h) + size, MSG_NOSIGNAL),
	                 (ssize_t)(sizeof(h) + size));
}

/* Answers @m; false when the fake stops (the socket closed on purpose). */
static bool serve(struct backend *b, const struct msg *m)
{
	uint64_t u = 0;
	struct vhost_user_vring_state s = {m->p.state.index, 0};

	if (b->fault_on == m->hdr.request && b->fault == FAULT_CLOSE) {
		close(b->sock);
		return false;
	}
	if (b->fault_on == m->hdr.request && b->fault == FAULT_SILENT)
		return true;
	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		u = b->features;
		break;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		u = b->protocol;
		break;
	case VHOST_USER_GET_QUEUE_NUM:
		u = b->queue_num;
		break;
	case VHOST_USER_GET_VRING_BASE:
		reply(b, m, &s, sizeof(s));
		return true;
	default:
		if (!(m->hdr.flags & VHOST_USER_FLAG_NEED_REPLY))
			return true;
		u = b->fault_on == m->hdr.request && b->fault == FAULT_NACK;
	}
	reply(b, m, &u, sizeof(u));
	return true;
}

static void *backend_main(void *opaque)
{
	struct backend *b = opaque;
	struct msg m;

	while (read_msg(b->sock, &m) == 0) {
		pthread_mutex_lock(&b->lock);
		if (b->nlog < LOG_MAX)
			b->log[b->nlog++] = m;
		pthread_mutex_unlock(&b->lock);
		if (!serve(b, &m))
			return NULL;
	}
	close(b->sock);
	return NULL;
}

/* Sets the fake up without starting it; returns the front-end's end of the socketpair. */
static int backend_open(struct backend *b, uint64_t features, uint32_t fault_on, enum fault f)
{
	int sv[2];

	memset(b, 0, sizeof(*b));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	b->sock = sv[1];
	b->features = features;
	b->protocol = BACKEND_PROTOCOL;
	b->queue_num = 2;
	b->fault_on = fault_on;
	b->fault = f;
	pthread_mutex_init(&b->lock, NULL);
	return sv[0];
}

static void backend_run(struct backend *b)
{
	ck_assert_int_eq(pthread_create(&b->thread, NULL, backend_main, b), 0);
}

static int backend_start(struct backend *b, uint64_t features, uint32_t fault_on, enum fault f)
{
	int sock = backend_open(b, features, fault_on, f);

	backend_run(b);
	return sock;
}

/* Waits for the fake to see the end of the connection; closes the fds it received. */
static void backend_join(struct backend *b)
{
	pthread_join(b->thread, NULL);
	for (unsigned i = 0; i < b->nlog; i++)
		for (unsigned k = 0; k < b->log[i].nfds; k++)
			close(b->log[i].fds[k]);
	pthread_mutex_destroy(&b->lock);
}

static unsigned log_count(struct backend *b)
{
	unsigned n;

	pthread_mutex_lock(&b->lock);
	n = b->nlog;
	pthread_mutex_unlock(&b->lock);
	return n;
}

/* The @nth logged message of request @req for vring @index (-1: any), or NULL. */
static const struct msg *find(struct backend *b, uint32_t req, int index)
{
	const struct msg *found = NULL;

	pthread_mutex_lock(&b->lock);
	for (unsigned i = 0; i < b->nlog && !found; i++) {
		const struct msg *m = &b->log[i];
		unsigned vring =
		        req == VHOST_USER_SET_VRING_KICK || req == VHOST_USER_SET_VRING_CALL
		                ? (unsigned)(m->p.u64 & 0xff)
		                : m->p.state.index;

		if (m->hdr.request == req && (index < 0 || vring == (unsigned)index))
			found = m;
	}
	pthread_mutex_unlock(&b->lock);
	ck_assert_msg(found, "no %s for vring %d", vhost_user_request_name(req), index);
	return found;
}

static void expect_sequence(struct backend *b, unsigned from, const uint32_t *reqs, unsigned n)
{
	ck_assert_uint_ge(log_count(b), from + n);
	for (unsigned i = 0; i < n; i++)
		ck_assert_msg(b->log[from + i].hdr.request == reqs[i],
		              "message %u: %s, expected %s", from + i,
		              vhost_user_request_name(b->log[from + i].hdr.request),
		              vhost_user_request_name(reqs[i]));
}

/* ---- the device side ---- */

struct fixture {
	struct guest_memory mem;
	struct event_loop loop;
	struct backend be;
	struct virtio_fs fs;
	struct test_ring rings[VIRTIO_FS_NUM_QUEUES];
	unsigned interrupts[VIRTIO_FS_NUM_QUEUES], config_interrupts;
	char err[256];
};

static void count_interrupt(void *opaque, int q)
{
	struct fixture *f = opaque;

	if (q < 0)
		f->config_interrupts++;
	else
		f->interrupts[q]++;
}

static struct fixture *fixture_new(bool shared)
{
	struct fixture *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	f->mem.shared = shared;
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, RAM_SIZE), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	return f;
}

/* A virtio-fs device connected to a fake back-end; asserts that init succeeds. */
static struct fixture *setup(uint64_t features, uint32_t fault_on, enum fault fault)
{
	struct fixture *f = fixture_new(true);
	int sock = backend_start(&f->be, features, fault_on, fault);
	int r = virtio_fs_init(&f->fs, "myfs", sock, &f->mem, &f->loop, f->err, sizeof(f->err));

	ck_assert_msg(r == 0, "init: %d %s", r, f->err);
	f->fs.vdev.transport = (struct virtio_transport){count_interrupt, f};
	return f;
}

static void teardown(struct fixture *f)
{
	virtio_fs_destroy(&f->fs);
	backend_join(&f->be);
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	free(f);
}

/* The driver's side of 3.1.1 up to DRIVER_OK with both rings set up; returns the status. */
static uint8_t driver_up(struct fixture *f)
{
	struct virtio_dev *dev = &f->fs.vdev;
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	pthread_mutex_lock(&dev->lock);
	virtio_write_status(dev, st);
	virtio_write_driver_features(dev, 0, (uint32_t)dev->device_features);
	virtio_write_driver_features(dev, 1, (uint32_t)(dev->device_features >> 32));
	st |= VIRTIO_STATUS_FEATURES_OK;
	virtio_write_status(dev, st);
	test_ring_init(&f->rings[0], &f->mem, 0x10000, 0x40000, 64, &dev->queues[0]);
	test_ring_init(&f->rings[1], &f->mem, 0x80000, 0x40000, 128, &dev->queues[1]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	st = dev->status;
	pthread_mutex_unlock(&dev->lock);
	return st;
}

static void driver_reset(struct fixture *f)
{
	pthread_mutex_lock(&f->fs.vdev.lock);
	virtio_write_status(&f->fs.vdev, 0);
	pthread_mutex_unlock(&f->fs.vdev.lock);
}

/* One turn of the event loop, as event_loop_run does it. */
static int loop_once(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event ev[8];
	int n = epoll_wait(loop->epoll_fd, ev, 8, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct event_source *src = ev[i].data.ptr;

		src->handler(src->opaque, ev[i].events);
	}
	return n;
}

static const uint32_t init_sequence[] = {
        VHOST_USER_GET_FEATURES, VHOST_USER_GET_PROTOCOL_FEATURES, VHOST_USER_SET_PROTOCOL_FEATURES,
        VHOST_USER_SET_OWNER,    VHOST_USER_GET_QUEUE_NUM,
};

START_TEST(init_negotiates)
{
	struct fixture *f = setup(BACKEND_FEATURES, 0, FAULT_NONE);
	struct virtio_fs_config cfg;

	expect_sequence(&f->be, 0, init_sequence, ARRAY_SIZE(init_sequence));
	ck_assert_uint_eq(log_count(&f->be), ARRAY_SIZE(init_sequence));
	for (unsigned i = 0; i < ARRAY_SIZE(init_sequence); i++) {
		const struct msg *m = &f->be.log[i];
		bool has_reply = m->hdr.request == VHOST_USER_GET_FEATURES ||
		                 m->hdr.request == VHOST_USER_GET_PROTOCOL_FEATURES ||
		                 m->hdr.request == VHOST_USER_GET_QUEUE_NUM;
		bool acked = !has_reply && m->hdr.request != VHOST_USER_SET_PROTOCOL_FEATURES;

		ck_assert_uint_eq(m->hdr.flags, VHOST_USER_VERSION | (acked ? 0x8 : 0));
		ck_assert_uint_eq(m->hdr.size,
		                  has_reply || m->hdr.request == VHOST_USER_SET_OWNER ? 0 : 8);
	}
	/* Only what we implement, of what was offered. */
	ck_assert_uint_eq(f->be.log[2].p.u64, VHOST_USER_PROTOCOL_SUPPORTED);
	ck_assert_uint_eq(f->fs.vdev.device_features, 1ULL << VIRTIO_F_VERSION_1 |
	                                                      1ULL << VIRTIO_F_INDIRECT_DESC |
	                                                      1ULL << VIRTIO_F_EVENT_IDX);
	ck_assert_uint_eq(f->fs.vdev.ops->device_id, VIRTIO_ID_FS);
	ck_assert_uint_eq(f->fs.vdev.ops->num_queues, 2);
	ck_assert_uint_eq(f->fs.vdev.config_size, 40);
	virtio_read_config(&f->fs.vdev, 0, &cfg, sizeof(cfg));
	ck_assert_mem_eq(cfg.tag, "myfs\0\0\0\0", 8);
	ck_assert_uint_eq(le32toh(cfg.num_request_queues), 1);
	teardown(f);
}
END_TEST

static void check_mem_table(struct fixture *f)
{
	const struct msg *m = find(&f->be, VHOST_USER_SET_MEM_TABLE, -1);
	const struct vhost_user_mem_region *r = &m->p.mem.regions[0];
	uint8_t *map, *host = f->mem.regions[0].host;

	ck_assert_uint_eq(m->hdr.size, 8 + 32);
	ck_assert_uint_eq(m->p.mem.nregions, 1);
	ck_assert_uint_eq(m->nfds, 1);
	ck_assert_uint_eq(r->guest_phys_addr, 0);
	ck_assert_uint_eq(r->memory_size, RAM_SIZE);
	ck_assert_uint_eq(r->userspace_addr, (uintptr_t)host);
	ck_assert_uint_eq(r->mmap_offset, f->mem.regions[0].fd_offset);
	/* The fd the back-end got maps the very bytes of guest RAM. */
	map = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->fds[0],
	           (off_t)r->mmap_offset);
	ck_assert_ptr_ne(map, MAP_FAILED);
	memcpy(host + 0xf0000, "from the guest", 14);
	ck_assert_mem_eq(map + 0xf0000, "from the guest", 14);
	memcpy(map + 0xf1000, "from the back-end", 17);
	ck_assert_mem_eq(host + 0xf1000, "from the back-end", 17);
	munmap(map, RAM_SIZE);
}

static void check_queue(struct fixture *f, unsigned q, unsigned size)
{
	const struct virtqueue *vq = &f->fs.vdev.queues[q];
	const struct msg *num = find(&f->be, VHOST_USER_SET_VRING_NUM, (int)q);
	const struct msg *addr = find(&f->be, VHOST_USER_SET_VRING_ADDR, (int)q);
	const struct msg *base = find(&f->be, VHOST_USER_SET_VRING_BASE, (int)q);
	const struct msg *call = find(&f->be, VHOST_USER_SET_VRING_CALL, (int)q);
	const struct msg *kick = find(&f->be, VHOST_USER_SET_VRING_KICK, (int)q);
	const struct msg *en = find(&f->be, VHOST_USER_SET_VRING_ENABLE, (int)q);

	ck_assert_uint_eq(num->p.state.num, size);
	ck_assert_uint_eq(addr->hdr.size, sizeof(struct vhost_user_vring_addr));
	ck_assert_uint_eq(addr->p.addr.desc, (uintptr_t)vq->desc_hva);
	ck_assert_uint_eq(addr->p.addr.avail, (uintptr_t)vq->avail_hva);
	ck_assert_uint_eq(addr->p.addr.used, (uintptr_t)vq->used_hva);
	ck_assert_ptr_eq(vq->desc_hva, gpa_to_hva(&f->mem, f->rings[q].desc, 16));
	ck_assert_uint_eq(addr->p.addr.flags, 0);
	ck_assert_uint_eq(base->p.state.num, 0);
	ck_assert_uint_eq(call->p.u64, q);
	ck_assert_uint_eq(call->nfds, 1);
	ck_assert_uint_eq(kick->p.u64, q);
	ck_assert_uint_eq(kick->nfds, 1);
	ck_assert_uint_eq(en->p.state.num, 1);
}

START_TEST(activate_hands_over_rings)
{
	struct fixture *f = setup(BACKEND_FEATURES, 0, FAULT_NONE);
	unsigned start = ARRAY_SIZE(init_sequence);
	static const uint32_t seq[] = {
	        VHOST_USER_SET_FEATURES,   VHOST_USER_SET_MEM_TABLE,    VHOST_USER_SET_VRING_NUM,
	        VHOST_USER_SET_VRING_ADDR, VHOST_USER_SET_VRING_BASE,   VHOST_USER_SET_VRING_CALL,
	        VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_ENABLE, VHOST_USER_SET_VRING_NUM,
	        VHOST_USER_SET_VRING_ADDR, VHOST_USER_SET_VRING_BASE,   VHOST_USER_SET_VRING_CALL,
	        VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_ENABLE,
	};

	ck_assert_uint_eq(driver_up(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	expect_sequence(&f->be, start, seq, ARRAY_SIZE(seq));
	ck_assert_uint_eq(log_count(&f->be), start + ARRAY_SIZE(seq));
	for (unsigned i = start; i < start + ARRAY_SIZE(seq); i++)
		ck_assert_uint_eq(f->be.log[i].hdr.flags, VHOST_USER_VERSION | 0x8);
	/* The driver's features plus the protocol-features bit. */
	ck_assert_uint_eq(f->be.log[start].p.u64,
	                  f->fs.vdev.driver_features | 1ULL << VHOST_USER_F_PROTOCOL_FEATURES);
	check_mem_table(f);
	check_queue(f, 0, 64);
	check_queue(f, 1, 128);
	teardown(f);
}
END_TEST

START_TEST(kick_reaches_backend)
{
	struct fixture *f = setup(BACKEND_FEATURES, 0, FAULT_NONE);
	uint64_t v = 0;
	int fd;

	driver_up(f);
	fd = find(&f->be, VHOST_USER_SET_VRING_KICK, 1)->fds[0];
	ck_assert_int_eq(read(fd, &v, sizeof(v)), -1); /* nothing yet (non-blocking eventfd) */
	f->fs.vdev.ops->queue_notify(&f->fs.vdev, 1);
	f->fs.vdev.ops->queue_notify(&f->fs.vdev, 7); /* out of range: ignored */
	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
	ck_assert_uint_eq(v, 1);
	teardown(f);
}
END_TEST

START_TEST(call_interrupts_guest)
{
	struct fixture *f = setup(BACKEND_FEATURES, 0, FAULT_NONE);
	uint64_t one = 1;
	int fd;

	driver_up(f);
	fd = find(&f->be, VHOST_USER_SET_VRING_CALL, 1)->fds[0];
	ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
	ck_assert_int_eq(loop_once(&f->loop, 1000), 1);
	ck_assert_uint_eq(f->interrupts[1], 1);
	ck_assert_uint_eq(f->interrupts[0], 0);
	ck_assert_uint_eq(f->fs.vdev.isr & VIRTIO_ISR_QUEUE, VIRTIO_ISR_QUEUE);
	ck_assert_int_eq(loop_once(&f->loop, 0), 0); /* the eventfd was drained */
	teardown(f);
}
END_TEST

START_TEST(reset_stops_rings)
{
	struct fixture *f = setup(BACKEND_FEATURES, 0, FAULT_NONE);
	unsigned before;

	driver_up(f);
	before = log_count(&f->be);
	driver_reset(f);
	ck_assert_uint_eq(log_count(&f->be), before + 2);
	ck_assert_uint_eq(f->be.log[before].hdr.request, VHOST_USER_GET_VRING_BASE);
	ck_assert_uint_eq(f->be.log[before].p.state.index, 0);
	ck_assert_uint_eq(f->be.log[before + 1].hdr.request, VHOST_USER_GET_VRING_BASE);
	ck_assert_uint_eq(f->be.log[before + 1].p.state.index, 1);
	ck_assert_uint_eq(f->be.log[before + 1].hdr.flags, VHOST_USER_VERSION);
	driver_reset(f); /* nothing started: nothing sent */
	ck_assert_uint_eq(log_count(&f->be), before + 2);
	/* The device comes up again on the same connection. */
	ck_assert_uint_eq(driver_up(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	ck_assert_uint_gt(log_count(&f->be), before + 2);
	teardown(f);
}
END_TEST

/* Without protocol features: no REPLY_ACK, rings start enabled, no SET_VRING_ENABLE. */
START_TEST(backend_without_protocol_features)
{
	struct fixture *f =
	        setup(BACKEND_FEATURES & ~(1ULL << VHOST_USER_F_PROTOCOL_FEATURES), 0, FAULT_NONE);

	ck_assert_uint_eq(driver_up(f) & VIRTIO_STATUS_NEEDS_RESET, 0);
	virtio_fs_destroy(&f->fs); /* nothing is acked: the fake has it all once it sees EOF */
	backend_join(&f->be);
	ck_assert_uint_eq(f->be.nlog, 2 + 2 + 2 * 5);
	ck_assert_uint_eq(f->be.log[0].hdr.request, VHOST_USER_GET_FEATURES);
	ck_assert_uint_eq(f->be.log[1].hdr.request, VHOST_USER_SET_OWNER);
	ck_assert_uint_eq(f->be.log[2].hdr.request, VHOST_USER_SET_FEATURES);
	ck_assert_uint_eq(f->be.log[2].p.u64, f->fs.vdev.driver_features);
	for (unsigned i = 0; i < f->be.nlog; i++) {
		ck_assert_uint_eq(f->be.log[i].hdr.flags, VHOST_USER_VERSION);
		ck_assert_uint_ne(f->be.log[i].hdr.request, VHOST_USER_SET_VRING_ENABLE);
	}
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	free(f);
}
END_TEST

/* Runs virtio_fs_init against a fake that misbehaves on @req; returns its result. */
static int init_with_fault(struct fixture *f, uint64_t features, uint32_t req, enum fault fault)
{
	int sock = backend_start(&f->be, features, req, fault);

	return virtio_fs_init(&f->fs, "myfs", sock, &f->mem, &f->loop, f->err, sizeof(f->err));
}

static void teardown_failed(struct fixture *f)
{
	virtio_fs_destroy(&f->fs); /* safe after a failed init */
	teardown(f);
}

START_TEST(backend_closes_during_init)
{
	struct fixture *f = fixture_new(true);

	ck_assert_int_eq(
	        init_with_fault(f, BACKEND_FEATURES, VHOST_USER_GET_PROTOCOL_FEATURES, FAULT_CLOSE),
	        -EIO);
	ck_assert_ptr_nonnull(strstr(f->err, "GET_PROTOCOL_FEATURES"));
	ck_assert_ptr_nonnull(strstr(f->err, "closed the connection"));
	teardown_failed(f);
}
END_TEST

START_TEST(backend_closes_during_activate)
{
	struct fixture *f = setup(BACKEND_FEATURES, VHOST_USER_SET_VRING_ADDR, FAULT_CLOSE);

	ck_assert_uint_eq(driver_up(f) & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(f->config_interrupts, 1);
	ck_assert_ptr_nonnull(strstr(vhost_user_error(&f->fs.vu), "closed the connection"));
	/* The hang-up is noticed on the loop: unwatched, not reported forever. */
	ck_assert_int_eq(loop_once(&f->loop, 1000), 1);
	ck_assert_int_eq(loop_once(&f->loop, 0), 0);
	driver_reset(f); /* nothing was started; no crash */
	ck_assert_uint_eq(driver_up(f) & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
	teardown(f);
}
END_TEST

START_TEST(backend_closes_during_reset)
{
	struct fixture *f = setup(BACKEND_FEATURES, VHOST_USER_GET_VRING_BASE, FAULT_CLOSE);

	driver_up(f);
	driver_reset(f); /* both rings fail to stop cleanly: logged, state forgotten */
	ck_assert_uint_eq(f->fs.vdev.status, 0);
	ck_assert(!f->fs.queues[0].started && !f->fs.queues[1].started);
	teardown(f);
}
END_TEST

START_TEST(wrong_reply_code)
{
	struct fixture *f = fixture_new(true);

	ck_assert_int_eq(
	        init_with_fault(f, BACKEND_FEATURES, VHOST_USER_GET_FEATURES, FAULT_WRONG_CODE),
	        -EPROTO);
	ck_assert_ptr_nonnull(strstr(f->err, "reply is for request 17"));
	teardown_failed(f);
}
END_TEST

START_TEST(reply_without_reply_flag)
{
	struct fixture *f = fixture_new(true);

	ck_assert_int_eq(
	        init_with_fault(f, BACKEND_FEATURES, VHOST_USER_GET_QUEUE_NUM, FAULT_NO_REPLY_FLAG),
	        -EPROTO);
	ck_assert_ptr_nonnull(strstr(f->err, "flags"));
	teardown_failed(f);
}
END_TEST

START_TEST(reply_of_wrong_size)
{
	struct fixture *f = fixture_new(true);

	ck_assert_int_eq(
	        init_with_fault(f, BACKEND_FEATURES, VHOST_USER_GET_FEATURES, FAULT_BAD_SIZE),
	        -EPROTO);
	ck_assert_ptr_nonnull(strstr(f->err, "4 bytes, expected 8"));
	teardown_failed(f);
}
END_TEST

START_TEST(refused_request)
{
	struct fixture *f = fixture_new(true);

	ck_assert_int_eq(init_with_fault(f, BACKEND_FEATURES, VHOST_USER_SET_OWNER, FAULT_NACK),
	                 -EIO);
	ck_assert_ptr_nonnull(strstr(f->err, "SET_OWNER: the back-end refused it"));
	teardown_failed(f);
}
END_TEST

START_TEST(backend_lacks_version_1)
{
	struct fixture *f = fixture_new(true);

	ck_assert_int_eq(
	        init_with_fault(f, BACKEND_FEATURES & ~(1ULL << VIRTIO_F_VERSION_1), 0, FAULT_NONE),
	        -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(f->err, "VERSION_1"));
	teardown_failed(f);
}
END_TEST

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(no_reply_times_out)
{
	struct backend be;
	struct vhost_user vu;
	int sock = backend_start(&be, BACKEND_FEATURES, VHOST_USER_GET_FEATURES, FAULT_SILENT);
	double t0;

	ck_assert_int_eq(vhost_user_init(&vu, sock, 100), 0);
	t0 = now();
	ck_assert_int_eq(vhost_user_negotiate(&vu, VHOST_USER_PROTOCOL_SUPPORTED), -ETIMEDOUT);
	ck_assert_double_ge(now() - t0, 0.09);
	ck_assert_double_lt(now() - t0, 0.9);
	ck_assert_ptr_nonnull(
	        strstr(vhost_user_error(&vu), "GET_FEATURES: no progress within 100"));
	/* The stream is out of step now: later requests fail at once, the first error stays. */
	ck_assert_int_eq(vhost_user_set_features(&vu, 1), -ENOTCONN);
	ck_assert_ptr_nonnull(strstr(vhost_user_error(&vu), "GET_FEATURES"));
	vhost_user_close(&vu);
	backend_join(&be);
}
END_TEST

START_TEST(activate_times_out)
{
	struct fixture *f = setup(BACKEND_FEATURES, VHOST_USER_SET_MEM_TABLE, FAULT_SILENT);
	double t0 = now();

	ck_assert_int_eq(vhost_user_set_timeout(&f->fs.vu, 100), 0);
	ck_assert_uint_eq(driver_up(f) & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_double_lt(now() - t0, 0.9);
	ck_assert_ptr_nonnull(strstr(vhost_user_error(&f->fs.vu), "SET_MEM_TABLE"));
	teardown(f);
}
END_TEST

/* A dead back-end on a send: an error, not SIGPIPE (which would kill this test). */
START_TEST(send_to_dead_backend)
{
	struct vhost_user vu;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(vhost_user_init(&vu, sv[0], 100), 0);
	close(sv[1]);
	ck_assert_int_eq(vhost_user_set_features(&vu, 1), -EIO);
	ck_assert_ptr_nonnull(strstr(vhost_user_error(&vu), "closed the connection"));
	vhost_user_close(&vu);
	vhost_user_close(&vu); /* twice is fine */
}
END_TEST

START_TEST(bad_tag)
{
	struct fixture *f = fixture_new(true);
	char tag[VIRTIO_FS_TAG_MAX + 2];
	int sv[2];
	char c;

	memset(tag, 'a', sizeof(tag));
	tag[VIRTIO_FS_TAG_MAX + 1] = '\0';
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(
	        virtio_fs_init(&f->fs, tag, sv[0], &f->mem, &f->loop, f->err, sizeof(f->err)),
	        -EINVAL);
	ck_assert_ptr_nonnull(strstr(f->err, "1 to 36 bytes"));
	ck_assert_int_eq(read(sv[1], &c, 1), 0); /* the socket was taken and closed */
	close(sv[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(
	        virtio_fs_init(&f->fs, "", sv[0], &f->mem, &f->loop, f->err, sizeof(f->err)),
	        -EINVAL);
	close(sv[1]);
	virtio_fs_destroy(&f->fs);
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	free(f);
}
END_TEST

START_TEST(longest_tag)
{
	struct fixture *f = fixture_new(true);
	char tag[VIRTIO_FS_TAG_MAX + 1];
	uint8_t cfg[40];
	int sock = backend_start(&f->be, BACKEND_FEATURES, 0, FAULT_NONE);

	memset(tag, 't', VIRTIO_FS_TAG_MAX);
	tag[VIRTIO_FS_TAG_MAX] = '\0';
	ck_assert_int_eq(
	        virtio_fs_init(&f->fs, tag, sock, &f->mem, &f->loop, f->err, sizeof(f->err)), 0);
	virtio_read_config(&f->fs.vdev, 0, cfg, sizeof(cfg));
	ck_assert_mem_eq(cfg, tag, VIRTIO_FS_TAG_MAX); /* no terminator */
	ck_assert_uint_eq(cfg[36], 1);
	teardown(f);
}
END_TEST

START_TEST(ram_not_shareable)
{
	struct fixture *f = fixture_new(false);
	struct vhost_user vu;
	int sv[2];

	ck_assert_int_eq(init_with_fault(f, BACKEND_FEATURES, 0, FAULT_NONE), -EINVAL);
	ck_assert_ptr_nonnull(strstr(f->err, "guest RAM is not shareable"));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(vhost_user_init(&vu, sv[0], 100), 0);
	ck_assert_int_eq(vhost_user_set_mem_table(&vu, &f->mem), -EINVAL);
	ck_assert_ptr_nonnull(strstr(vhost_user_error(&vu), "guest RAM is not shareable"));
	vhost_user_close(&vu);
	close(sv[1]);
	teardown_failed(f);
}
END_TEST

START_TEST(too_few_backend_queues)
{
	struct fixture *f = fixture_new(true);
	int sock = backend_open(&f->be, BACKEND_FEATURES, 0, FAULT_NONE);

	f->be.queue_num = 1;
	backend_run(&f->be);
	ck_assert_int_eq(
	        virtio_fs_init(&f->fs, "q", sock, &f->mem, &f->loop, f->err, sizeof(f->err)),
	        -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(f->err, "serves 1 queues"));
	teardown_failed(f);
}
END_TEST

START_TEST(vring_index_checked)
{
	struct vhost_user vu;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(vhost_user_init(&vu, sv[0], 100), 0);
	ck_assert_int_eq(vhost_user_set_vring_kick(&vu, VHOST_USER_MAX_VRINGS, -1), -EINVAL);
	ck_assert_int_eq(vhost_user_set_vring_enable(&vu, 0, true), -ENOTSUP);
	ck_assert_int_eq(vhost_user_get_queue_num(&vu, &(uint64_t){0}), -ENOTSUP);
	vhost_user_close(&vu);
	close(sv[1]);
}
END_TEST

static Suite *vhost_user_suite(void)
{
	Suite *s = suite_create("vhost_user");
	TCase *ok = tcase_create("protocol");
	TCase *bad = tcase_create("errors");

	tcase_add_test(ok, init_negotiates);
	tcase_add_test(ok, activate_hands_over_rings);
	tcase_add_test(ok, kick_reaches_backend);
	tcase_add_test(ok, call_interrupts_guest);
	tcase_add_test(ok, reset_stops_rings);
	tcase_add_test(ok, backend_without_protocol_features);
	tcase_add_test(ok, longest_tag);
	tcase_add_test(bad, backend_closes_during_init);
	tcase_add_test(bad, backend_closes_during_activate);
	tcase_add_test(bad, backend_closes_during_reset);
	tcase_add_test(bad, wrong_reply_code);
	tcase_add_test(bad, reply_without_reply_flag);
	tcase_add_test(bad, reply_of_wrong_size);
	tcase_add_test(bad, refused_request);
	tcase_add_test(bad, backend_lacks_version_1);
	tcase_add_test(bad, no_reply_times_out);
	tcase_add_test(bad, activate_times_out);
	tcase_add_test(bad, send_to_dead_backend);
	tcase_add_test(bad, bad_tag);
	tcase_add_test(bad, ram_not_shareable);
	tcase_add_test(bad, too_few_backend_queues);
	tcase_add_test(bad, vring_index_checked);
	suite_add_tcase(s, ok);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	return unit_run(vhost_user_suite());
}
