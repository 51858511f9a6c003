/*
 * virtio-blk, the device: a hand-built ring in fake guest memory and an in-memory fake backend
 * (IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES, read-only refusals, backend errors, many
 * requests in flight, reset, malformed chains, config space, the advertised block size and its
 * enforcement). The parser's rules are in test_blk_request.c, image opening and io_uring in
 * test_blk_uring.c.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/blk.h"
#include "tests/support/blk_fake.h"
#include "tests/support/blk_ring.h"
#include "tests/unit/unit.h"

#define CAPACITY  2048u /* sectors: a 1 MiB disk */
#define DISK_SIZE (CAPACITY * 512u)

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

struct fixture {
	struct guest_memory mem;
	struct blk_fake fake;
	struct blk_dev blk;
	struct test_ring ring;
	struct test_ring ring1; /* queue 1, with two queues */
	unsigned interrupts, config_interrupts;
	unsigned queue_interrupts[BLK_MAX_QUEUES];
};

static void count_interrupt(void *opaque, int q)
{
	struct fixture *f = opaque;

	if (q < 0) {
		f->config_interrupts++;
	} else {
		f->interrupts++;
		f->queue_interrupts[q]++;
	}
}

/* The driver's side of initialisation: features, queue 0, DRIVER_OK. */
static void driver_up(struct fixture *f)
{
	struct virtio_dev *dev = &f->blk.vdev;
	uint64_t features = dev->device_features;
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	pthread_mutex_lock(&dev->lock);
	virtio_write_status(dev, VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_write_status(dev, st);
	virtio_write_driver_features(dev, 0, (uint32_t)features);
	virtio_write_driver_features(dev, 1, (uint32_t)(features >> 32));
	st |= VIRTIO_STATUS_FEATURES_OK;
	virtio_write_status(dev, st);
	ck_assert_uint_eq(dev->status & VIRTIO_STATUS_FEATURES_OK, VIRTIO_STATUS_FEATURES_OK);
	test_ring_init(&f->ring, &f->mem, 0x10000, 0x100000, BLK_QUEUE_SIZE, &dev->queues[0]);
	if (f->blk.nr_queues > 1)
		test_ring_init(&f->ring1, &f->mem, 0x110000, 0xe0000, BLK_QUEUE_SIZE,
		               &dev->queues[1]);
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	ck_assert_uint_eq(dev->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_NEEDS_RESET),
	                  VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
}

/*
 * A device over the fake disk with @block_size bytes per logical block (0: the default) and
 * @queues request queues.
 */
static struct fixture *setup_queues(bool read_only, const char *serial, uint32_t block_size,
                                    unsigned queues)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct blk_options opts = {
	        .path = "fake.img", .read_only = read_only, .serial = serial, .num_queues = queues};
	char err[256] = "";

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(guest_memory_add(&f->mem, 0, 2 * MIB), 0);
	blk_fake_init(&f->fake, DISK_SIZE);
	for (unsigned i = 0; i < DISK_SIZE; i++)
		f->fake.disk[i] = (uint8_t)(i / 512 + i);
	ck_assert_msg(blk_init(&f->blk, &opts, DISK_SIZE, &f->mem, &f->fake.be, err, sizeof(err)) ==
	                      0,
	              "%s", err);
	if (block_size)
		ck_assert_int_eq(blk_set_block_size(&f->blk, block_size), 0);
	f->blk.vdev.transport = (struct virtio_transport){count_interrupt, f};
	driver_up(f);
	return f;
}

static struct fixture *setup_with(bool read_only, const char *serial, uint32_t block_size)
{
	return setup_queues(read_only, serial, block_size, 1);
}

static struct fixture *setup(bool read_only, const char *serial)
{
	return setup_with(read_only, serial, 0);
}

static void teardown(struct fixture *f)
{
	blk_close(&f->blk);
	blk_fake_free(&f->fake);
	guest_memory_free(&f->mem);
	free(f);
}

static struct test_buf header(struct fixture *f, uint32_t type, uint64_t sector)
{
	uint64_t gpa = test_ring_alloc(&f->ring, 16);
	uint8_t *h = test_ring_host(&f->ring, gpa, 16);

	put_le(h, type, 4);
	put_le(h + 8, sector, 8);
	return (struct test_buf){gpa, 16, false};
}

static struct test_buf buffer(struct fixture *f, uint32_t len, bool writable)
{
	return (struct test_buf){test_ring_alloc(&f->ring, len), len, writable};
}

static uint8_t *host(struct fixture *f, struct test_buf b)
{
	return test_ring_host(&f->ring, b.gpa, b.len);
}

static void notify(struct fixture *f)
{
	f->blk.vdev.ops->queue_notify(&f->blk.vdev, 0);
}

/* Expects the next used entry to be @head with @len bytes and @status in its status buffer. */
static void expect_used(struct fixture *f, uint16_t head, uint32_t len, struct test_buf status,
                        uint8_t want)
{
	uint32_t id, used_len;

	ck_assert_msg(test_ring_used(&f->ring, &id, &used_len), "no used entry");
	ck_assert_uint_eq(id, head);
	ck_assert_uint_eq(used_len, len);
	ck_assert_uint_eq(*host(f, status), want);
}

START_TEST(read_sectors)
{
	struct fixture *f = setup(false, NULL);
	struct test_buf b[] = {header(f, VIRTIO_BLK_T_IN, 2), buffer(f, 512, true),
	                       buffer(f, 512, true), buffer(f, 1, true)};
	uint16_t head;
	uint32_t id, len;

	*host(f, b[3]) = 0xff;
	head = test_ring_add(&f->ring, b, 4);
	notify(f);
	ck_assert(!test_ring_used(&f->ring, &id, &len)); /* in flight until the backend answers */
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	expect_used(f, head, 1025, b[3], VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(host(f, b[1]), f->fake.disk + 1024, 512);
	ck_assert_mem_eq(host(f, b[2]), f->fake.disk + 1536, 512);
	ck_assert_uint_eq(f->interrupts, 1);
	teardown(f);
}
END_TEST

START_TEST(write_sectors_and_flush)
{
	struct fixture *f = setup(false, NULL);
	struct test_buf w[] = {header(f, VIRTIO_BLK_T_OUT, CAPACITY - 2), buffer(f, 1024, false),
	                       buffer(f, 1, true)};
	struct test_buf fl[] = {header(f, VIRTIO_BLK_T_FLUSH, 0), buffer(f, 1, true)};
	uint16_t hw, hf;

	memset(host(f, w[1]), 0xa5, 1024);
	hw = test_ring_add(&f->ring, w, 3);
	hf = test_ring_add(&f->ring, fl, 2);
	notify(f);
	ck_assert_uint_eq(f->fake.flushes, 1);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 2);
	expect_used(f, hw, 1, w[2], VIRTIO_BLK_S_OK);
	expect_used(f, hf, 1, fl[1], VIRTIO_BLK_S_OK);
	for (unsigned i = DISK_SIZE - 1024; i < DISK_SIZE; i++)
		ck_assert_uint_eq(f->fake.disk[i], 0xa5);
	teardown(f);
}
END_TEST

START_TEST(get_id)
{
	struct fixture *f = setup(false, "vmm-serial-1");
	struct test_buf b[] = {header(f, VIRTIO_BLK_T_GET_ID, 0), buffer(f, 20, true),
	                       buffer(f, 1, true)};
	uint16_t head;
	char want[20] = "vmm-serial-1";

	memset(host(f, b[1]), 'x', 20);
	head = test_ring_add(&f->ring, b, 3);
	notify(f);
	ck_assert_uint_eq(f->fake.nr_ops, 0); /* answered without the backend */
	expect_used(f, head, 21, b[2], VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(host(f, b[1]), want, 20);
	teardown(f);
}
END_TEST

static uint16_t add_dwz(struct fixture *f, uint32_t type, const struct blk_segment *segs,
                        unsigned n, struct test_buf *status)
{
	struct test_buf b[] = {header(f, type, 0), buffer(f, 16 * n, false), buffer(f, 1, true)};

	for (unsigned i = 0; i < n; i++) {
		put_le(host(f, b[1]) + 16 * i, segs[i].sector, 8);
		put_le(host(f, b[1]) + 16 * i + 8, segs[i].num_sectors, 4);
		put_le(host(f, b[1]) + 16 * i + 12, segs[i].flags, 4);
	}
	*status = b[2];
	return test_ring_add(&f->ring, b, 3);
}

static bool disk_zero(struct fixture *f, uint64_t sector, uint64_t count)
{
	for (uint64_t i = sector * 512; i < (sector + count) * 512; i++)
		if (f->fake.disk[i])
			return false;
	return true;
}

START_TEST(discard_and_write_zeroes)
{
	struct fixture *f = setup(false, NULL);
	const struct blk_segment d[] = {{8, 8, 0}, {100, 4, 0}};
	const struct blk_segment z[] = {{200, 2, 0}, {300, 2, VIRTIO_BLK_DWZ_F_UNMAP}};
	struct test_buf sd, sz;
	uint16_t hd = add_dwz(f, VIRTIO_BLK_T_DISCARD, d, 2, &sd);
	uint16_t hz = add_dwz(f, VIRTIO_BLK_T_WRITE_ZEROES, z, 2, &sz);

	notify(f);
	ck_assert_uint_eq(f->fake.nr_falloc, 2); /* the first segment of each */
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 4);
	expect_used(f, hd, 1, sd, VIRTIO_BLK_S_OK);
	expect_used(f, hz, 1, sz, VIRTIO_BLK_S_OK);
	ck_assert(disk_zero(f, 8, 8) && disk_zero(f, 100, 4));
	ck_assert(disk_zero(f, 200, 2) && disk_zero(f, 300, 2));
	ck_assert(!disk_zero(f, 16, 1) && !disk_zero(f, 202, 1));
	ck_assert_int_eq(f->fake.modes[0], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	ck_assert_int_eq(f->fake.modes[1], FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
	ck_assert_int_eq(f->fake.modes[2], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	ck_assert_int_eq(f->fake.modes[3], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	teardown(f);
}
END_TEST

START_TEST(read_only_disk)
{
	struct fixture *f = setup(true, NULL);
	uint64_t feat = f->blk.vdev.device_features;
	struct test_buf w[] = {header(f, VIRTIO_BLK_T_OUT, 0), buffer(f, 512, false),
	                       buffer(f, 1, true)};
	struct test_buf r[] = {header(f, VIRTIO_BLK_T_IN, 0), buffer(f, 512, true),
	                       buffer(f, 1, true)};
	uint8_t before[512];
	uint16_t hw, hr;

	ck_assert(feat & (1ull << VIRTIO_BLK_F_RO));
	ck_assert(!(feat & (1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES)));
	memcpy(before, f->fake.disk, 512);
	hw = test_ring_add(&f->ring, w, 3);
	hr = test_ring_add(&f->ring, r, 3);
	notify(f);
	expect_used(f, hw, 1, w[2], VIRTIO_BLK_S_IOERR); /* refused at once */
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	expect_used(f, hr, 513, r[2], VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(f->fake.disk, before, 512);
	teardown(f);
}
END_TEST

START_TEST(bad_requests_complete_with_status)
{
	struct fixture *f = setup(false, NULL);
	struct test_buf a[] = {header(f, 42, 0), buffer(f, 1, true)};
	struct test_buf b[] = {header(f, VIRTIO_BLK_T_IN, CAPACITY), buffer(f, 513, true)};
	struct test_buf c[] = {header(f, VIRTIO_BLK_T_IN, 0)};
	uint16_t ha = test_ring_add(&f->ring, a, 2), hb = test_ring_add(&f->ring, b, 2);
	uint16_t hc = test_ring_add(&f->ring, c, 1);
	struct test_buf status_b = {b[1].gpa + 512, 1, true};
	uint32_t id, len;

	notify(f);
	expect_used(f, ha, 1, a[1], VIRTIO_BLK_S_UNSUPP);
	expect_used(f, hb, 1, status_b, VIRTIO_BLK_S_IOERR);
	ck_assert(test_ring_used(&f->ring, &id, &len)); /* no status byte: returned, length 0 */
	ck_assert_uint_eq(id, hc);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(f->fake.nr_ops, 0);
	ck_assert_uint_eq(f->blk.vdev.status & VIRTIO_STATUS_NEEDS_RESET, 0);
	teardown(f);
}
END_TEST

START_TEST(backend_errors)
{
	struct fixture *f = setup(false, NULL);
	const struct blk_segment d = {0, 8, 0};
	struct test_buf r[] = {header(f, VIRTIO_BLK_T_IN, 0), buffer(f, 512, true),
	                       buffer(f, 1, true)};
	struct test_buf sd;
	uint16_t hr, hd;

	f->fake.fail = -EIO;
	hr = test_ring_add(&f->ring, r, 3);
	notify(f);
	blk_fake_complete(&f->fake);
	expect_used(f, hr, 1, r[2], VIRTIO_BLK_S_IOERR);
	f->fake.fail = -EOPNOTSUPP;
	hd = add_dwz(f, VIRTIO_BLK_T_DISCARD, &d, 1, &sd);
	notify(f);
	blk_fake_complete(&f->fake);
	expect_used(f, hd, 1, sd, VIRTIO_BLK_S_UNSUPP);
	teardown(f);
}
END_TEST

START_TEST(many_in_flight_and_indirect)
{
	struct fixture *f = setup(false, NULL);
	struct test_buf st[64];
	uint16_t heads[64];
	uint32_t id, len;

	for (unsigned i = 0; i < 64; i++) {
		struct test_buf b[] = {header(f, VIRTIO_BLK_T_IN, i), buffer(f, 512, true),
		                       buffer(f, 1, true)};

		heads[i] = i % 2 ? test_ring_add_indirect(&f->ring, b, 3)
		                 : test_ring_add(&f->ring, b, 3);
		st[i] = b[2];
	}
	notify(f);
	ck_assert_uint_eq(f->fake.nr_ops, 64);
	ck_assert(!test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 64);
	for (unsigned i = 0; i < 64; i++)
		expect_used(f, heads[i], 513, st[i], VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(f->interrupts, 1);   /* one per batch */
	ck_assert_uint_eq(f->fake.batches, 1); /* one notification: one submission batch */
	teardown(f);
}
END_TEST

/* A read of sector @sector on @ring; *@status gets its status buffer. */
static uint16_t add_read(struct fixture *f, struct test_ring *ring, uint64_t sector,
                         struct test_buf *status)
{
	struct test_buf b[3];
	uint16_t head;

	(void)f;
	b[0] = (struct test_buf){test_ring_alloc(ring, 16), 16, false};
	put_le(test_ring_host(ring, b[0].gpa, 16), VIRTIO_BLK_T_IN, 4);
	put_le((uint8_t *)test_ring_host(ring, b[0].gpa, 16) + 8, sector, 8);
	b[1] = (struct test_buf){test_ring_alloc(ring, 512), 512, true};
	b[2] = (struct test_buf){test_ring_alloc(ring, 1), 1, true};
	head = test_ring_add_indirect(ring, b, 3); /* one descriptor: 256 fit */
	*status = b[2];
	return head;
}

/*
 * VIRTIO_BLK_F_MQ: each queue's requests complete on its own used ring with its own
 * interrupt; a queue short of slots (all taken by another) is served once slots free up.
 */
START_TEST(multiqueue)
{
	struct fixture *f = setup_queues(false, NULL, 0, 2);
	struct test_buf st, st1;
	uint16_t head1, head;
	uint32_t id, len;

	ck_assert_uint_eq(le16toh(f->blk.config.num_queues), 2);
	ck_assert(f->blk.vdev.device_features & 1ull << VIRTIO_BLK_F_MQ);
	ck_assert_uint_eq(f->blk.vdev.ops->num_queues, 2);
	head = add_read(f, &f->ring, 1, &st);
	head1 = add_read(f, &f->ring1, 2, &st1);
	f->blk.vdev.ops->queue_notify(&f->blk.vdev, 1);
	ck_assert_uint_eq(f->fake.nr_ops, 1);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	ck_assert(test_ring_used(&f->ring1, &id, &len));
	ck_assert_uint_eq(id, head1);
	ck_assert_uint_eq(*(uint8_t *)test_ring_host(&f->ring1, st1.gpa, 1), VIRTIO_BLK_S_OK);
	ck_assert(!test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(f->queue_interrupts[1], 1);
	ck_assert_uint_eq(f->queue_interrupts[0], 0);
	notify(f);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	expect_used(f, head, 513, st, VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(f->queue_interrupts[0], 1);
	/* Queue 0 takes every slot; queue 1's request waits for one, then completes. */
	for (unsigned i = 0; i < BLK_QUEUE_SIZE; i++)
		add_read(f, &f->ring, i, &st);
	notify(f);
	ck_assert_uint_eq(f->fake.nr_ops, 2 + BLK_QUEUE_SIZE);
	head1 = add_read(f, &f->ring1, 3, &st1);
	f->blk.vdev.ops->queue_notify(&f->blk.vdev, 1);
	ck_assert_uint_eq(f->fake.nr_ops, 2 + BLK_QUEUE_SIZE);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), BLK_QUEUE_SIZE);
	ck_assert_uint_eq(f->fake.nr_ops, 2 + BLK_QUEUE_SIZE + 1); /* at the batch's end */
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	while (test_ring_used(&f->ring, &id, &len))
		;
	ck_assert(test_ring_used(&f->ring1, &id, &len));
	ck_assert_uint_eq(id, head1);
	teardown(f);
}
END_TEST

START_TEST(queue_count_checked)
{
	struct blk_options opts = {.path = "fake.img", .num_queues = BLK_MAX_QUEUES + 1};
	struct guest_memory mem = {0};
	struct blk_fake fake;
	struct blk_dev blk;
	char err[256] = "";

	blk_fake_init(&fake, DISK_SIZE);
	ck_assert_int_eq(blk_init(&blk, &opts, DISK_SIZE, &mem, &fake.be, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_str_eq(err, "disk 'fake.img': 9 queues, at most 8");
	blk_fake_free(&fake);
}
END_TEST

START_TEST(malformed_chain_needs_reset)
{
	struct fixture *f = setup(false, NULL);
	struct test_buf h = header(f, VIRTIO_BLK_T_IN, 0);

	/* A descriptor that links to itself. */
	test_ring_set_desc(&f->ring, 0, h.gpa, 16, TEST_DESC_F_NEXT, 0);
	test_ring_publish(&f->ring, 0);
	notify(f);
	ck_assert_uint_eq(f->blk.vdev.status & VIRTIO_STATUS_NEEDS_RESET,
	                  VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(f->config_interrupts, 1);
	ck_assert_uint_eq(f->fake.nr_ops, 0);
	teardown(f);
}
END_TEST

START_TEST(reset_drops_old_completions)
{
	struct fixture *f = setup(false, NULL);
	struct test_buf b[] = {header(f, VIRTIO_BLK_T_IN, 0), buffer(f, 512, true),
	                       buffer(f, 1, true)};
	uint32_t id, len;

	test_ring_add(&f->ring, b, 3);
	notify(f);
	pthread_mutex_lock(&f->blk.vdev.lock);
	virtio_write_status(&f->blk.vdev, 0);
	pthread_mutex_unlock(&f->blk.vdev.lock);
	driver_up(f); /* a fresh ring */
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	ck_assert(!test_ring_used(&f->ring, &id, &len));
	ck_assert_uint_eq(*host(f, b[2]), 0); /* the old request's status is not written */
	teardown(f);
}
END_TEST

START_TEST(config_space)
{
	struct fixture *f = setup(false, NULL);
	uint64_t cap = 0;
	uint32_t v = 0;
	uint8_t unmap = 0;

	virtio_read_config(&f->blk.vdev, 0, &cap, 8);
	ck_assert_uint_eq(le64toh(cap), CAPACITY);
	virtio_read_config(&f->blk.vdev, 12, &v, 4);
	ck_assert_uint_eq(le32toh(v), BLK_SEG_MAX);
	virtio_read_config(&f->blk.vdev, 20, &v, 4);
	ck_assert_uint_eq(le32toh(v), 512);
	virtio_read_config(&f->blk.vdev, 40, &v, 4);
	ck_assert_uint_eq(le32toh(v), BLK_MAX_DWZ_SEGS);
	virtio_read_config(&f->blk.vdev, 52, &v, 4);
	ck_assert_uint_eq(le32toh(v), BLK_MAX_DWZ_SEGS);
	virtio_read_config(&f->blk.vdev, 56, &unmap, 1);
	ck_assert_uint_eq(unmap, 1);
	teardown(f);
}
END_TEST

/*
 * cache=none on 4K-native storage (issue 17): the device advertises the host's 4 KiB blocks and
 * a request not aligned to them completes with IOERR without reaching the backend.
 */
START_TEST(block_size_advertised_and_enforced)
{
	struct fixture *f = setup_with(false, NULL, 4096);
	struct test_buf bad[][3] = {
	        {header(f, VIRTIO_BLK_T_IN, 0), buffer(f, 512, true), buffer(f, 1, true)},
	        {header(f, VIRTIO_BLK_T_IN, 1), buffer(f, 4096, true), buffer(f, 1, true)},
	        {header(f, VIRTIO_BLK_T_OUT, 8), buffer(f, 2048, false), buffer(f, 1, true)},
	};
	struct test_buf good[] = {header(f, VIRTIO_BLK_T_IN, 8), buffer(f, 4096, true),
	                          buffer(f, 1, true)};
	uint32_t v = 0;
	uint16_t heads[3], head;

	ck_assert(f->blk.vdev.device_features & 1ull << VIRTIO_BLK_F_BLK_SIZE);
	virtio_read_config(&f->blk.vdev, offsetof(struct blk_config, blk_size), &v, 4);
	ck_assert_uint_eq(le32toh(v), 4096);
	for (unsigned i = 0; i < 3; i++)
		heads[i] = test_ring_add(&f->ring, bad[i], 3);
	notify(f);
	ck_assert_uint_eq(f->fake.nr_ops, 0);
	for (unsigned i = 0; i < 3; i++)
		expect_used(f, heads[i], 1, bad[i][2], VIRTIO_BLK_S_IOERR);
	head = test_ring_add(&f->ring, good, 3);
	notify(f);
	ck_assert_uint_eq(blk_fake_complete(&f->fake), 1);
	expect_used(f, head, 4097, good[2], VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(host(f, good[1]), f->fake.disk + 4096, 4096);
	/* Only powers of two from 512 to 64 KiB. */
	ck_assert_int_eq(blk_set_block_size(&f->blk, 256), -EINVAL);
	ck_assert_int_eq(blk_set_block_size(&f->blk, 3072), -EINVAL);
	ck_assert_int_eq(blk_set_block_size(&f->blk, 128 * 1024), -EINVAL);
	virtio_read_config(&f->blk.vdev, offsetof(struct blk_config, blk_size), &v, 4);
	ck_assert_uint_eq(le32toh(v), 4096);
	teardown(f);
}
END_TEST

START_TEST(serial_too_long)
{
	struct blk_options opts = {.path = "x.img", .serial = "123456789012345678901"};
	static struct blk_fake fb;
	struct guest_memory mem = {0};
	struct blk_dev b;
	char err[256] = "";

	blk_fake_init(&fb, DISK_SIZE);
	ck_assert_int_eq(blk_init(&b, &opts, DISK_SIZE, &mem, &fb.be, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err,
	                 "disk 'x.img': serial '123456789012345678901' is longer than 20 bytes");
	blk_fake_free(&fb);
}
END_TEST

static Suite *blk_suite(void)
{
	Suite *s = suite_create("blk");
	TCase *tc = tcase_create("device");
	tcase_add_test(tc, read_sectors);
	tcase_add_test(tc, write_sectors_and_flush);
	tcase_add_test(tc, get_id);
	tcase_add_test(tc, discard_and_write_zeroes);
	tcase_add_test(tc, read_only_disk);
	tcase_add_test(tc, bad_requests_complete_with_status);
	tcase_add_test(tc, backend_errors);
	tcase_add_test(tc, many_in_flight_and_indirect);
	tcase_add_test(tc, multiqueue);
	tcase_add_test(tc, queue_count_checked);
	tcase_add_test(tc, malformed_chain_needs_reset);
	tcase_add_test(tc, reset_drops_old_completions);
	tcase_add_test(tc, config_space);
	tcase_add_test(tc, block_size_advertised_and_enforced);
	tcase_add_test(tc, serial_too_long);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(blk_suite());
}
