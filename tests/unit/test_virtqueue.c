/*
 * Split virtqueues against a hostile driver: one case per rule (a table of malformed rings and
 * chains, each refused without consuming the chain), activation checks, the happy paths (direct
 * and indirect chains, the used ring, index wrap-around), notification suppression (EVENT_IDX
 * and NO_INTERRUPT). Random descriptor tables are in test_virtqueue_fuzz.c.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "tests/support/vring_builder.h"
#include "tests/unit/unit.h"
#include "vmm/util.h"

#define RAM   (1 * MIB)
#define QSIZE 16

static struct guest_memory mem;
static struct vring_builder b;
static struct virtqueue vq;
static struct vq_chain chain;

static void ring_up(uint16_t size, bool indirect, bool event_idx)
{
	memset(&vq, 0, sizeof(vq));
	vrb_init(&b, &mem, 0x10000, 0x70000, size);
	vrb_attach(&b, &vq);
	vq.indirect = indirect;
	vq.event_idx = event_idx;
	ck_assert_int_eq(vq_activate(&vq, size), 0);
}

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM), 0);
	ring_up(QSIZE, false, false);
}

static void teardown(void)
{
	guest_memory_free(&mem);
}

static uint8_t *host(uint64_t gpa)
{
	return vrb_host(&b, gpa, 1);
}

/* A buffer in the data area. */
static uint64_t buf(uint32_t len)
{
	return vrb_alloc(&b, len ? len : 1);
}

/* ---- Malformed rings and chains: one builder per rule ---- */

static void bad_loop(void)
{
	vrb_desc(&b, 0, buf(8), 8, VRB_F_NEXT, 1);
	vrb_desc(&b, 1, buf(8), 8, VRB_F_NEXT, 0);
	vrb_publish(&b, 0);
}

static void bad_self_loop(void)
{
	vrb_desc(&b, 3, buf(8), 8, VRB_F_NEXT | VRB_F_WRITE, 3);
	vrb_publish(&b, 3);
}

static void bad_head(void)
{
	vrb_publish(&b, QSIZE);
}

static void bad_next(void)
{
	vrb_desc(&b, 0, buf(8), 8, VRB_F_NEXT, QSIZE);
	vrb_publish(&b, 0);
}

static void bad_avail_jump(void)
{
	vrb_desc(&b, 0, buf(8), 8, 0, 0);
	vrb_set_avail_idx(&b, QSIZE + 1);
}

static void bad_outside_ram(void)
{
	vrb_desc(&b, 0, RAM, 16, 0, 0);
	vrb_publish(&b, 0);
}

static void bad_straddle(void)
{
	vrb_desc(&b, 0, RAM - 8, 16, VRB_F_WRITE, 0);
	vrb_publish(&b, 0);
}

static void bad_wrap(void)
{
	vrb_desc(&b, 0, UINT64_MAX - 7, 16, 0, 0);
	vrb_publish(&b, 0);
}

static void bad_zero_len_outside(void)
{
	vrb_desc(&b, 0, buf(8), 8, VRB_F_NEXT, 1);
	vrb_desc(&b, 1, RAM + 4096, 0, VRB_F_WRITE, 0);
	vrb_publish(&b, 0);
}

static void bad_readable_after_writable(void)
{
	vrb_desc(&b, 0, buf(8), 8, VRB_F_NEXT | VRB_F_WRITE, 1);
	vrb_desc(&b, 1, buf(8), 8, 0, 0);
	vrb_publish(&b, 0);
}

/* Head descriptor 0 points to an indirect table of @n entries (@len bytes); returns it. */
static uint64_t indirect_head(unsigned n, uint32_t len, uint16_t flags)
{
	uint64_t table = vrb_alloc(&b, (uint64_t)n * 16);

	vrb_desc(&b, 0, table, len, VRB_F_INDIRECT | flags, 0);
	vrb_publish(&b, 0);
	return table;
}

static void bad_indirect_not_negotiated(void)
{
	vq.indirect = false;
	vrb_desc_at(&b, indirect_head(1, 16, 0), 0, buf(8), 8, 0, 0);
}

static void bad_indirect_nested(void)
{
	uint64_t t = indirect_head(2, 32, 0);

	vrb_desc_at(&b, t, 0, buf(8), 8, VRB_F_NEXT, 1);
	vrb_desc_at(&b, t, 1, t, 32, VRB_F_INDIRECT, 0);
}

static void bad_indirect_len(void)
{
	vrb_desc_at(&b, indirect_head(2, 24, 0), 0, buf(8), 8, 0, 0);
}

static void bad_indirect_len0(void)
{
	indirect_head(1, 0, 0);
}

static void bad_indirect_huge(void)
{
	indirect_head(1, (VQ_MAX_SIZE + 1) * 16, 0);
}

static void bad_indirect_outside(void)
{
	vrb_desc(&b, 0, RAM - 16, 32, VRB_F_INDIRECT, 0);
	vrb_publish(&b, 0);
}

static void bad_indirect_next_out(void)
{
	uint64_t t = indirect_head(2, 32, 0);

	vrb_desc_at(&b, t, 0, buf(8), 8, VRB_F_NEXT, 2);
}

static void bad_indirect_loop(void)
{
	uint64_t t = indirect_head(2, 32, 0);

	vrb_desc_at(&b, t, 0, buf(8), 8, VRB_F_NEXT, 1);
	vrb_desc_at(&b, t, 1, buf(8), 8, VRB_F_NEXT, 0);
}

static void bad_indirect_with_next(void)
{
	vrb_desc_at(&b, indirect_head(1, 16, VRB_F_NEXT), 0, buf(8), 8, 0, 0);
	vrb_desc(&b, 1, buf(8), 8, 0, 0);
}

static void bad_indirect_buffer_outside(void)
{
	vrb_desc_at(&b, indirect_head(1, 16, 0), 0, RAM - 4, 8, VRB_F_WRITE, 0);
}

static void bad_indirect_too_many(void)
{
	uint64_t t = indirect_head(VQ_MAX_IOV + 1, (VQ_MAX_IOV + 1) * 16, 0);
	uint64_t data = buf(8);

	for (uint16_t i = 0; i <= VQ_MAX_IOV; i++)
		vrb_desc_at(&b, t, i, data, 8, i < VQ_MAX_IOV ? VRB_F_NEXT : 0, i + 1);
}

static void bad_writable_then_indirect_readable(void)
{
	uint64_t t = vrb_alloc(&b, 16);

	vrb_desc(&b, 0, buf(8), 8, VRB_F_WRITE | VRB_F_NEXT, 1);
	vrb_desc(&b, 1, t, 16, VRB_F_INDIRECT, 0);
	vrb_desc_at(&b, t, 0, buf(8), 8, 0, 0);
	vrb_publish(&b, 0);
}

struct bad_case {
	const char *name;
	void (*build)(void);
	int expect;
};

static const struct bad_case bad_cases[] = {
        {"descriptor loop", bad_loop, -EINVAL},
        {"descriptor points to itself", bad_self_loop, -EINVAL},
        {"head out of range", bad_head, -EINVAL},
        {"next out of range", bad_next, -EINVAL},
        {"avail idx jumps past the size", bad_avail_jump, -EINVAL},
        {"buffer outside RAM", bad_outside_ram, -EFAULT},
        {"buffer straddles the end of RAM", bad_straddle, -EFAULT},
        {"address + length wraps 2^64", bad_wrap, -EFAULT},
        {"zero-length buffer outside RAM", bad_zero_len_outside, -EFAULT},
        {"readable after writable", bad_readable_after_writable, -EINVAL},
        {"indirect not negotiated", bad_indirect_not_negotiated, -EINVAL},
        {"nested indirect", bad_indirect_nested, -EINVAL},
        {"indirect len not a multiple of 16", bad_indirect_len, -EINVAL},
        {"indirect len 0", bad_indirect_len0, -EINVAL},
        {"indirect table too long", bad_indirect_huge, -EINVAL},
        {"indirect table outside RAM", bad_indirect_outside, -EFAULT},
        {"indirect next outside the table", bad_indirect_next_out, -EINVAL},
        {"loop inside an indirect table", bad_indirect_loop, -EINVAL},
        {"indirect descriptor with NEXT", bad_indirect_with_next, -EINVAL},
        {"indirect buffer outside RAM", bad_indirect_buffer_outside, -EFAULT},
        {"too many buffers (indirect)", bad_indirect_too_many, -EINVAL},
        {"writable then indirect readable", bad_writable_then_indirect_readable, -EINVAL},
};

START_TEST(malformed)
{
	const struct bad_case *c = &bad_cases[_i];

	vq.indirect = true;
	c->build();
	ck_assert_msg(vq_pop_chain(&vq, &chain) == c->expect, "%s", c->name);
	ck_assert_msg(vq.last_avail_idx == 0, "%s: chain consumed", c->name);
	ck_assert_msg(vq_pop_chain(&vq, &chain) == c->expect, "%s: not repeatable", c->name);
}
END_TEST

START_TEST(too_many_direct_buffers)
{
	uint64_t data;

	ring_up(512, false, false);
	data = buf(8);
	for (uint16_t i = 0; i < VQ_MAX_IOV + 1; i++)
		vrb_desc(&b, i, data, 8, i < VQ_MAX_IOV - 1 ? VRB_F_NEXT : 0, i + 1);
	vrb_publish(&b, 0); /* exactly VQ_MAX_IOV buffers: fine */
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
	ck_assert_uint_eq(chain.nr_out, VQ_MAX_IOV);
	ck_assert_uint_eq(chain.out_len, 8 * VQ_MAX_IOV);
	vrb_desc(&b, VQ_MAX_IOV - 1, data, 8, VRB_F_NEXT, VQ_MAX_IOV);
	vrb_publish(&b, 0); /* one more */
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), -EINVAL);
}
END_TEST

/* 2.7.5: a chain is at most 2^32 bytes; two buffers in a 4 GiB region (never touched). */
START_TEST(chain_length_limit)
{
	const uint64_t big = 4 * GIB;

	ck_assert_int_eq(guest_memory_add(&mem, big, 4 * GIB), 0);
	vrb_desc(&b, 0, big, UINT32_MAX, VRB_F_NEXT, 1);
	vrb_desc(&b, 1, big, 1, VRB_F_WRITE, 0);
	vrb_publish(&b, 0);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
	ck_assert_uint_eq(chain.out_len + chain.in_len, 1ULL << 32);
	vrb_desc(&b, 1, big, 2, VRB_F_WRITE, 0);
	vrb_publish(&b, 0);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), -EINVAL);
	vrb_desc(&b, 1, big, UINT32_MAX, VRB_F_NEXT, 2);
	vrb_desc(&b, 2, big, UINT32_MAX, VRB_F_WRITE, 0);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), -EINVAL);
}
END_TEST

/* ---- Activation ---- */

enum { DESC = 1, AVAIL, USED };

struct layout_case {
	const char *name;
	uint16_t size;
	int ring;      /* which ring moves (DESC, AVAIL, USED), or 0 */
	uint64_t addr; /* ... to this address */
};

/* Each ring needs 16 * 16, 6 + 2 * 16 and 6 + 8 * 16 bytes for 16 entries. */
static const struct layout_case layout_cases[] = {
        {"size 0", 0, 0, 0},
        {"size not a power of two", 12, 0, 0},
        {"size above the maximum", 2 * QSIZE, 0, 0},
        {"descriptor table misaligned", QSIZE, DESC, 0x8008},
        {"avail ring misaligned", QSIZE, AVAIL, 0x8001},
        {"used ring misaligned", QSIZE, USED, 0x8002},
        {"descriptor table outside RAM", QSIZE, DESC, RAM},
        {"descriptor table straddles the end", QSIZE, DESC, RAM - 16 * 16 + 16},
        {"avail ring straddles the end", QSIZE, AVAIL, RAM - 38 + 2},
        {"used ring straddles the end", QSIZE, USED, RAM - 134 + 2},
        {"used ring wraps 2^64", QSIZE, USED, UINT64_MAX - 63},
};

START_TEST(activation_refused)
{
	const struct layout_case *c = &layout_cases[_i];

	vq_reset(&vq);
	vrb_attach(&b, &vq);
	vq.size = c->size;
	if (c->ring)
		*(c->ring == DESC    ? &vq.desc_addr
		  : c->ring == AVAIL ? &vq.avail_addr
		                     : &vq.used_addr) = c->addr;
	ck_assert_msg(vq_activate(&vq, QSIZE) == -EINVAL, "%s", c->name);
	ck_assert(!vq.active);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 0);
	ck_assert_int_eq(vq_push_used(&vq, 0, 0), -EINVAL);
	ck_assert(!vq_should_notify(&vq));
}
END_TEST

/* Rings as close to the end of RAM as their length and alignment allow. */
START_TEST(activation_at_ram_end)
{
	vq.desc_addr = RAM - 16 * 16;
	vq.avail_addr = RAM - 38;
	vq.used_addr = RAM - 134 - 2;
	ck_assert_int_eq(vq_activate(&vq, QSIZE), 0);
	vq.used_addr = RAM - 132; /* aligned, 2 bytes short */
	ck_assert_int_eq(vq_activate(&vq, QSIZE), -EINVAL);
}
END_TEST

START_TEST(activation_without_memory)
{
	vq.mem = NULL;
	ck_assert_int_eq(vq_activate(&vq, QSIZE), -EINVAL);
	vrb_attach(&b, &vq);
	ck_assert_int_eq(vq_activate(&vq, VQ_MAX_SIZE * 2), -EINVAL);
	ck_assert_int_eq(vq_activate(&vq, QSIZE), 0);
}
END_TEST

/* ---- Happy paths ---- */

START_TEST(simple_chain)
{
	uint64_t a = buf(100);

	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 0);
	vrb_desc(&b, 5, a, 100, 0, 0);
	vrb_publish(&b, 5);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
	ck_assert_uint_eq(chain.head, 5);
	ck_assert_uint_eq(chain.nr_out, 1);
	ck_assert_uint_eq(chain.nr_in, 0);
	ck_assert_ptr_eq(chain.iov[0].iov_base, host(a));
	ck_assert_uint_eq(chain.iov[0].iov_len, 100);
	ck_assert_uint_eq(chain.out_len, 100);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 0);
}
END_TEST

START_TEST(readable_and_writable)
{
	uint64_t a = buf(16), c = buf(512), d = buf(1);

	vrb_desc(&b, 0, a, 16, VRB_F_NEXT, 7);
	vrb_desc(&b, 7, a, 0, VRB_F_NEXT, 2); /* zero-length buffers are kept */
	vrb_desc(&b, 2, c, 512, VRB_F_NEXT | VRB_F_WRITE, 3);
	vrb_desc(&b, 3, d, 1, VRB_F_WRITE, 0);
	vrb_publish(&b, 0);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
	ck_assert_uint_eq(chain.nr_out, 2);
	ck_assert_uint_eq(chain.nr_in, 2);
	ck_assert_uint_eq(chain.out_len, 16);
	ck_assert_uint_eq(chain.in_len, 513);
	ck_assert_ptr_nonnull(chain.iov[1].iov_base);
	ck_assert_uint_eq(chain.iov[1].iov_len, 0);
	ck_assert_ptr_eq(chain.iov[2].iov_base, host(c));
	ck_assert_ptr_eq(chain.iov[3].iov_base, host(d));
}
END_TEST

START_TEST(indirect_table)
{
	uint64_t a = buf(16), c = buf(64), t;

	vq.indirect = true;
	vrb_desc(&b, 0, a, 16, VRB_F_NEXT, 1); /* a direct buffer, then the table */
	t = vrb_alloc(&b, 48);
	vrb_desc(&b, 1, t, 48, VRB_F_INDIRECT | VRB_F_WRITE, 0); /* WRITE ignored here */
	vrb_desc_at(&b, t, 0, a, 8, VRB_F_NEXT, 2);
	vrb_desc_at(&b, t, 2, c, 64, VRB_F_WRITE | VRB_F_NEXT, 1);
	vrb_desc_at(&b, t, 1, c, 32, VRB_F_WRITE, 0);
	vrb_publish(&b, 0);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
	ck_assert_uint_eq(chain.nr_out, 2);
	ck_assert_uint_eq(chain.nr_in, 2);
	ck_assert_uint_eq(chain.out_len, 24);
	ck_assert_uint_eq(chain.in_len, 96);
	ck_assert_uint_eq(chain.iov[3].iov_len, 32);
}
END_TEST

START_TEST(used_ring)
{
	uint32_t id, len;

	for (uint16_t i = 0; i < 3; i++) {
		vrb_desc(&b, i, buf(8), 8, VRB_F_WRITE, 0);
		vrb_publish(&b, i);
	}
	for (uint16_t i = 0; i < 3; i++) {
		ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
		ck_assert_int_eq(vq_push_used(&vq, chain.head, 100u + i), 0);
	}
	ck_assert_uint_eq(vrb_used_idx(&b), 3);
	for (uint16_t i = 0; i < 3; i++) {
		vrb_used_elem(&b, i, &id, &len);
		ck_assert_uint_eq(id, i);
		ck_assert_uint_eq(len, 100u + i);
	}
	ck_assert_int_eq(vq_push_used(&vq, QSIZE, 0), -EINVAL);
	ck_assert_uint_eq(vrb_used_idx(&b), 3);
}
END_TEST

/* A full ring (delta == size) is fine, and the 16-bit indices wrap. */
START_TEST(index_wrap)
{
	uint32_t id, len;

	vq.last_avail_idx = vq.used_idx = 0xfff8;
	vrb_set_avail_idx(&b, 0xfff8);
	for (unsigned round = 0; round < 3; round++) {
		for (uint16_t i = 0; i < QSIZE; i++) {
			vrb_desc(&b, i, buf(4), 4, VRB_F_WRITE, 0);
			vrb_publish(&b, i);
		}
		for (uint16_t i = 0; i < QSIZE; i++) {
			ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
			ck_assert_uint_eq(chain.head, i);
			ck_assert_int_eq(vq_push_used(&vq, chain.head, 4), 0);
		}
		ck_assert_int_eq(vq_pop_chain(&vq, &chain), 0);
	}
	ck_assert_uint_eq(vrb_used_idx(&b), (uint16_t)(0xfff8 + 3 * QSIZE));
	vrb_used_elem(&b, (uint16_t)(0xfff8 + 3 * QSIZE - 1), &id, &len);
	ck_assert_uint_eq(id, QSIZE - 1);
}
END_TEST

static void push_one(void)
{
	uint16_t i = (uint16_t)(b.avail_idx % QSIZE);

	vrb_desc(&b, i, buf(4), 4, VRB_F_WRITE, 0);
	vrb_publish(&b, i);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 1);
	ck_assert_int_eq(vq_push_used(&vq, chain.head, 4), 0);
}

START_TEST(event_idx_notify)
{
	ring_up(QSIZE, false, true);
	ck_assert(!vq_should_notify(&vq)); /* nothing pushed */
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 0);
	ck_assert_uint_eq(vrb_avail_event(&b), 0);
	push_one();
	ck_assert_uint_eq(vrb_avail_event(&b), 0); /* not asked again while chains were left */
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 0);
	ck_assert_uint_eq(vrb_avail_event(&b), 1); /* empty again: notify me about the next */
	ck_assert(vq_should_notify(&vq));          /* first decision: always */
	push_one();
	ck_assert(!vq_should_notify(&vq)); /* used_event 0 was passed before */
	vrb_set_used_event(&b, 2);
	push_one(); /* used idx 2 -> 3 crosses used_event 2 */
	ck_assert(vq_should_notify(&vq));
	ck_assert(!vq_should_notify(&vq)); /* nothing new */
	vrb_set_used_event(&b, 5);
	push_one(); /* 3 -> 4 */
	ck_assert(!vq_should_notify(&vq));
	push_one(); /* 4 -> 5 */
	push_one(); /* 5 -> 6, crossing 5 in a batch */
	ck_assert(vq_should_notify(&vq));
	vrb_set_avail_flags(&b, 1); /* NO_INTERRUPT is ignored with EVENT_IDX */
	vrb_set_used_event(&b, 6);
	push_one();
	ck_assert(vq_should_notify(&vq));
}
END_TEST

START_TEST(no_interrupt_flag)
{
	push_one();
	ck_assert(vq_should_notify(&vq));
	ck_assert(!vq_should_notify(&vq));
	vrb_set_avail_flags(&b, 1);
	push_one();
	ck_assert(!vq_should_notify(&vq));
	vrb_set_avail_flags(&b, 0);
	push_one();
	ck_assert(vq_should_notify(&vq));
}
END_TEST

START_TEST(reset_forgets)
{
	push_one();
	vq_reset(&vq);
	ck_assert(!vq.active);
	ck_assert_ptr_null(vq.desc_hva);
	ck_assert_uint_eq(vq.size, 0);
	ck_assert_int_eq(vq_pop_chain(&vq, &chain), 0);
}
END_TEST

static Suite *virtqueue_suite(void)
{
	Suite *s = suite_create("virtqueue");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, malformed, 0, ARRAY_SIZE(bad_cases));
	tcase_add_test(tc, too_many_direct_buffers);
	tcase_add_test(tc, chain_length_limit);
	tcase_add_loop_test(tc, activation_refused, 0, ARRAY_SIZE(layout_cases));
	tcase_add_test(tc, activation_at_ram_end);
	tcase_add_test(tc, activation_without_memory);
	tcase_add_test(tc, simple_chain);
	tcase_add_test(tc, readable_and_writable);
	tcase_add_test(tc, indirect_table);
	tcase_add_test(tc, used_ring);
	tcase_add_test(tc, index_wrap);
	tcase_add_test(tc, event_idx_notify);
	tcase_add_test(tc, no_interrupt_flag);
	tcase_add_test(tc, reset_forgets);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(virtqueue_suite());
}
