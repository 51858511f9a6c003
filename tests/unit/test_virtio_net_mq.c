/*
 * virtio-net with several queue pairs (VIRTIO_NET_F_MQ) over hand-built rings and one fake
 * backend per pair: the queue layout and config, pair 0 alone until the driver's
 * VQ_PAIRS_SET, every pair's receive and transmit once enabled (one interrupt per batch),
 * counts the command must refuse, pairs given up (stash back to the ring, backend detached),
 * reset, a snapshot of the pairs in use, and a malformed chain on every queue. Then two
 * threads as vmm has them: a "vCPU" resetting the device and bringing it up again while the
 * "loop" serves backend events, notifications and VQ_PAIRS_SET (also run under TSan).
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "tests/support/blk_ring.h"
#include "tests/support/loop_harness.h"
#include "tests/support/net_fake.h"
#include "tests/support/tap_host.h"
#include "tests/support/virtio_driver.h"
#include "tests/support/virtio_snapshot.h"
#include "tests/unit/unit.h"

#define HDR    VIRTIO_NET_HDR_LEN
#define PAIRS  4
#define CTLQ   (2 * PAIRS)
#define BIT(n) (1ULL << (n))

static const uint8_t test_mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x66};

struct fixture {
	struct guest_memory mem;
	struct event_loop loop;
	struct net_fake fake[PAIRS];
	struct virtio_net net;
	struct test_ring ring[2 * PAIRS + 1]; /* by queue index; ctrl at CTLQ or 2 */
	unsigned ctrl_q;
	unsigned interrupts[VIRTIO_MAX_QUEUES], config_interrupts;
};

static void count_interrupt(void *opaque, int q)
{
	struct fixture *f = opaque;

	if (q < 0)
		f->config_interrupts++;
	else
		f->interrupts[q]++;
}

static uint64_t all_features(const struct fixture *f)
{
	return f->net.vdev.device_features & ~BIT(VIRTIO_F_EVENT_IDX);
}

/* Negotiates @features; places every queue's ring (with MQ) or pair 0's and the control's. */
static void driver_up(struct fixture *f, uint64_t features)
{
	struct virtio_dev *dev = &f->net.vdev;
	bool mq = features & BIT(VIRTIO_NET_F_MQ);
	unsigned nq = mq ? 2 * PAIRS + 1 : 3;
	uint8_t st;

	pthread_mutex_lock(&dev->lock);
	st = test_virtio_negotiate(dev, features);
	ck_assert(dev->status & VIRTIO_STATUS_FEATURES_OK);
	f->ctrl_q = mq ? CTLQ : 2;
	for (unsigned q = 0; q < nq; q++)
		test_ring_init(&f->ring[q], &f->mem, 0x100000ULL * (q + 1), 0xf0000, 64,
		               &dev->queues[q]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET),
	                  VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
}

static struct fixture *setup_with(unsigned pairs, uint64_t features, bool all)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct virtio_net_backend be[PAIRS];

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 16 * MIB), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	for (unsigned i = 0; i < PAIRS; i++) {
		net_fake_init_queue(&f->fake[i]);
		be[i] = f->fake[i].be;
	}
	ck_assert_int_eq(virtio_net_init(&f->net, "mq0", test_mac, &f->mem, &f->loop, be, pairs),
	                 0);
	f->net.vdev.transport = (struct virtio_transport){count_interrupt, f};
	if (all)
		features = all_features(f);
	if (features)
		driver_up(f, features);
	return f;
}

static struct fixture *setup(void)
{
	return setup_with(PAIRS, 0, true);
}

static void teardown(struct fixture *f)
{
	virtio_net_close(&f->net);
	for (unsigned i = 0; i < PAIRS; i++)
		net_fake_free(&f->fake[i]);
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	free(f);
}

static void notify(struct fixture *f, unsigned q)
{
	f->net.vdev.ops->queue_notify(&f->net.vdev, q);
}

static void backend(struct fixture *f, unsigned pair, uint32_t events)
{
	f->net.pairs[pair].src.handler(f->net.pairs[pair].src.opaque, events);
}

static bool needs_reset(const struct fixture *f)
{
	return f->net.vdev.status & VIRTIO_STATUS_NEEDS_RESET;
}

static size_t make_packet(uint8_t *buf, size_t frame_len, unsigned seed)
{
	memset(buf, 0, HDR);
	for (size_t i = 0; i < frame_len; i++)
		buf[HDR + i] = (uint8_t)(i * 13 + seed);
	return HDR + frame_len;
}

static struct test_buf data_buf(struct test_ring *r, const void *data, uint32_t len)
{
	struct test_buf b = {test_ring_alloc(r, len), len, false};

	memcpy(test_ring_host(r, b.gpa, len ? len : 1), data, len);
	return b;
}

static struct test_buf rx_post(struct fixture *f, unsigned q, uint32_t len, uint16_t *head)
{
	struct test_buf b = {test_ring_alloc(&f->ring[q], len), len, true};

	*head = test_ring_add(&f->ring[q], &b, 1);
	return b;
}

static void expect_used(struct test_ring *r, uint16_t head, uint32_t len)
{
	uint32_t id, l;

	ck_assert_msg(test_ring_used(r, &id, &l), "no used entry for head %u", head);
	ck_assert_uint_eq(id, head);
	ck_assert_uint_eq(l, len);
}

static bool no_used(struct test_ring *r)
{
	uint32_t id, l;

	return !test_ring_used(r, &id, &l);
}

/* Sends control command @cmd (@len bytes) with a status byte; returns the status. */
static uint8_t control(struct fixture *f, const void *cmd, uint32_t len)
{
	struct test_ring *r = &f->ring[f->ctrl_q];
	struct test_buf b[2] = {data_buf(r, cmd, len), {test_ring_alloc(r, 1), 1, true}};
	uint16_t head;

	*(uint8_t *)test_ring_host(r, b[1].gpa, 1) = 0xee;
	head = test_ring_add(r, b, 2);
	notify(f, f->ctrl_q);
	expect_used(r, head, 1);
	return *(uint8_t *)test_ring_host(r, b[1].gpa, 1);
}

static uint8_t set_pairs(struct fixture *f, uint16_t pairs)
{
	uint8_t cmd[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, (uint8_t)pairs,
	                  (uint8_t)(pairs >> 8)};

	return control(f, cmd, sizeof(cmd));
}

static void expect_attached(const struct fixture *f, unsigned pairs)
{
	ck_assert_uint_eq(f->net.curr_pairs, pairs);
	for (unsigned i = 0; i < PAIRS; i++) {
		ck_assert_msg(f->fake[i].detached == (i >= pairs), "pair %u detached: %d", i,
		              f->fake[i].detached);
		ck_assert_uint_eq(f->net.pairs[i].enabled, i < pairs);
		ck_assert_uint_eq(f->net.pairs[i].registered, i < pairs);
		ck_assert_uint_eq(f->fake[i].detached_calls, 0);
	}
}

START_TEST(layout_and_config)
{
	struct fixture *f = setup_with(PAIRS, 0, false);
	struct virtio_net_backend be = f->fake[0].be;
	struct virtio_net one;
	uint16_t max;

	virtio_read_config(&f->net.vdev, 8, &max, 2);
	ck_assert_uint_eq(le16toh(max), PAIRS);
	ck_assert(f->net.vdev.device_features & BIT(VIRTIO_NET_F_MQ));
	ck_assert(f->net.vdev.device_features & BIT(VIRTIO_NET_F_CTRL_VQ));
	ck_assert_uint_eq(f->net.vdev.ops->num_queues, 2 * PAIRS + 1);
	/* Created attached (as a TAP opens its queues): all but pair 0 detached at once. */
	expect_attached(f, 1);
	teardown(f);

	/* One pair: today's three queues, no MQ. */
	f = setup_with(1, 0, false);
	ck_assert(!(f->net.vdev.device_features & BIT(VIRTIO_NET_F_MQ)));
	ck_assert_uint_eq(f->net.vdev.ops->num_queues, 3);
	virtio_read_config(&f->net.vdev, 8, &max, 2);
	ck_assert_uint_eq(le16toh(max), 1);
	ck_assert_uint_eq(f->fake[1].queue_calls, 0);
	teardown(f);

	ck_assert_int_eq(virtio_net_init(&one, "x", test_mac, NULL, NULL, &be, 0), -EINVAL);
	ck_assert_int_eq(
	        virtio_net_init(&one, "x", test_mac, NULL, NULL, &be, VIRTIO_NET_MAX_PAIRS + 1),
	        -EINVAL);
}
END_TEST

/* Until VQ_PAIRS_SET only pair 0 carries packets; a transmit elsewhere goes back unsent. */
START_TEST(pair0_alone_until_set)
{
	struct fixture *f = setup();
	uint8_t pkt[HDR + 60];
	size_t len = make_packet(pkt, 60, 1);
	struct test_buf tb = data_buf(&f->ring[3], pkt, (uint32_t)len);
	uint16_t h0, h1, th = test_ring_add(&f->ring[3], &tb, 1);

	ck_assert_uint_eq(f->net.curr_pairs, 1);
	rx_post(f, 0, 2048, &h0);
	rx_post(f, 2, 2048, &h1);
	net_fake_offer(&f->fake[0], pkt, len);
	net_fake_offer(&f->fake[1], pkt, len);
	backend(f, 0, EPOLLIN);
	backend(f, 1, EPOLLIN); /* an event collected before the pair was disabled */
	expect_used(&f->ring[0], h0, (uint32_t)len);
	ck_assert(no_used(&f->ring[2]));
	ck_assert_uint_eq(f->fake[1].recvs, 0);
	ck_assert_uint_eq(net_fake_pending(&f->fake[1]), 1);

	notify(f, 3);
	expect_used(&f->ring[3], th, 0);
	ck_assert_uint_eq(f->fake[1].sends, 0);
	ck_assert_uint_eq(f->net.pairs[1].stats.tx_dropped, 1);
	ck_assert_uint_eq(f->interrupts[3], 1);
	notify(f, 2); /* receive buffers on a disabled pair wait */
	ck_assert(no_used(&f->ring[2]));
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

/* With every pair enabled each one receives and transmits on its own queues and backend. */
START_TEST(every_pair_carries_its_traffic)
{
	struct fixture *f = setup();

	ck_assert_uint_eq(set_pairs(f, PAIRS), VIRTIO_NET_OK);
	expect_attached(f, PAIRS);
	memset(f->interrupts, 0, sizeof(f->interrupts));
	for (unsigned i = 0; i < PAIRS; i++) {
		unsigned rq = 2 * i, tq = 2 * i + 1;
		uint8_t pkt[3][HDR + 200], out[HDR + 90];
		size_t len = make_packet(out, 90, 50 + i);
		struct test_buf b[3], tb = data_buf(&f->ring[tq], out, (uint32_t)len);
		uint16_t h[3], th = test_ring_add(&f->ring[tq], &tb, 1);

		for (unsigned k = 0; k < 3; k++) {
			b[k] = rx_post(f, rq, 1024, &h[k]);
			net_fake_offer(&f->fake[i], pkt[k], make_packet(pkt[k], 200, 10 * i + k));
		}
		backend(f, i, EPOLLIN);
		for (unsigned k = 0; k < 3; k++) {
			expect_used(&f->ring[rq], h[k], HDR + 200);
			ck_assert_mem_eq(test_ring_host(&f->ring[rq], b[k].gpa + HDR, 200),
			                 pkt[k] + HDR, 200);
		}
		/* One interrupt for the batch of three, on this pair's receive queue only. */
		ck_assert_uint_eq(f->interrupts[rq], 1);
		notify(f, tq);
		expect_used(&f->ring[tq], th, 0);
		ck_assert_uint_eq(f->interrupts[tq], 1);
		ck_assert_uint_eq(f->fake[i].nr_tx, 1);
		ck_assert_mem_eq(f->fake[i].tx[0].data, out, len);
		ck_assert_uint_eq(f->net.pairs[i].stats.rx_packets, 3);
		ck_assert_uint_eq(f->net.pairs[i].stats.tx_packets, 1);
		for (unsigned j = 0; j < PAIRS; j++) {
			if (j != i) /* nothing crossed to another pair */
				ck_assert_uint_eq(f->fake[j].nr_tx, j < i);
		}
	}
	ck_assert_uint_eq(f->interrupts[CTLQ], 0);
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

/*
 * A 64 KiB TSO frame (gso_type TCPV4, spread over 17 buffers of an indirect table, as Linux
 * sends one) leaves as one packet, whole: nothing on the way caps the guest's GSO size.
 */
START_TEST(tso_frame_leaves_whole)
{
	struct fixture *f = setup();
	enum { PARTS = 17, PART = 3840 };
	static uint8_t pkt[HDR + PARTS * PART];
	struct test_buf b[PARTS + 1];
	struct test_ring *r = &f->ring[3];
	uint16_t head;

	ck_assert_uint_eq(set_pairs(f, 2), VIRTIO_NET_OK);
	make_packet(pkt, PARTS * PART, 9);
	pkt[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	pkt[1] = VIRTIO_NET_HDR_GSO_TCPV4;
	b[0] = data_buf(r, pkt, HDR);
	for (unsigned i = 0; i < PARTS; i++)
		b[i + 1] = data_buf(r, pkt + HDR + i * PART, PART);
	head = test_ring_add_indirect(r, b, PARTS + 1);
	notify(f, 3);
	expect_used(r, head, 0);
	ck_assert_uint_eq(f->fake[1].nr_tx, 1);
	ck_assert_uint_eq(f->fake[1].tx[0].len, sizeof(pkt));
	ck_assert_mem_eq(f->fake[1].tx[0].data, pkt, sizeof(pkt));
	ck_assert_uint_eq(f->net.pairs[1].stats.tx_gso_packets, 1);
	ck_assert_uint_eq(f->net.pairs[1].stats.tx_max_bytes, PARTS * PART);
	teardown(f);
}
END_TEST

/* VQ_PAIRS_SET outside 1..max, malformed, or without MQ: VIRTIO_NET_ERR, nothing changes. */
START_TEST(bad_pair_counts_refused)
{
	struct fixture *f = setup();
	const uint8_t short_cmd[] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2};
	const uint8_t long_cmd[] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0, 0};
	const uint8_t bad_cmd[] = {VIRTIO_NET_CTRL_MQ, 1, 2, 0};
	const uint16_t bad[] = {0, PAIRS + 1, 0x8000, 0xffff};

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		ck_assert_uint_eq(set_pairs(f, bad[i]), VIRTIO_NET_ERR);
		expect_attached(f, 1);
	}
	ck_assert_uint_eq(control(f, short_cmd, sizeof(short_cmd)), VIRTIO_NET_ERR);
	ck_assert_uint_eq(control(f, long_cmd, sizeof(long_cmd)), VIRTIO_NET_ERR);
	ck_assert_uint_eq(control(f, bad_cmd, sizeof(bad_cmd)), VIRTIO_NET_ERR);
	expect_attached(f, 1);
	ck_assert_uint_eq(set_pairs(f, 2), VIRTIO_NET_OK);
	expect_attached(f, 2);
	ck_assert_uint_eq(set_pairs(f, PAIRS + 1), VIRTIO_NET_ERR);
	expect_attached(f, 2);
	ck_assert_uint_eq(set_pairs(f, 2), VIRTIO_NET_OK); /* the same count again: no calls */
	ck_assert_uint_eq(f->fake[1].queue_calls, 2);
	/* A backend that cannot attach: refused, the pairs in use stay. */
	f->fake[2].queue_error = -EIO;
	ck_assert_uint_eq(set_pairs(f, 4), VIRTIO_NET_ERR);
	f->fake[2].queue_error = 0;
	expect_attached(f, 2);
	ck_assert(!needs_reset(f));
	teardown(f);

	/* MQ not negotiated: the control queue is queue 2 and MQ commands are refused. */
	f = setup_with(PAIRS, 0, false);
	driver_up(f, all_features(f) & ~BIT(VIRTIO_NET_F_MQ));
	ck_assert_uint_eq(f->ctrl_q, 2);
	ck_assert_uint_eq(set_pairs(f, 2), VIRTIO_NET_ERR);
	expect_attached(f, 1);
	notify(f, 3); /* not a queue of this layout: ignored */
	notify(f, CTLQ);
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

/* Fewer pairs: a disabled pair's stash returns to its ring, a held packet to the driver. */
START_TEST(shrinking_gives_chains_back)
{
	struct fixture *f = setup();
	uint8_t pkt[HDR + 100], out[HDR + 40];
	size_t len = make_packet(pkt, 100, 7), olen = make_packet(out, 40, 8);
	struct test_buf tb = data_buf(&f->ring[3], out, (uint32_t)olen);
	uint16_t h[4], th;

	ck_assert_uint_eq(set_pairs(f, 2), VIRTIO_NET_OK);
	for (unsigned k = 0; k < 4; k++)
		rx_post(f, 2, 1024, &h[k]);
	backend(f, 1, EPOLLIN); /* stashes chains, finds no packet */
	ck_assert_uint_gt(f->net.pairs[1].rx_nr, 0);
	th = test_ring_add(&f->ring[3], &tb, 1);
	f->fake[1].eagain = 1;
	notify(f, 3);
	ck_assert(f->net.pairs[1].tx_held);

	ck_assert_uint_eq(set_pairs(f, 1), VIRTIO_NET_OK);
	expect_attached(f, 1);
	ck_assert_uint_eq(f->net.pairs[1].rx_nr, 0);
	ck_assert_uint_eq(f->net.vdev.queues[2].last_avail_idx, 0);
	expect_used(&f->ring[3], th, 0); /* back unsent */
	ck_assert_uint_eq(f->net.pairs[1].stats.tx_dropped, 1);
	ck_assert(no_used(&f->ring[2]));

	/* Enabled again, the pair takes its receive buffers from the first one. */
	ck_assert_uint_eq(set_pairs(f, 2), VIRTIO_NET_OK);
	expect_attached(f, 2);
	net_fake_offer(&f->fake[1], pkt, len);
	backend(f, 1, EPOLLIN);
	expect_used(&f->ring[2], h[0], (uint32_t)len);
	ck_assert(!needs_reset(f));
	teardown(f);
}
END_TEST

START_TEST(reset_detaches_pairs)
{
	struct fixture *f = setup();

	ck_assert_uint_eq(set_pairs(f, PAIRS), VIRTIO_NET_OK);
	expect_attached(f, PAIRS);
	pthread_mutex_lock(&f->net.vdev.lock);
	virtio_write_status(&f->net.vdev, 0);
	pthread_mutex_unlock(&f->net.vdev.lock);
	expect_attached(f, 1);
	driver_up(f, all_features(f));
	expect_attached(f, 1);
	ck_assert_uint_eq(set_pairs(f, 3), VIRTIO_NET_OK);
	expect_attached(f, 3);
	teardown(f);
}
END_TEST

/* A snapshot keeps the pairs in use; the restored device attaches and serves them. */
START_TEST(snapshot_keeps_pairs)
{
	struct fixture *f = setup();
	struct virtio_net *copy = calloc(1, sizeof(*copy));
	struct net_fake fake2[PAIRS];
	struct virtio_net_backend be[PAIRS];
	uint8_t pkt[HDR + 100];
	size_t len = make_packet(pkt, 100, 3);
	struct test_snapshot snap;
	char err[256] = "";
	uint16_t h;

	ck_assert_ptr_nonnull(copy);
	ck_assert_uint_eq(set_pairs(f, 3), VIRTIO_NET_OK);
	rx_post(f, 4, 2048, &h);
	backend(f, 2, EPOLLIN); /* stashed, no packet: the snapshot gives it back */
	ck_assert_uint_eq(f->net.pairs[2].rx_nr, 1);
	test_snapshot_take(&f->net.vdev, &snap);

	for (unsigned i = 0; i < PAIRS; i++) {
		net_fake_init_queue(&fake2[i]);
		be[i] = fake2[i].be;
	}
	ck_assert_int_eq(virtio_net_init(copy, "mq1", test_mac, &f->mem, &f->loop, be, PAIRS), 0);
	copy->vdev.transport = (struct virtio_transport){count_interrupt, f};
	ck_assert_msg(virtio_dev_load(&copy->vdev, &snap.section, err, sizeof(err)) == 0, "%s",
	              err);
	ck_assert_uint_eq(copy->curr_pairs, 3);
	ck_assert(copy->mq);
	for (unsigned i = 0; i < PAIRS; i++) {
		ck_assert_uint_eq(fake2[i].detached, i >= 3);
		ck_assert_uint_eq(copy->pairs[i].enabled, i < 3);
	}
	ck_assert_uint_eq(copy->vdev.queues[4].last_avail_idx, 0);
	net_fake_offer(&fake2[2], pkt, len);
	copy->pairs[2].src.handler(copy->pairs[2].src.opaque, EPOLLIN);
	expect_used(&f->ring[4], h, (uint32_t)len);
	ck_assert_uint_eq(fake2[3].recvs, 0);

	test_snapshot_free(&snap);
	virtio_net_close(copy);
	for (unsigned i = 0; i < PAIRS; i++)
		net_fake_free(&fake2[i]);
	free(copy);
	teardown(f);
}
END_TEST

/* A malformed chain on any queue, enabled pair or not, needs a reset and nothing else. */
START_TEST(malformed_chain_on_every_queue)
{
	for (unsigned q = 0; q <= 2 * PAIRS; q++) {
		for (unsigned enabled = 0; enabled < 2; enabled++) {
			struct fixture *f = setup();
			unsigned pair = q / 2;

			if (enabled)
				ck_assert_uint_eq(set_pairs(f, PAIRS), VIRTIO_NET_OK);
			test_ring_set_desc(&f->ring[q], 0, f->ring[q].data_next, 16,
			                   TEST_DESC_F_NEXT, 0); /* links to itself */
			test_ring_publish(&f->ring[q], 0);
			notify(f, q);
			if (q < CTLQ && q % 2 == 0 && pair < f->net.curr_pairs)
				backend(f, pair, EPOLLIN);
			if (q < CTLQ && q % 2 == 0 && pair >= f->net.curr_pairs)
				ck_assert(!needs_reset(f)); /* not read while disabled */
			else
				ck_assert_msg(needs_reset(f), "queue %u, %s", q,
				              enabled ? "all pairs" : "one pair");
			for (unsigned i = 0; i < PAIRS; i++) {
				ck_assert_uint_eq(f->fake[i].nr_tx, 0);
				ck_assert_uint_eq(f->fake[i].detached_calls, 0);
			}
			teardown(f);
		}
	}
}
END_TEST

/*
 * The vCPU thread's part: resets and DRIVER_OK (activate attaches, reset detaches pairs), as
 * register writes do, under the device lock; the rings are placed under it too, so the loop
 * thread, which builds control chains under it, never sees them half-made.
 */
static void *vcpu_thread(void *opaque)
{
	struct fixture *f = opaque;

	for (unsigned i = 0; i < 300; i++) {
		pthread_mutex_lock(&f->net.vdev.lock);
		virtio_write_status(&f->net.vdev, 0);
		pthread_mutex_unlock(&f->net.vdev.lock);
		driver_up(f, all_features(f));
	}
	return NULL;
}

/*
 * The loop thread's part: backend events on every pair, every queue notified, pair counts, and
 * a round of the loop's posted work (the transmit polls).
 */
static void loop_round(struct fixture *f, unsigned i)
{
	uint8_t cmd[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
	                  (uint8_t)(1 + i % PAIRS), 0};
	uint32_t id, len;
	unsigned q;

	pthread_mutex_lock(&f->net.vdev.lock);
	q = f->ctrl_q;
	if (f->ring[q].size) {
		struct test_ring *r = &f->ring[q];
		struct test_buf b[2] = {data_buf(r, cmd, sizeof(cmd)),
		                        {test_ring_alloc(r, 1), 1, true}};

		test_ring_add(r, b, 2);
	}
	pthread_mutex_unlock(&f->net.vdev.lock);
	notify(f, q);
	for (unsigned p = 0; p < PAIRS; p++) {
		backend(f, p, EPOLLIN | EPOLLOUT);
		notify(f, 2 * p);
		notify(f, 2 * p + 1);
	}
	test_loop_serve_once(&f->loop);
	pthread_mutex_lock(&f->net.vdev.lock);
	while (test_ring_used(&f->ring[q], &id, &len))
		;
	pthread_mutex_unlock(&f->net.vdev.lock);
}

START_TEST(reset_races_loop_work)
{
	struct fixture *f = setup();
	pthread_t vcpu;

	ck_assert_int_eq(virtio_net_set_poll(&f->net, POLL_WINDOW_MAX_NS), 0);
	ck_assert_int_eq(pthread_create(&vcpu, NULL, vcpu_thread, f), 0);
	for (unsigned i = 0; i < 3000; i++)
		loop_round(f, i);
	ck_assert_int_eq(pthread_join(vcpu, NULL), 0);
	ck_assert(!needs_reset(f));
	for (unsigned i = 0; i < PAIRS; i++)
		ck_assert_uint_eq(f->fake[i].detached_calls, 0);
	ck_assert_uint_ge(f->net.curr_pairs, 1);
	teardown(f);
}
END_TEST

/*
 * A real multi-queue TAP (needs CAP_NET_ADMIN; skipped otherwise): the interface has as many
 * queues as the driver enabled pairs, and each enabled pair transmits through its own fd.
 */
START_TEST(real_tap_follows_pairs)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char name[IFNAMSIZ], err[256];
	int r;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 16 * MIB), 0);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	snprintf(name, sizeof(name), "vmmp%u", (unsigned)getpid() % 100000);
	r = virtio_net_open(&f->net, name, PAIRS, true, test_mac, &f->mem, &f->loop, err,
	                    sizeof(err));
	if (r == -EPERM || r == -EACCES || r == -ENOENT || r == -ENODEV || r == -ENXIO) {
		printf("real TAP test skipped: %s\n", err);
		goto out;
	}
	ck_assert_msg(r == 0, "%s", err);
	f->net.vdev.transport = (struct virtio_transport){count_interrupt, f};
	ck_assert_int_eq(tap_host_link_up(name), 0);
	ck_assert_int_eq(tap_host_tx_queues(name), 1);
	driver_up(f, all_features(f));
	ck_assert_int_eq(tap_host_tx_queues(name), 1);
	ck_assert_uint_eq(set_pairs(f, PAIRS), VIRTIO_NET_OK);
	ck_assert_int_eq(tap_host_tx_queues(name), PAIRS);
	for (unsigned i = 0; i < PAIRS; i++) {
		uint8_t pkt[HDR + 60];
		size_t len = make_packet(pkt, 60, i);
		struct test_buf tb;
		uint16_t th;

		memset(pkt + HDR, 0xff, 6); /* broadcast, from our MAC, EtherType 0x88b5 */
		memcpy(pkt + HDR + 6, test_mac, 6);
		pkt[HDR + 12] = 0x88;
		pkt[HDR + 13] = 0xb5;
		tb = data_buf(&f->ring[2 * i + 1], pkt, (uint32_t)len);
		th = test_ring_add(&f->ring[2 * i + 1], &tb, 1);
		notify(f, 2 * i + 1);
		expect_used(&f->ring[2 * i + 1], th, 0);
		ck_assert_uint_eq(f->net.pairs[i].stats.tx_packets, 1);
		ck_assert_uint_eq(f->net.pairs[i].stats.tx_dropped, 0);
	}
	ck_assert_uint_eq(set_pairs(f, 2), VIRTIO_NET_OK);
	ck_assert_int_eq(tap_host_tx_queues(name), 2);
	pthread_mutex_lock(&f->net.vdev.lock);
	virtio_write_status(&f->net.vdev, 0);
	pthread_mutex_unlock(&f->net.vdev.lock);
	ck_assert_int_eq(tap_host_tx_queues(name), 1);
out:
	virtio_net_close(&f->net);
	event_loop_free(&f->loop);
	guest_memory_free(&f->mem);
	free(f);
}
END_TEST

static Suite *net_mq_suite(void)
{
	Suite *s = suite_create("virtio_net_mq");
	TCase *tc = tcase_create("mq");

	tcase_add_test(tc, layout_and_config);
	tcase_add_test(tc, pair0_alone_until_set);
	tcase_add_test(tc, every_pair_carries_its_traffic);
	tcase_add_test(tc, tso_frame_leaves_whole);
	tcase_add_test(tc, bad_pair_counts_refused);
	tcase_add_test(tc, shrinking_gives_chains_back);
	tcase_add_test(tc, reset_detaches_pairs);
	tcase_add_test(tc, snapshot_keeps_pairs);
	tcase_add_test(tc, malformed_chain_on_every_queue);
	tcase_add_test(tc, reset_races_loop_work);
	tcase_add_test(tc, real_tap_follows_pairs);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(net_mq_suite());
}
