/*
 * virtio-console over hand-built rings in fake guest memory: transmit to the backend, receive
 * into posted buffers with back-pressure (0 accepted without buffers, rx_space once buffers
 * come), input before the driver is ready, malformed chains and the config space.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/console.h"
#include "tests/support/blk_ring.h"
#include "tests/unit/unit.h"

struct fixture {
	struct guest_memory mem;
	struct virtio_console con;
	struct test_ring rx, tx;
	char out[256];
	size_t out_len;
	unsigned rx_space, interrupts[2], config_interrupts;
};

static void out_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct fixture *f = opaque;

	ck_assert_uint_le(f->out_len + len, sizeof(f->out));
	memcpy(f->out + f->out_len, buf, len);
	f->out_len += len;
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
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	pthread_mutex_lock(&dev->lock);
	virtio_write_status(dev, st);
	virtio_write_driver_features(dev, 0, (uint32_t)dev->device_features);
	virtio_write_driver_features(dev, 1, (uint32_t)(dev->device_features >> 32));
	st |= VIRTIO_STATUS_FEATURES_OK;
	virtio_write_status(dev, st);
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
	const struct virtio_console_backend be = {out_write, out_rx_space, f};

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

static Suite *console_suite(void)
{
	Suite *s = suite_create("virtio_console");
	TCase *tc = tcase_create("console");

	tcase_add_test(tc, transmit);
	tcase_add_test(tc, receive_with_back_pressure);
	tcase_add_test(tc, receive_before_driver_ready);
	tcase_add_test(tc, malformed_chain_needs_reset);
	tcase_add_test(tc, config_reads_zero);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(console_suite());
}
