/*
 * Polling a virtqueue (issue 21), below any device: the adaptive window's state machine driven
 * with made-up clocks (grow, hit, shrink, cap, off), and the virtqueue's notification switch
 * against a driver that decides to notify as Linux does (NO_NOTIFY without EVENT_IDX,
 * avail_event with it), including the chain published just before notifications come back on,
 * which vq_notify_on must report (else it would wait for a notification that never comes).
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "devices/virtio/poll_window.h"
#include "devices/virtio/virtqueue.h"
#include "tests/support/vring_builder.h"
#include "tests/unit/unit.h"
#include "vmm/util.h"

#define RAM   (1 * MIB)
#define QSIZE 16
#define US    1000u
#define T0    1000000000ull /* any non-zero start */

/* ---- the window ---- */

START_TEST(window_starts_closed_and_grows)
{
	struct poll_window w;

	poll_window_init(&w, 50 * US);
	ck_assert_uint_eq(poll_window_idle(&w, T0), 0); /* nothing earned yet: sleep */
	poll_window_work(&w, T0 + 30 * US);             /* a notification 30 us later */
	ck_assert_uint_eq(w.ns, POLL_WINDOW_START_NS);
	ck_assert_uint_eq(w.grows, 1);
	/* Gaps past the window but under the cap double it, up to the cap. */
	for (unsigned i = 0; i < 10; i++) {
		ck_assert_uint_eq(poll_window_idle(&w, T0), w.ns);
		poll_window_work(&w, T0 + 49 * US);
	}
	ck_assert_uint_eq(w.ns, 50 * US);
}
END_TEST

START_TEST(window_hit_keeps_it)
{
	struct poll_window w;

	poll_window_init(&w, 50 * US);
	w.ns = 16 * US;
	ck_assert_uint_eq(poll_window_idle(&w, T0), 16 * US);
	poll_window_work(&w, T0 + 16 * US);
	ck_assert_uint_eq(w.ns, 16 * US);
	ck_assert_uint_eq(w.hits, 1);
	/* Work with no idle period before it changes nothing. */
	poll_window_work(&w, T0 + 900 * US);
	ck_assert_uint_eq(w.ns, 16 * US);
	ck_assert_uint_eq(w.hits + w.grows + w.shrinks, 1);
}
END_TEST

START_TEST(window_shrinks_when_idle_past_the_cap)
{
	struct poll_window w;

	poll_window_init(&w, 50 * US);
	w.ns = 40 * US;
	poll_window_idle(&w, T0);
	poll_window_idle(&w, T0 + 60 * US); /* still idle: the gap runs from the first */
	poll_window_work(&w, T0 + 60 * US);
	ck_assert_uint_eq(w.ns, 20 * US);
	for (unsigned i = 0; i < 3; i++) {
		poll_window_idle(&w, T0);
		poll_window_work(&w, T0 + 1000 * US);
	}
	ck_assert_uint_eq(w.ns, 0); /* 20, 10, 5, then halved below the start: closed */
	ck_assert_uint_eq(w.shrinks, 4);
	poll_window_idle(&w, T0);
	poll_window_work(&w, T0 + 1000 * US); /* closed stays closed */
	ck_assert_uint_eq(w.ns, 0);
	ck_assert_uint_eq(w.shrinks, 4);
}
END_TEST

START_TEST(window_off_and_capped)
{
	struct poll_window w;

	poll_window_init(&w, 0); /* off: never opens */
	for (unsigned i = 0; i < 5; i++) {
		ck_assert_uint_eq(poll_window_idle(&w, T0), 0);
		poll_window_work(&w, T0 + 1);
	}
	ck_assert_uint_eq(w.ns, 0);
	poll_window_init(&w, 3 * POLL_WINDOW_MAX_NS);
	ck_assert_uint_eq(w.max_ns, POLL_WINDOW_MAX_NS);
	poll_window_init(&w, 1000); /* a cap under the start: the start is the cap */
	poll_window_idle(&w, T0);
	poll_window_work(&w, T0 + 999);
	ck_assert_uint_eq(w.ns, 1000);
	/* A clock that went backwards counts as no gap. */
	poll_window_idle(&w, T0);
	poll_window_work(&w, T0 - 5);
	ck_assert_uint_eq(w.ns, 1000);
}
END_TEST

/* ---- the virtqueue's switch ---- */

static struct guest_memory mem;
static struct vring_builder b;
static struct virtqueue vq;
static struct vq_chain chain;

static void ring_up(bool event_idx)
{
	memset(&vq, 0, sizeof(vq));
	vrb_init(&b, &mem, 0x10000, 0x70000, QSIZE);
	vrb_attach(&b, &vq);
	vq.event_idx = event_idx;
	ck_assert_int_eq(vq_activate(&vq, QSIZE), 0);
}

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM), 0);
}

static void teardown(void)
{
	guest_memory_free(&mem);
}

/* The driver adds one chain; returns whether it would notify. */
static bool add_chain(bool event_idx)
{
	uint16_t old = b.avail_idx, i = (uint16_t)(b.avail_idx % QSIZE);

	vrb_desc(&b, i, vrb_alloc(&b, 4), 4, VRB_F_WRITE, 0);
	vrb_publish(&b, i);
	return vrb_driver_would_notify(&b, old, event_idx);
}

static void drain(void)
{
	while (vq_pop_chain(&vq, &chain) == 1)
		ck_assert_int_eq(vq_push_used(&vq, chain.head, 0), 0);
}

/* A driver adding chains while the device polls never notifies; afterwards it does again. */
static void switch_cycle(bool event_idx)
{
	ring_up(event_idx);
	ck_assert(add_chain(event_idx)); /* notifications on at the start */
	drain();
	vq_notify_off(&vq);
	ck_assert(!vq_has_avail(&vq));
	for (unsigned i = 0; i < 3 * QSIZE; i++) { /* wraps the ring and more */
		ck_assert_msg(!add_chain(event_idx), "notified while polled (chain %u)", i);
		ck_assert(vq_has_avail(&vq));
		drain(); /* finding the ring empty must not ask for a notification */
	}
	ck_assert(!vq_notify_on(&vq)); /* nothing came meanwhile */
	ck_assert(add_chain(event_idx));
	drain();
	/* A chain published just before notifications come on is reported, not lost. */
	vq_notify_off(&vq);
	ck_assert(!add_chain(event_idx));
	ck_assert(vq_notify_on(&vq));
	drain();
	ck_assert(!vq_has_avail(&vq));
	ck_assert(add_chain(event_idx));
}

START_TEST(switch_no_notify_flag)
{
	switch_cycle(false);
	vq_notify_off(&vq);
	ck_assert_uint_eq(vrb_used_flags(&b), 1);
	ck_assert(vq_notify_on(&vq)); /* the chain switch_cycle left */
	ck_assert_uint_eq(vrb_used_flags(&b), 0);
}
END_TEST

START_TEST(switch_event_idx)
{
	switch_cycle(true);
	drain();
	vq_notify_off(&vq);
	ck_assert_uint_eq(vrb_used_flags(&b), 0); /* EVENT_IDX: the flag is not used */
	ck_assert(!vq_notify_on(&vq));
	ck_assert_uint_eq(vrb_avail_event(&b), b.avail_idx);
}
END_TEST

/* The switch on a hostile or absent ring: no effect, no fault, chains checked as ever. */
START_TEST(switch_hostile)
{
	struct virtqueue idle = {0};

	vq_notify_off(&idle); /* never activated */
	ck_assert(!idle.notify_off);
	ck_assert(!vq_notify_on(&idle));
	ck_assert(!vq_has_avail(&idle));
	ring_up(false);
	vq_notify_off(&vq);
	vrb_set_avail_idx(&b, QSIZE + 1); /* jumps by more than the queue size */
	ck_assert(vq_has_avail(&vq));     /* the check says "look"; the pop refuses */
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), -EINVAL);
	ck_assert(vq_notify_on(&vq));
	vq_reset(&vq); /* a reset forgets the switch with the rest */
	ck_assert(!vq.notify_off);
}
END_TEST

static Suite *vq_poll_suite(void)
{
	Suite *s = suite_create("vq_poll");
	TCase *tw = tcase_create("window");
	TCase *tq = tcase_create("virtqueue");

	tcase_add_test(tw, window_starts_closed_and_grows);
	tcase_add_test(tw, window_hit_keeps_it);
	tcase_add_test(tw, window_shrinks_when_idle_past_the_cap);
	tcase_add_test(tw, window_off_and_capped);
	suite_add_tcase(s, tw);
	tcase_add_checked_fixture(tq, setup, teardown);
	tcase_add_test(tq, switch_no_notify_flag);
	tcase_add_test(tq, switch_event_idx);
	tcase_add_test(tq, switch_hostile);
	suite_add_tcase(s, tq);
	return s;
}

int main(void)
{
	return unit_run(vq_poll_suite());
}
