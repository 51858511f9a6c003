/*
 * virtio-rng over a hand-built ring in fake guest memory, with a fake entropy source: chains
 * filled and returned (VIRTIO_RNG_CHAIN_MAX per chain), a device-readable buffer needing a
 * reset, and a hostile driver that re-publishes the same head for every chain the device takes
 * (issue 17): each run on the event loop serves at most a batch (VIRTIO_RNG_BATCH chains,
 * about VIRTIO_RNG_BATCH_MAX bytes), the rest is resumed by the loop without another
 * notification, and a "signal" eventfd that fires during the first run is served after at most
 * one more batch. In one variant the notification comes from a "vCPU" thread while the loop
 * runs on the main thread, so the resume is posted from another thread. A reset or destroy
 * with a resume posted: nothing more is served.
 *
 * Threads: the main thread runs the event loop; the vCPU variant adds one thread for the first
 * notification. The fake source and the counters run under the device lock.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "devices/virtio/rng.h"
#include "tests/support/blk_ring.h"
#include "tests/support/loop_harness.h"
#include "tests/support/virtio_driver.h"
#include "tests/unit/unit.h"
#include "vmm/event_loop.h"

struct fixture {
	struct guest_memory mem;
	struct virtio_rng rng;
	struct test_ring ring;
	struct event_loop loop;
	struct event_source doorbell, signal, guard;
	/* The hostile driver: re-publishes @head for every chain served, up to @cap chains. */
	uint16_t head;
	uint32_t buf_len;
	unsigned cap, published;
	/* Under the device lock (source) or on the loop thread: */
	unsigned served, served_at_run, runs, max_run, notifies, signal_at;
	uint64_t bytes, bytes_at_run, max_run_bytes, source_calls;
	bool hostile;
	bool destroyed; /* the test destroyed the device itself */
};

/* The device's source has no opaque: the test in progress. */
static struct fixture *cur;

static ssize_t fake_source(void *buf, size_t len, unsigned flags)
{
	struct fixture *f = cur;

	ck_assert_uint_eq(flags, GRND_NONBLOCK);
	memset(buf, 0xa5, len);
	f->source_calls++;
	f->bytes += len;
	if (!f->hostile)
		return (ssize_t)len;
	/* One call per chain (buffers <= VIRTIO_RNG_CHAIN_MAX): the driver puts it back at once. */
	f->served++;
	if (f->served == 1)
		test_eventfd_kick(f->signal.fd);
	if (f->published < f->cap) {
		test_ring_publish(&f->ring, f->head);
		f->published++;
	}
	return (ssize_t)len;
}

static ssize_t dry_source(void *buf, size_t len, unsigned flags)
{
	(void)buf;
	(void)len;
	(void)flags;
	errno = EAGAIN;
	return -1;
}

/* Once per run that returned chains (no EVENT_IDX, interrupts not suppressed). */
static void on_interrupt(void *opaque, int q)
{
	struct fixture *f = opaque;

	if (q < 0) /* config: DEVICE_NEEDS_RESET */
		return;
	ck_assert_int_eq(q, 0);
	f->runs++;
	f->max_run = MAX(f->max_run, f->served - f->served_at_run);
	f->max_run_bytes = MAX(f->max_run_bytes, f->bytes - f->bytes_at_run);
	f->served_at_run = f->served;
	f->bytes_at_run = f->bytes;
	if (f->hostile && f->served == f->cap)
		event_loop_stop(&f->loop);
}

/* The queue's ioeventfd. */
static void on_doorbell(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->doorbell.fd);
	f->notifies++;
	f->rng.vdev.ops->queue_notify(&f->rng.vdev, 0);
}

/* Stands for SIGTERM (vmm's signalfd): noted and nothing more. */
static void on_signal(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;

	(void)events;
	test_eventfd_drain(f->signal.fd);
	pthread_mutex_lock(&f->rng.vdev.lock);
	f->signal_at = f->served;
	pthread_mutex_unlock(&f->rng.vdev.lock);
}

static void on_guard(void *opaque, uint32_t events)
{
	struct fixture *f = opaque;

	(void)events;
	ck_abort_msg("stuck: %u of %u chains served in %u runs", f->served, f->cap, f->runs);
}

/* DRIVER_OK without EVENT_IDX, a 64-entry ring. */
static struct fixture *setup(bool with_loop)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_dev *dev = &f->rng.vdev;
	uint8_t st;

	ck_assert_ptr_nonnull(f);
	cur = f;
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 4 * MIB), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	test_loop_add_eventfd(&f->loop, &f->doorbell, on_doorbell, f);
	test_loop_add_eventfd(&f->loop, &f->signal, on_signal, f);
	test_loop_add_guard(&f->loop, &f->guard, 20, on_guard, f);
	virtio_rng_init(&f->rng, &f->mem);
	f->rng.source = fake_source;
	if (with_loop)
		virtio_rng_set_loop(&f->rng, &f->loop);
	dev->transport = (struct virtio_transport){on_interrupt, f};
	pthread_mutex_lock(&dev->lock);
	st = test_virtio_negotiate(dev, dev->device_features & ~(1ull << VIRTIO_F_EVENT_IDX));
	test_ring_init(&f->ring, &f->mem, 0x10000, 3 * MIB, 64, &dev->queues[0]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status, st | VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
	return f;
}

static void teardown(struct fixture *f)
{
	if (!f->destroyed)
		virtio_rng_destroy(&f->rng);
	close(f->doorbell.fd);
	close(f->signal.fd);
	close(f->guard.fd);
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	cur = NULL;
	free(f);
}

static void notify(struct fixture *f)
{
	f->rng.vdev.ops->queue_notify(&f->rng.vdev, 0);
}

static bool needs_reset(const struct fixture *f)
{
	return f->rng.vdev.status & VIRTIO_STATUS_NEEDS_RESET;
}

START_TEST(fills_chains)
{
	struct fixture *f = setup(false);
	struct test_buf a = {test_ring_alloc(&f->ring, 16), 16, true};
	struct test_buf b[] = {{test_ring_alloc(&f->ring, 8), 8, true},
	                       {test_ring_alloc(&f->ring, 100), 100, true}};
	struct test_buf big = {test_ring_alloc(&f->ring, 2 * VIRTIO_RNG_CHAIN_MAX),
	                       2 * VIRTIO_RNG_CHAIN_MAX, true};
	uint16_t ha = test_ring_add(&f->ring, &a, 1), hb = test_ring_add(&f->ring, b, 2);
	uint16_t hbig = test_ring_add(&f->ring, &big, 1);
	const uint8_t *p = test_ring_host(&f->ring, big.gpa, big.len);
	uint32_t id, len;

	notify(f);
	ck_assert(test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(id, ha);
	ck_assert_uint_eq(len, 16);
	ck_assert(test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(id, hb);
	ck_assert_uint_eq(len, 108);
	ck_assert(test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(id, hbig);
	ck_assert_uint_eq(len, VIRTIO_RNG_CHAIN_MAX); /* the rest of the buffer stays untouched */
	ck_assert_uint_eq(p[VIRTIO_RNG_CHAIN_MAX - 1], 0xa5);
	ck_assert_uint_eq(p[VIRTIO_RNG_CHAIN_MAX], 0);
	ck_assert_uint_eq(*(const uint8_t *)test_ring_host(&f->ring, b[1].gpa + 99, 1), 0xa5);
	ck_assert_uint_eq(f->runs, 1);
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

START_TEST(source_dry_returns_empty_chain)
{
	struct fixture *f = setup(false);
	struct test_buf a = {test_ring_alloc(&f->ring, 16), 16, true};
	uint32_t id, len;

	f->rng.source = dry_source;
	test_ring_add(&f->ring, &a, 1);
	notify(f);
	ck_assert(test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(len, 0);
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

START_TEST(readable_buffer_needs_reset)
{
	struct fixture *f = setup(true);
	struct test_buf b[] = {{test_ring_alloc(&f->ring, 8), 8, false},
	                       {test_ring_alloc(&f->ring, 8), 8, true}};
	uint32_t id, len;

	test_ring_add(&f->ring, b, 2);
	notify(f);
	ck_assert(needs_reset(f));
	ck_assert(!test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(f->source_calls, 0);
	teardown(f);
}
END_TEST

struct variant {
	uint32_t buf_len;
	unsigned cap;
	bool vcpu_notify; /* the first notification on another thread, as a vCPU's MMIO exit */
};

static const struct variant variants[] = {
        {16, 20 * VIRTIO_RNG_BATCH, false}, /* bounded by the chain count */
        {VIRTIO_RNG_CHAIN_MAX, 48, false},  /* bounded by the bytes */
        {16, 20 * VIRTIO_RNG_BATCH, true},
};

static void *vcpu_notify(void *opaque)
{
	notify(opaque);
	return NULL;
}

/*
 * The driver posts one chain, notifies once and re-publishes the head for every chain the
 * device takes, @cap chains in all. Today's unbounded loop serves all of them in the one
 * notification, keeping the loop from the signal until the driver stops.
 */
START_TEST(hostile_republish)
{
	const struct variant *v = &variants[_i];
	struct fixture *f = setup(true);
	unsigned per_run = MIN(VIRTIO_RNG_BATCH, VIRTIO_RNG_BATCH_MAX / v->buf_len +
	                                                 (VIRTIO_RNG_BATCH_MAX % v->buf_len != 0));
	struct test_buf b = {test_ring_alloc(&f->ring, v->buf_len), v->buf_len, true};
	pthread_t vcpu;
	uint32_t id, len;

	f->hostile = true;
	f->cap = v->cap;
	f->buf_len = v->buf_len;
	f->head = test_ring_add(&f->ring, &b, 1);
	f->published = 1;
	if (v->vcpu_notify)
		ck_assert_int_eq(pthread_create(&vcpu, NULL, vcpu_notify, f), 0);
	else
		test_eventfd_kick(f->doorbell.fd);
	ck_assert_int_eq(event_loop_run(&f->loop), 0);
	if (v->vcpu_notify)
		ck_assert_int_eq(pthread_join(vcpu, NULL), 0);

	ck_assert_uint_eq(f->served, v->cap);
	ck_assert_uint_eq(f->notifies, v->vcpu_notify ? 0 : 1);
	ck_assert_msg(f->max_run <= per_run, "a run served %u chains (limit %u)", f->max_run,
	              per_run);
	ck_assert_uint_le(f->max_run_bytes, VIRTIO_RNG_BATCH_MAX + v->buf_len);
	ck_assert_uint_ge(f->runs, v->cap / per_run); /* resumed by the loop, not notified */
	ck_assert_msg(f->signal_at > 0 && f->signal_at <= 2 * per_run,
	              "the signal was served after %u chains", f->signal_at);
	/* Every chain came back, with its bytes; nothing more is pending. */
	for (unsigned i = 0; i < v->cap; i++) {
		ck_assert(test_ring_used(&f->ring, &id, &len));
		ck_assert_uint_eq(id, f->head);
		ck_assert_uint_eq(len, v->buf_len);
	}
	ck_assert(!test_ring_used(&f->ring, &id, &len));
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

static void stop_loop(void *opaque)
{
	event_loop_stop(opaque);
}

/* A reset while a resume is posted: the resume finds the queue dead and does nothing. */
START_TEST(reset_with_resume_posted)
{
	struct fixture *f = setup(true);
	struct test_buf b = {test_ring_alloc(&f->ring, VIRTIO_RNG_CHAIN_MAX), VIRTIO_RNG_CHAIN_MAX,
	                     true};
	unsigned per_run = VIRTIO_RNG_BATCH_MAX / VIRTIO_RNG_CHAIN_MAX;
	struct event_work stop;
	uint32_t id, len;

	for (unsigned i = 0; i < 2 * per_run; i++)
		test_ring_add(&f->ring, &b, 1);
	notify(f);
	ck_assert_uint_eq(f->runs, 1);
	ck_assert_uint_eq(f->source_calls, per_run);
	pthread_mutex_lock(&f->rng.vdev.lock);
	virtio_write_status(&f->rng.vdev, 0);
	pthread_mutex_unlock(&f->rng.vdev.lock);
	/* Work runs in the order posted: the device's resume, then this stop. */
	event_work_init(&stop, stop_loop, &f->loop);
	event_loop_post(&f->loop, &stop);
	ck_assert_int_eq(event_loop_run(&f->loop), 0);
	ck_assert_uint_eq(f->source_calls, per_run);
	for (unsigned i = 0; i < per_run; i++)
		ck_assert(test_ring_used(&f->ring, &id, &len));
	ck_assert(!test_ring_used(&f->ring, &id, &len));
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

/* Destroying the device drops the resume it posted: the loop does not run it afterwards. */
START_TEST(destroy_cancels_resume)
{
	struct fixture *f = setup(true);
	struct test_buf b = {test_ring_alloc(&f->ring, VIRTIO_RNG_CHAIN_MAX), VIRTIO_RNG_CHAIN_MAX,
	                     true};
	struct event_work stop;

	for (unsigned i = 0; i < 8; i++)
		test_ring_add(&f->ring, &b, 1);
	notify(f);
	ck_assert(f->rng.resume.queued);
	virtio_rng_destroy(&f->rng);
	f->destroyed = true;
	ck_assert(!f->rng.resume.queued);
	event_work_init(&stop, stop_loop, &f->loop);
	event_loop_post(&f->loop, &stop);
	ck_assert_int_eq(event_loop_run(&f->loop), 0);
	ck_assert_uint_eq(f->source_calls, VIRTIO_RNG_BATCH_MAX / VIRTIO_RNG_CHAIN_MAX);
	teardown(f);
}
END_TEST

static Suite *rng_suite(void)
{
	Suite *s = suite_create("virtio_rng");
	TCase *tc = tcase_create("rng");

	tcase_add_test(tc, fills_chains);
	tcase_add_test(tc, source_dry_returns_empty_chain);
	tcase_add_test(tc, readable_buffer_needs_reset);
	tcase_add_loop_test(tc, hostile_republish, 0, (int)ARRAY_SIZE(variants));
	tcase_add_test(tc, reset_with_resume_posted);
	tcase_add_test(tc, destroy_cancels_resume);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(rng_suite());
}
