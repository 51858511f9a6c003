/*
 * virtio-blk with vmm's threading (issue 17): a real virtio-pci transport and virtio-blk device
 * on a temporary image with the io_uring backend, the real event loop running on a thread of
 * its own, and a "vCPU" thread that drives the device as a guest would: it initialises it
 * through the BAR, keeps up to BLK_QUEUE_SIZE requests in flight (reads, writes with known data
 * and flushes, each chain through its own indirect table) and rings the doorbell with 1-, 2-
 * and 4-byte BAR writes and through the PCI configuration access window, all of which reach the
 * transport on the vCPU thread (there is no VM, so no ioeventfd). Every request must complete
 * with status OK and the data the model says; a full queue of requests in flight at the end
 * shows no backend op leaked (a leaked op fails a request with EAGAIN); the close after it
 * must not hang. Before the fix the vCPU thread ran the queue itself, racing the loop's
 * completions: requests failed, never completed, or the close hung.
 *
 * With polling (issue 21) the loop thread also looks at the avail ring by itself, notifications
 * off, while the vCPU thread publishes; the driver then rings only when the device asks, as
 * Linux decides (NO_NOTIFY, or avail_event with EVENT_IDX), so a chain lost between the poll's
 * end and notifications coming back on stalls the test.
 *
 * Also run under ThreadSanitizer (build with -Db_sanitize=thread): the driver's ring accesses
 * use atomics where a real driver uses barriers, so a report is the device's.
 *
 * Threads: the test's main thread sets up and tears down; the loop thread runs event_loop_run
 * until the stop eventfd fires; the vCPU thread owns the driver state (struct driver). The INTx
 * hook runs on whichever thread raises the interrupt and only writes an eventfd.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci/pci.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/support/blk_ring.h"
#include "tests/support/pci_layout.h"
#include "tests/unit/unit.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/util.h"

#define RAM             (4 * MIB)
#define INTX_GSI        11
#define CHAINS          BLK_QUEUE_SIZE
#define REGION          16u /* sectors of the disk each chain owns */
#define DISK_BYTES      ((uint64_t)CHAINS * REGION * 512)
#define MAX_LEN         8u /* sectors per request at most */
#define DESC_F_NEXT     1
#define DESC_F_WRITE    2
#define DESC_F_INDIRECT 4
#define STALL_MS        20000 /* no progress for this long: the test fails */

/* PCI configuration access capability fields. */
#define CAP_BAR    4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_DATA   16

/* One chain: a header, up to MAX_LEN sectors of data and a status byte, via an indirect table. */
struct chain {
	uint64_t table, header, data, status; /* guest addresses */
	bool busy;
	uint32_t type, len; /* the request in flight: type, data bytes */
	uint64_t sector;
};

struct driver {
	struct test_ring ring; /* layout and descriptor table; publish and reap are ours */
	struct chain chains[CHAINS];
	uint64_t bar;
	unsigned slot, cfg_cap;
	uint64_t rng;
	unsigned total, issued, done, reads, writes, flushes, in_flight, rings[4];
	bool event_idx;   /* VIRTIO_F_EVENT_IDX negotiated */
	unsigned skipped; /* doorbells not rung: the device said it polls */
	char error[256];  /* the first failure, reported by the main thread */
};

struct fixture {
	char path[64];
	int fd;
	struct guest_memory mem;
	struct bus pio, mmio;
	struct pci_host host;
	struct event_loop loop;
	struct event_source stop;
	struct blk_dev blk;
	struct virtio_pci t;
	int intx_fd;    /* written by the INTx hook on each rising edge */
	uint8_t *model; /* what the disk holds, by the driver's account */
	struct driver drv;
};

/* ---- the loop thread ---- */

static void on_stop(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;
	uint64_t v;

	(void)events;
	if (read(f->stop.fd, &v, sizeof(v)) == sizeof(v))
		event_loop_stop(&f->loop);
}

static void *loop_thread(void *opaque)
{
	struct fixture *f = opaque;

	return (void *)(intptr_t)event_loop_run(&f->loop);
}

/* INTx hook: any thread (the loop's for completions). */
static void on_intx(void *opaque, int level)
{
	struct fixture *f = opaque;
	uint64_t one = 1;

	if (level && write(f->intx_fd, &one, sizeof(one)) != sizeof(one))
		abort();
}

/* ---- the vCPU thread: guest accesses ---- */

static void __attribute__((format(printf, 2, 3)))
driver_fail(struct driver *d, const char *fmt, ...)
{
	va_list ap;

	if (d->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
}

static uint64_t mem_rd(struct fixture *f, uint64_t addr, unsigned size)
{
	uint64_t v = 0;

	if (bus_access(&f->mmio, addr, &v, size, false) < 0)
		driver_fail(&f->drv, "read at %#llx failed", (unsigned long long)addr);
	return le64toh(v);
}

static void mem_wr(struct fixture *f, uint64_t addr, unsigned size, uint64_t v)
{
	v = htole64(v);
	if (bus_access(&f->mmio, addr, &v, size, true) < 0)
		driver_fail(&f->drv, "write at %#llx failed", (unsigned long long)addr);
}

static uint64_t cfg_rd(struct fixture *f, unsigned reg, unsigned size)
{
	return mem_rd(f, test_pci_config_addr(f->drv.slot) + reg, size);
}

static void cfg_wr(struct fixture *f, unsigned reg, unsigned size, uint64_t v)
{
	mem_wr(f, test_pci_config_addr(f->drv.slot) + reg, size, v);
}

static void cm_wr(struct fixture *f, unsigned off, unsigned size, uint64_t v)
{
	mem_wr(f, f->drv.bar + VIRTIO_PCI_COMMON + off, size, v);
}

static uint64_t cm_rd(struct fixture *f, unsigned off, unsigned size)
{
	return mem_rd(f, f->drv.bar + VIRTIO_PCI_COMMON + off, size);
}

/* The driver's side of initialisation, through the BAR: one queue of CHAINS entries. */
static void driver_init(struct fixture *f)
{
	const uint64_t features = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC |
	                          1ULL << VIRTIO_BLK_F_FLUSH |
	                          (uint64_t)f->drv.event_idx << VIRTIO_F_EVENT_IDX;
	const uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
	struct test_ring *r = &f->drv.ring;

	cm_wr(f, VIRTIO_PCI_STATUS, 1, 0);
	cm_wr(f, VIRTIO_PCI_STATUS, 1, st);
	cm_wr(f, VIRTIO_PCI_GFSELECT, 4, 0);
	cm_wr(f, VIRTIO_PCI_GF, 4, (uint32_t)features);
	cm_wr(f, VIRTIO_PCI_GFSELECT, 4, 1);
	cm_wr(f, VIRTIO_PCI_GF, 4, (uint32_t)(features >> 32));
	cm_wr(f, VIRTIO_PCI_STATUS, 1, st | VIRTIO_STATUS_FEATURES_OK);
	if (!(cm_rd(f, VIRTIO_PCI_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK))
		driver_fail(&f->drv, "features refused");
	cm_wr(f, VIRTIO_PCI_Q_SELECT, 2, 0);
	cm_wr(f, VIRTIO_PCI_Q_SIZE, 2, CHAINS);
	cm_wr(f, VIRTIO_PCI_Q_DESC, 8, r->desc);
	cm_wr(f, VIRTIO_PCI_Q_AVAIL, 8, r->avail);
	cm_wr(f, VIRTIO_PCI_Q_USED, 8, r->used);
	cm_wr(f, VIRTIO_PCI_Q_ENABLE, 2, 1);
	cm_wr(f, VIRTIO_PCI_STATUS, 1, st | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	if ((cm_rd(f, VIRTIO_PCI_STATUS, 1) &
	     (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET)) != VIRTIO_STATUS_DRIVER_OK)
		driver_fail(&f->drv, "DRIVER_OK refused");
}

/* Rings queue 0's doorbell, each time another way; none is caught by an ioeventfd here. */
static void ring_doorbell(struct fixture *f)
{
	struct driver *d = &f->drv;
	unsigned how = (d->rings[0] + d->rings[1] + d->rings[2] + d->rings[3]) % 4;

	d->rings[how]++;
	switch (how) {
	case 0: /* 1 byte: a width the 2-byte ioeventfd would not match */
	case 1: /* 2 bytes: the ioeventfd's own width */
	case 2: /* 4 bytes */
		mem_wr(f, d->bar + VIRTIO_PCI_NOTIFY, 1u << how, 0);
		break;
	default: /* through the PCI configuration access window */
		cfg_wr(f, d->cfg_cap + CAP_BAR, 1, VIRTIO_PCI_BAR);
		cfg_wr(f, d->cfg_cap + CAP_OFFSET, 4, VIRTIO_PCI_NOTIFY);
		cfg_wr(f, d->cfg_cap + CAP_LENGTH, 4, 2);
		cfg_wr(f, d->cfg_cap + CAP_DATA, 2, 0);
		break;
	}
}

/* ---- the vCPU thread: requests ---- */

static uint64_t next_random(struct driver *d)
{
	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 7;
	d->rng ^= d->rng << 17;
	return d->rng;
}

/* The bytes request @n writes at disk offset @off: unique per request and position. */
static void pattern(uint8_t *p, uint32_t len, unsigned n, uint64_t off)
{
	for (uint32_t i = 0; i < len; i += 8) {
		uint64_t v = htole64((uint64_t)n << 40 ^ (off + i));

		memcpy(p + i, &v, 8);
	}
}

static void put_desc(struct fixture *f, uint64_t gpa, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
	uint8_t raw[16];
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t fl = htole16(flags), nx = htole16(next);

	memcpy(raw, &a, 8);
	memcpy(raw + 8, &l, 4);
	memcpy(raw + 12, &fl, 2);
	memcpy(raw + 14, &nx, 2);
	memcpy(test_ring_host(&f->drv.ring, gpa, 16), raw, 16);
}

/* Builds the next request on chain @k (its descriptor @k) and puts it in the avail ring. */
static void start_request(struct fixture *f, unsigned k)
{
	struct driver *d = &f->drv;
	struct chain *c = &d->chains[k];
	struct test_ring *r = &d->ring;
	uint64_t rnd = next_random(d);
	uint8_t hdr[16] = {0};
	uint8_t *data = test_ring_host(r, c->data, MAX_LEN * 512);
	unsigned nbufs = 3;

	c->type = rnd % 32 == 0    ? VIRTIO_BLK_T_FLUSH
	          : (rnd >> 8) % 2 ? VIRTIO_BLK_T_OUT
	                           : VIRTIO_BLK_T_IN;
	c->len = (uint32_t)(1 + (rnd >> 16) % MAX_LEN) * 512;
	c->sector = (uint64_t)k * REGION + (rnd >> 24) % (REGION - c->len / 512 + 1);
	hdr[0] = (uint8_t)c->type;
	for (unsigned i = 0; i < 8; i++)
		hdr[8 + i] = (uint8_t)(c->sector >> (8 * i));
	memcpy(test_ring_host(r, c->header, 16), hdr, 16);
	*(uint8_t *)test_ring_host(r, c->status, 1) = 0xff;
	put_desc(f, c->table, c->header, 16, DESC_F_NEXT, 1);
	switch (c->type) {
	case VIRTIO_BLK_T_OUT:
		pattern(data, c->len, d->issued, c->sector * 512);
		/* The chain owns its region: the model can change now. */
		memcpy(f->model + c->sector * 512, data, c->len);
		put_desc(f, c->table + 16, c->data, c->len, DESC_F_NEXT, 2);
		d->writes++;
		break;
	case VIRTIO_BLK_T_IN:
		memset(data, 0xee, c->len);
		put_desc(f, c->table + 16, c->data, c->len, DESC_F_WRITE | DESC_F_NEXT, 2);
		d->reads++;
		break;
	default:
		c->len = 0;
		nbufs = 2;
		d->flushes++;
		break;
	}
	put_desc(f, c->table + 16 * (nbufs - 1), c->status, 1, DESC_F_WRITE, 0);
	test_ring_set_desc(r, (uint16_t)k, c->table, 16 * nbufs, DESC_F_INDIRECT, 0);
	/* The avail entry; the index is published (with release) once per batch. */
	*(uint16_t *)test_ring_host(r, r->avail + 4 + 2ull * (r->avail_idx % CHAINS), 2) =
	        htole16((uint16_t)k);
	r->avail_idx++;
	c->busy = true;
	d->issued++;
	d->in_flight++;
}

static uint16_t ring_load16(struct fixture *f, uint64_t gpa)
{
	return le16toh(__atomic_load_n((uint16_t *)test_ring_host(&f->drv.ring, gpa, 2),
	                               __ATOMIC_RELAXED));
}

/*
 * Publishes the avail entries written since the last call; returns whether the device wants a
 * notification for them, decided as Linux's virtqueue_kick_prepare does: after a full barrier,
 * avail_event with EVENT_IDX, else the used ring's NO_NOTIFY flag (a polling device's).
 */
static bool publish(struct fixture *f, uint16_t old)
{
	struct test_ring *r = &f->drv.ring;
	uint16_t *idx = test_ring_host(r, r->avail + 2, 2), event;

	/* Release: the descriptors, tables, buffers and entries before the index. */
	__atomic_store_n(idx, htole16(r->avail_idx), __ATOMIC_RELEASE);
	/* Full barrier (store-load): the index is visible before the device's request is read. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!f->drv.event_idx)
		return !(ring_load16(f, r->used) & 1);
	event = ring_load16(f, r->used + 4 + 8ull * CHAINS);
	return (uint16_t)(r->avail_idx - event - 1) < (uint16_t)(r->avail_idx - old);
}

/* Checks one completed chain: its used length, status and, for a read, the data. */
static void finish_request(struct fixture *f, uint32_t id, uint32_t len)
{
	struct driver *d = &f->drv;
	struct chain *c;
	uint8_t status;

	if (id >= CHAINS || !d->chains[id].busy) {
		driver_fail(d, "used id %u not in flight", id);
		return;
	}
	c = &d->chains[id];
	status = *(uint8_t *)test_ring_host(&d->ring, c->status, 1);
	if (status != VIRTIO_BLK_S_OK)
		driver_fail(d, "request %u (type %u, sector %llu, %u bytes): status %u", d->done,
		            c->type, (unsigned long long)c->sector, c->len, status);
	else if (len != (c->type == VIRTIO_BLK_T_IN ? c->len + 1 : 1))
		driver_fail(d, "request type %u of %u bytes: used length %u", c->type, c->len, len);
	else if (c->type == VIRTIO_BLK_T_IN && memcmp(test_ring_host(&d->ring, c->data, c->len),
	                                              f->model + c->sector * 512, c->len) != 0)
		driver_fail(d, "read of %u bytes at sector %llu: wrong data", c->len,
		            (unsigned long long)c->sector);
	c->busy = false;
	d->done++;
	d->in_flight--;
}

/* Takes every used entry the device returned; returns how many. */
static unsigned reap(struct fixture *f)
{
	struct test_ring *r = &f->drv.ring;
	uint16_t *idx = test_ring_host(r, r->used + 2, 2);
	unsigned n = 0;

	/* Acquire: the entries, status bytes and data before the index. */
	while (le16toh(__atomic_load_n(idx, __ATOMIC_ACQUIRE)) != r->used_seen) {
		uint64_t elem = r->used + 4 + 8ull * (r->used_seen % CHAINS);
		uint32_t id, len;

		memcpy(&id, test_ring_host(r, elem, 4), 4);
		memcpy(&len, test_ring_host(r, elem + 4, 4), 4);
		finish_request(f, le32toh(id), le32toh(len));
		r->used_seen++;
		n++;
	}
	return n;
}

/* Waits for an interrupt: acknowledges the ISR, looks again, then sleeps on the INTx edge. */
static bool wait_for_interrupt(struct fixture *f)
{
	struct pollfd p = {.fd = f->intx_fd, .events = POLLIN};
	uint64_t v;

	mem_rd(f, f->drv.bar + VIRTIO_PCI_ISR, 1); /* lowers the line */
	if (f->drv.event_idx) {                    /* interrupt me for the next used entry */
		struct test_ring *r = &f->drv.ring;

		__atomic_store_n((uint16_t *)test_ring_host(r, r->avail + 4 + 2ull * CHAINS, 2),
		                 htole16(r->used_seen), __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST); /* before used idx is read again */
	}
	if (reap(f))
		return true;
	if (poll(&p, 1, STALL_MS) != 1) {
		driver_fail(&f->drv, "stuck: %u of %u requests done, %u in flight", f->drv.done,
		            f->drv.total, f->drv.in_flight);
		return false;
	}
	if (read(f->intx_fd, &v, sizeof(v)) != sizeof(v))
		driver_fail(&f->drv, "INTx eventfd: %s", strerror(errno));
	return true;
}

/*
 * Keeps every chain busy until @total more requests were issued, then waits for the rest. The
 * doorbell rings after every few requests (1 to 8), so notifications keep arriving while the
 * loop completes earlier ones. With @full, it rings only once every chain has a request: the
 * queue then holds CHAINS requests at once, which needs every backend op.
 */
static void run_requests(struct fixture *f, unsigned total, bool full)
{
	struct driver *d = &f->drv;

	d->total += total;
	while (d->done < d->total && !d->error[0]) {
		unsigned batch = full ? CHAINS : 1 + (unsigned)(next_random(d) % 8), started = 0;
		uint16_t old = d->ring.avail_idx;

		for (unsigned k = 0; k < CHAINS && d->issued < d->total && started < batch; k++) {
			if (d->chains[k].busy)
				continue;
			start_request(f, k);
			started++;
		}
		if (started && (!full || d->in_flight == CHAINS || d->issued == d->total)) {
			if (publish(f, old))
				ring_doorbell(f);
			else
				d->skipped++;
			reap(f);
			continue;
		}
		if (!reap(f) && !wait_for_interrupt(f))
			return;
	}
}

static void *vcpu_thread(void *opaque)
{
	struct fixture *f = opaque;
	struct driver *d = &f->drv;
	unsigned total = 50000;
	const char *env = getenv("VMM_TEST_BLK_REQUESTS");

	if (env && atoi(env) > 0)
		total = (unsigned)atoi(env);
	cfg_wr(f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	driver_init(f);
	if (!d->error[0])
		run_requests(f, total, false);
	/* All chains in flight at once, twice: no op may have leaked. */
	for (unsigned i = 0; i < 2 && !d->error[0]; i++)
		run_requests(f, CHAINS, true);
	return NULL;
}

/* ---- set-up ---- */

/* The vendor capability of @type, walked as a driver does. */
static unsigned find_vendor_cap(struct fixture *f, uint8_t type)
{
	unsigned n = 0;

	for (unsigned at = (unsigned)cfg_rd(f, PCI_CAPABILITY_PTR, 1); at && n++ < 48;
	     at = (unsigned)cfg_rd(f, at + 1, 1)) {
		if (cfg_rd(f, at, 1) == PCI_CAP_ID_VNDR && cfg_rd(f, at + 3, 1) == type)
			return at;
	}
	return 0;
}

static void place_chains(struct fixture *f)
{
	struct test_ring *r = &f->drv.ring;

	test_ring_init(r, &f->mem, 0x100000, RAM - 0x100000, CHAINS, NULL);
	for (unsigned k = 0; k < CHAINS; k++) {
		struct chain *c = &f->drv.chains[k];

		c->table = test_ring_alloc(r, 3 * 16);
		c->header = test_ring_alloc(r, 16);
		c->status = test_ring_alloc(r, 1);
		c->data = test_ring_alloc(r, MAX_LEN * 512);
	}
}

/*
 * Returns false (test skipped) where io_uring is not available. @poll: the device polls, its
 * window open from the start; @event_idx: the driver negotiates EVENT_IDX.
 */
static bool setup(struct fixture *f, bool poll, bool event_idx)
{
	struct blk_options opts = {.path = f->path, .poll_ns = poll ? POLL_WINDOW_MAX_NS : 0};
	char err[256] = "";
	int r;

	memset(f, 0, sizeof(*f));
	f->drv.event_idx = event_idx;
	strcpy(f->path, "/tmp/vmm-test-blk-threads-XXXXXX");
	f->fd = mkstemp(f->path);
	ck_assert_int_ge(f->fd, 0);
	ck_assert_int_eq(ftruncate(f->fd, (off_t)DISK_BYTES), 0);
	f->model = calloc(1, DISK_BYTES);
	ck_assert_ptr_nonnull(f->model);
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, RAM), 0);
	bus_init(&f->pio, "pio");
	bus_init(&f->mmio, "mmio");
	ck_assert_int_eq(pci_host_init(&f->host, &test_pci_layout, &f->pio, &f->mmio), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	r = blk_open(&f->blk, &opts, &f->mem, &f->loop, err, sizeof(err));
	if (r < 0 && strstr(err, "io_uring")) {
		printf("SKIP: %s\n", err);
		return false;
	}
	ck_assert_msg(r == 0, "%s", err);
	f->blk.poll[0].vp.win.ns =
	        poll ? POLL_WINDOW_MAX_NS : 0; /* before the loop thread starts */
	ck_assert_int_eq(
	        virtio_pci_attach(&f->t, &f->blk.vdev, &f->host, -1, NULL, INTX_GSI, &f->loop), 0);
	f->intx_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(f->intx_fd, 0);
	virtio_pci_set_test_interrupts(&f->t, on_intx, NULL, f);
	f->stop = (struct event_source){.handler = on_stop, .opaque = f};
	f->stop.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(f->stop.fd, 0);
	ck_assert_int_eq(event_loop_add(&f->loop, &f->stop, EPOLLIN), 0);
	f->drv.slot = f->t.pci.slot;
	f->drv.bar = (cfg_rd(f, PCI_BAR0, 4) & ~0xfull) | cfg_rd(f, PCI_BAR0 + 4, 4) << 32;
	f->drv.cfg_cap = find_vendor_cap(f, VIRTIO_PCI_CAP_PCI_CFG);
	ck_assert_uint_ne(f->drv.cfg_cap, 0);
	f->drv.rng = 0x9e3779b97f4a7c15ULL;
	place_chains(f);
	return true;
}

static void teardown(struct fixture *f)
{
	virtio_pci_detach(&f->t);
	blk_close(&f->blk); /* waits for I/O in flight: hangs if an op leaked */
	event_loop_del(&f->loop, &f->stop);
	close(f->stop.fd);
	close(f->intx_fd);
	event_loop_free(&f->loop);
	pci_host_destroy(&f->host);
	bus_free(&f->pio);
	bus_free(&f->mmio);
	guest_memory_free(&f->mem);
	free(f->model);
	close(f->fd);
	unlink(f->path);
}

static void run_threads(bool poll, bool event_idx)
{
	static struct fixture f;
	pthread_t loop, vcpu;
	uint64_t one = 1;
	void *ret;
	uint8_t *disk;

	if (!setup(&f, poll, event_idx))
		return;
	ck_assert_int_eq(pthread_create(&loop, NULL, loop_thread, &f), 0);
	ck_assert_int_eq(pthread_create(&vcpu, NULL, vcpu_thread, &f), 0);
	ck_assert_int_eq(pthread_join(vcpu, NULL), 0);
	ck_assert_int_eq(write(f.stop.fd, &one, sizeof(one)), sizeof(one));
	ck_assert_int_eq(pthread_join(loop, &ret), 0);
	ck_assert_int_eq((int)(intptr_t)ret, 0);
	ck_assert_msg(!f.drv.error[0], "%s", f.drv.error);
	ck_assert_uint_eq(f.drv.done, f.drv.total);
	ck_assert_uint_eq(f.drv.in_flight, 0);
	/* Every way of ringing was used (polling may save them all), and every kind of request. */
	for (unsigned i = 0; i < 4 && !poll; i++)
		ck_assert_uint_gt(f.drv.rings[i], 0);
	ck_assert_uint_gt(f.drv.reads, 0);
	ck_assert_uint_gt(f.drv.writes, 0);
	ck_assert_uint_gt(f.drv.flushes, 0);
	printf("%s%s: %u requests (%u reads, %u writes, %u flushes), doorbells %u/%u/%u/%u "
	       "(1, 2, 4 bytes, config window), %u not rung (polled), poll window hits %llu\n",
	       poll ? "polling" : "notifications", event_idx ? ", EVENT_IDX" : "", f.drv.done,
	       f.drv.reads, f.drv.writes, f.drv.flushes, f.drv.rings[0], f.drv.rings[1],
	       f.drv.rings[2], f.drv.rings[3], f.drv.skipped,
	       (unsigned long long)f.blk.poll[0].vp.win.hits);
	/* Polling: some doorbells were saved (the loop found the chains by itself). */
	if (poll)
		ck_assert_uint_gt(f.drv.skipped, 0);
	else if (!event_idx)
		ck_assert_uint_eq(f.drv.skipped, 0);
	/* The image holds what the model says. */
	disk = malloc(DISK_BYTES);
	ck_assert_ptr_nonnull(disk);
	ck_assert_int_eq(pread(f.fd, disk, DISK_BYTES, 0), (ssize_t)DISK_BYTES);
	ck_assert_msg(memcmp(disk, f.model, DISK_BYTES) == 0, "the image differs from the model");
	free(disk);
	teardown(&f);
}

START_TEST(vcpu_doorbells_against_loop_completions)
{
	run_threads(false, false);
}
END_TEST

/*
 * Polling: the loop thread looks at the avail ring while the vCPU thread publishes, and the
 * driver rings only when the device asks (as Linux does); a lost wake-up (a chain published as
 * the poll ends, not seen by the re-check) leaves requests waiting and fails the test.
 */
START_TEST(vcpu_publishes_while_loop_polls)
{
	run_threads(true, false);
}
END_TEST

START_TEST(vcpu_publishes_while_loop_polls_event_idx)
{
	run_threads(true, true);
}
END_TEST

static Suite *blk_threads_suite(void)
{
	Suite *s = suite_create("blk_threads");
	TCase *tc = tcase_create("threads");

	tcase_add_test(tc, vcpu_doorbells_against_loop_completions);
	tcase_add_test(tc, vcpu_publishes_while_loop_polls);
	tcase_add_test(tc, vcpu_publishes_while_loop_polls_event_idx);
	tcase_set_timeout(tc, 55);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(blk_threads_suite());
}
