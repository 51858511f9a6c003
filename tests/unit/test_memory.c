#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/memory.h"

#define LOW_SIZE  (4 * MIB)
#define HIGH_BASE (8 * MIB)
#define HIGH_SIZE (2 * MIB)

static struct guest_memory mem;

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, LOW_SIZE), 0);
	ck_assert_int_eq(guest_memory_add(&mem, HIGH_BASE, HIGH_SIZE), 0);
}

static void teardown(void)
{
	guest_memory_free(&mem);
}

START_TEST(add_rejects_bad_regions)
{
	ck_assert_int_eq(guest_memory_add(&mem, 0x1000, 0), -EINVAL);
	ck_assert_int_eq(guest_memory_add(&mem, 0x1001, 0x1000), -EINVAL);
	ck_assert_int_eq(guest_memory_add(&mem, 0x100000, 0x1000), -EINVAL); /* overlap */
	ck_assert_int_eq(guest_memory_add(&mem, HIGH_BASE - 0x1000, 0x2000), -EINVAL);
	ck_assert_int_eq(guest_memory_add(&mem, UINT64_MAX - 0xfff, 0x2000), -EINVAL); /* wraps */
	ck_assert(guest_memory_size(&mem) == LOW_SIZE + HIGH_SIZE);
}
END_TEST

START_TEST(translate_edges)
{
	uint8_t *base = gpa_to_hva(&mem, 0, 1);

	ck_assert_ptr_nonnull(base);
	ck_assert_ptr_eq(gpa_to_hva(&mem, 0, LOW_SIZE), base);
	ck_assert_ptr_eq(gpa_to_hva(&mem, LOW_SIZE - 1, 1), base + LOW_SIZE - 1);
	ck_assert_ptr_eq(gpa_to_hva(&mem, LOW_SIZE, 0), NULL); /* first byte past the region */
	ck_assert_ptr_null(gpa_to_hva(&mem, LOW_SIZE - 1, 2));
	ck_assert_ptr_null(gpa_to_hva(&mem, 0, LOW_SIZE + 1));
	ck_assert_ptr_null(gpa_to_hva(&mem, LOW_SIZE, 1)); /* in the gap */
	ck_assert_ptr_nonnull(gpa_to_hva(&mem, HIGH_BASE, HIGH_SIZE));
	ck_assert_ptr_null(gpa_to_hva(&mem, HIGH_BASE + HIGH_SIZE, 1));
	ck_assert_ptr_null(gpa_to_hva(&mem, HIGH_BASE - 1, 2));
}
END_TEST

START_TEST(translate_wraparound)
{
	ck_assert_ptr_null(gpa_to_hva(&mem, 0x1000, UINT64_MAX));
	ck_assert_ptr_null(gpa_to_hva(&mem, 0x1000, UINT64_MAX - 0xfff));
	ck_assert_ptr_null(gpa_to_hva(&mem, UINT64_MAX, 2));
	ck_assert_ptr_null(gpa_to_hva(&mem, UINT64_MAX, 1));
	ck_assert_ptr_null(gpa_to_hva(&mem, HIGH_BASE + 16, UINT64_MAX - 8));
}
END_TEST

START_TEST(copy_in_and_out)
{
	uint8_t out[64], in[64];

	for (unsigned i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 1);
	ck_assert_int_eq(guest_write(&mem, LOW_SIZE - 64, out, sizeof(out)), 0);
	ck_assert_int_eq(guest_read(&mem, LOW_SIZE - 64, in, sizeof(in)), 0);
	ck_assert_mem_eq(in, out, sizeof(out));
	ck_assert_int_eq(guest_write(&mem, LOW_SIZE - 32, out, sizeof(out)), -EFAULT);
	ck_assert_int_eq(guest_read(&mem, HIGH_BASE + HIGH_SIZE - 8, in, 16), -EFAULT);
	ck_assert_int_eq(guest_read(&mem, UINT64_MAX - 4, in, 16), -EFAULT);
	ck_assert_int_eq(guest_read(&mem, 0, in, 0), 0);
}
END_TEST

START_TEST(copy_spans_adjacent_regions)
{
	struct guest_memory adj = {0};
	uint8_t out[32], in[32];

	ck_assert_int_eq(guest_memory_add(&adj, 0, 0x1000), 0);
	ck_assert_int_eq(guest_memory_add(&adj, 0x1000, 0x1000), 0);
	memset(out, 0xab, sizeof(out));
	ck_assert_int_eq(guest_write(&adj, 0x1000 - 16, out, sizeof(out)), 0);
	ck_assert_int_eq(guest_read(&adj, 0x1000 - 16, in, sizeof(in)), 0);
	ck_assert_mem_eq(in, out, sizeof(out));
	/* gpa_to_hva never spans regions, even adjacent ones. */
	ck_assert_ptr_null(gpa_to_hva(&adj, 0x1000 - 16, 32));
	guest_memory_free(&adj);
}
END_TEST

/* A shared region is a memfd another process could map: its bytes are the guest's. */
START_TEST(shared_region_is_a_memfd)
{
	struct guest_memory shared = {.shared = true};
	const struct mem_region *r;
	uint8_t *other;

	ck_assert_int_eq(guest_memory_add(&shared, 2 * MIB, 2 * MIB), 0);
	r = &shared.regions[0];
	ck_assert_int_ge(r->fd, 0);
	ck_assert_uint_eq(r->fd_offset, 0);
	other = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	ck_assert_ptr_ne(other, MAP_FAILED);
	ck_assert_int_eq(guest_write(&shared, 2 * MIB + 0x1234, "abc", 3), 0);
	ck_assert_mem_eq(other + 0x1234, "abc", 3);
	other[0x10] = 0x5a;
	ck_assert_uint_eq(*(uint8_t *)gpa_to_hva(&shared, 2 * MIB + 0x10, 1), 0x5a);
	munmap(other, 2 * MIB);
	guest_memory_free(&shared);
	/* Anonymous regions have no fd. */
	ck_assert_int_eq(mem.regions[0].fd, -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("memory");
	TCase *tc = tcase_create("memory");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, add_rejects_bad_regions);
	tcase_add_test(tc, translate_edges);
	tcase_add_test(tc, translate_wraparound);
	tcase_add_test(tc, copy_in_and_out);
	tcase_add_test(tc, copy_spans_adjacent_regions);
	tcase_add_test(tc, shared_region_is_a_memfd);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
