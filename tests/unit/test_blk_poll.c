/*
 * virtio-blk polling under load (issue 21): a hand-built ring in fake guest memory, the fake
 * backend and a real event loop whose posted work (the poll) the test serves as the loop's
 * thread would. A chain the driver publishes while the queue is polled is served without a
 * notification, and the driver (deciding as Linux does, with and without EVENT_IDX) is told
 * not to notify meanwhile; the window's end turns notifications back on and leaves nothing
 * running; a hostile driver during a poll (a malformed chain, an index jump, a reset) costs
 * the request or the device's state, never the VMM, and ends the poll; a quiesce (snapshot)
 * serves what came and turns notifications on. The window's rules are in test_vq_poll.c, two
 * threads polling and publishing in test_blk_threads.c.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "devices/virtio/blk.h"
#include "tests/support/blk_fake.h"
#include "tests/support/blk_ring.h"
#include "tests/support/loop_harness.h"
#include "tests/support/virtio_driver.h"
#include "tests/unit/unit.h"

#define DISK_SIZE (1u * MIB)
#define WINDOW_NS POLL_WINDOW_MAX_NS /* 1 ms, the most: a test's steps take far less */

struct fixture {
	struct guest_memory mem;
	struct blk_fake fake;
	struct blk_dev blk;
	struct test_ring ring;
	struct event_loop loop;
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
	struct virtio_dev *dev = &f->blk.vdev;
	uint64_t features = dev->device_features;
	uint8_t st;

	if (!f->event_idx)
		features &= ~(1ull << VIRTIO_F_EVENT_IDX);
	pthread_mutex_lock(&dev->lock);
	st = test_virtio_negotiate(dev, features);
	test_ring_init(&f->ring, &f->mem, 0x10000, 0x100000, BLK_QUEUE_SIZE, &dev->queues[0]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET),
	                  VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
}

/* A device polling queue 0 with its window open at WINDOW_NS (as if earned already). */
static struct fixture *setup(bool event_idx)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct blk_options opts = {.path = "fake.img"};
	char err[256] = "";

	ck_assert_ptr_nonnull(f);
	f->event_idx = event_idx;
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 2 * MIB), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	blk_fake_init(&f->fake, DISK_SIZE);
	ck_assert_msg(blk_init(&f->blk, &opts, DISK_SIZE, &f->mem, &f->fake.be, err, sizeof(err)) ==
	                      0,
	              "%s", err);
	ck_assert_int_eq(blk_set_poll(&f->blk, &f->loop, POLL_WINDOW_MAX_NS + 1), -EINVAL);
	ck_assert_int_eq(blk_set_poll(&f->blk, &f->loop, WINDOW_NS), 0);
	f->blk.poll[0].vp.win.max_ns = f->blk.poll[0].vp.win.ns = WINDOW_NS;
	f->blk.vdev.transport = (struct virtio_transport){on_interrupt, f};
	driver_up(f);
	return f;
}

static void teardown(struct fixture *f)
{
	blk_close(&f->blk);
	event_loop_free(&f->loop);
	blk_fake_free(&f->fake);
	guest_memory_free(&f->mem);
	free(f);
}

/* Adds a one-sector read; returns whether the driver would notify for it (as Linux decides). */
static bool add_read(struct fixture *f, uint64_t sector)
{
	struct test_ring *r = &f->ring;
	uint16_t old = r->avail_idx;
	struct test_buf b[3];

	b[0] = (struct test_buf){test_ring_alloc(r, 16), 16, false};
	memset(test_ring_host(r, b[0].gpa, 16), 0, 16);
	*(uint64_t *)((uint8_t *)test_ring_host(r, b[0].gpa, 16) + 8) = htole64(sector);
	b[1] = (struct test_buf){test_ring_alloc(r, 512), 512, true};
	b[2] = (struct test_buf){test_ring_alloc(r, 1), 1, true};
	test_ring_add_indirect(r, b, 3);
	return test_ring_would_notify(r, old, f->event_idx);
}

static void notify(struct fixture *f)
{
	f->blk.vdev.ops->queue_notify(&f->blk.vdev, 0);
}

static bool polling(struct fixture *f)
{
	return f->blk.vdev.queues[0].notify_off;
}

/* Serves the loop until nothing is left: the poll runs until its window ends. */
static void serve(struct fixture *f)
{
	test_loop_serve(&f->loop, &f->in_loop);
	ck_assert(!f->blk.poll[0].vp.work.queued); /* nothing left running: an idle guest costs 0 */
}

/* One round of the loop: what is ready now runs once (a posted look re-posts for later). */
static void serve_once(struct fixture *f)
{
	test_loop_serve_once(&f->loop);
}

static unsigned used_entries(struct fixture *f)
{
	uint32_t id, len;
	unsigned n = 0;

	while (test_ring_used(&f->ring, &id, &len))
		n++;
	return n;
}

static void served_without_notifications(bool event_idx)
{
	struct fixture *f = setup(event_idx);

	ck_assert(add_read(f, 0));
	notify(f);
	ck_assert_uint_eq(f->fake.nr_ops, 1);
	ck_assert(polling(f));
	ck_assert(f->blk.poll[0].vp.work.queued);
	/* Chains published during the poll: no notification wanted, and served all the same. */
	for (unsigned i = 1; i <= 8; i++) {
		ck_assert_msg(!add_read(f, i), "driver asked to notify for chain %u", i);
		ck_assert(f->blk.poll[0].vp.work.queued);
		/* One look, whenever it runs: a chain there is served before the window counts. */
		serve_once(f);
		ck_assert_uint_eq(f->fake.nr_ops, 1 + i);
		ck_assert(polling(f));
	}
	/* Each a hit, unless a step took longer than the window (a slow sanitizer run). */
	ck_assert_uint_eq(f->blk.poll[0].vp.win.hits + f->blk.poll[0].vp.win.shrinks, 8);
	serve(f);
	/* The window ended with nothing new: notifications on, and the driver notifies again. */
	ck_assert(!polling(f));
	ck_assert(add_read(f, 9));
	notify(f);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 10);
	ck_assert_uint_eq(used_entries(f), 10);
	serve(f);
	teardown(f);
}

START_TEST(served_without_notifications_flag)
{
	served_without_notifications(false);
}
END_TEST

START_TEST(served_without_notifications_event_idx)
{
	served_without_notifications(true);
}
END_TEST

/* The window adapts to the gaps the queue sees, starting closed (no polling at all). */
START_TEST(window_earned_from_gaps)
{
	struct fixture *f = setup(false);

	/*
	 * The gaps are real time between this test's steps: a cap of seconds keeps them "under
	 * the cap" on a loaded machine too (1 ms was not, under a parallel CI run).
	 */
	f->blk.poll[0].vp.win.max_ns = UINT32_MAX;
	f->blk.poll[0].vp.win.ns = 0;
	add_read(f, 0);
	notify(f);
	ck_assert(!polling(f)); /* closed: sleeps at once, notifications on */
	ck_assert(!f->blk.poll[0].vp.work.queued);
	add_read(f, 1);
	notify(f); /* the gap since the ring went empty was well under the cap */
	ck_assert_uint_eq(f->blk.poll[0].vp.win.ns, POLL_WINDOW_START_NS);
	ck_assert(polling(f));
	serve(f);
	ck_assert(!polling(f));
	blk_fake_complete(&f->fake);
	teardown(f);
}
END_TEST

/* A malformed chain found by the poll: the device needs a reset, the poll ends. */
START_TEST(hostile_chain_during_poll)
{
	struct fixture *f = setup(false);

	add_read(f, 0);
	notify(f);
	ck_assert(polling(f));
	test_ring_set_desc(&f->ring, 7, 0x10, 16, TEST_DESC_F_NEXT, 7); /* links to itself */
	test_ring_publish(&f->ring, 7);
	serve(f);
	ck_assert_uint_eq(f->blk.vdev.status & VIRTIO_STATUS_NEEDS_RESET,
	                  VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(f->config_interrupts, 1);
	ck_assert_uint_eq(f->fake.nr_ops, 1);
	blk_fake_complete(&f->fake);
	teardown(f);
}
END_TEST

/* An avail index that jumps by more than the queue size during a poll: the same. */
START_TEST(hostile_index_jump_during_poll)
{
	struct fixture *f = setup(true);

	add_read(f, 0);
	notify(f);
	ck_assert(polling(f));
	*(uint16_t *)test_ring_host(&f->ring, f->ring.avail + 2, 2) =
	        htole16((uint16_t)(f->ring.avail_idx + BLK_QUEUE_SIZE + 1));
	serve(f);
	ck_assert_uint_eq(f->blk.vdev.status & VIRTIO_STATUS_NEEDS_RESET,
	                  VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(f->fake.nr_ops, 1);
	blk_fake_complete(&f->fake);
	teardown(f);
}
END_TEST

/* A reset while the poll is posted: the poll finds the queue gone and stops; a new ring works. */
START_TEST(reset_during_poll)
{
	struct fixture *f = setup(false);

	add_read(f, 0);
	notify(f);
	ck_assert(polling(f));
	pthread_mutex_lock(&f->blk.vdev.lock);
	virtio_write_status(&f->blk.vdev, 0);
	pthread_mutex_unlock(&f->blk.vdev.lock);
	ck_assert(!polling(f));
	serve(f);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1); /* the old request: slot freed only */
	driver_up(f);
	ck_assert(add_read(f, 1)); /* the fresh ring wants notifications */
	notify(f);
	ck_assert_uint_eq(f->fake.nr_ops, 2);
	serve(f);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	ck_assert_uint_eq(used_entries(f), 1);
	teardown(f);
}
END_TEST

/* A snapshot's quiesce during a poll: serves what came, notifications back on. */
START_TEST(quiesce_ends_poll)
{
	struct fixture *f = setup(false);

	add_read(f, 0);
	notify(f);
	ck_assert(!add_read(f, 1));
	f->blk.vdev.ops->quiesce(&f->blk.vdev);
	ck_assert(!polling(f));
	ck_assert_uint_eq(test_ring_get16(&f->ring, f->ring.used), 0);
	ck_assert_uint_eq(f->fake.nr_ops, 2);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 2);
	serve(f); /* the poll posted before finds notifications on and stops */
	ck_assert(!polling(f));
	teardown(f);
}
END_TEST

/* Polling off (0): notifications are never turned off, nothing is posted. */
START_TEST(poll_off)
{
	struct fixture *f = setup(false);

	ck_assert_int_eq(blk_set_poll(&f->blk, &f->loop, 0), 0);
	for (unsigned i = 0; i < 4; i++) {
		ck_assert(add_read(f, i));
		notify(f);
		ck_assert(!polling(f));
		ck_assert(!f->blk.poll[0].vp.work.queued);
	}
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 4);
	teardown(f);
}
END_TEST

static Suite *blk_poll_suite(void)
{
	Suite *s = suite_create("blk_poll");
	TCase *tc = tcase_create("poll");

	tcase_add_test(tc, served_without_notifications_flag);
	tcase_add_test(tc, served_without_notifications_event_idx);
	tcase_add_test(tc, window_earned_from_gaps);
	tcase_add_test(tc, hostile_chain_during_poll);
	tcase_add_test(tc, hostile_index_jump_during_poll);
	tcase_add_test(tc, reset_during_poll);
	tcase_add_test(tc, quiesce_ends_poll);
	tcase_add_test(tc, poll_off);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(blk_poll_suite());
}
