/*
 * virtio-console over hand-built rings in fake guest memory. Single-port mode: transmit to the
 * backend, receive into posted buffers with back-pressure (0 accepted without buffers, rx_space
 * once buffers come), input before the driver is ready, malformed chains and the config space.
 * Multiport mode: the control handshake (DEVICE_READY, DEVICE_ADD, PORT_READY, PORT_NAME,
 * CONSOLE_PORT, PORT_OPEN) and messages waiting for control buffers, output per port,
 * back-pressure and port_writable, flush, host disconnection, input only while the guest has
 * the port open, malformed control traffic, reset, the batch limit and its resume on the event
 * loop, and a driver that does not take F_MULTIPORT.
 * Bounded work (issue 17): a hostile driver re-publishing its chain, or one 32 MiB chain, gets
 * at most a batch per run, the rest resumed by the loop with a "signal" fd served in between;
 * a slow stdout (a pipe nobody reads, through vmm/out_stream.c) holds neither the loop nor a
 * thread calling into the device, and every byte arrives in order once the pipe is drained.
 *
 * Threads: the main thread but in slow_stdout, where the loop runs on a thread of its own, the
 * stream has its writer thread and a late reader drains the pipe.
 */
#include <check.h>
#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/console.h"
#include "tests/support/blk_ring.h"
#include "tests/support/loop_harness.h"
#include "tests/support/virtio_driver.h"
#include "tests/support/virtio_snapshot.h"
#include "tests/unit/unit.h"
#include "vmm/event_loop.h"
#include "vmm/out_stream.h"

struct fixture {
	struct guest_memory mem;
	struct virtio_console con;
	struct test_ring rx, tx;
	char out[256];
	size_t out_len;
	unsigned rx_space, interrupts[2], config_interrupts;
};

static size_t out_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct fixture *f = opaque;

	ck_assert_uint_le(f->out_len + len, sizeof(f->out));
	memcpy(f->out + f->out_len, buf, len);
	f->out_len += len;
	return len;
}

static void out_rx_space(void *opaque)
{
	struct fixture *f = opaque;

	f->rx_space++;
}

static void count_interrupt(void *opaque, int q)
{
	struct fixture *f = opaque;

	if (q < 0)
		f->config_interrupts++;
	else
		f->interrupts[q]++;
}

static void driver_up(struct fixture *f)
{
	struct virtio_dev *dev = &f->con.vdev;
	uint8_t st;

	pthread_mutex_lock(&dev->lock);
	st = test_virtio_negotiate(dev, dev->device_features);
	test_ring_init(&f->rx, &f->mem, 0x10000, 0x40000, 64, &dev->queues[0]);
	test_ring_init(&f->tx, &f->mem, 0x80000, 0x40000, 64, &dev->queues[1]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET),
	                  VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
}

static struct fixture *setup(bool up)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const struct virtio_console_backend be = {
	        .write = out_write, .rx_space = out_rx_space, .opaque = f};

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 1 * MIB), 0);
	virtio_console_init(&f->con, &f->mem, &be);
	f->con.vdev.transport = (struct virtio_transport){count_interrupt, f};
	if (up)
		driver_up(f);
	return f;
}

static void teardown(struct fixture *f)
{
	virtio_console_destroy(&f->con);
	guest_memory_free(&f->mem);
	free(f);
}

static struct test_buf text(struct test_ring *r, const char *s)
{
	struct test_buf b = {test_ring_alloc(r, strlen(s)), (uint32_t)strlen(s), false};

	memcpy(test_ring_host(r, b.gpa, b.len), s, b.len);
	return b;
}

static struct test_buf rx_buf(struct fixture *f, uint32_t len)
{
	struct test_buf b = {test_ring_alloc(&f->rx, len), len, true};

	test_ring_add(&f->rx, &b, 1);
	return b;
}

static void notify(struct fixture *f, unsigned q)
{
	f->con.vdev.ops->queue_notify(&f->con.vdev, q);
}

START_TEST(transmit)
{
	struct fixture *f = setup(true);
	struct test_buf b[] = {text(&f->tx, "hello "), text(&f->tx, "world")};
	struct test_buf c = text(&f->tx, "!\n");
	uint16_t h1 = test_ring_add(&f->tx, b, 2), h2 = test_ring_add(&f->tx, &c, 1);
	uint32_t id, len;

	notify(f, VIRTIO_CONSOLE_TX_QUEUE);
	ck_assert_uint_eq(f->out_len, 13);
	ck_assert_mem_eq(f->out, "hello world!\n", 13);
	ck_assert(test_ring_used(&f->tx, &id, &len));
	ck_assert_uint_eq(id, h1);
	ck_assert_uint_eq(len, 0);
	ck_assert(test_ring_used(&f->tx, &id, &len));
	ck_assert_uint_eq(id, h2);
	ck_assert_uint_eq(f->interrupts[VIRTIO_CONSOLE_TX_QUEUE], 1);
	teardown(f);
}
END_TEST

START_TEST(receive_with_back_pressure)
{
	struct fixture *f = setup(true);
	struct test_buf a, b;
	uint32_t id, len;

	ck_assert_uint_eq(virtio_console_receive(&f->con, (const uint8_t *)"xyz", 3), 0);
	a = rx_buf(f, 4);
	b = rx_buf(f, 4);
	notify(f, VIRTIO_CONSOLE_RX_QUEUE);
	ck_assert_uint_eq(f->rx_space, 1);
	/* 10 bytes offered, 8 fit. */
	ck_assert_uint_eq(virtio_console_receive(&f->con, (const uint8_t *)"0123456789", 10), 8);
	ck_assert_mem_eq(test_ring_host(&f->rx, a.gpa, 4), "0123", 4);
	ck_assert_mem_eq(test_ring_host(&f->rx, b.gpa, 4), "4567", 4);
	ck_assert(test_ring_used(&f->rx, &id, &len));
	ck_assert_uint_eq(len, 4);
	ck_assert(test_ring_used(&f->rx, &id, &len));
	ck_assert_uint_eq(len, 4);
	ck_assert_uint_eq(f->interrupts[VIRTIO_CONSOLE_RX_QUEUE], 1);
	/* A short input returns a partly filled buffer with its length. */
	rx_buf(f, 16);
	notify(f, VIRTIO_CONSOLE_RX_QUEUE);
	ck_assert_uint_eq(f->rx_space, 2);
	ck_assert_uint_eq(virtio_console_receive(&f->con, (const uint8_t *)"89", 2), 2);
	ck_assert(test_ring_used(&f->rx, &id, &len));
	ck_assert_uint_eq(len, 2);
	/* Buffers posted while the host had nothing to say: no rx_space call. */
	rx_buf(f, 16);
	notify(f, VIRTIO_CONSOLE_RX_QUEUE);
	ck_assert_uint_eq(f->rx_space, 2);
	teardown(f);
}
END_TEST

START_TEST(receive_before_driver_ready)
{
	struct fixture *f = setup(false);

	ck_assert_uint_eq(virtio_console_receive(&f->con, (const uint8_t *)"a", 1), 0);
	driver_up(f);
	ck_assert_uint_eq(f->rx_space, 1); /* activation lets the host retry */
	rx_buf(f, 8);
	ck_assert_uint_eq(virtio_console_receive(&f->con, (const uint8_t *)"a", 1), 1);
	teardown(f);
}
END_TEST

START_TEST(malformed_chain_needs_reset)
{
	struct fixture *f = setup(true);

	test_ring_set_desc(&f->tx, 0, 0x1000, 4, TEST_DESC_F_NEXT, 0); /* links to itself */
	test_ring_publish(&f->tx, 0);
	notify(f, VIRTIO_CONSOLE_TX_QUEUE);
	ck_assert_uint_eq(f->con.vdev.status & VIRTIO_STATUS_NEEDS_RESET,
	                  VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(f->config_interrupts, 1);
	ck_assert_uint_eq(f->out_len, 0);
	teardown(f);
}
END_TEST

START_TEST(config_reads_zero)
{
	struct fixture *f = setup(true);
	uint8_t cfg[12];

	memset(cfg, 0xff, sizeof(cfg));
	virtio_read_config(&f->con.vdev, 0, cfg, 4);
	virtio_read_config(&f->con.vdev, 4, cfg + 4, 4);
	virtio_read_config(&f->con.vdev, 8, cfg + 8, 4);
	for (unsigned i = 0; i < sizeof(cfg); i++)
		ck_assert_uint_eq(cfg[i], 0);
	ck_assert_uint_eq(f->con.vdev.ops->device_id, VIRTIO_ID_CONSOLE);
	ck_assert_uint_eq(f->con.vdev.ops->num_queues, 2);
	teardown(f);
}
END_TEST

START_TEST(receive_chain_without_room_needs_reset)
{
	struct fixture *f = setup(true);

	rx_buf(f, 0);
	ck_assert_uint_eq(virtio_console_receive(&f->con, (const uint8_t *)"a", 1), 0);
	ck_assert_uint_eq(f->con.vdev.status & VIRTIO_STATUS_NEEDS_RESET,
	                  VIRTIO_STATUS_NEEDS_RESET);
	teardown(f);
}
END_TEST

/* ---- Multiport ---- */

#define NPORTS  3
#define NQUEUES (2 * (NPORTS + 1))
#define OUT_MAX (2 * MIB)
#define BIG     (MIB + MIB / 2)

/* One port's host side: takes at most @room bytes in all and @per_call bytes per call. */
struct port_out {
	uint8_t *data;
	size_t len, room, per_call;
	unsigned calls, rx_space, nr_opens;
	bool opens[16];
};

struct mp_fixture {
	struct guest_memory mem;
	struct virtio_console con;
	struct test_ring ring[NQUEUES];
	struct port_out out[NPORTS];
	uint64_t ctrl_gpa[64]; /* control receive buffer of each head */
	unsigned interrupts[NQUEUES], config_interrupts;
};

/* A control message the device sent. */
struct msg {
	uint32_t id, len;
	uint16_t event, value;
	char name[64];
};

static size_t port_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct port_out *o = opaque;
	size_t n = MIN(MIN(len, o->room), o->per_call);

	ck_assert_uint_le(o->len + n, OUT_MAX);
	memcpy(o->data + o->len, buf, n);
	o->len += n;
	o->room -= n;
	o->calls++;
	return n;
}

static void port_rx_space(void *opaque)
{
	((struct port_out *)opaque)->rx_space++;
}

static void port_guest_open(void *opaque, bool open)
{
	struct port_out *o = opaque;

	ck_assert_uint_lt(o->nr_opens, 16);
	o->opens[o->nr_opens++] = open;
}

static void mp_interrupt(void *opaque, int q)
{
	struct mp_fixture *f = opaque;

	if (q < 0)
		f->config_interrupts++;
	else
		f->interrupts[q]++;
}

static void mp_notify(struct mp_fixture *f, unsigned q)
{
	f->con.vdev.ops->queue_notify(&f->con.vdev, q);
}

static bool mp_needs_reset(const struct mp_fixture *f)
{
	return f->con.vdev.status & VIRTIO_STATUS_NEEDS_RESET;
}

/* DRIVER_OK with every queue on 64-entry rings; @multiport: the driver takes F_MULTIPORT. */
static void mp_driver_up(struct mp_fixture *f, bool multiport)
{
	struct virtio_dev *dev = &f->con.vdev;
	uint64_t features = dev->device_features;
	uint8_t st;

	if (!multiport)
		features &= ~(1ull << VIRTIO_CONSOLE_F_MULTIPORT);
	pthread_mutex_lock(&dev->lock);
	st = test_virtio_negotiate(dev, features);
	for (unsigned q = 0; q < (multiport ? NQUEUES : 2); q++)
		test_ring_init(&f->ring[q], &f->mem, 0x10000 + q * 0x40000ull, 0x40000, 64,
		               &dev->queues[q]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET),
	                  VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
}

/* Port 0 "vmm.stdout", port 1 "vmm.stdin", port 2 an unnamed console port. */
static struct mp_fixture *mp_setup(bool up)
{
	static const char *const names[NPORTS] = {"vmm.stdout", "vmm.stdin", NULL};
	struct mp_fixture *f = calloc(1, sizeof(*f));
	struct virtio_console_port_config ports[NPORTS];

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 8 * MIB), 0);
	for (unsigned p = 0; p < NPORTS; p++) {
		f->out[p].data = malloc(OUT_MAX);
		ck_assert_ptr_nonnull(f->out[p].data);
		f->out[p].room = f->out[p].per_call = SIZE_MAX;
		ports[p] = (struct virtio_console_port_config){
		        .name = names[p],
		        .is_console = p == 2,
		        .backend = {port_write, port_rx_space, port_guest_open, &f->out[p]},
		};
	}
	virtio_console_init_multiport(&f->con, &f->mem, ports, NPORTS);
	f->con.vdev.transport = (struct virtio_transport){mp_interrupt, f};
	if (up)
		mp_driver_up(f, true);
	return f;
}

static void mp_teardown(struct mp_fixture *f)
{
	virtio_console_destroy(&f->con);
	guest_memory_free(&f->mem);
	for (unsigned p = 0; p < NPORTS; p++)
		free(f->out[p].data);
	free(f);
}

/* Posts @n control receive buffers of @len bytes and notifies. */
static void post_ctrl(struct mp_fixture *f, unsigned n, uint32_t len)
{
	struct test_ring *r = &f->ring[VIRTIO_CONSOLE_CTRL_RX_QUEUE];

	for (unsigned i = 0; i < n; i++) {
		struct test_buf b = {test_ring_alloc(r, len), len, true};
		uint16_t head = test_ring_add(r, &b, 1);

		f->ctrl_gpa[head] = b.gpa;
	}
	mp_notify(f, VIRTIO_CONSOLE_CTRL_RX_QUEUE);
}

/* The driver sends a control message of @len bytes (8 for a well-formed one). */
static void send_ctrl_len(struct mp_fixture *f, uint32_t id, uint16_t event, uint16_t value,
                          uint32_t len)
{
	struct test_ring *r = &f->ring[VIRTIO_CONSOLE_CTRL_TX_QUEUE];
	struct virtio_console_control m = {htole32(id), htole16(event), htole16(value)};
	struct test_buf b = {test_ring_alloc(r, sizeof(m)), len, false};

	memcpy(test_ring_host(r, b.gpa, sizeof(m)), &m, sizeof(m));
	test_ring_add(r, &b, 1);
	mp_notify(f, VIRTIO_CONSOLE_CTRL_TX_QUEUE);
}

static void send_ctrl(struct mp_fixture *f, uint32_t id, uint16_t event, uint16_t value)
{
	send_ctrl_len(f, id, event, value, 8);
}

/* Takes the next message the device sent; false when there is none. */
static bool read_ctrl(struct mp_fixture *f, struct msg *m)
{
	struct test_ring *r = &f->ring[VIRTIO_CONSOLE_CTRL_RX_QUEUE];
	struct virtio_console_control c;
	uint32_t head;
	const uint8_t *p;

	if (!test_ring_used(r, &head, &m->len))
		return false;
	ck_assert_uint_lt(head, 64);
	ck_assert_uint_ge(m->len, sizeof(c));
	ck_assert_uint_le(m->len, sizeof(c) + sizeof(m->name));
	p = test_ring_host(r, f->ctrl_gpa[head], m->len);
	memcpy(&c, p, sizeof(c));
	m->id = le32toh(c.id);
	m->event = le16toh(c.event);
	m->value = le16toh(c.value);
	memset(m->name, 0, sizeof(m->name));
	memcpy(m->name, p + sizeof(c), m->len - sizeof(c));
	return true;
}

static void expect_ctrl(struct mp_fixture *f, uint32_t id, uint16_t event, uint16_t value)
{
	struct msg m;

	ck_assert(read_ctrl(f, &m));
	ck_assert_uint_eq(m.id, id);
	ck_assert_uint_eq(m.event, event);
	ck_assert_uint_eq(m.value, value);
	ck_assert_uint_eq(m.len, 8);
}

static void expect_name(struct mp_fixture *f, uint32_t id, const char *name)
{
	struct msg m;

	ck_assert(read_ctrl(f, &m));
	ck_assert_uint_eq(m.id, id);
	ck_assert_uint_eq(m.event, VIRTIO_CONSOLE_PORT_NAME);
	ck_assert_uint_eq(m.value, 1);
	ck_assert_uint_eq(m.len, 8 + strlen(name) + 1); /* the name and its NUL */
	ck_assert_mem_eq(m.name, name, strlen(name) + 1);
}

static void expect_no_ctrl(struct mp_fixture *f)
{
	struct msg m;

	ck_assert(!read_ctrl(f, &m));
}

/* DEVICE_READY, DEVICE_ADD x 3, PORT_READY x 3 and the device's answers. */
static void handshake(struct mp_fixture *f)
{
	post_ctrl(f, 32, 4096);
	send_ctrl(f, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (unsigned p = 0; p < NPORTS; p++)
		expect_ctrl(f, p, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	expect_no_ctrl(f);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_name(f, 0, "vmm.stdout");
	if (f->con.ports[0].host_connected)
		expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_name(f, 1, "vmm.stdin");
	if (f->con.ports[1].host_connected)
		expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	send_ctrl(f, 2, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(f, 2, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	expect_ctrl(f, 2, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);
	ck_assert(!mp_needs_reset(f));
}

/* Queues a transmit chain of @n buffers on @port. */
static uint16_t tx_chain(struct mp_fixture *f, unsigned port, const void *const *data,
                         const size_t *len, unsigned n)
{
	struct test_ring *r = &f->ring[virtio_console_tx_queue(port)];
	struct test_buf b[4];

	ck_assert_uint_le(n, 4);
	for (unsigned i = 0; i < n; i++) {
		b[i] = (struct test_buf){test_ring_alloc(r, len[i]), (uint32_t)len[i], false};
		memcpy(test_ring_host(r, b[i].gpa, len[i]), data[i], len[i]);
	}
	return test_ring_add(r, b, n);
}

static uint16_t tx_text(struct mp_fixture *f, unsigned port, const char *s)
{
	const void *d[] = {s};
	size_t l[] = {strlen(s)};

	return tx_chain(f, port, d, l, 1);
}

static void expect_used(struct mp_fixture *f, unsigned q, uint32_t head, uint32_t len)
{
	uint32_t id, l;

	ck_assert(test_ring_used(&f->ring[q], &id, &l));
	ck_assert_uint_eq(id, head);
	ck_assert_uint_eq(l, len);
}

static void expect_no_used(struct mp_fixture *f, unsigned q)
{
	uint32_t id, l;

	ck_assert(!test_ring_used(&f->ring[q], &id, &l));
}

START_TEST(mp_config_and_layout)
{
	struct mp_fixture *f = mp_setup(false);
	struct fixture *single = setup(false);
	uint32_t max_nr_ports;

	virtio_read_config(&f->con.vdev, 4, &max_nr_ports, 4);
	ck_assert_uint_eq(le32toh(max_nr_ports), NPORTS);
	ck_assert_uint_eq(f->con.vdev.ops->num_queues, NQUEUES);
	ck_assert(f->con.vdev.device_features >> VIRTIO_CONSOLE_F_MULTIPORT & 1);
	ck_assert(!(single->con.vdev.device_features >> VIRTIO_CONSOLE_F_MULTIPORT & 1));
	ck_assert_uint_eq(virtio_console_rx_queue(0), 0);
	ck_assert_uint_eq(virtio_console_tx_queue(0), 1);
	ck_assert_uint_eq(virtio_console_rx_queue(1), 4);
	ck_assert_uint_eq(virtio_console_tx_queue(1), 5);
	ck_assert_uint_eq(virtio_console_tx_queue(6), 15);
	teardown(single);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_handshake)
{
	struct mp_fixture *f = mp_setup(true);

	/* Nothing is sent before the driver's DEVICE_READY. */
	post_ctrl(f, 4, 4096);
	expect_no_ctrl(f);
	handshake(f);
	ck_assert_uint_gt(f->interrupts[VIRTIO_CONSOLE_CTRL_RX_QUEUE], 0);
	/* Every driver message was returned. */
	for (unsigned i = 0; i < 4; i++)
		ck_assert(test_ring_used(&f->ring[VIRTIO_CONSOLE_CTRL_TX_QUEUE], &(uint32_t){0},
		                         &(uint32_t){0}));
	/* The guest opens and closes port 1. */
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	ck_assert_uint_eq(f->out[1].nr_opens, 2);
	ck_assert(f->out[1].opens[0]);
	ck_assert(!f->out[1].opens[1]);
	ck_assert_uint_eq(f->out[0].nr_opens, 0);
	/* A second DEVICE_READY repeats DEVICE_ADD; a repeated PORT_READY repeats the rest. */
	send_ctrl(f, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (unsigned p = 0; p < NPORTS; p++)
		expect_ctrl(f, p, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_name(f, 0, "vmm.stdout");
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	/* A driver that failed: nothing to answer. */
	send_ctrl(f, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 0);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 0);
	expect_no_ctrl(f);
	ck_assert(!mp_needs_reset(f));
	mp_teardown(f);
}
END_TEST

START_TEST(mp_messages_wait_for_buffers)
{
	struct mp_fixture *f = mp_setup(true);

	send_ctrl(f, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_no_ctrl(f);
	post_ctrl(f, 2, 64);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	expect_no_ctrl(f);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	post_ctrl(f, 8, 64);
	expect_ctrl(f, 2, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	expect_name(f, 0, "vmm.stdout");
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_no_ctrl(f);
	ck_assert(!mp_needs_reset(f));
	mp_teardown(f);
}
END_TEST

START_TEST(mp_output_per_port)
{
	struct mp_fixture *f = mp_setup(true);
	static const uint8_t bin[] = {0x00, 0xff, 0x0a, 0x0d, 0x1b, 0x00, 0x80};
	const void *d[] = {bin, "abc", bin};
	size_t l[] = {sizeof(bin), 3, sizeof(bin)};
	uint16_t h0, h2;

	handshake(f);
	h0 = tx_chain(f, 0, d, l, 3);
	h2 = tx_text(f, 2, "console\n");
	mp_notify(f, virtio_console_tx_queue(0));
	mp_notify(f, virtio_console_tx_queue(2));
	ck_assert_uint_eq(f->out[0].len, 2 * sizeof(bin) + 3);
	ck_assert_mem_eq(f->out[0].data, bin, sizeof(bin));
	ck_assert_mem_eq(f->out[0].data + sizeof(bin), "abc", 3);
	ck_assert_mem_eq(f->out[0].data + sizeof(bin) + 3, bin, sizeof(bin));
	ck_assert_uint_eq(f->out[2].len, 8);
	ck_assert_mem_eq(f->out[2].data, "console\n", 8);
	ck_assert_uint_eq(f->out[1].len, 0);
	expect_used(f, virtio_console_tx_queue(0), h0, 0);
	expect_used(f, virtio_console_tx_queue(2), h2, 0);
	ck_assert_uint_eq(f->interrupts[virtio_console_tx_queue(2)], 1);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_back_pressure)
{
	struct mp_fixture *f = mp_setup(true);
	struct port_out *o = &f->out[0];
	const void *d[] = {"0123", "456789"};
	size_t l[] = {4, 6};
	unsigned q = virtio_console_tx_queue(0), calls;
	uint16_t h1, h2;

	handshake(f);
	o->room = 5;
	h1 = tx_chain(f, 0, d, l, 2);
	h2 = tx_text(f, 0, "abc");
	mp_notify(f, q);
	ck_assert_uint_eq(o->len, 5);
	ck_assert_mem_eq(o->data, "01234", 5);
	expect_no_used(f, q);
	/* Blocked: a new notification writes nothing, even with room again. */
	o->room = SIZE_MAX;
	calls = o->calls;
	mp_notify(f, q);
	ck_assert_uint_eq(o->calls, calls);
	/* Writable: the rest of the chain, then the next one, each byte once. */
	virtio_console_port_writable(&f->con, 0);
	ck_assert_uint_eq(o->len, 13);
	ck_assert_mem_eq(o->data, "0123456789abc", 13);
	expect_used(f, q, h1, 0);
	expect_used(f, q, h2, 0);
	expect_no_used(f, q);
	/* A backend taking a few bytes per call blocks after each short write. */
	o->per_call = 2;
	h1 = tx_text(f, 0, "xyz");
	mp_notify(f, q);
	ck_assert_uint_eq(o->len, 15);
	expect_no_used(f, q);
	o->per_call = SIZE_MAX;
	virtio_console_port_writable(&f->con, 0);
	ck_assert_mem_eq(o->data + 13, "xyz", 3);
	expect_used(f, q, h1, 0);
	/* Other ports are not held up. */
	tx_text(f, 2, "ok");
	mp_notify(f, virtio_console_tx_queue(2));
	ck_assert_uint_eq(f->out[2].len, 2);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_flush)
{
	struct mp_fixture *f = mp_setup(true);
	struct port_out *o = &f->out[0];
	unsigned q = virtio_console_tx_queue(0), interrupts;
	uint16_t h1, h2, h3;

	handshake(f);
	o->room = 4;
	h1 = tx_text(f, 0, "hello world");
	h2 = tx_text(f, 0, "!!");
	mp_notify(f, q);
	ck_assert_uint_eq(o->len, 4);
	tx_text(f, 2, "late"); /* queued, never notified */
	interrupts = f->interrupts[q];
	/* Flush calls write again after short writes, until everything is taken. */
	o->room = SIZE_MAX;
	o->per_call = 3;
	virtio_console_flush(&f->con);
	ck_assert_uint_eq(o->len, 13);
	ck_assert_mem_eq(o->data, "hello world!!", 13);
	ck_assert_uint_eq(f->out[2].len, 4);
	expect_used(f, q, h1, 0);
	expect_used(f, q, h2, 0);
	ck_assert_uint_eq(f->interrupts[q], interrupts);
	/* A backend that takes nothing ends the flush of its port. */
	o->room = 0;
	h3 = tx_text(f, 0, "zz");
	virtio_console_flush(&f->con);
	ck_assert_uint_eq(o->len, 13);
	expect_no_used(f, q);
	o->room = SIZE_MAX;
	virtio_console_port_writable(&f->con, 0);
	expect_used(f, q, h3, 0);
	ck_assert_mem_eq(o->data + 13, "zz", 2);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_host_disconnect)
{
	struct mp_fixture *f = mp_setup(true);

	/* Remembered before PORT_READY: port 1 gets no PORT_OPEN 1 in the handshake. */
	virtio_console_port_set_host_connected(&f->con, 1, false);
	expect_no_ctrl(f);
	handshake(f);
	virtio_console_port_set_host_connected(&f->con, 1, true);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	virtio_console_port_set_host_connected(&f->con, 1, true); /* no change, no message */
	expect_no_ctrl(f);
	virtio_console_port_set_host_connected(&f->con, 0, false);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 0);
	expect_no_ctrl(f);
	ck_assert(!mp_needs_reset(f));
	mp_teardown(f);
}
END_TEST

START_TEST(mp_host_disconnect_waits_for_buffers)
{
	struct mp_fixture *f = mp_setup(true);

	post_ctrl(f, 3, 64);
	send_ctrl(f, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	for (unsigned p = 0; p < NPORTS; p++)
		expect_ctrl(f, p, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	/* PORT_NAME and PORT_OPEN 1 are pending; the host disconnects before they go. */
	virtio_console_port_set_host_connected(&f->con, 1, false);
	virtio_console_port_set_host_connected(&f->con, 99, false); /* no such port: ignored */
	post_ctrl(f, 4, 64);
	expect_name(f, 1, "vmm.stdin");
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	expect_no_ctrl(f);
	ck_assert(!mp_needs_reset(f));
	mp_teardown(f);
}
END_TEST

START_TEST(mp_input_needs_guest_open)
{
	struct mp_fixture *f = mp_setup(true);
	struct test_ring *r = &f->ring[virtio_console_rx_queue(1)];
	static const uint8_t bin[] = {0x00, 0x01, 0xff, 0x00};
	struct test_buf b = {test_ring_alloc(r, 16), 16, true};

	handshake(f);
	test_ring_add(r, &b, 1);
	mp_notify(f, virtio_console_rx_queue(1));
	/* Not open in the guest: refused, and no rx_space while it stays closed. */
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 1, bin, sizeof(bin)), 0);
	mp_notify(f, virtio_console_rx_queue(1));
	ck_assert_uint_eq(f->out[1].rx_space, 0);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	ck_assert_uint_eq(f->out[1].nr_opens, 1);
	ck_assert_uint_eq(f->out[1].rx_space, 1);
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 1, bin, sizeof(bin)), sizeof(bin));
	expect_used(f, virtio_console_rx_queue(1), 0, sizeof(bin));
	ck_assert_mem_eq(test_ring_host(r, b.gpa, sizeof(bin)), bin, sizeof(bin));
	/* Other ports and ports that do not exist take nothing. */
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 0, bin, 1), 0);
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, NPORTS, bin, 1), 0);
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 1000, bin, 1), 0);
	/* Closed again: refused. */
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	test_ring_add(r, &b, 1);
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 1, bin, 1), 0);
	ck_assert(!mp_needs_reset(f));
	mp_teardown(f);
}
END_TEST

/* Malformed control traffic, each on a fresh device after the handshake. */
static void bad_port_ready(struct mp_fixture *f)
{
	send_ctrl(f, NPORTS, VIRTIO_CONSOLE_PORT_READY, 1);
}

static void bad_port_open(struct mp_fixture *f)
{
	send_ctrl(f, 0x80000000u, VIRTIO_CONSOLE_PORT_OPEN, 1);
}

static void bad_short(struct mp_fixture *f)
{
	send_ctrl_len(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, 7);
}

static void bad_event_device_add(struct mp_fixture *f)
{
	send_ctrl(f, 0, VIRTIO_CONSOLE_DEVICE_ADD, 1);
}

static void bad_event_unknown(struct mp_fixture *f)
{
	send_ctrl(f, 0, 0xffff, 1);
}

static void bad_writable_only(struct mp_fixture *f)
{
	struct test_ring *r = &f->ring[VIRTIO_CONSOLE_CTRL_TX_QUEUE];
	struct test_buf b = {test_ring_alloc(r, 8), 8, true};

	test_ring_add(r, &b, 1);
	mp_notify(f, VIRTIO_CONSOLE_CTRL_TX_QUEUE);
}

static void bad_loop(struct mp_fixture *f)
{
	struct test_ring *r = &f->ring[VIRTIO_CONSOLE_CTRL_TX_QUEUE];

	test_ring_set_desc(r, 0, test_ring_alloc(r, 8), 8, TEST_DESC_F_NEXT, 0);
	test_ring_publish(r, 0);
	mp_notify(f, VIRTIO_CONSOLE_CTRL_TX_QUEUE);
}

static void (*const bad_ctrl[])(struct mp_fixture *) = {
        bad_port_ready,    bad_port_open,     bad_short, bad_event_device_add,
        bad_event_unknown, bad_writable_only, bad_loop,
};

START_TEST(mp_bad_control_needs_reset)
{
	struct mp_fixture *f = mp_setup(true);

	handshake(f);
	bad_ctrl[_i](f);
	ck_assert(mp_needs_reset(f));
	ck_assert_uint_eq(f->config_interrupts, 1);
	/* The device stays quiet and does not crash. */
	send_ctrl(f, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	post_ctrl(f, 1, 4096);
	tx_text(f, 0, "x");
	mp_notify(f, virtio_console_tx_queue(0));
	ck_assert_uint_eq(f->out[0].len, 0);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_control_before_handshake_needs_reset)
{
	struct mp_fixture *f = mp_setup(true);

	post_ctrl(f, 4, 4096);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1); /* no DEVICE_ADD sent for it yet */
	ck_assert(mp_needs_reset(f));
	expect_no_ctrl(f);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_small_control_buffer_needs_reset)
{
	struct mp_fixture *f = mp_setup(true);

	post_ctrl(f, 3, 4096);
	send_ctrl(f, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	send_ctrl(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	ck_assert(!mp_needs_reset(f));
	post_ctrl(f, 1, 12); /* PORT_NAME "vmm.stdout" needs 19 bytes */
	ck_assert(mp_needs_reset(f));
	for (unsigned p = 0; p < NPORTS; p++)
		expect_ctrl(f, p, VIRTIO_CONSOLE_DEVICE_ADD, 1);
	expect_no_ctrl(f);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_reset_forgets_ports)
{
	struct mp_fixture *f = mp_setup(true);
	struct virtio_dev *dev = &f->con.vdev;

	handshake(f);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	virtio_console_port_set_host_connected(&f->con, 0, false);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 0);
	f->out[0].room = 1;
	tx_text(f, 0, "held");
	mp_notify(f, virtio_console_tx_queue(0));
	pthread_mutex_lock(&dev->lock);
	virtio_write_status(dev, 0);
	pthread_mutex_unlock(&dev->lock);
	f->out[0].room = SIZE_MAX;
	mp_driver_up(f, true);
	/* Port 1 is closed again; the held chain belonged to the old ring. */
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 1, (const uint8_t *)"a", 1), 0);
	virtio_console_port_writable(&f->con, 0);
	ck_assert_uint_eq(f->out[0].len, 1);
	/* The configuration is kept: names, console port, port 0 still disconnected. */
	handshake(f);
	mp_teardown(f);
}
END_TEST

static void fill_pattern(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + i / 251);
}

static void stop_loop(void *opaque)
{
	event_loop_stop(opaque);
}

/* Runs one round of @loop's deferred work (what was posted before this call). */
static void run_round(struct event_loop *loop)
{
	struct event_work stop;

	event_work_init(&stop, stop_loop, loop);
	event_loop_post(loop, &stop);
	loop->stop = false;
	ck_assert_int_eq(event_loop_run(loop), 0);
}

/* 0: unbounded (no loop); 1: bounded, resumed by the event loop. */
START_TEST(mp_batch_limit)
{
	struct mp_fixture *f = mp_setup(true);
	struct test_ring *r = &f->ring[virtio_console_tx_queue(0)];
	struct test_buf b = {0x400000, BIG, false};
	unsigned q = virtio_console_tx_queue(0);
	uint8_t *want = malloc(BIG);
	struct event_loop loop;
	uint16_t h;

	ck_assert_ptr_nonnull(want);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	fill_pattern(want, BIG);
	memcpy(test_ring_host(r, b.gpa, BIG), want, BIG);
	handshake(f);
	if (_i) /* 1 MiB per call, then a resume */
		virtio_console_set_loop(&f->con, &loop);
	h = test_ring_add(r, &b, 1);
	mp_notify(f, q);
	if (_i) {
		ck_assert_uint_eq(f->out[0].len, MIB);
		expect_no_used(f, q);
	}
	if (_i) {
		ck_assert(f->con.resume_work.queued);
		run_round(&loop);
		ck_assert(!f->con.resume_work.queued);
	}
	ck_assert_uint_eq(f->out[0].len, BIG);
	ck_assert(memcmp(f->out[0].data, want, BIG) == 0);
	expect_used(f, q, h, 0);
	free(want);
	mp_teardown(f);
	event_loop_free(&loop);
}
END_TEST

/*
 * A snapshot with a chain half written (the backend took 5 of its 10 bytes) and port 1 open in
 * the guest, loaded into a new console on the same rings: the restored device writes only the
 * other 5 bytes, takes input on port 1 without a new PORT_OPEN and sends no control message
 * again.
 */
START_TEST(mp_snapshot_goes_on)
{
	struct mp_fixture *f = mp_setup(true);
	struct virtio_console *copy = calloc(1, sizeof(*copy));
	struct port_out out[NPORTS] = {{0}};
	struct virtio_console_port_config ports[NPORTS];
	struct test_ring *rx1 = &f->ring[virtio_console_rx_queue(1)];
	struct test_buf b = {test_ring_alloc(rx1, 16), 16, true};
	const void *d[] = {"0123", "456789"};
	size_t l[] = {4, 6};
	unsigned q = virtio_console_tx_queue(0);
	struct test_snapshot snap;
	char err[256] = "";
	uint16_t h;

	handshake(f);
	send_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	f->out[0].room = 5;
	h = tx_chain(f, 0, d, l, 2);
	mp_notify(f, q);
	ck_assert_mem_eq(f->out[0].data, "01234", 5);

	test_snapshot_take(&f->con.vdev, &snap);

	ck_assert_ptr_nonnull(copy);
	for (unsigned p = 0; p < NPORTS; p++) {
		out[p].data = malloc(OUT_MAX);
		ck_assert_ptr_nonnull(out[p].data);
		out[p].room = out[p].per_call = SIZE_MAX;
		ports[p] = (struct virtio_console_port_config){
		        .name = f->con.ports[p].name[0] ? f->con.ports[p].name : NULL,
		        .is_console = f->con.ports[p].is_console,
		        .backend = {port_write, port_rx_space, port_guest_open, &out[p]},
		};
	}
	virtio_console_init_multiport(copy, &f->mem, ports, NPORTS);
	copy->vdev.transport = (struct virtio_transport){mp_interrupt, f};
	ck_assert_msg(virtio_dev_load(&copy->vdev, &snap.section, err, sizeof(err)) == 0, "%s",
	              err);

	copy->vdev.ops->queue_notify(&copy->vdev, q);
	ck_assert_uint_eq(out[0].len, 5);
	ck_assert_mem_eq(out[0].data, "56789", 5);
	expect_used(f, q, h, 0);
	test_ring_add(rx1, &b, 1);
	ck_assert_uint_eq(virtio_console_port_receive(copy, 1, (const uint8_t *)"hi", 2), 2);
	expect_used(f, virtio_console_rx_queue(1), 0, 2);
	copy->vdev.ops->queue_notify(&copy->vdev, VIRTIO_CONSOLE_CTRL_RX_QUEUE);
	expect_no_ctrl(f);
	ck_assert_uint_eq(out[1].nr_opens, 0);

	test_snapshot_free(&snap);
	virtio_console_destroy(copy);
	free(copy);
	for (unsigned p = 0; p < NPORTS; p++)
		free(out[p].data);
	mp_teardown(f);
}
END_TEST

START_TEST(mp_driver_without_multiport)
{
	struct mp_fixture *f = mp_setup(false);
	struct test_ring *r = &f->ring[VIRTIO_CONSOLE_RX_QUEUE];
	struct test_buf b;

	mp_driver_up(f, false);
	b = (struct test_buf){test_ring_alloc(r, 8), 8, true};
	test_ring_add(r, &b, 1);
	/* Port 0 works as a plain console: input without PORT_OPEN, output. */
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 0, (const uint8_t *)"in", 2), 2);
	ck_assert_uint_eq(virtio_console_port_receive(&f->con, 1, (const uint8_t *)"in", 2), 0);
	tx_text(f, 0, "out");
	mp_notify(f, VIRTIO_CONSOLE_TX_QUEUE);
	ck_assert_uint_eq(f->out[0].len, 3);
	/* Control queues do not exist for this driver. */
	mp_notify(f, VIRTIO_CONSOLE_CTRL_TX_QUEUE);
	virtio_console_port_set_host_connected(&f->con, 0, false);
	ck_assert(!mp_needs_reset(f));
	mp_teardown(f);
}
END_TEST

/* ---- Work per event bounded; slow host output ---- */

#define HOSTILE_CHAINS (10 * 256)   /* 10 x TX_BATCH re-published 8-byte chains */
#define PIECE          (512 * 1024) /* the big chain: PIECES buffers over one region */
#define PIECES         64           /* 32 MiB in one chain */
#define LOOP_MEM       (4 * MIB)

/* A single-port console with a loop and the fds a VMM's loop has besides. */
struct loop_fixture {
	struct guest_memory mem;
	struct virtio_console con;
	struct test_ring rx, tx;
	struct event_loop loop;
	struct event_source doorbell, signal, stop, guard;
	/* The hostile driver: re-publishes @head after each 8-byte chain, @cap chains in all. */
	uint16_t head;
	uint64_t gpa;
	unsigned cap, published;
	uint8_t *piece; /* what each buffer of the big chain holds */
	/* Guest output seen by the backend (device lock) and the signal (loop thread). */
	uint64_t bytes, signal_at;
	unsigned chains;
	bool signalled;   /* the first write raised the signal */
	bool signal_seen; /* the loop served it, at @signal_at bytes */
	/* The slow-stdout test: output goes into @out, a pipe nobody reads at first. */
	struct out_stream out;
	pthread_t loop_thread;
	int signal_ack; /* eventfd: the loop served the signal */
};

/* Expected byte @off of the big chain's output (its buffers all show one region). */
static uint8_t piece_byte(uint64_t off)
{
	off %= PIECE;
	return (uint8_t)(off * 7 + off / 251);
}

/* Checks the output in place of keeping it; the first write raises the "signal". */
static size_t checking_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct loop_fixture *f = opaque;

	if (!f->signalled) {
		f->signalled = true;
		test_eventfd_kick(f->signal.fd);
	}
	if (f->cap) { /* one 8-byte chain per call: "%08u" of the chain's number */
		char want[16];

		ck_assert_uint_eq(len, 8);
		snprintf(want, sizeof(want), "%08u", f->chains);
		ck_assert_mem_eq(buf, want, 8);
		f->chains++;
		if (f->published < f->cap) { /* the driver puts the head back with new text */
			snprintf(want, sizeof(want), "%08u", f->published++);
			memcpy(test_ring_host(&f->tx, f->gpa, 8), want, 8);
			test_ring_publish(&f->tx, f->head);
		}
	} else { /* a write never spans two buffers of the chain */
		uint64_t off = f->bytes % PIECE;

		ck_assert_uint_le(off + len, PIECE);
		if (memcmp(buf, f->piece + off, len))
			ck_abort_msg("output differs after %llu bytes",
			             (unsigned long long)f->bytes);
	}
	f->bytes += len;
	return len;
}

static size_t stream_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct loop_fixture *f = opaque;
	size_t n = out_stream_take(&f->out, buf, len);

	f->bytes += n;
	return n;
}

/* The stream has room again: on the loop's thread, as vmm's stdout port does. */
static void stream_space(void *opaque)
{
	struct loop_fixture *f = opaque;

	virtio_console_port_writable(&f->con, 0);
}

static void lf_on_doorbell(void *opaque, uint32_t events)
{
	struct loop_fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->doorbell.fd);
	f->con.vdev.ops->queue_notify(&f->con.vdev, VIRTIO_CONSOLE_TX_QUEUE);
}

static void lf_on_signal(void *opaque, uint32_t events)
{
	struct loop_fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->signal.fd);
	pthread_mutex_lock(&f->con.vdev.lock);
	f->signal_at = f->bytes;
	f->signal_seen = true;
	pthread_mutex_unlock(&f->con.vdev.lock);
	if (f->signal_ack >= 0)
		test_eventfd_kick(f->signal_ack);
}

static void lf_on_stop(void *opaque, uint32_t events)
{
	struct loop_fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->stop.fd);
	event_loop_stop(&f->loop);
}

static void lf_on_guard(void *opaque, uint32_t events)
{
	struct loop_fixture *f = opaque;

	(void)events;
	ck_abort_msg("stuck after %llu bytes", (unsigned long long)f->bytes);
}

/* DRIVER_OK without EVENT_IDX; the transmitq on a 64-entry ring with 3 MiB of data after. */
static struct loop_fixture *lf_setup(size_t (*write)(void *, const uint8_t *, size_t))
{
	struct loop_fixture *f = calloc(1, sizeof(*f));
	struct virtio_dev *dev = &f->con.vdev;
	uint8_t st;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, LOOP_MEM), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	test_loop_add_eventfd(&f->loop, &f->doorbell, lf_on_doorbell, f);
	test_loop_add_eventfd(&f->loop, &f->signal, lf_on_signal, f);
	test_loop_add_eventfd(&f->loop, &f->stop, lf_on_stop, f);
	test_loop_add_guard(&f->loop, &f->guard, 40, lf_on_guard, f);
	f->signal_ack = -1;
	virtio_console_init(&f->con, &f->mem,
	                    &(struct virtio_console_backend){.write = write, .opaque = f});
	virtio_console_set_loop(&f->con, &f->loop);
	pthread_mutex_lock(&dev->lock);
	st = test_virtio_negotiate(dev, dev->device_features & ~(1ull << VIRTIO_F_EVENT_IDX));
	test_ring_init(&f->rx, &f->mem, 0x10000, 0x10000, 64, &dev->queues[0]);
	test_ring_init(&f->tx, &f->mem, 0x100000, 3 * MIB, 64, &dev->queues[1]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status, st | VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
	return f;
}

static void lf_teardown(struct loop_fixture *f)
{
	virtio_console_destroy(&f->con);
	close(f->doorbell.fd);
	close(f->signal.fd);
	close(f->stop.fd);
	close(f->guard.fd);
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	free(f->piece);
	free(f);
}

/* One chain of PIECES buffers, each the same PIECE bytes, through an indirect table. */
static uint16_t big_chain(struct loop_fixture *f)
{
	struct test_buf b[PIECES];
	uint64_t gpa = test_ring_alloc(&f->tx, PIECE);
	uint8_t *p = test_ring_host(&f->tx, gpa, PIECE);

	f->piece = malloc(PIECE);
	ck_assert_ptr_nonnull(f->piece);
	for (uint64_t i = 0; i < PIECE; i++)
		p[i] = f->piece[i] = piece_byte(i);
	for (unsigned i = 0; i < PIECES; i++)
		b[i] = (struct test_buf){gpa, PIECE, false};
	return test_ring_add_indirect(&f->tx, b, PIECES);
}

static void expect_tx_used(struct loop_fixture *f, uint16_t head, unsigned n)
{
	uint32_t id, len;

	for (unsigned i = 0; i < n; i++) {
		ck_assert(test_ring_used(&f->tx, &id, &len));
		ck_assert_uint_eq(id, head);
		ck_assert_uint_eq(len, 0);
	}
	ck_assert(!test_ring_used(&f->tx, &id, &len));
}

/*
 * A hostile driver, one notification: _i 0 re-publishes its 8-byte chain as soon as the device
 * writes it, HOSTILE_CHAINS times; _i 1 posts one 32 MiB chain. Each run (the notification,
 * then each resume) does at most 256 chains or 1 MiB, the signal raised by the first write is
 * served before the second run, and all the output arrives, in order, without more kicks.
 */
START_TEST(hostile_tx_bounded)
{
	struct loop_fixture *f = lf_setup(checking_write);
	uint64_t total = _i ? (uint64_t)PIECE * PIECES : 8ull * HOSTILE_CHAINS;
	uint64_t limit = _i ? MIB : 8 * 256, first, before;
	unsigned rounds = 0;
	uint16_t head;

	if (_i) {
		head = big_chain(f);
	} else {
		struct test_buf b = {test_ring_alloc(&f->tx, 8), 8, false};

		memcpy(test_ring_host(&f->tx, b.gpa, 8), "00000000", 8);
		f->gpa = b.gpa;
		f->cap = HOSTILE_CHAINS;
		f->published = 1;
		head = f->head = test_ring_add(&f->tx, &b, 1);
	}
	f->con.vdev.ops->queue_notify(&f->con.vdev, VIRTIO_CONSOLE_TX_QUEUE);
	first = f->bytes;
	ck_assert_msg(first > 0 && first <= limit, "the notification wrote %llu bytes",
	              (unsigned long long)first);
	ck_assert(f->con.resume_work.queued);
	while (f->con.resume_work.queued) {
		before = f->bytes;
		run_round(&f->loop); /* the signal first, then one resume */
		ck_assert_uint_le(f->bytes - before, limit);
		ck_assert_uint_lt(++rounds, 2 * total / limit + 8);
	}
	ck_assert(f->signal_seen);
	ck_assert_uint_le(f->signal_at, first + limit); /* before the second resume at the latest */
	ck_assert_uint_eq(f->bytes, total);
	ck_assert_uint_ge(rounds, total / limit - 1);
	expect_tx_used(f, head, _i ? 1 : HOSTILE_CHAINS);
	ck_assert(!(f->con.vdev.status & VIRTIO_STATUS_NEEDS_RESET));
	lf_teardown(f);
}
END_TEST

static void *loop_main(void *opaque)
{
	struct loop_fixture *f = opaque;

	ck_assert_int_eq(event_loop_run(&f->loop), 0);
	return NULL;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The device holds a chain the stream refused (port 0's tx_blocked), within 5 s. */
static bool wait_blocked(struct loop_fixture *f)
{
	for (double end = now() + 5; now() < end; usleep(1000)) {
		bool blocked;

		pthread_mutex_lock(&f->con.vdev.lock);
		blocked = f->con.ports[0].tx_blocked;
		pthread_mutex_unlock(&f->con.vdev.lock);
		if (blocked)
			return true;
	}
	return false;
}

static bool readable_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/* The late reader of vmm's stdout: reads @cap bytes, or to EOF. */
struct drain {
	int fd;
	pthread_t thread;
	uint8_t *got;
	size_t len, cap;
};

static void *drain_main(void *opaque)
{
	struct drain *d = opaque;

	while (d->len < d->cap) {
		ssize_t n = read(d->fd, d->got + d->len, d->cap - d->len);

		if (n <= 0)
			break;
		d->len += (size_t)n;
	}
	return NULL;
}

#define TAILS 3

/*
 * vmm's stdout is a pipe nobody reads: the guest writes a 32 MiB chain and TAILS small ones.
 * The stream takes what it can, the device holds the rest, and meanwhile the loop serves a
 * signal and a thread calling into the device (host input, a vCPU's register read under the
 * device lock) is not held up. Then the reader drains the pipe and gets every byte, in order:
 * _i 0 while the loop runs, _i 1 after the loop stopped (vmm exiting: the final output flush
 * hands over all the device holds, not one more batch).
 */
START_TEST(slow_stdout)
{
	struct loop_fixture *f = lf_setup(stream_write);
	uint64_t big_len = (uint64_t)PIECE * PIECES;
	struct drain d = {.cap = big_len + 8 * TAILS};
	uint16_t big, tails[TAILS];
	int fds[2];
	uint8_t cfg[4];
	double t;
	uint32_t id, len;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	f->signal_ack = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(f->signal_ack, 0);
	ck_assert_int_eq(out_stream_init(&f->out, fds[1], &f->loop, stream_space, f), 0);
	big = big_chain(f);
	for (unsigned i = 0; i < TAILS; i++) {
		struct test_buf b = {test_ring_alloc(&f->tx, 8), 8, false};

		snprintf(test_ring_host(&f->tx, b.gpa, 8), 8, "tail%03u", i);
		memcpy(test_ring_host(&f->tx, b.gpa + 7, 1), "\n", 1);
		tails[i] = test_ring_add(&f->tx, &b, 1);
	}
	ck_assert_int_eq(pthread_create(&f->loop_thread, NULL, loop_main, f), 0);
	test_eventfd_kick(f->doorbell.fd);
	ck_assert_msg(wait_blocked(f), "the device never held output back");

	test_eventfd_kick(f->signal.fd);
	ck_assert_msg(readable_within(f->signal_ack, 2000), "the loop did not serve the signal");
	t = now();
	ck_assert_uint_eq(virtio_console_receive(&f->con, (const uint8_t *)"x", 1), 0);
	pthread_mutex_lock(&f->con.vdev.lock);
	virtio_read_config(&f->con.vdev, 0, cfg, sizeof(cfg));
	pthread_mutex_unlock(&f->con.vdev.lock);
	ck_assert_msg(now() - t < 1, "calls into the device waited %.1f s", now() - t);

	if (_i) { /* vmm exits: the loop ends, the vCPUs stop, the chardev flushes */
		test_eventfd_kick(f->stop.fd);
		ck_assert_int_eq(pthread_join(f->loop_thread, NULL), 0);
	}
	d.fd = fds[0];
	d.got = malloc(d.cap);
	ck_assert_ptr_nonnull(d.got);
	ck_assert_int_eq(pthread_create(&d.thread, NULL, drain_main, &d), 0);
	if (_i) { /* what chardev_destroy does: takes wait for room, the waiter is called */
		out_stream_set_blocking(&f->out);
		stream_space(f);
		out_stream_close(&f->out);
	}
	ck_assert_int_eq(pthread_join(d.thread, NULL), 0);
	if (!_i) {
		test_eventfd_kick(f->stop.fd);
		ck_assert_int_eq(pthread_join(f->loop_thread, NULL), 0);
	}

	ck_assert_uint_eq(d.len, d.cap);
	for (uint64_t i = 0; i < PIECES; i++)
		ck_assert(memcmp(d.got + i * PIECE, f->piece, PIECE) == 0);
	ck_assert_mem_eq(d.got + big_len, "tail000\ntail001\ntail002\n", 8 * TAILS);
	ck_assert(test_ring_used(&f->tx, &id, &len));
	ck_assert_uint_eq(id, big);
	for (unsigned i = 0; i < TAILS; i++) {
		ck_assert(test_ring_used(&f->tx, &id, &len));
		ck_assert_uint_eq(id, tails[i]);
	}
	out_stream_close(&f->out);
	close(fds[0]);
	close(fds[1]);
	close(f->signal_ack);
	free(d.got);
	lf_teardown(f);
}
END_TEST

static Suite *console_suite(void)
{
	Suite *s = suite_create("virtio_console");
	TCase *tc = tcase_create("console");

	tcase_add_test(tc, transmit);
	tcase_add_test(tc, receive_with_back_pressure);
	tcase_add_test(tc, receive_before_driver_ready);
	tcase_add_test(tc, malformed_chain_needs_reset);
	tcase_add_test(tc, config_reads_zero);
	tcase_add_test(tc, receive_chain_without_room_needs_reset);
	suite_add_tcase(s, tc);
	tc = tcase_create("multiport");
	tcase_add_test(tc, mp_config_and_layout);
	tcase_add_test(tc, mp_handshake);
	tcase_add_test(tc, mp_messages_wait_for_buffers);
	tcase_add_test(tc, mp_output_per_port);
	tcase_add_test(tc, mp_back_pressure);
	tcase_add_test(tc, mp_flush);
	tcase_add_test(tc, mp_host_disconnect);
	tcase_add_test(tc, mp_host_disconnect_waits_for_buffers);
	tcase_add_test(tc, mp_input_needs_guest_open);
	tcase_add_loop_test(tc, mp_bad_control_needs_reset, 0, (int)ARRAY_SIZE(bad_ctrl));
	tcase_add_test(tc, mp_control_before_handshake_needs_reset);
	tcase_add_test(tc, mp_small_control_buffer_needs_reset);
	tcase_add_test(tc, mp_reset_forgets_ports);
	tcase_add_loop_test(tc, mp_batch_limit, 0, 2);
	tcase_add_test(tc, mp_driver_without_multiport);
	tcase_add_test(tc, mp_snapshot_goes_on);
	suite_add_tcase(s, tc);
	tc = tcase_create("bounded");
	tcase_add_loop_test(tc, hostile_tx_bounded, 0, 2);
	tcase_add_loop_test(tc, slow_stdout, 0, 2);
	tcase_set_timeout(tc, 50);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(console_suite());
}
