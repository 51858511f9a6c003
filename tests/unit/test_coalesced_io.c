/*
 * Coalesced I/O: the ring KVM fills is replayed onto the port bus in order, checked entry by
 * entry, without counting as exits; two vCPU threads flushing while "KVM" appends keep order.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/coalesced_io.h"

#define RING_ENTRIES 8
#define PORT         0xcf8

/* A latch that remembers every value written to it, in order. */
struct latch {
	pthread_mutex_t lock;
	uint32_t *values;
	unsigned nr, cap;
	unsigned bad_size;
};

static int latch_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct latch *l = opaque;
	uint32_t v = 0;

	pthread_mutex_lock(&l->lock);
	if (offset != 0 || size != 4) {
		l->bad_size++;
	} else if (l->nr < l->cap) {
		memcpy(&v, data, 4);
		l->values[l->nr++] = v;
	}
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static const struct bus_ops latch_ops = {.write = latch_write};

struct fixture {
	struct bus pio;
	struct latch latch;
	struct coalesced_io c;
	union {
		struct kvm_coalesced_mmio_ring ring;
		uint8_t bytes[sizeof(struct kvm_coalesced_mmio_ring) +
		              RING_ENTRIES * sizeof(struct kvm_coalesced_mmio)];
	} page;
};

static void fixture_init(struct fixture *f, unsigned cap)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->latch.lock, NULL);
	f->latch.values = calloc(cap, sizeof(uint32_t));
	f->latch.cap = cap;
	bus_init(&f->pio, "pio");
	ck_assert_int_eq(bus_register(&f->pio, PORT, 4, &latch_ops, &f->latch, "latch"), 0);
	coalesced_io_init(&f->c, &f->pio);
	/* What coalesced_io_start sets up from KVM's mapping. */
	f->c.ring = &f->page.ring;
	f->c.ring_entries = RING_ENTRIES;
}

static void fixture_free(struct fixture *f)
{
	coalesced_io_destroy(&f->c);
	bus_free(&f->pio);
	free(f->latch.values);
	pthread_mutex_destroy(&f->latch.lock);
}

/* KVM's side: appends a write if there is room (one slot always stays free). */
static bool kvm_append(struct kvm_coalesced_mmio_ring *ring, uint64_t port, uint32_t len,
                       uint32_t pio, uint32_t value)
{
	uint32_t last = __atomic_load_n(&ring->last, __ATOMIC_RELAXED);
	uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_ACQUIRE);
	struct kvm_coalesced_mmio *e = &ring->coalesced_mmio[last];

	if ((last + 1) % RING_ENTRIES == first)
		return false;
	e->phys_addr = port;
	e->len = len;
	e->pio = pio;
	memcpy(e->data, &value, sizeof(value));
	__atomic_store_n(&ring->last, (last + 1) % RING_ENTRIES, __ATOMIC_RELEASE);
	return true;
}

START_TEST(replays_in_order_across_the_wrap)
{
	struct fixture f;
	uint32_t next = 0;

	fixture_init(&f, 64);
	/* Start near the end of the ring so that the indices wrap. */
	f.page.ring.first = f.page.ring.last = RING_ENTRIES - 2;
	for (int round = 0; round < 3; round++) {
		while (kvm_append(&f.page.ring, PORT, 4, 1, 0x80000000u | next))
			next++;
		coalesced_io_flush(&f.c);
		ck_assert_uint_eq(f.page.ring.first, f.page.ring.last);
	}
	ck_assert_uint_eq(f.latch.nr, next);
	for (unsigned i = 0; i < f.latch.nr; i++)
		ck_assert_uint_eq(f.latch.values[i], 0x80000000u | i);
	ck_assert_uint_eq(f.c.replayed, next);
	/* Replays are not exits: --stats counts none of them. */
	ck_assert_uint_eq(f.pio.hits[0].total, 0);
	fixture_free(&f);
}
END_TEST

START_TEST(bad_entries_are_skipped)
{
	struct fixture f;

	fixture_init(&f, 8);
	ck_assert(kvm_append(&f.page.ring, PORT, 0, 1, 1)); /* no bytes */
	ck_assert(kvm_append(&f.page.ring, PORT, 9, 1, 2)); /* longer than data[] */
	ck_assert(kvm_append(&f.page.ring, PORT, 4, 0, 3)); /* MMIO: no zone of ours */
	ck_assert(kvm_append(&f.page.ring, 0x80, 4, 1, 4)); /* nobody's port */
	ck_assert(kvm_append(&f.page.ring, PORT, 4, 1, 5));
	coalesced_io_flush(&f.c);
	ck_assert_uint_eq(f.latch.nr, 1);
	ck_assert_uint_eq(f.latch.values[0], 5);
	ck_assert_uint_eq(f.page.ring.first, f.page.ring.last);
	/* Indices out of the ring: nothing is read, nothing moves. */
	f.page.ring.last = RING_ENTRIES + 3;
	coalesced_io_flush(&f.c);
	ck_assert_uint_eq(f.page.ring.first, 5);
	ck_assert_uint_eq(f.latch.nr, 1);
	fixture_free(&f);
}
END_TEST

static void stop_loop(void *opaque, uint32_t events)
{
	(void)events;
	event_loop_stop(opaque);
}

/*
 * A lingering zone's write that no exit follows (a UART's last character before the guest
 * idles) is replayed by the event loop's flush timer; with the zone off the timer stops.
 */
START_TEST(lingering_writes_flushed_by_the_timer)
{
	const struct itimerspec later = {.it_value.tv_nsec = 4 * COALESCED_IO_LINGER_MS * 1000000L};
	struct event_source stop;
	struct event_loop loop;
	struct fixture f;

	fixture_init(&f, 4);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	ck_assert_int_eq(coalesced_io_add_lingering_pio(&f.c, PORT, 4), 0);
	ck_assert_int_eq(coalesced_io_watch(&f.c, &loop), 0);
	ck_assert(f.c.linger_armed);
	ck_assert(kvm_append(&f.page.ring, PORT, 4, 1, 0xabcd));
	/* Four flush periods, then the loop stops. */
	stop = (struct event_source){.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
	                             .handler = stop_loop,
	                             .opaque = &loop};
	ck_assert_int_ge(stop.fd, 0);
	ck_assert_int_eq(timerfd_settime(stop.fd, 0, &later, NULL), 0);
	ck_assert_int_eq(event_loop_add(&loop, &stop, EPOLLIN), 0);
	ck_assert_int_eq(event_loop_run(&loop), 0);
	close(stop.fd);
	ck_assert_uint_eq(f.latch.nr, 1);
	ck_assert_uint_eq(f.latch.values[0], 0xabcd);
	ck_assert_int_eq(coalesced_io_set_pio(&f.c, PORT, false), 0);
	ck_assert(!f.c.linger_armed);
	ck_assert_int_eq(coalesced_io_set_pio(&f.c, PORT, true), 0);
	ck_assert(f.c.linger_armed);
	fixture_free(&f);
	event_loop_free(&loop);
}
END_TEST

START_TEST(zones_and_start_without_kvm)
{
	struct coalesced_io c;
	struct bus pio;

	bus_init(&pio, "pio");
	coalesced_io_init(&c, &pio);
	/* No zones: nothing to register, no ring; flushing is a no-op. */
	ck_assert_int_eq(coalesced_io_start(&c, -1, -1, NULL, 0), 0);
	ck_assert_ptr_null(c.ring);
	coalesced_io_flush(&c);
	for (unsigned i = 0; i < COALESCED_IO_MAX_ZONES; i++)
		ck_assert_int_eq(coalesced_io_add_pio(&c, (uint16_t)(0x70 + i), 1), 0);
	ck_assert_int_eq(coalesced_io_add_pio(&c, 0xcf8, 4), -ENOSPC);
	/* Before start, switching a zone off only keeps it from being registered. */
	ck_assert_int_eq(coalesced_io_set_pio(&c, 0x71, false), 0);
	ck_assert(!c.zone_on[1]);
	ck_assert_int_eq(coalesced_io_set_pio(&c, 0x71, true), 0);
	ck_assert(c.zone_on[1]);
	ck_assert_int_eq(coalesced_io_set_pio(&c, 0x3f8, true), -ENOENT);
	/* No KVM (a bad fd): the capability check fails, writes keep exiting. */
	ck_assert_int_eq(coalesced_io_start(&c, -1, -1, NULL, 0), 0);
	ck_assert_ptr_null(c.ring);
	coalesced_io_destroy(&c);
	bus_free(&pio);
}
END_TEST

#define THREADED_WRITES 50000

struct threaded {
	struct fixture f;
	bool done;
};

static void *flusher(void *opaque)
{
	struct threaded *t = opaque;

	while (!__atomic_load_n(&t->done, __ATOMIC_ACQUIRE))
		coalesced_io_flush(&t->f.c);
	coalesced_io_flush(&t->f.c);
	return NULL;
}

/* Two vCPU threads flush while KVM appends: every write arrives once, in order. */
START_TEST(two_flushers_keep_order)
{
	struct threaded *t = calloc(1, sizeof(*t));
	pthread_t th[2];

	fixture_init(&t->f, THREADED_WRITES);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, flusher, t), 0);
	for (uint32_t v = 0; v < THREADED_WRITES;)
		if (kvm_append(&t->f.page.ring, PORT, 4, 1, v))
			v++;
	__atomic_store_n(&t->done, true, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_uint_eq(t->f.latch.nr, THREADED_WRITES);
	for (uint32_t i = 0; i < THREADED_WRITES; i++)
		ck_assert_uint_eq(t->f.latch.values[i], i);
	ck_assert_uint_eq(t->f.latch.bad_size, 0);
	fixture_free(&t->f);
	free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("coalesced_io");
	TCase *tc = tcase_create("coalesced_io");

	tcase_add_test(tc, replays_in_order_across_the_wrap);
	tcase_add_test(tc, bad_entries_are_skipped);
	tcase_add_test(tc, zones_and_start_without_kvm);
	tcase_add_test(tc, lingering_writes_flushed_by_the_timer);
	tcase_add_test(tc, two_flushers_keep_order);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
