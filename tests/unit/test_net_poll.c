/*
 * virtio-net transmit polling (issue 21): hand-built rings in fake guest memory, the in-memory
 * backend and a real event loop whose posted work (the poll) the test serves as the loop's
 * thread would. A packet the driver publishes while the transmit queue is polled is sent without
 * a notification, and the driver (deciding as Linux does, with and without EVENT_IDX) is told
 * not to notify meanwhile; the window's end turns notifications back on and leaves nothing
 * running; a full backend pauses the poll until EPOLLOUT; a hostile driver during a poll (a
 * malformed chain, a reset) costs the device's state, never the VMM, and ends the poll; a
 * quiesce (snapshot) sends what came and turns notifications on. The window's rules are in
 * test_vq_poll.c.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "devices/virtio/net.h"
#include "tests/support/blk_ring.h"
#include "tests/support/loop_harness.h"
#include "tests/support/net_fake.h"
#include "tests/support/virtio_driver.h"
#include "tests/unit/unit.h"

#define HDR       VIRTIO_NET_HDR_LEN
#define TXQ       VIRTIO_NET_TX_QUEUE
#define WINDOW_NS POLL_WINDOW_MAX_NS /* 1 ms, the most: a test's steps take far less */

static const uint8_t test_mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

struct fixture {
	struct guest_memory mem;
	struct event_loop loop;
	struct net_fake fake;
	struct virtio_net net;
	struct test_ring rx, tx, ctrl;
	bool event_idx, in_loop;
	unsigned config_interrupts;
};

static void on_interrupt(void *opaque, int q)
{
	struct fixture *f = opaque;

	if (q < 0)
		f->config_interrupts++;
}

static void driver_up(struct fixture *f)
{
	struct virtio_dev *dev = &f->net.vdev;
	uint64_t features = dev->device_features;
	uint8_t st;

	if (!f->event_idx)
		features &= ~(1ull << VIRTIO_F_EVENT_IDX);
	pthread_mutex_lock(&dev->lock);
	st = test_virtio_negotiate(dev, features);
	test_ring_init(&f->rx, &f->mem, 0x10000, 0x100000, 64, &dev->queues[VIRTIO_NET_RX_QUEUE]);
	test_ring_init(&f->tx, &f->mem, 0x200000, 0x100000, 64, &dev->queues[TXQ]);
	test_ring_init(&f->ctrl, &f->mem, 0x300000, 0x40000, 16,
	               &dev->queues[VIRTIO_NET_CTRL_QUEUE]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET),
	                  VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
}

/* A device polling its transmit queue with the window open at WINDOW_NS (as if earned). */
static struct fixture *setup(bool event_idx)
{
	struct fixture *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	f->event_idx = event_idx;
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 4 * MIB), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	net_fake_init(&f->fake);
	ck_assert_int_eq(
	        virtio_net_init(&f->net, "fake0", test_mac, &f->mem, &f->loop, &f->fake.be, 1), 0);
	ck_assert_int_eq(virtio_net_set_poll(&f->net, POLL_WINDOW_MAX_NS + 1), -EINVAL);
	ck_assert_int_eq(virtio_net_set_poll(&f->net, WINDOW_NS), 0);
	f->net.pairs[0].tx_poll.win.ns = WINDOW_NS;
	f->net.vdev.transport = (struct virtio_transport){on_interrupt, f};
	driver_up(f);
	return f;
}

static void teardown(struct fixture *f)
{
	virtio_net_close(&f->net);
	net_fake_free(&f->fake);
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	free(f);
}

/* Adds a 64-byte packet; returns whether the driver would notify for it (as Linux decides). */
static bool add_packet(struct fixture *f)
{
	struct test_ring *r = &f->tx;
	uint16_t old = r->avail_idx;
	struct test_buf b = {test_ring_alloc(r, HDR + 64), HDR + 64, false};

	memset(test_ring_host(r, b.gpa, b.len), 0x5a, b.len);
	memset(test_ring_host(r, b.gpa, HDR), 0, HDR);
	test_ring_add(r, &b, 1);
	return test_ring_would_notify(r, old, f->event_idx);
}

static void notify(struct fixture *f)
{
	f->net.vdev.ops->queue_notify(&f->net.vdev, TXQ);
}

static bool polling(struct fixture *f)
{
	return f->net.vdev.queues[TXQ].notify_off;
}

static bool posted(struct fixture *f)
{
	return f->net.pairs[0].tx_poll.work.queued;
}

/* Serves the loop until nothing is left: the poll runs until its window ends. */
static void serve(struct fixture *f)
{
	test_loop_serve(&f->loop, &f->in_loop);
	ck_assert(!posted(f)); /* nothing left running: an idle guest costs 0 */
}

/* One round of the loop: what is ready now runs once (a posted look re-posts for later). */
static void serve_once(struct fixture *f)
{
	test_loop_serve_once(&f->loop);
}

static void sent_without_notifications(bool event_idx)
{
	struct fixture *f = setup(event_idx);

	ck_assert(add_packet(f));
	notify(f);
	ck_assert_uint_eq(f->fake.nr_tx, 1);
	ck_assert(polling(f));
	ck_assert(posted(f));
	/* Packets published during the poll: no notification wanted, and sent all the same. */
	for (unsigned i = 1; i <= 8; i++) {
		ck_assert_msg(!add_packet(f), "driver asked to notify for packet %u", i);
		ck_assert(posted(f));
		serve_once(f);
		ck_assert_uint_eq(f->fake.nr_tx, 1 + i);
		ck_assert(polling(f));
	}
	/* Each a hit, unless a step took longer than the window (a slow sanitizer run). */
	ck_assert_uint_eq(f->net.pairs[0].tx_poll.win.hits + f->net.pairs[0].tx_poll.win.shrinks,
	                  8);
	serve(f);
	/* The window ended with nothing new: notifications on, and the driver notifies again. */
	ck_assert(!polling(f));
	ck_assert(add_packet(f));
	notify(f);
	ck_assert_uint_eq(f->fake.nr_tx, 10);
	ck_assert_uint_eq(test_ring_get16(&f->tx, f->tx.used + 2), 10);
	serve(f);
	teardown(f);
}

START_TEST(sent_without_notifications_flag)
{
	sent_without_notifications(false);
}
END_TEST

START_TEST(sent_without_notifications_event_idx)
{
	sent_without_notifications(true);
}
END_TEST

/* The window adapts to the gaps the queue sees, starting closed (no polling at all). */
START_TEST(window_earned_from_gaps)
{
	struct fixture *f = setup(false);

	/* Real time between the test's steps: a cap of seconds keeps it "under the cap". */
	f->net.pairs[0].tx_poll.win.max_ns = UINT32_MAX;
	f->net.pairs[0].tx_poll.win.ns = 0;
	add_packet(f);
	notify(f);
	ck_assert(!polling(f)); /* closed: sleeps at once, notifications on */
	ck_assert(!posted(f));
	add_packet(f);
	notify(f);
	ck_assert_uint_eq(f->net.pairs[0].tx_poll.win.ns, POLL_WINDOW_START_NS);
	ck_assert(polling(f));
	serve(f);
	ck_assert(!polling(f));
	ck_assert_uint_eq(f->fake.nr_tx, 2);
	teardown(f);
}
END_TEST

/*
 * A full backend during a poll: the poll stops with the chain held, EPOLLOUT (the fake's fd is
 * always writable) sends it, and the ring found empty then is polled again.
 */
START_TEST(full_backend_pauses_poll)
{
	struct fixture *f = setup(true);
	struct virtio_net_pair *p = &f->net.pairs[0];

	add_packet(f);
	notify(f);
	ck_assert(polling(f));
	f->fake.eagain = 1;
	ck_assert(!add_packet(f));
	p->tx_poll.work.fn(p->tx_poll.work.opaque); /* the posted look, alone */
	ck_assert(p->tx_blocked);
	ck_assert(p->watching & EPOLLOUT);
	ck_assert_uint_eq(f->fake.nr_tx, 1);
	p->tx_poll.work.fn(p->tx_poll.work.opaque); /* blocked: the look stops */
	ck_assert_uint_eq(f->fake.nr_tx, 1);
	serve(f);
	ck_assert_uint_eq(f->fake.nr_tx, 2);
	ck_assert(!p->tx_blocked);
	ck_assert(!polling(f));
	teardown(f);
}
END_TEST

/* A malformed chain found by the poll: the device needs a reset, the poll ends. */
START_TEST(hostile_chain_during_poll)
{
	struct fixture *f = setup(false);

	add_packet(f);
	notify(f);
	ck_assert(polling(f));
	test_ring_set_desc(&f->tx, 7, 0x10, 16, TEST_DESC_F_NEXT, 7); /* links to itself */
	test_ring_publish(&f->tx, 7);
	serve(f);
	ck_assert_uint_eq(f->net.vdev.status & VIRTIO_STATUS_NEEDS_RESET,
	                  VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(f->config_interrupts, 1);
	ck_assert_uint_eq(f->fake.nr_tx, 1);
	teardown(f);
}
END_TEST

/* A reset while the poll is posted: the poll finds the queue gone and stops; a new ring works. */
START_TEST(reset_during_poll)
{
	struct fixture *f = setup(false);

	add_packet(f);
	notify(f);
	ck_assert(polling(f));
	pthread_mutex_lock(&f->net.vdev.lock);
	virtio_write_status(&f->net.vdev, 0);
	pthread_mutex_unlock(&f->net.vdev.lock);
	ck_assert(!polling(f));
	serve(f);
	driver_up(f);
	ck_assert(add_packet(f)); /* the fresh ring wants notifications */
	notify(f);
	ck_assert_uint_eq(f->fake.nr_tx, 2);
	serve(f);
	teardown(f);
}
END_TEST

/* A snapshot's quiesce during a poll: sends what came, notifications back on. */
START_TEST(quiesce_ends_poll)
{
	struct fixture *f = setup(false);

	add_packet(f);
	notify(f);
	ck_assert(!add_packet(f));
	f->net.vdev.ops->quiesce(&f->net.vdev);
	ck_assert(!polling(f));
	ck_assert_uint_eq(test_ring_get16(&f->tx, f->tx.used), 0);
	ck_assert_uint_eq(f->fake.nr_tx, 2);
	serve(f); /* the poll posted before finds notifications on and stops */
	ck_assert(!polling(f));
	teardown(f);
}
END_TEST

/* Polling off (0): notifications are never turned off, nothing is posted. */
START_TEST(poll_off)
{
	struct fixture *f = setup(false);

	ck_assert_int_eq(virtio_net_set_poll(&f->net, 0), 0);
	for (unsigned i = 0; i < 4; i++) {
		ck_assert(add_packet(f));
		notify(f);
		ck_assert(!polling(f));
		ck_assert(!posted(f));
	}
	ck_assert_uint_eq(f->fake.nr_tx, 4);
	teardown(f);
}
END_TEST

static Suite *net_poll_suite(void)
{
	Suite *s = suite_create("net_poll");
	TCase *tc = tcase_create("poll");

	tcase_add_test(tc, sent_without_notifications_flag);
	tcase_add_test(tc, sent_without_notifications_event_idx);
	tcase_add_test(tc, window_earned_from_gaps);
	tcase_add_test(tc, full_backend_pauses_poll);
	tcase_add_test(tc, hostile_chain_during_poll);
	tcase_add_test(tc, reset_during_poll);
	tcase_add_test(tc, quiesce_ends_poll);
	tcase_add_test(tc, poll_off);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(net_poll_suite());
}
