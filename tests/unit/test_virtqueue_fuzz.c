/*
 * Seeded random descriptor tables, rings and indirect tables over two RAM regions with a gap:
 * vq_pop_chain must never crash, never hand out more than VQ_MAX_IOV buffers and never an
 * iovec that is not wholly inside one region's mapping. Run it under ASan/UBSan as well.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "tests/support/vring_builder.h"
#include "tests/unit/unit.h"
#include "vmm/util.h"

#define RAM    (1 * MIB)
#define TABLES 0x400 /* descriptors in the area indirect tables are cut from */

static struct guest_memory mem;
static struct vring_builder b;
static struct virtqueue vq;
static struct vq_chain chain;

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM), 0);
	ck_assert_int_eq(guest_memory_add(&mem, RAM + 0x10000, RAM), 0);
}

static void teardown(void)
{
	guest_memory_free(&mem);
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Mostly plausible, sometimes hostile: around the RAM edges, the top of the address space. */
static uint64_t rnd_addr(void)
{
	static const uint64_t edges[] = {
	        0, RAM - 16, RAM, RAM + 0x10000 - 8, 2 * RAM + 0x10000, UINT64_MAX - 15};

	if (rnd() % 8 == 0)
		return edges[rnd() % ARRAY_SIZE(edges)] + rnd() % 32;
	return rnd() % (3 * RAM);
}

static uint32_t rnd_len(void)
{
	switch (rnd() % 8) {
	case 0:
		return (uint32_t)rnd();
	case 1:
		return (uint32_t)(rnd() % 8) * 16;
	default:
		return (uint32_t)(rnd() % 0x3000);
	}
}

/* NEXT and WRITE half the time, INDIRECT rarely (and any other bit now and then). */
static uint16_t rnd_flags(void)
{
	uint16_t f = (uint16_t)(rnd() % 4);

	if (rnd() % 16 == 0)
		f |= VRB_F_INDIRECT;
	if (rnd() % 64 == 0)
		f |= (uint16_t)rnd();
	return f;
}

static void rnd_table(uint64_t table, unsigned n, uint16_t next_bound)
{
	for (unsigned i = 0; i < n; i++)
		vrb_desc_at(&b, table, (uint16_t)i, rnd_addr(), rnd_len(), rnd_flags(),
		            (uint16_t)(rnd() % 16 ? rnd() % next_bound : rnd()));
}

/* A ring of @size entries whose descriptors point anywhere, some at random indirect tables. */
static void scramble(uint16_t size, uint64_t tables)
{
	uint16_t idx = (uint16_t)rnd();
	unsigned chains = rnd() % 8 ? size : (unsigned)(rnd() % (2U * size + 2));

	rnd_table(b.desc, size, size + 1);
	rnd_table(tables, TABLES, TABLES);
	for (unsigned i = 0; i < size / 4U + rnd() % 2; i++)
		vrb_desc(&b, (uint16_t)(rnd() % size), tables + rnd() % (TABLES * 3 / 4) * 16,
		         (uint32_t)(rnd() % 64) * 16, VRB_F_INDIRECT | (rnd() % 2 ? VRB_F_NEXT : 0),
		         0);
	vq.last_avail_idx = vq.used_idx = idx;
	vrb_set_avail_idx(&b, idx);
	vrb_set_avail_flags(&b, (uint16_t)(rnd() % 2));
	vrb_set_used_event(&b, (uint16_t)rnd());
	vq.indirect = rnd() % 2;
	vq.event_idx = rnd() % 2;
	for (unsigned i = 0; i < chains; i++)
		vrb_publish(&b, (uint16_t)(rnd() % 16 ? rnd() % size : size + rnd() % 2));
}

static bool iov_in_ram(const struct iovec *iov)
{
	const uint8_t *p = iov->iov_base;

	for (unsigned r = 0; r < mem.nr_regions; r++) {
		const struct mem_region *m = &mem.regions[r];

		if (p >= m->host && p <= m->host + m->size &&
		    iov->iov_len <= m->size - (size_t)(p - m->host))
			return true;
	}
	return false;
}

/* Plain checks with one assertion: ck_assert costs a system call and this runs 100k times. */
static bool chain_sane(uint16_t size)
{
	uint64_t out = 0, in = 0;

	if (chain.head >= size || chain.nr_out + chain.nr_in > VQ_MAX_IOV)
		return false;
	for (unsigned i = 0; i < chain.nr_out + chain.nr_in; i++) {
		if (!iov_in_ram(&chain.iov[i]))
			return false;
		*(i < chain.nr_out ? &out : &in) += chain.iov[i].iov_len;
	}
	return out == chain.out_len && in == chain.in_len && out + in <= 1ULL << 32;
}

static const uint16_t sizes[] = {1, 2, 16, 256};

START_TEST(random_tables)
{
	uint16_t size = sizes[_i];
	uint64_t tables, ok = 0, bad = 0;

	memset(&vq, 0, sizeof(vq));
	vrb_init(&b, &mem, 0x10000, 0x70000, size);
	vrb_attach(&b, &vq);
	ck_assert_int_eq(vq_activate(&vq, size), 0);
	tables = vrb_alloc(&b, TABLES * 16);
	rng_state = 0x9e3779b97f4a7c15ULL + _i;
	for (unsigned iter = 0; iter < 10000; iter++) {
		int r;

		scramble(size, tables);
		/* A device would stop at the first error; skip it instead to cover more chains. */
		for (unsigned n = 0; n < size + 2U && (r = vq_pop_chain(&vq, &chain)) != 0; n++) {
			if (r != 1 && r != -EINVAL && r != -EFAULT)
				ck_abort_msg("iteration %u: vq_pop_chain returned %d", iter, r);
			if (r < 0) {
				bad++;
				vq.last_avail_idx++;
				continue;
			}
			if (!chain_sane(size) ||
			    vq_push_used(&vq, chain.head, (uint32_t)chain.in_len) != 0)
				ck_abort_msg("iteration %u: chain at head %u is not sane", iter,
				             chain.head);
			vq_should_notify(&vq);
			ok++;
		}
	}
	/* The run reached both outcomes often. */
	ck_assert_uint_gt(ok, 100);
	ck_assert_uint_gt(bad, 100);
}
END_TEST

static Suite *virtqueue_fuzz_suite(void)
{
	Suite *s = suite_create("virtqueue_fuzz");
	TCase *tc = tcase_create("random");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, random_tables, 0, ARRAY_SIZE(sizes));
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(virtqueue_fuzz_suite());
}
