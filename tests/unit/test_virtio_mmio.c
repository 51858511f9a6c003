/*
 * virtio-mmio through the bus, as a driver sees it: identity registers, access sizes, feature
 * negotiation (FEATURES_OK refused for unoffered bits or without VERSION_1), the status
 * machine, QueueSel bounds, queue set-up and DRIVER_OK (a bad ring sets NEEDS_RESET with a
 * config interrupt), reset, the config space, notifications, and virtio-rng end to end.
 * No VM: vm_fd is -1, so notifications reach the bus and interrupts go to a test hook. A
 * notification on the bus is only handed to the event loop; the device sees it when the test
 * runs the loop (run_loop), never inside the bus access (issue 17).
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_mmio.h"
#include "tests/support/loop_harness.h"
#include "tests/support/vring_builder.h"
#include "tests/unit/unit.h"
#include "vmm/event_loop.h"
#include "vmm/snapshot.h"
#include "vmm/util.h"

#define RAM  (1 * MIB)
#define BASE 0xd0000000ULL

#define R(name) VIRTIO_MMIO_REG_##name

#define ACK    VIRTIO_STATUS_ACKNOWLEDGE
#define DRV    VIRTIO_STATUS_DRIVER
#define FEAT   VIRTIO_STATUS_FEATURES_OK
#define DRV_OK VIRTIO_STATUS_DRIVER_OK

/* A device with two queues, a 12-byte config space (8 writable bytes) and counters. */
struct fake {
	struct virtio_dev vdev;
	uint8_t config[12];
	unsigned activates, resets, notifies[2], config_writes;
	int activate_result;
};

static struct guest_memory mem;
static struct bus bus;
static struct fake fake;
static struct virtio_mmio t;
static struct event_loop loop;
static bool in_loop; /* run_loop is dispatching */
static struct vring_builder rb;
static unsigned irqs[VIRTIO_MAX_QUEUES], config_irqs;

static int fake_activate(struct virtio_dev *dev)
{
	struct fake *f = container_of(dev, struct fake, vdev);

	f->activates++;
	return f->activate_result;
}

static void fake_reset(struct virtio_dev *dev)
{
	container_of(dev, struct fake, vdev)->resets++;
}

static void fake_notify(struct virtio_dev *dev, unsigned q)
{
	ck_assert_msg(in_loop, "queue %u notified outside the event loop", q);
	container_of(dev, struct fake, vdev)->notifies[q]++;
}

/* Serves what the event loop has ready, as its thread would, until nothing is left. */
static void run_loop(void)
{
	test_loop_serve(&loop, &in_loop);
}

static void fake_config_written(struct virtio_dev *dev, uint64_t offset, unsigned size)
{
	struct fake *f = container_of(dev, struct fake, vdev);

	f->config_writes++;
	if (offset + size > 8) /* the last 4 bytes are read-only: put them back */
		memset(f->config + 8, 0xcc, 4);
}

static const struct virtio_device_ops fake_ops = {
        .name = "fake",
        .device_id = 42,
        .num_queues = 2,
        .max_queue_size = 64,
        .config_written = fake_config_written,
        .activate = fake_activate,
        .reset = fake_reset,
        .queue_notify = fake_notify,
};

static void count_irq(void *opaque, int q)
{
	(void)opaque;
	if (q < 0)
		config_irqs++;
	else
		irqs[q]++;
}

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	memset(irqs, 0, sizeof(irqs));
	config_irqs = 0;
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM), 0);
	bus_init(&bus, "mmio");
	memset(&fake, 0, sizeof(fake));
	virtio_dev_init(&fake.vdev, &fake_ops, &mem, 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << 3,
	                fake.config, sizeof(fake.config));
	for (unsigned i = 0; i < sizeof(fake.config); i++)
		fake.config[i] = (uint8_t)(0xc0 + i);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	ck_assert_int_eq(virtio_mmio_attach(&t, &fake.vdev, &bus, BASE, -1, 5, &loop), 0);
	virtio_mmio_set_test_interrupt(&t, count_irq, NULL);
}

static void teardown(void)
{
	virtio_mmio_detach(&t);
	event_loop_free(&loop);
	virtio_dev_destroy(&fake.vdev);
	bus_free(&bus);
	guest_memory_free(&mem);
}

static uint32_t rd_at(uint64_t base, uint64_t off)
{
	uint32_t v = 0;

	ck_assert_int_eq(bus_access(&bus, base + off, &v, 4, false), 0);
	return le32toh(v);
}

static void wr_at(uint64_t base, uint64_t off, uint32_t v)
{
	v = htole32(v);
	ck_assert_int_eq(bus_access(&bus, base + off, &v, 4, true), 0);
}

static uint32_t rd(uint64_t off)
{
	return rd_at(BASE, off);
}

static void wr(uint64_t off, uint32_t v)
{
	wr_at(BASE, off, v);
}

/* The driver's side: status, features, queue @q on a ring at @ring_base, DRIVER_OK. */
static void driver_up(uint64_t base, uint64_t features, unsigned q, uint64_t ring_base)
{
	wr_at(base, R(STATUS), ACK);
	wr_at(base, R(STATUS), ACK | DRV);
	wr_at(base, R(DRIVER_FEATURES_SEL), 0);
	wr_at(base, R(DRIVER_FEATURES), (uint32_t)features);
	wr_at(base, R(DRIVER_FEATURES_SEL), 1);
	wr_at(base, R(DRIVER_FEATURES), (uint32_t)(features >> 32));
	wr_at(base, R(STATUS), ACK | DRV | FEAT);
	ck_assert_uint_eq(rd_at(base, R(STATUS)), ACK | DRV | FEAT);
	vrb_init(&rb, &mem, ring_base, 0x40000, 16);
	wr_at(base, R(QUEUE_SEL), q);
	ck_assert_uint_eq(rd_at(base, R(QUEUE_READY)), 0);
	wr_at(base, R(QUEUE_NUM), 16);
	wr_at(base, R(QUEUE_DESC_LOW), (uint32_t)rb.desc);
	wr_at(base, R(QUEUE_DESC_HIGH), (uint32_t)(rb.desc >> 32));
	wr_at(base, R(QUEUE_DRIVER_LOW), (uint32_t)rb.avail);
	wr_at(base, R(QUEUE_DRIVER_HIGH), 0);
	wr_at(base, R(QUEUE_DEVICE_LOW), (uint32_t)rb.used);
	wr_at(base, R(QUEUE_DEVICE_HIGH), 0);
	wr_at(base, R(QUEUE_READY), 1);
	wr_at(base, R(STATUS), ACK | DRV | FEAT | DRV_OK);
}

static uint64_t offered(void)
{
	return fake.vdev.device_features;
}

START_TEST(identity)
{
	uint16_t half = 0;
	uint64_t wide = 0;

	ck_assert_uint_eq(rd(R(MAGIC)), 0x74726976);
	ck_assert_uint_eq(rd(R(VERSION)), 2);
	ck_assert_uint_eq(rd(R(DEVICE_ID)), 42);
	ck_assert_uint_eq(rd(R(VENDOR_ID)), VIRTIO_MMIO_VENDOR_ID);
	ck_assert_uint_eq(rd(0x0f0), 0); /* reserved */
	/* No shared memory regions: length -1 (Linux's virtiofs fails its probe on length 0). */
	ck_assert_uint_eq(rd(R(SHM_LEN_LOW)), 0xffffffff);
	ck_assert_uint_eq(rd(R(SHM_LEN_HIGH)), 0xffffffff);
	ck_assert_int_eq(bus_access(&bus, BASE + R(MAGIC), &half, 2, false), 0);
	ck_assert_uint_eq(half, 0xffff); /* registers take 4-byte accesses only */
	ck_assert_int_eq(bus_access(&bus, BASE + R(MAGIC), &wide, 8, false), 0);
	ck_assert_uint_eq(wide, UINT64_MAX);
	ck_assert_uint_eq(rd(0x002), 0xffffffff); /* misaligned */
	half = ACK;
	ck_assert_int_eq(bus_access(&bus, BASE + R(STATUS), &half, 2, true), 0);
	ck_assert_uint_eq(rd(R(STATUS)), 0); /* dropped */
	ck_assert_int_eq(bus_access(&bus, BASE + VIRTIO_MMIO_SIZE, &half, 2, false), -ENOENT);
}
END_TEST

/* A spare window (--save-ready): a placeholder Linux leaves unbound, ignoring writes. */
START_TEST(placeholder_window)
{
	struct bus b;
	const uint64_t at = 0x40000000;
	uint32_t v = 0;
	uint16_t half = 0xabcd;

	bus_init(&b, "mmio");
	ck_assert_int_eq(virtio_mmio_add_placeholder(&b, at), 0);
	ck_assert_int_eq(bus_access(&b, at + R(MAGIC), &v, 4, false), 0);
	ck_assert_uint_eq(v, 0x74726976);
	ck_assert_int_eq(bus_access(&b, at + R(VERSION), &v, 4, false), 0);
	ck_assert_uint_eq(v, 2);
	ck_assert_int_eq(bus_access(&b, at + R(DEVICE_ID), &v, 4, false), 0);
	ck_assert_uint_eq(v, 0);
	v = ACK;
	ck_assert_int_eq(bus_access(&b, at + R(STATUS), &v, 4, true), 0);
	ck_assert_int_eq(bus_access(&b, at + R(STATUS), &v, 4, false), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(bus_access(&b, at + R(MAGIC), &half, 2, false), 0);
	ck_assert_uint_eq(half, 0);
	ck_assert_int_eq(virtio_mmio_add_placeholder(&b, at), -EEXIST);
	bus_free(&b);
}
END_TEST

START_TEST(feature_negotiation)
{
	wr(R(DEVICE_FEATURES_SEL), 0);
	ck_assert_uint_eq(rd(R(DEVICE_FEATURES)), 1u << VIRTIO_F_EVENT_IDX | 1u << 3);
	wr(R(DEVICE_FEATURES_SEL), 1);
	ck_assert_uint_eq(rd(R(DEVICE_FEATURES)), 1); /* VERSION_1 */
	wr(R(DEVICE_FEATURES_SEL), 2);
	ck_assert_uint_eq(rd(R(DEVICE_FEATURES)), 0);
	driver_up(BASE, offered(), 0, 0x10000);
	ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV | FEAT | DRV_OK);
	ck_assert(virtio_has_feature(&fake.vdev, VIRTIO_F_EVENT_IDX));
	ck_assert(fake.vdev.queues[0].event_idx);
	ck_assert(!fake.vdev.queues[0].indirect);
	wr(R(DRIVER_FEATURES_SEL), 0);
	wr(R(DRIVER_FEATURES), 0); /* ignored after FEATURES_OK */
	ck_assert_uint_eq(fake.vdev.driver_features, offered());
	ck_assert_uint_eq(fake.activates, 1);
}
END_TEST

/* FEATURES_OK stays clear until the driver's features are acceptable. */
START_TEST(features_ok_refused)
{
	static const uint64_t bad[] = {1ULL << VIRTIO_F_EVENT_IDX,             /* no VERSION_1 */
	                               1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5, /* not offered */
	                               1ULL << VIRTIO_F_VERSION_1 | 1ULL << 40};

	wr(R(STATUS), ACK | DRV);
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		wr(R(DRIVER_FEATURES_SEL), 0);
		wr(R(DRIVER_FEATURES), (uint32_t)bad[i]);
		wr(R(DRIVER_FEATURES_SEL), 1);
		wr(R(DRIVER_FEATURES), (uint32_t)(bad[i] >> 32));
		wr(R(STATUS), ACK | DRV | FEAT);
		ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV);
	}
	wr(R(STATUS), ACK | DRV | FEAT | DRV_OK); /* DRIVER_OK without FEATURES_OK: ignored */
	ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV);
	ck_assert_uint_eq(fake.activates, 0);
	wr(R(DRIVER_FEATURES_SEL), 0);
	wr(R(DRIVER_FEATURES), 0);
	wr(R(DRIVER_FEATURES_SEL), 1);
	wr(R(DRIVER_FEATURES), 1);
	wr(R(STATUS), ACK | DRV | FEAT);
	ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV | FEAT);
}
END_TEST

START_TEST(status_bits_not_cleared)
{
	wr(R(STATUS), ACK | DRV);
	wr(R(STATUS), ACK); /* clearing DRIVER is not a thing drivers do */
	ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV);
	wr(R(STATUS), ACK | DRV | VIRTIO_STATUS_NEEDS_RESET); /* the device's bit */
	ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV);
	wr(R(STATUS), ACK | DRV | VIRTIO_STATUS_FAILED);
	ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV | VIRTIO_STATUS_FAILED);
}
END_TEST

START_TEST(queue_select_bounds)
{
	static const uint32_t sels[] = {2, VIRTIO_MAX_QUEUES, 0xffffffff};

	wr(R(QUEUE_SEL), 1);
	ck_assert_uint_eq(rd(R(QUEUE_NUM_MAX)), 64);
	for (unsigned i = 0; i < ARRAY_SIZE(sels); i++) {
		wr(R(QUEUE_SEL), sels[i]);
		ck_assert_uint_eq(rd(R(QUEUE_NUM_MAX)), 0);
		wr(R(QUEUE_NUM), 16);
		wr(R(QUEUE_READY), 1);
		wr(R(QUEUE_DESC_LOW), 0x1000);
		ck_assert_uint_eq(rd(R(QUEUE_NUM)), 0);
		ck_assert_uint_eq(rd(R(QUEUE_READY)), 0);
		ck_assert_uint_eq(rd(R(QUEUE_DESC_LOW)), 0);
	}
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		ck_assert(!fake.vdev.queues[q].ready && fake.vdev.queues[q].size == 0);
}
END_TEST

START_TEST(queue_registers)
{
	wr(R(QUEUE_SEL), 1);
	wr(R(QUEUE_NUM), 0x12345); /* clamped, refused at DRIVER_OK */
	ck_assert_uint_eq(rd(R(QUEUE_NUM)), 0xffff);
	wr(R(QUEUE_DESC_LOW), 0x89abcdef);
	wr(R(QUEUE_DESC_HIGH), 0x01234567);
	ck_assert_uint_eq(fake.vdev.queues[1].desc_addr, 0x0123456789abcdefULL);
	ck_assert_uint_eq(rd(R(QUEUE_DESC_HIGH)), 0x01234567);
	driver_up(BASE, offered(), 0, 0x10000);
	ck_assert(fake.vdev.queues[0].active);
	wr(R(QUEUE_SEL), 0);
	wr(R(QUEUE_DESC_LOW), 0x20000); /* frozen while DRIVER_OK */
	wr(R(QUEUE_READY), 0);
	ck_assert_uint_eq(fake.vdev.queues[0].desc_addr, rb.desc);
	ck_assert_uint_eq(rd(R(QUEUE_READY)), 1);
}
END_TEST

START_TEST(bad_ring_needs_reset)
{
	wr(R(QUEUE_SEL), 1); /* a second queue, ready, with its rings outside RAM */
	wr(R(QUEUE_NUM), 16);
	wr(R(QUEUE_DESC_LOW), 0);
	wr(R(QUEUE_DESC_HIGH), 1);
	wr(R(QUEUE_READY), 1);
	driver_up(BASE, offered(), 0, 0x10000);
	ck_assert_uint_eq(rd(R(STATUS)) & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(rd(R(INTERRUPT_STATUS)), VIRTIO_ISR_CONFIG);
	ck_assert_uint_eq(config_irqs, 1);
	ck_assert_uint_eq(fake.activates, 0);
	ck_assert(!fake.vdev.queues[1].active);
	wr(R(INTERRUPT_ACK), VIRTIO_ISR_CONFIG);
	ck_assert_uint_eq(rd(R(INTERRUPT_STATUS)), 0);
	virtio_set_needs_reset(&fake.vdev, "again"); /* already set: no second interrupt */
	ck_assert_uint_eq(config_irqs, 1);
	wr(R(STATUS), 0);
	ck_assert_uint_eq(rd(R(STATUS)), 0);
}
END_TEST

START_TEST(activate_failure_needs_reset)
{
	fake.activate_result = -EIO;
	driver_up(BASE, offered(), 0, 0x10000);
	ck_assert_uint_eq(fake.activates, 1);
	ck_assert_uint_eq(rd(R(STATUS)), ACK | DRV | FEAT | DRV_OK | VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(config_irqs, 1);
}
END_TEST

START_TEST(reset_clears)
{
	driver_up(BASE, offered(), 1, 0x10000);
	fake.vdev.isr = VIRTIO_ISR_QUEUE;
	wr(R(STATUS), 0);
	ck_assert_uint_eq(fake.resets, 1);
	ck_assert_uint_eq(rd(R(STATUS)), 0);
	ck_assert_uint_eq(rd(R(INTERRUPT_STATUS)), 0);
	ck_assert_uint_eq(fake.vdev.driver_features, 0);
	wr(R(QUEUE_SEL), 1);
	ck_assert_uint_eq(rd(R(QUEUE_READY)), 0);
	ck_assert_uint_eq(rd(R(QUEUE_NUM)), 0);
	ck_assert_uint_eq(rd(R(QUEUE_DESC_LOW)), 0);
	ck_assert(!fake.vdev.queues[1].active);
	driver_up(BASE, offered(), 1, 0x10000); /* and it comes up again */
	ck_assert_uint_eq(fake.activates, 2);
}
END_TEST

START_TEST(interrupts)
{
	uint16_t head;

	driver_up(BASE, 1ULL << VIRTIO_F_VERSION_1, 1, 0x10000);
	head = 0;
	vrb_desc(&rb, head, vrb_alloc(&rb, 8), 8, VRB_F_WRITE, 0);
	vrb_publish(&rb, head);
	ck_assert_int_eq(vq_pop_chain(&fake.vdev.queues[1], &(struct vq_chain){0}), 1);
	ck_assert_int_eq(vq_push_used(&fake.vdev.queues[1], head, 8), 0);
	virtio_queue_done(&fake.vdev, 1);
	ck_assert_uint_eq(irqs[1], 1);
	ck_assert_uint_eq(rd(R(INTERRUPT_STATUS)), VIRTIO_ISR_QUEUE);
	virtio_config_changed(&fake.vdev);
	ck_assert_uint_eq(config_irqs, 1);
	ck_assert_uint_eq(rd(R(INTERRUPT_STATUS)), VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG);
	ck_assert_uint_eq(rd(R(CONFIG_GENERATION)), 1);
	wr(R(INTERRUPT_ACK), VIRTIO_ISR_QUEUE);
	ck_assert_uint_eq(rd(R(INTERRUPT_STATUS)), VIRTIO_ISR_CONFIG);
	virtio_queue_done(&fake.vdev, 1); /* nothing new pushed */
	ck_assert_uint_eq(irqs[1], 1);
}
END_TEST

START_TEST(config_space)
{
	uint8_t b = 0;
	uint16_t h = 0;
	uint64_t q = 0;

	ck_assert_uint_eq(rd(R(CONFIG)), 0xc3c2c1c0);
	ck_assert_int_eq(bus_access(&bus, BASE + R(CONFIG) + 3, &b, 1, false), 0);
	ck_assert_uint_eq(b, 0xc3);
	ck_assert_int_eq(bus_access(&bus, BASE + R(CONFIG) + 10, &h, 2, false), 0);
	ck_assert_uint_eq(h, 0xcbca);
	ck_assert_int_eq(bus_access(&bus, BASE + R(CONFIG) + 8, &q, 8, false), 0);
	ck_assert_uint_eq(q, 0xcbcac9c8); /* zeros past the end */
	ck_assert_uint_eq(rd(R(CONFIG) + 0xfc), 0);
	wr(R(CONFIG) + 4, 0x11223344);
	ck_assert_uint_eq(rd(R(CONFIG) + 4), 0x11223344);
	q = 0;
	ck_assert_int_eq(bus_access(&bus, BASE + R(CONFIG) + 4, &q, 8, true), 0);
	ck_assert_uint_eq(rd(R(CONFIG) + 4), 0);
	ck_assert_uint_eq(rd(R(CONFIG) + 8), 0xcccccccc); /* the device put it back */
	wr(R(CONFIG) + 0x20, 1);                          /* past the end: dropped */
	ck_assert_uint_eq(fake.config_writes, 2);
}
END_TEST

START_TEST(notify_on_bus)
{
	/* Handed to the loop: nothing runs inside the bus access. */
	wr(R(QUEUE_NOTIFY), 1);
	ck_assert_uint_eq(fake.notifies[1], 0);
	run_loop();
	ck_assert_uint_eq(fake.notifies[1], 1);
	wr(R(QUEUE_NOTIFY), 1);
	run_loop();
	wr(R(QUEUE_NOTIFY), 0);
	wr(R(QUEUE_NOTIFY), 2); /* no such queue */
	wr(R(QUEUE_NOTIFY), 0xffffffff);
	run_loop();
	ck_assert_uint_eq(fake.notifies[0], 1);
	ck_assert_uint_eq(fake.notifies[1], 2);
	/* Several before the loop's turn: each queue served once. */
	wr(R(QUEUE_NOTIFY), 0);
	wr(R(QUEUE_NOTIFY), 0);
	wr(R(QUEUE_NOTIFY), 1);
	run_loop();
	ck_assert_uint_eq(fake.notifies[0], 2);
	ck_assert_uint_eq(fake.notifies[1], 3);
}
END_TEST

START_TEST(attach_errors)
{
	struct virtio_mmio t2;
	struct fake other;

	virtio_dev_init(&other.vdev, &fake_ops, &mem, 0, other.config, sizeof(other.config));
	ck_assert_int_eq(virtio_mmio_attach(&t2, &other.vdev, &bus, BASE + 0x100, -1, 6, &loop),
	                 -EEXIST);
	ck_assert_ptr_null(other.vdev.transport.interrupt);
	ck_assert_int_eq(virtio_mmio_attach(&t2, &other.vdev, &bus, BASE + 0x1000, 3, 6, NULL),
	                 -EINVAL); /* a VM but no event loop */
	ck_assert_int_eq(virtio_mmio_attach(&t2, &other.vdev, &bus, BASE + 0x1000, -1, 6, NULL),
	                 -EINVAL); /* no event loop to serve notifications */
	other.vdev.config_size = 0x101;
	ck_assert_int_eq(virtio_mmio_attach(&t2, &other.vdev, &bus, BASE + 0x1000, -1, 6, &loop),
	                 -EINVAL);
	virtio_dev_destroy(&other.vdev);
}
END_TEST

/* ---- virtio-rng end to end ---- */

#define RNG_BASE (BASE + 0x1000)

static struct virtio_rng rng;
static struct virtio_mmio rng_t;

static void rng_setup(void)
{
	setup();
	virtio_rng_init(&rng, &mem);
	ck_assert_int_eq(virtio_mmio_attach(&rng_t, &rng.vdev, &bus, RNG_BASE, -1, 7, &loop), 0);
	virtio_mmio_set_test_interrupt(&rng_t, count_irq, NULL);
	ck_assert_uint_eq(rd_at(RNG_BASE, R(DEVICE_ID)), VIRTIO_ID_RNG);
	driver_up(RNG_BASE, rng.vdev.device_features, 0, 0x40000);
	ck_assert_uint_eq(rd_at(RNG_BASE, R(STATUS)), ACK | DRV | FEAT | DRV_OK);
}

/* The driver notifies the rng's queue; the loop then takes its turn. */
static void rng_notify(void)
{
	wr_at(RNG_BASE, R(QUEUE_NOTIFY), 0);
	run_loop();
}

static void rng_teardown(void)
{
	virtio_mmio_detach(&rng_t);
	virtio_rng_destroy(&rng);
	teardown();
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

START_TEST(rng_fills_buffers)
{
	uint64_t a = vrb_alloc(&rb, 64), c = vrb_alloc(&rb, 32), tbl = vrb_alloc(&rb, 16);
	uint32_t id, len;

	vrb_desc(&rb, 3, a, 64, VRB_F_WRITE | VRB_F_NEXT, 4);
	vrb_desc(&rb, 4, c, 16, VRB_F_WRITE, 0);
	vrb_publish(&rb, 3);
	vrb_desc(&rb, 5, tbl, 16, VRB_F_INDIRECT, 0);
	vrb_desc_at(&rb, tbl, 0, c + 16, 16, VRB_F_WRITE, 0);
	vrb_publish(&rb, 5);
	rng_notify();
	ck_assert_uint_eq(vrb_used_idx(&rb), 2);
	vrb_used_elem(&rb, 0, &id, &len);
	ck_assert_uint_eq(id, 3);
	ck_assert_uint_eq(len, 80);
	vrb_used_elem(&rb, 1, &id, &len);
	ck_assert_uint_eq(id, 5);
	ck_assert_uint_eq(len, 16);
	ck_assert(!all_zero(vrb_host(&rb, a, 64), 64));
	ck_assert(!all_zero(vrb_host(&rb, c, 32), 32));
	ck_assert(memcmp(vrb_host(&rb, a, 32), vrb_host(&rb, a + 32, 32), 32) != 0);
	ck_assert_uint_eq(rd_at(RNG_BASE, R(INTERRUPT_STATUS)), VIRTIO_ISR_QUEUE);
	ck_assert_uint_eq(irqs[0], 1);
	ck_assert_uint_eq(vrb_avail_event(&rb), 2); /* EVENT_IDX negotiated */
}
END_TEST

static ssize_t one_byte_source(void *buf, size_t len, unsigned flags)
{
	(void)flags;
	ck_assert_uint_gt(len, 0);
	*(uint8_t *)buf = 0x5a;
	return 1;
}

static ssize_t dry_source(void *buf, size_t len, unsigned flags)
{
	(void)buf, (void)len, (void)flags;
	errno = EAGAIN;
	return -1;
}

START_TEST(rng_short_reads)
{
	uint64_t a = vrb_alloc(&rb, 40);
	uint32_t id, len;

	rng.source = one_byte_source;
	vrb_desc(&rb, 0, a, 40, VRB_F_WRITE, 0);
	vrb_publish(&rb, 0);
	rng_notify();
	vrb_used_elem(&rb, 0, &id, &len);
	ck_assert_uint_eq(len, 40);
	ck_assert_uint_eq(*(uint8_t *)vrb_host(&rb, a + 39, 1), 0x5a);
	rng.source = dry_source; /* the host pool cannot serve: the request gets 0 bytes */
	vrb_publish(&rb, 0);
	rng_notify();
	ck_assert_uint_eq(vrb_used_idx(&rb), 2);
	vrb_used_elem(&rb, 1, &id, &len);
	ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(rng_big_buffer_capped)
{
	uint64_t a = vrb_alloc(&rb, VIRTIO_RNG_CHAIN_MAX + 4096);
	uint32_t id, len;

	vrb_desc(&rb, 0, a, VIRTIO_RNG_CHAIN_MAX + 4096, VRB_F_WRITE, 0);
	vrb_publish(&rb, 0);
	rng_notify();
	vrb_used_elem(&rb, 0, &id, &len);
	ck_assert_uint_eq(len, VIRTIO_RNG_CHAIN_MAX);
}
END_TEST

START_TEST(rng_malformed)
{
	vrb_desc(&rb, 0, vrb_alloc(&rb, 8), 8, 0, 0); /* device-readable */
	vrb_publish(&rb, 0);
	rng_notify();
	ck_assert_uint_eq(vrb_used_idx(&rb), 0);
	ck_assert_uint_eq(rd_at(RNG_BASE, R(STATUS)) & VIRTIO_STATUS_NEEDS_RESET,
	                  VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(config_irqs, 1);
	vrb_desc(&rb, 1, vrb_alloc(&rb, 8), 8, VRB_F_WRITE, 1); /* and a loop: no more work */
	vrb_publish(&rb, 1);
	rng_notify();
	ck_assert_uint_eq(config_irqs, 1);
	wr_at(RNG_BASE, R(STATUS), 0);
	driver_up(RNG_BASE, rng.vdev.device_features, 0, 0x40000);
	vrb_desc(&rb, 0, vrb_alloc(&rb, 8), 8, VRB_F_WRITE | VRB_F_NEXT, 0); /* a loop */
	vrb_publish(&rb, 0);
	rng_notify();
	ck_assert_uint_eq(config_irqs, 2);
	ck_assert_uint_eq(vrb_used_idx(&rb), 0);
}
END_TEST

START_TEST(rng_before_driver_ok)
{
	wr_at(RNG_BASE, R(STATUS), 0);
	vrb_init(&rb, &mem, 0x40000, 0x40000, 16);
	vrb_desc(&rb, 0, vrb_alloc(&rb, 8), 8, VRB_F_WRITE, 0);
	vrb_publish(&rb, 0);
	rng_notify(); /* no queue yet: nothing happens */
	ck_assert_uint_eq(vrb_used_idx(&rb), 0);
	ck_assert_uint_eq(irqs[0] + config_irqs, 0);
}
END_TEST

/*
 * A snapshot of a live rng (one chain served) loaded into a new rng and transport: its
 * registers, features and ring come back, the next chain goes to used entry 1 (the indices
 * came back), and an unsupported device is refused at registration.
 */
START_TEST(rng_survives_a_snapshot)
{
	struct snapshot_parts from = {0}, to = {0};
	struct virtio_rng rng2;
	struct virtio_mmio t2;
	struct snap_writer w;
	struct snap_reader r;
	struct snap_cursor c;
	const uint8_t *data;
	size_t len;
	uint64_t a = vrb_alloc(&rb, 16), b = vrb_alloc(&rb, 16);
	uint32_t id, n;
	char err[256] = "";

	vrb_desc(&rb, 0, a, 16, VRB_F_WRITE, 0);
	vrb_publish(&rb, 0);
	rng_notify();
	ck_assert_uint_eq(vrb_used_idx(&rb), 1);
	wr_at(RNG_BASE, R(QUEUE_SEL), 0);
	ck_assert_int_eq(virtio_mmio_snapshot_add(&rng_t, &from, 3), 0);
	ck_assert_uint_eq(from.count, 1);
	snap_writer_init(&w, SNAP_ARCH_HOST);
	snap_begin(&w, from.parts[0].tag, from.parts[0].instance);
	ck_assert_int_eq(from.parts[0].save(from.parts[0].opaque, &w, err, sizeof(err)), 0);
	snap_end(&w);
	ck_assert_int_eq(snap_writer_finish(&w, &data, &len, err, sizeof(err)), 0);
	ck_assert_int_eq(snap_reader_parse(&r, data, len, SNAP_ARCH_HOST, err, sizeof(err)), 0);

	virtio_rng_init(&rng2, &mem);
	ck_assert_int_eq(virtio_mmio_attach(&t2, &rng2.vdev, &bus, RNG_BASE + 0x1000, -1, 8, &loop),
	                 0);
	ck_assert_int_eq(virtio_mmio_snapshot_add(&t2, &to, 3), 0);
	ck_assert_int_eq(snap_section(&r, "VMMI", 3, &c), 0);
	ck_assert_msg(to.parts[0].load(to.parts[0].opaque, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(rd_at(RNG_BASE + 0x1000, R(STATUS)), ACK | DRV | FEAT | DRV_OK);
	ck_assert_uint_eq(rd_at(RNG_BASE + 0x1000, R(QUEUE_READY)), 1);
	ck_assert_uint_eq(rd_at(RNG_BASE + 0x1000, R(QUEUE_NUM)), 16);
	vrb_desc(&rb, 1, b, 16, VRB_F_WRITE, 0);
	vrb_publish(&rb, 1);
	run_loop(); /* the restore's own notification serves it */
	ck_assert_uint_eq(vrb_used_idx(&rb), 2);
	vrb_used_elem(&rb, 1, &id, &n);
	ck_assert_uint_eq(id, 1);
	ck_assert_uint_eq(n, 16);

	/* A section for another device's core is refused with a reason. */
	ck_assert_int_eq(snap_section(&r, "VMMI", 3, &c), 0);
	rng2.vdev.config_size = 4;
	ck_assert_int_ne(to.parts[0].load(to.parts[0].opaque, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "config space of 0 bytes, this device has 4");
	rng2.vdev.config_size = 0;

	snap_reader_free(&r);
	snap_writer_free(&w);
	virtio_mmio_detach(&t2);
	virtio_rng_destroy(&rng2);
	snapshot_parts_free(&from);
	snapshot_parts_free(&to);
}
END_TEST

/* A device with state outside the core is noted as unsupported, not registered. */
START_TEST(unsupported_device_is_noted)
{
	struct snapshot_parts parts = {0};

	ck_assert_int_eq(virtio_mmio_snapshot_add(&t, &parts, 0), 0);
	ck_assert_uint_eq(parts.count, 0);
	ck_assert_str_eq(parts.unsupported, "fake");
	snapshot_parts_free(&parts);
}
END_TEST

static Suite *virtio_mmio_suite(void)
{
	Suite *s = suite_create("virtio_mmio");
	TCase *tc = tcase_create("transport");
	TCase *rc = tcase_create("rng");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, identity);
	tcase_add_test(tc, placeholder_window);
	tcase_add_test(tc, feature_negotiation);
	tcase_add_test(tc, features_ok_refused);
	tcase_add_test(tc, status_bits_not_cleared);
	tcase_add_test(tc, queue_select_bounds);
	tcase_add_test(tc, queue_registers);
	tcase_add_test(tc, bad_ring_needs_reset);
	tcase_add_test(tc, activate_failure_needs_reset);
	tcase_add_test(tc, reset_clears);
	tcase_add_test(tc, interrupts);
	tcase_add_test(tc, config_space);
	tcase_add_test(tc, notify_on_bus);
	tcase_add_test(tc, attach_errors);
	tcase_add_test(tc, unsupported_device_is_noted);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(rc, rng_setup, rng_teardown);
	tcase_add_test(rc, rng_fills_buffers);
	tcase_add_test(rc, rng_short_reads);
	tcase_add_test(rc, rng_big_buffer_capped);
	tcase_add_test(rc, rng_malformed);
	tcase_add_test(rc, rng_before_driver_ok);
	tcase_add_test(rc, rng_survives_a_snapshot);
	suite_add_tcase(s, rc);
	return s;
}

int main(void)
{
	return unit_run(virtio_mmio_suite());
}
